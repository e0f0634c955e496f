//! Compiling a component in a process of its own. Compiling takes memory
//! and time that grow with the component (an 8 MiB component of code took
//! 27 s and 590 MB here), and wasmtime has no bound of its own on what
//! its compiler allocates: in a child, `--max-compile-memory` is the
//! child's data limit (`RLIMIT_DATA`), and a compile the run gives up on
//! (its deadline, a signal) is killed rather than left to run on a core
//! until nsw exits. The child is nsw itself (`/proc/self/exe`), given the
//! component on stdin; it hands back the compiled form on stdout, which
//! the parent loads as it loads the compiled cache's files.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The argument that makes nsw the compiling child.
pub const CHILD_ARG: &str = "--nsw-compile-child";

/// What a compile may take, and when to give it up.
pub struct Bounds<'a> {
    /// The child's data limit, in bytes.
    pub memory_bytes: usize,
    /// Asked every few milliseconds: `true` kills the child.
    pub abandon: &'a (dyn Fn() -> bool + Sync),
}

/// Compile `wasm` (read from `path`) for `engine` in a child bounded by
/// `bounds`.
pub fn compile(engine: &Engine, wasm: &[u8], path: &Path, bounds: &Bounds) -> Result<Component> {
    let limit = bounds.memory_bytes as libc::rlim_t;
    let mut command = Command::new("/proc/self/exe");
    command.arg(CHILD_ARG).env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls: setrlimit
    // and prctl, on values computed before the fork.
    unsafe {
        command.pre_exec(move || {
            let data = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_DATA, &data) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The child goes with the thread that waits for it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command.spawn().context("cannot start nsw's compiler process")?;
    let (mut stdin, mut stdout, mut stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (status, compiled, said, abandoned) = std::thread::scope(|scope| {
        // The pipes are read and written by threads of their own, so that
        // none of them fills while this one watches for the end.
        scope.spawn(move || {
            if let Some(pipe) = stdin.as_mut() {
                let _ = pipe.write_all(wasm);
            }
            drop(stdin);
        });
        let compiled = scope.spawn(move || {
            let mut bytes = Vec::new();
            stdout.as_mut().map(|pipe| pipe.take(limit as u64).read_to_end(&mut bytes));
            bytes
        });
        let said = scope.spawn(move || {
            let mut text = String::new();
            stderr.as_mut().map(|pipe| pipe.take(64 << 10).read_to_string(&mut text));
            text
        });
        let mut abandoned = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if (bounds.abandon)() => {
                    abandoned = true;
                    let _ = child.kill();
                    break child.wait();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    let _ = child.kill();
                    break Err(e);
                }
            }
        };
        (status, compiled.join().unwrap_or_default(), said.join().unwrap_or_default(), abandoned)
    });
    let status = status.context("waiting for nsw's compiler process")?;
    if abandoned {
        bail!("compiling {} was abandoned: the run was told to stop", path.display());
    }
    if !status.success() {
        // Past its data limit the allocator fails, and Rust aborts on that.
        if status.signal() == Some(libc::SIGABRT) || said.contains("memory allocation of") {
            bail!("compiling {} needed more than {} MiB (raise it with --max-compile-memory)", path.display(), bounds.memory_bytes >> 20);
        }
        let why = said.trim();
        bail!("{} is not a valid WebAssembly component: {}", path.display(), if why.is_empty() { format!("the compiler ended with {status}") } else { why.to_string() });
    }
    // SAFETY: the bytes are what nsw's own binary compiled from `wasm` in
    // the child for an engine of the same configuration (deserialize checks
    // that), handed over on a pipe only the two processes hold: the trust
    // the compiled cache's files get.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from).with_context(|| format!("loading what nsw compiled of {}", path.display()))
}

/// The child: the component on stdin, its compiled form on stdout, why not
/// on stderr.
pub fn child() -> ExitCode {
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("reading the component: {e}");
        return ExitCode::from(2);
    }
    match super::engine().and_then(|engine| engine.precompile_component(&wasm).map_err(anyhow::Error::from)) {
        Ok(compiled) => match std::io::stdout().lock().write_all(&compiled) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(2),
        },
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}
