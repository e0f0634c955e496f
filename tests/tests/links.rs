//! Links like real ones: conditions measured across them (iperf3, ping),
//! failures and their repair, MTU and MAC, a firewall and a port forward,
//! `nsw link` at run time, and scripts that abuse all of it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nsw_tests::{Machine, TestLab, check_in_ns, guest, in_ns, stderr, stdout, text};
use serde_json::Value;

/// Node `node` of the impair lab.
fn ns(lab: &TestLab, node: &str) -> String {
    format!("{}-{node}", lab.name)
}

/// `ping -c COUNT -i INTERVAL` from a to b: the loss in percent.
fn ping_loss(lab: &TestLab, count: u32, interval: &str) -> f64 {
    ping_loss_from(lab, "a", "10.0.9.2", count, interval)
}

fn ping_loss_from(lab: &TestLab, from: &str, to: &str, count: u32, interval: &str) -> f64 {
    let out = in_ns(&ns(lab, from), "ping", &["-c", &count.to_string(), "-i", interval, "-W", "1", "-q", to]);
    let printed = stdout(&out);
    let loss = printed.split(", ").find_map(|part| part.strip_suffix("% packet loss")).unwrap_or_else(|| panic!("no loss in: {printed}"));
    loss.parse().unwrap()
}

/// iperf3 from a to b for `seconds`: what b received, in bit/s.
fn iperf3(lab: &TestLab, seconds: u32) -> f64 {
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns(lab, "b"), "iperf3", "-s", "-1", "-B", "10.0.9.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 is installed (scripts/setup)");
    // Once the server listens (ss shows it), one client run.
    let started = Instant::now();
    while !check_in_ns(&ns(lab, "b"), "ss", &["-Hltn", "sport = :5201"]).contains("5201") {
        assert!(started.elapsed() < Duration::from_secs(10), "iperf3 -s never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = in_ns(&ns(lab, "a"), "iperf3", &["-c", "10.0.9.2", "-t", &seconds.to_string(), "-J"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout(&out);
    let _ = server.kill();
    let _ = server.wait();
    let json: Value = serde_json::from_str(&report).unwrap();
    json["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or_else(|| panic!("no rate in {report}"))
}

#[test]
fn a_20_mbit_rate_gives_14_to_22_mbit_in_iperf3() {
    let machine = Machine::new("rate");
    let lab = machine.lab("ra");
    lab.run_ok(&guest("impair"), &[], &["rate=20000000"]);
    let measured = iperf3(&lab, 3);
    assert!((14e6..=22e6).contains(&measured), "20 Mbit/s set, {:.2} Mbit/s measured", measured / 1e6);
    // The queue is tbf, as `nsw show` reads it back.
    let show: Value = serde_json::from_slice(&machine.nsw(&["show", &lab.name, "--json"]).stdout).unwrap();
    let a = show["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "a").unwrap();
    assert_eq!(a["links"].as_array().unwrap().iter().find(|l| l["name"] == "eth0").unwrap()["qdisc"], "tbf", "{a}");
    lab.down_and_check();
}

#[test]
fn a_20_percent_loss_loses_10_to_32_percent_of_400_pings() {
    let machine = Machine::new("loss");
    let lab = machine.lab("lo");
    lab.run_ok(&guest("impair"), &[], &["loss=20"]);
    let loss = ping_loss(&lab, 400, "0.005");
    assert!((10.0..=32.0).contains(&loss), "20% set, {loss}% of 400 pings lost");
    // Cleared at run time: a perfect wire again.
    let cleared = machine.nsw(&["link", &lab.name, "a:eth0", "--clear"]);
    assert!(cleared.status.success(), "{}", text(&cleared));
    assert_eq!(ping_loss(&lab, 100, "0.005"), 0.0);
    lab.down_and_check();
}

#[test]
fn nsw_link_down_stops_pings_and_up_restores_them() {
    let machine = Machine::new("fail");
    let lab = machine.lab("fa");
    lab.run_ok(&guest("impair"), &[], &[]);
    assert_eq!(ping_loss(&lab, 3, "0.2"), 0.0);
    let down = machine.nsw(&["link", &lab.name, "a:eth0", "--down"]);
    assert!(down.status.success(), "{}", text(&down));
    // (From b: a, whose link is down, has no route to send on at all.)
    assert_eq!(ping_loss_from(&lab, "b", "10.0.9.1", 3, "0.2"), 100.0);
    let shown = machine.nsw(&["link", &lab.name, "a:eth0", "--show"]);
    assert!(stdout(&shown).contains("state: down"), "{}", text(&shown));
    let up = machine.nsw(&["link", &lab.name, "a:eth0", "--up"]);
    assert!(up.status.success(), "{}", text(&up));
    assert_eq!(ping_loss(&lab, 3, "0.2"), 0.0);
    // The journal has what was done; the rate and loss at run time too.
    let set = machine.nsw(&["link", &lab.name, "b:eth0", "--rate", "5mbit", "--loss", "1%", "--mtu", "1300"]);
    assert!(set.status.success(), "{}", text(&set));
    let shown = machine.nsw(&["link", &lab.name, "b:eth0"]);
    assert!(stdout(&shown).contains("conditions: rate 5000000 bit/s, loss 1%") && stdout(&shown).contains("mtu 1300"), "{}", text(&shown));
    let journal = std::fs::read_to_string(nsw_tests::journal_path(&lab.name)).unwrap();
    assert!(journal.contains(r#""key":"state","value":"down""#) && journal.contains(r#""key":"mtu","value":1300"#), "{journal}");
    // Only the lab's own links, named as the lab knows them.
    let other = machine.nsw(&["link", &lab.name, "a:lo", "--down"]);
    assert!(!other.status.success() && stderr(&other).contains("a has no link lo that lab"), "{}", text(&other));
    let nobody = machine.nsw(&["link", &lab.name, "zz:eth0", "--down"]);
    assert!(stderr(&nobody).contains("has no node zz"), "{}", text(&nobody));
    let absurd = machine.nsw(&["link", &lab.name, "a:eth0", "--loss", "200%"]);
    assert!(stderr(&absurd).contains("loss 200% is not a percentage"), "{}", text(&absurd));
    lab.down_and_check();
}

#[test]
fn mtu_and_mac_show_in_ip_link() {
    let machine = Machine::new("mtu");
    let lab = machine.lab("mt");
    lab.run_ok(&guest("impair"), &[], &["mtu=1400", "mac=02:00:00:00:00:42"]);
    let link: Value = serde_json::from_str(&nsw_tests::ip_in(&ns(&lab, "a"), &["-j", "link", "show", "eth0"])).unwrap();
    assert_eq!(link[0]["mtu"], 1400, "{link}");
    assert_eq!(link[0]["address"], "02:00:00:00:00:42", "{link}");
    lab.down_and_check();
}

/// Whether this kernel has netem: as nsw finds out, in a lab.
fn kernel_has_netem(machine: &Machine) -> bool {
    let lab = machine.lab("nq");
    let out = lab.run(&guest("impair"), &[], &["delay=1000"]);
    let has = out.status.success();
    if has {
        lab.down_and_check();
    } else {
        lab.assert_gone();
    }
    has
}

#[test]
fn netem_conditions_are_measured_where_the_kernel_has_netem_and_unsupported_where_not() {
    let machine = Machine::new("netem");
    if !kernel_has_netem(&machine) {
        // This machine: each one refused, naming what the kernel lacks, and
        // the lab rolled back.
        for setting in [&["delay=10000"][..], &["delay=10000", "jitter=1000"], &["duplicate=10"], &["corrupt=10"], &["delay=10000", "reorder=25"], &["loss=5", "correlation=25"]] {
            let lab = machine.lab("nn");
            let out = lab.run(&guest("impair"), &[], setting);
            assert_eq!(out.status.code(), Some(1), "{setting:?}: {}", text(&out));
            assert!(stderr(&out).contains("os: unsupported: set conditions on eth0") && stderr(&out).contains("needs the kernel's sch_netem (modprobe sch_netem)"), "{setting:?}: {}", text(&out));
            lab.assert_gone();
        }
        return;
    }
    // A kernel with netem: a 20 ms delay shows in every round trip, a
    // jitter in their spread, duplicates as ping's DUP!.
    let lab = machine.lab("ne");
    lab.run_ok(&guest("impair"), &[], &["delay=20000", "jitter=5000", "duplicate=50"]);
    let out = in_ns(&ns(&lab, "a"), "ping", &["-c", "20", "-i", "0.05", "10.0.9.2"]);
    let printed = stdout(&out);
    let rtt = printed.lines().find(|l| l.starts_with("rtt")).unwrap_or_else(|| panic!("{printed}"));
    let numbers: Vec<f64> = rtt.split(" = ").nth(1).unwrap().trim_end_matches(" ms").split('/').map(|n| n.parse().unwrap()).collect();
    assert!(numbers[0] >= 14.0 && numbers[1] >= 18.0, "delay 20 ms ± 5 set: {rtt}");
    assert!(numbers[3] > 0.5, "a jitter of 5 ms set: {rtt}");
    assert!(printed.contains("DUP!"), "duplicate 50% set: {printed}");
    lab.down_and_check();
}

#[test]
fn a_port_forward_carries_a_connection_a_drop_rule_blocks_it_and_a_reject_rule_refuses_it() {
    let machine = Machine::new("fw");
    let lab = machine.lab("fw");
    let report = std::env::temp_dir().join(nsw_tests::unique("nsw-fw-")).with_extension("json");
    let out = machine.nsw(&["test", guest("firewall").to_str().unwrap(), "--name", &lab.name, "--json", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    std::fs::remove_file(&report).unwrap();
    let checks = json["checks"].as_array().unwrap_or_else(|| panic!("{json}"));
    let names = [
        "tcp 10.0.1.1:80 from cli reaches srv:8080",
        "http-get http://10.0.1.1/ from cli",
        "a drop rule on the router blocks it",
        "a reject rule refuses the router's own connection",
        "a reject rule of any protocol refuses too",
    ];
    for name in names {
        let found = checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}: {json}"));
        assert_eq!(found["passed"], true, "{found}");
    }
    lab.assert_gone();
}

#[test]
fn a_flapping_link_is_an_outage_the_pings_see() {
    let machine = Machine::new("flap");
    let lab = machine.lab("fl");
    let out = machine.nsw(&["test", guest("flap").to_str().unwrap(), "--name", &lab.name, "--", "400", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("flap 2: replies again once up") && stdout(&out).contains("unreachable for"), "{}", text(&out));
    lab.assert_gone();
}

// --- scripts that abuse links and rules ---------------------------------------

#[test]
fn absurd_conditions_and_settings_are_each_refused_by_name() {
    let machine = Machine::new("abs");
    let lab = machine.lab("ab");
    let out = lab.run(&guest("hostile_links"), &["--rm"], &["absurd"]);
    assert!(out.status.success(), "{}", text(&out));
    for says in ["rate 0 bit/s is below", "loss 200% is not a percentage", "an MTU is 68-65535 bytes", "multicast address", "port 0 is no port", "needs protocol tcp or udp"] {
        assert!(stdout(&out).contains(says), "{says}: {}", text(&out));
    }
    lab.assert_gone();
}

#[test]
fn a_flood_of_rules_or_conditions_is_bounded() {
    let machine = Machine::new("rfl");
    let lab = machine.lab("rf");
    let out = lab.run(&guest("hostile_links"), &["--max-rules", "50"], &["rules"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("the lab has 50 nftables rules") || stderr(&out).contains("(raise it with --max-rules)"), "{}", text(&out));
    lab.assert_gone();
    let lab = machine.lab("rc");
    let out = lab.run(&guest("hostile_links"), &["--max-journal", "64"], &["conditions"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("(raise it with --max-journal)"), "{}", text(&out));
    lab.assert_gone();
}

#[test]
fn firewall_rules_on_the_machine_only_ever_match_the_labs_links() {
    let machine = Machine::new("fwm");
    let lab = machine.lab("fm");
    let out = lab.run_ok(&guest("hostile_links"), &["--allow", "host-net"], &["machine"]);
    assert!(stdout(&out).contains("refused a drop policy on the machine: denied"), "{}", text(&out));
    let table = check_in_ns(&machine.name, "nft", &["list", "table", "inet", &format!("nsw-{}", lab.name)]);
    let rules: Vec<&str> = table.lines().map(str::trim).filter(|l| l.ends_with("drop") || l.contains("dnat")).collect();
    // By index: the guest moved x0 away and made a new x0, which the
    // rules must not match (nft prints an index no interface has as such).
    let gone = |r: &&str| r.strip_prefix("iif ").and_then(|r| r.split_whitespace().next()).is_some_and(|i| i.parse::<u32>().is_ok());
    assert!(rules.len() == 2 && rules.iter().all(gone), "{table}");
    assert!(!table.contains("policy drop"), "{table}");
    lab.down_and_check();
}
