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

/// What a run found: its checks and probes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Findings {
    pub checks: Vec<CheckRecord>,
    pub probes: Vec<ProbeRecord>,
}

impl Lab {
    pub fn report_check(&mut self, name: &str, passed: bool, detail: &str) -> LabResult<()> {
        self.calls += 1;
        self.check_strings("check.report", &[name, detail])?;
        self.quotas.checks.take(1, "")?;
        let name = if name.trim().is_empty() { "(unnamed)".to_string() } else { one_line(name.trim()) };
        let name: String = name.chars().take(200).collect();
        self.findings.checks.push(CheckRecord { name, passed, detail: one_line(detail) });
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
