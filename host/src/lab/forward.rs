//! A lab spread over machines: what the lab did, as operations another
//! lab can do again ([`LabOp`]), and the sink a coordinator's lab hands
//! them to ([`Forward`]).
//!
//! On the coordinator the script runs against a lab on the plan backend
//! (the kernel modelled in memory): every call is judged there first, as
//! in any lab, and each one that succeeded is passed on, in the lab's ids,
//! to the agent of the machine that holds its namespace. The agent does it
//! again in a lab part of its own ([`Lab::start_part`]), with its own
//! policy, quotas, journal and the kernel: a coordinator cannot make an
//! agent do what a lab of its own may not.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Family, Lab, LinkId};
use crate::backend::{NsId, PingStats, Tunnel};
use crate::error::{LabError, LabResult};
use crate::journal::{LinkKind, Object};
use crate::policy::bridges::BridgeOptions;
use crate::policy::{self, quoted};

/// One operation of a lab, in the ids of the lab that did it first. Only
/// what can be done across machines is here; the rest is refused there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum LabOp {
    /// The lab's host (its own namespace, named after the lab).
    CreateHost { id: NsId },
    CreateNetns { id: NsId, node: String },
    /// A veth pair as the kernel gets it: each end where it was moved to
    /// before its first use.
    CreateVeth { a: LinkId, name: String, ns: NsId, b: LinkId, peer: String, peer_ns: NsId },
    /// One end of a veth pair whose ends are on two machines (never done
    /// by a script: the coordinator makes a pair of these of such a veth).
    CreateTunnel { id: LinkId, name: String, ns: NsId, tunnel: Tunnel },
    CreateBridge { id: LinkId, name: String, ns: NsId },
    MoveLink { link: LinkId, to: NsId },
    SetMaster { port: LinkId, bridge: LinkId },
    SetUp { link: LinkId },
    SetDown { link: LinkId },
    SetMtu { link: LinkId, mtu: u32 },
    SetMac { link: LinkId, mac: String },
    SetIpv6LinkLocal { enabled: bool },
    SetBridgeOptions { bridge: LinkId, options: BridgeOptions },
    SetPortCost { port: LinkId, cost: u32 },
    AddAddress { link: LinkId, cidr: String },
    AddRoute { ns: NsId, destination: String, via: String },
    AddMultipathRoute { ns: NsId, destination: String, hops: Vec<(String, u16)> },
    EnableForwarding { ns: NsId, ipv6: bool },
    Masquerade { ns: NsId, source: String },
    /// A ping, answered with [`Answer::Ping`].
    Ping { ns: NsId, target: String, count: u32, timeout_ms: u32 },
}

/// What an operation gave back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    Done,
    Ping { sent: u32, received: u32, min: Duration, avg: Duration, max: Duration },
}

/// Where a coordinator's lab passes on what it did.
#[async_trait]
pub trait Forward: Send {
    /// The lab did `op` (on its model): have it done where it belongs.
    /// An error refuses the call (an operation the machines cannot do).
    fn did(&mut self, op: LabOp) -> LabResult<()>;
    /// Everything passed on so far done, ping from `ns` for real.
    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, timeout: Duration) -> LabResult<PingStats>;
}

impl Lab {
    /// Pass `op` on, if this lab is a coordinator's.
    pub(super) fn forwarded(&mut self, op: impl FnOnce() -> LabOp) -> LabResult<()> {
        match &mut self.forward {
            Some(forward) => forward.did(op()),
            None => Ok(()),
        }
    }

    /// Refuse what cannot be done across machines yet (on a coordinator's
    /// lab; any other lab does it).
    pub(super) fn not_across_machines(&self, what: &str) -> LabResult<()> {
        if self.forward.is_some() {
            return Err(LabError::denied(format!("{what} is not available in a lab across machines (nsw run --store) yet")));
        }
        Ok(())
    }

    /// A lab part on an agent: nothing open yet, not even the lab's host
    /// (the machine that holds it opens it with [`Lab::open_host`]).
    pub fn start_part(name: &str, journal: crate::journal::Journal, backend: Box<dyn crate::backend::Backend>, limits: policy::Limits, stop: crate::stop::Stop) -> Lab {
        Lab::empty(name, policy::Grants::default(), journal, backend, limits, stop, None)
    }

    /// The lab's host, on the machine a part of a lab across machines put
    /// it on.
    pub async fn open_host(&mut self) -> LabResult<NsId> {
        self.refuse_if_stopped()?;
        if self.netns.iter().any(|n| n.node == crate::naming::HOST) {
            return Err(LabError::exists("this lab part has its host already"));
        }
        self.new_netns(crate::naming::HOST, crate::naming::host_netns(&self.name)).await
    }

    /// One end of a link between machines: a VXLAN device born in `ns`,
    /// named as a veth end would be, checked and journaled as one.
    pub async fn create_tunnel(&mut self, name: &str, ns: NsId, tunnel: &Tunnel) -> LabResult<LinkId> {
        self.refuse_if_stopped()?;
        self.check_strings("create-veth", &[name])?;
        policy::check_ifname(name)?;
        if !(1..(1 << 24)).contains(&tunnel.vni) {
            return Err(LabError::invalid(format!("VXLAN id {} is out of range 1-16777215", tunnel.vni)));
        }
        if self.is_machine(ns) {
            return Err(LabError::denied(format!("{} stays out of the machine's namespace", quoted(name))));
        }
        self.quotas.links.check(1, "")?;
        self.alive(ns).await?;
        self.check_free_name(name, ns).await?;
        let object = Object::Link { netns: self.netns[ns].kernel.clone(), name: name.into(), kind: LinkKind::Vxlan, peer: None };
        let id = self.record_intent(object)?;
        let outcome = self.backend.create_tunnel(name, ns, tunnel).await;
        let what = format!("create {name} in {} (VXLAN {} to {})", self.describe_ns(ns), tunnel.vni, tunnel.remote);
        let index = self.confirm(&[id], outcome, || what)?;
        self.quotas.links.take(1, "")?;
        let link = self.push_link(name, ns, index, LinkKind::Vxlan, id);
        self.new_link_ipv6(link).await?;
        Ok(link)
    }

    /// Do `op` again in this lab, its ids already this lab's. Used by an
    /// agent's lab part; a coordinator's lab does each in its own call.
    pub async fn redo(&mut self, op: &LabOp) -> LabResult<(Answer, Option<NsId>, Vec<LinkId>)> {
        let done = |links: Vec<LinkId>| Ok((Answer::Done, None, links));
        match op {
            LabOp::CreateHost { .. } => Ok((Answer::Done, Some(self.open_host().await?), Vec::new())),
            LabOp::CreateNetns { node, .. } => Ok((Answer::Done, Some(self.create_netns(node).await?), Vec::new())),
            LabOp::CreateVeth { name, ns, peer, peer_ns, .. } => {
                // Made now, as the coordinator's lab made it at this point
                // (with the IPv6 setting of this point).
                let (a, b) = self.create_veth(name, *ns, peer, *peer_ns).await?;
                self.materialize(a).await?;
                done(vec![a, b])
            }
            LabOp::CreateTunnel { name, ns, tunnel, .. } => done(vec![self.create_tunnel(name, *ns, tunnel).await?]),
            LabOp::CreateBridge { name, ns, .. } => done(vec![self.create_bridge(name, *ns).await?]),
            LabOp::MoveLink { link, to } => self.move_link(*link, *to).await.and(done(Vec::new())),
            LabOp::SetMaster { port, bridge } => self.set_master(*port, *bridge).await.and(done(Vec::new())),
            LabOp::SetUp { link } => self.set_up(*link).await.and(done(Vec::new())),
            LabOp::SetDown { link } => self.set_down(*link).await.and(done(Vec::new())),
            LabOp::SetMtu { link, mtu } => self.set_mtu(*link, *mtu).await.and(done(Vec::new())),
            LabOp::SetMac { link, mac } => self.set_mac(*link, mac).await.and(done(Vec::new())),
            LabOp::SetIpv6LinkLocal { enabled } => {
                self.set_ipv6_link_local(*enabled);
                done(Vec::new())
            }
            LabOp::SetBridgeOptions { bridge, options } => self.set_bridge_options(*bridge, options.clone()).await.and(done(Vec::new())),
            LabOp::SetPortCost { port, cost } => self.set_port_cost(*port, *cost).await.and(done(Vec::new())),
            LabOp::AddAddress { link, cidr } => self.add_address(*link, cidr).await.and(done(Vec::new())),
            LabOp::AddRoute { ns, destination, via } => self.add_route(*ns, destination, via).await.and(done(Vec::new())),
            LabOp::AddMultipathRoute { ns, destination, hops } => self.add_multipath_route(*ns, destination, hops).await.and(done(Vec::new())),
            LabOp::EnableForwarding { ns, ipv6 } => {
                self.enable_forwarding(*ns, if *ipv6 { Family::V6 } else { Family::V4 }).await.and(done(Vec::new()))
            }
            LabOp::Masquerade { ns, source } => self.masquerade(*ns, source).await.and(done(Vec::new())),
            LabOp::Ping { ns, target, count, timeout_ms } => {
                let s = self.ping(*ns, target, *count, *timeout_ms).await?;
                Ok((Answer::Ping { sent: s.sent, received: s.received, min: s.min, avg: s.avg, max: s.max }, None, Vec::new()))
            }
        }
    }
}
