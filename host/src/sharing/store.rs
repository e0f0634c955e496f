//! Pulled lab scripts, kept by digest beside the compiled cache (see
//! [`crate::layout::pulled`]): a script named by digest runs again without
//! the registry. Whatever is read back is hashed again first: a file that
//! no longer matches its digest is removed, never used. The store is the
//! user's own (root's is root's), made mode 0700; it holds at most
//! `--max-cache` bytes, the least recently used going first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::reference::check_digest;
use crate::layout;

pub struct Store {
    cache: PathBuf,
}

/// `sha256:HEX` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", super::signature::hex(&Sha256::digest(bytes)))
}

impl Store {
    pub fn open() -> Store {
        Store { cache: crate::places::own_cache() }
    }

    /// Where the manifest or component of `digest` (checked) is kept.
    pub fn path(&self, manifest: bool, digest: &str) -> PathBuf {
        layout::pulled_file(&self.cache, manifest, digest)
    }

    /// The manifest or component of `digest`, if kept and still whole.
    pub fn get(&self, manifest: bool, digest: &str) -> Option<(Vec<u8>, PathBuf)> {
        // Only a checked digest ever becomes a path.
        check_digest(digest).ok()?;
        let path = layout::pulled_file(&self.cache, manifest, digest);
        let bytes = std::fs::read(&path).ok()?;
        if digest_of(&bytes) != digest {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Used now: the last to go when the store is trimmed.
        let _ = std::fs::File::open(&path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Some((bytes, path))
    }

    /// Keep `bytes` (already checked against `digest`); its path.
    pub fn put(&self, manifest: bool, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        check_digest(digest)?;
        let path = layout::pulled_file(&self.cache, manifest, digest);
        let dir = path.parent().context("store path has no directory")?;
        make_private_dirs(dir)?;
        replace(&path, bytes, 0o600)?;
        Ok(path)
    }

    /// The digest a tag named when this user last ran it.
    pub fn tag(&self, tag: &str) -> Option<String> {
        self.tags().remove(tag)
    }

    /// Remember that `tag` names `digest` now. Under a lock of the store's:
    /// two runs at once each keep their record.
    pub fn set_tag(&self, tag: &str, digest: &str) -> Result<()> {
        use std::os::fd::AsRawFd;
        make_private_dirs(layout::pulled(&self.cache).as_path())?;
        let lock_path = layout::pulled_tags_lock(&self.cache);
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
        // SAFETY: flock on a descriptor this function owns; released when
        // `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot lock {}", lock_path.display()));
        }
        let mut tags = self.tags();
        tags.insert(tag.to_string(), digest.to_string());
        replace(&layout::pulled_tags(&self.cache), &serde_json::to_vec_pretty(&tags)?, 0o600)
    }

    /// The tags seen; none if the file is missing or unreadable (a broken
    /// record is replaced at the next run, never trusted).
    fn tags(&self) -> BTreeMap<String, String> {
        std::fs::read(layout::pulled_tags(&self.cache)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Remove the least recently used files until the store holds at most
    /// `limit` bytes; never the files of `keep` (the script about to run).
    pub fn trim(&self, limit: u64, keep: &[&std::path::Path]) {
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
        for part in ["manifests", "blobs"] {
            let Ok(dir) = std::fs::read_dir(layout::pulled(&self.cache).join(part)) else { continue };
            for entry in dir.flatten() {
                if let Ok(meta) = entry.metadata() {
                    files.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), entry.path()));
                }
            }
        }
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= limit {
                break;
            }
            if keep.contains(&path.as_path()) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// Replace `path` whole with `bytes`: written beside it (a new file, never
/// through a link someone left there), then renamed over it.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("nsw-tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// `dir` and its parents up to the cache, the store's own made mode 0700.
fn make_private_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("cannot create {}", dir.display()))
}
