//! `nsw run`'s front: the process its caller (a shell, a test) waits for.
//!
//! A lab left up may keep WebAssembly services running: they are threads
//! of the process that ran the script, in the nodes' namespaces, and must
//! outlive `nsw run`'s answer to its caller. So `nsw run` splits before any
//! thread exists: the front only waits; the worker does the run and, when
//! it is over, tells the front the exit status. The front exits with it;
//! the worker leaves the terminal (a session of its own, its standard
//! streams on /dev/null) and goes on holding the services, journaled as
//! the lab's processes, until `nsw down` ends it. This is the part of a
//! container runtime's shim (conmon, containerd-shim) that nsw needs; the
//! lab's programs need none of it (they are processes of their own).
//!
//! Until it detaches the worker dies with the front (`kill -9` of `nsw run`
//! takes both), and signals sent to the front reach the worker, which stops
//! the run and rolls the lab back as before.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result};
use nix::unistd::{ForkResult, Pid, fork};

/// The worker's end of the pipe to the front: the status, one byte.
static STATUS: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Split: the worker returns and goes on with the command; the front
/// waits, and exits as the run ends for its caller. Call it while nsw has
/// one thread.
pub fn split() -> Result<()> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("a pipe to nsw's front")?;
    let front = std::process::id();
    // SAFETY: nsw has one thread here (see the caller): the child may do
    // anything the parent could.
    match unsafe { fork() }.context("starting nsw's worker")? {
        ForkResult::Child => {
            drop(read);
            // Never outlive the front until detached.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid().as_raw() as u32 != front {
                std::process::exit(1);
            }
            *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = Some(write);
            Ok(())
        }
        ForkResult::Parent { child } => {
            drop(write);
            forward_signals(child);
            let mut byte = [0u8; 1];
            let told = loop {
                match nix::unistd::read(&read, &mut byte) {
                    Ok(1) => break Some(byte[0]),
                    Err(nix::errno::Errno::EINTR) => continue,
                    _ => break None,
                }
            };
            match told {
                // Detached: the worker runs on, on its own.
                Some(code) => std::process::exit(i32::from(code)),
                // It ended (or died) without detaching: exit as it did.
                None => {
                    let status = nix::sys::wait::waitpid(child, None);
                    let _ = exit_like(status);
                    std::process::exit(i32::from(status_byte(status)))
                }
            }
        }
    }
}

/// Whether this process is a worker with a front to detach from.
pub fn present() -> bool {
    STATUS.lock().map(|s| s.is_some()).unwrap_or(false)
}

/// Give the front `code` to exit with, and go on alone: no longer killed
/// with the front, in a session of its own (the terminal's signals and
/// hangup no longer reach it), standard streams on /dev/null (whoever reads
/// `nsw run`'s output sees it end).
pub fn detach(code: u8) -> Result<()> {
    let write = STATUS.lock().unwrap_or_else(|e| e.into_inner()).take().context("nsw run has no front to leave")?;
    nix::sys::prctl::set_pdeathsig(None)?;
    nix::unistd::setsid().context("a session of its own")?;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").context("opening /dev/null")?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard streams, which stay open.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error()).context("leaving the terminal");
        }
    }
    // Behind the privilege boundary the broker is done too.
    crate::access::let_go();
    nix::unistd::write(&write, &[code]).context("telling nsw's front")?;
    Ok(())
}

/// The exit status a process exits with to say it ended as `status` did:
/// the same code, or 128 + the signal that killed it.
fn status_byte(status: nix::Result<nix::sys::wait::WaitStatus>) -> u8 {
    use nix::sys::wait::WaitStatus;
    match status {
        Ok(WaitStatus::Exited(_, code)) => code as u8,
        Ok(WaitStatus::Signaled(_, signal, _)) => 128 + signal as u8,
        _ => 1,
    }
}

/// Exit as a child did: the same code, or killed by the same signal.
pub fn exit_like(status: nix::Result<nix::sys::wait::WaitStatus>) -> ExitCode {
    use nix::sys::wait::WaitStatus;
    match status {
        Ok(WaitStatus::Exited(_, code)) => ExitCode::from(code as u8),
        Ok(WaitStatus::Signaled(_, signal, _)) => {
            // SAFETY: back to the default action, then the same signal.
            unsafe {
                libc::signal(signal as libc::c_int, libc::SIG_DFL);
                libc::kill(libc::getpid(), signal as libc::c_int);
            }
            ExitCode::from(128 + signal as u8)
        }
        _ => ExitCode::from(1),
    }
}

static WORKER: AtomicI32 = AtomicI32::new(0);

/// A signal someone sent the front goes on to the worker, which stops the
/// run; one from the terminal reaches both already.
fn forward_signals(worker: Pid) {
    WORKER.store(worker.as_raw(), Ordering::SeqCst);
    extern "C" fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
        let code = unsafe { (*info).si_code };
        let worker = WORKER.load(Ordering::SeqCst);
        if code <= 0 && worker > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(worker, signal) };
        }
    }
    forward_with(forward);
}

/// A process that stands in front of another (this front, the privilege
/// boundary's broker): `forward` handles the signals that stop a run
/// (it must only call kill), and no write of its own kills it.
pub fn forward_with(forward: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)) {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls kill.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
