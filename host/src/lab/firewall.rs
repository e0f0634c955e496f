//! `firewall`: filter rules, default policies and port forwards in the
//! lab's own `inet` table of a node. In the machine's namespace (a host-net
//! lab's host) a rule only ever matches traffic in or out of the lab's own
//! links there, and no policy is set: it would apply to all of the
//! machine's traffic.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::Lab;
use crate::backend::NsId;
use crate::backend::rules::{Direction, FilterRule, OnLink, Protocol, TableChange, TableFamily, Verdict};
use crate::error::{LabError, LabResult};
use crate::policy;

/// A filter rule as the script gives it.
#[derive(Debug, Clone)]
pub struct RuleRequest {
    pub direction: Direction,
    pub verdict: Verdict,
    pub protocol: Option<Protocol>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub port: Option<u16>,
}

/// A prefix, or one address (`10.0.0.5` is `10.0.0.5/32`).
fn parse_match(text: &str) -> LabResult<IpNet> {
    if text.contains('/') {
        policy::parse_prefix(text)
    } else {
        Ok(IpNet::from(policy::parse_ip(text)?))
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Drop => "drop",
        Verdict::Reject => "reject",
    }
}

impl Lab {
    /// The lab's links in `ns` if it is the machine's namespace (rules
    /// there match only their traffic, as they are now); none elsewhere
    /// (any traffic).
    fn machine_links(&self, ns: NsId, what: &str) -> LabResult<Vec<OnLink>> {
        if !self.is_machine(ns) {
            return Ok(Vec::new());
        }
        let links: Vec<OnLink> = self.links.iter().filter(|l| l.ns == ns && !l.pending).map(|l| OnLink { name: l.name.clone(), index: l.index }).collect();
        if links.is_empty() {
            return Err(LabError::denied(format!(
                "{what}: the lab has no links in the machine's namespace yet, and a rule there may only match traffic of the lab's own links"
            )));
        }
        Ok(links)
    }

    /// The changes that make a direction's chain, the first time.
    fn filter_chain_first(&self, ns: NsId, direction: Direction) -> Option<TableChange> {
        (!self.filter_chains.contains(&(ns, direction))).then_some(TableChange::FilterChain { direction })
    }

    pub async fn add_rule(&mut self, ns: NsId, rule: RuleRequest) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let strings: Vec<&str> = rule.source.iter().chain(rule.destination.iter()).map(String::as_str).collect();
        self.check_strings("firewall.add-rule", &strings)?;
        let what = format!("add a {} rule to {} ({})", rule.direction.name(), self.describe_ns(ns), verdict_word(rule.verdict));
        let source = rule.source.as_deref().map(parse_match).transpose().map_err(|e| e.context(&format!("in the source of: {what}")))?;
        let destination = rule.destination.as_deref().map(parse_match).transpose().map_err(|e| e.context(&format!("in the destination of: {what}")))?;
        if let (Some(s), Some(d)) = (source, destination) {
            if s.addr().is_ipv4() != d.addr().is_ipv4() {
                return Err(LabError::invalid(format!("{what}: the source {s} and the destination {d} are of different IP families")));
            }
        }
        match (rule.port, rule.protocol) {
            (Some(0), _) => return Err(LabError::invalid(format!("{what}: port 0 is no port"))),
            (Some(p), None | Some(Protocol::Icmp)) => return Err(LabError::invalid(format!("{what}: port {p} needs protocol tcp or udp"))),
            _ => {}
        }
        let links = self.machine_links(ns, &what)?;
        self.quotas.rules.check(1, &what)?;
        self.alive(ns).await?;
        let filter = FilterRule { direction: rule.direction, verdict: rule.verdict, protocol: rule.protocol, source, destination, port: rule.port, links };
        let mut changes: Vec<TableChange> = self.filter_chain_first(ns, rule.direction).into_iter().collect();
        changes.push(TableChange::Filter(filter));
        self.change_table(ns, TableFamily::Inet, &what, &changes).await?;
        self.filter_chains.insert((ns, rule.direction));
        self.quotas.rules.take(1, "")
    }

    pub async fn set_policy(&mut self, ns: NsId, direction: Direction, verdict: Verdict) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set the {} policy of {} to {}", direction.name(), self.describe_ns(ns), verdict_word(verdict));
        if self.is_machine(ns) {
            return Err(LabError::denied(format!("{what}: a policy in the machine's namespace would apply to all of the machine's traffic; add rules for the lab's links instead")));
        }
        self.alive(ns).await?;
        let mut changes: Vec<TableChange> = self.filter_chain_first(ns, direction).into_iter().collect();
        changes.push(TableChange::Policy { direction, verdict });
        self.change_table(ns, TableFamily::Inet, &what, &changes).await?;
        self.filter_chains.insert((ns, direction));
        Ok(())
    }

    pub async fn port_forward(&mut self, ns: NsId, protocol: Protocol, port: u16, to_address: &str, to_port: u16) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("firewall.port-forward", &[to_address])?;
        let what = format!("forward {} port {port} of {} to {}", protocol.name(), self.describe_ns(ns), policy::quoted(to_address));
        if protocol == Protocol::Icmp {
            return Err(LabError::invalid(format!("{what}: only tcp and udp have ports")));
        }
        if port == 0 || to_port == 0 {
            return Err(LabError::invalid(format!("{what}: port 0 is no port")));
        }
        let to: IpAddr = policy::parse_ip(to_address).map_err(|e| e.context(&format!("in: {what}")))?;
        if to.is_unspecified() || to.is_multicast() {
            return Err(LabError::invalid(format!("{what}: {to} is not the address of one host")));
        }
        let links = self.machine_links(ns, &what)?;
        self.quotas.rules.check(1, &what)?;
        self.alive(ns).await?;
        let change = TableChange::PortForward { protocol, port, to: SocketAddr::new(to, to_port), links };
        self.change_table(ns, TableFamily::Inet, &what, &[change]).await?;
        self.quotas.rules.take(1, "")
    }
}
