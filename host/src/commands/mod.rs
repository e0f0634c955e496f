//! The subcommands, one file each with its `exec`. What they share: how
//! they print, how they end (the exit status travels on [`Failure`]), and
//! how a teardown report is told.

pub mod across;
pub mod agent;
pub mod capture;
pub mod down;
pub mod exec;
pub mod graph;
pub mod inspect;
pub mod limit_args;
pub mod link;
pub mod logs;
pub mod ls;
pub mod new;
pub mod plan;
pub mod probe;
pub mod push;
pub mod run;
pub mod show;
pub mod source_args;
pub mod test;
pub mod trust;
pub mod wit;

use std::process::ExitCode;

use crate::session::Incomplete;
use crate::stop::StopReason;
use crate::teardown::Report;

pub(crate) use crate::tell::{say, show};

/// How a command ended, as its exit status tells the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// The guest's `run` returned an error (or broke a quota).
    GuestError,
    /// Bad arguments, a bad file, a busy or existing lab: nothing was built.
    Usage,
    /// The guest trapped (crashed, ran out of memory or stack).
    Trap,
    /// The deadline (`--timeout`) passed.
    Timeout,
    /// A lab could not be taken down completely; its journal is kept.
    Incomplete,
    /// A signal (128 + its number) or a closed output pipe (as SIGPIPE).
    Stopped(StopReason),
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::GuestError => 1,
            Status::Usage => 2,
            Status::Trap => 3,
            Status::Timeout => 4,
            Status::Incomplete => 5,
            Status::Stopped(StopReason::Signal(signal)) => 128 + signal as u8,
            Status::Stopped(StopReason::OutputClosed) => 128 + nix::sys::signal::Signal::SIGPIPE as u8,
            Status::Stopped(StopReason::Deadline) => 4,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// A command that failed: what to say, and the exit status to say it with.
#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(status: Status, error: impl Into<anyhow::Error>) -> Failure {
        Failure { status, error: error.into() }
    }
}

/// Anything that fails before a lab is built is a usage error, except an
/// incomplete teardown, which says so.
impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        let error = error.into();
        let status = if error.is::<Incomplete>() { Status::Incomplete } else { Status::Usage };
        Failure { status, error }
    }
}

pub type CommandResult = Result<Status, Failure>;

/// Say what a teardown could not do or left alone, then what it did in all.
/// What a journal names (a program's path, a name) may hold anything: on
/// one line, escaped.
pub fn tell_problems(report: &Report) {
    use crate::encode::terminal::one_line;
    for problem in &report.failed {
        say!("nsw: could not remove {}", one_line(problem));
    }
    for other in &report.left_alone {
        say!("nsw: left alone {}", one_line(other));
    }
    if !report.forgotten.is_empty() {
        say!(
            "nsw: forgot {} objects in the namespace the lab was built from (--force): {}",
            report.forgotten.len(),
            one_line(&some_of(&report.forgotten, 4))
        );
    }
}

/// Print a failure and turn it into the exit code.
pub fn fail(failure: Failure) -> ExitCode {
    if let Some(incomplete) = failure.error.downcast_ref::<Incomplete>() {
        tell_problems(&incomplete.report);
    }
    // Errors carry others' words too (a registry's, a store's): encoded.
    say!("nsw: error: {}", crate::encode::terminal::one_line(&format!("{:#}", failure.error)));
    failure.status.into()
}

/// From here on SIGINT, SIGTERM and SIGHUP do not kill nsw: they are
/// blocked in this thread and every thread started after it, and a thread
/// of their own turns them into a stop request (see [`crate::stop`]), which
/// ends the run and rolls the lab back. A thread rather than a tokio signal
/// stream, because a guest busy in its own code never lets the async
/// runtime poll a stream.
pub fn catch_signals(stop: crate::stop::Stop) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block()?;
    std::thread::Builder::new().name("nsw-signals".into()).spawn(move || {
        while let Ok(signal) = set.wait() {
            if stop.requested() && signal != Signal::SIGHUP {
                // A second signal while the run stops: the user will not
                // wait. The journal has what is left for `nsw down`.
                crate::tell::say!("nsw: {} again: exiting now; what is left of the lab goes with nsw down", signal.as_str());
                std::process::exit(128 + signal as i32);
            }
            stop.request(crate::stop::StopReason::Signal(signal));
        }
    })?;
    Ok(())
}

/// A directory of this run's own under the temporary directory (made
/// new, mode 0700: never one someone made there before, nor a link),
/// removed with everything in it when dropped: the journal of a lab that
/// is only a model (`nsw plan`, a coordinator's).
pub struct Aside(pub std::path::PathBuf);

impl Aside {
    pub fn new(prefix: &str) -> anyhow::Result<Aside> {
        use std::os::unix::fs::DirBuilderExt;
        for attempt in 0u32..100 {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos:x}{attempt}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Aside(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(anyhow::anyhow!("cannot make a directory in {}: {e}", std::env::temp_dir().display())),
            }
        }
        anyhow::bail!("cannot make a directory of nsw's own in {}", std::env::temp_dir().display())
    }

    /// The journal of a lab that is only a model, started here (with the
    /// lab's lock, held as long as the journal is written).
    pub fn model_journal(&self, lab: &str, grants: &crate::policy::Grants, script: String) -> anyhow::Result<(crate::journal::LabLock, crate::journal::Journal)> {
        let state = crate::journal::StateDir::at(&self.0);
        let lock = state.lock(lab)?;
        let info = crate::journal::LabInfo {
            name: lab.to_string(),
            mode: grants.mode(),
            grants: grants.names(),
            machine_netns: 1,
            pid: std::process::id(),
            script,
            started_unix: 0,
            part_of: None,
        };
        let journal = state.create_journal(&lock, info)?;
        Ok((lock, journal))
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn require_root(what: &str) -> anyhow::Result<()> {
    // An ordinary user works in a user namespace of its own (see rootless).
    if !nix::unistd::geteuid().is_root() && crate::places::get().rootless.is_none() {
        anyhow::bail!("nsw {what} needs root: it creates network namespaces (try sudo)");
    }
    Ok(())
}

/// Join at most `max` items, then say how many more there are.
pub fn some_of(items: &[String], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!("{}, ... and {} more", items[..max].join(", "), items.len() - max)
}
