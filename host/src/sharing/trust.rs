//! Whose signatures nsw trusts, and for which references: trust.toml, in
//! `$XDG_CONFIG_HOME/nsw` (or `~/.config/nsw`) and, for root, the
//! machine's `/etc/nsw`. A key is trusted for the references under the
//! prefixes it was added `--for` (every reference if none).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::reference::ScriptRef;
use super::signature::Key;

/// The machine's trust file, read by root's nsw.
const MACHINE_FILE: &str = "/etc/nsw/trust.toml";

#[derive(Serialize, Deserialize, Default)]
struct TrustFile {
    #[serde(default, rename = "key")]
    keys: Vec<Entry>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Entry {
    /// `ed25519:HEX`.
    pub key: String,
    /// `REGISTRY[/REPOSITORY...]` prefixes; empty: every reference.
    #[serde(default, rename = "for", skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
}

/// The trust files this nsw reads, the one `trust add` writes first.
pub fn files() -> Vec<PathBuf> {
    let env = |key: &str| std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    let user = env("XDG_CONFIG_HOME").map(|d| d.join("nsw/trust.toml"));
    let home = env("HOME").map(|h| h.join(".config/nsw/trust.toml"));
    if nix::unistd::geteuid().is_root() {
        // Root's trust is the machine's, unless a config home is chosen.
        return user.into_iter().chain([PathBuf::from(MACHINE_FILE)]).collect();
    }
    user.or(home).into_iter().collect()
}

/// Every trusted key, with the file it is in.
pub fn entries() -> Result<Vec<(Entry, PathBuf)>> {
    let mut all = Vec::new();
    for path in files() {
        for entry in read(&path)?.keys {
            all.push((entry, path.clone()));
        }
    }
    Ok(all)
}

/// The keys trusted for `reference`.
pub fn keys_for(reference: &ScriptRef) -> Result<Vec<Key>> {
    let mut keys = Vec::new();
    for (entry, path) in entries()? {
        if entry.prefixes.is_empty() || entry.prefixes.iter().any(|p| reference.within(p)) {
            keys.push(Key::parse(&entry.key).with_context(|| format!("in {}", path.display()))?);
        }
    }
    Ok(keys)
}

/// Trust `key` for `prefixes` (added to the key's entry if it has one).
pub fn add(key: &Key, prefixes: &[String]) -> Result<PathBuf> {
    let path = files().into_iter().next().context("no place for trust.toml: set HOME or XDG_CONFIG_HOME")?;
    let mut file = read(&path)?;
    let text = key.text();
    match file.keys.iter_mut().find(|e| e.key == text) {
        // Trusted for everything already, or now for everything.
        Some(entry) if entry.prefixes.is_empty() => {}
        Some(entry) if prefixes.is_empty() => entry.prefixes.clear(),
        Some(entry) => {
            for p in prefixes {
                if !entry.prefixes.contains(p) {
                    entry.prefixes.push(p.clone());
                }
            }
        }
        None => file.keys.push(Entry { key: text, prefixes: prefixes.to_vec() }),
    }
    let body = toml::to_string(&file).context("cannot write trust.toml")?;
    let header = "# Keys whose signatures nsw trusts for lab scripts fetched by reference\n# (nsw trust add KEY [--for REGISTRY/PREFIX]).\n\n";
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    super::store::replace(&path, format!("{header}{body}").as_bytes(), 0o644)?;
    Ok(path)
}

fn read(path: &PathBuf) -> Result<TrustFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not a trust file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustFile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
