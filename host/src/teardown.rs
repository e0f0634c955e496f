//! Taking a lab down: remove exactly what its journal says it owns, in
//! reverse order of creation, tolerating objects that are already gone.
//! The same code serves `nsw down` and the rollback of a failed run.
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
use crate::journal::{LabRecord, Mode, NetnsRef, Object};

/// What a teardown did.
#[derive(Debug, Default)]
pub struct Report {
    pub removed: Vec<String>,
    pub already_gone: Vec<String>,
    pub failed: Vec<String>,
}

impl Report {
    fn note(&mut self, what: String, outcome: io::Result<bool>) {
        match outcome {
            Ok(true) => self.removed.push(what),
            Ok(false) => self.already_gone.push(what),
            Err(e) => self.failed.push(format!("{what}: {}", crate::error::errno_text(&e))),
        }
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL))
}

/// `Ok(false)` for "it was not there".
fn gone_is_fine(outcome: io::Result<()>) -> io::Result<bool> {
    match outcome {
        Ok(()) => Ok(true),
        Err(e) if is_gone(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove everything `record` owns.
pub async fn teardown(record: &LabRecord) -> Result<Report> {
    let mut report = Report::default();
    let machine_objects: Vec<&Object> =
        record.objects.iter().rev().map(|o| &o.object).filter(|o| o.netns() == NetnsRef::Machine).collect();
    if !machine_objects.is_empty() || record.info.mode == Mode::HostNet {
        let here = netns::current_inode()?;
        if here != record.info.machine_netns {
            bail!(
                "lab {} was built in another network namespace (inode {}, this is {here}); run nsw down there",
                record.info.name,
                record.info.machine_netns
            );
        }
    }
    if !machine_objects.is_empty() {
        remove_from_machine(&machine_objects, &mut report).await?;
    }
    let namespaces: Vec<&str> = record.namespaces().map(|(name, _)| name).collect();
    let mut seen = HashSet::new();
    for name in namespaces.into_iter().rev() {
        if seen.insert(name) {
            report.note(format!("netns {name}"), netns::delete_named(name));
        }
    }
    Ok(report)
}

async fn remove_from_machine(objects: &[&Object], report: &mut Report) -> Result<()> {
    let machine = Arc::new(netns::open_current()?);
    let handle = netlink::connect(&machine)?;
    for object in objects {
        let what = object.to_string();
        let outcome = match object {
            Object::Route { destination, via, .. } => match (destination.parse::<IpNet>(), via.parse::<IpAddr>()) {
                (Ok(d), Ok(v)) => gone_is_fine(netlink::delete_route(&handle, d, v).await),
                _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unreadable route in the journal")),
            },
            Object::Sysctl { key, old, .. } => sysctl::write(&machine, key, old).map(|()| true),
            Object::NftTable { name, .. } => match nft::apply(machine.clone(), nft::delete_table_batch(name)).await {
                Ok(()) => Ok(true),
                Err(e) if e.to_string().contains("No such file or directory") => Ok(false),
                Err(e) => Err(e),
            },
            Object::Link { name, .. } => match netlink::index_of(&handle, name).await {
                Ok(index) => gone_is_fine(netlink::delete_link(&handle, index).await),
                Err(e) if is_gone(&e) => Ok(false),
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
