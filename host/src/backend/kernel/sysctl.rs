//! Per-namespace sysctls. `/proc/sys/net` shows the namespace of the thread
//! that opens it, so every access runs on a thread inside the namespace.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::netns;

/// The only sysctls nsw touches, as (key, path under /proc/sys).
pub const KNOWN: &[&str] = &["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];

fn path(key: &str) -> io::Result<PathBuf> {
    // Refuse anything but the known keys: the journal is read back by root.
    if !KNOWN.contains(&key) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("sysctl {key} is not one nsw manages")));
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

pub fn read(ns: &OwnedFd, key: &str) -> io::Result<String> {
    let path = path(key)?;
    netns::run_in(ns, move || Ok(std::fs::read_to_string(&path)?.trim().to_string()))
}

pub fn write(ns: &OwnedFd, key: &str, value: &str) -> io::Result<()> {
    let path = path(key)?;
    netns::run_in(ns, move || std::fs::write(&path, value))
}
