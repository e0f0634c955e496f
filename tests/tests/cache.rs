//! The compiled-component cache cannot be used to inject code: nsw uses it
//! only when the directory and the file are root's and writable by no one
//! else, and says why when it does not.

use std::os::unix::fs::PermissionsExt;

use nsw_tests::{Machine, assert_no_leak, guest, stderr, text, unique};

fn run_with_cache(cache: &std::path::Path) -> std::process::Output {
    let machine = Machine::new("cache");
    let before = machine.snapshot();
    let lab = unique("c");
    let out = machine.nsw_env(
        &["-v", "run", "--rm", guest("two_hosts").to_str().unwrap(), "--name", &lab],
        &[("NSW_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert!(out.status.success(), "the lab must still run: {}", text(&out));
    assert_no_leak(&lab, &machine, &before);
    out
}

fn cwasm_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect()
}

/// Where a contained lab run by root keeps what it compiled: apart, behind
/// the privilege boundary.
fn contained(cache: &std::path::Path) -> std::path::PathBuf {
    cache.join("contained")
}

#[test]
fn a_cache_writable_by_others_is_not_used() {
    let cache = std::env::temp_dir().join(unique("nsw-cache-open-"));
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_with_cache(&cache);
    assert!(stderr(&out).contains("not using the compiled cache") && stderr(&out).contains("is writable by others (mode 777)"), "{}", text(&out));
    assert!(stderr(&out).contains("compiled now"));
    assert!(cwasm_files(&cache).is_empty() && cwasm_files(&contained(&cache)).is_empty(), "it wrote into an untrusted cache");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_cached_file_owned_by_someone_else_is_not_loaded() {
    let cache = std::env::temp_dir().join(unique("nsw-cache-foreign-"));
    run_with_cache(&cache);
    // Compiled behind the privilege boundary: kept apart from what
    // privileged runs load.
    assert!(cwasm_files(&cache).is_empty(), "a contained run wrote where privileged runs load from");
    let files = cwasm_files(&contained(&cache));
    assert_eq!(files.len(), 1);
    // Hand the compiled file to another user: it could have rewritten it.
    std::os::unix::fs::chown(&files[0], Some(65534), Some(65534)).unwrap();
    let out = run_with_cache(&cache);
    assert!(stderr(&out).contains("is owned by uid 65534, not by uid 0"), "{}", text(&out));
    assert!(stderr(&out).contains("compiled now"), "{}", text(&out));
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_cache_directory_that_is_a_symlink_is_not_used() {
    let real = std::env::temp_dir().join(unique("nsw-cache-real-"));
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = std::env::temp_dir().join(unique("nsw-cache-link-"));
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = run_with_cache(&link);
    assert!(stderr(&out).contains("is not a plain directory"), "{}", text(&out));
    assert!(cwasm_files(&real).is_empty() && cwasm_files(&contained(&real)).is_empty());
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir_all(&real).unwrap();
}

#[test]
fn a_big_script_says_it_compiles_once() {
    let cache = std::env::temp_dir().join(unique("nsw-cache-big-"));
    let machine = Machine::new("cache");
    let python = nsw_tests::lang_guest("two_hosts-py");
    let env = [("NSW_CACHE_DIR", cache.to_str().unwrap())];
    let says = "once: later runs load it from the cache)";
    for first in [true, false] {
        let lab = unique("c");
        let out = machine.nsw_env(&["run", "--rm", python.to_str().unwrap(), "--name", &lab], &env);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(stderr(&out).contains(says), first, "{}", text(&out));
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

fn run_in_cache(machine: &Machine, cache: &std::path::Path, wasm: &std::path::Path, flags: &[&str], args: &[&str]) -> std::process::Output {
    let lab = unique("c");
    let mut all = vec!["-v", "run", "--rm", wasm.to_str().unwrap(), "--name", &lab];
    all.extend_from_slice(flags);
    if !args.is_empty() {
        all.push("--");
        all.extend_from_slice(args);
    }
    let out = machine.nsw_env(&all, &[("NSW_CACHE_DIR", cache.to_str().unwrap())]);
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn bytes_of(files: &[std::path::PathBuf]) -> u64 {
    files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum()
}

/// The cache has a size: past `--max-cache` the least recently used
/// components go; and a run adds at most `--max-cache-per-run`.
#[test]
fn the_cache_stays_within_its_size_and_evicts_the_least_recently_used() {
    let cache = std::env::temp_dir().join(unique("nsw-cache-cap-"));
    let machine = Machine::new("cache");
    // Six scripts of a few hundred KiB each compiled: more than 1 MiB.
    let scripts: [(&str, &[&str]); 6] =
        [("noop", &[]), ("two_hosts", &[]), ("pbj", &[]), ("linear", &["2"]), ("star", &["2"]), ("tree", &["2", "2"])];
    for (name, args) in scripts {
        run_in_cache(&machine, &cache, &guest(name), &["--max-cache", "1"], args);
        // Modification times count in seconds here: one a second.
        std::thread::sleep(std::time::Duration::from_millis(1050));
    }
    let kept = cwasm_files(&contained(&cache));
    assert!(bytes_of(&kept) <= 1 << 20, "{} bytes in a cache of 1 MiB", bytes_of(&kept));
    assert!(kept.len() < scripts.len(), "nothing was evicted: {kept:?}");
    // The last one used stayed; the first one used went.
    let (name, args) = scripts[5];
    let last = run_in_cache(&machine, &cache, &guest(name), &["--max-cache", "1"], args);
    assert!(stderr(&last).contains("from the compiled cache"), "{}", text(&last));
    let (name, args) = scripts[0];
    let first = run_in_cache(&machine, &cache, &guest(name), &["--max-cache", "1"], args);
    assert!(stderr(&first).contains("compiled now"), "{}", text(&first));
    // A run allowed to add nothing adds nothing (and still runs).
    let before = cwasm_files(&contained(&cache)).len();
    let fresh = run_in_cache(&machine, &cache, &guest("misuse"), &["--max-cache-per-run", "0"], &["ok"]);
    assert!(stderr(&fresh).contains("--max-cache-per-run"), "{}", text(&fresh));
    assert!(cwasm_files(&contained(&cache)).len() <= before);
    std::fs::remove_dir_all(&cache).unwrap();
}
