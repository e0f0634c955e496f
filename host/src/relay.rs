//! A command's terminal and pipes, relayed across the privilege boundary.
//!
//! `nsw exec` into a lab behind the boundary runs its command as root of
//! the lab, where the lab's own processes may trace it. Such a command
//! must hold nothing of the user's: given the user's terminal, the lab
//! could type into the user's shell once the command ends (`TIOCSTI`),
//! read what the user types elsewhere, or keep the terminal. So the
//! command gets a terminal of its own (a new pseudo-terminal, when the
//! user has one) or pipes, in a session of its own, with an environment
//! made here, and this process, still the machine's, copies bytes between
//! the two. The command's status is returned as a shell would give it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios;

/// The signals the user sends the command through nsw.
const FORWARDED: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

/// At most this much of what the command wrote is still copied once it
/// has ended: a process it left running may write for ever.
const DRAIN_LIMIT: usize = 1 << 20;

/// One direction of the copy.
struct Pump {
    from: RawFd,
    to: RawFd,
    /// Read from `from`, not yet taken by `to` (which may be full).
    pending: Vec<u8>,
    /// The command's end of a pipe that this pump alone uses, closed when
    /// the pump is done: the command's input, so that it sees the user's
    /// input end; its output, so that it learns nobody reads it any more.
    owned: Option<OwnedFd>,
    /// Carries the command's output to the user.
    output: bool,
    done: bool,
}

/// What a pump's step found.
enum Step {
    /// Copied what there was; more may come.
    Going,
    /// The source ended (or failed).
    SourceEnded,
    /// The destination is closed: nobody takes what comes.
    DestinationGone,
}

impl Pump {
    fn new(from: RawFd, to: RawFd, owned: Option<OwnedFd>, output: bool) -> Pump {
        Pump { from, to, pending: Vec::new(), owned, output, done: false }
    }

    /// Read once from the source (when nothing is pending), then write
    /// what is pending as far as the destination takes it.
    fn step(&mut self) -> Step {
        if self.pending.is_empty() {
            if let Err(ended) = self.fill() {
                return ended;
            }
        }
        self.flush()
    }

    /// Read once from the source into what is pending: how much (0 if it
    /// has nothing now).
    fn fill(&mut self) -> Result<usize, Step> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            // SAFETY: reads into a buffer of the length given.
            let n = unsafe { libc::read(self.from, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => Ok(0),
                    // EIO: the command's terminal has no process left.
                    _ => Err(Step::SourceEnded),
                };
            }
            if n == 0 {
                return Err(Step::SourceEnded);
            }
            self.pending.extend_from_slice(&buf[..n as usize]);
            return Ok(n as usize);
        }
    }

    /// Write what is pending until the destination is full (a
    /// non-blocking one of ours) or has taken it all.
    fn flush(&mut self) -> Step {
        while !self.pending.is_empty() {
            // SAFETY: writes from the buffer, within its length.
            let w = unsafe { libc::write(self.to, self.pending.as_ptr().cast(), self.pending.len()) };
            if w < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Step::Going,
                    _ => return Step::DestinationGone,
                }
            }
            self.pending.drain(..w as usize);
        }
        Step::Going
    }

    /// What to wait for: the source readable, or room in the destination
    /// for what is pending (reading no more meanwhile: the command, or the
    /// user, waits as it would on a full pipe).
    fn poll_fd(&self) -> PollFd<'_> {
        // SAFETY: both descriptors are open while the pump is not done.
        match self.pending.is_empty() {
            true => PollFd::new(unsafe { BorrowedFd::borrow_raw(self.from) }, PollFlags::POLLIN),
            false => PollFd::new(unsafe { BorrowedFd::borrow_raw(self.to) }, PollFlags::POLLOUT),
        }
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: changes the flags of a descriptor of ours.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only looks at the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn window_size(fd: RawFd) -> Option<libc::winsize> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the struct it is given.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0).then_some(size)
}

/// Send `signal` where a terminal would: to the foreground process group
/// of the command's terminal, or (with pipes, or none in the foreground)
/// to the command's process group (it leads a session of its own).
fn forward(signal: libc::c_int, pid: libc::pid_t, master: Option<RawFd>) {
    // SAFETY: tcgetpgrp on the master names the terminal's foreground group.
    let group = master.map(|m| unsafe { libc::tcgetpgrp(m) }).filter(|g| *g > 0).unwrap_or(pid);
    // SAFETY: signals a process group of the command's (the command is
    // not reaped yet, so its group cannot be another's).
    if unsafe { libc::kill(-group, signal) } < 0 {
        unsafe { libc::kill(pid, signal) };
    }
}

/// The command while it runs: killed with its process group and reaped if
/// the relay returns early (an error before it could be waited for).
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SAFETY: the group of a child not yet reaped.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Puts the user's terminal back as it was, however the relay ends.
struct RawMode(Option<termios::Termios>);

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: fd 0 outlives the process.
            let _ = termios::tcsetattr(unsafe { BorrowedFd::borrow_raw(0) }, termios::SetArg::TCSADRAIN, saved);
        }
    }
}

/// Run `command`, which `enter` moves across the boundary in the child
/// between fork and exec (system calls only), relaying the user's
/// terminal or pipes to it; returns its status (128 + signal if killed).
pub fn run(mut command: Command, enter: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> io::Result<i32> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGWINCH);
    for signal in FORWARDED {
        signals.add(signal);
    }
    signals.thread_block().map_err(io::Error::from)?;
    let signal_fd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)?;
    let terminal = is_tty(0) && is_tty(1);
    let master = if terminal {
        let pty = nix::pty::openpty(window_size(0).as_ref(), None).map_err(io::Error::from)?;
        // SAFETY: sets a flag of a descriptor this function owns.
        unsafe { libc::fcntl(pty.master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        command.stdin(Stdio::from(pty.slave.try_clone()?)).stdout(Stdio::from(pty.slave.try_clone()?)).stderr(Stdio::from(pty.slave));
        Some(pty.master)
    } else {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    // SAFETY: between fork and exec, only system calls (`enter` promises
    // the same) on what was made before the fork.
    unsafe {
        command.pre_exec(move || {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            enter()
        });
    }
    let child = command.spawn()?;
    // The command's ends of its terminal live only in the command now, so
    // the terminal reports its end when the command's last process goes.
    drop(command);
    let mut running = Running(Some(child));
    let child = running.0.as_mut().expect("running");
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a descriptor.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    // Every descriptor written to that is ours alone is non-blocking, so
    // that a command that neither reads its input nor stops writing cannot
    // hold the relay up (the user's own are left as they are: they are
    // shared with the user's shell).
    let mut pumps = match &master {
        Some(master) => {
            set_nonblocking(master.as_raw_fd());
            vec![Pump::new(0, master.as_raw_fd(), None, false), Pump::new(master.as_raw_fd(), 1, None, true)]
        }
        None => {
            let stdin = OwnedFd::from(child.stdin.take().expect("piped"));
            let out = OwnedFd::from(child.stdout.take().expect("piped"));
            let err = OwnedFd::from(child.stderr.take().expect("piped"));
            for fd in [&stdin, &out, &err] {
                set_nonblocking(fd.as_raw_fd());
            }
            vec![
                Pump::new(0, stdin.as_raw_fd(), Some(stdin), false),
                Pump::new(out.as_raw_fd(), 1, Some(out), true),
                Pump::new(err.as_raw_fd(), 2, Some(err), true),
            ]
        }
    };
    let _raw_mode = match terminal {
        true => {
            // SAFETY: fd 0 outlives the process.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            let saved = termios::tcgetattr(stdin).map_err(io::Error::from)?;
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin, termios::SetArg::TCSADRAIN, &raw).map_err(io::Error::from)?;
            RawMode(Some(saved))
        }
        false => RawMode(None),
    };
    let master_fd = master.as_ref().map(|m| m.as_raw_fd());
    loop {
        let active: Vec<usize> = (0..pumps.len()).filter(|&i| !pumps[i].done).collect();
        let mut fds = vec![PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN), PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        fds.extend(active.iter().map(|&i| pumps[i].poll_fd()));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let (signalled, exited) = (ready(&fds[0]), ready(&fds[1]));
        let movable: Vec<usize> = active.iter().zip(&fds[2..]).filter(|(_, fd)| ready(fd)).map(|(&i, _)| i).collect();
        drop(fds);
        if signalled {
            while let Ok(Some(info)) = signal_fd.read_signal() {
                if info.ssi_signo == Signal::SIGWINCH as u32 {
                    if let (Some(master), Some(size)) = (master_fd, window_size(0)) {
                        // SAFETY: TIOCSWINSZ reads the struct it is given.
                        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &size) };
                    }
                } else {
                    forward(info.ssi_signo as libc::c_int, pid, master_fd);
                }
            }
        }
        for i in movable {
            let pump = &mut pumps[i];
            match pump.step() {
                Step::Going => continue,
                Step::SourceEnded => {}
                // Nobody reads the command's output any more: it learns so
                // from its pipe (closed below) or, on a terminal, by a
                // hang-up, as when a terminal closes.
                Step::DestinationGone if pump.output && master_fd.is_some() => forward(libc::SIGHUP, pid, master_fd),
                Step::DestinationGone => {}
            }
            pump.done = true;
            pump.pending.clear();
            pump.owned = None;
        }
        if exited {
            // What the command wrote before it ended (up to a limit), then
            // its status; whatever it left running keeps its end of the
            // pipes alone.
            for pump in pumps.iter_mut().filter(|p| !p.done && p.output) {
                let mut copied = 0;
                while copied < DRAIN_LIMIT && matches!(pump.flush(), Step::Going) && pump.pending.is_empty() {
                    match pump.fill() {
                        Ok(0) | Err(_) => break,
                        Ok(n) => copied += n,
                    }
                }
                let _ = pump.flush();
            }
            let status = running.0.take().expect("running").wait()?;
            use std::os::unix::process::ExitStatusExt;
            return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
    }
}
