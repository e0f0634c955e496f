//! `nsw test FILE.wasm`: run a lab like `run --rm`, and report what its
//! checks found: a table, JUnit XML (`--junit`, for CI systems), JSON
//! (`--json`). Exit status 0 if and only if the script ran to its end and
//! every check passed; the lab goes down either way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::run::{self, Built, RunArgs};
use super::{CommandResult, Failure, Status, say};
use crate::encode::terminal::one_line;

#[derive(Args)]
pub struct TestArgs {
    /// Write the checks as JUnit XML (one testcase per check) to PATH.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write the checks and probes as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

impl TestArgs {
    /// See [`RunArgs::boundary_plan`]; the reports are written from behind it.
    pub(crate) fn boundary_plan(&self) -> anyhow::Result<Option<crate::boundary::Plan>> {
        self.run.boundary_plan(self.junit.iter().chain(&self.json).cloned().collect())
    }
}

/// One line of the report: a check, or the script's own run.
pub(crate) struct Verdict {
    name: String,
    passed: bool,
    detail: String,
    /// What reaching the verdict took, in seconds.
    seconds: f64,
}

/// The script's checks alone, as `nsw run` prints them.
pub(crate) fn checks_of(findings: &crate::lab::Findings) -> Vec<Verdict> {
    findings.checks.iter().map(|c| Verdict { name: c.name.clone(), passed: c.passed, detail: c.detail.clone(), seconds: c.seconds }).collect()
}

/// How many of `verdicts` failed.
pub(crate) fn failed(verdicts: &[Verdict]) -> usize {
    verdicts.iter().filter(|v| !v.passed).count()
}

pub async fn exec(args: TestArgs) -> CommandResult {
    let built = run::build(&args.run, true).await?;
    let verdicts = verdicts(&built);
    print_table(&verdicts);
    let failed = failed(&verdicts);
    if let Some(path) = &args.junit {
        write_junit(path, &built, &verdicts).map_err(|e| Failure::new(Status::Usage, e))?;
    }
    if let Some(path) = &args.json {
        write_json(path, &built, &verdicts).map_err(|e| Failure::new(Status::Usage, e))?;
    }
    say!("nsw: {} of {} passed{}", verdicts.len() - failed, verdicts.len(), if failed == 0 { String::new() } else { format!(", {failed} failed") });
    Ok(if failed == 0 { Status::Success } else { Status::GuestError })
}

/// The script's run first (it passes if it ran to its end), then each check.
fn verdicts(built: &Built) -> Vec<Verdict> {
    let mut all = vec![Verdict {
        name: "the script runs to its end".into(),
        passed: built.failure.is_none(),
        detail: built.failure.clone().unwrap_or_else(|| format!("in {:.2} s", built.elapsed.as_secs_f64())),
        seconds: built.elapsed.as_secs_f64(),
    }];
    all.extend(checks_of(&built.findings));
    all
}

pub(crate) fn print_table(verdicts: &[Verdict]) {
    let width = verdicts.iter().map(|v| v.name.chars().count()).max().unwrap_or(5).clamp(5, 60);
    say!("{:<width$}  RESULT  DETAIL", "CHECK");
    for v in verdicts {
        let name: String = v.name.chars().take(width).collect();
        say!("{name:<width$}  {:<6}  {}", if v.passed { "pass" } else { "FAIL" }, one_line(&v.detail));
    }
}

fn write_junit(path: &Path, built: &Built, verdicts: &[Verdict]) -> anyhow::Result<()> {
    let document = junit(&built.lab, built.elapsed, verdicts)?;
    crate::access::write_output(path, document.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// The JUnit report of lab `lab`'s checks.
fn junit(lab: &str, elapsed: std::time::Duration, verdicts: &[Verdict]) -> anyhow::Result<String> {
    // Every text through the XML encoder: a name may hold what XML forbids.
    let xml = crate::encode::xml::text;
    let mut suite = TestSuite::new(xml(lab));
    for v in verdicts {
        let status = if v.passed {
            TestCaseStatus::success()
        } else {
            let mut failure = TestCaseStatus::non_success(NonSuccessKind::Failure);
            failure.set_message(xml(&v.detail));
            failure
        };
        let mut case = TestCase::new(xml(&v.name), status);
        case.set_classname(format!("nsw.{}", xml(lab)));
        case.set_time(std::time::Duration::from_secs_f64(v.seconds.max(0.0)));
        if v.passed && !v.detail.is_empty() {
            case.set_system_out(xml(&v.detail));
        }
        suite.add_test_case(case);
    }
    suite.set_time(elapsed);
    let mut report = Report::new("nsw test");
    report.add_test_suite(suite);
    report.to_string().context("writing the JUnit report")
}

fn write_json(path: &Path, built: &Built, verdicts: &[Verdict]) -> anyhow::Result<()> {
    let checks: Vec<serde_json::Value> =
        verdicts.iter().map(|v| serde_json::json!({ "name": v.name, "passed": v.passed, "detail": v.detail, "seconds": v.seconds })).collect();
    let value = serde_json::json!({
        "lab": built.lab,
        "passed": verdicts.iter().all(|v| v.passed),
        "seconds": built.elapsed.as_secs_f64(),
        "failure": built.failure,
        "checks": checks,
        "probes": built.findings.probes,
    });
    crate::access::write_output(path, serde_json::to_string_pretty(&value)?.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod junit_props {
    use proptest::prelude::*;

    use super::{Verdict, junit};

    proptest! {
        /// Any name and detail a script reports (every character, XML's
        /// forbidden ones among them) gives a document XML 1.0 allows,
        /// which an XML reader reads back, each name as the encoder wrote it.
        #[test]
        fn the_junit_report_is_xml_for_any_check(checks in proptest::collection::vec((any::<String>(), any::<String>(), any::<bool>()), 1..8)) {
            let verdicts: Vec<Verdict> = checks.iter().map(|(name, detail, passed)| Verdict { name: name.clone(), passed: *passed, detail: detail.clone(), seconds: 0.5 }).collect();
            let document = junit("lab", std::time::Duration::from_secs(1), &verdicts).unwrap();
            prop_assert!(document.chars().all(crate::encode::xml::allowed), "a character XML forbids: {document:?}");
            let mut reader = quick_xml::Reader::from_str(&document);
            let mut names = Vec::new();
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) if e.name().as_ref() == b"testcase" => {
                        let name = e.try_get_attribute("name").unwrap().expect("a testcase without a name");
                        names.push(name.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned());
                    }
                    Ok(_) => {}
                    Err(e) => prop_assert!(false, "not XML: {e}: {document:?}"),
                }
            }
            let wanted: Vec<String> = checks.iter().map(|(name, _, _)| crate::encode::xml::text(name)).collect();
            prop_assert_eq!(names, wanted);
        }
    }
}
