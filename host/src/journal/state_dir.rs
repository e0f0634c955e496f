//! The directory of journals and locks (`/run/nsw`), one of each per lab.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

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
    /// it did (see [`crate::boundary`]); never read from behind it.
    pub fn lab_ids(&self, lab: &str) -> Option<u32> {
        if crate::access::inside() {
            return None;
        }
        fs::read_to_string(crate::layout::id_range(&self.path, lab)).ok()?.split_whitespace().next()?.parse().ok()
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
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = files::read_to_string(&path).unwrap_or_default();
                    let holder = holder.trim();
                    bail!(
                        "lab {lab} is busy: another nsw (pid {}) is working on it",
                        if holder.is_empty() { "unknown" } else { holder }
                    );
                }
                Err((_, e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
            };
            // The holder before us may have removed the file after we opened
            // it: only a lock on the file still at the path counts.
            let ours = file.metadata()?.ino();
            match files::metadata(&path) {
                Ok(meta) if meta.ino == ours => {}
                _ => continue,
            }
            let mut file = file;
            file.set_len(0)?;
            write!(*file, "{}", std::process::id())?;
            return Ok(LabLock { file, path });
        }
    }

    /// Start a new journal for a lab. Fails if one exists.
    pub fn create_journal(&self, _lock: &LabLock, info: LabInfo) -> Result<Journal> {
        self.ensure()?;
        let path = self.journal_path(&info.name);
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
            let _ = fs::remove_file(crate::layout::id_range(&self.path, lab));
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

/// The exclusive right to build or tear down one lab.
#[derive(Debug)]
pub struct LabLock {
    file: Flock<File>,
    path: PathBuf,
}

impl LabLock {
    /// Remove the lock file while still holding the lock, so nobody is left
    /// holding a lock on a file that is no longer at the path.
    pub fn release_and_remove(self) {
        let _ = files::remove_file(&self.path);
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
