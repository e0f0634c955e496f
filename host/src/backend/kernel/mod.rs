//! The kernel backend: rtnetlink for links, addresses and routes, nftables
//! for NAT, /proc/sys for forwarding, raw ICMP for pings, pasta for the
//! uplink's user-mode NAT.

pub mod capture;
pub mod cgroup;
pub mod netlink;
pub mod netns;
pub mod node_entry;
pub mod node_files;
pub mod node_fs;
pub mod nft;
pub mod peers;
pub mod pid_ns;
pub mod ping;
pub mod probes;
pub mod process;
pub mod spawn;
pub mod survey;
pub mod sysctl;
pub mod tc;
mod teardown;
pub mod tools;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use rtnetlink::Handle;

use super::rules::{LabTable, Queue, QueueFeatures, TableChange};
use super::{Backend, ConnectOutcome, Hop, LinkRef, NsId, PingStats, ProcessId, Throughput, Uplink};
use crate::stop::Stop;

/// A namespace the backend holds open: its fd keeps it reachable, its
/// netlink connection talks to it.
struct Namespace {
    fd: Arc<OwnedFd>,
    netlink: Handle,
    /// Name under /run/netns and inode, for namespaces we created.
    named: Option<(String, u64)>,
    /// The node's files and name, made with its first program.
    node: Option<Arc<node_fs::NodeNamespaces>>,
}

#[derive(Default)]
pub struct KernelBackend {
    namespaces: HashMap<NsId, Namespace>,
    /// The machine's namespace (the one nsw runs in), opened when teardown
    /// first needs it.
    machine: Option<(Arc<OwnedFd>, Handle)>,
    /// The lab's cgroup's `cgroup.procs`, opened with the first program
    /// (`Some(None)`: the lab has none).
    tasks: Option<Option<Arc<OwnedFd>>>,
    /// The lab's PID namespace, made before its first program or node.
    pids: Option<pid_ns::LabPids>,
}

impl KernelBackend {
    pub fn new() -> KernelBackend {
        KernelBackend::default()
    }

    /// Node `ns`'s own files and name, made with its first use.
    fn node_namespaces(&mut self, ns: NsId, identity: &super::NodeIdentity) -> io::Result<Arc<node_fs::NodeNamespaces>> {
        let entry = self.ns(ns)?;
        if let Some(made) = &entry.node {
            return Ok(made.clone());
        }
        let (fd, identity) = (entry.fd.clone(), identity.clone());
        let made = Arc::new(self.born_in_lab(move || node_fs::create(&fd, &identity))?);
        if let Some(entry) = self.namespaces.get_mut(&ns) {
            entry.node = Some(made.clone());
        }
        Ok(made)
    }

    /// The entry to the lab's cgroup, made (by root, in place) or opened
    /// (behind the boundary, where root made it before the split) with
    /// the first program. None for an ordinary user's lab.
    fn task_entry(&mut self, limit: &super::TaskLimit) -> io::Result<Option<Arc<OwnedFd>>> {
        if let Some(entry) = &self.tasks {
            return Ok(entry.clone());
        }
        cgroup::prepare(&limit.lab, limit.max, None)?;
        let entry = cgroup::entry(&limit.lab)?.map(Arc::new);
        self.tasks = Some(entry.clone());
        Ok(entry)
    }

    /// Run `fork` where what it forks is born in the lab's PID namespace,
    /// if the lab has one.
    fn born_in_lab<T: Send + 'static>(&self, fork: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
        match &self.pids {
            Some(pids) => pids.run(fork)?,
            None => fork(),
        }
    }

    fn ns(&self, id: NsId) -> io::Result<&Namespace> {
        self.namespaces
            .get(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("namespace #{id} is not open")))
    }

    fn add(&mut self, id: NsId, fd: OwnedFd, netlink: Handle, named: Option<(String, u64)>) {
        self.namespaces.insert(id, Namespace { fd: Arc::new(fd), netlink, named, node: None });
    }

    /// The machine's namespace and a netlink connection inside it.
    fn machine(&mut self) -> io::Result<(Arc<OwnedFd>, Handle)> {
        if self.machine.is_none() {
            let fd = netns::open_current()?;
            let handle = netlink::connect(&fd)?;
            self.machine = Some((Arc::new(fd), handle));
        }
        Ok(self.machine.clone().expect("opened above"))
    }
}

/// Poll `ready` until it says yes, `timeout` passes or `stop` is raised.
/// Kernel state usually settles within microseconds: poll at once a few
/// times before sleeping (tokio's timer would sleep a whole millisecond).
async fn poll_until<F, Fut, T>(timeout: Duration, stop: &Stop, mut ready: F) -> io::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut polls = 0u32;
    loop {
        if let Some(value) = ready().await? {
            return Ok(Some(value));
        }
        if tokio::time::Instant::now() >= deadline || stop.requested() {
            return Ok(None);
        }
        polls += 1;
        if polls < 20 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[async_trait]
impl Backend for KernelBackend {
    async fn adopt_machine(&mut self, id: NsId) -> io::Result<()> {
        let fd = netns::open_current()?;
        let netlink = netlink::connect(&fd)?;
        self.add(id, fd, netlink, None);
        Ok(())
    }

    async fn attach_netns(&mut self, id: NsId, name: &str, inode: u64) -> io::Result<()> {
        let fd = netns::open_named(name)?;
        if netns::inode(&fd)? != inode {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is another namespace now", netns::path_of(name).display())));
        }
        let netlink = netlink::connect(&fd)?;
        self.add(id, fd, netlink, Some((name.to_string(), inode)));
        Ok(())
    }

    async fn create_netns(&mut self, id: NsId, name: &str) -> io::Result<u64> {
        let (fd, socket) = netns::create_named(name, netlink::socket_here)?;
        let inode = netns::inode(&fd)?;
        self.add(id, fd, netlink::drive(socket), Some((name.to_string(), inode)));
        // A fresh namespace has `lo` down, and `lo` is always index 1.
        netlink::set_up(&self.ns(id)?.netlink, 1).await?;
        Ok(inode)
    }

    async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId, indexes: Option<(u32, u32)>) -> io::Result<(u32, u32)> {
        let here = self.ns(ns)?;
        let there = self.ns(peer_ns)?;
        let peer_fd = if ns == peer_ns { None } else { Some(&*there.fd) };
        netlink::create_veth(&here.netlink, name, peer, peer_fd, indexes).await?;
        if let Some(indexes) = indexes {
            return Ok(indexes);
        }
        let a = netlink::index_of(&here.netlink, name).await?;
        let b = netlink::index_of(&there.netlink, peer).await?;
        Ok((a, b))
    }

    async fn create_bridge(&mut self, name: &str, ns: NsId, index: Option<u32>) -> io::Result<u32> {
        let handle = &self.ns(ns)?.netlink;
        netlink::create_bridge(handle, name, index).await?;
        match index {
            Some(index) => Ok(index),
            None => netlink::index_of(handle, name).await,
        }
    }

    async fn create_tunnel(&mut self, name: &str, ns: NsId, tunnel: &crate::backend::Tunnel) -> io::Result<u32> {
        // Made by the machine's netlink: the device's UDP socket stays in
        // the machine's namespace, where the underlay is.
        let (_, machine) = self.machine()?;
        let there = self.ns(ns)?;
        netlink::create_vxlan(&machine, name, tunnel, &there.fd).await?;
        netlink::index_of(&there.netlink, name).await
    }

    async fn move_link(&mut self, link: &LinkRef, to: NsId, index: Option<u32>) -> io::Result<u32> {
        let from = self.ns(link.ns)?;
        let to = self.ns(to)?;
        netlink::move_link(&from.netlink, link.index, &to.fd, index).await?;
        netlink::index_of(&to.netlink, &link.name).await
    }

    async fn set_master(&mut self, port: &LinkRef, bridge: &LinkRef) -> io::Result<()> {
        netlink::set_master(&self.ns(port.ns)?.netlink, port.index, bridge.index).await
    }

    async fn set_up(&mut self, link: &LinkRef) -> io::Result<()> {
        netlink::set_up(&self.ns(link.ns)?.netlink, link.index).await
    }

    async fn set_down(&mut self, link: &LinkRef) -> io::Result<()> {
        netlink::set_down(&self.ns(link.ns)?.netlink, link.index).await
    }

    async fn set_mtu(&mut self, link: &LinkRef, mtu: u32) -> io::Result<()> {
        netlink::set_mtu(&self.ns(link.ns)?.netlink, link.index, mtu).await
    }

    async fn set_bridge_options(&mut self, bridge: &LinkRef, options: &crate::policy::bridges::BridgeOptions) -> io::Result<()> {
        netlink::set_bridge_options(&self.ns(bridge.ns)?.netlink, bridge.index, options).await
    }

    async fn set_port_cost(&mut self, port: &LinkRef, cost: u32) -> io::Result<()> {
        netlink::set_port_cost(&self.ns(port.ns)?.netlink, port.index, cost).await
    }

    async fn set_mac(&mut self, link: &LinkRef, mac: [u8; 6]) -> io::Result<()> {
        netlink::set_mac(&self.ns(link.ns)?.netlink, link.index, mac).await
    }

    async fn link_exists(&mut self, ns: NsId, name: &str) -> io::Result<bool> {
        match netlink::index_of(&self.ns(ns)?.netlink, name).await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn wait_link(&mut self, ns: NsId, name: &str, timeout: Duration, stop: &Stop) -> io::Result<Option<u32>> {
        let handle = self.ns(ns)?.netlink.clone();
        poll_until(timeout, stop, || {
            let handle = handle.clone();
            async move {
                match netlink::index_of(&handle, name).await {
                    Ok(index) => Ok(Some(index)),
                    Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    async fn link_is(&mut self, ns: NsId, index: u32, name: &str) -> io::Result<bool> {
        Ok(netlink::name_of(&self.ns(ns)?.netlink, index).await?.as_deref() == Some(name))
    }

    async fn wait_carrier_settled(&mut self, link: &LinkRef, timeout: Duration, stop: &Stop) -> io::Result<bool> {
        let handle = self.ns(link.ns)?.netlink.clone();
        let index = link.index;
        let up = poll_until(timeout, stop, || {
            let handle = handle.clone();
            async move { Ok(netlink::carrier_settled(&handle, index).await?.then_some(())) }
        })
        .await?;
        Ok(up.is_some())
    }

    async fn disable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()> {
        netlink::disable_ipv6_link_local(&self.ns(link.ns)?.netlink, link.index).await
    }

    async fn enable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()> {
        netlink::enable_ipv6_link_local(&self.ns(link.ns)?.netlink, link.index).await
    }

    async fn add_address(&mut self, link: &LinkRef, cidr: IpNet) -> io::Result<()> {
        netlink::add_address(&self.ns(link.ns)?.netlink, link.index, cidr).await
    }

    async fn link_addresses(&mut self, link: &LinkRef) -> io::Result<Vec<IpNet>> {
        survey::addresses_of(&self.ns(link.ns)?.netlink, link.index).await
    }

    async fn add_route(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> io::Result<()> {
        netlink::add_route(&self.ns(ns)?.netlink, destination, via).await
    }

    async fn add_multipath_route(&mut self, ns: NsId, destination: IpNet, hops: &[crate::policy::routes::NextHop]) -> io::Result<()> {
        netlink::add_multipath_route(&self.ns(ns)?.netlink, destination, hops).await
    }

    async fn read_sysctl(&mut self, ns: NsId, key: &str) -> io::Result<String> {
        sysctl::read(&self.ns(ns)?.fd, key)
    }

    async fn write_sysctl(&mut self, ns: NsId, key: &str, value: &str) -> io::Result<()> {
        sysctl::write(&self.ns(ns)?.fd, key, value)
    }

    async fn sysctl_tree(&mut self, ns: NsId, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
        sysctl::tree(&self.ns(ns)?.fd, roots)
    }

    async fn change_table(&mut self, ns: NsId, table: &LabTable, changes: &[TableChange]) -> io::Result<()> {
        nft::apply(self.ns(ns)?.fd.clone(), nft::change_batch(table, changes)).await
    }

    async fn set_queue(&mut self, link: &LinkRef, queue: Option<&Queue>) -> io::Result<()> {
        let (ifname, queue) = (link.name.clone(), queue.copied());
        netns::run_in_async(self.ns(link.ns)?.fd.clone(), move || tc::set_queue_here(&ifname, queue.as_ref())).await
    }

    async fn queue_features(&mut self) -> io::Result<QueueFeatures> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("nsw-probe".into()).spawn(move || {
            let _ = tx.send(tc::probe_features_here());
        })?;
        rx.await.unwrap_or_else(|_| Err(io::Error::other("the kernel probe thread panicked")))
    }

    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, timeout: Duration, interval: Duration, stop: &Stop) -> io::Result<PingStats> {
        let fd = self.ns(ns)?.fd.clone();
        let stop = stop.clone();
        netns::run_in_async(fd, move || ping::ping_here(target, count, timeout, interval, &stop)).await
    }

    async fn tcp_connect(&mut self, ns: NsId, to: std::net::SocketAddr, timeout: Duration, stop: &Stop) -> io::Result<(ConnectOutcome, Duration)> {
        let fd = self.ns(ns)?.fd.clone();
        let stop = stop.clone();
        netns::run_in_async(fd, move || probes::tcp_connect_here(to, timeout, &stop)).await
    }

    async fn throughput(&mut self, sender: NsId, receiver: NsId, address: IpAddr, duration: Duration, stop: &Stop) -> io::Result<Throughput> {
        let (from, to) = (self.ns(sender)?.fd.clone(), self.ns(receiver)?.fd.clone());
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || probes::throughput(from, to, address, duration, stop)).await.map_err(io::Error::other)?
    }

    async fn trace(&mut self, ns: NsId, target: IpAddr, stop: &Stop) -> io::Result<Vec<Hop>> {
        let fd = self.ns(ns)?.fd.clone();
        let stop = stop.clone();
        netns::run_in_async(fd, move || probes::trace_here(target, &stop)).await
    }

    async fn routes(&mut self, ns: NsId) -> io::Result<Vec<IpNet>> {
        netlink::route_prefixes(&self.ns(ns)?.netlink).await
    }

    async fn peers(&mut self, ns: NsId) -> io::Result<Vec<IpAddr>> {
        let fd = self.ns(ns)?.fd.clone();
        let handle = self.ns(ns)?.netlink.clone();
        let mut peers = netns::run_in_async(fd, peers::here).await?;
        peers.extend(netlink::neighbours(&handle).await?);
        peers.sort();
        peers.dedup();
        Ok(peers)
    }

    async fn netns_alive(&mut self, id: NsId) -> io::Result<bool> {
        match &self.ns(id)?.named {
            None => Ok(true),
            Some((name, inode)) => netns::still_mounted(name, *inode),
        }
    }

    fn start_program(&mut self, ns: NsId, spec: &super::ProgramSpec) -> io::Result<Box<dyn super::Program>> {
        let fd = self.ns(ns)?.fd.clone();
        let node = match &spec.node {
            None => None,
            Some(identity) => Some(self.node_namespaces(ns, identity)?),
        };
        let tasks = self.task_entry(&spec.tasks)?;
        let spec = spec.clone();
        let child = self.born_in_lab(move || spawn::spawn(fd, node, tasks, &spec))?;
        Ok(Box::new(spawn::Started::new(child)?))
    }

    async fn node_file(&mut self, ns: NsId, node: &super::NodeIdentity, path: &crate::policy::node_files::NodePath, op: super::NodeFileOp) -> io::Result<Vec<u8>> {
        let made = self.node_namespaces(ns, node)?;
        // A fork and a wait: off the runtime's threads.
        let path = path.clone();
        tokio::task::spawn_blocking(move || node_files::act(&made, &path, &op)).await.map_err(io::Error::other)?
    }

    async fn program_ready(&mut self, ns: NsId, node: Option<&super::NodeIdentity>, probe: &super::ReadyProbe) -> io::Result<bool> {
        match probe {
            super::ReadyProbe::Port { udp, port } => {
                let (fd, udp, port) = (self.ns(ns)?.fd.clone(), *udp, *port);
                netns::run_in_async(fd, move || probes::port_bound_here(udp, port)).await
            }
            super::ReadyProbe::Path(path) => {
                let Some(node) = node else { return Ok(false) };
                match self.node_file(ns, node, path, super::NodeFileOp::Exists).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(e),
                }
            }
            super::ReadyProbe::Output { log, text } => {
                let bytes = match crate::access::files::read(log) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                    Err(e) => return Err(e),
                };
                Ok(String::from_utf8_lossy(&bytes).lines().any(|line| line.contains(text.as_str())))
            }
        }
    }

    fn start_thread_in(&mut self, ns: NsId, name: &str, body: Box<dyn FnOnce() + Send>) -> io::Result<()> {
        let fd = self.ns(ns)?.fd.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name(format!("nsw-svc-{name}")).spawn(move || {
            let entered = netns::join(fd.as_fd());
            let ok = entered.is_ok();
            let _ = tx.send(entered);
            if ok {
                body();
            }
        })?;
        rx.recv().map_err(|_| io::Error::other("the service thread died"))?
    }

    fn start_lab_init(&mut self) -> io::Result<Option<ProcessId>> {
        if self.pids.is_none() {
            self.pids = Some(pid_ns::LabPids::start()?);
        }
        Ok(self.pids.as_ref().map(|p| p.init))
    }

    fn services_process(&self) -> Option<ProcessId> {
        process::identify_live(std::process::id())
    }

    async fn start_uplink(&mut self, ns: NsId, uplink: &Uplink) -> io::Result<ProcessId> {
        let Some((name, _)) = &self.ns(ns)?.named else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an uplink connects a namespace of the lab's own"));
        };
        let path = netns::path_of(name);
        let uplink = uplink.clone();
        tokio::task::spawn_blocking(move || process::start_pasta(&path, &uplink)).await.map_err(io::Error::other)?
    }
}

#[async_trait]
impl super::Survey for KernelBackend {
    async fn survey(&mut self, netns: Option<&str>, table: Option<&str>) -> io::Result<Option<super::survey::NetnsView>> {
        let fd = match netns {
            None => netns::open_current()?,
            Some(name) => match netns::open_named(name) {
                Ok(fd) => fd,
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidData) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        survey::survey(&fd, table).await.map(Some)
    }

    async fn process_running(&mut self, id: ProcessId) -> bool {
        process::identify(id.pid).is_ok_and(|now| now == id)
    }

    async fn lab_tasks(&mut self, lab: &str) -> Option<(u64, u64, u64)> {
        cgroup::usage(lab)
    }
}
