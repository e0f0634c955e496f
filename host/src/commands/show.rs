//! `nsw show LAB [--json]`: the lab as the kernel has it now.

use clap::Args;

use super::{CommandResult, Status, require_root, show};
use crate::backend;
use crate::encode::terminal::one_line;
use crate::journal::StateDir;
use crate::show::{LabView, NodeView};

#[derive(Args)]
pub struct ShowArgs {
    lab: String,
    /// Print JSON (its shape is documented in docs/show.md).
    #[arg(long)]
    json: bool,
    /// A lab across machines: every machine's part.
    #[command(flatten)]
    pub(crate) store: super::agent::StoreArgs,
}

/// Read a lab from the kernel (each machine's, for a lab across machines
/// when `store` is given).
pub async fn read_any(lab: &str, store: &super::agent::StoreArgs) -> anyhow::Result<LabView> {
    if !store.given() {
        require_root("show")?;
        return read(lab).await;
    }
    crate::policy::check_lab_name(lab).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let mut client = store.connect().await?;
    let Some((view, away)) = crate::spread::labs::view(&mut client, lab).await? else {
        anyhow::bail!("the cluster has no lab {lab} (see nsw ls --store)");
    };
    if !away.is_empty() {
        crate::tell::say!("nsw: not shown: the parts on {} (their agents are away or did not answer)", one_line(&away.join(", ")));
    }
    Ok(view)
}

/// Read a lab from the kernel, by its journal.
pub async fn read(lab: &str) -> anyhow::Result<LabView> {
    crate::policy::check_lab_name(lab).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let Some(record) = StateDir::system().read(lab)? else {
        anyhow::bail!("there is no lab {lab} (see nsw ls)");
    };
    crate::show::read(&record, &mut backend::system()).await
}

pub async fn exec(args: ShowArgs) -> CommandResult {
    let view = read_any(&args.lab, &args.store).await?;
    if args.json {
        show!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(Status::Success);
    }
    for node in &view.nodes {
        print_node(node);
    }
    if let Some(tasks) = &view.tasks {
        let refused = if tasks.refused > 0 { format!(", {} forks refused", tasks.refused) } else { String::new() };
        show!("the lab's programs: {} of {} tasks (--max-tasks){refused}", tasks.current, tasks.max);
    }
    for problem in &view.flagged {
        show!("! {problem}");
    }
    Ok(Status::Success)
}

/// One node as a small table: a link per line, then its routes. IPv6
/// link-local addresses are left to `--json` (every link has one).
fn print_node(node: &NodeView) {
    let mut about = vec![format!("netns {}", node.netns)];
    if let Some(machine) = &node.machine {
        about.push(format!("on machine {}", one_line(machine)));
    }
    match (node.forwarding.ipv4, node.forwarding.ipv6) {
        (true, true) => about.push("forwards IPv4 and IPv6".into()),
        (true, false) => about.push("forwards IPv4".into()),
        (false, true) => about.push("forwards IPv6".into()),
        (false, false) => {}
    }
    if let Some(nft) = &node.nft {
        let rules = nft["nftables"].as_array().map(|a| a.iter().filter(|o| o.get("rule").is_some()).count()).unwrap_or(0);
        about.push(format!("the lab's nftables table: {rules} rule{}", if rules == 1 { "" } else { "s" }));
    }
    if !node.present {
        about.push("GONE".into());
    }
    show!("{}  ({})", node.node, about.join(", "));
    let spanning: Vec<&String> = node.links.iter().filter(|l| l.stp == Some(true)).map(|l| &l.name).collect();
    let mut rows = vec![["LINK", "KIND", "STATE", "ADDRESSES", "MTU", "DETAILS"].map(String::from).to_vec()];
    for link in &node.links {
        let state = if link.state == "up" && !link.carrier { "up, no carrier".to_string() } else { link.state.to_string() };
        let addresses: Vec<&str> = link.addresses.iter().map(String::as_str).filter(|a| !a.starts_with("fe80:")).collect();
        let mut details = Vec::new();
        if let Some(master) = &link.master {
            details.push(format!("port of {master}"));
        }
        if let Some(peer) = &link.peer {
            details.push(format!("peer {}:{}", peer.node, peer.link));
        }
        match (link.conditions.is_empty(), link.qdisc.as_deref().filter(|q| *q != "noqueue")) {
            (false, _) => details.extend(link.conditions.iter().cloned()),
            (true, Some(qdisc)) => details.push(format!("qdisc {qdisc}")),
            (true, None) => {}
        }
        // A port's state means something only under a spanning tree.
        match (link.stp, &link.port_state) {
            (Some(true), _) => details.push("stp on".into()),
            (_, Some(state)) if link.master.as_ref().is_some_and(|m| spanning.contains(&m)) => {
                details.push(format!("stp {state}{}", link.port_cost.map(|c| format!(", cost {c}")).unwrap_or_default()))
            }
            _ => {}
        }
        if let Some(mac) = link.mac.as_deref().filter(|m| *m != "00:00:00:00:00:00") {
            details.push(mac.to_string());
        }
        rows.push(vec![
            link.name.clone(),
            link.kind.clone().unwrap_or_else(|| "-".into()),
            state,
            if addresses.is_empty() { "-".into() } else { addresses.join(" ") },
            link.mtu.to_string(),
            details.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        show!("  {}", cells.join("  ").trim_end());
    }
    // As `ip route` prints them: who put a route there and its metric, so
    // a daemon's route and the kernel's connected one are told apart, and
    // every next hop of a multipath route.
    let hop = |via: &Option<String>, dev: &Option<String>| {
        let via = via.as_deref().map(|v| format!(" via {v}")).unwrap_or_default();
        let dev = dev.as_deref().map(|d| format!(" dev {d}")).unwrap_or_default();
        format!("{via}{dev}")
    };
    for route in &node.routes {
        let table = if route.table == "main" { String::new() } else { format!(" table {}", route.table) };
        let metric = route.metric.map(|m| format!(" metric {m}")).unwrap_or_default();
        let hops: String = route.nexthops.iter().map(|h| format!(" nexthop{} weight {}", hop(&h.via, &h.dev), h.weight)).collect();
        show!("  route {}{} proto {}{metric}{table}{hops}", route.destination, hop(&route.via, &route.dev), route.protocol);
    }
    for p in &node.processes {
        show!("  process {} (pid {}) {}", one_line(&p.program), p.pid, if p.running { "running" } else { "ended" });
    }
    // The lab's firewall and NAT in nft's own words, its marker chain
    // (which only says whose the table is) left out.
    if let Some(text) = &node.nft_text {
        let mut marker = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            marker = marker || line.trim_start().starts_with("chain nsw-owner-");
            if !marker {
                show!("  | {}", one_line(&line.trim_end().replace('\t', "    ")));
            }
            marker = marker && line.trim() != "}";
        }
    }
}
