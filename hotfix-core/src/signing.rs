//! Signed patches: an Ed25519 signature over a patch file's SHA-256, kept in
//! a file beside the patch (`libpatch.so.sig`).
//!
//! A host that trusts at least one public key refuses, before anything of the
//! patch is loaded, a patch without a signature file, one whose bytes changed
//! after signing, and one signed by a key it does not trust. Keys are trusted
//! with [`crate::Runtime::trust_key`] or through the environment variable
//! `HOTFIX_TRUSTED_KEYS` (paths of public key files, separated by `:`), read
//! once when the runtime starts. With no key trusted, signatures are not
//! checked, and the runtime says so once, at the first load.
//!
//! Files (one line of text each):
//! - public key: `hotfix-ed25519-public <64 hex digits>`
//! - secret key: `hotfix-ed25519-secret <64 hex digits>` (written mode 0600)
//! - signature: `hotfix-ed25519-signature <128 hex digits> <key id>`; what is
//!   signed is `hotfix-patch-v1\0` followed by the 32 bytes of the digest.

use crate::digest::Digest;
use crate::error::{Error, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const PUBLIC_TAG: &str = "hotfix-ed25519-public";
const SECRET_TAG: &str = "hotfix-ed25519-secret";
const SIGNATURE_TAG: &str = "hotfix-ed25519-signature";
const CONTEXT: &[u8] = b"hotfix-patch-v1\0";
/// Longest key or signature file read.
const MAX_FILE: u64 = 4096;

/// A public key a host may trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A secret key that signs patches.
pub struct SecretKey(SigningKey);

impl PublicKey {
    /// A short id of the key: the first 8 bytes of the SHA-256 of its bytes, in hex.
    pub fn id(&self) -> String {
        Digest::of(self.0.as_bytes()).to_string()[..16].to_owned()
    }

    /// The key file's text.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG} {}\n", hex(self.0.as_bytes()))
    }

    /// Reads a public key file. Like a patch file, it (and its directory) must
    /// be owned by this user or root and writable by its owner only: whoever
    /// can change it chooses what the host trusts.
    pub fn read(path: &Path) -> Result<Self> {
        for p in [Some(path), path.parent()].into_iter().flatten() {
            let p = if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            };
            let meta = std::fs::metadata(p).map_err(|source| Error::Io {
                path: p.to_owned(),
                source,
            })?;
            crate::loader::check_mode(p, &meta, "the trusted key").map_err(|e| match e {
                Error::Insecure { reason, .. } => key_error(path, reason),
                other => other,
            })?;
        }
        let text = read_small(path)?;
        let bytes = parse_line(&text, PUBLIC_TAG, 32).map_err(|reason| key_error(path, reason))?;
        let key = VerifyingKey::from_bytes(&bytes.try_into().expect("32 bytes"))
            .map_err(|e| key_error(path, format!("not an Ed25519 public key: {e}")))?;
        Ok(Self(key))
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| Error::Signing {
            reason: format!("no randomness for a new key: {e}"),
        })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Reads a secret key file; refuses one that others may read.
    pub fn read(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_error(
                path,
                format!(
                    "mode {mode:o} lets others read the secret key; chmod 600 it (and make a new key if others could have read it)"
                ),
            ));
        }
        let text = read_small(path)?;
        let bytes = parse_line(&text, SECRET_TAG, 32).map_err(|reason| key_error(path, reason))?;
        Ok(Self(SigningKey::from_bytes(
            &bytes.try_into().expect("32 bytes"),
        )))
    }

    /// Writes the key to a new file only its owner can read; refuses to
    /// overwrite.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = format!("{SECRET_TAG} {}\n", hex(self.0.as_bytes()));
        write_new(path, &text, 0o600)
    }

    /// Signs the file at `patch` and writes its signature file beside it;
    /// returns the signature file's path.
    pub fn sign_file(&self, patch: &Path) -> Result<PathBuf> {
        let limit = crate::loader::DEFAULT_MAX_PATCH_SIZE;
        let mut bytes = Vec::new();
        std::fs::File::open(patch)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            .map_err(|source| Error::Io {
                path: patch.to_owned(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                path: patch.to_owned(),
                size: bytes.len() as u64,
                limit,
            });
        }
        let digest = Digest::of(&bytes);
        let sig = self.0.sign(&message(&digest));
        let out = signature_path(patch);
        let text = format!(
            "{SIGNATURE_TAG} {} {}\n",
            hex(&sig.to_bytes()),
            self.public().id()
        );
        let io = |source| Error::Io {
            path: out.clone(),
            source,
        };
        // Replaces an older signature, never writes through a symlink.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&out)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(io)?;
        Ok(out)
    }
}

/// Writes a public key file (refuses to overwrite).
pub fn write_public(key: &PublicKey, path: &Path) -> Result<()> {
    write_new(path, &key.to_text(), 0o644)
}

/// Where the signature of `patch` is kept: `<patch>.sig`.
pub fn signature_path(patch: &Path) -> PathBuf {
    let mut p = patch.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// The id of the key the signature file of `patch` names, if it has a
/// readable one. Not verified.
pub fn claimed_signer(patch: &Path) -> Option<String> {
    let text = read_small(&signature_path(patch)).ok()?;
    let mut words = text.split_whitespace();
    (words.next() == Some(SIGNATURE_TAG))
        .then(|| words.nth(1).map(str::to_owned))
        .flatten()
}

fn message(digest: &Digest) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(&digest.0);
    m
}

/// Checks the signature of the patch at `patch` (whose bytes hash to `digest`)
/// against `trusted`; returns the id of the key that signed it.
pub(crate) fn verify(patch: &Path, digest: &Digest, trusted: &[PublicKey]) -> Result<String> {
    let sig_path = signature_path(patch);
    let refused = |reason: String| Error::SignatureRefused {
        path: patch.to_owned(),
        reason,
    };
    let text = match read_small(&sig_path) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => {
            return Err(refused(format!(
                "it is not signed ({} does not exist) and this host only applies patches signed by a trusted key; sign it with `hotfix sign`",
                sig_path.display()
            )));
        }
        Err(e) => return Err(e),
    };
    let bytes = parse_line(&text, SIGNATURE_TAG, 64)
        .map_err(|r| refused(format!("{}: {r}", sig_path.display())))?;
    let sig = Signature::from_bytes(&bytes.try_into().expect("64 bytes"));
    let msg = message(digest);
    if trusted.is_empty() {
        return Err(refused(
            "this host requires signed patches but trusts no readable key (check HOTFIX_TRUSTED_KEYS)".into(),
        ));
    }
    for key in trusted {
        if key.0.verify_strict(&msg, &sig).is_ok() {
            return Ok(key.id());
        }
    }
    Err(refused(format!(
        "its signature ({}) does not verify with any of the {} trusted key(s) ({}): the file changed after it was signed, or another key signed it",
        sig_path.display(),
        trusted.len(),
        trusted
            .iter()
            .map(PublicKey::id)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn key_error(path: &Path, reason: String) -> Error {
    Error::KeyFile {
        path: path.to_owned(),
        reason,
    }
}

/// Reads a small text file, at most [`MAX_FILE`] bytes.
fn read_small(path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.to_owned(),
            }
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut text = String::new();
    f.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    if text.len() as u64 > MAX_FILE {
        return Err(key_error(path, format!("longer than {MAX_FILE} bytes")));
    }
    Ok(text)
}

/// The bytes of `<tag> <hex> ...` with exactly `len` bytes of hex.
fn parse_line(text: &str, tag: &str, len: usize) -> std::result::Result<Vec<u8>, String> {
    let mut words = text.split_whitespace();
    if words.next() != Some(tag) {
        return Err(format!("does not start with `{tag}`"));
    }
    let h = words.next().ok_or("no value after the tag")?;
    if h.len() != 2 * len || !h.is_ascii() {
        return Err(format!("expected {} hex digits", 2 * len));
    }
    (0..len)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| "not hex".to_owned()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip_and_refusals() {
        let dir = std::env::temp_dir().join(format!("hotfix-signing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let patch = dir.join("p.so");
        std::fs::write(&patch, b"patch bytes").unwrap();
        let key = SecretKey::generate().unwrap();
        key.sign_file(&patch).unwrap();
        let digest = Digest::of(b"patch bytes");
        assert_eq!(
            verify(&patch, &digest, &[key.public()]).unwrap(),
            key.public().id()
        );
        let other = SecretKey::generate().unwrap();
        assert!(verify(&patch, &digest, &[other.public()]).is_err());
        assert!(verify(&patch, &Digest::of(b"patch bytez"), &[key.public()]).is_err());
        std::fs::remove_file(signature_path(&patch)).unwrap();
        let e = verify(&patch, &digest, &[key.public()]).unwrap_err();
        assert!(e.to_string().contains("not signed"), "{e}");
        // Key files round-trip.
        key.write(&dir.join("k.secret")).unwrap();
        write_public(&key.public(), &dir.join("k.pub")).unwrap();
        assert_eq!(PublicKey::read(&dir.join("k.pub")).unwrap(), key.public());
        assert_eq!(
            SecretKey::read(&dir.join("k.secret")).unwrap().public(),
            key.public()
        );
        assert!(
            key.write(&dir.join("k.secret")).is_err(),
            "never overwrites"
        );
        assert!(PublicKey::read(&dir.join("k.secret")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
