//! Programs of the machine run inside a lab node (`--allow exec`): the
//! child joins the node's network namespace and its files and name
//! ([`super::node_fs`]; in the machine's namespace, a mount namespace of
//! its own with /sys remounted, so /sys/class/net shows its links), a
//! session of its own, then drops to an unprivileged user that can gain no
//! privileges, and execs. Everything between fork and exec is a plain
//! system call on data prepared before the fork (a threaded process may do
//! nothing else there).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::backend::{Exit, Program, ProcessId, ProgramSpec as Spec};

/// The PATH a node's programs get, and in which their names are found:
/// the node's, not that of whoever runs nsw (an ordinary user's has no
/// sbin, where daemons live).
pub const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find `program` as a shell in the node would: a path as it is, a name in
/// [`NODE_PATH`].
pub fn resolve(program: &str) -> Option<PathBuf> {
    resolve_in(std::ffi::OsStr::new(NODE_PATH), program)
}

/// Find `program` as a shell whose PATH is `path` would.
pub fn resolve_in(path: &std::ffi::OsStr, program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = Path::new(program);
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(path).map(|dir| dir.join(program)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// Start `spec` inside the namespace `netns`, and the node's own mount
/// and UTS namespaces if it has them ([`super::node_fs`]); first of all
/// into the lab's cgroup through `tasks`, its `cgroup.procs`
/// ([`super::cgroup`]), if it has one.
pub fn spawn(netns: Arc<OwnedFd>, node: Option<Arc<super::node_fs::NodeNamespaces>>, tasks: Option<Arc<OwnedFd>>, spec: &Spec) -> io::Result<Child> {
    let mut command = Command::new(&spec.program);
    command.arg0(spec.argv.first().map(String::as_str).unwrap_or_default()).args(spec.argv.iter().skip(1));
    command.env_clear().env("PATH", NODE_PATH).env("HOME", "/").env("LANG", "C.UTF-8");
    command.current_dir("/").stdin(Stdio::null());
    match &spec.log {
        None => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Some((path, _)) => {
            let file = crate::access::files::open(path, crate::access::protocol::How::Append)?;
            command.stdout(file.try_clone()?).stderr(file);
        }
    }
    // Prepared before the fork: the child only makes system calls.
    let sys = CString::new("/sys").expect("no NUL");
    let sysfs = CString::new("sysfs").expect("no NUL");
    let root = CString::new("/").expect("no NUL");
    let (uid, gid) = (spec.uid, spec.gid);
    let drop_groups = crate::places::get().rootless.is_none();
    let cap = spec.log.as_ref().map(|(_, cap)| *cap);
    let fd = netns.as_raw_fd();
    let node_fds = node.as_ref().map(|n| (n.mnt.as_raw_fd(), n.uts.as_raw_fd()));
    let tasks_fd = tasks.as_ref().map(|f| f.as_raw_fd());
    // Where the lab has no cgroup (an ordinary user's labs, a machine with
    // no cgroup v1 pids hierarchy), `--max-tasks` still bounds a fork bomb:
    // as the most tasks the program's uid may have, counted in its user
    // namespace (RLIMIT_NPROC binds anyone without CAP_SYS_RESOURCE or
    // CAP_SYS_ADMIN over the machine, which no lab's program has).
    let nproc = tasks.is_none().then(|| libc::rlimit { rlim_cur: spec.tasks.max, rlim_max: spec.tasks.max });
    // SAFETY: the closure runs in the child between fork and exec, and
    // calls only async-signal-safe system calls on data made before.
    unsafe {
        command.pre_exec(move || {
            let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
            // Before it can fork: "0" moves the writer itself.
            if let Some(tasks) = tasks_fd
                && libc::write(tasks, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            check(libc::setns(fd, libc::CLONE_NEWNET))?;
            match node_fds {
                Some((mnt, uts)) => {
                    check(libc::setns(mnt, libc::CLONE_NEWNS))?;
                    check(libc::setns(uts, libc::CLONE_NEWUTS))?;
                    check(libc::chdir(root.as_ptr()))?;
                }
                None => {
                    check(libc::unshare(libc::CLONE_NEWNS))?;
                    check(libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_SLAVE | libc::MS_REC, std::ptr::null()))?;
                    libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
                    check(libc::mount(sysfs.as_ptr(), sys.as_ptr(), sysfs.as_ptr(), 0, std::ptr::null()))?;
                }
            }
            unblock_signals();
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // In an ordinary user's namespace there are no groups to drop
            // (and setgroups is denied there).
            if drop_groups {
                check(libc::setgroups(0, std::ptr::null()))?;
            }
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            if let Some(nproc) = &nproc {
                check(libc::setrlimit(libc::RLIMIT_NPROC, nproc))?;
            }
            if let Some(cap) = cap {
                let limit = libc::rlimit { rlim_cur: cap, rlim_max: cap };
                check(libc::setrlimit(libc::RLIMIT_FSIZE, &limit))?;
                // Past the cap a write fails; the program is not killed.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let child = command.spawn();
    // The descriptors the child joined stay open until it has.
    drop(node);
    drop(tasks);
    child
}

/// A program nsw started, as the backend hands it out.
pub struct Started {
    child: Child,
    id: ProcessId,
}

impl Started {
    pub fn new(child: Child) -> io::Result<Started> {
        let id = super::process::identify(child.id())?;
        Ok(Started { child, id })
    }
}

impl Program for Started {
    fn id(&self) -> ProcessId {
        self.id
    }

    fn try_wait(&mut self) -> io::Result<Option<Exit>> {
        use std::os::unix::process::ExitStatusExt;
        Ok(self.child.try_wait()?.map(|status| match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Code(-1),
        }))
    }

    fn take_pipes(&mut self) -> Option<(Box<dyn std::io::Read + Send>, Box<dyn std::io::Read + Send>)> {
        let out = self.child.stdout.take()?;
        let err = self.child.stderr.take()?;
        Some((Box::new(out), Box::new(err)))
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        // Its session's group is its pid (setsid above).
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.id.pid as i32), signal);
    }
}

/// Between fork and exec: no signal blocked, as a program expects. nsw
/// blocks SIGINT, SIGTERM and SIGHUP in its threads (its signal thread
/// takes them, see `commands::catch_signals`), and a child keeps the mask
/// across exec: a daemon would never see `down`'s SIGTERM, and `down` would
/// wait out its grace period for SIGKILL.
///
/// # Safety
/// Async-signal-safe: call it between fork and exec.
pub(super) unsafe fn unblock_signals() {
    // SAFETY: sigemptyset and pthread_sigmask on a set of our own.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}
