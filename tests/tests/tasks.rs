//! A lab's programs share a pids cgroup of their own (`--max-tasks`): a
//! fork bomb in a node stops at the limit, and `down` ends everything in
//! the cgroup, whatever namespaces a program made, host-net labs too.
//! An ordinary user's labs, which have no cgroup, bound it by the limit on
//! a uid's tasks.

use std::path::Path;
use std::time::{Duration, Instant};

use nsw_tests::user::User;
use nsw_tests::{Machine, guest, lab_cgroup, processes_mentioning, stdout, text};

/// A number from a file of the lab's cgroup (`pids.current`), or the
/// count after `max ` in `pids.events`.
fn read_count(dir: &Path, file: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()));
    let text = text.lines().find_map(|l| l.strip_prefix("max ")).unwrap_or(&text);
    text.trim().parse().unwrap_or_else(|_| panic!("{}/{file} holds {text:?}", dir.display()))
}

/// The machine has the cgroup v1 pids hierarchy the test machines have;
/// elsewhere README says the limit is not enforced, and these tests say
/// why they do not apply rather than pass.
fn cgroup_of(lab: &str) -> std::path::PathBuf {
    lab_cgroup(lab).expect("this machine has no cgroup v1 pids hierarchy: nsw's --max-tasks needs one (see README)")
}

#[test]
fn a_fork_bomb_in_a_node_stops_at_the_labs_limit_and_down_ends_it() {
    let machine = Machine::new("bomb");
    let lab = machine.lab("fb");
    let dir = cgroup_of(&lab.name);
    // One shell starting sleeps until forks fail, one fork bomb.
    let counted = "for i in $(seq 300); do sleep 4411 & done 2>/dev/null; wait";
    let bomb = "b() { b | b & }; b";
    let out = lab.run_ok(&guest("hostile_outputs"), &["--allow", "exec", "--max-tasks", "64"], &["spawn", counted, bomb]);
    assert_eq!(stdout(&out).matches("spawned pid").count(), 2, "{}", text(&out));
    // The limit holds while they keep trying.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut most = 0;
    while Instant::now() < deadline {
        most = most.max(read_count(&dir, "pids.current"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(most <= 64, "the lab's programs had {most} tasks, over --max-tasks 64");
    assert!(read_count(&dir, "pids.events") > 0, "no fork was refused: the limit never bit");
    let sleeps = processes_mentioning("sleep 4411").len();
    assert!(sleeps > 0 && sleeps < 64, "{sleeps} sleeps run: the limit is 64 tasks for all of the lab's programs");
    // `nsw show` says so.
    let show = machine.nsw(&["show", &lab.name, "--json"]);
    assert!(show.status.success(), "{}", text(&show));
    let view: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(view["tasks"]["max"], 64, "{view}");
    assert!(view["tasks"]["refused"].as_u64().unwrap() > 0, "{view}");
    // Down ends all of it, the bomb too, and the cgroup.
    let down = machine.nsw(&["down", &lab.name]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(processes_mentioning("sleep 4411").is_empty(), "sleeps survived down");
    assert!(!dir.exists(), "{} survived down", dir.display());
    lab.assert_gone();
}

/// On the privileged path (host-net: programs run as the machine's
/// `nobody`, with no ids of the lab's own) a program that leaves the
/// lab's namespaces is still the lab's: it stays in the lab's cgroup.
#[test]
fn a_host_net_labs_program_in_namespaces_of_its_own_is_ended_by_down() {
    let machine = Machine::new("hnescape");
    let lab = machine.lab("hn");
    let out = lab.run_ok(
        &guest("hostile_outputs"),
        &["--allow", "exec", "--allow", "host-net"],
        &["spawn", "exec unshare -rn sleep 5813", "trap 'sleep 5827 &' TERM; while :; do sleep 1; done"],
    );
    assert_eq!(stdout(&out).matches("spawned pid").count(), 2, "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_mentioning("sleep 5813").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_mentioning("sleep 5813").is_empty(), "unshare did not start");
    let dir = cgroup_of(&lab.name);
    assert!(read_count(&dir, "pids.current") >= 2, "the programs are not in the lab's cgroup");
    let down = machine.nsw(&["down", &lab.name]);
    assert!(down.status.success(), "{}", text(&down));
    for left in ["sleep 5813", "sleep 5827"] {
        assert!(processes_mentioning(left).is_empty(), "{left} escaped down: {:?}", processes_mentioning(left));
    }
    lab.assert_gone();
}

/// The lab's programs cannot leave the cgroup nor lift its limit: as
/// their uid on the machine (the lab's root), even with the machine's
/// cgroup filesystem in view (a node sees a /sys of its own, without it),
/// only the lab's `cgroup.procs` can be written, which lets a process in.
#[test]
fn a_labs_programs_cannot_leave_their_cgroup_nor_raise_its_limit() {
    let machine = Machine::new("cgescape");
    let lab = machine.lab("ce");
    let dir = cgroup_of(&lab.name);
    let out = lab.run_ok(&guest("hostile_outputs"), &["--allow", "exec"], &["spawn", "exec sleep 6007"]);
    let pid: u32 = stdout(&out).lines().find_map(|l| l.rsplit_once("spawned pid ")).and_then(|(_, p)| p.trim().parse().ok()).expect("a pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroups.contains(&format!(":pids:/nsw/{}\n", lab.name)), "sleep is not in the lab's cgroup: {cgroups}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    assert_ne!(uid, "0", "the lab's program is the machine's root");
    let root = dir.parent().unwrap().parent().unwrap();
    let attempt = |command: String| {
        let out = std::process::Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into(), "sh".into(), "-c".into(), command.clone()])
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    };
    for escape in [
        format!("echo $$ > {}/cgroup.procs", root.display()),
        format!("echo 100000 > {}/pids.max", dir.display()),
        format!("mkdir {}/more", dir.display()),
        format!("echo {pid} > {}/cgroup.procs", root.display()),
    ] {
        let (done, said) = attempt(escape.clone());
        assert!(!done, "the lab's uid could: {escape}: {said}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap().trim(), "4096");
    // What it may do: move itself in (which is how a program enters).
    let (done, said) = attempt(format!("echo $$ > {}/cgroup.procs && cat /proc/self/cgroup", dir.display()));
    assert!(done && said.contains(&format!(":pids:/nsw/{}", lab.name)), "{said}");
    lab.down_and_check();
}

/// `nsw exec` joins the lab's cgroup too: what a command run there starts
/// counts against the lab's limit and ends with `down`, even run as the
/// machine's root in a host-net lab and gone into namespaces of its own.
#[test]
fn what_nsw_exec_starts_is_the_labs_and_ends_with_down() {
    let machine = Machine::new("execcg");
    let lab = machine.lab("xc");
    lab.run_ok(&guest("hostile_outputs"), &["--allow", "exec", "--allow", "host-net"], &["spawn", "exec sleep 7013"]);
    let exec = machine.nsw(&["exec", &lab.name, "a", "--", "sh", "-c", "cat /proc/self/cgroup; setsid unshare -n sleep 7027 > /dev/null 2>&1 < /dev/null &"]);
    assert!(exec.status.success(), "{}", text(&exec));
    assert!(stdout(&exec).contains(&format!(":pids:/nsw/{}\n", lab.name)), "nsw exec is not in the lab's cgroup: {}", text(&exec));
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_mentioning("sleep 7027").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_mentioning("sleep 7027").is_empty(), "unshare did not start");
    lab.down_and_check();
    for left in ["sleep 7013", "sleep 7027"] {
        assert!(processes_mentioning(left).is_empty(), "{left} escaped down");
    }
}

#[test]
fn a_fork_bomb_in_an_ordinary_users_lab_stops_at_its_limit_too() {
    let machine = Machine::new("ubomb");
    let user = User::new();
    let outputs = user.file(&guest("hostile_outputs"));
    let counted = "for i in $(seq 300); do sleep 4419 & done 2>/dev/null; wait";
    let bomb = "b() { b | b & }; b";
    let out = user.nsw(&machine, &["run", outputs.to_str().unwrap(), "--name", "ub", "--allow", "exec", "--max-tasks", "64", "--", "spawn", counted, bomb]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).matches("spawned pid").count(), 2, "{}", text(&out));
    // The user's processes (the keeper's and nsw's among them, which the
    // limit counts but does not bind) stay near the limit while the bomb
    // keeps trying.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut most = 0;
    while Instant::now() < deadline {
        most = most.max(user.processes().len());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(most <= 70, "the user's lab had {most} processes, over --max-tasks 64");
    let sleeps = processes_mentioning("sleep 4419").len();
    assert!(sleeps > 0 && sleeps < 64, "{sleeps} sleeps run: the limit is 64 tasks for the lab's programs");
    // Down ends all of it, and nothing of the user's is left.
    user.down_all(&machine);
    assert!(processes_mentioning("sleep 4419").is_empty(), "sleeps survived down");
}
