//! A lab as the kernel has it now, read over netlink and checked against
//! the journal: what `nsw show` prints and `nsw graph` draws.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::backend::Survey;
use crate::backend::survey::NetnsView;
use crate::journal::{LabRecord, Mode, NetnsRef, Object};

/// The lab, as `nsw show --json` prints it (docs/show.md has the schema).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabView {
    pub lab: String,
    pub mode: Mode,
    pub nodes: Vec<NodeView>,
    /// What the journal says the lab owns but the kernel lacks, or has
    /// someone else's in its place.
    pub flagged: Vec<String>,
    /// The lab's programs' processes and threads, against `--max-tasks`,
    /// if the lab has a cgroup.
    pub tasks: Option<TasksOut>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TasksOut {
    /// Processes and threads of the lab's programs now.
    pub current: u64,
    pub max: u64,
    /// Forks the limit refused so far.
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    /// The name the script gave it (`host` for the lab's host).
    pub node: String,
    /// Across machines: the machine that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Its namespace (`pbj-pb`), or `machine` for a host-net lab's host.
    pub netns: String,
    pub present: bool,
    pub forwarding: Forwarding,
    pub links: Vec<LinkOut>,
    pub routes: Vec<RouteOut>,
    /// The lab's nftables table there, as `nft -j` lists it.
    pub nft: Option<serde_json::Value>,
    /// The same in nft's words (for the text; `nft` is the JSON's).
    #[serde(skip)]
    pub nft_text: Option<String>,
    /// The programs the lab started there.
    pub processes: Vec<ProcessOut>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessOut {
    pub program: String,
    pub pid: u32,
    /// Still running (the same process: pid and start time).
    pub running: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Forwarding {
    pub ipv4: bool,
    pub ipv6: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkOut {
    pub name: String,
    pub kind: Option<String>,
    /// `up` or `down`, as set.
    pub state: String,
    pub carrier: bool,
    pub mtu: u32,
    pub mac: Option<String>,
    pub qdisc: Option<String>,
    /// Its conditions: each queueing discipline but the default ones, as
    /// `tc qdisc show` words it (`netem 1: limit 1000 delay 50ms loss 1%`).
    pub conditions: Vec<String>,
    /// Its bridge, if it is a bridge port.
    pub master: Option<String>,
    /// A veth's other end.
    pub peer: Option<PeerOut>,
    pub addresses: Vec<String>,
    /// The lab made it (the journal has it).
    pub owned: bool,
    /// A bridge's spanning tree: on or off (null for other links).
    pub stp: Option<bool>,
    /// A bridge port's spanning-tree state and path cost.
    pub port_state: Option<String>,
    pub port_cost: Option<u32>,
    /// A VXLAN end (a link across machines): its VNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerOut {
    pub node: String,
    pub link: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteOut {
    /// A prefix, or `default`.
    pub destination: String,
    pub via: Option<String>,
    pub dev: Option<String>,
    /// `main`, or the table's number.
    pub table: String,
    /// Who put it there, as iproute2 names it (`kernel`, `boot`, `static`,
    /// `bird`, `zebra`, `ospf`, `dhcp`...), or its number.
    pub protocol: String,
    pub metric: Option<u32>,
    /// A multipath route's next hops (`via` and `dev` are then null).
    pub nexthops: Vec<NextHopOut>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NextHopOut {
    pub via: Option<String>,
    pub dev: Option<String>,
    pub weight: u32,
}

/// A route's protocol as iproute2's `rt_protos` names it.
fn protocol_name(protocol: u8) -> String {
    let name = match protocol {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        18 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        other => return other.to_string(),
    };
    name.to_string()
}

/// Read the lab `record` describes from the kernel.
pub async fn read(record: &LabRecord, kernel: &mut dyn Survey) -> anyhow::Result<LabView> {
    let table = crate::naming::nft_table(&record.info.name);
    // Node of each namespace, as the journal knows them.
    let mut places: Vec<(NetnsRef, String)> = Vec::new();
    if record.info.mode == Mode::HostNet {
        places.push((NetnsRef::Machine, crate::naming::HOST.into()));
    }
    places.extend(record.namespaces().map(|(name, node)| (NetnsRef::Named(name.into()), node.to_string())));
    let node_of: HashMap<NetnsRef, String> = places.iter().cloned().collect();
    let has_table = |place: &NetnsRef| record.objects.iter().any(|o| matches!(&o.object, Object::NftTable { netns, .. } if netns == place));
    let mut views = Vec::new();
    for (place, _) in &places {
        let name = match place {
            NetnsRef::Machine => None,
            NetnsRef::Named(n) => Some(n.as_str()),
        };
        let wanted = has_table(place).then_some(table.as_str());
        views.push(kernel.survey(name, wanted).await?);
    }
    let mut flagged = Vec::new();
    let mut nodes = Vec::new();
    for ((place, node), view) in places.iter().zip(&views) {
        let netns = match place {
            NetnsRef::Machine => "machine".to_string(),
            NetnsRef::Named(n) => n.clone(),
        };
        let Some(view) = view else {
            flagged.push(format!("netns {netns} (node {node}) is gone"));
            nodes.push(NodeView { node: node.clone(), netns, present: false, forwarding: Forwarding::default(), links: vec![], routes: vec![], nft: None, nft_text: None, processes: vec![], machine: None });
            continue;
        };
        let mut shown = node_view(record, place, node, netns, view, &node_of, &mut flagged);
        shown.processes = processes(record, place, kernel).await;
        nodes.push(shown);
    }
    let tasks = kernel.lab_tasks(&record.info.name).await.map(|(current, max, refused)| TasksOut { current, max, refused });
    Ok(LabView { lab: record.info.name.clone(), mode: record.info.mode, nodes, flagged, tasks })
}

/// The programs the journal says the lab started in `place`, and whether
/// each still runs.
async fn processes(record: &LabRecord, place: &NetnsRef, kernel: &mut dyn Survey) -> Vec<ProcessOut> {
    let mut found = Vec::new();
    for owned in &record.objects {
        if let (Object::Process { netns, program }, Some(pid), Some(since)) = (&owned.object, owned.ident, owned.since) {
            if netns == place {
                let running = kernel.process_running(crate::backend::ProcessId { pid: pid as u32, since }).await;
                found.push(ProcessOut { program: program.clone(), pid: pid as u32, running });
            }
        }
    }
    found
}

fn node_view(
    record: &LabRecord,
    place: &NetnsRef,
    node: &str,
    netns: String,
    view: &NetnsView,
    node_of: &HashMap<NetnsRef, String>,
    flagged: &mut Vec<String>,
) -> NodeView {
    // The journal's links here: name -> (identity, peer's journal id).
    let owned: HashMap<&str, (Option<u64>, Option<u32>)> = record
        .objects
        .iter()
        .filter_map(|o| match &o.object {
            Object::Link { netns, name, peer, .. } if netns == place => Some((name.as_str(), (o.ident, *peer))),
            _ => None,
        })
        .collect();
    let name_of: HashMap<u32, &str> = view.links.iter().map(|l| (l.index, l.name.as_str())).collect();
    let on_machine = *place == NetnsRef::Machine;
    let mut links = Vec::new();
    for link in &view.links {
        let mine = owned.get(link.name.as_str());
        // On the machine, only what the lab made is the lab's to show.
        if on_machine && mine.is_none() {
            continue;
        }
        if let (true, Some((Some(ident), _))) = (on_machine, mine) {
            if *ident != link.index as u64 {
                flagged.push(format!("{} in the machine's namespace is another link now (index {}, the lab's was {ident})", link.name, link.index));
            }
        }
        let peer = mine.and_then(|(_, peer)| *peer).and_then(|id| record.objects.iter().find(|o| o.id == id)).and_then(|o| match &o.object {
            Object::Link { netns, name, .. } => Some(PeerOut { node: node_of.get(netns).cloned().unwrap_or_else(|| netns.to_string()), link: name.clone() }),
            _ => None,
        });
        links.push(LinkOut {
            name: link.name.clone(),
            kind: link.kind.clone(),
            state: if link.up { "up" } else { "down" }.to_string(),
            vni: link.vni,
            carrier: link.carrier,
            mtu: link.mtu,
            mac: link.mac.clone(),
            qdisc: link.qdisc.clone(),
            conditions: view.queues.iter().filter(|(dev, _)| *dev == link.name).map(|(_, said)| said.clone()).collect(),
            master: link.master.and_then(|m| name_of.get(&m)).map(|n| n.to_string()),
            peer,
            addresses: view.addresses.iter().filter(|a| a.link == link.index).map(|a| a.cidr.to_string()).collect(),
            owned: mine.is_some(),
            stp: link.stp,
            port_state: link.port_state.clone(),
            port_cost: link.port_cost,
        });
    }
    for name in owned.keys() {
        if !view.links.iter().any(|l| l.name == *name) {
            flagged.push(format!("{name} in {} is gone", if on_machine { "the machine's namespace".to_string() } else { format!("netns {netns}") }));
        }
    }
    let shown: Vec<u32> = view.links.iter().filter(|l| !on_machine || owned.contains_key(l.name.as_str())).map(|l| l.index).collect();
    let routes = view
        .routes
        .iter()
        .filter(|r| !on_machine || r.dev.is_some_and(|d| shown.contains(&d)))
        .map(|r| RouteOut {
            destination: if r.destination.prefix_len() == 0 { "default".into() } else { r.destination.to_string() },
            via: r.via.map(|v| v.to_string()),
            dev: r.dev.and_then(|d| name_of.get(&d)).map(|n| n.to_string()),
            table: if r.table == 254 { "main".into() } else { r.table.to_string() },
            protocol: protocol_name(r.protocol),
            metric: r.metric,
            nexthops: r
                .next_hops
                .iter()
                .map(|h| NextHopOut { via: h.via.map(|v| v.to_string()), dev: name_of.get(&h.dev).map(|n| n.to_string()), weight: h.weight })
                .collect(),
        })
        .collect();
    NodeView {
        node: node.to_string(),
        machine: None,
        netns,
        present: true,
        forwarding: Forwarding { ipv4: view.forwarding_ipv4, ipv6: view.forwarding_ipv6 },
        links,
        routes,
        nft: view.nft.clone(),
        nft_text: view.nft_text.clone(),
        processes: Vec::new(),
    }
}
