//! NAT with nftables: typed JSON from the `nftables` crate, applied
//! atomically by the `nft` binary (as Podman's netavark does), from a thread
//! inside the target namespace so that `nft` inherits it.
//!
//! A lab's table proves it is the lab's: it is created (`create` fails if
//! the name is taken) together with an empty marker chain named after a
//! nonce the journal recorded first. Every later change to the table, and
//! its deletion, starts with deleting that marker chain (and, for a change,
//! adding it back) in the same transaction: if the table is not the one the
//! lab made, the marker is missing and nft refuses the whole batch.

use std::borrow::Cow;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, NgMode, Numgen, Payload, PayloadField, Prefix, Range, CT};
use nftables::schema::{Chain, NfCmd, NfListObject, Rule, Table};
use nftables::stmt::{Match, NATFamily, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

use super::netns;
use crate::backend::rules::{Direction, FilterRule, LabTable, OnLink, Protocol, TableChange, TableFamily, Verdict};

/// `inet`: the family of the lab's NAT and filter table.
pub const FAMILY_NAME: &str = "inet";
/// `srcnat` and `dstnat`, the priorities of iptables' nat chains.
const SRCNAT: i32 = 100;
const DSTNAT: i32 = -100;
/// Loss is decided against a random number below this: 0.01 % steps.
const LOSS_SCALE: u32 = 10_000;

fn family(f: TableFamily) -> NfFamily {
    match f {
        TableFamily::Inet => NfFamily::INet,
        TableFamily::Netdev => NfFamily::NetDev,
    }
}

fn table(f: TableFamily, name: &str) -> Table<'static> {
    Table { family: family(f), name: Cow::Owned(name.to_string()), handle: None }
}

/// The marker chain that proves a table is the lab's (see above).
fn owner_chain(f: TableFamily, table_name: &str, nonce: u64) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: family(f),
        table: Cow::Owned(table_name.to_string()),
        name: Cow::Owned(format!("nsw-owner-{nonce:016x}")),
        ..Default::default()
    })
}

/// A base chain of the lab's table; `policy: None` leaves an existing
/// chain's policy as it is (adding a chain that exists changes nothing).
fn base_chain(t: &LabTable, name: String, kind: NfChainType, hook: NfHook, prio: i32, policy: Option<NfChainPolicy>, dev: Option<&str>) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: family(t.family),
        table: Cow::Owned(t.name.clone()),
        name: Cow::Owned(name),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        dev: dev.map(|d| Cow::Owned(d.to_string())),
        policy,
        ..Default::default()
    })
}

fn rule(t: &LabTable, chain: String, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule { family: family(t.family), table: Cow::Owned(t.name.clone()), chain: Cow::Owned(chain), expr: Cow::Owned(expr), ..Default::default() })
}

/// `PROTOCOL FIELD OP VALUE`: a match on a header field.
fn payload(protocol: &'static str, field: &'static str, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField { protocol: Cow::Borrowed(protocol), field: Cow::Borrowed(field) }))),
        right,
        op,
    })
}

fn prefix(net: IpNet) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix { addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))), len: net.prefix_len() as u32 }))
}

fn ip_protocol(net: &IpNet) -> &'static str {
    if net.addr().is_ipv4() { "ip" } else { "ip6" }
}

fn meta(key: MetaKey, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left: Expression::Named(NamedExpression::Meta(Meta { key })), right, op: Operator::EQ })
}

fn text(s: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(s.to_string()))
}

fn l4proto(protocol: Protocol) -> Statement<'static> {
    // ICMP of either family: both are `icmp` to a filter rule.
    match protocol {
        Protocol::Icmp => meta(MetaKey::L4proto, Expression::Named(NamedExpression::Set(vec![nftables::expr::SetItem::Element(text("icmp")), nftables::expr::SetItem::Element(text("ipv6-icmp"))]))),
        other => meta(MetaKey::L4proto, text(other.name())),
    }
}

/// `iif`/`oif` in the set of `links` (nothing if it is empty): by index,
/// never by name (see [`OnLink`]).
fn on_links(key: MetaKey, links: &[OnLink]) -> Option<Statement<'static>> {
    match links {
        [] => None,
        [one] => Some(meta(key, Expression::Number(one.index))),
        many => Some(meta(key, Expression::Named(NamedExpression::Set(many.iter().map(|l| nftables::expr::SetItem::Element(Expression::Number(l.index))).collect())))),
    }
}

fn filter_hook(direction: Direction) -> NfHook {
    match direction {
        Direction::Input => NfHook::Input,
        Direction::Forward => NfHook::Forward,
        Direction::Output => NfHook::Output,
    }
}

fn policy(verdict: Verdict) -> NfChainPolicy {
    match verdict {
        Verdict::Allow => NfChainPolicy::Accept,
        // The lab never asks (set-policy takes allow or drop).
        Verdict::Drop | Verdict::Reject => NfChainPolicy::Drop,
    }
}

fn verdict(verdict: Verdict) -> Statement<'static> {
    match verdict {
        Verdict::Allow => Statement::Accept(None),
        Verdict::Drop => Statement::Drop(None),
        Verdict::Reject => Statement::Reject(Some(Reject::new(Some(RejectType::ICMPX), Some(RejectCode::PortUnreach)))),
    }
}

/// The statements of a filter rule.
fn filter_rule(r: &FilterRule) -> Vec<Statement<'static>> {
    let mut expr = Vec::new();
    let key = if r.direction == Direction::Output { MetaKey::Oif } else { MetaKey::Iif };
    expr.extend(on_links(key, &r.links));
    if let Some(source) = r.source {
        expr.push(payload(ip_protocol(&source), "saddr", Operator::EQ, prefix(source)));
    }
    if let Some(destination) = r.destination {
        expr.push(payload(ip_protocol(&destination), "daddr", Operator::EQ, prefix(destination)));
    }
    match (r.protocol, r.port) {
        (Some(p @ (Protocol::Tcp | Protocol::Udp)), Some(port)) => expr.push(payload(p.name(), "dport", Operator::EQ, Expression::Number(port as u32))),
        (Some(p), _) => expr.push(l4proto(p)),
        (None, _) => {}
    }
    expr.push(match (r.verdict, r.protocol) {
        // A reset is TCP's own refusal (the rule matches TCP only).
        (Verdict::Reject, Some(Protocol::Tcp)) => Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
        (v, _) => verdict(v),
    });
    expr
}

/// Start a batch that changes the lab's table: it creates the table with
/// its marker (failing if the name is taken), or fails unless the table
/// still carries the lab's marker.
fn owned_batch(t: &LabTable) -> Batch<'static> {
    let mut batch = Batch::new();
    if t.create {
        batch.add_cmd(NfCmd::Create(NfListObject::Table(table(t.family, &t.name))));
    } else {
        batch.delete(owner_chain(t.family, &t.name, t.nonce));
    }
    batch.add(owner_chain(t.family, &t.name, t.nonce));
    batch
}

/// One transaction: the marker proof (or the table's creation), then the
/// changes, in order.
pub fn change_batch(t: &LabTable, changes: &[TableChange]) -> nftables::schema::Nftables<'static> {
    let mut batch = owned_batch(t);
    for change in changes {
        match change {
            TableChange::Masquerade { source } => {
                batch.add(base_chain(t, "postrouting".into(), NfChainType::NAT, NfHook::Postrouting, SRCNAT, Some(NfChainPolicy::Accept), None));
                // Traffic that stays inside the prefix is never rewritten:
                // where br_netfilter is loaded, bridged traffic between two
                // nodes passes this hook too, and would otherwise reach its
                // peer from the bridge's address.
                let p = ip_protocol(source);
                let expr = vec![payload(p, "saddr", Operator::EQ, prefix(*source)), payload(p, "daddr", Operator::NEQ, prefix(*source)), Statement::Masquerade(None)];
                batch.add(rule(t, "postrouting".into(), expr));
            }
            TableChange::PortForward { protocol, port, to, links } => {
                batch.add(base_chain(t, "prerouting".into(), NfChainType::NAT, NfHook::Prerouting, DSTNAT, Some(NfChainPolicy::Accept), None));
                let mut expr: Vec<Statement<'static>> = on_links(MetaKey::Iif, links).into_iter().collect();
                expr.push(payload(protocol.name(), "dport", Operator::EQ, Expression::Number(*port as u32)));
                let nat_family = if to.is_ipv4() { NATFamily::IP } else { NATFamily::IP6 };
                expr.push(Statement::DNAT(Some(NAT {
                    addr: Some(text(&to.ip().to_string())),
                    family: Some(nat_family),
                    port: Some(Expression::Number(to.port() as u32)),
                    flags: None,
                })));
                batch.add(rule(t, "prerouting".into(), expr));
            }
            TableChange::FilterChain { direction } => {
                for object in filter_chain(t, *direction) {
                    batch.add(object);
                }
            }
            TableChange::Filter(r) => batch.add(rule(t, r.direction.name().into(), filter_rule(r))),
            TableChange::Policy { direction, verdict } => {
                batch.add(base_chain(t, direction.name().into(), NfChainType::Filter, filter_hook(*direction), 0, Some(policy(*verdict)), None));
            }
            TableChange::Loss { link, percent } => {
                let chain = format!("loss-{link}");
                batch.add(base_chain(t, chain.clone(), NfChainType::Filter, NfHook::Ingress, 0, Some(NfChainPolicy::Accept), Some(link)));
                match percent {
                    Some(percent) => {
                        batch.add_cmd(NfCmd::Flush(nftables::schema::FlushObject::Chain(match base_chain(t, chain.clone(), NfChainType::Filter, NfHook::Ingress, 0, None, Some(link)) {
                            NfListObject::Chain(c) => c,
                            _ => unreachable!("base_chain makes a chain"),
                        })));
                        let below = ((percent / 100.0) * LOSS_SCALE as f64).round() as u32;
                        if below > 0 {
                            let numgen = Expression::Named(NamedExpression::Numgen(Numgen { mode: NgMode::Random, ng_mod: LOSS_SCALE, offset: None }));
                            let range = Expression::Range(Box::new(Range { range: [Expression::Number(0), Expression::Number(below - 1)] }));
                            batch.add(rule(t, chain, vec![Statement::Match(Match { left: numgen, right: range, op: Operator::EQ }), Statement::Drop(None)]));
                        }
                    }
                    None => batch.delete(base_chain(t, chain, NfChainType::Filter, NfHook::Ingress, 0, None, Some(link))),
                }
            }
        }
    }
    batch.to_nftables()
}

/// The chain of a filter direction, with its first rule: replies to what
/// was allowed pass.
fn filter_chain(t: &LabTable, direction: Direction) -> Vec<NfListObject<'static>> {
    let established = Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT { key: Cow::Borrowed("state"), family: None, dir: None })),
        right: Expression::List(vec![text("established"), text("related")]),
        op: Operator::IN,
    });
    vec![
        base_chain(t, direction.name().into(), NfChainType::Filter, filter_hook(direction), 0, Some(NfChainPolicy::Accept), None),
        rule(t, direction.name().into(), vec![established, Statement::Accept(None)]),
    ]
}

/// Delete the lab's table, if it still carries the lab's marker.
pub fn delete_owned_table_batch(f: TableFamily, table_name: &str, nonce: u64) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.delete(owner_chain(f, table_name, nonce));
    batch.delete(NfListObject::Table(table(f, table_name)));
    batch.to_nftables()
}

/// Delete a table by name (journals of older nsw versions, which recorded
/// no marker).
pub fn delete_table_batch(f: TableFamily, table_name: &str) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.delete(NfListObject::Table(table(f, table_name)));
    batch.to_nftables()
}

/// Whether the calling thread's namespace has a table `FAMILY NAME`.
pub fn table_exists_here(f: TableFamily, table_name: &str) -> io::Result<bool> {
    let args = ["list", "table", f.name(), table_name];
    match nftables::helper::get_current_ruleset_raw(Some(super::tools::program("nft").as_os_str()), args) {
        Ok(_) => Ok(true),
        Err(nftables::helper::NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(false),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// Whether nftables can hook the ingress of `ifname` here and draw random
/// numbers: tried in a table that goes at once.
pub fn ingress_works_here(ifname: &str) -> io::Result<bool> {
    let t = LabTable { family: TableFamily::Netdev, name: "nsw-probe".into(), nonce: 0, create: true };
    let ok = apply_here(&change_batch(&t, &[TableChange::Loss { link: ifname.into(), percent: Some(1.0) }])).is_ok();
    let _ = apply_here(&delete_table_batch(TableFamily::Netdev, "nsw-probe"));
    Ok(ok)
}

/// Apply a batch inside namespace `ns`.
pub async fn apply(ns: Arc<OwnedFd>, batch: nftables::schema::Nftables<'static>) -> io::Result<()> {
    netns::run_in_async(ns, move || apply_here(&batch)).await
}

/// Apply a batch in the calling thread's namespace: `nft -j -f -`, one
/// transaction. (Run here rather than with the crate's `apply_ruleset`,
/// which lets nft's error text through to nsw's stderr instead of
/// returning it.)
pub fn apply_here(batch: &nftables::schema::Nftables<'_>) -> io::Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let payload = serde_json::to_vec(batch).map_err(io::Error::other)?;
    let mut child = match Command::new(super::tools::program("nft")).args(["-j", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the nft program is not installed (apt-get install nftables)"));
        }
        Err(e) => return Err(e),
    };
    let written = child.stdin.take().expect("piped").write_all(&payload);
    let out = child.wait_with_output()?;
    written?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Keep the kernel's answer as an errno where nft names it, so that a
    // taken or missing name reads as `exists` or `not-found`.
    if stderr.contains("File exists") {
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    if stderr.contains("No such file or directory") {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let why: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    Err(io::Error::other(format!("nft: {}", why.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(create: bool) -> LabTable {
        LabTable { family: TableFamily::Inet, name: "nsw-pbj".into(), nonce: 7, create }
    }

    #[test]
    fn masquerade_json() {
        let json = serde_json::to_string(&change_batch(&table(false), &[TableChange::Masquerade { source: "10.0.0.0/16".parse().unwrap() }])).unwrap();
        // The ownership proof comes first.
        assert!(json.starts_with(r#"{"nftables":[{"delete":{"chain":{"family":"inet","table":"nsw-pbj","name":"nsw-owner-0000000000000007"}}}"#), "{json}");
        assert!(json.contains(r#""family":"inet","table":"nsw-pbj","chain":"postrouting""#), "{json}");
        assert!(json.contains(r#""hook":"postrouting""#), "{json}");
        assert!(json.contains(r#""protocol":"ip","field":"saddr""#), "{json}");
        assert!(json.contains(r#""addr":"10.0.0.0","len":16"#), "{json}");
        assert!(json.contains(r#""masquerade""#), "{json}");
        // Not inside the prefix.
        assert!(json.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":16}},"op":"!="}}"#), "{json}");
        let v6 = serde_json::to_string(&change_batch(&table(false), &[TableChange::Masquerade { source: "fd00::/64".parse().unwrap() }])).unwrap();
        assert!(v6.contains(r#""protocol":"ip6""#), "{v6}");
    }

    #[test]
    fn a_new_table_is_created_with_its_marker_in_the_same_batch() {
        let json = serde_json::to_string(&change_batch(&table(true), &[TableChange::Masquerade { source: "10.0.0.0/16".parse().unwrap() }])).unwrap();
        assert!(json.starts_with(r#"{"nftables":[{"create":{"table":{"family":"inet","name":"nsw-pbj"}}},{"add":{"chain":{"family":"inet","table":"nsw-pbj","name":"nsw-owner-0000000000000007"}}}"#), "{json}");
    }

    #[test]
    fn loss_is_a_random_drop_where_the_link_receives() {
        let t = LabTable { family: TableFamily::Netdev, name: "nsw-x".into(), nonce: 1, create: false };
        let json = serde_json::to_string(&change_batch(&t, &[TableChange::Loss { link: "veth0".into(), percent: Some(20.0) }])).unwrap();
        assert!(json.contains(r#""hook":"ingress""#) && json.contains(r#""dev":"veth0""#), "{json}");
        assert!(json.contains(r#"{"numgen":{"mode":"random","mod":10000}}"#) && json.contains(r#"{"range":[0,1999]}"#) && json.contains(r#"{"drop":null}"#), "{json}");
    }
}
