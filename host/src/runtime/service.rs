//! WebAssembly services: `wasi:cli/run` command components a lab runs in
//! its nodes. Each runs on a thread of its own that joined its node's
//! network namespace first, with a store of its own (memory and output
//! capped, the run's deadline), so every socket it makes lives in that
//! node and nowhere else. WASI gives it sockets (IP addresses only: no
//! name lookup, whose worker threads would sit in another namespace),
//! clocks, random numbers, its arguments and stdout/stderr; no files, no
//! environment.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::RunLimits;
use super::output::GuestOutput;
use crate::stop::Stop;

/// How a service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Crashed(String),
    Stopped,
}

/// What a service's store holds.
pub struct ServiceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for ServiceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Starts services for one run: the engine, the linker and the limits
/// they share.
pub struct Services {
    engine: Engine,
    linker: Arc<Linker<ServiceState>>,
    limits: RunLimits,
    /// Memory the services may still take in all (`--max-memory-total`
    /// less the script's own and each service's cap).
    memory_left: usize,
    /// When the run's deadline passes: services end with it, unless the
    /// run has left them running in a lab that stays up (`unbounded`).
    deadline: Instant,
    unbounded: Arc<AtomicBool>,
    started: Vec<Arc<Service>>,
}

/// A running (or ended) service.
pub struct Service {
    /// `<node>/<name>`, as its output is prefixed.
    pub label: String,
    output: GuestOutput,
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    ending: Arc<Mutex<Option<Ending>>>,
    done: tokio::sync::watch::Receiver<bool>,
}

/// A service's component, loaded and checked, and when it was asked for.
pub struct Prepared {
    component: wasmtime::component::Component,
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    asked: Instant,
}

impl Services {
    pub fn new(engine: &Engine, limits: &RunLimits) -> Result<Services> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Ok(Services {
            engine: engine.clone(),
            linker: Arc::new(linker),
            limits: limits.clone(),
            memory_left: limits.memory_total_bytes.saturating_sub(limits.memory_bytes),
            deadline: Instant::now() + limits.timeout,
            unbounded: Arc::new(AtomicBool::new(false)),
            started: Vec::new(),
        })
    }

    /// Compile (or load from the cache) a service's component, and check
    /// that it is a command nsw can run. Compiling takes seconds for a big
    /// component: it runs on a thread of its own, off the guest's call, in
    /// a process of its own (see [`super::compiler`]), and is abandoned
    /// (`None`, the process killed) once the run is told to stop (the
    /// deadline, a signal), so that the deadline holds through it.
    pub async fn prepare(&self, label: &str, wasm: Vec<u8>, stop: &Stop) -> Option<Result<Prepared>> {
        let asked = Instant::now();
        let (engine, linker, name) = (self.engine.clone(), self.linker.clone(), label.to_string());
        let (memory_bytes, abandon) = (self.limits.compile_memory_bytes, stop.clone());
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("nsw-compile".into()).spawn(move || {
            let bounds = super::compiler::Bounds { memory_bytes, abandon: &|| abandon.requested() };
            let prepared = super::load(&engine, Path::new(&name), &wasm, &bounds, |_| {}).and_then(|loaded| {
                linker.instantiate_pre(&loaded.component).map_err(|e| anyhow::anyhow!("{name} cannot run as a service: {e:#}"))?;
                Ok(loaded.component)
            });
            let _ = tx.send(prepared);
        });
        if let Err(e) = spawned {
            return Some(Err(e.into()));
        }
        loop {
            match tokio::time::timeout(Duration::from_millis(10), &mut rx).await {
                Ok(Ok(prepared)) => return Some(prepared.map(|component| Prepared { component, asked })),
                Ok(Err(_)) => return Some(Err(anyhow::anyhow!("compiling {label} failed: its thread died"))),
                Err(_) if stop.requested() => return None,
                Err(_) => {}
            }
        }
    }

    /// Take a service's memory from what the services may still use in
    /// all; the message says what is left if it does not fit.
    pub fn reserve_memory(&mut self) -> Result<(), String> {
        let each = self.limits.memory_bytes;
        if each > self.memory_left {
            return Err(format!(
                "a service may use {} MiB (as the script may: --memory), and the services may use only {} MiB more in all (--max-memory-total)",
                each >> 20,
                self.memory_left >> 20
            ));
        }
        self.memory_left -= each;
        Ok(())
    }

    /// Give back what [`Self::reserve_memory`] took, for a service that
    /// did not start.
    pub fn release_memory(&mut self) {
        self.memory_left += self.limits.memory_bytes;
    }

    /// Start `component` as `label` with `args`, its output to `log` too
    /// (at most `log_cap` bytes); `launch` runs the service's body on a
    /// thread inside the node.
    pub fn start(
        &mut self,
        label: String,
        prepared: Prepared,
        args: Vec<String>,
        log: Option<(std::fs::File, usize)>,
        launch: impl FnOnce(Box<dyn FnOnce() + Send>) -> std::io::Result<()>,
    ) -> std::io::Result<Arc<Service>> {
        let (stdout, stderr) = GuestOutput::pair_keeping(&label, self.limits.output_bytes, true);
        if let Some((file, cap)) = log {
            stdout.log_to(file, cap);
        }
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let service = Arc::new(Service {
            label: label.clone(),
            output: stdout.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(tokio::sync::Notify::new()),
            ending: Arc::new(Mutex::new(None)),
            done,
        });
        let body = {
            let (engine, linker, memory) = (self.engine.clone(), self.linker.clone(), self.limits.memory_bytes);
            let (stop, wake, ending) = (service.stop.clone(), service.wake.clone(), service.ending.clone());
            let deadline = Deadline { at: self.deadline, lifted: self.unbounded.clone() };
            move || {
                let wasi = WasiCtxBuilder::new()
                    .args(&args)
                    .stdout(stdout)
                    .stderr(stderr)
                    .inherit_network()
                    .allow_tcp(true)
                    .allow_udp(true)
                    .allow_ip_name_lookup(false)
                    .build();
                let limits = StoreLimitsBuilder::new().memory_size(memory).instances(64).tables(64).memories(16).trap_on_grow_failure(true).build();
                let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(run(engine, linker, prepared, ServiceState { wasi, table: ResourceTable::new(), limits }, stop, wake, deadline)),
                    Err(e) => Ending::Crashed(format!("no runtime for it: {e}")),
                };
                if let Ok(mut slot) = ending.lock() {
                    *slot = Some(outcome);
                }
                let _ = done_tx.send(true);
            }
        };
        launch(Box::new(body))?;
        if self.limits.dry {
            // A plan: the launcher only noted it; it ends as if it succeeded.
            if let Ok(mut slot) = service.ending.lock() {
                *slot = Some(Ending::Exited(0));
            }
        }
        self.started.push(service.clone());
        Ok(service)
    }

    /// The services still running.
    pub fn running(&self) -> Vec<Arc<Service>> {
        self.started.iter().filter(|s| s.ending().is_none()).cloned().collect()
    }

    /// The run is over and the lab stays up: the services still running
    /// go on past the run's deadline, their output to their logs only.
    pub fn outlive_run(&self) {
        self.unbounded.store(true, Ordering::Relaxed);
        for service in &self.started {
            service.output.detach();
        }
    }

    /// Keep the services running (after [`Self::outlive_run`]) until
    /// `stop` is raised (`nsw down`'s SIGTERM) or every one has ended;
    /// then stop the rest. The epoch ticks on meanwhile, so that a service
    /// busy computing still sees its stop.
    pub async fn serve_until(&mut self, stop: &Stop) {
        while !stop.requested() && self.started.iter().any(|s| s.ending().is_none()) {
            tokio::time::sleep(TICK).await;
            self.engine.increment_epoch();
        }
        // Told to stop, and one more tick: one that computes sees it too.
        for service in &self.started {
            service.stop.store(true, Ordering::Relaxed);
            service.wake.notify_one();
        }
        self.engine.increment_epoch();
        self.stop_all().await;
    }

    /// Stop every service still running (the run is over); their labels.
    pub async fn stop_all(&mut self) -> Vec<String> {
        let mut stopped = Vec::new();
        for service in std::mem::take(&mut self.started) {
            if service.ending().is_none() {
                service.stop().await;
                stopped.push(service.label.clone());
            }
        }
        stopped
    }
}

/// The body of a service: instantiate, call `run`, until it ends, traps,
/// is stopped or runs past the deadline.
async fn run(
    engine: Engine,
    linker: Arc<Linker<ServiceState>>,
    prepared: Prepared,
    state: ServiceState,
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    deadline: Deadline,
) -> Ending {
    let mut store = Store::new(&engine, state);
    store.limiter(|s| &mut s.limits);
    // Every epoch tick (10 ms) the service yields to this thread's
    // executor, so that a stop is seen even while it computes, and it
    // traps once stopped or past the deadline.
    store.set_epoch_deadline(1);
    let (flag, passed) = (stop.clone(), deadline.clone());
    store.epoch_deadline_callback(move |_| {
        if flag.load(Ordering::Relaxed) || passed.passed() {
            Err(wasmtime::Error::new(wasmtime::Trap::Interrupt))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    let call = async {
        let command = Command::instantiate_async(&mut store, &prepared.component, &linker).await?;
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::service_started(prepared.asked.elapsed());
        command.wasi_cli_run().call_run(&mut store).await
    };
    let stopped = async {
        while !stop.load(Ordering::Relaxed) {
            wake.notified().await;
        }
    };
    tokio::select! {
        result = call => match result {
            Ok(Ok(())) => Ending::Exited(0),
            Ok(Err(())) => Ending::Exited(1),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => Ending::Exited(exit.0),
                None if stop.load(Ordering::Relaxed) => Ending::Stopped,
                None if deadline.passed() => Ending::Crashed("it ran out of time (the run's --timeout)".into()),
                None => Ending::Crashed(crate::encode::terminal::one_line(&format!("{:#}", e.root_cause()))),
            },
        },
        () = stopped => Ending::Stopped,
    }
}

/// How often a service that computes looks at its stop flag, once the
/// run's own epoch thread is gone.
const TICK: Duration = Duration::from_millis(10);

/// The run's deadline, as a service sees it: lifted once the run has left
/// the service running in a lab that stays up.
#[derive(Clone)]
struct Deadline {
    at: Instant,
    lifted: Arc<AtomicBool>,
}

impl Deadline {
    fn passed(&self) -> bool {
        !self.lifted.load(Ordering::Relaxed) && Instant::now() >= self.at
    }
}

impl Service {
    /// How it ended, if it has.
    pub fn ending(&self) -> Option<Ending> {
        self.ending.lock().ok().and_then(|e| e.clone())
    }

    /// Wait up to `timeout` (never past the run's stop) for it to end.
    pub async fn wait(&self, timeout: Duration, run: &Stop) -> Option<Ending> {
        let until = tokio::time::Instant::now() + timeout;
        let mut done = self.done.clone();
        loop {
            if let Some(ending) = self.ending() {
                return Some(ending);
            }
            let now = tokio::time::Instant::now();
            if now >= until || run.requested() {
                return None;
            }
            let slice = (until - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(slice, done.changed()).await;
        }
    }

    /// Stop it and wait for it to end (a few seconds at most).
    pub async fn stop(&self) -> Ending {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
        self.ending().unwrap_or(Ending::Stopped)
    }

    /// What it printed so far (the last 64 KiB).
    pub fn output(&self) -> String {
        self.output.tail()
    }
}
