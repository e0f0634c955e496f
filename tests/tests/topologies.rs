//! The scalable lab scripts besides the star: a chain of routers and a
//! tree of bridges, checked from the kernel's side.

use nsw_tests::{Machine, assert_no_leak, guest, in_ns, named_netns, stderr, stdout, text, unique};

#[test]
fn a_chain_of_routers_forwards_across_every_one() {
    let machine = Machine::new("lin");
    let before = machine.snapshot();
    let lab = unique("ln");
    let out = machine.nsw(&["run", guest("linear").to_str().unwrap(), "--name", &lab, "--", "20"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("r1 -> r20 (10.214.0.74) across 18 routers: reply"), "{}", text(&out));
    assert_eq!(named_netns(&format!("{lab}-r")).len(), 20);
    // The reply left r20 with TTL 64 and lost one at each of the 18
    // routers between: it really crossed them all.
    let ping = in_ns(&format!("{lab}-r1"), "ping", &["-c1", "-W2", "10.214.0.74"]);
    assert!(String::from_utf8_lossy(&ping.stdout).contains("ttl=46"), "{}", text(&ping));
    let forwarding = nsw_tests::check_in_ns(&format!("{lab}-r7"), "cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(forwarding.trim(), "1");
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn a_trace_across_a_chain_names_every_router_in_order() {
    let machine = Machine::new("trc");
    let lab = machine.lab("tr");
    let out = lab.run_ok(&guest("linear"), &["--rm"], &["5", "trace"]);
    // Each router answers from its address toward r1; the last hop is r5.
    let printed = stdout(&out);
    let hops: Vec<&str> = printed.lines().filter_map(|l| l.split_once(" | hop ").map(|(_, h)| h)).collect();
    assert_eq!(hops, ["1: 10.214.0.2", "2: 10.214.0.6", "3: 10.214.0.10", "4: 10.214.0.14"], "{}", text(&out));
    lab.assert_gone();
}

#[test]
fn a_tree_of_bridges_is_one_network() {
    let machine = Machine::new("tree");
    let before = machine.snapshot();
    let lab = unique("tr");
    let out = machine.nsw(&["run", guest("tree").to_str().unwrap(), "--name", &lab, "--", "3", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("tree of depth 3, fanout 3: 13 switches, 27 hosts"), "{}", text(&out));
    // 12 switch namespaces below the root (the lab's host), 27 hosts.
    assert_eq!(named_netns(&format!("{lab}-s")).len(), 12);
    assert_eq!(named_netns(&format!("{lab}-h")).len(), 27);
    let ports = nsw_tests::check("bridge", &["-j", "-n", &format!("{lab}-s2-1"), "link", "show"]);
    let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
    assert_eq!(ports.as_array().unwrap().iter().filter(|p| p["master"] == "br0").count(), 4, "uplink + 3 hosts: {ports}");
    assert!(nsw_tests::pings(&format!("{lab}-h1-1-1"), "10.215.1.27"), "leaf to leaf across the root");
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn ipv6_through_two_routers_works_from_the_first_ping() {
    // With link-local addresses on, and off (the routers keep theirs).
    for args in [&[][..], &["nolinklocal"][..]] {
        let machine = Machine::new("r6");
        let lab = machine.lab("r6");
        let out = lab.run_ok(&guest("routed6"), &["--rm"], args);
        let printed = stdout(&out);
        assert!(printed.contains("h1 -> h2 (fd02::2): 3/3 replies") && printed.contains("h1 -> h3 (fd02::3): 3/3 replies"), "{args:?}: {}", text(&out));
        lab.assert_gone();
    }
}

/// Three switches in a loop, STP set from the script: h1 reaches h3, and
/// the kernel blocks exactly the port the path costs say (s2's to s3: s1
/// is the root, s3 reaches it directly for 10, s2 for 100, so the s2–s3
/// link is s3's to forward on).
#[test]
fn a_loop_of_bridges_is_kept_from_flooding_by_stp_set_from_the_script() {
    // The script as it is, and as it was built against WIT 0.1.3 (kept:
    // a script built against an earlier WIT runs unchanged).
    let fixture = nsw_tests::workspace().join("tests/fixtures/stp-wit-0.1.3.wasm");
    for script in [guest("stp"), fixture] {
        a_loop_of_bridges(&script);
    }
}

fn a_loop_of_bridges(script: &std::path::Path) {
    let machine = Machine::new("stp");
    let before = machine.snapshot();
    let lab = unique("st");
    let out = machine.nsw(&["run", script.to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("h1 reaches h3 across the loop"), "{}", text(&out));
    let mut states = Vec::new();
    for switch in ["s1", "s2", "s3"] {
        let ports = nsw_tests::check("bridge", &["-j", "-n", &format!("{lab}-{switch}"), "link", "show"]);
        let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
        for port in ports.as_array().unwrap() {
            states.push((switch, port["ifname"].as_str().unwrap().to_string(), port["state"].as_str().unwrap().to_string(), port["cost"].clone()));
        }
    }
    let blocking: Vec<_> = states.iter().filter(|(_, _, state, _)| state == "blocking").collect();
    assert_eq!(blocking.len(), 1, "{states:?}");
    assert_eq!((blocking[0].0, blocking[0].1.as_str()), ("s2", "to-s3"), "{states:?}");
    assert!(states.iter().any(|(s, port, _, cost)| *s == "s1" && port == "to-s3" && *cost == 10), "{states:?}");
    // nsw show says each port's state and cost as the kernel has them.
    let shown = machine.nsw(&["show", &lab, "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    for (switch, port, state, cost) in &states {
        let node = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == *switch).unwrap();
        let link = node["links"].as_array().unwrap().iter().find(|l| l["name"] == port.as_str()).unwrap();
        assert_eq!((&link["port_state"], &link["port_cost"]), (&serde_json::Value::from(state.as_str()), cost), "{switch} {port}: {link}");
        let bridge = node["links"].as_array().unwrap().iter().find(|l| l["name"] == "br0").unwrap();
        assert_eq!(bridge["stp"], true, "{switch}: {bridge}");
    }
    let text_shown = stdout(&machine.nsw(&["show", &lab]));
    assert!(text_shown.contains("stp on") && text_shown.contains("stp blocking, cost 100"), "{text_shown}");
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

/// One route of two gateways (weights 1 and 3), as the kernel has it, as
/// `nsw show` says it, and as `nsw plan` writes it (run by the real ip).
#[test]
fn a_route_of_two_weighted_gateways_reaches_over_both_routers() {
    let machine = Machine::new("ecmp");
    let before = machine.snapshot();
    let lab = unique("ec");
    let out = machine.nsw(&["run", guest("ecmp").to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("a reaches 10.0.5.1 through r1 (weight 1) and r2 (weight 3)"), "{}", text(&out));
    let hops = |routes: &str| -> Vec<(String, String, u64)> {
        let routes: serde_json::Value = serde_json::from_str(routes).unwrap();
        let route = routes.as_array().unwrap().iter().find(|r| r["dst"] == "10.0.5.0/24").unwrap_or_else(|| panic!("no route: {routes}")).clone();
        route["nexthops"].as_array().unwrap().iter().map(|h| (h["gateway"].as_str().unwrap().into(), h["dev"].as_str().unwrap().into(), h["weight"].as_u64().unwrap())).collect()
    };
    let wanted = vec![("10.0.1.2".to_string(), "eth1".to_string(), 1), ("10.0.2.2".to_string(), "eth2".to_string(), 3)];
    assert_eq!(hops(&nsw_tests::ip_in(&format!("{lab}-a"), &["-j", "route", "show"])), wanted);
    let view: serde_json::Value = serde_json::from_slice(&machine.nsw(&["show", &lab, "--json"]).stdout).unwrap();
    let a = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "a").unwrap();
    let route = a["routes"].as_array().unwrap().iter().find(|r| r["destination"] == "10.0.5.0/24").unwrap();
    let shown: Vec<(String, String, u64)> =
        route["nexthops"].as_array().unwrap().iter().map(|h| (h["via"].as_str().unwrap().into(), h["dev"].as_str().unwrap().into(), h["weight"].as_u64().unwrap())).collect();
    assert_eq!(shown, wanted, "{route}");
    assert_eq!(route["protocol"], "static", "{route}");
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
    // The plan builds the same route with the real ip.
    let planned = unique("ep");
    let plan = machine.nsw(&["plan", guest("ecmp").to_str().unwrap(), "--name", &planned]);
    assert!(plan.status.success() && stdout(&plan).contains("nexthop via 10.0.1.2 weight 1 nexthop via 10.0.2.2 weight 3"), "{}", text(&plan));
    let ran = in_ns(&machine.name, "sh", &["-c", &stdout(&plan)]);
    let built = nsw_tests::ip_in(&format!("{planned}-a"), &["-j", "route", "show"]);
    for ns in named_netns(&planned).into_iter().filter(|n| *n == planned || n.starts_with(&format!("{planned}-"))) {
        nsw_tests::check("ip", &["netns", "del", &ns]);
    }
    assert!(ran.status.success(), "{}", text(&ran));
    assert_eq!(hops(&built), wanted);
    // Bad gateways are refused by name, before anything is built.
    let refused = machine.nsw(&["run", guest("ecmp").to_str().unwrap(), "--name", &lab, "--", "0", "1"]);
    assert!(!refused.status.success() && stderr(&refused).contains("the weight of 10.0.1.2 is 0; a weight is 1 to 256"), "{}", text(&refused));
    assert_no_leak(&lab, &machine, &before);
}
