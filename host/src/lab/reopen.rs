//! A lab that is up, reopened to change one of its links at run time
//! (`nsw link`): the same checks, kernel calls and journal lines as a
//! script's calls, on the objects its journal says it owns.

use super::{Lab, LinkId, NetnsEntry};
use crate::backend::rules::TableFamily;
use crate::backend::{Backend, NsId};
use crate::error::{LabError, LabResult};
use crate::journal::{Journal, Mode, NetnsRef, Object};
use crate::policy::{Grants, Limits};
use crate::stop::Stop;

impl Lab {
    /// Reopen the lab of `journal` for the link `ifname` of its node
    /// `node` (`host` for its host). On failure the journal comes back.
    pub async fn reopen(journal: Journal, backend: Box<dyn Backend>, node: &str, ifname: &str, stop: Stop) -> Result<(Lab, LinkId), (LabError, Journal)> {
        let record = journal.record().clone();
        let grants = match Grants::parse(&record.info.grants, false) {
            Ok(grants) => grants,
            Err(e) => return Err((LabError::invalid(format!("the journal's grants: {e:#}")), journal)),
        };
        let mut lab = Lab::empty(&record.info.name, grants, journal, backend, Limits::default(), stop, None);
        match lab.attach(&record, node, ifname).await {
            Ok(link) => Ok((lab, link)),
            Err(e) => Err((e, lab.finish())),
        }
    }

    async fn attach(&mut self, record: &crate::journal::LabRecord, node: &str, ifname: &str) -> LabResult<LinkId> {
        let lab = record.info.name.clone();
        let nodes: Vec<(String, String, u64)> = record
            .objects
            .iter()
            .filter(|o| o.confirmed)
            .filter_map(|o| match (&o.object, o.ident) {
                (Object::Netns { name, node }, Some(inode)) => Some((node.clone(), name.clone(), inode)),
                _ => None,
            })
            .collect();
        // The host first, as in a running lab.
        match record.info.mode {
            Mode::HostNet => {
                self.adopt_machine(crate::naming::HOST).await?;
            }
            Mode::Contained => self.attach_node(&nodes, crate::naming::HOST).await?,
        }
        let ns: NsId = if node == crate::naming::HOST {
            super::HOST
        } else {
            if !nodes.iter().any(|(n, _, _)| n == node) {
                let known: Vec<&str> = nodes.iter().map(|(n, _, _)| n.as_str()).collect();
                return Err(LabError::not_found(format!("lab {lab} has no node {node} (its nodes: {})", known.join(", "))));
            }
            self.attach_node(&nodes, node).await?;
            self.netns.len() - 1
        };
        let place = self.netns[ns].kernel.clone();
        let owned = record
            .objects
            .iter()
            .filter(|o| o.confirmed)
            .find(|o| matches!(&o.object, Object::Link { netns, name, .. } if *netns == place && name == ifname));
        let Some(owned) = owned else {
            let theirs: Vec<&str> = record
                .objects
                .iter()
                .filter_map(|o| match &o.object {
                    Object::Link { netns, name, .. } if *netns == place => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            return Err(LabError::not_found(format!(
                "{node} has no link {ifname} that lab {lab} made (the lab's links there: {})",
                if theirs.is_empty() { "none".to_string() } else { theirs.join(", ") }
            )));
        };
        let Object::Link { kind, .. } = &owned.object else { unreachable!("matched a link above") };
        let index = owned.ident.ok_or_else(|| LabError::not_found(format!("{ifname} in {node}: the journal has no index for it")))? as u32;
        let what = format!("find {ifname} in {}", self.describe_ns(ns));
        if !self.backend.link_is(ns, index, ifname).await.map_err(|e| LabError::os(&what, &e))? {
            return Err(LabError::not_found(format!("{what}: it is gone, or another link has its index now")));
        }
        let link = self.push_link(ifname, ns, index, *kind, owned.id);
        // A veth's other end: conditions act where it receives.
        if let Object::Link { peer: Some(peer_id), .. } = &owned.object {
            let peer = record.objects.iter().filter(|o| o.confirmed).find(|o| o.id == *peer_id);
            if let Some((Object::Link { netns, name, .. }, Some(peer_index))) = peer.map(|o| (&o.object, o.ident)) {
                let peer_ns = self.ns_of(netns, &nodes).await?;
                let peer = self.push_link(name, peer_ns, peer_index as u32, crate::journal::LinkKind::Veth, *peer_id);
                self.links[link].peer = Some(peer);
                self.links[peer].peer = Some(link);
            }
        }
        self.links[link].up = owned.settings.get(&crate::journal::Setting::State).is_none_or(|s| s != "down");
        if !self.links[link].up {
            self.failed_links.insert(link);
        }
        for o in record.objects.iter().filter(|o| o.confirmed) {
            if let (Object::NftTable { netns, family, .. }, Some(nonce)) = (&o.object, o.ident) {
                if let (Some(id), Some(family)) = (self.netns.iter().position(|n| n.kernel == *netns), Some(*family)) {
                    self.tables.insert((id, family), nonce);
                }
            }
        }
        if self.links[link].peer.is_some_and(|p| self.tables.contains_key(&(self.links[p].ns, TableFamily::Netdev))) {
            // Its loss may be a rule where the peer receives: clearing it
            // is harmless if not.
            self.nft_loss.insert(link);
        }
        Ok(link)
    }

    /// The lab's id for a namespace the journal names, opening it if need be.
    async fn ns_of(&mut self, place: &NetnsRef, nodes: &[(String, String, u64)]) -> LabResult<NsId> {
        if let Some(id) = self.netns.iter().position(|n| n.kernel == *place) {
            return Ok(id);
        }
        let NetnsRef::Named(name) = place else {
            return Err(LabError::not_found("the machine's namespace is not this lab's host".to_string()));
        };
        let Some((node, _, _)) = nodes.iter().find(|(_, n, _)| n == name) else {
            return Err(LabError::not_found(format!("the journal has no namespace {name}")));
        };
        let node = node.clone();
        self.attach_node(nodes, &node).await?;
        Ok(self.netns.len() - 1)
    }

    async fn attach_node(&mut self, nodes: &[(String, String, u64)], node: &str) -> LabResult<()> {
        let Some((_, name, inode)) = nodes.iter().find(|(n, _, _)| n == node) else {
            return Err(LabError::not_found(format!("the journal has no namespace for {node}")));
        };
        let id = self.netns.len();
        self.backend.attach_netns(id, name, *inode).await.map_err(|e| LabError::os(&format!("open netns {name}"), &e))?;
        self.netns.push(NetnsEntry { node: node.to_string(), kernel: NetnsRef::Named(name.clone()) });
        Ok(())
    }

    /// A link's settings as the journal has them (`nsw link --show`).
    pub fn link_settings(&self, link: LinkId) -> std::collections::BTreeMap<crate::journal::Setting, serde_json::Value> {
        let id = self.links[link].journal_id;
        self.journal.record().objects.iter().find(|o| o.id == id).map(|o| o.settings.clone()).unwrap_or_default()
    }
}
