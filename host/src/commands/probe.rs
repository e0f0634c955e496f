//! `nsw probe LAB NODE ping|trace|tcp|throughput TARGET` and `nsw probe LAB
//! pingall`: a script's probes, on a lab that is up, from the command line
//! (Mininet's `pingall` and `iperf`). They run from the node's namespace
//! as `nsw exec` would, to any address (one the lab gave, one DHCP gave,
//! or beyond the lab), and say what came back; the exit status is 0 when
//! the probe got through.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::{CommandResult, Status, catch_signals, require_root, show};
use crate::backend::{ConnectOutcome, Hop, from_netns};
use crate::journal::Mode;
use crate::show::{LabView, NodeView};
use crate::stop::Stop;

#[derive(Args)]
pub struct ProbeArgs {
    lab: String,
    /// `NODE ping TARGET`, `NODE trace TARGET`, `NODE tcp TARGET PORT`,
    /// `NODE throughput TARGET`, or `pingall` (every node with an address
    /// pings every other one).
    #[arg(required = true, num_args = 1..=4, value_name = "NODE PROBE TARGET")]
    what: Vec<String>,
    /// Echo requests of a ping (1-100).
    #[arg(short = 'c', long, default_value_t = 3)]
    count: u32,
    /// How long to wait for each answer, in milliseconds (1-10000).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    timeout: u32,
    /// How long a throughput run lasts, in seconds (1-60).
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The probe asked for, its arguments checked.
enum Probe {
    Ping(IpAddr),
    Trace(IpAddr),
    Tcp(SocketAddr),
    Throughput(IpAddr),
}

fn parse_probe(kind: &str, rest: &[String]) -> Result<Probe> {
    let ip = |text: &str| crate::policy::parse_ip(text).map_err(|e| anyhow::anyhow!("{}", e.message()));
    let usage = "give NODE ping|trace|throughput TARGET, NODE tcp TARGET PORT, or pingall";
    Ok(match (kind, rest) {
        ("ping", [target]) => Probe::Ping(ip(target)?),
        ("trace", [target]) => Probe::Trace(ip(target)?),
        ("throughput", [target]) => Probe::Throughput(ip(target)?),
        ("tcp", [target, port]) => {
            let port: u16 = port.parse().ok().filter(|p| *p != 0).with_context(|| format!("{} is not a TCP port (1-65535)", crate::policy::quoted(port)))?;
            Probe::Tcp(SocketAddr::new(ip(target)?, port))
        }
        ("ping" | "trace" | "throughput" | "tcp", _) => bail!("wrong arguments for {kind}: {usage}"),
        _ => bail!("there is no probe {}: {usage}", crate::policy::quoted(kind)),
    })
}

/// Where a node's probes run: its namespace, or (a host-net lab's host)
/// this process's own.
fn netns_of<'a>(view: &'a LabView, node: &str) -> Result<(&'a NodeView, Option<&'a str>)> {
    let Some(found) = view.nodes.iter().find(|n| n.node == node) else {
        let nodes: Vec<&str> = view.nodes.iter().map(|n| n.node.as_str()).collect();
        bail!("lab {} has no node {}; its nodes are: {}", view.lab, crate::policy::quoted(node), nodes.join(", "));
    };
    if !found.present {
        bail!("node {node} of lab {} is gone (see nsw show {})", view.lab, view.lab);
    }
    let machine = view.mode == Mode::HostNet && found.node == crate::naming::HOST;
    // Only the lab's own namespaces: a journal names what it likes.
    if !machine && !crate::naming::netns_of_lab(&found.netns, &view.lab) {
        bail!("node {node} of lab {} is not in a namespace of the lab", view.lab);
    }
    Ok((found, (!machine).then_some(found.netns.as_str())))
}

/// A node's addresses now, the lab's and any other (DHCP), without
/// loopback and link-local ones.
fn addresses(node: &NodeView) -> Vec<IpAddr> {
    let mut all: Vec<IpAddr> = node
        .links
        .iter()
        .flat_map(|l| l.addresses.iter())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .filter(|a: &IpAddr| !a.is_loopback() && !matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .collect();
    // IPv4 first: a node's "address" in a table of nodes.
    all.sort_by_key(|a| a.is_ipv6());
    all.dedup();
    all
}

pub async fn exec(args: ProbeArgs) -> CommandResult {
    require_root("probe")?;
    if !(1..=100).contains(&args.count) {
        return Err(anyhow::anyhow!("--count {} is out of range 1-100", args.count).into());
    }
    if !(1..=10_000).contains(&args.timeout) {
        return Err(anyhow::anyhow!("--timeout {} ms is out of range 1-10000", args.timeout).into());
    }
    if !(1..=60).contains(&args.seconds) {
        return Err(anyhow::anyhow!("--seconds {} is out of range 1-60", args.seconds).into());
    }
    let probe = match args.what.as_slice() {
        [all] if all == "pingall" => None,
        [_, kind, rest @ ..] => Some(parse_probe(kind, rest)?),
        _ => return Err(anyhow::anyhow!("give NODE PROBE TARGET (ping, trace, tcp, throughput), or pingall").into()),
    };
    let view = super::show::read(&args.lab).await?;
    let stop = Stop::new();
    catch_signals(stop.clone())?;
    let timeout = Duration::from_millis(args.timeout as u64);
    let Some(probe) = probe else {
        return pingall(&view, timeout, &stop, args.json);
    };
    let node = &args.what[0];
    let (_, netns) = netns_of(&view, node)?;
    let ok = match probe {
        Probe::Ping(target) => {
            let stats = from_netns::ping(netns, target, args.count, timeout, Duration::from_millis(200), &stop).with_context(|| format!("ping {target} from {node}"))?;
            let avg = stats.avg.as_secs_f64() * 1e3;
            report(args.json, format!("{node} -> {target}: {}/{} replies, avg {avg:.3} ms", stats.received, stats.sent), || {
                serde_json::json!({ "probe": "ping", "node": node, "target": target, "sent": stats.sent, "received": stats.received, "avg_ms": avg, "min_ms": stats.min.as_secs_f64() * 1e3, "max_ms": stats.max.as_secs_f64() * 1e3 })
            });
            stats.received > 0
        }
        Probe::Trace(target) => {
            let hops = from_netns::trace(netns, target, &stop).with_context(|| format!("trace {target} from {node}"))?;
            let reached = hops.last().is_some_and(|h| h.address == Some(target));
            if args.json {
                let hops: Vec<_> = hops.iter().map(|h| serde_json::json!({ "ttl": h.ttl, "address": h.address, "rtt_ms": h.address.map(|_| h.rtt.as_secs_f64() * 1e3) })).collect();
                show!("{}", serde_json::json!({ "probe": "trace", "node": node, "target": target, "reached": reached, "hops": hops }));
            } else {
                show!("trace from {node} to {target}:");
                for hop in &hops {
                    match hop.address {
                        Some(address) => show!("{:3}  {address}  {:.3} ms", hop.ttl, hop.rtt.as_secs_f64() * 1e3),
                        None => show!("{:3}  *  (no answer to 3 probes)", hop.ttl),
                    }
                }
                match hops.last() {
                    _ if reached => {}
                    Some(Hop { address: Some(last), .. }) => show!("{target} not reached: the last answer, from {last}, says it goes no further"),
                    _ => show!("{target} not reached: no answer from the last hops"),
                }
            }
            reached
        }
        Probe::Tcp(to) => {
            let (outcome, took) = from_netns::tcp_connect(netns, to, timeout, &stop).with_context(|| format!("tcp-connect to {to} from {node}"))?;
            let said = match outcome {
                ConnectOutcome::Connected => "connected",
                ConnectOutcome::Refused => "refused",
                ConnectOutcome::TimedOut => "timed out",
                ConnectOutcome::Unreachable => "unreachable",
            };
            let ms = took.as_secs_f64() * 1e3;
            report(args.json, format!("{node} -> {to}: {said} in {ms:.3} ms"), || serde_json::json!({ "probe": "tcp", "node": node, "target": to, "outcome": said, "ms": ms }));
            outcome == ConnectOutcome::Connected
        }
        Probe::Throughput(target) => {
            // nsw's receiver listens in the node that has the address now.
            let holder = view.nodes.iter().filter(|n| n.present).find(|n| addresses(n).contains(&target));
            let Some(holder) = holder else {
                return Err(anyhow::anyhow!("no node of lab {} has {target} now: throughput needs nsw's receiver in the node that has the address", view.lab).into());
            };
            let (_, receiver) = netns_of(&view, &holder.node)?;
            let run = from_netns::throughput(netns, receiver, target, Duration::from_secs(args.seconds as u64), &stop).with_context(|| format!("throughput from {node} to {target}"))?;
            let mbits = run.bytes as f64 * 8.0 / run.seconds / 1e6;
            report(args.json, format!("{node} -> {target} (in {}): {mbits:.1} Mbit/s over {:.1} s, {} retransmits", holder.node, run.seconds, run.retransmits), || {
                serde_json::json!({ "probe": "throughput", "node": node, "target": target, "receiver": holder.node, "mbit_per_s": mbits, "seconds": run.seconds, "bytes": run.bytes, "retransmits": run.retransmits })
            });
            run.bytes > 0
        }
    };
    Ok(if ok { Status::Success } else { Status::GuestError })
}

fn report(json: bool, text: String, value: impl FnOnce() -> serde_json::Value) {
    if json {
        show!("{}", value());
    } else {
        show!("{text}");
    }
}

#[derive(Serialize)]
struct PingallRow {
    node: String,
    /// Per other node: its address and whether it answered.
    reached: Vec<(String, IpAddr, bool)>,
}

/// Every node that has an address pings the first address of every other
/// one, once (IPv4 first), all sources at once: Mininet's `pingall`.
fn pingall(view: &LabView, timeout: Duration, stop: &Stop, json: bool) -> CommandResult {
    let mut nodes = Vec::new();
    for node in view.nodes.iter().filter(|n| n.present) {
        // Not the machine's own namespace: its addresses are the machine's.
        let Ok((_, Some(netns))) = netns_of(view, &node.node) else { continue };
        if let Some(address) = addresses(node).first() {
            nodes.push((node.node.clone(), netns.to_string(), *address));
        }
    }
    if nodes.len() < 2 {
        return Err(anyhow::anyhow!("lab {} has {} node{} with an address: nothing to ping", view.lab, nodes.len(), if nodes.len() == 1 { "" } else { "s" }).into());
    }
    let rows: Vec<Result<PingallRow>> = std::thread::scope(|scope| {
        let workers: Vec<_> = nodes
            .iter()
            .map(|(name, netns, _)| {
                let nodes = &nodes;
                scope.spawn(move || -> Result<PingallRow> {
                    let mut reached = Vec::new();
                    for (other, _, address) in nodes.iter().filter(|(other, ..)| other != name) {
                        let stats = from_netns::ping(Some(netns), *address, 1, timeout, Duration::ZERO, stop).with_context(|| format!("ping {address} from {name}"))?;
                        reached.push((other.clone(), *address, stats.received > 0));
                    }
                    Ok(PingallRow { node: name.clone(), reached })
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a ping thread panicked")))).collect()
    });
    let rows: Vec<PingallRow> = rows.into_iter().collect::<Result<_>>()?;
    let total: usize = rows.iter().map(|r| r.reached.len()).sum();
    let answered: usize = rows.iter().map(|r| r.reached.iter().filter(|(.., ok)| *ok).count()).sum();
    if json {
        show!("{}", serde_json::json!({ "probe": "pingall", "lab": view.lab, "pings": total, "answered": answered, "nodes": rows }));
    } else {
        let width = rows.iter().map(|r| r.node.len()).max().unwrap_or(0);
        for row in &rows {
            let cells: Vec<String> = row.reached.iter().map(|(other, _, ok)| if *ok { other.clone() } else { "X".into() }).collect();
            show!("{:width$} -> {}", row.node, cells.join(" "));
        }
        show!("nsw: {answered} of {total} pings answered");
    }
    Ok(if answered == total { Status::Success } else { Status::GuestError })
}
