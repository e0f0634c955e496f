//! Stopping a run without cutting a kernel operation in half.
//!
//! A signal, the deadline or a closed output pipe does not drop the running
//! guest (that could abandon a netlink request between the kernel acting
//! and the journal recording it). It raises this flag instead: the epoch
//! ticker then makes guest code trap at its next check, every lab operation
//! refuses to start (with [`Stopped`]), and every host-side wait gives up.
//! The operation under way finishes and is journaled; then the guest traps
//! and the lab is rolled back from a journal that is complete.

use std::sync::{Arc, OnceLock};

use nix::sys::signal::Signal;

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `--timeout` passed.
    Deadline,
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(Signal),
    /// Nobody reads nsw's output any more (`nsw run ... | head`): like
    /// SIGPIPE, but the lab is rolled back first.
    OutputClosed,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Deadline => f.write_str("the deadline"),
            StopReason::Signal(signal) => f.write_str(signal.as_str()),
            StopReason::OutputClosed => f.write_str("a closed output pipe"),
        }
    }
}

/// The stop flag of one run, shared by everything that may wait.
#[derive(Clone, Default)]
pub struct Stop(Arc<OnceLock<StopReason>>);

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Ask the run to stop; the first reason given wins.
    pub fn request(&self, reason: StopReason) {
        let _ = self.0.set(reason);
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.0.get().copied()
    }

    pub fn requested(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The stop of the run in progress: told when nsw's own output is closed.
static RUN: OnceLock<Stop> = OnceLock::new();

/// From now on, a closed stdout or stderr stops `stop`'s run (and rolls it
/// back), as SIGPIPE would, but cleanly.
pub fn stop_on_closed_output(stop: &Stop) {
    let _ = RUN.set(stop.clone());
}

/// A write to nsw's stdout or stderr found the pipe closed.
pub fn output_closed() {
    if let Some(stop) = RUN.get() {
        stop.request(StopReason::OutputClosed);
    }
}

/// Note a write's outcome: a closed pipe stops the run; nothing else
/// about a failed write to the terminal matters.
pub fn note_write(result: std::io::Result<()>) {
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            output_closed();
        }
    }
}

/// The error of an operation refused because the run was told to stop.
/// The guest traps with it; the runtime recognises it by its type.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the run was told to stop")]
pub struct Stopped;

impl Stopped {
    /// Whether `error` (or anything in its chain) is a [`Stopped`].
    pub fn is_in(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| cause.is::<Stopped>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_wins() {
        let stop = Stop::new();
        assert_eq!(stop.reason(), None);
        stop.request(StopReason::Signal(Signal::SIGTERM));
        stop.request(StopReason::Deadline);
        assert_eq!(stop.reason(), Some(StopReason::Signal(Signal::SIGTERM)));
    }

    #[test]
    fn stopped_is_found_through_context() {
        let error = anyhow::Error::new(Stopped).context("create netns a").context("guest call");
        assert!(Stopped::is_in(&error));
        assert!(!Stopped::is_in(&anyhow::anyhow!("the run was told to stop")));
    }
}
