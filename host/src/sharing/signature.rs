//! Signatures over lab scripts, in wasmsign2's format: an Ed25519
//! signature of the whole component's bytes (every section, custom ones
//! too), carried in the component itself as its first custom section
//! (`signature`), so it travels with the file wherever the file goes.
//!
//! The signature names its key: the key id nsw writes is the public key
//! itself, so a refusal can say who signed and the one command that would
//! trust them. A named key is only a claim until the signature verifies
//! with it; trust is decided by the keys in trust.toml, never by the claim.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasmsign2::{KeyPair, PublicKey, SecretKey};

/// The text form of a public key: `ed25519:` and its 32 bytes in hex, what
/// `nsw trust add` takes and trust.toml keeps.
pub const KEY_PREFIX: &str = "ed25519:";

/// A public key as nsw shows and stores it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Key(PublicKey);

impl Key {
    /// `ed25519:HEX`, or a file holding a public key (PEM, DER, raw).
    pub fn parse(text: &str) -> Result<Key> {
        if let Some(hex) = text.strip_prefix(KEY_PREFIX) {
            let bytes = decode_hex(hex).with_context(|| format!("{text}: not {KEY_PREFIX} and 64 hex digits"))?;
            // wasmsign2's raw form: the algorithm's id (1: Ed25519), the key.
            let raw: Vec<u8> = std::iter::once(1u8).chain(bytes).collect();
            return PublicKey::from_bytes(&raw).map(Key).map_err(|e| anyhow::anyhow!("{text}: {e}"));
        }
        let path = Path::new(text);
        if !path.exists() {
            bail!("{text}: neither {KEY_PREFIX}HEX nor a public key file");
        }
        let data = std::fs::read(path).with_context(|| format!("cannot read {text}"))?;
        let pk = PublicKey::from_any(&data).map_err(|e| anyhow::anyhow!("{text}: not a public key: {e}"))?;
        Ok(Key(PublicKey { key_id: None, ..pk }))
    }

    pub fn text(&self) -> String {
        format!("{KEY_PREFIX}{}", hex(self.0.pk.as_ref()))
    }

    /// A short name for people: the first 16 hex digits of the key's SHA-256.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", &hex(&Sha256::digest(self.0.pk.as_ref()))[..16])
    }

    /// Whether `wasm` carries a signature by this key that verifies.
    pub fn signed(&self, wasm: &[u8]) -> bool {
        self.0.verify(&mut std::io::Cursor::new(wasm), None).is_ok()
    }
}

/// What a component says of its signatures.
#[derive(Debug)]
pub enum Signature {
    Unsigned,
    /// Signed; by the keys it names (nsw names the key itself), each with
    /// whether its signature verifies.
    Signed(Vec<(Key, bool)>),
    /// A signature section nsw cannot read, or one naming no key.
    Unreadable(String),
}

/// Read and check the signatures `wasm` carries.
pub fn read(wasm: &[u8]) -> Signature {
    let info = match wasmsign2::signature_info_from_reader(&mut std::io::Cursor::new(wasm), None) {
        Ok(info) => info,
        Err(wasmsign2::WSError::NoSignatures) => return Signature::Unsigned,
        Err(e) => return Signature::Unreadable(e.to_string()),
    };
    if !info.is_signed() {
        return Signature::Unsigned;
    }
    let mut keys = Vec::new();
    for id in info.key_ids() {
        let Ok(pk) = PublicKey::from_bytes(id) else { continue };
        let key = Key(pk);
        let verifies = key.signed(wasm);
        keys.push((key, verifies));
    }
    if keys.is_empty() {
        return Signature::Unreadable("its signature names no key nsw can use".into());
    }
    Signature::Signed(keys)
}

/// `wasm` signed with the secret key in `key_file` (any signature it had
/// is replaced); the signature names the key.
pub fn sign(wasm: &[u8], key_file: &Path) -> Result<(Vec<u8>, Key)> {
    let data = std::fs::read(key_file).with_context(|| format!("cannot read the key {}", key_file.display()))?;
    let sk = SecretKey::from_any(&data).map_err(|e| anyhow::anyhow!("{}: not a secret key: {e}", key_file.display()))?;
    let pk = PublicKey { pk: sk.sk.public_key(), key_id: None };
    let module = wasmsign2::Module::deserialize(&mut std::io::Cursor::new(wasm)).map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    let signed = sk.sign(module, Some(&pk.to_bytes())).map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    let mut out = Vec::with_capacity(wasm.len() + 256);
    signed.serialize(&mut out).map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    Ok((out, Key(pk)))
}

/// A new key pair: the secret key in `file` (PEM, PKCS#8, mode 0600, as
/// `openssl genpkey -algorithm ed25519` writes it), the public one in
/// `file.pub` (PEM). Never overwrites a file.
pub fn new_pair(file: &Path) -> Result<Key> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let public = public_file(file);
    for path in [file, public.as_path()] {
        if path.exists() {
            bail!("{} exists: nsw never overwrites a key", path.display());
        }
    }
    let pair = KeyPair::generate();
    let create = |path: &Path, mode: u32, text: &str| -> Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
    };
    create(file, 0o600, &pair.sk.to_pem())?;
    if let Err(e) = create(&public, 0o644, &pair.pk.to_pem()) {
        let _ = std::fs::remove_file(file);
        return Err(e);
    }
    Ok(Key(pair.pk))
}

/// Where [`new_pair`] puts the public key of `file`.
pub fn public_file(file: &Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of a header and one custom section (`x`: "hello").
    const COMPONENT: &[u8] = &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x07, 0x01, b'x', b'h', b'e', b'l', b'l', b'o'];

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let dir = std::env::temp_dir().join(format!("nsw-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let key_a = new_pair(&a).unwrap();
        let key_b = new_pair(&b).unwrap();
        assert!(new_pair(&a).is_err(), "a key was overwritten");
        assert_eq!(Key::parse(public_file(&a).to_str().unwrap()).unwrap(), key_a);
        assert_eq!(Key::parse(&key_a.text()).unwrap(), key_a);
        let (signed, by) = sign(COMPONENT, &a).unwrap();
        assert_eq!(by, key_a);
        assert!(key_a.signed(&signed) && !key_b.signed(&signed) && !key_a.signed(COMPONENT));
        match read(&signed) {
            Signature::Signed(keys) => assert_eq!(keys, vec![(key_a.clone(), true)]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(read(COMPONENT), Signature::Unsigned));
        // One byte of the signed part changed: the named key no longer verifies.
        let mut tampered = signed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        match read(&tampered) {
            Signature::Signed(keys) => assert_eq!(keys, vec![(key_a, false)]),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
