//! An ordinary user, made for one test: a uid no process has, a home of
//! its own (with `XDG_RUNTIME_DIR` in it), and copies of the files it runs.
//! Nothing is added to the machine's user database; dropping it kills
//! whatever that uid (and its range of ids, if it has one) still runs and
//! removes its home.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The PATH of an ordinary user's login shell on Debian.
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

use crate::{Machine, nsw_bin, run};

pub struct User {
    pub uid: u32,
    pub home: PathBuf,
    /// The first of 65536 subordinate ids of its own, if it has them.
    pub ids: Option<u32>,
}

/// The user's name where it has one (`with_ids`).
fn name_of(uid: u32) -> String {
    format!("nswu{uid}")
}

impl User {
    pub fn new() -> User {
        // The first uid from 61000 that runs nothing and whose home this
        // test could claim (creating it is the claim: tests run in parallel).
        for uid in 61_000u32..62_000 {
            let home = std::env::temp_dir().join(format!("nsw-user-{uid}"));
            if run("pgrep", &["-u", &uid.to_string()]).status.success() || std::fs::create_dir(&home).is_err() {
                continue;
            }
            let user = User { uid, home, ids: None };
            for dir in [user.home.clone(), user.runtime_dir()] {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
                chown(&dir, Some(uid), Some(uid)).unwrap();
            }
            return user;
        }
        panic!("no free uid in 61000..62000");
    }

    /// A user with a name and 65536 ids of its own in `/etc/subuid` and
    /// `/etc/subgid`, as `useradd` gives one on Debian, seen only by this
    /// user's commands: each runs in a mount namespace of its own where
    /// `/etc` is a copy of the machine's with the user added to `passwd`,
    /// `group`, `subuid` and `subgid` (the machine's files are never
    /// written). The whole of `/etc`, not those four files: a file bound
    /// over one of `/etc` would be a mount the lab's user namespace may
    /// not look beneath, and a node's overlay of `/etc` would be refused.
    pub fn with_ids() -> User {
        let mut user = User::new();
        // Far from root's labs' ranges (from 0x70000000) and Debian's own.
        let first = 3_000_000_000 + (user.uid - 61_000) * 65_536;
        let (uid, name) = (user.uid, name_of(user.uid));
        let etc = user.etc();
        let copied = run("cp", &["-a", "/etc", etc.to_str().unwrap()]);
        assert!(copied.status.success(), "copying /etc: {}", crate::text(&copied));
        for (file, line) in [
            ("passwd", format!("{name}:x:{uid}:{uid}:nsw test user:{}:/bin/sh\n", user.home.display())),
            ("group", format!("{name}:x:{uid}:\n")),
            ("subuid", format!("{name}:{first}:65536\n")),
            ("subgid", format!("{name}:{first}:65536\n")),
        ] {
            let mut text = std::fs::read_to_string(etc.join(file)).unwrap_or_default();
            text.push_str(&line);
            std::fs::write(etc.join(file), text).unwrap();
            std::fs::set_permissions(etc.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        user.ids = Some(first);
        user
    }

    /// Where its copy of the machine's `/etc` is (`with_ids`).
    fn etc(&self) -> PathBuf {
        self.home.with_extension("etc")
    }

    /// Its `XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.home.join("run")
    }

    /// Where nsw keeps this user's state.
    pub fn state_dir(&self) -> PathBuf {
        self.runtime_dir().join("nsw")
    }

    /// A copy of `file` that the user can read (the repository may sit
    /// where it cannot).
    pub fn file(&self, file: &Path) -> PathBuf {
        let to = self.home.join(file.file_name().unwrap());
        if !to.exists() {
            std::fs::copy(file, &to).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        to
    }

    /// `bin ARGS` as this user inside `machine`, stopped after 120 s, with
    /// a login shell's environment.
    pub fn command(&self, machine: &Machine, bin: &Path, args: &[&str]) -> Command {
        let bin = self.file(bin);
        let mut command = match self.ids {
            None => Command::new("timeout"),
            Some(_) => {
                // Its /etc bound over the machine's, in a mount namespace
                // of this command's own.
                let mut wrapped = Command::new("unshare");
                wrapped
                    .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                    .arg(r#"mount --bind "$0" /etc || exit 125; exec timeout "$@""#)
                    .arg(self.etc());
                wrapped
            }
        };
        command
            .args(["120", "nsenter", &format!("--net=/run/netns/{}", machine.name), "setpriv"])
            .args([format!("--reuid={}", self.uid), format!("--regid={}", self.uid)])
            .arg("--clear-groups")
            .arg(bin)
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            // A Debian user's login PATH: no sbin (where nft lives).
            .env("PATH", USER_PATH)
            .current_dir(&self.home);
        command
    }

    /// `nsw ARGS` as this user inside `machine`.
    pub fn nsw(&self, machine: &Machine, args: &[&str]) -> Output {
        self.command(machine, &nsw_bin(), args).output().expect("running nsw as a user")
    }

    /// What this uid still runs. A zombie has ended already: whoever
    /// inherited it (init) reaps it when it gets to it.
    pub fn processes(&self) -> Vec<String> {
        let out = run("ps", &["-e", "-o", "uid=,stat=,args="]);
        let range = self.ids.map_or(0..0, |first| first..first + 65_536);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                let uid: u32 = words.next().and_then(|u| u.parse().ok()).unwrap_or(u32::MAX);
                (uid == self.uid || range.contains(&uid)) && !words.next().unwrap_or("Z").starts_with('Z')
            })
            .map(String::from)
            .collect()
    }

    /// `nsw down --all` as the user, which must succeed; then nothing of
    /// the user's may be left, the keeper included.
    pub fn down_all(&self, machine: &Machine) {
        let out = self.nsw(machine, &["down", "--all"]);
        assert!(out.status.success(), "{}", crate::text(&out));
        self.assert_nothing_left();
    }

    /// Nothing of the user's is left: no process, nothing in its state
    /// directory.
    pub fn assert_nothing_left(&self) {
        // A lab's init that has ended waits in the kernel until the last
        // of its lab is reaped, by the machine's init when it gets to it.
        let waited = std::time::Instant::now();
        while !self.processes().is_empty() && waited.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(self.processes().is_empty(), "uid {} still runs: {:?}", self.uid, self.processes());
        let left: Vec<_> = std::fs::read_dir(self.state_dir()).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", self.state_dir().display());
    }
}

impl Default for User {
    fn default() -> Self {
        User::new()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = run("pkill", &["-KILL", "-u", &self.uid.to_string()]);
        if let Some(first) = self.ids {
            // Whatever runs as one of its range (a daemon of its labs).
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
                let uid: Option<u32> = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next()?.parse().ok());
                if uid.is_some_and(|u| (first..first + 65_536).contains(&u)) {
                    let _ = run("kill", &["-KILL", &entry.file_name().to_string_lossy()]);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.home);
        let _ = std::fs::remove_dir_all(self.etc());
    }
}
