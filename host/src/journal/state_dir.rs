//! The directory of journals and locks (`/run/nsw`), one of each per lab.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::access::files;
use crate::access::protocol::How;

use super::{Entry, Journal, LabInfo, LabRecord, LabState};

/// The directory that holds every lab's journal and lock.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn system() -> StateDir {
        StateDir { path: crate::places::get().state.clone() }
    }

    pub fn at(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn journal_path(&self, lab: &str) -> PathBuf {
        crate::layout::journal(&self.path, lab)
    }

    fn lock_path(&self, lab: &str) -> PathBuf {
        crate::layout::lock(&self.path, lab)
    }

    /// Where root records that a lab was built behind the privilege
    /// boundary: the inode of its user namespace ([`crate::boundary`]).
    pub fn boundary_path(&self, lab: &str) -> PathBuf {
        crate::layout::boundary_record(&self.path, lab)
    }

    /// The user namespace a lab was built in, if it was built behind the
    /// boundary; `down` then acts only inside it.
    pub fn boundary(&self, lab: &str) -> Result<Option<u64>> {
        if crate::access::inside() {
            // Behind the boundary the kernel itself keeps us inside.
            return Ok(None);
        }
        match fs::read_to_string(self.boundary_path(lab)) {
            Ok(text) => text.trim().parse().map(Some).with_context(|| format!("reading {}", self.boundary_path(lab).display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.boundary_path(lab).display())),
        }
    }

    /// The first of the ids root reserved for a lab behind the boundary, if
    /// it did (see [`crate::boundary`]); never read from behind it, nor for
    /// a lab without the record of its boundary (a range left by a crash
    /// is not a later lab's of that name).
    pub fn lab_ids(&self, lab: &str) -> Option<u32> {
        if !self.boundary_path(lab).exists() {
            return None;
        }
        self.id_range(lab).map(|r| r.first)
    }

    /// Root's record of a lab's id range, if there is one.
    pub fn id_range(&self, lab: &str) -> Option<IdRange> {
        if crate::access::inside() {
            return None;
        }
        IdRange::parse(&fs::read_to_string(crate::layout::id_range(&self.path, lab)).ok()?)
    }

    /// Forget a lab's id range: only once nothing has its ids.
    pub fn forget_id_range(&self, lab: &str) {
        if !crate::access::inside() {
            let _ = fs::remove_file(crate::layout::id_range(&self.path, lab));
        }
    }

    pub(crate) fn ensure(&self) -> Result<()> {
        files::create_dir_all(&self.path).with_context(|| format!("creating {}", self.path.display()))
    }

    /// Names of the labs that have a journal (or, after a crash at the
    /// wrong moment, only a lock file).
    pub fn labs(&self) -> Result<Vec<String>> {
        let mut labs = Vec::new();
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(labs),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        for entry in entries {
            let name = entry?.file_name();
            if let Some(lab) = name.to_str().and_then(crate::layout::lab_of_file) {
                labs.push(lab.to_string());
            }
        }
        labs.sort();
        labs.dedup();
        Ok(labs)
    }

    /// Whether some process holds the lab's lock right now (it is building
    /// or taking the lab down), read from /proc/locks without touching the
    /// lock: a pid alone could have been reused since.
    pub fn lock_held(&self, lab: &str) -> bool {
        let Ok(meta) = files::metadata(&self.lock_path(lab)) else { return false };
        let Ok(locks) = fs::read_to_string("/proc/locks") else { return false };
        let inode = meta.ino.to_string();
        locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
            fields.get(1) == Some(&"FLOCK") && fields.get(5).and_then(|id| id.rsplit(':').next()) == Some(inode.as_str())
        })
    }

    /// Take the lab's lock, waiting up to `patience` for another nsw to
    /// let go of it.
    pub fn lock_wait(&self, lab: &str, patience: std::time::Duration) -> Result<LabLock> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match self.lock(lab) {
                Ok(lock) => return Ok(lock),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    /// Take the lab's lock, or say who holds it.
    pub fn lock(&self, lab: &str) -> Result<LabLock> {
        self.ensure()?;
        let path = self.lock_path(lab);
        loop {
            let file = files::open(&path, How::ReadWrite).with_context(|| format!("opening {}", path.display()))?;
            // flock(2) by hand rather than nix's `Flock`: that one unlocks on
            // drop, and behind the boundary the descriptor shares its lock
            // with root's side (see `share`), which must keep holding it
            // until it has swept the lab's ids. Closing the last descriptor
            // of the lock is what releases it.
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let holder = files::read_to_string(&path).unwrap_or_default();
                    let holder = holder.trim();
                    bail!(
                        "lab {lab} is busy: another nsw (pid {}) is working on it",
                        if holder.is_empty() { "unknown" } else { holder }
                    );
                }
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
            // The holder before us may have removed the file after we opened
            // it: only a lock on the file still at the path counts.
            let ours = file.metadata()?.ino();
            match files::metadata(&path) {
                Ok(meta) if meta.ino == ours => {}
                _ => continue,
            }
            // At offset 0 whatever the shared description's offset is.
            file.set_len(0)?;
            std::os::unix::fs::FileExt::write_all_at(&file, std::process::id().to_string().as_bytes(), 0)?;
            return Ok(LabLock { file, path });
        }
    }

    /// Start a new journal for a lab. Fails if one exists.
    pub fn create_journal(&self, _lock: &LabLock, info: LabInfo) -> Result<Journal> {
        self.ensure()?;
        let path = self.journal_path(&info.name);
        if !crate::access::inside() {
            // Built on the privileged path: a record of a boundary left by
            // a crash of an earlier run of the name is not this lab's.
            let _ = fs::remove_file(self.boundary_path(&info.name));
        }
        let file = files::open(&path, How::CreateNew).with_context(|| format!("creating {}", path.display()))?;
        let record = LabRecord::new(info.clone());
        let mut journal = Journal { file, path, next_id: 0, record, lines: 0, bytes: 0 };
        journal.append(Entry::Lab(info))?;
        journal.append(Entry::State { state: LabState::Building })?;
        Ok(journal)
    }

    /// Open an existing lab's journal to add to it (`down` marks its
    /// progress); `None` if the lab has none.
    pub fn open_journal(&self, _lock: &LabLock, lab: &str) -> Result<Option<Journal>> {
        let Some(record) = self.read(lab)? else { return Ok(None) };
        let path = self.journal_path(lab);
        let mut file = files::open(&path, How::ReadAppend).with_context(|| format!("opening {}", path.display()))?;
        // After a crash mid-write the last line may lack its newline: start
        // a fresh line rather than glue the next entry to the torn one.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        let next_id = record.last_id().map_or(0, |id| id.saturating_add(1));
        let bytes = file.metadata()?.len();
        Ok(Some(Journal { file, path, next_id, record, lines: 0, bytes }))
    }

    /// Read a lab's journal; `None` if the lab has none.
    pub fn read(&self, lab: &str) -> Result<Option<LabRecord>> {
        let path = self.journal_path(lab);
        let file = match files::open(&path, How::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut entries = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            match serde_json::from_str::<Entry>(&line) {
                Ok(entry) => entries.push(entry),
                // A line cut short by a crash mid-write: nsw writes a line
                // before it acts, so what it would have said never reached
                // the kernel. Skip it.
                Err(e) => tracing::warn!("{}: skipping a torn line ({e})", path.display()),
            }
        }
        if entries.is_empty() {
            // Killed between making its journal and writing the first line:
            // it recorded nothing, so it built nothing (nsw writes before it
            // acts). A record of nothing: `ls` says broken, `down` removes
            // the file and frees the name.
            let info = LabInfo {
                name: lab.to_string(),
                mode: crate::policy::Mode::Contained,
                grants: Vec::new(),
                machine_netns: 0,
                pid: 0,
                script: "(nothing recorded)".into(),
                started_unix: 0,
                part_of: None,
            };
            return Ok(Some(LabRecord::new(info)));
        }
        let record = LabRecord::from_entries(entries).with_context(|| format!("reading {}", path.display()))?;
        // A journal is the lab's whose file it is: one written from behind
        // the privilege boundary may say otherwise.
        if record.info.name != lab {
            bail!("{} names lab {:?}, not {lab}: not a journal nsw wrote", path.display(), record.info.name);
        }
        Ok(Some(record))
    }

    /// Remove a lab's journal (the lab is gone), keeping the lock; and the
    /// output its programs left (`<lab>.d`).
    pub fn remove_journal(&self, _lock: &LabLock, lab: &str) -> Result<()> {
        let outputs = crate::layout::outputs(&self.path, lab);
        match files::remove_dir_all(&outputs) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).with_context(|| format!("removing {}", outputs.display())),
            _ => {}
        }
        let path = self.journal_path(lab);
        match files::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        // Only once the journal is gone (behind the boundary the broker
        // removes it with the journal).
        if !crate::access::inside() {
            let _ = fs::remove_file(self.boundary_path(lab));
        }
        Ok(())
    }

    /// Remove a lab's journal and lock: nothing of the lab is left.
    pub fn remove(&self, lock: LabLock, lab: &str) -> Result<()> {
        self.remove_journal(&lock, lab)?;
        lock.release_and_remove();
        Ok(())
    }

    /// Forget a journal (the lab is gone) and give back its lock.
    pub fn close(&self, journal: Journal, lock: LabLock) -> Result<()> {
        let lab = journal.record().info.name.clone();
        drop(journal);
        self.remove(lock, &lab)
    }
}

/// Root's record of the ids reserved for a lab behind the boundary
/// (`LAB.ids`): the first of them and, while a run is responsible for
/// them, its broker (pid and start time). A record without a broker
/// belongs to the lab's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: u32,
    pub reserver: Option<(u32, u64)>,
}

impl IdRange {
    pub fn parse(text: &str) -> Option<IdRange> {
        let mut words = text.split_whitespace().map(str::parse::<u64>);
        let first = u32::try_from(words.next()?.ok()?).ok()?;
        let reserver = match (words.next(), words.next()) {
            (Some(Ok(pid)), Some(Ok(since))) => Some((u32::try_from(pid).ok()?, since)),
            _ => None,
        };
        Some(IdRange { first, reserver })
    }

    pub fn line(&self) -> String {
        match self.reserver {
            Some((pid, since)) => format!("{} {pid} {since}\n", self.first),
            None => format!("{}\n", self.first),
        }
    }
}

/// The exclusive right to build or tear down one lab.
#[derive(Debug)]
pub struct LabLock {
    /// Locked with flock(2); the lock lasts while a descriptor of it is open.
    file: File,
    path: PathBuf,
}

impl LabLock {
    /// Another descriptor of this very lock (the same open file
    /// description, so the same lock): root's side of the boundary holds
    /// the lab's lock from before the split and hands this to the lab's
    /// side, whose own taking of the lock then succeeds on it.
    pub fn share(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// Remove the lock file while still holding the lock, so nobody is left
    /// holding a lock on a file that is no longer at the path.
    /// Only the file this lock is on: another holder's, made after this
    /// one was removed, stays. Behind the boundary only root removes it,
    /// after sweeping the lab's ids under this very lock (see
    /// `LabLock::share`): removed here, root's lock would be on a file no
    /// other run finds.
    pub fn release_and_remove(self) {
        let ours = self.file.metadata().map(|m| m.ino()).ok();
        if !crate::access::inside() && ours.is_some() && files::metadata(&self.path).ok().map(|m| m.ino) == ours {
            let _ = files::remove_file(&self.path);
        }
        drop(self.file);
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Mode, NetnsRef, Object};

    fn info(name: &str) -> LabInfo {
        LabInfo {
            name: name.into(),
            mode: Mode::Contained,
            grants: vec![],
            machine_netns: 1,
            pid: 1,
            script: "x.wasm".into(),
            started_unix: 0,
            part_of: None,
        }
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nsw-journal-test-{}-{}", std::process::id(), rand_suffix()));
        dir
    }

    #[test]
    fn a_journal_that_names_another_lab_is_refused() {
        let dir = StateDir::at(tempdir());
        let lock = dir.lock("lab7").unwrap();
        let journal = dir.create_journal(&lock, info("lab7")).unwrap();
        drop(journal);
        // What a lab's side behind the boundary could write over its own.
        let line = serde_json::to_string(&Entry::Lab(info("lab8"))).unwrap();
        fs::write(dir.journal_path("lab7"), format!("{line}\n")).unwrap();
        let err = dir.read("lab7").unwrap_err();
        assert!(format!("{err:#}").contains("names lab \"lab8\""), "{err:#}");
        dir.remove(lock, "lab7").unwrap();
        fs::remove_dir_all(dir.path).unwrap();
    }

    fn rand_suffix() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
    }

    #[test]
    fn journal_round_trip() {
        let dir = StateDir::at(tempdir());
        let lock = dir.lock("lab1").unwrap();
        let mut j = dir.create_journal(&lock, info("lab1")).unwrap();
        let ns = j.record_intent(Object::Netns { name: "lab1-a".into(), node: "a".into() }).unwrap();
        j.append(Entry::Created { id: ns, ident: Some(7), since: None }).unwrap();
        let link = j
            .record_intent(Object::Link { netns: NetnsRef::Machine, name: "v0".into(), kind: crate::journal::LinkKind::Veth, peer: None })
            .unwrap();
        j.append(Entry::Created { id: link, ident: Some(3), since: None }).unwrap();
        j.append(Entry::Moved { id: link, netns: NetnsRef::Named("lab1-a".into()), ident: Some(4) }).unwrap();
        let gone = j.record_intent(Object::Netns { name: "lab1-b".into(), node: "b".into() }).unwrap();
        j.append(Entry::Failed { id: gone }).unwrap();
        j.record_intent(Object::Netns { name: "lab1-c".into(), node: "c".into() }).unwrap();

        let rec = dir.read("lab1").unwrap().unwrap();
        assert_eq!(rec.state, LabState::Building);
        assert_eq!(rec.objects.len(), 3);
        assert_eq!(rec.objects[1].object.netns(), NetnsRef::Named("lab1-a".into()));
        assert!(rec.objects[0].confirmed && !rec.objects[2].confirmed);
        assert_eq!((rec.objects[0].ident, rec.objects[1].ident, rec.objects[2].ident), (Some(7), Some(4), None));
        assert_eq!(dir.labs().unwrap(), vec!["lab1".to_string()]);

        // The journal in memory says what the one on disk says.
        assert_eq!(j.record().objects, rec.objects);
        // A second journal for the same lab is refused.
        assert!(dir.create_journal(&lock, info("lab1")).is_err());
        dir.remove(lock, "lab1").unwrap();
        assert!(dir.read("lab1").unwrap().is_none());
        assert!(dir.labs().unwrap().is_empty());
        fs::remove_dir_all(dir.path).unwrap();
    }

    #[test]
    fn a_reopened_journal_goes_on_after_the_last_id() {
        let dir = StateDir::at(tempdir());
        let lock = dir.lock("lab4").unwrap();
        let mut j = dir.create_journal(&lock, info("lab4")).unwrap();
        j.record_intent(Object::Netns { name: "lab4-a".into(), node: "a".into() }).unwrap();
        drop(j);
        let mut again = dir.open_journal(&lock, "lab4").unwrap().unwrap();
        let id = again.record_intent(Object::Netns { name: "lab4-b".into(), node: "b".into() }).unwrap();
        assert_eq!(id, 1);
        assert_eq!(dir.read("lab4").unwrap().unwrap().objects.len(), 2);
        dir.remove(lock, "lab4").unwrap();
        fs::remove_dir_all(dir.path).unwrap();
    }

    #[test]
    fn torn_last_line_is_ignored() {
        let dir = StateDir::at(tempdir());
        let lock = dir.lock("lab2").unwrap();
        let mut j = dir.create_journal(&lock, info("lab2")).unwrap();
        j.record_intent(Object::Netns { name: "lab2-a".into(), node: "a".into() }).unwrap();
        j.file.write_all(b"{\"op\":\"create\",\"id\":1,\"obj").unwrap();
        let rec = dir.read("lab2").unwrap().unwrap();
        assert_eq!(rec.objects.len(), 1);
        // Teardown appends to it: the torn line stays on a line of its own.
        let mut again = dir.open_journal(&lock, "lab2").unwrap().unwrap();
        again.append(Entry::State { state: LabState::TearingDown }).unwrap();
        let rec = dir.read("lab2").unwrap().unwrap();
        assert_eq!((rec.objects.len(), rec.state), (1, LabState::TearingDown));
        dir.remove(lock, "lab2").unwrap();
        fs::remove_dir_all(dir.path).unwrap();
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = StateDir::at(tempdir());
        assert!(!dir.lock_held("lab3"));
        let first = dir.lock("lab3").unwrap();
        assert!(dir.lock_held("lab3"));
        let err = dir.lock("lab3").unwrap_err().to_string();
        assert!(err.contains("busy") && err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        let again = dir.lock("lab3").unwrap();
        dir.remove(again, "lab3").unwrap();
        fs::remove_dir_all(dir.path).unwrap();
    }
}
