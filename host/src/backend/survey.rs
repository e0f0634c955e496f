//! The kernel's own view of one namespace, as `nsw show` and `nsw graph`
//! read it: links, addresses, routes, forwarding, the lab's nftables
//! table. Read, never changed.

use std::net::IpAddr;

use ipnet::IpNet;

/// A link as the kernel has it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`, `tun`...; none for a device of no kind (`lo`).
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Operationally up: it has a carrier.
    pub carrier: bool,
    pub mtu: u32,
    pub mac: Option<String>,
    pub qdisc: Option<String>,
    /// The index of its bridge, if it is a bridge port.
    pub master: Option<u32>,
    /// A veth's other end: its index in its own namespace.
    pub peer_index: Option<u32>,
    /// A bridge's spanning tree: on or off.
    pub stp: Option<bool>,
    /// A bridge port's spanning-tree state (`forwarding`, `blocking`...)
    /// and path cost.
    pub port_state: Option<String>,
    pub port_cost: Option<u32>,
    /// A VXLAN device's VNI.
    pub vni: Option<u32>,
}

/// An address on a link.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressView {
    pub link: u32,
    pub cidr: IpNet,
}

/// A route (the machine's local and multicast ones left out).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteView {
    pub destination: IpNet,
    pub via: Option<IpAddr>,
    pub dev: Option<u32>,
    pub table: u32,
    /// Who put it there (`RTPROT_*`: 2 the kernel, 12 BIRD, 188 OSPF...).
    pub protocol: u8,
    /// Its priority, lower first.
    pub metric: Option<u32>,
    /// A multipath route's next hops (then `via` and `dev` are none).
    pub next_hops: Vec<NextHopView>,
}

/// One next hop of a multipath route.
#[derive(Debug, Clone, PartialEq)]
pub struct NextHopView {
    pub via: Option<IpAddr>,
    pub dev: u32,
    /// Its share of the traffic (1 and up).
    pub weight: u32,
}

/// One namespace, as the kernel has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct NetnsView {
    pub links: Vec<LinkView>,
    pub addresses: Vec<AddressView>,
    pub routes: Vec<RouteView>,
    pub forwarding_ipv4: bool,
    pub forwarding_ipv6: bool,
    /// The lab's nftables table there, as `nft -j` lists it, if asked for
    /// and present.
    pub nft: Option<serde_json::Value>,
    /// The same, as `nft list table` prints it.
    pub nft_text: Option<String>,
    /// Queueing disciplines but the default ones: (link name, tc's words).
    pub queues: Vec<(String, String)>,
}
