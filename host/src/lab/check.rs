//! `check`: what a script records for the report of `nsw test`, and every
//! probe it made.

use super::Lab;
use crate::error::LabResult;
use crate::encode::terminal::one_line;

/// A check the script recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRecord {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// Seconds from the script's previous check (or the lab's start) to
    /// this one: what reaching its verdict took.
    pub seconds: f64,
}

/// A probe the script made, as the report shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeRecord {
    /// `ping`, `tcp-connect`, `throughput`, `trace`.
    pub kind: &'static str,
    pub from: String,
    pub target: String,
    /// What it found, in a line.
    pub result: String,
}

/// A check's name is at most so many characters (the WIT says so).
const MAX_NAME_CHARS: usize = 200;

/// At most `max` characters of `text`, with a mark where it was cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// At most `max` bytes of `text` (on a character boundary), saying how
/// much was cut.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let note = format!("... ({} bytes in all)", text.len());
    let room = max.saturating_sub(note.len());
    let end = (0..=room).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}{note}", &text[..end])
}

/// What a run found: its checks and probes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Findings {
    pub checks: Vec<CheckRecord>,
    pub probes: Vec<ProbeRecord>,
}

impl Lab {
    /// Record a check: its name cut to 200 characters and its detail to
    /// `--max-check-detail` bytes (as the report keeps them: on one line,
    /// escaped); past `--max-checks` checks or `--max-report` bytes in all,
    /// refused.
    pub fn report_check(&mut self, name: &str, passed: bool, detail: &str) -> LabResult<()> {
        self.calls += 1;
        self.check_strings("check.report", &[name, detail])?;
        self.quotas.checks.take(1, "")?;
        let name = if name.trim().is_empty() { "(unnamed)".to_string() } else { one_line(name.trim()) };
        let name = cut(&name, MAX_NAME_CHARS);
        let detail = cut_bytes(&one_line(detail), self.limits.check_detail_bytes);
        let size = name.len() + detail.len();
        if self.report_bytes + size > self.limits.report_bytes {
            return Err(crate::policy::quota_error(
                &format!("the script's checks have {} bytes of names and details", self.report_bytes),
                format!("{} KiB", self.limits.report_bytes / 1024),
                "--max-report",
            ));
        }
        self.report_bytes += size;
        let now = std::time::Instant::now();
        let seconds = now.duration_since(self.last_check).as_secs_f64();
        self.last_check = now;
        self.findings.checks.push(CheckRecord { name, passed, detail, seconds });
        Ok(())
    }

    /// Note a probe for the report (bounded by the probes' own quotas).
    pub(super) fn note_probe(&mut self, kind: &'static str, from: String, target: String, result: String) {
        if self.findings.probes.len() < 100_000 {
            self.findings.probes.push(ProbeRecord { kind, from, target, result });
        }
    }

    /// What the run found so far.
    pub fn findings(&self) -> &Findings {
        &self.findings
    }
}
