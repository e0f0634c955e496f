//! rtnetlink requests, one connection per namespace. A netlink socket
//! belongs to the namespace of the thread that opened it, so each one is
//! opened on a thread inside its namespace and then driven from tokio.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BridgePortState, BridgeStpState, In6AddrGenMode, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::netns;

/// A route netlink socket in the calling thread's namespace.
pub fn socket_here() -> io::Result<OwnedFd> {
    let socket = Socket::new(NETLINK_ROUTE)?;
    // SAFETY: the fd was just taken out of a live socket we own.
    Ok(unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) })
}

/// Open a route netlink connection inside namespace `ns`.
pub fn connect(ns: &OwnedFd) -> io::Result<Handle> {
    Ok(drive(netns::run_in(ns, socket_here)?))
}

/// Drive a netlink socket from tokio; the handle sends requests on it.
pub fn drive(socket: OwnedFd) -> Handle {
    // SAFETY: `socket` is an owned netlink socket; TokioSocket takes it over.
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (connection, handle, _) = rtnetlink::from_socket(socket);
    tokio::spawn(connection);
    handle
}

/// The kernel's answer as an `io::Error` carrying its errno.
fn os(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// Index of the link called `name` in the handle's namespace.
pub async fn index_of(handle: &Handle, name: &str) -> io::Result<u32> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await.map_err(os)? {
        Some(msg) => Ok(msg.header.index),
        None => Err(io::Error::from_raw_os_error(libc::ENODEV)),
    }
}

/// The MTU of the link that has the address `address`, if one has.
pub async fn mtu_with_address(handle: &Handle, address: IpAddr) -> io::Result<Option<u32>> {
    let mut addresses = handle.address().get().execute();
    let mut index = None;
    while let Some(msg) = addresses.try_next().await.map_err(os)? {
        if msg.attributes.iter().any(|a| matches!(a, AddressAttribute::Address(a) | AddressAttribute::Local(a) if *a == address)) {
            index = Some(msg.header.index);
            break;
        }
    }
    let Some(index) = index else { return Ok(None) };
    let mut links = handle.link().get().match_index(index).execute();
    let Some(link) = links.try_next().await.map_err(os)? else { return Ok(None) };
    Ok(link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(mtu) => Some(*mtu),
        _ => None,
    }))
}

/// Create a veth pair: `name` here, `peer` in the namespace `peer_ns` (or
/// here too when `None`), with the interface indexes `indexes` if given
/// (the kernel takes the peer's only when the first end's is given too).
pub async fn create_veth(handle: &Handle, name: &str, peer: &str, peer_ns: Option<&OwnedFd>, indexes: Option<(u32, u32)>) -> io::Result<()> {
    let mut peer_msg = LinkUnspec::new_with_name(peer);
    if let Some(ns) = peer_ns {
        peer_msg = peer_msg.setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(ns));
    }
    let mut msg = LinkVeth::new(name, peer);
    if let Some((index, peer_index)) = indexes {
        msg = msg.index(index);
        peer_msg = peer_msg.index(peer_index);
    }
    let msg = msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build()))).build();
    handle.link().add(msg).execute().await.map_err(os)
}

/// Create a bridge, down (rtnetlink's `LinkBridge::new` would bring it
/// up), with the interface index `index` if given.
pub async fn create_bridge(handle: &Handle, name: &str, index: Option<u32>) -> io::Result<()> {
    let mut msg = rtnetlink::LinkMessageBuilder::<LinkBridge>::new(name);
    if let Some(index) = index {
        msg = msg.index(index);
    }
    handle.link().add(msg.build()).execute().await.map_err(os)
}

/// Create a point-to-point VXLAN device through `handle` (whose namespace
/// keeps its UDP socket), born in the namespace `into`, down, at the
/// tunnel's MTU. No learning: its one peer is `remote`.
pub async fn create_vxlan(handle: &Handle, name: &str, tunnel: &crate::backend::Tunnel, into: &OwnedFd) -> io::Result<()> {
    let mut msg = rtnetlink::LinkVxlan::new(name, tunnel.vni).port(tunnel.port).learning(false);
    msg = match (tunnel.local, tunnel.remote) {
        (IpAddr::V4(local), IpAddr::V4(remote)) => msg.local(local).remote(remote),
        (IpAddr::V6(local), IpAddr::V6(remote)) => msg.local6(local).remote6(remote),
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "a tunnel's two underlay addresses must be of one family")),
    };
    let msg = msg.mtu(tunnel.mtu).setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(into)).build();
    handle.link().add(msg).execute().await.map_err(os)
}

/// Move link `index` into the namespace `to`, where it gets the index
/// `new_index` if given.
pub async fn move_link(handle: &Handle, index: u32, to: &OwnedFd, new_index: Option<u32>) -> io::Result<()> {
    let mut msg = LinkUnspec::new_with_index(index).setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(to));
    if let Some(new_index) = new_index {
        msg = msg.append_extra_attribute(LinkAttribute::NewIfIndex(new_index as i32));
    }
    handle.link().set(msg.build()).execute().await.map_err(os)
}

/// The name of link `index`, if there is one.
pub async fn name_of(handle: &Handle, index: u32) -> io::Result<Option<String>> {
    let mut links = handle.link().get().match_index(index).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })),
        Ok(None) => Ok(None),
        Err(e) => {
            let e = os(e);
            if e.raw_os_error() == Some(libc::ENODEV) { Ok(None) } else { Err(e) }
        }
    }
}

pub async fn set_master(handle: &Handle, port: u32, bridge: u32) -> io::Result<()> {
    let msg = LinkUnspec::new_with_index(port).controller(bridge).build();
    handle.link().set(msg).execute().await.map_err(os)
}

pub async fn set_up(handle: &Handle, index: u32) -> io::Result<()> {
    handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(os)
}

pub async fn set_down(handle: &Handle, index: u32) -> io::Result<()> {
    handle.link().set(LinkUnspec::new_with_index(index).down().build()).execute().await.map_err(os)
}

pub async fn set_mtu(handle: &Handle, index: u32, mtu: u32) -> io::Result<()> {
    handle.link().set(LinkUnspec::new_with_index(index).mtu(mtu).build()).execute().await.map_err(os)
}

pub async fn set_mac(handle: &Handle, index: u32, mac: [u8; 6]) -> io::Result<()> {
    handle.link().set(LinkUnspec::new_with_index(index).address(mac.to_vec()).build()).execute().await.map_err(os)
}

/// `ip link set INDEX addrgenmode none`.
pub async fn disable_ipv6_link_local(handle: &Handle, index: u32) -> io::Result<()> {
    let spec = LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])]);
    let msg = LinkUnspec::new_with_index(index).append_extra_attribute(spec).build();
    handle.link().set(msg).execute().await.map_err(os)
}

/// `ip link set INDEX addrgenmode eui64`, and on a link that is up
/// already (where the kernel does not make one then), its EUI-64
/// link-local address, without DAD.
pub async fn enable_ipv6_link_local(handle: &Handle, index: u32) -> io::Result<()> {
    let spec = LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::Eui64)])]);
    let msg = LinkUnspec::new_with_index(index).append_extra_attribute(spec).build();
    handle.link().set(msg).execute().await.map_err(os)?;
    let mut links = handle.link().get().match_index(index).execute();
    let Some(link) = links.try_next().await.map_err(os)? else { return Err(io::Error::from_raw_os_error(libc::ENODEV)) };
    let up = link.header.flags.contains(rtnetlink::packet_route::link::LinkFlags::Up);
    let mac = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(mac) if mac.len() == 6 => Some(mac.clone()),
        _ => None,
    });
    if let (true, Some(mac)) = (up, mac) {
        let eui = [mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
        let mut bytes = [0u8; 16];
        bytes[0] = 0xfe;
        bytes[1] = 0x80;
        bytes[8..].copy_from_slice(&eui);
        let cidr = IpNet::new(IpAddr::V6(Ipv6Addr::from(bytes)), 64).map_err(invalid)?;
        match add_address(handle, index, cidr).await {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    Ok(())
}

/// The kind of link `index` (`veth`, `bridge`...), `None` for a device of
/// no kind (a physical NIC, loopback).
pub async fn kind_of(handle: &Handle, index: u32) -> io::Result<Option<String>> {
    let mut links = handle.link().get().match_index(index).execute();
    let Some(msg) = links.try_next().await.map_err(os)? else {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    };
    for attribute in &msg.attributes {
        if let LinkAttribute::LinkInfo(infos) = attribute {
            for info in infos {
                if let LinkInfo::Kind(kind) = info {
                    return Ok(Some(kind.to_string()));
                }
            }
        }
    }
    Ok(None)
}

/// Whether the kernel has finished acting on link `index`'s carrier. A
/// carrier comes on at once (a veth whose peer is up), but the link only
/// passes packets once linkwatch, a moment later, has made it operationally
/// up and given it its queueing discipline; until then it drops what it is
/// given. A link without a carrier has nothing pending, except a bridge:
/// it gets its carrier only after linkwatch has told it that a port came
/// up, so a bridge with a live port is settled once it has its carrier,
/// is itself operationally up, and every live port forwards.
pub async fn carrier_settled(handle: &Handle, index: u32) -> io::Result<bool> {
    let mut links = handle.link().get().match_index(index).execute();
    let Some(msg) = links.try_next().await.map_err(os)? else {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    };
    if !msg.header.flags.contains(LinkFlags::Up) {
        return Ok(true);
    }
    if let Some(stp) = bridge_stp(&msg) {
        if stp {
            // Spanning tree keeps ports listening, then learning, for
            // seconds: that wait is the lab's to make, not nsw's.
            return Ok(true);
        }
        return bridge_settled(handle, index, &msg).await;
    }
    Ok(!msg.header.flags.contains(LinkFlags::LowerUp) || passes_packets(&msg))
}

/// Operationally up with its queueing discipline (not linkwatch's `noop`).
/// A VXLAN device reports no operational state of its own (`UNKNOWN`):
/// its carrier and queue say it all.
fn passes_packets(msg: &LinkMessage) -> bool {
    let vxlan = msg.attributes.iter().any(|a| matches!(a, LinkAttribute::LinkInfo(infos) if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)))));
    let oper_up = msg.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up)) || (vxlan && matches!(a, LinkAttribute::OperState(State::Unknown))));
    let queue_ready = !msg.attributes.iter().any(|a| matches!(a, LinkAttribute::Qdisc(q) if q == "noop"));
    msg.header.flags.contains(LinkFlags::LowerUp) && oper_up && queue_ready
}

/// For a bridge, whether spanning tree is on; `None` for other links.
fn bridge_stp(msg: &LinkMessage) -> Option<bool> {
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => Some(infos),
        _ => None,
    })?;
    infos.iter().find(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)))?;
    let stp = infos.iter().any(|i| match i {
        LinkInfo::Data(InfoData::Bridge(options)) => options.iter().any(|o| matches!(o, InfoBridge::StpState(s) if *s != BridgeStpState::Disabled)),
        _ => false,
    });
    Some(stp)
}

/// A bridge without spanning tree: settled when none of its ports is live
/// (nothing will give it a carrier), or when it passes packets and every
/// live port passes packets and forwards.
async fn bridge_settled(handle: &Handle, index: u32, bridge: &LinkMessage) -> io::Result<bool> {
    let mut links = handle.link().get().execute();
    let mut live_ports = 0;
    while let Some(port) = links.try_next().await.map_err(os)? {
        // Live: up with a carrier, even before linkwatch makes it
        // operationally up (it will be, and then the bridge gets a carrier).
        let live = port.header.flags.contains(LinkFlags::Up) && port.header.flags.contains(LinkFlags::LowerUp);
        if !port.attributes.iter().any(|a| matches!(a, LinkAttribute::Controller(m) if *m == index)) || !live {
            continue;
        }
        live_ports += 1;
        if !passes_packets(&port) {
            return Ok(false);
        }
        let forwarding = port.attributes.iter().any(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| match i {
                LinkInfo::PortData(InfoPortData::BridgePort(options)) => options.iter().any(|o| matches!(o, InfoBridgePort::State(BridgePortState::Forwarding))),
                _ => false,
            }),
            _ => false,
        });
        if !forwarding {
            return Ok(false);
        }
    }
    Ok(live_ports == 0 || passes_packets(bridge))
}

pub async fn delete_link(handle: &Handle, index: u32) -> io::Result<()> {
    handle.link().del(index).execute().await.map_err(os)
}

/// Add an address. IPv6 addresses skip duplicate address detection (like
/// `ip address add ... nodad`): every address in a lab is planned, and DAD
/// would keep a new address unusable for a second or more.
pub async fn add_address(handle: &Handle, index: u32, cidr: IpNet) -> io::Result<()> {
    let mut request = handle.address().add(index, cidr.addr(), cidr.prefix_len());
    if cidr.addr().is_ipv6() {
        let message = request.message_mut();
        message.header.flags |= AddressHeaderFlags::Nodad;
        message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request.execute().await.map_err(os)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn route_message(destination: IpNet, via: IpAddr) -> io::Result<rtnetlink::packet_route::route::RouteMessage> {
    Ok(RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .map_err(invalid)?
        .gateway(via)
        .map_err(invalid)?
        .build())
}

pub async fn add_route(handle: &Handle, destination: IpNet, via: IpAddr) -> io::Result<()> {
    handle.route().add(route_message(destination, via)?).execute().await.map_err(os)
}

/// A route through several gateways (`RTA_MULTIPATH`): the kernel finds
/// each one's link, and keeps its weight less one.
pub async fn add_multipath_route(handle: &Handle, destination: IpNet, hops: &[crate::policy::routes::NextHop]) -> io::Result<()> {
    use rtnetlink::packet_route::route::RouteNextHop;
    let next_hops = hops
        .iter()
        .map(|hop| {
            let mut next = RouteNextHop::default();
            next.hops = (hop.weight - 1) as u8;
            next.attributes.push(RouteAttribute::Gateway(match hop.via {
                IpAddr::V4(a) => RouteAddress::Inet(a),
                IpAddr::V6(a) => RouteAddress::Inet6(a),
            }));
            next
        })
        .collect();
    let message = RouteMessageBuilder::<IpAddr>::new().destination_prefix(destination.addr(), destination.prefix_len()).map_err(invalid)?.multipath(next_hops).build();
    handle.route().add(message).execute().await.map_err(os)
}

/// Destinations of the routes in every table, IPv4 and IPv6, and the
/// destination prefixes of the policy rules (`ip rule ... to PREFIX`): all
/// the networks the machine routes somewhere, in whatever table (a VPN's
/// routes often live in a table of their own).
pub async fn route_prefixes(handle: &Handle) -> io::Result<Vec<IpNet>> {
    let mut prefixes = Vec::new();
    let dumps = [
        (RouteMessageBuilder::<Ipv4Addr>::new().build(), IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        (RouteMessageBuilder::<Ipv6Addr>::new().build(), IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ];
    for (mut message, any) in dumps {
        // Every table, the local one too: the machine's own addresses are
        // as much off limits as its networks.
        message.header.table = 0;
        let mut routes = handle.route().get(message).execute();
        while let Some(route) = routes.try_next().await.map_err(os)? {
            let mut destination = any;
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = IpAddr::V4(*a),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = IpAddr::V6(*a),
                    _ => {}
                }
            }
            // Multicast and link-local routes every interface has say
            // nothing about the machine's networks.
            let prefix = IpNet::new(destination, route.header.destination_prefix_length).map_err(invalid)?;
            if !is_link_scope_noise(&prefix) {
                prefixes.push(prefix);
            }
        }
    }
    for family in [rtnetlink::IpVersion::V4, rtnetlink::IpVersion::V6] {
        let mut rules = handle.rule().get(family).execute();
        while let Some(rule) = rules.try_next().await.map_err(os)? {
            let length = rule.header.dst_len;
            for attribute in &rule.attributes {
                if let rtnetlink::packet_route::rule::RuleAttribute::Destination(address) = attribute {
                    if length > 0 {
                        prefixes.push(IpNet::new(*address, length).map_err(invalid)?);
                    }
                }
            }
        }
    }
    prefixes.sort();
    prefixes.dedup();
    Ok(prefixes)
}

/// fe80::/64, ff00::/8 and the like: on every IPv6 interface, no network.
fn is_link_scope_noise(prefix: &IpNet) -> bool {
    match prefix {
        IpNet::V6(p) => {
            let first = p.addr().segments()[0];
            (first & 0xffc0) == 0xfe80 || (first & 0xff00) == 0xff00
        }
        IpNet::V4(p) => p.addr().is_multicast(),
    }
}

pub async fn delete_route(handle: &Handle, destination: IpNet, via: IpAddr) -> io::Result<()> {
    handle.route().del(route_message(destination, via)?).execute().await.map_err(os)
}

/// Addresses of the neighbours (ARP and NDP entries) the namespace has
/// learned or been given, but for failed ones.
pub async fn neighbours(handle: &Handle) -> io::Result<Vec<IpAddr>> {
    use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
    let mut found = Vec::new();
    let mut entries = handle.neighbours().get().execute();
    while let Some(entry) = entries.try_next().await.map_err(os)? {
        if matches!(entry.header.state, NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::Noarp) {
            continue;
        }
        for attribute in &entry.attributes {
            match attribute {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => found.push(IpAddr::V4(*a)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => found.push(IpAddr::V6(*a)),
                _ => {}
            }
        }
    }
    Ok(found)
}

/// The flags of an RTM_NEWLINK that changes a link (no create, exclusive
/// or replace: the kernel refuses those on an existing link).
const CHANGE: u16 = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;

/// `ip link set INDEX type bridge ...`: the options given, times in the
/// kernel's clock_t (hundredths of a second).
pub async fn set_bridge_options(handle: &Handle, index: u32, options: &crate::policy::bridges::BridgeOptions) -> io::Result<()> {
    use rtnetlink::packet_route::link::{BridgeStpState, InfoBridge, InfoData, InfoKind, LinkInfo};
    let centi = |secs: u32| secs.saturating_mul(100);
    let mut data = vec![InfoBridge::StpState(if options.stp { BridgeStpState::KernelStp } else { BridgeStpState::Disabled })];
    data.extend(options.priority.map(InfoBridge::Priority));
    data.extend(options.forward_delay_secs.map(|s| InfoBridge::ForwardDelay(centi(s.into()))));
    data.extend(options.hello_secs.map(|s| InfoBridge::HelloTime(centi(s.into()))));
    data.extend(options.max_age_secs.map(|s| InfoBridge::MaxAge(centi(s.into()))));
    data.extend(options.ageing_secs.map(|s| InfoBridge::AgeingTime(centi(s))));
    data.extend(options.multicast_snooping.map(InfoBridge::MulticastSnooping));
    data.extend(options.vlan_filtering.map(InfoBridge::VlanFiltering));
    let info = LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge), LinkInfo::Data(InfoData::Bridge(data))]);
    // RTM_NEWLINK on the existing link, as `ip link set ... type` sends:
    // RTM_SETLINK ignores a link's kind data.
    handle.link().add(LinkUnspec::new_with_index(index).append_extra_attribute(info).build()).set_flags(CHANGE).execute().await.map_err(os)
}

/// `ip link set INDEX type bridge_slave cost COST`.
pub async fn set_port_cost(handle: &Handle, index: u32, cost: u32) -> io::Result<()> {
    use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind, LinkInfo};
    let info = LinkAttribute::LinkInfo(vec![LinkInfo::PortKind(InfoPortKind::Bridge), LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Cost(cost)]))]);
    // RTM_NEWLINK on the existing link, as `ip link set ... type` sends:
    // RTM_SETLINK ignores a link's kind data.
    handle.link().add(LinkUnspec::new_with_index(index).append_extra_attribute(info).build()).set_flags(CHANGE).execute().await.map_err(os)
}
