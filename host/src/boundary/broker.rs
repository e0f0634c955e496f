//! The privileged side of the boundary: a single-threaded loop that does
//! for the lab's side only what it cannot do itself and what concerns
//! that one lab: mount its namespaces under /run/netns, and open, remove
//! or rename its own files (and the compiled cache's). Every request is
//! checked against the lab's name and user namespace; anything else is
//! refused with `EPERM`.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use crate::access::files;
use crate::backend::kernel::netns;
use crate::policy::ownership;
use crate::access::protocol::{self, Reply, Request};

/// What the broker serves: one lab, one child.
pub struct Broker {
    pub lab: String,
    /// The child's user namespace, by inode: every namespace it pins must
    /// be owned by it.
    pub userns: u64,
    pub state: PathBuf,
    pub cache: PathBuf,
    pub netns: PathBuf,
    /// Where the boundary of the lab is recorded for `down` (see
    /// [`crate::journal::StateDir::boundary`]).
    pub marker: PathBuf,
    /// The lab's lock, which root took before the split: the lab's side,
    /// taking it, is given this very lock.
    pub lock: fs::File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    StateDir,
    /// The compiled cache's directory, whose `contained/` is the lab's.
    CacheBase,
    CacheDir,
    /// `LAB.d`, the output of the lab's programs.
    Outputs,
    /// `LAB.lock`, `LAB.journal`, a file in `LAB.d`.
    LabFile,
    CacheFile,
}

impl Place {
    const ALL: [Place; 6] = [Place::StateDir, Place::CacheBase, Place::CacheDir, Place::Outputs, Place::LabFile, Place::CacheFile];
}

/// Why a request was not done: refused by the broker, or failed.
#[derive(Debug)]
enum NotDone {
    Refused(String),
    Failed(io::Error),
}

impl From<io::Error> for NotDone {
    fn from(e: io::Error) -> Self {
        NotDone::Failed(e)
    }
}

impl From<nix::errno::Errno> for NotDone {
    fn from(e: nix::errno::Errno) -> Self {
        NotDone::Failed(e.into())
    }
}

type Served<T> = Result<T, NotDone>;

fn denied(what: impl std::fmt::Display) -> NotDone {
    NotDone::Refused(what.to_string())
}

/// A refusal with its reason, a failure with its errno.
fn reply_not_done(e: NotDone) -> Reply {
    match e {
        NotDone::Refused(why) => Reply::Refused { why },
        NotDone::Failed(e) => Reply::Failed { errno: e.raw_os_error().unwrap_or(libc::EIO) },
    }
}

impl Broker {
    /// Serve until the child closes its end or ends (whatever it left
    /// holding the socket gets no more answers).
    pub fn serve(&self, sock: BorrowedFd, child: u32) -> io::Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        // SAFETY: pidfd_open takes a pid and flags and returns a descriptor.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child as libc::pid_t, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just made this descriptor for us.
        let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
        loop {
            let mut fds = [PollFd::new(sock, PollFlags::POLLIN), PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => other?,
            };
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                return Ok(());
            }
            let Some((request, fd)) = protocol::receive::<Request>(sock)? else { return Ok(()) };
            tracing::trace!("broker: {request:?}");
            let (reply, out) = match self.handle(request, fd) {
                Ok(done) => done,
                Err(e) => (reply_not_done(e), None),
            };
            protocol::send(sock, &reply, out.as_ref().map(|f| f.as_fd()))?;
        }
    }

    fn handle(&self, request: Request, fd: Option<OwnedFd>) -> Served<(Reply, Option<OwnedFd>)> {
        Ok(match request {
            Request::Unshared => return Err(denied("already mapped")),
            Request::Pin { name } => {
                let fd = fd.ok_or_else(|| denied("no namespace came with the request"))?;
                self.pin(&name, fd)?;
                (Reply::Done, None)
            }
            Request::Unpin { name } => (Reply::Existed(self.unpin(&name)?), None),
            Request::Open { path, how } => {
                self.place(&path, &[Place::LabFile, Place::CacheFile])?;
                // A journal comes into being only with the record of the
                // boundary (CreateNew); an existing one is only read or
                // added to.
                if path == self.journal() && !matches!(how, protocol::How::CreateNew | protocol::How::Read | protocol::How::ReadAppend) {
                    return Err(denied(format!("{} is created only as a new journal", path.display())));
                }
                if path == self.journal() && how == protocol::How::CreateNew {
                    // The record first: no journal of this lab's side ever
                    // exists without it (and another lab's is never touched).
                    if fs::symlink_metadata(&path).is_ok() {
                        return Err(io::Error::from_raw_os_error(libc::EEXIST).into());
                    }
                    self.record_boundary()?;
                    return match files::open_here(&path, how) {
                        Ok(file) => Ok((Reply::Opened, Some(file.into()))),
                        Err(e) => {
                            let _ = fs::remove_file(&self.marker);
                            Err(e.into())
                        }
                    };
                }
                if path == crate::layout::lock(&self.state, &self.lab) && how == protocol::How::ReadWrite {
                    let held = self.lock.metadata()?.ino();
                    if fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == held) {
                        return Ok((Reply::Opened, Some(self.lock.try_clone()?.into())));
                    }
                }
                let file = files::open_here(&path, how)?;
                (Reply::Opened, Some(file.into()))
            }
            Request::Stat { path } => {
                self.place(&path, &Place::ALL)?;
                let m = fs::symlink_metadata(&path)?;
                (Reply::Meta(protocol::Meta { ino: m.ino(), uid: m.uid(), mode: m.mode(), len: m.len(), is_dir: m.is_dir(), is_file: m.is_file() }), None)
            }
            Request::Remove { path } => {
                self.place(&path, &[Place::LabFile, Place::CacheFile])?;
                fs::remove_file(&path)?;
                if path == self.journal() {
                    // The lab is gone: its record goes with it (its ids
                    // once the run is over and they are swept).
                    let _ = fs::remove_file(&self.marker);
                }
                (Reply::Done, None)
            }
            Request::RemoveAll { path } => {
                self.place(&path, &[Place::Outputs])?;
                fs::remove_dir_all(&path)?;
                (Reply::Done, None)
            }
            Request::CreateDir { path } => {
                self.place(&path, &[Place::StateDir, Place::CacheBase, Place::CacheDir, Place::Outputs])?;
                files::create_dir_all(&path)?;
                (Reply::Done, None)
            }
            Request::List { path } => {
                self.place(&path, &[Place::CacheDir])?;
                (Reply::Listing(files::list_here(&path)?), None)
            }
            Request::Rename { from, to } => {
                self.place(&from, &[Place::CacheFile])?;
                self.place(&to, &[Place::CacheFile])?;
                fs::rename(&from, &to)?;
                (Reply::Done, None)
            }
        })
    }

    /// Write the marker: root's, 0600, whatever was there before.
    fn record_boundary(&self) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&self.marker)?;
        std::io::Write::write_all(&mut file, format!("{}\n", self.userns).as_bytes())
    }

    fn journal(&self) -> PathBuf {
        crate::layout::journal(&self.state, &self.lab)
    }

    /// A namespace name of this lab: `LAB` (its host) or `LAB-NODE`.
    fn check_name(&self, name: &str) -> Served<()> {
        if ownership::netns_outside(name, &self.lab, None, self.userns).is_some() || name.len() > 255 {
            return Err(denied(format!("netns {name} is not one of lab {}'s", self.lab)));
        }
        Ok(())
    }

    /// Which of the lab's places `path` is, if it is one of `allowed`:
    /// its own files in the state directory, and the compiled cache.
    fn place(&self, path: &Path, allowed: &[Place]) -> Served<()> {
        let plain = path.is_absolute() && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        let lab = &self.lab;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let parent = path.parent().unwrap_or(Path::new("/"));
        let outputs = crate::layout::outputs(&self.state, lab);
        let place = if !plain {
            None
        } else if path == self.state {
            Some(Place::StateDir)
        } else if path == self.cache {
            Some(Place::CacheDir)
        } else if Some(path) == self.cache.parent() {
            Some(Place::CacheBase)
        } else if path == outputs {
            Some(Place::Outputs)
        } else if parent == outputs || (parent == self.state && crate::layout::is_lab_file(name, lab)) {
            Some(Place::LabFile)
        } else if parent == self.cache && crate::layout::is_cache_file(name) {
            Some(Place::CacheFile)
        } else {
            None
        };
        match place {
            Some(place) if allowed.contains(&place) => Ok(()),
            _ => Err(denied(path.display())),
        }
    }

    /// Mount the child's namespace `fd` at `/run/netns/NAME`.
    fn pin(&self, name: &str, fd: OwnedFd) -> Served<()> {
        self.check_name(name)?;
        let fs = nix::sys::statfs::fstatfs(&fd)?;
        // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
        let kind = unsafe { libc::ioctl(fd.as_raw_fd(), 0xb703 as _) };
        if fs.filesystem_type().0 as i64 != netns::NSFS_MAGIC
            || kind != libc::CLONE_NEWNET
            || ownership::netns_outside(name, &self.lab, Some(netns::owner_of(fd.as_fd())?), self.userns).is_some()
        {
            return Err(denied(format!("the namespace for {name} is not the lab's own")));
        }
        let path = self.netns.join(name);
        // Created exclusively: a taken name stops here.
        drop(open(&path, OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC, Mode::empty())?);
        let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
        if let Err(e) = mount(Some(source.as_str()), &path, Some("none"), MsFlags::MS_BIND, None::<&str>) {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        Ok(())
    }

    /// Unmount and remove `/run/netns/NAME`, if what is mounted there is
    /// the lab's (or nothing is).
    fn unpin(&self, name: &str) -> Served<bool> {
        self.check_name(name)?;
        let path = self.netns.join(name);
        match fs::File::open(&path) {
            Ok(file) => {
                let fs = nix::sys::statfs::fstatfs(&file)?;
                if fs.filesystem_type().0 as i64 == netns::NSFS_MAGIC && ownership::netns_outside(name, &self.lab, Some(netns::owner_of(file.as_fd())?), self.userns).is_some() {
                    return Err(denied(format!("netns {name} is not the lab's own")));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        // The lab's (or nothing is mounted): as root would remove any.
        Ok(netns::delete_named(name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> Broker {
        Broker {
            lab: "web".into(),
            userns: 1,
            state: "/run/nsw".into(),
            cache: "/var/cache/nsw/contained".into(),
            netns: "/run/netns".into(),
            marker: "/run/nsw/web.userns".into(),
            lock: fs::File::open("/dev/null").unwrap(),
        }
    }

    #[test]
    fn the_lab_reaches_its_own_files_and_the_cache_only() {
        let b = broker();
        let ok = |p: &str, allowed: &[Place]| b.place(Path::new(p), allowed).is_ok();
        let files = [Place::LabFile, Place::CacheFile];
        assert!(ok("/run/nsw/web.journal", &files));
        assert!(ok("/run/nsw/web.lock", &files));
        assert!(ok("/run/nsw/web.d/0.log", &files));
        assert!(ok("/var/cache/nsw/contained/ab12.cwasm", &files));
        assert!(ok("/run/nsw/web.d", &[Place::Outputs]));
        // Another lab's, the record of the boundary, anything else.
        for path in ["/var/cache/nsw/ab12.cwasm", "/run/nsw/webby.journal", "/run/nsw/other.journal", "/run/nsw/web.userns", "/run/nsw/web.d/../other.journal", "/etc/passwd", "web.journal", "/run/nsw/shared/1.lock"] {
            assert!(!ok(path, &files), "{path} is reachable");
        }
        // Directories are never opened, removed whole only if the lab's outputs.
        assert!(!ok("/run/nsw", &[Place::Outputs, Place::LabFile, Place::CacheFile]));
        assert!(!ok("/var/cache/nsw", &[Place::Outputs, Place::CacheFile]));
    }

    #[test]
    fn namespace_names_are_the_labs_own() {
        let b = broker();
        assert!(b.check_name("web").is_ok() && b.check_name("web-h1").is_ok());
        for name in ["webby", "other-h1", "web/../x", "", "we"] {
            assert!(b.check_name(name).is_err(), "{name} passes");
        }
    }
}
