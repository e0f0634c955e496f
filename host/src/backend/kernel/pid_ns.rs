//! A PID namespace per lab, whose init is nsw's: every program of the
//! lab, every node's keeper (so a node's `/proc` is the lab's) and every
//! command `nsw exec` runs is born in it. A program there sees and can
//! signal the lab's processes only: another lab's, or the machine's, have
//! no pid it could name. When the init ends (`nsw down` stops it), the
//! kernel ends everything in the namespace with it, whatever it did: a
//! fork from a SIGTERM trap, a new user, network or PID namespace.
//!
//! The init is nsw itself ([`INIT_ARG`]): it reaps what is orphaned in
//! the lab, and on SIGTERM passes it on to all of the lab's processes at
//! once, waits one grace period for them, and exits.
//!
//! A threaded process cannot enter a PID namespace itself, but a thread
//! may make one for its children (`unshare(CLONE_NEWPID)`: its next child
//! is the namespace's init, the ones after are born inside). So one
//! thread of nsw's is the lab's spawner: everything that must be born in
//! the lab is forked from it.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::backend::ProcessId;

/// nsw as a lab's init (see [`init`]).
pub const INIT_ARG: &str = "--nsw-lab-init";

/// How long the init waits, after passing SIGTERM on, before it exits and
/// the kernel kills what is left (less than teardown's grace, so that it
/// is done before teardown would kill it).
const INIT_GRACE: Duration = Duration::from_millis(1800);

type Job = Box<dyn FnOnce() + Send>;

/// The lab's PID namespace: its init, and the thread whose children are
/// born in it.
pub struct LabPids {
    pub init: ProcessId,
    jobs: mpsc::Sender<Job>,
}

impl LabPids {
    /// Make the lab's PID namespace and start its init.
    pub fn start() -> io::Result<LabPids> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (told, started) = mpsc::channel();
        std::thread::Builder::new().name("nsw-lab-pids".into()).spawn(move || {
            // SAFETY: unshare on this thread: its children are born in a
            // new PID namespace, the first of them its init.
            let made = if unsafe { libc::unshare(libc::CLONE_NEWPID) } == 0 { start_init() } else { Err(io::Error::last_os_error()) };
            let ok = made.is_ok();
            let _ = told.send(made);
            if ok {
                for job in queue {
                    job();
                }
            }
        })?;
        let init = started.recv().map_err(|_| io::Error::other("the lab's PID namespace thread died"))??;
        Ok(LabPids { init, jobs })
    }

    /// Run `f` on the spawner thread: a process it forks is born in the
    /// lab's PID namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| io::Error::other("the lab's PID namespace thread is gone"))?;
        rx.recv().map_err(|_| io::Error::other("the lab's PID namespace thread is gone"))
    }
}

/// Start nsw as the init of the namespace this thread just made. It keeps
/// no descriptor of nsw's, no terminal and no parent's death signal: it
/// outlives `nsw run`, until `down`.
fn start_init() -> io::Result<ProcessId> {
    let mut command = Command::new("/proc/self/exe");
    command.arg0("nsw-init").arg(INIT_ARG).env_clear().current_dir("/").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe system calls.
    unsafe {
        command.pre_exec(|| {
            super::spawn::unblock_signals();
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child.id();
    // Not waited for: it runs until the lab goes down, and whoever is its
    // parent then reaps it (the machine's init once nsw has exited).
    std::mem::forget(child);
    super::process::identify_live(pid).ok_or_else(|| io::Error::other("the lab's init ended at once"))
}

/// The body of a lab's init: reap whatever ends in the lab; on SIGTERM
/// (`nsw down`) pass it on to every process of the lab, wait up to
/// [`INIT_GRACE`] for them to end, and exit, which ends the rest.
pub fn init() -> std::process::ExitCode {
    // SAFETY: signal masks and waits of this single-threaded process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        // Blocked signals reach a namespace's init (it has no handlers):
        // they are waited for here.
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            let signal = libc::sigwaitinfo(&set, std::ptr::null_mut());
            if signal == libc::SIGTERM {
                break;
            }
        }
        // Every process of the namespace but this one (some are nsw's
        // children, not the init's, while the nsw that started them runs).
        libc::kill(-1, libc::SIGTERM);
    }
    let until = Instant::now() + INIT_GRACE;
    while Instant::now() < until && others_run() {
        // SAFETY: reaping this process's own children.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::ExitCode::SUCCESS
}

/// Whether a process of this PID namespace other than this one still runs
/// (a zombie has ended; the machine's init reaps the orphans nsw leaves,
/// when it gets to it). Read from the machine's /proc, which the init sees.
fn others_run() -> bool {
    let Ok(own) = std::fs::read_link("/proc/self/ns/pid") else { return false };
    let me = std::fs::read_link("/proc/self").ok();
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { return false };
        me.as_deref() != Some(std::path::Path::new(&name))
            && std::fs::read_link(entry.path().join("ns/pid")).is_ok_and(|ns| ns == own)
            && super::process::identify_live(pid).is_some()
    })
}
