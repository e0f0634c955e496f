//! The plan as a shell script, attacked with every name the policy
//! accepts: run by bash with `ip`, `nft`, `sysctl`, `tc` and `setpriv`
//! replaced by recorders, it runs only those, each name reaches them as
//! one whole word, the sysctl keys are the kernel backend's, and what `nft`
//! reads is exactly the batch the kernel backend hands it.

use std::path::Path;

use proptest::prelude::*;

use super::firewall::RuleRequest;
use super::{HOST, Lab};
use crate::backend::plan::PlanBackend;
use crate::backend::rules::{Direction, Verdict};
use crate::journal::{LabInfo, StateDir};
use crate::policy::{Grants, Limits, MAX_IFNAME_LEN};
use crate::stop::Stop;

/// An interface name the policy accepts: 1-15 printable ASCII bytes but
/// `/`, `:`, `%`, not `.` or `..`; often one of `ip`'s own words, or one
/// holding the `=` sysctl splits at, which random bytes rarely are.
fn ifname() -> impl Strategy<Value = String> {
    const WORDS: &[&str] = &["up", "down", "help", "type", "dev", "name", "mtu", "master", "netns", "address", "peer", "a=b", "x=1=0", "=", "-n"];
    prop_oneof![proptest::sample::select(WORDS).prop_map(str::to_string), any_ifname()]
}

fn any_ifname() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::char::range('!', '~').prop_filter("allowed", |c| !matches!(c, '/' | ':' | '%')), 1..=MAX_IFNAME_LEN)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("not . or ..", |n| n != "." && n != "..")
}

/// Recorders for the tools a plan runs: each appends its name, its
/// arguments (NUL-separated) and, for nft and tee, what it read, to `log`.
fn recorders(dir: &Path, log: &Path) {
    for tool in TOOLS {
        let stdin = match tool {
            "nft" => "printf 'stdin=' >> \"$LOG\"; /bin/cat >> \"$LOG\"; printf '\\n' >> \"$LOG\"\n",
            "tee" => "printf 'tee-stdin=' >> \"$LOG\"; /bin/cat >> \"$LOG\"\n",
            _ => "",
        };
        let script = format!("#!/bin/bash\nprintf '%s\\0' {tool} \"$@\" >> \"$LOG\"; printf '\\n' >> \"$LOG\"\n{stdin}");
        let path = dir.join(tool);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let _ = log;
}

/// The tools a plan may run.
const TOOLS: [&str; 6] = ["ip", "nft", "sysctl", "tc", "setpriv", "tee"];

/// Build a small lab with `a` and `b` as interface names in a host-net
/// lab (so the names reach sysctl keys and firewall rules of the
/// machine's namespace); its plan's lines.
async fn plan_of(a: &str, b: &str, dir: &Path) -> Option<(Vec<String>, Vec<String>)> {
    let state = StateDir::at(dir);
    let lock = state.lock("p").unwrap();
    let grants = Grants::parse(&["host-net=10.0.0.0/8".into()], false).unwrap();
    let info = LabInfo { name: "p".into(), mode: grants.mode(), grants: grants.names(), machine_netns: 1, pid: 0, script: "t".into(), started_unix: 0, part_of: None };
    let journal = state.create_journal(&lock, info).unwrap();
    let plan = PlanBackend::new();
    let mut lab = Lab::start("p", grants, journal, Box::new(plan.clone()), Limits::default(), Stop::new(), None).await.ok()?;
    let node = lab.create_netns("n").await.ok()?;
    let (ha, _) = lab.create_veth(a, HOST, b, node).await.ok()?;
    let (hb, _) = lab.create_veth(b, HOST, a, node).await.ok()?;
    lab.set_up(ha).await.ok()?;
    lab.set_up(hb).await.ok()?;
    lab.set_mtu(ha, 1400).await.ok()?;
    let rule = RuleRequest { direction: Direction::Input, verdict: Verdict::Drop, protocol: None, source: None, destination: None, port: None };
    lab.add_rule(HOST, rule).await.ok()?;
    let batches: Vec<String> = {
        let s = plan.state.lock().unwrap();
        s.log.iter().filter(|l| l.starts_with('{')).cloned().collect()
    };
    drop(lab.finish());
    state.remove(lock, "p").ok()?;
    let log = plan.state.lock().unwrap().log.clone();
    Some((log, batches))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_plan_runs_only_its_tools_with_each_name_as_one_word(a in ifname(), b in ifname()) {
        prop_assume!(a != b);
        let dir = std::env::temp_dir().join(format!("nsw-plan-props-{}-{}", std::process::id(), super::random_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let Some((lines, batches)) = rt.block_on(plan_of(&a, &b, &dir.join("state"))) else {
            // The lab refused the names (a clash the policy saw): no plan.
            std::fs::remove_dir_all(&dir).unwrap();
            return Ok(());
        };
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = dir.join("log");
        recorders(&bin, &log);
        let script = format!("set -e\n{}\n", lines.join("\n"));
        // Only the recorders are on PATH: a name that ran any other
        // command would fail the script (and leave the canary).
        let out = std::process::Command::new("/bin/bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", &bin)
            .env("LOG", &log)
            .output()
            .unwrap();
        prop_assert!(out.status.success(), "the plan failed: {}\n{script}", String::from_utf8_lossy(&out.stderr));
        let recorded = std::fs::read(&log).unwrap_or_default();
        let text = String::from_utf8_lossy(&recorded).into_owned();
        let calls: Vec<Vec<String>> = text
            .lines()
            .filter(|l| !l.starts_with("stdin=") && !l.starts_with("tee-stdin="))
            .map(|l| l.split('\0').filter(|w| !w.is_empty()).map(str::to_string).collect::<Vec<_>>())
            .filter(|call| !call.is_empty())
            .collect();
        for call in &calls {
            prop_assert!(TOOLS.contains(&call[0].as_str()), "ran {call:?}");
        }
        // ip reads a link's name only after `dev` or `name`: in its place
        // `up` or `help` would be read as ip's own words.
        for call in calls.iter().filter(|c| c[0] == "ip") {
            let link = call.iter().position(|w| w == "link");
            if let Some(at) = link.filter(|at| call.get(at + 1).is_some_and(|w| ["set", "add", "delete"].contains(&w.as_str()))) {
                prop_assert!(["dev", "name"].contains(&call[at + 2].as_str()), "a name in the place of ip's keywords: {call:?}");
            }
        }
        // Each name reached ip as one word (link add NAME ...).
        for name in [&a, &b] {
            prop_assert!(calls.iter().any(|c| c[0] == "ip" && c.contains(name)), "{name:?} never reached ip whole: {calls:?}");
        }
        // The sysctl keys are the backend's, one word each, slash form; a
        // key holding `=` (which sysctl would split at) goes through tee.
        for name in [&a, &b] {
            if name.contains('=') {
                let file = format!("/proc/sys/net/ipv6/conf/{name}/accept_dad");
                prop_assert!(calls.iter().any(|c| c[0] == "tee" && c.len() == 2 && c[1] == file), "no tee {file:?}: {calls:?}");
                prop_assert!(text.lines().any(|l| l == "tee-stdin=0"), "tee was not given the value: {text}");
            } else {
                let key = format!("net/ipv6/conf/{name}/accept_dad=0");
                prop_assert!(calls.iter().any(|c| c[0] == "sysctl" && c.contains(&key)), "no sysctl {key:?}: {calls:?}");
            }
        }
        // nft read exactly the batches the kernel backend would send.
        let read: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("stdin=")).collect();
        prop_assert_eq!(read.len(), batches.len());
        for (got, want) in read.iter().zip(&batches) {
            prop_assert_eq!(got.trim_end(), want.as_str());
        }
        // Nothing else ran: no canary, no file but the log and the state.
        let left: Vec<String> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        prop_assert!(left.iter().all(|f| ["bin", "log", "state"].contains(&f.as_str())), "the plan made {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
