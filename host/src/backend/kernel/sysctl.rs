//! Per-namespace sysctls. `/proc/sys/net` shows the namespace of the thread
//! that opens it, so every access runs on a thread inside the namespace.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::netns;

/// nsw touches forwarding and, under `net/ipv4/conf` and `net/ipv6/conf`,
/// per-interface settings (and puts back what a forwarding switch rewrote).
fn path(key: &str) -> io::Result<PathBuf> {
    // The key comes from nsw's own code or its root-only files; still,
    // never let it leave /proc/sys/net.
    let allowed = key == "net/ipv4/ip_forward" || key.starts_with("net/ipv4/conf/") || key.starts_with("net/ipv6/conf/");
    let clean = key.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !allowed || !clean {
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

/// Every readable setting `ROOT/DEVICE/NAME` under each root, by key.
pub fn tree(ns: &OwnedFd, roots: &[&str]) -> io::Result<BTreeMap<String, String>> {
    let roots: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
    netns::run_in(ns, move || {
        let mut all = BTreeMap::new();
        for root in &roots {
            for device in std::fs::read_dir(PathBuf::from("/proc/sys").join(root))? {
                let device = device?;
                let Ok(settings) = std::fs::read_dir(device.path()) else { continue };
                for setting in settings.flatten() {
                    // Write-only or unreadable ones (stable_secret) are skipped.
                    let Ok(value) = std::fs::read_to_string(setting.path()) else { continue };
                    let key = format!("{root}/{}/{}", device.file_name().to_string_lossy(), setting.file_name().to_string_lossy());
                    all.insert(key, value.trim().to_string());
                }
            }
        }
        Ok(all)
    })
}
