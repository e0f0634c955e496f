//! What a lab keeps in its own nftables tables and on its links' queues,
//! as the backends take it: typed, and already checked by the lab.

use std::net::SocketAddr;

use ipnet::IpNet;

pub use crate::journal::TableFamily;

/// One of the lab's tables, as a change to it needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabTable {
    pub family: TableFamily,
    pub name: String,
    /// The nonce of its marker chain (`nsw-owner-<nonce>`).
    pub nonce: u64,
    /// Create it (with its marker) in the same transaction as the change:
    /// fails with `EEXIST` if the name is taken. Otherwise the change fails
    /// with `ENOENT` unless the table still carries the marker.
    pub create: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// Which traffic of a node a filter rule sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// To the node itself.
    Input,
    /// Through it (it routes).
    Forward,
    /// From the node itself.
    Output,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Forward => "forward",
            Direction::Output => "output",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    Drop,
    /// A TCP reset to TCP, an ICMP port unreachable to the rest (never a
    /// chain's policy: nftables has only accept and drop there).
    Reject,
}

/// A filter rule; what is `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRule {
    pub direction: Direction,
    pub verdict: Verdict,
    pub protocol: Option<Protocol>,
    pub source: Option<IpNet>,
    pub destination: Option<IpNet>,
    /// Destination port (TCP or UDP only).
    pub port: Option<u16>,
    /// Only traffic in (input, forward) or out (output) of these
    /// interfaces: the lab's own, in the machine's namespace. Empty: any.
    pub links: Vec<OnLink>,
}

/// An interface a rule is limited to. The rule matches its index, not its
/// name: a name is free again the moment the lab's link moves away, and a
/// rule must never come to match the machine's own interface of that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnLink {
    pub name: String,
    pub index: u32,
}

/// A change to one of the lab's tables.
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    /// `ip saddr SOURCE ip daddr != SOURCE masquerade`.
    Masquerade { source: IpNet },
    /// Make the chain of a filter direction, on its first use: its first
    /// rule lets replies to allowed traffic through (stateful, as users of
    /// a firewall expect).
    FilterChain { direction: Direction },
    /// Append a filter rule to its direction's chain.
    Filter(FilterRule),
    /// The verdict for what no rule of that direction matched.
    Policy { direction: Direction, verdict: Verdict },
    /// Send connections to `port` on to `to` (DNAT), for traffic coming
    /// in on `links` if any.
    PortForward { protocol: Protocol, port: u16, to: SocketAddr, links: Vec<OnLink> },
    /// Drop `percent` of what `link` receives, at random (a `netdev`
    /// table's ingress hook): the loss of what its veth peer sends. Not at
    /// the sender's egress, where a drop is an error its sockets see (ping
    /// retries, TCP backs off at once); on a wire, nobody is told.
    /// `None` drops nothing any more.
    Loss { link: String, percent: Option<f64> },
}

/// netem's part of a link's conditions (delay, jitter, loss and so on).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Netem {
    pub delay_us: u32,
    pub jitter_us: u32,
    pub loss_percent: f64,
    pub loss_correlation_percent: f64,
    pub duplicate_percent: f64,
    pub corrupt_percent: f64,
    pub reorder_percent: f64,
}

/// The queueing discipline a link's conditions give it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Queue {
    /// Token bucket rate, bits per second.
    pub rate_bps: Option<u64>,
    /// Packets queued at most.
    pub limit_packets: Option<u32>,
    pub netem: Option<Netem>,
}

/// What this kernel can do for link conditions, probed once per lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFeatures {
    /// `sch_netem`: delay, jitter, loss, duplicate, corrupt, reorder.
    pub netem: bool,
    /// `sch_tbf`: a rate.
    pub tbf: bool,
    /// nftables' netdev ingress hook and `numgen`: loss without netem.
    pub nft_loss: bool,
}
