//! The structure the code promises ARCHITECTURE.md keeps: top-level
//! modules in layers, each naming (through `crate::`) only modules of
//! the layers below it; every WIT interface in the capability registry;
//! the README's table of limits made from the policy's one table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of earlier layers
/// only (and its own); ARCHITECTURE.md explains each.
const LAYERS: &[&[&str]] = &[
    &["stop", "progress", "places", "naming", "layout", "encode", "access", "relay"],
    &["tell", "error", "shared_settings", "front"],
    &["policy", "test_hooks", "sharing", "cluster"],
    &["journal", "inspect"],
    &["backend"],
    &["teardown", "runtime"],
    &["lab"],
    &["imports"],
    &["script"],
    &["session", "build", "show"],
    &["graph", "spread"],
    &["boundary", "rootless"],
    &["commands"],
    &["cli"],
];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::NAME` (and `crate::{NAME, ...}`) in `text`, comments left out.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Top-level module → the top-level modules it names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src()).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs").to_string();
        if ["lib", "main", "bin"].contains(&first.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = deps.entry(first.clone()).or_default();
        entry.extend(crate_paths(&text).into_iter().filter(|d| *d != first));
    }
    deps
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let deps = dependencies();
    let layer_of: BTreeMap<&str, usize> = LAYERS.iter().enumerate().flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i))).collect();
    let mut wrong = Vec::new();
    for (module, uses) in &deps {
        let Some(&mine) = layer_of.get(module.as_str()) else {
            wrong.push(format!("{module} is in no layer: add it to LAYERS and ARCHITECTURE.md"));
            continue;
        };
        for used in uses {
            match layer_of.get(used.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("{module} (layer {mine}) uses {used}, which is not below it")),
                None => wrong.push(format!("{module} uses {used}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    // Also true by the layers; checked on its own so that a cycle is named.
    let deps = dependencies();
    fn visit<'a>(m: &'a str, deps: &'a BTreeMap<String, BTreeSet<String>>, path: &mut Vec<&'a str>, done: &mut BTreeSet<&'a str>) -> Option<String> {
        if let Some(at) = path.iter().position(|p| *p == m) {
            return Some(format!("{} -> {m}", path[at..].join(" -> ")));
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for d in deps.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(d, deps, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        if let Some(cycle) = visit(m, &deps, &mut Vec::new(), &mut done) {
            panic!("a cycle of modules: {cycle}");
        }
    }
}

#[test]
fn the_parser_finds_grouped_and_plain_paths() {
    let found = crate_paths("use crate::{a::b, c};\nlet x = crate::d::e(); // crate::f\n");
    assert_eq!(found, ["a", "c", "d"].iter().map(|s| s.to_string()).collect());
}

#[test]
fn architecture_names_every_top_level_module() {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md")).unwrap();
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut missing = Vec::new();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')) {
            if !text.contains(&format!("`{name}`")) {
                missing.push(name.to_string());
            }
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name {missing:?}");
}

#[test]
fn every_wit_interface_is_in_the_capability_registry() {
    let wit = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wit/nsw.wit")).unwrap();
    let interfaces: BTreeSet<String> =
        wit.lines().filter_map(|l| l.trim().strip_prefix("interface ")).map(|r| r.trim_end_matches('{').trim().to_string()).collect();
    let registry: BTreeSet<String> = nsw::policy::CAPABILITIES.iter().map(|c| c.interface.to_string()).collect();
    assert_eq!(interfaces, registry, "the WIT's interfaces and the capability registry (policy/imports.rs) differ");
    let package = wit.lines().find_map(|l| l.strip_prefix("package ")).unwrap().trim_end_matches(';');
    assert_eq!(package, nsw::policy::WIT_PACKAGE);
}

#[test]
fn the_readme_table_of_limits_is_the_policys() {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let table = nsw::policy::limits::markdown_table();
    assert!(readme.contains(&table), "README.md's table of limits is not the policy's; it should read:\n{table}");
}

#[test]
fn no_host_file_is_over_500_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > 500).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 500 lines: {long:?}");
}
