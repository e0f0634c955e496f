//! Reading a namespace as it is (`nsw show`): one thread inside it opens a
//! netlink socket, reads the forwarding switches and lists the lab's
//! nftables table; then three netlink dumps.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute};
use rtnetlink::packet_route::link::{BridgePortState, BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoPortData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{netlink, netns};
use crate::backend::survey::{AddressView, LinkView, NetnsView, NextHopView, RouteView};

/// What the thread inside the namespace brings back.
struct Inside {
    socket: OwnedFd,
    forwarding: (bool, bool),
    nft: Option<serde_json::Value>,
    nft_text: Option<String>,
}

/// Read the namespace `ns` (its fd); `table`: the lab's nftables table,
/// to list if it is there.
pub async fn survey(ns: &OwnedFd, table: Option<&str>) -> io::Result<NetnsView> {
    let table = table.map(str::to_string);
    let inside = netns::run_in(ns, move || {
        let socket = netlink::socket_here()?;
        let switch = |path: &str| std::fs::read_to_string(path).map(|v| v.trim() == "1").unwrap_or(false);
        let forwarding = (switch("/proc/sys/net/ipv4/ip_forward"), switch("/proc/sys/net/ipv6/conf/all/forwarding"));
        let (nft, nft_text) = match &table {
            Some(table) => (list_table(table), list_table_text(table)),
            None => (None, None),
        };
        Ok(Inside { socket, forwarding, nft, nft_text })
    })?;
    let handle = netlink::drive(inside.socket);
    let links = links(&handle).await?;
    // `tc` only where a link has a queueing discipline of its own (most
    // have none: a process per namespace cost seconds at a thousand nodes).
    let shaped = links.iter().any(|l| l.qdisc.as_deref().is_some_and(|q| !DEFAULT_QDISCS.contains(&q)));
    let queues = if shaped { netns::run_in(ns, || Ok(queues()))? } else { Vec::new() };
    Ok(NetnsView {
        links,
        addresses: addresses(&handle).await?,
        routes: routes(&handle).await?,
        forwarding_ipv4: inside.forwarding.0,
        forwarding_ipv6: inside.forwarding.1,
        nft: inside.nft,
        nft_text: inside.nft_text,
        queues,
    })
}

/// What a link the lab has not shaped has: no queue of its own.
const DEFAULT_QDISCS: [&str; 2] = ["noqueue", "noop"];

/// `nft -j list table inet TABLE` in the calling thread's namespace, if
/// the table is there.
fn list_table(table: &str) -> Option<serde_json::Value> {
    let raw = nftables::helper::get_current_ruleset_raw(Some(super::tools::program("nft").as_os_str()), ["list", "table", "inet", table]).ok()?;
    serde_json::from_str(&raw).ok()
}

/// The same table in nft's own words, for people.
fn list_table_text(table: &str) -> Option<String> {
    let out = std::process::Command::new(super::tools::program("nft")).args(["list", "table", "inet", table]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Each link's queueing disciplines but the default ones, as `tc qdisc
/// show` says them (`netem ... delay 50ms loss 1%`, `tbf rate 10Mbit ...`):
/// (link name, its words after `dev NAME`). tc's words, because the
/// kernel's netem options have no parser in netlink-packet-route.
fn queues() -> Vec<(String, String)> {
    let Ok(out) = std::process::Command::new(super::tools::program("tc")).args(["qdisc", "show"]).output() else { return Vec::new() };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines() {
        // qdisc KIND HANDLE dev NAME [root|parent P] ...
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(kind), Some(at)) = (words.get(1), words.iter().position(|w| *w == "dev")) else { continue };
        if DEFAULT_QDISCS.contains(kind) || words.get(at + 1).is_none() {
            continue;
        }
        let mut said = vec![*kind];
        let mut rest = words[at + 2..].iter();
        while let Some(word) = rest.next() {
            match *word {
                "root" => {}
                "refcnt" => drop(rest.next()),
                other => said.push(other),
            }
        }
        found.push((words[at + 1].to_string(), said.join(" ")));
    }
    found
}

fn os(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

async fn links(handle: &Handle) -> io::Result<Vec<LinkView>> {
    let mut found = Vec::new();
    let mut dump = handle.link().get().execute();
    while let Some(msg) = dump.try_next().await.map_err(os)? {
        let mut view = LinkView {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            // The carrier itself (IFF_LOWER_UP), not the operational state,
            // which the kernel's link watch sets up to a second later: a
            // lab just built would show its links without carrier.
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            mtu: 0,
            mac: None,
            qdisc: None,
            master: None,
            peer_index: None,
            stp: None,
            port_state: None,
            port_cost: None,
            vni: None,
        };
        for attribute in msg.attributes {
            match attribute {
                LinkAttribute::IfName(name) => view.name = name,
                LinkAttribute::Mtu(mtu) => view.mtu = mtu,
                LinkAttribute::Qdisc(qdisc) => view.qdisc = Some(qdisc),
                LinkAttribute::Controller(master) => view.master = Some(master),
                LinkAttribute::Link(peer) => view.peer_index = Some(peer),
                LinkAttribute::Address(mac) if mac.len() == 6 => {
                    view.mac = Some(mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"));
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => view.kind = Some(kind.to_string()),
                            LinkInfo::Data(InfoData::Bridge(options)) => {
                                view.stp = options.iter().find_map(|o| match o {
                                    InfoBridge::StpState(state) => Some(*state != BridgeStpState::Disabled),
                                    _ => None,
                                });
                            }
                            LinkInfo::Data(InfoData::Vxlan(options)) => {
                                view.vni = options.iter().find_map(|o| match o {
                                    InfoVxlan::Id(vni) => Some(*vni),
                                    _ => None,
                                });
                            }
                            LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                                for o in port {
                                    match o {
                                        InfoBridgePort::State(state) => view.port_state = Some(port_state(state)),
                                        InfoBridgePort::Cost(cost) => view.port_cost = Some(cost),
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        found.push(view);
    }
    found.sort_by_key(|l| l.index);
    Ok(found)
}

/// A bridge port's spanning-tree state, as `bridge link` names it.
fn port_state(state: BridgePortState) -> String {
    match state {
        BridgePortState::Disabled => "disabled".into(),
        BridgePortState::Listening => "listening".into(),
        BridgePortState::Learning => "learning".into(),
        BridgePortState::Forwarding => "forwarding".into(),
        BridgePortState::Blocking => "blocking".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

async fn addresses(handle: &Handle) -> io::Result<Vec<AddressView>> {
    let mut found = Vec::new();
    let mut dump = handle.address().get().execute();
    while let Some(msg) = dump.try_next().await.map_err(os)? {
        let address = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = address {
            if let Ok(cidr) = IpNet::new(ip, msg.header.prefix_len) {
                found.push(AddressView { link: msg.header.index, cidr });
            }
        }
    }
    Ok(found)
}

/// The addresses of link `index`, in the kernel's order.
pub async fn addresses_of(handle: &Handle, index: u32) -> io::Result<Vec<IpNet>> {
    Ok(addresses(handle).await?.into_iter().filter(|a| a.link == index).map(|a| a.cidr).collect())
}

async fn routes(handle: &Handle) -> io::Result<Vec<RouteView>> {
    const LOCAL: u32 = 255;
    let mut found = Vec::new();
    let dumps = [
        (RouteMessageBuilder::<Ipv4Addr>::new().build(), IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        (RouteMessageBuilder::<Ipv6Addr>::new().build(), IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ];
    for (mut message, any) in dumps {
        message.header.table = 0;
        let mut dump = handle.route().get(message).execute();
        while let Some(route) = dump.try_next().await.map_err(os)? {
            if route.header.kind != RouteType::Unicast {
                continue;
            }
            let mut table = route.header.table as u32;
            let (mut destination, mut via, mut dev, mut metric, mut next_hops) = (any, None, None, None, Vec::new());
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Priority(p) => metric = Some(*p),
                    RouteAttribute::MultiPath(hops) => {
                        next_hops = hops
                            .iter()
                            .map(|hop| NextHopView {
                                via: hop.attributes.iter().find_map(|a| match a {
                                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                                    RouteAttribute::Gateway(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                                    _ => None,
                                }),
                                dev: hop.interface_index,
                                // The kernel keeps a weight less one.
                                weight: hop.hops as u32 + 1,
                            })
                            .collect()
                    }
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = IpAddr::V4(*a),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = IpAddr::V6(*a),
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => via = Some(IpAddr::V4(*a)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(a)) => via = Some(IpAddr::V6(*a)),
                    RouteAttribute::Oif(index) => dev = Some(*index),
                    _ => {}
                }
            }
            let Ok(destination) = IpNet::new(destination, route.header.destination_prefix_length) else { continue };
            // fe80::/64 on every IPv6 link says nothing about the lab.
            let link_local = matches!(destination, IpNet::V6(d) if (d.addr().segments()[0] & 0xffc0) == 0xfe80);
            if table != LOCAL && !link_local {
                found.push(RouteView { destination, via, dev, table, protocol: u8::from(route.header.protocol), metric, next_hops });
            }
        }
    }
    Ok(found)
}
