//! `nsw exec LAB NODE -- CMD`: run a command inside a lab node, the way
//! `ip netns exec` does. Runs before any thread exists: joining a
//! namespace for good needs a process with one thread.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::backend;
use crate::journal::{Mode, StateDir};

#[derive(Args)]
pub struct ExecArgs {
    lab: String,
    /// The node's name in the script (`host` for a contained lab's host).
    node: String,
    /// The command and its arguments [default: $SHELL, like `ip netns exec`
    /// users expect].
    #[arg(last = true)]
    command: Vec<String>,
}

/// The kernel name of `node` in `lab`.
pub fn resolve(state: &StateDir, lab: &str, node: &str) -> Result<String> {
    let Some(record) = state.read(lab)? else {
        bail!("there is no lab {lab} (see nsw ls)");
    };
    if node == crate::naming::HOST && record.info.mode == Mode::HostNet {
        bail!("lab {lab} uses this machine's namespace as its host: run the command directly");
    }
    // Only the lab's own names: a journal names what it likes.
    let found = record.namespaces().find(|(name, n)| *n == node && crate::naming::netns_of_lab(name, lab)).map(|(name, _)| name.to_string());
    match found {
        Some(name) => Ok(name),
        None => {
            let nodes: Vec<&str> = record.namespaces().map(|(_, n)| n).collect();
            bail!("lab {lab} has no node {node}; its nodes are: {}", nodes.join(", "))
        }
    }
}

/// Replace this process with the command inside the node; behind the
/// boundary, run it there as root of the lab, through a terminal or pipes
/// of its own (see [`crate::relay`]), and end with its status.
pub fn exec(args: ExecArgs) -> Result<std::convert::Infallible> {
    let shell = [std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into())];
    let command: &[String] = if args.command.is_empty() { &shell } else { &args.command };
    let (program, rest) = command.split_first().expect("a command or the shell");
    let state = StateDir::system();
    let name = resolve(&state, &args.lab, &args.node)?;
    let node = backend::open_node(&args.lab, &name, state.boundary(&args.lab)?)?;
    let born_in_lab = node.join_pids().with_context(|| format!("entering the PID namespace of lab {}", args.lab))?;
    if !node.as_lab_root() && born_in_lab {
        // A child of this process is born in the lab's PID namespace; this
        // one relays its terminal and ends as it does.
        // In the caller's PATH, else the node's (as the direct path below).
        let callers = std::env::var_os("PATH").and_then(|path| crate::backend::kernel::spawn::resolve_in(&path, program));
        let found = callers.or_else(|| crate::backend::kernel_resolve(program));
        let mut command = Command::new(found.as_deref().unwrap_or(std::path::Path::new(program)));
        command.arg0(program).args(rest);
        let status = crate::relay::run(command, move || node.enter()).with_context(|| format!("running {program} in node {}", args.node))?;
        std::process::exit(status)
    }
    if !node.as_lab_root() {
        node.enter().with_context(|| format!("entering node {}", args.node))?;
        let mut err = Command::new(program).args(rest).exec();
        // Not in the caller's PATH (an ordinary user's has no sbin, where
        // birdc and vtysh are): in the node's, as its programs find it.
        if err.kind() == std::io::ErrorKind::NotFound
            && !program.contains('/')
            && let Some(found) = crate::backend::kernel_resolve(program)
        {
            err = Command::new(found).arg0(program).args(rest).exec();
        }
        return Err(err).with_context(|| format!("running {program}"));
    }
    // Nothing of the machine's user goes into the lab: not the terminal
    // (the relay's), not the environment (a few harmless names).
    // No descriptor of the caller's beyond 0-2 reaches the lab either.
    // SAFETY: marks descriptors close-on-exec; nothing is closed here.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    let mut command = Command::new(program);
    command.args(rest).env_clear().env("PATH", LAB_ROOT_PATH).env("HOME", "/").env("USER", "root").env("LOGNAME", "root");
    for kept in ["TERM", "LANG", "LC_ALL", "COLORTERM"] {
        if let Some(value) = std::env::var_os(kept) {
            command.env(kept, value);
        }
    }
    let status = crate::relay::run(command, move || node.enter()).with_context(|| format!("running {program} in node {}", args.node))?;
    std::process::exit(status)
}

/// The PATH of a command run as root of a lab.
const LAB_ROOT_PATH: &str = crate::backend::kernel::spawn::NODE_PATH;
