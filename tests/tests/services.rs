//! Labs that do things: WebAssembly services in nodes, programs of the
//! machine in nodes (`--allow exec`), probes, and `nsw test` reports.

use std::time::{Duration, Instant};

use nsw_tests::user::User;
use nsw_tests::{Machine, TestLab, guest, in_ns, lang_guest, processes_mentioning, running, sleeper_pid, stderr, stdout, text, unique};

/// `nsw test` a web lab; the JUnit XML it wrote.
fn test_web(wasm: &std::path::Path, args: &[&str]) -> (std::process::Output, String) {
    let machine = Machine::new("web");
    let lab = machine.lab("w");
    let junit = std::env::temp_dir().join(unique("nsw-junit-"));
    let mut all = vec!["test", wasm.to_str().unwrap(), "--name", lab.name.as_str(), "--junit", junit.to_str().unwrap()];
    if !args.is_empty() {
        all.push("--");
        all.extend_from_slice(args);
    }
    let out = machine.nsw(&all);
    let xml = std::fs::read_to_string(&junit).unwrap_or_else(|e| panic!("no JUnit report ({e}): {}", text(&out)));
    std::fs::remove_file(&junit).unwrap();
    // Services stopped, namespaces gone, whatever the verdict.
    lab.assert_gone();
    (out, xml)
}

#[test]
fn nsw_test_of_the_web_lab_passes_with_a_junit_report() {
    let (out, xml) = test_web(&guest("web"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(xml.contains("tests=\"4\"") && xml.contains("failures=\"0\""), "{xml}");
    assert!(xml.contains("<testcase name=\"http-get http://10.0.0.1:8080/ from cli\""), "{xml}");
    // Each testcase says how long it took (CI systems show it).
    assert_eq!(xml.matches("<testcase ").count(), 4, "{xml}");
    assert_eq!(xml.lines().filter(|l| l.contains("<testcase ") && l.contains(" time=\"")).count(), 4, "{xml}");
    // The services spoke, prefixed with node and name.
    assert!(stdout(&out).contains("srv/http-server | served GET / to 10.0.0.2:"), "{}", text(&out));
    assert!(stdout(&out).contains("cli/http-get | status 200"), "{}", text(&out));
    assert!(stderr(&out).contains("stopped 1 service still running at the end of the run: srv/http-server"), "{}", text(&out));
}

/// What the web lab's http-server answers to `GET /`, asked from node
/// `cli` of lab `lab` (whose namespace is `<lab>-cli`).
fn page_from_cli(lab: &str) -> String {
    let get = "exec 3<>/dev/tcp/10.0.0.1/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3";
    let out = in_ns(&format!("{lab}-cli"), "bash", &["-c", get]);
    text(&out)
}

/// The lab's processes as `nsw show --json` lists them: (program, running).
fn shown_processes(out: &std::process::Output) -> Vec<(String, bool)> {
    let view: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    nodes
        .iter()
        .flat_map(|n| n["processes"].as_array().cloned().unwrap_or_default())
        .map(|p| (p["program"].as_str().unwrap_or_default().to_string(), p["running"].as_bool().unwrap_or(false)))
        .collect()
}

#[test]
fn services_of_a_lab_left_up_serve_after_the_run_and_end_with_down() {
    let machine = Machine::new("kept");
    let lab = machine.lab("kp");
    // A deadline of 3 s: the service outlives the run's deadline too.
    let run = lab.run_ok(&guest("web"), &["--timeout", "3"], &[]);
    assert!(stderr(&run).contains("nsw: 1 service keeps running until the lab goes down: srv/http-server"), "{}", text(&run));
    assert!(!stderr(&run).contains("stopped"), "{}", text(&run));
    std::thread::sleep(Duration::from_secs(4));
    let page = page_from_cli(&lab.name);
    assert!(page.contains("200 OK") && page.contains("hello from nsw"), "{page}");
    // Its output, from the run and after it, in its log.
    let logs = machine.nsw(&["logs", &lab.name, "srv/http-server"]);
    assert!(logs.status.success(), "{}", text(&logs));
    assert!(stdout(&logs).matches("served GET / to 10.0.0.2:").count() >= 2, "{}", text(&logs));
    // Listed among the lab's processes, running; held by the nsw that ran it.
    let show = machine.nsw(&["show", &lab.name, "--json"]);
    assert!(shown_processes(&show).contains(&("http-server".to_string(), true)), "{}", text(&show));
    assert!(!nsw_tests::processes_naming_lab(&lab.name).is_empty(), "nothing holds the service");
    let down = lab.down_and_check();
    assert!(stderr(&down).contains("stopped 1 process"), "{}", text(&down));
    assert!(nsw_tests::processes_naming_lab(&lab.name).is_empty(), "still running");

    // With --rm, or a failure, they stop with the run (as they always did).
    let lab = machine.lab("kr");
    let run = lab.run_ok(&guest("web"), &["--rm"], &[]);
    assert!(stderr(&run).contains("stopped 1 service still running at the end of the run: srv/http-server"), "{}", text(&run));
    lab.assert_gone();
}

#[test]
fn an_ordinary_users_lab_keeps_its_services_after_the_run_too() {
    let machine = Machine::new("ukept");
    let user = User::new();
    let web = user.file(&guest("web"));
    let run = user.nsw(&machine, &["run", web.to_str().unwrap(), "--name", "uweb"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(stderr(&run).contains("1 service keeps running until the lab goes down: srv/http-server"), "{}", text(&run));
    let probe = user.nsw(&machine, &["probe", "uweb", "cli", "tcp", "10.0.0.1", "8080"]);
    assert!(probe.status.success() && stdout(&probe).contains("connected"), "{}", text(&probe));
    let logs = user.nsw(&machine, &["logs", "uweb", "srv/http-server"]);
    assert!(stdout(&logs).contains("served GET / to 10.0.0.2:"), "{}", text(&logs));
    user.down_all(&machine);
}

#[test]
fn a_lab_script_built_against_wit_0_1_1_runs_unchanged() {
    // web.wasm as built against nsw:lab@0.1.1 (before conditions and the
    // firewall came in 0.1.2), kept as it was.
    let fixture = nsw_tests::workspace().join("tests/fixtures/web-wit-0.1.1.wasm");
    let (out, xml) = test_web(&fixture, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(xml.contains("tests=\"4\"") && xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn nsw_test_aimed_at_the_wrong_port_fails_and_names_it() {
    let (out, xml) = test_web(&guest("web"), &["9999"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(xml.contains("failures=\"2\""), "{xml}");
    assert!(xml.contains("<testcase name=\"tcp 10.0.0.1:9999 from cli\"") && xml.contains("<failure message=\"refused"), "{xml}");
    assert!(stderr(&out).contains("FAIL    refused"), "{}", text(&out));
    // Under `nsw run` the same checks are seen too: the table, then how
    // many failed, last; the run itself succeeded (only `test` fails).
    let machine = Machine::new("webrun");
    let lab = machine.lab("wr");
    let run = lab.run_ok(&guest("web"), &["--rm"], &["9999"]);
    let said = stderr(&run);
    assert!(said.contains("tcp 10.0.0.1:9999 from cli") && said.contains("FAIL    refused"), "{}", text(&run));
    assert_eq!(said.lines().last(), Some("nsw: 1 of 3 checks passed, 2 failed (nsw test fails on them)"), "{}", text(&run));
    lab.assert_gone();
}

#[test]
fn the_web_lab_in_python_passes_too() {
    let (out, xml) = test_web(&lang_guest("web-py"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn iperf_and_nsws_own_throughput_probe_on_one_path() {
    let machine = Machine::new("iperf");
    let lab = machine.lab("ip");
    let wasm = guest("iperf");
    // Without the grant it is refused before anything runs.
    let refused = lab.run(&wasm, &[], &["1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(stderr(&refused).contains("it imports nsw:lab/process@0.1.5") && stderr(&refused).contains("add --allow exec"), "{}", text(&refused));
    lab.assert_gone();
    let out = lab.run_ok(&wasm, &["--rm", "--allow", "exec=iperf3"], &["1"]);
    let printed = stdout(&out);
    let figure = |what: &str| -> f64 {
        let line = printed.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what}: {}", text(&out)));
        line.split(what).nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    let (iperf, probe) = (figure("iperf3: "), figure("probe.throughput: "));
    assert!(iperf > 0.0 && probe > 0.0, "{}", text(&out));
    lab.assert_gone();
    assert!(processes_mentioning("iperf3").is_empty(), "iperf3 outlived the lab");
}

#[test]
fn a_program_outside_the_grant_is_refused() {
    let machine = Machine::new("exec");
    let lab = machine.lab("ex");
    let out = lab.run(&guest("spawner"), &["--allow", "exec=iperf3"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("is not among the programs granted (--allow exec=iperf3)"), "{}", text(&out));
    lab.assert_gone();
}


#[test]
fn programs_run_unprivileged_and_go_with_the_lab() {
    let machine = Machine::new("exec");
    let lab = machine.lab("ex");
    let out = lab.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let pid = sleeper_pid(&stdout(&out));
    assert!(running(pid), "sleep is not running");
    // As root of the lab's own user namespace: on the machine a uid of the
    // lab's own range (neither root nor nobody), unable to gain more.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: u32 = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap();
    assert!(uid >= 0x7000_0000 && uid % 65536 == 0, "{status}");
    assert!(status.lines().any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')), "{status}");
    let node = std::fs::metadata(format!("/run/netns/{}-a", lab.name)).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let its = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert_eq!(its, node, "sleep is not in node a's namespace");
    lab.down_and_check();
    assert!(!running(pid), "sleep outlived the lab");
}

#[test]
fn programs_go_with_the_lab_after_a_kill_9_of_nsw() {
    let machine = Machine::new("exec");
    let lab = machine.lab("ex");
    let file = guest("spawner");
    let mut child = machine.spawn(&["run", file.to_str().unwrap(), "--name", &lab.name, "--allow", "exec=sleep", "--", "hang"], &[]);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().expect("the script said nothing").unwrap();
    let pid = sleeper_pid(&first);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = child.wait();
    assert!(running(pid), "sleep died with nsw: the test proves nothing");
    let down = machine.nsw(&["down", &lab.name]);
    assert!(down.status.success(), "{}", text(&down));
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!running(pid), "sleep outlived nsw down");
    lab.assert_gone();
}

/// What a program of the lab may do as root of the lab, and what it may
/// not: run `COMMAND` with `sh -c` in a node of a lab of its own.
fn in_a_node<'m>(machine: &'m Machine, command: &str) -> (TestLab<'m>, String) {
    let lab = machine.lab("lr");
    let out = lab.run(&guest("hostile_outputs"), &["--rm", "--allow", "exec"], &["run", "sh", "-c", command]);
    assert!(out.status.success(), "{}", text(&out));
    (lab, stdout(&out))
}

/// Programs are root of the lab: they hold what daemons need over the
/// lab's own namespaces (routes, raw sockets, port 80), and nothing over
/// the machine's processes or another lab's.
#[test]
fn programs_are_root_of_their_lab_and_of_nothing_else() {
    let machine = Machine::new("labroot");
    // Over the node: a route (NET_ADMIN), a raw socket (NET_RAW: ping), a
    // port under 1024 (NET_BIND_SERVICE).
    let (lab, out) = in_a_node(
        &machine,
        "ip route add 10.77.0.0/16 via 10.0.9.2 && ip route show 10.77.0.0/16 && \
         ping -c1 -W1 10.0.9.1 >/dev/null && echo raw=ok && \
         python3 -c 'import socket; s = socket.socket(); s.bind((\"0.0.0.0\", 80)); print(\"bound=80\")'",
    );
    assert!(out.contains("stdout: 10.77.0.0/16 via 10.0.9.2") && out.contains("stdout: raw=ok") && out.contains("stdout: bound=80"), "{out}");
    lab.assert_gone();
    // Another lab's program, and the machine's processes (this test's):
    // not even a signal 0 reaches them.
    let other = machine.lab("lr");
    let spawned = other.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let pid = sleeper_pid(&stdout(&spawned));
    let me = std::process::id();
    let (lab, out) = in_a_node(&machine, &format!("kill -0 {pid}; echo other=$?; kill -0 {me}; echo machine=$?; id -u"));
    assert!(out.contains("stdout: other=1") && out.contains("stdout: machine=1"), "{out}");
    // Root inside (uid 0), which is not the machine's root.
    assert!(out.contains("stdout: 0"), "{out}");
    lab.assert_gone();
    assert!(running(pid), "the other lab's program was stopped");
    other.down_and_check();
}

/// Nothing a lab's programs start escapes `down`, whatever they do: one
/// forks from its SIGTERM trap, one makes user and network namespaces of
/// its own, ten ignore SIGTERM (and `down` waits one grace period for all
/// of them, not ten).
#[test]
fn nothing_a_program_does_escapes_down() {
    let machine = Machine::new("escape");
    let lab = machine.lab("es");
    let mut commands = vec![
        "trap 'sleep 3011 &' TERM; while :; do sleep 1; done".to_string(),
        "exec unshare -rn sleep 3141".to_string(),
    ];
    commands.extend((0..10).map(|_| "trap '' TERM; sleep 3271".to_string()));
    let mut args = vec!["spawn"];
    args.extend(commands.iter().map(String::as_str));
    let out = lab.run_ok(&guest("hostile_outputs"), &["--allow", "exec"], &args);
    assert_eq!(stdout(&out).matches("spawned pid").count(), 12, "{}", text(&out));
    // unshare has made its namespaces and become sleep by now.
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_mentioning("sleep 3141").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_mentioning("sleep 3141").is_empty(), "unshare did not start");
    let started = Instant::now();
    let down = machine.nsw(&["down", &lab.name]);
    let took = started.elapsed();
    assert!(down.status.success(), "{}", text(&down));
    for left in ["sleep 3011", "sleep 3141", "sleep 3271"] {
        assert!(processes_mentioning(left).is_empty(), "{left} escaped down: {:?}", processes_mentioning(left));
    }
    assert!(took < Duration::from_secs(8), "down took {took:?}: a grace period per process?");
    lab.assert_gone();
}

/// A node has files and a name of its own: its hostname is the node's
/// name, `/etc/hosts` names the lab's nodes, what it writes under `/etc`,
/// `/var/lib`, `/tmp` stays in the node (and goes with it), `/run` starts
/// empty, and the machine's own files are never written through. `nsw
/// exec` joins the same, as root of the lab, not of the machine.
#[test]
fn a_node_has_files_and_a_name_of_its_own() {
    let machine = Machine::new("nodefs");
    let marker = unique("nsw-node-file-");
    let (lab, out) = in_a_node(
        &machine,
        &format!(
            "hostname; cat /etc/hosts; mkdir -p /etc/{marker} && echo conf > /etc/{marker}/x.conf && cat /etc/{marker}/x.conf; \
             echo t > /tmp/{marker} && echo tmp=ok; mkdir -p /var/lib/{marker} && echo lib=ok; echo run=$(ls -A /run | wc -l); \
             echo changed >> /etc/debian_version || echo machine-file=refused"
        ),
    );
    assert!(out.contains("stdout: a\n"), "the hostname is not the node's: {out}");
    assert!(out.contains("stdout: 10.0.9.1\ta"), "/etc/hosts does not name the node: {out}");
    for said in ["stdout: conf", "stdout: tmp=ok", "stdout: lib=ok", "stdout: run=0", "stdout: machine-file=refused"] {
        assert!(out.contains(said), "no {said:?} in {out}");
    }
    for path in [format!("/etc/{marker}"), format!("/tmp/{marker}"), format!("/var/lib/{marker}")] {
        assert!(!std::path::Path::new(&path).exists(), "{path} was written on the machine");
    }
    assert!(!std::fs::read_to_string("/etc/debian_version").unwrap().contains("changed"));
    lab.assert_gone();
    // nsw exec, while a program of the node runs.
    let lab = machine.lab("nx");
    lab.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let exec = machine.nsw(&["exec", &lab.name, "a", "--", "sh", "-c", "hostname; id -u; cat /proc/self/uid_map"]);
    assert!(exec.status.success(), "{}", text(&exec));
    let said = stdout(&exec);
    let mut lines = said.lines();
    assert_eq!(lines.next(), Some("a"), "{said}");
    assert_eq!(lines.next(), Some("0"), "{said}");
    let map: Vec<u64> = lines.next().unwrap_or_default().split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(map.len() == 3 && map[0] == 0 && map[1] >= 0x7000_0000 && map[2] == 65536, "nsw exec is not root of the lab only: {said}");
    exec_holds_nothing_of_the_user(&machine, &lab);
    lab.down_and_check();
}

/// Behind the boundary, `nsw exec`'s command is the lab's to trace: it
/// gets pipes or a terminal of its own, never the user's descriptors nor
/// environment; what the user gives reaches it, and its status comes back.
fn exec_holds_nothing_of_the_user(machine: &Machine, lab: &TestLab) {
    use std::process::{Command, Stdio};
    let input = std::env::temp_dir().join(unique("nsw-exec-input-"));
    std::fs::write(&input, "given-by-the-user\n").unwrap();
    let net = format!("--net=/run/netns/{}", machine.name);
    let script = "readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; cat; echo secret=${NSW_TEST_SECRET:-none}; exit 7";
    let piped = Command::new("nsenter")
        .arg(&net)
        .arg(nsw_tests::nsw_bin())
        .args(["exec", &lab.name, "a", "--", "sh", "-c", script])
        .env("NSW_TEST_SECRET", "machine-only")
        .stdin(Stdio::from(std::fs::File::open(&input).unwrap()))
        .output()
        .unwrap();
    std::fs::remove_file(&input).unwrap();
    let said = stdout(&piped);
    assert_eq!(piped.status.code(), Some(7), "the command's status did not come back: {}", text(&piped));
    let fds: Vec<&str> = said.lines().take(3).collect();
    assert!(fds.len() == 3 && fds.iter().all(|fd| fd.starts_with("pipe:")), "the command holds the user's descriptors: {said}");
    assert!(said.contains("given-by-the-user\nsecret=none\n"), "input not relayed, or the user's environment went in: {said}");
    // With a terminal (util-linux's script gives nsw one): a new one.
    let inner = format!("{} {net} {} exec {} a -- sh -c 'readlink /proc/self/fd/0; exit 3'", "nsenter", nsw_tests::nsw_bin().display(), lab.name);
    let typed = Command::new("script").args(["-qec", &format!("readlink /proc/self/fd/0; {inner}"), "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    let said = stdout(&typed);
    assert_eq!(typed.status.code(), Some(3), "{}", text(&typed));
    // (script echoes what it reads of its own input as `^@` before it.)
    let ttys: Vec<&str> = said.lines().filter_map(|l| l.find("/dev/pts/").map(|at| l[at..].trim())).collect();
    assert!(ttys.len() == 2 && ttys[0] != ttys[1], "the command was given the user's terminal: {said:?}");
    let exec = |script: &str| {
        Command::new("nsenter")
            .arg(&net)
            .arg(nsw_tests::nsw_bin())
            .args(["exec", &lab.name, "a", "--", "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A command that reads none of its input while it writes much: the
    // relay neither stalls on the input it cannot pass on nor drops output.
    let mut flood = exec("head -c 3000000 /dev/zero");
    let mut input = flood.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut input, &vec![b'x'; 4_000_000]));
    let mut output = flood.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut output, &mut got).map(|_| got.len())
    });
    let status = ends_within(flood, "a command that does not read its input");
    assert!(status.success(), "{status:?}");
    assert_eq!(reader.join().unwrap().unwrap(), 3_000_000, "output lost");
    let _ = feeder.join();
    // Nobody reads the command's output any more: the command learns so
    // (its pipe breaks), and nsw exec ends rather than waiting for ever.
    let mut endless = exec("exec yes");
    let mut output = endless.stdout.take().unwrap();
    let mut some = [0u8; 4096];
    std::io::Read::read_exact(&mut output, &mut some).unwrap();
    drop(output);
    let status = ends_within(endless, "a command whose reader went away");
    assert_eq!(status.code(), Some(128 + libc::SIGPIPE), "{status:?}");
}

/// Wait for `child`, for a minute at most (then kill it and fail).
fn ends_within(mut child: std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nsw exec of {what} did not end within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A program starts with no signal blocked (nsw blocks SIGTERM in its own
/// threads for its signal thread; a child would keep that mask across
/// exec, never see `down`'s SIGTERM, and be killed after the grace period
/// instead of ending cleanly).
#[test]
fn programs_start_with_no_signal_blocked() {
    let machine = Machine::new("sigmask");
    let lab = machine.lab("sm");
    lab.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let view: serde_json::Value = serde_json::from_slice(&machine.nsw(&["show", &lab.name, "--json"]).stdout).unwrap();
    let node = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "a").unwrap();
    let pid = node["processes"][0]["pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let blocked = status.lines().find_map(|l| l.strip_prefix("SigBlk:")).unwrap().trim();
    assert_eq!(blocked, "0000000000000000", "{status}");
    let down = machine.nsw(&["down", &lab.name]);
    // The sleep, and the lab's init.
    assert!(down.status.success() && stderr(&down).contains("stopped 2 processes inside"), "{}", text(&down));
    lab.assert_gone();
}
