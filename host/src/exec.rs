//! `nsw exec LAB NODE -- CMD`: run a command inside a lab node, the way
//! `ip netns exec` does: join the namespace, give the command a mount
//! namespace of its own with /sys remounted (so /sys/class/net shows the
//! node's interfaces), then exec. Runs before any thread exists.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::backend::kernel::netns;
use crate::journal::{Mode, StateDir};

/// The kernel name of `node` in `lab`.
pub fn resolve(state: &StateDir, lab: &str, node: &str) -> Result<String> {
    let Some(record) = state.read(lab)? else {
        bail!("there is no lab {lab} (see nsw ls)");
    };
    if node == "host" && record.info.mode == Mode::HostNet {
        bail!("lab {lab} uses this machine's namespace as its host: run the command directly");
    }
    let found = record.namespaces().find(|(_, n)| *n == node).map(|(name, _)| name.to_string());
    match found {
        Some(name) => Ok(name),
        None => {
            let nodes: Vec<&str> = record.namespaces().map(|(_, n)| n).collect();
            bail!("lab {lab} has no node {node}; its nodes are: {}", nodes.join(", "))
        }
    }
}

/// Replace this process with `command` inside `lab`'s `node`.
pub fn exec(lab: &str, node: &str, command: &[String]) -> Result<std::convert::Infallible> {
    let Some((program, args)) = command.split_first() else {
        bail!("nothing to run: give a command after --");
    };
    let name = resolve(&StateDir::system(), lab, node)?;
    let fd = netns::open_named(&name).with_context(|| format!("opening netns {name}"))?;
    setns(&fd, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering netns {name}"))?;
    drop(fd);
    unshare(CloneFlags::CLONE_NEWNS).context("creating a mount namespace")?;
    // Keep our /sys remount from propagating back to the machine.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).context("making / a slave mount")?;
    let _ = umount2("/sys", MntFlags::MNT_DETACH);
    mount(Some(name.as_str()), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>).context("mounting /sys")?;
    let err = Command::new(program).args(args).exec();
    Err(err).with_context(|| format!("running {program}"))
}
