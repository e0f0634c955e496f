//! The `nsw` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::backend::kernel::{KernelBackend, netns};
use crate::journal::{LabInfo, LabRecord, LabState, Mode, NetnsRef, Object, StateDir};
use crate::lab::Lab;
use crate::policy::{self, Grants, Limits};
use crate::runtime::stop::{Stop, StopReason};
use crate::runtime::{self, Outcome, RunLimits};
use crate::teardown;

/// Print to stderr, never panicking: `nsw run ... 2>&1 | head` must not
/// turn a closed pipe into a crash that leaves a lab half-built.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit statuses of `nsw run`, besides 0.
pub mod status {
    /// The guest's `run` returned an error.
    pub const GUEST_ERROR: u8 = 1;
    /// Bad arguments, a bad file, a busy or existing lab: nothing was built.
    pub const USAGE: u8 = 2;
    /// The guest trapped (crashed, ran out of memory or stack).
    pub const TRAP: u8 = 3;
    /// The deadline (`--timeout`) passed.
    pub const TIMEOUT: u8 = 4;
    /// SIGINT (128 + 2) or SIGTERM (128 + 15) stopped the run.
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
    pub const SIGHUP: u8 = 129;
}

#[derive(Parser)]
#[command(name = "nsw", version, about = "Build Linux network labs from sandboxed WebAssembly scripts")]
struct Cli {
    /// Show what nsw does step by step (-vv for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a lab by running a lab script (a WebAssembly component).
    Run(RunArgs),
    /// Take labs down: remove exactly what they created.
    Down {
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
    },
    /// List labs and their namespaces.
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what a lab script asks for (capabilities, WASI), its exports,
    /// size and hash, and the grants it needs; runs nothing, needs no root.
    Inspect {
        /// The lab script.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a lab node, like `ip netns exec`.
    Exec {
        lab: String,
        /// The node's name in the script (`host` for a contained lab's host).
        node: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

const RUN_HELP: &str = "\
Grants (deny by default; a lab always has its own namespaces to build in):
  host-net[=PREFIX,...]  the lab's host is this machine's network namespace, as in
                         the tutorial; host-side addresses, routes and NAT must lie
                         inside PREFIXes (default 10.0.0.0/8, 172.16.0.0/12,
                         192.168.0.0/16, fc00::/7) and never overlap the machine's
                         own routes; the lab never touches what it did not create
  uplink                 the script may connect a contained lab to the machine's
                         network through a NATed veth pair (the uplink interface)
  --allow-all            every grant, for scripts you wrote yourself

A script that imports a capability it was not granted is refused before it runs.
Quotas (per lab, with their flags): 1024 namespaces (--max-netns), 4096 links
(--max-links), of them 256 bridges (--max-bridges), 4096 addresses (--max-addresses), 4096 routes (--max-routes),
10000 echo requests (--max-pings) at 1000 per second (--ping-rate), 60 s
(--timeout), 64 MiB of memory (--memory), 1024 KiB of output (--max-output),
4096-byte strings (--max-string).";

#[derive(Args)]
#[command(after_help = RUN_HELP)]
struct RunArgs {
    /// The lab script, a WebAssembly component (e.g. pbj.wasm).
    file: PathBuf,
    /// The lab's name [default: the file's stem]. Namespaces are called
    /// `<lab>` (the lab's host) and `<lab>-<node>`.
    #[arg(long)]
    name: Option<String>,
    /// Take the lab down when the script ends, instead of leaving it up.
    #[arg(long)]
    rm: bool,
    /// If the script fails, keep what it built (for debugging) instead of
    /// removing it.
    #[arg(long)]
    keep: bool,
    /// If a lab of this name is up (or broken), take it down first.
    #[arg(long)]
    replace: bool,
    /// Grant a capability (see below); everything else is denied.
    #[arg(long, value_name = "GRANT")]
    allow: Vec<String>,
    /// Grant everything (host-net with the private prefixes, uplink).
    #[arg(long)]
    allow_all: bool,
    /// Stop the script after this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    /// Memory the script may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory: usize,
    /// Namespaces the lab may create.
    #[arg(long, default_value_t = Limits::default().netns, value_name = "N")]
    max_netns: usize,
    /// Links (veth ends, bridges) the lab may create.
    #[arg(long, default_value_t = Limits::default().links, value_name = "N")]
    max_links: usize,
    /// Bridges the lab may create (each takes the kernel ~16 ms to delete).
    #[arg(long, default_value_t = Limits::default().bridges, value_name = "N")]
    max_bridges: usize,
    /// Addresses the lab may add.
    #[arg(long, default_value_t = Limits::default().addresses, value_name = "N")]
    max_addresses: usize,
    /// Routes the lab may add.
    #[arg(long, default_value_t = Limits::default().routes, value_name = "N")]
    max_routes: usize,
    /// Echo requests the lab may send in all.
    #[arg(long, default_value_t = Limits::default().pings, value_name = "N")]
    max_pings: u64,
    /// Echo requests per second at most.
    #[arg(long, default_value_t = Limits::default().ping_rate, value_name = "N")]
    ping_rate: u32,
    /// Output (stdout and stderr) the script may print, in KiB.
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    max_output: usize,
    /// Longest string the script may pass to nsw, in bytes.
    #[arg(long, default_value_t = Limits::default().string_bytes, value_name = "BYTES")]
    max_string: usize,
    /// Arguments for the script's `run`.
    #[arg(last = true)]
    args: Vec<String>,
}

/// Entry point of the `nsw` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    if let Command::Exec { lab, node, command } = &cli.command {
        // Before any thread exists: setns and unshare need a lone thread.
        return match crate::exec::exec(lab, node, command) {
            Ok(never) => match never {},
            Err(e) => fail(status::USAGE, e),
        };
    }
    // One thread: a run is one guest calling the kernel in sequence, and cross-thread
    // wake-ups would cost more than they give. Blocking work runs on threads of its own.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(status::USAGE, e.into()),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => cmd_run(args).await,
            Command::Down { labs, all, force } => cmd_down(labs, all, force).await,
            Command::Ls { json } => cmd_ls(json).map(|()| ExitCode::SUCCESS),
            Command::Inspect { file, json } => cmd_inspect(&file, json).map(|()| ExitCode::SUCCESS),
            Command::Exec { .. } => unreachable!("handled above"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(status::USAGE, e),
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "nsw=debug,warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NSW_LOG").unwrap_or_else(|_| level.into());
    // Time since start, so -v also shows where the time goes.
    let timer = tracing_subscriber::fmt::time::Uptime::default();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_timer(timer).try_init();
}

fn fail(code: u8, e: anyhow::Error) -> ExitCode {
    say!("nsw: error: {e:#}");
    ExitCode::from(code)
}

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("nsw {what} needs root: it creates network namespaces (try sudo)");
    }
    Ok(())
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How a run ended, as the user is told.
enum Ending {
    Guest(Outcome),
    /// Setting up the lab's host failed before the guest ran.
    Setup(crate::error::LabError),
}

async fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let lab_name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .with_context(|| format!("cannot derive a lab name from {}; use --name", args.file.display()))?,
    };
    policy::check_lab_name(&lab_name).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_start_matches("invalid: ")))?;
    let grants = Grants::parse(&args.allow, args.allow_all)?;
    if !(1..=86_400).contains(&args.timeout) {
        bail!("--timeout must be 1 to 86400 seconds");
    }
    let limits = RunLimits {
        timeout: Duration::from_secs(args.timeout),
        memory_bytes: args.memory.saturating_mul(1 << 20),
        output_bytes: args.max_output.saturating_mul(1024),
    };
    let lab_limits = Limits {
        netns: args.max_netns,
        links: args.max_links,
        bridges: args.max_bridges,
        addresses: args.max_addresses,
        routes: args.max_routes,
        pings: args.max_pings,
        ping_rate: args.ping_rate.max(1),
        string_bytes: args.max_string,
    };
    // Imports are requests: refuse what was not granted before anything runs.
    // Read once: the import check and the loader share the bytes.
    let read_start = Instant::now();
    let wasm = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let read_time = read_start.elapsed();
    let info = crate::inspect::parse(&wasm).with_context(|| format!("{} is not a WebAssembly component", args.file.display()))?;
    policy::check_imports(info.imports.iter().map(String::as_str), &grants)
        .with_context(|| format!("{} cannot run", args.file.display()))?;
    require_root("run")?;
    // From here on a signal must not kill nsw mid-build: it ends the run,
    // and what was built is rolled back.
    let stop = Stop::new();
    catch_signals(stop.clone())?;

    let engine = runtime::engine()?;
    let mut loaded = runtime::load(&engine, &args.file, &wasm)?;
    loaded.load_time += read_time;
    if let Some(warning) = &loaded.cache_warning {
        say!("nsw: warning: {warning}");
    }
    tracing::debug!(
        "loaded {} in {:.1} ms ({})",
        args.file.display(),
        loaded.load_time.as_secs_f64() * 1e3,
        if loaded.from_cache { "from the compiled cache" } else { "compiled now" }
    );
    let linker = runtime::linker(&engine)?;
    // Refuse a script whose imports nsw cannot satisfy before building anything.
    linker
        .instantiate_pre(&loaded.component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} cannot run under nsw", args.file.display()))?;

    let state = StateDir::system();
    let lock = state.lock(&lab_name)?;
    if let Some(existing) = state.read(&lab_name)? {
        if !args.replace {
            bail!(
                "lab {lab_name} already exists ({}, from {}); take it down first (nsw down {lab_name}) or use --replace",
                // We hold the lock: nobody else is working on it.
                describe_state_given(&existing, false),
                existing.info.script
            );
        }
        let report = take_down(&state, &lock, &existing, false).await?;
        say!("nsw: replaced: took down the old lab {lab_name} ({})", report.summary());
    }
    let mode = if grants.host_net.is_some() { Mode::HostNet } else { Mode::Contained };
    let info = LabInfo {
        name: lab_name.clone(),
        mode,
        grants: grants.names(),
        machine_netns: netns::current_inode()?,
        pid: std::process::id(),
        script: args.file.display().to_string(),
        started_unix: now_unix(),
    };
    let journal = state.create_journal(&lock, info)?;
    let started = Instant::now();
    let mut run_times = runtime::RunTimes::default();
    let backend = Box::new(KernelBackend::new());
    let ending = match Lab::start(&lab_name, grants, journal, backend, lab_limits, stop.clone()).await {
        Err(e) => Ending::Setup(e),
        Ok(_) if stop.requested() => Ending::Guest(stopped_outcome(&stop, &limits)),
        Ok(lab) => {
            let (outcome, lab, times) = runtime::run(&engine, &linker, &loaded.component, lab, args.args.clone(), &limits, &stop).await;
            // Close the lab's namespace fds and netlink sockets.
            drop(lab);
            run_times = times;
            Ending::Guest(outcome)
        }
    };
    let elapsed = started.elapsed();

    let (failure, code) = match ending {
        Ending::Guest(Outcome::Success) => (None, 0),
        Ending::Guest(Outcome::GuestError(message)) => {
            (Some(format!("the script failed: {}", output_safe(&message))), status::GUEST_ERROR)
        }
        Ending::Guest(Outcome::Trap(e)) => (Some(format!("the script crashed: {}", describe_trap(&e))), status::TRAP),
        Ending::Guest(Outcome::OutputQuota(bytes)) => (
            Some(format!("quota: the script printed more than {} KiB (raise it with --max-output)", bytes / 1024)),
            status::GUEST_ERROR,
        ),
        Ending::Guest(Outcome::Timeout(t)) => {
            (Some(format!("the script ran out of time ({} s; raise it with --timeout)", t.as_secs())), status::TIMEOUT)
        }
        Ending::Guest(Outcome::Stopped(name)) => (Some(format!("stopped by {name}")), signal_status(name)),
        Ending::Guest(Outcome::Hung) => (
            Some("a host operation did not finish within 30 s of the stop; the script was abandoned".to_string()),
            status::TIMEOUT,
        ),
        Ending::Setup(e) => (Some(format!("could not set up the lab: {e}")), status::GUEST_ERROR),
    };

    let record = state.read(&lab_name)?.context("the lab's journal vanished")?;
    match failure {
        None => {
            let mut journal = state.reopen_journal(&lock, &lab_name)?;
            journal.append(&crate::journal::Entry::State { state: LabState::Up })?;
            if args.rm {
                let down = Instant::now();
                take_down(&state, &lock, &record, false).await?;
                state.remove(lock, &lab_name)?;
                write_timings(&loaded, run_times, elapsed, Some(down.elapsed()))?;
                say!("nsw: lab {lab_name} built and taken down (--rm) in {:.2} s", elapsed.as_secs_f64());
            } else {
                write_timings(&loaded, run_times, elapsed, None)?;
                print_summary(&record, elapsed);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(why) => {
            say!("nsw: {why}");
            if args.keep {
                let mut journal = state.reopen_journal(&lock, &lab_name)?;
                journal.append(&crate::journal::Entry::State { state: LabState::Failed })?;
                say!("nsw: kept what was built (--keep); remove it with: nsw down {lab_name}");
            } else {
                let report = take_down(&state, &lock, &record, false).await?;
                state.remove(lock, &lab_name)?;
                say!("nsw: rolled back: {}", report.summary());
            }
            Ok(ExitCode::from(code))
        }
    }
}

/// For benchmarks: with `NSW_TIMINGS=FILE`, write where the time of a
/// successful run went, as JSON.
fn write_timings(loaded: &runtime::Loaded, times: runtime::RunTimes, build: Duration, down: Option<Duration>) -> Result<()> {
    let Some(path) = std::env::var_os("NSW_TIMINGS") else { return Ok(()) };
    let value = serde_json::json!({
        "load_s": loaded.load_time.as_secs_f64(),
        "from_cache": loaded.from_cache,
        "instantiate_s": times.instantiate.as_secs_f64(),
        "run_s": times.run.as_secs_f64(),
        "build_s": build.as_secs_f64(),
        "down_s": down.map(|d| d.as_secs_f64()),
    });
    std::fs::write(&path, value.to_string()).with_context(|| format!("writing {}", std::path::Path::new(&path).display()))
}

/// Tear down `record` and remove its journal if everything went; the
/// caller still holds (and releases) the lock.
async fn take_down(state: &StateDir, lock: &crate::journal::LabLock, record: &LabRecord, force: bool) -> Result<teardown::Report> {
    let name = &record.info.name;
    let mut journal = state.reopen_journal(lock, name)?;
    journal.append(&crate::journal::Entry::State { state: LabState::TearingDown })?;
    let report = teardown::teardown(record, force).await?;
    if !report.forgotten.is_empty() {
        say!(
            "nsw: forgot {} objects in the namespace the lab was built from (--force): {}",
            report.forgotten.len(),
            some_of(&report.forgotten, 4)
        );
    }
    for problem in &report.failed {
        say!("nsw: could not remove {problem}");
    }
    for other in &report.left_alone {
        say!("nsw: left alone {other}");
    }
    if !report.failed.is_empty() {
        bail!("lab {name} is only partly down; its journal is kept: run nsw down {name} again");
    }
    state.remove_journal(lock, name)?;
    Ok(report)
}

/// From here on SIGINT, SIGTERM and SIGHUP do not kill nsw: they are
/// blocked in this thread and every thread started after it, and a thread
/// of their own turns them into a stop request (see `runtime::stop`), which
/// ends the run and rolls the lab back. A thread rather than a tokio signal
/// stream, because a guest busy in its own code never lets the async
/// runtime poll a stream.
fn catch_signals(stop: Stop) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block()?;
    std::thread::Builder::new().name("nsw-signals".into()).spawn(move || {
        loop {
            match set.wait() {
                Ok(Signal::SIGINT) => stop.request(StopReason::Signal("SIGINT")),
                Ok(Signal::SIGTERM) => stop.request(StopReason::Signal("SIGTERM")),
                Ok(_) => stop.request(StopReason::Signal("SIGHUP")),
                Err(_) => return,
            }
        }
    })?;
    Ok(())
}

fn signal_status(name: &str) -> u8 {
    match name {
        "SIGINT" => status::SIGINT,
        "SIGTERM" => status::SIGTERM,
        _ => status::SIGHUP,
    }
}

/// The outcome of a run stopped before its guest started.
fn stopped_outcome(stop: &Stop, limits: &RunLimits) -> Outcome {
    match stop.reason() {
        Some(StopReason::Signal(name)) => Outcome::Stopped(name),
        _ => Outcome::Timeout(limits.timeout),
    }
}

/// Guest text may contain anything: show it without control characters.
fn output_safe(text: &str) -> String {
    let clean = runtime::output::sanitize(text);
    const MAX: usize = 4096;
    if clean.len() > MAX {
        let cut = (0..=MAX).rev().find(|&i| clean.is_char_boundary(i)).unwrap_or(0);
        format!("{}... ({} bytes)", &clean[..cut], clean.len())
    } else {
        clean
    }
}

/// Say why the guest trapped in one line; the wasm backtrace goes to the
/// debug log (`-v`).
fn describe_trap(e: &wasmtime::Error) -> String {
    tracing::debug!("trap: {e:?}");
    let cause = output_safe(&e.root_cause().to_string());
    if cause.contains("forcing trap when growing memory") {
        return format!("out of memory: it tried to grow its memory past the limit (raise it with --memory; {cause})");
    }
    let detail = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => "its stack overflowed",
        Some(wasmtime::Trap::UnreachableCodeReached) => "it aborted (a panic, or `unreachable`)",
        // Rust and C keep their stack in linear memory: running off its end
        // is an out-of-bounds access.
        Some(wasmtime::Trap::MemoryOutOfBounds) => "it accessed memory out of bounds (a stack overflow, or a bug in the script)",
        _ => "",
    };
    if detail.is_empty() { cause } else { format!("{detail}: {cause}") }
}

/// Join at most `max` items, then say how many more there are.
fn some_of(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!("{}, ... and {} more", items[..max].join(", "), items.len() - max)
}

fn print_summary(record: &LabRecord, elapsed: Duration) {
    let name = &record.info.name;
    let host = match record.info.mode {
        Mode::Contained => format!("contained: its host is netns {name}"),
        Mode::HostNet => "host-net: its host is this machine's namespace".to_string(),
    };
    say!("nsw: lab {name} is up in {:.2} s ({host})", elapsed.as_secs_f64());
    let mut places: Vec<NetnsRef> = Vec::new();
    if record.objects.iter().any(|o| o.object.netns() == NetnsRef::Machine) {
        places.push(NetnsRef::Machine);
    }
    places.extend(record.namespaces().map(|(n, _)| NetnsRef::Named(n.to_string())));
    const SHOWN: usize = 8;
    for place in places.iter().take(SHOWN) {
        let links: Vec<String> = record
            .objects
            .iter()
            .filter_map(|o| match &o.object {
                Object::Link { netns, name, kind } if netns == place => Some(format!("{name} ({kind})")),
                _ => None,
            })
            .collect();
        let label = match place {
            NetnsRef::Machine => "machine".to_string(),
            NetnsRef::Named(n) => n.clone(),
        };
        say!("  {label:<20} {}", if links.is_empty() { "-".to_string() } else { some_of(&links, 6) });
    }
    if places.len() > SHOWN {
        say!("  ... and {} more namespaces (nsw ls)", places.len() - SHOWN);
    }
    let first_node = record.namespaces().map(|(_, node)| node).find(|n| *n != "host");
    if let Some(node) = first_node {
        say!("nsw: enter a node:  nsw exec {name} {node} -- ip address");
    }
    say!("nsw: take it down:  nsw down {name}");
}

async fn cmd_down(labs: Vec<String>, all: bool, force: bool) -> Result<ExitCode> {
    require_root("down")?;
    let state = StateDir::system();
    let labs = if all { state.labs()? } else { labs };
    let mut failed = false;
    for lab in &labs {
        if let Err(e) = down_one(&state, lab, force).await {
            say!("nsw: error: {e:#}");
            failed = true;
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn down_one(state: &StateDir, lab: &str, force: bool) -> Result<()> {
    policy::check_lab_name(lab).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_start_matches("invalid: ")))?;
    // Another nsw may be building or taking down this lab: wait for it.
    let lock = state.lock_wait(lab, Duration::from_secs(120))?;
    let Some(record) = state.read(lab)? else {
        state.remove(lock, lab)?;
        say!("nsw: there is no lab {lab}; nothing to do");
        return Ok(());
    };
    let report = take_down(state, &lock, &record, force).await?;
    state.remove(lock, lab)?;
    say!("nsw: lab {lab} is down: {}", report.summary());
    for what in &report.removed {
        tracing::debug!("removed {what}");
    }
    for what in &report.already_gone {
        tracing::debug!("already gone: {what}");
    }
    Ok(())
}

/// The state to show: a lab whose builder died mid-way (nobody holds its
/// lock any more) is `broken`.
fn describe_state(state: &StateDir, record: &LabRecord) -> &'static str {
    describe_state_given(record, state.lock_held(&record.info.name))
}

/// The same, knowing whether another process holds the lab's lock.
fn describe_state_given(record: &LabRecord, alive: bool) -> &'static str {
    match record.state {
        LabState::Up => "up",
        LabState::Failed => "failed, kept",
        LabState::Building if alive => "building",
        LabState::TearingDown if alive => "tearing down",
        LabState::Building | LabState::TearingDown => "broken",
    }
}

#[derive(Serialize)]
struct LabListing {
    name: String,
    state: &'static str,
    mode: Mode,
    script: String,
    pid: u32,
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

fn cmd_ls(json: bool) -> Result<()> {
    let state = StateDir::system();
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
        listings.push(LabListing {
            name: record.info.name.clone(),
            state: describe_state(&state, &record),
            mode: record.info.mode,
            script: record.info.script.clone(),
            pid: record.info.pid,
            started_unix: record.info.started_unix,
            namespaces: record
                .namespaces()
                .map(|(name, node)| NetnsListing {
                    name: name.to_string(),
                    node: node.to_string(),
                    present: netns::path_of(name).exists(),
                })
                .collect(),
            objects: record.objects.len(),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&listings)?);
        return Ok(());
    }
    if listings.is_empty() {
        println!("no labs");
        return Ok(());
    }
    println!("{:<20} {:<13} {:<10} NAMESPACES", "LAB", "STATE", "MODE");
    for l in &listings {
        let mode = match l.mode {
            Mode::Contained => "contained",
            Mode::HostNet => "host-net",
        };
        let names: Vec<String> =
            l.namespaces.iter().map(|n| if n.present { n.name.clone() } else { format!("{} (missing)", n.name) }).collect();
        println!("{:<20} {:<13} {:<10} {}", l.name, l.state, mode, names.join(" "));
    }
    Ok(())
}

fn cmd_inspect(file: &std::path::Path, json: bool) -> Result<()> {
    let info = crate::inspect::read(file)?;
    let imports = crate::inspect::report(&info);
    let mut needs: Vec<&str> = imports.iter().filter_map(|i| i.needs).collect();
    needs.sort();
    needs.dedup();
    let runnable = imports.iter().all(|i| i.kind != "unknown");
    if json {
        let value = serde_json::json!({
            "file": file.display().to_string(),
            "size": info.size,
            "sha256": info.sha256,
            "exports": info.exports,
            "imports": imports,
            "grants_needed": needs,
            "runnable": runnable,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{}: WebAssembly component, {} bytes, sha256 {}", file.display(), info.size, info.sha256);
    println!("exports: {}", if info.exports.is_empty() { "nothing".to_string() } else { info.exports.join(", ") });
    for (kind, title) in [("capability", "capabilities it asks for"), ("wasi", "WASI it imports"), ("unknown", "imports nsw does not provide")] {
        let group: Vec<_> = imports.iter().filter(|i| i.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        println!("{title}:");
        for import in group {
            let grant = match import.needs {
                Some(g) => format!("  [needs --allow {g}]"),
                None => String::new(),
            };
            println!("  {:<38} {}{grant}", import.name, import.what);
        }
    }
    if !runnable {
        println!("nsw cannot run it.");
    } else if needs.is_empty() {
        println!("grants needed: none (it runs with the defaults)");
    } else {
        let flags: Vec<String> = needs.iter().map(|g| format!("--allow {g}")).collect();
        println!("grants needed: {}", flags.join(" "));
    }
    if !info.exports.iter().any(|e| e == "run") {
        println!("note: it does not export run, so it is not a lab script");
    }
    Ok(())
}
