//! The agent's side of labs across machines: each lab's part on this
//! machine, a lab of the agent's own that does the coordinator's
//! operations again — with the contained lab's policy (no grant a
//! coordinator could ask for: no host-net, no uplink, no programs), the
//! agent's limits, its own journal and the kernel. `nsw ls` and `nsw down`
//! on the machine see each part as a lab of its own.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;

use super::labs::{self, LabState};
use super::{Message, Reply, inbox, part_key, reply_key};
use crate::backend::{self, NsId, Teardown};
use crate::cluster::MachineRecord;
use crate::cluster::store::ClusterStore;
use crate::error::{LabError, LabResult};
use crate::journal::{LabInfo, StateDir};
use crate::lab::forward::LabOp;
use crate::lab::{Lab, LinkId};
use crate::policy::Limits;
use crate::session::{Created, Session};
use crate::stop::Stop;
use crate::tell::say;

/// How long taking a part down waits for another nsw working on it (a
/// local `nsw down`, say): briefly, the agent's other labs wait meanwhile.
const PATIENCE: Duration = Duration::from_secs(2);

/// A lab's part being built here.
struct Part {
    session: Session,
    lab: Lab,
    /// The coordinator's ids to this part's.
    ns: HashMap<NsId, NsId>,
    links: HashMap<LinkId, LinkId>,
    next_seq: u64,
}

/// This machine's parts.
pub struct Parts {
    machine: String,
    /// This machine's record: its underlay, what a tunnel may use.
    record: MachineRecord,
    /// Which store the parts belong to (their journals say).
    store_id: String,
    limits: Limits,
    open: HashMap<String, Part>,
}

impl Parts {
    pub fn new(record: &MachineRecord, store_id: &str, limits: Limits) -> Parts {
        Parts { machine: record.name.clone(), record: record.clone(), store_id: store_id.to_string(), limits, open: HashMap::new() }
    }

    /// Do every message in this machine's inbox, in order; whether there
    /// was any.
    pub async fn serve_inbox(&mut self, store: &mut dyn ClusterStore) -> Result<bool> {
        let prefix = inbox(&self.machine);
        // Keys first, then each message alone: a full inbox fits no one
        // answer of the store.
        let keys = store.keys(&prefix).await?;
        let any = !keys.is_empty();
        for key in keys {
            let Some((lab, at)) = key.trim_start_matches(&prefix).split_once('/') else {
                store.delete(&key, false).await?;
                continue;
            };
            let (lab, at) = (lab.to_string(), at.to_string());
            let Some(value) = store.get(&key).await? else { continue };
            let reply = match serde_json::from_slice::<Message>(&value) {
                Ok(message) => self.handle(store, &lab, &at, message).await,
                Err(e) => Reply::failed(Vec::new(), &LabError::invalid(format!("a message nsw cannot read: {e}"))),
            };
            store.put_and_delete(&reply_key(&lab, &self.machine, &at), serde_json::to_vec(&reply)?, &key).await?;
        }
        Ok(any)
    }

    async fn handle(&mut self, store: &mut dyn ClusterStore, lab: &str, at: &str, message: Message) -> Reply {
        let failed = |e: &LabError| Reply::failed(Vec::new(), e);
        if crate::policy::check_lab_name(lab).is_err() {
            return failed(&LabError::invalid(format!("{lab:?} is not a lab name")));
        }
        match message {
            Message::Build { ops, finish } => {
                let n: Option<u64> = at.parse().ok();
                if n == Some(0) {
                    // Only for a lab being built: a message a dead agent
                    // left half done is not done again by the next.
                    // And only where the coordinator said, before asking,
                    // a part would be (a part reaped since has none).
                    match labs::record(store, lab).await {
                        Ok(Some(record)) if record.state == LabState::Building => {}
                        Ok(_) => return failed(&LabError::not_found(format!("lab {lab} is not being built (any more)"))),
                        Err(e) => return failed(&LabError::Trap(e)),
                    }
                    match store.get(&part_key(lab, &self.machine)).await {
                        Ok(Some(_)) => {}
                        Ok(None) => return failed(&LabError::not_found(format!("the store has no part of lab {lab} on machine {}", self.machine))),
                        Err(e) => return failed(&LabError::Trap(e)),
                    }
                    if let Err(e) = self.open_part(lab).await {
                        return failed(&e);
                    }
                }
                if let Err(e) = self.check_tunnels(store, &ops).await {
                    return failed(&e);
                }
                let reply = match self.open.get_mut(lab) {
                    Some(part) if n == Some(part.next_seq) => {
                        part.next_seq += 1;
                        part.build(&ops).await
                    }
                    _ => {
                        return failed(&LabError::not_found(format!(
                            "machine {} holds no part of lab {lab} being built (its agent restarted since the build began?)",
                            self.machine
                        )));
                    }
                };
                if finish && reply.error.is_none() {
                    // Built: the part stays up, its journal closed.
                    let part = self.open.remove(lab).expect("the part was open");
                    let mut journal = part.lab.finish();
                    if let Err(e) = part.session.mark_up(&mut journal) {
                        return failed(&LabError::Trap(e));
                    }
                }
                reply
            }
            Message::Down => {
                match self.take_down(store, lab).await {
                    Ok(()) => Reply::answered(Vec::new()),
                    Err(e) => failed(&LabError::Trap(e)),
                }
            }
            Message::Show => match self.show(lab).await {
                Ok(view) => Reply { view: Some(view), ..Reply::answered(Vec::new()) },
                Err(e) => failed(&LabError::Trap(e)),
            },
        }
    }

    /// A tunnel goes from this machine's underlay to another registered
    /// machine's, on nsw's port, no larger than the underlay carries: a
    /// coordinator cannot make a lab's link a way out to anywhere else.
    async fn check_tunnels(&self, store: &mut dyn ClusterStore, ops: &[LabOp]) -> LabResult<()> {
        let tunnels: Vec<&crate::backend::Tunnel> = ops.iter().filter_map(|op| if let LabOp::CreateTunnel { tunnel, .. } = op { Some(tunnel) } else { None }).collect();
        if tunnels.is_empty() {
            return Ok(());
        }
        let machines = store.machines().await.map_err(LabError::Trap)?;
        for tunnel in tunnels {
            let what = format!("a link from machine {} to {}", self.machine, tunnel.remote);
            if tunnel.local != self.record.underlay || tunnel.port != self.record.vxlan_port {
                return Err(LabError::denied(format!("{what}: it must leave from this machine's underlay {} on port {}", self.record.underlay, self.record.vxlan_port)));
            }
            if tunnel.remote == self.record.underlay || !machines.iter().any(|m| m.underlay == tunnel.remote && m.name != self.machine) {
                return Err(LabError::denied(format!("{what}: {} is the underlay of no other machine of the cluster", tunnel.remote)));
            }
            let most = self.record.underlay_mtu.saturating_sub(crate::cluster::vxlan_overhead(tunnel.remote));
            if !(68..=most).contains(&tunnel.mtu) {
                return Err(LabError::invalid(format!("{what}: MTU {} is not within 68-{most}, what the underlay carries", tunnel.mtu)));
            }
        }
        Ok(())
    }

    async fn open_part(&mut self, lab: &str) -> LabResult<()> {
        if self.open.contains_key(lab) {
            return Err(LabError::exists(format!("machine {} is building a part of lab {lab} already", self.machine)));
        }
        let trap = LabError::Trap;
        let mut machine = backend::system();
        let info = LabInfo {
            name: lab.to_string(),
            mode: crate::policy::Mode::Contained,
            grants: Vec::new(),
            machine_netns: machine.machine_inode().map_err(|e| trap(e.into()))?,
            pid: std::process::id(),
            script: format!("part of lab {lab} across machines"),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            part_of: Some(self.store_id.clone()),
        };
        let (session, journal) = match Session::create(StateDir::system(), info, false, &mut machine).await.map_err(trap)? {
            Created::New { session, journal, .. } => (session, journal),
            Created::Exists(_) => return Err(LabError::exists(format!("machine {} has a lab named {lab} already", self.machine))),
        };
        let lab_part = Lab::start_part(lab, journal, Box::new(backend::system()), self.limits.clone(), Stop::new());
        say!("nsw agent: building a part of lab {lab}");
        self.open.insert(lab.to_string(), Part { session, lab: lab_part, ns: HashMap::new(), links: HashMap::new(), next_seq: 0 });
        Ok(())
    }

    /// Take this machine's part of `lab` down: the one being built, or the
    /// one its journal holds; then say so in the store.
    async fn take_down(&mut self, store: &mut dyn ClusterStore, lab: &str) -> Result<()> {
        let mut machine = backend::system();
        let existing = match self.open.remove(lab) {
            Some(part) => Some((part.session, part.lab.finish())),
            None => {
                // Never a lab of this machine's own, or another store's part,
                // that has the same name: looked at before anything is locked.
                let state = StateDir::system();
                match state.read(lab)? {
                    Some(record) if record.info.part_of.as_deref() == Some(self.store_id.as_str()) => Session::existing(state, lab, PATIENCE)?,
                    Some(_) => anyhow::bail!("machine {}'s lab {lab} is not a part of this cluster's lab: left alone", self.machine),
                    None => None,
                }
            }
        };
        if let Some((session, journal)) = existing {
            let report = session.tear_down(journal, &mut machine, false).await?;
            say!("nsw agent: the part of lab {lab} is down: {}", report.summary());
        }
        store.delete(&part_key(lab, &self.machine), false).await?;
        // The last part of a lab that is down: nothing of it is left.
        let down = labs::record(store, lab).await?.is_some_and(|r| r.state == LabState::Down);
        if down && labs::parts(store, lab).await?.is_empty() {
            labs::forget(store, lab).await?;
        }
        Ok(())
    }

    /// This machine's part of `lab` as the kernel has it.
    async fn show(&self, lab: &str) -> Result<serde_json::Value> {
        let record = StateDir::system().read(lab)?.filter(|r| r.info.part_of.is_some());
        let Some(record) = record else { anyhow::bail!("machine {} holds no part of lab {lab}", self.machine) };
        let view = crate::show::read(&record, &mut backend::system()).await?;
        Ok(serde_json::to_value(view)?)
    }

    /// Take down every part being built whose coordinator is gone (its
    /// lease ran out: killed, or its machine lost): the lab is marked down
    /// first, so that every other machine's agent does the same.
    pub async fn reap_orphans(&mut self, store: &mut dyn ClusterStore) -> Result<()> {
        let building: Vec<String> = self.open.keys().cloned().collect();
        for lab in building {
            if store.get(&super::coordinator_key(&lab)).await?.is_some() {
                continue;
            }
            say!("nsw agent: the coordinator building lab {lab} is gone: taking its part down");
            labs::mark_down(store, &lab).await?;
            self.take_down(store, &lab).await?;
        }
        Ok(())
    }

    /// At start: take down every part this machine's journals hold that
    /// the store no longer wants (its lab gone, down, or still building —
    /// the agent that was building it is gone with what it knew).
    pub async fn reconcile(&mut self, store: &mut dyn ClusterStore) -> Result<()> {
        let state = StateDir::system();
        for lab in state.labs()? {
            let Ok(Some(record)) = state.read(&lab) else { continue };
            if record.info.part_of.as_deref() != Some(self.store_id.as_str()) {
                continue;
            }
            let wanted = match labs::record(store, &lab).await? {
                Some(r) => r.state == LabState::Up && store.get(&part_key(&lab, &self.machine)).await?.is_some(),
                None => false,
            };
            if !wanted {
                // Every other machine's part goes too.
                labs::mark_down(store, &lab).await?;
            }
            if !wanted {
                say!("nsw agent: lab {lab}'s part is not wanted any more (its lab is gone, down, or was being built when this agent stopped): taking it down");
                if let Err(e) = self.take_down(store, &lab).await {
                    say!("nsw agent: warning: {}", crate::encode::terminal::one_line(&format!("{e:#}")));
                }
            }
        }
        Ok(())
    }
}

impl Part {
    /// Do `ops`, in order, stopping at the first that fails; then make
    /// every veth pair (the kernel's errors surface with this message).
    async fn build(&mut self, ops: &[LabOp]) -> Reply {
        let mut answers = Vec::new();
        for op in ops {
            let done = match self.local(op) {
                Ok(local) => self.lab.redo(&local).await.map(|(answer, ns, links)| (answer, local, ns, links)),
                Err(e) => Err(e),
            };
            match done {
                Ok((answer, _, ns, links)) => {
                    if let Some(local) = ns {
                        self.ns.insert(created_ns(op), local);
                    }
                    for (theirs, ours) in created_links(op).into_iter().zip(links) {
                        self.links.insert(theirs, ours);
                    }
                    answers.push(answer);
                }
                Err(e) => return Reply::failed(answers, &e),
            }
        }
        match self.lab.flush().await {
            Ok(()) => Reply::answered(answers),
            Err(e) => Reply::failed(answers, &e),
        }
    }

    /// `op` in this part's ids.
    fn local(&self, op: &LabOp) -> LabResult<LabOp> {
        let ns = |id: &NsId| self.ns.get(id).copied().ok_or_else(|| LabError::not_found(format!("namespace #{id} is not on this machine")));
        let link = |id: &LinkId| self.links.get(id).copied().ok_or_else(|| LabError::not_found(format!("link #{id} is not on this machine")));
        let mut op = op.clone();
        match &mut op {
            LabOp::CreateHost { .. } | LabOp::CreateNetns { .. } | LabOp::SetIpv6LinkLocal { .. } => {}
            LabOp::CreateVeth { ns: a, peer_ns: b, .. } => {
                *a = ns(a)?;
                *b = ns(b)?;
            }
            LabOp::CreateTunnel { ns: n, .. } | LabOp::CreateBridge { ns: n, .. } => *n = ns(n)?,
            LabOp::MoveLink { link: l, to } => {
                *l = link(l)?;
                *to = ns(to)?;
            }
            LabOp::SetMaster { port, bridge } => {
                *port = link(port)?;
                *bridge = link(bridge)?;
            }
            LabOp::SetUp { link: l }
            | LabOp::SetDown { link: l }
            | LabOp::SetMtu { link: l, .. }
            | LabOp::SetMac { link: l, .. }
            | LabOp::SetBridgeOptions { bridge: l, .. }
            | LabOp::SetPortCost { port: l, .. }
            | LabOp::AddAddress { link: l, .. } => *l = link(l)?,
            LabOp::AddRoute { ns: n, .. } | LabOp::AddMultipathRoute { ns: n, .. } | LabOp::EnableForwarding { ns: n, .. } | LabOp::Masquerade { ns: n, .. } | LabOp::Ping { ns: n, .. } => {
                *n = ns(n)?
            }
        }
        Ok(op)
    }
}

/// The coordinator's id of the namespace `op` creates.
fn created_ns(op: &LabOp) -> NsId {
    match op {
        LabOp::CreateHost { id } | LabOp::CreateNetns { id, .. } => *id,
        _ => usize::MAX,
    }
}

/// The coordinator's ids of the links `op` creates, in the order the lab
/// returns them.
fn created_links(op: &LabOp) -> Vec<LinkId> {
    match op {
        LabOp::CreateVeth { a, b, .. } => vec![*a, *b],
        LabOp::CreateTunnel { id, .. } | LabOp::CreateBridge { id, .. } => vec![*id],
        _ => Vec::new(),
    }
}
