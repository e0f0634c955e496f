//! nsw for an ordinary user, no root: labs in a user namespace of the
//! user's own, kept by one keeper process per user. Each test makes a
//! fresh user (a uid nobody has) and ends with nothing of that user left:
//! no process (the keeper included), nothing in its state directory, and
//! the machine as it was.

use std::os::unix::process::ExitStatusExt;

use nsw_tests::user::User;
use nsw_tests::{Machine, guest, lang_guest, named_netns, nsw_testing_bin, stderr, stdout, text, unique};

#[test]
fn an_ordinary_user_builds_pbj_uses_it_and_takes_it_down() {
    let machine = Machine::new("rl");
    let before = machine.snapshot();
    let user = User::new();
    let lab = unique("rl");
    let pbj = user.file(&guest("pbj"));
    let out = user.nsw(&machine, &["run", pbj.to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "{}", text(&out));
    nsw_tests::pbj::check_progress(&stdout(&out));
    assert!(stderr(&out).contains(&format!("lab {lab} is up")), "{}", text(&out));

    // Not the machine's: `ip netns` does not see it, and nothing changed.
    assert!(named_netns(&lab).is_empty(), "{:?}", named_netns(&lab));
    assert_eq!(machine.snapshot(), before, "a user's lab changed the machine");
    assert!(user.state_dir().join("labs").join(format!("{lab}.journal")).exists());

    let ls = user.nsw(&machine, &["ls"]);
    assert!(ls.status.success() && stdout(&ls).contains(&lab), "{}", text(&ls));
    // Inside the lab: real ICMP from pb to jelly, the bridge's address on
    // the lab's host.
    let ping = user.nsw(&machine, &["exec", &lab, "pb", "--", "ping", "-c", "1", "-W", "2", "10.0.0.11"]);
    assert!(ping.status.success() && stdout(&ping).contains("1 received"), "{}", text(&ping));
    let addr = user.nsw(&machine, &["exec", &lab, "host", "--", "ip", "-br", "address", "show", "dev", "brd1"]);
    assert!(stdout(&addr).contains("10.0.0.1/16"), "{}", text(&addr));
    let show = user.nsw(&machine, &["show", &lab, "--json"]);
    assert!(show.status.success(), "{}", text(&show));
    let shown = stdout(&show);
    assert!(shown.contains("\"pb\"") && shown.contains("\"jelly\"") && shown.contains("10.0.0.10/16"), "{shown}");

    // One keeper holds the user's namespaces while the lab is up...
    let running = user.processes();
    assert!(running.len() == 1 && running[0].contains("nsw"), "{running:?}");
    // ...and goes with the user's last lab.
    let down = user.nsw(&machine, &["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(stderr(&down).contains("no labs left: stopped the keeper"), "{}", text(&down));
    user.assert_nothing_left();
    let ls = user.nsw(&machine, &["ls"]);
    assert!(ls.status.success() && !stdout(&ls).contains(&lab), "{}", text(&ls));
    // `ls` with no labs starts no keeper.
    user.assert_nothing_left();
    assert_eq!(machine.snapshot(), before);
}

#[test]
fn pbj_in_every_language_runs_for_an_ordinary_user() {
    let machine = Machine::new("rlang");
    let before = machine.snapshot();
    let user = User::new();
    for wasm in [guest("pbj"), lang_guest("pbj-py"), lang_guest("pbj-js"), lang_guest("pbj-c")] {
        let wasm = user.file(&wasm);
        let out = user.nsw(&machine, &["run", wasm.to_str().unwrap(), "--name", &unique("rp"), "--rm"]);
        assert!(out.status.success(), "{}: {}", wasm.display(), text(&out));
        nsw_tests::pbj::check_progress(&stdout(&out));
        user.assert_nothing_left();
    }
    user.down_all(&machine);
    assert_eq!(machine.snapshot(), before);
}

#[test]
fn what_needs_root_says_so_and_leaves_nothing() {
    let machine = Machine::new("rlroot");
    let user = User::new();
    let pbj = user.file(&guest("pbj"));
    let out = user.nsw(&machine, &["run", pbj.to_str().unwrap(), "--allow", "host-net"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--allow host-net needs root"), "{}", text(&out));
    // A run that leaves the user no lab leaves no keeper either.
    user.assert_nothing_left();
    let out = user.nsw(&machine, &["run", pbj.to_str().unwrap(), "--allow", "exec", "--exec-user", "daemon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--exec-user needs root"), "{}", text(&out));
    user.down_all(&machine);
}

#[test]
fn kill_9_of_a_users_nsw_mid_build_then_down_leaves_nothing() {
    let machine = Machine::new("rlkill");
    let before = machine.snapshot();
    let user = User::new();
    let star = user.file(&guest("star"));
    for at in ["3", "40", "120", "250"] {
        let lab = unique("rk");
        let out = user
            .command(&machine, &nsw_testing_bin(), &["run", star.to_str().unwrap(), "--name", &lab, "--", "30", "routes"])
            .env("NSW_TEST_KILL_AT", at)
            .output()
            .unwrap();
        let killed = out.status.signal() == Some(9) || out.status.code() == Some(128 + 9);
        assert!(killed, "line {at}: nsw was not killed: {}", text(&out));
        let ls = user.nsw(&machine, &["ls"]);
        assert!(stdout(&ls).contains(&lab) && stdout(&ls).contains("broken"), "line {at}: {}", text(&ls));
        let down = user.nsw(&machine, &["down", &lab]);
        assert!(down.status.success(), "line {at}: {}", text(&down));
        // The lab was the user's last: its keeper went with it.
        user.assert_nothing_left();
    }
    user.down_all(&machine);
    assert_eq!(machine.snapshot(), before);
}

#[test]
fn two_users_never_see_each_others_labs() {
    let machine = Machine::new("rltwo");
    let (alice, bob) = (User::new(), User::new());
    let lab = unique("rt");
    let wasm = alice.file(&guest("two_hosts"));
    let out = alice.nsw(&machine, &["run", wasm.to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "{}", text(&out));

    // Bob sees nothing of it and can touch none of it...
    let ls = bob.nsw(&machine, &["ls"]);
    assert!(ls.status.success() && !stdout(&ls).contains(&lab), "{}", text(&ls));
    let exec = bob.nsw(&machine, &["exec", &lab, "a", "--", "true"]);
    assert!(!exec.status.success() && stderr(&exec).contains(&format!("there is no lab {lab}")), "{}", text(&exec));
    let down = bob.nsw(&machine, &["down", &lab]);
    assert!(stderr(&down).contains(&format!("there is no lab {lab}")), "{}", text(&down));
    // ...and has a lab of the same name of his own.
    let wasm = bob.file(&guest("two_hosts"));
    let out = bob.nsw(&machine, &["run", wasm.to_str().unwrap(), "--name", &lab, "--rm"]);
    assert!(out.status.success(), "{}", text(&out));

    // Alice's lab is still whole.
    let ls = alice.nsw(&machine, &["ls"]);
    assert!(stdout(&ls).contains(&lab), "{}", text(&ls));
    bob.down_all(&machine);
    alice.down_all(&machine);
}

#[test]
fn a_users_contained_lab_reaches_the_outside_through_pasta() {
    let machine = Machine::with_outside("rlup");
    let before = machine.snapshot();
    let user = User::new();
    let wasm = user.file(&guest("uplink_ping"));
    let out = user.nsw(&machine, &["run", wasm.to_str().unwrap(), "--name", &unique("ru"), "--allow", "uplink", "--rm", "--", nsw_tests::OUTSIDE_ADDR]);
    // pasta's tap needs /dev/net/tun, which some machines (this CI's) let
    // only root open: then the error says so, and nothing is left.
    let tun = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata("/dev/net/tun").unwrap().permissions());
    if tun & 0o006 != 0o006 {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(stderr(&out).contains("pasta needs /dev/net/tun, which this machine lets only root open"), "{}", text(&out));
        user.down_all(&machine);
        assert_eq!(machine.snapshot(), before);
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("a -> 203.0.113.1: reply"), "{}", text(&out));
    let (from_machine, from_lab) = machine.outside_counts();
    assert!(from_machine >= 1 && from_lab == 0, "{from_machine} {from_lab}");
    user.down_all(&machine);
    assert_eq!(machine.snapshot(), before);
}

#[test]
fn the_hostile_suites_contained_attacks_fail_alike_for_an_ordinary_user() {
    // (guest, flags, args, exit status, what stderr must say): the contained
    // cases of tests/hostile.rs, with the same expectations.
    let attacks: &[(&str, &[&str], &[&str], i32, &str)] = &[
        ("hostile_netns_escape", &[], &["../x"], 1, "invalid: netns name \"../x\" contains '/'"),
        ("hostile_netns_escape", &[], &["nul"], 1, "contains control character"),
        ("hostile_ifname", &[], &["bridge", "a/b"], 1, "invalid: interface name \"a/b\" contains '/'"),
        ("hostile_use_after", &[], &["dropped"], 3, "the script crashed"),
        ("hostile_flood", &[], &["netns"], 1, "(raise it with --max-netns)"),
        ("hostile_flood", &[], &["bridges"], 1, "(raise it with --max-bridges)"),
        ("hostile_flood", &["--max-pings", "500"], &["pings"], 1, "(raise it with --max-pings)"),
        ("hostile_flood", &[], &["stdout"], 1, "(raise it with --max-output)"),
        ("hostile_exhaust", &["--timeout", "2"], &["loop"], 4, "the script ran out of time (2 s; raise it with --timeout)"),
        ("hostile_exhaust", &[], &["recursion"], 3, "stack overflow"),
        ("hostile_exhaust", &[], &["memory"], 3, "raise it with --memory"),
        ("hostile_exhaust", &[], &["trap-midway"], 3, "rolled back: removed"),
        // Every absurd value refused (the guest fails on any it gets through).
        ("hostile_links", &[], &["absurd"], 0, "built and taken down (--rm)"),
    ];
    let machine = Machine::new("rlhos");
    let before = machine.snapshot();
    let user = User::new();
    for (wasm, flags, args, status, says) in attacks {
        let file = user.file(&guest(wasm));
        let lab = unique("rh");
        let mut all = vec!["run", file.to_str().unwrap(), "--name", &lab, "--rm"];
        all.extend_from_slice(flags);
        all.push("--");
        all.extend_from_slice(args);
        let out = user.nsw(&machine, &all);
        assert_eq!(out.status.code(), Some(*status), "{wasm} {args:?}: {}", text(&out));
        assert!(stderr(&out).contains(says), "{wasm} {args:?}: {}", text(&out));
        // Nothing of the lab is left in the user's state either.
        assert!(!user.state_dir().join("labs").join(format!("{lab}.journal")).exists(), "{wasm} {args:?}: its journal is left");
    }
    // WASI reaches nothing but stdout, as for root.
    let out = user.nsw(&machine, &["run", "--rm", user.file(&guest("hostile_wasi")).to_str().unwrap(), "--name", &unique("rw")]);
    assert!(out.status.success(), "{}", text(&out));
    for what in ["read /etc/passwd", "tcp 127.0.0.1:22", "environment"] {
        assert!(stdout(&out).contains(&format!("{what}: denied")), "{what}: {}", text(&out));
    }
    user.down_all(&machine);
    assert_eq!(machine.snapshot(), before, "an attack as a user changed the machine");
}

/// `files` as an ordinary user: every escape the hostile guest tries is
/// refused as for root (symbolic links and a FIFO planted by the node's
/// own program included), the node's /etc/passwd is its own copy, and an
/// owner the user's one-id lab cannot have is refused by name.
#[test]
fn an_ordinary_users_node_files_are_its_own_and_nothing_more() {
    let machine = Machine::new("rf");
    let before = machine.snapshot();
    let user = User::new();
    // The machine's, as a node sees it (its /tmp is its own), the user's.
    let target = std::path::Path::new("/var/tmp").join(unique("rf"));
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let attack = user.file(&guest("hostile_files_escape"));
    let out = user.nsw(&machine, &["run", "--rm", attack.to_str().unwrap(), "--name", &unique("rf"), "--allow", "exec=ln,mkfifo", "--", target.to_str().unwrap(), "exec"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = stdout(&out);
    assert_eq!(said.lines().filter(|l| l.contains(": refused: ")).count(), 15, "{said}");
    assert!(!said.contains(": written") && said.contains("/etc/passwd: node's copy has"), "{said}");
    let planted = std::fs::read_dir(&target).unwrap().count();
    std::fs::remove_dir_all(&target).unwrap();
    assert_eq!(planted, 0, "the attack wrote into the machine's directory");
    // BIRD's lab asks for files owned by bird, whom a user's lab lacks
    // without a range of ids (`tests/tests/user_daemons.rs` has one).
    let ospf = user.file(&guest("ospf"));
    let out = user.nsw(&machine, &["run", "--rm", ospf.to_str().unwrap(), "--name", &unique("ro"), "--allow", "exec=bird"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("is not among the lab's ids (an ordinary user's lab has only root, unless /etc/subuid"), "{}", text(&out));
    user.down_all(&machine);
    assert_eq!(machine.snapshot(), before, "a user's files changed the machine");
}
