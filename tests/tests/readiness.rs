//! `process.wait-ready`: a script waits for a daemon to be ready (a TCP
//! port listening in its node, a UDP port bound, a path of its node's
//! files, a line of its output), and learns why when it never is.

use nsw_tests::{Machine, guest, stdout, text};

/// Run `argv` in a node of a throwaway lab and wait for it as `kind` and
/// `value` say; what the script printed. The lab goes with the run.
fn wait_for(kind: &str, value: &str, timeout_ms: &str, argv: &[&str]) -> String {
    let machine = Machine::new("ready");
    let lab = machine.lab("rd");
    let mut args = vec!["ready", kind, value, timeout_ms];
    args.extend_from_slice(argv);
    let out = lab.run(&guest("spawner"), &["--rm", "--allow", "exec"], &args);
    assert!(out.status.success(), "{}", text(&out));
    lab.assert_gone();
    stdout(&out)
}

#[test]
fn a_web_server_on_port_80_is_waited_for_until_it_listens() {
    // Root of the lab binds port 80; the wait ends once it listens, so the
    // first connection is never refused.
    let said = wait_for("tcp", "80", "10000", &["python3", "-m", "http.server", "--bind", "0.0.0.0", "80"]);
    assert!(said.contains("ready in "), "{said}");
    assert!(said.contains("tcp 80: ConnectOutcome::Connected"), "{said}");
}

#[test]
fn a_udp_port_a_path_and_a_line_of_output_are_waited_for() {
    let udp = wait_for("udp", "5353", "10000", &["sh", "-c", "sleep 0.2; exec python3 -c 'import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"0.0.0.0\", 5353)); time.sleep(100)'"]);
    assert!(udp.contains("ready in "), "{udp}");
    let path = wait_for("path", "/run/daemon/control.sock", "10000", &["sh", "-c", "sleep 0.2; mkdir -p /run/daemon && touch /run/daemon/control.sock; sleep 100"]);
    assert!(path.contains("ready in "), "{path}");
    let line = wait_for("output", "serving now", "10000", &["sh", "-c", "echo starting; sleep 0.2; echo serving now on 7; sleep 100"]);
    assert!(line.contains("ready in "), "{line}");
    // Only a whole line's text counts, not one that merely started.
    let ms: u64 = line.split("ready in ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(ms >= 200, "ready after {ms} ms, before the line was printed");
}

#[test]
fn a_daemon_that_fails_first_or_is_never_ready_says_why() {
    let failed = wait_for("tcp", "80", "10000", &["sh", "-c", "echo 'bad config line 3' >&2; exit 3"]);
    assert!(failed.contains("not ready: os:") && failed.contains("exited with code 3 first"), "{failed}");
    assert!(failed.contains("bad config line 3"), "its output is not in the error: {failed}");
    let late = wait_for("udp", "5354", "300", &["sleep", "100"]);
    assert!(late.contains("not ready after 300 ms"), "{late}");
    // A daemon that goes to the background (exits 0) is waited for on.
    let forked = wait_for("path", "/tmp/up", "10000", &["sh", "-c", "(sleep 0.3; touch /tmp/up; sleep 100) & exit 0"]);
    assert!(forked.contains("ready in "), "{forked}");
    // Paths only among the node's own files, as `files` has them.
    let outside = wait_for("path", "/proc/1/root/etc/shadow", "1000", &["sleep", "100"]);
    assert!(outside.contains("not ready: denied:") && outside.contains("only a node's own files"), "{outside}");
    let zero = wait_for("tcp", "0", "1000", &["sleep", "100"]);
    assert!(zero.contains("port 0 is no port"), "{zero}");
}
