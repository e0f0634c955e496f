//! Lab scripts shared by reference: `oci://REGISTRY/REPOSITORY[:TAG]
//! [@sha256:DIGEST]`. A reference is resolved to a digest, the manifest
//! and the component are checked against their digests and kept by digest
//! ([`store`]), and the component is judged: it runs only if signed by a
//! key trusted for its reference ([`trust`], [`signature`]), or, with
//! `--insecure-unsigned`, unsigned — never with a signature that does not
//! verify, and never when its tag was re-pushed with another unsigned
//! script since this user last ran it. What runs is then a file, like any
//! other: everything a local script gets (imports checked against grants,
//! limits, the journal) follows. The journal and `nsw ls` record the
//! reference pinned to its digest.
//!
//! nsw fetches before it splits at the privilege boundary and before an
//! ordinary user's nsw joins its user namespace: on a runtime of one
//! thread, gone before either (both need a process of one thread).

pub mod lock;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod store;
pub mod trust;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::tell::say;
use reference::ScriptRef;
use signature::{Key, Signature};
use store::Store;

pub use reference::is_reference;

/// How a script is fetched and judged.
pub struct FetchOptions {
    pub plain_http: bool,
    pub insecure_unsigned: bool,
    pub locked: bool,
    /// Whether it is to run (`run`, `test`, `plan`): judged, remembered in
    /// nsw.lock and the tags seen. `inspect` and `pull` only look.
    pub to_run: bool,
    pub max_component_bytes: usize,
    /// The most the store of pulled scripts may hold.
    pub store_bytes: u64,
}

/// A script fetched by reference, ready to run from `path`.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The component, in the store.
    pub path: PathBuf,
    /// The reference, pinned to the manifest's digest.
    pub reference: ScriptRef,
    pub size: usize,
    /// The component's own digest (the layer's).
    pub component_digest: String,
    /// Who signed it, whether it verifies, whether trusted for it.
    pub signer: Option<Signer>,
    /// Why it is not trusted, if it is not.
    pub untrusted: Option<String>,
    /// Whether it carries a signature that does not verify, or cannot be
    /// read: refused whatever the flags say.
    pub forged: bool,
}

impl Fetched {
    /// Check that `wasm`, read from [`Fetched::path`] to run, is still the
    /// component that was judged.
    pub fn check(&self, wasm: &[u8]) -> Result<()> {
        if store::digest_of(wasm) != self.component_digest {
            bail!("{} changed in the store since it was checked ({}): run it again", self.path.display(), self.reference.canonical());
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Signer {
    pub key: String,
    pub fingerprint: String,
    pub verifies: bool,
    pub trusted: bool,
}

/// Fetch and judge the script `arg` names, on a runtime of one thread
/// that is gone when this returns.
pub fn fetch(arg: &str, options: &FetchOptions) -> Result<Fetched> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start fetching")?;
    let fetched = runtime.block_on(fetch_on(arg, options));
    // Dropping the runtime joins its blocking threads (name lookups).
    drop(runtime);
    fetched
}

async fn fetch_on(arg: &str, options: &FetchOptions) -> Result<Fetched> {
    let mut reference = ScriptRef::parse(arg)?;
    let as_written = ScriptRef { digest: None, ..reference.clone() };
    let mut lock = if options.to_run { lock::Lock::find()? } else { None };
    let pinned_by_lock = lock.as_ref().and_then(|l| l.pinned(&as_written.canonical())).map(String::from);
    match (&reference.digest, &pinned_by_lock) {
        (None, Some(digest)) => reference = reference.pinned(digest),
        (Some(digest), Some(pin)) if options.locked && digest != pin => {
            let path = lock.as_ref().map(|l| l.path.display().to_string()).unwrap_or_default();
            bail!("{arg}: {path} pins {pin}; --locked runs only what it pins");
        }
        (Some(_), None) if options.locked => match &lock {
            Some(l) => bail!("{arg} is not pinned in {}; --locked runs only what nsw.lock pins", l.path.display()),
            None => bail!("--locked: there is no nsw.lock in this directory or above"),
        },
        (None, None) if options.locked => match &lock {
            Some(l) => bail!("{arg} is not pinned in {}; --locked runs only what nsw.lock pins", l.path.display()),
            None => bail!("--locked: there is no nsw.lock in this directory or above"),
        },
        _ => {}
    }
    let resolved_from_tag = reference.digest.is_none();
    let store = Store::open();
    // Made only if needed: a script kept by digest runs without a
    // registry, and making its clients (their TLS roots) costs ~0.1 s.
    let mut client: Option<registry::Registry> = None;
    // A pinned manifest kept by digest needs no registry.
    let kept = reference.digest.as_deref().and_then(|d| store.get(true, d)).map(|(raw, _)| raw);
    let (raw, digest) = match kept {
        Some(raw) => {
            let digest = reference.digest.clone().unwrap_or_default();
            (raw, digest)
        }
        None => {
            let (raw, digest, _) = connected(&mut client, &reference, options)?.manifest(&reference).await?;
            (raw, digest)
        }
    };
    let layer = registry::component_of(&raw).with_context(|| format!("{arg} is not a lab script (a Wasm OCI artifact)"))?;
    let reference = reference.pinned(&digest);
    let (wasm, path) = match store.get(false, &layer.digest) {
        Some(kept) => kept,
        None => {
            let wasm = connected(&mut client, &reference, options)?.component(&reference, &layer, options.max_component_bytes).await?;
            let path = store.put(false, &layer.digest, &wasm)?;
            (wasm, path)
        }
    };
    store.put(true, &digest, &raw)?;
    let (signer, untrusted, forged) = judge(&reference, &wasm)?;
    let fetched = Fetched { path, size: wasm.len(), component_digest: layer.digest.clone(), signer, untrusted, forged, reference };
    if options.to_run {
        admit(&fetched, &store, resolved_from_tag, options)?;
        if let Some(tag) = fetched.reference.by_tag() {
            store.set_tag(&tag, &digest)?;
        }
        if let Some(lock) = lock.as_mut()
            && !options.locked
        {
            lock.pin(&as_written.canonical(), &digest)?;
        }
    }
    store.trim(options.store_bytes, &[fetched.path.as_path(), store.path(true, &digest).as_path()]);
    Ok(fetched)
}

/// The registry's client in `slot`, made the first time it is needed.
fn connected<'a>(slot: &'a mut Option<registry::Registry>, reference: &ScriptRef, options: &FetchOptions) -> Result<&'a registry::Registry> {
    if slot.is_none() {
        *slot = Some(registry::Registry::new(reference, options.plain_http)?);
    }
    slot.as_ref().context("no registry client")
}

/// Who signed `wasm`; why it is not trusted for `reference` if not; and
/// whether a signature it carries is forged (does not verify, or cannot be
/// read). A signature by a trusted key that verifies settles it: it covers
/// every byte but the signature section, so nothing else there matters.
fn judge(reference: &ScriptRef, wasm: &[u8]) -> Result<(Option<Signer>, Option<String>, bool)> {
    let trusted = trust::keys_for(reference)?;
    let signer = |key: &Key, verifies: bool| Signer { key: key.text(), fingerprint: key.fingerprint(), verifies, trusted: verifies && trusted.contains(key) };
    if let Some(key) = trusted.iter().find(|k| k.signed(wasm)) {
        return Ok((Some(signer(key, true)), None, false));
    }
    let name = reference.name();
    Ok(match signature::read(wasm) {
        Signature::Unsigned => (None, Some("it is not signed".into()), false),
        Signature::Unreadable(why) => (None, Some(format!("its signature cannot be read ({why})")), true),
        Signature::Signed(keys) => match keys.iter().find(|(_, verifies)| !*verifies) {
            Some((key, _)) => (
                Some(signer(key, false)),
                Some(format!("its signature does not verify with the key it names, {}: the script was changed after it was signed, or the signature is forged", key.fingerprint())),
                true,
            ),
            None => {
                let (key, _) = &keys[0];
                let why = format!("it is signed by key {} ({}), which is not trusted for {name}; to trust it: nsw trust add {} --for {name}", key.fingerprint(), key.text(), key.text());
                (Some(signer(key, true)), Some(why), false)
            }
        },
    })
}

/// Whether the fetched script may run; the refusal says why.
fn admit(fetched: &Fetched, store: &Store, resolved_from_tag: bool, options: &FetchOptions) -> Result<()> {
    let Some(why) = &fetched.untrusted else { return Ok(()) };
    let name = fetched.reference.canonical();
    if fetched.forged {
        bail!("refused {name}: {why}");
    }
    // A tag that names another script than when this user last ran it.
    if resolved_from_tag
        && let Some(tag) = fetched.reference.by_tag()
        && let Some(before) = store.tag(&tag)
        && fetched.reference.digest.as_deref() != Some(before.as_str())
    {
        let now = fetched.reference.digest.as_deref().unwrap_or_default();
        bail!(
            "refused {tag}: it names {now} now, not {before} as when you last ran it, and the new script is not trusted: {why}. \
             A re-pushed tag runs only if signed by a trusted key. To run the new script anyway: nsw run {tag}@{now} --insecure-unsigned"
        );
    }
    if !options.insecure_unsigned {
        bail!("refused {name}: {why}. A script fetched by reference runs only if signed by a key you trust (or, if you trust its source, with --insecure-unsigned)");
    }
    say!("nsw: running {name} without a trusted signature (--insecure-unsigned): {why}");
    Ok(())
}
