//! A lab being built: the objects it owns, recorded in its journal before
//! the backend creates them. Every guest call lands here after the import
//! layer has turned handles into ids; the policy checks come first, then
//! the journal, then the kernel.

use std::collections::HashSet;
use std::time::Duration;

use crate::backend::{Backend, LinkRef, NsId, PingStats};
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, Journal, LabState, Mode, NetnsRef, Object};
use crate::policy::{self, Limits, shown};

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
}

pub struct Lab {
    name: String,
    limits: Limits,
    journal: Journal,
    backend: Box<dyn Backend>,
    netns: Vec<NetnsEntry>,
    links: Vec<LinkEntry>,
    nat_tables: HashSet<NsId>,
    forwarding: HashSet<(NsId, Family)>,
    addresses: usize,
    routes: usize,
    pings: u64,
}

impl Lab {
    /// Start a lab whose journal is `journal`: set up its host, a namespace
    /// of its own unless it runs in host-net mode.
    pub async fn start(name: &str, mode: Mode, journal: Journal, backend: Box<dyn Backend>, limits: Limits) -> LabResult<Lab> {
        let mut lab = Lab {
            name: name.to_string(),
            limits,
            journal,
            backend,
            netns: Vec::new(),
            links: Vec::new(),
            nat_tables: HashSet::new(),
            forwarding: HashSet::new(),
            addresses: 0,
            routes: 0,
            pings: 0,
        };
        match mode {
            Mode::Contained => {
                lab.new_netns("host", name.to_string()).await?;
            }
            Mode::HostNet => {
                lab.backend.adopt_machine(HOST).await.map_err(|e| LabError::os("open the machine's namespace", &e))?;
                lab.netns.push(NetnsEntry { node: "host".into(), kernel: NetnsRef::Machine });
            }
        }
        Ok(lab)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn netns(&self, id: NsId) -> &NetnsEntry {
        &self.netns[id]
    }

    pub fn link(&self, id: LinkId) -> &LinkEntry {
        &self.links[id]
    }

    pub fn set_state(&mut self, state: LabState) -> LabResult<()> {
        self.record(&Entry::State { state })
    }

    fn record(&mut self, entry: &Entry) -> LabResult<()> {
        self.journal.append(entry).map_err(LabError::Trap)
    }

    fn intend(&mut self, object: Object) -> LabResult<u32> {
        self.journal.intend(object).map_err(LabError::Trap)
    }

    /// Mark journal entries done or failed after the kernel answered.
    fn settle<T>(&mut self, ids: &[u32], outcome: std::io::Result<T>, what: impl FnOnce() -> String) -> LabResult<T> {
        match outcome {
            Ok(value) => {
                for &id in ids {
                    self.record(&Entry::Created { id })?;
                }
                Ok(value)
            }
            Err(e) => {
                for &id in ids {
                    self.record(&Entry::Failed { id })?;
                }
                Err(LabError::os(&what(), &e))
            }
        }
    }

    fn where_(&self, ns: NsId) -> String {
        self.netns[ns].kernel.to_string()
    }

    fn link_ref(&self, id: LinkId) -> LinkRef {
        let link = &self.links[id];
        LinkRef { ns: link.ns, name: link.name.clone(), index: link.index }
    }

    async fn new_netns(&mut self, node: &str, kernel: String) -> LabResult<NsId> {
        if self.netns.len() >= self.limits.netns {
            return Err(LabError::quota(format!("the lab already has {} namespaces, its limit", self.limits.netns)));
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
        policy::check_node_name(node)?;
        if self.netns.iter().any(|n| n.node == node) {
            return Err(LabError::exists(format!("this lab already has a netns named {}", shown(node))));
        }
        let kernel = format!("{}-{node}", self.name);
        self.new_netns(node, kernel).await
    }

    fn check_link_quota(&self, more: usize) -> LabResult<()> {
        if self.links.len() + more > self.limits.links {
            return Err(LabError::quota(format!("the lab already has {} links, its limit", self.links.len())));
        }
        Ok(())
    }

    fn push_link(&mut self, name: &str, ns: NsId, index: u32, kind: &'static str, journal_id: u32) -> LinkId {
        self.links.push(LinkEntry { name: name.to_string(), ns, index, kind, journal_id });
        self.links.len() - 1
    }

    pub async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId) -> LabResult<(LinkId, LinkId)> {
        policy::check_ifname(name)?;
        policy::check_ifname(peer)?;
        if name == peer && ns == peer_ns {
            return Err(LabError::invalid(format!("a veth pair needs two names; both ends are {}", shown(name))));
        }
        self.check_link_quota(2)?;
        let a = self.intend(Object::Link { netns: self.netns[ns].kernel.clone(), name: name.into(), kind: "veth".into() })?;
        let b = self.intend(Object::Link { netns: self.netns[peer_ns].kernel.clone(), name: peer.into(), kind: "veth".into() })?;
        let outcome = self.backend.create_veth(name, ns, peer, peer_ns).await;
        let what = || format!("create veth {name} in {} with peer {peer} in {}", self.where_(ns), self.where_(peer_ns));
        let what = what();
        let (ia, ib) = self.settle(&[a, b], outcome, || what)?;
        Ok((self.push_link(name, ns, ia, "veth", a), self.push_link(peer, peer_ns, ib, "veth", b)))
    }

    pub async fn create_bridge(&mut self, name: &str, ns: NsId) -> LabResult<LinkId> {
        policy::check_ifname(name)?;
        self.check_link_quota(1)?;
        let id = self.intend(Object::Link { netns: self.netns[ns].kernel.clone(), name: name.into(), kind: "bridge".into() })?;
        let outcome = self.backend.create_bridge(name, ns).await;
        let what = format!("create bridge {name} in {}", self.where_(ns));
        let index = self.settle(&[id], outcome, || what)?;
        Ok(self.push_link(name, ns, index, "bridge", id))
    }

    pub async fn move_link(&mut self, link: LinkId, to: NsId) -> LabResult<()> {
        let from = self.links[link].ns;
        if from == to {
            return Ok(());
        }
        let what = format!("move {} from {} to {}", self.links[link].name, self.where_(from), self.where_(to));
        let index = self.backend.move_link(&self.link_ref(link), to).await.map_err(|e| LabError::os(&what, &e))?;
        let journal_id = self.links[link].journal_id;
        self.record(&Entry::Moved { id: journal_id, netns: self.netns[to].kernel.clone() })?;
        let entry = &mut self.links[link];
        entry.ns = to;
        entry.index = index;
        Ok(())
    }

    pub async fn set_master(&mut self, port: LinkId, bridge: LinkId) -> LabResult<()> {
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
        self.backend.set_master(&self.link_ref(port), &self.link_ref(bridge)).await.map_err(|e| LabError::os(&what, &e))
    }

    pub async fn set_up(&mut self, link: LinkId) -> LabResult<()> {
        let what = format!("set {} up in {}", self.links[link].name, self.where_(self.links[link].ns));
        self.backend.set_up(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))
    }

    pub async fn add_address(&mut self, link: LinkId, cidr: &str) -> LabResult<()> {
        let cidr = policy::parse_cidr(cidr)?;
        if self.addresses >= self.limits.addresses {
            return Err(LabError::quota(format!("the lab already has {} addresses, its limit", self.addresses)));
        }
        let l = &self.links[link];
        let what = format!("add address {cidr} to {} in {}", l.name, self.where_(l.ns));
        let id = self.intend(Object::Address { netns: self.netns[l.ns].kernel.clone(), link: l.name.clone(), cidr: cidr.to_string() })?;
        let outcome = self.backend.add_address(&self.link_ref(link), cidr).await;
        self.settle(&[id], outcome, || what)?;
        self.addresses += 1;
        Ok(())
    }

    pub async fn add_route(&mut self, ns: NsId, destination: &str, via: &str) -> LabResult<()> {
        let via = policy::parse_ip(via)?;
        let destination = policy::parse_destination(destination, via)?;
        if self.routes >= self.limits.routes {
            return Err(LabError::quota(format!("the lab already has {} routes, its limit", self.routes)));
        }
        let what = format!("add route to {destination} via {via} in {}", self.where_(ns));
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
        if self.forwarding.contains(&(ns, family)) {
            return Ok(());
        }
        let key = match family {
            Family::V4 => "net/ipv4/ip_forward",
            Family::V6 => "net/ipv6/conf/all/forwarding",
        };
        let what = format!("enable forwarding ({key}) in {}", self.where_(ns));
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
        let source = policy::parse_prefix(source)?;
        let table = self.nat_table();
        let what = format!("masquerade {source} in {}", self.where_(ns));
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
        let target = policy::parse_ip(target)?;
        if !(1..=100).contains(&count) {
            return Err(LabError::invalid(format!("ping count {count} is out of range 1-100")));
        }
        if !(1..=10_000).contains(&timeout_ms) {
            return Err(LabError::invalid(format!("ping timeout {timeout_ms} ms is out of range 1-10000")));
        }
        if self.pings + count as u64 > self.limits.pings {
            return Err(LabError::quota(format!("the lab has sent {} pings, its limit is {}", self.pings, self.limits.pings)));
        }
        self.pings += count as u64;
        let what = format!("ping {target} from {}", self.where_(ns));
        self.backend
            .ping(ns, target, count, Duration::from_millis(timeout_ms as u64))
            .await
            .map_err(|e| LabError::os(&what, &e))
    }
}
