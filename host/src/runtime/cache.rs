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
            Ok(component) => Ok(Some(component)),
            Err(_) => {
                // Truncated or stale: drop it and compile again.
                let _ = files::remove_file(path);
                Ok(None)
            }
        }
    }

    /// Store a compiled component atomically (write, then rename).
    pub fn store(&self, path: &Path, component: &Component) -> Result<()> {
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = files::open(&tmp, How::CreateNew)?;
        file.write_all(&bytes)?;
        drop(file);
        files::rename(&tmp, path).inspect_err(|_| {
            let _ = files::remove_file(&tmp);
        })?;
        Ok(())
    }
}
