//! How this process reaches the files and mount points a lab keeps: in
//! place, or — on the lab's side of the privilege boundary, where nsw runs
//! as an unprivileged uid — through the root broker
//! ([`crate::boundary`]), which does only what concerns that one lab.
//!
//! The lowest layer but the leaves: the journal, the backend, the
//! compiled cache and the programs' logs all reach their files through
//! here, and none of them needs to know which side of the boundary it
//! runs on. This module only carries requests; what the broker grants is
//! decided in the broker.

pub mod files;
pub mod protocol;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use protocol::{Reply, Request};

/// The socket to the broker, on the lab's side.
static BROKER: OnceLock<Mutex<Broker>> = OnceLock::new();

/// The lab's side's end of the broker's socket, and the requests sent with
/// [`call_later`] whose answers are still to be read.
struct Broker {
    sock: OwnedFd,
    /// What each of them was, in the order sent (the broker answers in
    /// that order).
    pending: VecDeque<String>,
    /// The first of them that failed, until [`settle`] reports it.
    failed: Option<io::Error>,
}

impl Broker {
    /// Read the answers to the requests sent with [`call_later`].
    fn drain(&mut self) {
        while let Some(what) = self.pending.pop_front() {
            let answer = match protocol::receive::<Reply>(self.sock.as_fd()) {
                Ok(Some(reply)) => answer(reply).map(drop),
                Ok(None) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "nsw's broker is gone")),
                Err(e) => Err(e),
            };
            if let Err(e) = answer
                && self.failed.is_none()
            {
                self.failed = Some(io::Error::new(e.kind(), format!("{what}: {e}")));
            }
        }
    }
}
/// Files root opened for the lab's side, by path.
static OPENED: OnceLock<Mutex<HashMap<PathBuf, File>>> = OnceLock::new();

/// From now on this process is the lab's side of a boundary: everything
/// goes through the broker at the other end of `sock`.
pub fn connect(sock: OwnedFd) {
    let _ = BROKER.set(Mutex::new(Broker { sock, pending: VecDeque::new(), failed: None }));
}

/// The files root opened for this run before the split (the script, the
/// reports), handed over by path.
pub fn hand_over(opened: HashMap<PathBuf, File>) {
    let _ = OPENED.set(Mutex::new(opened));
}

/// The run is over and this process goes on alone (see [`crate::front`]):
/// its end of the broker's socket closes, so the broker ends with the
/// run; asking it anything from now on fails.
pub fn let_go() {
    let Some(broker) = BROKER.get() else { return };
    let Ok(mut broker) = broker.lock() else { return };
    broker.drain();
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // The socket's descriptor now names /dev/null: the socket closes.
        // SAFETY: dup2 onto a descriptor this static owns; it stays open.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), std::os::fd::AsRawFd::as_raw_fd(&broker.sock)) };
    }
}

/// Whether this process is the lab's side of a boundary.
pub fn inside() -> bool {
    BROKER.get().is_some()
}

/// Ask the broker, wait for its answer.
pub fn call(request: Request, fd: Option<BorrowedFd>) -> io::Result<(Reply, Option<OwnedFd>)> {
    let broker = BROKER.get().ok_or_else(|| io::Error::other("no broker"))?;
    let mut broker = broker.lock().unwrap_or_else(|e| e.into_inner());
    broker.drain();
    protocol::send(broker.sock.as_fd(), &request, fd)?;
    match protocol::receive::<Reply>(broker.sock.as_fd())? {
        None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "nsw's broker is gone")),
        Some(reply) => answer(reply),
    }
}

/// Ask the broker, and read its answer later (at the next call, or at
/// [`settle`]): for what nothing needs at once (a new namespace mounted
/// under /run/netns), so that the broker works while the lab goes on,
/// rather than the lab waiting a round trip (and for the broker to be
/// scheduled) each time. A failure comes back from `settle`, naming
/// `what`.
pub fn call_later(request: Request, fd: Option<BorrowedFd>, what: String) -> io::Result<()> {
    let broker = BROKER.get().ok_or_else(|| io::Error::other("no broker"))?;
    let mut broker = broker.lock().unwrap_or_else(|e| e.into_inner());
    // Never more answers unread than the socket holds: the broker would
    // block sending one, and then this side sending to it.
    if broker.pending.len() >= MAX_PENDING {
        broker.drain();
    }
    protocol::send(broker.sock.as_fd(), &request, fd)?;
    broker.pending.push_back(what);
    Ok(())
}

/// How many answers [`call_later`] leaves unread at most.
const MAX_PENDING: usize = 16;

/// Wait until the broker has done what [`call_later`] asked; the first
/// failure among it. Nothing to do in place (no broker).
pub fn settle() -> io::Result<()> {
    let Some(broker) = BROKER.get() else { return Ok(()) };
    let mut broker = broker.lock().unwrap_or_else(|e| e.into_inner());
    broker.drain();
    broker.failed.take().map_or(Ok(()), Err)
}

/// A reply, with the broker's failures as errors.
fn answer(reply: (Reply, Option<OwnedFd>)) -> io::Result<(Reply, Option<OwnedFd>)> {
    match reply {
        // The errno, as callers tell `ENOENT` and `EEXIST` apart.
        (Reply::Failed { errno }, _) => Err(io::Error::from_raw_os_error(errno)),
        // A refusal of the broker's own, with its reason.
        (Reply::Refused { why }, _) => Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", protocol::REFUSED))),
        reply => Ok(reply),
    }
}

/// The file root opened for `path` before the split, if it did.
pub fn take_opened(path: &Path) -> Option<File> {
    OPENED.get()?.lock().ok()?.remove(path)
}

/// Read the file at `path`: the one root opened for the run, or the path.
pub fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    match take_opened(path) {
        Some(mut file) => {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok(bytes)
        }
        None => std::fs::read(path),
    }
}

/// Write `bytes` as the file at `path`: the one root opened for the run,
/// or the path.
pub fn write_output(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match take_opened(path) {
        Some(mut file) => io::Write::write_all(&mut file, bytes),
        None => std::fs::write(path, bytes),
    }
}
