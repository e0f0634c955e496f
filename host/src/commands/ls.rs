//! `nsw ls [--json]`: the labs nsw knows of, their state and namespaces.

use clap::Args;
use serde::Serialize;

use super::{CommandResult, Status, say, show};
use crate::backend::{self, Teardown};
use crate::journal::{LabRecord, LabState, Mode, StateDir};

#[derive(Args)]
pub struct LsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The labs across machines the store has, instead of this machine's.
    #[command(flatten)]
    store: super::agent::StoreArgs,
}

impl LsArgs {
    pub fn across(&self) -> bool {
        self.store.given()
    }
}

#[derive(Serialize)]
struct LabListing {
    name: String,
    state: &'static str,
    mode: Mode,
    /// What the lab was granted, as `--allow` spells it.
    grants: Vec<String>,
    script: String,
    /// The nsw process building or taking down the lab; none once it is
    /// up (or broken: its builder is gone).
    pid: Option<u32>,
    started_unix: u64,
    namespaces: Vec<NetnsListing>,
    objects: usize,
}

#[derive(Serialize)]
struct NetnsListing {
    name: String,
    node: String,
    present: bool,
}

/// The state to show, knowing whether another process holds the lab's
/// lock: a lab whose builder died mid-way is `broken`.
pub fn describe_state(record: &LabRecord, lock_held: bool) -> &'static str {
    match record.state {
        LabState::Up => "up",
        LabState::Failed => "failed, kept",
        LabState::Building if lock_held => "building",
        LabState::TearingDown if lock_held => "tearing down",
        LabState::Building | LabState::TearingDown => "broken",
    }
}

pub async fn exec(args: LsArgs) -> CommandResult {
    if args.across() {
        return super::across::ls(&args.store, args.json).await;
    }
    let state = StateDir::system();
    let mut machine = backend::system();
    let mut listings = Vec::new();
    for lab in state.labs()? {
        let record = match state.read(&lab) {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(e) => {
                // One bad journal must not hide the other labs.
                say!("nsw: lab {lab}: {e:#}");
                continue;
            }
        };
        let mut namespaces = Vec::new();
        for (name, node) in record.namespaces() {
            let present = matches!(machine.netns_inode(name).await, Ok(Some(_)));
            namespaces.push(NetnsListing { name: name.to_string(), node: node.to_string(), present });
        }
        let busy = state.lock_held(&record.info.name);
        listings.push(LabListing {
            name: record.info.name.clone(),
            state: describe_state(&record, busy),
            mode: record.info.mode,
            grants: record.info.grants.clone(),
            script: record.info.script.clone(),
            pid: busy.then_some(record.info.pid),
            started_unix: record.info.started_unix,
            namespaces,
            objects: record.objects.len(),
        });
    }
    if args.json {
        show!("{}", serde_json::to_string_pretty(&listings)?);
        return Ok(Status::Success);
    }
    if listings.is_empty() {
        show!("no labs");
        return Ok(Status::Success);
    }
    show!("{:<20} {:<13} {:<10} NAMESPACES", "LAB", "STATE", "MODE");
    for l in &listings {
        let mode = match l.mode {
            Mode::Contained => "contained",
            Mode::HostNet => "host-net",
        };
        let names: Vec<String> =
            l.namespaces.iter().map(|n| if n.present { n.name.clone() } else { format!("{} (missing)", n.name) }).collect();
        show!("{:<20} {:<13} {:<10} {}", l.name, l.state, mode, names.join(" "));
    }
    Ok(Status::Success)
}
