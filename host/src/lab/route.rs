//! `route`: routes and forwarding.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Family, Lab};
use crate::backend::NsId;
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, Object};
use crate::policy;
use crate::shared_settings::{SharedSettings, Sysctls};

/// The machine-wide switch behind IPv4 forwarding.
const IPV4_FORWARD: &str = "net/ipv4/ip_forward";

impl Lab {
    pub async fn add_route(&mut self, ns: NsId, destination: &str, via: &str) -> LabResult<()> {
        self.refuse_if_stopped()?;
        self.check_strings("route.add", &[destination, via])?;
        let via = policy::parse_ip(via)?;
        let destination = policy::parse_destination(destination, via)?;
        let shown = if destination.prefix_len() == 0 { "default".to_string() } else { destination.to_string() };
        let what = format!("add route to {shown} via {via} in {}", self.describe_ns(ns));
        if let Some(rules) = self.machine_rules(ns) {
            rules.check_route(&what, destination, via)?;
        }
        self.check_gateway(ns, via, &what)?;
        if self.routes.contains(&(ns, destination)) {
            return Err(LabError::exists(format!("{what}: the lab already has a route to {shown} there")));
        }
        self.add_route_unchecked(ns, destination, via).await?;
        self.forwarded(|| super::forward::LabOp::AddRoute { ns, destination: destination.to_string(), via: via.to_string() })
    }

    /// A route through several gateways (ECMP, weighted), in one of the
    /// lab's own namespaces; each gateway checked as `add_route`'s one.
    pub async fn add_multipath_route(&mut self, ns: NsId, destination: &str, hops: &[(String, u16)]) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let mut strings = vec![destination];
        strings.extend(hops.iter().take(policy::routes::MAX_NEXT_HOPS + 1).map(|(via, _)| via.as_str()));
        self.check_strings("route.add-multipath", &strings)?;
        let (destination, hops) = policy::routes::parse_multipath(destination, hops)?;
        let shown = if destination.prefix_len() == 0 { "default".to_string() } else { destination.to_string() };
        let gateways: Vec<String> = hops.iter().map(|h| format!("{} (weight {})", h.via, h.weight)).collect();
        let what = format!("add route to {shown} via {} in {}", gateways.join(", "), self.describe_ns(ns));
        if self.is_machine(ns) {
            return Err(LabError::denied(format!("{what}: a route of several gateways goes in the lab's own namespaces; on the machine's, add one gateway per route")));
        }
        for hop in &hops {
            self.check_gateway(ns, hop.via, &what)?;
        }
        if self.routes.contains(&(ns, destination)) {
            return Err(LabError::exists(format!("{what}: the lab already has a route to {shown} there")));
        }
        self.quotas.routes.check(1, "")?;
        self.alive(ns).await?;
        let id = self.record_intent(Object::Route { netns: self.netns[ns].kernel.clone(), destination: destination.to_string(), via: policy::routes::journal_via(&hops) })?;
        let outcome = self.backend.add_multipath_route(ns, destination, &hops).await;
        self.confirm(&[id], outcome, || what)?;
        self.routes.insert((ns, destination));
        let hops = hops.iter().map(|h| (h.via.to_string(), h.weight)).collect();
        self.forwarded(|| super::forward::LabOp::AddMultipathRoute { ns, destination: destination.to_string(), hops })?;
        self.quotas.routes.take(1, "")
    }

    /// Refuse, before the journal or the kernel hears of it, a gateway the
    /// kernel would find unreachable: on none of the namespace's subnets,
    /// or behind a link that is down. (A link-local IPv6 gateway needs a
    /// device; the kernel judges those.)
    fn check_gateway(&self, ns: NsId, via: IpAddr, what: &str) -> LabResult<()> {
        if let IpAddr::V6(v6) = via {
            if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                return Ok(());
            }
        }
        // The machine's own subnets are not the lab's to know: the policy
        // already holds host-net gateways to the lab's own links.
        if self.is_machine(ns) {
            return Ok(());
        }
        let subnets: Vec<(IpNet, usize)> = self.subnets_of(ns).collect();
        match subnets.iter().find(|(net, _)| net.trunc().contains(&via)) {
            Some((_, link)) if !self.links[*link].up => Err(LabError::invalid(format!(
                "{what}: the gateway {via} is on {}, which is down (set it up first)",
                self.links[*link].name
            ))),
            Some(_) => Ok(()),
            None => {
                let list: Vec<String> = subnets.iter().map(|(net, link)| format!("{net} on {}", self.links[*link].name)).collect();
                let has = if list.is_empty() { "no addresses".to_string() } else { format!("only {}", list.join(", ")) };
                Err(LabError::invalid(format!(
                    "{what}: {via} is on none of {}'s subnets ({has}); a route needs a gateway on one of them",
                    self.describe_ns(ns)
                )))
            }
        }
    }

    /// A route the policy has cleared (or that nsw itself adds).
    pub(super) async fn add_route_unchecked(&mut self, ns: NsId, destination: IpNet, via: IpAddr) -> LabResult<()> {
        self.quotas.routes.check(1, "")?;
        let shown = if destination.prefix_len() == 0 { "default".to_string() } else { destination.to_string() };
        let what = format!("add route to {shown} via {via} in {}", self.describe_ns(ns));
        self.alive(ns).await?;
        let id = self.record_intent(Object::Route {
            netns: self.netns[ns].kernel.clone(),
            destination: destination.to_string(),
            via: via.to_string(),
        })?;
        let outcome = self.backend.add_route(ns, destination, via).await;
        self.confirm(&[id], outcome, || what)?;
        self.routes.insert((ns, destination));
        self.quotas.routes.take(1, "")
    }

    pub async fn enable_forwarding(&mut self, ns: NsId, family: Family) -> LabResult<()> {
        self.refuse_if_stopped()?;
        if self.forwarding.contains(&(ns, family)) {
            return Ok(());
        }
        let key = match family {
            Family::V4 => IPV4_FORWARD,
            Family::V6 => "net/ipv6/conf/all/forwarding",
        };
        let what = format!("enable forwarding ({key}) in {}", self.describe_ns(ns));
        if let (Family::V6, Some(rules)) = (family, self.machine_rules(ns)) {
            rules.check_ipv6_forwarding(&what)?;
        }
        self.alive(ns).await?;
        if self.is_machine(ns) {
            self.hold_machine_forwarding(ns, &what).await?;
        } else {
            // A namespace of the lab's own: it goes with the lab, nothing
            // to put back.
            let id = self.record_intent(Object::Sysctl { netns: self.netns[ns].kernel.clone(), key: key.into(), old: String::new() })?;
            let outcome = self.backend.write_sysctl(ns, key, "1").await;
            self.confirm(&[id], outcome, || what)?;
        }
        self.forwarding.insert((ns, family));
        self.forwarded(|| super::forward::LabOp::EnableForwarding { ns, ipv6: family == Family::V6 })?;
        if family == Family::V6 {
            // A router needs link-local addresses (see `new_link_ipv6`).
            let links: Vec<usize> = (0..self.links.len()).filter(|&l| self.links[l].ns == ns && !self.links[l].pending && !self.links[l].link_local).collect();
            for link in links {
                self.new_link_ipv6(link).await?;
            }
        }
        Ok(())
    }

    /// IPv4 forwarding of the machine is shared with other labs (and
    /// whatever else needs it): take a hold on it (see
    /// [`crate::shared_settings`]), journaled first so that `down` lets go.
    async fn hold_machine_forwarding(&mut self, ns: NsId, what: &str) -> LabResult<()> {
        let id = self.record_intent(Object::SharedSetting { key: IPV4_FORWARD.into() })?;
        let registry = SharedSettings::new(&self.state_dir(), self.machine_inode());
        let name = self.name.clone();
        let mut sysctls = NsSysctls { lab: self, ns };
        let held = registry.acquire(&name, IPV4_FORWARD, "1", &mut sysctls).await;
        match held {
            Ok(()) => self.record(Entry::Created { id, ident: None, since: None }),
            Err(e) => {
                // The hold may be in the registry: `down` lets go of it.
                Err(LabError::os(what, &std::io::Error::other(format!("{e:#}"))))
            }
        }
    }
}

/// The sysctls of one of the lab's namespaces, through its backend.
struct NsSysctls<'a> {
    lab: &'a mut Lab,
    ns: NsId,
}

#[async_trait::async_trait]
impl Sysctls for NsSysctls<'_> {
    async fn read(&mut self, key: &str) -> std::io::Result<String> {
        self.lab.backend.read_sysctl(self.ns, key).await
    }
    async fn write(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        self.lab.backend.write_sysctl(self.ns, key, value).await
    }
    async fn tree(&mut self, roots: &[&str]) -> std::io::Result<std::collections::BTreeMap<String, String>> {
        self.lab.backend.sysctl_tree(self.ns, roots).await
    }
}
