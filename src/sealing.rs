//! Sealing values at rest with AES-256-GCM under one key per data directory: agents' secrets,
//! and the sensitive inputs of calls kept to run later (held for approval, scheduled), whose
//! stored copy is redacted.
//!
//! The key comes from `AGENTOS_SECRETS_KEY` (base64 of 32 bytes) or from a key file (mode 0600,
//! by default `<data_dir>/secrets.key`), generated on first use. Each value is sealed with a
//! fresh random nonce and bound to what it belongs to as associated data, so a sealed value
//! copied to another row does not open.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

const KEY_ENV: &str = "AGENTOS_SECRETS_KEY";
const NONCE_BYTES: usize = 12;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SealError {
    /// The key cannot be loaded; the message says why and what to do.
    #[error("the secrets key is unavailable: {0}")]
    KeyUnavailable(String),
    #[error("no randomness for a nonce: {0}")]
    NoRandomness(String),
    #[error("could not encrypt the value")]
    Encrypt,
    #[error("the sealed value is damaged (bad nonce)")]
    BadNonce,
    #[error("the sealed value cannot be decrypted: it was sealed with another key or is damaged")]
    Decrypt,
}

/// A sealed value: its nonce and its ciphertext (which carries the authentication tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Nonce and ciphertext in one blob, for a single column.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(self.nonce.len() + self.ciphertext.len());
        blob.extend_from_slice(&self.nonce);
        blob.extend_from_slice(&self.ciphertext);
        blob
    }

    pub fn from_blob(blob: &[u8]) -> Result<Self, SealError> {
        if blob.len() < NONCE_BYTES {
            return Err(SealError::BadNonce);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
        Ok(Self {
            nonce: nonce.to_vec(),
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// Loads the key once per process; a broken key is reported on every use, never guessed around.
pub struct Sealer {
    key_file: PathBuf,
    cipher: OnceLock<Result<Arc<Aes256Gcm>, String>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer whose key is `AGENTOS_SECRETS_KEY`, else the one in `key_file`; nothing is
    /// read until the first use.
    pub fn new(key_file: PathBuf) -> Self {
        Self {
            key_file,
            cipher: OnceLock::new(),
        }
    }

    fn cipher(&self) -> Result<Arc<Aes256Gcm>, SealError> {
        self.cipher
            .get_or_init(|| load_key(&self.key_file).map(|key| Arc::new(Aes256Gcm::new(&key.into()))))
            .clone()
            .map_err(|message| {
                tracing::error!(%message, "secrets key unavailable");
                SealError::KeyUnavailable(message)
            })
    }

    /// Seals `plaintext`, bound to `context` (what it belongs to).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| SealError::NoRandomness(e.to_string()))?;
        let ciphertext = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens what [`Sealer::seal`] sealed with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        if sealed.nonce.len() != NONCE_BYTES {
            return Err(SealError::BadNonce);
        }
        self.cipher()?
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Decrypt)
    }
}

/// The key from the environment, else from the key file, generating the file if absent.
fn load_key(key_file: &Path) -> Result<[u8; 32], String> {
    if let Ok(encoded) = std::env::var(KEY_ENV) {
        return decode_key(encoded.trim()).map_err(|e| format!("{KEY_ENV}: {e}"));
    }
    match std::fs::read_to_string(key_file) {
        Ok(text) => {
            check_private(key_file)?;
            decode_key(text.trim()).map_err(|e| format!("{}: {e}", key_file.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create_key_file(key_file),
        Err(error) => Err(format!("cannot read {}: {error}", key_file.display())),
    }
}

fn decode_key(encoded: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64
        .decode(encoded)
        .map_err(|e| format!("not valid base64 ({e}); expected 32 bytes encoded in base64"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("the key is {} bytes; AES-256 needs exactly 32", bytes.len()))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

fn create_key_file(path: &Path) -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for a key: {e}"))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(BASE64.encode(key).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the secrets key");
            Ok(key)
        }
        // Another process sharing the data directory created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            decode_key(text.trim()).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(error) => Err(format!("cannot create {}: {error}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(dir: &Path) -> Sealer {
        Sealer::new(dir.join("secrets.key"))
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = sealer(dir.path());
        let sealed = sealer.seal(b"a\0TOKEN", b"hunter2").unwrap();
        assert!(
            !sealed.ciphertext.windows(7).any(|w| w == b"hunter2"),
            "no plaintext in the ciphertext"
        );
        assert_eq!(sealer.open(b"a\0TOKEN", &sealed).unwrap(), b"hunter2");
        assert!(matches!(sealer.open(b"b\0TOKEN", &sealed), Err(SealError::Decrypt)));
        let again = sealer.seal(b"a\0TOKEN", b"hunter2").unwrap();
        assert_ne!(sealed.nonce, again.nonce, "fresh nonce per seal");
        let blob = sealed.to_blob();
        assert_eq!(Sealed::from_blob(&blob).unwrap(), sealed);
        assert!(matches!(Sealed::from_blob(&blob[..5]), Err(SealError::BadNonce)));
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sealed = sealer(dir.path()).seal(b"n", b"v").unwrap();
        let mode = std::fs::metadata(dir.path().join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            sealer(dir.path()).open(b"n", &sealed).unwrap(),
            b"v",
            "same key next start"
        );
        std::fs::set_permissions(dir.path().join("secrets.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = sealer(dir.path()).open(b"n", &sealed).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(decode_key("not base64!").unwrap_err().contains("base64"));
        assert!(decode_key(&BASE64.encode([1u8; 16])).unwrap_err().contains("16 bytes"));
    }
}
