//! `nsw new`: a lab project outside this repository, in each language,
//! built with its own build command and run by nsw.

use std::path::Path;
use std::process::Command;

use nsw_tests::{Machine, nsw_bin, text, unique};

/// Make a project, build it as its README says, run what it built.
fn new_build_run(lang: &str, build: &[&str], wasm: &str) {
    new_build_run_saying(lang, &[], build, wasm, "3/3 replies");
}

fn new_build_run_saying(lang: &str, flags: &[&str], build: &[&str], wasm: &str, said: &str) {
    let dir = std::env::temp_dir().join(unique(&format!("nsw-new-{lang}-")));
    let made = Command::new(nsw_bin()).args(["new", "lab", "--lang", lang]).args(flags).arg("--dir").arg(&dir).output().unwrap();
    assert!(made.status.success(), "{lang}: {}", text(&made));
    assert!(dir.join("wit/nsw.wit").exists() && dir.join("README.md").exists(), "{lang}");
    let built = Command::new(build[0]).args(&build[1..]).current_dir(&dir).env("CARGO_TARGET_DIR", dir.join("target")).output().unwrap();
    assert!(built.status.success(), "{lang}: the build failed: {}", text(&built));
    let wasm = dir.join(wasm);
    assert!(Path::new(&wasm).exists(), "{lang}: no {}", wasm.display());
    let machine = Machine::new("new");
    let lab = machine.lab("n");
    let out = lab.run_ok(&wasm, &["--rm"], &[]);
    assert!(nsw_tests::stdout(&out).contains(said), "{lang}: {}", text(&out));
    lab.assert_gone();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_rust_lab_builds_and_runs() {
    new_build_run("rust", &["cargo", "build", "--release"], "target/wasm32-wasip2/release/lab.wasm");
}

/// With the stock services: their source in services/, built first, then
/// carried by the lab, which serves and fetches a page with them.
#[test]
fn a_new_rust_lab_with_the_stock_services_builds_and_serves() {
    let build = "(cd services && cargo build --release --target-dir target) && cargo build --release";
    new_build_run_saying("rust", &["--services"], &["sh", "-c", build], "target/wasm32-wasip2/release/lab.wasm", "the host got a's page over HTTP");
}

#[test]
fn a_new_python_lab_builds_and_runs() {
    new_build_run("python", &["./build.sh"], "lab.wasm");
}

#[test]
fn a_new_javascript_lab_builds_and_runs() {
    new_build_run("js", &["./build.sh"], "lab.wasm");
}

#[test]
fn a_new_c_lab_builds_and_runs() {
    new_build_run("c", &["./build.sh"], "lab.wasm");
}
