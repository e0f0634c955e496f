//! A lab's programs in a pids cgroup of their own: `--max-tasks` is the
//! most processes and threads they may have at once, however they fork
//! (a fork bomb in a node stops at it, the machine stays responsive), and
//! `down` finds every one of them there, whatever namespaces it made.
//!
//! Written against the cgroup filesystem directly: the pids controller is
//! three files (`pids.max`, `cgroup.procs`, `pids.events`), and the crates
//! for it (cgroups-rs) pull in every controller and a v1/v2 abstraction
//! this does not need.
//!
//! The cgroup is `nsw/LAB` in the machine's pids hierarchy, made by root.
//! Behind the privilege boundary its `cgroup.procs` belongs to the lab's
//! root (the first of its ids), so a program, before it drops anything,
//! moves itself in; it cannot move itself (or anything) out, nor raise
//! the limit, nor make cgroups: those files stay root's. Only a cgroup v1
//! pids hierarchy is used: in cgroup v2 a process may enter a cgroup only
//! where it may write the common ancestor's `cgroup.procs`, which the
//! lab's side (not root) may not; there, and for ordinary users, the
//! lab's programs run without this limit (README says so).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::backend::ProcessId;

/// The directory of every lab's cgroup, under the hierarchy's root.
const LABS: &str = "nsw";

/// Where the machine's cgroup v1 pids hierarchy is mounted (writable), if
/// it has one.
fn hierarchy() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| fs::read_to_string("/proc/self/mountinfo").ok().and_then(|text| pids_mount(&text))).as_deref()
}

/// The mount point of a writable cgroup v1 hierarchy with the pids
/// controller, from `/proc/self/mountinfo`.
fn pids_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mine, theirs) = line.split_once(" - ")?;
        let mine: Vec<&str> = mine.split(' ').collect();
        let theirs: Vec<&str> = theirs.split(' ').collect();
        let (point, options) = (mine.get(4)?, mine.get(5)?);
        let (kind, super_options) = (theirs.first()?, theirs.get(2)?);
        let writable = options.split(',').any(|o| o == "rw") && super_options.split(',').any(|o| o == "rw");
        (*kind == "cgroup" && super_options.split(',').any(|o| o == "pids") && writable).then(|| PathBuf::from(point))
    })
}

/// Lab `lab`'s cgroup, where there is a hierarchy to hold it (an
/// ordinary user's labs have none: a name may be root's lab's too).
pub fn lab_dir(lab: &str) -> Option<PathBuf> {
    if crate::places::get().rootless.is_some() {
        return None;
    }
    hierarchy().map(|root| root.join(LABS).join(lab))
}

/// Whether this process makes and ends labs' cgroups: root, in place (not
/// the lab's side of a boundary).
fn managed_here() -> bool {
    !crate::access::inside() && nix::unistd::geteuid().is_root()
}

/// Make lab `lab`'s cgroup, at most `max` tasks, if it is not there
/// (root only). `owner`: the uid that may move processes in (the lab's
/// root behind the boundary). `false` where there is no hierarchy, or
/// this process does not manage cgroups.
pub fn prepare(lab: &str, max: u64, owner: Option<u32>) -> io::Result<bool> {
    let Some(dir) = lab_dir(lab).filter(|_| managed_here()) else { return Ok(false) };
    match fs::create_dir(dir.parent().expect("under the root")) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    fs::write(dir.join("pids.max"), max.to_string())?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir.join("cgroup.procs"), Some(uid), None)?;
    }
    Ok(true)
}

/// `cgroup.procs` of lab `lab`'s cgroup, open for writing: a process that
/// writes `0` to it enters the cgroup. `None` if there is none, or this
/// process may not move anything into it.
pub fn entry(lab: &str) -> io::Result<Option<OwnedFd>> {
    let Some(dir) = lab_dir(lab) else { return Ok(None) };
    match fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")) {
        Ok(file) => Ok(Some(file.into())),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many tasks the lab's programs have, their limit, and how many forks
/// the limit refused; `None` if the lab has no cgroup.
pub fn usage(lab: &str) -> Option<(u64, u64, u64)> {
    let dir = lab_dir(lab)?;
    let read = |file: &str| fs::read_to_string(dir.join(file)).ok();
    let current = read("pids.current")?.trim().parse().ok()?;
    let max = read("pids.max")?.trim().parse().unwrap_or(u64::MAX);
    let refused = read("pids.events")?.lines().find_map(|l| l.strip_prefix("max ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    Some((current, max, refused))
}

/// Every live process in the cgroup `dir`, with its command name.
fn members(dir: &Path) -> io::Result<Vec<(ProcessId, String)>> {
    let text = match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter_map(|pid| {
            let id = super::process::identify_live(pid)?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            Some((id, crate::encode::terminal::one_line(comm.trim())))
        })
        .collect())
}

/// End lab `lab`'s cgroup: no more forks in it, every process in it
/// stopped together (one grace period, then SIGKILL), then the cgroup
/// removed. What was stopped, with its command name and pid. Nothing
/// where this process does not manage cgroups.
pub fn end(lab: &str, grace: Duration) -> io::Result<Vec<String>> {
    let Some(dir) = lab_dir(lab).filter(|_| managed_here()) else { return Ok(Vec::new()) };
    if !dir.exists() {
        return Ok(Vec::new());
    }
    // A program that forks from its SIGTERM trap gets nothing.
    let _ = fs::write(dir.join("pids.max"), "0");
    let stopped = super::process::stop_all(|| members(&dir), grace)?;
    // A task leaves its cgroup a moment after it is reaped.
    let mut tries = 0;
    loop {
        match fs::remove_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("removing {}: {e}", dir.display()))),
        }
    }
    Ok(stopped.into_iter().map(|(id, comm)| format!("{comm} (pid {})", id.pid)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pids_hierarchy_is_found_in_mountinfo() {
        let v1 = "35 24 0:30 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n\
                  36 24 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids\n";
        assert_eq!(pids_mount(v1), Some(PathBuf::from("/sys/fs/cgroup/pids")));
        let read_only = "36 24 0:31 / /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup ro,pids\n";
        assert_eq!(pids_mount(read_only), None);
        let v2 = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(pids_mount(v2), None);
    }
}
