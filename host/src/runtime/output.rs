//! Guest stdout and stderr: passed through to the user's terminal as they
//! come, each line prefixed with whose it is (`pbj | `), with every
//! control and format character removed (escape sequences, bidi overrides,
//! zero-width characters, line and paragraph separators), and the total
//! size capped. A script's text can never pass for nsw's own.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::encode::terminal::sanitize;

/// Which of nsw's own streams guest output goes to.
#[derive(Debug, Clone, Copy)]
pub enum Sink {
    Stdout,
    Stderr,
}

#[derive(Debug)]
struct Shared {
    /// Bytes the guest may still print, over both streams.
    budget: usize,
    cap: usize,
    truncated: bool,
    /// Nobody reads nsw's output any more (a closed pipe).
    closed: bool,
    /// The last bytes printed, kept for whoever asks (a service's
    /// `output()`), if anyone will.
    tail: Option<String>,
    /// A file it goes to as well (a service's log, for `nsw logs`), and
    /// how many bytes that may still take.
    log: Option<(std::fs::File, usize)>,
    /// Nobody is at nsw's terminal any more (the run returned and left the
    /// lab's services running): the log alone gets it, without a budget.
    detached: bool,
}

/// How much of a service's output is kept for `output()`.
pub const TAIL_BYTES: usize = 64 << 10;

/// The guest's stdout or stderr. Clones share one budget.
#[derive(Clone)]
pub struct GuestOutput {
    sink: Sink,
    /// What each line starts with: `pbj | `.
    prefix: Arc<str>,
    shared: Arc<Mutex<Shared>>,
}

impl GuestOutput {
    /// A stdout/stderr pair for the script `label` that may print `cap`
    /// bytes in all.
    pub fn pair(label: &str, cap: usize) -> (GuestOutput, GuestOutput) {
        Self::pair_keeping(label, cap, false)
    }

    /// The same, keeping the last [`TAIL_BYTES`] printed (see [`Self::tail`]).
    pub fn pair_keeping(label: &str, cap: usize, keep: bool) -> (GuestOutput, GuestOutput) {
        let tail = keep.then(String::new);
        let shared = Arc::new(Mutex::new(Shared { budget: cap, cap, truncated: false, closed: false, tail, log: None, detached: false }));
        let prefix: Arc<str> = format!("{label} | ").into();
        (
            GuestOutput { sink: Sink::Stdout, prefix: prefix.clone(), shared: shared.clone() },
            GuestOutput { sink: Sink::Stderr, prefix, shared },
        )
    }

    /// Whether the guest printed more than it may.
    pub fn truncated(&self) -> bool {
        self.shared.lock().map(|s| s.truncated).unwrap_or(false)
    }

    /// The same stream, printed on nsw's stderr.
    pub fn to_stderr(self) -> GuestOutput {
        GuestOutput { sink: Sink::Stderr, ..self }
    }

    /// The last bytes printed, if they are kept.
    pub fn tail(&self) -> String {
        self.shared.lock().ok().and_then(|s| s.tail.clone()).unwrap_or_default()
    }

    /// Write it to `file` as well, `cap` bytes at most (then a line saying
    /// it was cut off).
    pub fn log_to(&self, file: std::fs::File, cap: usize) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.log = Some((file, cap));
        }
    }

    /// The run is over and nobody reads nsw's terminal: from now on it goes
    /// to its log only, and the run's budget no longer ends it (the log's
    /// cap keeps its size; what passes it is dropped, not refused).
    pub fn detach(&self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.detached = true;
        }
    }

    /// Whether a write found nsw's own output closed.
    pub fn closed(&self) -> bool {
        self.shared.lock().map(|s| s.closed).unwrap_or(false)
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        // Tell the guest it is not on a terminal: no colours, no cursor games.
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Writer { out: self.clone(), pending: Vec::new(), at_line_start: true })
    }
}

struct Writer {
    out: GuestOutput,
    /// The start of a UTF-8 character cut off at the end of the last write.
    pending: Vec<u8>,
    /// The next byte starts a line: it gets the prefix.
    at_line_start: bool,
}

impl Writer {
    /// Print what can be printed; `false` once the budget is spent.
    fn emit(&mut self, buf: &[u8]) -> bool {
        self.pending.extend_from_slice(buf);
        // Split off an incomplete UTF-8 sequence at the end to finish later.
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(valid_up_to);
        let text = sanitize(&String::from_utf8_lossy(&self.pending));
        self.pending = rest;

        let Ok(mut shared) = self.out.shared.lock() else { return false };
        if shared.detached {
            write_log(&mut shared.log, &text);
            return true;
        }
        if shared.truncated || shared.closed {
            return false;
        }
        let mut text = text.as_str();
        if text.len() > shared.budget {
            let cut = (0..=shared.budget).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text = &text[..cut];
            shared.truncated = true;
        }
        shared.budget -= text.len();
        if let Some(tail) = shared.tail.as_mut() {
            tail.push_str(text);
            if tail.len() > TAIL_BYTES {
                let cut = tail.len() - TAIL_BYTES;
                let cut = (cut..tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(tail.len());
                tail.drain(..cut);
            }
        }
        let mut lines = String::with_capacity(text.len() + 16);
        for piece in text.split_inclusive('\n') {
            if self.at_line_start {
                lines.push_str(&self.out.prefix);
            }
            lines.push_str(piece);
            self.at_line_start = piece.ends_with('\n');
        }
        if shared.truncated {
            if !self.at_line_start {
                lines.push('\n');
            }
            lines.push_str(&format!("[nsw: guest output cut off after {} bytes]\n", shared.cap));
        }
        write_log(&mut shared.log, text);
        let over = shared.truncated;
        let written = crate::progress::suspend(|| match self.out.sink {
            Sink::Stdout => write_all(&mut std::io::stdout().lock(), lines.as_bytes()),
            Sink::Stderr => write_all(&mut std::io::stderr().lock(), lines.as_bytes()),
        });
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                shared.closed = true;
                crate::stop::output_closed();
                return false;
            }
        }
        !over
    }
}

/// Append `text` to a log that may take `left` bytes more; the write that
/// reaches the cap says so in the log.
fn write_log(log: &mut Option<(std::fs::File, usize)>, text: &str) {
    let Some((file, left)) = log.as_mut() else { return };
    if *left == 0 || text.is_empty() {
        return;
    }
    let cut = (0..=text.len().min(*left)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let mut bytes = text[..cut].as_bytes().to_vec();
    *left -= cut;
    if cut < text.len() {
        *left = 0;
        bytes.extend_from_slice(b"\n[nsw: output cut off: the log is full]\n");
    }
    // A log that cannot be written is given up: the service goes on.
    if file.write_all(&bytes).is_err() {
        *left = 0;
    }
}

fn write_all(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

impl AsyncWrite for Writer {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // A terminal write is short and bounded by the budget: done inline.
        // Past the budget (or with nsw's output closed) the stream fails,
        // so the guest stops printing.
        if self.get_mut().emit(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::Error::other("the guest output quota is spent")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_utf8_is_joined() {
        let (out, _) = GuestOutput::pair("t", 100);
        let mut w = Writer { out, pending: Vec::new(), at_line_start: true };
        let e = "é".as_bytes();
        w.emit(&e[..1]);
        assert_eq!(w.pending, vec![e[0]]);
        w.emit(&e[1..]);
        assert!(w.pending.is_empty());
    }

    #[test]
    fn budget_is_shared_and_capped() {
        let (out, err) = GuestOutput::pair("t", 10);
        let mut a = Writer { out: out.clone(), pending: Vec::new(), at_line_start: true };
        let mut b = Writer { out: err, pending: Vec::new(), at_line_start: true };
        assert!(a.emit(b"123456"));
        assert!(!out.truncated());
        assert!(!b.emit(b"7890ab"));
        assert!(out.truncated());
        assert!(!a.emit(b"x"));
        assert_eq!(out.shared.lock().unwrap().budget, 0);
    }
}
