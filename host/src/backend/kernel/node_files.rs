//! A script's reads and writes of a node's own files ([`super::node_fs`]):
//! done by a child that joins the node's mount namespace and opens the
//! path beneath the node's directory with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, so no `..`, symbolic
//! link or `/proc` trick reaches past it, and a file that is not a regular
//! one (a device, a FIFO) is never opened for writing. Whether a path
//! exists (a daemon's socket: `process.wait-ready`) is asked the same way.
//!
//! A fork rather than a thread: a thread of a threaded process cannot join
//! another mount namespace (setns refuses a shared filesystem context).
//! Between fork and exit the child makes only system calls on memory made
//! before the fork. The contents travel in a memfd, both ways, so neither
//! side waits on the other; the child's exit status carries its errno.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};

use super::node_fs::NodeNamespaces;
use crate::backend::NodeFileOp;
use crate::policy::node_files::NodePath;

/// The exit status of a child that found something other than a regular
/// file (or directory, for `make-dir`) at the path.
const NOT_REGULAR: i32 = 200;
/// ... that found the file larger than the read may return.
const TOO_LARGE: i32 = 201;
/// ... that found a symbolic link there.
const A_LINK: i32 = 203;
/// ... that could not give the file its owner: a user the lab's ids lack.
const NO_SUCH_ID: i32 = 202;

fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

fn memfd() -> io::Result<File> {
    let name = cstring("nsw-node-file")?;
    // SAFETY: a plain system call on a valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just made and owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Do `op` on `path` in the node whose namespaces are `node`. Returns what
/// a read found (empty otherwise).
pub fn act(node: &NodeNamespaces, path: &NodePath, op: &NodeFileOp) -> io::Result<Vec<u8>> {
    let mut data = memfd()?;
    if let NodeFileOp::Write { contents, .. } = op {
        data.write_all(contents)?;
        data.rewind()?;
    }
    let root = cstring(path.root)?;
    // Directories on the way (for make-dir, each made in turn) and the last
    // name, relative to the root.
    let parts: Vec<CString> = path.rest.split('/').map(cstring).collect::<io::Result<_>>()?;
    // A write goes to a new file beside, renamed over the old one: the old
    // one is never opened (the machine's, under the overlay, may be closed
    // to the lab), and no reader sees a half-written file.
    let new_name = cstring(&format!(".{}.nsw-new", path.rest.rsplit('/').next().unwrap_or_default()))?;
    let (mode, uid, gid, max) = match op {
        NodeFileOp::Write { mode, owner, .. } | NodeFileOp::MakeDir { mode, owner } => (*mode, owner.0, owner.1, 0),
        NodeFileOp::Read { max } => (0, 0, 0, *max),
        NodeFileOp::Exists => (0, 0, 0, 0),
    };
    if parts.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a node path names a file"));
    }
    let kind: u8 = match op {
        NodeFileOp::Write { .. } => 0,
        NodeFileOp::MakeDir { .. } => 1,
        NodeFileOp::Read { .. } => 2,
        NodeFileOp::Exists => 3,
    };
    let mut buffer = vec![0u8; 64 << 10];
    let (mnt, data_fd) = (node.mnt.as_raw_fd(), data.as_raw_fd());
    // SAFETY: the child makes only system calls on memory made before the
    // fork, and leaves by _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above; the child's whole life.
        let code = unsafe { child(mnt, &root, &parts, &new_name, kind, mode, uid, gid, max, data_fd, &mut buffer) };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 255 };
    match code {
        0 => {}
        NOT_REGULAR => return Err(io::Error::new(io::ErrorKind::InvalidInput, if kind == 1 { "that is not a directory" } else { "that is not a regular file" })),
        NO_SUCH_ID => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("uid {uid} or gid {gid} is not among the lab's ids (an ordinary user's lab has only root, unless /etc/subuid and /etc/subgid give the user a range)"))),
        A_LINK => return Err(io::Error::new(io::ErrorKind::InvalidInput, "that is a symbolic link, which nsw never follows")),
        TOO_LARGE => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the file is larger than {max} bytes"))),
        255 => return Err(io::Error::other("the helper that reaches the node's files died")),
        libc::ELOOP => return Err(io::Error::new(io::ErrorKind::InvalidInput, "a symbolic link on the way, which nsw never follows")),
        libc::EXDEV => return Err(io::Error::new(io::ErrorKind::InvalidInput, "the path leads out of the node's files")),
        errno => return Err(io::Error::from_raw_os_error(errno)),
    }
    let mut found = Vec::new();
    if kind == 2 {
        data.rewind()?;
        data.take(max as u64 + 1).read_to_end(&mut found)?;
    }
    Ok(found)
}

/// The child: join the node's files, open the path beneath its directory,
/// act. Returns the exit status.
///
/// # Safety
/// Only between fork and `_exit`, on memory made before the fork.
#[allow(clippy::too_many_arguments)]
unsafe fn child(mnt: i32, root: &CString, parts: &[CString], new_name: &CString, kind: u8, mode: u32, uid: u32, gid: u32, max: usize, data: i32, buffer: &mut [u8]) -> i32 {
    let errno = || unsafe { *libc::__errno_location() };
    unsafe {
        if libc::setns(mnt, libc::CLONE_NEWNS) != 0 {
            return errno();
        }
        let mut dir = libc::open(root.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if dir < 0 {
            return errno();
        }
        let Some((last, on_the_way)) = parts.split_last() else { return libc::EINVAL };
        // Each directory on the way, one step at a time (make-dir makes it).
        for part in on_the_way {
            if kind == 1 {
                let made = libc::mkdirat(dir, part.as_ptr(), 0o755);
                if made != 0 && errno() != libc::EEXIST {
                    return errno();
                }
            }
            let next = beneath(dir, part, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0);
            if next < 0 {
                return errno();
            }
            libc::close(dir);
            dir = next;
        }
        let mut stat: libc::stat = std::mem::zeroed();
        let exists = libc::fstatat(dir, last.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) == 0;
        if !exists && errno() != libc::ENOENT {
            return errno();
        }
        let format = stat.st_mode & libc::S_IFMT;
        if exists && format == libc::S_IFLNK {
            return A_LINK;
        }
        match kind {
            // exists (a symbolic link is refused above, as everywhere)
            3 => {
                if exists {
                    0
                } else {
                    libc::ENOENT
                }
            }
            // make-dir
            // (one that exists gets the owner and mode asked for, as
            // `install -d` gives them)
            1 => {
                if exists && format != libc::S_IFDIR {
                    return NOT_REGULAR;
                }
                if !exists && libc::mkdirat(dir, last.as_ptr(), 0o700) != 0 {
                    return errno();
                }
                let made = beneath(dir, last, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0);
                if made < 0 {
                    return errno();
                }
                if let Some(code) = own(made, uid, gid, mode) {
                    return code;
                }
                0
            }
            // read-file
            2 => {
                if !exists {
                    return libc::ENOENT;
                }
                if format != libc::S_IFREG {
                    return NOT_REGULAR;
                }
                let file = beneath(dir, last, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC, 0);
                if file < 0 {
                    return errno();
                }
                let mut total = 0usize;
                loop {
                    let n = libc::read(file, buffer.as_mut_ptr() as *mut libc::c_void, buffer.len());
                    if n < 0 {
                        return errno();
                    }
                    if n == 0 {
                        return 0;
                    }
                    total += n as usize;
                    if total > max {
                        return TOO_LARGE;
                    }
                    if !write_all(data, &buffer[..n as usize]) {
                        return errno();
                    }
                }
            }
            // write-file
            _ => {
                if exists && format != libc::S_IFREG {
                    return NOT_REGULAR;
                }
                // Made new and private, given its owner and mode once
                // written, then renamed over the old (renameat replaces a
                // name, never follows it).
                libc::unlinkat(dir, new_name.as_ptr(), 0);
                let file = beneath(dir, new_name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o600);
                if file < 0 {
                    return errno();
                }
                loop {
                    let n = libc::read(data, buffer.as_mut_ptr() as *mut libc::c_void, buffer.len());
                    if n == 0 {
                        break;
                    }
                    if n < 0 || !write_all(file, &buffer[..n as usize]) {
                        let e = errno();
                        libc::unlinkat(dir, new_name.as_ptr(), 0);
                        return e;
                    }
                }
                if let Some(code) = own(file, uid, gid, mode) {
                    libc::unlinkat(dir, new_name.as_ptr(), 0);
                    return code;
                }
                if libc::renameat(dir, new_name.as_ptr(), dir, last.as_ptr()) != 0 {
                    let e = errno();
                    libc::unlinkat(dir, new_name.as_ptr(), 0);
                    return e;
                }
                0
            }
        }
    }
}

/// Open `name` beneath directory `dir`, following no link of any kind.
///
/// # Safety
/// A plain system call, safe between fork and exit.
unsafe fn beneath(dir: i32, name: &CString, flags: i32, mode: u64) -> i32 {
    // SAFETY: open_how is plain data; zero is its "nothing asked" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = mode;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    unsafe { libc::syscall(libc::SYS_openat2, dir, name.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>()) as i32 }
}

/// Give `fd` its owner and mode; the exit status if that failed.
///
/// # Safety
/// Plain system calls, safe between fork and exit.
unsafe fn own(fd: i32, uid: u32, gid: u32, mode: u32) -> Option<i32> {
    unsafe {
        if libc::fchown(fd, uid, gid) != 0 {
            let e = *libc::__errno_location();
            return Some(if e == libc::EINVAL { NO_SUCH_ID } else { e });
        }
        if libc::fchmod(fd, mode) != 0 {
            return Some(*libc::__errno_location());
        }
    }
    None
}

/// Write all of `bytes` to `fd`; false on an error (in errno).
///
/// # Safety
/// A plain system call loop, safe between fork and exit.
unsafe fn write_all(fd: i32, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const libc::c_void, bytes.len()) };
        if n <= 0 {
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}
