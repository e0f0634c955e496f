//! A lab being built: the objects it owns, recorded in its journal before
//! the backend creates them. Every guest call lands here after the import
//! layer has turned handles into ids; the policy decides first, then the
//! journal records, then the backend acts.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::backend::{Backend, LinkRef, NsId, PingStats};
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, Journal, Mode, NetnsRef, Object};
use crate::policy::{self, Grants, Limits, quota_error, shown};
use crate::runtime::stop::Stop;

/// A link, by the lab's index for it.
pub type LinkId = usize;

/// The namespace that plays the lab's host is always the first.
pub const HOST: NsId = 0;

/// IP families, as the WIT has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone)]
pub struct NetnsEntry {
    /// The name the script gave it; `host` for the lab's host.
    pub node: String,
    pub kernel: NetnsRef,
}

#[derive(Debug, Clone)]
pub struct LinkEntry {
    pub name: String,
    pub ns: NsId,
    pub index: u32,
    pub kind: &'static str,
    journal_id: u32,
    /// The other end, for a veth.
    peer: Option<LinkId>,
    /// A veth pair not created in the kernel yet (see [`Lab::create_veth`]).
    pending: bool,
    /// Set up by the lab (and not moved since).
    up: bool,
}

/// Names of the uplink's two ends and its address pool.
const UPLINK_LAB_END: &str = "uplink0";
const UPLINK_POOL: &str = "100.64.0.0/10";

pub struct Lab {
    name: String,
    /// Raised by a signal or the deadline: no new operation starts.
    stop: Stop,
    mode: Mode,
    grants: Grants,
    limits: Limits,
    journal: Journal,
    backend: Box<dyn Backend>,
    netns: Vec<NetnsEntry>,
    links: Vec<LinkEntry>,
    /// The machine's main-table routes when the lab started (host-net and
    /// uplink): what a lab must never overlap.
    machine_routes: Vec<IpNet>,
    /// Subnets of the addresses the lab put in the machine's namespace:
    /// where a host-side route's gateway may be.
    machine_subnets: Vec<IpNet>,
    /// The machine's namespace, when the lab uses it (host-net: the host).
    machine: Option<NsId>,
    uplink: Option<LinkId>,
    nat_tables: HashSet<NsId>,
    forwarding: HashSet<(NsId, Family)>,
    addresses: usize,
    routes: usize,
    pings: u64,
    last_ping: Option<Instant>,
    /// IPv6 link-local addresses on new links (`set-ipv6-link-local`).
    ipv6_link_local: bool,
    /// Names taken by veth ends not in the kernel yet, per namespace: the
    /// kernel cannot refuse a clash with those, so the lab does.
    pending_names: HashSet<(NsId, String)>,
    /// Veth ends set up with their peer up, whose carrier the kernel may
    /// not have processed yet (see [`Lab::settle_carrier`]).
    awaiting_carrier: Vec<LinkId>,
}

impl Lab {
    /// Start a lab whose journal is `journal`: set up its host, a namespace
    /// of its own unless `host-net` was granted.
    pub async fn start(
        name: &str,
        grants: Grants,
        journal: Journal,
        backend: Box<dyn Backend>,
        limits: Limits,
        stop: Stop,
    ) -> LabResult<Lab> {
        let mode = if grants.host_net.is_some() { Mode::HostNet } else { Mode::Contained };
        let mut lab = Lab {
            name: name.to_string(),
            stop,
            mode,
            grants,
            limits,
            journal,
            backend,
            netns: Vec::new(),
            links: Vec::new(),
            machine_routes: Vec::new(),
            machine_subnets: Vec::new(),
            machine: None,
            uplink: None,
            nat_tables: HashSet::new(),
            forwarding: HashSet::new(),
            addresses: 0,
            routes: 0,
            pings: 0,
            last_ping: None,
            ipv6_link_local: true,
            pending_names: HashSet::new(),
            awaiting_carrier: Vec::new(),
        };
        match mode {
            Mode::Contained => {
                lab.new_netns("host", name.to_string()).await?;
            }
            Mode::HostNet => {
                lab.adopt_machine("host").await?;
            }
        }
        Ok(lab)
    }

    /// Open the machine's namespace (as the host in host-net mode, or as
    /// the far end of an uplink) and note its routes.
    async fn adopt_machine(&mut self, node: &str) -> LabResult<NsId> {
        if let Some(id) = self.machine {
            return Ok(id);
        }
        let id = self.netns.len();
        self.backend.adopt_machine(id).await.map_err(|e| LabError::os("open the machine's namespace", &e))?;
        self.netns.push(NetnsEntry { node: node.into(), kernel: NetnsRef::Machine });
        self.machine_routes =
            self.backend.routes(id).await.map_err(|e| LabError::os("read the machine's routes", &e))?;
        self.machine = Some(id);
        Ok(id)
    }

    pub fn netns(&self, id: NsId) -> &NetnsEntry {
        &self.netns[id]
    }

    pub fn link(&self, id: LinkId) -> &LinkEntry {
        &self.links[id]
    }

    /// Refuse to start an operation once the run was told to stop; the
    /// guest then traps, and the lab is rolled back.
    fn go(&self) -> LabResult<()> {
        if self.stop.requested() {
            return Err(LabError::Trap(anyhow::anyhow!(crate::runtime::STOPPED)));
        }
        Ok(())
    }

    /// Refuse strings longer than the lab allows, before looking at them.
    pub fn check_strings(&self, call: &str, strings: &[&str]) -> LabResult<()> {
        for s in strings {
            if s.len() > self.limits.string_bytes {
                return Err(quota_error(
                    &format!("{call} was passed a string of {} bytes", s.len()),
                    format!("{} bytes", self.limits.string_bytes),
                    "--max-string",
                ));
            }
        }
        Ok(())
    }

    fn record(&mut self, entry: &Entry) -> LabResult<()> {
        self.journal.append(entry).map_err(LabError::Trap)
    }

    fn intend(&mut self, object: Object) -> LabResult<u32> {
        tracing::debug!("create {object}");
        self.journal.intend(object).map_err(LabError::Trap)
    }

    /// Mark journal entries done (with the objects' identities) or failed
    /// after the kernel answered.
    fn settle<T: Identities>(&mut self, ids: &[u32], outcome: std::io::Result<T>, what: impl FnOnce() -> String) -> LabResult<T> {
        match outcome {
            Ok(value) => {
                let idents = value.identities();
                for (i, &id) in ids.iter().enumerate() {
                    self.record(&Entry::Created { id, ident: idents.get(i).copied().flatten() })?;
                }
                Ok(value)
            }
            Err(e) => {
                // Only a refusal proves nothing was made: a taken name
                // (the object there is someone else's, never to be
                // removed). After any other error the object may exist, so
                // the journal keeps it as unconfirmed and `down` checks.
                if e.raw_os_error() == Some(libc::EEXIST) {
                    for &id in ids {
                        self.record(&Entry::Failed { id })?;
                    }
                }
                Err(LabError::os(&what(), &e))
            }
        }
    }

    fn where_(&self, ns: NsId) -> String {
        self.netns[ns].kernel.to_string()
    }

    fn on_machine(&self, ns: NsId) -> bool {
        self.netns[ns].kernel == NetnsRef::Machine
    }

    /// The namespace must still be the one the lab created: a user may
    /// have deleted it (or put another in its place) while the lab ran.
    async fn alive(&mut self, ns: NsId) -> LabResult<()> {
        let alive = self.backend.netns_alive(ns).await.map_err(|e| LabError::os(&format!("check {}", self.where_(ns)), &e))?;
        if !alive {
            return Err(LabError::not_found(format!("{} was deleted outside nsw", self.where_(ns))));
        }
        Ok(())
    }

    async fn alive_link(&mut self, link: LinkId) -> LabResult<()> {
        self.alive(self.links[link].ns).await
    }

    fn link_ref(&self, id: LinkId) -> LinkRef {
        let link = &self.links[id];
        LinkRef { ns: link.ns, name: link.name.clone(), index: link.index }
    }

    async fn new_netns(&mut self, node: &str, kernel: String) -> LabResult<NsId> {
        let nodes = self.netns.iter().filter(|n| n.kernel != NetnsRef::Machine).count();
        if nodes >= self.limits.netns {
            return Err(quota_error(&format!("cannot create netns {kernel}: the lab has {nodes} namespaces"), self.limits.netns, "--max-netns"));
        }
        let id = self.netns.len();
        let jid = self.intend(Object::Netns { name: kernel.clone(), node: node.to_string() })?;
        let outcome = self.backend.create_netns(id, &kernel).await;
        self.settle(&[jid], outcome, || format!("create netns {kernel}"))?;
        self.netns.push(NetnsEntry { node: node.to_string(), kernel: NetnsRef::Named(kernel) });
        Ok(id)
    }

    /// A node: namespace `<lab>-<node>`.
    pub async fn create_netns(&mut self, node: &str) -> LabResult<NsId> {
        self.go()?;
        self.check_strings("create-netns", &[node])?;
        policy::check_node_name(node)?;
        if self.netns.iter().any(|n| n.node == node) {
            return Err(LabError::exists(format!("this lab already has a netns named {}", shown(node))));
        }
        let kernel = format!("{}-{node}", self.name);
        self.new_netns(node, kernel).await
    }

    fn check_link_quota(&self, more: usize) -> LabResult<()> {
        if self.links.len() + more > self.limits.links {
            return Err(quota_error(&format!("the lab has {} links", self.links.len()), self.limits.links, "--max-links"));
        }
        Ok(())
    }

    fn push_link(&mut self, name: &str, ns: NsId, index: u32, kind: &'static str, journal_id: u32) -> LinkId {
        self.links.push(LinkEntry { name: name.to_string(), ns, index, kind, journal_id, peer: None, pending: false, up: false });
        self.links.len() - 1
    }

    pub fn set_ipv6_link_local(&mut self, enabled: bool) {
        self.ipv6_link_local = enabled;
    }

    /// A new link gets no IPv6 link-local address if the lab said so.
    async fn new_link_ipv6(&mut self, link: LinkId) -> LabResult<()> {
        if self.ipv6_link_local {
            return Ok(());
        }
        let what = format!("turn off IPv6 link-local on {} in {}", self.links[link].name, self.where_(self.links[link].ns));
        self.backend.disable_ipv6_link_local(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))
    }

    /// A veth pair. The kernel gets it when either end is first used:
    /// moving an end before that only changes where it will be born, which
    /// spares the kernel's move (an RCU grace period, ~17 ms here) that the
    /// tutorial's "create, then move into the namespace" otherwise costs.
    /// A clash of names therefore surfaces at that first use.
    pub async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId) -> LabResult<(LinkId, LinkId)> {
        self.go()?;
        self.check_strings("create-veth", &[name, peer])?;
        policy::check_ifname(name)?;
        policy::check_ifname(peer)?;
        if name == peer && ns == peer_ns {
            return Err(LabError::invalid(format!("a veth pair needs two names; both ends are {}", shown(name))));
        }
        self.check_link_quota(2)?;
        self.alive(ns).await?;
        self.alive(peer_ns).await?;
        self.check_free_name(name, ns).await?;
        self.check_free_name(peer, peer_ns).await?;
        self.pending_names.insert((ns, name.to_string()));
        self.pending_names.insert((peer_ns, peer.to_string()));
        let (la, lb) = (self.links.len(), self.links.len() + 1);
        self.links.push(LinkEntry { name: name.into(), ns, index: 0, kind: "veth", journal_id: 0, peer: Some(lb), pending: true, up: false });
        self.links.push(LinkEntry { name: peer.into(), ns: peer_ns, index: 0, kind: "veth", journal_id: 0, peer: Some(la), pending: true, up: false });
        Ok((la, lb))
    }

    /// Create a pending veth pair in the kernel, each end in the namespace
    /// it is meant for by now.
    async fn materialize(&mut self, link: LinkId) -> LabResult<()> {
        self.go()?;
        if !self.links[link].pending {
            return Ok(());
        }
        let other = self.links[link].peer.expect("a pending link is a veth");
        let (a, b) = (link.min(other), link.max(other));
        let (name, ns) = (self.links[a].name.clone(), self.links[a].ns);
        let (peer, peer_ns) = (self.links[b].name.clone(), self.links[b].ns);
        self.alive(ns).await?;
        self.alive(peer_ns).await?;
        let ja = self.intend(Object::Link { netns: self.netns[ns].kernel.clone(), name: name.clone(), kind: "veth".into() })?;
        let jb = self.intend(Object::Link { netns: self.netns[peer_ns].kernel.clone(), name: peer.clone(), kind: "veth".into() })?;
        let outcome = self.backend.create_veth(&name, ns, &peer, peer_ns).await;
        let what = format!("create veth {name} in {} with peer {peer} in {}", self.where_(ns), self.where_(peer_ns));
        let (ia, ib) = self.settle(&[ja, jb], outcome, || what)?;
        for (end, index, journal_id) in [(a, ia, ja), (b, ib, jb)] {
            let entry = &mut self.links[end];
            entry.index = index;
            entry.journal_id = journal_id;
            entry.pending = false;
            let key = (entry.ns, entry.name.clone());
            self.pending_names.remove(&key);
        }
        self.new_link_ipv6(a).await?;
        self.new_link_ipv6(b).await
    }

    /// Create every pending veth pair: before a ping (the kernel must
    /// carry it) and when the script is done.
    pub async fn flush(&mut self) -> LabResult<()> {
        for link in 0..self.links.len() {
            self.materialize(link).await?;
        }
        Ok(())
    }

    /// Refuse a name a pending veth end already has in `ns`.
    fn check_pending_name(&self, name: &str, ns: NsId) -> LabResult<()> {
        if self.pending_names.contains(&(ns, name.to_string())) {
            return Err(LabError::exists(format!("this lab already has a link named {name} in {}", self.where_(ns))));
        }
        Ok(())
    }

    /// Refuse, now rather than at first use, a name that `ns` already has.
    async fn check_free_name(&mut self, name: &str, ns: NsId) -> LabResult<()> {
        self.check_pending_name(name, ns)?;
        let what = format!("look for {name} in {}", self.where_(ns));
        if self.backend.link_exists(ns, name).await.map_err(|e| LabError::os(&what, &e))? {
            return Err(LabError::exists(format!("{} already has a link named {name}", self.where_(ns))));
        }
        Ok(())
    }

    pub async fn create_bridge(&mut self, name: &str, ns: NsId) -> LabResult<LinkId> {
        self.go()?;
        self.check_strings("create-bridge", &[name])?;
        policy::check_ifname(name)?;
        self.check_pending_name(name, ns)?;
        self.check_link_quota(1)?;
        let bridges = self.links.iter().filter(|l| l.kind == "bridge").count();
        if bridges >= self.limits.bridges {
            return Err(quota_error(&format!("the lab has {bridges} bridges"), self.limits.bridges, "--max-bridges"));
        }
        self.alive(ns).await?;
        // Refuse a taken name before recording anything: the journal must
        // never hold, even unconfirmed, the name of someone else's link.
        self.check_free_name(name, ns).await?;
        let id = self.intend(Object::Link { netns: self.netns[ns].kernel.clone(), name: name.into(), kind: "bridge".into() })?;
        let outcome = self.backend.create_bridge(name, ns).await;
        let what = format!("create bridge {name} in {}", self.where_(ns));
        let index = self.settle(&[id], outcome, || what)?;
        let link = self.push_link(name, ns, index, "bridge", id);
        self.new_link_ipv6(link).await?;
        Ok(link)
    }

    pub async fn move_link(&mut self, link: LinkId, to: NsId) -> LabResult<()> {
        self.go()?;
        let from = self.links[link].ns;
        if from == to {
            return Ok(());
        }
        if Some(link) == self.uplink {
            return Err(LabError::denied("the uplink stays in the lab's host"));
        }
        self.alive(from).await?;
        self.alive(to).await?;
        if self.links[link].pending {
            let name = self.links[link].name.clone();
            self.check_free_name(&name, to).await?;
            // Not in the kernel yet: it will simply be born there.
            self.pending_names.remove(&(from, name.clone()));
            self.pending_names.insert((to, name));
            self.links[link].ns = to;
            return Ok(());
        }
        self.check_pending_name(&self.links[link].name, to)?;
        let what = format!("move {} from {} to {}", self.links[link].name, self.where_(from), self.where_(to));
        let index = self.backend.move_link(&self.link_ref(link), to).await.map_err(|e| LabError::os(&what, &e))?;
        let journal_id = self.links[link].journal_id;
        self.record(&Entry::Moved { id: journal_id, netns: self.netns[to].kernel.clone(), ident: Some(index as u64) })?;
        let entry = &mut self.links[link];
        entry.ns = to;
        entry.index = index;
        // The kernel brings a moved link down.
        entry.up = false;
        Ok(())
    }

    pub async fn set_master(&mut self, port: LinkId, bridge: LinkId) -> LabResult<()> {
        self.go()?;
        let (p, b) = (&self.links[port], &self.links[bridge]);
        if b.kind != "bridge" {
            return Err(LabError::invalid(format!("{} is a {}, not a bridge", b.name, b.kind)));
        }
        if port == bridge {
            return Err(LabError::invalid(format!("bridge {} cannot be its own port", b.name)));
        }
        if p.ns != b.ns {
            return Err(LabError::invalid(format!(
                "{} is in {} but bridge {} is in {}; move it first",
                p.name,
                self.where_(p.ns),
                b.name,
                self.where_(b.ns)
            )));
        }
        let what = format!("attach {} to bridge {} in {}", p.name, b.name, self.where_(p.ns));
        self.materialize(port).await?;
        self.alive_link(port).await?;
        self.backend.set_master(&self.link_ref(port), &self.link_ref(bridge)).await.map_err(|e| LabError::os(&what, &e))
    }

    pub async fn set_up(&mut self, link: LinkId) -> LabResult<()> {
        self.go()?;
        let what = format!("set {} up in {}", self.links[link].name, self.where_(self.links[link].ns));
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.set_up(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))?;
        self.links[link].up = true;
        if let Some(peer) = self.links[link].peer.filter(|p| self.links[*p].up) {
            self.awaiting_carrier.extend([link, peer]);
        }
        Ok(())
    }

    /// With both ends of a veth up, the kernel turns the carrier on, but a
    /// moment later (linkwatch): until then the pair drops packets. Before
    /// a ping, wait for every pair set up since the last ping, so that a
    /// script that pings right away does not lose its first echo. (Waiting
    /// here rather than in `set-up` costs a large lab one check per link,
    /// not one wait.)
    async fn settle_carrier(&mut self) -> LabResult<()> {
        for link in std::mem::take(&mut self.awaiting_carrier) {
            let l = self.link_ref(link);
            if self.links[link].pending || !self.links[link].up {
                continue;
            }
            let what = format!("wait for the carrier of {} in {}", l.name, self.where_(l.ns));
            let ready = self.backend.wait_oper_up(&l, Duration::from_secs(1)).await.map_err(|e| LabError::os(&what, &e))?;
            if !ready {
                tracing::debug!("{} has no carrier after 1 s", l.name);
            }
        }
        Ok(())
    }

    /// In host-net mode, what lands in the machine's namespace must stay
    /// inside the granted prefixes and clear of the machine's routes.
    fn check_machine_prefix(&self, what: &str, prefix: IpNet) -> LabResult<()> {
        let granted = self.grants.host_net.as_deref().unwrap_or(&[]);
        policy::check_host_prefix(what, prefix, granted, &self.machine_routes)
    }

    pub async fn add_address(&mut self, link: LinkId, cidr: &str) -> LabResult<()> {
        self.go()?;
        self.check_strings("address.add", &[cidr])?;
        let cidr = policy::parse_cidr(cidr)?;
        if self.addresses >= self.limits.addresses {
            return Err(quota_error(&format!("the lab has {} addresses", self.addresses), self.limits.addresses, "--max-addresses"));
        }
        let l = &self.links[link];
        let what = format!("add address {cidr} to {} in {}", l.name, self.where_(l.ns));
        let on_machine = self.on_machine(l.ns);
        if on_machine {
            self.check_machine_prefix(&what, cidr)?;
        }
        self.materialize(link).await?;
        self.alive_link(link).await?;
        let l = &self.links[link];
        let id = self.intend(Object::Address { netns: self.netns[l.ns].kernel.clone(), link: l.name.clone(), cidr: cidr.to_string() })?;
        let outcome = self.backend.add_address(&self.link_ref(link), cidr).await;
        self.settle(&[id], outcome, || what)?;
        self.addresses += 1;
        if on_machine {
            self.machine_subnets.push(cidr.trunc());
        }
        Ok(())
    }

    pub async fn add_route(&mut self, ns: NsId, destination: &str, via: &str) -> LabResult<()> {
        self.go()?;
        self.check_strings("route.add", &[destination, via])?;
        let via = policy::parse_ip(via)?;
        let destination = policy::parse_destination(destination, via)?;
        self.add_route_parsed(ns, destination, via, true).await
    }

    async fn add_route_parsed(&mut self, ns: NsId, destination: IpNet, via: IpAddr, guest: bool) -> LabResult<()> {
        if self.routes >= self.limits.routes {
            return Err(quota_error(&format!("the lab has {} routes", self.routes), self.limits.routes, "--max-routes"));
        }
        let what = format!("add route to {destination} via {via} in {}", self.where_(ns));
        if guest && self.on_machine(ns) {
            if destination.prefix_len() == 0 {
                return Err(LabError::denied(format!("{what}: a lab never changes the machine's default route")));
            }
            self.check_machine_prefix(&what, destination)?;
            if !self.machine_subnets.iter().any(|s| s.contains(&via)) {
                return Err(LabError::denied(format!(
                    "{what}: the gateway {via} is not on a subnet of the lab's own links in the machine's namespace"
                )));
            }
        }
        self.alive(ns).await?;
        let id = self.intend(Object::Route {
            netns: self.netns[ns].kernel.clone(),
            destination: destination.to_string(),
            via: via.to_string(),
        })?;
        let outcome = self.backend.add_route(ns, destination, via).await;
        self.settle(&[id], outcome, || what)?;
        self.routes += 1;
        Ok(())
    }

    pub async fn enable_forwarding(&mut self, ns: NsId, family: Family) -> LabResult<()> {
        self.go()?;
        if self.forwarding.contains(&(ns, family)) {
            return Ok(());
        }
        let key = match family {
            Family::V4 => "net/ipv4/ip_forward",
            Family::V6 => "net/ipv6/conf/all/forwarding",
        };
        let what = format!("enable forwarding ({key}) in {}", self.where_(ns));
        if family == Family::V6 && self.on_machine(ns) {
            // With IPv6 forwarding on, the kernel ignores router
            // advertisements on every interface: the machine could lose its
            // IPv6 default route. A lab never risks cutting the machine off.
            return Err(LabError::denied(format!(
                "{what}: IPv6 forwarding on the machine would make it ignore router advertisements; route IPv6 in the lab's own namespaces"
            )));
        }
        self.alive(ns).await?;
        let old = self.backend.read_sysctl(ns, key).await.map_err(|e| LabError::os(&what, &e))?;
        // Record the old value first: it is what `down` puts back.
        let id = self.intend(Object::Sysctl { netns: self.netns[ns].kernel.clone(), key: key.into(), old })?;
        let outcome = self.backend.write_sysctl(ns, key, "1").await;
        self.settle(&[id], outcome, || what)?;
        self.forwarding.insert((ns, family));
        Ok(())
    }

    /// The lab's own nftables table.
    pub fn nat_table(&self) -> String {
        format!("nsw-{}", self.name)
    }

    pub async fn masquerade(&mut self, ns: NsId, source: &str) -> LabResult<()> {
        self.go()?;
        self.check_strings("nat.masquerade", &[source])?;
        let source = policy::parse_prefix(source)?;
        let what = format!("masquerade {source} in {}", self.where_(ns));
        if source.prefix_len() == 0 {
            return Err(LabError::denied(format!("{what}: that is every address; masquerade the lab's own prefix")));
        }
        if self.on_machine(ns) {
            // Inside the grant, and over none of the machine's own
            // networks: the rule must not rewrite the machine's traffic.
            self.check_machine_prefix(&what, source)?;
        }
        self.masquerade_parsed(ns, source, what).await
    }

    async fn masquerade_parsed(&mut self, ns: NsId, source: IpNet, what: String) -> LabResult<()> {
        self.alive(ns).await?;
        let table = self.nat_table();
        if !self.nat_tables.contains(&ns) {
            let id = self.intend(Object::NftTable {
                netns: self.netns[ns].kernel.clone(),
                family: crate::backend::kernel::nft::FAMILY_NAME.into(),
                name: table.clone(),
            })?;
            let outcome = self.backend.masquerade(ns, &table, source).await;
            self.settle(&[id], outcome, || what)?;
            self.nat_tables.insert(ns);
            return Ok(());
        }
        self.backend.masquerade(ns, &table, source).await.map_err(|e| LabError::os(&what, &e))
    }

    pub async fn ping(&mut self, ns: NsId, target: &str, count: u32, timeout_ms: u32) -> LabResult<PingStats> {
        self.go()?;
        self.check_strings("probe.ping", &[target])?;
        let target = policy::parse_ip(target)?;
        if !(1..=100).contains(&count) {
            return Err(LabError::invalid(format!("ping count {count} is out of range 1-100")));
        }
        if !(1..=10_000).contains(&timeout_ms) {
            return Err(LabError::invalid(format!("ping timeout {timeout_ms} ms is out of range 1-10000")));
        }
        if self.pings + count as u64 > self.limits.pings {
            return Err(quota_error(
                &format!("the lab has sent {} echo requests and asks for {count} more", self.pings),
                self.limits.pings,
                "--max-pings",
            ));
        }
        self.alive(ns).await?;
        self.flush().await?;
        self.settle_carrier().await?;
        self.pings += count as u64;
        let interval = Duration::from_secs(1) / self.limits.ping_rate.max(1);
        // The rate holds across calls too.
        if let Some(last) = self.last_ping {
            let since = last.elapsed();
            if since < interval {
                tokio::time::sleep(interval - since).await;
            }
        }
        let what = format!("ping {target} from {}", self.where_(ns));
        let stats = self
            .backend
            .ping(ns, target, count, Duration::from_millis(timeout_ms as u64), interval, self.stop.flag())
            .await
            .map_err(|e| LabError::os(&what, &e));
        self.last_ping = Some(Instant::now());
        stats
    }

    /// Connect a contained lab's host to the machine (the `uplink`
    /// interface): a veth pair, a /30 from 100.64.0.0/10 that overlaps no
    /// route of the machine, a default route in the lab's host, forwarding
    /// and masquerade in the machine. All journaled like any object.
    pub async fn connect_uplink(&mut self) -> LabResult<LinkId> {
        self.go()?;
        if let Some(link) = self.uplink {
            return Ok(link);
        }
        if !self.grants.uplink {
            return Err(LabError::denied("the uplink was not granted (nsw run --allow uplink)"));
        }
        if self.mode == Mode::HostNet {
            return Err(LabError::invalid("a host-net lab's host is the machine already; it needs no uplink"));
        }
        let machine = self.adopt_machine("machine").await?;
        let pool: IpNet = UPLINK_POOL.parse().expect("valid literal");
        let start = fnv1a(self.name.as_bytes());
        let subnets: Vec<IpNet> = pool.subnets(30).expect("a /30 fits in a /10").collect();
        let free = (0..subnets.len())
            .map(|i| subnets[(start as usize + i) % subnets.len()])
            .find(|net| !self.machine_routes.iter().any(|r| r.prefix_len() > 0 && (r.contains(net) || net.contains(r))))
            .ok_or_else(|| LabError::quota(format!("no free /30 left in {UPLINK_POOL} for an uplink")))?;
        let mut hosts = free.hosts();
        let (machine_addr, lab_addr) = (hosts.next().expect("a /30 has two hosts"), hosts.next().expect("two hosts"));
        let machine_end = format!("nsu{:06x}", start & 0xff_ffff);
        let (lab_link, machine_link) = self.create_veth(UPLINK_LAB_END, HOST, &machine_end, machine).await?;
        let prefix = free.prefix_len();
        self.uplink_address(machine_link, IpNet::new(machine_addr, prefix).expect("valid")).await?;
        self.uplink_address(lab_link, IpNet::new(lab_addr, prefix).expect("valid")).await?;
        self.set_up(machine_link).await?;
        self.set_up(lab_link).await?;
        self.add_route_parsed(HOST, "0.0.0.0/0".parse().expect("valid literal"), machine_addr, false).await?;
        self.enable_forwarding(machine, Family::V4).await?;
        self.masquerade_parsed(machine, free, format!("masquerade the uplink {free} in the machine's namespace")).await?;
        self.uplink = Some(lab_link);
        Ok(lab_link)
    }

    async fn uplink_address(&mut self, link: LinkId, cidr: IpNet) -> LabResult<()> {
        self.materialize(link).await?;
        let l = &self.links[link];
        let what = format!("add address {cidr} to {} in {}", l.name, self.where_(l.ns));
        let id = self.intend(Object::Address { netns: self.netns[l.ns].kernel.clone(), link: l.name.clone(), cidr: cidr.to_string() })?;
        let outcome = self.backend.add_address(&self.link_ref(link), cidr).await;
        self.settle(&[id], outcome, || what)
    }
}

/// The kernel identities a backend answer carries, in the order of the
/// journal ids it settles: a namespace's inode, links' indexes.
trait Identities {
    fn identities(&self) -> Vec<Option<u64>>;
}

impl Identities for () {
    fn identities(&self) -> Vec<Option<u64>> {
        Vec::new()
    }
}

impl Identities for u64 {
    fn identities(&self) -> Vec<Option<u64>> {
        vec![Some(*self)]
    }
}

impl Identities for u32 {
    fn identities(&self) -> Vec<Option<u64>> {
        vec![Some(*self as u64)]
    }
}

impl Identities for (u32, u32) {
    fn identities(&self) -> Vec<Option<u64>> {
        vec![Some(self.0 as u64), Some(self.1 as u64)]
    }
}

/// A small stable hash (FNV-1a) to spread labs over the uplink pool.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ *b as u32).wrapping_mul(0x0100_0193))
}
