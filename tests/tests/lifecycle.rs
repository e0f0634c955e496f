//! A lab never leaks: crashes at any point, kernel failures midway,
//! signals, concurrent runs, objects deleted or replaced by hand.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nsw_tests::{Machine, assert_no_leak, check, guest, ip_in, named_netns, stderr, text, unique};
use serde_json::Value;

/// The grant that lets a star build its bridge and NAT on the machine.
const STAR_HOST_NET: &str = "host-net=10.213.0.0/16";

fn lab_state(machine: &Machine, lab: &str) -> Option<String> {
    let out = machine.nsw(&["ls", "--json"]);
    let labs: Value = serde_json::from_slice(&out.stdout).expect("ls --json");
    labs.as_array()?.iter().find(|l| l["name"] == lab).map(|l| l["state"].as_str().unwrap().to_string())
}

/// Once `ready` holds (within 30 s), send `signal` to the running nsw and
/// check that it stopped, rolled the lab back, and left nothing.
fn stop_when_ready(
    machine: &Machine,
    before: &nsw_tests::Snapshot,
    lab: &str,
    child: std::process::Child,
    ready: impl Fn() -> bool,
    signal: nix::sys::signal::Signal,
    status: i32,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "the script never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(status), "{}", text(&out));
    let name = signal.as_str();
    assert!(stderr(&out).contains(&format!("stopped by {name}")) && stderr(&out).contains("rolled back"), "{}", text(&out));
    assert_no_leak(lab, machine, before);
}

/// After a crash: `ls` says broken, `down` cleans up completely.
fn recover(machine: &Machine, lab: &str, before: &nsw_tests::Snapshot, point: &str) {
    if nsw_tests::journal_path(lab).exists() {
        assert_eq!(lab_state(machine, lab).as_deref(), Some("broken"), "{point}: ls does not say broken");
    }
    let down = machine.nsw(&["down", lab]);
    assert!(down.status.success(), "{point}: down failed: {}", text(&down));
    assert_no_leak(lab, machine, before);
}

#[test]
fn kill_9_anywhere_in_a_100_node_build_leaves_nothing_after_down() {
    let machine = Machine::with_outside("kill");
    let before = machine.snapshot();
    let star = guest("star");
    let star = star.to_str().unwrap();
    let lab = unique("k");

    // A reference build, to find where each phase lies in the journal.
    let out = machine.nsw(&["run", star, "--name", &lab, "--allow", STAR_HOST_NET, "--", "100", "routes", "nat"]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = std::fs::read_to_string(nsw_tests::journal_path(&lab)).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);

    let find = |what: &str, nth: usize| -> usize {
        lines.iter().enumerate().filter(|(_, l)| l.contains(what)).nth(nth).map(|(i, _)| i).unwrap_or_else(|| panic!("no {what} #{nth}"))
    };
    let mut points: Vec<(String, usize)> = vec![
        ("before anything".into(), 2),
        ("creating the bridge".into(), find(r#""type":"link","netns":"machine","name":"br0""#, 0)),
        ("bridge created, unconfirmed".into(), find(r#""type":"link","netns":"machine","name":"br0""#, 0) + 1),
        ("first namespace".into(), find(r#""type":"netns""#, 0)),
        ("first namespace created, unconfirmed".into(), find(r#""type":"netns""#, 0) + 1),
        ("namespace 50".into(), find(r#""type":"netns""#, 49)),
        ("namespace 100".into(), find(r#""type":"netns""#, 99) + 1),
        ("first veth".into(), find(r#""name":"v1""#, 0)),
        ("first veth created, unconfirmed".into(), find(r#""name":"v1""#, 0) + 2),
        ("veth 37".into(), find(r#""name":"v37""#, 0)),
        ("veth 37 peer".into(), find(r#""name":"v37""#, 0) + 1),
        ("veth 99 created, unconfirmed".into(), find(r#""name":"v99""#, 0) + 2),
        ("an address".into(), find(r#""type":"address""#, 60)),
        ("a route".into(), find(r#""type":"route""#, 70)),
        ("NAT table".into(), find(r#""type":"nft-table""#, 0)),
        ("NAT table created, unconfirmed".into(), find(r#""type":"nft-table""#, 0) + 1),
        ("forwarding".into(), find(r#""type":"shared-setting""#, 0)),
        ("forwarding held, unconfirmed".into(), find(r#""type":"shared-setting""#, 0) + 1),
    ];
    // And evenly spread points in between.
    for i in 1..=9 {
        points.push((format!("spread point {i}"), i * (lines.len() - 1) / 10));
    }
    assert!(points.len() >= 20);

    for (point, at) in &points {
        let lab = unique("k");
        let at = at.to_string();
        let out = machine.nsw_testing_env(&["run", star, "--name", &lab, "--allow", STAR_HOST_NET, "--", "100", "routes", "nat"], &[("NSW_TEST_KILL_AT", &at)]);
        // `timeout` passes the signal on by dying of it too.
        let killed = out.status.signal() == Some(9) || out.status.code() == Some(128 + 9);
        assert!(killed, "{point} (line {at}): nsw was not killed: {}", text(&out));
        recover(&machine, &lab, &before, point);
    }

    // Kills at moments nobody chose.
    for i in 0..6u64 {
        let lab = unique("k");
        let mut child = machine.spawn(&["run", star, "--name", &lab, "--allow", STAR_HOST_NET, "--", "100", "routes", "nat"], &[]);
        std::thread::sleep(Duration::from_millis(15 + i * 37));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            recover(&machine, &lab, &before, &format!("random kill {i}"));
        } else {
            // It finished first: take it down the normal way.
            assert!(machine.nsw(&["down", &lab]).status.success());
            assert_no_leak(&lab, &machine, &before);
        }
    }
}

#[test]
fn a_name_taken_midway_rolls_back_and_leaves_the_foreign_object() {
    let machine = Machine::new("taken");
    let before = machine.snapshot();
    let lab = unique("t");
    // Someone else's namespace, with the name the star's 5th node would get.
    let foreign = format!("{lab}-h5");
    check("ip", &["netns", "add", &foreign]);
    let inode = std::fs::metadata(format!("/run/netns/{foreign}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();

    let out = machine.nsw(&["run", guest("star").to_str().unwrap(), "--name", &lab, "--", "10"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains(&format!("exists: create netns {foreign}: File exists")), "{}", text(&out));
    assert!(stderr(&out).contains("rolled back"), "{}", text(&out));
    // Nodes 1-4 and the lab's host are gone; the foreign namespace is not.
    assert_eq!(named_netns(&lab), vec![foreign.clone()]);
    let still = std::fs::metadata(format!("/run/netns/{foreign}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert_eq!(still, inode, "the foreign namespace was replaced");
    check("ip", &["netns", "del", &foreign]);
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn a_link_taken_on_the_machine_rolls_back_and_stays() {
    let machine = Machine::new("taken");
    ip_in(&machine.name, &["link", "add", "br0", "type", "bridge"]);
    let before = machine.snapshot();
    let lab = unique("t");
    let out = machine.nsw(&["run", guest("star").to_str().unwrap(), "--name", &lab, "--allow", STAR_HOST_NET, "--", "10"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("exists: the machine's namespace already has a link named br0"), "{}", text(&out));
    assert_no_leak(&lab, &machine, &before);
}

fn interrupt_midway(signal: nix::sys::signal::Signal, status: i32) {
    let machine = Machine::with_outside("sig");
    let before = machine.snapshot();
    let lab = unique("s");
    let child = machine.spawn(&["run", guest("star").to_str().unwrap(), "--name", &lab, "--allow", STAR_HOST_NET, "--", "400", "nat"], &[]);
    stop_when_ready(&machine, &before, &lab, child, || named_netns(&lab).len() >= 20, signal, status);
}

#[test]
fn sigint_during_a_build_rolls_back() {
    interrupt_midway(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn sigint_stops_a_script_busy_in_its_own_code() {
    // The script builds a namespace, then loops without calling nsw: the
    // signal must still stop it (not the 60 s deadline) and roll it back.
    let machine = Machine::new("sig");
    let before = machine.snapshot();
    let lab = unique("s");
    let child = machine.spawn(&["run", guest("misuse").to_str().unwrap(), "--name", &lab, "--", "loop"], &[]);
    let base = format!("{lab}-base");
    let ready = || {
        let made = named_netns(&base).contains(&base);
        if made {
            // Into its loop by now.
            std::thread::sleep(Duration::from_millis(100));
        }
        made
    };
    stop_when_ready(&machine, &before, &lab, child, ready, nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn sigterm_during_a_build_rolls_back() {
    interrupt_midway(nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn one_lab_is_built_by_one_nsw_at_a_time_and_different_labs_in_parallel() {
    let machine = Machine::new("conc");
    let before = machine.snapshot();
    let star = guest("star");
    let star = star.to_str().unwrap();
    let (lab, other) = (unique("c"), unique("c"));
    let first = machine.spawn(&["run", star, "--name", &lab, "--", "60"], &[]);
    let second = machine.spawn(&["run", star, "--name", &lab, "--", "60"], &[]);
    let third = machine.spawn(&["run", star, "--name", &other, "--", "60"], &[]);
    let outs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let won: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
    let lost: Vec<_> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!((won.len(), lost.len()), (1, 1), "{}\n{}", text(&outs[0]), text(&outs[1]));
    let why = stderr(lost[0]);
    assert!(lost[0].status.code() == Some(2) && (why.contains("is busy") || why.contains("already exists")), "{}", text(lost[0]));
    let third = third.wait_with_output().unwrap();
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(named_netns(&format!("{lab}-h")).len(), 60);
    assert_eq!(named_netns(&format!("{other}-h")).len(), 60);
    // Two downs at once: both succeed, one does the work.
    let downs = [machine.spawn(&["down", &lab], &[]), machine.spawn(&["down", &lab], &[])];
    for down in downs {
        let out = down.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(machine.nsw(&["down", &other]).status.success());
    assert_no_leak(&lab, &machine, &before);
    assert_no_leak(&other, &machine, &before);
}

#[test]
fn down_after_a_user_deleted_namespaces_by_hand() {
    let machine = Machine::new("hand");
    let before = machine.snapshot();
    let lab = unique("d");
    assert!(machine.nsw(&["run", guest("pbj").to_str().unwrap(), "--name", &lab]).status.success());
    let listing: Value = serde_json::from_slice(&machine.nsw(&["ls", "--json"]).stdout).unwrap();
    let objects = listing.as_array().unwrap().iter().find(|l| l["name"] == lab.as_str()).unwrap()["objects"].as_u64().unwrap() as usize;
    check("ip", &["netns", "del", &format!("{lab}-pb")]);
    check("ip", &["netns", "del", &format!("{lab}-jelly")]);
    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    // The host's namespace and what was in it went; the nodes' namespaces,
    // with what was in them, were gone already: it all adds up to what
    // the lab had.
    let (removed, gone) = summary_counts(&stderr(&down));
    assert!(removed > 0 && gone > 0, "{}", text(&down));
    assert_eq!(removed + gone, objects, "{}", text(&down));
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn objects_replaced_by_hand_are_left_alone() {
    let machine = Machine::with_outside("repl");
    let before = machine.snapshot();
    let lab = unique("r");
    let out = machine.nsw(&["run", guest("pbj").to_str().unwrap(), "--name", &lab, "--allow", "host-net"]);
    assert!(out.status.success(), "{}", text(&out));
    // The user swaps the lab's bridge and one of its namespaces for their own.
    ip_in(&machine.name, &["link", "del", "brd1"]);
    ip_in(&machine.name, &["link", "add", "brd1", "type", "bridge"]);
    let jelly = format!("{lab}-jelly");
    check("ip", &["netns", "del", &jelly]);
    check("ip", &["netns", "add", &jelly]);

    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    let err = stderr(&down);
    assert!(err.contains("left alone bridge brd1 in the machine's namespace: it is another link now"), "{}", text(&down));
    assert!(err.contains(&format!("left alone netns {jelly}: it is another namespace now")), "{}", text(&down));
    assert!(err.contains("2 objects left alone"), "{}", text(&down));
    // Theirs are still there; everything of the lab's is gone.
    assert!(ip_in(&machine.name, &["link", "show", "brd1"]).contains("brd1"));
    assert_eq!(named_netns(&lab), vec![jelly.clone()]);
    check("ip", &["netns", "del", &jelly]);
    ip_in(&machine.name, &["link", "del", "brd1"]);
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn replace_takes_the_old_lab_down_first_and_down_all_clears_everything() {
    let machine = Machine::new("repl");
    let before = machine.snapshot();
    let lab = unique("p");
    let pbj = guest("pbj");
    assert!(machine.nsw(&["run", pbj.to_str().unwrap(), "--name", &lab]).status.success());
    let again = machine.nsw(&["run", pbj.to_str().unwrap(), "--name", &lab, "--replace"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(stderr(&again).contains(&format!("replaced: took down the old lab {lab}")), "{}", text(&again));
    nsw_tests::pbj::verify(&lab, &lab);
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn down_stops_what_runs_inside_the_lab_and_the_namespaces_really_go() {
    let machine = Machine::new("procs");
    let lab = machine.lab("p");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let pb = format!("{}-pb", lab.name);
    let inode = std::fs::metadata(format!("/run/netns/{pb}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    // A server someone started in a node, and left running.
    let mut server = machine.spawn(&["exec", &lab.name, "pb", "--", "sleep", "1000"], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_node = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::metadata(e.path().join("ns/net")).map(|m| std::os::unix::fs::MetadataExt::ino(&m) == inode).unwrap_or(false)
        })
    };
    while !in_node() {
        assert!(Instant::now() < deadline, "the server never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let down = lab.down_and_check();
    assert!(stderr(&down).contains("stopped 1 process inside"), "{}", text(&down));
    let status = server.wait().unwrap();
    assert!(!status.success(), "the server was not stopped: {status:?}");
    assert!(!in_node(), "a process still holds netns {pb}");
}

#[test]
fn ls_shows_a_builder_only_while_it_builds_and_replace_counts_everything() {
    let machine = Machine::new("ls");
    let lab = machine.lab("l");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let listing = machine.nsw(&["ls", "--json"]);
    let labs: Value = serde_json::from_slice(&listing.stdout).unwrap();
    let entry = labs.as_array().unwrap().iter().find(|l| l["name"] == lab.name.as_str()).unwrap().clone();
    assert_eq!(entry["pid"], Value::Null, "ls shows the pid of a builder that is gone: {entry}");
    let objects = entry["objects"].as_u64().unwrap();
    let again = lab.run_ok(&guest("pbj"), &["--replace"], &[]);
    assert!(stderr(&again).contains(&format!("took down the old lab {} (removed {objects} objects)", lab.name)), "{}", text(&again));
    lab.down_and_check();
}

/// The counts in "removed N objects, M objects already gone".
fn summary_counts(text: &str) -> (usize, usize) {
    let number_before = |marker: &str| -> usize {
        text.split(marker).next().and_then(|before| before.split_whitespace().last()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let removed = text.split("removed ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    let gone = if text.contains("already gone") { number_before(" objects already gone").max(number_before(" object already gone")) } else { 0 };
    (removed, gone)
}

/// A run killed between making its journal and writing its first line
/// (a window the random kills above can hit): `ls` says broken, `down`
/// removes it and frees the name.
#[test]
fn a_journal_killed_before_its_first_line_is_broken_and_down_removes_it() {
    let machine = Machine::new("empty");
    let before = machine.snapshot();
    let lab = unique("e");
    std::fs::write(nsw_tests::journal_path(&lab), b"").unwrap();
    assert_eq!(lab_state(&machine, &lab).as_deref(), Some("broken"));
    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert_no_leak(&lab, &machine, &before);
}
