//! A picture of a lab (`nsw graph`): its nodes and bridges, veth pairs as
//! edges labelled with both ends' names and addresses; as Graphviz dot,
//! Mermaid (GitHub renders it) or JSON. Node names, not namespace names:
//! the same lab draws the same whatever it is called. Drawn to be read at
//! size: a node that is only a bridge and its ports is one switch, a link
//! that is down or has conditions says so, a contained lab's host that
//! nothing uses is left out.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::show::{LabView, LinkOut, NodeView};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Vertex {
    pub id: String,
    pub label: String,
    /// `node`, `switch` (a node that is only a bridge), `bridge` or
    /// `outside`.
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
    /// `veth`, `bridge` (a bridge in its node) or `uplink`.
    pub kind: &'static str,
    /// Either end is down or has no carrier.
    pub down: bool,
    /// Either end's conditions, as `tc` words them.
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Graph {
    pub vertices: Vec<Vertex>,
    pub edges: Vec<Edge>,
}

use crate::encode::diagram::{dot_string as quote, ident, mermaid_text};

/// A link's name and the addresses the lab gave it (not the link-local
/// ones the kernel makes up from random MACs: the picture would change
/// with every run).
fn end_label(link: &LinkOut) -> String {
    let addresses: Vec<&str> = link.addresses.iter().map(String::as_str).filter(|a| !a.starts_with("fe80:")).collect();
    if addresses.is_empty() { link.name.clone() } else { format!("{} {}", link.name, addresses.join(" ")) }
}

/// A node that is one bridge and its ports, with no address: a switch.
fn is_switch(node: &NodeView) -> bool {
    let links: Vec<&LinkOut> = node.links.iter().filter(|l| l.name != "lo").collect();
    let bridges: Vec<&&LinkOut> = links.iter().filter(|l| l.kind.as_deref() == Some("bridge")).collect();
    let [bridge] = bridges.as_slice() else { return false };
    links.iter().all(|l| l.addresses.iter().all(|a| a.starts_with("fe80:")) && (l.name == bridge.name || l.master.as_deref() == Some(bridge.name.as_str())))
}

/// The contained lab's host, when nothing of the lab touches it.
fn is_unused_host(lab: &LabView, node: &NodeView) -> bool {
    lab.mode == crate::journal::Mode::Contained && node.node == crate::naming::HOST && node.links.iter().all(|l| l.name == "lo") && node.processes.is_empty()
}

pub fn build(lab: &LabView) -> Graph {
    let mut vertices = BTreeSet::new();
    let mut edges = BTreeSet::new();
    let switches: BTreeSet<&str> = lab.nodes.iter().filter(|n| is_switch(n)).map(|n| n.node.as_str()).collect();
    // Where a link's traffic meets the picture: its bridge, or its node
    // (a switch is its bridge).
    let attach = |node: &str, link: &LinkOut| match &link.master {
        Some(bridge) if !switches.contains(node) => ident("b", &[node, bridge]),
        _ => ident("n", &[node]),
    };
    for node in lab.nodes.iter().filter(|n| !is_unused_host(lab, n)) {
        let switch = switches.contains(node.node.as_str());
        vertices.insert(Vertex { id: ident("n", &[&node.node]), label: node.node.clone(), kind: if switch { "switch" } else { "node" } });
        for link in &node.links {
            match link.kind.as_deref() {
                Some("bridge") if switch => {}
                Some("bridge") => {
                    let id = ident("b", &[&node.node, &link.name]);
                    vertices.insert(Vertex { id: id.clone(), label: end_label(link), kind: "bridge" });
                    edges.insert(Edge { from: ident("n", &[&node.node]), to: id, label: String::new(), kind: "bridge", down: false, conditions: Vec::new() });
                }
                Some("tun") if link.name == "uplink0" => {
                    vertices.insert(Vertex { id: "outside".into(), label: "outside (uplink)".into(), kind: "outside" });
                    edges.insert(Edge { from: attach(&node.node, link), to: "outside".into(), label: end_label(link), kind: "uplink", down: is_down(link), conditions: link.conditions.clone() });
                }
                _ => {}
            }
            let Some(peer) = &link.peer else { continue };
            // Each pair once: from the end that sorts first.
            if (node.node.as_str(), link.name.as_str()) > (peer.node.as_str(), peer.link.as_str()) {
                continue;
            }
            let far = lab.nodes.iter().find(|n| n.node == peer.node).and_then(|n| n.links.iter().find(|l| l.name == peer.link));
            let (to, far_label) = match far {
                Some(far) => (attach(&peer.node, far), end_label(far)),
                None => (ident("n", &[&peer.node]), peer.link.clone()),
            };
            let down = is_down(link) || far.is_none_or(is_down);
            let conditions: Vec<String> = link.conditions.iter().chain(far.map(|f| &f.conditions).into_iter().flatten()).cloned().collect();
            // A link between machines (a lab across machines) is drawn as
            // one, whatever carries it.
            let kind = if link.kind.as_deref() == Some("vxlan") { "vxlan" } else { "veth" };
            edges.insert(Edge { from: attach(&node.node, link), to, label: format!("{} — {far_label}", end_label(link)), kind, down, conditions });
        }
    }
    Graph { vertices: vertices.into_iter().collect(), edges: edges.into_iter().collect() }
}

fn is_down(link: &LinkOut) -> bool {
    link.state != "up" || !link.carrier
}

/// An edge's label with what is wrong with it: `(down)`, its conditions.
fn marked_label(e: &Edge) -> String {
    let mut label = e.label.clone();
    if e.down {
        label += " (down)";
    }
    for c in &e.conditions {
        label += &format!(" [{c}]");
    }
    label
}

pub fn dot(lab: &str, graph: &Graph) -> String {
    let mut out = format!("graph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n", quote(lab));
    for v in &graph.vertices {
        let shape = match v.kind {
            "bridge" => "ellipse",
            "switch" => "box3d",
            "outside" => "plaintext",
            _ => "box",
        };
        let _ = writeln!(out, "  {} [label=\"{}\", shape={shape}];", v.id, quote(&v.label));
    }
    for e in &graph.edges {
        let style = match (e.kind, e.down, e.conditions.is_empty()) {
            ("bridge", _, _) => ", style=dashed",
            (_, true, _) => ", style=dotted, color=gray50",
            (_, false, false) => ", color=darkorange, penwidth=2",
            _ => "",
        };
        let _ = writeln!(out, "  {} -- {} [label=\"{}\"{style}];", e.from, e.to, quote(&marked_label(e)));
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(graph: &Graph) -> String {
    let text = mermaid_text;
    let mut out = String::from("flowchart LR\n");
    for v in &graph.vertices {
        let shape = match v.kind {
            "bridge" => format!("(\"{}\")", text(&v.label)),
            "switch" => format!("[[\"{}\"]]", text(&v.label)),
            "outside" => format!(">\"{}\"]", text(&v.label)),
            _ => format!("[\"{}\"]", text(&v.label)),
        };
        let _ = writeln!(out, "  {}{shape}", v.id);
    }
    for e in &graph.edges {
        let line = match (e.kind, e.down, e.conditions.is_empty()) {
            ("bridge", _, _) | (_, true, _) => "-.-",
            (_, false, false) => "===",
            _ => "---",
        };
        let label = marked_label(e);
        if label.is_empty() {
            let _ = writeln!(out, "  {} {line} {}", e.from, e.to);
        } else {
            let _ = writeln!(out, "  {} {line}|\"{}\"| {}", e.from, text(&label), e.to);
        }
    }
    out
}
