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

/// One direction of the copy.
struct Pump {
    from: RawFd,
    to: RawFd,
    /// The command's input: closed when the user's ends.
    closes: Option<OwnedFd>,
    done: bool,
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

/// Copy what `from` has (once, or until it has nothing more with
/// `drain`) to `to`; false once `from` ended or `to` is closed.
fn pump(from: RawFd, to: RawFd, drain: bool) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        // SAFETY: reads into a buffer of the length given.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return true,
                // EIO: the command's terminal has no process left.
                _ => return false,
            }
        }
        if n == 0 {
            return false;
        }
        let mut written = 0;
        while written < n as usize {
            // SAFETY: writes from the buffer, within what was read.
            let w = unsafe { libc::write(to, buf[written..n as usize].as_ptr().cast(), n as usize - written) };
            if w < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return false;
            }
            written += w as usize;
        }
        if !drain {
            return true;
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
    let mut child = command.spawn()?;
    // The command's ends of its terminal live only in the command now, so
    // the terminal reports its end when the command's last process goes.
    drop(command);
    // SAFETY: pidfd_open takes a pid and flags and returns a descriptor.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let mut pumps = match &master {
        Some(master) => vec![
            Pump { from: 0, to: master.as_raw_fd(), closes: None, done: false },
            Pump { from: master.as_raw_fd(), to: 1, closes: None, done: false },
        ],
        None => {
            let stdin = OwnedFd::from(child.stdin.take().expect("piped"));
            let (out, err) = (child.stdout.as_ref().expect("piped").as_raw_fd(), child.stderr.as_ref().expect("piped").as_raw_fd());
            vec![
                Pump { from: 0, to: stdin.as_raw_fd(), closes: Some(stdin), done: false },
                Pump { from: out, to: 1, closes: None, done: false },
                Pump { from: err, to: 2, closes: None, done: false },
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
    loop {
        let active: Vec<usize> = (0..pumps.len()).filter(|&i| !pumps[i].done).collect();
        let mut fds = vec![PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN), PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        // SAFETY: every pump's source is open until the pump is done.
        fds.extend(active.iter().map(|&i| PollFd::new(unsafe { BorrowedFd::borrow_raw(pumps[i].from) }, PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let (signalled, exited) = (ready(&fds[0]), ready(&fds[1]));
        let readable: Vec<usize> = active.iter().zip(&fds[2..]).filter(|(_, fd)| ready(fd)).map(|(&i, _)| i).collect();
        drop(fds);
        if signalled {
            while let Ok(Some(info)) = signal_fd.read_signal() {
                if info.ssi_signo == Signal::SIGWINCH as u32 {
                    if let (Some(master), Some(size)) = (&master, window_size(0)) {
                        // SAFETY: TIOCSWINSZ reads the struct it is given.
                        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
                    }
                } else {
                    // SAFETY: a signal to the child, which is not yet reaped.
                    unsafe { libc::kill(child.id() as libc::pid_t, info.ssi_signo as libc::c_int) };
                }
            }
        }
        for i in readable {
            if !pump(pumps[i].from, pumps[i].to, false) {
                pumps[i].done = true;
                pumps[i].closes = None;
            }
        }
        if exited {
            // What the command wrote before it ended, then its status;
            // whatever it left running keeps its end of the pipes alone.
            for p in pumps.iter().filter(|p| !p.done && p.to != 0 && p.closes.is_none() && p.from != 0) {
                // SAFETY: makes a descriptor of ours non-blocking.
                unsafe { libc::fcntl(p.from, libc::F_SETFL, libc::fcntl(p.from, libc::F_GETFL) | libc::O_NONBLOCK) };
                pump(p.from, p.to, true);
            }
            let status = child.wait()?;
            use std::os::unix::process::ExitStatusExt;
            return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
    }
}
