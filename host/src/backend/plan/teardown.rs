//! The plan's removing side: teardown on the model, with every removal of
//! something the lab did not make recorded as a violation.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::backend::rules::TableFamily;
use super::{PlanBackend, err, inode_of, sh, tree_of, write_modelled_sysctl};
use crate::backend::{FoundLink, ProcessId, Removal, Teardown};

#[async_trait]
impl Teardown for PlanBackend {
    fn machine_inode(&self) -> io::Result<u64> {
        Ok(1)
    }

    async fn netns_inode(&mut self, name: &str) -> io::Result<Option<u64>> {
        let s = self.state.lock().unwrap();
        Ok(s.namespaces.iter().find(|(_, n)| n.name.as_deref() == Some(name)).map(|(id, _)| inode_of(*id)))
    }

    async fn delete_netns(&mut self, name: &str) -> io::Result<bool> {
        let mut s = self.state.lock().unwrap();
        let id = s.namespaces.iter().find(|(_, n)| n.name.as_deref() == Some(name)).map(|(id, _)| *id);
        let named = s.named.iter().any(|n| n == name);
        s.named.retain(|n| n != name);
        if let Some(id) = id {
            s.namespaces.remove(&id);
        }
        s.log.push(format!("ip netns delete {}", sh(name)));
        Ok(id.is_some() || named)
    }

    async fn stop_processes_in(&mut self, inodes: &[u64], _grace: Duration) -> io::Result<Vec<(u64, String)>> {
        let mut s = self.state.lock().unwrap();
        let mut stopped = Vec::new();
        for (id, space) in s.namespaces.iter_mut() {
            let inode = inode_of(*id);
            if inodes.contains(&inode) {
                stopped.extend(std::mem::take(&mut space.processes).into_iter().map(|(pid, comm)| (inode, format!("{comm} (pid {pid})"))));
            }
        }
        Ok(stopped)
    }

    async fn stop_process(&mut self, id: ProcessId, _grace: Duration) -> io::Result<Removal> {
        let mut s = self.state.lock().unwrap();
        let before = s.started.len();
        s.started.retain(|(p, _)| *p != id);
        Ok(if s.started.len() < before { Removal::Removed } else { Removal::Gone })
    }

    async fn machine_link(&mut self, name: &str) -> io::Result<Option<FoundLink>> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Ok(None) };
        Ok(machine.links.iter().find(|l| l.name == name).map(|l| FoundLink { index: l.index, kind: Some(l.kind.clone()) }))
    }

    async fn delete_machine_link(&mut self, index: u32) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ENODEV)) };
        let Some(at) = machine.links.iter().position(|l| l.index == index) else { return Err(err(libc::ENODEV)) };
        let link = machine.links.remove(at);
        machine.forget_routes_of(&link);
        machine.sysctls.retain(|k, _| !k.contains(&format!("/conf/{}/", link.name)));
        if !link.owned {
            s.violations.push(format!("teardown deleted {}, which the lab did not create", link.name));
        }
        s.log.push(format!("ip link delete dev {}", sh(&link.name)));
        Ok(())
    }

    async fn delete_machine_route(&mut self, destination: IpNet, via: IpAddr) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ESRCH)) };
        let Some(at) = machine.routes.iter().position(|(d, g, _)| *d == destination && *g == Some(via)) else {
            return Err(err(libc::ESRCH));
        };
        let (_, _, by_lab) = machine.routes.remove(at);
        if !by_lab {
            s.violations.push(format!("teardown deleted the machine's route to {destination}"));
        }
        s.log.push(format!("ip route delete {destination} via {via}"));
        Ok(())
    }

    async fn delete_machine_nft_table(&mut self, family: TableFamily, name: &str, nonce: Option<u64>) -> io::Result<Removal> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Ok(Removal::Gone) };
        let Some(at) = machine.tables.iter().position(|(f, t, _)| *f == family && t == name) else { return Ok(Removal::Gone) };
        if nonce.is_some_and(|n| machine.tables[at].2 != n) {
            return Ok(Removal::NotOurs("it lacks the lab's marker".into()));
        }
        machine.tables.remove(at);
        machine.table_changes.retain(|(f, table, _)| !(*f == family && table == name));
        s.log.push(format!("nft delete table {} {}", family.name(), sh(name)));
        Ok(Removal::Removed)
    }

    async fn read_machine_sysctl(&mut self, key: &str) -> io::Result<String> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ENOENT)) };
        Ok(machine.sysctls.get(key).cloned().unwrap_or_else(|| "0".into()))
    }

    async fn write_machine_sysctl(&mut self, key: &str, value: &str) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Err(err(libc::ENOENT)) };
        write_modelled_sysctl(machine, key, value);
        s.log.push(super::render::sysctl_line("", key, value));
        Ok(())
    }

    async fn machine_sysctl_tree(&mut self, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
        let mut s = self.state.lock().unwrap();
        let Some(machine) = s.machine_ns() else { return Ok(BTreeMap::new()) };
        Ok(tree_of(machine, roots))
    }
}

