//! Guest stdout and stderr: passed through to the user's terminal as they
//! come, with control characters (terminal escape sequences among them)
//! removed and the total size capped.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

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
}

/// The guest's stdout or stderr. Clones share one budget.
#[derive(Clone)]
pub struct GuestOutput {
    sink: Sink,
    shared: Arc<Mutex<Shared>>,
}

impl GuestOutput {
    /// A stdout/stderr pair that may print `cap` bytes in all.
    pub fn pair(cap: usize) -> (GuestOutput, GuestOutput) {
        let shared = Arc::new(Mutex::new(Shared { budget: cap, cap, truncated: false }));
        (GuestOutput { sink: Sink::Stdout, shared: shared.clone() }, GuestOutput { sink: Sink::Stderr, shared })
    }

    /// Whether the guest printed more than it may.
    pub fn truncated(&self) -> bool {
        self.shared.lock().map(|s| s.truncated).unwrap_or(false)
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
        Box::new(Writer { out: self.clone(), pending: Vec::new() })
    }
}

/// Keep printable text, newlines and tabs; drop every other control
/// character, C1 controls included (U+009B opens an escape sequence too).
pub fn sanitize(text: &str) -> String {
    text.chars().filter(|&c| c == '\n' || c == '\t' || !c.is_control()).collect()
}

struct Writer {
    out: GuestOutput,
    /// The start of a UTF-8 character cut off at the end of the last write.
    pending: Vec<u8>,
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
        if shared.truncated {
            return false;
        }
        let mut bytes = text.as_bytes();
        if bytes.len() > shared.budget {
            bytes = &bytes[..shared.budget];
            shared.truncated = true;
        }
        shared.budget -= bytes.len();
        let note = shared.truncated.then(|| format!("\n[nsw: guest output cut off after {} bytes]\n", shared.cap));
        drop(shared);
        let over = note.is_some();
        let _ = match self.out.sink {
            Sink::Stdout => write_all(&mut std::io::stdout().lock(), bytes, note),
            Sink::Stderr => write_all(&mut std::io::stderr().lock(), bytes, note),
        };
        !over
    }
}

fn write_all(w: &mut impl Write, bytes: &[u8], note: Option<String>) -> std::io::Result<()> {
    w.write_all(bytes)?;
    if let Some(note) = note {
        w.write_all(note.as_bytes())?;
    }
    w.flush()
}

impl AsyncWrite for Writer {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // A terminal write is short and bounded by the budget: done inline.
        // Past the budget the stream fails, so the guest stops printing.
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
    fn strips_escapes_keeps_text() {
        assert_eq!(sanitize("\u{1b}[2Jhello\u{1b}]0;title\u{7}\n\tok é"), "[2Jhello]0;title\n\tok é");
        assert_eq!(sanitize("a\u{9b}31mb\rc\u{7f}"), "a31mbc");
    }

    #[test]
    fn split_utf8_is_joined() {
        let (out, _) = GuestOutput::pair(100);
        let mut w = Writer { out, pending: Vec::new() };
        let e = "é".as_bytes();
        w.emit(&e[..1]);
        assert_eq!(w.pending, vec![e[0]]);
        w.emit(&e[1..]);
        assert!(w.pending.is_empty());
    }

    #[test]
    fn budget_is_shared_and_capped() {
        let (out, err) = GuestOutput::pair(10);
        let mut a = Writer { out: out.clone(), pending: Vec::new() };
        let mut b = Writer { out: err, pending: Vec::new() };
        assert!(a.emit(b"123456"));
        assert!(!out.truncated());
        assert!(!b.emit(b"7890ab"));
        assert!(out.truncated());
        assert!(!a.emit(b"x"));
        assert_eq!(out.shared.lock().unwrap().budget, 0);
    }
}
