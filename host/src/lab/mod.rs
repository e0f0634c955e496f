//! A lab being built: the objects it owns, recorded in its journal before
//! the backend creates them. Every guest call lands here after the import
//! layer has turned handles into ids; the policy decides first, then the
//! journal records, then the backend acts.
//!
//! One file per WIT interface holds that interface's part of the lab
//! ([`topology`], [`address`], [`route`], [`nat`], [`probe`], [`uplink`]),
//! beside the import module that calls it; this one holds what they share.

mod address;
mod bridges;
mod check;
mod files;
pub mod conditions;
pub mod forward;
pub mod firewall;
mod nat;
#[cfg(test)]
mod plan_props;
mod probe;
pub mod process;
pub mod readiness;
mod route;
mod reopen;
mod service;
mod tables;
#[cfg(test)]
mod tests;
mod topology;
mod uplink;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use ipnet::IpNet;

use crate::backend::rules::{Direction, QueueFeatures, TableFamily};
use crate::backend::{Backend, LinkRef, NsId};
use crate::error::{LabError, LabResult};
use crate::journal::{Entry, Journal, NetnsRef, Object};
use crate::naming;
use crate::policy::Mode;
use crate::policy::host_net::MachineRules;
use crate::policy::{self, Grants, Limits, Quotas};
use crate::stop::Stop;

pub use check::{CheckRecord, Findings, ProbeRecord};
pub use files::Wanted;

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
    pub kind: crate::journal::LinkKind,
    journal_id: u32,
    /// The other end, for a veth.
    peer: Option<LinkId>,
    /// The bridge the lab made it a port of (and not moved since).
    master: Option<LinkId>,
    /// A veth pair not created in the kernel yet (see [`Lab::create_veth`]).
    pending: bool,
    /// Set up by the lab (and not moved since).
    up: bool,
    /// Addresses the lab gave it (since its last move).
    addresses: Vec<IpNet>,
    /// It has (or will get) an IPv6 link-local address.
    link_local: bool,
}

pub struct Lab {
    name: String,
    /// Raised by a signal or the deadline: no new operation starts.
    stop: Stop,
    mode: Mode,
    grants: Grants,
    limits: Limits,
    quotas: Quotas,
    journal: Journal,
    backend: Box<dyn Backend>,
    netns: Vec<NetnsEntry>,
    links: Vec<LinkEntry>,
    /// The machine's namespace and the policy's view of it, when the lab
    /// uses it (host-net: the host; or the far end of an uplink).
    machine: Option<(NsId, MachineRules)>,
    uplink: Option<LinkId>,
    /// The lab's nftables tables, by namespace and family, with the nonce
    /// of their marker chains.
    tables: HashMap<(NsId, TableFamily), u64>,
    /// Filter chains made so far (see [`TableChange::FilterChain`]).
    filter_chains: HashSet<(NsId, Direction)>,
    /// What the kernel offers for link conditions, once asked.
    queue_features: Option<QueueFeatures>,
    /// Links whose loss an nftables rule makes (no netem here).
    nft_loss: HashSet<LinkId>,
    /// Links taken down by `set-down` (a failure) and not up since.
    failed_links: HashSet<LinkId>,
    /// Masquerade rules, so that a repeated one is refused up front.
    nat_rules: HashSet<(NsId, IpNet)>,
    /// Route destinations per namespace, so that a repeated one is refused
    /// up front.
    routes: HashSet<(NsId, IpNet)>,
    forwarding: HashSet<(NsId, Family)>,
    last_ping: Option<Instant>,
    /// IPv6 link-local addresses on new links (`set-ipv6-link-local`).
    ipv6_link_local: bool,
    /// Names taken by veth ends not in the kernel yet, per namespace: the
    /// kernel cannot refuse a clash with those, so the lab does.
    pending_names: HashSet<(NsId, String)>,
    /// Veth ends set up with their peer up, whose carrier the kernel may
    /// not have processed yet (see [`Lab::wait_for_carriers`]).
    awaiting_carrier: Vec<LinkId>,
    /// The last error returned to the script, with the number of lab calls
    /// at the time: a crash right after it is explained by it.
    last_refusal: Option<(u64, String)>,
    /// Lab operations begun so far.
    calls: u64,
    /// Checks and probes, for the report.
    findings: Findings,
    /// Bytes of check names and details kept so far (`--max-report`).
    report_bytes: usize,
    /// When the last check was recorded (at first, when the lab started).
    last_check: Instant,
    /// Services started, as `<node>/<name>`.
    service_labels: HashSet<String>,
    /// The journal's entry of each service still running, by label: the
    /// process that holds it, which `down` ends.
    service_entries: HashMap<String, u32>,
    /// The `/etc/hosts` each node's files were last given, and the nodes
    /// whose `/etc/hosts` the script wrote itself (left as it wrote it).
    hosts_given: HashMap<NsId, String>,
    hosts_own: HashSet<NsId>,
    /// Whether the lab's PID namespace and its init were asked for.
    init_started: bool,
    /// Objects made so far, for the progress line.
    made: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// A coordinator's lab passes what it did on (see [`forward`]).
    forward: Option<Box<dyn forward::Forward>>,
}

impl Lab {
    /// A lab with nothing open yet.
    fn empty(name: &str, grants: Grants, journal: Journal, backend: Box<dyn Backend>, limits: Limits, stop: Stop, forward: Option<Box<dyn forward::Forward>>) -> Lab {
        let mode = grants.mode();
        Lab {
            name: name.to_string(),
            stop,
            mode,
            grants,
            quotas: Quotas::new(&limits),
            limits,
            journal,
            backend,
            netns: Vec::new(),
            links: Vec::new(),
            machine: None,
            uplink: None,
            tables: HashMap::new(),
            filter_chains: HashSet::new(),
            queue_features: None,
            nft_loss: HashSet::new(),
            failed_links: HashSet::new(),
            nat_rules: HashSet::new(),
            routes: HashSet::new(),
            forwarding: HashSet::new(),
            last_ping: None,
            ipv6_link_local: true,
            pending_names: HashSet::new(),
            awaiting_carrier: Vec::new(),
            last_refusal: None,
            calls: 0,
            findings: Findings::default(),
            report_bytes: 0,
            last_check: Instant::now(),
            service_labels: HashSet::new(),
            service_entries: HashMap::new(),
            hosts_given: HashMap::new(),
            hosts_own: HashSet::new(),
            init_started: false,
            made: Default::default(),
            forward,
        }
    }

    /// Start a lab whose journal is `journal`: set up its host, a namespace
    /// of its own unless `host-net` was granted. On failure the journal
    /// comes back with the error, so that what was made can be rolled back.
    pub async fn start(
        name: &str,
        grants: Grants,
        journal: Journal,
        backend: Box<dyn Backend>,
        limits: Limits,
        stop: Stop,
        forward: Option<Box<dyn forward::Forward>>,
    ) -> Result<Lab, (LabError, Journal)> {
        let mode = grants.mode();
        let mut lab = Lab::empty(name, grants, journal, backend, limits, stop, forward);
        let host = match mode {
            Mode::Contained => match lab.new_netns(naming::HOST, naming::host_netns(name)).await {
                Ok(id) => lab.forwarded(|| forward::LabOp::CreateHost { id }),
                Err(e) => Err(e),
            },
            Mode::HostNet => lab.adopt_machine(naming::HOST).await.map(drop),
        };
        match host {
            Ok(()) => Ok(lab),
            Err(e) => Err((e, lab.finish())),
        }
    }

    /// The lab is done (built, failed or stopped): close its namespaces and
    /// netlink sockets, and hand its journal back for what comes next.
    pub fn finish(self) -> Journal {
        self.journal
    }

    /// Open the machine's namespace (as the host in host-net mode, or as
    /// the far end of an uplink) and note its routes.
    async fn adopt_machine(&mut self, node: &str) -> LabResult<NsId> {
        if let Some((id, _)) = self.machine {
            return Ok(id);
        }
        let id = self.netns.len();
        self.backend.adopt_machine(id).await.map_err(|e| LabError::os("open the machine's namespace", &e))?;
        self.netns.push(NetnsEntry { node: node.into(), kernel: NetnsRef::Machine });
        let routes = self.backend.routes(id).await.map_err(|e| LabError::os("read the machine's routes", &e))?;
        let peers = self.backend.peers(id).await.map_err(|e| LabError::os("read whom the machine talks to", &e))?;
        self.machine = Some((id, MachineRules::new(self.grants.host_prefixes(), routes, peers)));
        Ok(id)
    }

    pub fn netns(&self, id: NsId) -> &NetnsEntry {
        &self.netns[id]
    }

    pub fn link(&self, id: LinkId) -> &LinkEntry {
        &self.links[id]
    }

    /// Refuse to start an operation once the run was told to stop; the
    /// guest then traps, and the lab is rolled back. (Every operation
    /// starts here: it also counts them.)
    fn refuse_if_stopped(&mut self) -> LabResult<()> {
        self.calls += 1;
        if self.stop.requested() { Err(LabError::stopped()) } else { Ok(()) }
    }

    /// Count a call that failed; past the limit, the script is stopped.
    pub fn note_failure(&mut self, error: &LabError) -> Result<(), crate::error::QuotaExhausted> {
        self.last_refusal = Some((self.calls, error.to_string()));
        self.quotas.failures.take(1, "").map_err(|quota| crate::error::QuotaExhausted(quota.to_string()))
    }

    /// The error nsw returned to the script's last call, if that call
    /// failed: a script that crashes right after it (an uncaught exception
    /// in Python or JavaScript, an `assert` in C) crashed because of it.
    pub fn refused_last_call(&self) -> Option<&str> {
        match &self.last_refusal {
            Some((calls, message)) if *calls == self.calls => Some(message),
            _ => None,
        }
    }

    /// The count of objects made so far (for a progress line).
    pub fn made(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.made.clone()
    }

    /// The run's stop flag.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Refuse strings longer than the lab allows, before looking at them.
    pub fn check_strings(&self, call: &str, strings: &[&str]) -> LabResult<()> {
        policy::check_strings(call, strings, self.limits.string_bytes)
    }

    /// Append a confirmation (or failure) to the journal: always written,
    /// whatever its size, so that the journal never lies.
    fn record(&mut self, entry: Entry) -> LabResult<()> {
        self.journal.append(entry).map_err(LabError::Trap)
    }

    /// Refuse to grow the journal past its cap: every call a script can
    /// repeat is bounded, the journal (in RAM, under /run) too.
    fn check_journal_room(&self) -> LabResult<()> {
        let cap = self.limits.journal_bytes;
        if self.journal.bytes() >= cap {
            return Err(policy::quota_error(
                &format!("the lab's journal has grown to {} KiB", self.journal.bytes() / 1024),
                format!("{} KiB", cap / 1024),
                "--max-journal",
            ));
        }
        Ok(())
    }

    fn record_intent(&mut self, object: Object) -> LabResult<u32> {
        self.record_intent_as(object, None)
    }

    /// Record an object about to be created, with the identity chosen for
    /// it beforehand, if any.
    fn record_intent_as(&mut self, object: Object, ident: Option<u64>) -> LabResult<u32> {
        self.check_journal_room()?;
        tracing::debug!("create {object}");
        self.journal.record_intent_as(object, ident).map_err(LabError::Trap)
    }

    /// Settle journal entries after the kernel answered: done (with the
    /// objects' identities), or failed. A kernel error means nothing was
    /// made: netlink and nftables requests are all or nothing, and the
    /// namespace code undoes its own half-done work. So the entry is
    /// settled now, never left for `down` to look up later by name, where
    /// someone else's object of the same name may be by then.
    fn confirm<T: Identities>(&mut self, ids: &[u32], outcome: std::io::Result<T>, what: impl FnOnce() -> String) -> LabResult<T> {
        match outcome {
            Ok(value) => {
                let idents = value.identities();
                for (i, &id) in ids.iter().enumerate() {
                    self.record(Entry::Created { id, ident: idents.get(i).copied().flatten(), since: None })?;
                }
                self.made.fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(value)
            }
            Err(e) => {
                for &id in ids {
                    self.record(Entry::Failed { id })?;
                }
                Err(LabError::os(&what(), &e))
            }
        }
    }

    /// The namespace as messages name it (`netns pbj-pb`).
    fn describe_ns(&self, ns: NsId) -> String {
        self.netns[ns].kernel.to_string()
    }

    /// The policy's rules for the machine's namespace, if `ns` is it.
    fn machine_rules(&self, ns: NsId) -> Option<&MachineRules> {
        self.machine.as_ref().filter(|(id, _)| *id == ns).map(|(_, rules)| rules)
    }

    /// The namespace must still be the one the lab created: a user may
    /// have deleted it (or put another in its place) while the lab ran.
    async fn alive(&mut self, ns: NsId) -> LabResult<()> {
        let what = format!("check {}", self.describe_ns(ns));
        let alive = self.backend.netns_alive(ns).await.map_err(|e| LabError::os(&what, &e))?;
        if !alive {
            return Err(LabError::not_found(format!("{} was deleted outside nsw", self.describe_ns(ns))));
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

    /// Where the lab's journal lives (and the registry of shared settings
    /// beside it).
    fn state_dir(&self) -> std::path::PathBuf {
        self.journal.path().parent().map(|p| p.to_path_buf()).unwrap_or_else(|| crate::places::get().state.clone())
    }

    /// Inode of the machine's namespace (where nsw runs).
    fn machine_inode(&self) -> u64 {
        self.journal.record().info.machine_netns
    }

    /// Whether `ns` is the machine's namespace, where objects get an
    /// identity chosen before they are made.
    fn is_machine(&self, ns: NsId) -> bool {
        self.netns[ns].kernel == NetnsRef::Machine
    }

    /// Addresses the lab gave the links of `ns`, with the link holding each.
    fn subnets_of(&self, ns: NsId) -> impl Iterator<Item = (IpNet, LinkId)> + '_ {
        self.links.iter().enumerate().filter(move |(_, l)| l.ns == ns).flat_map(|(id, l)| l.addresses.iter().map(move |a| (*a, id)))
    }
}

/// A random number from the kernel: the identities nsw chooses for what it
/// makes in the machine's namespace (interface indexes, table markers).
/// (`getrandom(2)` straight from libc, rather than a crate for one call.)
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for its length; getrandom writes at most that.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        // Practically never; the time is unique enough for a marker.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return now.as_nanos() as u64 ^ (std::process::id() as u64) << 32;
    }
    u64::from_ne_bytes(bytes)
}

/// An interface index for a link born in the machine's namespace: high
/// enough never to meet the kernel's own, which count up from 1.
fn fresh_ifindex() -> u32 {
    (1 << 24) + (random_u64() % ((i32::MAX as u64) - (1 << 24))) as u32
}

/// The kernel identities a backend answer carries, in the order of the
/// journal ids it confirms: a namespace's inode, links' indexes.
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
