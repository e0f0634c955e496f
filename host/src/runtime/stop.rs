//! Stopping a run without cutting a kernel operation in half.
//!
//! A signal or the deadline does not drop the running guest (that could
//! abandon a netlink request between the kernel acting and the journal
//! recording it). It raises this flag instead: the epoch ticker then makes
//! guest code trap at its next check, every lab operation refuses to start,
//! and a ping in flight gives up between echoes. The operation under way
//! finishes and is journaled; then the guest traps and the lab is rolled
//! back from a journal that is complete.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Deadline,
    Signal(&'static str),
}

#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicU8>);

const SIGNALS: [&str; 3] = ["SIGINT", "SIGTERM", "SIGHUP"];

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Ask the run to stop; the first reason given wins.
    pub fn request(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Deadline => 1,
            StopReason::Signal(name) => 2 + SIGNALS.iter().position(|s| *s == name).unwrap_or(0) as u8,
        };
        let _ = self.0.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn reason(&self) -> Option<StopReason> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            1 => Some(StopReason::Deadline),
            n => Some(StopReason::Signal(SIGNALS[(n - 2) as usize])),
        }
    }

    pub fn requested(&self) -> bool {
        self.reason().is_some()
    }

    /// The shared flag, for threads that only need to know "stop now".
    pub fn flag(&self) -> Arc<AtomicU8> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_wins() {
        let stop = Stop::new();
        assert_eq!(stop.reason(), None);
        stop.request(StopReason::Signal("SIGTERM"));
        stop.request(StopReason::Deadline);
        assert_eq!(stop.reason(), Some(StopReason::Signal("SIGTERM")));
    }
}
