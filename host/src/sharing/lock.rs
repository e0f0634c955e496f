//! nsw.lock: the lab scripts a project runs by reference, each pinned to
//! the digest it resolved to the first time. Found in the current
//! directory or the nearest parent that has one (`nsw new` makes one); a
//! reference it pins runs that digest, whatever its tag names now;
//! `--locked` refuses a reference it does not pin and never changes it.
//! A script's services travel inside the script, so its digest pins them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

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
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let file = toml::from_str(&text).with_context(|| format!("{} is not an nsw.lock", path.display()))?;
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

fn write(path: &Path, file: &LockFile) -> Result<()> {
    let body = toml::to_string(file).context("cannot write nsw.lock")?;
    let tmp = path.with_extension(format!("lock.{}", std::process::id()));
    std::fs::write(&tmp, format!("{HEADER}\n{body}")).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
