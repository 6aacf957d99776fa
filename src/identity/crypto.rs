//! The identity service's cryptographic chores: randomness, hashes of cookies and reset tokens,
//! argon2id password hashes (off the async threads), and the JWT signing key file.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::error::IdentityError;

/// Bytes of a generated signing key: comfortably above HS256's 32-byte floor.
const GENERATED_KEY_BYTES: usize = 64;
const MIN_KEY_BYTES: usize = 32;

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| IdentityError::internal(format!("no randomness available: {e}")))?;
    Ok(bytes)
}

/// 32 random bytes, base64url without padding: session cookies, CSRF and reset tokens.
pub(crate) fn random_token() -> Result<String, IdentityError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// `agent_` and 16 lowercase hex digits.
pub(crate) fn new_agent_id() -> Result<String, IdentityError> {
    Ok(format!("agent_{}", hex::encode(random_bytes::<8>()?)))
}

/// How session ids and reset tokens are stored: a leaked table cannot be replayed.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Hashes a password with argon2id (default parameters) on a blocking thread: it takes tens of
/// milliseconds of CPU and would stall the async workers.
pub(crate) async fn hash_password(password: String) -> Result<String, IdentityError> {
    let salt = random_bytes::<16>()?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| IdentityError::internal(format!("password hashing task failed: {e}")))?
    .map_err(|e| IdentityError::internal(format!("cannot hash a password: {e}")))
}

/// Checks a password against a stored hash, or against a dummy hash when there is none, so an
/// unknown email costs the same time as a wrong password and does not reveal the account.
pub(crate) async fn verify_password(password: String, stored: Option<String>) -> Result<bool, IdentityError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let hash_text = match stored {
            Some(hash) => hash,
            None => dummy_hash().to_owned(),
        };
        let Ok(hash) = PasswordHash::new(&hash_text) else {
            tracing::error!("a stored password hash is damaged; the account cannot sign in");
            return false;
        };
        let matches = Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
        known && matches
    })
    .await
    .map_err(|e| IdentityError::internal(format!("password check task failed: {e}")))
}

/// Builds the dummy hash in the background, so the first sign-in with an unknown email takes no
/// longer than later ones (which would tell it apart from a wrong password).
pub(crate) fn warm_up() {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn_blocking(|| {
            dummy_hash();
        });
    }
}

/// A hash of a random password with the same parameters real hashes use, made on first need.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 16];
        // Even a zero secret gives a full-cost hash, which is all this is for: `verify_password`
        // never reports a match against it.
        let _ = getrandom::fill(&mut secret);
        SaltString::encode_b64(&secret)
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(&secret, &salt)
                    .map(|hash| hash.to_string())
            })
            .unwrap_or_default()
    })
}

/// The HS256 secret: the configured one, else `<data_dir>/jwt.key`, generated (mode 0600) on
/// first start and reused afterwards so tokens survive restarts.
pub(crate) fn signing_key(configured: &str, data_dir: &Path) -> Result<Vec<u8>, IdentityError> {
    if !configured.is_empty() {
        if configured.len() < MIN_KEY_BYTES {
            return Err(IdentityError::SigningKey(format!(
                "`identity.signing_key` must be at least {MIN_KEY_BYTES} bytes (or empty to generate one)"
            )));
        }
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_key(&text, &path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create_key_file(&path),
        Err(error) => Err(IdentityError::SigningKey(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

fn decode_key(text: &str, path: &Path) -> Result<Vec<u8>, IdentityError> {
    let key = STANDARD
        .decode(text.trim())
        .map_err(|e| IdentityError::SigningKey(format!("{} is not valid base64: {e}", path.display())))?;
    if key.len() < MIN_KEY_BYTES {
        return Err(IdentityError::SigningKey(format!(
            "{} holds {} bytes; at least {MIN_KEY_BYTES} are needed (delete it to generate a new one)",
            path.display(),
            key.len()
        )));
    }
    Ok(key)
}

fn create_key_file(path: &Path) -> Result<Vec<u8>, IdentityError> {
    let key = random_bytes::<GENERATED_KEY_BYTES>()?;
    match write_private(path, STANDARD.encode(key).as_bytes(), true) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the token signing key");
            Ok(key.to_vec())
        }
        // Another process sharing the data directory created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| IdentityError::SigningKey(format!("cannot read {}: {e}", path.display())))?;
            decode_key(&text, path)
        }
        Err(error) => Err(IdentityError::SigningKey(format!(
            "cannot create {}: {error}",
            path.display()
        ))),
    }
}

/// Writes a file only its owner can read. `create_new` refuses to replace an existing file;
/// otherwise the content goes to a temporary file renamed over the target, so a reader never
/// sees half a file and the mode is 0600 whatever the old file's was.
pub(crate) fn write_private(path: &Path, content: &[u8], create_new: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let target = if create_new {
        path.to_path_buf()
    } else {
        path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()))
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&target)?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    if create_new {
        return written;
    }
    match written.and_then(|()| std::fs::rename(&target, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&target);
            Err(error)
        }
    }
}

/// Appends one line to a file created with mode 0600 if it does not exist yet.
pub(crate) fn append_private(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }

    #[test]
    fn the_generated_key_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = signing_key("", dir.path()).unwrap();
        assert_eq!(first.len(), GENERATED_KEY_BYTES);
        assert_eq!(signing_key("", dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("jwt.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = "k".repeat(32);
        assert_eq!(signing_key(&configured, dir.path()).unwrap(), configured.as_bytes());
        assert!(signing_key("short", dir.path()).is_err());
    }

    #[test]
    fn hashes_and_ids_have_the_documented_shape() {
        assert_eq!(sha256_hex("abc").len(), 64);
        let id = new_agent_id().unwrap();
        assert_eq!(id.len(), "agent_".len() + 16);
        assert!(
            id["agent_".len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(random_token().unwrap()).unwrap().len(), 32);
    }
}
