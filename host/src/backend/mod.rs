//! Backends carry out lab operations. They never decide whether an
//! operation is allowed (that is the policy's job) and they keep no record
//! of what exists (that is the lab's journal); they only do.
//!
//! Two sides, as netavark pairs `setup` and `teardown`: [`Backend`] builds
//! a lab, [`Teardown`] answers what teardown asks of the machine and
//! removes what it is told to. The kernel carries out both for real; the
//! plan models both in memory, so that the lab's logic and its rollback
//! are tested without root, and `down`'s decisions too, except those that
//! need the kernel's user namespaces (the privilege boundary's, whose
//! facts the plan does not model: [`Teardown::netns_owner`]). [`system`] is
//! the one place that builds the kernel backend.

pub mod kernel;
pub mod plan;
pub mod rules;
pub mod survey;

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::stop::Stop;
use rules::{LabTable, Queue, QueueFeatures, TableChange, TableFamily};

/// A namespace, by the lab's index for it.
pub type NsId = usize;

/// A link as the backend needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRef {
    pub ns: NsId,
    pub name: String,
    pub index: u32,
}

/// One end of a link whose other end is on another machine: a
/// point-to-point VXLAN device whose UDP socket is in the machine's
/// namespace (the underlay), made there and born in the node's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tunnel {
    pub vni: u32,
    /// This machine's underlay address, and the other end's.
    pub local: IpAddr,
    pub remote: IpAddr,
    pub port: u16,
    /// Set on both ends: the underlay's MTU less VXLAN's 50 bytes.
    pub mtu: u32,
}

/// The outcome of a ping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingStats {
    pub sent: u32,
    pub received: u32,
    pub min: Duration,
    pub avg: Duration,
    pub max: Duration,
}

impl PingStats {
    pub fn from_rtts(sent: u32, rtts: &[Duration]) -> PingStats {
        let received = rtts.len() as u32;
        let zero = Duration::ZERO;
        PingStats {
            sent,
            received,
            min: rtts.iter().min().copied().unwrap_or(zero),
            max: rtts.iter().max().copied().unwrap_or(zero),
            avg: if rtts.is_empty() { zero } else { rtts.iter().sum::<Duration>() / received },
        }
    }
}

/// How a TCP connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    Connected,
    Refused,
    TimedOut,
    Unreachable,
}

/// What a throughput run carried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub bytes: u64,
    pub seconds: f64,
    pub retransmits: u32,
}

/// One hop of a trace: who answered the probe of this TTL, if anyone.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub ttl: u8,
    pub address: Option<IpAddr>,
    pub rtt: Duration,
}

/// A process, as the journal knows it: pid and start time, so that a pid
/// the kernel gave to someone else since is never taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub pid: u32,
    /// Start time, in clock ticks after boot (`/proc/PID/stat` field 22).
    pub since: u64,
}

/// A program to run inside a node (`--allow exec`).
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    /// The program, resolved to an absolute path.
    pub program: std::path::PathBuf,
    /// Its arguments, `argv[0]` first.
    pub argv: Vec<String>,
    /// Who it runs as.
    pub uid: u32,
    pub gid: u32,
    /// Where stdout and stderr go: pipes (`None`), or this file, which may
    /// grow to so many bytes.
    pub log: Option<(std::path::PathBuf, u64)>,
    /// The node it runs in, for the node's own files and name (`None` in
    /// the machine's namespace, whose programs see the machine's).
    pub node: Option<NodeIdentity>,
    /// The lab it belongs to, and how many tasks the lab's programs may
    /// have at once (`--max-tasks`).
    pub tasks: TaskLimit,
}

/// The lab's cap on its programs' processes and threads together.
#[derive(Debug, Clone)]
pub struct TaskLimit {
    pub lab: String,
    pub max: u64,
}

/// What shows that a daemon is ready ([`Backend::program_ready`]).
#[derive(Debug, Clone)]
pub enum ReadyProbe {
    /// A socket of the node on this port: listening (TCP) or bound (UDP).
    Port { udp: bool, port: u16 },
    /// Something (a file, a socket) at this path of the node's own files.
    Path(crate::policy::node_files::NodePath),
    /// A line of the program's output (its log) holds this text.
    Output { log: std::path::PathBuf, text: String },
}

/// What to do with a file of a node's own ([`crate::policy::node_files`]).
#[derive(Debug, Clone)]
pub enum NodeFileOp {
    /// Replace its contents; give it this mode and (uid, gid).
    Write { contents: Vec<u8>, mode: u32, owner: (u32, u32) },
    /// Make the directory (and those missing above it).
    MakeDir { mode: u32, owner: (u32, u32) },
    /// What it holds, if it is at most `max` bytes.
    Read { max: usize },
    /// Whether anything is there (`NotFound` if not), without opening it.
    Exists,
}

/// A node's name (its hostname) and its `/etc/hosts`, from the lab.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub hostname: String,
    pub hosts: String,
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// A program started in a node.
pub trait Program: Send + Sync {
    fn id(&self) -> ProcessId;
    /// How it ended, if it has (without waiting).
    fn try_wait(&mut self) -> io::Result<Option<Exit>>;
    /// Its stdout and stderr, for a program started with pipes; once.
    fn take_pipes(&mut self) -> Option<(Box<dyn std::io::Read + Send>, Box<dyn std::io::Read + Send>)>;
    /// Send `signal` to it and everything in its session.
    fn signal(&self, signal: nix::sys::signal::Signal);
}

/// What the uplink's user-mode NAT is told.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The interface it makes in the lab's host.
    pub ifname: String,
    pub address: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: std::net::Ipv4Addr,
    /// Where it writes its pid: a directory only root can write.
    pub pid_file: std::path::PathBuf,
}

/// The building side: what a running lab asks of the kernel.
#[async_trait]
pub trait Backend: Send {
    /// Use the namespace nsw runs in as `id` (the host of a host-net lab).
    async fn adopt_machine(&mut self, id: NsId) -> io::Result<()>;
    /// Open the lab's existing namespace `/run/netns/<name>` as `id`, if it
    /// is still the one of inode `inode` (`nsw link` on a lab that is up).
    async fn attach_netns(&mut self, id: NsId, name: &str, inode: u64) -> io::Result<()>;
    /// Create the namespace `/run/netns/<name>` as `id`, loopback up.
    /// Returns its inode.
    async fn create_netns(&mut self, id: NsId, name: &str) -> io::Result<u64>;
    /// Create a veth pair, with the interface indexes `indexes` if given;
    /// returns the indexes of both ends.
    async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId, indexes: Option<(u32, u32)>) -> io::Result<(u32, u32)>;
    /// Create a bridge, down, with the index `index` if given; returns its
    /// index.
    async fn create_bridge(&mut self, name: &str, ns: NsId, index: Option<u32>) -> io::Result<u32>;
    /// Create `name` in `ns` as one end of `tunnel`, down; returns its index.
    async fn create_tunnel(&mut self, name: &str, ns: NsId, tunnel: &Tunnel) -> io::Result<u32>;
    /// Move a link, to the index `index` there if given; returns its index
    /// in the new namespace.
    async fn move_link(&mut self, link: &LinkRef, to: NsId, index: Option<u32>) -> io::Result<u32>;
    async fn set_master(&mut self, port: &LinkRef, bridge: &LinkRef) -> io::Result<()>;
    async fn set_up(&mut self, link: &LinkRef) -> io::Result<()>;
    async fn set_down(&mut self, link: &LinkRef) -> io::Result<()>;
    async fn set_mtu(&mut self, link: &LinkRef, mtu: u32) -> io::Result<()>;
    /// Set a bridge's options (what is `None` stays as it is).
    async fn set_bridge_options(&mut self, bridge: &LinkRef, options: &crate::policy::bridges::BridgeOptions) -> io::Result<()>;
    /// Set the STP path cost of a bridge's port.
    async fn set_port_cost(&mut self, port: &LinkRef, cost: u32) -> io::Result<()>;
    async fn set_mac(&mut self, link: &LinkRef, mac: [u8; 6]) -> io::Result<()>;
    /// Whether `ns` has a link called `name`.
    async fn link_exists(&mut self, ns: NsId, name: &str) -> io::Result<bool>;
    /// The index of the link called `name` in `ns`, waiting up to
    /// `timeout` (never past a stop) for it to appear.
    async fn wait_link(&mut self, ns: NsId, name: &str, timeout: Duration, stop: &Stop) -> io::Result<Option<u32>>;
    /// Whether the link of index `index` in `ns` is called `name`.
    async fn link_is(&mut self, ns: NsId, index: u32, name: &str) -> io::Result<bool>;
    /// Wait (up to `timeout`, and never past a stop) until the kernel has
    /// acted on the link's carrier: none, or operationally up with its
    /// queueing discipline (until then a link with a carrier drops what it
    /// is given); `false` if it did not get there.
    async fn wait_carrier_settled(&mut self, link: &LinkRef, timeout: Duration, stop: &Stop) -> io::Result<bool>;
    /// No IPv6 link-local address for this link (`addrgenmode none`); the
    /// link must still be down.
    async fn disable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()>;
    /// IPv6 link-local addresses for this link again (`addrgenmode
    /// eui64`), with one made at once if the link is up already.
    async fn enable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()>;
    async fn add_address(&mut self, link: &LinkRef, cidr: IpNet) -> io::Result<()>;
    /// The addresses `link` has now.
    async fn link_addresses(&mut self, link: &LinkRef) -> io::Result<Vec<IpNet>>;
    async fn add_route(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> io::Result<()>;
    /// A route through several gateways, each with its weight.
    async fn add_multipath_route(&mut self, ns: NsId, destination: IpNet, hops: &[crate::policy::routes::NextHop]) -> io::Result<()>;
    async fn read_sysctl(&mut self, ns: NsId, key: &str) -> io::Result<String>;
    async fn write_sysctl(&mut self, ns: NsId, key: &str, value: &str) -> io::Result<()>;
    /// Every readable sysctl under `roots` in `ns`, by key.
    async fn sysctl_tree(&mut self, ns: NsId, roots: &[&str]) -> io::Result<BTreeMap<String, String>>;
    /// Change one of the lab's nftables tables in `ns`, in one transaction
    /// (creating it first if `table.create`: `EEXIST` if the name is
    /// taken; otherwise `ENOENT` unless it still carries the lab's marker).
    async fn change_table(&mut self, ns: NsId, table: &LabTable, changes: &[TableChange]) -> io::Result<()>;
    /// Give the link this queue (its conditions: a rate, netem), replacing
    /// what it had; `None`: the kernel's default queue again.
    async fn set_queue(&mut self, link: &LinkRef, queue: Option<&Queue>) -> io::Result<()>;
    /// What this kernel offers for link conditions.
    async fn queue_features(&mut self) -> io::Result<QueueFeatures>;
    /// Send `count` echo requests, `interval` apart at least, waiting up to
    /// `timeout` for each reply; give up early once `stop` is raised.
    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, timeout: Duration, interval: Duration, stop: &Stop) -> io::Result<PingStats>;
    /// Try a TCP connection from `ns` to `to`, closing it at once.
    async fn tcp_connect(&mut self, ns: NsId, to: std::net::SocketAddr, timeout: Duration, stop: &Stop) -> io::Result<(ConnectOutcome, Duration)>;
    /// Send TCP from `sender` to a receiver listening on `address` in
    /// `receiver` for `duration`.
    async fn throughput(&mut self, sender: NsId, receiver: NsId, address: IpAddr, duration: Duration, stop: &Stop) -> io::Result<Throughput>;
    /// The routers on the way from `ns` to `target`.
    async fn trace(&mut self, ns: NsId, target: IpAddr, stop: &Stop) -> io::Result<Vec<Hop>>;
    /// The prefixes `ns` routes somewhere: routes of every table, the
    /// destinations of its policy rules.
    async fn routes(&mut self, ns: NsId) -> io::Result<Vec<IpNet>>;
    /// Addresses `ns` talks to: its resolvers, neighbours and the peers of
    /// its TCP connections.
    async fn peers(&mut self, ns: NsId) -> io::Result<Vec<IpAddr>>;
    /// Whether the named namespace `id` is still the one the backend
    /// created (nobody deleted or replaced it under us).
    async fn netns_alive(&mut self, id: NsId) -> io::Result<bool>;
    /// Start a program inside `ns`.
    fn start_program(&mut self, ns: NsId, spec: &ProgramSpec) -> io::Result<Box<dyn Program>>;
    /// Do `op` on the file at `path` of node `ns`'s own files (made now,
    /// with `node`, if it had none yet); what a read found.
    async fn node_file(&mut self, ns: NsId, node: &NodeIdentity, path: &crate::policy::node_files::NodePath, op: NodeFileOp) -> io::Result<Vec<u8>>;
    /// Whether a program of node `ns` (whose files and name are `node`;
    /// `None` in the machine's namespace) is ready as `probe` says.
    async fn program_ready(&mut self, ns: NsId, node: Option<&NodeIdentity>, probe: &ReadyProbe) -> io::Result<bool>;
    /// Run `body` on a thread of its own inside `ns` (a service).
    fn start_thread_in(&mut self, ns: NsId, name: &str, body: Box<dyn FnOnce() + Send>) -> io::Result<()>;
    /// The process those threads run in (this one), as the journal
    /// records a process: `down` ends it, and with it the services it
    /// holds. `None` where services are only noted (a plan).
    fn services_process(&self) -> Option<ProcessId> {
        None
    }
    /// Make the lab's PID namespace, in which its programs, its nodes'
    /// files and `nsw exec` are born, and start its init, which `down`
    /// ends and everything in the namespace with it. `None` where nothing
    /// runs (a plan).
    fn start_lab_init(&mut self) -> io::Result<Option<ProcessId>> {
        Ok(None)
    }
    /// Start the uplink's user-mode NAT for the namespace `ns`.
    async fn start_uplink(&mut self, ns: NsId, uplink: &Uplink) -> io::Result<ProcessId>;
}

/// A link as teardown finds it in the machine's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLink {
    pub index: u32,
    /// `veth`, `bridge`...; `None` for a device of no kind (a NIC, `lo`).
    pub kind: Option<String>,
}

/// The outcome of one removal the teardown asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// There was nothing to remove.
    Gone,
    /// What is there is not the lab's (the string says why): not touched.
    NotOurs(String),
}

/// The removing side: the facts teardown needs, and the removals it
/// decides on. Namespaces are named as under /run/netns; everything else
/// lives in the machine's namespace (the one nsw runs in): what is inside
/// a lab's own namespaces goes with them.
#[async_trait]
pub trait Teardown: Send {
    /// Inode of the namespace nsw runs in.
    fn machine_inode(&self) -> io::Result<u64>;
    /// Inode of the namespace mounted at `/run/netns/NAME`, if one is.
    async fn netns_inode(&mut self, name: &str) -> io::Result<Option<u64>>;
    /// Unmount and remove `/run/netns/NAME`; whether anything was there.
    async fn delete_netns(&mut self, name: &str) -> io::Result<bool>;
    /// Stop every process inside the namespaces of these inodes (SIGTERM,
    /// then SIGKILL after `grace`); returns what was stopped, by inode.
    async fn stop_processes_in(&mut self, inodes: &[u64], grace: Duration) -> io::Result<Vec<(u64, String)>>;
    /// Stop every process whose real uid lies in `uids` (a lab's own range
    /// of ids, which only the lab's processes have), together: one grace
    /// period, then SIGKILL, until none is left. What was stopped.
    async fn stop_processes_with_uids(&mut self, _uids: std::ops::Range<u32>, _grace: Duration) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// End lab `lab`'s cgroup ([`kernel::cgroup`]): every process in it
    /// stopped together, then the cgroup removed. What was stopped. Only
    /// root in place can; elsewhere (behind the boundary, a user's lab)
    /// nothing is done, and root's `nsw down` or the broker does it.
    async fn end_lab_tasks(&mut self, _lab: &str, _grace: Duration) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Stop one process, if it is still the one of that identity.
    async fn stop_process(&mut self, id: ProcessId, grace: Duration) -> io::Result<Removal>;
    /// The link called `name` in the machine's namespace, if any.
    async fn machine_link(&mut self, name: &str) -> io::Result<Option<FoundLink>>;
    async fn delete_machine_link(&mut self, index: u32) -> io::Result<()>;
    async fn delete_machine_route(&mut self, destination: IpNet, via: IpAddr) -> io::Result<()>;
    /// Delete the lab's nftables table in the machine's namespace, if it
    /// still carries the lab's marker `nonce` (`None`: a journal of an older
    /// nsw, which recorded none: by name).
    async fn delete_machine_nft_table(&mut self, family: TableFamily, name: &str, nonce: Option<u64>) -> io::Result<Removal>;
    async fn read_machine_sysctl(&mut self, key: &str) -> io::Result<String>;
    async fn write_machine_sysctl(&mut self, key: &str, value: &str) -> io::Result<()>;
    async fn machine_sysctl_tree(&mut self, roots: &[&str]) -> io::Result<BTreeMap<String, String>>;
    /// The user namespace (inode) that owns the namespace at
    /// `/run/netns/NAME`, if one is mounted there: a lab behind the
    /// privilege boundary owns only namespaces of its own user namespace.
    async fn netns_owner(&mut self, _name: &str) -> io::Result<Option<u64>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no user namespaces here"))
    }
    /// Every name under /run/netns, whoever mounted it.
    async fn netns_names(&mut self) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// The user namespace (inode) process `pid` is in, if it runs.
    async fn process_owner(&mut self, _pid: u32) -> io::Result<Option<u64>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "no user namespaces here"))
    }
}

/// Find a program as a shell would (an absolute path, or a name in PATH).
pub fn kernel_resolve(program: &str) -> Option<std::path::PathBuf> {
    kernel::spawn::resolve(program)
}

/// Reading a namespace as it is now (`nsw show`, `nsw graph`).
#[async_trait]
pub trait Survey: Send {
    /// The namespace `/run/netns/NAME` (the machine's if `None`), with the
    /// lab's nftables table `table` if it has one; `None` if it is gone.
    async fn survey(&mut self, netns: Option<&str>, table: Option<&str>) -> io::Result<Option<survey::NetnsView>>;
    /// Whether the process `id` (pid and start time) still runs.
    async fn process_running(&mut self, id: ProcessId) -> bool;
    /// Lab `lab`'s cgroup: tasks now, their limit, forks refused.
    async fn lab_tasks(&mut self, _lab: &str) -> Option<(u64, u64, u64)> {
        None
    }
}

pub use kernel::capture::{Captured, Until};

/// Capture the packets of `ifname` in `/run/netns/NETNS` (the machine's if
/// `None`; then only the link of index `index`) as pcapng into `out`,
/// until `until` or a stop; `ready` is told once the capture listens.
/// Blocks.
pub fn capture(
    netns: Option<&str>,
    ifname: &str,
    index: Option<u32>,
    out: Box<dyn std::io::Write + Send>,
    until: Until,
    stop: &Stop,
    ready: impl FnOnce(),
) -> io::Result<Captured> {
    let fd = netns.map(kernel::netns::open_named).transpose()?;
    kernel::capture::capture(fd.as_ref(), ifname, index, out, until, stop, ready)
}

/// The namespace `/run/netns/NAME`, or this process's own if `None`.
fn open_netns(netns: Option<&str>) -> io::Result<std::os::fd::OwnedFd> {
    match netns {
        Some(name) => kernel::netns::open_named(name),
        None => kernel::netns::open_current(),
    }
}

/// The probes of `nsw probe`, from a namespace of a lab that is up
/// (`/run/netns/NAME`, or this process's own if `None`), as a script's
/// probes run them. They block.
pub mod from_netns {
    use super::*;

    pub fn ping(netns: Option<&str>, target: IpAddr, count: u32, timeout: Duration, interval: Duration, stop: &Stop) -> io::Result<PingStats> {
        kernel::netns::run_in(&open_netns(netns)?, || kernel::ping::ping_here(target, count, timeout, interval, stop))
    }

    pub fn trace(netns: Option<&str>, target: IpAddr, stop: &Stop) -> io::Result<Vec<Hop>> {
        kernel::netns::run_in(&open_netns(netns)?, || kernel::probes::trace_here(target, stop))
    }

    pub fn tcp_connect(netns: Option<&str>, to: std::net::SocketAddr, timeout: Duration, stop: &Stop) -> io::Result<(ConnectOutcome, Duration)> {
        kernel::netns::run_in(&open_netns(netns)?, || kernel::probes::tcp_connect_here(to, timeout, stop))
    }

    /// From `sender` to nsw's receiver on `address` in `receiver`.
    pub fn throughput(sender: Option<&str>, receiver: Option<&str>, address: IpAddr, duration: Duration, stop: &Stop) -> io::Result<Throughput> {
        let (from, to) = (std::sync::Arc::new(open_netns(sender)?), std::sync::Arc::new(open_netns(receiver)?));
        kernel::probes::throughput(from, to, address, duration, stop.clone())
    }
}

/// The real thing: the kernel, for building labs and taking them down.
/// The MTU of the interface of nsw's namespace that has `address` (an
/// agent's underlay), if one has.
pub async fn underlay_mtu(address: IpAddr) -> io::Result<Option<u32>> {
    let here = kernel::netns::open_current()?;
    kernel::netlink::mtu_with_address(&kernel::netlink::connect(&here)?, address).await
}

pub fn system() -> kernel::KernelBackend {
    kernel::KernelBackend::new()
}

/// The namespaces of node `/run/netns/NAME`, opened and checked, for `nsw
/// exec` to join: its network, and its files and name while its programs
/// run, and lab `lab`'s cgroup if it has one; `lab_userns`: the user
/// namespace of a lab behind the boundary, joined as the lab's root.
pub fn open_node(lab: &str, name: &str, lab_userns: Option<u64>) -> anyhow::Result<kernel::node_entry::NodeEntry> {
    kernel::node_entry::NodeEntry::open(lab, name, lab_userns)
}
