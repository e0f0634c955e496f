//! Hooks for the crash tests and the benchmarks, compiled only with the
//! `test-hooks` feature into the `nsw-testing` binary that `scripts/build`
//! makes beside `nsw`; the release `nsw` reads none of these variables
//! (a test, `the_release_binary_reads_no_test_variable`, checks its bytes).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// `NSW_TEST_KILL_AT=K` makes nsw SIGKILL itself just before it appends
/// journal line K (counting from 0), so a test can stop it at an exact
/// point of a build: between recording an object and creating it, or
/// between creating it and confirming it.
pub const KILL_AT: &str = "NSW_TEST_KILL_AT";

/// `NSW_TIMINGS=FILE`: write where the time of a successful run went, as
/// JSON, for `scripts/bench`.
pub const TIMINGS: &str = "NSW_TIMINGS";

/// `NSW_TEST_ESCAPE=COMMAND`: run `sh -c COMMAND` from nsw's own process
/// just before the guest starts, as if the guest had escaped wasmtime; its
/// output is printed as `escape: ...` lines.
pub const ESCAPE: &str = "NSW_TEST_ESCAPE";

/// `NSW_NO_BOUNDARY=1`: root runs contained labs without the privilege
/// boundary, as nsw 0.1.2 did (the benchmarks compare the two).
pub const NO_BOUNDARY: &str = "NSW_NO_BOUNDARY";

/// Whether the boundary is turned off for this run.
pub fn no_boundary() -> bool {
    std::env::var_os(NO_BOUNDARY).is_some()
}

/// The file `NSW_TIMINGS` names, if any: root opens it before the split.
pub fn timings_path() -> Option<std::path::PathBuf> {
    std::env::var_os(TIMINGS).map(std::path::PathBuf::from)
}

pub fn escape() {
    let Some(command) = std::env::var_os(ESCAPE) else { return };
    let out = match std::process::Command::new("sh").arg("-c").arg(command).stdin(std::process::Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => return crate::tell::say!("escape: cannot run sh: {e}"),
    };
    for line in String::from_utf8_lossy(&out.stdout).lines().chain(String::from_utf8_lossy(&out.stderr).lines()) {
        crate::tell::say!("escape: {line}");
    }
}

pub fn before_journal_line(line: u64) {
    static KILL: OnceLock<Option<u64>> = OnceLock::new();
    let at = KILL.get_or_init(|| std::env::var(KILL_AT).ok().and_then(|v| v.parse().ok()));
    if *at == Some(line) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// How long each service took from being asked for (its component loaded
/// from the cache) to its `run` being called in its node.
static SERVICE_STARTS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

pub fn service_started(after: Duration) {
    if let Ok(mut starts) = SERVICE_STARTS.lock() {
        starts.push(after);
    }
}

/// Where the time of one run went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub load: Duration,
    pub from_cache: bool,
    pub instantiate: Duration,
    pub run: Duration,
    pub build: Duration,
    pub down: Option<Duration>,
}

pub fn write_timings(t: &Timings) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(TIMINGS) else { return Ok(()) };
    let value = serde_json::json!({
        "load_s": t.load.as_secs_f64(),
        "from_cache": t.from_cache,
        "instantiate_s": t.instantiate.as_secs_f64(),
        "run_s": t.run.as_secs_f64(),
        "build_s": t.build.as_secs_f64(),
        "down_s": t.down.map(|d| d.as_secs_f64()),
        "service_starts_s": SERVICE_STARTS.lock().map(|s| s.iter().map(Duration::as_secs_f64).collect::<Vec<_>>()).unwrap_or_default(),
    });
    crate::access::write_output(std::path::Path::new(&path), value.to_string().as_bytes())?;
    Ok(())
}
