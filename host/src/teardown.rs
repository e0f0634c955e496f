//! Taking a lab down: remove exactly what its journal says it owns, in
//! reverse order of creation, tolerating objects that are already gone and
//! leaving alone any object that is not provably the one the lab created.
//! The same code serves `nsw down` and the rollback of a failed run, on
//! any [`Teardown`] backend: the kernel, or the plan in the tests.
//!
//! What "provably" means, per object: a namespace by its inode; a link in
//! the machine's namespace by the index nsw chose (and journaled) before
//! making it; the lab's nftables table by its marker chain; a process by
//! its pid and start time; a shared setting by the registry of holds. An
//! object the journal has no identity for is never removed by name.
//!
//! Objects inside the lab's own namespaces go with their namespace (the
//! kernel removes its links, addresses, routes and rules in one sweep, far
//! faster than one by one), after every process still inside is stopped:
//! a process would keep the namespace alive, unseen.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use ipnet::IpNet;

use crate::backend::{ProcessId, Removal, Teardown};
use crate::journal::{LabRecord, NetnsRef, Object, OwnedObject};
use crate::policy::{Mode, ownership};
use crate::shared_settings::{Released, SharedSettings, Sysctls};

/// How long a process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// What a teardown did.
#[derive(Debug, Default)]
pub struct Report {
    pub removed: Vec<String>,
    pub already_gone: Vec<String>,
    /// Not the lab's any more (replaced by hand), or not provably the
    /// lab's: not touched.
    pub left_alone: Vec<String>,
    /// In a machine namespace this process is not in (`--force`): not
    /// touched, and no longer recorded.
    pub forgotten: Vec<String>,
    /// Processes that were still running inside the lab's namespaces.
    pub stopped: Vec<String>,
    pub failed: Vec<String>,
}

impl Report {
    /// One line: what was removed, what was already gone, what was left.
    pub fn summary(&self) -> String {
        let count = |n: usize| if n == 1 { "1 object".to_string() } else { format!("{n} objects") };
        let mut line = format!("removed {}", count(self.removed.len()));
        if !self.stopped.is_empty() {
            let n = self.stopped.len();
            line += &format!(", stopped {n} process{} inside", if n == 1 { "" } else { "es" });
        }
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

    fn note(&mut self, what: String, outcome: io::Result<Removal>) {
        match outcome {
            Ok(Removal::Removed) => self.removed.push(what),
            Ok(Removal::Gone) => self.already_gone.push(what),
            Ok(Removal::NotOurs(why)) => self.left_alone.push(format!("{what}: {why}")),
            Err(e) => self.failed.push(format!("{what}: {}", crate::error::errno_text(&e))),
        }
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL))
}

fn gone_is_fine(outcome: io::Result<()>) -> io::Result<Removal> {
    match outcome {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if is_gone(&e) => Ok(Removal::Gone),
        Err(e) => Err(e),
    }
}


/// Remove everything `record` owns. Objects in the machine's namespace
/// are removed only from that namespace; with `force`, from anywhere else
/// they are forgotten instead (the namespace may be gone for good).
/// `state_dir` holds the registry of shared settings. `inside`: the user
/// namespace (inode) of a lab built behind the privilege boundary
/// ([`crate::boundary`]): its journal was written from there, so only what
/// lies inside that user namespace is the lab's.
/// `lab_ids`: the first of the ids root reserved for such a lab: every
/// process with one of them is the lab's, wherever it went (a new user or
/// network namespace of its own), and all of them stop first, together.
pub async fn remove_all(machine: &mut dyn Teardown, record: &LabRecord, force: bool, state_dir: &Path, inside: Option<u64>, lab_ids: Option<u32>) -> Result<Report> {
    let mut report = Report::default();
    // Every process in the lab's cgroup, wherever it went; then those of
    // its ids (started before the lab had a cgroup, or where there is none).
    match machine.end_lab_tasks(&record.info.name, GRACE).await {
        Ok(stopped) => report.stopped.extend(stopped.into_iter().map(|p| format!("{p}, of the lab's cgroup"))),
        Err(e) => report.failed.push(format!("the lab's cgroup: {}", crate::error::errno_text(&e))),
    }
    if let Some(first) = lab_ids {
        match machine.stop_processes_with_uids(crate::naming::lab_ids(first), GRACE).await {
            Ok(stopped) => report.stopped.extend(stopped.into_iter().map(|p| format!("{p}, of the lab's ids"))),
            Err(e) => report.failed.push(format!("the lab's processes: {}", crate::error::errno_text(&e))),
        }
    }
    // Processes first: pasta goes before the namespace it serves. The
    // lab's init first of them: everything in the lab's PID namespace ends
    // with it, in one grace period (the rest are gone by then).
    let mut processes: Vec<&OwnedObject> = record.objects.iter().rev().filter(|o| matches!(o.object, Object::Process { .. })).collect();
    processes.sort_by_key(|o| !matches!(&o.object, Object::Process { program, .. } if program == crate::naming::LAB_INIT));
    for owned in processes {
        if let Object::Process { program, .. } = &owned.object {
            let what = owned.object.to_string();
            match (owned.ident, owned.since) {
                (Some(pid), Some(since)) => {
                    let outcome = match inside {
                        Some(userns) => match machine.process_owner(pid as u32).await {
                            Ok(owner) => match ownership::process_outside(owner, userns) {
                                Some(why) => Ok(Removal::NotOurs(why.into())),
                                None => machine.stop_process(ProcessId { pid: pid as u32, since }, GRACE).await,
                            },
                            Err(e) => Err(e),
                        },
                        None => machine.stop_process(ProcessId { pid: pid as u32, since }, GRACE).await,
                    };
                    report.note(format!("{what} (pid {pid})"), outcome);
                }
                // Never started, or nsw died before it learned the pid: a
                // pid is never guessed. (pasta quits by itself once its
                // namespace is gone.)
                _ => report.note(what, Ok(Removal::NotOurs(format!("{program}'s pid was never recorded")))),
            }
        }
    }
    let in_machine: Vec<&OwnedObject> = record
        .objects
        .iter()
        .rev()
        .filter(|o| o.object.netns() == NetnsRef::Machine && !matches!(o.object, Object::Process { .. }))
        .collect();
    if let Some(why) = ownership::machine_object_outside(inside) {
        for owned in in_machine.iter().filter(|o| !matches!(o.object, Object::Address { .. })) {
            report.note(owned.object.to_string(), Ok(Removal::NotOurs(why.into())));
        }
    }
    let in_machine: Vec<&OwnedObject> = if inside.is_some() { Vec::new() } else { in_machine };
    let mut elsewhere = false;
    if !in_machine.is_empty() || (record.info.mode == Mode::HostNet && inside.is_none()) {
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
        report.forgotten.extend(in_machine.iter().filter(|o| !matches!(o.object, Object::Address { .. })).map(|o| o.object.to_string()));
    } else {
        let shared = SharedSettings::new(state_dir, record.info.machine_netns);
        for owned in in_machine {
            if let Some(outcome) = remove_from_machine(machine, owned, &record.info.name, &shared).await {
                report.note(owned.object.to_string(), outcome);
            }
        }
    }
    // The lab's namespaces, newest first: which are still the lab's; then
    // what runs in any of them is stopped, in one pass over /proc for all
    // (a pass per namespace costs seconds at a thousand nodes); then they go.
    let mut seen = HashSet::new();
    let mut namespaces = Vec::new();
    for owned in record.objects.iter().rev() {
        if let Object::Netns { name, .. } = &owned.object {
            if seen.insert(name.clone()) {
                let found = match inside {
                    Some(userns) => match outside_of(machine, name, &record.info.name, userns).await {
                        Ok(Some(why)) => Ok(NetnsState::Outside(why)),
                        Ok(None) => netns_state(machine, name, owned.ident).await,
                        Err(e) => Err(e),
                    },
                    None => netns_state(machine, name, owned.ident).await,
                };
                namespaces.push((name.clone(), found));
            }
        }
    }
    // Behind the boundary the lab's side could have had namespaces mounted
    // that its journal never named: one of the lab's names owned by its
    // user namespace is provably the lab's.
    if let Some(userns) = inside {
        let lab = &record.info.name;
        for name in machine.netns_names().await?.into_iter().filter(|n| crate::naming::netns_of_lab(n, lab)) {
            if seen.contains(&name) || machine.netns_owner(&name).await? != Some(userns) {
                continue;
            }
            if let Some(inode) = machine.netns_inode(&name).await? {
                seen.insert(name.clone());
                namespaces.push((name, Ok(NetnsState::Ours(inode))));
            }
        }
    }
    let ours: Vec<u64> = namespaces.iter().filter_map(|(_, found)| match found {
        Ok(NetnsState::Ours(inode)) => Some(*inode),
        _ => None,
    }).collect();
    let stopped = if ours.is_empty() { Ok(Vec::new()) } else { machine.stop_processes_in(&ours, GRACE).await };
    let stopped = match stopped {
        Ok(stopped) => stopped,
        Err(e) => {
            // Nothing is unmounted while something may still run inside.
            let why = e.to_string();
            namespaces.iter_mut().filter(|(_, f)| matches!(f, Ok(NetnsState::Ours(_)))).for_each(|(_, f)| *f = Err(io::Error::new(e.kind(), why.clone())));
            Vec::new()
        }
    };
    for (name, found) in namespaces {
        if let Ok(NetnsState::Ours(inode)) = &found {
            report.stopped.extend(stopped.iter().filter(|(i, _)| i == inode).map(|(_, process)| format!("{process} in netns {name}")));
        }
        let outcome = match found {
            Ok(state) => remove_netns(machine, &name, state).await,
            Err(e) => Err(e),
        };
        // What lived inside went (or was gone) with it: counted too, so
        // that the report adds up to what the lab had.
        let inside = NetnsRef::Named(name.clone());
        let with_it: Vec<String> = record
            .objects
            .iter()
            .filter(|o| o.object.netns() == inside && !matches!(o.object, Object::Netns { .. }))
            .map(|o| format!("{} (with its namespace)", o.object))
            .collect();
        match &outcome {
            Ok(Removal::Removed) => report.removed.extend(with_it),
            Ok(Removal::Gone) => report.already_gone.extend(with_it),
            _ => {}
        }
        report.note(format!("netns {name}"), outcome);
    }
    Ok(report)
}

/// What a lab namespace's name stands for now.
enum NetnsState {
    /// Nothing is mounted there.
    Absent,
    /// The lab's namespace (by inode), or one never confirmed: a namespace
    /// of the lab's own name, which only the lab creates (exclusively)
    /// under its lock, when nsw died between creating and recording it.
    Ours(u64),
    /// Someone else's: its inode, and the lab's.
    Another { now: u64, ours: u64 },
    /// Not the lab's to remove (behind the boundary): why.
    Outside(String),
}

/// Why the namespace `name` is not for a lab behind the boundary to
/// remove (the policy's verdict on what the backend finds).
async fn outside_of(machine: &mut dyn Teardown, name: &str, lab: &str, userns: u64) -> io::Result<Option<String>> {
    let owner = if crate::naming::netns_of_lab(name, lab) { machine.netns_owner(name).await? } else { None };
    Ok(ownership::netns_outside(name, lab, owner, userns))
}

async fn netns_state(machine: &mut dyn Teardown, name: &str, inode: Option<u64>) -> io::Result<NetnsState> {
    Ok(match (machine.netns_inode(name).await?, inode) {
        (None, _) => NetnsState::Absent,
        (Some(now), Some(ours)) if now != ours => NetnsState::Another { now, ours },
        (Some(now), _) => NetnsState::Ours(now),
    })
}

/// Unmount a lab namespace (what ran inside is stopped by now), if it is
/// still the one the lab created.
async fn remove_netns(machine: &mut dyn Teardown, name: &str, state: NetnsState) -> io::Result<Removal> {
    match state {
        NetnsState::Absent => {
            // Nothing mounted; a mount point left by a crash may remain.
            machine.delete_netns(name).await?;
            Ok(Removal::Gone)
        }
        NetnsState::Another { now, ours } => Ok(Removal::NotOurs(format!("it is another namespace now (inode {now}, the lab's was {ours})"))),
        NetnsState::Outside(why) => Ok(Removal::NotOurs(why)),
        NetnsState::Ours(_) => machine.delete_netns(name).await.map(|_| Removal::Removed),
    }
}

/// Remove one object of the machine's namespace; `None` for objects that
/// go with another (an address with its link).
async fn remove_from_machine(machine: &mut dyn Teardown, owned: &OwnedObject, lab: &str, shared: &SharedSettings) -> Option<io::Result<Removal>> {
    Some(match &owned.object {
        Object::Route { destination, via, .. } if owned.confirmed => match (destination.parse::<IpNet>(), via.parse::<IpAddr>()) {
            (Ok(d), Ok(v)) => gone_is_fine(machine.delete_machine_route(d, v).await),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unreadable route in the journal")),
        },
        // Never confirmed: not provably the lab's. Its gateway lies on one
        // of the lab's links, so the kernel drops it with that link.
        Object::Route { .. } => Ok(Removal::NotOurs("never confirmed; it goes with the lab's link".into())),
        Object::Sysctl { key, old, .. } => restore_sysctl(machine, key, old).await,
        Object::SharedSetting { key } => release_shared(machine, shared, lab, key).await,
        Object::NftTable { name, family, .. } => match (owned.ident, owned.confirmed) {
            (Some(nonce), _) => machine.delete_machine_nft_table(*family, name, Some(nonce)).await,
            // A journal of an older nsw: its table was confirmed by name.
            (None, true) => machine.delete_machine_nft_table(*family, name, None).await,
            (None, false) => Ok(Removal::NotOurs("never confirmed, and no marker recorded".into())),
        },
        Object::Link { name, .. } => remove_machine_link(machine, owned, name).await,
        // Addresses live on the lab's links and go with them.
        Object::Address { .. } | Object::Netns { .. } | Object::Process { .. } => return None,
    })
}

/// A link of the machine's namespace goes only if it still has the index
/// the journal holds for it (chosen before it was made).
async fn remove_machine_link(machine: &mut dyn Teardown, owned: &OwnedObject, name: &str) -> io::Result<Removal> {
    let Some(ours) = owned.ident else {
        return Ok(Removal::NotOurs("no identity was recorded for it, so it is never removed by name".into()));
    };
    let Some(found) = machine.machine_link(name).await? else { return Ok(Removal::Gone) };
    if ours != found.index as u64 {
        let how = if owned.confirmed { "it is another link now" } else { "never made by the lab (the name went to another link)" };
        return Ok(Removal::NotOurs(format!("{how}: index {}, the lab's was {ours}", found.index)));
    }
    gone_is_fine(machine.delete_machine_link(found.index).await)
}

/// Put a sysctl back, unless someone changed it since the lab set it
/// (journals of older nsw versions: newer ones hold shared settings).
async fn restore_sysctl(machine: &mut dyn Teardown, key: &str, old: &str) -> io::Result<Removal> {
    let now = machine.read_machine_sysctl(key).await?;
    if now == old {
        return Ok(Removal::Gone);
    }
    if now != "1" {
        return Ok(Removal::NotOurs(format!("it was changed to {now} since the lab set it to 1")));
    }
    machine.write_machine_sysctl(key, old).await?;
    Ok(Removal::Removed)
}

/// Let go of the lab's hold on a shared setting of the machine.
async fn release_shared(machine: &mut dyn Teardown, shared: &SharedSettings, lab: &str, key: &str) -> io::Result<Removal> {
    let mut sysctls = MachineSysctls(machine);
    match shared.release(lab, key, &mut sysctls).await.map_err(|e| io::Error::other(format!("{e:#}")))? {
        Released::Restored => Ok(Removal::Removed),
        Released::Nothing => Ok(Removal::Gone),
        Released::StillHeld(others) => Ok(Removal::NotOurs(format!(
            "{others} other lab{} still need{} it: it stays until the last one goes",
            if others == 1 { "" } else { "s" },
            if others == 1 { "s" } else { "" }
        ))),
        Released::ChangedByOthers(why) => Ok(Removal::NotOurs(why)),
    }
}

/// The machine's sysctls, through the teardown backend.
struct MachineSysctls<'a>(&'a mut dyn Teardown);

#[async_trait::async_trait]
impl Sysctls for MachineSysctls<'_> {
    async fn read(&mut self, key: &str) -> io::Result<String> {
        self.0.read_machine_sysctl(key).await
    }
    async fn write(&mut self, key: &str, value: &str) -> io::Result<()> {
        self.0.write_machine_sysctl(key, value).await
    }
    async fn tree(&mut self, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
        self.0.machine_sysctl_tree(roots).await
    }
}

/// Stop every process of a lab's ids (from `first`) wherever it is, even
/// outside the lab's namespaces, saying which were found: before its range
/// of ids is given to another lab.
pub fn sweep_ids(first: u32) -> std::io::Result<()> {
    let stopped = crate::backend::kernel::process::stop_all(|| crate::backend::kernel::process::with_uids(crate::naming::lab_ids(first)), GRACE)?;
    if !stopped.is_empty() {
        let names: Vec<String> = stopped.iter().map(|(id, comm)| format!("{comm} (pid {})", id.pid)).collect();
        crate::tell::say!("nsw: stopped {} process{} of the lab's ids left outside its namespaces: {}", names.len(), if names.len() == 1 { "" } else { "es" }, names.join(", "));
    }
    Ok(())
}

/// End lab `lab`'s cgroup (root, in place): every process in it stopped,
/// then the cgroup removed, saying which were found.
pub fn end_lab_tasks(lab: &str) -> std::io::Result<()> {
    let stopped = crate::backend::kernel::cgroup::end(lab, GRACE)?;
    if !stopped.is_empty() {
        crate::tell::say!("nsw: stopped {} process{} of the lab's cgroup: {}", stopped.len(), if stopped.len() == 1 { "" } else { "es" }, stopped.join(", "));
    }
    Ok(())
}
