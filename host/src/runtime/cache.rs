//! The compiled-component cache. Compiling a component takes from a tenth
//! of a second (Rust) to many seconds (Python, JavaScript); loading it
//! compiled takes milliseconds. Loading compiled code skips validation, so
//! whoever can write the cache can run code as root: the cache is used only
//! if its directory and files are owned by nsw's user and writable by no
//! one else.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::access::files;
use crate::access::protocol::How;


pub struct Cache {
    dir: PathBuf,
}

/// How big the cache may grow, and what one run may add to it
/// (`--max-cache`, `--max-cache-per-run`).
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    pub total_bytes: u64,
    pub run_bytes: u64,
}

static LIMITS: std::sync::OnceLock<CacheLimits> = std::sync::OnceLock::new();
/// What this run added to the cache so far.
static ADDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The cache's limits for this process, set once before the first load.
pub fn set_limits(limits: CacheLimits) {
    let _ = LIMITS.set(limits);
}

fn limits() -> CacheLimits {
    *LIMITS.get_or_init(|| CacheLimits { total_bytes: 1 << 30, run_bytes: 256 << 20 })
}

/// Feeds `Hash` output into SHA-256, for a key that is stable across runs
/// (std's `DefaultHasher` makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuse a path that someone other than us could have written.
fn check_owner(path: &Path, want_dir: bool) -> Result<()> {
    let meta = files::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
    // Behind the privilege boundary the broker (root) reads the cache for
    // us: root's it must be.
    let euid = if crate::access::inside() { 0 } else { nix::unistd::geteuid().as_raw() };
    if want_dir && !meta.is_dir || !want_dir && !meta.is_file {
        bail!("{} is not a plain {}", path.display(), if want_dir { "directory" } else { "file" });
    }
    if meta.uid != euid {
        bail!("{} is owned by uid {}, not by uid {euid}", path.display(), meta.uid);
    }
    if meta.mode & 0o022 != 0 {
        bail!("{} is writable by others (mode {:o})", path.display(), meta.mode & 0o7777);
    }
    Ok(())
}

impl Cache {
    /// The cache at `NSW_CACHE_DIR` or its usual place (`/var/cache/nsw`
    /// for root, `~/.cache/nsw` for a user: [`crate::places`]), created
    /// 0700 if missing. Errors say why it cannot be trusted.
    pub fn open_default() -> Result<Cache> {
        let dir = crate::places::get().cache.clone();
        if crate::access::inside() {
            // What is compiled behind the privilege boundary is kept apart
            // (`contained/`) and never loaded by a privileged run: code that
            // escaped a lab could have written it.
            let base = Cache::open(dir)?;
            return Cache::open(crate::layout::contained_cache(&base.dir));
        }
        Cache::open(dir)
    }

    pub fn open(dir: PathBuf) -> Result<Cache> {
        if !files::exists(&dir) {
            files::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        check_owner(&dir, true)?;
        Ok(Cache { dir })
    }

    /// The file for `wasm` compiled by `engine`: the engine's compatibility
    /// hash (version, target, settings) and the component's own hash.
    pub fn path_for(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut engine_hash = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
        let mut key = Sha256::new();
        key.update(engine_hash.0.finalize());
        key.update(Sha256::digest(wasm));
        self.dir.join(format!("{}.cwasm", hex(&key.finalize())))
    }

    /// The cached compiled component, if there is a trustworthy one.
    pub fn load(&self, engine: &Engine, path: &Path) -> Result<Option<Component>> {
        if !files::exists(path) {
            return Ok(None);
        }
        check_owner(path, false)?;
        let loaded = if crate::access::inside() {
            // Behind the boundary only the broker may open it: from memory.
            let bytes = files::read(path)?;
            // SAFETY: as below; the bytes are the file's.
            unsafe { Component::deserialize(engine, &bytes) }
        } else {
            // SAFETY: see below.
            unsafe { Component::deserialize_file(engine, path) }
        };
        // SAFETY: the file is ours and writable by nobody else (checked
        // above, in a directory checked the same way), and we wrote it with
        // `Component::serialize` under an engine of the same compatibility
        // hash, which is part of its name.
        match loaded {
            Ok(component) => {
                // Used now: the last to go when the cache is full.
                let _ = files::touch(path);
                Ok(Some(component))
            }
            Err(_) => {
                // Truncated or stale: drop it and compile again.
                let _ = files::remove_file(path);
                Ok(None)
            }
        }
    }

    /// Store a compiled component atomically (write, then rename), if the
    /// run's budget allows; then make room: past the cache's limit, the
    /// least recently used components go. `false` if it was not kept.
    pub fn store(&self, path: &Path, component: &Component) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let bytes = component.serialize()?;
        let limits = limits();
        let len = bytes.len() as u64;
        if ADDED.load(Ordering::Relaxed) + len > limits.run_bytes || len > limits.total_bytes {
            return Ok(false);
        }
        ADDED.fetch_add(len, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = files::open(&tmp, How::CreateNew)?;
        file.write_all(&bytes)?;
        drop(file);
        files::rename(&tmp, path).inspect_err(|_| {
            let _ = files::remove_file(&tmp);
        })?;
        self.evict(limits.total_bytes, path)?;
        Ok(true)
    }

    /// Remove the least recently used components until the cache holds at
    /// most `limit` bytes, never `keep` (the one just stored).
    fn evict(&self, limit: u64, keep: &Path) -> Result<()> {
        let mut listed = files::list_compiled(&self.dir)?;
        let mut total: u64 = listed.iter().map(|l| l.len).sum();
        listed.sort_by_key(|l| l.used);
        for old in listed {
            if total <= limit {
                break;
            }
            let path = self.dir.join(&old.name);
            if path == keep {
                continue;
            }
            if files::remove_file(&path).is_ok() {
                total = total.saturating_sub(old.len);
            }
        }
        Ok(())
    }
}
