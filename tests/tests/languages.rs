//! The pb-and-jelly lab written in Python, JavaScript and C, each checked
//! step by step by the very code that checks the Rust one.

use nsw_tests::{lang_guest, pbj};

#[test]
fn python_pbj_contained() {
    pbj::run_contained(&lang_guest("pbj-py"));
}

#[test]
fn python_pbj_host_net_masquerades() {
    pbj::run_host_net(&lang_guest("pbj-py"));
}

#[test]
fn javascript_pbj_contained() {
    pbj::run_contained(&lang_guest("pbj-js"));
}

#[test]
fn javascript_pbj_host_net_masquerades() {
    pbj::run_host_net(&lang_guest("pbj-js"));
}

#[test]
fn c_pbj_contained() {
    pbj::run_contained(&lang_guest("pbj-c"));
}

#[test]
fn c_pbj_host_net_masquerades() {
    pbj::run_host_net(&lang_guest("pbj-c"));
}

#[test]
fn the_smallest_labs_of_the_guide_run_in_every_language() {
    for name in ["two_hosts-py", "two-hosts-js", "two_hosts-c"] {
        let machine = nsw_tests::Machine::new("guide");
        let lab = machine.lab("g");
        let out = lab.run_ok(&lang_guest(name), &["--rm"], &[]);
        assert!(nsw_tests::stdout(&out).contains("3/3 replies"), "{name}: {}", nsw_tests::text(&out));
        lab.assert_gone();
    }
}

#[test]
fn a_crash_after_a_refused_call_says_what_was_refused_in_every_language() {
    // Python (an exception not caught), JavaScript (likewise), C (assert).
    for name in ["uncaught-py", "uncaught-js", "uncaught-c"] {
        let machine = nsw_tests::Machine::new("unc");
        let lab = machine.lab("u");
        let out = lab.run(&lang_guest(name), &[], &[]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", nsw_tests::text(&out));
        let err = nsw_tests::stderr(&out);
        let says = "nsw: the script crashed after nsw refused its last call: invalid: address \"10.1.0.300/24\" is not an IP address/prefix on eth0 in netns";
        assert!(err.contains(says), "{name}: {}", nsw_tests::text(&out));
        assert!(err.contains("(run with --keep to leave them for a look)"), "{name}: {}", nsw_tests::text(&out));
        lab.assert_gone();
    }
}
