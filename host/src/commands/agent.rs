//! `nsw agent` and `nsw machines`: the machines of a cluster, agreed
//! through a store (see [`crate::cluster`]). An agent registers its
//! machine under a lease and renews it until SIGTERM or SIGINT, when it
//! withdraws it; a machine whose agent died drops out when the lease runs
//! out.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::{CommandResult, Status, say, show};
use crate::cluster::etcd::{Endpoints, EtcdStore};
use crate::cluster::store::{ClusterStore, Registration};
use crate::spread::part::Parts;
use crate::cluster::{MachineRecord, VXLAN_PORT, check_machine_name};
use crate::encode::terminal::one_line;

/// How long a registration outlives its agent's last renewal (and a
/// coordinator's sign of life, the coordinator).
pub const LEASE: Duration = Duration::from_secs(10);

/// How often an agent looks whether the coordinators of the parts it is
/// building are alive.
const ORPHANS_EVERY: Duration = Duration::from_secs(2);

#[derive(Args)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// The cluster's store: etcd client URLs, comma-separated (any members).
    #[arg(long, env = "NSW_STORE", value_delimiter = ',', value_name = "URLS")]
    store: Vec<String>,
    /// The CA the store's certificates are checked against.
    #[arg(long, env = "NSW_STORE_CA", value_name = "PEM")]
    store_ca: Option<PathBuf>,
    /// nsw's client certificate for the store (with --store-key).
    #[arg(long, env = "NSW_STORE_CERT", value_name = "PEM")]
    store_cert: Option<PathBuf>,
    /// The key of that certificate.
    #[arg(long, env = "NSW_STORE_KEY", value_name = "PEM")]
    store_key: Option<PathBuf>,
}

impl StoreArgs {
    pub fn endpoints(&self) -> Endpoints {
        Endpoints { urls: self.store.clone(), ca: self.store_ca.clone(), cert: self.store_cert.clone(), key: self.store_key.clone() }
    }

    /// Whether a store was given (else the lab is this machine's).
    pub fn given(&self) -> bool {
        !self.store.is_empty()
    }

    pub async fn connect(&self) -> anyhow::Result<EtcdStore> {
        EtcdStore::connect(&self.endpoints()).await
    }
}

#[derive(Args)]
pub struct AgentArgs {
    /// This machine's name in the cluster.
    #[arg(long)]
    machine: String,
    /// The address other machines reach this one at (the underlay).
    #[arg(long, value_name = "ADDRESS")]
    underlay: std::net::IpAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// The limits of each lab's part on this machine (whatever the
    /// coordinator allowed the whole lab).
    #[command(flatten)]
    limits: super::limit_args::LimitArgs,
}

pub async fn agent(args: AgentArgs) -> CommandResult {
    super::require_root("agent")?;
    check_machine_name(&args.machine)?;
    let endpoints = args.store.endpoints();
    let mut store = EtcdStore::connect(&endpoints).await?;
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let record = MachineRecord {
        name: args.machine.clone(),
        underlay: args.underlay,
        vxlan_port: VXLAN_PORT,
        underlay_mtu: underlay_mtu(args.underlay).await?,
        agent_pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
    };
    let mut stopping = Stopping::new()?;
    let Some(registration) = register(&mut store, &record, &mut stopping).await? else { return Ok(Status::Success) };
    say!("nsw agent: machine {} registered (underlay {}, MTU {}, lease {} s)", record.name, record.underlay, record.underlay_mtu, LEASE.as_secs());
    // Renewed from a thread of its own: building a large part takes
    // longer than a lease.
    let renewer = Renewer::start(endpoints.clone(), registration, Some(record.clone()));
    let store_id = store.id().await?;
    let mut parts = Parts::new(&record, &store_id, args.limits.0.clone());
    if let Err(e) = parts.reconcile(&mut store).await {
        say!("nsw agent: warning: cannot look at this machine's parts: {}", one_line(&format!("{e:#}")));
    }
    let mut busy_at = Instant::now();
    let mut looked_for_orphans = Instant::now();
    let mut unreachable = false;
    loop {
        // Quick while labs are being built, slow when idle.
        let pause = if busy_at.elapsed() < Duration::from_secs(5) { Duration::from_millis(5) } else { Duration::from_millis(200) };
        if !stopping.sleep(pause).await {
            break;
        }
        if looked_for_orphans.elapsed() > ORPHANS_EVERY {
            looked_for_orphans = Instant::now();
            if let Err(e) = parts.reap_orphans(&mut store).await {
                say!("nsw agent: warning: {}", one_line(&format!("{e:#}")));
            }
        }
        match parts.serve_inbox(&mut store).await {
            Ok(busy) => {
                if busy {
                    busy_at = Instant::now();
                }
                if std::mem::take(&mut unreachable) {
                    say!("nsw agent: the store answers again");
                }
            }
            Err(e) if !unreachable => {
                say!("nsw agent: warning: {}; trying again", one_line(&format!("{e:#}")));
                unreachable = true;
            }
            Err(_) => {}
        }
    }
    drop(renewer);
    say!("nsw agent: machine {} withdrawn", record.name);
    Ok(Status::Success)
}

/// The MTU of the interface that has `address`.
async fn underlay_mtu(address: std::net::IpAddr) -> anyhow::Result<u32> {
    match crate::backend::underlay_mtu(address).await? {
        Some(mtu) => Ok(mtu),
        None => anyhow::bail!("--underlay {address}: no interface of this machine has that address"),
    }
}

/// A registration — an agent's machine, or a coordinator's sign of life
/// (see [`crate::spread`]) — renewed every third of a lease from a thread
/// of its own (what the asking thread does can take longer than a lease)
/// until dropped, then withdrawn. A machine's is registered again if it
/// ran out while the store was away.
pub struct Renewer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Renewer {
    pub fn start(endpoints: Endpoints, registration: Registration, machine: Option<MachineRecord>) -> Renewer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(keep_registered(endpoints, machine, registration, stopped));
        });
        Renewer { stop, thread: Some(thread) }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn keep_registered(endpoints: Endpoints, machine: Option<MachineRecord>, mut registration: Registration, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let who = if machine.is_some() { "nsw agent" } else { "nsw" };
    let mut store = None;
    let mut unreachable_since: Option<Instant> = None;
    let mut renewed = Instant::now();
    while !stopped() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if renewed.elapsed() < LEASE / 3 {
            continue;
        }
        renewed = Instant::now();
        if store.is_none() {
            store = EtcdStore::connect(&endpoints).await.ok();
        }
        let Some(s) = store.as_mut() else { continue };
        match (s.renew(registration).await, &machine) {
            (Ok(true), _) => {
                if unreachable_since.take().is_some() {
                    say!("{who}: the store answers again");
                }
            }
            // Run out while the store was away: register again.
            (Ok(false), Some(record)) => {
                say!("nsw agent: the registration ran out; registering again");
                match s.register(record, LEASE).await {
                    Ok(Ok(again)) => registration = again,
                    Ok(Err(holder)) => say!("nsw agent: warning: machine {} is registered by agent pid {} now", one_line(&holder.name), holder.agent_pid),
                    Err(e) => say!("nsw agent: warning: {}", one_line(&format!("{e:#}"))),
                }
            }
            // A sign of life that ran out: the agents take the lab down.
            (Ok(false), None) => {
                say!("nsw: warning: this run's sign of life in the store ran out; the machines take the lab down");
                break;
            }
            (Err(e), _) => {
                if unreachable_since.is_none() {
                    say!("{who}: warning: {}; trying again", one_line(&format!("{e:#}")));
                    unreachable_since = Some(Instant::now());
                }
            }
        }
    }
    if let Some(s) = store.as_mut() {
        let _ = s.withdraw(registration).await;
    } else if let Ok(mut s) = EtcdStore::connect(&endpoints).await {
        let _ = s.withdraw(registration).await;
    }
}

/// SIGTERM or SIGINT, caught from the start: they end the agent's waits.
struct Stopping {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Stopping {
    fn new() -> anyhow::Result<Stopping> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Stopping { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    /// Sleep for `time`; `false` if a signal came first.
    async fn sleep(&mut self, time: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(time) => true,
            _ = self.terminate.recv() => false,
            _ = self.interrupt.recv() => false,
        }
    }
}

/// Register, waiting out the lease of an agent of the same name that died
/// (a restart); a live one keeps the name. `None`: stopped while waiting.
async fn register(store: &mut EtcdStore, record: &MachineRecord, stopping: &mut Stopping) -> anyhow::Result<Option<Registration>> {
    let until = Instant::now() + LEASE + Duration::from_secs(3);
    let mut said = false;
    loop {
        match store.register(record, LEASE).await? {
            Ok(registration) => return Ok(Some(registration)),
            Err(holder) if Instant::now() < until => {
                if !said {
                    say!("nsw agent: machine {} is registered by agent pid {} (underlay {}); waiting for its lease to run out", one_line(&holder.name), holder.agent_pid, holder.underlay);
                    said = true;
                }
                if !stopping.sleep(Duration::from_millis(500)).await {
                    return Ok(None);
                }
            }
            Err(holder) => anyhow::bail!(
                "machine {} is registered by a live agent (pid {}, underlay {}): one agent per machine name",
                one_line(&holder.name),
                holder.agent_pid,
                holder.underlay
            ),
        }
    }
}

#[derive(Args)]
pub struct MachinesArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn machines(args: MachinesArgs) -> CommandResult {
    let mut store = args.store.connect().await?;
    let machines = store.machines().await?;
    if args.json {
        show!("{}", serde_json::to_string_pretty(&machines)?);
        return Ok(Status::Success);
    }
    show!("{:<20} {:<40} {:>8}  VERSION", "MACHINE", "UNDERLAY", "AGENT");
    for m in &machines {
        show!("{:<20} {:<40} {:>8}  {}", one_line(&m.name), format!("{}:{}", m.underlay, m.vxlan_port), m.agent_pid, one_line(&m.version));
    }
    Ok(Status::Success)
}
