//! `nsw plan FILE.wasm [-- ARGS]`: what a script would build, as a shell
//! script of `ip`, `nft` and `sysctl` commands, without root and without
//! changing anything: the script runs against the plan backend (the
//! kernel modelled in memory). `inspect` says what a script may do;
//! `plan` says what it will do.

use clap::Args;

use super::run::RunArgs;
use super::{CommandResult, Failure, Status, say, show};
use crate::backend::plan::PlanBackend;
use crate::build::Ending;
use crate::policy::Grants;
use crate::runtime;
use crate::script::Outcome;
use crate::stop::Stop;

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

pub async fn exec(args: PlanArgs) -> CommandResult {
    let args = args.run;
    if args.cluster.given() {
        return Err(anyhow::anyhow!("nsw plan of a lab across machines (--store, NSW_STORE) is not available yet").into());
    }
    let lab_name = args.lab_name()?;
    let mut grants = Grants::parse(&args.allow, args.allow_all)?;
    // Programs are shown run as root's `nsw run` would run them.
    let (exec_user, behind_boundary) = args.as_root(&grants)?;
    grants.exec_user = exec_user;
    grants.node_files_refused = crate::policy::node_files::refusal(false, behind_boundary, exec_user);
    let wasm = std::fs::read(&args.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    if let Some(fetched) = &args.fetched {
        fetched.check(&wasm)?;
    }
    crate::build::check_script(&args.file, &wasm, &grants, &args.limits.0)?;
    let engine = runtime::engine()?;
    // Compiled afresh: the cache is root's, and a plan needs no root.
    let bounds = runtime::compiler::Bounds { memory_bytes: args.limits.0.compile_memory_bytes, abandon: &|| false };
    let component = runtime::compiler::compile(&engine, &wasm, &args.file, &bounds)?;
    let linker = crate::build::linker_for(&engine, &args.file, &component)?;
    // The journal of a plan: in a directory of its own, gone at the end.
    let aside = super::Aside::new("nsw-plan")?;
    let (lock, journal) = aside.model_journal(&lab_name, &grants, args.script_name())?;
    let plan = PlanBackend { lab_root: behind_boundary, ..PlanBackend::new() };
    let log = plan.state.clone();
    let limits = args.limits.0.clone();
    let run = crate::build::Run {
        engine: &engine,
        linker: &linker,
        component: &component,
        lab: &lab_name,
        grants,
        run_limits: crate::build::run_limits(&limits, true),
        limits,
        args: args.args.clone(),
        stop: Stop::new(),
        keep_services: false,
        forward: None,
    };
    let outcome = match run.go(journal, Box::new(plan), |_| None).await.ending {
        Ending::Guest(outcome) => outcome,
        Ending::CrashedAfterRefusal(e, _) => Outcome::Trap(e),
        Ending::Setup(e) => Outcome::GuestError(e.to_string()),
    };
    drop(lock);
    drop(aside);
    show!("#!/bin/sh");
    show!("# nsw plan {}: what the script would build, as commands.", args.script_name());
    show!("# Nothing ran. Probes are shown as comments (a plan assumes they succeed).");
    show!("set -e");
    for line in &log.lock().map_err(|_| anyhow::anyhow!("the plan's state is poisoned"))?.log {
        show!("{line}");
    }
    match outcome {
        Outcome::Success => Ok(Status::Success),
        other => {
            let why = match other {
                Outcome::GuestError(message) => format!("the script failed: {}", crate::encode::terminal::one_line(&message)),
                other => format!("the script ended early: {other:?}"),
            };
            say!("nsw: {why} (the plan shows what it did up to there)");
            Err(Failure::new(Status::GuestError, anyhow::anyhow!("{why}")))
        }
    }
}
