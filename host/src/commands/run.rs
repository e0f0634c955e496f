//! `nsw run FILE.wasm`: build a lab by running a lab script.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

use super::{CommandResult, Failure, Status, catch_signals, require_root, say, some_of, tell_problems};
use crate::backend::{self, Teardown};
use crate::error::LabError;
use crate::journal::{LabInfo, LabRecord, NetnsRef, Object, StateDir};
use crate::lab::Lab;
use crate::policy::{self, Grants, Limits};
use crate::runtime::{self, RunLimits};
use crate::script::{self, Outcome};
use crate::session::{Created, Session};
use crate::stop::Stop;

#[derive(Args)]
#[command(after_help = policy::run_help())]
pub struct RunArgs {
    /// The lab script, a WebAssembly component (e.g. pbj.wasm).
    pub(crate) file: PathBuf,
    /// The lab's name [default: the file's stem, with '-' as '_'].
    /// Namespaces are called `<lab>` (the lab's host) and `<lab>-<node>`.
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
    pub(crate) allow: Vec<String>,
    /// Grant everything (host-net with the private prefixes, uplink).
    #[arg(long)]
    pub(crate) allow_all: bool,
    /// Stop the script after this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    /// Memory the script may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    memory: usize,
    /// Namespaces the lab may create.
    #[arg(long, default_value_t = Limits::default().netns, value_name = "N")]
    max_netns: u64,
    /// Links (veth ends, bridges) the lab may create.
    #[arg(long, default_value_t = Limits::default().links, value_name = "N")]
    max_links: u64,
    /// Bridges the lab may create (each takes the kernel ~16 ms to delete).
    #[arg(long, default_value_t = Limits::default().bridges, value_name = "N")]
    max_bridges: u64,
    /// Addresses the lab may add.
    #[arg(long, default_value_t = Limits::default().addresses, value_name = "N")]
    max_addresses: u64,
    /// Routes the lab may add.
    #[arg(long, default_value_t = Limits::default().routes, value_name = "N")]
    max_routes: u64,
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
    /// nftables rules the lab may add: masquerades, filter rules, port
    /// forwards (`--max-nat-rules` is its old name).
    #[arg(long, alias = "max-nat-rules", default_value_t = Limits::default().rules, value_name = "N")]
    max_rules: u64,
    /// Calls of the script that may fail before it is stopped.
    #[arg(long, default_value_t = Limits::default().failures, value_name = "N")]
    max_failures: u64,
    /// Size the lab's journal (under /run/nsw) may grow to, in KiB.
    #[arg(long, default_value_t = Limits::default().journal_bytes / 1024, value_name = "KIB")]
    max_journal: u64,
    /// Checks the script may record.
    #[arg(long, default_value_t = Limits::default().checks, value_name = "N")]
    max_checks: u64,
    /// TCP connections, throughput runs and traces the script may make.
    #[arg(long, default_value_t = Limits::default().probes, value_name = "N")]
    max_probes: u64,
    /// WebAssembly services the script may start.
    #[arg(long, default_value_t = Limits::default().services, value_name = "N")]
    max_services: u64,
    /// Programs the script may start (with --allow exec).
    #[arg(long, default_value_t = Limits::default().processes, value_name = "N")]
    max_processes: u64,
    /// Who programs run as (with --allow exec): a user name or uid.
    #[arg(long, default_value = "nobody", value_name = "USER")]
    exec_user: String,
    /// Arguments for the script's `run`.
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
}

impl RunArgs {
    pub(crate) fn lab_name(&self) -> anyhow::Result<String> {
        let name = match &self.name {
            Some(name) => name.clone(),
            None => self
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .map(policy::lab_name_from)
                .with_context(|| format!("cannot derive a lab name from {}; use --name", self.file.display()))?,
        };
        policy::check_lab_name(&name).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        Ok(name)
    }

    /// How this run goes behind the privilege boundary when root runs it
    /// ([`crate::boundary`]); `None` if it keeps the privileged path
    /// (host-net, uplink, programs as root) or the arguments are wrong
    /// (the run itself says why).
    pub(crate) fn boundary_plan(&self, writes: Vec<PathBuf>) -> Option<crate::boundary::Plan> {
        let lab = self.lab_name().ok()?;
        let grants = Grants::parse(&self.allow, self.allow_all).ok()?;
        if grants.host_net.is_some() || grants.uplink {
            return None;
        }
        let exec_user = exec_user(&self.exec_user).ok()?;
        if exec_user.0 == 0 {
            return None;
        }
        let mut writes = writes;
        if let Some(timings) = std::env::var_os("NSW_TIMINGS") {
            writes.push(PathBuf::from(timings));
        }
        Some(crate::boundary::Plan { lab, exec_user, replace: self.replace, reads: vec![self.file.clone()], writes })
    }

    pub(crate) fn run_limits(&self) -> anyhow::Result<RunLimits> {
        if !(1..=86_400).contains(&self.timeout) {
            bail!("--timeout must be 1 to 86400 seconds");
        }
        Ok(RunLimits {
            timeout: Duration::from_secs(self.timeout),
            memory_bytes: self.memory.saturating_mul(1 << 20),
            output_bytes: self.max_output.saturating_mul(1024),
            dry: false,
        })
    }

    pub(crate) fn lab_limits(&self) -> Limits {
        Limits {
            netns: self.max_netns,
            links: self.max_links,
            bridges: self.max_bridges,
            addresses: self.max_addresses,
            routes: self.max_routes,
            pings: self.max_pings,
            ping_rate: self.ping_rate.max(1),
            string_bytes: self.max_string,
            rules: self.max_rules,
            failures: self.max_failures,
            journal_bytes: self.max_journal.saturating_mul(1024),
            checks: self.max_checks,
            probes: self.max_probes,
            services: self.max_services,
            processes: self.max_processes,
        }
    }
}

pub async fn exec(args: RunArgs) -> CommandResult {
    build(&args, args.rm).await.map(|built| built.status)
}

/// What a run did: how it ended, why it failed (if it did), and what the
/// script found.
pub struct Built {
    pub status: Status,
    pub failure: Option<String>,
    pub findings: crate::lab::Findings,
    pub lab: String,
    pub elapsed: Duration,
}

/// Build the lab `args` describe; take it down at the end if `rm`.
pub async fn build(args: &RunArgs, rm: bool) -> Result<Built, Failure> {
    let lab_name = args.lab_name()?;
    let mut grants = Grants::parse(&args.allow, args.allow_all)?;
    let rootless = crate::places::get().rootless;
    if let Some(uid) = rootless {
        if grants.host_net.is_some() {
            return Err(anyhow::anyhow!("--allow host-net needs root: an ordinary user's labs are contained, in a user namespace of its own (nsw runs as uid {uid})").into());
        }
    }
    if grants.exec.is_some() {
        grants.exec_user = Some(match rootless {
            // The only user a user namespace of one uid has: the user.
            Some(_) if args.exec_user == "nobody" => (0, 0),
            Some(_) => return Err(anyhow::anyhow!("--exec-user needs root: without it, programs run as you").into()),
            None => exec_user(&args.exec_user)?,
        });
    }
    let limits = args.run_limits()?;
    // Imports are requests: refuse what was not granted before anything runs.
    // Read once: the import check and the loader share the bytes.
    let read_start = Instant::now();
    let wasm = crate::access::read_input(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let read_time = read_start.elapsed();
    let info = crate::inspect::parse(&wasm).with_context(|| format!("{} is not a WebAssembly component", args.file.display()))?;
    policy::check_imports(info.imports.iter().map(String::as_str), &grants).with_context(|| format!("{} cannot run", args.file.display()))?;
    require_root("run")?;
    // From here on a signal must not kill nsw mid-build: it ends the run,
    // and what was built is rolled back.
    let stop = Stop::new();
    catch_signals(stop.clone())?;
    crate::stop::stop_on_closed_output(&stop);

    let engine = runtime::engine()?;
    // Python and JavaScript components run to megabytes and take seconds
    // (and hundreds of MB) to compile the first time: say so.
    const BIG: usize = 1 << 20;
    let announce = |cached: bool| {
        if !cached && wasm.len() > BIG {
            say!("nsw: compiling {} ({} MB; once: later runs load it from the cache)", args.file.display(), wasm.len() >> 20);
        }
    };
    let mut loaded = runtime::load(&engine, &args.file, &wasm, announce)?;
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
    let linker = script::linker(&engine)?;
    // Refuse a script whose imports nsw cannot satisfy before building anything.
    linker
        .instantiate_pre(&loaded.component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} cannot run under nsw", args.file.display()))?;

    let mut machine = backend::system();
    let info = LabInfo {
        name: lab_name.clone(),
        mode: grants.mode(),
        grants: grants.names(),
        machine_netns: machine.machine_inode()?,
        pid: std::process::id(),
        script: args.file.display().to_string(),
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    };
    let (session, journal) = match Session::create(StateDir::system(), info, args.replace, &mut machine).await? {
        Created::Exists(existing) => {
            // We hold the lock: nobody else is working on it.
            let state = crate::commands::ls::describe_state(&existing, false);
            return Err(Failure::new(
                Status::Usage,
                anyhow::anyhow!(
                    "lab {lab_name} already exists ({state}, from {}); take it down first (nsw down {lab_name}) or use --replace",
                    existing.info.script
                ),
            ));
        }
        Created::New { session, journal, replaced } => {
            if let Some(report) = replaced {
                say!("nsw: replaced: took down the old lab {lab_name} ({})", report.summary());
            }
            (session, journal)
        }
    };

    let started = Instant::now();
    let mut run_times = script::RunTimes::default();
    let mut findings = crate::lab::Findings::default();
    let (ending, mut journal) = match Lab::start(&lab_name, grants, journal, Box::new(backend::system()), args.lab_limits(), stop.clone()).await {
        Err((e, journal)) => (Ending::Setup(e), journal),
        Ok(lab) if stop.requested() => (Ending::Guest(script::stopped_outcome(&stop, &limits)), lab.finish()),
        Ok(lab) => {
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::escape();
            let progress = crate::progress::Progress::start(lab.made());
            let (outcome, lab, times) = script::run(&engine, &linker, &loaded.component, lab, args.args.clone(), &limits, &stop).await;
            run_times = times;
            let ending = match (outcome, lab.refused_last_call()) {
                (Outcome::Trap(e), Some(refusal)) => Ending::CrashedAfterRefusal(e, refusal.to_string()),
                (outcome, _) => Ending::Guest(outcome),
            };
            findings = lab.findings().clone();
            drop(progress);
            // Closes the lab's namespace fds and netlink sockets.
            (ending, lab.finish())
        }
    };
    let elapsed = started.elapsed();

    let built = |status, failure| Built { status, failure, findings, lab: lab_name.clone(), elapsed };
    let Some((why, status)) = ending.failure() else {
        session.mark_up(&mut journal)?;
        let mut timings = (loaded.load_time, loaded.from_cache, run_times, elapsed, None::<Duration>);
        if rm {
            let down = Instant::now();
            let report = session.tear_down(journal, &mut machine, false).await?;
            tell_problems(&report);
            timings.4 = Some(down.elapsed());
            write_timings(timings)?;
            say!("nsw: lab {lab_name} built and taken down (--rm) in {:.2} s", elapsed.as_secs_f64());
        } else {
            write_timings(timings)?;
            print_summary(journal.record(), elapsed);
        }
        return Ok(built(Status::Success, None));
    };
    say!("nsw: {why}");
    if args.keep {
        session.keep_failed(journal)?;
        say!("nsw: kept what was built (--keep); remove it with: nsw down {lab_name}");
    } else {
        let report = session.tear_down(journal, &mut machine, false).await?;
        tell_problems(&report);
        say!("nsw: rolled back: {} (run with --keep to leave them for a look)", report.summary());
    }
    Ok(built(status, Some(why)))
}

/// The uid and gid of `--exec-user`.
fn exec_user(user: &str) -> anyhow::Result<(u32, u32)> {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))?,
        Err(_) => nix::unistd::User::from_name(user)?,
    };
    let found = found.with_context(|| format!("--exec-user: there is no user {}", policy::quoted(user)))?;
    Ok((found.uid.as_raw(), found.gid.as_raw()))
}

/// How a run ended, as the user is told.
enum Ending {
    Guest(Outcome),
    /// The guest trapped right after nsw refused its last call (the error
    /// it did not catch).
    CrashedAfterRefusal(wasmtime::Error, String),
    /// Setting up the lab's host failed before the guest ran.
    Setup(LabError),
}

impl Ending {
    /// What went wrong and the exit status, or `None` for a success.
    fn failure(self) -> Option<(String, Status)> {
        Some(match self {
            Ending::Guest(Outcome::Success) => return None,
            Ending::Guest(Outcome::GuestError(message)) => (format!("the script failed: {}", output_safe(&message)), Status::GuestError),
            Ending::Guest(Outcome::Trap(e)) => (format!("the script crashed: {}", describe_trap(&e)), Status::Trap),
            Ending::CrashedAfterRefusal(e, refusal) => {
                tracing::debug!("the crash itself: {}", describe_trap(&e));
                (format!("the script crashed after nsw refused its last call: {}", output_safe(&refusal)), Status::Trap)
            }
            Ending::Guest(Outcome::OutputQuota(bytes)) => (
                format!("quota: the script printed more than {} KiB (raise it with --max-output)", bytes / 1024),
                Status::GuestError,
            ),
            Ending::Guest(Outcome::Quota(message)) => (message, Status::GuestError),
            Ending::Guest(Outcome::Timeout(t)) => {
                (format!("the script ran out of time ({} s; raise it with --timeout)", t.as_secs()), Status::Timeout)
            }
            Ending::Guest(Outcome::Stopped(reason)) => (format!("stopped by {reason}"), Status::Stopped(reason)),
            Ending::Guest(Outcome::Hung) => {
                ("a host operation did not finish within 30 s of the stop; the script was abandoned".to_string(), Status::Timeout)
            }
            Ending::Setup(e) => (format!("could not set up the lab: {e}"), Status::GuestError),
        })
    }
}

/// Where the time of a successful run went: (load, from the cache, run
/// times, build, down), for the benchmarks' `nsw-testing` binary only.
type RunTimings = (Duration, bool, script::RunTimes, Duration, Option<Duration>);

#[cfg(feature = "test-hooks")]
fn write_timings((load, from_cache, times, build, down): RunTimings) -> anyhow::Result<()> {
    let t = crate::test_hooks::Timings { load, from_cache, instantiate: times.instantiate, run: times.run, build, down };
    crate::test_hooks::write_timings(&t)
}

#[cfg(not(feature = "test-hooks"))]
fn write_timings(_: RunTimings) -> anyhow::Result<()> {
    Ok(())
}

/// Guest text may contain anything: show it on one line, every character
/// that could fake a line of nsw's escaped, and not too much of it.
fn output_safe(text: &str) -> String {
    let clean = crate::encode::terminal::one_line(text);
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

fn print_summary(record: &LabRecord, elapsed: Duration) {
    let name = &record.info.name;
    let host = match record.info.mode {
        crate::journal::Mode::Contained => format!("contained: its host is netns {name}"),
        crate::journal::Mode::HostNet => "host-net: its host is this machine's namespace".to_string(),
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
                Object::Link { netns, name, kind, .. } if netns == place => Some(format!("{name} ({kind})")),
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
    let first_node = record.namespaces().map(|(_, node)| node).find(|n| *n != crate::naming::HOST);
    if let Some(node) = first_node {
        say!("nsw: enter a node:  nsw exec {name} {node} -- ip address");
    }
    say!("nsw: take it down:  nsw down {name}");
}
