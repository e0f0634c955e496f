//! Machines of a cluster agreed through a real 3-member etcd cluster, one
//! member per "machine" (a throwaway namespace on an underlay bridge):
//! agents register under a lease, a dead agent's machine drops out, a
//! restarted agent takes its name back, one member lost changes nothing,
//! and the store over TLS with client certificates.

use std::process::Child;
use std::time::{Duration, Instant};

use nsw_tests::cluster::{Cluster, address};
use nsw_tests::text;

/// The machines `nsw machines --json` lists from machine `from`.
fn machines(cluster: &Cluster, from: usize) -> Vec<String> {
    let out = cluster.nsw(from, &["machines", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    listed.as_array().unwrap().iter().map(|m| format!("{}@{}", m["name"].as_str().unwrap(), m["underlay"].as_str().unwrap())).collect()
}

/// The pid of the agent that registered `name`.
fn agent_pid(cluster: &Cluster, name: &str) -> Option<u32> {
    let out = cluster.nsw(0, &["machines", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    listed.as_array()?.iter().find(|m| m["name"] == name).and_then(|m| m["agent_pid"].as_u64()).map(|p| p as u32)
}

/// Wait (up to `within`) until the machines listed are `expected`.
fn wait_for(cluster: &Cluster, from: usize, expected: &[&str], within: Duration) {
    let until = Instant::now() + within;
    loop {
        let now = machines(cluster, from);
        if now == expected {
            return;
        }
        assert!(Instant::now() < until, "machines {now:?}, expected {expected:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(cluster: &Cluster, mut agent: Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = agent.wait().unwrap();
    assert!(status.success(), "the agent exited {status:?} on SIGTERM; the agents said:\n{}", agent_logs(cluster, "agent-"));
}

fn agent_logs(cluster: &Cluster, prefix: &str) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(&cluster.dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).collect();
    logs.sort_by_key(|e| e.file_name());
    logs.iter().map(|e| format!("{}:\n{}", e.file_name().to_string_lossy(), std::fs::read_to_string(e.path()).unwrap())).collect()
}

fn m(i: usize, name: &str) -> String {
    format!("{name}@{}", address(i))
}

#[test]
fn agents_register_and_a_dead_agents_machine_drops_out() {
    let cluster = Cluster::new("cla", 3, false);
    let flags = cluster.store_flags();
    let mut agents: Vec<Option<Child>> = (0..3).map(|i| Some(cluster.spawn_agent(i, &format!("m{i}"), &flags))).collect();
    let all = [m(0, "m0"), m(1, "m1"), m(2, "m2")];
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    wait_for(&cluster, 0, &all, Duration::from_secs(10));
    // Every machine sees the same.
    assert_eq!(machines(&cluster, 2), all);

    // A second agent for a name a live agent holds: refused, once the
    // lease it waited for has not run out.
    let second = cluster.spawn_agent(1, "m0", &flags).wait_with_output().unwrap();
    assert!(!second.status.success());
    let log = agent_logs(&cluster, "agent-m0-");
    assert!(log.contains("one agent per machine name"), "{log}");

    // kill -9 of an agent: its machine drops out when its lease runs out.
    let mut dead = agents[1].take().unwrap();
    dead.kill().unwrap();
    dead.wait().unwrap();
    let rest = [m(0, "m0"), m(2, "m2")];
    wait_for(&cluster, 0, &rest.iter().map(String::as_str).collect::<Vec<_>>(), Duration::from_secs(15));
    // Restarted at once after a kill -9, an agent waits out its old lease.
    let mut killed = agents[2].take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let restarted = cluster.spawn_agent(2, "m2", &flags);
    let pid = restarted.id();
    agents[2] = Some(restarted);
    agents[1] = Some(cluster.spawn_agent(1, "m1", &flags));
    wait_for(&cluster, 1, &all, Duration::from_secs(10));
    // The old registration of m2 lasts until its lease runs out; then the
    // new agent's.
    let until = Instant::now() + Duration::from_secs(20);
    while agent_pid(&cluster, "m2") != Some(pid) {
        assert!(Instant::now() < until, "the restarted agent did not take m2 back: {}", agent_logs(&cluster, "agent-m2-"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(agent_logs(&cluster, "agent-m2-").contains("waiting for its lease to run out"));

    // SIGTERM: withdrawn at once, not after the lease.
    stop(&cluster, agents[0].take().unwrap());
    assert_eq!(machines(&cluster, 1), vec![m(1, "m1"), m(2, "m2")]);
    for agent in agents.into_iter().flatten() {
        stop(&cluster, agent);
    }
    assert!(machines(&cluster, 0).is_empty());
}

#[test]
fn one_etcd_member_lost_changes_nothing() {
    let mut cluster = Cluster::new("clm", 3, false);
    let flags = cluster.store_flags();
    let agents: Vec<Child> = (0..3).map(|i| cluster.spawn_agent(i, &format!("m{i}"), &flags)).collect();
    let all = [m(0, "m0"), m(1, "m1"), m(2, "m2")];
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    wait_for(&cluster, 0, &all, Duration::from_secs(10));
    cluster.kill_member(0);
    // Past a whole lease: every agent renewed through the other members.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(machines(&cluster, 1), all);
    assert_eq!(machines(&cluster, 0), all);
    for agent in agents {
        stop(&cluster, agent);
    }
}

#[test]
fn a_store_over_tls_takes_only_clients_with_a_certificate() {
    let cluster = Cluster::new("clt", 3, true);
    let flags = cluster.store_flags();
    // With nsw's client certificate: served.
    let served = cluster.nsw(0, &["machines", "--json"]);
    assert!(served.status.success(), "{}", text(&served));
    // Only the CA, no client certificate: the store refuses nsw.
    let bin = nsw_tests::nsw_bin();
    let ca = cluster.dir.join("ca.crt").display().to_string();
    let urls = cluster.urls();
    let out = cluster.on(0, bin.to_str().unwrap(), &["machines", "--store", &urls, "--store-ca", &ca]);
    assert!(!out.status.success(), "a client without a certificate was served: {}", text(&out));
    // Nor is a store believed without its CA.
    let out = cluster.on(0, bin.to_str().unwrap(), &["machines", "--store", &urls]);
    assert!(!out.status.success(), "a store whose CA nsw was not given was believed: {}", text(&out));
    let agent = cluster.spawn_agent(1, "m1", &flags);
    wait_for(&cluster, 2, &[m(1, "m1").as_str()], Duration::from_secs(10));
    stop(&cluster, agent);
}
