//! The per-lab journal under `/run/nsw/`: a write-ahead record of every
//! kernel object a lab creates. `nsw down`, `nsw ls` and rollback all read
//! it; nothing else tells nsw what a lab owns.
//!
//! One JSON object per line, appended with a single `write` each. An object
//! is recorded before it is created, so after a crash the journal covers
//! everything that may exist. No fsync: a written line is in the kernel's
//! page cache the moment `write` returns, so it survives the death of the
//! nsw process (kill -9 included); only a crash of the whole machine could
//! lose it, and that takes every namespace, link and rule with it (on the
//! next boot, `down` finds them already gone).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Where the journals live.
pub const STATE_DIR: &str = "/run/nsw";

/// How the lab's host is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The lab has a namespace of its own, named after it, as its host.
    Contained,
    /// The lab's host is the machine's namespace (the `host-net` grant).
    HostNet,
}

/// A network namespace as the journal names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetnsRef {
    /// The namespace nsw ran in (host-net labs only).
    Machine,
    /// A namespace the lab created, by its name under /run/netns.
    Named(String),
}

impl std::fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsRef::Machine => f.write_str("the machine's namespace"),
            NetnsRef::Named(name) => write!(f, "netns {name}"),
        }
    }
}

/// A kernel object a lab owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Object {
    Netns { name: String, node: String },
    Link { netns: NetnsRef, name: String, kind: String },
    Address { netns: NetnsRef, link: String, cidr: String },
    Route { netns: NetnsRef, destination: String, via: String },
    NftTable { netns: NetnsRef, family: String, name: String },
    Sysctl { netns: NetnsRef, key: String, old: String },
}

impl Object {
    /// The namespace the object lives in (a netns lives in itself).
    pub fn netns(&self) -> NetnsRef {
        match self {
            Object::Netns { name, .. } => NetnsRef::Named(name.clone()),
            Object::Link { netns, .. }
            | Object::Address { netns, .. }
            | Object::Route { netns, .. }
            | Object::NftTable { netns, .. }
            | Object::Sysctl { netns, .. } => netns.clone(),
        }
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Netns { name, .. } => write!(f, "netns {name}"),
            Object::Link { netns, name, kind } => write!(f, "{kind} {name} in {netns}"),
            Object::Address { netns, link, cidr } => write!(f, "address {cidr} on {link} in {netns}"),
            Object::Route { netns, destination, via } => write!(f, "route {destination} via {via} in {netns}"),
            Object::NftTable { netns, family, name } => write!(f, "nftables table {family} {name} in {netns}"),
            Object::Sysctl { netns, key, old } => write!(f, "sysctl {key} (was {old}) in {netns}"),
        }
    }
}

/// Where a lab is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabState {
    Building,
    Up,
    Failed,
    TearingDown,
}

/// The first line of a journal: what the lab is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabInfo {
    pub name: String,
    pub mode: Mode,
    pub grants: Vec<String>,
    /// Inode of the namespace nsw ran in: `down` of a host-net lab must run
    /// there too.
    pub machine_netns: u64,
    pub pid: u32,
    pub script: String,
    pub started_unix: u64,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Entry {
    Lab(LabInfo),
    /// Written before the object is created.
    Create { id: u32, object: Object },
    /// The object exists now. `ident` is its kernel identity where it has
    /// one (a namespace's inode, a link's index), so that `down` never
    /// removes a same-named object someone else put in its place.
    Created {
        id: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ident: Option<u64>,
    },
    /// Creating it failed: it does not exist.
    Failed { id: u32 },
    /// A link moved to another namespace, where it has index `ident`.
    Moved {
        id: u32,
        netns: NetnsRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ident: Option<u64>,
    },
    State { state: LabState },
}

/// The directory that holds every lab's journal and lock.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn system() -> StateDir {
        StateDir { path: PathBuf::from(STATE_DIR) }
    }

    pub fn at(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    pub fn journal_path(&self, lab: &str) -> PathBuf {
        self.path.join(format!("{lab}.journal"))
    }

    fn lock_path(&self, lab: &str) -> PathBuf {
        self.path.join(format!("{lab}.lock"))
    }

    fn ensure(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))
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
            if let Some(lab) = name.to_str().and_then(|n| n.strip_suffix(".journal").or_else(|| n.strip_suffix(".lock"))) {
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
        let Ok(meta) = fs::metadata(self.lock_path(lab)) else { return false };
        let Ok(locks) = fs::read_to_string("/proc/locks") else { return false };
        let inode = meta.ino().to_string();
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
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
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
            match fs::metadata(&path) {
                Ok(meta) if meta.ino() == ours => {}
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
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let kill_at = std::env::var(KILL_HOOK).ok().and_then(|v| v.parse().ok());
        let mut journal = Journal { file, path, next_id: 0, lines: 0, kill_at };
        journal.append(&Entry::Lab(info))?;
        journal.append(&Entry::State { state: LabState::Building })?;
        Ok(journal)
    }

    /// Open a lab's journal to add to it (teardown marks its progress).
    pub fn reopen_journal(&self, _lock: &LabLock, lab: &str) -> Result<Journal> {
        let path = self.journal_path(lab);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
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
        Ok(Journal { file, path, next_id: u32::MAX, lines: 0, kill_at: None })
    }

    /// Read a lab's journal; `None` if the lab has none.
    pub fn read(&self, lab: &str) -> Result<Option<LabRecord>> {
        let path = self.journal_path(lab);
        let file = match File::open(&path) {
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
        LabRecord::from_entries(entries).map(Some).with_context(|| format!("reading {}", path.display()))
    }

    /// Remove a lab's journal (the lab is gone), keeping the lock.
    pub fn remove_journal(&self, _lock: &LabLock, lab: &str) -> Result<()> {
        let path = self.journal_path(lab);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// Remove a lab's journal and lock: nothing of the lab is left.
    pub fn remove(&self, lock: LabLock, lab: &str) -> Result<()> {
        self.remove_journal(&lock, lab)?;
        lock.release_and_remove();
        Ok(())
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
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Fault injection for the crash tests: `NSW_TEST_KILL_AT=K` makes nsw
/// SIGKILL itself just before it appends journal line K (counting from 0),
/// so a test can stop it at an exact point of a build, between recording an
/// object and creating it, or between creating it and confirming it.
pub const KILL_HOOK: &str = "NSW_TEST_KILL_AT";

/// An open journal that a building lab appends to.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    next_id: u32,
    lines: u64,
    kill_at: Option<u64>,
}

impl Journal {
    /// Record that `object` is about to be created; returns its id.
    pub fn intend(&mut self, object: Object) -> Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        self.append(&Entry::Create { id, object })?;
        Ok(id)
    }

    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        if self.kill_at == Some(self.lines) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        }
        self.lines += 1;
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        // One write per line: O_APPEND keeps lines whole.
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// An object of a lab and what the journal knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub id: u32,
    pub object: Object,
    /// `false` when nsw died between recording and creating it: it may or
    /// may not exist.
    pub confirmed: bool,
    /// Its kernel identity, once confirmed (see [`Entry::Created`]).
    pub ident: Option<u64>,
}

/// A lab as its journal describes it.
#[derive(Debug, Clone)]
pub struct LabRecord {
    pub info: LabInfo,
    pub state: LabState,
    /// Objects that exist or may exist, in creation order, links at their
    /// latest namespace.
    pub objects: Vec<Owned>,
}

impl LabRecord {
    pub fn from_entries(entries: Vec<Entry>) -> Result<LabRecord> {
        let mut entries = entries.into_iter();
        let Some(Entry::Lab(info)) = entries.next() else {
            bail!("the journal does not start with a lab record");
        };
        let mut state = LabState::Building;
        let mut objects: Vec<Owned> = Vec::new();
        for entry in entries {
            match entry {
                Entry::Lab(_) => bail!("a second lab record"),
                Entry::Create { id, object } => objects.push(Owned { id, object, confirmed: false, ident: None }),
                Entry::Created { id, ident } => {
                    if let Some(o) = objects.iter_mut().rev().find(|o| o.id == id) {
                        o.confirmed = true;
                        o.ident = ident;
                    }
                }
                Entry::Failed { id } => objects.retain(|o| o.id != id),
                Entry::Moved { id, netns: to, ident } => {
                    if let Some(owned) = objects.iter_mut().rev().find(|o| o.id == id) {
                        if let Object::Link { netns, .. } = &mut owned.object {
                            *netns = to;
                            owned.ident = ident;
                        }
                    }
                }
                Entry::State { state: s } => state = s,
            }
        }
        Ok(LabRecord { info, state, objects })
    }

    /// The namespaces the lab created, in creation order.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &str)> {
        self.objects.iter().filter_map(|o| match &o.object {
            Object::Netns { name, node } => Some((name.as_str(), node.as_str())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn rand_suffix() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
    }

    #[test]
    fn journal_round_trip() {
        let dir = StateDir::at(tempdir());
        let lock = dir.lock("lab1").unwrap();
        let mut j = dir.create_journal(&lock, info("lab1")).unwrap();
        let ns = j.intend(Object::Netns { name: "lab1-a".into(), node: "a".into() }).unwrap();
        j.append(&Entry::Created { id: ns, ident: Some(7) }).unwrap();
        let link = j
            .intend(Object::Link { netns: NetnsRef::Machine, name: "v0".into(), kind: "veth".into() })
            .unwrap();
        j.append(&Entry::Created { id: link, ident: Some(3) }).unwrap();
        j.append(&Entry::Moved { id: link, netns: NetnsRef::Named("lab1-a".into()), ident: Some(4) }).unwrap();
        let gone = j.intend(Object::Netns { name: "lab1-b".into(), node: "b".into() }).unwrap();
        j.append(&Entry::Failed { id: gone }).unwrap();
        j.intend(Object::Netns { name: "lab1-c".into(), node: "c".into() }).unwrap();

        let rec = dir.read("lab1").unwrap().unwrap();
        assert_eq!(rec.state, LabState::Building);
        assert_eq!(rec.objects.len(), 3);
        assert_eq!(rec.objects[1].object.netns(), NetnsRef::Named("lab1-a".into()));
        assert!(rec.objects[0].confirmed && !rec.objects[2].confirmed);
        assert_eq!((rec.objects[0].ident, rec.objects[1].ident, rec.objects[2].ident), (Some(7), Some(4), None));
        assert_eq!(dir.labs().unwrap(), vec!["lab1".to_string()]);

        // A second journal for the same lab is refused.
        assert!(dir.create_journal(&lock, info("lab1")).is_err());
        dir.remove(lock, "lab1").unwrap();
        assert!(dir.read("lab1").unwrap().is_none());
        assert!(dir.labs().unwrap().is_empty());
        fs::remove_dir_all(dir.path).unwrap();
    }

    #[test]
    fn torn_last_line_is_ignored() {
        let dir = StateDir::at(tempdir());
        let lock = dir.lock("lab2").unwrap();
        let mut j = dir.create_journal(&lock, info("lab2")).unwrap();
        j.intend(Object::Netns { name: "lab2-a".into(), node: "a".into() }).unwrap();
        j.file.write_all(b"{\"op\":\"create\",\"id\":1,\"obj").unwrap();
        let rec = dir.read("lab2").unwrap().unwrap();
        assert_eq!(rec.objects.len(), 1);
        // Teardown appends to it: the torn line stays on a line of its own.
        let mut again = dir.reopen_journal(&lock, "lab2").unwrap();
        again.append(&Entry::State { state: LabState::TearingDown }).unwrap();
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
