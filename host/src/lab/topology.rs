//! `topology`: the lab's namespaces, veth pairs and bridges.

use std::time::Duration;

use super::{Lab, LinkEntry, LinkId, fresh_ifindex};
use crate::backend::NsId;
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, LinkKind, NetnsRef, Object};
use crate::policy::{self, quoted};
use super::forward::LabOp;

/// How long a link's carrier may take to settle before traffic goes out
/// anyway. Usually microseconds; but linkwatch runs under the kernel's one
/// routing lock, which a busy machine (namespaces being deleted, other labs
/// being built) can hold for seconds.
const CARRIER_PATIENCE: Duration = Duration::from_secs(6);

impl Lab {
    pub(super) async fn new_netns(&mut self, node: &str, kernel: String) -> LabResult<NsId> {
        self.quotas.netns.check(1, &format!("cannot create netns {kernel}"))?;
        let id = self.netns.len();
        let jid = self.record_intent(Object::Netns { name: kernel.clone(), node: node.to_string() })?;
        let outcome = self.backend.create_netns(id, &kernel).await;
        self.confirm(&[jid], outcome, || format!("create netns {kernel}"))?;
        self.quotas.netns.take(1, "")?;
        self.netns.push(super::NetnsEntry { node: node.to_string(), kernel: NetnsRef::Named(kernel) });
        Ok(id)
    }

    /// A node: namespace `<lab>-<node>`.
    pub async fn create_netns(&mut self, node: &str) -> LabResult<NsId> {
        self.refuse_if_stopped()?;
        self.check_strings("create-netns", &[node])?;
        policy::check_node_name(node)?;
        if self.netns.iter().any(|n| n.node == node) {
            return Err(LabError::exists(format!("this lab already has a netns named {}", quoted(node))));
        }
        let kernel = crate::naming::node_netns(&self.name, node);
        let id = self.new_netns(node, kernel).await?;
        self.forwarded(|| LabOp::CreateNetns { id, node: node.to_string() })?;
        Ok(id)
    }

    pub(super) fn push_link(&mut self, name: &str, ns: NsId, index: u32, kind: LinkKind, journal_id: u32) -> LinkId {
        self.links.push(LinkEntry {
            name: name.to_string(),
            ns,
            index,
            kind,
            journal_id,
            peer: None,
            master: None,
            pending: false,
            up: false,
            addresses: Vec::new(),
            link_local: true,
        });
        self.links.len() - 1
    }

    pub fn set_ipv6_link_local(&mut self, enabled: bool) {
        self.calls += 1;
        self.ipv6_link_local = enabled;
        // Passing it on cannot be refused: it only changes what comes next.
        let _ = self.forwarded(|| LabOp::SetIpv6LinkLocal { enabled });
    }

    /// IPv6 on a new (or newly moved) link, before it is up: no duplicate
    /// address detection (the lab's own namespaces have it off for every
    /// link; in the machine's, it is turned off for the lab's links only),
    /// and no link-local address if the lab said so, unless the namespace
    /// forwards IPv6: Linux resolves the next hop of forwarded traffic from
    /// a link-local source, so a router needs them.
    pub(super) async fn new_link_ipv6(&mut self, link: LinkId) -> LabResult<()> {
        let ns = self.links[link].ns;
        let what = format!("set up IPv6 on {} in {}", self.links[link].name, self.describe_ns(ns));
        if self.is_machine(ns) {
            let key = format!("net/ipv6/conf/{}/accept_dad", self.links[link].name);
            self.backend.write_sysctl(ns, &key, "0").await.map_err(|e| LabError::os(&what, &e))?;
        }
        let wanted = self.ipv6_link_local || self.forwarding.contains(&(ns, super::Family::V6));
        if wanted {
            if !self.links[link].link_local {
                self.backend.enable_ipv6_link_local(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))?;
                self.links[link].link_local = true;
            }
            return Ok(());
        }
        self.backend.disable_ipv6_link_local(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))?;
        self.links[link].link_local = false;
        Ok(())
    }

    /// A veth pair. The kernel gets it when either end is first used:
    /// moving an end before that only changes where it will be born, which
    /// spares the kernel's move (an RCU grace period, ~17 ms here) that the
    /// tutorial's "create, then move into the namespace" otherwise costs.
    /// A clash of names therefore surfaces at that first use.
    pub async fn create_veth(&mut self, name: &str, ns: NsId, peer: &str, peer_ns: NsId) -> LabResult<(LinkId, LinkId)> {
        self.refuse_if_stopped()?;
        self.check_strings("create-veth", &[name, peer])?;
        policy::check_ifname(name)?;
        policy::check_ifname(peer)?;
        if name == peer && ns == peer_ns {
            return Err(LabError::invalid(format!("a veth pair needs two names; both ends are {}", quoted(name))));
        }
        self.quotas.links.check(2, "")?;
        self.alive(ns).await?;
        self.alive(peer_ns).await?;
        self.check_free_name(name, ns).await?;
        self.check_free_name(peer, peer_ns).await?;
        self.quotas.links.take(2, "")?;
        self.pending_names.insert((ns, name.to_string()));
        self.pending_names.insert((peer_ns, peer.to_string()));
        let (la, lb) = (self.links.len(), self.links.len() + 1);
        let end = |name: &str, ns, peer| LinkEntry {
            name: name.into(),
            ns,
            index: 0,
            kind: LinkKind::Veth,
            journal_id: 0,
            peer: Some(peer),
            master: None,
            pending: true,
            up: false,
            addresses: Vec::new(),
            link_local: true,
        };
        self.links.push(end(name, ns, lb));
        self.links.push(end(peer, peer_ns, la));
        Ok((la, lb))
    }

    /// Create a pending veth pair in the kernel, each end in the namespace
    /// it is meant for by now.
    pub(super) async fn materialize(&mut self, link: LinkId) -> LabResult<()> {
        self.refuse_if_stopped()?;
        if !self.links[link].pending {
            return Ok(());
        }
        let other = self.links[link].peer.expect("a pending link is a veth");
        let (a, b) = (link.min(other), link.max(other));
        let (name, ns) = (self.links[a].name.clone(), self.links[a].ns);
        let (peer, peer_ns) = (self.links[b].name.clone(), self.links[b].ns);
        self.alive(ns).await?;
        self.alive(peer_ns).await?;
        // An end born in the machine's namespace gets an index chosen now
        // and journaled first: even if nsw dies before the kernel answers,
        // `down` tells it from a link someone else makes under that name.
        // (The kernel takes the peer's index only with the first end's.)
        let indexes = (self.is_machine(ns) || self.is_machine(peer_ns)).then(|| (fresh_ifindex(), fresh_ifindex()));
        // The second intent gets the next id: each end names the other.
        let next = self.journal.next_id();
        let ja = self.record_intent_as(
            Object::Link { netns: self.netns[ns].kernel.clone(), name: name.clone(), kind: LinkKind::Veth, peer: Some(next + 1) },
            indexes.map(|i| i.0 as u64),
        )?;
        let jb = self.record_intent_as(
            Object::Link { netns: self.netns[peer_ns].kernel.clone(), name: peer.clone(), kind: LinkKind::Veth, peer: Some(ja) },
            indexes.map(|i| i.1 as u64),
        )?;
        let outcome = self.backend.create_veth(&name, ns, &peer, peer_ns, indexes).await;
        let what = format!("create veth {name} in {} with peer {peer} in {}", self.describe_ns(ns), self.describe_ns(peer_ns));
        let (ia, ib) = self.confirm(&[ja, jb], outcome, || what)?;
        for (end, index, journal_id) in [(a, ia, ja), (b, ib, jb)] {
            let entry = &mut self.links[end];
            entry.index = index;
            entry.journal_id = journal_id;
            entry.pending = false;
            let key = (entry.ns, entry.name.clone());
            self.pending_names.remove(&key);
        }
        self.forwarded(|| LabOp::CreateVeth { a, name, ns, b, peer, peer_ns })?;
        self.new_link_ipv6(a).await?;
        self.new_link_ipv6(b).await
    }

    /// Create every pending veth pair: before a ping (the kernel must
    /// carry it) and when the script is done.
    pub async fn flush(&mut self) -> LabResult<()> {
        for link in 0..self.links.len() {
            self.materialize(link).await?;
        }
        // And the namespaces the broker mounts meanwhile (behind the
        // boundary): under /run/netns, where every later command looks.
        crate::access::settle().map_err(|e| LabError::os("make the lab's namespaces visible", &e))
    }

    /// Refuse a name a pending veth end already has in `ns`.
    fn check_pending_name(&self, name: &str, ns: NsId) -> LabResult<()> {
        if self.pending_names.contains(&(ns, name.to_string())) {
            return Err(LabError::exists(format!("this lab already has a link named {name} in {}", self.describe_ns(ns))));
        }
        Ok(())
    }

    /// Refuse, now rather than at first use, a name that `ns` already has.
    pub(super) async fn check_free_name(&mut self, name: &str, ns: NsId) -> LabResult<()> {
        self.check_pending_name(name, ns)?;
        let what = format!("look for {name} in {}", self.describe_ns(ns));
        if self.backend.link_exists(ns, name).await.map_err(|e| LabError::os(&what, &e))? {
            return Err(LabError::exists(format!("{} already has a link named {name}", self.describe_ns(ns))));
        }
        Ok(())
    }

    pub async fn create_bridge(&mut self, name: &str, ns: NsId) -> LabResult<LinkId> {
        self.refuse_if_stopped()?;
        self.check_strings("create-bridge", &[name])?;
        policy::check_ifname(name)?;
        self.check_pending_name(name, ns)?;
        self.quotas.links.check(1, "")?;
        self.quotas.bridges.check(1, "")?;
        self.alive(ns).await?;
        // Refuse a taken name before recording anything: the journal must
        // never hold, even unconfirmed, the name of someone else's link.
        self.check_free_name(name, ns).await?;
        let index = self.is_machine(ns).then(fresh_ifindex);
        let object = Object::Link { netns: self.netns[ns].kernel.clone(), name: name.into(), kind: LinkKind::Bridge, peer: None };
        let id = self.record_intent_as(object, index.map(u64::from))?;
        let outcome = self.backend.create_bridge(name, ns, index).await;
        let what = format!("create bridge {name} in {}", self.describe_ns(ns));
        let index = self.confirm(&[id], outcome, || what)?;
        self.quotas.links.take(1, "")?;
        self.quotas.bridges.take(1, "")?;
        let link = self.push_link(name, ns, index, LinkKind::Bridge, id);
        self.forwarded(|| LabOp::CreateBridge { id: link, name: name.to_string(), ns })?;
        self.new_link_ipv6(link).await?;
        Ok(link)
    }

    pub async fn move_link(&mut self, link: LinkId, to: NsId) -> LabResult<()> {
        self.refuse_if_stopped()?;
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
        let what = format!("move {} from {} to {}", self.links[link].name, self.describe_ns(from), self.describe_ns(to));
        let journal_id = self.links[link].journal_id;
        self.check_journal_room()?;
        // Into the machine's namespace: at an index chosen and journaled
        // first, as for links born there.
        let chosen = self.is_machine(to).then(fresh_ifindex);
        if let Some(index) = chosen {
            self.record(Entry::Moved { id: journal_id, netns: self.netns[to].kernel.clone(), ident: Some(index as u64) })?;
        }
        let index = match self.backend.move_link(&self.link_ref(link), to, chosen).await {
            Ok(index) => index,
            Err(e) => {
                if chosen.is_some() {
                    let back = Entry::Moved { id: journal_id, netns: self.netns[from].kernel.clone(), ident: Some(self.links[link].index as u64) };
                    self.record(back)?;
                }
                return Err(LabError::os(&what, &e));
            }
        };
        if chosen.is_none() {
            self.record(Entry::Moved { id: journal_id, netns: self.netns[to].kernel.clone(), ident: Some(index as u64) })?;
        }
        let entry = &mut self.links[link];
        entry.ns = to;
        entry.index = index;
        // The kernel brings a moved link down, without its addresses, and
        // with the IPv6 settings of its new namespace.
        entry.up = false;
        entry.master = None;
        entry.addresses.clear();
        entry.link_local = true;
        self.forwarded(|| LabOp::MoveLink { link, to })?;
        self.new_link_ipv6(link).await
    }

    pub async fn set_master(&mut self, port: LinkId, bridge: LinkId) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let (p, b) = (&self.links[port], &self.links[bridge]);
        if b.kind != LinkKind::Bridge {
            return Err(LabError::invalid(format!("{} is a {}, not a bridge", b.name, b.kind)));
        }
        if port == bridge {
            return Err(LabError::invalid(format!("bridge {} cannot be its own port", b.name)));
        }
        if p.ns != b.ns {
            return Err(LabError::invalid(format!(
                "{} is in {} but bridge {} is in {}; move it first",
                p.name,
                self.describe_ns(p.ns),
                b.name,
                self.describe_ns(b.ns)
            )));
        }
        let what = format!("attach {} to bridge {} in {}", p.name, b.name, self.describe_ns(p.ns));
        self.materialize(port).await?;
        self.alive_link(port).await?;
        self.backend.set_master(&self.link_ref(port), &self.link_ref(bridge)).await.map_err(|e| LabError::os(&what, &e))?;
        self.links[port].master = Some(bridge);
        if self.links[port].up {
            self.awaiting_carrier.push(bridge);
        }
        self.forwarded(|| LabOp::SetMaster { port, bridge })
    }

    pub async fn set_up(&mut self, link: LinkId) -> LabResult<()> {
        self.refuse_if_stopped()?;
        let what = format!("set {} up in {}", self.links[link].name, self.describe_ns(self.links[link].ns));
        self.materialize(link).await?;
        self.alive_link(link).await?;
        self.backend.set_up(&self.link_ref(link)).await.map_err(|e| LabError::os(&what, &e))?;
        self.forwarded(|| LabOp::SetUp { link })?;
        self.links[link].up = true;
        // Its carrier (and its bridge's) may change: see `wait_for_carriers`.
        self.awaiting_carrier.push(link);
        self.awaiting_carrier.extend(self.links[link].peer.filter(|p| self.links[*p].up));
        self.awaiting_carrier.extend(self.links[link].master);
        if self.failed_links.remove(&link) {
            // Back from a `set-down`: up is a link's usual state, and the
            // routes the kernel dropped with it come back.
            self.restore_routes(link).await?;
            self.record_setting(link, crate::journal::Setting::State, serde_json::Value::Null)?;
            // A script that probes right away should not find it still dead.
            self.wait_for_carriers().await?;
        }
        Ok(())
    }

    /// With both ends of a veth up, the kernel turns the carrier on, but
    /// passes packets only a moment later (linkwatch); a bridge gets its
    /// carrier once a port has done so, and then waits for linkwatch too.
    /// Until then they drop what they are given. Before anything sends
    /// traffic (a ping, a probe, a service, a process), wait for every
    /// link set up since, ports before their bridges, so that a script
    /// that pings right away does not lose its first echo. (Waiting here
    /// rather than in `set-up` costs a large lab one check per link, not
    /// one wait.)
    pub(super) async fn wait_for_carriers(&mut self) -> LabResult<()> {
        let mut awaiting = std::mem::take(&mut self.awaiting_carrier);
        awaiting.sort_by_key(|l| (self.links[*l].kind == LinkKind::Bridge, *l));
        awaiting.dedup();
        for link in awaiting {
            self.refuse_if_stopped()?;
            if self.links[link].pending || !self.links[link].up {
                continue;
            }
            let l = self.link_ref(link);
            let what = format!("wait for the carrier of {} in {}", l.name, self.describe_ns(l.ns));
            let ready = self.backend.wait_carrier_settled(&l, CARRIER_PATIENCE, &self.stop).await.map_err(|e| LabError::os(&what, &e))?;
            if !ready {
                tracing::debug!("{} has not settled after {:?}", l.name, CARRIER_PATIENCE);
            }
        }
        Ok(())
    }
}
