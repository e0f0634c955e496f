//! The kernel backend's removing side: what `nsw down` and a rolled-back
//! run remove, found by what the journal recorded and checked against the
//! kernel before anything goes.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use super::{KernelBackend, netlink, netns, nft, process, sysctl};
use crate::backend::rules::TableFamily;
use crate::backend::{FoundLink, ProcessId, Removal, Teardown};

#[async_trait]
impl Teardown for KernelBackend {
    fn machine_inode(&self) -> io::Result<u64> {
        netns::current_inode()
    }

    async fn netns_inode(&mut self, name: &str) -> io::Result<Option<u64>> {
        netns::inode_at(name)
    }

    async fn delete_netns(&mut self, name: &str) -> io::Result<bool> {
        netns::delete_named(name)
    }

    async fn netns_owner(&mut self, name: &str) -> io::Result<Option<u64>> {
        match netns::open_named(name) {
            Ok(fd) => netns::owner_of(fd.as_fd()).map(Some),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidData) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn netns_names(&mut self) -> io::Result<Vec<String>> {
        let dir = match std::fs::read_dir(&crate::places::get().netns) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(dir.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
    }

    async fn process_owner(&mut self, pid: u32) -> io::Result<Option<u64>> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(format!("/proc/{pid}/ns/user")) {
            Ok(meta) => Ok(Some(meta.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn stop_processes_in(&mut self, inodes: &[u64], grace: Duration) -> io::Result<Vec<(u64, String)>> {
        let inodes: std::collections::HashSet<u64> = inodes.iter().copied().collect();
        tokio::task::spawn_blocking(move || process::stop_all_in_netns(&inodes, grace)).await.map_err(io::Error::other)?
    }

    async fn stop_processes_with_uids(&mut self, uids: std::ops::Range<u32>, grace: Duration) -> io::Result<Vec<String>> {
        let stopped = tokio::task::spawn_blocking(move || process::stop_all(|| process::with_uids(uids.clone()), grace)).await.map_err(io::Error::other)??;
        Ok(stopped.into_iter().map(|(id, comm)| format!("{comm} (pid {})", id.pid)).collect())
    }

    async fn end_lab_tasks(&mut self, lab: &str, grace: Duration) -> io::Result<Vec<String>> {
        let lab = lab.to_string();
        tokio::task::spawn_blocking(move || super::cgroup::end(&lab, grace)).await.map_err(io::Error::other)?
    }

    async fn stop_process(&mut self, id: ProcessId, grace: Duration) -> io::Result<Removal> {
        let stopped = tokio::task::spawn_blocking(move || process::stop(id, grace)).await.map_err(io::Error::other)??;
        Ok(if stopped { Removal::Removed } else { Removal::Gone })
    }

    async fn machine_link(&mut self, name: &str) -> io::Result<Option<FoundLink>> {
        let (_, handle) = self.machine()?;
        match netlink::index_of(&handle, name).await {
            Ok(index) => Ok(Some(FoundLink { index, kind: netlink::kind_of(&handle, index).await? })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_machine_link(&mut self, index: u32) -> io::Result<()> {
        let (_, handle) = self.machine()?;
        netlink::delete_link(&handle, index).await
    }

    async fn delete_machine_route(&mut self, destination: IpNet, via: IpAddr) -> io::Result<()> {
        let (_, handle) = self.machine()?;
        netlink::delete_route(&handle, destination, via).await
    }

    async fn delete_machine_nft_table(&mut self, family: TableFamily, name: &str, nonce: Option<u64>) -> io::Result<Removal> {
        let (fd, _) = self.machine()?;
        let batch = match nonce {
            Some(nonce) => nft::delete_owned_table_batch(family, name, nonce),
            None => nft::delete_table_batch(family, name),
        };
        match nft::apply(fd.clone(), batch).await {
            Ok(()) => Ok(Removal::Removed),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let table = name.to_string();
                if netns::run_in_async(fd, move || nft::table_exists_here(family, &table)).await? {
                    Ok(Removal::NotOurs("it lacks the lab's marker: another table of the same name".into()))
                } else {
                    Ok(Removal::Gone)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn read_machine_sysctl(&mut self, key: &str) -> io::Result<String> {
        let (fd, _) = self.machine()?;
        sysctl::read(&fd, key)
    }

    async fn write_machine_sysctl(&mut self, key: &str, value: &str) -> io::Result<()> {
        let (fd, _) = self.machine()?;
        sysctl::write(&fd, key, value)
    }

    async fn machine_sysctl_tree(&mut self, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
        let (fd, _) = self.machine()?;
        sysctl::tree(&fd, roots)
    }
}
