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
