//! `oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`: how a lab script is
//! named in a registry, and the one canonical way nsw writes it back (in
//! the journal, `nsw ls`, nsw.lock).

use std::path::Path;

use anyhow::{Context, Result, bail};

pub const SCHEME: &str = "oci://";

/// A parsed reference to a lab script in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRef {
    /// The registry's host (and port), as written.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`, if the reference pins one.
    pub digest: Option<String>,
}

/// Whether a command's script argument names a registry, not a file.
pub fn is_reference(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

impl ScriptRef {
    /// Parse `oci://...`; the registry is always explicit (no implied
    /// Docker Hub: a lab script's origin is never a guess).
    pub fn parse(text: &str) -> Result<ScriptRef> {
        let rest = text.strip_prefix(SCHEME).with_context(|| format!("{text}: a reference starts with {SCHEME}"))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => (r, Some(check_digest(d).with_context(|| format!("{text}: bad digest"))?)),
            None => (rest, None),
        };
        let (registry, path) = rest.split_once('/').with_context(|| format!("{text}: expected {SCHEME}REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]"))?;
        if !is_registry(registry) {
            bail!("{text}: {registry:?} is not a registry HOST[:PORT] (a host name, an IPv4 address or [an IPv6 one])");
        }
        // Host names are case-blind: one spelling for trust, tags and locks.
        let registry = registry.to_ascii_lowercase();
        let registry = registry.as_str();
        // A colon after the last slash starts the tag.
        let (repository, tag) = match path.rfind(':') {
            Some(at) if !path[at..].contains('/') => (&path[..at], Some(&path[at + 1..])),
            _ => (path, None),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if repository.len() > 255 || !repository.split('/').all(component_ok) {
            bail!("{text}: {repository:?} is not a repository name (lowercase letters, digits, '.', '_', '-', parts joined by '/')");
        }
        if let Some(tag) = tag {
            let ok = (1..=128).contains(&tag.len())
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                bail!("{text}: {tag:?} is not a tag");
            }
        }
        if tag.is_none() && digest.is_none() {
            // As docker and wkg do, no tag means `latest`.
            return Ok(ScriptRef { registry: registry.into(), repository: repository.into(), tag: Some("latest".into()), digest });
        }
        Ok(ScriptRef { registry: registry.into(), repository: repository.into(), tag: tag.map(String::from), digest })
    }

    /// `REGISTRY/REPOSITORY`: what trust is given for (`--for`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference as written back: tag and digest where known.
    pub fn canonical(&self) -> String {
        let mut s = format!("{SCHEME}{}", self.name());
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }

    /// The same reference, pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> ScriptRef {
        ScriptRef { digest: Some(digest.to_string()), ..self.clone() }
    }

    /// The same reference as a tag alone (what a tag record is kept under).
    pub fn by_tag(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{SCHEME}{}:{t}", self.name()))
    }

    /// The last part of the repository: the lab's default name.
    pub fn stem(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or(&self.repository)
    }

    /// The reference as oci-client takes it.
    pub fn for_client(&self) -> Result<oci_client::Reference> {
        let reference = match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(self.registry.clone(), self.repository.clone(), tag.clone(), digest.clone()),
            (None, Some(digest)) => oci_client::Reference::with_digest(self.registry.clone(), self.repository.clone(), digest.clone()),
            (Some(tag), None) => oci_client::Reference::with_tag(self.registry.clone(), self.repository.clone(), tag.clone()),
            (None, None) => bail!("{}: neither a tag nor a digest", self.canonical()),
        };
        Ok(reference)
    }

    /// Whether trust given `--for PREFIX` covers this reference: the whole
    /// registry, a repository, or a path of repositories, at a `/`.
    pub fn within(&self, prefix: &str) -> bool {
        let name = self.name();
        let prefix = prefix.trim_end_matches('/');
        name == prefix || name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// `HOST[:PORT]`: a host name of dot-separated labels (letters, digits,
/// inner '-'), an IPv4 address, or an IPv6 one in brackets.
fn is_registry(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.starts_with('[')) => (h, Some(p)),
        _ => (text, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let label_ok = |l: &str| (1..=63).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-');
    !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
}

/// `sha256:` and 64 lowercase hex digits: the only digests nsw accepts.
pub fn check_digest(digest: &str) -> Result<String> {
    let hex = digest.strip_prefix("sha256:").context("only sha256 digests are accepted")?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        bail!("{digest:?} is not sha256: and 64 lowercase hex digits");
    }
    Ok(digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_digests_and_ports() {
        let r = ScriptRef::parse("oci://127.0.0.1:5000/labs/pbj:v1").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref(), r.digest.as_deref()), ("127.0.0.1:5000", "labs/pbj", Some("v1"), None));
        assert_eq!(r.stem(), "pbj");
        let r = ScriptRef::parse(&format!("oci://reg.example/pbj@{D}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.digest.as_deref()), (None, Some(D)));
        assert_eq!(r.canonical(), format!("oci://reg.example/pbj@{D}"));
        let r = ScriptRef::parse(&format!("oci://reg.example/pbj:v2@{D}")).unwrap();
        assert_eq!(r.by_tag().unwrap(), "oci://reg.example/pbj:v2");
        assert_eq!(ScriptRef::parse("oci://reg.example/pbj").unwrap().tag.as_deref(), Some("latest"));
        assert_eq!(ScriptRef::parse("oci://Reg.Example:5000/pbj").unwrap().registry, "reg.example:5000");
        assert_eq!(ScriptRef::parse("oci://[::1]:5000/pbj").unwrap().registry, "[::1]:5000");
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in ["pbj.wasm", "oci://", "oci://reg", "oci://reg/UPPER", "oci://reg/a:b c", "oci://reg/a@sha256:12", "oci://reg/a@md5:00", "oci://re g/a", "oci://reg//a", "oci://../a", "oci://reg:0/a", "oci://reg:99999/a", "oci://[::1/a", "oci://-reg/a", "oci://a..b/a"] {
            assert!(ScriptRef::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn trust_prefixes_end_at_a_slash() {
        let r = ScriptRef::parse("oci://reg:5000/labs/pbj:v1").unwrap();
        assert!(r.within("reg:5000"));
        assert!(r.within("reg:5000/labs"));
        assert!(r.within("reg:5000/labs/pbj"));
        assert!(!r.within("reg:5000/lab"));
        assert!(!r.within("reg:500"));
        assert!(!r.within("reg:5000/labs/pbj2"));
    }
}
