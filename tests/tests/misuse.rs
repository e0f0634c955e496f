//! Bad input from a guest ends in the right error variant with a message
//! that names the problem, and the lab is rolled back: nothing is left,
//! and the machine is as it was.

use nsw_tests::{Machine, assert_no_leak, guest, stderr, stdout, text, unique};

/// Run misuse.wasm with `args` in a fresh machine and lab; check the exit
/// status, that stderr says `expect` (every part), and that nothing leaked.
fn misuse(args: &[&str], status: i32, expect: &[&str]) {
    misuse_with(&[], args, status, expect)
}

fn misuse_with(flags: &[&str], args: &[&str], status: i32, expect: &[&str]) {
    let machine = Machine::new("mis");
    let lab = machine.lab("m");
    let out = lab.run(&guest("misuse"), flags, args);
    assert_eq!(out.status.code(), Some(status), "{args:?}: {}", text(&out));
    assert!(stdout(&out).contains("built netns base"), "{args:?} failed before building: {}", text(&out));
    let err = stderr(&out);
    for part in expect {
        assert!(err.contains(part), "{args:?}: stderr lacks {part:?}: {}", text(&out));
    }
    assert!(err.contains("rolled back"), "{args:?}: {}", text(&out));
    lab.assert_gone();
}

#[test]
fn the_guest_succeeds_and_the_lab_is_up() {
    let machine = Machine::new("mis");
    let lab = machine.lab("m");
    lab.run_ok(&guest("misuse"), &[], &["ok"]);
    assert!(nsw_tests::named_netns(&lab.name).contains(&format!("{}-base", lab.name)));
    lab.down_and_check();
}

#[test]
fn netns_name_with_a_slash_is_invalid() {
    misuse(&["netns", "a/b"], 1, &["invalid: netns name \"a/b\" contains '/'"]);
}

#[test]
fn netns_name_with_dots_is_invalid() {
    misuse(&["netns", "../x"], 1, &["invalid: netns name \"../x\""]);
    misuse(&["netns", ".."], 1, &["invalid: netns name \"..\""]);
}

#[test]
fn netns_name_with_a_nul_byte_is_invalid() {
    misuse(&["netns-nul"], 1, &["invalid: netns name \"a\\0b\" contains control character"]);
}

#[test]
fn interface_name_over_15_bytes_is_invalid() {
    misuse(&["ifname", "bridge-name-of-20-b"], 1, &["invalid: interface name \"bridge-name-of-20-b\" is 19 bytes long"]);
}

#[test]
fn malformed_address_is_invalid_and_says_where() {
    misuse(&["address", "10.0.0.300/16"], 1, &["invalid: address \"10.0.0.300/16\" is not an IP address/prefix on m-in in netns"]);
    misuse(&["address", "10.0.0.3"], 1, &["invalid: address \"10.0.0.3\" has no prefix length"]);
}

#[test]
fn malformed_route_is_invalid() {
    misuse(&["route", "10.1.0.5/16", "10.0.0.1"], 1, &["invalid: prefix \"10.1.0.5/16\" has host bits set; did you mean 10.1.0.0/16?"]);
    misuse(&["route", "default", "gateway"], 1, &["invalid: \"gateway\" is not an IP address"]);
}

#[test]
fn a_gateway_on_no_subnet_is_invalid_and_says_which_subnets_there_are() {
    misuse(&["route", "default", "192.0.2.1"], 1, &["invalid: add route to default via 192.0.2.1 in netns", "192.0.2.1 is on none of netns", "(no addresses); a route needs a gateway on one of them"]);
}

#[test]
fn masquerade_of_a_non_prefix_is_invalid() {
    misuse(&["masquerade", "10.0.0.1/16"], 1, &["invalid: prefix \"10.0.0.1/16\" has host bits set"]);
}

#[test]
fn duplicate_names_are_exists() {
    misuse(&["duplicate-netns"], 1, &["exists: this lab already has a netns named \"base\""]);
    // m-out is a veth end the kernel does not have yet: the lab refuses.
    misuse(&["duplicate-link"], 1, &["exists: this lab already has a link named m-out in netns"]);
}

#[test]
fn bridge_port_in_another_namespace_is_invalid() {
    misuse(&["master-across"], 1, &["invalid: m-in is in netns", "but bridge br0 is in netns", "move it first"]);
}

#[test]
fn a_trap_halfway_is_rolled_back() {
    misuse(&["trap"], 3, &["the script crashed", "misuse: a trap halfway through building the lab"]);
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline_and_rolled_back() {
    misuse_with(&["--timeout", "2"], &["loop"], 4, &["the script ran out of time (2 s"]);
}

#[test]
fn ipv6_addresses_routes_forwarding_and_ping() {
    let machine = Machine::new("mis");
    let before = machine.snapshot();
    let lab = unique("m");
    let out = machine.nsw(&["run", guest("misuse").to_str().unwrap(), "--name", &lab, "--", "ipv6"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("ipv6 ping: 1/1"), "{}", text(&out));
    let base = format!("{lab}-base");
    let addr = nsw_tests::ip_in(&base, &["-6", "address", "show", "dev", "m-in"]);
    assert!(addr.contains("inet6 fd00:db8::2/64"), "{addr}");
    let routes = nsw_tests::ip_in(&base, &["-6", "route", "show"]);
    assert!(routes.contains("fd00:beef::/48 via fd00:db8::1 dev m-in"), "{routes}");
    let forwarding = nsw_tests::check_in_ns(&lab, "cat", &["/proc/sys/net/ipv6/conf/all/forwarding"]);
    assert_eq!(forwarding.trim(), "1");
    assert!(nsw_tests::in_ns(&base, "ping", &["-6", "-c1", "-W1", "fd00:db8::1"]).status.success());
    assert!(machine.nsw(&["down", &lab]).status.success());
    assert_no_leak(&lab, &machine, &before);
}

#[test]
fn a_gateway_behind_a_link_that_is_down_says_so() {
    misuse(&["route-down"], 1, &["invalid: add route to default via 10.60.0.1 in netns", "the gateway 10.60.0.1 is on m-in, which is down (set it up first)"]);
}

#[test]
fn a_ping_that_gets_nothing_says_which_links_were_never_set_up() {
    misuse(&["ping-down"], 1, &["got no reply; the lab never set up m-in in netns", "0/1 replies"]);
}

#[test]
fn a_rollback_says_how_to_keep_what_was_built() {
    misuse(&["netns", "a/b"], 1, &["rolled back: removed", "(run with --keep to leave them for a look)"]);
}

#[test]
fn script_arguments_without_dashes_get_a_hint() {
    let machine = Machine::new("mis");
    let out = machine.nsw(&["run", guest("misuse").to_str().unwrap(), "ok"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("hint: arguments for the script go after --"), "{}", text(&out));
}
