//! The machine's tools nsw runs (`nft`, `tc`, `pasta`), found where
//! Debian installs them whatever the caller's PATH says: an ordinary
//! user's PATH often lacks `/usr/sbin`, where `nft` lives.

use std::path::PathBuf;

/// Where the system's tools live, after the caller's PATH.
const SYSTEM_DIRS: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The program `name`: the first executable of that name in PATH or the
/// system's directories; `name` itself if there is none (running it then
/// fails as "not found", which callers turn into "not installed").
pub fn program(name: &str) -> PathBuf {
    find(name, &std::env::var_os("PATH").unwrap_or_default())
}

fn find(name: &str, path: &std::ffi::OsStr) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tools_are_found_outside_the_callers_path() {
        // `sh` is in /bin or /usr/bin on every machine nsw runs on.
        let found = super::find("sh", std::ffi::OsStr::new("/nonexistent:relative/dir"));
        assert!(found.is_absolute(), "{}", found.display());
        assert_eq!(super::find("no-such-tool-nsw", std::ffi::OsStr::new("")), std::path::PathBuf::from("no-such-tool-nsw"));
    }
}
