//! A live line for long runs on a terminal (`nsw run` of a large lab):
//! objects made, their rate, the time, on stderr, gone when done. It
//! shows only after a second and only on a terminal; whatever else nsw or
//! the script prints goes above it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The line being shown, if one is.
static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Run `write` with the line out of the way (a no-op without one).
pub fn suspend<T>(write: impl FnOnce() -> T) -> T {
    match BAR.get() {
        Some(bar) if !bar.is_finished() => bar.suspend(write),
        _ => write(),
    }
}

/// Counts what a run makes, and shows it.
pub struct Progress {
    done: Arc<AtomicBool>,
}

impl Progress {
    /// Show `made` (objects so far) after a second, if stderr is a terminal.
    pub fn start(made: Arc<AtomicU64>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let flag = done.clone();
            let _ = std::thread::Builder::new().name("nsw-progress".into()).spawn(move || show(made, flag));
        }
        Progress { done }
    }
}

fn show(made: Arc<AtomicU64>, done: Arc<AtomicBool>) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        if done.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    let bar = BAR.get_or_init(|| bar);
    while !done.load(Ordering::Relaxed) {
        let n = made.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        bar.set_message(format!("building: {n} objects, {:.0}/s, {seconds:.1} s", n as f64 / seconds));
        bar.tick();
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(bar) = BAR.get() {
            bar.finish_and_clear();
        }
    }
}
