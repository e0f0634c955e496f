//! The `nsw` command line: parse, then hand over to one of [`crate::commands`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{self, Failure, Status, agent, capture, down, exec, graph, inspect, link, logs, ls, new, plan, probe, push, run, show, test, trust, wit};

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
    Run(run::RunArgs),
    /// Run a lab like `run --rm` and report its checks (a table, JUnit
    /// XML, JSON); exit 0 if and only if every check passed.
    Test(test::TestArgs),
    /// Print what a script would build, as a shell script of ip, nft and
    /// sysctl commands; runs nothing, changes nothing, needs no root.
    Plan(plan::PlanArgs),
    /// Take labs down: remove exactly what they created.
    Down(down::DownArgs),
    /// List labs and their namespaces.
    Ls(ls::LsArgs),
    /// Show a lab as the kernel has it now: per node its links, addresses,
    /// routes, forwarding and the lab's nftables rules.
    Show(show::ShowArgs),
    /// Draw a lab: Graphviz dot, Mermaid or JSON.
    Graph(graph::GraphArgs),
    /// Capture the packets of one interface of a lab, as pcapng.
    Capture(capture::CaptureArgs),
    /// Impair, break or change one link of a running lab (rate, delay,
    /// loss, down/up, MTU, MAC), or show what is set on it.
    Link(link::LinkArgs),
    /// Show what a lab script asks for (capabilities, WASI), its exports,
    /// size and hash, and the grants it needs; runs nothing, needs no root.
    Inspect(inspect::InspectArgs),
    /// Run a command inside a lab node, like `ip netns exec`.
    Exec(exec::ExecArgs),
    /// Probe from a node of a lab that is up: ping, trace, tcp or
    /// throughput to any address, or pingall (every node pings every other).
    Probe(probe::ProbeArgs),
    /// Print what a lab's programs printed, named by node and program
    /// (`-f`: follow it until the lab goes down).
    Logs(logs::LogsArgs),
    /// Print the WIT this nsw implements, or write it to a directory.
    Wit(wit::WitArgs),
    /// Start a lab project outside this repository (Rust, Python,
    /// JavaScript or C): the two-hosts lab, the WIT, a build command.
    New(new::NewArgs),
    /// Publish a lab script to an OCI registry (optionally signed).
    Push(push::PushArgs),
    /// Fetch a lab script from an OCI registry into a file, checked, not run.
    Pull(push::PullArgs),
    /// Make a key pair to sign lab scripts with.
    Key(trust::KeyArgs),
    /// Trust a key's signatures (for some references), or list the keys trusted.
    Trust(trust::TrustArgs),
    /// Serve this machine to a cluster: register it in the store, keep it
    /// registered, and build this machine's parts of labs across machines.
    Agent(agent::AgentArgs),
    /// List the machines of a cluster whose agents are alive.
    Machines(agent::MachinesArgs),
}

impl Command {
    /// Whether it builds or reads labs (the rest need no namespace at all).
    fn works_on_labs(&self) -> bool {
        // Across machines, the agents work on labs; this process asks them.
        let across = match self {
            Command::Run(args) => args.cluster.given(),
            Command::Down(args) => args.across(),
            Command::Ls(args) => args.across(),
            Command::Show(args) => args.store.given(),
            Command::Graph(args) => args.store.given(),
            _ => false,
        };
        !across && !matches!(self, Command::Plan(_) | Command::Inspect(_) | Command::Wit(_) | Command::New(_) | Command::Push(_) | Command::Pull(_) | Command::Key(_) | Command::Trust(_) | Command::Agent(_) | Command::Machines(_))
    }

    /// Fetch the script it names by reference (`oci://`), if it does.
    fn fetch_script(&mut self) -> anyhow::Result<()> {
        match self {
            Command::Run(args) => args.fetch(),
            Command::Test(args) => args.run.fetch(),
            Command::Plan(args) => args.run.fetch(),
            Command::Inspect(args) => args.fetch(),
            Command::Pull(args) => args.fetch(),
            _ => Ok(()),
        }
    }
}

/// Entry point of the `nsw` binary.
pub fn main() -> ExitCode {
    // nsw as its own compiler's process (see runtime::compiler).
    if std::env::args_os().nth(1).is_some_and(|a| a == crate::runtime::compiler::CHILD_ARG) {
        return crate::runtime::compiler::child();
    }
    // nsw as a lab's init (see backend::kernel::pid_ns).
    if std::env::args_os().nth(1).is_some_and(|a| a == crate::backend::kernel::pid_ns::INIT_ARG) {
        return crate::backend::kernel::pid_ns::init();
    }
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `nsw run x.wasm 3`: the script's arguments go after `--`.
            let args: Vec<String> = std::env::args().collect();
            if e.kind() == clap::error::ErrorKind::UnknownArgument && args.iter().any(|a| a == "run" || a == "test") {
                crate::tell::say!("hint: arguments for the script go after --: nsw run FILE.wasm [OPTIONS] -- ARGS...");
            }
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    init_tracing(cli.verbose);
    if !matches!(cli.command, Command::Exec(_)) {
        keep_inherited_descriptors_from_children();
    }
    // A script by reference is fetched and judged first, on a runtime of
    // its own that is gone before the splits below.
    if let Err(e) = cli.command.fetch_script() {
        return commands::fail(Failure::new(Status::Usage, e));
    }
    // Root's contained labs are built behind a privilege boundary: split
    // now, while nsw still has one thread.
    if nix::unistd::geteuid().is_root() {
        let plan = match &cli.command {
            Command::Run(args) => args.boundary_plan(Vec::new()),
            Command::Test(args) => args.boundary_plan(),
            _ => Ok(None),
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => return commands::fail(Failure::new(Status::Usage, e)),
        };
        #[cfg(feature = "test-hooks")]
        let plan = plan.filter(|_| !crate::test_hooks::no_boundary());
        if let Some(plan) = plan {
            match crate::boundary::split(plan) {
                Ok(Some(broker_done)) => return broker_done,
                Ok(None) => {}
                Err(e) => return commands::fail(Failure::new(Status::Usage, e)),
            }
        }
    }
    // A lab left up keeps its services in the process that ran the script,
    // which must outlive nsw's answer to its caller: split off the front
    // now, while nsw still has one thread (and before joining a user's
    // keeper: the front, which only waits, keeps no keeper up).
    if let Command::Run(args) = &cli.command
        && !args.rm
        && !args.cluster.given()
        && let Err(e) = crate::front::split()
    {
        return commands::fail(Failure::new(Status::Usage, e));
    }
    // An ordinary user's labs live in a user namespace of the user's own:
    // join it now, while nsw still has one thread.
    if cli.command.works_on_labs() {
        if let Err(e) = crate::rootless::enter(matches!(cli.command, Command::Run(_) | Command::Test(_) | Command::Down(_))) {
            return commands::fail(Failure::new(Status::Usage, e));
        }
    }
    let command = match cli.command {
        // Before any thread exists: setns and unshare need a lone thread.
        Command::Exec(args) => {
            return match exec::exec(args) {
                Ok(never) => match never {},
                Err(e) => commands::fail(Failure::new(Status::Usage, e)),
            };
        }
        other => other,
    };
    // One thread: a run is one guest calling the kernel in sequence, and cross-thread
    // wake-ups would cost more than they give. Blocking work runs on threads of its own.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return commands::fail(Failure::new(Status::Usage, e)),
    };
    let result = runtime.block_on(async {
        match command {
            Command::Run(args) => run::exec(args).await,
            Command::Test(args) => test::exec(args).await,
            Command::Plan(args) => plan::exec(args).await,
            Command::Down(args) => down::exec(args).await,
            Command::Ls(args) => ls::exec(args).await,
            Command::Show(args) => show::exec(args).await,
            Command::Logs(args) => logs::exec(args).await,
            Command::Probe(args) => probe::exec(args).await,
            Command::Graph(args) => graph::exec(args).await,
            Command::Capture(args) => capture::exec(args).await,
            Command::Link(args) => link::exec(args).await,
            Command::Inspect(args) => inspect::exec(args).await,
            Command::Wit(args) => wit::exec(args).await,
            Command::New(args) => new::exec(args).await,
            Command::Push(args) => push::exec(args).await,
            Command::Pull(args) => push::pull(args),
            Command::Key(args) => trust::key(args),
            Command::Trust(args) => trust::trust(args),
            Command::Agent(args) => agent::agent(args).await,
            Command::Machines(args) => agent::machines(args).await,
            Command::Exec(_) => unreachable!("handled above"),
        }
    });
    // Whatever is still blocked on a thread of the runtime (a probe of an
    // abandoned run) does not keep nsw from exiting: the report is written.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // A run that left an ordinary user no lab (`--rm`, a failure) needs
    // the keeper no more either (`down` says so itself).
    if crate::places::get().rootless.is_some() {
        let _ = crate::rootless::stop_keeper_if_idle();
    }
    match result {
        Ok(status) => status.into(),
        Err(failure) => commands::fail(failure),
    }
}

/// Whatever nsw's caller left open above stderr (a descriptor of a shell,
/// a CI runner's pipe) is closed in every program nsw starts (a lab's
/// programs, pasta, nft): they inherit only what nsw gives them. (`nsw
/// exec` passes them on, as `ip netns exec` does.)
fn keep_inherited_descriptors_from_children() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: marks descriptors close-on-exec; closes nothing now.
    unsafe { libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(timer)
        .try_init();
}

/// nsw's log (`-v`), on stderr: a closed pipe there stops the run cleanly,
/// like any closed output, and never panics.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::stop::note_write(std::io::stderr().write_all(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
