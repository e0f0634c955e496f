//! Labs across machines from the command line: `nsw run --store` (the
//! coordinator: see [`crate::spread`]), `nsw down --store` and `nsw ls
//! --store`.

use std::collections::HashMap;
use std::time::Instant;

use clap::Args;

use super::run::RunArgs;
use super::{CommandResult, Failure, Status, say, show};
use crate::backend::plan::PlanBackend;
use crate::encode::terminal::one_line;
use crate::spread::coordinator::{Handle, Router};
use crate::spread::labs;
use crate::stop::Stop;

/// The flags of a lab across machines.
#[derive(Args)]
#[command(next_help_heading = "Across machines")]
pub struct ClusterArgs {
    #[command(flatten)]
    pub store: super::agent::StoreArgs,
    /// Put node NODE (`host`: the lab's host) on machine MACHINE; nodes
    /// not placed are spread evenly over the machines (with --store).
    #[arg(long = "place", value_name = "NODE=MACHINE")]
    pub place: Vec<String>,
}

impl ClusterArgs {
    /// Whether the lab goes across machines.
    pub fn given(&self) -> bool {
        self.store.given()
    }

    fn placement(&self) -> anyhow::Result<HashMap<String, String>> {
        let mut placed = HashMap::new();
        for value in &self.place {
            let Some((node, machine)) = value.split_once('=') else { anyhow::bail!("--place {}: NODE=MACHINE", crate::policy::quoted(value)) };
            if node != crate::naming::HOST {
                crate::policy::check_node_name(node).map_err(|e| anyhow::anyhow!("--place {node}: {}", e.message()))?;
            }
            crate::cluster::check_machine_name(machine)?;
            if placed.insert(node.to_string(), machine.to_string()).is_some() {
                anyhow::bail!("--place {node}: placed twice");
            }
        }
        Ok(placed)
    }
}

/// `nsw run FILE --store URLS`: the script runs here, against the lab's
/// model; the machines' agents build it.
pub async fn run(args: &RunArgs) -> CommandResult {
    let started = Instant::now();
    if !args.allow.is_empty() || args.allow_all {
        return Err(anyhow::anyhow!("a lab across machines is contained: --allow is not available with --store yet").into());
    }
    // A failed build is always rolled back (the agents would reap a kept
    // one once this run is gone); a lab is replaced by `down` first.
    if args.keep || args.replace {
        return Err(anyhow::anyhow!("--keep and --replace are not available with --store yet (nsw down LAB --store, then run)").into());
    }
    let lab_name = args.lab_name()?;
    let placed = args.cluster.placement()?;
    let grants = crate::policy::Grants::default();
    let wasm = std::fs::read(&args.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    if let Some(fetched) = &args.fetched {
        fetched.check(&wasm)?;
    }
    crate::build::check_script(&args.file, &wasm, &grants, &args.limits.0)?;
    let info = crate::inspect::parse(&wasm)?;
    crate::policy::imports::check_across_machines(info.imports.iter().map(String::as_str)).map_err(|e| anyhow::anyhow!("{} cannot run across machines: {e}", args.file.display()))?;
    let stop = Stop::new();
    super::catch_signals(stop.clone())?;
    let engine = crate::runtime::engine()?;
    let bounds = crate::runtime::compiler::Bounds { memory_bytes: args.limits.0.compile_memory_bytes, abandon: &|| stop.requested() };
    let component = crate::runtime::compiler::compile(&engine, &wasm, &args.file, &bounds)?;
    let linker = crate::build::linker_for(&engine, &args.file, &component)?;

    // The coordinator's model of the lab keeps its journal aside, gone at
    // the end: the machines' parts have the real ones.
    let aside = super::Aside::new("nsw-across")?;
    let (lock, journal) = aside.model_journal(&lab_name, &grants, args.script_name())?;
    let store = args.cluster.store.connect().await?;
    let router = Router::start(Box::new(store), &lab_name, &args.script_name(), placed, stop.clone(), super::agent::LEASE).await?;
    // Renewed while the lab is built: the agents take their parts down
    // when it runs out (this nsw killed, its machine lost).
    let sign_of_life = super::agent::Renewer::start(args.cluster.store.endpoints(), router.sign_of_life, None);
    let router = std::sync::Arc::new(tokio::sync::Mutex::new(router));
    let limits = args.limits.0.clone();
    let run = crate::build::Run {
        engine: &engine,
        linker: &linker,
        component: &component,
        lab: &lab_name,
        grants,
        run_limits: crate::build::run_limits(&limits, false),
        limits,
        args: args.args.clone(),
        stop: stop.clone(),
        keep_services: false,
        forward: Some(Box::new(Handle(router.clone()))),
    };
    let ran = run.go(journal, Box::new(PlanBackend::new()), |_| None).await;
    drop(ran.journal);
    drop(lock);
    let mut router = router.lock().await;
    let _sign_of_life = sign_of_life;
    let failure = match super::run::failure(ran.ending) {
        None => router.finish().await.err().map(|e| (format!("building the lab failed: {e}"), Status::GuestError)),
        failure => failure,
    };
    let placement = summary(router.placement());
    let machines: std::collections::BTreeSet<&String> = router.placement().values().collect();
    match failure {
        None if !args.rm => {
            say!(
                "nsw: lab {lab_name} is up across {} machine{} in {:.2} s: {} (nsw down {lab_name} --store ...)",
                machines.len(),
                if machines.len() == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64(),
                one_line(&placement)
            );
            Ok(Status::Success)
        }
        failure => {
            if let Some((why, _)) = &failure {
                say!("nsw: {}", one_line(why));
            }
            let down = router.down().await?;
            tell_down(&lab_name, &down);
            match failure {
                None => Ok(Status::Success),
                Some((why, status)) => Err(Failure::new(status, anyhow::anyhow!("lab {lab_name} across machines: {why}"))),
            }
        }
    }
}

/// Where the nodes went, in a line: `host on m0; 3 nodes on m0 (pb, ...)`.
fn summary(placement: &std::collections::BTreeMap<String, String>) -> String {
    let mut by_machine: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (node, machine) in placement {
        if node != crate::naming::HOST {
            by_machine.entry(machine).or_default().push(node);
        }
    }
    let mut said = match placement.get(crate::naming::HOST) {
        Some(machine) => vec![format!("host on {machine}")],
        None => Vec::new(),
    };
    for (machine, nodes) in by_machine {
        let shown: Vec<&str> = nodes.iter().take(3).copied().collect();
        let more = if nodes.len() > 3 { ", ..." } else { "" };
        let plural = if nodes.len() == 1 { "" } else { "s" };
        said.push(format!("{} node{plural} on {machine} ({}{more})", nodes.len(), shown.join(", ")));
    }
    said.join("; ")
}

fn tell_down(lab: &str, down: &labs::Down) {
    let mut said = format!("nsw: lab {lab} is down on {} machine{}", down.done.len(), if down.done.len() == 1 { "" } else { "s" });
    if !down.waiting.is_empty() {
        said += &format!("; its part on {} waits for the agent to come back, which takes it down", down.waiting.join(", "));
    }
    say!("{}", one_line(&said));
    for (machine, why) in &down.failed {
        say!("nsw: machine {machine} could not take its part down: {}", one_line(why));
    }
}

/// `nsw down LAB... --store URLS`.
pub async fn down(labs_named: &[String], store: &super::agent::StoreArgs) -> CommandResult {
    let mut store = store.connect().await?;
    let mut status = Status::Success;
    for lab in labs_named {
        crate::policy::check_lab_name(lab).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        match labs::down(&mut store, lab).await? {
            None => say!("nsw: the cluster has no lab {lab}; nothing to do"),
            Some(down) => {
                tell_down(lab, &down);
                if !down.failed.is_empty() {
                    status = Status::Incomplete;
                }
            }
        }
    }
    Ok(status)
}

/// `nsw ls --store URLS`.
pub async fn ls(store: &super::agent::StoreArgs, json: bool) -> CommandResult {
    let mut store = store.connect().await?;
    let live: Vec<String> = crate::cluster::store::ClusterStore::machines(&mut store).await?.into_iter().map(|m| m.name).collect();
    let mut rows = Vec::new();
    for record in labs::records(&mut store).await? {
        let parts = labs::parts(&mut store, &record.name).await?;
        let away: Vec<String> = parts.iter().filter(|m| !live.contains(m)).cloned().collect();
        rows.push((record, parts, away));
    }
    if json {
        let listing: Vec<serde_json::Value> = rows
            .iter()
            .map(|(record, parts, away)| serde_json::json!({ "name": record.name, "state": record.state, "script": record.script, "coordinator": record.coordinator, "placement": record.placement, "parts": parts, "away": away }))
            .collect();
        show!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(Status::Success);
    }
    show!("{:<20} {:<10} {:<30} SCRIPT", "LAB", "STATE", "MACHINES");
    for (record, parts, away) in &rows {
        let state = match record.state {
            labs::LabState::Building => "building",
            labs::LabState::Up => "up",
            labs::LabState::Down => "down",
        };
        let mut machines = parts.join(",");
        if !away.is_empty() {
            machines += &format!(" (away: {})", away.join(","));
        }
        show!("{:<20} {:<10} {:<30} {}", one_line(&record.name), state, one_line(&machines), one_line(&record.script));
    }
    Ok(Status::Success)
}
