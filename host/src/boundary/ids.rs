//! Each lab behind the privilege boundary gets ids of its own on the
//! machine: 65536 uids and gids from a range nsw reserves
//! ([`FIRST`]..), mapped to 0..65535 inside the lab's user namespace.
//! Root of the lab (the lab's side of nsw, and the programs it starts) is
//! the first of them: a uid no user and no other lab has, so no program of
//! one lab can signal, ptrace or read another lab's processes, nor the
//! machine's. Daemons that switch to their own user (frr, dnsmasq,
//! www-data) find it mapped too. Root records each lab's range beside its
//! journal (`LAB.ids`, which the lab's side never reaches) and frees it
//! when the lab's journal goes.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

use crate::backend::ProcessId;
use crate::backend::kernel::process;
use crate::journal::{IdRange, StateDir};

/// The first uid (and gid) of the first lab's range: far above any user's,
/// the usual `/etc/subuid` ranges (100000 and up, 65536 a user) and
/// systemd's ranges for containers (524288 to 1879048191).
pub const FIRST: u32 = 0x7000_0000;
/// Ids per lab: what a user namespace with a full set of system users needs.
pub const PER_LAB: u32 = crate::naming::IDS_PER_LAB;
/// Labs behind the boundary at once (the last range ends below 2^31).
pub const SLOTS: u32 = 4095;
/// How long a run waits for the broker of an earlier run of the same lab
/// to finish sweeping its ids.
const PATIENCE: Duration = Duration::from_secs(10);

/// The first id of a lab's range: its root on the machine.
pub fn base_of(slot: u32) -> u32 {
    FIRST + slot * PER_LAB
}

fn me() -> Result<(u32, u64)> {
    let me = process::identify(std::process::id()).context("finding nsw's own process")?;
    Ok((me.pid, me.since))
}

fn runs(reserver: Option<(u32, u64)>) -> bool {
    reserver.is_some_and(|(pid, since)| process::identify(pid).ok() == Some(ProcessId { pid, since }))
}

/// Reserve a range for `lab`, recorded in the state directory `state`
/// with this process as its broker; returns its first id. The caller holds
/// the lab's lock (from before the split to after [`finish`]), so no other
/// run of the lab is under way; a lab that is up keeps the range it has.
pub fn reserve(state: &StateDir, lab: &str) -> Result<u32> {
    let me = me()?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match reserve_once(state, lab, me)? {
            Some(first) => return Ok(first),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => bail!("the nsw that ran lab {lab} before is still stopping its processes: try again in a moment"),
        }
    }
}

/// One try: `None` while the broker of an earlier run of the lab (which
/// gave up the lab's lock with its file) still sweeps the lab's ids.
fn reserve_once(state: &StateDir, lab: &str, me: (u32, u64)) -> Result<Option<u32>> {
    let dir = state.path();
    // The state directory itself is the lock: no file of a name a lab
    // could have, nothing left behind.
    let handle = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let _held = Flock::lock(handle, FlockArg::LockExclusive).map_err(|(_, e)| e).context("locking the labs' id ranges")?;
    let mut taken = std::collections::HashSet::new();
    let mut kept = None;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(other) = name.strip_suffix(".ids") else { continue };
        let Some(range) = state.id_range(other) else { continue };
        let journaled = crate::layout::journal(dir, other).exists();
        if other == lab {
            if runs(range.reserver) && range.reserver != Some(me) {
                return Ok(None);
            }
            // The lab is up (a second run of it, which will find it so),
            // or an earlier run crashed or could not stop every process of
            // the range: either way the range is the lab's still, and giving
            // the lab another would free this one while processes may
            // have its ids.
            kept = Some(range.first);
            continue;
        }
        // A range is in use while its lab has a journal or a lock, or the
        // broker that reserved it still runs (it frees the range only once
        // it has swept the lab's ids): otherwise the record is stale.
        if journaled || crate::layout::lock(dir, other).exists() || runs(range.reserver) {
            taken.insert(range.first);
        }
    }
    let first = match kept {
        Some(first) => first,
        None => match (0..SLOTS).map(base_of).find(|b| !taken.contains(b)) {
            Some(first) => first,
            None => bail!("every one of the {SLOTS} id ranges nsw reserves for labs is in use: take a lab down first"),
        },
    };
    write_root_file(&crate::layout::id_range(dir, lab), &IdRange { first, reserver: Some(me) }.line())?;
    Ok(Some(first))
}

/// At the end of a run, still holding the lab's lock: a lab that is up
/// (or kept) keeps its range, now recorded as its journal's; a lab that is
/// gone (rolled back, `--rm`) frees it, once nothing has its ids any more,
/// not even a process that left the lab's namespaces (a program that made
/// a user or network namespace of its own). False when that sweep failed:
/// the range stays taken, by the lab's lock file, which the caller keeps
/// for `nsw down` to sweep again.
pub fn finish(state: &StateDir, lab: &str, first: u32) -> bool {
    let Ok(me) = me() else { return false };
    if state.id_range(lab) != Some(IdRange { first, reserver: Some(me) }) {
        return true;
    }
    let record = crate::layout::id_range(state.path(), lab);
    if crate::layout::journal(state.path(), lab).exists() {
        // `nsw down` stops the lab's ids and forgets the range.
        if let Err(e) = write_root_file(&record, &IdRange { first, reserver: None }.line()) {
            crate::tell::say!("nsw: {e:#}");
        }
        return true;
    }
    if let Err(e) = crate::teardown::end_lab_tasks(lab).and_then(|()| crate::teardown::sweep_ids(first)) {
        // Kept, with no broker: the lab's lock file (kept too) holds the
        // range until `nsw down` of the lab sweeps it again.
        crate::tell::say!("nsw: could not stop every process of the lab's ids ({e}): `nsw down {lab}` tries again");
        let _ = write_root_file(&record, &IdRange { first, reserver: None }.line());
        return false;
    }
    state.forget_id_range(lab);
    true
}

/// Write a record whole: to a file beside it, then renamed over it, so a
/// reader never sees it half written (no lab name holds a `-`).
fn write_root_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut beside = path.as_os_str().to_owned();
    beside.push("-new");
    let beside = std::path::PathBuf::from(beside);
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&beside).with_context(|| format!("writing {}", beside.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).with_context(|| format!("writing {}", beside.display()))?;
        fs::rename(&beside, path).with_context(|| format!("writing {}", path.display()))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&beside);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labs_get_ranges_of_their_own_that_are_freed_with_them() {
        let dir = std::env::temp_dir().join(format!("nsw-ids-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let state = StateDir::at(&dir);
        let alive = |lab: &str| fs::write(crate::layout::journal(&dir, lab), "").unwrap();
        let a = reserve(&state, "a").unwrap();
        alive("a");
        let b = reserve(&state, "b").unwrap();
        assert_eq!(a, FIRST);
        assert_eq!(b, FIRST + PER_LAB);
        let record = state.id_range("b").unwrap();
        assert_eq!(record.first, b);
        assert_eq!(record.reserver.map(|r| r.0), Some(std::process::id()));
        // b's run ends without a lab: its range is swept and freed, and c
        // gets it; a's run ends with its lab up: a keeps its range, which
        // is now its journal's.
        finish(&state, "b", b);
        assert!(state.id_range("b").is_none());
        finish(&state, "a", a);
        assert_eq!(state.id_range("a"), Some(IdRange { first: a, reserver: None }));
        assert_eq!(reserve(&state, "c").unwrap(), FIRST + PER_LAB);
        // A second run of a, while it is up, finds the range it has.
        assert_eq!(reserve(&state, "a").unwrap(), a);
        // A record of another broker that still runs is never touched, and
        // its range is nobody else's: this test's parent process plays it.
        let parent = process::identify(std::os::unix::process::parent_id()).unwrap();
        write_root_file(&crate::layout::id_range(&dir, "d"), &IdRange { first: FIRST + 3 * PER_LAB, reserver: Some((parent.pid, parent.since)) }.line()).unwrap();
        finish(&state, "d", FIRST + 3 * PER_LAB);
        assert!(state.id_range("d").is_some());
        assert_eq!(reserve(&state, "e").unwrap(), FIRST + 2 * PER_LAB);
        assert_eq!(reserve(&state, "f").unwrap(), FIRST + 4 * PER_LAB);
        // A range an earlier run of g could not sweep (no journal, no
        // broker) stays g's: g's next run gets it back, and nobody else.
        let unswept = FIRST + 6 * PER_LAB;
        write_root_file(&crate::layout::id_range(&dir, "g"), &IdRange { first: unswept, reserver: None }.line()).unwrap();
        fs::write(crate::layout::lock(&dir, "g"), "").unwrap();
        assert_eq!(reserve(&state, "h").unwrap(), FIRST + 5 * PER_LAB);
        assert_eq!(reserve(&state, "g").unwrap(), unswept);
        assert!(base_of(SLOTS - 1) as u64 + PER_LAB as u64 <= i32::MAX as u64);
        fs::remove_dir_all(&dir).unwrap();
    }
}
