//! The hostile-guest suite: scripts that attack the host, each run by the
//! real nsw inside a throwaway machine. Every attack must end in a clear
//! error of the expected kind, with nothing leaked and the machine exactly
//! as it was.

use std::process::Output;

use nsw_tests::{Machine, Snapshot, assert_no_leak, guest, ip_in, named_netns, stderr, stdout, text, unique};

/// One attack: the lab's name, the machine it ran on and how it ended.
struct Attack {
    lab: String,
    machine: Machine,
    before: Snapshot,
    out: Output,
}

impl Attack {
    fn on(machine: Machine, wasm: &str, flags: &[&str], args: &[&str]) -> Attack {
        let before = machine.snapshot();
        let lab = unique("h");
        let file = guest(wasm);
        let mut all = vec!["run", file.to_str().unwrap(), "--name", lab.as_str()];
        all.extend_from_slice(flags);
        all.push("--");
        all.extend_from_slice(args);
        let out = machine.nsw(&all);
        Attack { lab, machine, before, out }
    }

    fn run(wasm: &str, flags: &[&str], args: &[&str]) -> Attack {
        Attack::on(Machine::new("hos"), wasm, flags, args)
    }

    /// The run failed with `status` and stderr says every one of `says`;
    /// then nothing leaked and the machine did not change.
    fn refused(self, status: i32, says: &[&str]) -> Attack {
        assert_eq!(self.out.status.code(), Some(status), "{}", text(&self.out));
        let err = stderr(&self.out);
        for part in says {
            assert!(err.contains(part), "stderr lacks {part:?}: {}", text(&self.out));
        }
        assert_no_leak(&self.lab, &self.machine, &self.before);
        self
    }
}

/// A machine like a real one: eth0 to an outside namespace, a default
/// route and a route of its own to 10.99.0.0/16.
fn real_machine() -> Machine {
    let machine = Machine::with_outside("hos");
    ip_in(&machine.name, &["route", "add", "10.99.0.0/16", "via", nsw_tests::OUTSIDE_ADDR]);
    machine
}

// --- names ---------------------------------------------------------------

#[test]
fn netns_names_cannot_escape_run_netns() {
    let cases: &[(&str, &str)] = &[
        ("../x", "invalid: netns name \"../x\" contains '/'"),
        ("a/b", "invalid: netns name \"a/b\" contains '/'"),
        (".", "invalid: netns name \".\" must start with a letter or digit"),
        ("..", "invalid: netns name \"..\" must start with a letter or digit"),
        ("empty", "invalid: netns name is empty"),
        ("long", "is 300 bytes long; the limit is 32"),
        ("nul", "invalid: netns name \"evil\\0name\" contains control character"),
        ("escapes", "invalid: netns name \"\\\\xff\\\\xfeÿ\" contains '\\\\'"),
    ];
    for (case, says) in cases {
        let attack = Attack::run("hostile_netns_escape", &[], &[case]).refused(1, &[says, "rolled back"]);
        assert!(!std::path::Path::new("/run/x").exists() && !std::path::Path::new("/run/netns/a").exists());
        assert!(named_netns(&attack.lab).is_empty());
    }
}

#[test]
fn interface_names_are_checked() {
    let long = "veth-sixteen-byt";
    Attack::run("hostile_ifname", &[], &["bridge", long]).refused(1, &["invalid: interface name \"veth-sixteen-byt\" is 16 bytes long"]);
    Attack::run("hostile_ifname", &[], &["bridge", "a/b"]).refused(1, &["invalid: interface name \"a/b\" contains '/'"]);
    Attack::run("hostile_ifname", &[], &["peer", "a:b"]).refused(1, &["invalid: interface name \"a:b\" contains ':'"]);
    Attack::run("hostile_ifname", &[], &["bridge", "a b"]).refused(1, &["invalid: interface name \"a b\" contains whitespace"]);
}

#[test]
fn the_machines_own_interfaces_cannot_be_taken_in_host_net() {
    for name in ["lo", "eth0"] {
        for how in ["bridge", "peer"] {
            let attack = Attack::on(real_machine(), "hostile_ifname", &["--allow", "host-net"], &[how, name]);
            // Refused before anything is recorded or asked of the kernel.
            attack.refused(1, &[&format!("exists: the machine's namespace already has a link named {name}")]);
        }
    }
}

// --- the machine's network -------------------------------------------------

#[test]
fn host_addresses_must_be_granted_and_clear_of_the_machines_routes() {
    let net = ["--allow", "host-net"];
    Attack::on(real_machine(), "hostile_host_net", &net, &["address", "10.99.0.1/24"])
        .refused(1, &["denied: add address 10.99.0.1/24 to hbr0", "overlaps the machine's own route to 10.99.0.0/16"]);
    Attack::on(real_machine(), "hostile_host_net", &["--allow", "host-net=10.77.0.0/16,203.0.113.0/24"], &["address", "203.0.113.9/24"])
        .refused(1, &["denied:", "overlaps the machine's own route to 203.0.113.0/24"]);
    Attack::on(real_machine(), "hostile_host_net", &net, &["address", "8.8.8.8/24"])
        .refused(1, &["denied:", "8.8.8.0/24 is outside the host prefixes this lab was granted"]);
}

#[test]
fn host_routes_never_touch_the_default_or_the_machines_networks() {
    let net = ["--allow", "host-net"];
    Attack::on(real_machine(), "hostile_host_net", &net, &["default-route"])
        .refused(1, &["denied: add route to 0.0.0.0/0 via 10.77.0.254", "never changes the machine's default route"]);
    Attack::on(real_machine(), "hostile_host_net", &net, &["route", "10.99.1.0/24", "10.77.0.9"])
        .refused(1, &["denied:", "overlaps the machine's own route to 10.99.0.0/16"]);
    Attack::on(real_machine(), "hostile_host_net", &net, &["route", "10.50.0.0/16", nsw_tests::OUTSIDE_ADDR])
        .refused(1, &["denied:", "the gateway 203.0.113.1 is not on a subnet of the lab's own links"]);
}

#[test]
fn ipv6_forwarding_on_the_machine_is_refused() {
    // It would make the machine ignore router advertisements.
    Attack::on(real_machine(), "hostile_host_net", &["--allow", "host-net"], &["forward6"])
        .refused(1, &["denied: enable forwarding (net/ipv6/conf/all/forwarding) in the machine's namespace", "router advertisements"]);
}

#[test]
fn nat_only_for_granted_prefixes() {
    Attack::on(real_machine(), "hostile_host_net", &["--allow", "host-net"], &["masquerade", "0.0.0.0/0"])
        .refused(1, &["denied: masquerade 0.0.0.0/0", "that is every address"]);
    Attack::on(real_machine(), "hostile_host_net", &["--allow", "host-net=10.77.0.0/16"], &["masquerade", "10.0.0.0/8"])
        .refused(1, &["denied: masquerade 10.0.0.0/8", "outside the host prefixes this lab was granted (10.77.0.0/16)"]);
    // Over the machine's own network: the rule would rewrite its traffic.
    Attack::on(real_machine(), "hostile_host_net", &["--allow", "host-net"], &["masquerade", "10.99.0.0/16"])
        .refused(1, &["denied: masquerade 10.99.0.0/16", "overlaps the machine's own route to 10.99.0.0/16"]);
    // Contained, /0 is refused too.
    Attack::run("hostile_host_net", &[], &["masquerade", "0.0.0.0/0"]).refused(1, &["denied: masquerade 0.0.0.0/0"]);
}

// --- handles ---------------------------------------------------------------

#[test]
fn a_dropped_handle_cannot_be_used() {
    Attack::run("hostile_use_after", &[], &["dropped"]).refused(3, &["the script crashed", "rolled back"]);
}

#[test]
fn a_namespace_deleted_under_the_lab_is_not_found() {
    let machine = Machine::new("hos");
    let before = machine.snapshot();
    let lab = unique("h");
    let file = guest("hostile_use_after");
    let mut child = machine.spawn(&["run", file.to_str().unwrap(), "--name", &lab, "--", "deleted"], &[]);
    let victim = format!("{lab}-victim");
    // The script says when the victim is made (its mount complete).
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let ready = lines.next().expect("the script said nothing").unwrap();
    assert_eq!(ready, "victim ready");
    assert!(named_netns(&victim).contains(&victim));
    // What `ip netns del` does first: take the namespace off its mount
    // point. (Its second step, removing the file, would race with nsw,
    // which removes the file itself when it rolls the lab back.)
    nsw_tests::check("umount", &["--lazy", &format!("/run/netns/{victim}")]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains(&format!("not-found: netns {victim} was deleted outside nsw")), "{}", text(&out));
    assert_no_leak(&lab, &machine, &before);
}

// --- floods ----------------------------------------------------------------

#[test]
fn a_namespace_flood_hits_the_quota() {
    Attack::run("hostile_flood", &[], &["netns"]).refused(1, &["quota: cannot create netns", "(raise it with --max-netns)", "rolled back"]);
}

#[test]
fn a_link_flood_hits_the_quota() {
    Attack::run("hostile_flood", &[], &["links"]).refused(1, &["quota: the lab has 4096 links", "(raise it with --max-links)"]);
}

#[test]
fn a_bridge_flood_hits_the_quota() {
    Attack::run("hostile_flood", &[], &["bridges"]).refused(1, &["quota: the lab has 256 bridges", "(raise it with --max-bridges)"]);
}

#[test]
fn a_ping_flood_hits_the_quota() {
    Attack::run("hostile_flood", &["--max-pings", "500"], &["pings"]).refused(1, &["quota: the lab has sent 500 echo requests", "(raise it with --max-pings)"]);
}

#[test]
fn a_100_mb_string_is_stopped() {
    // With the default memory the script cannot even build it...
    Attack::run("hostile_flood", &[], &["string"]).refused(3, &["out of memory", "--memory"]);
    // ...and with room for it, nsw refuses to take it.
    Attack::run("hostile_flood", &["--memory", "512"], &["string"])
        .refused(1, &["quota: create-netns was passed a string of 104857600 bytes", "(raise it with --max-string)"]);
}

#[test]
fn a_stdout_flood_hits_the_quota() {
    let attack = Attack::run("hostile_flood", &[], &["stdout"]).refused(1, &["quota: the script printed more than 1024 KiB (raise it with --max-output)"]);
    assert!(attack.out.stdout.len() <= (1 << 20) + 100, "{} bytes got through", attack.out.stdout.len());
}

#[test]
fn terminal_escapes_never_reach_the_terminal() {
    let machine = Machine::new("hos");
    let lab = unique("h");
    let out = machine.nsw(&["run", "--rm", guest("hostile_flood").to_str().unwrap(), "--name", &lab, "--", "escapes"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = stdout(&out);
    assert_eq!(printed, "before[2J]0;pwned31mafter\n");
    assert!(!out.stdout.iter().any(|b| *b == 0x1b || *b == 0x07));
}

// --- time, stack, memory ------------------------------------------------------

#[test]
fn an_endless_loop_meets_the_deadline() {
    Attack::run("hostile_exhaust", &["--timeout", "2"], &["loop"]).refused(4, &["the script ran out of time (2 s; raise it with --timeout)", "rolled back"]);
}

#[test]
fn deep_recursion_is_stopped() {
    Attack::run("hostile_exhaust", &[], &["recursion"]).refused(3, &["the script crashed", "stack overflow"]);
}

#[test]
fn a_memory_bomb_meets_the_memory_cap() {
    Attack::run("hostile_exhaust", &[], &["memory"]).refused(3, &["out of memory", "raise it with --memory"]);
}

#[test]
fn a_trap_halfway_rolls_the_lab_back() {
    let attack = Attack::run("hostile_exhaust", &[], &["trap-midway"]).refused(3, &["the script crashed", "rolled back: removed"]);
    assert!(stdout(&attack.out).contains("half built"));
}

// --- WASI and imports ----------------------------------------------------------

#[test]
fn wasi_reaches_nothing_but_stdout() {
    let machine = Machine::new("hos");
    let before = machine.snapshot();
    let lab = unique("h");
    let out = machine.nsw(&["run", "--rm", guest("hostile_wasi").to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "something was reachable: {}", text(&out));
    let printed = stdout(&out);
    for what in ["read /etc/passwd", "list /", "list .", "create /tmp/nsw-hostile", "tcp 127.0.0.1:22", "udp send", "dns", "environment", "arguments", "stdin"] {
        assert!(printed.contains(&format!("{what}: denied")), "{what}: {printed}");
    }
    assert!(!std::path::Path::new("/tmp/nsw-hostile").exists());
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn an_ungranted_import_is_refused_before_it_runs() {
    let attack = Attack::run("hostile_ungranted", &[], &[]).refused(2, &["imports nsw:lab/uplink@0.1.0", "was not granted: add --allow uplink"]);
    assert!(!stdout(&attack.out).contains("connected"));
    assert!(!nsw_tests::journal_path(&attack.lab).exists());
}

#[test]
fn an_import_nsw_does_not_provide_is_refused() {
    Attack::run("hostile_unknown_import", &[], &[]).refused(2, &["imports \"evil:lab/backdoor\", which nsw does not provide"]);
}
