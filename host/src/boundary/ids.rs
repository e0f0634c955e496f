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

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

/// The first uid (and gid) of the first lab's range: far above any user's
/// and the usual `/etc/subuid` ranges (100000 and up, 65536 a user).
pub const FIRST: u32 = 0x6e74_0000;
/// Ids per lab: what a user namespace with a full set of system users needs.
pub const PER_LAB: u32 = crate::naming::IDS_PER_LAB;
/// Labs behind the boundary at once (the last range ends below 2^31).
pub const SLOTS: u32 = 4096;

/// The first id of a lab's range: its root on the machine.
pub fn base_of(slot: u32) -> u32 {
    FIRST + slot * PER_LAB
}

/// Reserve a range for `lab` (or find the one it has: a run of a lab whose
/// journal is still there, `--replace` taken care of before), recorded in
/// the state directory `state`. Returns its first id.
pub fn reserve(state: &Path, lab: &str) -> Result<u32> {
    // The state directory itself is the lock: no file of a name a lab
    // could have, nothing left behind.
    let dir = fs::File::open(state).with_context(|| format!("opening {}", state.display()))?;
    let _held = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| e).context("locking the labs' id ranges")?;
    let mine = crate::layout::id_range(state, lab);
    let mut taken = std::collections::HashSet::new();
    for entry in fs::read_dir(state).with_context(|| format!("reading {}", state.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(other) = name.strip_suffix(".ids") else { continue };
        let Ok(text) = fs::read_to_string(entry.path()) else { continue };
        let mut words = text.split_whitespace().map(str::parse::<u64>);
        let Some(Ok(base)) = words.next() else { continue };
        let base = base as u32;
        let reserver = match (words.next(), words.next()) {
            (Some(Ok(pid)), Some(Ok(since))) => Some(crate::backend::ProcessId { pid: pid as u32, since }),
            _ => None,
        };
        let reserver_runs = reserver.is_some_and(|r| crate::backend::kernel::process::identify(r.pid).ok() == Some(r));
        if other == lab {
            // The lab is still there (a second run of it, which its lock
            // will refuse): it keeps the range it has. Else the record was
            // left by a crash of its last run.
            if crate::layout::journal(state, lab).exists() || reserver_runs {
                return Ok(base);
            }
            continue;
        }
        // A range is in use while its lab has a journal or a lock, or the
        // broker that reserved it still runs (it frees the range only once
        // it has swept the lab's ids): otherwise the record is stale.
        let alive = crate::layout::journal(state, other).exists() || crate::layout::lock(state, other).exists() || reserver_runs;
        if alive {
            taken.insert(base);
        }
    }
    let Some(slot) = (0..SLOTS).find(|s| !taken.contains(&base_of(*s))) else {
        bail!("every one of the {SLOTS} id ranges nsw reserves for labs is in use: take a lab down first");
    };
    let base = base_of(slot);
    let me = crate::backend::kernel::process::identify(std::process::id()).context("finding nsw's own process")?;
    write_root_file(&mine, &format!("{base} {} {}\n", me.pid, me.since))?;
    Ok(base)
}

/// Free a lab's range (its journal is gone).
pub fn release(state: &Path, lab: &str) {
    let _ = fs::remove_file(crate::layout::id_range(state, lab));
}

/// After a run whose lab is gone (rolled back, `--rm`): nothing may keep
/// the lab's ids, not even a process that left the lab's namespaces (a
/// program that made a user or network namespace of its own), before the
/// range goes to another lab. Then the range is free.
pub fn sweep_and_release(state: &Path, lab: &str, first: u32) {
    if crate::layout::journal(state, lab).exists() {
        // The lab is up (or broken): `nsw down` does this.
        return;
    }
    let grace = std::time::Duration::from_secs(2);
    match crate::backend::kernel::process::stop_all(|| crate::backend::kernel::process::with_uids(crate::naming::lab_ids(first)), grace) {
        Ok(stopped) if !stopped.is_empty() => {
            let names: Vec<String> = stopped.iter().map(|(id, comm)| format!("{comm} (pid {})", id.pid)).collect();
            crate::tell::say!("nsw: stopped {} process{} of the lab's ids left outside its namespaces: {}", names.len(), if names.len() == 1 { "" } else { "es" }, names.join(", "));
        }
        Ok(_) => {}
        Err(e) => crate::tell::say!("nsw: could not stop every process of the lab's ids: {e}"),
    }
    release(state, lab);
}

fn write_root_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labs_get_ranges_of_their_own_that_are_freed_with_them() {
        let dir = std::env::temp_dir().join(format!("nsw-ids-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let alive = |lab: &str| fs::write(crate::layout::journal(&dir, lab), "").unwrap();
        alive("a");
        let a = reserve(&dir, "a").unwrap();
        alive("b");
        let b = reserve(&dir, "b").unwrap();
        assert_eq!(a, FIRST);
        assert_eq!(b, FIRST + PER_LAB);
        let record = fs::read_to_string(crate::layout::id_range(&dir, "b")).unwrap();
        assert_eq!(record.split_whitespace().next(), Some(b.to_string().as_str()));
        // a's journal goes: its range is free for the next lab.
        fs::remove_file(crate::layout::journal(&dir, "a")).unwrap();
        release(&dir, "a");
        alive("c");
        assert_eq!(reserve(&dir, "c").unwrap(), FIRST);
        assert!(base_of(SLOTS - 1) as u64 + PER_LAB as u64 <= i32::MAX as u64);
        fs::remove_dir_all(&dir).unwrap();
    }
}
