//! rtnetlink requests, one connection per namespace. A netlink socket
//! belongs to the namespace of the thread that opened it, so each one is
//! opened on a thread inside its namespace and then driven from tokio.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoVeth, LinkAttribute, LinkInfo, State};
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

/// Create a veth pair: `name` here, `peer` in the namespace `peer_ns` (or
/// here too when `None`).
pub async fn create_veth(handle: &Handle, name: &str, peer: &str, peer_ns: Option<&OwnedFd>) -> io::Result<()> {
    let mut peer_msg = LinkUnspec::new_with_name(peer);
    if let Some(ns) = peer_ns {
        peer_msg = peer_msg.setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(ns));
    }
    let msg = LinkVeth::new(name, peer)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
        .build();
    handle.link().add(msg).execute().await.map_err(os)
}

pub async fn create_bridge(handle: &Handle, name: &str) -> io::Result<()> {
    handle.link().add(LinkBridge::new(name).build()).execute().await.map_err(os)
}

/// Move link `index` into the namespace `to`.
pub async fn move_link(handle: &Handle, index: u32, to: &OwnedFd) -> io::Result<()> {
    let msg = LinkUnspec::new_with_index(index).setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(to)).build();
    handle.link().set(msg).execute().await.map_err(os)
}

pub async fn set_master(handle: &Handle, port: u32, bridge: u32) -> io::Result<()> {
    let msg = LinkUnspec::new_with_index(port).controller(bridge).build();
    handle.link().set(msg).execute().await.map_err(os)
}

pub async fn set_up(handle: &Handle, index: u32) -> io::Result<()> {
    handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(os)
}

/// `ip link set INDEX addrgenmode none`.
pub async fn disable_ipv6_link_local(handle: &Handle, index: u32) -> io::Result<()> {
    let spec = LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])]);
    let msg = LinkUnspec::new_with_index(index).append_extra_attribute(spec).build();
    handle.link().set(msg).execute().await.map_err(os)
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

/// Whether link `index` is operationally up: the kernel has processed its
/// carrier (linkwatch installed its queueing discipline); before that a
/// veth drops what it is given.
pub async fn oper_up(handle: &Handle, index: u32) -> io::Result<bool> {
    let mut links = handle.link().get().match_index(index).execute();
    match links.try_next().await.map_err(os)? {
        Some(msg) => Ok(msg.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up)))),
        None => Err(io::Error::from_raw_os_error(libc::ENODEV)),
    }
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

/// Destinations of the routes in the main table, IPv4 and IPv6.
pub async fn route_prefixes(handle: &Handle) -> io::Result<Vec<IpNet>> {
    const MAIN: u32 = 254;
    let mut prefixes = Vec::new();
    let dumps = [
        (RouteMessageBuilder::<Ipv4Addr>::new().build(), IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        (RouteMessageBuilder::<Ipv6Addr>::new().build(), IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ];
    for (message, any) in dumps {
        let mut routes = handle.route().get(message).execute();
        while let Some(route) = routes.try_next().await.map_err(os)? {
            let mut table = route.header.table as u32;
            let mut destination = any;
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = IpAddr::V4(*a),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = IpAddr::V6(*a),
                    _ => {}
                }
            }
            if table == MAIN {
                prefixes.push(IpNet::new(destination, route.header.destination_prefix_length).map_err(invalid)?);
            }
        }
    }
    Ok(prefixes)
}

pub async fn delete_route(handle: &Handle, destination: IpNet, via: IpAddr) -> io::Result<()> {
    handle.route().del(route_message(destination, via)?).execute().await.map_err(os)
}
