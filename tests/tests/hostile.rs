//! The hostile-guest suite: scripts that attack the host, each run by the
//! real nsw inside a throwaway machine. Every attack must end in a clear
//! error of the expected kind, with nothing leaked and the machine exactly
//! as it was.

use std::process::Output;

use std::io::BufRead;
use std::time::{Duration, Instant};

use nsw_tests::{Machine, Snapshot, assert_no_leak, check_in_ns, guest, ip_in, named_netns, stderr, stdout, text, unique};

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
        .refused(1, &["denied: add route to default via 10.77.0.254", "never changes the machine's default route"]);
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
    assert_eq!(ready, format!("{lab} | victim ready"));
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
    // What the script printed, without the prefix nsw puts on each line.
    let prefix = format!("{} | ", attack.lab);
    let printed: usize = stdout(&attack.out).lines().map(|l| l.strip_prefix(&prefix).unwrap_or(l).len() + 1).sum();
    assert!(printed <= (1 << 20) + 100, "{printed} bytes got through");
}

#[test]
fn terminal_escapes_never_reach_the_terminal() {
    let machine = Machine::new("hos");
    let lab = unique("h");
    let out = machine.nsw(&["run", "--rm", guest("hostile_flood").to_str().unwrap(), "--name", &lab, "--", "escapes"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = stdout(&out);
    assert_eq!(printed, format!("{lab} | before[2J]0;pwned31mafter\n"));
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
    let attack = Attack::run("hostile_ungranted", &[], &[]).refused(2, &["imports nsw:lab/uplink@0.1.5", "was not granted: add --allow uplink"]);
    assert!(!stdout(&attack.out).contains("connected"));
    assert!(!nsw_tests::journal_path(&attack.lab).exists());
}

#[test]
fn an_import_nsw_does_not_provide_is_refused() {
    Attack::run("hostile_unknown_import", &[], &[]).refused(2, &["imports \"evil:lab/backdoor\", which nsw does not provide"]);
}

// --- ownership by identity (issue: rollback deleted a foreign veth, a
// --- foreign table was used and deleted) ---------------------------------

/// Start nsw in the background; return it and its stdout's lines.
fn start(machine: &Machine, lab: &str, wasm: &str, flags: &[&str], args: &[&str]) -> (std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    let file = guest(wasm);
    let mut all = vec!["run", file.to_str().unwrap(), "--name", lab];
    all.extend_from_slice(flags);
    all.push("--");
    all.extend_from_slice(args);
    let mut child = machine.spawn(&all, &[]);
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

fn ifindex(ns: &str, dev: &str) -> String {
    let line = ip_in(ns, &["-o", "link", "show", "dev", dev]);
    line.split(':').next().unwrap().trim().to_string()
}

#[test]
fn rollback_never_deletes_a_link_someone_made_under_a_name_the_lab_tried() {
    let machine = real_machine();
    let before = machine.snapshot();
    let lab = unique("h");
    let (child, mut lines) = start(&machine, &lab, "hostile_ownership", &["--allow", "host-net"], &["veth", "fv0"]);
    let said = lines.next().expect("the script said nothing").unwrap();
    assert!(said.contains("refused: ") && said.contains("Invalid argument"), "{said}");
    // Someone else takes the name while the script goes on.
    ip_in(&machine.name, &["link", "add", "fv0", "type", "veth", "peer", "name", "fv0p"]);
    let theirs = ifindex(&machine.name, "fv0");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("rolled back"), "{}", text(&out));
    assert_eq!(ifindex(&machine.name, "fv0"), theirs, "their fv0 went");
    ip_in(&machine.name, &["link", "del", "fv0"]);
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn a_table_of_the_labs_name_that_is_not_its_own_is_never_used_nor_deleted() {
    let machine = real_machine();
    let lab = unique("h");
    let table = format!("nsw-{lab}");
    // An admin's table, with a rule, under the name the lab would use.
    check_in_ns(&machine.name, "nft", &[&format!("add table inet {table}")]);
    check_in_ns(&machine.name, "nft", &[&format!("add chain inet {table} keep {{ type filter hook input priority 0; }}")]);
    check_in_ns(&machine.name, "nft", &[&format!("add rule inet {table} keep tcp dport 22 counter accept")]);
    let before = machine.snapshot();
    let file = guest("hostile_ownership");
    let out = machine.nsw(&["run", file.to_str().unwrap(), "--name", &lab, "--allow", "host-net", "--", "table"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains(&format!("already has an nftables table inet {table}, which this lab did not make")), "{}", text(&out));
    // Everything of theirs is there, byte for byte.
    assert_no_leak(&lab, &machine, &before);
    check_in_ns(&machine.name, "nft", &[&format!("delete table inet {table}")]);
}

#[test]
fn a_table_swapped_under_the_lab_is_never_added_to_nor_deleted() {
    let machine = real_machine();
    let before = machine.snapshot();
    let lab = unique("h");
    let table = format!("nsw-{lab}");
    let (child, mut lines) = start(&machine, &lab, "hostile_ownership", &["--allow", "host-net"], &["table-swap"]);
    assert_eq!(lines.next().expect("the script said nothing").unwrap(), format!("{lab} | ready"));
    // Someone deletes the lab's table and puts their own in its place.
    check_in_ns(&machine.name, "nft", &[&format!("delete table inet {table}")]);
    check_in_ns(&machine.name, "nft", &[&format!("add table inet {table}")]);
    check_in_ns(&machine.name, "nft", &[&format!("add chain inet {table} keep {{ type filter hook input priority 0; }}")]);
    let theirs = check_in_ns(&machine.name, "nft", &["list", "table", "inet", &table]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("is not the lab's any more (its marker is missing)"), "{}", text(&out));
    assert!(stderr(&out).contains("left alone nftables table inet"), "{}", text(&out));
    assert_eq!(check_in_ns(&machine.name, "nft", &["list", "table", "inet", &table]), theirs, "their table changed");
    check_in_ns(&machine.name, "nft", &[&format!("delete table inet {table}")]);
    assert_no_leak(&lab, &machine, &before);
}

// --- the uplink: nothing leaves with a source but the machine's ---------------

#[test]
fn spoofed_sources_never_leave_through_the_uplink() {
    let machine = Machine::with_outside("hos");
    let before = machine.snapshot();
    let lab = unique("h");
    let file = guest("hostile_spoof");
    let out = machine.nsw(&["run", file.to_str().unwrap(), "--name", &lab, "--allow", "uplink", "--", nsw_tests::OUTSIDE_ADDR]);
    assert!(out.status.success(), "{}", text(&out));
    // The nodes did reach the outside, but it saw only the machine.
    assert!(stdout(&out).contains("s1 (198.51.100.77/24) -> 203.0.113.1: 1/1"), "{}", text(&out));
    let (from_machine, from_lab) = machine.outside_counts();
    assert!(from_machine >= 2 && from_lab == 0, "the outside saw lab sources: {from_machine} {from_lab}");
    // And the machine's forwarding, NAT and rp_filter were never touched.
    assert_eq!(machine.snapshot(), before, "the uplink changed the machine");
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

// --- machine-wide settings -------------------------------------------------

#[test]
fn forwarding_is_shared_the_last_lab_restores_every_setting() {
    let machine = real_machine();
    let before = machine.snapshot();
    let forward = || check_in_ns(&machine.name, "cat", &["/proc/sys/net/ipv4/ip_forward"]).trim().to_string();
    assert_eq!(forward(), "0");
    let (a, b) = (unique("h"), unique("h"));
    let file = guest("hostile_forward");
    let file = file.to_str().unwrap();
    for (lab, bridge, cidr) in [(&a, "fwa", "10.81.0.1/24"), (&b, "fwb", "10.82.0.1/24")] {
        let out = machine.nsw(&["run", file, "--name", lab, "--allow", "host-net", "--", bridge, cidr]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(forward(), "1");
    // The first lab's down must not cut the second off.
    let down = machine.nsw(&["down", &a]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(stderr(&down).contains("1 other lab still needs it"), "{}", text(&down));
    assert_eq!(forward(), "1", "down of one lab turned forwarding off under another");
    // The last one puts back forwarding and everything it rewrote
    // (conf.*.forwarding, conf.all.accept_redirects): compared in full.
    assert!(machine.nsw(&["down", &b]).status.success());
    assert_no_leak(&a, &machine, &before);
    assert_no_leak(&b, &machine, &before);
}

#[test]
fn forwarding_changed_by_someone_else_is_left_as_they_set_it() {
    let machine = real_machine();
    // The machine forwards already (a router, Docker...).
    check_in_ns(&machine.name, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let lab = unique("h");
    let file = guest("hostile_forward");
    let out = machine.nsw(&["run", file.to_str().unwrap(), "--name", &lab, "--allow", "host-net", "--", "fwc", "10.83.0.1/24"]);
    assert!(out.status.success(), "{}", text(&out));
    // The admin turns it off while the lab is up.
    check_in_ns(&machine.name, "sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(stderr(&down).contains("was changed to 0 since the labs set it to 1"), "{}", text(&down));
    assert_eq!(check_in_ns(&machine.name, "cat", &["/proc/sys/net/ipv4/ip_forward"]).trim(), "0", "down undid the admin's change");
}

// --- every repeatable call is bounded -----------------------------------------

/// Run a flood with `--keep`, check it ended in `says`, that its journal
/// stayed small, then take it down.
fn bounded(case: &str, flags: &[&str], says: &str, journal_kib: u64) {
    let machine = Machine::new("hos");
    let before = machine.snapshot();
    let lab = unique("h");
    let file = guest("hostile_flood");
    let mut all = vec!["run", file.to_str().unwrap(), "--name", lab.as_str(), "--keep"];
    all.extend_from_slice(flags);
    all.extend(["--", case]);
    let out = machine.nsw(&all);
    // Ended by the quota (status 1 and its message), not by the deadline
    // (status 4): no clock needed to tell.
    assert_eq!(out.status.code(), Some(1), "{case}: {}", text(&out));
    assert!(stderr(&out).contains(says), "{case}: {}", text(&out));
    let size = std::fs::metadata(nsw_tests::journal_path(&lab)).unwrap().len();
    assert!(size < journal_kib * 1024, "{case}: the journal grew to {size} bytes");
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn repeating_a_refused_call_is_stopped_and_journals_nothing() {
    bounded("address-again", &[], "quota: the script has made 1000 calls that failed: the limit is 1000 (raise it with --max-failures)", 8);
    bounded("masquerade-again", &[], "(raise it with --max-failures)", 8);
    bounded("route-nowhere", &[], "(raise it with --max-failures)", 8);
}

#[test]
fn masquerade_rules_have_a_quota() {
    bounded("nat-rules", &["--max-nat-rules", "40"], "quota: masquerade 10.100.41.0/24 in netns", 16);
}

#[test]
fn the_journal_has_a_cap() {
    bounded("move", &["--max-journal", "32"], "(raise it with --max-journal)", 40);
}

// --- a script's text never passes for nsw's ----------------------------------

#[test]
fn guest_output_cannot_fake_nsws_lines() {
    let machine = Machine::new("hos");
    let before = machine.snapshot();
    let lab = unique("h");
    let out = machine.nsw(&["run", guest("hostile_fake_output").to_str().unwrap(), "--name", &lab]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (printed, err) = (stdout(&out), stderr(&out));
    let prefix = format!("{lab} | ");
    for line in printed.lines() {
        assert!(line.starts_with(&prefix), "a line of the script's without its prefix: {line:?}");
    }
    assert_eq!(printed.lines().count(), 4, "{printed}");
    assert!(printed.contains(&format!("{prefix}nsw: lab evil is up")), "{printed}");
    let forbidden = |c: char| matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2069 | 0xfeff | 0x85 | 0x2028 | 0x2029 | 0x1b);
    assert!(!printed.chars().chain(err.chars()).any(forbidden), "a control or format character got through: {}", text(&out));
    // On stderr: the script's own line, prefixed; its error on one line.
    assert!(err.contains(&format!("{prefix}nsw: error: nothing is wrong")), "{err}");
    let failed: Vec<&str> = err.lines().filter(|l| l.starts_with("nsw: the script failed: ")).collect();
    assert_eq!(failed.len(), 1, "{err}");
    assert!(failed[0].contains("boom\\nnsw: lab evil is up in 0.01 s\\u{d}\\n\\u{1b}[2Jnsw: take it down"), "{}", failed[0]);
    assert!(!err.lines().any(|l| l.starts_with("nsw: lab evil")), "{err}");
    assert_no_leak(&lab, &machine, &before);
}

// --- the deadline holds for every host-side wait -------------------------------

#[test]
fn every_wait_ends_at_the_deadline() {
    for case in ["carrier", "slow-ping"] {
        let started = Instant::now();
        let attack = Attack::run("hostile_exhaust", &["--timeout", "3"], &[case]).refused(4, &["ran out of time (3 s"]);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(9), "{case}: nsw run --timeout 3 took {took:?}");
        drop(attack);
    }
}

#[test]
fn a_service_that_compiles_past_the_deadline_ends_the_run_at_it() {
    // About 27 s of compiling on a 2-core machine; new to the compiled
    // cache (the salt), so it is compiled, not loaded.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let salt = (now.subsec_nanos() ^ std::process::id()).to_string();
    let started = Instant::now();
    let attack = Attack::run("hostile_exhaust", &["--timeout", "2"], &["slow-service", "4", "300000", &salt])
        .refused(4, &["compiling service svc/slow was abandoned", "ran out of time (2 s"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "nsw run --timeout 2 took {took:?}");
    drop(attack);
    // The compiler's process went with the run, not on at a core.
    assert_eq!(compilers_orphaned(), 0, "a compiler process outlived the run");
    // Its memory is bounded too: past --max-compile-memory it is refused.
    let salt = (now.subsec_nanos() ^ 0x5a5a).to_string();
    Attack::run("hostile_exhaust", &["--max-compile-memory", "100"], &["slow-service", "2", "200000", &salt])
        .refused(1, &["start service svc/slow: compiling svc/slow needed more than 100 MiB (raise it with --max-compile-memory)"]);
    assert_eq!(compilers_orphaned(), 0, "a compiler process outlived the run");
}

/// nsw's compiler processes whose nsw is gone (other tests' runs compile
/// too, each in a child of its own nsw).
fn compilers_orphaned() -> usize {
    let read = |pid: &str, file: &str| std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| read(pid, "cmdline").split(|b| *b == 0).any(|arg| arg == b"--nsw-compile-child"))
        .filter(|pid| {
            let status = String::from_utf8_lossy(&read(pid, "status")).into_owned();
            let parent = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap_or("").trim().to_string();
            !read(&parent, "comm").starts_with(b"nsw")
        })
        .count()
}

// --- the machine's networks, all of them ------------------------------------------

#[test]
fn host_prefixes_stay_clear_of_every_table_and_of_whom_the_machine_talks_to() {
    // A VPN-like route in a table of its own.
    let machine = real_machine();
    ip_in(&machine.name, &["route", "add", "10.52.0.0/16", "via", nsw_tests::OUTSIDE_ADDR, "table", "52"]);
    Attack::on(machine, "hostile_host_net", &["--allow", "host-net"], &["address", "10.52.1.1/24"])
        .refused(1, &["denied:", "overlaps the machine's own route to 10.52.0.0/16"]);
    // A neighbour the machine talks to.
    let machine = real_machine();
    ip_in(&machine.name, &["neigh", "add", "10.66.0.9", "lladdr", "02:00:00:00:00:09", "dev", "eth0", "nud", "permanent"]);
    Attack::on(machine, "hostile_host_net", &["--allow", "host-net"], &["address", "10.66.0.1/24"])
        .refused(1, &["denied:", "10.66.0.0/24 holds 10.66.0.9, which the machine talks to"]);
}

#[test]
fn a_host_net_lab_pings_only_inside_its_grant() {
    Attack::on(real_machine(), "hostile_host_net", &["--allow", "host-net=10.77.0.0/16"], &["ping", nsw_tests::OUTSIDE_ADDR])
        .refused(1, &["denied: ping 203.0.113.1 from the machine's namespace", "outside the host prefixes this lab was granted (10.77.0.0/16)"]);
}

#[test]
fn lab_names_cannot_make_namespace_names_meet() {
    let machine = Machine::new("hos");
    let out = machine.nsw(&["run", guest("two_hosts").to_str().unwrap(), "--name", "a-b"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("lab name \"a-b\" contains '-'"), "{}", text(&out));
    assert!(named_netns("a-b").is_empty());
}

// --- services stay in their node -----------------------------------------------

#[test]
fn a_hostile_service_is_contained_in_its_node() {
    let machine = real_machine();
    // Something listening on the machine, on every address it has.
    let mut listener = std::process::Command::new("nsenter")
        .args([&format!("--net=/run/netns/{}", machine.name), "python3", "-m", "http.server", "8099", "--bind", "0.0.0.0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let targets = [format!("{}:8099", nsw_tests::MACHINE_UPLINK_ADDR), "127.0.0.1:8099".into(), format!("{}:8099", nsw_tests::OUTSIDE_ADDR), "10.0.0.2:7777".into()];
    let mut args = vec!["reach"];
    args.extend(targets.iter().map(String::as_str));
    let attack = Attack::on(machine, "hostile_service_escape", &["--rm"], &args);
    let _ = listener.kill();
    let _ = listener.wait();
    let out = &attack.out;
    assert!(out.status.success(), "{}", text(out));
    let printed = stdout(out);
    // Its own node is reachable (the probe works)...
    assert!(printed.contains("n/attacker | 10.0.0.2:7777 reached"), "{printed}");
    // ...the machine's listener, the machine's loopback and the outside are not.
    for target in &targets[..3] {
        assert!(printed.contains(&format!("n/attacker | {target} not reached")), "{target}: {printed}");
    }
    assert_no_leak(&attack.lab, &attack.machine, &attack.before);
}

#[test]
fn a_hostile_service_that_floods_or_spins_is_stopped() {
    // Output past the cap: the service ends (its writes fail), the lab is fine.
    let attack = Attack::run("hostile_service_escape", &["--rm"], &["flood"]);
    assert!(attack.out.status.success(), "{}", text(&attack.out));
    assert!(stdout(&attack.out).contains("[nsw: guest output cut off after 1048576 bytes]"), "{}", text(&attack.out));
    assert_no_leak(&attack.lab, &attack.machine, &attack.before);
    // Spinning, or holding a hundred ports: stopped at the end of the run.
    for case in ["spin", "bind"] {
        let attack = Attack::run("hostile_service_escape", &["--rm"], &[case]);
        assert!(attack.out.status.success(), "{case}: {}", text(&attack.out));
        assert!(stderr(&attack.out).contains("stopped 1 service still running at the end of the run: n/attacker"), "{case}: {}", text(&attack.out));
        assert_no_leak(&attack.lab, &attack.machine, &attack.before);
    }
}

/// `files` reaches only a node's own files: `..`, `/proc/self/root`, paths
/// outside the node's directories, symbolic links and a FIFO planted by
/// the node's own program, setuid modes and the machine's /etc/shadow are
/// all refused, contained (behind the boundary) and host-net (as root,
/// where no node file is written at all: `nsw exec` would run as the
/// machine's root in them); the contained node's /etc/passwd is its own
/// copy; nothing lands in the machine's directory the attack aims at, and
/// nothing leaks.
#[test]
fn files_reach_only_the_nodes_own() {
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for mode in [&["--rm", "--allow", "exec=ln,mkfifo"][..], &["--rm", "--allow", "exec=ln,mkfifo", "--allow", "host-net"][..]] {
        // Where a node sees the machine's own directory (a node's /tmp is
        // its own), open to anyone: a write that got there would land.
        let target = std::path::Path::new("/var/tmp").join(unique("files"));
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let path = target.to_str().unwrap().to_string();
        let attack = Attack::run("hostile_files_escape", mode, &[&path, "exec"]);
        assert!(attack.out.status.success(), "{}", text(&attack.out));
        let said = stdout(&attack.out);
        let attempts: Vec<&str> = said.lines().filter(|l| !l.contains("/etc/passwd: ") && (l.contains(": refused: ") || l.ends_with(": written") || l.contains(": read "))).collect();
        assert_eq!(attempts.len(), 15, "{said}");
        for line in &attempts {
            assert!(line.contains(": refused: "), "{mode:?}: {line}");
        }
        let host_net = mode.contains(&"host-net");
        for (what, why) in [("/tmp/link", "symbolic link"), ("/tmp/dirlink/through-dir-link", "symbolic link"), ("/tmp/fifo", "not a regular file"), ("/etc/shadow", "Permission denied"), ("/tmp/setuid", "setuid")] {
            let why = if host_net { "outside the privilege boundary" } else { why };
            assert!(attempts.iter().any(|l| l.contains(&format!("{what}: refused")) && l.contains(why)), "{mode:?}: {what}: {said}");
        }
        if host_net {
            assert!(said.contains("/etc/passwd: refused") && said.contains("privilege boundary"), "{said}");
        } else {
            assert!(said.contains("/etc/passwd: node's copy has"), "{said}");
        }
        let planted: Vec<_> = std::fs::read_dir(&target).unwrap().flatten().map(|e| e.file_name()).collect();
        std::fs::remove_dir_all(&target).unwrap();
        assert!(planted.is_empty(), "{mode:?}: the attack wrote into the machine's directory: {planted:?}");
        assert_no_leak(&attack.lab, &attack.machine, &attack.before);
    }
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd, "the machine's /etc/passwd changed");
}
