//! What the lab's side asks the broker, and how: one JSON message per
//! datagram of a `SOCK_SEQPACKET` socket pair, a file descriptor riding
//! along as `SCM_RIGHTS` where one is given or returned.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest message: a path and a few words, or a listing.
const MAX: usize = 128 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The lab's side made its user namespace: map it.
    Unshared,
    /// Mount the network namespace that comes with the request at
    /// `/run/netns/NAME` (created exclusively).
    Pin { name: String },
    /// Unmount and remove `/run/netns/NAME`.
    Unpin { name: String },
    /// Open one of the lab's own files (its lock, journal, programs'
    /// output) or of the compiled cache; the descriptor comes back.
    Open { path: PathBuf, how: How },
    Stat { path: PathBuf },
    Remove { path: PathBuf },
    RemoveAll { path: PathBuf },
    CreateDir { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
    /// The compiled components in the cache's directory, for eviction.
    List { path: PathBuf },
}

/// One file of a listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listed {
    pub name: String,
    pub len: u64,
    /// When it was last used (its modification time), in seconds.
    pub used: i64,
}

/// At most so many files in a listing (each a compiled component).
pub const MAX_LISTED: usize = 1000;

/// How a file is opened (every new file is 0600: root's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum How {
    Read,
    /// Read and append to an existing file.
    ReadAppend,
    /// Read and write, created if missing, never truncated (a lock).
    ReadWrite,
    /// Created; it must not exist.
    CreateNew,
    /// Created if missing, appended to.
    Append,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Done,
    /// Whether anything was there (`Unpin`).
    Existed(bool),
    /// The file's descriptor rides along.
    Opened,
    Meta(Meta),
    Listing(Vec<Listed>),
    /// The system call failed with this errno.
    Failed { errno: i32 },
    /// The broker refused: the request is not the lab's to make.
    Refused { why: String },
}

/// How a refusal of the broker's reads, as an error on the lab's side.
pub const REFUSED: &str = "outside the lab";

/// What `lstat` says of a path.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Meta {
    pub ino: u64,
    pub uid: u32,
    pub mode: u32,
    pub len: u64,
    pub is_dir: bool,
    pub is_file: bool,
}

/// Send one message, with `fd` if given.
pub fn send(sock: BorrowedFd, message: &impl Serialize, fd: Option<BorrowedFd>) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    let raw: Vec<RawFd> = fd.iter().map(|fd| fd.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(&bytes)], cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receive one message and the descriptor that came with it; `None` once
/// the other side is gone.
pub fn receive<T: DeserializeOwned>(sock: BorrowedFd) -> io::Result<Option<(T, Option<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (len, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = loop {
            match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        let mut fd = None;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // SAFETY: the kernel just gave us this descriptor.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    if len == 0 {
        return Ok(None);
    }
    let message = serde_json::from_slice(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((message, fd)))
}
