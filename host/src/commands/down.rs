//! `nsw down LAB... | --all`: remove exactly what labs created.

use std::time::Duration;

use clap::Args;

use super::{CommandResult, Status, require_root, say, show, tell_problems};
use crate::backend::{self, Teardown};
use crate::journal::StateDir;
use crate::policy;
use crate::session::Session;

#[derive(Args)]
pub struct DownArgs {
    /// Labs to take down.
    #[arg(required_unless_present = "all")]
    labs: Vec<String>,
    /// Take down every lab nsw knows of.
    #[arg(long, conflicts_with = "labs")]
    all: bool,
    /// For a lab built from another network namespace (host-net or
    /// uplink) that cannot be entered any more: remove the lab's own
    /// namespaces and forget its objects over there.
    #[arg(long)]
    force: bool,
    /// Say what was done as JSON on stdout instead, one line per lab taken
    /// down (what could not be done is still said on stderr): `{"lab": ..., "summary": ..., "removed": N, "left_alone": [...]}`.
    #[arg(long)]
    json: bool,
    /// Labs across machines: take them down on every machine.
    #[command(flatten)]
    store: super::agent::StoreArgs,
}

impl DownArgs {
    pub fn across(&self) -> bool {
        self.store.given()
    }
}

/// How long `down` waits for another nsw working on the same lab.
const PATIENCE: Duration = Duration::from_secs(120);

pub async fn exec(args: DownArgs) -> CommandResult {
    if args.across() {
        if args.all || args.force || args.json {
            return Err(anyhow::anyhow!("--all, --force and --json are not available with --store yet: name the labs").into());
        }
        return super::across::down(&args.labs, &args.store).await;
    }
    require_root("down")?;
    let state = StateDir::system();
    let labs = if args.all { state.labs()? } else { args.labs };
    let mut machine = backend::system();
    let mut status = Status::Success;
    for lab in &labs {
        if let Err(failure) = take_down_lab(&state, &mut machine, lab, args.force, args.json).await {
            status = failure.status;
            super::fail(failure);
        }
    }
    // An ordinary user with no labs left needs no keeper either.
    if status == Status::Success && crate::rootless::stop_keeper_if_idle()? {
        say!("nsw: no labs left: stopped the keeper of your namespaces");
    }
    Ok(status)
}

async fn take_down_lab(state: &StateDir, machine: &mut dyn Teardown, lab: &str, force: bool, json: bool) -> CommandResult {
    policy::check_lab_name(lab).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    // Another nsw may be building or taking down this lab: wait for it.
    let Some((session, journal)) = Session::existing(state.clone(), lab, PATIENCE)? else {
        say!("nsw: there is no lab {lab}; nothing to do");
        return Ok(Status::Success);
    };
    let report = session.tear_down(journal, machine, force).await?;
    tell_problems(&report);
    if json {
        let line = serde_json::json!({ "lab": lab, "summary": report.summary(), "removed": report.removed.len(), "left_alone": report.left_alone });
        show!("{line}");
    } else {
        say!("nsw: lab {lab} is down: {}", report.summary());
    }
    for what in &report.removed {
        tracing::debug!("removed {what}");
    }
    for what in &report.already_gone {
        tracing::debug!("already gone: {what}");
    }
    Ok(Status::Success)
}
