//! Labs across machines: three "machines" (throwaway network namespaces on
//! an underlay bridge, each agent with its own /run/netns and /run/nsw), a
//! real 3-member etcd, an `nsw agent` on each; the script runs once on a
//! coordinator and the agents build its parts, veth pairs across machines
//! becoming VXLAN pairs.

use std::process::Child;
use std::time::{Duration, Instant};

use nsw_tests::cluster::Cluster;
use nsw_tests::{guest, text, unique};

/// An agent on each machine `m0`, `m1`, ..., once all are registered.
fn agents(cluster: &Cluster) -> Vec<Child> {
    let flags = cluster.store_flags();
    let agents: Vec<Child> = (0..cluster.machines.len()).map(|i| cluster.spawn_agent(i, &format!("m{i}"), &flags)).collect();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cluster.nsw(0, &["machines", "--json"]);
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if listed.as_array().is_some_and(|a| a.len() == cluster.machines.len()) {
            return agents;
        }
        assert!(Instant::now() < until, "the agents did not register: {}\n{}", text(&out), logs(cluster));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn logs(cluster: &Cluster) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(&cluster.dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("agent-")).collect();
    logs.sort_by_key(|e| e.file_name());
    logs.iter().map(|e| format!("{}:\n{}", e.file_name().to_string_lossy(), std::fs::read_to_string(e.path()).unwrap())).collect()
}

/// What machine `i`'s `/run/netns` and `/run/nsw` hold.
fn leftovers(cluster: &Cluster, i: usize) -> (String, String) {
    let netns = cluster.as_machine(i, "ip", &["netns", "list"]);
    let state = cluster.as_machine(i, "ls", &["-A", "/run/nsw"]);
    (String::from_utf8_lossy(&netns.stdout).trim().to_string(), String::from_utf8_lossy(&state.stdout).trim().to_string())
}

/// Every machine empty: no namespace, no journal or lock.
fn assert_nothing_left(cluster: &Cluster) {
    for i in 0..cluster.machines.len() {
        let (netns, state) = leftovers(cluster, i);
        assert!(netns.is_empty(), "machine m{i} still has namespaces: {netns}\n{}", logs(cluster));
        assert!(state.is_empty(), "machine m{i} still has state: {state}\n{}", logs(cluster));
        let vxlan = cluster.as_machine(i, "ip", &["-d", "link", "show", "type", "vxlan"]);
        assert!(vxlan.status.success() && vxlan.stdout.is_empty(), "machine m{i} still has VXLAN devices: {}", text(&vxlan));
    }
}

fn stop_all(mut agents: Vec<Child>) {
    for agent in &agents {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.id() as i32), nix::sys::signal::Signal::SIGTERM);
    }
    for agent in &mut agents {
        assert!(agent.wait().unwrap().success());
    }
}

/// The labs `nsw ls --store --json` lists.
fn listed(cluster: &Cluster) -> serde_json::Value {
    let out = cluster.nsw(0, &["ls", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pbj_placed_node_by_node_pings_across_machines_and_down_leaves_nothing() {
    let cluster = Cluster::new("sp", 3, false);
    let agents = agents(&cluster);
    let lab = unique("pbj");
    let pbj = guest("pbj");
    let out = cluster.nsw(0, &["run", pbj.to_str().unwrap(), "--name", &lab, "--place", "pb=m0", "--place", "jelly=m1", "--place", "host=m2"]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    let said = text(&out);
    // The script's own pings: jelly (m1) -> pb (m0) through the bridge on
    // the lab's host (m2), and host -> pb.
    assert!(said.contains("jelly -> pb: reply from 10.0.0.10"), "{said}");
    assert!(said.contains("host -> pb: reply from 10.0.0.10"), "{said}");
    assert!(said.contains("up across 3 machines"), "{said}");

    // Each machine holds its part, and each veth end whose peer is on
    // another machine is a VXLAN device at the underlay's MTU less 50.
    let (netns, _) = leftovers(&cluster, 0);
    assert_eq!(netns.split_whitespace().next(), Some(format!("{lab}-pb").as_str()), "{netns}");
    let (netns, _) = leftovers(&cluster, 1);
    assert_eq!(netns.split_whitespace().next(), Some(format!("{lab}-jelly").as_str()), "{netns}");
    let (netns, _) = leftovers(&cluster, 2);
    assert_eq!(netns.split_whitespace().next(), Some(lab.as_str()), "{netns}");
    let link = cluster.as_machine(0, "ip", &["-n", &format!("{lab}-pb"), "-d", "link", "show", "veth-pb"]);
    let link = text(&link);
    assert!(link.contains("vxlan id") && link.contains("mtu 1450") && link.contains("dstport 14789"), "{link}");
    let bridge_port = cluster.as_machine(2, "ip", &["-n", &lab, "-d", "link", "show", "bread-pb-veth"]);
    assert!(text(&bridge_port).contains("master brd1") && text(&bridge_port).contains("vxlan id"), "{}", text(&bridge_port));

    // The lab works after the run: from the lab's host (m2) to jelly (m1).
    let ping = cluster.as_machine(2, "ip", &["netns", "exec", &lab, "ping", "-c", "1", "-W", "2", "10.0.0.11"]);
    assert!(ping.status.success(), "{}", text(&ping));

    // The store knows where everything is.
    let labs = listed(&cluster);
    let entry = labs.as_array().unwrap().iter().find(|l| l["name"] == lab.as_str()).unwrap_or_else(|| panic!("{labs}"));
    assert_eq!(entry["state"], "up");
    assert_eq!(entry["placement"]["pb"], "m0");
    assert_eq!(entry["placement"]["jelly"], "m1");
    assert_eq!(entry["placement"]["host"], "m2");
    assert_eq!(entry["parts"], serde_json::json!(["m0", "m1", "m2"]));
    // And each machine's own `nsw ls` sees its part as a lab; `nsw exec`
    // enters a node on the machine that holds it.
    let local = cluster.as_machine(0, nsw_tests::nsw_bin().to_str().unwrap(), &["ls"]);
    assert!(text(&local).contains(&lab), "{}", text(&local));
    let exec = cluster.as_machine(0, nsw_tests::nsw_bin().to_str().unwrap(), &["exec", &lab, "pb", "--", "ip", "-br", "address", "show", "veth-pb"]);
    assert!(exec.status.success() && text(&exec).contains("10.0.0.10/16"), "{}", text(&exec));

    // show and graph see the whole lab: each node with its machine, the
    // links between machines joined.
    let shown = cluster.nsw(0, &["show", &lab, "--json"]);
    assert!(shown.status.success(), "{}", text(&shown));
    let view: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let nodes = view["nodes"].as_array().unwrap();
    let on = |node: &str| nodes.iter().find(|n| n["node"] == node).map(|n| n["machine"].clone());
    assert_eq!((on("pb"), on("jelly"), on("host")), (Some("m0".into()), Some("m1".into()), Some("m2".into())), "{view}");
    let pb = nodes.iter().find(|n| n["node"] == "pb").unwrap();
    let end = pb["links"].as_array().unwrap().iter().find(|l| l["name"] == "veth-pb").unwrap();
    assert_eq!(end["peer"], serde_json::json!({ "node": "host", "link": "bread-pb-veth" }), "{end}");
    let graph = cluster.nsw(0, &["graph", &lab, "--format", "json"]);
    assert!(graph.status.success(), "{}", text(&graph));
    let graph: serde_json::Value = serde_json::from_slice(&graph.stdout).unwrap();
    let across = graph["edges"].as_array().unwrap().iter().filter(|e| e["kind"] == "vxlan").count();
    assert_eq!(across, 2, "{graph}");

    let out = cluster.nsw(1, &["down", &lab]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert!(text(&out).contains("down on 3 machines"), "{}", text(&out));
    assert_nothing_left(&cluster);
    assert!(listed(&cluster).as_array().unwrap().is_empty(), "{}", listed(&cluster));
    // Down again: nothing to do.
    let out = cluster.nsw(1, &["down", &lab]);
    assert!(out.status.success() && text(&out).contains("no lab"), "{}", text(&out));
    stop_all(agents);
}

/// `nsw run SCRIPT --name LAB FLAGS --store ... -- ARGS` started on
/// machine 0 (the coordinator), its output piped.
fn spawn_run(cluster: &Cluster, script: &std::path::Path, lab: &str, flags: &[&str], args: &[&str]) -> Child {
    std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", cluster.machines[0].name))
        .arg(nsw_tests::nsw_bin())
        .args(["run", script.to_str().unwrap(), "--name", lab])
        .args(flags)
        .args(cluster.store_flags())
        .arg("--")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `nsw ARGS --store ... -- SCRIPT_ARGS` on machine `i`.
fn nsw_with_args(cluster: &Cluster, i: usize, args: &[&str], script: &[&str]) -> std::process::Output {
    let flags = cluster.store_flags();
    let all: Vec<&str> = args.iter().copied().chain(flags.iter().map(String::as_str)).chain(["--"]).chain(script.iter().copied()).collect();
    cluster.on(i, nsw_tests::nsw_bin().to_str().unwrap(), &all)
}

#[test]
fn a_star_of_300_is_spread_evenly_and_pings_across_machines() {
    let cluster = Cluster::new("ss", 3, false);
    let agents = agents(&cluster);
    let lab = unique("star");
    let star = guest("star");
    let out = nsw_with_args(&cluster, 0, &["run", star.to_str().unwrap(), "--name", &lab], &["300", "ping", "nov6"]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    let said = text(&out);
    for probe in ["host -> hN: reply", "h1 -> hN: reply", "h1 -> h(N/2): reply"] {
        assert!(said.contains(probe), "{probe}: {said}");
    }
    // 301 namespaces (the host and 300 nodes): 101, 100 and 100.
    let labs = listed(&cluster);
    let entry = labs.as_array().unwrap().iter().find(|l| l["name"] == lab.as_str()).unwrap_or_else(|| panic!("{labs}"));
    let placement = entry["placement"].as_object().unwrap();
    assert_eq!(placement.len(), 301);
    let counts: Vec<usize> = (0..3).map(|i| placement.values().filter(|m| *m == format!("m{i}").as_str()).count()).collect();
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(sorted, vec![100, 100, 101], "{placement:?}");
    // Each machine holds the namespaces placed on it, and no others.
    for (i, count) in counts.iter().enumerate() {
        let (netns, _) = leftovers(&cluster, i);
        assert_eq!(netns.lines().count(), *count, "machine m{i}: {netns}");
    }
    let out = cluster.nsw(2, &["down", &lab]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert_nothing_left(&cluster);
    stop_all(agents);
}

#[test]
fn an_agent_killed_mid_build_fails_the_run_which_rolls_back_and_the_restarted_agent_reaps_its_part() {
    let cluster = Cluster::new("sk", 3, false);
    let mut agents = agents(&cluster);
    let lab = unique("star");
    let star = guest("star");
    let flags = cluster.store_flags();
    let coordinator = spawn_run(&cluster, &star, &lab, &[], &["300"]);
    // Machine m1's part has begun: kill its agent there and then.
    let until = Instant::now() + Duration::from_secs(60);
    while leftovers(&cluster, 1).0.is_empty() {
        assert!(Instant::now() < until, "machine m1's part never began\n{}", logs(&cluster));
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = agents[1].kill();
    let _ = agents[1].wait();
    let out = coordinator.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("machine m1"), "{}", text(&out));
    // Rolled back where it could; m1's part waits for its agent.
    for i in [0, 2] {
        let (netns, state) = leftovers(&cluster, i);
        assert!(netns.is_empty() && state.is_empty(), "machine m{i}: {netns} / {state}\n{}", logs(&cluster));
    }
    assert!(!leftovers(&cluster, 1).0.is_empty(), "machine m1 kept nothing of its part: the kill was not mid-build");
    let labs = listed(&cluster);
    let entry = labs.as_array().unwrap().iter().find(|l| l["name"] == lab.as_str()).unwrap_or_else(|| panic!("{labs}"));
    assert_eq!(entry["state"], "down");
    assert_eq!(entry["away"], serde_json::json!(["m1"]));
    // The agent comes back (after its old lease) and reaps its part.
    agents[1] = cluster.spawn_agent(1, "m1", &flags);
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let (netns, state) = leftovers(&cluster, 1);
        let gone = listed(&cluster).as_array().unwrap().iter().all(|l| l["name"] != lab.as_str());
        if netns.is_empty() && state.is_empty() && gone {
            break;
        }
        assert!(Instant::now() < until, "machine m1 still has {netns} / {state} (lab listed: {})\n{}", !gone, logs(&cluster));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_nothing_left(&cluster);
    stop_all(agents);
}

#[test]
fn over_tls_a_lab_spread_automatically_outlives_the_loss_of_a_store_member() {
    let mut cluster = Cluster::new("st", 3, true);
    let agents = agents(&cluster);
    let lab = unique("pbj");
    let pbj = guest("pbj");
    let out = cluster.nsw(1, &["run", pbj.to_str().unwrap(), "--name", &lab]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert!(text(&out).contains("jelly -> pb: reply"), "{}", text(&out));
    // Without nsw's client certificate the store refuses to say anything.
    let bare = cluster.on(1, nsw_tests::nsw_bin().to_str().unwrap(), &["ls", "--store", &cluster.urls(), "--store-ca", &cluster.dir.join("ca.crt").display().to_string()]);
    assert!(!bare.status.success(), "{}", text(&bare));
    cluster.kill_member(0);
    let out = cluster.nsw(2, &["down", &lab]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert_nothing_left(&cluster);
    assert!(listed(&cluster).as_array().unwrap().is_empty());
    stop_all(agents);
}

#[test]
fn an_agent_refuses_a_tunnel_to_anywhere_but_another_machine_whatever_the_store_says() {
    let cluster = Cluster::new("sr", 2, false);
    let agents = agents(&cluster);
    let lab = unique("evil");
    // What a compromised coordinator could write: a lab being built, a part
    // on m0, and a message making a "link" to an address outside the
    // cluster (a way out of a contained lab).
    let put = |key: &str, value: serde_json::Value| {
        let out = cluster.on(0, "etcdctl", &["--endpoints", &cluster.urls(), "put", &format!("/nsw/v1/{key}"), &value.to_string()]);
        assert!(out.status.success(), "{}", text(&out));
    };
    let record = serde_json::json!({ "name": lab, "script": "evil", "state": "building", "coordinator": "x:1", "started_unix": 0, "placement": {} });
    put(&format!("labs/{lab}"), record);
    put(&format!("parts/{lab}/m0"), serde_json::json!({ "machine": "m0" }));
    put(&format!("coordinators/{lab}"), serde_json::json!({ "coordinator": "x:1" }));
    let tunnel = |remote: &str, mtu: u32| serde_json::json!({ "vni": 77, "local": "10.99.0.1", "remote": remote, "port": 14789, "mtu": mtu });
    let message = serde_json::json!({ "message": "build", "ops": [
        { "op": "create-host", "id": 0 },
        { "op": "create-tunnel", "id": 0, "name": "out0", "ns": 0, "tunnel": tunnel("192.0.2.9", 1450) },
    ]});
    put(&format!("inbox/m0/{lab}/0000000000"), message);
    let reply = wait_reply(&cluster, &lab, "m0", "0000000000");
    assert_eq!(reply["error"]["kind"], "denied", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("192.0.2.9"), "{reply}");
    // Nothing of it was made; the part opened for it goes with down.
    let (netns, _) = leftovers(&cluster, 0);
    assert!(netns.is_empty(), "{netns}");
    // Nor to a real machine at an MTU the underlay cannot carry.
    let message = serde_json::json!({ "message": "build", "ops": [{ "op": "create-tunnel", "id": 0, "name": "big0", "ns": 0, "tunnel": tunnel("10.99.0.2", 9000) }] });
    put(&format!("inbox/m0/{lab}/0000000001"), message);
    let reply = wait_reply(&cluster, &lab, "m0", "0000000001");
    assert_eq!(reply["error"]["kind"], "invalid", "{reply}");
    let out = cluster.nsw(1, &["down", &lab]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert_nothing_left(&cluster);
    stop_all(agents);
}

/// The agent's answer at `replies/LAB/MACHINE/AT`, once there.
fn wait_reply(cluster: &Cluster, lab: &str, machine: &str, at: &str) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cluster.on(0, "etcdctl", &["--endpoints", &cluster.urls(), "get", "--print-value-only", &format!("/nsw/v1/replies/{lab}/{machine}/{at}")]);
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !value.is_empty() {
            return serde_json::from_str(&value).unwrap();
        }
        assert!(Instant::now() < until, "no answer from {machine}\n{}", logs(cluster));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_link_between_machines_fails_and_comes_back_on_both_sides() {
    let cluster = Cluster::new("sf", 2, false);
    let agents = agents(&cluster);
    let lab = unique("flap");
    let flap = guest("flap");
    // a on m0, b on m1: their veth pair is a VXLAN pair; b's end goes
    // down for 3 s, and a's with it (seen on m0 meanwhile).
    let run = spawn_run(&cluster, &flap, &lab, &["--place", "a=m0", "--place", "b=m1", "--place", "host=m0"], &["3000", "1"]);
    let until = Instant::now() + Duration::from_secs(30);
    // Up first (built), then down (b's end failed).
    let (mut was_up, mut near_end_went_down) = (false, false);
    while Instant::now() < until && !near_end_went_down {
        let link = cluster.as_machine(0, "ip", &["-n", &format!("{lab}-a"), "link", "show", "eth0"]);
        let up = text(&link).contains(",UP");
        was_up |= link.status.success() && up;
        near_end_went_down = was_up && link.status.success() && !up;
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert!(near_end_went_down, "a's end never went down with b's\n{}", text(&out));
    assert!(text(&out).contains("pings lost") && text(&out).contains("unreachable for"), "{}", text(&out));
    // Both ends up again, and b answers a.
    for (i, node) in [(0, "a"), (1, "b")] {
        let link = cluster.as_machine(i, "ip", &["-n", &format!("{lab}-{node}"), "-d", "link", "show", "eth0"]);
        assert!(text(&link).contains("vxlan id") && text(&link).contains(",UP,"), "{}", text(&link));
    }
    let ping = cluster.as_machine(0, "ip", &["netns", "exec", &format!("{lab}-a"), "ping", "-c", "1", "-W", "2", "10.0.9.2"]);
    assert!(ping.status.success(), "{}", text(&ping));
    let out = cluster.nsw(0, &["down", &lab]);
    assert!(out.status.success(), "{}", text(&out));
    assert_nothing_left(&cluster);
    stop_all(agents);
}

#[test]
fn a_coordinator_killed_mid_build_has_its_parts_taken_down_by_the_agents() {
    let cluster = Cluster::new("sc", 3, false);
    let agents = agents(&cluster);
    let lab = unique("star");
    let star = guest("star");
    let mut coordinator = spawn_run(&cluster, &star, &lab, &[], &["300", "ping"]);
    // The parts have begun: the coordinator dies there and then.
    let until = Instant::now() + Duration::from_secs(60);
    while leftovers(&cluster, 1).0.is_empty() {
        assert!(Instant::now() < until, "no part began\n{}", logs(&cluster));
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    // What only a kill -9 leaves: the directory of its model's journal.
    let aside = format!("nsw-across-{}-", coordinator.id());
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&aside) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    // Its sign of life runs out (10 s); each agent takes its part down and
    // the store forgets the lab.
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let left: Vec<(String, String)> = (0..3).map(|i| leftovers(&cluster, i)).collect();
        let gone = listed(&cluster).as_array().unwrap().iter().all(|l| l["name"] != lab.as_str());
        if gone && left.iter().all(|(netns, state)| netns.is_empty() && state.is_empty()) {
            break;
        }
        assert!(Instant::now() < until, "left: {left:?}, lab listed: {}\n{}", !gone, logs(&cluster));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop_all(agents);
}
