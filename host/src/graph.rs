//! A picture of a lab (`nsw graph`): its nodes and bridges, veth pairs as
//! edges labelled with both ends' names and addresses; as Graphviz dot,
//! Mermaid (GitHub renders it) or JSON. Node names, not namespace names:
//! the same lab draws the same whatever it is called.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::show::{LabView, LinkOut};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Vertex {
    pub id: String,
    pub label: String,
    /// `node`, `bridge` or `outside`.
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
    /// `veth`, `bridge` (a bridge in its node) or `uplink`.
    pub kind: &'static str,
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

pub fn build(lab: &LabView) -> Graph {
    let mut vertices = BTreeSet::new();
    let mut edges = BTreeSet::new();
    // Where a link's traffic meets the picture: its bridge, or its node.
    let attach = |node: &str, link: &LinkOut| match &link.master {
        Some(bridge) => ident("b", &[node, bridge]),
        None => ident("n", &[node]),
    };
    for node in &lab.nodes {
        vertices.insert(Vertex { id: ident("n", &[&node.node]), label: node.node.clone(), kind: "node" });
        for link in &node.links {
            match link.kind.as_deref() {
                Some("bridge") => {
                    let id = ident("b", &[&node.node, &link.name]);
                    vertices.insert(Vertex { id: id.clone(), label: end_label(link), kind: "bridge" });
                    edges.insert(Edge { from: ident("n", &[&node.node]), to: id, label: String::new(), kind: "bridge" });
                }
                Some("tun") if link.name == "uplink0" => {
                    vertices.insert(Vertex { id: "outside".into(), label: "outside (uplink)".into(), kind: "outside" });
                    edges.insert(Edge { from: attach(&node.node, link), to: "outside".into(), label: end_label(link), kind: "uplink" });
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
            edges.insert(Edge { from: attach(&node.node, link), to, label: format!("{} — {far_label}", end_label(link)), kind: "veth" });
        }
    }
    Graph { vertices: vertices.into_iter().collect(), edges: edges.into_iter().collect() }
}

pub fn dot(lab: &str, graph: &Graph) -> String {
    let mut out = format!("graph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n", quote(lab));
    for v in &graph.vertices {
        let shape = match v.kind {
            "bridge" => "ellipse",
            "outside" => "plaintext",
            _ => "box",
        };
        let _ = writeln!(out, "  {} [label=\"{}\", shape={shape}];", v.id, quote(&v.label));
    }
    for e in &graph.edges {
        let style = if e.kind == "bridge" { ", style=dashed" } else { "" };
        let _ = writeln!(out, "  {} -- {} [label=\"{}\"{style}];", e.from, e.to, quote(&e.label));
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
            "outside" => format!(">\"{}\"]", text(&v.label)),
            _ => format!("[\"{}\"]", text(&v.label)),
        };
        let _ = writeln!(out, "  {}{shape}", v.id);
    }
    for e in &graph.edges {
        let line = if e.kind == "bridge" { "-.-" } else { "---" };
        if e.label.is_empty() {
            let _ = writeln!(out, "  {} {line} {}", e.from, e.to);
        } else {
            let _ = writeln!(out, "  {} {line}|\"{}\"| {}", e.from, text(&e.label), e.to);
        }
    }
    out
}
