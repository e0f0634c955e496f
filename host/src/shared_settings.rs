//! Settings of the machine that labs share. IPv4 forwarding is one switch
//! for the whole machine: two host-net labs may both need it on, and so
//! may Docker or anything else. So a lab never simply sets it and puts it
//! back: it takes a hold on it here, in a registry beside the journals
//! (one per machine namespace, under a lock), and the last lab to let go
//! puts it back, only if nobody else changed it meanwhile.
//!
//! Turning `ip_forward` on or off also makes the kernel rewrite other
//! settings (`conf.*.forwarding`, `conf.all.accept_redirects`): putting
//! `ip_forward` back alone does not restore the machine. So the first hold
//! notes every setting under `net/ipv4/conf` and `net/ipv6/conf` before and
//! after the switch, and the last release puts back each one the switch
//! changed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use async_trait::async_trait;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// The settings a forwarding switch rewrites live under these.
pub const CONF_ROOTS: &[&str] = &["net/ipv4/conf", "net/ipv6/conf"];

/// Reading and writing the machine's sysctls, by key (`net/ipv4/ip_forward`).
#[async_trait]
pub trait Sysctls: Send {
    async fn read(&mut self, key: &str) -> io::Result<String>;
    async fn write(&mut self, key: &str, value: &str) -> io::Result<()>;
    /// Every readable setting under `roots`, by key.
    async fn tree(&mut self, roots: &[&str]) -> io::Result<BTreeMap<String, String>>;
}

/// One shared setting and the labs that hold it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Hold {
    /// Its value before the first lab took hold of it.
    original: String,
    /// The value the labs need.
    set: String,
    holders: Vec<String>,
    /// Every setting under [`CONF_ROOTS`] before the first lab's switch.
    before: BTreeMap<String, String>,
    /// The settings that switch rewrote.
    changed: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    holds: BTreeMap<String, Hold>,
}

/// What releasing a hold did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// This lab was the last: the setting (and what the switch rewrote)
    /// is as it was before the first lab.
    Restored,
    /// Other labs still hold it: it stays.
    StillHeld(usize),
    /// Nothing to put back: the lab held nothing, or it was never changed.
    Nothing,
    /// Someone else changed it since: left as they set it.
    ChangedByOthers(String),
}

/// The registry of one machine namespace.
pub struct SharedSettings {
    dir: PathBuf,
    machine: u64,
}

/// The registry's lock, held. Let go with no registry on disk (released to
/// the end, never saved, or a change that failed first), it takes its lock
/// file and the directory with it: nothing of the registry stays behind.
struct RegistryLock<'a> {
    settings: &'a SharedSettings,
    _locked: Flock<File>,
}

impl Drop for RegistryLock<'_> {
    fn drop(&mut self) {
        if !self.settings.path().exists() {
            // Still locked: whoever waits for this file finds it gone from
            // the path and takes a new one.
            let _ = fs::remove_file(self.settings.lock_path());
            // The directory, unless another machine's registry is in it.
            let _ = fs::remove_dir(&self.settings.dir);
        }
    }
}

impl SharedSettings {
    /// The registry of the machine namespace of inode `machine`, beside
    /// the journals in `state_dir`.
    pub fn new(state_dir: &std::path::Path, machine: u64) -> SharedSettings {
        SharedSettings { dir: crate::layout::shared_settings(state_dir), machine }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.machine))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.machine))
    }

    /// Hold the registry's lock for one change. The lock file goes when
    /// the lock is let go with no registry left (see [`RegistryLock`]),
    /// whatever path the change took: a lock taken on a file that is no
    /// longer at the path does not count, so try again.
    fn lock(&self) -> Result<RegistryLock<'_>> {
        use std::os::unix::fs::MetadataExt;
        let path = self.lock_path();
        loop {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
            let file = match OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path) {
                // The last hold elsewhere just took the directory away.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other.with_context(|| format!("opening {}", path.display()))?,
            };
            let locked = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e).with_context(|| format!("locking {}", path.display()))?;
            let ours = locked.metadata()?.ino();
            if fs::metadata(&path).is_ok_and(|m| m.ino() == ours) {
                return Ok(RegistryLock { settings: self, _locked: locked });
            }
        }
    }

    fn load(&self) -> Result<Registry> {
        match fs::read_to_string(self.path()) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", self.path().display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path().display())),
        }
    }

    /// Write the registry (called with the lock held); with no hold left,
    /// remove it (and the lock file goes with the lock).
    fn save(&self, registry: &Registry) -> Result<()> {
        if registry.holds.is_empty() {
            return match fs::remove_file(self.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", self.path().display())),
                _ => Ok(()),
            };
        }
        // Write, then rename: a crash never leaves half a registry.
        let tmp = self.path().with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(registry)?).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, self.path()).with_context(|| format!("writing {}", self.path().display()))
    }

    /// Lab `lab` needs `key` at `value`: take a hold on it and set it.
    pub async fn acquire(&self, lab: &str, key: &str, value: &str, sysctls: &mut dyn Sysctls) -> Result<()> {
        let _lock = self.lock()?;
        let mut registry = self.load()?;
        if let Some(hold) = registry.holds.get_mut(key) {
            if !hold.holders.iter().any(|h| h == lab) {
                hold.holders.push(lab.to_string());
            }
            let set = hold.set.clone();
            self.save(&registry)?;
            if sysctls.read(key).await? != set {
                sysctls.write(key, &set).await?;
            }
            return Ok(());
        }
        let original = sysctls.read(key).await?;
        let before = sysctls.tree(CONF_ROOTS).await?;
        let hold = Hold { original: original.clone(), set: value.to_string(), holders: vec![lab.to_string()], before: before.clone(), changed: Vec::new() };
        // Recorded before anything changes: a crash leaves a hold whose
        // release finds the setting as it was.
        registry.holds.insert(key.to_string(), hold);
        self.save(&registry)?;
        if original != value {
            sysctls.write(key, value).await?;
            let after = sysctls.tree(CONF_ROOTS).await?;
            let changed = before.into_iter().filter(|(k, v)| after.get(k).is_some_and(|now| now != v)).map(|(k, _)| k).collect();
            registry.holds.get_mut(key).expect("inserted above").changed = changed;
            self.save(&registry)?;
        }
        Ok(())
    }

    /// Lab `lab` lets go of `key`; the last one puts the machine back.
    pub async fn release(&self, lab: &str, key: &str, sysctls: &mut dyn Sysctls) -> Result<Released> {
        let _lock = self.lock()?;
        let mut registry = self.load()?;
        let Some(hold) = registry.holds.get_mut(key) else { return Ok(Released::Nothing) };
        let was_holder = hold.holders.iter().any(|h| h == lab);
        hold.holders.retain(|h| h != lab);
        if !hold.holders.is_empty() {
            let others = hold.holders.len();
            self.save(&registry)?;
            return Ok(if was_holder { Released::StillHeld(others) } else { Released::Nothing });
        }
        let hold = registry.holds.remove(key).expect("found above");
        let now = sysctls.read(key).await?;
        let outcome = if now == hold.original {
            Released::Nothing
        } else if now != hold.set {
            Released::ChangedByOthers(format!("{key} was changed to {now} since the labs set it to {}", hold.set))
        } else {
            // Switching back rewrites settings too (every interface's
            // forwarding goes to 0, even one that had it on before): put
            // back, as they were before the first lab, the settings either
            // switch rewrote, and no other (someone may have changed
            // those meanwhile).
            let ahead = sysctls.tree(CONF_ROOTS).await?;
            sysctls.write(key, &hold.original).await?;
            let current = sysctls.tree(CONF_ROOTS).await?;
            let rewritten = current.iter().filter(|(k, v)| ahead.get(*k) != Some(*v)).map(|(k, _)| k);
            let touched: std::collections::BTreeSet<&String> = hold.changed.iter().chain(rewritten).collect();
            for k in touched {
                // An interface may have gone meanwhile: skip it.
                if let (Some(was), Some(now)) = (hold.before.get(k), current.get(k)) {
                    if was != now {
                        sysctls.write(k, was).await?;
                    }
                }
            }
            Released::Restored
        };
        self.save(&registry)?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine's sysctls in memory, with the kernel's side effect of
    /// `ip_forward` on `conf.*.forwarding` and `conf.all.accept_redirects`.
    #[derive(Default)]
    struct Fake(BTreeMap<String, String>);

    #[async_trait]
    impl Sysctls for Fake {
        async fn read(&mut self, key: &str) -> io::Result<String> {
            Ok(self.0.get(key).cloned().unwrap_or_default())
        }
        async fn write(&mut self, key: &str, value: &str) -> io::Result<()> {
            self.0.insert(key.to_string(), value.to_string());
            if key == "net/ipv4/ip_forward" {
                let on = value == "1";
                for dev in ["all", "default", "eth0"] {
                    self.0.insert(format!("net/ipv4/conf/{dev}/forwarding"), value.to_string());
                }
                self.0.insert("net/ipv4/conf/all/accept_redirects".into(), if on { "0" } else { "1" }.into());
            }
            Ok(())
        }
        async fn tree(&mut self, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
            Ok(self.0.iter().filter(|(k, _)| roots.iter().any(|r| k.starts_with(r))).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
    }

    fn machine() -> Fake {
        let mut m = Fake::default();
        for (k, v) in [
            ("net/ipv4/ip_forward", "0"),
            ("net/ipv4/conf/all/forwarding", "0"),
            ("net/ipv4/conf/default/forwarding", "0"),
            ("net/ipv4/conf/eth0/forwarding", "1"),
            ("net/ipv4/conf/all/accept_redirects", "0"),
            ("net/ipv4/conf/eth0/rp_filter", "2"),
        ] {
            m.0.insert(k.into(), v.into());
        }
        m
    }

    fn registry() -> (SharedSettings, PathBuf) {
        let dir = std::env::temp_dir().join(format!("nsw-shared-test-{}-{:?}", std::process::id(), std::thread::current().id()));
        (SharedSettings::new(&dir, 42), dir)
    }

    #[test]
    fn releasing_what_nobody_holds_leaves_nothing_behind() {
        // A lab killed after journaling its intent, before taking the hold:
        // its `down` releases a hold that was never taken.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (shared, dir) = registry();
            let mut m = machine();
            assert_eq!(shared.release("a", "net/ipv4/ip_forward", &mut m).await.unwrap(), Released::Nothing);
            assert!(!shared.lock_path().exists() && !shared.dir.exists(), "the registry's lock or directory stayed");
            let _ = fs::remove_dir_all(dir);
        });
    }

    #[test]
    fn the_last_lab_puts_everything_back() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (shared, dir) = registry();
            let mut m = machine();
            let before = m.0.clone();
            shared.acquire("a", "net/ipv4/ip_forward", "1", &mut m).await.unwrap();
            shared.acquire("b", "net/ipv4/ip_forward", "1", &mut m).await.unwrap();
            assert_eq!(m.0["net/ipv4/ip_forward"], "1");
            assert_eq!(shared.release("a", "net/ipv4/ip_forward", &mut m).await.unwrap(), Released::StillHeld(1));
            assert_eq!(m.0["net/ipv4/ip_forward"], "1", "a's down cut b off");
            assert_eq!(shared.release("b", "net/ipv4/ip_forward", &mut m).await.unwrap(), Released::Restored);
            assert_eq!(m.0, before, "the machine is not as it was");
            assert!(!shared.path().exists() && !shared.lock_path().exists());
            let _ = fs::remove_dir_all(dir);
        });
    }

    #[test]
    fn a_change_by_someone_else_is_left_alone() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (shared, dir) = registry();
            let mut m = machine();
            shared.acquire("a", "net/ipv4/ip_forward", "1", &mut m).await.unwrap();
            m.write("net/ipv4/ip_forward", "2").await.unwrap();
            let released = shared.release("a", "net/ipv4/ip_forward", &mut m).await.unwrap();
            assert!(matches!(released, Released::ChangedByOthers(_)), "{released:?}");
            assert_eq!(m.0["net/ipv4/ip_forward"], "2");
            assert_eq!(shared.release("a", "net/ipv4/ip_forward", &mut m).await.unwrap(), Released::Nothing);
            let _ = fs::remove_dir_all(dir);
        });
    }
}
