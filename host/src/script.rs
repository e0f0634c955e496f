//! Running a lab script: its component instantiated against the lab's
//! imports ([`crate::imports`]) in a store with a deadline, a memory cap
//! and WASI that reaches nothing but the captured stdout and stderr; its
//! `run(args)` called until it returns, traps or is stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;

use crate::error::QuotaExhausted;
use crate::imports::HostState;
use crate::imports::bindings::Everything as LabWorld;
use crate::lab::Lab;
use crate::runtime::RunLimits;
use crate::runtime::output::GuestOutput;
use crate::runtime::service;
use crate::stop::{Stop, StopReason, Stopped};

/// How often the epoch advances; the deadline is counted in these.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The linker every lab script is instantiated against.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    LabWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// How a run of the guest ended.
#[derive(Debug)]
pub enum Outcome {
    /// `run` returned ok.
    Success,
    /// `run` returned an error message.
    GuestError(String),
    /// The guest trapped (or a host fault stopped it).
    Trap(wasmtime::Error),
    /// The deadline passed.
    Timeout(Duration),
    /// The guest printed more than it may (its stream failed, it stopped).
    OutputQuota(usize),
    /// A quota that ends the run was spent (the message says which).
    Quota(String),
    /// A signal (or a closed output pipe) stopped it.
    Stopped(StopReason),
    /// A host operation did not finish long after the run was told to
    /// stop: the guest was abandoned mid-call (the journal may hold an
    /// object that was recorded but never confirmed).
    Hung,
}

/// How long an operation under way may take to finish after a stop.
const GRACE: Duration = Duration::from_secs(30);

/// Where the time of a run went.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunTimes {
    /// Instantiating the component (imports linked, memory set up).
    pub instantiate: Duration,
    /// The guest's `run`, from call to return.
    pub run: Duration,
}

/// Advances the engine's epoch until dropped; raises the stop flag when
/// the deadline passes, and once it is raised (by the deadline or by a
/// signal) pushes the epoch past the store's deadline so that guest code
/// traps at its next check.
struct Ticker {
    done: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine, stop: Stop, timeout: Duration, deadline_ticks: u64) -> Ticker {
        let done = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), done.clone());
        let started = Instant::now();
        std::thread::Builder::new()
            .name("nsw-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    if started.elapsed() >= timeout {
                        stop.request(StopReason::Deadline);
                    }
                    let ticks = if stop.requested() { deadline_ticks + 1 } else { 1 };
                    for _ in 0..ticks {
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawning the epoch thread");
        Ticker { done }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn is_deadline_trap(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt))
}

/// Instantiate `component` around `lab` and call its `run(args)`, until it
/// returns or traps, or `stop` is raised (by the deadline, or by the caller
/// on a signal). Returns how it ended, and the lab back. Its services end
/// with it, unless it succeeded and `keep_services` (a lab left up): then
/// those still running come back with it, running.
pub async fn run(
    engine: &Engine,
    linker: &Linker<HostState>,
    component: &Component,
    lab: Lab,
    args: Vec<String>,
    limits: &RunLimits,
    stop: &Stop,
    keep_services: bool,
) -> (Outcome, Lab, RunTimes, Option<service::Services>) {
    let (stdout, stderr) = GuestOutput::pair(lab.name(), limits.output_bytes);
    let stdout = if limits.dry { stdout.to_stderr() } else { stdout };
    let output = stdout.clone();
    // No preopened directories, no environment, no arguments, no network:
    // the guest's only way out is its stdout/stderr and the lab imports.
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout)
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let store_limits: StoreLimits = StoreLimitsBuilder::new()
        .memory_size(limits.memory_bytes)
        .instances(64)
        .tables(64)
        .memories(16)
        .table_elements(1 << 20)
        .trap_on_grow_failure(true)
        .build();
    let services = match service::Services::new(engine, limits) {
        Ok(services) => services,
        Err(e) => return (Outcome::Trap(wasmtime::Error::from_anyhow(e)), lab, RunTimes::default(), None),
    };
    let state = HostState { lab, table: ResourceTable::new(), wasi, limits: store_limits, services };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    let ticks = (limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    let _ticker = Ticker::start(engine, stop.clone(), limits.timeout, ticks);

    let mut times = RunTimes::default();
    let call = async {
        let start = Instant::now();
        let world = LabWorld::instantiate_async(&mut store, component, linker).await?;
        times.instantiate = start.elapsed();
        let start = Instant::now();
        let result = world.call_run(&mut store, &args).await;
        times.run = start.elapsed();
        result
    };
    // Normally the call ends by itself (a stop makes it trap soon). Only
    // if a host operation hangs long after a stop is the call abandoned.
    let last_resort = limits.timeout.saturating_add(GRACE);
    let result = tokio::time::timeout(last_resort, call).await;
    let stopped = |e: &wasmtime::Error| is_deadline_trap(e) || e.is::<Stopped>() || e.chain().any(|c| c.is::<Stopped>());
    let outcome = match result {
        Err(_) => Outcome::Hung,
        Ok(Ok(Ok(()))) => Outcome::Success,
        Ok(Err(e)) if stopped(&e) => stopped_outcome(stop, limits),
        
        Ok(Err(_)) | Ok(Ok(Err(_))) if output.truncated() => Outcome::OutputQuota(limits.output_bytes),
        Ok(Err(e)) if e.is::<QuotaExhausted>() || e.chain().any(|c| c.is::<QuotaExhausted>()) => {
            let message = e.chain().find_map(|c| c.downcast_ref::<QuotaExhausted>()).map(|q| q.0.clone()).unwrap_or_else(|| e.to_string());
            Outcome::Quota(message)
        }
        Ok(Ok(Err(message))) => Outcome::GuestError(message),
        Ok(Err(e)) => Outcome::Trap(e),
    };
    // A stop asked for before the guest returned wins, whatever it
    // returned after: the deadline (or a signal) ends the run, and the lab
    // is rolled back.
    let outcome = match outcome {
        Outcome::Hung => Outcome::Hung,
        _ if stop.requested() => stopped_outcome(stop, limits),
        other => other,
    };
    let HostState { mut lab, mut services, .. } = store.into_data();
    let outcome = match outcome {
        // Links the script left for the kernel to make later: make them now.
        Outcome::Success => match lab.flush().await {
            Ok(()) => Outcome::Success,
            Err(e) => Outcome::GuestError(e.to_string()),
        },
        other => other,
    };
    let keep = keep_services && matches!(outcome, Outcome::Success) && !services.running().is_empty();
    if !keep {
        // Services end with the run.
        let stopped = services.stop_all().await;
        if !stopped.is_empty() {
            crate::tell::say!("nsw: stopped {} service{} still running at the end of the run: {}", stopped.len(), if stopped.len() == 1 { "" } else { "s" }, stopped.join(", "));
        }
    }
    if let Err(e) = lab.note_ended_services(&services) {
        // A journal that cannot be written: nothing is left running.
        services.stop_all().await;
        return (Outcome::GuestError(e.to_string()), lab, times, None);
    }
    (outcome, lab, times, keep.then_some(services))
}

/// How a run that was told to stop ended, by the reason it was told.
pub fn stopped_outcome(stop: &Stop, limits: &RunLimits) -> Outcome {
    match stop.reason() {
        Some(StopReason::Deadline) | None => Outcome::Timeout(limits.timeout),
        Some(reason) => Outcome::Stopped(reason),
    }
}
