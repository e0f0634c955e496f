//! Named network namespaces, the way `ip netns add` makes them: a bind
//! mount of the namespace under /run/netns, so `ip netns` sees it.
//!
//! A namespace is created by a short-lived std thread that unshares its own
//! network namespace; nothing forks (forking a threaded process is unsafe,
//! and rtnetlink's `NetworkNamespace::add` does exactly that). Work inside a
//! namespace runs the same way: on a fresh thread that joined it with
//! `setns`, never on a tokio worker, whose namespace must not change.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;

/// `statfs` magic of nsfs, the filesystem of namespace files.
pub const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Where the named namespace is mounted: `/run/netns/NAME` as iproute2 has
/// it, or in the user's own directory for an ordinary user.
pub fn path_of(name: &str) -> PathBuf {
    crate::places::get().netns.join(name)
}

/// Make /run/netns a shared mount point once per process, as `ip netns add`
/// does, so namespaces mounted there are seen from every mount namespace
/// that shares it.
pub fn ensure_run_dir() -> io::Result<()> {
    static READY: OnceLock<Result<(), Errno>> = OnceLock::new();
    let result = READY.get_or_init(|| {
        let dir = crate::places::get().netns.as_path();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let shared = || mount(Some(""), dir, Some("none"), MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
        match shared() {
            Err(Errno::EINVAL) => {
                // Not a mount point yet: make it one, then share it.
                mount(Some(dir), dir, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
                shared()
            }
            other => other,
        }
    });
    result.map_err(io::Error::from)
}

/// Create the network namespace `/run/netns/NAME` and return an fd to it,
/// with what `inside` made on the same thread inside it (a netlink socket:
/// one spawn for both). A taken name fails with `EEXIST` and leaves the
/// existing one alone.
pub fn create_named<T: Send + 'static>(name: &str, inside: fn() -> io::Result<T>) -> io::Result<(OwnedFd, T)> {
    if crate::access::inside() {
        return create_behind_boundary(name, inside);
    }
    ensure_run_dir()?;
    let path = path_of(name);
    // The mount point, created exclusively: a taken name stops us here.
    drop(open(&path, OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC, Mode::empty())?);
    let target = path.clone();
    let made = std::thread::Builder::new()
        .name("nsw-netns-new".into())
        .spawn(move || -> io::Result<(OwnedFd, T)> {
            let ns = new_netns()?;
            mount(Some("/proc/thread-self/ns/net"), &target, Some("none"), MsFlags::MS_BIND, None::<&str>)?;
            Ok((ns, inside()?))
        })
        .and_then(|thread| thread.join().unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked"))));
    if made.is_err() {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&path);
    }
    made
}

/// Move the calling thread into a new network namespace, set up for a lab.
fn new_netns() -> io::Result<OwnedFd> {
    unshare(CloneFlags::CLONE_NEWNET)?;
    // Every address in a lab is planned: IPv6 duplicate address detection
    // would only keep link-local addresses unusable for a second or more
    // (and routers unable to forward meanwhile).
    for key in ["all", "default"] {
        fs::write(format!("/proc/sys/net/ipv6/conf/{key}/accept_dad"), "0")?;
    }
    Ok(open("/proc/thread-self/ns/net", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?)
}

/// Behind the privilege boundary the namespace is ours (made in our user
/// namespace), and the broker mounts it under /run/netns.
fn create_behind_boundary<T: Send + 'static>(name: &str, inside: fn() -> io::Result<T>) -> io::Result<(OwnedFd, T)> {
    let (ns, made) = std::thread::Builder::new()
        .name("nsw-netns-new".into())
        .spawn(move || -> io::Result<(OwnedFd, T)> {
            let ns = new_netns()?;
            Ok((ns, inside()?))
        })?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))?;
    // A name taken already is said at once; the broker checks again as it
    // mounts, exclusively, while the lab goes on (`access::call_later`):
    // what needs the mount settles first (`still_mounted`, the end of
    // the run).
    if std::fs::symlink_metadata(path_of(name)).is_ok() {
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    let what = format!("mounting netns {name} under {}", crate::places::get().netns.display());
    crate::access::call_later(crate::access::protocol::Request::Pin { name: name.to_string() }, Some(ns.as_fd()), what)?;
    Ok((ns, made))
}

/// `ioctl(NS_GET_USERNS)`: the user namespace that owns namespace `fd`.
pub fn owner_of(fd: BorrowedFd) -> io::Result<u64> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    // SAFETY: the ioctl takes no argument and returns a new descriptor.
    let raw = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS as _) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made this descriptor for us.
    let owner = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    Ok(fs::File::from(owner).metadata()?.ino())
}

/// Open `/run/netns/NAME`, checking that it really is a namespace mount.
pub fn open_named(name: &str) -> io::Result<OwnedFd> {
    let fd = open(&path_of(name), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let fs = nix::sys::statfs::fstatfs(&fd)?;
    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a namespace mount", path_of(name).display())));
    }
    Ok(fd)
}

/// Unmount and remove `/run/netns/NAME`. Returns whether anything was
/// there. The kernel frees the namespace, with its links, once nothing else
/// holds it.
pub fn delete_named(name: &str) -> io::Result<bool> {
    if crate::access::inside() {
        return match crate::access::call(crate::access::protocol::Request::Unpin { name: name.to_string() }, None)? {
            (crate::access::protocol::Reply::Existed(existed), _) => Ok(existed),
            _ => Err(io::Error::other("the broker answered an unpin with something else")),
        };
    }
    let path = path_of(name);
    let mounted = match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) => true,
        Err(Errno::EINVAL) | Err(Errno::ENOENT) => false,
        Err(e) => return Err(e.into()),
    };
    let existed = match fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    Ok(mounted || existed)
}

/// The namespace this process started in.
pub fn open_current() -> io::Result<OwnedFd> {
    Ok(open("/proc/self/ns/net", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?)
}

/// Inode of a namespace: its identity.
pub fn inode(fd: &OwnedFd) -> io::Result<u64> {
    let file = fs::File::from(fd.try_clone()?);
    Ok(file.metadata()?.ino())
}

/// Inode of the namespace mounted at `/run/netns/NAME`, if one is.
pub fn inode_at(name: &str) -> io::Result<Option<u64>> {
    match open_named(name) {
        Ok(fd) => Ok(Some(inode(&fd)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::InvalidData => Ok(None),
        // Behind the privilege boundary: a mounted namespace is readable by
        // all, so what we may not open is an empty mount point, root's.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && crate::access::inside() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `/run/netns/NAME` still holds the namespace of inode `inode`:
/// one `stat` (a mounted namespace file shows the namespace's inode; once
/// unmounted, the empty file under it has another).
pub fn still_mounted(name: &str, inode: u64) -> io::Result<bool> {
    // Behind the boundary, once the broker has mounted what it was asked.
    crate::access::settle()?;
    match fs::metadata(path_of(name)) {
        Ok(meta) => Ok(meta.ino() == inode),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Inode of the namespace this process started in.
pub fn current_inode() -> io::Result<u64> {
    Ok(fs::metadata("/proc/self/ns/net")?.ino())
}

/// Move the calling thread into the network namespace `ns`, unless it is
/// there already: an ordinary user (see `rootless`) may not join the
/// machine's namespace, in which its threads are anyway.
pub fn join<F: AsFd>(ns: F) -> io::Result<()> {
    let target = fs::File::from(ns.as_fd().try_clone_to_owned()?).metadata()?.ino();
    if fs::metadata("/proc/thread-self/ns/net")?.ino() == target {
        return Ok(());
    }
    Ok(setns(ns, CloneFlags::CLONE_NEWNET)?)
}

/// Run `work` on a fresh thread inside the namespace `ns`, wait for it.
pub fn run_in<T, F>(ns: &OwnedFd, work: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> io::Result<T> + Send,
{
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("nsw-netns".into())
            .spawn_scoped(scope, || {
                join(ns)?;
                work()
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// Like [`run_in`], without blocking the async runtime while `work` runs
/// (pings wait for replies; `nft` is a process).
pub async fn run_in_async<T, F>(ns: Arc<OwnedFd>, work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("nsw-netns".into()).spawn(move || {
        let result = join(ns.as_fd()).and_then(|()| work());
        let _ = tx.send(result);
    })?;
    rx.await.unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
}

