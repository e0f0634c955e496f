//! The privilege boundary under the Wasm sandbox (issue 14, part 4): root's
//! contained labs are built from a user namespace of their own, as an
//! unprivileged uid on the machine. Code that got out of wasmtime into
//! nsw's process can touch nothing of the machine, and a journal forged
//! from there cannot turn root's `nsw down` against it.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use nsw_tests::{Machine, check, guest, ip_in, pings, running, sleeper_pid, stderr, text, unique};

/// The user namespace (inode) that owns the namespace at `/run/netns/NAME`.
fn owner_of_netns(name: &str) -> u64 {
    let file = fs::File::open(format!("/run/netns/{name}")).expect("a namespace mount");
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    // SAFETY: the ioctl takes no argument and returns a new descriptor.
    let fd = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_USERNS as _) };
    assert!(fd >= 0, "NS_GET_USERNS on {name}: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just made this descriptor for us.
    let owner = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    owner.metadata().unwrap().ino()
}

fn my_user_ns() -> u64 {
    fs::metadata("/proc/self/ns/user").unwrap().ino()
}

#[test]
fn a_contained_lab_of_root_is_built_in_a_user_namespace_of_its_own() {
    let machine = Machine::new("bnd");
    let lab = machine.lab("b");
    lab.run_ok(&guest("pbj"), &[], &[]);
    let marker = fs::read_to_string(format!("/run/nsw/{}.userns", lab.name)).expect("the boundary is recorded beside the journal");
    let recorded: u64 = marker.trim().parse().unwrap();
    assert_ne!(recorded, my_user_ns(), "the lab's user namespace is the machine's");
    for netns in [lab.name.clone(), format!("{}-pb", lab.name), format!("{}-jelly", lab.name)] {
        assert_eq!(owner_of_netns(&netns), recorded, "{netns} is not owned by the lab's user namespace");
    }
    // Still where `ip netns` and root's tools look, and working.
    assert!(pings(&format!("{}-pb", lab.name), "10.0.0.11"), "pb cannot reach jelly");
    let exec = machine.nsw(&["exec", &lab.name, "jelly", "--", "ip", "-br", "address"]);
    assert!(exec.status.success() && text(&exec).contains("10.0.0.11"), "{}", text(&exec));
    lab.down_and_check();
    assert!(!std::path::Path::new(&format!("/run/nsw/{}.userns", lab.name)).exists(), "the record of the boundary is left");
}

/// What code escaped from the guest into nsw's process would try.
const ESCAPE: &str = "ip link add nswesc0 type veth peer name nswesc1; echo link=$?; \
    touch /run/nsw/nswesc; echo file=$?; \
    ip netns add nswesc; echo netns=$?; \
    cat /etc/shadow > /dev/null; echo shadow=$?; \
    kill -0 1; echo signal=$?; \
    sysctl -qw net.ipv4.ip_forward=1; echo sysctl=$?";

#[test]
fn code_that_escaped_the_guest_can_touch_nothing_of_the_machine() {
    let machine = Machine::new("esc");
    let before = machine.snapshot();
    let lab = unique("e");
    let pbj = guest("pbj");
    let out = machine.nsw_testing_env(&["run", pbj.to_str().unwrap(), "--name", &lab, "--rm"], &[("NSW_TEST_ESCAPE", ESCAPE)]);
    assert!(out.status.success(), "{}", text(&out));
    let said = stderr(&out);
    for attempt in ["link", "file", "netns", "shadow", "signal", "sysctl"] {
        let line = said.lines().find(|l| l.starts_with(&format!("escape: {attempt}="))).unwrap_or_else(|| panic!("no {attempt} attempt: {said}"));
        assert_ne!(line, format!("escape: {attempt}=0"), "{attempt} succeeded from behind the boundary:\n{said}");
    }
    assert!(!ip_in(&machine.name, &["link", "show"]).contains("nswesc0"), "a link was made in the machine's namespace");
    assert!(!std::path::Path::new("/run/nsw/nswesc").exists() && !std::path::Path::new("/run/netns/nswesc").exists());
    nsw_tests::assert_no_leak(&lab, &machine, &before);

    // The check can fail: without the boundary the same code makes its link.
    let open = machine.nsw_testing_env(
        &["run", pbj.to_str().unwrap(), "--name", &lab, "--rm"],
        &[("NSW_TEST_ESCAPE", "ip link add nswesc0 type veth peer name nswesc1; echo link=$?"), ("NSW_NO_BOUNDARY", "1")],
    );
    assert!(stderr(&open).contains("escape: link=0"), "{}", text(&open));
    ip_in(&machine.name, &["link", "del", "nswesc0"]);
}

/// A process's start time, as /proc/PID/stat has it (field 22).
fn start_time(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn a_journal_forged_from_behind_the_boundary_cannot_turn_down_against_the_machine() {
    let machine = Machine::new("forge");
    let lab = machine.lab("f");
    lab.run_ok(&guest("pbj"), &[], &[]);
    // Things of the machine's, which the journal will claim as the lab's.
    ip_in(&machine.name, &["link", "add", "victim0", "type", "veth", "peer", "name", "victim1"]);
    let shown = ip_in(&machine.name, &["-o", "link", "show", "victim0"]);
    let index: u64 = shown.split(':').next().unwrap().trim().parse().unwrap();
    let mut sleeper = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    let pid = sleeper.id();
    // A namespace named like the lab's but not made by it, and one not
    // named like it at all.
    let lookalike = format!("{}-fake", lab.name);
    let other = unique("nswt-other");
    check("ip", &["netns", "add", &lookalike]);
    check("ip", &["netns", "add", &other]);
    let inode = |name: &str| fs::metadata(format!("/run/netns/{name}")).unwrap().ino();
    let forged = [
        format!(r#"{{"op":"create","id":9000,"object":{{"type":"link","netns":"machine","name":"victim0","kind":"veth"}},"ident":{index}}}"#),
        format!(r#"{{"op":"created","id":9000,"ident":{index}}}"#),
        r#"{"op":"create","id":9001,"object":{"type":"process","netns":"machine","program":"sleep"}}"#.to_string(),
        format!(r#"{{"op":"created","id":9001,"ident":{pid},"since":{}}}"#, start_time(pid)),
        format!(r#"{{"op":"create","id":9002,"object":{{"type":"netns","name":"{lookalike}","node":"fake"}}}}"#),
        format!(r#"{{"op":"created","id":9002,"ident":{}}}"#, inode(&lookalike)),
        format!(r#"{{"op":"create","id":9003,"object":{{"type":"netns","name":"{other}","node":"other"}}}}"#),
        format!(r#"{{"op":"created","id":9003,"ident":{}}}"#, inode(&other)),
        r#"{"op":"create","id":9004,"object":{"type":"shared-setting","key":"net.ipv4.ip_forward"}}"#.to_string(),
        r#"{"op":"created","id":9004}"#.to_string(),
    ];
    let journal = nsw_tests::journal_path(&lab.name);
    let mut text_now = fs::read_to_string(&journal).unwrap();
    for line in &forged {
        text_now.push_str(line);
        text_now.push('\n');
    }
    fs::write(&journal, text_now).unwrap();

    // And one the lab's side could have had mounted without a word in its
    // journal: made inside the lab's user namespace, mounted by root.
    let ghost = format!("{}-ghost", lab.name);
    let userns = fs::File::open(format!("/run/netns/{}", lab.name)).unwrap();
    // SAFETY: the ioctl takes no argument and returns a new descriptor.
    let userns_fd = unsafe { libc::ioctl(userns.as_raw_fd(), 0xb701 as _) };
    assert!(userns_fd >= 0);
    let mut inside = std::process::Command::new("nsenter")
        // (The descriptor is close-on-exec: named through this process.)
        .arg(format!("--user=/proc/{}/fd/{userns_fd}", std::process::id()))
        .args(["unshare", "--net", "sleep", "30"])
        .spawn()
        .unwrap();
    let ns = format!("/proc/{}/ns/net", inside.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mine = fs::metadata("/proc/self/ns/net").unwrap().ino();
    while fs::metadata(&ns).map(|m| m.ino()).unwrap_or(mine) == mine {
        assert!(std::time::Instant::now() < deadline && inside.try_wait().unwrap().is_none(), "unshare --net never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    fs::File::create(format!("/run/netns/{ghost}")).unwrap();
    check("mount", &["--bind", &ns, &format!("/run/netns/{ghost}")]);
    let _ = inside.kill();
    let _ = inside.wait();
    // SAFETY: closing the descriptor the ioctl made.
    unsafe { libc::close(userns_fd) };
    assert_eq!(owner_of_netns(&ghost), owner_of_netns(&lab.name));
    // Root's `nsw link` does not act on a namespace outside the boundary.
    let link = machine.nsw(&["link", &lab.name, "fake:eth0", "--down"]);
    assert!(!link.status.success() && stderr(&link).contains("is not inside it"), "{}", text(&link));
    let down = machine.nsw(&["down", &lab.name]);
    let survived = (
        ip_in(&machine.name, &["link", "show"]).contains("victim0"),
        sleeper.try_wait().unwrap().is_none(),
        std::path::Path::new(&format!("/run/netns/{lookalike}")).exists(),
        std::path::Path::new(&format!("/run/netns/{other}")).exists(),
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    check("ip", &["netns", "del", &lookalike]);
    check("ip", &["netns", "del", &other]);
    ip_in(&machine.name, &["link", "del", "victim0"]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(survived, (true, true, true, true), "down removed what the forged journal claimed (link, process, lookalike, other):\n{}", text(&down));
    assert!(stderr(&down).contains("left alone"), "{}", text(&down));
    assert!(!std::path::Path::new(&format!("/run/netns/{ghost}")).exists(), "the lab's own namespace, never journaled, is left:\n{}", text(&down));
    lab.assert_gone();
}


/// While a run builds a lab behind the boundary, the lab and its ids are
/// that run's alone, from before its lab's side exists: another run of the
/// name (on either path) and `nsw down` of it are refused, and none of them
/// touches the first run's program or its record of ids.
#[test]
fn a_lab_being_built_is_its_runs_alone() {
    let machine = Machine::new("busy");
    let lab = machine.lab("bz");
    let file = guest("spawner");
    let mut first = machine.spawn(&["run", file.to_str().unwrap(), "--name", &lab.name, "--allow", "exec=sleep", "--", "hang"], &[]);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(first.stdout.take().unwrap()));
    let pid = sleeper_pid(&lines.next().expect("the script said nothing").unwrap());
    let record = format!("/run/nsw/{}.ids", lab.name);
    let ids = fs::read_to_string(&record).expect("the lab's record of ids");
    for flags in [&["--allow", "exec=sleep"][..], &["--allow", "exec=sleep", "--exec-user", "root"][..]] {
        let second = lab.run(&file, flags, &[]);
        assert!(!second.status.success() && stderr(&second).contains("is busy"), "{flags:?}: {}", text(&second));
    }
    // `down` waits for the run to end.
    let mut down = machine.spawn(&["down", &lab.name], &[]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(down.try_wait().unwrap().is_none(), "down did not wait for the run");
    assert!(running(pid), "the first run's program was stopped");
    assert_eq!(fs::read_to_string(&record).ok().as_deref(), Some(ids.as_str()), "the record of ids changed");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(!first.wait().unwrap().success(), "a stopped run succeeded");
    assert!(!running(pid), "the program outlived its lab");
    assert!(down.wait().unwrap().success(), "down failed once the run was over");
    lab.assert_gone();
}

/// A program that stops nsw's side of the lab (its programs share its ids)
/// holds the run only until the user's signal, which goes on to it.
#[test]
fn a_program_that_stops_nsw_does_not_hold_the_run() {
    let machine = Machine::new("stop");
    let lab = machine.lab("st");
    let file = guest("hostile_outputs");
    let mut run = machine.spawn(&["run", file.to_str().unwrap(), "--name", &lab.name, "--rm", "--allow", "exec", "--", "run", "sh", "-c", "kill -STOP $PPID"], &[]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(run.try_wait().unwrap().is_none(), "the run ended: the program did not stop it, the test proves nothing");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while run.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the run still hangs 20 s after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    lab.assert_gone();
}

/// `--exec-user` that names nobody, or without `--allow exec`, is an
/// error before anything is built: never a way onto the privileged path.
#[test]
fn a_wrong_exec_user_is_refused_before_anything_is_built() {
    let machine = Machine::new("xu");
    let lab = machine.lab("xu");
    let typo = lab.run(&guest("spawner"), &["--allow", "exec=sleep", "--exec-user", "rooot"], &[]);
    assert_eq!(typo.status.code(), Some(2), "{}", text(&typo));
    assert!(stderr(&typo).contains("there is no user \"rooot\""), "{}", text(&typo));
    let no_exec = lab.run(&guest("noop"), &["--exec-user", "root"], &[]);
    assert_eq!(no_exec.status.code(), Some(2), "{}", text(&no_exec));
    assert!(stderr(&no_exec).contains("without --allow exec"), "{}", text(&no_exec));
    lab.assert_gone();
    // A file root cannot write, after the lab's lock and ids are taken and
    // before the split: refused, and neither is left taken.
    let noop = guest("noop");
    let unwritable = machine.nsw(&["test", noop.to_str().unwrap(), "--name", &lab.name, "--junit", "/nonexistent/report.xml"]);
    assert_ne!(unwritable.status.code(), Some(0), "{}", text(&unwritable));
    assert!(stderr(&unwritable).contains("writing /nonexistent/report.xml"), "{}", text(&unwritable));
    lab.assert_gone();
}
