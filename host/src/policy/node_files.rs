//! What a script may reach of a node's files (`files`, no grant): only the
//! node's own writable directories, by a plain absolute path, with modes
//! that give no privilege, owned by users the node itself knows.

use crate::error::{LabError, LabResult};

/// The node's directories of its own (see the backend's node files), each
/// with the name the path may start with and the directory it is.
const ROOTS: &[(&str, &str)] = &[
    ("/etc", "/etc"),
    ("/run", "/run"),
    // Debian's /var/run is a symbolic link to /run, which the resolution
    // would refuse; the policy spells it out instead.
    ("/var/run", "/run"),
    ("/tmp", "/tmp"),
    ("/var/lib", "/var/lib"),
    ("/var/log", "/var/log"),
    ("/var/cache", "/var/cache"),
];

/// Longest path taken, as the kernel's PATH_MAX.
const MAX_PATH: usize = 4096;

/// A path in a node's own files: the directory it is beneath and the rest,
/// relative to it (never empty, no `..`, no empty or `.` component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePath {
    pub root: &'static str,
    pub rest: String,
}

impl NodePath {
    pub fn shown(&self) -> String {
        format!("{}/{}", self.root, self.rest)
    }
}

/// Parse `path` (absolute, under one of the node's own directories).
pub fn node_path(path: &str) -> LabResult<NodePath> {
    let q = super::quoted(path);
    let allowed = || ROOTS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    if path.len() > MAX_PATH {
        return Err(LabError::invalid(format!("path {q}: longer than {MAX_PATH} bytes")));
    }
    if path.chars().any(char::is_control) {
        return Err(LabError::invalid(format!("path {q}: holds a control character")));
    }
    let Some((name, root)) = ROOTS.iter().find(|(name, _)| path.strip_prefix(name).is_some_and(|r| r.starts_with('/'))) else {
        return Err(LabError::denied(format!("path {q}: a script writes and reads only a node's own files, under {}", allowed())));
    };
    let rest = &path[name.len() + 1..];
    let parts: Vec<&str> = rest.split('/').collect();
    if rest.is_empty() || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(LabError::invalid(format!("path {q}: name a file beneath {name} plainly (no empty, `.` or `..` parts, no trailing `/`)")));
    }
    Ok(NodePath { root, rest: rest.to_string() })
}

/// Why a run may not write its nodes' files, if it may not. What a script
/// writes there is read by the node's programs and by the commands `nsw
/// exec` runs in the node, so a script may write only where those hold no
/// more than the lab's programs do: behind the privilege boundary (both
/// are root of the lab), in an ordinary user's lab whose programs run as
/// the user anyway (`--allow exec`), or where the lab's programs are the
/// machine's root already (`--exec-user root`). Elsewhere nsw would write
/// as the machine's root (or as the user) files that `nsw exec` then runs
/// in: an `/etc/ld.so.preload`, a shell's profile. So nsw reaches a node's
/// files only as root of the lab (or as a root given away): it reads what
/// the node's programs may read, and the machine's closed files
/// (`/etc/shadow`) stay closed to it.
pub fn refusal(rootless: bool, behind_boundary: bool, programs_as: Option<(u32, u32)>) -> Option<String> {
    if behind_boundary || programs_as == Some((0, 0)) {
        return None;
    }
    if rootless {
        return programs_as.is_none().then(|| {
            "an ordinary user's lab writes its nodes' files only with --allow exec (what a script writes there, `nsw exec` runs in as you)".to_string()
        });
    }
    Some("a lab outside the privilege boundary (host-net, uplink) cannot write its nodes' files: nsw would write them as the machine's root, and `nsw exec` runs in them as root".to_string())
}

/// Check permission bits: no setuid or setgid (the node's `/etc` is on a
/// mount that honours them), nothing beyond the sticky bit.
pub fn check_mode(what: &str, mode: u32) -> LabResult<()> {
    if mode & 0o6000 != 0 {
        return Err(LabError::denied(format!("{what}: mode {mode:#o} is setuid or setgid, which a node's files never are")));
    }
    if mode > 0o1777 {
        return Err(LabError::invalid(format!("{what}: mode {mode:#o} is not permission bits (0-0o1777)")));
    }
    Ok(())
}

/// The uid and gid of `user` (none: root) and `group` (none: the user's),
/// as the node's `/etc/passwd` and `/etc/group` give them.
pub fn owner_ids(what: &str, passwd: &str, group_file: &str, user: Option<&str>, group: Option<&str>) -> LabResult<(u32, u32)> {
    let field = |line: &str, n: usize| line.split(':').nth(n).and_then(|f| f.parse::<u32>().ok());
    let (uid, user_gid) = match user {
        None => (0, 0),
        Some(name) => passwd
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .and_then(|l| Some((field(l, 2)?, field(l, 3)?)))
            .ok_or_else(|| LabError::not_found(format!("{what}: the node has no user {}", super::quoted(name))))?,
    };
    let gid = match group {
        None => user_gid,
        Some(name) => group_file
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .and_then(|l| field(l, 2))
            .ok_or_else(|| LabError::not_found(format!("{what}: the node has no group {}", super::quoted(name))))?,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_nodes_own_directories() {
        assert_eq!(node_path("/etc/bird/bird.conf").unwrap(), NodePath { root: "/etc", rest: "bird/bird.conf".into() });
        assert_eq!(node_path("/var/run/frr/x").unwrap().root, "/run");
        for refused in ["/etc", "/etc/", "/etcetera/x", "/usr/bin/sh", "relative", "/etc/../root/x", "/etc/./x", "/etc//x", "/etc/x/", "/proc/1/root/etc/x", "/var/lib/\0x", "/tmp/a\nb", ""] {
            assert!(node_path(refused).is_err(), "{refused:?} was taken");
        }
        assert!(node_path(&format!("/tmp/{}", "a".repeat(5000))).is_err());
    }

    #[test]
    fn files_are_written_only_where_they_give_no_more_than_the_labs_programs_have() {
        assert!(refusal(false, true, None).is_none() && refusal(false, true, Some((0, 0))).is_none());
        assert!(refusal(true, false, Some((0, 0))).is_none() && refusal(true, false, None).unwrap().contains("--allow exec"));
        assert!(refusal(false, false, Some((65534, 65534))).unwrap().contains("privilege boundary"));
        assert!(refusal(false, false, Some((0, 0))).is_none(), "--exec-user root gave the machine already");
    }

    #[test]
    fn modes_give_no_privilege() {
        assert!(check_mode("w", 0o644).is_ok() && check_mode("w", 0o1777).is_ok());
        for refused in [0o4755, 0o2755, 0o10644] {
            assert!(check_mode("w", refused).is_err(), "{refused:o}");
        }
    }

    #[test]
    fn owners_are_the_nodes_users() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbird:x:104:110::/run/bird:/usr/sbin/nologin\n";
        let group = "root:x:0:\nbird:x:110:\nfrrvty:x:120:frr\n";
        assert_eq!(owner_ids("w", passwd, group, None, None).unwrap(), (0, 0));
        assert_eq!(owner_ids("w", passwd, group, Some("bird"), None).unwrap(), (104, 110));
        assert_eq!(owner_ids("w", passwd, group, Some("bird"), Some("frrvty")).unwrap(), (104, 120));
        assert!(owner_ids("w", passwd, group, Some("frr"), None).unwrap_err().to_string().contains("no user"));
        assert!(owner_ids("w", passwd, group, None, Some("nogroup")).is_err());
    }
}
