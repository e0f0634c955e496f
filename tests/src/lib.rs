//! The end-to-end test harness.
//!
//! Every test gets a throwaway "machine": a network namespace made for it,
//! in which the real `nsw` binary runs (only its network namespace is
//! entered, so `/run/netns` and `/run/nsw` are the real ones, as they are
//! for a user). The machine's state is snapshotted before and compared
//! after, and every test ends by checking that nothing leaked.
//!
//! Tests need root, the built `nsw` (`target/release/nsw`, or `NSW_BIN`)
//! and the built guests (`guests/target/wasm32-wasip2/release`, or
//! `NSW_GUESTS`); `scripts/test` builds both first.

pub mod cluster;
pub mod pbj;
pub mod registry;
pub mod user;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The repository root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

pub fn nsw_bin() -> PathBuf {
    let bin = std::env::var_os("NSW_BIN").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/release/nsw"));
    assert!(bin.exists(), "{} is missing: build it first (scripts/test does)", bin.display());
    bin
}

/// nsw built with the crash tests' hooks (`NSW_TEST_KILL_AT`), beside
/// the real one (or `NSW_TESTING_BIN`).
pub fn nsw_testing_bin() -> PathBuf {
    let bin = std::env::var_os("NSW_TESTING_BIN").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/release/nsw-testing"));
    assert!(bin.exists(), "{} is missing: build it first (scripts/build does)", bin.display());
    bin
}

/// Where nsw keeps a lab's journal.
pub fn journal_path(lab: &str) -> PathBuf {
    PathBuf::from(format!("/run/nsw/{lab}.journal"))
}

/// Where nsw keeps a lab's lock.
pub fn lock_path(lab: &str) -> PathBuf {
    PathBuf::from(format!("/run/nsw/{lab}.lock"))
}

/// A compiled guest, e.g. `guest("pbj")`.
pub fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("NSW_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("guests/target/wasm32-wasip2/release"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: build the guests first (scripts/test does)", path.display());
    path
}

/// A lab script in another language, built by scripts/build-python,
/// build-js or build-c: `lang_guest("pbj-py")`.
pub fn lang_guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("NSW_LANG_GUESTS").map(PathBuf::from).unwrap_or_else(|| workspace().join("guests/target/lang"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: build it first (scripts/build does)", path.display());
    path
}

/// A name no other test (or test run) uses: short, since interface and
/// lab names are bounded.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Run a command; panic with its output if it cannot start.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Run a command that must succeed; returns its stdout.
pub fn check(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout and stderr of a finished command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `ip` inside namespace `ns` (`ip -n NS ...`).
pub fn ip_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    check("ip", &all)
}

/// Run any command inside namespace `ns` (network namespace only).
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Output {
    let net = format!("--net=/run/netns/{ns}");
    let mut all = vec![net.as_str(), program];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

pub fn check_in_ns(ns: &str, program: &str, args: &[&str]) -> String {
    let out = in_ns(ns, program, args);
    assert!(out.status.success(), "{program} {args:?} in {ns} failed: {}", text(&out));
    stdout(&out)
}

/// Does `ping -c1` from `ns` to `target` get an answer (up to 3 tries)?
pub fn pings(ns: &str, target: &str) -> bool {
    (0..3).any(|_| in_ns(ns, "ping", &["-c1", "-W1", "-q", target]).status.success())
}

/// A throwaway network namespace that plays the machine nsw runs on.
pub struct Machine {
    pub name: String,
    /// The "outside world" namespace, if the machine has an uplink.
    pub outside: Option<String>,
    /// Labs run in this machine, taken down (if still there) when a failed
    /// test drops it, so one failure does not litter the next run.
    labs: std::sync::Mutex<Vec<String>>,
}

/// The outside world's address, from a documentation range.
pub const OUTSIDE_ADDR: &str = "203.0.113.1";
/// The machine's address on its uplink: what masquerade rewrites to.
pub const MACHINE_UPLINK_ADDR: &str = "203.0.113.2";

impl Machine {
    pub fn new(tag: &str) -> Machine {
        let name = unique(&format!("nswt-{tag}-"));
        check("ip", &["netns", "add", &name]);
        let machine = Machine { name, outside: None, labs: Default::default() };
        // IPv6 duplicate address detection changes address flags a moment
        // after a link comes up: off, so snapshots are stable.
        for key in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
            check_in_ns(&machine.name, "sysctl", &["-qw", key]);
        }
        ip_in(&machine.name, &["link", "set", "lo", "up"]);
        machine
    }

    /// A machine whose default route leads to an outside namespace at
    /// 203.0.113.1, which counts the echo requests it gets by source.
    pub fn with_outside(tag: &str) -> Machine {
        let mut machine = Machine::new(tag);
        let outside = format!("{}-out", machine.name);
        check("ip", &["netns", "add", &outside]);
        machine.outside = Some(outside.clone());
        // The machine's own interface to the world: eth0, as on a real one.
        ip_in(&machine.name, &["link", "add", "eth0", "type", "veth", "peer", "name", "wan0", "netns", &outside]);
        ip_in(&machine.name, &["address", "add", &format!("{MACHINE_UPLINK_ADDR}/24"), "dev", "eth0"]);
        ip_in(&machine.name, &["link", "set", "eth0", "up"]);
        ip_in(&machine.name, &["route", "add", "default", "via", OUTSIDE_ADDR]);
        ip_in(&outside, &["link", "set", "lo", "up"]);
        ip_in(&outside, &["address", "add", &format!("{OUTSIDE_ADDR}/24"), "dev", "wan0"]);
        ip_in(&outside, &["link", "set", "wan0", "up"]);
        // ICMP datagram sockets for root, as systemd sets it on most
        // machines: pasta (the uplink) pings with them.
        check_in_ns(&machine.name, "sysctl", &["-qw", "net.ipv4.ping_group_range=0 2147483647"]);
        check_in_ns(&outside, "nft", &["add table ip count"]);
        check_in_ns(&outside, "nft", &["add chain ip count input { type filter hook input priority 0; }"]);
        for source in [MACHINE_UPLINK_ADDR, "10.0.0.0/8", "100.64.0.0/10", "198.51.100.0/24"] {
            check_in_ns(&outside, "nft", &[&format!("add rule ip count input ip saddr {source} icmp type echo-request counter")]);
        }
        machine
    }

    /// Run the real nsw inside the machine, stopped after 120 s at most.
    pub fn nsw(&self, args: &[&str]) -> Output {
        self.nsw_env(args, &[])
    }

    /// Start nsw inside the machine without waiting for it. nsenter execs
    /// nsw in its own place, so the child's pid is nsw's.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        self.remember(args);
        let mut command = Command::new("nsenter");
        command.arg(format!("--net=/run/netns/{}", self.name)).arg(nsw_bin()).args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn nsw")
    }

    fn remember(&self, args: &[&str]) {
        if let Some(at) = args.iter().position(|a| *a == "--name") {
            if let Some(lab) = args.get(at + 1) {
                self.labs.lock().unwrap().push(lab.to_string());
            }
        }
    }

    pub fn nsw_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.nsw_bin_env(&nsw_bin(), args, env)
    }

    /// Run `nsw-testing` (nsw with the crash tests' hooks) in the machine.
    pub fn nsw_testing_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.nsw_bin_env(&nsw_testing_bin(), args, env)
    }

    fn nsw_bin_env(&self, bin: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.remember(args);
        let net = format!("--net=/run/netns/{}", self.name);
        let mut command = Command::new("timeout");
        command.args(["120", "nsenter", &net]).arg(bin).args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("running nsw")
    }

    /// Everything about the machine a lab could change.
    pub fn snapshot(&self) -> Snapshot {
        let ns = self.name.as_str();
        // Every setting forwarding switches touch, of every interface.
        let sysctl = check_in_ns(ns, "sysctl", &["-e", "net.ipv4.ip_forward", "net.ipv4.conf", "net.ipv6.conf"]);
        Snapshot {
            links: ip_in(ns, &["-d", "link", "show"]),
            addresses: ip_in(ns, &["address", "show"]),
            routes: ip_in(ns, &["route", "show", "table", "all"]) + &ip_in(ns, &["-6", "route", "show", "table", "all"]),
            rules: ip_in(ns, &["rule", "show"]),
            nft: check_in_ns(ns, "nft", &["list", "ruleset"]),
            sysctl,
        }
    }

    /// Echo requests the outside got from (the machine's address, lab
    /// addresses in 10.0.0.0/8, 100.64.0.0/10 or 198.51.100.0/24).
    pub fn outside_counts(&self) -> (u64, u64) {
        let outside = self.outside.as_deref().expect("a machine with an outside");
        let rules = check_in_ns(outside, "nft", &["list", "table", "ip", "count"]);
        let mut counts = rules.lines().filter(|l| l.contains("counter packets")).map(|l| {
            let after = l.split("counter packets ").nth(1).expect("a counter");
            after.split_whitespace().next().unwrap().parse::<u64>().expect("a number")
        });
        let machine = counts.next().expect("machine counter");
        (machine, counts.sum())
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let labs = std::mem::take(&mut *self.labs.lock().unwrap());
        for lab in labs {
            if journal_path(&lab).exists() {
                let net = format!("--net=/run/netns/{}", self.name);
                let _ = Command::new("nsenter").arg(&net).arg(nsw_bin()).args(["down", "--force", &lab]).output();
            }
        }
        let _ = run("ip", &["netns", "del", &self.name]);
        if let Some(outside) = &self.outside {
            let _ = run("ip", &["netns", "del", outside]);
        }
    }
}

/// A lab of a unique name on a machine, for a test: run it, check it, take
/// it down, and check that nothing leaked.
pub struct TestLab<'m> {
    pub machine: &'m Machine,
    pub name: String,
    pub before: Snapshot,
}

impl Machine {
    /// A new lab (not built yet) named `<tag><unique>`, with the machine's
    /// state noted for the leak check.
    pub fn lab(&self, tag: &str) -> TestLab<'_> {
        TestLab { machine: self, name: unique(tag), before: self.snapshot() }
    }
}

impl TestLab<'_> {
    /// `nsw run WASM --name LAB FLAGS... -- ARGS...`.
    pub fn run(&self, wasm: &std::path::Path, flags: &[&str], args: &[&str]) -> Output {
        let mut all = vec!["run", wasm.to_str().expect("a UTF-8 path"), "--name", self.name.as_str()];
        all.extend_from_slice(flags);
        if !args.is_empty() {
            all.push("--");
            all.extend_from_slice(args);
        }
        self.machine.nsw(&all)
    }

    /// Run it and insist that it succeeds.
    pub fn run_ok(&self, wasm: &std::path::Path, flags: &[&str], args: &[&str]) -> Output {
        let out = self.run(wasm, flags, args);
        assert!(out.status.success(), "{}", text(&out));
        out
    }

    /// `nsw down LAB`, which must succeed; then nothing may be left.
    pub fn down_and_check(&self) -> Output {
        let out = self.machine.nsw(&["down", &self.name]);
        assert!(out.status.success(), "{}", text(&out));
        self.assert_gone();
        out
    }

    /// Nothing of the lab is left, and the machine is as it was.
    pub fn assert_gone(&self) {
        assert_no_leak(&self.name, self.machine, &self.before);
    }
}

/// The state of a machine namespace, as `ip` and `nft` print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub links: String,
    pub addresses: String,
    pub routes: String,
    pub rules: String,
    pub nft: String,
    pub sysctl: String,
}

/// Processes whose command line mentions `needle` (e.g. a lab's pasta,
/// which names the lab's namespace).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// Processes with an argument that names lab `lab`: the lab's name itself
/// (`nsw run ... --name LAB`), or a path to one of its namespaces
/// (`/run/netns/LAB`, `/run/netns/LAB-NODE`, as pasta has). Not a longer
/// name that starts with it (another test's lab).
pub fn processes_naming_lab(lab: &str) -> Vec<String> {
    let (own, node) = (format!("/{lab}"), format!("/{lab}-"));
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.split('\0').any(|arg| arg == lab || arg.ends_with(&own) || arg.contains(&node)) {
                found.push(cmdline.replace('\0', " "));
            }
        }
    }
    found
}

/// Named namespaces under /run/netns whose name starts with `prefix`.
pub fn named_netns(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(prefix)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// After a lab is gone: no namespace of it, no journal or lock, and the
/// machine exactly as it was.
pub fn assert_no_leak(lab: &str, machine: &Machine, before: &Snapshot) {
    let left = named_netns(lab);
    assert!(left.iter().all(|n| n != lab && !n.starts_with(&format!("{lab}-"))), "namespaces of lab {lab} leaked: {left:?}");
    for file in [journal_path(lab), lock_path(lab)] {
        assert!(!file.exists(), "{} leaked", file.display());
    }
    // Nor root's records of its boundary and ids (a range left recorded is
    // never given to another lab).
    for record in ["userns", "ids", "ids-new"] {
        let file = format!("/run/nsw/{lab}.{record}");
        assert!(!std::path::Path::new(&file).exists(), "{file} leaked");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ours = format!("/run/netns/{lab}");
    let leaked: Vec<&str> = mounts
        .lines()
        .filter(|l| l.split_whitespace().nth(4).is_some_and(|m| m == ours || m.starts_with(&format!("{ours}-"))))
        .collect();
    assert!(leaked.is_empty(), "bind mounts of lab {lab} leaked: {leaked:?}");
    // No hold on the machine's shared settings, no registry, no lock.
    if let Ok(meta) = std::fs::metadata(format!("/run/netns/{}", machine.name)) {
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        for file in [format!("/run/nsw/shared/{inode}.json"), format!("/run/nsw/shared/{inode}.lock")] {
            assert!(!std::path::Path::new(&file).exists(), "{file} leaked");
        }
    }
    // No output of the lab's programs.
    assert!(!std::path::Path::new(&format!("/run/nsw/{lab}.d")).exists(), "/run/nsw/{lab}.d leaked");
    // No process that names it: the nsw that ran it (holding its
    // services), its pasta, a program given its name.
    // (`nsw logs -f` of it ends by itself within moments.)
    let waited = std::time::Instant::now();
    let mut named = processes_naming_lab(lab);
    while !named.is_empty() && waited.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        named = processes_naming_lab(lab);
    }
    assert!(named.is_empty(), "processes of lab {lab} run on: {named:?}");
    // No cgroup of its programs.
    if let Some(dir) = lab_cgroup(lab) {
        assert!(!dir.exists(), "{} leaked", dir.display());
    }
    let after = machine.snapshot();
    assert_eq!(before.links, after.links, "the machine's links changed");
    assert_eq!(before.addresses, after.addresses, "the machine's addresses changed");
    assert_eq!(before.routes, after.routes, "the machine's routes changed");
    assert_eq!(before.rules, after.rules, "the machine's rules changed");
    assert_eq!(before.nft, after.nft, "the machine's nftables ruleset changed");
    assert_eq!(before.sysctl, after.sysctl, "the machine's sysctls changed");
}

/// Where lab `lab`'s pids cgroup is (or would be): `nsw/LAB` in the
/// machine's cgroup v1 pids hierarchy, if it has one.
pub fn lab_cgroup(lab: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (mine, theirs) = line.split_once(" - ")?;
        let theirs: Vec<&str> = theirs.split(' ').collect();
        let pids = theirs.first() == Some(&"cgroup") && theirs.get(2)?.split(',').any(|o| o == "pids");
        let point = mine.split(' ').nth(4)?;
        pids.then(|| PathBuf::from(point).join("nsw").join(lab))
    })
}

/// The pid the `spawner` guest says its `sleep` has, from what it printed.
pub fn sleeper_pid(printed: &str) -> u32 {
    printed.lines().find_map(|l| l.split("sleep runs as pid ").nth(1)).and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("no pid in {printed}"))
}

/// Whether process `pid` runs (exists and is not a zombie).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}
