//! Processes a lab owns or holds: pasta (the uplink's user-mode NAT), and
//! whatever runs inside a lab's namespaces when the lab goes down. A
//! process is known by its pid and its start time, so that a pid the
//! kernel gave to someone else since is never signalled.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::backend::{ProcessId, Uplink};

/// The start time of `pid`, and whether it has ended: a zombie, or on its
/// way out (exiting: a lab's init that ends its PID namespace waits there
/// until the last of the lab's processes is reaped, by whoever reaps it,
/// which on some machines takes a second); `None` if there is no such
/// process.
fn stat(pid: u32) -> io::Result<Option<(u64, bool)>> {
    let text = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    // "PID (COMM) STATE ..." where COMM may hold spaces and parentheses.
    let after = text.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("");
    let since = fields.get(19).and_then(|f| f.parse().ok()).ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
    // The kernel's PF_EXITING, in the flags (field 9).
    const EXITING: u64 = 0x4;
    let exiting = fields.get(6).and_then(|f| f.parse::<u64>().ok()).is_some_and(|flags| flags & EXITING != 0);
    Ok(Some((since, state == "Z" || state == "X" || exiting)))
}

/// The identity of a running process.
pub fn identify(pid: u32) -> io::Result<ProcessId> {
    match stat(pid)? {
        Some((since, _)) => Ok(ProcessId { pid, since }),
        None => Err(io::Error::from_raw_os_error(libc::ESRCH)),
    }
}

/// The identity of a process that runs (not a zombie), if it does.
pub fn identify_live(pid: u32) -> Option<ProcessId> {
    match stat(pid) {
        Ok(Some((since, false))) => Some(ProcessId { pid, since }),
        _ => None,
    }
}

/// Whether `id` still runs (not exited, not reaped and replaced).
fn alive(id: ProcessId) -> io::Result<bool> {
    // Our own child (a rollback in the run that started it) stays a zombie
    // until reaped: reap it if it is done.
    let _ = waitpid(Pid::from_raw(id.pid as i32), Some(WaitPidFlag::WNOHANG));
    Ok(matches!(stat(id.pid)?, Some((since, false)) if since == id.since))
}

/// Stop `id`: SIGTERM, then SIGKILL if it is still there after `grace`.
/// `false` if it was gone already.
pub fn stop(id: ProcessId, grace: Duration) -> io::Result<bool> {
    // This very process holds a lab's services while it runs the script
    // (journaled so that `down` ends them once the run has left them
    // running): its own teardown stops them first, and never itself.
    if !alive(id)? || id.pid == std::process::id() {
        return Ok(false);
    }
    let pid = Pid::from_raw(id.pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(id)? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(id)? {
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!("process {} survived SIGKILL", id.pid)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(true)
}

/// The real uid of `pid`, if it runs.
fn real_uid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

/// Every process (but this one) whose real uid is one of `uids`: a lab's
/// range, which no process outside the lab has. With its command name.
pub fn with_uids(uids: std::ops::Range<u32>) -> io::Result<Vec<(ProcessId, String)>> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me || !real_uid(pid).is_some_and(|u| uids.contains(&u)) {
            continue;
        }
        let Ok(Some((since, false))) = stat(pid) else { continue };
        let comm = crate::encode::terminal::one_line(fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim());
        found.push((ProcessId { pid, since }, comm));
    }
    Ok(found)
}

/// Stop every process `find` finds, together: SIGTERM to each, one grace
/// period for all of them, SIGKILL to what is left; then look again, until
/// nothing is found (a program that forks from its SIGTERM trap, or
/// starts more meanwhile). What was stopped, with its command name.
pub fn stop_all(find: impl Fn() -> io::Result<Vec<(ProcessId, String)>>, grace: Duration) -> io::Result<Vec<(ProcessId, String)>> {
    let mut stopped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let give_up = Instant::now() + grace + Duration::from_secs(10);
    let mut first = true;
    loop {
        let found = find()?;
        if found.is_empty() {
            return Ok(stopped);
        }
        if Instant::now() >= give_up {
            let left: Vec<String> = found.iter().map(|(id, comm)| format!("{comm} (pid {})", id.pid)).collect();
            return Err(io::Error::other(format!("processes survived SIGKILL: {}", left.join(", "))));
        }
        for (id, comm) in &found {
            if seen.insert(*id) {
                stopped.push((*id, comm.clone()));
            }
        }
        // The first round gets its grace period; whatever appears later
        // (forked from a trap) gets SIGKILL at once.
        let signal = if first { Signal::SIGTERM } else { Signal::SIGKILL };
        for (id, _) in &found {
            if alive(*id)? {
                let _ = kill(Pid::from_raw(id.pid as i32), signal);
            }
        }
        if first {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if found.iter().all(|(id, _)| !alive(*id).unwrap_or(false)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            for (id, _) in &found {
                if alive(*id)? {
                    let _ = kill(Pid::from_raw(id.pid as i32), Signal::SIGKILL);
                }
            }
            first = false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every process whose network namespace is one of `netns` (inodes), with
/// that inode and its command name.
pub fn in_netns(netns: &std::collections::HashSet<u64>) -> io::Result<Vec<(ProcessId, u64, String)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A process may exit at any moment: skip what vanished.
        let Ok(meta) = fs::metadata(entry.path().join("ns/net")) else { continue };
        if !netns.contains(&meta.ino()) {
            continue;
        }
        let Ok(Some((since, zombie))) = stat(pid) else { continue };
        if zombie {
            continue;
        }
        let comm = crate::encode::terminal::one_line(fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim());
        found.push((ProcessId { pid, since }, meta.ino(), comm));
    }
    Ok(found)
}

/// Start pasta (from the Debian package `passt`) for the uplink: a tap
/// device in the lab's host with the address and a default route, and
/// user-mode NAT behind it: what the lab sends leaves from this machine's
/// own sockets, so the machine's forwarding, NAT and rp_filter are never
/// touched. No port is forwarded either way, and the gateway address is
/// not mapped to the machine's loopback. pasta daemonizes once the tap is
/// configured and quits by itself when the namespace goes away.
pub fn start_pasta(netns_path: &Path, uplink: &Uplink) -> io::Result<ProcessId> {
    // pasta's tap is a /dev/net/tun device: root can always open it, an
    // ordinary user (rootless labs) only where it is 0666, as on most
    // distributions. Say so rather than pass on pasta's "Failed to open tun".
    if nix::unistd::access("/dev/net/tun", nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(crate::error::Unsupported::io("pasta needs /dev/net/tun, which this machine lets only root open (most distributions make it mode 0666)"));
    }
    let _ = fs::remove_file(&uplink.pid_file);
    let mut command = Command::new(super::tools::program("pasta"));
    // SAFETY: between fork and exec, only the signal mask is set.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            super::spawn::unblock_signals();
            Ok(())
        });
    }
    command
        .arg("--quiet")
        // This passt (Debian 12's) cannot join a namespace after dropping
        // to nobody, which it does by default when run as root.
        .args(["--runas", "0"])
        .arg("--netns")
        .arg(netns_path)
        .arg("--config-net")
        .args(["--ns-ifname", &uplink.ifname])
        .args(["--address", &uplink.address.to_string()])
        .args(["--netmask", &uplink.prefix_len.to_string()])
        .args(["--gateway", &uplink.gateway.to_string()])
        .args(["--ipv4-only", "--no-map-gw", "--no-dhcp"])
        .args(["--tcp-ports", "none", "--udp-ports", "none", "--tcp-ns", "none", "--udp-ns", "none"])
        .arg("--pid")
        .arg(&uplink.pid_file)
        .stdin(Stdio::null());
    let out = match command.output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "pasta is not installed (apt-get install passt)"));
        }
        Err(e) => return Err(e),
    };
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = text.lines().filter(|l| !l.contains("syslog")).collect();
        return Err(io::Error::other(format!("pasta failed: {}", why.join("; "))));
    }
    let pid = read_pid(&uplink.pid_file)?;
    let _ = fs::remove_file(&uplink.pid_file);
    identify(pid)
}

fn read_pid(path: &Path) -> io::Result<u32> {
    let text = fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| io::Error::other(format!("{} holds no pid", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_identified_and_found_in_its_namespace() {
        let me = identify(std::process::id()).unwrap();
        assert!(me.since > 0);
        let netns = fs::metadata("/proc/self/ns/net").unwrap().ino();
        let here = in_netns(&[netns].into()).unwrap();
        assert!(here.iter().any(|(id, inode, _)| *id == me && *inode == netns), "{here:?}");
        // A pid with another start time is not this process.
        assert!(!alive(ProcessId { pid: me.pid, since: me.since + 1 }).unwrap());
    }
}

/// Stop every process in the network namespaces `inodes`, together
/// ([`stop_all`]); what was stopped, by the namespace it was in.
pub fn stop_all_in_netns(inodes: &std::collections::HashSet<u64>, grace: Duration) -> io::Result<Vec<(u64, String)>> {
    // Which namespace each was in, for the report.
    let where_: std::sync::Mutex<std::collections::HashMap<u32, u64>> = Default::default();
    let find = || -> io::Result<Vec<(ProcessId, String)>> {
        let found = in_netns(inodes)?;
        let mut map = where_.lock().unwrap_or_else(|e| e.into_inner());
        Ok(found
            .into_iter()
            .map(|(id, inode, comm)| {
                map.insert(id.pid, inode);
                (id, comm)
            })
            .collect())
    };
    let stopped = stop_all(find, grace)?;
    let map = where_.lock().unwrap_or_else(|e| e.into_inner());
    Ok(stopped.into_iter().map(|(id, comm)| (map.get(&id.pid).copied().unwrap_or(0), format!("{comm} (pid {})", id.pid))).collect())
}
