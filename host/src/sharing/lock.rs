//! nsw.lock: the lab scripts a project runs by reference, each pinned to
//! the digest it resolved to the first time. Found in the current
//! directory or the nearest parent that has one (`nsw new` makes one); a
//! reference it pins runs that digest, whatever its tag names now;
//! `--locked` refuses a reference it does not pin and never changes it.
//! A script's services travel inside the script, so its digest pins them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::reference::{ScriptRef, check_digest};

pub const FILE: &str = "nsw.lock";

const HEADER: &str = "# nsw.lock: the lab scripts this project runs by reference, pinned by\n# digest (written by nsw; commit it; `--locked` runs only what it pins).\n";

#[derive(Serialize, Deserialize, Default)]
struct LockFile {
    #[serde(default, rename = "script")]
    scripts: Vec<Pinned>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Pinned {
    /// The reference as written, without a digest.
    reference: String,
    digest: String,
}

pub struct Lock {
    pub path: PathBuf,
    file: LockFile,
}

impl Lock {
    /// The nearest nsw.lock, from the current directory up.
    pub fn find() -> Result<Option<Lock>> {
        let Ok(mut dir) = std::env::current_dir() else { return Ok(None) };
        loop {
            let path = dir.join(FILE);
            if path.is_file() {
                check_owner(&path)?;
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let file: LockFile = toml::from_str(&text).with_context(|| format!("{} is not an nsw.lock", path.display()))?;
                for pinned in &file.scripts {
                    ScriptRef::parse(&pinned.reference).with_context(|| format!("in {}", path.display()))?;
                    check_digest(&pinned.digest).with_context(|| format!("in {}: {}", path.display(), pinned.reference))?;
                }
                return Ok(Some(Lock { path, file }));
            }
            if !dir.pop() {
                return Ok(None);
            }
        }
    }

    /// The digest `reference` (as written, without a digest) is pinned to.
    pub fn pinned(&self, reference: &str) -> Option<&str> {
        self.file.scripts.iter().find(|p| p.reference == reference).map(|p| p.digest.as_str())
    }

    /// Pin `reference` to `digest` and write the file.
    pub fn pin(&mut self, reference: &str, digest: &str) -> Result<()> {
        match self.file.scripts.iter_mut().find(|p| p.reference == reference) {
            Some(p) if p.digest == digest => return Ok(()),
            Some(p) => p.digest = digest.to_string(),
            None => self.file.scripts.push(Pinned { reference: reference.to_string(), digest: digest.to_string() }),
        }
        write(&self.path, &self.file)
    }
}

/// An empty nsw.lock in `dir` (for `nsw new`).
pub fn create(dir: &Path) -> Result<()> {
    write(&dir.join(FILE), &LockFile::default())
}

/// A lock decides what runs: one that someone else could have put or
/// changed (another user's, or writable by others) is refused, not used.
fn check_owner(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() || (meta.uid() != me && meta.uid() != 0) || meta.mode() & 0o022 != 0 {
        bail!("{} is not yours (or others may write it): nsw uses only an nsw.lock of yours that only you can write", path.display());
    }
    Ok(())
}

fn write(path: &Path, file: &LockFile) -> Result<()> {
    let body = toml::to_string(file).context("cannot write nsw.lock")?;
    super::store::replace(path, format!("{HEADER}\n{body}").as_bytes(), 0o644)
}
