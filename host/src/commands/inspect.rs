//! `nsw inspect FILE.wasm` (or `oci://REF`): what a script asks for and
//! who signed it, without running it. A reference is fetched no further
//! than its manifest and its component, and judged without being refused.

use std::path::PathBuf;

use clap::Args;

use super::source_args::SourceArgs;
use super::{CommandResult, Status, show};
use crate::sharing::signature::{self, Signature};
use crate::sharing::{Fetched, Signer};

#[derive(Args)]
pub struct InspectArgs {
    /// The lab script: a file, or oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST].
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Speak plain HTTP to the registry, not HTTPS.
    #[arg(long)]
    plain_http: bool,
    #[arg(skip)]
    fetched: Option<Fetched>,
}

impl InspectArgs {
    /// Fetch the script if it is named by reference (before nsw has threads).
    pub(crate) fn fetch(&mut self) -> anyhow::Result<()> {
        let source = SourceArgs { plain_http: self.plain_http, ..Default::default() };
        self.fetched = source.fetch(&mut self.file, false, &crate::policy::Limits::default())?;
        Ok(())
    }
}

/// Who signed the script, and whether they are trusted for it.
fn signature_of(args: &InspectArgs) -> anyhow::Result<(Option<Signer>, Option<String>)> {
    if let Some(fetched) = &args.fetched {
        return Ok((fetched.signer.clone(), fetched.untrusted.clone()));
    }
    // A local file: who signed it (trust is given for references only).
    let wasm = std::fs::read(&args.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    Ok(match signature::read(&wasm) {
        Signature::Signed(keys) => {
            let (key, verifies) = &keys[0];
            (Some(Signer { key: key.text(), fingerprint: key.fingerprint(), verifies: *verifies, trusted: false }), None)
        }
        _ => (None, None),
    })
}

pub async fn exec(args: InspectArgs) -> CommandResult {
    let file = &args.file;
    let info = crate::inspect::read(file)?;
    let (signer, untrusted) = signature_of(&args)?;
    let name = args.fetched.as_ref().map_or_else(|| file.display().to_string(), |f| f.reference.canonical());
    let imports = crate::inspect::report(&info);
    let mut needs: Vec<&str> = imports.iter().filter_map(|i| i.needs).collect();
    needs.sort();
    needs.dedup();
    let runnable = imports.iter().all(|i| i.kind != "unknown");
    if args.json {
        let value = serde_json::json!({
            "file": name,
            "reference": args.fetched.as_ref().map(|f| f.reference.canonical()),
            "digest": args.fetched.as_ref().and_then(|f| f.reference.digest.clone()),
            "signer": signer.as_ref().map(|s| serde_json::json!({"key": s.key, "fingerprint": s.fingerprint, "verifies": s.verifies, "trusted": s.trusted})),
            "untrusted": untrusted,
            "size": info.size,
            "sha256": info.sha256,
            "exports": info.exports,
            "imports": imports,
            "grants_needed": needs,
            "runnable": runnable,
        });
        show!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(Status::Success);
    }
    show!("{name}: WebAssembly component, {} bytes, sha256 {}", info.size, info.sha256);
    if let Some(fetched) = &args.fetched {
        show!("digest: {} (its manifest; the component is {})", fetched.reference.digest.as_deref().unwrap_or("?"), fetched.component_digest);
    }
    match &signer {
        None => show!("signed: no"),
        Some(s) if !s.verifies => show!("signed: the signature does not verify with the key it names ({} {}): changed after signing, or forged", s.fingerprint, s.key),
        Some(s) if s.trusted => show!("signed: by {} ({}), trusted for it", s.fingerprint, s.key),
        Some(s) if args.fetched.is_some() => show!("signed: by {} ({}), not trusted for it", s.fingerprint, s.key),
        Some(s) => show!("signed: by {} ({})", s.fingerprint, s.key),
    }
    if let Some(why) = &untrusted {
        show!("not trusted: {why}");
    }
    show!("exports: {}", if info.exports.is_empty() { "nothing".to_string() } else { info.exports.join(", ") });
    for (kind, title) in [("capability", "capabilities it asks for"), ("wasi", "WASI it imports"), ("unknown", "imports nsw does not provide")] {
        let group: Vec<_> = imports.iter().filter(|i| i.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        show!("{title}:");
        // `types` holds the handle and error types: no capability.
        for import in group.into_iter().filter(|i| !i.name.starts_with("nsw:lab/types")) {
            let grant = match import.needs {
                Some(g) => format!("  [needs --allow {g}]"),
                None => String::new(),
            };
            show!("  {:<38} {}{grant}", import.name, import.what);
        }
    }
    if !runnable {
        show!("nsw cannot run it.");
    } else if needs.is_empty() {
        show!("grants needed: none (it runs with the defaults)");
    } else {
        let flags: Vec<String> = needs.iter().map(|g| format!("--allow {g}")).collect();
        show!("grants needed: {}", flags.join(" "));
    }
    if !info.exports.iter().any(|e| e == "run") {
        show!("note: it does not export run, so it is not a lab script");
    }
    Ok(Status::Success)
}
