//! Property test of the policy layer: random sequences of primitive calls,
//! with random and hostile names and addresses, drive a lab on the plan
//! backend (the kernel modelled in memory). Whatever the sequence: no call
//! panics, nothing the lab did not create is ever touched, nothing lands
//! on the machine outside the granted prefixes or over its routes, and the
//! journal covers every object that exists. Then the lab is torn down on
//! the same plan, as `down` does it: nothing of the lab is left, and the
//! machine is exactly as it was.

use std::net::IpAddr;

use ipnet::IpNet;
use nsw::backend::plan::{PlanBackend, PlanState};
use nsw::backend::rules::TableChange;
use nsw::journal::{LabInfo, Mode, NetnsRef, Object, StateDir};
use nsw::lab::{Family, Lab};
use nsw::policy::{Grants, Limits};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Netns(String),
    Veth(String, usize, String, usize),
    Bridge(String, usize),
    Move(usize, usize),
    Master(usize, usize),
    Up(usize),
    Address(usize, String),
    Route(usize, String, String),
    Forward(usize, bool),
    Masquerade(usize, String),
    Ping(usize, String, u32, u32),
    Uplink,
    Conditions(usize, Option<u64>, Option<f64>, Option<u32>),
    Down(usize),
    Mtu(usize, u32),
    Mac(usize, String),
    Rule(usize, bool, Option<String>, Option<u16>),
    Policy(usize, bool),
    PortForward(usize, u16, String, u16),
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,6}",
        1 => Just("lo".to_string()),
        1 => Just("eth0".to_string()),
        1 => Just("host".to_string()),
        1 => prop::sample::select(vec!["", ".", "..", "../x", "a/b", "a b", "a:b", "x%d", "a\0b", "\u{1b}[2J", "é", "sixteen-bytes-xx"]).prop_map(String::from),
        1 => "\\PC{0,24}",
        1 => "[a-z]{30,40}",
    ]
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u8..4, 0u8..255, 8u8..31).prop_map(|(b, c, len)| format!("10.{b}.{c}.1/{len}")),
        1 => Just("10.1.0.5/24".to_string()),
        1 => Just("10.1.0.0/16".to_string()),
        1 => Just("8.8.8.8/32".to_string()),
        1 => Just("0.0.0.0/0".to_string()),
        1 => Just("10.0.0.0/16".to_string()),
        1 => Just("192.168.5.0/24".to_string()),
        1 => Just("fd00::1/64".to_string()),
        1 => Just("fd00::/64".to_string()),
        1 => Just("not-an-address".to_string()),
        1 => "\\PC{0,20}",
    ]
}

fn gateway() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u8..4, 0u8..255).prop_map(|(b, c)| format!("10.{b}.{c}.1")),
        1 => Just("10.1.0.1".to_string()),
        1 => Just("fd00::1".to_string()),
        1 => Just("junk".to_string()),
    ]
}

fn destination() -> impl Strategy<Value = String> {
    prop_oneof![3 => cidr(), 1 => Just("default".to_string())]
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..8;
    prop_oneof![
        3 => name().prop_map(Op::Netns),
        3 => (name(), i(), name(), i()).prop_map(|(a, n, b, m)| Op::Veth(a, n, b, m)),
        2 => (name(), i()).prop_map(|(a, n)| Op::Bridge(a, n)),
        2 => (i(), i()).prop_map(|(l, n)| Op::Move(l, n)),
        2 => (i(), i()).prop_map(|(p, b)| Op::Master(p, b)),
        2 => i().prop_map(Op::Up),
        3 => (i(), cidr()).prop_map(|(l, c)| Op::Address(l, c)),
        3 => (i(), destination(), gateway()).prop_map(|(n, d, g)| Op::Route(n, d, g)),
        1 => (i(), any::<bool>()).prop_map(|(n, v6)| Op::Forward(n, v6)),
        2 => (i(), cidr()).prop_map(|(n, c)| Op::Masquerade(n, c)),
        1 => (i(), gateway(), 0u32..200, 0u32..20_000).prop_map(|(n, t, c, ms)| Op::Ping(n, t, c, ms)),
        1 => Just(Op::Uplink),
        2 => (i(), prop::option::of(0u64..100_000_000), prop::option::of(-10.0f64..300.0), prop::option::of(0u32..100_000))
            .prop_map(|(l, r, p, d)| Op::Conditions(l, r, p, d)),
        1 => i().prop_map(Op::Down),
        1 => (i(), 0u32..80_000).prop_map(|(l, m)| Op::Mtu(l, m)),
        1 => (i(), prop_oneof![Just("02:00:00:00:00:01".to_string()), Just("01:00:00:00:00:01".to_string()), "\\PC{0,20}"]).prop_map(|(l, m)| Op::Mac(l, m)),
        2 => (i(), any::<bool>(), prop::option::of(cidr()), prop::option::of(0u16..100)).prop_map(|(n, d, c, p)| Op::Rule(n, d, c, p)),
        1 => (i(), any::<bool>()).prop_map(|(n, d)| Op::Policy(n, d)),
        1 => (i(), 0u16..100, gateway(), 0u16..100).prop_map(|(n, p, a, q)| Op::PortForward(n, p, a, q)),
    ]
}

/// Run `ops` on a fresh lab; return the plan's state and the journal.
/// Then take the lab down and check that it left nothing.
fn play(grants: Grants, ops: &[Op]) -> (std::sync::Arc<std::sync::Mutex<PlanState>>, nsw::journal::LabRecord) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("nsw-props-{}-{n}", std::process::id()));
    let state = StateDir::at(&dir);
    let lab_name = "prop";
    let lock = state.lock(lab_name).unwrap();
    let mode = if grants.host_net.is_some() { Mode::HostNet } else { Mode::Contained };
    let info = LabInfo {
        name: lab_name.into(),
        mode,
        grants: grants.names(),
        // The plan's machine.
        machine_netns: 1,
        pid: 0,
        script: "props".into(),
        started_unix: 0,
        part_of: None,
    };
    let journal = state.create_journal(&lock, info).unwrap();
    let plan = PlanBackend::new();
    let mut for_teardown = plan.clone();
    let shared = plan.state.clone();
    let limits = Limits { netns: 6, links: 12, bridges: 2, ping_rate: 1_000_000, ..Limits::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let journal = rt.block_on(async {
        let stop = nsw::stop::Stop::new();
        let mut lab = Lab::start(lab_name, grants, journal, Box::new(plan), limits, stop, None).await.expect("start");
        let (mut nss, mut links) = (vec![nsw::lab::HOST], Vec::new());
        let pick = |v: &Vec<usize>, i: usize| v.get(i % v.len().max(1)).copied();
        for op in ops {
            // Every outcome is allowed except a panic or a trap.
            let outcome: Result<(), nsw::error::LabError> = match op {
                Op::Netns(n) => lab.create_netns(n).await.map(|id| nss.push(id)),
                Op::Veth(a, i, b, j) => {
                    let (x, y) = (pick(&nss, *i).unwrap(), pick(&nss, *j).unwrap());
                    lab.create_veth(a, x, b, y).await.map(|(p, q)| links.extend([p, q]))
                }
                Op::Bridge(a, i) => lab.create_bridge(a, pick(&nss, *i).unwrap()).await.map(|l| links.push(l)),
                Op::Move(l, i) => match pick(&links, *l) {
                    Some(link) => lab.move_link(link, pick(&nss, *i).unwrap()).await,
                    None => Ok(()),
                },
                Op::Master(p, b) => match (pick(&links, *p), pick(&links, *b)) {
                    (Some(p), Some(b)) => lab.set_master(p, b).await,
                    _ => Ok(()),
                },
                Op::Up(l) => match pick(&links, *l) {
                    Some(link) => lab.set_up(link).await,
                    None => Ok(()),
                },
                Op::Address(l, c) => match pick(&links, *l) {
                    Some(link) => lab.add_address(link, c).await,
                    None => Ok(()),
                },
                Op::Route(i, d, g) => lab.add_route(pick(&nss, *i).unwrap(), d, g).await,
                Op::Forward(i, v6) => lab.enable_forwarding(pick(&nss, *i).unwrap(), if *v6 { Family::V6 } else { Family::V4 }).await,
                Op::Masquerade(i, c) => lab.masquerade(pick(&nss, *i).unwrap(), c).await,
                Op::Ping(i, t, c, ms) => lab.ping(pick(&nss, *i).unwrap(), t, *c, *ms).await.map(drop),
                Op::Uplink => lab.connect_uplink().await.map(|l| links.push(l)),
                Op::Conditions(l, rate, loss, delay) => match pick(&links, *l) {
                    Some(link) => {
                        let c = nsw::lab::conditions::Conditions { rate_bps: *rate, loss_percent: *loss, delay_us: *delay, ..Default::default() };
                        lab.set_conditions(link, c).await
                    }
                    None => Ok(()),
                },
                Op::Down(l) => match pick(&links, *l) {
                    Some(link) => lab.set_down(link).await,
                    None => Ok(()),
                },
                Op::Mtu(l, m) => match pick(&links, *l) {
                    Some(link) => lab.set_mtu(link, *m).await,
                    None => Ok(()),
                },
                Op::Mac(l, m) => match pick(&links, *l) {
                    Some(link) => lab.set_mac(link, m).await,
                    None => Ok(()),
                },
                Op::Rule(i, drop, source, port) => {
                    use nsw::backend::rules::{Direction, Protocol, Verdict};
                    let rule = nsw::lab::firewall::RuleRequest {
                        direction: Direction::Input,
                        verdict: if *drop { Verdict::Drop } else { Verdict::Allow },
                        protocol: port.map(|_| Protocol::Tcp),
                        source: source.clone(),
                        destination: None,
                        port: *port,
                    };
                    lab.add_rule(pick(&nss, *i).unwrap(), rule).await
                }
                Op::Policy(i, drop) => {
                    use nsw::backend::rules::{Direction, Verdict};
                    lab.set_policy(pick(&nss, *i).unwrap(), Direction::Forward, if *drop { Verdict::Drop } else { Verdict::Allow }).await
                }
                Op::PortForward(i, p, a, q) => lab.port_forward(pick(&nss, *i).unwrap(), nsw::backend::rules::Protocol::Tcp, *p, a, *q).await,
            };
            if let Err(nsw::error::LabError::Trap(e)) = outcome {
                panic!("{op:?} faulted the host: {e:#}");
            }
        }
        lab.finish()
    });
    drop(journal);
    let record = state.read(lab_name).unwrap().unwrap();
    let snapshot = snapshot(&shared.lock().unwrap());
    rt.block_on(async {
        let report = nsw::teardown::remove_all(&mut for_teardown, &record, false, &dir, None, None).await.expect("teardown");
        assert!(report.complete(), "teardown failed: {:?}", report.failed);
    });
    check_torn_down(&shared.lock().unwrap());
    restore(&shared, snapshot);
    state.remove(lock, lab_name).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (shared, record)
}

fn prefixes(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// What must hold whatever the lab did.
fn check(state: &PlanState, record: &nsw::journal::LabRecord, granted: Option<&[IpNet]>) {
    assert!(state.violations.is_empty(), "touched what is not the lab's: {:?}", state.violations);
    let machine_routes = prefixes(&["0.0.0.0/0", "10.1.0.0/24"]);
    for ns in state.namespaces.values() {
        // Every object that exists is in the journal.
        let place = match &ns.name {
            Some(name) => NetnsRef::Named(name.clone()),
            None => NetnsRef::Machine,
        };
        // (The uplink's tap is pasta's: the journal has pasta.)
        let pasta = record.objects.iter().any(|o| matches!(&o.object, Object::Process { program, .. } if program == "pasta"));
        for link in ns.links.iter().filter(|l| l.owned && !(l.kind == "tun" && pasta)) {
            assert!(
                record.objects.iter().any(|o| matches!(&o.object, Object::Link { netns, name, .. } if *netns == place && *name == link.name)),
                "{} in {place} is not in the journal",
                link.name
            );
        }
        if ns.name.is_some() {
            continue;
        }
        // The machine: its own links as they were...
        let lo = ns.links.iter().find(|l| l.name == "lo").expect("lo is still there");
        let eth0 = ns.links.iter().find(|l| l.name == "eth0").expect("eth0 is still there");
        assert!(!lo.owned && !eth0.owned && eth0.up && eth0.master.is_none());
        assert_eq!(eth0.addresses, prefixes(&["10.1.0.2/24"]));
        assert_eq!(lo.addresses, prefixes(&["127.0.0.1/8"]));
        // ...its routes all still there, and the lab's own clear of them.
        for (dest, _, _) in ns.routes.iter().filter(|(_, _, by_lab)| !by_lab) {
            assert!(machine_routes.contains(dest));
        }
        assert_eq!(ns.routes.iter().filter(|(_, _, by_lab)| !by_lab).count(), 2, "a machine route went");
        let uplink_pool: IpNet = "100.64.0.0/10".parse().unwrap();
        let allowed = |p: &IpNet| match granted {
            Some(granted) => granted.iter().any(|g| g.contains(p)),
            None => uplink_pool.contains(p),
        };
        for (dest, _, _) in ns.routes.iter().filter(|(_, _, by_lab)| *by_lab) {
            assert!(dest.prefix_len() > 0, "the lab set the machine's default route");
            assert!(allowed(dest), "route to {dest} outside the grants");
            assert!(!machine_routes.iter().any(|r| r.prefix_len() > 0 && (r.contains(dest) || dest.contains(r))), "{dest} overlaps");
        }
        for link in ns.links.iter().filter(|l| l.owned) {
            for addr in &link.addresses {
                assert!(allowed(&addr.trunc()), "address {addr} on the machine outside the grants");
            }
        }
        // A rule names links by index: whatever has that index now (if
        // anything: the lab's link may have moved away) is the lab's own.
        let lab_only = |links: &[nsw::backend::rules::OnLink]| {
            !links.is_empty() && links.iter().all(|on| ns.links.iter().filter(|l| l.index == on.index).all(|l| l.owned))
        };
        for (_, _, change) in &ns.table_changes {
            match change {
                TableChange::Masquerade { source } => assert!(source.prefix_len() > 0 && allowed(source), "masquerade of {source} on the machine"),
                // Filtering and forwarding on the machine: only ever traffic
                // of the lab's own links, and never a policy.
                TableChange::Filter(rule) => {
                    assert!(lab_only(&rule.links), "a rule on the machine beyond the lab's links: {rule:?}")
                }
                TableChange::PortForward { links, .. } => {
                    assert!(lab_only(links), "a port forward on the machine beyond the lab's links")
                }
                TableChange::Policy { .. } => panic!("a policy on the machine: {change:?}"),
                TableChange::FilterChain { .. } | TableChange::Loss { .. } => {}
            }
        }
        // Only the machine's own settings, and per-interface ones of the
        // lab's own links.
        let fresh = PlanBackend::fresh_machine();
        for key in ns.sysctls.keys() {
            let lab_link = ns.links.iter().filter(|l| l.owned).any(|l| key == &format!("net/ipv6/conf/{}/accept_dad", l.name));
            assert!(fresh.sysctls.contains_key(key) || lab_link, "the lab set {key} on the machine");
        }
        let _ = IpAddr::from([0, 0, 0, 0]);
    }
}

/// The plan as it was after the lab ran, to check against before teardown.
fn snapshot(state: &PlanState) -> std::collections::HashMap<usize, nsw::backend::plan::PlanNs> {
    state.namespaces.clone()
}

/// Put the lab's state back, so the checks of the lab itself still see it.
fn restore(shared: &std::sync::Arc<std::sync::Mutex<PlanState>>, namespaces: std::collections::HashMap<usize, nsw::backend::plan::PlanNs>) {
    shared.lock().unwrap().namespaces = namespaces;
}

/// After teardown: no namespace of the lab, and the machine (if the lab
/// used it) exactly as a fresh one.
fn check_torn_down(state: &PlanState) {
    assert!(state.violations.is_empty(), "teardown touched what is not the lab's: {:?}", state.violations);
    assert!(state.named.is_empty(), "namespaces left after teardown: {:?}", state.named);
    for ns in state.namespaces.values() {
        assert!(ns.name.is_none(), "netns {:?} left after teardown", ns.name);
        let fresh = PlanBackend::fresh_machine();
        let names = |n: &nsw::backend::plan::PlanNs| n.links.iter().map(|l| (l.name.clone(), l.addresses.clone())).collect::<Vec<_>>();
        assert_eq!(names(ns), names(&fresh), "the machine's links after teardown");
        let routes = |n: &nsw::backend::plan::PlanNs| n.routes.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>();
        assert_eq!(routes(ns), routes(&fresh), "the machine's routes after teardown");
        assert!(ns.tables.is_empty() && ns.table_changes.is_empty(), "nftables tables left on the machine: {:?}", ns.tables);
        assert_eq!(ns.sysctls, fresh.sysctls, "the machine's sysctls after teardown");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn contained_labs_never_touch_what_is_not_theirs(ops in prop::collection::vec(op(), 1..40), uplink in any::<bool>()) {
        let grants = Grants { host_net: None, uplink, ..Grants::default() };
        let (state, record) = play(grants, &ops);
        let state = state.lock().unwrap();
        check(&state, &record, None);
        if !uplink {
            prop_assert!(state.namespaces.values().all(|n| n.name.is_some()), "a contained lab opened the machine");
        }
    }

    #[test]
    fn host_net_labs_stay_inside_their_prefixes(ops in prop::collection::vec(op(), 1..40)) {
        let granted = prefixes(&["10.0.0.0/8", "fd00::/8"]);
        let grants = Grants { host_net: Some(granted.clone()), ..Grants::default() };
        let (state, record) = play(grants, &ops);
        check(&state.lock().unwrap(), &record, Some(&granted));
    }
}
