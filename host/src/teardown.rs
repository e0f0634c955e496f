//! Taking a lab down: remove exactly what its journal says it owns, in
//! reverse order of creation, tolerating objects that are already gone and
//! leaving alone any object that is no longer the one the lab created (a
//! namespace or link someone replaced by hand under the same name). The
//! same code serves `nsw down` and the rollback of a failed run, on any
//! [`Teardown`] backend: the kernel, or the plan in the tests.
//!
//! Objects inside the lab's own namespaces go with their namespace (the
//! kernel removes its links, addresses, routes and rules in one sweep, far
//! faster than one by one); only what lives in the machine's namespace is
//! removed object by object.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;

use anyhow::{Result, bail};
use ipnet::IpNet;

use crate::backend::Teardown;
use crate::journal::{LabRecord, Mode, NetnsRef, Object, OwnedObject};

/// What a teardown did.
#[derive(Debug, Default)]
pub struct Report {
    pub removed: Vec<String>,
    pub already_gone: Vec<String>,
    /// Not the lab's any more (replaced by hand): not touched.
    pub left_alone: Vec<String>,
    /// In a machine namespace this process is not in (`--force`): not
    /// touched, and no longer recorded.
    pub forgotten: Vec<String>,
    pub failed: Vec<String>,
}

/// What happened to one object.
enum Fate {
    Removed,
    Gone,
    /// Someone else's now; the string says why.
    NotOurs(String),
}

impl Report {
    /// One line: what was removed, what was already gone, what was left.
    pub fn summary(&self) -> String {
        let count = |n: usize| if n == 1 { "1 object".to_string() } else { format!("{n} objects") };
        let mut line = format!("removed {}", count(self.removed.len()));
        if !self.already_gone.is_empty() {
            line += &format!(", {} already gone", count(self.already_gone.len()));
        }
        if !self.left_alone.is_empty() {
            line += &format!(", {} left alone (not the lab's any more)", count(self.left_alone.len()));
        }
        if !self.forgotten.is_empty() {
            line += &format!(", {} forgotten", count(self.forgotten.len()));
        }
        line
    }

    /// Whether everything the lab owned is gone (or was never its own).
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }

    fn note(&mut self, what: String, outcome: io::Result<Fate>) {
        match outcome {
            Ok(Fate::Removed) => self.removed.push(what),
            Ok(Fate::Gone) => self.already_gone.push(what),
            Ok(Fate::NotOurs(why)) => self.left_alone.push(format!("{what}: {why}")),
            Err(e) => self.failed.push(format!("{what}: {}", crate::error::errno_text(&e))),
        }
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL))
}

fn gone_is_fine(outcome: io::Result<()>) -> io::Result<Fate> {
    match outcome {
        Ok(()) => Ok(Fate::Removed),
        Err(e) if is_gone(&e) => Ok(Fate::Gone),
        Err(e) => Err(e),
    }
}

/// Remove everything `record` owns. Objects in the machine's namespace
/// are removed only from that namespace; with `force`, from anywhere else
/// they are forgotten instead (the namespace may be gone for good).
pub async fn remove_all(machine: &mut dyn Teardown, record: &LabRecord, force: bool) -> Result<Report> {
    let mut report = Report::default();
    let machine_objects: Vec<&OwnedObject> = record.objects.iter().rev().filter(|o| o.object.netns() == NetnsRef::Machine).collect();
    let mut elsewhere = false;
    if !machine_objects.is_empty() || record.info.mode == Mode::HostNet {
        let here = machine.machine_inode()?;
        if here != record.info.machine_netns {
            if !force {
                bail!(
                    "lab {} was built in another network namespace (inode {}, this is {here}); run nsw down there, \
                     or nsw down --force to remove its own namespaces and forget the rest",
                    record.info.name,
                    record.info.machine_netns
                );
            }
            elsewhere = true;
        }
    }
    if elsewhere {
        report.forgotten.extend(
            machine_objects.iter().filter(|o| !matches!(o.object, Object::Address { .. })).map(|o| o.object.to_string()),
        );
    } else {
        for owned in machine_objects {
            if let Some(outcome) = remove_from_machine(machine, owned).await {
                report.note(owned.object.to_string(), outcome);
            }
        }
    }
    let mut seen = HashSet::new();
    for owned in record.objects.iter().rev() {
        if let Object::Netns { name, .. } = &owned.object {
            if seen.insert(name.clone()) {
                report.note(format!("netns {name}"), remove_netns(machine, name, owned.ident).await);
            }
        }
    }
    Ok(report)
}

/// Unmount a lab namespace, if it is still the one the lab created.
async fn remove_netns(machine: &mut dyn Teardown, name: &str, inode: Option<u64>) -> io::Result<Fate> {
    match (machine.netns_inode(name).await?, inode) {
        (None, _) => {
            // Nothing mounted; a mount point left by a crash may remain.
            machine.delete_netns(name).await?;
            Ok(Fate::Gone)
        }
        (Some(now), Some(ours)) if now != ours => {
            Ok(Fate::NotOurs(format!("it is another namespace now (inode {now}, the lab's was {ours})")))
        }
        // Ours, or never confirmed (nsw died between creating and
        // recording it): a namespace of the lab's own name.
        _ => machine.delete_netns(name).await.map(|_| Fate::Removed),
    }
}

/// Remove one object of the machine's namespace; `None` for objects that
/// go with another (an address with its link).
async fn remove_from_machine(machine: &mut dyn Teardown, owned: &OwnedObject) -> Option<io::Result<Fate>> {
    Some(match &owned.object {
        Object::Route { destination, via, .. } => match (destination.parse::<IpNet>(), via.parse::<IpAddr>()) {
            (Ok(d), Ok(v)) => gone_is_fine(machine.delete_machine_route(d, v).await),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unreadable route in the journal")),
        },
        Object::Sysctl { key, old, .. } => restore_sysctl(machine, key, old).await,
        Object::NftTable { family, name, .. } => match machine.delete_machine_nft_table(family, name).await {
            Ok(true) => Ok(Fate::Removed),
            Ok(false) => Ok(Fate::Gone),
            Err(e) => Err(e),
        },
        Object::Link { name, kind, .. } => remove_machine_link(machine, owned, name, kind).await,
        // Addresses live on the lab's links and go with them.
        Object::Address { .. } | Object::Netns { .. } => return None,
    })
}

async fn remove_machine_link(machine: &mut dyn Teardown, owned: &OwnedObject, name: &str, kind: &str) -> io::Result<Fate> {
    let Some(found) = machine.machine_link(name).await? else { return Ok(Fate::Gone) };
    match owned.ident {
        Some(ours) if ours != found.index as u64 => {
            Ok(Fate::NotOurs(format!("it is another link now (index {}, the lab's was {ours})", found.index)))
        }
        Some(_) => gone_is_fine(machine.delete_machine_link(found.index).await),
        // Never confirmed (nsw stopped between asking the kernel and
        // recording its answer): remove it only if it is at least the kind
        // of link the lab asked for.
        None => match found.kind {
            Some(found_kind) if found_kind == kind => gone_is_fine(machine.delete_machine_link(found.index).await),
            other => Ok(Fate::NotOurs(format!(
                "unconfirmed, and a {} rather than a {kind}",
                other.as_deref().unwrap_or("device of no kind")
            ))),
        },
    }
}

/// Put a sysctl back, unless someone changed it since the lab set it.
async fn restore_sysctl(machine: &mut dyn Teardown, key: &str, old: &str) -> io::Result<Fate> {
    let now = machine.read_machine_sysctl(key).await?;
    if now == old {
        return Ok(Fate::Gone);
    }
    if now != "1" {
        return Ok(Fate::NotOurs(format!("it was changed to {now} since the lab set it to 1")));
    }
    machine.write_machine_sysctl(key, old).await?;
    Ok(Fate::Removed)
}
