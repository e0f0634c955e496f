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

/// Replace this process with the command inside the node.
pub fn exec(args: ExecArgs) -> Result<std::convert::Infallible> {
    let shell = [std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into())];
    let command: &[String] = if args.command.is_empty() { &shell } else { &args.command };
    let (program, rest) = command.split_first().expect("a command or the shell");
    let state = StateDir::system();
    let name = resolve(&state, &args.lab, &args.node)?;
    backend::enter_node(&name, state.boundary(&args.lab)?)?;
    let err = Command::new(program).args(rest).exec();
    Err(err).with_context(|| format!("running {program}"))
}
