//! Real network software in the nodes (issue 20): the machine's own
//! daemons, from Debian, run by a lab with `--allow exec` alone, as root of
//! the lab, at their default paths in each node's own files.

use nsw_tests::{Machine, guest, processes_mentioning, stdout, text};

/// An OSPF triangle of BIRD 2 routers converges, carries h1 to h3, and
/// reroutes through r2 when r1–r3 is cut; `birdc` reaches each router's
/// daemon at its default socket through `nsw exec`; `down` stops them all
/// and the machine's `/etc/bird` is as it was.
#[test]
fn an_ospf_triangle_of_bird_routers_converges_and_reroutes() {
    let machine = Machine::new("ospf");
    let lab = machine.lab("os");
    let conf_before = std::fs::read("/etc/bird/bird.conf").ok();
    let out = lab.run_ok(&guest("ospf"), &["--allow", "exec=sh"], &[]);
    let printed = stdout(&out);
    assert!(printed.contains("h1 reaches h3"), "{}", text(&out));
    // Rerouted: r1 (10.1.0.1), then r2 (10.12.0.2), then r3 (10.23.0.2).
    assert!(printed.contains("through 10.1.0.1 10.12.0.2 10.23.0.2"), "{}", text(&out));
    for router in ["r1", "r2", "r3"] {
        let birdc = machine.nsw(&["exec", &lab.name, router, "--", "birdc", "show", "protocols"]);
        assert!(birdc.status.success(), "{router}: {}", text(&birdc));
        let said = stdout(&birdc);
        assert!(said.lines().any(|l| l.starts_with("ospf1") && l.contains("Running")), "{router}: {said}");
        let hostname = machine.nsw(&["exec", &lab.name, router, "--", "hostname"]);
        assert_eq!(stdout(&hostname).trim(), router);
    }
    assert_eq!(processes_mentioning("bird -f").len(), 3, "{:?}", processes_mentioning("bird -f"));
    lab.down_and_check();
    assert!(processes_mentioning("bird -f").is_empty(), "bird outlived down");
    assert_eq!(std::fs::read("/etc/bird/bird.conf").ok(), conf_before, "the machine's /etc/bird/bird.conf changed");
}
