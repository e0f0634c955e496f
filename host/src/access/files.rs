//! The files a run keeps (the lab's lock, journal and programs' output,
//! the compiled cache), reached directly or, behind the boundary, through
//! the broker: there the lab's side runs as an unprivileged uid that may
//! not even look into root's directories.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::protocol::{How, Meta, Reply, Request};

fn meta_of(m: &fs::Metadata) -> Meta {
    Meta { ino: m.ino(), uid: m.uid(), mode: m.mode(), len: m.len(), is_dir: m.is_dir(), is_file: m.is_file() }
}

/// `lstat`.
pub fn metadata(path: &Path) -> io::Result<Meta> {
    if super::inside() {
        return match super::call(Request::Stat { path: path.into() }, None)? {
            (Reply::Meta(meta), _) => Ok(meta),
            _ => Err(io::Error::other("the broker answered a stat with something else")),
        };
    }
    fs::symlink_metadata(path).map(|m| meta_of(&m))
}

pub fn exists(path: &Path) -> bool {
    metadata(path).is_ok()
}

/// Open `path` the way `how` says, here or through the broker.
pub fn open(path: &Path, how: How) -> io::Result<File> {
    if super::inside() {
        return match super::call(Request::Open { path: path.into(), how }, None)? {
            (Reply::Opened, Some(fd)) => Ok(File::from(fd)),
            _ => Err(io::Error::other("the broker opened no file")),
        };
    }
    open_here(path, how)
}

/// Open `path` in this process (the broker's side, or no boundary).
pub fn open_here(path: &Path, how: How) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    match how {
        How::Read => options.read(true),
        How::ReadAppend => options.read(true).append(true),
        How::ReadWrite => options.read(true).write(true).create(true),
        How::CreateNew => options.read(true).append(true).create_new(true),
        How::Append => options.append(true).create(true),
    };
    options.open(path)
}

pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path, How::Read)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn simple(request: Request) -> io::Result<()> {
    super::call(request, None).map(drop)
}

pub fn remove_file(path: &Path) -> io::Result<()> {
    if super::inside() {
        return simple(Request::Remove { path: path.into() });
    }
    fs::remove_file(path)
}

pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    if super::inside() {
        return simple(Request::RemoveAll { path: path.into() });
    }
    fs::remove_dir_all(path)
}

/// `mkdir -p`, new directories 0700.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if super::inside() {
        return simple(Request::CreateDir { path: path.into() });
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// The compiled components (`*.cwasm`) in `dir`, at most
/// [`super::protocol::MAX_LISTED`] of them.
pub fn list_compiled(dir: &Path) -> io::Result<Vec<super::protocol::Listed>> {
    if super::inside() {
        return match super::call(Request::List { path: dir.into() }, None)? {
            (Reply::Listing(listed), _) => Ok(listed),
            _ => Err(io::Error::other("the broker answered a listing with something else")),
        };
    }
    list_here(dir)
}

/// [`list_compiled`] in this process (the broker's side, or no boundary).
pub fn list_here(dir: &Path) -> io::Result<Vec<super::protocol::Listed>> {
    let mut listed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".cwasm") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        listed.push(super::protocol::Listed { name, len: meta.len(), used: meta.mtime() });
        if listed.len() >= super::protocol::MAX_LISTED {
            break;
        }
    }
    Ok(listed)
}

/// Mark `path` used now (its modification time), as the cache's least
/// recently used eviction reads it.
pub fn touch(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = open(path, How::ReadAppend)?;
    // SAFETY: futimens with no times sets both to now; the fd is open.
    if unsafe { libc::futimens(file.as_raw_fd(), std::ptr::null()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    if super::inside() {
        return simple(Request::Rename { from: from.into(), to: to.into() });
    }
    fs::rename(from, to)
}
