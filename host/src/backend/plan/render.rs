//! The plan's text for tables and queues: the `nft` and `tc` commands that
//! make what the kernel backend sends as JSON and netlink.

use super::sh;
use crate::backend::rules::{Direction, FilterRule, LabTable, OnLink, Protocol, Queue, TableChange, Verdict};

/// What the plan prints for one change to a lab's table: the change as
/// `nft` commands, for the reader, in comments; then, to run, exactly the
/// JSON batch the kernel backend hands `nft -j -f -`, in a quoted here
/// document (the shell expands nothing in it, and JSON quotes every name,
/// which nft's own syntax cannot do for every name the policy allows).
pub fn nft_lines(inside: &str, t: &LabTable, changes: &[TableChange]) -> Vec<String> {
    let mut lines: Vec<String> = readable_nft(t, changes).into_iter().map(|l| format!("#   {l}")).collect();
    let batch = crate::backend::kernel::nft::change_batch(t, changes);
    let json = serde_json::to_string(&batch).unwrap_or_default();
    lines.push(format!("{inside}nft -j -f - <<'{NFT_END}'"));
    lines.push(json);
    lines.push(NFT_END.to_string());
    lines
}

/// The end of a here document of the plan: never a line of JSON.
const NFT_END: &str = "NSW_NFT_END";

/// `nft` commands for one change to a lab's table (after its creation,
/// when `table.create`), as a reader would type them.
fn readable_nft(t: &LabTable, changes: &[TableChange]) -> Vec<String> {
    let (family, name) = (t.family.name(), sh(&t.name));
    let mut lines = Vec::new();
    if t.create {
        lines.push(format!("nft add table {family} {name}"));
        lines.push(format!("nft add chain {family} {name} nsw-owner-{:016x}", t.nonce));
    }
    let chain = |chain: &str, spec: &str| format!("nft add chain {family} {name} {} '{{ {spec} }}'", sh(chain));
    for change in changes {
        match change {
            TableChange::Masquerade { source } => {
                lines.push(chain("postrouting", "type nat hook postrouting priority 100; policy accept;"));
                let p = ip(source.addr().is_ipv4());
                lines.push(format!("nft add rule {family} {name} postrouting {p} saddr {source} {p} daddr != {source} masquerade"));
            }
            TableChange::PortForward { protocol, port, to, links } => {
                lines.push(chain("prerouting", "type nat hook prerouting priority -100; policy accept;"));
                let p = ip(to.is_ipv4());
                let to = if to.is_ipv4() { to.to_string() } else { format!("[{}]:{}", to.ip(), to.port()) };
                lines.push(format!("nft add rule {family} {name} prerouting {}{} dport {port} dnat {p} to {to}", on_links("iif", links), protocol.name()));
            }
            TableChange::FilterChain { direction } => {
                let d = direction.name();
                lines.push(chain(d, &format!("type filter hook {d} priority 0; policy accept;")));
                lines.push(format!("nft add rule {family} {name} {d} ct state established,related accept"));
            }
            TableChange::Filter(rule) => lines.push(format!("nft add rule {family} {name} {} {}", rule.direction.name(), filter(rule))),
            TableChange::Policy { direction, verdict } => {
                let d = direction.name();
                lines.push(chain(d, &format!("type filter hook {d} priority 0; policy {};", word(*verdict))));
            }
            TableChange::Loss { link, percent } => {
                let c = format!("loss-{link}");
                lines.push(chain(&c, &format!("type filter hook ingress device {} priority 0; policy accept;", sh(&format!("\"{link}\"")))));
                match percent {
                    Some(p) => {
                        lines.push(format!("nft flush chain {family} {name} {}", sh(&c)));
                        let below = ((p / 100.0) * 10_000.0).round() as u32;
                        if below > 0 {
                            lines.push(format!("nft add rule {family} {name} {} numgen random mod 10000 '<' {below} drop", sh(&c)));
                        }
                    }
                    None => lines.push(format!("nft delete chain {family} {name} {}", sh(&c))),
                }
            }
        }
    }
    lines
}

/// `sysctl -qw KEY=VALUE` with the key in its slash form, which sysctl
/// takes as it is: an interface name may hold dots (`r2v.100`), and the
/// dotted form would turn them into directories. One word for the shell.
/// sysctl splits its word at the first `=`, and a name may hold one
/// (`a=b`): such a key is written through `/proc/sys` with `tee`, inside
/// the namespace (`inside`), where the key is the namespace's.
pub fn sysctl_line(inside: &str, key: &str, value: &str) -> String {
    if key.contains('=') {
        format!("printf '%s\\n' {} | {inside}tee {} >/dev/null", sh(value), sh(&format!("/proc/sys/{key}")))
    } else {
        format!("{inside}sysctl -qw {}", sh(&format!("{key}={value}")))
    }
}

fn ip(v4: bool) -> &'static str {
    if v4 { "ip" } else { "ip6" }
}

fn word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "accept",
        Verdict::Drop => "drop",
        Verdict::Reject => "reject with icmpx port-unreachable",
    }
}

/// `iif`/`oif`: nft resolves the names to indexes when it loads the rule,
/// which is what the kernel backend matches (see [`OnLink`]).
fn on_links(key: &str, links: &[OnLink]) -> String {
    match links {
        [] => String::new(),
        [one] => format!("{key} {} ", sh(&one.name)),
        many => format!("{key} '{{ {} }}' ", many.iter().map(|l| format!("\"{}\"", l.name)).collect::<Vec<_>>().join(", ")),
    }
}

fn filter(rule: &FilterRule) -> String {
    let key = if rule.direction == Direction::Output { "oif" } else { "iif" };
    let mut words = on_links(key, &rule.links);
    if let Some(s) = rule.source {
        words += &format!("{} saddr {s} ", ip(s.addr().is_ipv4()));
    }
    if let Some(d) = rule.destination {
        words += &format!("{} daddr {d} ", ip(d.addr().is_ipv4()));
    }
    match (rule.protocol, rule.port) {
        (Some(p @ (Protocol::Tcp | Protocol::Udp)), Some(port)) => words += &format!("{} dport {port} ", p.name()),
        (Some(Protocol::Icmp), _) => words += "meta l4proto '{ icmp, ipv6-icmp }' ",
        (Some(p), None) => words += &format!("meta l4proto {} ", p.name()),
        (None, _) => {}
    }
    match (rule.verdict, rule.protocol) {
        (Verdict::Reject, Some(Protocol::Tcp)) => words + "reject with tcp reset",
        (v, _) => words + word(v),
    }
}

/// `tc` commands that give `ifname` the queue `queue` (or the default).
pub fn tc_lines(inside: &str, ifname: &str, queue: Option<&Queue>) -> Vec<String> {
    let dev = sh(ifname);
    let mut lines = vec![format!("{inside}tc qdisc del dev {dev} root 2>/dev/null || true")];
    let Some(q) = queue else { return lines };
    let tbf = |rate: u64| {
        let burst = (rate / 8 / 100).max(3028);
        match q.limit_packets {
            Some(p) => format!("tbf rate {rate}bit burst {burst} limit {}", (p as u64 * 1514).max(burst)),
            None => format!("tbf rate {rate}bit burst {burst} latency 50ms"),
        }
    };
    match (&q.netem, q.rate_bps) {
        (None, None) => {}
        (None, Some(rate)) => lines.push(format!("{inside}tc qdisc add dev {dev} root handle 1: {}", tbf(rate))),
        (Some(n), rate) => {
            let mut netem = String::from("netem");
            if n.delay_us > 0 || n.jitter_us > 0 {
                netem += &format!(" delay {}us", n.delay_us);
                if n.jitter_us > 0 {
                    netem += &format!(" {}us", n.jitter_us);
                }
            }
            if n.loss_percent > 0.0 {
                netem += &format!(" loss {}%", n.loss_percent);
                if n.loss_correlation_percent > 0.0 {
                    netem += &format!(" {}%", n.loss_correlation_percent);
                }
            }
            for (w, p) in [("duplicate", n.duplicate_percent), ("corrupt", n.corrupt_percent), ("reorder", n.reorder_percent)] {
                if p > 0.0 {
                    netem += &format!(" {w} {p}%");
                }
            }
            if let Some(limit) = q.limit_packets {
                netem += &format!(" limit {limit}");
            }
            lines.push(format!("{inside}tc qdisc add dev {dev} root handle 1: {netem}"));
            if let Some(rate) = rate {
                lines.push(format!("{inside}tc qdisc add dev {dev} parent 1:1 handle 10: {}", tbf(rate)));
            }
        }
    }
    lines
}
