//! Every output encoded for its reader, every resource bounded, every
//! wait ending: the hostile `outputs` guest against the real nsw, each in
//! a throwaway machine namespace. (It imports `process` for its `fds`
//! attack, so every run grants `exec=ls`.)

use std::process::Command;
use std::time::{Duration, Instant};

use nsw_tests::{Machine, guest, stderr, stdout, text, unique};

/// What a careless encoder merges stays apart in the graph, in every
/// format: `web.1` and `web_1` are two boxes with an edge each.
#[test]
fn graph_ids_never_merge_two_nodes() {
    let machine = Machine::new("gid");
    let lab = machine.lab("gi");
    lab.run_ok(&guest("hostile_outputs"), &["--allow", "exec=ls"], &["nodes", "web.1", "web_1", "a-b", "a_b"]);
    let json = machine.nsw(&["graph", &lab.name, "--format", "json"]);
    assert!(json.status.success(), "{}", text(&json));
    let graph: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let ids: std::collections::BTreeSet<String> =
        graph["vertices"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    let nodes = graph["vertices"].as_array().unwrap().iter().filter(|v| v["kind"] == "node").count();
    assert_eq!(ids.len(), graph["vertices"].as_array().unwrap().len(), "two vertices share an id: {graph}");
    assert!(nodes >= 4, "{graph}");
    // dot draws as many boxes as there are vertices.
    let dot = machine.nsw(&["graph", &lab.name, "--format", "dot"]);
    let rendered = Command::new("dot").arg("-Tplain").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    rendered.stdin.as_ref().unwrap().write_all(&dot.stdout).unwrap();
    let plain = rendered.wait_with_output().unwrap();
    let boxes = String::from_utf8_lossy(&plain.stdout).lines().filter(|l| l.starts_with("node ")).count();
    assert_eq!(boxes, ids.len(), "{}", String::from_utf8_lossy(&dot.stdout));
    lab.down_and_check();
}

/// Checks whose names and details hold what XML forbids, markup, and DEL
/// (six bytes each once escaped): the JUnit file is XML (Python's parser
/// reads it), and what nsw keeps and prints is bounded by its limits.
#[test]
fn hostile_checks_make_valid_junit_and_bounded_reports() {
    let machine = Machine::new("chk");
    let name = unique("ck");
    let junit = std::env::temp_dir().join(format!("{name}.xml"));
    let json = std::env::temp_dir().join(format!("{name}.json"));
    let out = machine.nsw(&[
        "test",
        guest("hostile_outputs").to_str().unwrap(),
        "--name",
        &name,
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--allow",
        "exec=ls",
        "--",
        "checks",
        "400",
        "4000",
    ]);
    // Half the checks fail by design: exit 1, and the reports are written.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let parsed = nsw_tests::run("python3", &["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(len(r.iter('testcase').__next__().attrib))", junit.to_str().unwrap()]);
    assert!(parsed.status.success(), "the JUnit file is not XML: {}", text(&parsed));
    // 400 checks of 4000 bytes each would be 9.6 MB escaped: cut to the
    // detail limit (4096 bytes) and the report's (1 MiB in all).
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.len() < 2 << 20, "the JSON report is {} bytes", report.len());
    let printed = out.stdout.len() + out.stderr.len();
    assert!(printed < 2 << 20, "nsw printed {printed} bytes");
    let value: serde_json::Value = serde_json::from_str(&report).unwrap();
    for check in value["checks"].as_array().unwrap() {
        assert!(check["detail"].as_str().unwrap().len() <= 4096, "{check}");
    }
    // The report's limit stopped the script, and said so.
    assert!(stderr(&out).contains("--max-report"), "{}", text(&out));
    let _ = std::fs::remove_file(&junit);
    let _ = std::fs::remove_file(&json);
}

/// A throughput probe on a lossy link, under way at the deadline: nsw ends
/// a few seconds after `--timeout`, the lab rolled back.
#[test]
fn a_probe_under_way_at_the_deadline_does_not_keep_nsw_running() {
    let machine = Machine::new("dl");
    let lab = machine.lab("dl");
    let started = Instant::now();
    let out = lab.run(&guest("hostile_outputs"), &["--timeout", "3", "--allow", "exec=ls"], &["lossy"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(took < Duration::from_secs(20), "nsw took {took:?} after a 3 s deadline: {}", text(&out));
    lab.assert_gone();
}

/// A program gets stdin, stdout and stderr, and none of the descriptors
/// nsw's caller left open.
#[test]
fn programs_inherit_no_descriptor_of_nsws_caller() {
    let machine = Machine::new("fd");
    let lab = machine.lab("fd");
    let net = format!("--net=/run/netns/{}", machine.name);
    let wasm = guest("hostile_outputs");
    // The caller leaves descriptor 7 open for nsw (as a CI runner's pipe).
    let script = format!(
        "exec 7</etc/hostname; exec nsenter {net} {} run {} --name {} --rm --allow exec=ls -- fds",
        nsw_tests::nsw_bin().display(),
        wasm.display(),
        lab.name
    );
    let out = nsw_tests::run("bash", &["-c", &script]);
    assert!(out.status.success(), "{}", text(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    let line = all.lines().find(|l| l.contains("fds:")).unwrap_or_default();
    let fds: Vec<&str> = line.split("fds:").nth(1).unwrap_or("").split_whitespace().collect();
    // 0, 1, 2 and the one ls opened to read the directory.
    assert!(!fds.is_empty() && !fds.contains(&"7"), "the program got {fds:?}: {}", text(&out));
    assert!(fds.len() <= 4, "the program got {fds:?}");
    lab.assert_gone();
}

/// `nsw capture` of a host-net lab reaches only the lab's own links in the
/// machine's namespace, as `nsw link` does.
#[test]
fn capture_refuses_the_machines_own_interfaces() {
    let machine = Machine::with_outside("cpm");
    let lab = machine.lab("cm");
    lab.run_ok(&guest("pbj"), &["--allow", "host-net"], &[]);
    let file = std::env::temp_dir().join(unique("nsw-cap-")).with_extension("pcapng");
    let out = machine.nsw(&["capture", &lab.name, "host:eth0", "-c", "1", "--duration", "1", "-w", file.to_str().unwrap()]);
    assert!(!out.status.success(), "captured the machine's eth0: {}", text(&out));
    assert!(stderr(&out).contains("not a link lab") && stderr(&out).contains("brd1"), "{}", text(&out));
    // The lab's own bridge there can be captured.
    let ok = machine.nsw(&["capture", &lab.name, "host:brd1", "-c", "1", "--duration", "1", "-w", file.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", text(&ok));
    let _ = std::fs::remove_file(&file);
    lab.down_and_check();
}

/// The script's memory and its services' together are bounded
/// (`--max-memory-total`): the web lab's second service (each may use as
/// much as the script, 64 MiB) does not fit in 150 MiB.
#[test]
fn the_services_memory_is_bounded_with_the_scripts() {
    let machine = Machine::new("mem");
    let lab = machine.lab("me");
    let out = lab.run(&guest("web"), &["--max-memory-total", "150"], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("start service") && stderr(&out).contains("--max-memory-total"), "{}", text(&out));
    lab.assert_gone();
    // With room for both, the same lab runs.
    let ok = machine.lab("me");
    ok.run_ok(&guest("web"), &["--rm", "--max-memory-total", "200"], &[]);
    ok.assert_gone();
    // Services that never started give their memory back: four junk
    // components in a row are each refused for what they are, not for a
    // memory that only the first could have taken.
    let junk = machine.lab("mj");
    let out = junk.run_ok(&guest("misuse"), &["--rm", "--max-memory-total", "150"], &["bad-services"]);
    let said = stdout(&out);
    assert_eq!(said.matches("junk service").count(), 4, "{}", text(&out));
    assert!(!said.contains("--max-memory-total"), "a failed start kept its memory: {}", text(&out));
    junk.assert_gone();
}
