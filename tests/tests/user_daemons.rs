//! Real network software in the labs of an ordinary user who has a range
//! of ids of its own (`/etc/subuid`, `/etc/subgid`, as `useradd` gives one
//! on Debian): the keeper maps it through `newuidmap`, so daemons that drop
//! to users of their own (frr, dnsmasq) work there as they do under root,
//! with no root anywhere.

use nsw_tests::user::User;
use nsw_tests::{Machine, guest, stdout, text, unique};

#[test]
fn a_users_range_of_ids_is_mapped_into_its_labs() {
    let machine = Machine::new("uids");
    let user = User::with_ids();
    let lab = unique("ui");
    let spawner = user.file(&guest("spawner"));
    let out = user.nsw(&machine, &["run", spawner.to_str().unwrap(), "--name", &lab, "--allow", "exec=sleep"]);
    assert!(out.status.success(), "{}", text(&out));
    let map = user.nsw(&machine, &["exec", &lab, "a", "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map"]);
    assert!(map.status.success(), "{}", text(&map));
    let first = user.ids.unwrap();
    let said = stdout(&map);
    let rows: Vec<Vec<u64>> = said.lines().map(|l| l.split_whitespace().filter_map(|w| w.parse().ok()).collect()).collect();
    let own = vec![0, user.uid as u64, 1];
    let range = vec![1, first as u64, 65_535];
    assert_eq!(rows, [own.clone(), range.clone(), own, range], "{said}");
    // A program of the lab becomes a user of the node's own.
    let setpriv = user.nsw(&machine, &["exec", &lab, "a", "--", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "id", "-u"]);
    assert_eq!(stdout(&setpriv).trim(), "65534", "{}", text(&setpriv));
    user.down_all(&machine);
}

#[test]
fn a_user_runs_an_ospf_triangle_of_frr_routers() {
    let machine = Machine::new("ufrr");
    let user = User::with_ids();
    let lab = unique("uf");
    let frr = user.file(&guest("frr"));
    let out = user.nsw(&machine, &["run", frr.to_str().unwrap(), "--name", &lab, "--allow", "exec=/usr/lib/frr/zebra,/usr/lib/frr/ospfd"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("through 10.1.0.1 10.12.0.2 10.23.0.2"), "{}", text(&out));
    let neighbours = user.nsw(&machine, &["exec", &lab, "r2", "--", "vtysh", "-c", "show ip ospf neighbor"]);
    let said = stdout(&neighbours);
    for id in ["10.255.0.1", "10.255.0.3"] {
        assert!(said.lines().any(|l| l.starts_with(id) && l.contains("Full")), "{}", text(&neighbours));
    }
    // FRR's user of the node is one of the user's range on the machine.
    let users = user.nsw(&machine, &["exec", &lab, "r1", "--", "ps", "-o", "user=", "-C", "zebra,ospfd"]);
    let names = stdout(&users);
    assert!(!names.is_empty() && names.split_whitespace().all(|u| u == "frr"), "{}", text(&users));
    user.down_all(&machine);
}

#[test]
fn a_user_runs_an_ospf_triangle_of_bird_routers_and_dhcp() {
    let machine = Machine::new("ubird");
    let user = User::with_ids();
    let (ospf, dhcp) = (unique("uo"), unique("ud"));
    let bird = user.file(&guest("ospf"));
    let out = user.nsw(&machine, &["run", bird.to_str().unwrap(), "--name", &ospf, "--allow", "exec=bird"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("h1 reaches h3"), "{}", text(&out));
    let birdc = user.nsw(&machine, &["exec", &ospf, "r1", "--", "birdc", "show", "protocols"]);
    assert!(stdout(&birdc).lines().any(|l| l.starts_with("ospf1") && l.contains("Running")), "{}", text(&birdc));
    let leases = user.file(&guest("dhcp"));
    let out = user.nsw(&machine, &["run", leases.to_str().unwrap(), "--name", &dhcp, "--allow", "exec=dnsmasq,dhclient", "--", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = user.nsw(&machine, &["exec", &dhcp, "dhcp", "--", "cat", "/var/lib/misc/dnsmasq.leases"]);
    let said = stdout(&table);
    for client in ["c1", "c2"] {
        assert!(said.lines().any(|l| l.split_whitespace().nth(3) == Some(client)), "no lease for {client}: {}", text(&table));
    }
    user.down_all(&machine);
}

/// A program of a node binds port 80 and turns on a bridge's spanning
/// tree (`ip link ... stp_state 1`, as root of the lab), for root and for
/// an ordinary user alike.
#[test]
fn port_80_and_stp_by_a_program_as_root_and_as_a_user() {
    let machine = Machine::new("p80");
    let user = User::with_ids();
    let server = ["ready", "tcp", "80", "10000", "python3", "-m", "http.server", "--bind", "0.0.0.0", "80"];
    let stp = ["run", "sh", "-c", "ip link add br0 type bridge && ip link set br0 type bridge stp_state 1 && cat /sys/class/net/br0/bridge/stp_state"];
    // As root.
    let lab = machine.lab("pr");
    let out = lab.run(&guest("spawner"), &["--rm", "--allow", "exec"], &server);
    assert!(stdout(&out).contains("tcp 80: ConnectOutcome::Connected"), "{}", text(&out));
    lab.assert_gone();
    let lab = machine.lab("sr");
    let out = lab.run(&guest("hostile_outputs"), &["--rm", "--allow", "exec"], &stp);
    assert!(stdout(&out).contains("stdout: 1"), "{}", text(&out));
    lab.assert_gone();
    // As a user.
    let (spawner, outputs) = (user.file(&guest("spawner")), user.file(&guest("hostile_outputs")));
    let mut args = vec!["run", "--rm", spawner.to_str().unwrap(), "--name", "pu", "--allow", "exec", "--"];
    args.extend_from_slice(&server);
    let out = user.nsw(&machine, &args);
    assert!(stdout(&out).contains("tcp 80: ConnectOutcome::Connected"), "{}", text(&out));
    let mut args = vec!["run", "--rm", outputs.to_str().unwrap(), "--name", "su", "--allow", "exec", "--"];
    args.extend_from_slice(&stp);
    let out = user.nsw(&machine, &args);
    assert!(stdout(&out).contains("stdout: 1"), "{}", text(&out));
    user.down_all(&machine);
}
