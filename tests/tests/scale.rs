//! A 1000-node star, built and taken down once: real (every port on the
//! bridge, pings across it) and complete (nothing left). No timing is
//! asserted; `scripts/bench` measures.

use nsw_tests::{Machine, assert_no_leak, guest, named_netns, pings, stdout, text, unique};

#[test]
fn a_1000_node_star_is_real_and_leaves_nothing() {
    let machine = Machine::new("scale");
    let before = machine.snapshot();
    let lab = unique("big");
    let out = machine.nsw(&["run", guest("star").to_str().unwrap(), "--name", &lab, "--", "1000", "ping"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("star of 1000 hosts built"), "{}", text(&out));
    assert!(stdout(&out).contains("h1 -> hN: reply from 10.213.5.209"), "{}", text(&out));

    assert_eq!(named_netns(&format!("{lab}-h")).len(), 1000);
    let ports = nsw_tests::check("bridge", &["-j", "-n", &lab, "link", "show"]);
    let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
    let forwarding = ports.as_array().unwrap().iter().filter(|p| p["master"] == "br0" && p["state"] == "forwarding").count();
    assert_eq!(forwarding, 1000, "bridge ports forwarding");
    assert!(pings(&format!("{lab}-h1000"), "10.213.1.10"), "h1000 cannot reach h1");
    assert!(pings(&format!("{lab}-h500"), "10.213.0.1"), "h500 cannot reach the host");

    let down = machine.nsw(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert_no_leak(&lab, &machine, &before);
}
