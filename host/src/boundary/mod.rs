//! The privilege boundary under the Wasm sandbox, for contained labs run
//! by root.
//!
//! `nsw run` (and `nsw test`) of a contained lab splits in two before any
//! thread exists. The *lab's side* — the whole run: wasmtime, the guest,
//! every netlink and nftables call — moves into a user namespace of its
//! own, as root there and on the machine as the first uid of a range
//! reserved for the lab ([`ids`]), with no capability over anything the
//! machine owns. The
//! namespaces it creates belong to that user namespace, so it has full
//! power over them and none over the machine's network: even a wasmtime
//! escape inside the lab cannot touch it. The *broker* stays root, serves
//! the few things the lab's side cannot do ([`broker`]: mount its
//! namespaces under /run/netns so `ip netns` and later commands see them,
//! open its own journal and lock), each checked against the lab, and
//! exits with the lab's side's status.
//!
//! The broker records the lab's user namespace beside its journal before
//! the lab's side can write a word of it; `nsw down` (root) then acts
//! only inside that user namespace ([`crate::teardown`]), so a journal
//! forged from behind the boundary cannot turn root's `down` against the
//! machine.
//!
//! Host-net labs, the uplink (pasta needs the machine's /dev/net/tun) and
//! programs run as root (`--exec-user root`) keep the privileged path.

mod broker;
pub mod ids;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{ForkResult, fork};

use crate::access::{self, protocol};
use protocol::{Reply, Request};

/// What a run behind the boundary needs prepared by root before the split.
pub struct Plan {
    pub lab: String,
    /// `--replace`: an old lab of that name goes first, by root's `down`
    /// (it may be behind a boundary of its own).
    pub replace: bool,
    /// Files the run reads (the script) and writes (reports), opened by
    /// root: the lab's side may not be able to reach them.
    pub reads: Vec<PathBuf>,
    pub writes: Vec<PathBuf>,
    /// `--max-tasks`: the cap of the lab's cgroup, made here for the lab's
    /// side, which may only move its programs into it.
    pub max_tasks: u64,
}

/// Split the run: returns `None` on the lab's side, which goes on with the
/// run; the broker serves it and returns its exit status. Call it while
/// nsw has one thread.
pub fn split(plan: Plan) -> Result<Option<ExitCode>> {
    use crate::journal::StateDir;
    let places = crate::places::get();
    let state = StateDir::system();
    state.ensure()?;
    crate::backend::kernel::netns::ensure_run_dir().context("preparing /run/netns")?;
    if plan.replace && state.journal_path(&plan.lab).exists() {
        replace_old(&plan.lab)?;
    }
    // The lab's lock, held from here until the lab's ids are swept (the
    // lab's side takes it as its own: see `LabLock::share`): no other run
    // of the lab, no `nsw down` of it, comes in between.
    let lock = state.lock(&plan.lab)?;
    // The lab's own ids on the machine, before anything of it exists.
    let base = match ids::reserve(&state, &plan.lab) {
        Ok(base) => base,
        Err(e) => {
            give_back(&state, &plan.lab, lock, true);
            return Err(e);
        }
    };
    let before_fork = (|| -> Result<_> {
        // The lab's root (its first id) may move its programs into the
        // lab's cgroup, and do nothing else with it.
        crate::backend::kernel::cgroup::prepare(&plan.lab, plan.max_tasks, Some(base)).context("making the lab's cgroup")?;
        let mut opened = HashMap::new();
        for path in &plan.reads {
            if let Ok(file) = File::open(path) {
                opened.insert(path.clone(), file);
            }
        }
        for path in &plan.writes {
            let file = File::create(path).with_context(|| format!("writing {}", path.display()))?;
            opened.insert(path.clone(), file);
        }
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).context("a socket for nsw's broker")?;
        Ok((opened, ours, theirs))
    })();
    let (opened, ours, theirs) = match before_fork {
        Ok(made) => made,
        Err(e) => {
            let swept = ids::finish(&state, &plan.lab, base);
            give_back(&state, &plan.lab, lock, swept);
            return Err(e);
        }
    };
    let parent = std::process::id();
    // SAFETY: nsw has one thread here (see the caller), so the child may do
    // anything the parent could.
    let forked = match unsafe { fork() } {
        Ok(forked) => forked,
        Err(e) => {
            let swept = ids::finish(&state, &plan.lab, base);
            give_back(&state, &plan.lab, lock, swept);
            return Err(e).context("starting the lab's side of nsw");
        }
    };
    match forked {
        ForkResult::Child => {
            drop(ours);
            enter_lab_side(theirs, parent)?;
            access::hand_over(opened);
            Ok(None)
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            drop(opened);
            let child_pid = child.as_raw() as u32;
            forward_signals(child_pid);
            let served = map_child(&ours, child_pid, base).and_then(|userns| {
                let broker = broker::Broker {
                    lab: plan.lab.clone(),
                    userns,
                    state: places.state.clone(),
                    cache: crate::layout::contained_cache(&places.cache),
                    netns: places.netns.clone(),
                    marker: state.boundary_path(&plan.lab),
                    lock: lock.share().context("sharing the lab's lock")?,
                };
                broker.serve(ours.as_fd(), child_pid).context("serving the lab's side")
            });
            drop(ours);
            // Wait for it to end, stop forwarding signals to its pid, then
            // reap it (its pid is free for reuse only then).
            let _ = nix::sys::wait::waitid(nix::sys::wait::Id::Pid(child), nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT);
            CHILD.store(0, std::sync::atomic::Ordering::SeqCst);
            let status = nix::sys::wait::waitpid(child, None);
            let swept = ids::finish(&state, &plan.lab, base);
            give_back(&state, &plan.lab, lock, swept);
            if let Err(e) = served {
                tracing::debug!("broker: {e:#}");
            }
            Ok(Some(crate::front::exit_like(status)))
        }
    }
}

/// The lab's lock, given back at the end of root's part of a run. No lab
/// (refused, rolled back, `--rm`): no lock file either, unless its ids
/// could not be swept (`swept`), when the file keeps them taken.
fn give_back(state: &crate::journal::StateDir, lab: &str, lock: crate::journal::LabLock, swept: bool) {
    if swept && !state.journal_path(lab).exists() {
        lock.release_and_remove();
    }
}

/// `--replace`: take the old lab down as `nsw down` does, and say so as
/// `run --replace` does.
fn replace_old(lab: &str) -> Result<()> {
    let out = std::process::Command::new("/proc/self/exe")
        .args(["down", "--json", lab])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("taking the old lab down")?;
    // What `down` could not do it said on stderr, which is ours; what it
    // did comes as JSON.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(done) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let Some(summary) = done.get("summary").and_then(|s| s.as_str()) {
            crate::tell::say!("nsw: replaced: took down the old lab {lab} ({summary})");
        }
    }
    if !out.status.success() {
        bail!("lab {lab} could not be replaced: taking the old one down failed");
    }
    Ok(())
}

/// On the lab's side: a user namespace of its own, mapped by the broker;
/// then root there and the first id of the lab's range on the machine,
/// unable to gain more, and not dumpable (the lab's programs, the same
/// uid, may not ptrace it or open its descriptors).
fn enter_lab_side(sock: OwnedFd, parent: u32) -> Result<()> {
    // Never outlive the broker (kill -9 of nsw takes both).
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        std::process::exit(1);
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|e| {
        anyhow::anyhow!(
            "nsw cannot make a user namespace for the lab's privilege boundary here ({e}); \
             allow user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)"
        )
    })?;
    access::connect(sock);
    match access::call(Request::Unshared, None) {
        Ok(_) => {}
        Err(e) => bail!("the broker could not map the lab's user namespace: {e}"),
    }
    nix::unistd::setgroups(&[]).context("setgroups")?;
    let root = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).context("setresgid")?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).context("setresuid")?;
    nix::sys::prctl::set_no_new_privs()?;
    nix::sys::prctl::set_dumpable(false)?;
    // A change of uid clears the parent-death signal: set it again.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        std::process::exit(1);
    }
    Ok(())
}

/// On the broker's side: wait for the child's user namespace, map it (ids
/// 0..65535 inside are the lab's range from `base` outside), and return
/// its inode.
fn map_child(sock: &OwnedFd, child: u32, base: u32) -> Result<u64> {
    match protocol::receive::<Request>(sock.as_fd())? {
        Some((Request::Unshared, _)) => {}
        _ => bail!("the lab's side did not start"),
    }
    let userns = std::fs::metadata(format!("/proc/{child}/ns/user"))?;
    use std::os::unix::fs::MetadataExt;
    let mine = std::fs::metadata("/proc/self/ns/user")?.ino();
    let result = (|| -> Result<u64> {
        if userns.ino() == mine {
            bail!("the lab's side has no user namespace of its own");
        }
        let map = format!("0 {base} {}", ids::PER_LAB);
        std::fs::write(format!("/proc/{child}/uid_map"), &map).context("writing the uid map")?;
        std::fs::write(format!("/proc/{child}/gid_map"), &map).context("writing the gid map")?;
        Ok(userns.ino())
    })();
    let reply = match &result {
        Ok(_) => Reply::Done,
        Err(e) => Reply::Refused { why: format!("{e:#}") },
    };
    protocol::send(sock.as_fd(), &reply, None)?;
    result
}

static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// A signal someone sent the broker goes on to the lab's side, which stops
/// the run (and rolls back); one from the terminal reaches both already.
/// Signals forwarded to the lab's side so far.
static FORWARDED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn forward_signals(child: u32) {
    CHILD.store(child as i32, std::sync::atomic::Ordering::SeqCst);
    extern "C" fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
        let code = unsafe { (*info).si_code };
        let child = CHILD.load(std::sync::atomic::Ordering::SeqCst);
        if code <= 0 && child > 0 {
            // The lab's side may have been stopped (its programs share its
            // ids and may signal it): it goes on, to hear this. A third
            // signal is not waited on: the lab's side is killed, and what
            // it built is left for `nsw down`.
            let count = FORWARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let signal = if count >= 3 { libc::SIGKILL } else { signal };
            // SAFETY: kill is async-signal-safe.
            unsafe {
                libc::kill(child, libc::SIGCONT);
                libc::kill(child, signal);
            }
        }
    }
    // The broker's writes never kill it; its child reports closed output.
    crate::front::forward_with(forward);
}
