//! Entering a node from outside it (`nsw exec`): the namespaces to join
//! are opened and checked first, by what the descriptors are (never by a
//! pid, which a lab can reuse or a decoy can answer to); joining them is
//! system calls alone, so it may run between fork and exec. The command
//! joins the lab's cgroup too ([`super::cgroup`]): what it starts counts
//! against `--max-tasks` and ends with `down`, as the lab's programs do.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result, bail};

/// The namespaces of one node, open.
pub struct NodeEntry {
    net: OwnedFd,
    /// Behind the boundary: the lab's user namespace, joined as its root
    /// (which is not the machine's).
    user: Option<OwnedFd>,
    /// The node's files and name (mount, UTS), while a program of the node
    /// holds them; without them, a mount namespace of the command's own
    /// with the node's /sys.
    files_and_name: Option<(OwnedFd, OwnedFd)>,
    /// The lab's PID namespace, which the node's `/proc` shows: the
    /// command is born in it (see [`Self::join_pids`]).
    pids: Option<OwnedFd>,
    sysfs_source: CString,
    /// The lab's cgroup's `cgroup.procs`, if it has one.
    tasks: Option<OwnedFd>,
}

/// The inode of the namespace a descriptor is.
fn ino(fd: &OwnedFd) -> Result<u64> {
    Ok(File::from(fd.try_clone()?).metadata()?.ino())
}

/// The user namespace that owns the namespace `fd` is.
fn owner(fd: &OwnedFd) -> Result<OwnedFd> {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor.
    let raw = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_USERNS) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("finding a namespace's owner");
    }
    // SAFETY: the kernel just made it, and it is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A namespace of the process whose `/proc` directory `process` is: all
/// opened through one directory, they are one process's, even if its pid
/// is reused meanwhile (the directory then answers nothing).
fn open_ns(process: &OwnedFd, kind: &str) -> Option<OwnedFd> {
    use nix::fcntl::{OFlag, openat};
    openat(process, format!("ns/{kind}").as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()
}

fn open_process(pid: &str) -> Option<OwnedFd> {
    File::open(format!("/proc/{pid}")).ok().map(OwnedFd::from)
}

impl NodeEntry {
    /// Open node `name` (`/run/netns/NAME`). `lab_userns`: the user
    /// namespace of a lab behind the boundary, which must own the node.
    pub fn open(lab: &str, name: &str, lab_userns: Option<u64>) -> Result<Self> {
        let net = super::netns::open_named(name).with_context(|| format!("opening netns {name}"))?;
        let user = match lab_userns {
            Some(expected) => {
                let user = owner(&net)?;
                if ino(&user)? != expected {
                    bail!("netns {name} is not in its lab's user namespace");
                }
                Some(user)
            }
            None => None,
        };
        let me = open_process("self").context("reading nsw's own namespaces")?;
        let own = |kind: &str| open_ns(&me, kind).context("reading nsw's own namespaces");
        let userns = match &user {
            Some(user) => ino(user)?,
            None => ino(&own("user")?)?,
        };
        let (netns, own_uts) = (ino(&net)?, ino(&own("uts")?)?);
        // A process of the node: in its network namespace and its lab's
        // user namespace, with a name of its own. What it holds is checked
        // on the descriptors opened, so a pid reused meanwhile changes
        // nothing; a lab process that made namespaces of its own could be
        // taken for the node, but joining them is the lab's privilege only.
        let mut files_and_name = None;
        let mut pids = None;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let pid = entry.file_name();
            let Some(pid) = pid.to_str().filter(|p| p.bytes().all(|b| b.is_ascii_digit())) else { continue };
            let Some(process) = open_process(pid) else { continue };
            // Most processes are elsewhere: their network namespace first.
            if open_ns(&process, "net").and_then(|n| ino(&n).ok()) != Some(netns) {
                continue;
            }
            let (Some(puser), Some(puts), Some(pmnt)) = (open_ns(&process, "user"), open_ns(&process, "uts"), open_ns(&process, "mnt")) else {
                continue;
            };
            let matches = || -> Result<bool> {
                Ok(ino(&puser)? == userns
                    && ino(&puts)? != own_uts
                    && ino(&owner(&pmnt)?)? == userns
                    && ino(&owner(&puts)?)? == userns)
            };
            if matches().unwrap_or(false) {
                pids = open_ns(&process, "pid").filter(|p| owner(p).ok().and_then(|o| ino(&o).ok()) == Some(userns));
                files_and_name = Some((pmnt, puts));
                break;
            }
        }
        let tasks = super::cgroup::entry(lab).context("opening the lab's cgroup")?;
        Ok(NodeEntry { net, user, files_and_name, pids, sysfs_source: CString::new(name).context("a netns name with a NUL byte")?, tasks })
    }

    /// Have this process's children born in the lab's PID namespace, if
    /// the node's programs are in one (its `/proc` shows that namespace,
    /// so a command outside it would not find itself there). Whether it
    /// did: the command must then be a child, not this process.
    pub fn join_pids(&self) -> std::io::Result<bool> {
        let Some(pids) = &self.pids else { return Ok(false) };
        // SAFETY: setns on a descriptor this value owns; it changes only
        // where this process's children are born.
        if unsafe { libc::setns(pids.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(true)
    }

    /// Whether the command runs as root of a lab behind the boundary.
    pub fn as_lab_root(&self) -> bool {
        self.user.is_some()
    }

    /// Join the node for the rest of this process's life, with one thread
    /// (`nsw exec` before any thread exists, or a child between fork and
    /// exec): async-signal-safe system calls on what was opened before.
    pub fn enter(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
        // SAFETY: system calls on descriptors and strings this value owns.
        unsafe {
            // Not traceable by the lab while still the machine's root: a
            // user namespace root made would leave this process dumpable
            // (exec makes it dumpable again, as the lab's).
            if self.user.is_some() && libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0": this process, while still the machine's root.
            if let Some(tasks) = &self.tasks
                && libc::write(tasks.as_raw_fd(), c"0".as_ptr().cast(), 1) != 1
            {
                return Err(std::io::Error::last_os_error());
            }
            check(libc::setns(self.net.as_raw_fd(), libc::CLONE_NEWNET))?;
            if let Some(user) = &self.user {
                check(libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER))?;
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setresgid(0, 0, 0))?;
                check(libc::setresuid(0, 0, 0))?;
            }
            match &self.files_and_name {
                Some((mnt, uts)) => {
                    check(libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS))?;
                    check(libc::setns(uts.as_raw_fd(), libc::CLONE_NEWUTS))?;
                }
                None => {
                    // As `ip netns exec`: /sys showing the node's links, in
                    // a mount namespace whose mounts do not reach back.
                    let none = std::ptr::null::<libc::c_char>();
                    check(libc::unshare(libc::CLONE_NEWNS))?;
                    check(libc::mount(none, c"/".as_ptr(), none, libc::MS_SLAVE | libc::MS_REC, std::ptr::null()))?;
                    libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH);
                    check(libc::mount(self.sysfs_source.as_ptr(), c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null()))?;
                }
            }
            // In the node's files, or as the lab's root: nothing of the
            // caller's directory; else where the caller is, as `ip netns exec`.
            if self.user.is_some() || self.files_and_name.is_some() {
                check(libc::chdir(c"/".as_ptr()))?;
            }
        }
        Ok(())
    }
}
