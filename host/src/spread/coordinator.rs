//! The coordinator's side of a lab across machines (`nsw run --store`):
//! where each node goes, what each machine's agent is asked to do, and
//! waiting for its answers. See [`super`] for the whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;

use super::labs::{self, LabRecord, LabState};
use super::{Message, OPS_PER_MESSAGE, Reply, VNI_COUNTER, inbox_key, lab_key, part_key, reply_key, seq};
use crate::backend::{NsId, PingStats, Tunnel};
use crate::cluster::MachineRecord;
use crate::cluster::store::ClusterStore;
use crate::error::{LabError, LabResult};
use crate::lab::LinkId;
use crate::lab::forward::{Answer, Forward, LabOp};
use crate::stop::Stop;

/// How long one machine may take over one message before the run gives
/// up on it (a part of a thousand operations takes about a second).
const ANSWER_PATIENCE: Duration = Duration::from_secs(300);

/// How often a wait for an answer looks whether the machine is still there.
const LIVENESS_EVERY: Duration = Duration::from_secs(1);

pub struct Router {
    store: Box<dyn ClusterStore>,
    /// The coordinator's sign of life in the store (see [`super`]): the
    /// caller keeps it renewed while the lab is built.
    pub sign_of_life: crate::cluster::store::Registration,
    record: LabRecord,
    /// The record as this run last wrote it.
    written: Vec<u8>,
    record_changed: bool,
    machines: BTreeMap<String, MachineRecord>,
    /// `--place NODE=MACHINE`.
    placed: HashMap<String, String>,
    /// Nodes per machine, for spreading the rest evenly.
    load: BTreeMap<String, usize>,
    ns_machine: HashMap<NsId, String>,
    link_machine: HashMap<LinkId, String>,
    /// Each end of a link between machines, to its other end.
    tunnel_peer: HashMap<LinkId, LinkId>,
    /// Far ends taken down with their near end (see [`Router::route_op`]).
    downed_with_peer: std::collections::HashSet<LinkId>,
    /// Operations not sent yet, per machine.
    queues: BTreeMap<String, Vec<LabOp>>,
    /// Tunnel ends waiting for their VNI: both ends of each pair, by
    /// machine and place in its queue.
    unnumbered: Vec<[(String, usize); 2]>,
    /// Machines that have had operations (their parts are open or about to be).
    opened: BTreeSet<String>,
    /// Machines whose part key is written.
    parts: BTreeSet<String>,
    next_seq: HashMap<String, u64>,
    ipv6_link_local: bool,
    /// Once a machine failed, every later call fails too.
    failed: Option<String>,
    stop: Stop,
}

/// The lab's side of the router: what [`crate::lab::Lab`] holds.
pub struct Handle(pub Arc<tokio::sync::Mutex<Router>>);

impl Router {
    /// Claim `lab` in the store (refused if the cluster has a lab of that
    /// name) for a run placing nodes by `placed` over the live machines.
    pub async fn start(mut store: Box<dyn ClusterStore>, lab: &str, script: &str, placed: HashMap<String, String>, stop: Stop, sign_of_life_ttl: Duration) -> anyhow::Result<Router> {
        let machines: BTreeMap<String, MachineRecord> = store.machines().await?.into_iter().map(|m| (m.name.clone(), m)).collect();
        if machines.is_empty() {
            anyhow::bail!("no machine is registered in the store: start `nsw agent` on each machine first");
        }
        for (node, machine) in &placed {
            if !machines.contains_key(machine) {
                let live: Vec<&str> = machines.keys().map(String::as_str).collect();
                anyhow::bail!("--place {node}={machine}: no machine {machine} is registered (live: {})", live.join(", "));
            }
        }
        let host = hostname();
        let record = LabRecord {
            name: lab.to_string(),
            script: script.to_string(),
            state: LabState::Building,
            coordinator: format!("{host}:{}", std::process::id()),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            placement: BTreeMap::new(),
        };
        let written = serde_json::to_vec(&record)?;
        if !store.create(&lab_key(lab), written.clone()).await? {
            let held = labs::record(store.as_mut(), lab).await?;
            let how = held.map(|r| format!(" ({:?}, run by {})", r.state, r.coordinator).to_lowercase()).unwrap_or_default();
            anyhow::bail!("the cluster has a lab named {lab} already{how}: nsw down {lab} --store ... first, or choose another --name");
        }
        let load = machines.keys().map(|m| (m.clone(), 0)).collect();
        let alive = serde_json::to_vec(&serde_json::json!({ "coordinator": record.coordinator }))?;
        let sign_of_life = store.put_leased(&super::coordinator_key(lab), alive, sign_of_life_ttl).await?;
        Ok(Router {
            store,
            sign_of_life,
            record,
            written,
            record_changed: false,
            machines,
            placed,
            load,
            ns_machine: HashMap::new(),
            link_machine: HashMap::new(),
            tunnel_peer: HashMap::new(),
            downed_with_peer: Default::default(),
            queues: BTreeMap::new(),
            unnumbered: Vec::new(),
            opened: BTreeSet::new(),
            parts: BTreeSet::new(),
            next_seq: HashMap::new(),
            ipv6_link_local: true,
            failed: None,
            stop,
        })
    }

    /// Where each node went.
    pub fn placement(&self) -> &BTreeMap<String, String> {
        &self.record.placement
    }

    /// The machine for `node`: its `--place`, else the one with the fewest
    /// nodes so far.
    fn place(&mut self, node: &str, ns: NsId) -> String {
        let machine = match self.placed.get(node) {
            Some(machine) => machine.clone(),
            None => self.load.iter().min_by_key(|(name, n)| (**n, (*name).clone())).map(|(name, _)| name.clone()).unwrap_or_default(),
        };
        *self.load.entry(machine.clone()).or_default() += 1;
        self.record.placement.insert(node.to_string(), machine.clone());
        self.record_changed = true;
        self.ns_machine.insert(ns, machine.clone());
        machine
    }

    fn machine_of_ns(&self, ns: NsId) -> LabResult<String> {
        self.ns_machine.get(&ns).cloned().ok_or_else(|| LabError::Trap(anyhow::anyhow!("namespace #{ns} was placed on no machine")))
    }

    fn machine_of_link(&self, link: LinkId) -> LabResult<String> {
        self.link_machine.get(&link).cloned().ok_or_else(|| LabError::Trap(anyhow::anyhow!("link #{link} was placed on no machine")))
    }

    /// Queue `op` for `machine`; returns its place in the queue.
    fn queue(&mut self, machine: &str, op: LabOp) -> usize {
        let queue = self.queues.entry(machine.to_string()).or_default();
        if self.opened.insert(machine.to_string()) && !self.ipv6_link_local {
            queue.push(LabOp::SetIpv6LinkLocal { enabled: false });
        }
        queue.push(op);
        queue.len() - 1
    }

    /// Pass `op` on. A refusal here comes after the model did it: the
    /// model and the machines differ from then on, so it ends the run.
    fn route(&mut self, op: LabOp) -> LabResult<()> {
        if let Some(why) = &self.failed {
            return Err(LabError::Trap(anyhow::anyhow!("{why}")));
        }
        let routed = self.route_op(op);
        if let Err(e) = &routed {
            self.failed = Some(format!("the lab across machines cannot go on: {e}"));
        }
        routed
    }

    fn route_op(&mut self, op: LabOp) -> LabResult<()> {
        let machine = match &op {
            LabOp::CreateHost { id } => self.place(crate::naming::HOST, *id),
            LabOp::CreateNetns { id, node } => self.place(node, *id),
            LabOp::CreateVeth { a, name, ns, b, peer, peer_ns } => {
                let (ma, mb) = (self.machine_of_ns(*ns)?, self.machine_of_ns(*peer_ns)?);
                if ma != mb {
                    return self.tunnel([(*a, name.clone(), *ns, ma), (*b, peer.clone(), *peer_ns, mb)]);
                }
                self.link_machine.insert(*a, ma.clone());
                self.link_machine.insert(*b, ma.clone());
                ma
            }
            LabOp::CreateBridge { id, ns, .. } => {
                let machine = self.machine_of_ns(*ns)?;
                self.link_machine.insert(*id, machine.clone());
                machine
            }
            LabOp::MoveLink { link, to } => {
                let (from, to) = (self.machine_of_link(*link)?, self.machine_of_ns(*to)?);
                if from != to {
                    return Err(LabError::invalid(format!(
                        "link #{link} is on machine {from} and cannot move to one on machine {to}: move a veth end before its first use, so that it is born where it goes"
                    )));
                }
                from
            }
            LabOp::SetIpv6LinkLocal { enabled } => {
                self.ipv6_link_local = *enabled;
                for machine in self.opened.clone() {
                    self.queue(&machine, op.clone());
                }
                return Ok(());
            }
            // A veth end taken down takes its peer's carrier with it; a
            // VXLAN end cannot do that to the far one, so the far end goes
            // down with it (and up again with it), as a routing daemon on
            // either side must see.
            LabOp::SetDown { link } | LabOp::SetUp { link } if self.tunnel_peer.contains_key(link) => {
                let (link, far) = (*link, self.tunnel_peer[link]);
                let down = matches!(op, LabOp::SetDown { .. });
                let (here, there) = (self.machine_of_link(link)?, self.machine_of_link(far)?);
                self.queue(&here, op);
                if down {
                    self.downed_with_peer.insert(far);
                    self.queue(&there, LabOp::SetDown { link: far });
                } else if self.downed_with_peer.remove(&far) {
                    self.queue(&there, LabOp::SetUp { link: far });
                }
                return Ok(());
            }
            LabOp::SetMaster { port: link, .. }
            | LabOp::SetUp { link }
            | LabOp::SetDown { link }
            | LabOp::SetMtu { link, .. }
            | LabOp::SetMac { link, .. }
            | LabOp::SetBridgeOptions { bridge: link, .. }
            | LabOp::SetPortCost { port: link, .. }
            | LabOp::AddAddress { link, .. } => self.machine_of_link(*link)?,
            LabOp::AddRoute { ns, .. } | LabOp::AddMultipathRoute { ns, .. } | LabOp::EnableForwarding { ns, .. } | LabOp::Masquerade { ns, .. } | LabOp::Ping { ns, .. } => {
                self.machine_of_ns(*ns)?
            }
            LabOp::CreateTunnel { .. } => return Err(LabError::Trap(anyhow::anyhow!("a script's lab makes no tunnels itself"))),
        };
        self.queue(&machine, op);
        Ok(())
    }

    /// A veth pair across two machines: a VXLAN device at each end, its
    /// VNI given when the queue is sent.
    fn tunnel(&mut self, ends: [(LinkId, String, NsId, String); 2]) -> LabResult<()> {
        let (a, b) = (&self.machines[&ends[0].3], &self.machines[&ends[1].3]);
        if a.underlay.is_ipv4() != b.underlay.is_ipv4() {
            return Err(LabError::invalid(format!("machines {} and {} have underlays of two IP families: no link between them", a.name, b.name)));
        }
        let mtu = a.underlay_mtu.min(b.underlay_mtu).saturating_sub(crate::cluster::vxlan_overhead(a.underlay));
        let (ua, ub, port) = (a.underlay, b.underlay, a.vxlan_port);
        let mut places = Vec::new();
        for (i, (id, name, ns, machine)) in ends.iter().enumerate() {
            let (local, remote) = if i == 0 { (ua, ub) } else { (ub, ua) };
            let tunnel = Tunnel { vni: 0, local, remote, port, mtu };
            self.link_machine.insert(*id, machine.clone());
            let at = self.queue(machine, LabOp::CreateTunnel { id: *id, name: name.clone(), ns: *ns, tunnel });
            places.push((machine.clone(), at));
        }
        self.tunnel_peer.insert(ends[0].0, ends[1].0);
        self.tunnel_peer.insert(ends[1].0, ends[0].0);
        let [pa, pb]: [(String, usize); 2] = places.try_into().expect("two ends");
        self.unnumbered.push([pa, pb]);
        Ok(())
    }

    /// Send what is queued and wait for every machine's answers; the last
    /// answer of each machine, by machine.
    pub async fn flush(&mut self) -> LabResult<BTreeMap<String, Reply>> {
        self.flush_finishing(false).await
    }

    /// [`Router::flush`]; with `finish`, every part's last message also
    /// ends its build (one round trip fewer than a message of its own).
    async fn flush_finishing(&mut self, finish: bool) -> LabResult<BTreeMap<String, Reply>> {
        if let Some(why) = &self.failed {
            return Err(LabError::Trap(anyhow::anyhow!("{why}")));
        }
        let sent = self.send_queues(finish).await;
        let answered = match sent {
            Ok(sent) => self.collect(sent).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &answered {
            self.failed = Some(format!("the lab across machines failed earlier: {e}"));
        }
        answered
    }

    async fn send_queues(&mut self, finish: bool) -> LabResult<Vec<(String, u64)>> {
        let trap = LabError::Trap;
        if !self.unnumbered.is_empty() {
            let count = self.unnumbered.len() as u64;
            let first = self.store.take(VNI_COUNTER, count).await.map_err(trap)?;
            for (i, ends) in std::mem::take(&mut self.unnumbered).into_iter().enumerate() {
                let vni = ((first.max(1) - 1 + i as u64) % 0xFF_FFFF + 1) as u32;
                for (machine, at) in ends {
                    if let Some(LabOp::CreateTunnel { tunnel, .. }) = self.queues.get_mut(&machine).and_then(|q| q.get_mut(at)) {
                        tunnel.vni = vni;
                    }
                }
            }
        }
        let lab = self.record.name.clone();
        // Written in as few requests as the store takes, in this order: the
        // record and where each part is before anything is asked of it.
        let mut writes = Vec::new();
        if self.record_changed {
            self.write_record().await?;
        }
        for machine in self.queues.keys().filter(|m| !self.parts.contains(*m)).cloned().collect::<Vec<_>>() {
            writes.push((part_key(&lab, &machine), serde_json::to_vec(&serde_json::json!({ "machine": machine })).unwrap_or_default()));
            self.parts.insert(machine);
        }
        let mut queues = std::mem::take(&mut self.queues);
        if finish {
            for machine in &self.parts {
                queues.entry(machine.clone()).or_default();
            }
        }
        let mut sent = Vec::new();
        for (machine, ops) in queues {
            let chunks: Vec<&[LabOp]> = if ops.is_empty() { vec![&[]] } else { ops.chunks(OPS_PER_MESSAGE).collect() };
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let n = self.next_seq.entry(machine.clone()).or_default();
                let message = Message::Build { ops: chunk.to_vec(), finish: finish && i == last };
                writes.push((inbox_key(&machine, &lab, &seq(*n)), serde_json::to_vec(&message).map_err(|e| trap(e.into()))?));
                sent.push((machine.clone(), *n));
                *n += 1;
            }
        }
        self.store.put_all(writes).await.map_err(trap)?;
        Ok(sent)
    }

    /// Write the lab's record, if it is still the one this run wrote last:
    /// a `down` meanwhile ends the run rather than being undone by it.
    async fn write_record(&mut self) -> LabResult<()> {
        let new = serde_json::to_vec(&self.record).map_err(|e| LabError::Trap(e.into()))?;
        let key = lab_key(&self.record.name);
        if !self.store.replace(&key, &self.written, new.clone()).await.map_err(LabError::Trap)? {
            return Err(LabError::Trap(anyhow::anyhow!("lab {} was taken down (or changed) in the store while it was built", self.record.name)));
        }
        self.written = new;
        self.record_changed = false;
        Ok(())
    }

    async fn collect(&mut self, sent: Vec<(String, u64)>) -> LabResult<BTreeMap<String, Reply>> {
        let mut replies = BTreeMap::new();
        for (machine, n) in sent {
            let reply = self.wait(&machine, &seq(n)).await?;
            if let Some(e) = &reply.error {
                return Err(e.to_lab_error(&machine));
            }
            replies.insert(machine, reply);
        }
        Ok(replies)
    }

    /// The answer to message `at` of `machine`, once there.
    async fn wait(&mut self, machine: &str, at: &str) -> LabResult<Reply> {
        let key = reply_key(&self.record.name, machine, at);
        let since = Instant::now();
        let agent = self.machines.get(machine).map(|m| (m.agent_pid, m.started_unix));
        let mut checked = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if self.stop.requested() {
                return Err(LabError::stopped());
            }
            if let Some(bytes) = self.store.get(&key).await.map_err(LabError::Trap)? {
                self.store.delete(&key, false).await.map_err(LabError::Trap)?;
                return serde_json::from_slice(&bytes).map_err(|e| LabError::Trap(anyhow::anyhow!("machine {machine} answered what nsw cannot read: {e}")));
            }
            if checked.elapsed() > LIVENESS_EVERY {
                let live = self.store.machines().await.map_err(LabError::Trap)?;
                match live.iter().find(|m| m.name == machine) {
                    None => return Err(LabError::Trap(anyhow::anyhow!("machine {machine}'s agent is gone (its registration ran out) before it answered"))),
                    Some(m) if Some((m.agent_pid, m.started_unix)) != agent => {
                        return Err(LabError::Trap(anyhow::anyhow!("machine {machine}'s agent restarted before it answered (its part is taken down)")));
                    }
                    Some(_) => {}
                }
                if since.elapsed() > ANSWER_PATIENCE {
                    return Err(LabError::Trap(anyhow::anyhow!("machine {machine} did not answer in {} s", ANSWER_PATIENCE.as_secs())));
                }
                checked = Instant::now();
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, timeout: Duration) -> LabResult<PingStats> {
        let machine = self.machine_of_ns(ns)?;
        // Every machine done with what came before, then the ping.
        self.flush().await?;
        self.queue(&machine, LabOp::Ping { ns, target: target.to_string(), count, timeout_ms: timeout.as_millis() as u32 });
        let mut replies = self.flush().await?;
        match replies.remove(&machine).and_then(|r| r.answers.last().cloned()) {
            Some(Answer::Ping { sent, received, min, avg, max }) => Ok(PingStats { sent, received, min, avg, max }),
            _ => Err(LabError::Trap(anyhow::anyhow!("machine {machine} did not answer the ping"))),
        }
    }

    /// The script is done: everything built, each part stays up.
    pub async fn finish(&mut self) -> LabResult<()> {
        self.flush_finishing(true).await?;
        self.record.state = LabState::Up;
        self.write_record().await
    }

    /// Take the lab down on every machine it can (a failed run, `--rm`).
    pub async fn down(&mut self) -> anyhow::Result<labs::Down> {
        let lab = self.record.name.clone();
        if self.record_changed {
            // Where the parts are, for whoever reaps them; a down meanwhile
            // has it already.
            let _ = self.write_record().await;
        }
        labs::down(self.store.as_mut(), &lab).await?.context("the lab's record left the store")
    }
}

#[async_trait]
impl Forward for Handle {
    fn did(&mut self, op: LabOp) -> LabResult<()> {
        // The lab calls one operation at a time, and the command takes the
        // router back only after the run: never contended.
        let mut router = self.0.try_lock().map_err(|_| LabError::Trap(anyhow::anyhow!("the coordinator's router is busy")))?;
        router.route(op)
    }

    async fn ping(&mut self, ns: NsId, target: IpAddr, count: u32, timeout: Duration) -> LabResult<PingStats> {
        self.0.lock().await.ping(ns, target, count, timeout).await
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "?".into())
}
