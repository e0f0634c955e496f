//! nsw for an ordinary user: labs inside a user namespace of the user's
//! own, so no root and no setuid helper is needed, and a lab script runs
//! with no privilege over the machine at all.
//!
//! Per user, one small *keeper* process holds a user namespace (the user's
//! uid mapped to 0; with a range of the user's in `/etc/subuid` and
//! `/etc/subgid`, mapped through `newuidmap`/`newgidmap` as rootless
//! Podman maps it, ids 1-65535 too, so daemons can drop to users of their
//! own) and a mount namespace whose private tmpfs
//! carries the labs' namespace mounts, as rootless Podman keeps its pause
//! process: labs outlive the `nsw run` that built them. Every nsw command of
//! that user joins the keeper's namespaces first, while it still has one
//! thread (`setns` into a user namespace needs that), and then works as it
//! does for root, on the user's own places ([`crate::places`]). Journals are
//! files under `$XDG_RUNTIME_DIR/nsw`, outside the keeper: if it dies, its
//! namespaces go with it and `nsw down` still finds what the journals list.
//!
//! Written with fork/unshare/setns by hand: the keeper is a dozen system
//! calls, and no crate does this without pulling in a container runtime.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{ForkResult, Uid, fork};

use crate::backend::ProcessId;
use crate::backend::kernel::process;
use crate::places::{self, Places};

/// The file that names the user's keeper: its pid and start time.
const KEEPER_FILE: &str = "keeper";

/// For an ordinary user, choose the user's places and join the keeper,
/// starting it first if it does not run and `build` (a command that builds
/// or takes down labs) or labs are recorded; nothing for root. Must run
/// before any thread exists.
pub fn enter(build: bool) -> Result<()> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(());
    }
    let gid = nix::unistd::getegid();
    let places = Places::user(uid.as_raw());
    let root = places.user_root().expect("a user's places have a root");
    if !build && !root.exists() {
        // Nothing was ever made here, and nothing will be.
        places::set(places);
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&root).with_context(|| format!("creating {}", root.display()))?;
    check_mine(&root, uid)?;
    // One nsw of this user at a time decides whether a keeper runs.
    let dir = File::open(&root).with_context(|| format!("opening {}", root.display()))?;
    let _decided = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| e).context("locking the user's nsw directory")?;
    let keeper = match running_keeper(&root)? {
        Some(keeper) => Some(keeper),
        None if build || has_entries(&places.state) => Some(start_keeper(&places, uid.as_raw(), gid.as_raw())?),
        // No lab, nothing to build: nothing to keep (`nsw ls` starts none).
        None => None,
    };
    if let Some(keeper) = keeper {
        join(keeper).with_context(|| format!("joining the namespaces of nsw's keeper (pid {})", keeper.pid))?;
    }
    places::set(places);
    Ok(())
}

/// The directory must be the user's and writable by no one else: the
/// keeper's file in it decides which namespaces nsw joins.
fn check_mine(dir: &Path, uid: Uid) -> Result<()> {
    let meta = fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid.as_raw() || meta.mode() & 0o022 != 0 {
        bail!("{} must be a directory of uid {} that no one else can write", dir.display(), uid);
    }
    Ok(())
}

fn has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// The keeper named by the user's file, if it still runs.
fn running_keeper(root: &Path) -> Result<Option<ProcessId>> {
    let text = match fs::read_to_string(root.join(KEEPER_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the keeper's file"),
    };
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(pid)), Some(Ok(since))) = (words.next(), words.next()) else {
        return Ok(None);
    };
    let keeper = ProcessId { pid: pid as u32, since };
    Ok(process::identify(keeper.pid).ok().filter(|found| *found == keeper).map(|_| keeper))
}

/// Fork the keeper: it makes the namespaces, says so on a pipe, and waits
/// for good in a session of its own with nothing open.
fn start_keeper(places: &Places, uid: u32, gid: u32) -> Result<ProcessId> {
    let root = places.user_root().expect("a user's places have a root");
    let netns_dir = places.netns.as_path();
    for dir in [&places.state, &places.netns] {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (mut ready, told) = std::io::pipe().context("a pipe for the keeper")?;
    let (mapped_wait, mapped_tell) = std::io::pipe().context("a pipe for the keeper")?;
    // SAFETY: nsw has one thread here (see `enter`), so the child may do
    // anything the parent could.
    match unsafe { fork() }.context("starting nsw's keeper")? {
        ForkResult::Child => {
            drop(ready);
            drop(mapped_tell);
            keep(netns_dir, told, mapped_wait)
        }
        ForkResult::Parent { child } => {
            drop(told);
            drop(mapped_wait);
            // The keeper made its user namespace (one byte), or failed.
            let mut first = [0u8; 1];
            let unshared = ready.read(&mut first).ok() == Some(1) && first[0] == UNSHARED;
            if unshared {
                let mapping = map_ids(child.as_raw() as u32, uid, gid);
                let mut mapped_tell = mapped_tell;
                let _ = mapped_tell.write_all(if mapping.is_ok() { b"m" } else { b"x" });
                if let Err(e) = mapping {
                    let _ = nix::sys::wait::waitpid(child, None);
                    return Err(e.context("mapping the ids of the user's namespace"));
                }
            } else {
                drop(mapped_tell);
            }
            let mut said = if unshared { String::new() } else { String::from_utf8_lossy(&first).trim_matches('\0').to_string() };
            let _ = ready.read_to_string(&mut said);
            if said != "ok" {
                let _ = nix::sys::wait::waitpid(child, None);
                bail!("nsw cannot make a user namespace for an ordinary user here: {said} (run it as root, or allow unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1)");
            }
            let keeper = process::identify(child.as_raw() as u32).context("finding the keeper")?;
            let file = root.join(KEEPER_FILE);
            let partial = root.join(format!("{KEEPER_FILE}.new"));
            fs::write(&partial, format!("{} {}\n", keeper.pid, keeper.since)).context("writing the keeper's file")?;
            fs::rename(&partial, &file).context("writing the keeper's file")?;
            Ok(keeper)
        }
    }
}

/// A range of subordinate ids: its first and how many.
type Range = (u32, u32);

/// The first range `/etc/subuid` (or `/etc/subgid`) gives the user `name`
/// (or its number, which the file may name instead), at most 65535 ids:
/// inside the lab they are 1-65535.
fn sub_range(table: &str, name: Option<&str>, id: u32) -> Option<Range> {
    table.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (who, first, count) = (fields.next()?, fields.next()?.parse::<u32>().ok()?, fields.next()?.parse::<u32>().ok()?);
        let mine = Some(who) == name || who == id.to_string();
        (mine && count > 0).then_some((first, count.min(65_535)))
    })
}

/// Map the keeper's user namespace from outside it: the user's uid and
/// gid to 0; with a range of the user's and Debian's `uidmap`, 1-65535 to
/// it through the setuid `newuidmap`/`newgidmap` (which check
/// `/etc/subuid` and `/etc/subgid` themselves). Without one of them, one
/// id, written by this process, as an unprivileged process may.
fn map_ids(keeper: u32, uid: u32, gid: u32) -> Result<()> {
    let name = nix::unistd::User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name);
    let range = |file: &str, id: u32| fs::read_to_string(file).ok().and_then(|t| sub_range(&t, name.as_deref(), id));
    let helper = |tool: &str, id: u32, (first, count): Range| {
        let path = ["/usr/bin", "/bin", "/usr/sbin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists())?;
        let done = std::process::Command::new(path)
            .args([keeper.to_string(), "0".into(), id.to_string(), "1".into(), "1".into(), first.to_string(), count.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        if !done.status.success() {
            tracing::debug!("{tool}: {}", String::from_utf8_lossy(&done.stderr).trim());
        }
        done.status.success().then_some(())
    };
    let proc = |file: &str| format!("/proc/{keeper}/{file}");
    let uids = range("/etc/subuid", uid).and_then(|r| helper("newuidmap", uid, r));
    if uids.is_none() {
        fs::write(proc("uid_map"), format!("0 {uid} 1")).context("writing the keeper's uid_map")?;
    }
    // Groups only with a range of the user's own: one gid needs setgroups
    // denied first.
    let gids = uids.and_then(|()| range("/etc/subgid", gid)).and_then(|r| helper("newgidmap", gid, r));
    if gids.is_none() {
        fs::write(proc("setgroups"), "deny").context("writing the keeper's setgroups")?;
        fs::write(proc("gid_map"), format!("0 {gid} 1")).context("writing the keeper's gid_map")?;
    }
    Ok(())
}

/// What the keeper says first once its user namespace is made: no text
/// (an error) starts with it.
const UNSHARED: u8 = 1;

/// The keeper's life: never returns. `told` says when its user namespace
/// is made ([`UNSHARED`]), then `ok` or why not; `mapped` says when its ids are
/// mapped (`m`), from outside.
fn keep(netns_dir: &Path, mut told: std::io::PipeWriter, mut mapped: std::io::PipeReader) -> ! {
    let made = (|| -> Result<()> {
        nix::unistd::setsid()?;
        // `nsw-keeper` in ps and top, not the command that started it.
        nix::sys::prctl::set_name(c"nsw-keeper")?;
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWUSER)")?;
        told.write_all(&[UNSHARED])?;
        let mut answer = [0u8; 1];
        if mapped.read(&mut answer)? != 1 || answer[0] != b'm' {
            bail!("its ids were not mapped");
        }
        // Nothing mounted here reaches the user's other processes.
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
        mount(Some("nsw"), netns_dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some("mode=0700"))
            .with_context(|| format!("mounting a tmpfs on {}", netns_dir.display()))?;
        Ok(())
    })();
    let _ = told.write_all(match &made {
        Ok(()) => b"ok".to_vec(),
        Err(e) => format!("{e:#}").into_bytes(),
    }
    .as_slice());
    drop(told);
    if made.is_err() {
        std::process::exit(1);
    }
    // Nothing open: no terminal, no pipe of whoever started nsw.
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: replaces the standard descriptors, which nothing here uses.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
        drop(null);
    }
    // SAFETY: closes descriptors this process no longer uses.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGPIPE, libc::SIGQUIT] {
        // SAFETY: setting a signal to be ignored.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    loop {
        nix::unistd::pause();
    }
}

/// Join the keeper's user and mount namespaces, staying in the same
/// directory (joining a mount namespace moves us to its root).
fn join(keeper: ProcessId) -> Result<()> {
    let here = std::env::current_dir().ok();
    let user = File::open(format!("/proc/{}/ns/user", keeper.pid))?;
    let mnt = File::open(format!("/proc/{}/ns/mnt", keeper.pid))?;
    // Still the same process, not a new one under a reused pid.
    if process::identify(keeper.pid).ok() != Some(keeper) {
        bail!("the keeper is gone");
    }
    setns(&user, CloneFlags::CLONE_NEWUSER).context("setns(user)")?;
    setns(&mnt, CloneFlags::CLONE_NEWNS).context("setns(mnt)")?;
    if let Some(here) = here {
        let _ = std::env::set_current_dir(here);
    }
    Ok(())
}

/// Whether a process other than the keeper and this one is in the keeper's
/// user namespace: another nsw that joined but has no journal yet.
fn others_inside(keeper: ProcessId) -> Result<bool> {
    let ours = fs::metadata(format!("/proc/{}/ns/user", keeper.pid))?.ino();
    let me = std::process::id();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A zombie (a program of a lab just ended, not reaped yet) is no
        // one that joined.
        if pid == me || pid == keeper.pid || process::identify_live(pid).is_none() {
            continue;
        }
        if fs::metadata(entry.path().join("ns/user")).is_ok_and(|m| m.ino() == ours) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// After a `down` that left the user no labs: stop the keeper and leave
/// nothing of the user's behind but the (empty) directory. Nothing for
/// root.
pub fn stop_keeper_if_idle() -> Result<bool> {
    let places = places::get();
    let Some(root) = places.user_root() else {
        return Ok(false);
    };
    let dir = File::open(&root).with_context(|| format!("opening {}", root.display()))?;
    let _decided = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| e).context("locking the user's nsw directory")?;
    let Some(keeper) = running_keeper(&root)? else {
        return Ok(false);
    };
    if has_entries(&places.state) || others_inside(keeper)? {
        return Ok(false);
    }
    // The mount is ours too (we joined): gone from here, the directory
    // under it can go.
    let _ = umount2(&places.netns, MntFlags::MNT_DETACH);
    process::stop(keeper, std::time::Duration::from_millis(200)).context("stopping the keeper")?;
    for dir in [&places.netns, &places.state] {
        let _ = fs::remove_dir(dir);
    }
    let _ = fs::remove_file(root.join(KEEPER_FILE));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::sub_range;

    #[test]
    fn a_users_range_is_found_by_name_or_number() {
        let table = "alice:100000:65536\n# a comment\n61001:200000:1000\nbob:300000:0\n";
        assert_eq!(sub_range(table, Some("alice"), 1000), Some((100000, 65535)));
        assert_eq!(sub_range(table, None, 61001), Some((200000, 1000)));
        assert_eq!(sub_range(table, Some("bob"), 1002), None);
        assert_eq!(sub_range(table, Some("carol"), 1003), None);
    }
}
