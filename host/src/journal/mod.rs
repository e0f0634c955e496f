//! The per-lab journal under `/run/nsw/`: a write-ahead record of every
//! kernel object a lab creates. `nsw down`, `nsw ls` and rollback all read
//! it; nothing else tells nsw what a lab owns.
//!
//! One JSON object per line, appended with a single `write` each. An object
//! is recorded before it is created, so after a crash the journal covers
//! everything that may exist. No fsync: a written line is in the kernel's
//! page cache the moment `write` returns, so it survives the death of the
//! nsw process (kill -9 included); only a crash of the whole machine could
//! lose it, and that takes every namespace, link and rule with it (on the
//! next boot, `down` finds them already gone).

mod record;
mod state_dir;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use crate::policy::Mode;
pub use record::{LabRecord, OwnedObject};
pub use state_dir::{IdRange, LabLock, StateDir};

/// A network namespace as the journal names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetnsRef {
    /// The namespace nsw ran in (host-net labs only).
    Machine,
    /// A namespace the lab created, by its name under /run/netns.
    Named(String),
}

impl std::fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsRef::Machine => f.write_str("the machine's namespace"),
            NetnsRef::Named(name) => write!(f, "netns {name}"),
        }
    }
}

/// Which of the lab's tables in a namespace: both are called `nsw-<lab>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableFamily {
    /// `inet`: NAT and filtering, IPv4 and IPv6.
    Inet,
    /// `netdev`: per-link ingress hooks (the loss of a link's conditions
    /// where the kernel has no netem).
    Netdev,
}

impl TableFamily {
    pub fn name(self) -> &'static str {
        match self {
            TableFamily::Inet => "inet",
            TableFamily::Netdev => "netdev",
        }
    }

    pub fn parse(name: &str) -> Option<TableFamily> {
        match name {
            "inet" => Some(TableFamily::Inet),
            "netdev" => Some(TableFamily::Netdev),
            _ => None,
        }
    }
}

/// What kind of link the lab made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// One end of a veth pair.
    Veth,
    Bridge,
    /// The uplink's tap device, made by pasta.
    Tun,
    /// One end of a link between machines (see `backend::Tunnel`).
    Vxlan,
}

impl LinkKind {
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Veth => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Tun => "tun",
            LinkKind::Vxlan => "vxlan",
        }
    }
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A setting of a link the journal keeps for `nsw link --show` (see
/// [`Entry::Set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// Its conditions (rate, delay, loss...), as a JSON object.
    Conditions,
    /// `"down"` after a failure (`set-down`).
    State,
    Mtu,
    Mac,
}

/// A kernel object a lab owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Object {
    Netns { name: String, node: String },
    Link {
        netns: NetnsRef,
        name: String,
        kind: LinkKind,
        /// A veth end's other end, by its journal id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<u32>,
    },
    Address { netns: NetnsRef, link: String, cidr: String },
    Route { netns: NetnsRef, destination: String, via: String },
    /// The lab's nftables table; its identity is a marker chain
    /// `nsw-owner-<ident>` created with it, in one transaction.
    NftTable { netns: NetnsRef, family: TableFamily, name: String },
    Sysctl { netns: NetnsRef, key: String, old: String },
    /// The lab's hold on a setting of the machine that labs share (IPv4
    /// forwarding): the last lab to let go puts it back (see
    /// [`crate::shared_settings`]).
    SharedSetting { key: String },
    /// A process the lab started (pasta, for the uplink); its identity is
    /// its pid and start time.
    Process { netns: NetnsRef, program: String },
}

impl Object {
    /// The namespace the object lives in (a netns lives in itself).
    pub fn netns(&self) -> NetnsRef {
        match self {
            Object::Netns { name, .. } => NetnsRef::Named(name.clone()),
            Object::Link { netns, .. }
            | Object::Address { netns, .. }
            | Object::Route { netns, .. }
            | Object::NftTable { netns, .. }
            | Object::Sysctl { netns, .. }
            | Object::Process { netns, .. } => netns.clone(),
            Object::SharedSetting { .. } => NetnsRef::Machine,
        }
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Netns { name, .. } => write!(f, "netns {name}"),
            Object::Link { netns, name, kind, .. } => write!(f, "{kind} {name} in {netns}"),
            Object::Address { netns, link, cidr } => write!(f, "address {cidr} on {link} in {netns}"),
            Object::Route { netns, destination, via } => write!(f, "route {destination} via {via} in {netns}"),
            Object::NftTable { netns, family, name } => write!(f, "nftables table {} {name} in {netns}", family.name()),
            Object::Sysctl { netns, key, old } => write!(f, "sysctl {key} (was {old}) in {netns}"),
            Object::SharedSetting { key } => write!(f, "the lab's hold on sysctl {key} of the machine"),
            Object::Process { netns, program } => write!(f, "process {program} in {netns}"),
        }
    }
}

/// Where a lab is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabState {
    Building,
    Up,
    Failed,
    TearingDown,
}

/// The first line of a journal: what the lab is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabInfo {
    pub name: String,
    pub mode: Mode,
    pub grants: Vec<String>,
    /// Inode of the namespace nsw ran in: `down` of a host-net lab must run
    /// there too.
    pub machine_netns: u64,
    pub pid: u32,
    pub script: String,
    pub started_unix: u64,
    /// For a lab across machines, set in each machine's part: the cluster
    /// store it belongs to, by its URLs (an agent reaps a part whose lab
    /// the store no longer holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Entry {
    Lab(LabInfo),
    /// Written before the object is created. `ident` is the identity nsw
    /// chose for it beforehand, where the kernel lets it choose (the index
    /// of a link in the machine's namespace, the nonce of an nftables
    /// table): even if nsw dies before the kernel answers, `down` can tell
    /// the object from one someone else made under the same name.
    Create {
        id: u32,
        object: Object,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ident: Option<u64>,
    },
    /// The object exists now. `ident` is its kernel identity where it has
    /// one (a namespace's inode, a link's index, a process's pid), so that
    /// `down` never removes a same-named object someone else put in its
    /// place; `since` is a process's start time (clock ticks after boot),
    /// so that a reused pid is never taken for it.
    Created {
        id: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ident: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Creating it failed: it does not exist.
    Failed { id: u32 },
    /// It is gone by itself (a process that ended).
    Gone { id: u32 },
    /// A link moved to another namespace, where it has index `ident`.
    /// Into the machine's namespace it is written before the move, with
    /// the index nsw asks for (and written back if the move fails).
    Moved {
        id: u32,
        netns: NetnsRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ident: Option<u64>,
    },
    State { state: LabState },
    /// A setting of one of the lab's links changed, to `value` (null, or
    /// an empty string as older nsw wrote it: back to the default). Only a
    /// record for `nsw link --show`: the setting goes with its link.
    Set { id: u32, key: Setting, value: serde_json::Value },
}

/// An open journal: the lab's record on disk, appended to one line at a
/// time, and the same record in memory (so the lab's lifecycle never reads
/// back what it wrote).
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    next_id: u32,
    record: LabRecord,
    /// Lines written so far (the crash tests' kill hook counts them).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    lines: u64,
    /// The journal's size on disk.
    bytes: u64,
}

impl Journal {
    /// Record that `object` is about to be created; returns its id.
    pub fn record_intent(&mut self, object: Object) -> Result<u32> {
        self.record_intent_as(object, None)
    }

    /// Record that `object` is about to be created with the identity
    /// `ident`, chosen beforehand; returns its id.
    pub fn record_intent_as(&mut self, object: Object, ident: Option<u64>) -> Result<u32> {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).context("the journal ran out of ids")?;
        self.append(Entry::Create { id, object, ident })?;
        Ok(id)
    }

    /// The id the next intent will get.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Bytes written so far, this session: the lab's journal has a cap.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Append one entry, on disk first, then in memory.
    pub fn append(&mut self, entry: Entry) -> Result<()> {
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::before_journal_line(self.lines);
        self.lines += 1;
        let mut line = serde_json::to_string(&entry)?;
        line.push('\n');
        // One write per line: O_APPEND keeps lines whole.
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.bytes += line.len() as u64;
        self.record.apply(entry);
        Ok(())
    }

    /// The lab as its journal says so far.
    pub fn record(&self) -> &LabRecord {
        &self.record
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
