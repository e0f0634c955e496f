//! `nsw run FILE.wasm`: build a lab by running a lab script.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;

use super::{CommandResult, Failure, Status, catch_signals, require_root, say, some_of, tell_problems};
use crate::backend::{self, Teardown};
use crate::build::Ending;
use crate::journal::{LabInfo, LabRecord, NetnsRef, Object, StateDir};
use crate::policy::{self, Grants};
use crate::runtime;
use crate::script::{self, Outcome};
use crate::session::{Created, Session};
use crate::stop::Stop;

#[derive(Args)]
#[command(after_help = policy::run_help())]
pub struct RunArgs {
    /// The lab script, a WebAssembly component (e.g. pbj.wasm), or one in
    /// a registry: oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST].
    pub(crate) file: PathBuf,
    /// The lab's name [default: the file's stem (the repository's last
    /// part for oci://), with '-' as '_'].
    /// Namespaces are called `<lab>` (the lab's host) and `<lab>-<node>`.
    #[arg(long)]
    name: Option<String>,
    /// Take the lab down when the script ends, instead of leaving it up.
    #[arg(long)]
    pub(crate) rm: bool,
    /// If the script fails, keep what it built (for debugging) instead of
    /// removing it.
    #[arg(long)]
    pub(crate) keep: bool,
    /// If a lab of this name is up (or broken), take it down first.
    #[arg(long)]
    pub(crate) replace: bool,
    /// Grant a capability (see below); everything else is denied.
    #[arg(long, value_name = "GRANT")]
    pub(crate) allow: Vec<String>,
    /// Grant everything (host-net with the private prefixes, uplink).
    #[arg(long)]
    pub(crate) allow_all: bool,
    #[command(flatten)]
    pub(crate) limits: super::limit_args::LimitArgs,
    #[command(flatten)]
    pub(crate) source: super::source_args::SourceArgs,
    #[command(flatten)]
    pub(crate) cluster: super::across::ClusterArgs,
    /// The script fetched by reference, if it was (`file` is then its
    /// copy in the store).
    #[arg(skip)]
    pub(crate) fetched: Option<crate::sharing::Fetched>,
    /// Who programs run as (with --allow exec). `lab`: root of the lab's
    /// own user namespace when root runs a contained lab (capabilities over
    /// the lab's namespaces only; the machine's `nobody` on the privileged
    /// path: host-net, uplink). A user name or uid: that user (inside the
    /// lab, behind the boundary). `root`: the machine's root, which gives
    /// the lab's programs the whole machine.
    #[arg(long, default_value = LAB_ROOT, value_name = "USER")]
    exec_user: String,
    /// Arguments for the script's `run`.
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
}

impl RunArgs {
    pub(crate) fn lab_name(&self) -> anyhow::Result<String> {
        let name = match (&self.name, &self.fetched) {
            (Some(name), _) => name.clone(),
            (None, Some(fetched)) => policy::lab_name_from(fetched.reference.stem()),
            (None, None) => self
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .map(policy::lab_name_from)
                .with_context(|| format!("cannot derive a lab name from {}; use --name", self.file.display()))?,
        };
        policy::check_lab_name(&name).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        Ok(name)
    }

    /// Fetch the script if it is named by reference (before the split:
    /// see [`crate::sharing`]).
    pub(crate) fn fetch(&mut self) -> anyhow::Result<()> {
        self.fetched = self.source.fetch(&mut self.file, true, &self.limits.0)?;
        Ok(())
    }

    /// The script as the journal, `nsw ls` and messages name it: its file,
    /// or its reference pinned to the digest that runs.
    pub(crate) fn script_name(&self) -> String {
        match &self.fetched {
            Some(fetched) => fetched.reference.canonical(),
            None => self.file.display().to_string(),
        }
    }

    /// How this run goes behind the privilege boundary when root runs it
    /// ([`crate::boundary`]); `None` if the policy keeps it on the
    /// privileged path. Wrong arguments are an error here, before the
    /// split: never a reason to take the privileged path.
    pub(crate) fn boundary_plan(&self, writes: Vec<PathBuf>) -> anyhow::Result<Option<crate::boundary::Plan>> {
        // Across machines, this process only runs the script: the agents build.
        if self.cluster.given() {
            return Ok(None);
        }
        let lab = self.lab_name()?;
        let grants = Grants::parse(&self.allow, self.allow_all)?;
        if !self.as_root(&grants)?.1 {
            return Ok(None);
        }
        #[cfg(feature = "test-hooks")]
        let writes: Vec<PathBuf> = writes.into_iter().chain(crate::test_hooks::timings_path()).collect();
        let max_tasks = self.limits.0.tasks;
        Ok(Some(crate::boundary::Plan { lab, replace: self.replace, reads: vec![self.file.clone()], writes, max_tasks }))
    }

    /// Who the lab's programs run as when root runs the lab, and whether
    /// it goes behind the boundary, where uid 0 is root of the lab's own
    /// user namespace: programs that run as the machine's root need the
    /// privileged path; any other user (or none) goes behind it.
    pub(crate) fn as_root(&self, grants: &Grants) -> anyhow::Result<(Option<(u32, u32)>, bool)> {
        let exec_uid = self.exec_identity(grants, None, false)?.map_or(u32::MAX, |(uid, _)| uid);
        let behind = grants.behind_boundary(exec_uid);
        Ok((self.exec_identity(grants, None, behind)?, behind))
    }

    /// Who the lab's programs run as (uid, gid), or `None` if it may run
    /// none: `--exec-user` without `--allow exec` is a mistake, said so.
    /// `rootless`: the uid of the ordinary user nsw runs as; `lab_ids`:
    /// behind the boundary, where the lab's ids are its own.
    fn exec_identity(&self, grants: &Grants, rootless: Option<u32>, lab_ids: bool) -> anyhow::Result<Option<(u32, u32)>> {
        if grants.exec.is_none() {
            if self.exec_user != LAB_ROOT {
                anyhow::bail!("--exec-user {}: the lab runs no programs without --allow exec", policy::quoted(&self.exec_user));
            }
            return Ok(None);
        }
        Ok(Some(match rootless {
            // The only user a user namespace of one uid has: the user.
            Some(_) if self.exec_user == LAB_ROOT => (0, 0),
            Some(_) => anyhow::bail!("--exec-user needs root: without it, programs run as you"),
            // Behind the boundary, ids are the lab's own: 0 is its root.
            None => exec_user(&self.exec_user, lab_ids)?,
        }))
    }
}

pub async fn exec(args: RunArgs) -> CommandResult {
    if args.cluster.given() {
        return super::across::run(&args).await;
    }
    let mut built = build(&args, args.rm).await?;
    // A script's checks are seen under `run` too (only `nsw test` fails on
    // them): the table, then how many failed, as the last thing said.
    let checks = super::test::checks_of(&built.findings);
    if !checks.is_empty() {
        super::test::print_table(&checks);
        let failed = super::test::failed(&checks);
        let outcome = if failed == 0 { String::new() } else { format!(", {failed} failed (nsw test fails on them)") };
        say!("nsw: {} of {} checks passed{outcome}", checks.len() - failed, checks.len());
    }
    if let Some(kept) = built.services.take() {
        kept.serve_after(&built.lab, built.status.code()).await;
    }
    Ok(built.status)
}

/// What a run did: how it ended, why it failed (if it did), and what the
/// script found.
pub struct Built {
    pub status: Status,
    pub failure: Option<String>,
    pub findings: crate::lab::Findings,
    pub lab: String,
    pub elapsed: Duration,
    /// Services the script left running in the lab it left up.
    pub services: Option<KeptServices>,
}

/// Services a run left running, and the run's stop flag (`nsw down`'s
/// SIGTERM raises it).
pub struct KeptServices {
    services: runtime::service::Services,
    stop: Stop,
}

impl KeptServices {
    /// Go on holding the services once nsw's caller has its answer: tell
    /// the front the run's `status` (it exits with it), leave the terminal,
    /// and serve until the lab goes down. Where there is no front (nothing
    /// to detach from) the services stop now, as a run's always did.
    async fn serve_after(mut self, lab: &str, status: u8) {
        let names: Vec<String> = self.services.running().iter().map(|s| s.label.clone()).collect();
        let count = names.len();
        let plural = if count == 1 { "" } else { "s" };
        if !crate::front::present() {
            self.services.stop_all().await;
            say!("nsw: stopped {count} service{plural} still running at the end of the run: {}", names.join(", "));
            return;
        }
        say!("nsw: {count} service{plural} keep{} running until the lab goes down: {} (nsw logs {lab})", if count == 1 { "s" } else { "" }, names.join(", "));
        self.services.outlive_run();
        if let Err(e) = crate::front::detach(status) {
            say!("nsw: cannot leave the services running ({e:#}): stopping them");
            self.services.stop_all().await;
            return;
        }
        self.services.serve_until(&self.stop).await;
    }
}

/// Build the lab `args` describe; take it down at the end if `rm`.
pub async fn build(args: &RunArgs, rm: bool) -> Result<Built, Failure> {
    if args.cluster.given() {
        return Err(anyhow::anyhow!("only nsw run builds labs across machines (--store, NSW_STORE) yet").into());
    }
    let lab_name = args.lab_name()?;
    let mut grants = Grants::parse(&args.allow, args.allow_all)?;
    let rootless = crate::places::get().rootless;
    if let Some(uid) = rootless {
        if grants.host_net.is_some() {
            return Err(anyhow::anyhow!("--allow host-net needs root: an ordinary user's labs are contained, in a user namespace of its own (nsw runs as uid {uid})").into());
        }
    }
    grants.exec_user = args.exec_identity(&grants, rootless, crate::access::inside())?;
    grants.node_files_refused = policy::node_files::refusal(rootless.is_some(), crate::access::inside(), grants.exec_user);
    let limits = args.limits.0.clone();
    let run_limits = crate::build::run_limits(&limits, false);
    // Read once: the import check and the loader share the bytes.
    let read_start = Instant::now();
    let wasm = crate::access::read_input(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    if let Some(fetched) = &args.fetched {
        fetched.check(&wasm)?;
    }
    let read_time = read_start.elapsed();
    crate::build::check_script(&args.file, &wasm, &grants, &limits)?;
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
            say!("nsw: compiling {} ({} MB; once: later runs load it from the cache)", args.script_name(), wasm.len() >> 20);
        }
    };
    let bounds = runtime::compiler::Bounds { memory_bytes: limits.compile_memory_bytes, abandon: &|| stop.requested() };
    let mut loaded = runtime::load(&engine, &args.file, &wasm, &bounds, announce)?;
    loaded.load_time += read_time;
    if let Some(warning) = &loaded.cache_warning {
        say!("nsw: warning: {warning}");
    }
    tracing::debug!(
        "loaded {} in {:.1} ms ({})",
        args.script_name(),
        loaded.load_time.as_secs_f64() * 1e3,
        if loaded.from_cache { "from the compiled cache" } else { "compiled now" }
    );
    let linker = crate::build::linker_for(&engine, &args.file, &loaded.component)?;

    let mut machine = backend::system();
    let info = LabInfo {
        name: lab_name.clone(),
        mode: grants.mode(),
        grants: grants.names(),
        machine_netns: machine.machine_inode()?,
        pid: std::process::id(),
        script: args.script_name(),
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        part_of: None,
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
    let run = crate::build::Run {
        engine: &engine,
        linker: &linker,
        component: &loaded.component,
        lab: &lab_name,
        grants,
        limits,
        run_limits,
        args: args.args.clone(),
        stop: stop.clone(),
        keep_services: !rm,
        forward: None,
    };
    let ran = run
        .go(journal, Box::new(backend::system()), |lab| {
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::escape();
            Some(Box::new(crate::progress::Progress::start(lab.made())) as Box<dyn std::any::Any>)
        })
        .await;
    let crate::build::Ran { ending, mut journal, findings, times: run_times, services } = ran;
    let elapsed = started.elapsed();

    let built = |status, failure, services| Built { status, failure, findings, lab: lab_name.clone(), elapsed, services };
    let Some((why, status)) = failure(ending) else {
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
        return Ok(built(Status::Success, None, services.map(|services| KeptServices { services, stop })));
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
    Ok(built(status, Some(why), None))
}

/// `--exec-user`'s default: root of the lab.
const LAB_ROOT: &str = "lab";

/// The uid and gid of `--exec-user`: `lab` is root of the lab's user
/// namespace behind the boundary (`lab_ids`), the machine's `nobody` on
/// the privileged path (which has no user namespace of the lab's).
fn exec_user(user: &str, lab_ids: bool) -> anyhow::Result<(u32, u32)> {
    if user == LAB_ROOT {
        return Ok(if lab_ids { (0, 0) } else { (65534, 65534) });
    }
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))?,
        Err(_) => nix::unistd::User::from_name(user)?,
    };
    let found = found.with_context(|| format!("--exec-user: there is no user {}", policy::quoted(user)))?;
    Ok((found.uid.as_raw(), found.gid.as_raw()))
}

/// What went wrong and the exit status, or `None` for a success.
pub(crate) fn failure(ending: Ending) -> Option<(String, Status)> {
    Some(match ending {
        Ending::Guest(Outcome::Success) => return None,
        Ending::Guest(Outcome::GuestError(message)) => (format!("the script failed: {}", output_safe(&message)), Status::GuestError),
        Ending::Guest(Outcome::Trap(e)) => (format!("the script crashed: {}", describe_trap(&e)), Status::Trap),
        Ending::CrashedAfterRefusal(e, refusal) => {
            tracing::debug!("the crash itself: {}", describe_trap(&e));
            (format!("the script crashed after nsw refused its last call: {}", output_safe(&refusal)), Status::Trap)
        }
        Ending::Guest(Outcome::OutputQuota(bytes)) => {
            (format!("quota: the script printed more than {} KiB (raise it with --max-output)", bytes / 1024), Status::GuestError)
        }
        Ending::Guest(Outcome::Quota(message)) => (message, Status::GuestError),
        Ending::Guest(Outcome::Timeout(t)) => (format!("the script ran out of time ({} s; raise it with --timeout)", t.as_secs()), Status::Timeout),
        Ending::Guest(Outcome::Stopped(reason)) => (format!("stopped by {reason}"), Status::Stopped(reason)),
        Ending::Guest(Outcome::Hung) => {
            ("a host operation did not finish within 30 s of the stop; the script was abandoned".to_string(), Status::Timeout)
        }
        Ending::Setup(e) => (format!("could not set up the lab: {e}"), Status::GuestError),
    })
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
