//! `process.wait-ready`: a daemon is ready when its node has a socket on
//! its port, a path of its node's files exists (its control socket), or
//! its output holds a line; asked of the backend until a deadline.

use std::time::Duration;

use super::Lab;
use super::process::Background;
use crate::backend::{Exit, ReadyProbe};
use crate::error::{ErrorKind, LabError, LabResult};
use crate::policy::quoted;

/// What a script waits for, as it asked.
#[derive(Debug, Clone)]
pub enum Readiness {
    TcpListening(u16),
    UdpBound(u16),
    PathExists(String),
    OutputContains(String),
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readiness::TcpListening(port) => write!(f, "TCP port {port} listening"),
            Readiness::UdpBound(port) => write!(f, "UDP port {port} bound"),
            Readiness::PathExists(path) => write!(f, "{} existing", quoted(path)),
            Readiness::OutputContains(text) => write!(f, "its output holding {}", quoted(text)),
        }
    }
}

/// How often readiness is asked again: a daemon takes milliseconds to
/// seconds to come up, and each look is a read of a kernel table (or, for a
/// path, a fork that joins the node's files).
const POLL: Duration = Duration::from_millis(10);

/// The end of a program's output, for saying why it failed.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines[lines.len().saturating_sub(3)..].join(" / ");
    let cut: String = last.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
    if cut.is_empty() { "(it printed nothing)".into() } else { cut }
}

impl Lab {
    /// Wait up to `timeout_ms` for `running` to be ready as `ready` says.
    pub async fn wait_ready(&mut self, running: &mut Background, ready: &Readiness, timeout_ms: u32) -> LabResult<()> {
        self.refuse_if_stopped()?;
        if !(1..=600_000).contains(&timeout_ms) {
            return Err(LabError::invalid(format!("wait-ready timeout {timeout_ms} ms is out of range 1-600000")));
        }
        let ns = running.ns;
        let what = format!("wait for {} in {} to be ready ({ready})", quoted(&running.name), self.describe_ns(ns));
        let probe = match ready {
            Readiness::TcpListening(port) | Readiness::UdpBound(port) => {
                if *port == 0 {
                    return Err(LabError::invalid(format!("{what}: port 0 is no port")));
                }
                ReadyProbe::Port { udp: matches!(ready, Readiness::UdpBound(_)), port: *port }
            }
            Readiness::PathExists(path) => ReadyProbe::Path(self.node_path("wait-ready", ns, path)?.0),
            Readiness::OutputContains(text) => {
                self.check_strings("wait-ready", &[text])?;
                if text.is_empty() || text.contains('\n') {
                    return Err(LabError::invalid(format!("{what}: the text is one line, not empty")));
                }
                ReadyProbe::Output { log: running.log.clone(), text: text.clone() }
            }
        };
        self.alive(ns).await?;
        let node = self.node_identity(ns);
        let until = tokio::time::Instant::now() + Duration::from_millis(timeout_ms as u64);
        loop {
            if self.backend.program_ready(ns, node.as_ref(), &probe).await.map_err(|e| LabError::os(&what, &e))? {
                return Ok(());
            }
            // A daemon that forked to the background exits 0: its child
            // may still get ready. Any other end is the end.
            match self.poll_background(running)? {
                None | Some(Exit::Code(0)) => {}
                Some(exit) => {
                    let how = match exit {
                        Exit::Code(code) => format!("exited with code {code}"),
                        Exit::Signal(signal) => format!("was ended by signal {signal}"),
                    };
                    let output = crate::access::files::read(&running.log).unwrap_or_default();
                    return Err(LabError::new(ErrorKind::Os, format!("{what}: it {how} first; its output ends: {}", tail(&output))));
                }
            }
            if self.stop().requested() {
                return Err(LabError::stopped());
            }
            if tokio::time::Instant::now() >= until {
                let output = crate::access::files::read(&running.log).unwrap_or_default();
                return Err(LabError::new(ErrorKind::Os, format!("{what}: not ready after {timeout_ms} ms; its output ends: {}", tail(&output))));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_end_of_a_programs_output_is_its_last_lines() {
        assert_eq!(super::tail(b"one\ntwo\n\nthree\nfour\n"), "two / three / four");
        assert_eq!(super::tail(b""), "(it printed nothing)");
        assert_eq!(super::tail("é".repeat(500).as_bytes()).chars().count(), 400);
    }
}
