//! Taking a lab down: remove exactly what its journal says it owns, in
//! reverse order of creation, tolerating objects that are already gone and
//! leaving alone any object that is no longer the one the lab created (a
//! namespace or link someone replaced by hand under the same name). The
//! same code serves `nsw down` and the rollback of a failed run.
//!
//! Objects inside the lab's own namespaces go with their namespace (the
//! kernel removes its links, addresses, routes and rules in one sweep, far
//! faster than one by one); only what lives in the machine's namespace is
//! removed object by object.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Result, bail};
use ipnet::IpNet;

use crate::backend::kernel::{netlink, netns, nft, sysctl};
use crate::journal::{LabRecord, Mode, NetnsRef, Object, Owned};

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
pub async fn teardown(record: &LabRecord, force: bool) -> Result<Report> {
    let mut report = Report::default();
    let machine_objects: Vec<&Owned> = record.objects.iter().rev().filter(|o| o.object.netns() == NetnsRef::Machine).collect();
    let mut elsewhere = false;
    if !machine_objects.is_empty() || record.info.mode == Mode::HostNet {
        let here = netns::current_inode()?;
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
    } else if !machine_objects.is_empty() {
        remove_from_machine(&machine_objects, &mut report).await?;
    }
    let mut seen = HashSet::new();
    for owned in record.objects.iter().rev() {
        if let Object::Netns { name, .. } = &owned.object {
            if seen.insert(name.clone()) {
                report.note(format!("netns {name}"), remove_netns(name, owned.ident));
            }
        }
    }
    Ok(report)
}

/// Unmount a lab namespace, if it is still the one the lab created.
fn remove_netns(name: &str, inode: Option<u64>) -> io::Result<Fate> {
    match (netns::inode_at(name)?, inode) {
        (None, _) => {
            // Nothing mounted; a mount point left by a crash may remain.
            netns::delete_named(name)?;
            Ok(Fate::Gone)
        }
        (Some(now), Some(ours)) if now != ours => {
            Ok(Fate::NotOurs(format!("it is another namespace now (inode {now}, the lab's was {ours})")))
        }
        // Ours, or never confirmed (nsw died between creating and
        // recording it): a namespace of the lab's own name.
        _ => netns::delete_named(name).map(|_| Fate::Removed),
    }
}

async fn remove_from_machine(objects: &[&Owned], report: &mut Report) -> Result<()> {
    let machine = Arc::new(netns::open_current()?);
    let handle = netlink::connect(&machine)?;
    for owned in objects {
        let what = owned.object.to_string();
        let outcome = match &owned.object {
            Object::Route { destination, via, .. } => match (destination.parse::<IpNet>(), via.parse::<IpAddr>()) {
                (Ok(d), Ok(v)) => gone_is_fine(netlink::delete_route(&handle, d, v).await),
                _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unreadable route in the journal")),
            },
            Object::Sysctl { key, old, .. } => restore_sysctl(&machine, key, old),
            Object::NftTable { name, .. } => match nft::apply(machine.clone(), nft::delete_table_batch(name)).await {
                Ok(()) => Ok(Fate::Removed),
                Err(e) if e.to_string().contains("No such file or directory") => Ok(Fate::Gone),
                Err(e) => Err(e),
            },
            Object::Link { name, kind, .. } => match netlink::index_of(&handle, name).await {
                Ok(index) if owned.ident.is_some_and(|ours| ours != index as u64) => Ok(Fate::NotOurs(format!(
                    "it is another link now (index {index}, the lab's was {})",
                    owned.ident.unwrap_or_default()
                ))),
                Ok(index) if owned.ident.is_none() => {
                    // Never confirmed (nsw stopped between asking the kernel
                    // and recording its answer): remove it only if it is at
                    // least the kind of link the lab asked for.
                    match netlink::kind_of(&handle, index).await? {
                        Some(found) if found == *kind => gone_is_fine(netlink::delete_link(&handle, index).await),
                        found => Ok(Fate::NotOurs(format!(
                            "unconfirmed, and a {} rather than a {kind}",
                            found.as_deref().unwrap_or("device of no kind")
                        ))),
                    }
                }
                Ok(index) => gone_is_fine(netlink::delete_link(&handle, index).await),
                Err(e) if is_gone(&e) => Ok(Fate::Gone),
                Err(e) => Err(e),
            },
            // Addresses live on the lab's links and go with them.
            Object::Address { .. } => continue,
            Object::Netns { .. } => continue,
        };
        report.note(what, outcome);
    }
    Ok(())
}

/// Put a sysctl back, unless someone changed it since the lab set it.
fn restore_sysctl(machine: &std::os::fd::OwnedFd, key: &str, old: &str) -> io::Result<Fate> {
    let now = sysctl::read(machine, key)?;
    if now == old {
        return Ok(Fate::Gone);
    }
    if now != "1" {
        return Ok(Fate::NotOurs(format!("it was changed to {now} since the lab set it to 1")));
    }
    sysctl::write(machine, key, old)?;
    Ok(Fate::Removed)
}
