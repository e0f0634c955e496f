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

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use protocol::{Reply, Request};

/// The socket to the broker, on the lab's side.
static BROKER: OnceLock<Mutex<OwnedFd>> = OnceLock::new();
/// Files root opened for the lab's side, by path.
static OPENED: OnceLock<Mutex<HashMap<PathBuf, File>>> = OnceLock::new();

/// From now on this process is the lab's side of a boundary: everything
/// goes through the broker at the other end of `sock`.
pub fn connect(sock: OwnedFd) {
    let _ = BROKER.set(Mutex::new(sock));
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
    let Some(sock) = BROKER.get() else { return };
    let Ok(sock) = sock.lock() else { return };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // The socket's descriptor now names /dev/null: the socket closes.
        // SAFETY: dup2 onto a descriptor this static owns; it stays open.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), std::os::fd::AsRawFd::as_raw_fd(&*sock)) };
    }
}

/// Whether this process is the lab's side of a boundary.
pub fn inside() -> bool {
    BROKER.get().is_some()
}

/// Ask the broker, wait for its answer.
pub fn call(request: Request, fd: Option<BorrowedFd>) -> io::Result<(Reply, Option<OwnedFd>)> {
    let sock = BROKER.get().ok_or_else(|| io::Error::other("no broker"))?;
    let sock = sock.lock().unwrap_or_else(|e| e.into_inner());
    protocol::send(sock.as_fd(), &request, fd)?;
    match protocol::receive::<Reply>(sock.as_fd())? {
        None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "nsw's broker is gone")),
        // The errno, as callers tell `ENOENT` and `EEXIST` apart.
        Some((Reply::Failed { errno }, _)) => Err(io::Error::from_raw_os_error(errno)),
        // A refusal of the broker's own, with its reason.
        Some((Reply::Refused { why }, _)) => Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", protocol::REFUSED))),
        Some(reply) => Ok(reply),
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
