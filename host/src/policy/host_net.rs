//! The rules for what a lab may put in the machine's own namespace
//! (`--allow host-net`): inside the granted prefixes, clear of every route
//! the machine has (in any table, and its rules' destinations) and of every
//! address it talks to (its resolvers, neighbours and TCP peers), never its
//! default route, gateways only on the lab's own subnets, and pings only
//! to the granted prefixes.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{LabError, LabResult};

/// What the policy knows of the machine's namespace while a lab uses it.
#[derive(Debug, Clone, Default)]
pub struct MachineRules {
    /// The prefixes `--allow host-net` granted.
    granted: Vec<IpNet>,
    /// The machine's routes when the lab started: what a lab must never
    /// overlap.
    routes: Vec<IpNet>,
    /// Addresses the machine talks to when the lab started: a lab subnet
    /// holding one would take its traffic.
    peers: Vec<IpAddr>,
    /// Subnets of the addresses the lab put in the machine's namespace:
    /// where a host-side route's gateway may be.
    lab_subnets: Vec<IpNet>,
}

impl MachineRules {
    pub fn new(granted: &[IpNet], routes: Vec<IpNet>, peers: Vec<IpAddr>) -> MachineRules {
        MachineRules { granted: granted.to_vec(), routes, peers, lab_subnets: Vec::new() }
    }

    /// The machine's routes, as they were when the lab started.
    pub fn routes(&self) -> &[IpNet] {
        &self.routes
    }

    /// Whether `prefix` overlaps any route of the machine (but the default).
    pub fn overlaps_machine(&self, prefix: &IpNet) -> Option<IpNet> {
        self.routes.iter().find(|r| r.prefix_len() > 0 && (r.contains(prefix) || prefix.contains(*r))).copied()
    }

    /// A host-side prefix (an address's subnet, a route's destination, a
    /// NAT source) must lie inside a granted prefix and overlap none of the
    /// machine's routes.
    pub fn check_prefix(&self, what: &str, prefix: IpNet) -> LabResult<()> {
        let prefix = prefix.trunc();
        if !self.granted.iter().any(|g| g.contains(&prefix)) {
            let list: Vec<String> = self.granted.iter().map(|p| p.to_string()).collect();
            return Err(LabError::denied(format!(
                "{what}: {prefix} is outside the host prefixes this lab was granted ({}); grant it with --allow host-net={prefix}",
                list.join(", ")
            )));
        }
        if let Some(route) = self.overlaps_machine(&prefix) {
            return Err(LabError::denied(format!(
                "{what}: {prefix} overlaps the machine's own route to {route}; a lab never shadows the machine's networks"
            )));
        }
        if let Some(peer) = self.peers.iter().find(|p| prefix.contains(*p)) {
            return Err(LabError::denied(format!(
                "{what}: {prefix} holds {peer}, which the machine talks to (a resolver, a neighbour or a connection's peer); \
                 a lab never takes the machine's traffic"
            )));
        }
        Ok(())
    }

    /// A ping from the machine's namespace goes only to the granted
    /// prefixes: the grant is for the lab's networks, not the world.
    pub fn check_ping(&self, what: &str, target: IpAddr) -> LabResult<()> {
        if self.granted.iter().any(|g| g.contains(&target)) {
            return Ok(());
        }
        let list: Vec<String> = self.granted.iter().map(|p| p.to_string()).collect();
        Err(LabError::denied(format!(
            "{what}: {target} is outside the host prefixes this lab was granted ({}); a host-net lab pings from the machine only inside them",
            list.join(", ")
        )))
    }

    /// An address the lab adds on the machine.
    pub fn check_address(&self, what: &str, cidr: IpNet) -> LabResult<()> {
        self.check_prefix(what, cidr)
    }

    /// Remember the subnet of an address the lab added on the machine.
    pub fn note_address(&mut self, cidr: IpNet) {
        self.lab_subnets.push(cidr.trunc());
    }

    /// A route the guest adds on the machine: never the default, inside
    /// the grant, through a gateway on one of the lab's own subnets.
    pub fn check_route(&self, what: &str, destination: IpNet, via: IpAddr) -> LabResult<()> {
        if destination.prefix_len() == 0 {
            return Err(LabError::denied(format!("{what}: a lab never changes the machine's default route")));
        }
        self.check_prefix(what, destination)?;
        if !self.lab_subnets.iter().any(|s| s.contains(&via)) {
            return Err(LabError::denied(format!(
                "{what}: the gateway {via} is not on a subnet of the lab's own links in the machine's namespace"
            )));
        }
        Ok(())
    }

    /// IPv6 forwarding on the machine would make it ignore router
    /// advertisements on every interface: it could lose its IPv6 default
    /// route. A lab never risks cutting the machine off.
    pub fn check_ipv6_forwarding(&self, what: &str) -> LabResult<()> {
        Err(LabError::denied(format!(
            "{what}: IPv6 forwarding on the machine would make it ignore router advertisements; route IPv6 in the lab's own namespaces"
        )))
    }

    /// A masquerade rule on the machine must not rewrite the machine's own
    /// traffic: inside the grant, over none of the machine's networks.
    pub fn check_masquerade(&self, what: &str, source: IpNet) -> LabResult<()> {
        self.check_prefix(what, source)
    }
}

/// Masquerading every address is refused everywhere: a lab masquerades its
/// own prefix.
pub fn check_masquerade_source(what: &str, source: IpNet) -> LabResult<()> {
    if source.prefix_len() == 0 {
        return Err(LabError::denied(format!("{what}: that is every address; masquerade the lab's own prefix")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn host_prefixes() {
        let granted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let routes: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "10.9.0.0/16".parse().unwrap()];
        let rules = MachineRules::new(&granted, routes, vec!["10.5.0.53".parse().unwrap()]);
        assert!(rules.check_prefix("x", "10.0.0.1/16".parse().unwrap()).is_ok());
        let k = |r: LabResult<()>| r.unwrap_err().kind().unwrap();
        assert_eq!(k(rules.check_prefix("x", "192.168.1.0/24".parse().unwrap())), ErrorKind::Denied);
        assert_eq!(k(rules.check_prefix("x", "10.9.1.0/24".parse().unwrap())), ErrorKind::Denied);
        assert_eq!(k(rules.check_prefix("x", "10.0.0.0/8".parse().unwrap())), ErrorKind::Denied);
        // The resolver's subnet is off limits.
        let err = rules.check_prefix("x", "10.5.0.0/24".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("holds 10.5.0.53"), "{err}");
        assert!(rules.check_ping("p", "10.1.2.3".parse().unwrap()).is_ok());
        assert_eq!(k(rules.check_ping("p", "8.8.8.8".parse().unwrap())), ErrorKind::Denied);
    }

    #[test]
    fn host_routes_need_a_gateway_on_the_labs_subnets() {
        let mut rules = MachineRules::new(&["10.0.0.0/8".parse().unwrap()], vec!["0.0.0.0/0".parse().unwrap()], Vec::new());
        let dest: IpNet = "10.50.0.0/16".parse().unwrap();
        let via: IpAddr = "10.77.0.9".parse().unwrap();
        assert!(rules.check_route("r", dest, via).is_err());
        rules.note_address("10.77.0.1/24".parse().unwrap());
        assert!(rules.check_route("r", dest, via).is_ok());
        assert!(rules.check_route("r", "0.0.0.0/0".parse().unwrap(), via).unwrap_err().to_string().contains("default route"));
    }
}
