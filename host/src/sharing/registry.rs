//! Talking to an OCI registry: a lab script is a Wasm OCI artifact, as
//! `wkg oci push` writes one (oci-wasm's layout: an image manifest whose
//! config is `application/vnd.wasm.config.v0+json` and whose one layer is
//! the component, `application/wasm`). Every byte that comes back is
//! checked against the digest that named it; nothing larger than
//! `--max-component` is read.
//!
//! Certificates: the machine's roots, and `*.crt` in the registry's
//! `certs.d` directory as podman and docker keep them. Credentials: the
//! podman or docker auth file (`auths` entries; credential helpers are not
//! run).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_wasm::{WASM_LAYER_MEDIA_TYPE, WASM_MANIFEST_CONFIG_MEDIA_TYPE, WASM_MANIFEST_MEDIA_TYPE, WasmClient, WasmConfig};

use super::reference::ScriptRef;
use super::store::digest_of;

/// How long one exchange with the registry may take in all.
const DEADLINE: Duration = Duration::from_secs(120);
/// The largest manifest nsw reads (a Wasm artifact's is well under 1 KiB).
const MAX_MANIFEST: usize = 64 * 1024;

pub struct Registry {
    client: WasmClient,
    auth: RegistryAuth,
    /// For manifests, read no further than `MAX_MANIFEST` (oci-client
    /// reads a manifest's whole body before anyone can look at its size).
    http: reqwest::Client,
    scheme: &'static str,
}

impl Registry {
    pub fn new(reference: &ScriptRef, plain_http: bool) -> Result<Registry> {
        let roots = certificates(&reference.registry)?;
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).read_timeout(Duration::from_secs(30)).user_agent(concat!("nsw/", env!("CARGO_PKG_VERSION")));
        let extra = roots.iter().map(|r| reqwest::Certificate::from_pem(&r.data).context("a CA certificate in certs.d is not PEM")).collect::<Result<Vec<_>>>()?;
        // Plain HTTP needs no roots, and loading the machine's takes ~0.1 s.
        http = if plain_http { http.tls_certs_only(extra) } else { http.tls_certs_merge(extra) };
        let http = http.build().context("cannot make an HTTP client")?;
        let config = ClientConfig {
            protocol: if plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            extra_root_certificates: roots,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(30)),
            user_agent: concat!("nsw/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client = WasmClient::new(oci_client::Client::new(config));
        Ok(Registry { client, auth: credentials(&reference.registry)?, http, scheme: if plain_http { "http" } else { "https" } })
    }

    /// The manifest `reference` names, read no further than `MAX_MANIFEST`.
    async fn manifest_bytes(&self, reference: &ScriptRef) -> Result<Vec<u8>> {
        let client: &oci_client::Client = self.client.as_ref();
        // The registry's token if it wants one (oci-client asks for it),
        // else the password from the auth file, else nothing.
        let token = client.auth(&reference.for_client()?, &self.auth, oci_client::RegistryOperation::Pull).await?;
        let name = reference.digest.as_deref().or(reference.tag.as_deref()).unwrap_or("latest");
        let url = format!("{}://{}/v2/{}/manifests/{name}", self.scheme, reference.registry, reference.repository);
        let mut request = self.http.get(&url).header(reqwest::header::ACCEPT, WASM_MANIFEST_MEDIA_TYPE);
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            _ => request,
        };
        let mut response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let mut body = Vec::new();
        let cap = if status.is_success() { MAX_MANIFEST } else { 4096 };
        while let Some(chunk) = response.chunk().await.with_context(|| format!("cannot read {url}"))? {
            if body.len() + chunk.len() > cap {
                if status.is_success() {
                    bail!("the manifest is larger than {} KiB: not a lab script's", MAX_MANIFEST >> 10);
                }
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // The distribution API's errors: {"errors":[{"code","message"}]}.
            let said = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["errors"].as_array().map(|e| e.iter().filter_map(|e| e["message"].as_str().or(e["code"].as_str())).collect::<Vec<_>>().join("; ")))
                .unwrap_or_default();
            bail!("the registry answered {status} for {url}{}{said}", if said.is_empty() { "" } else { ": " });
        }
        Ok(body)
    }

    /// The manifest `reference` names (by its digest if it has one, else
    /// by its tag), its digest, and the component's descriptor in it.
    pub async fn manifest(&self, reference: &ScriptRef) -> Result<(Vec<u8>, String, OciDescriptor)> {
        // By digest when pinned: the tag then only says where it came from.
        let ask = match &reference.digest {
            Some(digest) => ScriptRef { tag: None, ..reference.pinned(digest) },
            None => reference.clone(),
        };
        let raw = within(self.manifest_bytes(&ask)).await.with_context(|| format!("cannot get the manifest of {}", reference.canonical()))?;
        // The digest is the bytes' own, never what the registry says.
        let digest = digest_of(&raw);
        if let Some(pinned) = &reference.digest
            && *pinned != digest
        {
            bail!("the registry answered {} with a manifest whose digest is {digest}, not {pinned}: refused", reference.canonical());
        }
        let layer = component_of(&raw).with_context(|| format!("{} is not a lab script (a Wasm OCI artifact)", reference.canonical()))?;
        Ok((raw, digest, layer))
    }

    /// The component `layer` describes, checked against its digest and
    /// read no further than `max_bytes`.
    pub async fn component(&self, reference: &ScriptRef, layer: &OciDescriptor, max_bytes: usize) -> Result<Vec<u8>> {
        if layer.size < 0 {
            bail!("the manifest of {} gives its component a size of {}: refused", reference.canonical(), layer.size);
        }
        if layer.size as u64 > max_bytes as u64 {
            bail!("{} is {} bytes, more than --max-component ({} MiB)", reference.canonical(), layer.size, max_bytes >> 20);
        }
        let client: &oci_client::Client = self.client.as_ref();
        let mut out = Capped { bytes: Vec::with_capacity(layer.size as usize), max: max_bytes };
        let from = reference.for_client()?;
        within(client.pull_blob(&from, layer, &mut out)).await.with_context(|| format!("cannot get the component {} of {}", layer.digest, reference.canonical()))?;
        // oci-client checked the bytes against the layer's digest; so does nsw.
        if digest_of(&out.bytes) != layer.digest {
            bail!("the component of {} does not match its digest {}: refused", reference.canonical(), layer.digest);
        }
        Ok(out.bytes)
    }

    /// Publish `wasm` at `reference` (its tag); the manifest's digest.
    pub async fn push(&self, reference: &ScriptRef, wasm: Vec<u8>) -> Result<String> {
        let (config, layer) = WasmConfig::from_raw_component(wasm, None).context("not a WebAssembly component")?;
        let target = ScriptRef { digest: None, ..reference.clone() };
        let to = target.for_client()?;
        within(self.client.push(&to, &self.auth, layer, config, None)).await.with_context(|| format!("cannot push to {}", target.canonical()))?;
        let (_, digest, _) = self.manifest(&target).await?;
        Ok(digest)
    }
}

/// The one component layer of a Wasm OCI artifact's manifest.
pub fn component_of(raw: &[u8]) -> Result<OciDescriptor> {
    let manifest: OciImageManifest = serde_json::from_slice(raw).context("not an OCI image manifest")?;
    if manifest.media_type.as_deref().is_some_and(|t| t != WASM_MANIFEST_MEDIA_TYPE) {
        bail!("its manifest is {:?}, not {WASM_MANIFEST_MEDIA_TYPE}", manifest.media_type.unwrap_or_default());
    }
    if manifest.config.media_type != WASM_MANIFEST_CONFIG_MEDIA_TYPE {
        bail!("its config is {:?}, not {WASM_MANIFEST_CONFIG_MEDIA_TYPE}", manifest.config.media_type);
    }
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => {
            super::reference::check_digest(&layer.digest)?;
            Ok(layer.clone())
        }
        layers => bail!("it has {} layers; a lab script has one, {WASM_LAYER_MEDIA_TYPE}", layers.len()),
    }
}

async fn within<T, E: Into<anyhow::Error>>(work: impl Future<Output = std::result::Result<T, E>>) -> Result<T> {
    match tokio::time::timeout(DEADLINE, work).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => bail!("the registry did not answer within {} s", DEADLINE.as_secs()),
    }
}

/// A sink that refuses to grow past `max` bytes.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.max {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!("the component is larger than --max-component ({} MiB)", self.max >> 20))));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

fn env_dir(key: &str) -> Option<PathBuf> {
    std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn config_home() -> Option<PathBuf> {
    env_dir("XDG_CONFIG_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".config")))
}

/// The CA certificates for `registry` in the certs.d directories podman
/// and docker read.
fn certificates(registry: &str) -> Result<Vec<Certificate>> {
    let dirs = [config_home().map(|c| c.join("containers/certs.d")), Some("/etc/containers/certs.d".into()), Some("/etc/docker/certs.d".into())];
    let mut certs = Vec::new();
    for dir in dirs.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(dir.join(registry)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                certs.push(Certificate { encoding: CertificateEncoding::Pem, data });
            }
        }
    }
    Ok(certs)
}

/// `auths` credentials for `registry` from the first auth file that has
/// them: podman's (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers`,
/// `~/.config/containers`), then docker's (`$DOCKER_CONFIG`, `~/.docker`).
fn credentials(registry: &str) -> Result<RegistryAuth> {
    let files = [
        env_dir("REGISTRY_AUTH_FILE"),
        env_dir("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
        config_home().map(|c| c.join("containers/auth.json")),
        env_dir("DOCKER_CONFIG").or_else(|| env_dir("HOME").map(|h| h.join(".docker"))).map(|d| d.join("config.json")),
    ];
    for path in files.into_iter().flatten() {
        let Ok(text) = std::fs::read(&path) else { continue };
        let Ok(file) = serde_json::from_slice::<serde_json::Value>(&text) else { continue };
        let Some(auths) = file.get("auths").and_then(|a| a.as_object()) else { continue };
        for (key, entry) in auths {
            // Keys are `host[:port]`, sometimes with a scheme and a path.
            let host = key.trim_start_matches("https://").trim_start_matches("http://").split('/').next().unwrap_or_default();
            if host != registry {
                continue;
            }
            let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) else { continue };
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth).with_context(|| format!("{}: the auth of {registry} is not base64", path.display()))?;
            let decoded = String::from_utf8(decoded).with_context(|| format!("{}: the auth of {registry} is not text", path.display()))?;
            let (user, password) = decoded.split_once(':').with_context(|| format!("{}: the auth of {registry} is not user:password", path.display()))?;
            return Ok(RegistryAuth::Basic(user.to_string(), password.to_string()));
        }
    }
    Ok(RegistryAuth::Anonymous)
}
