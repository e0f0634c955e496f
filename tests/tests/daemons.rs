//! Real network software in the nodes (issue 20): the machine's own
//! daemons, from Debian, run by a lab with `--allow exec` alone, as root of
//! the lab, at their default paths in each node's own files.

use nsw_tests::{Machine, guest, processes_mentioning, stderr, stdout, text};

/// An OSPF triangle of BIRD 2 routers converges, carries h1 to h3, and
/// reroutes through r2 when r1–r3 is cut; `birdc` reaches each router's
/// daemon at its default socket through `nsw exec`; `down` stops them all
/// and the machine's `/etc/bird` is as it was.
#[test]
fn an_ospf_triangle_of_bird_routers_converges_and_reroutes() {
    let machine = Machine::new("ospf");
    let lab = machine.lab("os");
    let conf_before = std::fs::read("/etc/bird/bird.conf").ok();
    let out = lab.run_ok(&guest("ospf"), &["--allow", "exec=bird"], &[]);
    let printed = stdout(&out);
    assert!(printed.contains("h1 reaches h3"), "{}", text(&out));
    // Rerouted: r1 (10.1.0.1), then r2 (10.12.0.2), then r3 (10.23.0.2).
    assert!(printed.contains("through 10.1.0.1 10.12.0.2 10.23.0.2"), "{}", text(&out));
    for router in ["r1", "r2", "r3"] {
        let birdc = machine.nsw(&["exec", &lab.name, router, "--", "birdc", "show", "protocols"]);
        assert!(birdc.status.success(), "{router}: {}", text(&birdc));
        let said = stdout(&birdc);
        assert!(said.lines().any(|l| l.starts_with("ospf1") && l.contains("Running")), "{router}: {said}");
        let hostname = machine.nsw(&["exec", &lab.name, router, "--", "hostname"]);
        assert_eq!(stdout(&hostname).trim(), router);
    }
    assert_eq!(processes_mentioning("bird -f").len(), 3, "{:?}", processes_mentioning("bird -f"));
    // Routes as they are: BIRD's beside the kernel's. r1–r3 back up, r1
    // reaches the r2–r3 link by two equal paths: a multipath route with
    // both next hops (nsw show, text and JSON).
    let up = machine.nsw(&["link", &lab.name, "r1:eth-r3", "--up"]);
    assert!(up.status.success(), "{}", text(&up));
    let waited = std::time::Instant::now();
    let ecmp = loop {
        let view: serde_json::Value = serde_json::from_str(&stdout(&machine.nsw(&["show", &lab.name, "--json"]))).unwrap();
        let r1 = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "r1").unwrap().clone();
        let route = r1["routes"].as_array().unwrap().iter().find(|r| r["destination"] == "10.23.0.0/30" && r["nexthops"].as_array().unwrap().len() == 2).cloned();
        if let Some(route) = route {
            break route;
        }
        assert!(waited.elapsed() < std::time::Duration::from_secs(30), "no multipath route to 10.23.0.0/30 on r1: {r1}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(ecmp["protocol"], "bird", "{ecmp}");
    let vias: Vec<&str> = ecmp["nexthops"].as_array().unwrap().iter().map(|h| h["via"].as_str().unwrap()).collect();
    assert!(vias.contains(&"10.12.0.2") && vias.contains(&"10.13.0.2"), "{ecmp}");
    let text_view = stdout(&machine.nsw(&["show", &lab.name]));
    assert!(text_view.lines().any(|l| l.contains("route 10.23.0.0/30 proto bird") && l.contains("nexthop via 10.12.0.2 dev eth-r2 weight 1") && l.contains("nexthop via 10.13.0.2 dev eth-r3 weight 1")), "{text_view}");
    assert!(text_view.contains("route 10.1.0.0/24 dev eth-h1 proto kernel"), "{text_view}");
    // Driven from the command line, as a user of a lab left up would.
    let trace = machine.nsw(&["probe", &lab.name, "h1", "trace", "10.3.0.2"]);
    let said = stdout(&trace);
    assert!(trace.status.success() && said.contains("10.1.0.1") && (said.contains("10.13.0.2") || said.contains("10.23.0.2")) && said.contains("10.3.0.2"), "{}", text(&trace));
    let all = machine.nsw(&["probe", &lab.name, "pingall"]);
    assert!(all.status.success(), "{}", text(&all));
    let logs = stdout(&machine.nsw(&["logs", &lab.name, "r1"]));
    assert!(logs.contains("Started") || logs.contains("ospf1"), "bird's log is not in nsw logs: {logs}");
    let down = machine.nsw(&["link", &lab.name, "r1:eth-r3", "--down"]);
    assert!(down.status.success(), "{}", text(&down));
    let graph: serde_json::Value = serde_json::from_slice(&machine.nsw(&["graph", &lab.name, "--format", "json"]).stdout).unwrap();
    let cut: Vec<&serde_json::Value> = graph["edges"].as_array().unwrap().iter().filter(|e| e["down"] == true).collect();
    assert!(cut.len() == 1 && cut[0]["label"].as_str().unwrap().contains("eth-r3 10.13.0.1/30"), "{graph}");
    lab.down_and_check();
    assert!(processes_mentioning("bird -f").is_empty(), "bird outlived down");
    assert_eq!(std::fs::read("/etc/bird/bird.conf").ok(), conf_before, "the machine's /etc/bird/bird.conf changed");
}

/// The same triangle with Debian's FRR (zebra and ospfd), every file
/// written by the script through `files` at FRR's default paths, the
/// daemons dropping from root of the lab to FRR's own user as they do on a
/// machine: it converges and reroutes, `vtysh` reaches the daemons through
/// `nsw exec`, `down` stops all six, and the machine's `/etc/frr` and
/// `/run/frr` are as they were.
#[test]
fn an_ospf_triangle_of_frr_routers_configured_through_files_converges() {
    let machine = Machine::new("frr");
    let lab = machine.lab("fr");
    let listing = |dir: &str| -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0))).collect())
            .unwrap_or_default();
        found.sort();
        found
    };
    let (etc_before, run_before) = (listing("/etc/frr"), listing("/run/frr"));
    let out = lab.run_ok(&guest("frr"), &["--allow", "exec=/usr/lib/frr/zebra,/usr/lib/frr/ospfd"], &[]);
    let printed = stdout(&out);
    assert!(printed.contains("h1 reaches h3"), "{}", text(&out));
    assert!(printed.contains("through 10.1.0.1 10.12.0.2 10.23.0.2"), "{}", text(&out));
    let neighbours = machine.nsw(&["exec", &lab.name, "r2", "--", "vtysh", "-c", "show ip ospf neighbor"]);
    assert!(neighbours.status.success(), "{}", text(&neighbours));
    // r2 has its two neighbours, r1 and r3, both adjacent.
    let said = stdout(&neighbours);
    for id in ["10.255.0.1", "10.255.0.3"] {
        assert!(said.lines().any(|l| l.starts_with(id) && l.contains("Full")), "{said}");
    }
    // The daemons run as FRR's user of the lab, not as root of anything.
    // (Nodes share the machine's process list: ps shows the lab's six.)
    let users = machine.nsw(&["exec", &lab.name, "r1", "--", "ps", "-o", "user=", "-C", "zebra,ospfd"]);
    assert_eq!(stdout(&users).split_whitespace().collect::<Vec<_>>(), ["frr"; 6], "{}", text(&users));
    assert_eq!(processes_mentioning("/usr/lib/frr/").len(), 6, "{:?}", processes_mentioning("/usr/lib/frr/"));
    lab.down_and_check();
    assert!(processes_mentioning("/usr/lib/frr/").is_empty(), "FRR outlived down");
    assert_eq!((listing("/etc/frr"), listing("/run/frr")), (etc_before, run_before), "the machine's FRR directories changed");
}

/// DHCP with Debian's dnsmasq and dhclient, two labs of it at once on one
/// machine: every client is leased an address under its own node's name
/// (not the machine's hostname), each lab's leases are in its nodes' own
/// files at the daemons' default paths, so neither lab sees the other's
/// nor the machine's, and `down` stops every daemon.
#[test]
fn dhcp_clients_get_leases_under_their_own_names_in_two_labs_at_once() {
    let machine = Machine::new("dhcp");
    let leases = "/var/lib/misc/dnsmasq.leases";
    let machine_leases = std::fs::read(leases).ok();
    let labs = [machine.lab("dha"), machine.lab("dhb")];
    let mut outs = Vec::new();
    for lab in &labs {
        let out = lab.run_ok(&guest("dhcp"), &["--allow", "exec=dnsmasq,dhclient"], &["3"]);
        assert!(stdout(&out).contains("3 clients leased an address and reach the server"), "{}", text(&out));
        outs.push(out);
    }
    for (lab, out) in labs.iter().zip(&outs) {
        let said = stdout(&machine.nsw(&["exec", &lab.name, "dhcp", "--", "cat", leases]));
        let mut named: Vec<(&str, &str)> = said.lines().filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.len() >= 4).then(|| (words[3], words[2]))
        }).collect();
        named.sort();
        let names: Vec<&str> = named.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["c1", "c2", "c3"], "lab {}'s leases are not its clients' by their names: {said}", lab.name);
        let mut addresses: Vec<&str> = named.iter().map(|(_, a)| *a).collect();
        addresses.dedup();
        assert_eq!(addresses.len(), 3, "{said}");
        // The address the lease names is the client's, as the script read
        // it back too (address.list-addresses).
        let printed = stdout(out);
        for (node, address) in &named {
            assert!(printed.lines().any(|l| l.ends_with(&format!("{node} has {address}/24"))), "{node}: {printed}");
            let has = stdout(&machine.nsw(&["exec", &lab.name, node, "--", "ip", "-4", "-br", "address", "show", "eth0"]));
            assert!(has.contains(&format!("{address}/24")), "{node} of lab {} has not {address}: {has}", lab.name);
        }
    }
    assert_eq!(processes_mentioning("dhclient -4 -d").len(), 6, "{:?}", processes_mentioning("dhclient -4 -d"));
    // nsw logs: each program's output by node and program, prefixed when
    // there are several; -f follows until the lab goes down.
    let all = stdout(&machine.nsw(&["logs", &labs[0].name]));
    for client in ["c1", "c2", "c3"] {
        assert!(all.lines().any(|l| l.starts_with(&format!("{client}/dhclient | bound to 10.0.50."))), "{all}");
    }
    let one = machine.nsw(&["logs", &labs[0].name, "c2/dhclient"]);
    assert!(stdout(&one).lines().any(|l| l.starts_with("bound to 10.0.50.")) && !stdout(&one).contains(" | "), "{}", text(&one));
    let unknown = machine.nsw(&["logs", &labs[0].name, "c9"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(stderr(&unknown).contains("has no program c9; its programs with output are: dhcp/dnsmasq, c1/dhclient"), "{}", text(&unknown));
    let mut follow = machine.spawn(&["logs", "-f", &labs[0].name, "c1"], &[]);
    for lab in &labs {
        lab.down_and_check();
    }
    let waited = std::time::Instant::now();
    while follow.try_wait().unwrap().is_none() {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "nsw logs -f outlived its lab");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let followed = follow.wait_with_output().unwrap();
    assert!(followed.status.success() && stdout(&followed).contains("bound to 10.0.50."), "{}", text(&followed));
    assert!(processes_mentioning("dnsmasq --keep-in-foreground").is_empty(), "dnsmasq outlived down");
    assert!(processes_mentioning("dhclient -4 -d").is_empty(), "dhclient outlived down");
    assert_eq!(std::fs::read(leases).ok(), machine_leases, "the machine's {leases} changed");
}

/// A node's `/etc/hosts` names the lab's nodes by the addresses they have
/// when a program starts, even when the node's files were made earlier
/// (a file written before any address).
#[test]
fn a_nodes_hosts_file_names_nodes_addressed_after_its_files_were_made() {
    let machine = Machine::new("hosts");
    let lab = machine.lab("hf");
    lab.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &["files-first"]);
    let hosts = machine.nsw(&["exec", &lab.name, "a", "--", "cat", "/etc/hosts"]);
    assert!(hosts.status.success(), "{}", text(&hosts));
    let said = stdout(&hosts);
    assert!(said.lines().any(|l| l == "10.0.0.2\tb") && said.lines().any(|l| l == "10.0.0.1\ta"), "{said}");
    let first = machine.nsw(&["exec", &lab.name, "a", "--", "cat", "/tmp/first"]);
    assert_eq!(stdout(&first), "written before any address\n", "{}", text(&first));
    lab.down_and_check();
}
