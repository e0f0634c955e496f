//! `nsw inspect` works on every lab script in the repository, without root,
//! and says which grants each one needs.

use std::process::Command;

use nsw_tests::{nsw_bin, text, workspace};

/// Every compiled lab script in the repo.
fn every_guest() -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for dir in ["guests/target/wasm32-wasip2/release", "guests/target/lang"] {
        for entry in std::fs::read_dir(workspace().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                all.push(path);
            }
        }
    }
    all.sort();
    all
}

/// `nsw inspect --json FILE` as the unprivileged user nobody.
fn inspect_as_nobody(file: &std::path::Path) -> serde_json::Value {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(nsw_bin())
        .args(["inspect", "--json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", file.display(), text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_works_on_every_guest_without_root() {
    let guests = every_guest();
    assert!(guests.len() >= 20, "only {} guests found", guests.len());
    for file in &guests {
        let report = inspect_as_nobody(file);
        let name = file.file_stem().unwrap().to_str().unwrap();
        // (componentize-py adds an `exports` instance of its own.)
        assert!(report["exports"].as_array().unwrap().contains(&serde_json::json!("run")), "{name}: {report}");
        assert_eq!(report["size"], std::fs::metadata(file).unwrap().len(), "{name}");
        let needs = report["grants_needed"].as_array().unwrap();
        match name {
            "hostile_ungranted" | "hostile_spoof" | "uplink_ping" => assert_eq!(needs, &[serde_json::json!("uplink")], "{name}"),
            "iperf" | "spawner" | "ospf" | "frr" | "dhcp" | "hostile_outputs" | "hostile_files_escape" => assert_eq!(needs, &[serde_json::json!("exec")], "{name}"),
            "hostile_unknown_import" => assert_eq!(report["runnable"], false, "{name}"),
            _ => {
                assert!(needs.is_empty(), "{name} needs {needs:?}");
                assert_eq!(report["runnable"], true, "{name}: {report}");
            }
        }
    }
}

#[test]
fn inspect_lists_capabilities_not_types() {
    let out = Command::new(nsw_bin()).args(["inspect"]).arg(workspace().join("guests/target/lang/pbj-py.wasm")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("nsw:lab/topology@0.1.5") && !printed.contains("nsw:lab/types"), "{printed}");
}
