//! An ordinary user, made for one test: a uid no process has, a home of
//! its own (with `XDG_RUNTIME_DIR` in it), and copies of the files it runs.
//! Nothing is added to the machine's user database; dropping it kills
//! whatever that uid still runs and removes its home.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The PATH of an ordinary user's login shell on Debian.
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

use crate::{Machine, nsw_bin, run};

pub struct User {
    pub uid: u32,
    pub home: PathBuf,
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
            let user = User { uid, home };
            for dir in [user.home.clone(), user.runtime_dir()] {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
                chown(&dir, Some(uid), Some(uid)).unwrap();
            }
            return user;
        }
        panic!("no free uid in 61000..62000");
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
        let mut command = Command::new("timeout");
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
        let out = run("ps", &["-u", &self.uid.to_string(), "-o", "stat=,args="]);
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim_start().starts_with('Z')).map(String::from).collect()
    }

    /// Nothing of the user's is left: no process, nothing in its state
    /// directory.
    pub fn assert_nothing_left(&self) {
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
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
