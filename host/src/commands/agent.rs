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
use crate::cluster::store::ClusterStore;
use crate::cluster::{MachineRecord, VXLAN_PORT, check_machine_name};
use crate::encode::terminal::one_line;

/// How long a registration outlives its agent's last renewal.
const LEASE: Duration = Duration::from_secs(10);

#[derive(Args)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// The cluster's store: etcd client URLs, comma-separated (any members).
    #[arg(long, env = "NSW_STORE", value_delimiter = ',', required = true, value_name = "URLS")]
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
    async fn connect(&self) -> anyhow::Result<EtcdStore> {
        let endpoints = Endpoints { urls: self.store.clone(), ca: self.store_ca.clone(), cert: self.store_cert.clone(), key: self.store_key.clone() };
        EtcdStore::connect(&endpoints).await
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
}

pub async fn agent(args: AgentArgs) -> CommandResult {
    check_machine_name(&args.machine)?;
    let mut store = args.store.connect().await?;
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let record = MachineRecord {
        name: args.machine.clone(),
        underlay: args.underlay,
        vxlan_port: VXLAN_PORT,
        agent_pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
    };
    let mut stopping = Stopping::new()?;
    let Some(mut registration) = register(&mut store, &record, &mut stopping).await? else { return Ok(Status::Success) };
    say!("nsw agent: machine {} registered (underlay {}, lease {} s)", record.name, record.underlay, LEASE.as_secs());
    let mut unreachable_since: Option<Instant> = None;
    loop {
        if !stopping.sleep(LEASE / 3).await {
            break;
        }
        match store.renew(registration).await {
            Ok(true) => {
                if unreachable_since.take().is_some() {
                    say!("nsw agent: the store answers again");
                }
            }
            // Run out while the store was away: register again.
            Ok(false) => {
                say!("nsw agent: the registration ran out; registering again");
                match register(&mut store, &record, &mut stopping).await {
                    Ok(Some(again)) => registration = again,
                    Ok(None) => return Ok(Status::Success),
                    // The store away again, or the name taken meanwhile:
                    // said, and tried at the next renewal.
                    Err(e) => say!("nsw agent: warning: {}", one_line(&format!("{e:#}"))),
                }
            }
            Err(e) => {
                if unreachable_since.is_none() {
                    say!("nsw agent: warning: {}; trying again", one_line(&format!("{e:#}")));
                    unreachable_since = Some(Instant::now());
                }
            }
        }
    }
    let _ = store.withdraw(registration).await;
    say!("nsw agent: machine {} withdrawn", record.name);
    Ok(Status::Success)
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
async fn register(store: &mut EtcdStore, record: &MachineRecord, stopping: &mut Stopping) -> anyhow::Result<Option<crate::cluster::store::Registration>> {
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
