//! The pb-and-jelly lab, checked from the kernel's own view. Every pbj, in
//! every language, is checked by this one function.

use std::path::Path;

use crate::{Machine, check_in_ns, ip_in, named_netns, pings, stderr, stdout, text};

/// The lines a pbj prints, in order, whatever language it is written in.
pub const PROGRESS: &[&str] = &[
    "step  1: namespaces pb and jelly",
    "step  2: veth pairs veth-pb/bread-pb-veth and veth-jelly/bread-j-veth",
    "step  3: move veth-pb into pb and veth-jelly into jelly",
    "step  4: addresses 10.0.0.10/16 (pb) and 10.0.0.11/16 (jelly), links up",
    "step  5: bridge brd1, up",
    "step  6: bread-pb-veth and bread-j-veth into brd1, up",
    "step  7: ping pb from jelly",
    "step  8: 10.0.0.1/16 on brd1: the host reaches the namespaces",
    "step  9: default routes via 10.0.0.1 in pb and jelly",
    "step 10: masquerade 10.0.0.0/16 on the host",
    "step 11: IPv4 forwarding on the host",
    "step 12: ",
    "pb and jelly are up",
];

/// Check that the guest printed every step, in order.
pub fn check_progress(stdout: &str) {
    let mut rest = stdout;
    for line in PROGRESS {
        let at = rest.find(line).unwrap_or_else(|| panic!("pbj did not print {line:?} (in order); it printed:\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
}

/// `ip -j link show dev DEV` in `ns`, as JSON.
fn link_json(ns: &str, dev: &str) -> serde_json::Value {
    let text = ip_in(ns, &["-j", "link", "show", "dev", dev]);
    let mut all: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j: {e}: {text}"));
    all[0].take()
}

/// The interface index of `dev` in `ns`.
fn ifindex(ns: &str, dev: &str) -> u32 {
    let line = ip_in(ns, &["-o", "link", "show", "dev", dev]);
    line.split(':').next().and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("no index in {line:?}"))
}

fn mac(ns: &str, dev: &str) -> String {
    let line = ip_in(ns, &["-o", "link", "show", "dev", dev]);
    let after = line.split("link/ether ").nth(1).unwrap_or_else(|| panic!("no MAC in {line:?}"));
    after.split_whitespace().next().unwrap().to_string()
}

/// Check every step of the tutorial in the kernel. `host` is the namespace
/// that plays the host: the lab's own (contained) or the machine's.
pub fn verify(lab: &str, host: &str) {
    let (pb, jelly) = (format!("{lab}-pb"), format!("{lab}-jelly"));

    // 1. the two namespaces, visible to `ip netns`
    let names = named_netns(lab);
    for ns in [&pb, &jelly] {
        assert!(names.contains(ns), "netns {ns} is missing from /run/netns: {names:?}");
    }

    // 2-4. each namespace holds its veth end, up, with its address; the
    // host-side end is its peer
    for (ns, dev, peer, addr) in [(&pb, "veth-pb", "bread-pb-veth", "10.0.0.10/16"), (&jelly, "veth-jelly", "bread-j-veth", "10.0.0.11/16")] {
        let kind = ip_in(ns, &["-d", "link", "show", "dev", dev]);
        assert!(kind.contains("veth"), "{dev} in {ns} is not a veth: {kind}");
        let brief = ip_in(ns, &["-br", "address", "show", "dev", dev]);
        assert!(brief.contains(addr), "{dev} in {ns} lacks {addr}: {brief}");
        assert!(brief.split_whitespace().nth(1) == Some("UP"), "{dev} in {ns} is not up: {brief}");
        // The host end's peer is `dev`: its link index, in another namespace.
        let host_end = link_json(host, peer);
        assert_eq!(host_end["link_index"], ifindex(ns, dev), "{peer} in {host} is not the peer of {dev}: {host_end}");
        assert!(host_end.get("link_netnsid").is_some(), "{peer}'s peer is not in another namespace: {host_end}");
    }

    // 5. the bridge, up
    let bridge = ip_in(host, &["-d", "link", "show", "dev", "brd1"]);
    assert!(bridge.contains("bridge") && bridge.contains(",UP"), "brd1 in {host} is not an up bridge: {bridge}");

    // 6. both host-side ends are forwarding ports of brd1
    let ports = crate::check("bridge", &["-j", "-n", host, "link", "show"]);
    let ports: serde_json::Value = serde_json::from_str(&ports).expect("bridge -j");
    for port in ["bread-pb-veth", "bread-j-veth"] {
        let entry = ports.as_array().unwrap().iter().find(|p| p["ifname"] == port).unwrap_or_else(|| panic!("{port} is not a bridge port: {ports}"));
        assert!(entry["master"] == "brd1" && entry["state"] == "forwarding", "{port}: {entry}");
    }

    // 8. the host's address on the bridge
    let brief = ip_in(host, &["-br", "address", "show", "dev", "brd1"]);
    assert!(brief.contains("10.0.0.1/16"), "brd1 lacks 10.0.0.1/16: {brief}");

    // 9. default routes
    for (ns, dev) in [(&pb, "veth-pb"), (&jelly, "veth-jelly")] {
        let routes = ip_in(ns, &["route", "show", "default"]);
        assert!(routes.contains(&format!("default via 10.0.0.1 dev {dev}")), "no default route in {ns}: {routes}");
    }

    // 10. masquerade, in the lab's own table
    let table = check_in_ns(host, "nft", &["list", "table", "inet", &format!("nsw-{lab}")]);
    assert!(table.contains("hook postrouting") && table.contains("ip saddr 10.0.0.0/16 ip daddr != 10.0.0.0/16 masquerade"), "{table}");

    // 11. forwarding
    let forward = check_in_ns(host, "cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(forward.trim(), "1", "ip_forward in {host}");

    // 7, 8: real pings, and the bridge learned pb's MAC on pb's port, so
    // the traffic crossed it
    assert!(pings(&jelly, "10.0.0.10"), "jelly cannot ping pb");
    assert!(pings(&pb, "10.0.0.11"), "pb cannot ping jelly");
    assert!(pings(host, "10.0.0.10"), "the host cannot ping pb");
    assert!(pings(&jelly, "10.0.0.1"), "jelly cannot ping the host");
    let pb_mac = mac(&pb, "veth-pb");
    let fdb = crate::check("bridge", &["-n", host, "fdb", "show", "br", "brd1"]);
    assert!(
        fdb.lines().any(|l| l.starts_with(&pb_mac) && l.contains("dev bread-pb-veth") && !l.contains("permanent")),
        "brd1 never learned pb's MAC {pb_mac} on bread-pb-veth: {fdb}"
    );
}

/// Run a pbj (any language) contained, check every step in the kernel,
/// take it down, and check nothing leaked.
pub fn run_contained(wasm: &Path) {
    let machine = Machine::new("pbjc");
    let lab = machine.lab("pc");
    let out = lab.run_ok(wasm, &[], &[]);
    let name = &lab.name;
    check_progress(&stdout(&out));
    assert!(stderr(&out).contains(&format!("lab {name} is up")), "{}", text(&out));
    // Contained: the lab's host is a namespace of its own, and the
    // machine did not change at all while the lab is up.
    assert!(named_netns(name).contains(name), "no host namespace {name}");
    verify(name, name);
    assert_eq!(machine.snapshot(), lab.before, "a contained lab changed the machine");
    lab.down_and_check();
}

/// Run a pbj (any language) in host-net mode on a machine with an outside
/// world: check every step, that jelly reached the outside, and that the
/// outside only ever saw the machine's address (the masquerade proof).
pub fn run_host_net(wasm: &Path) {
    let machine = Machine::with_outside("pbjh");
    let test_lab = machine.lab("ph");
    let out = test_lab.run_ok(wasm, &["--allow", "host-net"], &[crate::OUTSIDE_ADDR]);
    let lab = test_lab.name.clone();
    check_progress(&stdout(&out));
    assert!(stdout(&out).contains("jelly -> outside: reply from 203.0.113.1"), "{}", text(&out));
    // host-net: the host side is the machine itself, as in the tutorial,
    // and the lab has no namespace of its own.
    assert!(!named_netns(&lab).contains(&lab));
    verify(&lab, &machine.name);
    let (from_machine, from_lab) = machine.outside_counts();
    assert!(from_machine >= 1, "the outside got no echo request from {}", crate::MACHINE_UPLINK_ADDR);
    assert_eq!(from_lab, 0, "the outside saw lab addresses: no masquerade");
    assert!(pings(&format!("{lab}-jelly"), crate::OUTSIDE_ADDR), "jelly cannot reach the outside");
    let (again, from_lab) = machine.outside_counts();
    assert!(again > from_machine && from_lab == 0, "{again} {from_lab}");
    // Links, NAT table, forwarding sysctl: all as they were.
    test_lab.down_and_check();
}
