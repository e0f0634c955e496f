//! The pb-and-jelly lab, checked from the kernel's own view. Every pbj, in
//! every language, is checked by this one function.

use crate::{check_in_ns, ip_in, named_netns, pings};

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
        let host_end = ip_in(host, &["-o", "link", "show", "dev", peer]);
        let want = format!("{peer}@if{}", ifindex(ns, dev));
        assert!(host_end.contains(&want), "{peer} in {host} is not the peer of {dev} ({want}): {host_end}");
    }

    // 5. the bridge, up
    let bridge = ip_in(host, &["-d", "link", "show", "dev", "brd1"]);
    assert!(bridge.contains("bridge") && bridge.contains(",UP"), "brd1 in {host} is not an up bridge: {bridge}");

    // 6. both host-side ends are forwarding ports of brd1
    let ports = crate::check("bridge", &["-n", host, "link", "show"]);
    for port in ["bread-pb-veth", "bread-j-veth"] {
        let line = ports.lines().find(|l| l.contains(&format!(" {port}@"))).unwrap_or_else(|| panic!("{port} is not a bridge port: {ports}"));
        assert!(line.contains("master brd1") && line.contains("state forwarding"), "{port}: {line}");
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
    assert!(table.contains("hook postrouting") && table.contains("ip saddr 10.0.0.0/16 masquerade"), "{table}");

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
