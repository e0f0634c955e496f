//! Backends carry out lab operations. They never decide whether an
//! operation is allowed (that is the policy's job) and they keep no record
//! of what exists (that is the lab's journal); they only do.

pub mod kernel;
pub mod plan;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

/// A namespace, by the lab's index for it.
pub type NsId = usize;

/// A link as the backend needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRef {
    pub ns: NsId,
    pub name: String,
    pub index: u32,
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

#[async_trait]
pub trait Backend: Send {
    /// Use the namespace nsw runs in as `id` (the host of a host-net lab).
    async fn adopt_machine(&mut self, id: NsId) -> io::Result<()>;
    /// Create the namespace `/run/netns/<name>` as `id`, loopback up.
    /// Returns its inode.
    async fn create_netns(&mut self, id: NsId, name: &str) -> io::Result<u64>;
    /// Create a veth pair; returns the interface indexes of both ends.
    async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId) -> io::Result<(u32, u32)>;
    /// Create a bridge; returns its index.
    async fn create_bridge(&mut self, name: &str, ns: NsId) -> io::Result<u32>;
    /// Move a link; returns its index in the new namespace.
    async fn move_link(&mut self, link: &LinkRef, to: NsId) -> io::Result<u32>;
    async fn set_master(&mut self, port: &LinkRef, bridge: &LinkRef) -> io::Result<()>;
    async fn set_up(&mut self, link: &LinkRef) -> io::Result<()>;
    /// Whether `ns` has a link called `name`.
    async fn link_exists(&mut self, ns: NsId, name: &str) -> io::Result<bool>;
    /// Wait (up to `timeout`) until the kernel has the link operationally
    /// up; `false` if it did not get there in time.
    async fn wait_oper_up(&mut self, link: &LinkRef, timeout: Duration) -> io::Result<bool>;
    /// No IPv6 link-local address for this link (`addrgenmode none`); the
    /// link must still be down.
    async fn disable_ipv6_link_local(&mut self, link: &LinkRef) -> io::Result<()>;
    async fn add_address(&mut self, link: &LinkRef, cidr: IpNet) -> io::Result<()>;
    async fn add_route(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> io::Result<()>;
    async fn read_sysctl(&mut self, ns: NsId, key: &str) -> io::Result<String>;
    async fn write_sysctl(&mut self, ns: NsId, key: &str, value: &str) -> io::Result<()>;
    /// Masquerade `source` in the nftables table `table` of `ns`.
    async fn masquerade(&mut self, ns: NsId, table: &str, source: IpNet) -> io::Result<()>;
    /// Send `count` echo requests, `interval` apart at least, waiting up to
    /// `timeout` for each reply.
    /// A nonzero `stop` means give up (between echoes, or while waiting).
    async fn ping(
        &mut self,
        ns: NsId,
        target: IpAddr,
        count: u32,
        timeout: Duration,
        interval: Duration,
        stop: std::sync::Arc<std::sync::atomic::AtomicU8>,
    ) -> io::Result<PingStats>;
    /// The destinations of the routes in the main table of `ns`.
    async fn routes(&mut self, ns: NsId) -> io::Result<Vec<IpNet>>;
    /// Whether the named namespace `id` is still the one the backend
    /// created (nobody deleted or replaced it under us).
    async fn netns_alive(&mut self, id: NsId) -> io::Result<bool>;
}
