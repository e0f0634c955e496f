//! The lab and its teardown on the plan backend: no root, no kernel.

use std::path::PathBuf;

use super::{HOST, Lab};
use crate::backend::plan::PlanBackend;
use crate::backend::rules::TableFamily;
use crate::journal::{LabInfo, LabRecord, StateDir};
use crate::policy::{Grants, Limits};
use crate::stop::Stop;

/// A lab `t` on a fresh plan (host-net with 10.0.0.0/8 if `host_net`),
/// its state directory, and the plan to inspect and tear down with.
async fn lab(host_net: bool) -> (Lab, PlanBackend, PathBuf, crate::journal::LabLock) {
    let dir = std::env::temp_dir().join(format!("nsw-lab-test-{}-{:?}", std::process::id(), std::thread::current().id()));
    let state = StateDir::at(&dir);
    let lock = state.lock("t").unwrap();
    let grants = if host_net { Grants::parse(&["host-net=10.0.0.0/8".into()], false).unwrap() } else { Grants::default() };
    let info = LabInfo {
        name: "t".into(),
        mode: grants.mode(),
        grants: grants.names(),
        machine_netns: 1,
        pid: 0,
        script: "test".into(),
        started_unix: 0,
        part_of: None,
    };
    let journal = state.create_journal(&lock, info).unwrap();
    let plan = PlanBackend::new();
    let lab = Lab::start("t", grants, journal, Box::new(plan.clone()), Limits::default(), Stop::new(), None).await.map_err(|(e, _)| e).unwrap();
    (lab, plan, dir, lock)
}

async fn tear_down(plan: &mut PlanBackend, record: &LabRecord, dir: &PathBuf) -> crate::teardown::Report {
    crate::teardown::remove_all(plan, record, false, dir, None, None).await.unwrap()
}

#[test]
fn a_refused_creation_is_settled_at_once_and_a_later_link_of_that_name_is_left_alone() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let (mut lab, mut plan, dir, _lock) = lab(true).await;
        let node = lab.create_netns("n").await.unwrap();
        // The plan, like the kernel, refuses a second link `n0` in the node.
        let (_, n0) = lab.create_veth("a0", node, "n0", node).await.unwrap();
        lab.set_up(n0).await.unwrap();
        assert!(lab.create_veth("fv0", HOST, "n0", node).await.is_err(), "the name n0 is taken in n: refused up front");
        let (fv0, _) = lab.create_veth("fv0", HOST, "n1", node).await.unwrap();
        // Someone takes n1 in the node before the pair is made.
        {
            let mut s = plan.state.lock().unwrap();
            let ns = s.namespaces.get_mut(&node).unwrap();
            ns.links.push(crate::backend::plan::PlanLink { name: "n1".into(), index: 7, kind: "veth".into(), owned: false, up: false, master: None, addresses: vec![], mtu: 1500, mac: None, queue: None });
        }
        assert!(lab.set_up(fv0).await.is_err());
        let journal = lab.finish();
        // Settled as failed: nothing of it is left in the record.
        assert!(!journal.record().objects.iter().any(|o| o.object.to_string().contains("fv0")), "{:?}", journal.record().objects);
        // Someone makes fv0 on the machine now; teardown must leave it.
        {
            let mut s = plan.state.lock().unwrap();
            let machine = s.machine_ns().unwrap();
            machine.links.push(crate::backend::plan::PlanLink { name: "fv0".into(), index: 9, kind: "veth".into(), owned: false, up: true, master: None, addresses: vec![], mtu: 1500, mac: None, queue: None });
        }
        let record = journal.record().clone();
        let report = tear_down(&mut plan, &record, &dir).await;
        assert!(report.complete(), "{:?}", report.failed);
        assert!(plan.state.lock().unwrap().violations.is_empty(), "{:?}", plan.state.lock().unwrap().violations);
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn a_table_swapped_under_the_lab_is_neither_added_to_nor_deleted() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let (mut lab, mut plan, dir, _lock) = lab(true).await;
        let bridge = lab.create_bridge("b0", HOST).await.unwrap();
        lab.add_address(bridge, "10.79.0.1/24").await.unwrap();
        lab.masquerade(HOST, "10.79.0.0/24").await.unwrap();
        // Someone replaces the lab's table with their own.
        {
            let mut s = plan.state.lock().unwrap();
            let machine = s.machine_ns().unwrap();
            machine.tables = vec![(TableFamily::Inet, "nsw-t".into(), 42)];
            machine.table_changes.clear();
        }
        let err = lab.masquerade(HOST, "10.79.1.0/24").await.unwrap_err().to_string();
        assert!(err.contains("is not the lab's any more"), "{err}");
        let journal = lab.finish();
        let report = tear_down(&mut plan, &journal.record().clone(), &dir).await;
        assert!(report.left_alone.iter().any(|l| l.contains("nftables table inet nsw-t")), "{report:?}");
        let mut s = plan.state.lock().unwrap();
        assert_eq!(s.machine_ns().unwrap().tables, vec![(TableFamily::Inet, "nsw-t".to_string(), 42)], "their table went");
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn repeated_calls_are_refused_before_the_journal_hears_of_them() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let (mut lab, _plan, dir, _lock) = lab(false).await;
        let (a, _) = lab.create_veth("a0", HOST, "a1", HOST).await.unwrap();
        lab.add_address(a, "10.1.0.1/24").await.unwrap();
        lab.masquerade(HOST, "10.1.0.0/24").await.unwrap();
        let lines = |lab: &Lab| lab.journal.bytes();
        let before = lines(&lab);
        for _ in 0..100 {
            assert!(lab.add_address(a, "10.1.0.1/24").await.is_err());
            assert!(lab.masquerade(HOST, "10.1.0.0/24").await.is_err());
            assert!(lab.add_route(HOST, "default", "192.0.2.1").await.is_err());
        }
        assert_eq!(lines(&lab), before, "refused calls grew the journal");
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn node_files_are_the_nodes_own_counted_and_never_the_machines() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let (mut lab, plan, dir, _lock) = lab(true).await;
        let node = lab.create_netns("n").await.unwrap();
        let root = || super::Wanted { mode: 0o644, owner: None, group: None };
        lab.write_node_file(node, "/etc/n.conf", b"hello".to_vec(), root()).await.unwrap();
        assert_eq!(lab.read_node_file(node, "/etc/n.conf").await.unwrap(), b"hello");
        // The machine's users are the node's (root is in every passwd).
        let owned = super::Wanted { mode: 0o755, owner: Some("root"), group: Some("root") };
        lab.make_node_dir(node, "/var/run/n", owned).await.unwrap();
        assert!(plan.state.lock().unwrap().log.iter().any(|l| l == ": node t-n makes directory /run/n (mode 755, owner 0:0)"));
        // host-net: the host is the machine, whose files are its own.
        let refused = lab.write_node_file(HOST, "/etc/n.conf", b"x".to_vec(), root()).await.unwrap_err().to_string();
        assert!(refused.contains("machine's own namespace"), "{refused}");
        for (path, why) in [("/usr/bin/x", "a node's own files"), ("/etc/../x", "plainly"), ("/tmp/a\nb", "control character")] {
            let refused = lab.write_node_file(node, path, b"x".to_vec(), root()).await.unwrap_err().to_string();
            assert!(refused.contains(why), "{path:?}: {refused}");
        }
        // Every byte counts against --max-node-files (16 MiB).
        let big = vec![b'x'; 16 << 20];
        let refused = lab.write_node_file(node, "/tmp/big", big, root()).await.unwrap_err().to_string();
        assert!(refused.contains("--max-node-files"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}
