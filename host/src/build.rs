//! The one build pipeline of `nsw run`, `nsw test` and `nsw plan`: a
//! script is read and checked (a component whose imports the grants
//! allow), made ready to instantiate, and run against a lab on a backend
//! (the kernel, or the plan's model of it). What differs between the
//! commands — where the journal lives, whether the compiled cache is
//! used, what happens to the lab at the end — is theirs.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::backend::Backend;
use crate::error::LabError;
use crate::imports::HostState;
use crate::journal::Journal;
use crate::lab::{Findings, Lab};
use crate::policy::{self, Grants, Limits};
use crate::runtime::RunLimits;
use crate::script::{self, Outcome, RunTimes};
use crate::stop::Stop;

/// Imports are requests: refuse a script whose imports were not granted
/// (or that is no component at all, or larger than `--max-component`)
/// before anything runs.
pub fn check_script(file: &Path, wasm: &[u8], grants: &Grants, limits: &Limits) -> Result<()> {
    if wasm.len() > limits.component_bytes {
        anyhow::bail!(
            "{} is {} bytes; a component may be {} MiB at most (raise it with --max-component)",
            file.display(),
            wasm.len(),
            limits.component_bytes >> 20
        );
    }
    crate::runtime::cache::set_limits(crate::runtime::cache::CacheLimits { total_bytes: limits.cache_bytes, run_bytes: limits.cache_run_bytes });
    let info = crate::inspect::parse(wasm).with_context(|| format!("{} is not a WebAssembly component", file.display()))?;
    policy::check_imports(info.imports.iter().map(String::as_str), grants).with_context(|| format!("{} cannot run", file.display()))
}

/// The limits of the script's own run (its store), from the lab's.
pub fn run_limits(limits: &Limits, dry: bool) -> RunLimits {
    RunLimits {
        timeout: Duration::from_secs(limits.timeout_secs),
        memory_bytes: limits.memory_bytes,
        memory_total_bytes: limits.memory_total_bytes,
        output_bytes: limits.output_bytes,
        compile_memory_bytes: limits.compile_memory_bytes,
        dry,
    }
}

/// The linker for `component`, refusing a script whose imports nsw cannot
/// satisfy before anything is built.
pub fn linker_for(engine: &Engine, file: &Path, component: &Component) -> Result<Linker<HostState>> {
    let linker = script::linker(engine)?;
    linker.instantiate_pre(component).map_err(anyhow::Error::from).with_context(|| format!("{} cannot run under nsw", file.display()))?;
    Ok(linker)
}

/// How the script's run ended.
pub enum Ending {
    Guest(Outcome),
    /// The guest trapped right after nsw refused its last call (the error
    /// it did not catch).
    CrashedAfterRefusal(wasmtime::Error, String),
    /// Setting up the lab's host failed before the guest ran.
    Setup(LabError),
}

/// What running the script in a lab gave: how it ended, the journal back
/// (for what comes next), what the script found, where the time went.
pub struct Ran {
    pub ending: Ending,
    pub journal: Journal,
    pub findings: Findings,
    pub times: RunTimes,
    /// The services still running in a lab left up (see `Run::keep_services`).
    pub services: Option<crate::runtime::service::Services>,
}

/// What a run is made of.
pub struct Run<'a> {
    pub engine: &'a Engine,
    pub linker: &'a Linker<HostState>,
    pub component: &'a Component,
    pub lab: &'a str,
    pub grants: Grants,
    pub limits: Limits,
    pub run_limits: RunLimits,
    pub args: Vec<String>,
    pub stop: Stop,
    /// The lab stays up if the script succeeds: its services keep running
    /// after the run, until the lab goes down.
    pub keep_services: bool,
    /// A coordinator's lab passes what it did on to the machines (`nsw run
    /// --store`); `None` for a lab of this machine.
    pub forward: Option<Box<dyn crate::lab::forward::Forward>>,
}

impl Run<'_> {
    /// Start the lab (its host first) on `backend` with `journal`, and run
    /// the script in it until it ends. `before` runs once the lab is up,
    /// just before the guest starts (a progress line; the crash tests'
    /// hooks).
    pub async fn go(self, journal: Journal, backend: Box<dyn Backend>, before: impl FnOnce(&Lab) -> Option<Box<dyn std::any::Any>>) -> Ran {
        let stop = self.stop.clone();
        match Lab::start(self.lab, self.grants, journal, backend, self.limits, self.stop, self.forward).await {
            Err((e, journal)) => Ran { ending: Ending::Setup(e), journal, findings: Findings::default(), times: RunTimes::default(), services: None },
            Ok(lab) if stop.requested() => Ran {
                ending: Ending::Guest(script::stopped_outcome(&stop, &self.run_limits)),
                journal: lab.finish(),
                findings: Findings::default(),
                times: RunTimes::default(),
                services: None,
            },
            Ok(lab) => {
                let held = before(&lab);
                let (outcome, lab, times, services) =
                    script::run(self.engine, self.linker, self.component, lab, self.args, &self.run_limits, &stop, self.keep_services).await;
                drop(held);
                let ending = match (outcome, lab.refused_last_call()) {
                    (Outcome::Trap(e), Some(refusal)) => Ending::CrashedAfterRefusal(e, refusal.to_string()),
                    (outcome, _) => Ending::Guest(outcome),
                };
                let findings = lab.findings().clone();
                // Closes the lab's namespace fds and netlink sockets.
                Ran { ending, journal: lab.finish(), findings, times, services }
            }
        }
    }
}
