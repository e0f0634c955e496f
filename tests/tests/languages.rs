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
