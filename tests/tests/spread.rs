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

/// What machine `agent`'s `/run/netns` and `/run/nsw` hold.
fn leftovers(cluster: &Cluster, agent: &Child) -> (String, String) {
    let netns = cluster.as_machine(agent, "ip", &["netns", "list"]);
    let state = cluster.as_machine(agent, "ls", &["-A", "/run/nsw"]);
    (String::from_utf8_lossy(&netns.stdout).trim().to_string(), String::from_utf8_lossy(&state.stdout).trim().to_string())
}

/// Every machine empty: no namespace, no journal or lock.
fn assert_nothing_left(cluster: &Cluster, agents: &[Child]) {
    for (i, agent) in agents.iter().enumerate() {
        let (netns, state) = leftovers(cluster, agent);
        assert!(netns.is_empty(), "machine m{i} still has namespaces: {netns}\n{}", logs(cluster));
        assert!(state.is_empty(), "machine m{i} still has state: {state}\n{}", logs(cluster));
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
    let (netns, _) = leftovers(&cluster, &agents[0]);
    assert_eq!(netns.split_whitespace().next(), Some(format!("{lab}-pb").as_str()), "{netns}");
    let (netns, _) = leftovers(&cluster, &agents[1]);
    assert_eq!(netns.split_whitespace().next(), Some(format!("{lab}-jelly").as_str()), "{netns}");
    let (netns, _) = leftovers(&cluster, &agents[2]);
    assert_eq!(netns.split_whitespace().next(), Some(lab.as_str()), "{netns}");
    let link = cluster.as_machine(&agents[0], "ip", &["-n", &format!("{lab}-pb"), "-d", "link", "show", "veth-pb"]);
    let link = text(&link);
    assert!(link.contains("vxlan id") && link.contains("mtu 1450") && link.contains("dstport 14789"), "{link}");
    let bridge_port = cluster.as_machine(&agents[2], "ip", &["-n", &lab, "-d", "link", "show", "bread-pb-veth"]);
    assert!(text(&bridge_port).contains("master brd1") && text(&bridge_port).contains("vxlan id"), "{}", text(&bridge_port));

    // The lab works after the run: from the lab's host (m2) to jelly (m1).
    let ping = cluster.as_machine(&agents[2], "ip", &["netns", "exec", &lab, "ping", "-c", "1", "-W", "2", "10.0.0.11"]);
    assert!(ping.status.success(), "{}", text(&ping));

    // The store knows where everything is.
    let labs = listed(&cluster);
    let entry = labs.as_array().unwrap().iter().find(|l| l["name"] == lab.as_str()).unwrap_or_else(|| panic!("{labs}"));
    assert_eq!(entry["state"], "up");
    assert_eq!(entry["placement"]["pb"], "m0");
    assert_eq!(entry["placement"]["jelly"], "m1");
    assert_eq!(entry["placement"]["host"], "m2");
    assert_eq!(entry["parts"], serde_json::json!(["m0", "m1", "m2"]));
    // And each machine's own `nsw ls` sees its part as a lab.
    let local = cluster.as_machine(&agents[0], nsw_tests::nsw_bin().to_str().unwrap(), &["ls"]);
    assert!(text(&local).contains(&lab), "{}", text(&local));

    let out = cluster.nsw(1, &["down", &lab]);
    assert!(out.status.success(), "{}\n{}", text(&out), logs(&cluster));
    assert!(text(&out).contains("down on 3 machines"), "{}", text(&out));
    assert_nothing_left(&cluster, &agents);
    assert!(listed(&cluster).as_array().unwrap().is_empty(), "{}", listed(&cluster));
    // Down again: nothing to do.
    let out = cluster.nsw(1, &["down", &lab]);
    assert!(out.status.success() && text(&out).contains("no lab"), "{}", text(&out));
    stop_all(agents);
}
