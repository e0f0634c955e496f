//! `nsw key new FILE`, `nsw trust add KEY [--for PREFIX]`, `nsw trust ls`:
//! the keys that sign lab scripts, and whose signatures nsw trusts for
//! which references (see [`crate::sharing::trust`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CommandResult, Status, show};
use crate::sharing::signature::{self, Key};
use crate::sharing::trust;

#[derive(Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Make an Ed25519 key pair: the secret key in FILE (PEM, mode 0600),
    /// the public key in FILE.pub.
    New { file: PathBuf },
}

pub fn key(args: KeyArgs) -> CommandResult {
    match args.action {
        KeyAction::New { file } => {
            let key = signature::new_pair(&file)?;
            show!("secret key: {} (keep it; sign with nsw push --sign {})", file.display(), file.display());
            show!("public key: {} {}", signature::public_file(&file).display(), key.text());
            show!("fingerprint: {}", key.fingerprint());
            show!("others trust it with: nsw trust add {}", key.text());
        }
    }
    Ok(Status::Success)
}

#[derive(Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    action: TrustAction,
}

#[derive(Subcommand)]
enum TrustAction {
    /// Trust a key's signatures: ed25519:HEX, or a public key file.
    Add {
        key: String,
        /// Only for references under REGISTRY[/REPOSITORY...] (repeatable);
        /// without it, for every reference.
        #[arg(long = "for", value_name = "REGISTRY/PREFIX")]
        prefixes: Vec<String>,
    },
    /// List the trusted keys and what each is trusted for.
    Ls,
}

pub fn trust(args: TrustArgs) -> CommandResult {
    match args.action {
        TrustAction::Add { key, prefixes } => {
            let key = Key::parse(&key)?;
            let prefixes = prefixes.iter().map(|p| check_prefix(p)).collect::<anyhow::Result<Vec<_>>>()?;
            let path = trust::add(&key, &prefixes)?;
            let scope = if prefixes.is_empty() { "every reference".to_string() } else { prefixes.join(", ") };
            show!("trusted {} ({}) for {scope}, in {}", key.fingerprint(), key.text(), path.display());
        }
        TrustAction::Ls => {
            let entries = trust::entries()?;
            if entries.is_empty() {
                show!("no trusted keys (files: {})", trust::files().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
            }
            for (entry, path) in entries {
                let fingerprint = Key::parse(&entry.key).map(|k| k.fingerprint()).unwrap_or_else(|e| format!("unreadable: {e}"));
                let scope = if entry.prefixes.is_empty() { "every reference".to_string() } else { entry.prefixes.join(", ") };
                show!("{fingerprint}  {}  for {scope}  ({})", entry.key, path.display());
            }
        }
    }
    Ok(Status::Success)
}

/// `REGISTRY[/REPOSITORY...]`, as a reference names them (no tag, no
/// digest: trust is for names); returned as references spell it.
fn check_prefix(prefix: &str) -> anyhow::Result<String> {
    let bare = prefix.trim_end_matches('/');
    let probe = format!("{}{bare}{}", crate::sharing::reference::SCHEME, if bare.contains('/') { "" } else { "/x" });
    let parsed = crate::sharing::reference::ScriptRef::parse(&probe).map_err(|e| anyhow::anyhow!("--for {prefix}: not REGISTRY[/REPOSITORY...]: {e}"))?;
    if bare.contains('@') || bare.rsplit('/').next().is_some_and(|last| bare.contains('/') && last.contains(':')) {
        anyhow::bail!("--for {prefix}: trust is given for a registry or repositories, not a tag or digest");
    }
    Ok(if bare.contains('/') { parsed.name() } else { parsed.registry })
}
