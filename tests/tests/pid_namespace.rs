//! A PID namespace per lab, whose init is nsw's: a node's programs (and
//! `nsw exec`) see the lab's processes only, cannot name another lab's or
//! the machine's to signal them, and everything the lab started ends with
//! its init at `down`, in one grace period, as root and as an ordinary
//! user (whose labs share one uid, so only the namespace keeps them apart).

use std::time::{Duration, Instant};

use nsw_tests::user::User;
use nsw_tests::{Machine, guest, processes_mentioning, sleeper_pid, stdout, text};

/// What `kill -0 PID` says from node `a` of a lab, run by `nsw` (as root,
/// or as a user through `user_nsw`).
const KILL_PROBE: &str = "kill -0 \"$0\" 2>/dev/null && echo reached || echo unreachable";

#[test]
fn a_labs_programs_see_only_their_lab_and_cannot_name_another_labs() {
    let machine = Machine::new("pidns");
    let (one, two) = (machine.lab("pa"), machine.lab("pb"));
    let first = one.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let second = two.run_ok(&guest("spawner"), &["--allow", "exec=sleep"], &[]);
    let theirs = sleeper_pid(&stdout(&second));
    assert!(sleeper_pid(&stdout(&first)) > 0);
    // The node's process list is its lab's: the init as pid 1, the sleep,
    // and ps itself; nothing of the machine's, nor of the other lab's.
    let ps = machine.nsw(&["exec", &one.name, "a", "--", "ps", "-e", "-o", "pid=,args="]);
    assert!(ps.status.success(), "{}", text(&ps));
    let listed: Vec<String> = stdout(&ps).lines().map(|l| l.trim().to_string()).collect();
    assert!(listed.iter().any(|l| l.starts_with("1 ") && l.contains("nsw-init")), "{listed:?}");
    assert!(listed.iter().any(|l| l.ends_with("sleep 1000")), "{listed:?}");
    assert!(listed.len() <= 4, "the node sees more than its lab: {listed:?}");
    // The other lab's sleep runs, but has no pid here to signal.
    assert!(nsw_tests::running(theirs));
    let kill = machine.nsw(&["exec", &one.name, "a", "--", "sh", "-c", KILL_PROBE, &theirs.to_string()]);
    assert_eq!(stdout(&kill).trim(), "unreachable", "{}", text(&kill));
    // Its own, by the pid the node sees, it reaches.
    let own = machine.nsw(&["exec", &one.name, "a", "--", "sh", "-c", "kill -0 $(pgrep -x sleep) && echo reached"]);
    assert_eq!(stdout(&own).trim(), "reached", "{}", text(&own));
    one.down_and_check();
    assert!(nsw_tests::running(theirs), "down of one lab ended the other's program");
    two.down_and_check();
}

#[test]
fn an_ordinary_users_two_labs_cannot_signal_each_other_and_nothing_escapes_down() {
    let machine = Machine::new("upidns");
    let user = User::new();
    let spawner = user.file(&guest("spawner"));
    let first = user.nsw(&machine, &["run", spawner.to_str().unwrap(), "--name", "ua", "--allow", "exec"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = user.nsw(&machine, &["run", spawner.to_str().unwrap(), "--name", "ub", "--allow", "exec"]);
    assert!(second.status.success(), "{}", text(&second));
    // Both labs' programs are the user's own uid: only their PID
    // namespaces keep one lab's from the other's.
    let theirs = sleeper_pid(&stdout(&second));
    let kill = user.nsw(&machine, &["exec", "ua", "a", "--", "sh", "-c", KILL_PROBE, &theirs.to_string()]);
    assert_eq!(stdout(&kill).trim(), "unreachable", "{}", text(&kill));
    assert!(nsw_tests::running(theirs));

    // What the attack tried: a fork from a SIGTERM trap, a program in new
    // user and network namespaces, ten that ignore SIGTERM.
    let outputs = user.file(&guest("hostile_outputs"));
    let mut args = vec!["run", outputs.to_str().unwrap(), "--name", "uc", "--allow", "exec", "--", "spawn"];
    let mut commands = vec!["trap 'sleep 3013 &' TERM; while :; do sleep 1; done".to_string(), "exec unshare -rn sleep 3143".to_string()];
    commands.extend((0..10).map(|_| "trap '' TERM; sleep 3273".to_string()));
    args.extend(commands.iter().map(String::as_str));
    let out = user.nsw(&machine, &args);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_mentioning("sleep 3143").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_mentioning("sleep 3143").is_empty(), "unshare did not start");
    let started = Instant::now();
    let down = user.nsw(&machine, &["down", "uc"]);
    let took = started.elapsed();
    assert!(down.status.success(), "{}", text(&down));
    for left in ["sleep 3013", "sleep 3143", "sleep 3273"] {
        assert!(processes_mentioning(left).is_empty(), "{left} escaped down: {:?}", processes_mentioning(left));
    }
    assert!(took < Duration::from_secs(5), "down took {took:?}: a grace period per process?");
    assert!(nsw_tests::running(theirs), "down of one lab ended another's program");
    user.down_all(&machine);
}
