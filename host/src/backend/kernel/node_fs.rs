//! A filesystem and a name per node: the programs of a node share a mount
//! namespace and a UTS namespace of its own, made when its first program
//! starts. In them the hostname is the node's name; `/etc`, `/var/lib`,
//! `/var/log` and `/var/cache` are the machine's seen through an overlay
//! whose writes stay the node's, with every existing directory (to a depth
//! of three) the node's own, so that a daemon can write into `/etc/bird`
//! or `/var/lib/misc`; `/run` and `/tmp` start empty; `/etc/hosts` names
//! the lab's nodes. Everything a node writes is in one tmpfs of its own,
//! in memory, gone with the node's last process. `/sys` shows the node's
//! links, `/proc` the lab's processes (its PID namespace's).
//!
//! Made with a few system calls rather than with youki's libcontainer or
//! bubblewrap: those build a whole container (a new root, a PID namespace,
//! cgroups, seccomp) from a single-threaded parent, while a node keeps the
//! machine's filesystem with a few directories private, made from nsw's
//! threaded process. A keeper process (`cat`, waiting on its input) makes
//! the namespaces between fork and exec; nsw keeps them open by
//! descriptor, and every program of the node joins them.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::backend::NodeIdentity;

/// What the node's programs join.
pub struct NodeNamespaces {
    pub mnt: OwnedFd,
    pub uts: OwnedFd,
}


/// The machine's directories a node sees copy-on-write.
const LAYERED: [&str; 4] = ["/etc", "/var/lib", "/var/log", "/var/cache"];
/// How deep a layered directory's existing directories become the node's.
const DEPTH: usize = 3;
/// The id a user namespace shows for one it does not map (the kernel's
/// `overflowuid`, 65534 unless changed).
const OVERFLOW_ID: u32 = 65534;
/// The tmpfs that holds what a node writes.
const TMPFS_OPTIONS: &str = "size=256m,mode=0755";
/// Where, inside that tmpfs, the layers' own parts are (hidden once the
/// node's `/run` is mounted over it).
const STAGE: &str = "/run/.nsw-node";

/// A directory of the node's own over a machine's one.
struct Dir {
    relative: std::path::PathBuf,
    mode: u32,
    /// The machine's owner, where nsw sees it: the node's is the same uid
    /// and gid (a daemon that keeps its files in `/etc/frr`, frr's and
    /// closed to others, finds it its own). Behind the privilege boundary
    /// the machine's ids are not the lab's and all look like the overflow
    /// id (nobody): those directories stay root's of the lab, and a script
    /// gives them their owner (`files.make-dir`).
    owner: Option<(u32, u32)>,
    /// The machine's is closed to nsw (`/etc/bird`, `/etc/ssl/private`):
    /// the node's starts empty rather than unusable (an overlay that cannot
    /// look into the machine's directory refuses every name in it). An
    /// empty directory of the node's is mounted over it, rather than the
    /// overlay's opaque mark: tmpfs holds no user xattrs before Linux 6.6.
    opaque: bool,
}

/// Directories under `root` to `depth`, with their modes.
fn skeleton(root: &Path, depth: usize, into: &mut Vec<Dir>, below: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root.join(below)) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if !kind.is_dir() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let relative = below.join(entry.file_name());
        let opaque = std::fs::read_dir(root.join(&relative)).is_err();
        let owner = (meta.uid(), meta.gid());
        let seen = owner != (0, 0) && owner.0 != OVERFLOW_ID && owner.1 != OVERFLOW_ID;
        into.push(Dir { relative: relative.clone(), mode: meta.permissions().mode() & 0o7777, owner: seen.then_some(owner), opaque });
        if !opaque {
            skeleton(root, depth - 1, into, &relative);
        }
    }
}

fn c(path: impl AsRef<std::ffi::OsStr>) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_ref().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

/// Make the node's namespaces, in network namespace `netns`.
pub fn create(netns: &OwnedFd, node: &NodeIdentity) -> io::Result<NodeNamespaces> {
    // Everything the child needs, made before the fork.
    // (path, mode, owner if not root's)
    let mut dirs: Vec<(CString, u32, Option<(u32, u32)>)> = Vec::new();
    let mut overlays: Vec<(CString, CString)> = Vec::new();
    // (the node's empty directory, the machine's it covers)
    let mut covers: Vec<(CString, CString)> = Vec::new();
    dirs.push((c(format!("{STAGE}/closed"))?, 0o700, None));
    for (i, layer) in LAYERED.iter().enumerate() {
        if !Path::new(layer).is_dir() {
            continue;
        }
        let upper = format!("{STAGE}/{i}/upper");
        let work = format!("{STAGE}/{i}/work");
        dirs.push((c(format!("{STAGE}/{i}"))?, 0o700, None));
        dirs.push((c(&upper)?, 0o755, None));
        dirs.push((c(&work)?, 0o700, None));
        let mut tree = Vec::new();
        skeleton(Path::new(layer), DEPTH, &mut tree, Path::new(""));
        for dir in tree {
            let owner = dir.owner;
            if dir.opaque {
                let empty = format!("{STAGE}/closed/{}", covers.len());
                dirs.push((c(&empty)?, dir.mode, owner));
                covers.push((c(&empty)?, c(Path::new(layer).join(&dir.relative))?));
            } else {
                dirs.push((c(Path::new(&upper).join(dir.relative))?, dir.mode, owner));
            }
        }
        overlays.push((c(layer)?, c(format!("lowerdir={layer},upperdir={upper},workdir={work},userxattr"))?));
    }
    let run_dir = c(format!("{STAGE}/run"))?;
    let tmp_dir = c(format!("{STAGE}/tmp"))?;
    let files = [(c("/etc/hosts")?, node.hosts.clone().into_bytes()), (c("/etc/hostname")?, format!("{}\n", node.hostname).into_bytes())];
    let hostname = node.hostname.clone().into_bytes();
    let (root, sys, sysfs, run, tmp, tmpfs, overlay, stage) = (c("/")?, c("/sys")?, c("sysfs")?, c("/run")?, c("/tmp")?, c("tmpfs")?, c("overlay")?, c(STAGE)?);
    let tmpfs_options = c(TMPFS_OPTIONS)?;
    let (procfs, proc_dir) = (c("proc")?, c("/proc")?);
    let keeper = crate::backend::kernel_resolve("cat").ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cat in PATH to keep a node's namespaces"))?;
    let netns_fd = netns.as_raw_fd();
    let mut command = Command::new(keeper);
    command.env_clear().stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec, and
    // calls only async-signal-safe system calls on data made before.
    unsafe {
        command.pre_exec(move || {
            let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
            let none = std::ptr::null::<libc::c_char>();
            super::spawn::unblock_signals();
            check(libc::setns(netns_fd, libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            check(libc::mount(none, root.as_ptr(), none, libc::MS_SLAVE | libc::MS_REC, std::ptr::null()))?;
            libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
            check(libc::mount(sysfs.as_ptr(), sys.as_ptr(), sysfs.as_ptr(), 0, std::ptr::null()))?;
            check(libc::sethostname(hostname.as_ptr() as *const libc::c_char, hostname.len()))?;
            // The lab's processes in /proc: the keeper is born in the lab's
            // PID namespace (see super::pid_ns). Best effort: where procfs
            // cannot be mounted here, the machine's stays (the lab's
            // processes are in it too).
            libc::mount(procfs.as_ptr(), proc_dir.as_ptr(), procfs.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, std::ptr::null());
            libc::umask(0);
            check(libc::mount(tmpfs.as_ptr(), run.as_ptr(), tmpfs.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, tmpfs_options.as_ptr() as *const libc::c_void))?;
            check(libc::mkdir(stage.as_ptr(), 0o700))?;
            for (dir, mode, owner) in &dirs {
                check(libc::mkdir(dir.as_ptr(), *mode as libc::mode_t))?;
                if let Some((uid, gid)) = owner {
                    // Best effort: a user's lab has only root (EINVAL).
                    if libc::chown(dir.as_ptr(), *uid, *gid) == 0 {
                        // chown clears setgid on a directory; the mode again.
                        libc::chmod(dir.as_ptr(), *mode as libc::mode_t);
                    }
                }
            }
            for (target, options) in &overlays {
                check(libc::mount(overlay.as_ptr(), target.as_ptr(), overlay.as_ptr(), 0, options.as_ptr() as *const libc::c_void))?;
            }
            for (empty, closed) in &covers {
                check(libc::mount(empty.as_ptr(), closed.as_ptr(), none, libc::MS_BIND, std::ptr::null()))?;
            }
            check(libc::mkdir(run_dir.as_ptr(), 0o755))?;
            check(libc::mkdir(tmp_dir.as_ptr(), 0o1777))?;
            check(libc::mount(tmp_dir.as_ptr(), tmp.as_ptr(), none, libc::MS_BIND, std::ptr::null()))?;
            // Last: the node's /run covers the stage.
            check(libc::mount(run_dir.as_ptr(), run.as_ptr(), none, libc::MS_BIND, std::ptr::null()))?;
            libc::umask(0o022);
            for (path, text) in &files {
                // The machine's file is replaced, not written through.
                libc::unlink(path.as_ptr());
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o644);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut written = 0;
                while written < text.len() {
                    let n = libc::write(fd, text[written..].as_ptr() as *const libc::c_void, text.len() - written);
                    if n <= 0 {
                        libc::close(fd);
                        return Err(io::Error::last_os_error());
                    }
                    written += n as usize;
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| io::Error::new(e.kind(), format!("making node {}'s files and name: {e}", node.hostname)))?;
    let opened = (|| -> io::Result<NodeNamespaces> {
        let open = |kind: &str| File::open(format!("/proc/{}/ns/{kind}", child.id())).map(OwnedFd::from);
        Ok(NodeNamespaces { mnt: open("mnt")?, uts: open("uts")? })
    })();
    // Its input closes: the keeper ends; the namespaces stay, held open.
    drop(child.stdin.take());
    let _ = child.wait();
    opened
}
