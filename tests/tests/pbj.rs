//! The pb-and-jelly lab, built by the real nsw from the real pbj.wasm.

use nsw_tests::{Machine, assert_no_leak, guest, pbj, stderr, stdout, text, unique};

#[test]
fn pbj_contained_builds_every_step_and_goes_away() {
    pbj::run_contained(&guest("pbj"));
}

#[test]
fn pbj_host_net_reaches_the_outside_through_masquerade() {
    pbj::run_host_net(&guest("pbj"));
}

#[test]
fn ls_exec_and_a_second_run_of_a_lab_that_is_up() {
    let machine = Machine::new("pbjl");
    let before = machine.snapshot();
    let lab = unique("pl");
    let pbj = guest("pbj");
    let out = machine.nsw(&["run", pbj.to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "{}", text(&out));

    // ls shows it, with its namespaces.
    let ls = machine.nsw(&["ls", "--json"]);
    let labs: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("ls --json is JSON");
    let entry = labs.as_array().unwrap().iter().find(|l| l["name"] == lab.as_str()).expect("lab listed");
    assert_eq!(entry["state"], "up");
    let nodes: Vec<&str> = entry["namespaces"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["host", "pb", "jelly"]);

    // exec runs in the node, with /sys showing the node's interfaces.
    let exec = machine.nsw(&["exec", &lab, "jelly", "--", "ls", "/sys/class/net"]);
    assert!(exec.status.success(), "{}", text(&exec));
    assert_eq!(stdout(&exec).split_whitespace().collect::<Vec<_>>(), ["lo", "veth-jelly"]);

    // A second run of the same lab is refused and changes nothing.
    let again = machine.nsw(&["run", pbj.to_str().unwrap(), "--name", &lab]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(stderr(&again).contains("already exists"), "{}", text(&again));
    pbj::verify(&lab, &lab);

    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert_no_leak(&lab, &machine, &before);
    // down is idempotent
    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success() && stderr(&down).contains("nothing to do"), "{}", text(&down));
}

#[test]
fn pbj_rm_takes_the_lab_down_and_the_cache_is_reused() {
    let machine = Machine::new("pbjr");
    let before = machine.snapshot();
    let lab = unique("pr");
    let cache = std::env::temp_dir().join(unique("nsw-cache-"));
    let cache_env = [("NSW_CACHE_DIR", cache.to_str().unwrap())];
    let pbj = guest("pbj");

    let first = machine.nsw_env(&["-v", "run", "--rm", pbj.to_str().unwrap(), "--name", &lab], &cache_env);
    assert!(first.status.success(), "{}", text(&first));
    assert!(stderr(&first).contains("compiled now"), "{}", text(&first));
    assert_no_leak(&lab, &machine, &before);
    // Compiled behind the privilege boundary: in the cache's own part.
    let cached: Vec<_> = std::fs::read_dir(cache.join("contained")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1, "one compiled component in the cache: {cached:?}");
    assert!(cached[0].extension().is_some_and(|e| e == "cwasm"));

    let second = machine.nsw_env(&["-v", "run", "--rm", pbj.to_str().unwrap(), "--name", &lab], &cache_env);
    assert!(second.status.success(), "{}", text(&second));
    assert!(stderr(&second).contains("from the compiled cache"), "{}", text(&second));
    pbj::check_progress(&stdout(&second));
    assert_no_leak(&lab, &machine, &before);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn the_readme_example_runs() {
    let machine = Machine::new("readme");
    let lab = machine.lab("rx");
    let out = lab.run_ok(&guest("two_hosts"), &["--rm"], &[]);
    assert!(stdout(&out).contains("3/3 replies"), "{}", text(&out));
    lab.assert_gone();
}

#[test]
fn a_contained_lab_reaches_the_outside_through_its_uplink() {
    let machine = Machine::with_outside("upl");
    let before = machine.snapshot();
    let lab = unique("up");
    let wasm = guest("uplink_ping");

    // Without the grant it does not even start.
    let refused = machine.nsw(&["run", wasm.to_str().unwrap(), "--name", &lab, "--", nsw_tests::OUTSIDE_ADDR]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(stderr(&refused).contains("add --allow uplink"), "{}", text(&refused));
    assert_no_leak(&lab, &machine, &before);

    let out = machine.nsw(&["run", wasm.to_str().unwrap(), "--name", &lab, "--allow", "uplink", "--", nsw_tests::OUTSIDE_ADDR]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("a -> 203.0.113.1: reply"), "{}", text(&out));
    // The outside saw only the machine's address: the uplink is
    // user-mode NAT (pasta), whose packets leave from the machine's own
    // sockets.
    let (from_machine, from_lab) = machine.outside_counts();
    assert!(from_machine >= 1 && from_lab == 0, "{from_machine} {from_lab}");
    // The lab's host has uplink0 with an address from 100.64.0.0/10 and a
    // default route through it; the machine did not change at all: no
    // link, no table, no forwarding. Only pasta runs for the lab.
    let uplink = nsw_tests::ip_in(&lab, &["-br", "address", "show", "dev", "uplink0"]);
    assert!(uplink.contains(" 100."), "{uplink}");
    assert!(nsw_tests::ip_in(&lab, &["route", "show", "default"]).contains("dev uplink0"));
    assert_eq!(machine.snapshot(), before, "the uplink changed the machine");
    assert_eq!(nsw_tests::processes_mentioning(&format!("/run/netns/{lab} ")).len(), 1, "no pasta for {lab}");

    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
    assert!(nsw_tests::processes_mentioning(&format!("/run/netns/{lab} ")).is_empty(), "pasta outlived the lab");
}

#[test]
fn a_closed_output_pipe_rolls_the_lab_back_and_nothing_panics() {
    let machine = Machine::new("pipe");
    let lab = machine.lab("cp");
    // `| head -1` closes the pipe after one line, long before the lab is done.
    let script = format!(
        "set -o pipefail; nsenter --net=/run/netns/{} {} -v run {} --rm --name {} 2>&1 | head -1",
        machine.name,
        nsw_tests::nsw_bin().display(),
        guest("pbj").display(),
        lab.name
    );
    let out = nsw_tests::run("bash", &["-c", &script]);
    // nsw ended by the closed pipe (141), not by a panic (101).
    assert_eq!(out.status.code(), Some(141), "{}", text(&out));
    let listing = machine.nsw(&["ls", "--json"]);
    let labs: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert!(!labs.as_array().unwrap().iter().any(|l| l["name"] == lab.name.as_str()), "ls still shows {}: {labs}", lab.name);
    lab.assert_gone();
}

#[test]
fn exec_without_a_command_opens_the_shell() {
    let machine = Machine::new("shell");
    let lab = machine.lab("sh");
    lab.run_ok(&guest("pbj"), &[], &[]);
    // $SHELL, run in the node: here a script that lists its interfaces.
    let shell = std::env::temp_dir().join(unique("nsw-shell-"));
    std::fs::write(&shell, "#!/bin/sh\nls /sys/class/net\n").unwrap();
    std::fs::set_permissions(&shell, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = machine.nsw_env(&["exec", &lab.name, "jelly"], &[("SHELL", shell.to_str().unwrap())]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).split_whitespace().collect::<Vec<_>>(), ["lo", "veth-jelly"]);
    std::fs::remove_file(&shell).unwrap();
    lab.down_and_check();
}

#[test]
fn a_lab_script_built_against_the_first_wit_runs_unchanged() {
    // pbj.wasm as built against nsw:lab@0.1.0, kept as it was.
    let fixture = nsw_tests::workspace().join("tests/fixtures/pbj-wit-0.1.0.wasm");
    pbj::run_contained(&fixture);
}
