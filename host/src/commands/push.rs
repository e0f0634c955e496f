//! `nsw push FILE.wasm oci://REF [--sign KEY]`: publish a lab script as a
//! Wasm OCI artifact (what `wkg oci pull` reads); `nsw pull oci://REF
//! FILE.wasm`: fetch one, checked against its digests, without running it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{CommandResult, Status, show};
use crate::sharing::reference::ScriptRef;
use crate::sharing::{self, Fetched, registry::Registry, signature};

#[derive(Args)]
pub struct PushArgs {
    /// The lab script (a WebAssembly component).
    file: PathBuf,
    /// Where: oci://REGISTRY/REPOSITORY[:TAG] (TAG defaults to latest).
    reference: String,
    /// Sign it with this secret key (from `nsw key new`): the signature
    /// covers every byte of the component and travels inside it.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// Speak plain HTTP to the registry, not HTTPS.
    #[arg(long)]
    plain_http: bool,
}

pub async fn exec(args: PushArgs) -> CommandResult {
    let reference = ScriptRef::parse(&args.reference)?;
    if reference.digest.is_some() {
        return Err(anyhow::anyhow!("{}: a digest is what a push makes; name a tag", args.reference).into());
    }
    let mut wasm = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    // The same check as every run's: a component, within the size limit.
    let max = crate::policy::Limits::default().component_bytes;
    if wasm.len() > max {
        return Err(anyhow::anyhow!("{} is {} bytes, more than a script may be ({} MiB)", args.file.display(), wasm.len(), max >> 20).into());
    }
    crate::inspect::read(&args.file)?;
    if let Some(key) = &args.sign {
        let (signed, by) = signature::sign(&wasm, key)?;
        show!("signed by {} ({})", by.fingerprint(), by.text());
        wasm = signed;
    }
    let size = wasm.len();
    let registry = Registry::new(&reference, args.plain_http)?;
    let digest = registry.push(&reference, wasm).await?;
    show!("pushed {} ({size} bytes)", reference.pinned(&digest).canonical());
    show!("digest: {digest}");
    Ok(Status::Success)
}

#[derive(Args)]
pub struct PullArgs {
    /// The lab script: oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST].
    reference: String,
    /// Where to write the component.
    out: PathBuf,
    /// Speak plain HTTP to the registry, not HTTPS.
    #[arg(long)]
    plain_http: bool,
    #[arg(skip)]
    fetched: Option<Fetched>,
}

impl PullArgs {
    /// Fetch before nsw has threads (see [`crate::sharing`]), as `inspect`
    /// does: checked, not judged.
    pub(crate) fn fetch(&mut self) -> anyhow::Result<()> {
        let source = super::source_args::SourceArgs { plain_http: self.plain_http, ..Default::default() };
        let mut reference = PathBuf::from(&self.reference);
        if !sharing::is_reference(&reference) {
            anyhow::bail!("{}: nsw pulls oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]", self.reference);
        }
        self.fetched = source.fetch(&mut reference, false, &crate::policy::Limits::default())?;
        Ok(())
    }
}

/// Write what [`PullArgs::fetch`] fetched.
pub fn pull(args: PullArgs) -> CommandResult {
    let fetched = args.fetched.context("nothing was fetched")?;
    std::fs::copy(&fetched.path, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    show!("pulled {} ({} bytes) to {}", fetched.reference.canonical(), fetched.size, args.out.display());
    match (&fetched.signer, &fetched.untrusted) {
        (Some(s), None) => show!("signed by {} ({}), trusted for it", s.fingerprint, s.key),
        (_, Some(why)) => show!("not trusted: {why}"),
        (None, None) => {}
    }
    Ok(Status::Success)
}
