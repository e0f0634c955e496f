//! Seeing a lab: `nsw show`, `nsw graph`, `nsw plan`, `nsw capture`.

use std::process::Command;

use nsw_tests::{Machine, check, guest, in_ns, named_netns, nsw_bin, stderr, stdout, text, unique, workspace};
use serde_json::Value;

#[test]
fn show_holds_every_node_link_address_and_route_the_kernel_has() {
    let machine = Machine::new("show");
    let lab = machine.lab("sh");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let out = machine.nsw(&["show", &lab.name, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = view["nodes"].as_array().unwrap();
    let node = |name: &str| nodes.iter().find(|n| n["node"] == name).unwrap_or_else(|| panic!("no node {name}: {view}"));
    let link = |n: &Value, name: &str| n["links"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned().unwrap_or_else(|| panic!("no link {name}: {n}"));
    // Every link, address and route, as `ip` has them.
    for (n, ns) in [("host", lab.name.clone()), ("pb", format!("{}-pb", lab.name)), ("jelly", format!("{}-jelly", lab.name))] {
        let kernel: Value = serde_json::from_str(&nsw_tests::ip_in(&ns, &["-j", "address", "show"])).unwrap();
        for entry in kernel.as_array().unwrap() {
            let shown = link(node(n), entry["ifname"].as_str().unwrap());
            for addr in entry["addr_info"].as_array().unwrap() {
                let cidr = format!("{}/{}", addr["local"].as_str().unwrap(), addr["prefixlen"]);
                assert!(shown["addresses"].as_array().unwrap().contains(&Value::from(cidr.clone())), "{n}: {cidr} missing: {shown}");
            }
            assert_eq!(shown["mtu"], entry["mtu"], "{n}");
            assert_eq!(shown["state"], if entry["flags"].as_array().unwrap().contains(&Value::from("UP")) { "up" } else { "down" }, "{n}");
        }
        let routes: Value = serde_json::from_str(&nsw_tests::ip_in(&ns, &["-j", "route", "show"])).unwrap();
        let shown: Vec<&str> = node(n)["routes"].as_array().unwrap().iter().map(|r| r["destination"].as_str().unwrap()).collect();
        for route in routes.as_array().unwrap() {
            assert!(shown.contains(&route["dst"].as_str().unwrap()), "{n}: route {} missing: {shown:?}", route["dst"]);
            // Who put it there and its metric, as ip has them (ip leaves
            // out `boot`, the protocol of a route added by hand).
            let ours = node(n)["routes"].as_array().unwrap().iter().find(|r| r["destination"] == route["dst"]).unwrap();
            assert_eq!(ours["protocol"], route.get("protocol").cloned().unwrap_or(Value::from("boot")), "{n}: {ours} against {route}");
            assert_eq!(ours["metric"], route.get("metric").cloned().unwrap_or(Value::Null), "{n}: {ours} against {route}");
        }
    }
    // Peers across namespaces, bridge ports, forwarding, the lab's table.
    assert_eq!(link(node("pb"), "veth-pb")["peer"], serde_json::json!({"node": "host", "link": "bread-pb-veth"}));
    assert_eq!(link(node("host"), "bread-j-veth")["master"], "brd1");
    assert_eq!(node("host")["forwarding"]["ipv4"], true);
    assert!(node("host")["nft"].to_string().contains("masquerade"), "{}", node("host"));
    assert!(view["flagged"].as_array().unwrap().is_empty(), "{view}");
    // A node deleted by hand is flagged.
    check("ip", &["netns", "del", &format!("{}-jelly", lab.name)]);
    let out = machine.nsw(&["show", &lab.name, "--json"]);
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(view["flagged"].to_string().contains("(node jelly) is gone"), "{view}");
    lab.down_and_check();
}

#[test]
fn graph_draws_both_veth_pairs_in_dot_and_mermaid_and_the_readme_picture_is_current() {
    let machine = Machine::new("graph");
    let lab = machine.lab("gr");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let dot = machine.nsw(&["graph", &lab.name, "--format", "dot"]);
    assert!(dot.status.success(), "{}", text(&dot));
    let dot = stdout(&dot).replace(&format!("graph \"{}\"", lab.name), "graph \"pbj\"");
    assert!(dot.contains("bread-pb-veth — veth-pb 10.0.0.10/16") && dot.contains("bread-j-veth — veth-jelly 10.0.0.11/16"), "{dot}");
    // Graphviz takes it.
    let rendered = Command::new("dot").arg("-Tsvg").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().and_then(|mut child| {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(dot.as_bytes())?;
        child.wait_with_output()
    });
    let rendered = rendered.expect("dot runs");
    assert!(rendered.status.success() && String::from_utf8_lossy(&rendered.stdout).contains("<svg"), "{}", text(&rendered));
    // The picture in the README is this one.
    let committed = std::fs::read_to_string(workspace().join("docs/pbj.dot")).unwrap();
    assert_eq!(dot.trim_end(), committed.trim_end(), "docs/pbj.dot is stale: nsw graph pbj > docs/pbj.dot; dot -Tsvg docs/pbj.dot > docs/pbj.svg");
    let svg = std::fs::read_to_string(workspace().join("docs/pbj.svg")).unwrap();
    // Compared by what it draws (its titled nodes and edges), not byte for
    // byte: another Graphviz lays the same graph out differently.
    assert_eq!(svg_titles(&String::from_utf8_lossy(&rendered.stdout)), svg_titles(&svg), "docs/pbj.svg is stale: dot -Tsvg docs/pbj.dot > docs/pbj.svg");
    let mermaid = machine.nsw(&["graph", &lab.name, "--format", "mermaid"]);
    assert!(stdout(&mermaid).starts_with("flowchart"), "{}", text(&mermaid));
    // So is the README's mermaid block.
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let block = readme.split("```mermaid\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a mermaid block in the README");
    assert_eq!(block.trim_end(), stdout(&mermaid).trim_end(), "the README's mermaid picture is stale");
    lab.down_and_check();
}

/// The `<title>`s of an SVG from Graphviz: one per node and edge it drew.
fn svg_titles(svg: &str) -> Vec<String> {
    let mut titles: Vec<String> = svg.split("<title>").skip(1).filter_map(|rest| rest.split("</title>").next()).map(str::to_owned).collect();
    titles.sort();
    titles
}

/// A namespace's state, to compare labs built two ways: its links (name,
/// kind, bridge, up), addresses and routes (but link-local ones).
fn state_of(ns: &str, lab: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let links: Value = serde_json::from_str(&nsw_tests::ip_in(ns, &["-j", "-d", "link", "show"])).unwrap();
    for l in links.as_array().unwrap() {
        let kind = l["linkinfo"]["info_kind"].as_str().unwrap_or("-");
        lines.push(format!("link {} {kind} master={} {}", l["ifname"], l["master"], l["flags"].as_array().unwrap().contains(&Value::from("UP"))));
    }
    let addresses: Value = serde_json::from_str(&nsw_tests::ip_in(ns, &["-j", "address", "show"])).unwrap();
    for a in addresses.as_array().unwrap() {
        for info in a["addr_info"].as_array().unwrap() {
            if info["scope"] != "link" {
                lines.push(format!("address {} {}/{}", a["ifname"], info["local"], info["prefixlen"]));
            }
        }
    }
    for family in ["-4", "-6"] {
        // Link-local routes come when the kernel gets round to them: left out.
        let routes = nsw_tests::ip_in(ns, &[family, "route", "show"]);
        lines.extend(routes.lines().filter(|r| !r.starts_with("fe80::")).map(|r| r.replace(lab, "LAB")));
    }
    lines.sort();
    lines
}

#[test]
fn show_says_the_programs_the_conditions_and_the_firewall_as_they_are() {
    let machine = Machine::new("shw");
    // Programs: running, then ended.
    let lab = machine.lab("sp");
    lab.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let view: Value = serde_json::from_slice(&machine.nsw(&["show", &lab.name, "--json"]).stdout).unwrap();
    let node = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "a").unwrap().clone();
    let process = &node["processes"][0];
    assert_eq!((&process["program"], &process["running"]), (&Value::from("sleep"), &Value::from(true)), "{node}");
    let pid = process["pid"].as_u64().unwrap();
    assert!(stdout(&machine.nsw(&["show", &lab.name])).contains(&format!("process sleep (pid {pid}) running")));
    check("kill", &["-KILL", &pid.to_string()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(stdout(&machine.nsw(&["show", &lab.name])).contains(&format!("process sleep (pid {pid}) ended")));
    lab.down_and_check();
    // Conditions: tc's words for the queue nsw gave the link.
    let lab = machine.lab("sc");
    lab.run_ok(&guest("impair"), &[], &["rate=20000000"]);
    let view: Value = serde_json::from_slice(&machine.nsw(&["show", &lab.name, "--json"]).stdout).unwrap();
    let a = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "a").unwrap();
    let eth0 = a["links"].as_array().unwrap().iter().find(|l| l["name"] == "eth0").unwrap();
    let said = eth0["conditions"][0].as_str().unwrap_or_default();
    assert!(said.starts_with("tbf ") && said.contains("rate 20Mbit"), "{eth0}");
    let kernel = nsw_tests::check("tc", &["-n", &format!("{}-a", lab.name), "qdisc", "show", "dev", "eth0"]);
    assert!(kernel.contains(said.split_once(' ').unwrap().1), "{said:?} is not what tc says: {kernel}");
    lab.down_and_check();
    // The firewall and NAT in nft's words, the owner's marker left out.
    let lab = machine.lab("sf");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let shown = stdout(&machine.nsw(&["show", &lab.name]));
    assert!(shown.contains(&format!("  | table inet nsw-{}", lab.name)) && shown.contains("masquerade") && !shown.contains("nsw-owner-"), "{shown}");
    lab.down_and_check();
}

#[test]
fn graph_reads_at_size_switches_down_links_and_conditions_marked() {
    let machine = Machine::new("grs");
    let lab = machine.lab("gs");
    lab.run_ok(&guest("stp"), &[], &[]);
    assert!(machine.nsw(&["link", &lab.name, "s1:to-s3", "--down"]).status.success());
    let graph: Value = serde_json::from_slice(&machine.nsw(&["graph", &lab.name, "--format", "json"]).stdout).unwrap();
    let kinds: Vec<(String, String)> =
        graph["vertices"].as_array().unwrap().iter().map(|v| (v["label"].as_str().unwrap().into(), v["kind"].as_str().unwrap().into())).collect();
    // Three switches, two hosts; no bridge drawn apart, no unused host.
    let want: Vec<(String, String)> = [("h1", "node"), ("h3", "node"), ("s1", "switch"), ("s2", "switch"), ("s3", "switch")].iter().map(|(l, k)| (l.to_string(), k.to_string())).collect();
    assert_eq!(kinds, want, "{graph}");
    let down: Vec<&Value> = graph["edges"].as_array().unwrap().iter().filter(|e| e["down"] == true).collect();
    assert_eq!(down.len(), 1, "{graph}");
    assert!(down[0]["label"].as_str().unwrap().contains("to-s3 — to-s1"), "{graph}");
    let dot = stdout(&machine.nsw(&["graph", &lab.name]));
    assert!(dot.contains("(down)\", style=dotted") && dot.contains("shape=box3d"), "{dot}");
    lab.down_and_check();
    // A link with conditions says them.
    let lab = machine.lab("gc");
    lab.run_ok(&guest("impair"), &[], &["rate=20000000"]);
    let graph: Value = serde_json::from_slice(&machine.nsw(&["graph", &lab.name, "--format", "json"]).stdout).unwrap();
    let edge = graph["edges"].as_array().unwrap().iter().find(|e| e["kind"] == "veth").unwrap();
    assert!(edge["conditions"][0].as_str().unwrap().contains("rate 20Mbit"), "{graph}");
    let mermaid = stdout(&machine.nsw(&["graph", &lab.name, "--format", "mermaid"]));
    assert!(mermaid.contains("===|") && mermaid.contains("[tbf rate 20Mbit"), "{mermaid}");
    lab.down_and_check();
}

#[test]
fn the_plan_run_as_a_script_builds_what_nsw_run_builds() {
    // No root: nsw plan as nobody.
    let name = unique("pl");
    let plan = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(nsw_bin())
        .args(["plan", guest("pbj").to_str().unwrap(), "--name", &name])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", text(&plan));
    let script = stdout(&plan);
    assert!(script.starts_with("#!/bin/sh") && script.contains(&format!("ip netns add {name}-pb")), "{script}");
    // Run the plan in one throwaway machine (its namespaces go even if an
    // assertion fails)...
    let planned = Machine::new("plan");
    let _planned_lab = PlannedLab(name.clone());
    let out = in_ns(&planned.name, "sh", &["-c", &script]);
    assert!(out.status.success(), "the plan failed as a script: {}", text(&out));
    // ...and nsw in another: the same namespaces, links, addresses, routes.
    let machine = Machine::new("plan");
    let lab = machine.lab("pr");
    lab.run_ok(&guest("pbj"), &[], &[]);
    for node in ["", "-pb", "-jelly"] {
        let (a, b) = (format!("{name}{node}"), format!("{}{node}", lab.name));
        assert_eq!(state_of(&a, &name), state_of(&b, &lab.name), "namespace {node} differs");
    }
    lab.down_and_check();
}

#[test]
fn the_plan_builds_links_named_as_ips_keywords_or_holding_equals() {
    // `ip link set up up` and `sysctl -w .../a=b/accept_dad=0` would fail
    // or do something else: run for real, with the real ip and sysctl.
    for link in ["up", "help", "type", "a=b"] {
        let name = unique("pk");
        let plan = Command::new(nsw_bin())
            .args(["plan", guest("hostile_ifname").to_str().unwrap(), "--name", &name, "--allow", "host-net=10.0.0.0/8", "--", "up", link])
            .output()
            .unwrap();
        assert!(plan.status.success(), "{}", text(&plan));
        let machine = Machine::new("plk");
        let _planned_lab = PlannedLab(name.clone());
        let out = in_ns(&machine.name, "sh", &["-c", &stdout(&plan)]);
        assert!(out.status.success(), "{link:?}: the plan failed as a script: {}\n{}", text(&out), stdout(&plan));
        let shown = nsw_tests::ip_in(&machine.name, &["-j", "link", "show", "dev", link]);
        assert!(shown.contains(&format!("\"ifname\":\"{link}\"")) && shown.contains("\"UP\""), "{link:?}: {shown}");
        let dad = in_ns(&machine.name, "cat", &[&format!("/proc/sys/net/ipv6/conf/{link}/accept_dad")]);
        assert_eq!(stdout(&dad).trim(), "0", "{link:?}: {}", text(&dad));
    }
}

#[test]
fn the_plan_runs_programs_as_the_run_would_never_as_more() {
    let plan = |extra: &[&str]| {
        let out = Command::new(nsw_bin()).arg("plan").arg(guest("spawner")).args(["--allow", "exec=sleep"]).args(extra).output().unwrap();
        assert!(out.status.success(), "{extra:?}: {}", text(&out));
        stdout(&out)
    };
    // Root of the lab's own user namespace: a plan has none, and says so
    // rather than giving the program the machine's root.
    let lab_root = plan(&[]);
    // A program in the background runs on, in the plan too: its line does
    // not hold the script, and a check that it runs passes.
    assert!(lab_root.contains("-- sleep 1000 &\n"), "{lab_root}");
    assert!(lab_root.contains("# nsw runs this as root of the lab's own user namespace"), "{lab_root}");
    assert!(lab_root.contains("setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs -- sleep 1000"), "{lab_root}");
    // The machine's root, asked for by name: shown as it is.
    let root = plan(&["--exec-user", "root"]);
    assert!(root.contains("setpriv --reuid=0 --regid=0") && !root.contains("own user namespace"), "{root}");
    // A user by name: that user's ids.
    let daemon = plan(&["--exec-user", "daemon"]);
    assert!(daemon.contains("setpriv --reuid=1 --regid=1 "), "{daemon}");
    // A mistake is said as run says it.
    let out = Command::new(nsw_bin()).args(["plan", guest("spawner").to_str().unwrap(), "--exec-user", "root"]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("the lab runs no programs without --allow exec"), "{}", text(&out));
}

/// The namespaces a plan made when run as a script, deleted on drop.
struct PlannedLab(String);

impl Drop for PlannedLab {
    fn drop(&mut self) {
        for ns in named_netns(&self.0).into_iter().filter(|n| *n == self.0 || n.starts_with(&format!("{}-", self.0))) {
            check("ip", &["netns", "del", &ns]);
        }
    }
}

#[test]
fn capture_writes_pcapng_that_tcpdump_reads_with_the_pings() {
    let machine = Machine::new("cap");
    let lab = machine.lab("cp");
    lab.run_ok(&guest("pbj"), &[], &[]);
    // To a file, ending by itself after 6 packets.
    let file = std::env::temp_dir().join(unique("nsw-capture-")).with_extension("pcapng");
    let mut capture = machine.spawn(&["capture", &lab.name, "pb:veth-pb", "-c", "6", "--duration", "20", "-w", file.to_str().unwrap()], &[]);
    let mut err = wait_until_capturing(&mut capture);
    let ping = machine.nsw(&["exec", &lab.name, "jelly", "--", "ping", "-c", "5", "-i", "0.2", "10.0.0.10"]);
    assert!(ping.status.success(), "{}", text(&ping));
    let status = capture.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success() && rest.contains("6 packets captured") && rest.contains("dropped by the kernel"), "{status:?} {rest}");
    let read = nsw_tests::run("tcpdump", &["-nn", "-r", file.to_str().unwrap()]);
    let printed = stdout(&read);
    assert!(String::from_utf8_lossy(&read.stderr).contains("link-type EN10MB"), "{}", text(&read));
    // jelly's own address: traffic inside the lab's prefix is not NATed,
    // even where br_netfilter shows bridged packets to the NAT hook.
    assert!(printed.contains("10.0.0.11 > 10.0.0.10: ICMP echo request") && printed.contains("10.0.0.10 > 10.0.0.11: ICMP echo reply"), "{printed}");
    std::fs::remove_file(&file).unwrap();
    // To a pipe, until Ctrl-C.
    let mut capture = machine.spawn(&["capture", &lab.name, "pb:veth-pb"], &[]);
    let mut err = wait_until_capturing(&mut capture);
    let ping = machine.nsw(&["exec", &lab.name, "host", "--", "ping", "-c", "2", "-i", "0.2", "10.0.0.10"]);
    assert!(ping.status.success(), "{}", text(&ping));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(capture.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let mut pcapng = Vec::new();
    std::io::Read::read_to_end(capture.stdout.as_mut().unwrap(), &mut pcapng).unwrap();
    let status = capture.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success() && rest.contains("packets captured"), "{status:?} {rest}");
    assert_eq!(pcapng.get(..4), Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]), "not pcapng: the section header block comes first");
    let mut tcpdump = Command::new("tcpdump").args(["-nn", "-r", "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut tcpdump.stdin.take().unwrap(), &pcapng).unwrap();
    let read = tcpdump.wait_with_output().unwrap();
    assert!(stdout(&read).contains("10.0.0.1 > 10.0.0.10: ICMP echo request"), "{}", text(&read));
    lab.down_and_check();
}

#[test]
fn probe_from_the_command_line_reaches_any_address_and_pingall_covers_every_node() {
    let machine = Machine::new("prb");
    let lab = machine.lab("pr");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let all = machine.nsw(&["probe", &lab.name, "pingall"]);
    let said = stdout(&all);
    assert!(all.status.success() && said.contains("nsw: 6 of 6 pings answered"), "{}", text(&all));
    let row = said.lines().find(|l| l.starts_with("pb ")).unwrap_or_default();
    assert!(row.contains(" jelly") && row.contains(" host") && !row.contains(" X"), "{said}");
    let ping = machine.nsw(&["probe", &lab.name, "pb", "ping", "10.0.0.11", "-c", "2"]);
    assert!(ping.status.success() && stdout(&ping).contains("pb -> 10.0.0.11: 2/2 replies"), "{}", text(&ping));
    let trace = machine.nsw(&["probe", &lab.name, "pb", "trace", "10.0.0.11", "--json"]);
    let hops: serde_json::Value = serde_json::from_str(stdout(&trace).trim()).unwrap_or_else(|e| panic!("{e}: {}", text(&trace)));
    assert_eq!((hops["reached"].as_bool(), hops["hops"][0]["address"].as_str()), (Some(true), Some("10.0.0.11")), "{hops}");
    // Nothing listens on port 9: refused, and the status says it failed.
    let tcp = machine.nsw(&["probe", &lab.name, "pb", "tcp", "10.0.0.11", "9"]);
    assert!(tcp.status.code() == Some(1) && stdout(&tcp).contains("pb -> 10.0.0.11:9: refused"), "{}", text(&tcp));
    // An address the lab did not give: jelly got it from elsewhere.
    let added = machine.nsw(&["exec", &lab.name, "jelly", "--", "ip", "address", "add", "10.0.7.7/16", "dev", "veth-jelly"]);
    assert!(added.status.success(), "{}", text(&added));
    let run = machine.nsw(&["probe", &lab.name, "pb", "throughput", "10.0.7.7", "--seconds", "1"]);
    assert!(run.status.success() && stdout(&run).contains("pb -> 10.0.7.7 (in jelly): ") && stdout(&run).contains("Mbit/s"), "{}", text(&run));
    let nowhere = machine.nsw(&["probe", &lab.name, "pb", "throughput", "10.9.9.9", "--seconds", "1"]);
    assert!(nowhere.status.code() == Some(2) && stderr(&nowhere).contains("no node of lab"), "{}", text(&nowhere));
    let unknown = machine.nsw(&["probe", &lab.name, "nope", "ping", "10.0.0.1"]);
    assert!(unknown.status.code() == Some(2) && stderr(&unknown).contains("has no node \"nope\""), "{}", text(&unknown));
    lab.down_and_check();
}

/// Wait until a capture listens (it says so on stderr); the rest of its stderr.
fn wait_until_capturing(capture: &mut std::process::Child) -> std::io::BufReader<std::process::ChildStderr> {
    let mut err = std::io::BufReader::new(capture.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("capturing on pb:veth-pb"), "{line}");
    err
}

#[test]
fn a_long_run_on_a_terminal_shows_its_progress_and_a_pipe_does_not() {
    let machine = Machine::new("prog");
    let lab = machine.lab("pg");
    // A run that lasts over a second whatever the machine's speed: the
    // flap lab keeps its link down for 800 ms, twice. `script` gives nsw a
    // terminal.
    let command = format!("nsenter --net=/run/netns/{} {} run --rm {} --name {} -- 800 2", machine.name, nsw_bin().display(), guest("flap").display(), lab.name);
    let typescript = std::env::temp_dir().join(unique("nsw-typescript-"));
    let out = nsw_tests::run("script", &["-qec", &command, typescript.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let seen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    std::fs::remove_file(&typescript).unwrap();
    assert!(seen.contains("building: "), "no progress line on a terminal: {seen}");
    lab.assert_gone();
    // Through a pipe: never.
    let piped = lab.run_ok(&guest("flap"), &["--rm"], &["800", "2"]);
    assert!(!nsw_tests::stderr(&piped).contains("building: "), "{}", text(&piped));
    lab.assert_gone();
}

#[test]
fn nsw_wit_prints_the_wit_it_was_built_with() {
    let out = Command::new(nsw_bin()).arg("wit").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let wit = std::fs::read_to_string(workspace().join("wit/nsw.wit")).unwrap();
    assert_eq!(stdout(&out).trim_end(), wit.trim_end());
}
