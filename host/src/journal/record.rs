//! A lab as its journal describes it: the objects that exist or may exist.

use anyhow::{Result, bail};

use super::{Entry, LabInfo, LabState, NetnsRef, Object};

/// An object of a lab and what the journal knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedObject {
    pub id: u32,
    pub object: Object,
    /// `false` when nsw died between recording and creating it: it may or
    /// may not exist.
    pub confirmed: bool,
    /// Its kernel identity: chosen beforehand, or as the kernel confirmed
    /// it (see [`Entry::Create`] and [`Entry::Created`]).
    pub ident: Option<u64>,
    /// A process's start time (see [`Entry::Created`]).
    pub since: Option<u64>,
    /// A link's settings, by key (see [`Entry::Set`]).
    pub settings: std::collections::BTreeMap<super::Setting, serde_json::Value>,
}

/// A lab as its journal describes it.
#[derive(Debug, Clone)]
pub struct LabRecord {
    pub info: LabInfo,
    pub state: LabState,
    /// Objects that exist or may exist, in creation order, links at their
    /// latest namespace.
    pub objects: Vec<OwnedObject>,
    /// Every program the lab started, ended or not, by journal id (its
    /// output, if kept, is `layout::program_log` of that id).
    pub programs: Vec<(u32, NetnsRef, String)>,
}

impl LabRecord {
    /// A new lab: nothing built yet.
    pub fn new(info: LabInfo) -> LabRecord {
        LabRecord { info, state: LabState::Building, objects: Vec::new(), programs: Vec::new() }
    }

    pub fn from_entries(entries: Vec<Entry>) -> Result<LabRecord> {
        let mut entries = entries.into_iter();
        let Some(Entry::Lab(info)) = entries.next() else {
            bail!("the journal does not start with a lab record");
        };
        let mut record = LabRecord::new(info);
        for entry in entries {
            if let Entry::Lab(_) = entry {
                bail!("a second lab record");
            }
            record.apply(entry);
        }
        Ok(record)
    }

    /// Take one journal entry into account.
    pub fn apply(&mut self, entry: Entry) {
        match entry {
            // Only the first line names the lab (`from_entries` checks).
            Entry::Lab(_) => {}
            Entry::Create { id, object, ident } => {
                if let Object::Process { netns, program } = &object {
                    self.programs.push((id, netns.clone(), program.clone()));
                }
                self.objects.push(OwnedObject { id, object, confirmed: false, ident, since: None, settings: Default::default() })
            }
            Entry::Created { id, ident, since } => {
                if let Some(o) = self.objects.iter_mut().rev().find(|o| o.id == id) {
                    o.confirmed = true;
                    o.ident = ident.or(o.ident);
                    o.since = since;
                }
            }
            Entry::Failed { id } | Entry::Gone { id } => self.objects.retain(|o| o.id != id),
            Entry::Moved { id, netns: to, ident } => {
                if let Some(owned) = self.objects.iter_mut().rev().find(|o| o.id == id) {
                    if let Object::Link { netns, .. } = &mut owned.object {
                        *netns = to;
                        owned.ident = ident;
                    }
                }
            }
            Entry::State { state } => self.state = state,
            Entry::Set { id, key, value } => {
                if let Some(owned) = self.objects.iter_mut().rev().find(|o| o.id == id) {
                    match value {
                        serde_json::Value::Null => drop(owned.settings.remove(&key)),
                        serde_json::Value::String(text) if text.is_empty() => drop(owned.settings.remove(&key)),
                        // Older nsw wrote conditions as JSON inside a string.
                        serde_json::Value::String(text) if key == super::Setting::Conditions => {
                            owned.settings.insert(key, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
                        }
                        value => drop(owned.settings.insert(key, value)),
                    }
                }
            }
        }
    }

    /// The highest object id used, if any: a reopened journal goes on after it.
    pub fn last_id(&self) -> Option<u32> {
        self.objects.iter().map(|o| o.id).max()
    }

    /// The namespaces the lab created, in creation order.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &str)> {
        self.objects.iter().filter_map(|o| match &o.object {
            Object::Netns { name, node } => Some((name.as_str(), node.as_str())),
            _ => None,
        })
    }
}
