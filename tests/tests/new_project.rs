//! `nsw new`: a lab project outside this repository, in each language,
//! built with its own build command and run by nsw.

use std::path::Path;
use std::process::Command;

use nsw_tests::{Machine, nsw_bin, text, unique};

/// Make a project, build it as its README says, run what it built.
fn new_build_run(lang: &str, build: &[&str], wasm: &str) {
    let dir = std::env::temp_dir().join(unique(&format!("nsw-new-{lang}-")));
    let made = Command::new(nsw_bin()).args(["new", "lab", "--lang", lang, "--dir"]).arg(&dir).output().unwrap();
    assert!(made.status.success(), "{lang}: {}", text(&made));
    assert!(dir.join("wit/nsw.wit").exists() && dir.join("README.md").exists(), "{lang}");
    let built = Command::new(build[0]).args(&build[1..]).current_dir(&dir).env("CARGO_TARGET_DIR", dir.join("target")).output().unwrap();
    assert!(built.status.success(), "{lang}: the build failed: {}", text(&built));
    let wasm = dir.join(wasm);
    assert!(Path::new(&wasm).exists(), "{lang}: no {}", wasm.display());
    let machine = Machine::new("new");
    let lab = machine.lab("n");
    let out = lab.run_ok(&wasm, &["--rm"], &[]);
    assert!(nsw_tests::stdout(&out).contains("3/3 replies"), "{lang}: {}", text(&out));
    lab.assert_gone();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_rust_lab_builds_and_runs() {
    new_build_run("rust", &["cargo", "build", "--release"], "target/wasm32-wasip2/release/lab.wasm");
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
