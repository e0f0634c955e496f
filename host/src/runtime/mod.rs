//! The wasmtime side that knows nothing of labs: one engine, components
//! loaded through the compiled cache, the guests' captured output, and
//! the runner of WebAssembly services. Running a lab script against the
//! lab's imports is [`crate::script`]'s.

pub mod cache;
pub mod compiler;
pub mod output;
pub mod service;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// Limits of one run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    /// The script's and its services' memory together.
    pub memory_total_bytes: usize,
    pub output_bytes: usize,
    /// What compiling one component may take.
    pub compile_memory_bytes: usize,
    /// A plan (`nsw plan`): nothing runs in the lab, services included, and
    /// the script's output goes to stderr (stdout is the plan's).
    pub dry: bool,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { timeout: Duration::from_secs(60), memory_bytes: 64 << 20, memory_total_bytes: 1 << 30, output_bytes: 1 << 20, compile_memory_bytes: 2 << 30, dry: false }
    }
}

pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: the ticker thread advances the epoch, the store traps when
    // its deadline passes, even in a loop that never calls the host.
    config.epoch_interruption(true);
    Ok(Engine::new(&config)?)
}

/// A component ready to instantiate, and how it was obtained.
pub struct Loaded {
    pub component: Component,
    pub from_cache: bool,
    pub load_time: Duration,
    /// Why the cache was not used, if it was not.
    pub cache_warning: Option<String>,
}

/// Load the component `wasm` (read from `path`), from the compiled cache
/// when possible, else compiling it (and caching the result). `before`
/// is told, before any work, whether the cache has it; a compile is
/// bounded by `bounds`.
pub fn load(engine: &Engine, path: &Path, wasm: &[u8], bounds: &compiler::Bounds, before: impl FnOnce(bool)) -> Result<Loaded> {
    let start = Instant::now();
    let (cache, mut cache_warning) = match cache::Cache::open_default() {
        Ok(cache) => (Some(cache), None),
        Err(e) => (None, Some(format!("not using the compiled cache: {e:#}"))),
    };
    let cached = cache.as_ref().map(|cache| (cache, cache.path_for(engine, wasm)));
    before(cached.as_ref().is_some_and(|(_, file)| crate::access::files::exists(file)));
    if let Some((cache, file)) = &cached {
        match cache.load(engine, file) {
            Ok(Some(component)) => return Ok(Loaded { component, from_cache: true, load_time: start.elapsed(), cache_warning }),
            Ok(None) => {}
            Err(e) => cache_warning = Some(format!("not using the compiled cache: {e:#}")),
        }
    }
    let component = compiler::compile(engine, wasm, path, bounds)?;
    if let (Some((cache, file)), None) = (&cached, &cache_warning) {
        match cache.store(file, &component) {
            Ok(true) => {}
            Ok(false) => cache_warning = Some("not kept in the compiled cache: this run added as much as it may (--max-cache-per-run)".into()),
            Err(e) => cache_warning = Some(format!("could not write the compiled cache: {e:#}")),
        }
    }
    Ok(Loaded { component, from_cache: false, load_time: start.elapsed(), cache_warning })
}

