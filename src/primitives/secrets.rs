//! Secrets: per-agent values encrypted at rest with AES-256-GCM.
//!
//! The key comes from `AGENTOS_SECRETS_KEY` (base64 of 32 bytes) or from a key file in the data
//! directory (mode 0600), generated on first use. Each value is sealed with a fresh random nonce
//! and bound to its owner and name as associated data, so a sealed row copied to another agent
//! or name does not decrypt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::{Empty, Hints, Tool, ToolBuilder, ToolFailure};

const KEY_ENV: &str = "AGENTOS_SECRETS_KEY";
const NONCE_BYTES: usize = 12;

/// Loads the key once per process; a broken key is reported on every call, never guessed around.
struct Sealer {
    key_file: PathBuf,
    cipher: OnceLock<Result<Arc<Aes256Gcm>, String>>,
}

impl Sealer {
    fn cipher(&self) -> Result<Arc<Aes256Gcm>, ToolFailure> {
        self.cipher
            .get_or_init(|| load_key(&self.key_file).map(|key| Arc::new(Aes256Gcm::new(&key.into()))))
            .clone()
            .map_err(|message| {
                tracing::error!(%message, "secrets key unavailable");
                ToolFailure::new(format!("secrets are unavailable: {message}"))
            })
    }

    fn seal(&self, owner: &str, name: &str, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ToolFailure> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| ToolFailure::new(format!("no randomness for a nonce: {e}")))?;
        let aad = associated_data(owner, name);
        let ciphertext = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| ToolFailure::new("could not encrypt the secret"))?;
        Ok((nonce.to_vec(), ciphertext))
    }

    fn open(&self, owner: &str, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, ToolFailure> {
        if nonce.len() != NONCE_BYTES {
            return Err(ToolFailure::new("the stored secret is damaged (bad nonce)"));
        }
        let aad = associated_data(owner, name);
        self.cipher()?
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                ToolFailure::new("the secret cannot be decrypted: it was sealed with another key or is damaged")
            })
    }
}

fn associated_data(owner: &str, name: &str) -> Vec<u8> {
    format!("agentos-secret\0{owner}\0{name}").into_bytes()
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

fn check_name(name: &str) -> Result<(), ToolFailure> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ToolFailure::new(
            "`name` must be 1-128 characters from A-Z, a-z, 0-9, `_`, `-` and `.`, e.g. `GITHUB_TOKEN`",
        ))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetArgs {
    /// Secret name: 1-128 of A-Z, a-z, 0-9, `_`, `-`, `.`, e.g. `GITHUB_TOKEN`.
    #[schemars(length(min = 1, max = 128))]
    name: String,
    /// The secret value (text). It is encrypted before it is stored.
    value: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SetResult {
    name: String,
    /// True if the name was new; false if an older value was replaced.
    created: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameArgs {
    /// The secret's name.
    #[schemars(length(min = 1, max = 128))]
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct GetResult {
    name: String,
    /// Whether a secret of that name exists.
    found: bool,
    /// The decrypted value; absent when not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    updated_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ListResult {
    /// Names only; values are never listed.
    secrets: Vec<Listed>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct DeleteResult {
    name: String,
    /// False if there was no such secret.
    deleted: bool,
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let config = &services.config.secrets;
    let sealer = Arc::new(Sealer {
        key_file: config
            .key_file
            .clone()
            .unwrap_or_else(|| services.config.data_dir.join("secrets.key")),
        cipher: OnceLock::new(),
    });
    let (set_services, get_services, list_services, delete_services) =
        (services.clone(), services.clone(), services.clone(), services.clone());
    let (set_sealer, get_sealer) = (sealer.clone(), sealer);
    vec![
        ToolBuilder::new("agentos.secret_set")
            .title("Store a secret")
            .description(
                "Stores a secret value (an API key, a password) under a name, encrypted at rest \
                 and readable only by you. Replaces an existing secret of that name. Use it \
                 instead of agentos.mem_set for anything sensitive.",
            )
            .hints(Hints::WRITE)
            .handler(move |args: SetArgs, ctx| {
                let (services, sealer) = (set_services.clone(), set_sealer.clone());
                async move {
                    check_name(&args.name)?;
                    let limits = &services.config.secrets;
                    if args.value.len() > limits.max_value_bytes {
                        return Err(ToolFailure::new(format!(
                            "`value` is {} bytes; secrets are limited to {} bytes",
                            args.value.len(),
                            limits.max_value_bytes
                        )));
                    }
                    let owner = &ctx.caller.agent_id;
                    let is_new = services.store.secret_fetch(owner, &args.name).await?.is_none();
                    if is_new && services.store.secret_count(owner).await? >= limits.max_secrets_per_agent {
                        return Err(ToolFailure::new(format!(
                            "you already keep {} secrets, the limit; delete one with agentos.secret_delete first",
                            limits.max_secrets_per_agent
                        )));
                    }
                    let (nonce, ciphertext) = sealer.seal(owner, &args.name, args.value.as_bytes())?;
                    let created = services.store.secret_put(owner, &args.name, nonce, ciphertext).await?;
                    Ok(SetResult {
                        name: args.name,
                        created,
                    })
                }
            }),
        ToolBuilder::new("agentos.secret_get")
            .title("Read a secret")
            .description(
                "Returns the decrypted value of one of your secrets, or found=false if there is \
                 none of that name (agentos.secret_list shows the names).",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: NameArgs, ctx| {
                let (services, sealer) = (get_services.clone(), get_sealer.clone());
                async move {
                    check_name(&args.name)?;
                    let owner = &ctx.caller.agent_id;
                    let Some(sealed) = services.store.secret_fetch(owner, &args.name).await? else {
                        return Ok(GetResult {
                            name: args.name,
                            found: false,
                            value: None,
                            updated_at_ms: None,
                        });
                    };
                    let plaintext = sealer.open(owner, &args.name, &sealed.nonce, &sealed.ciphertext)?;
                    let value = String::from_utf8(plaintext)
                        .map_err(|_| ToolFailure::new("the stored secret is not valid text"))?;
                    Ok(GetResult {
                        name: args.name,
                        found: true,
                        value: Some(value),
                        updated_at_ms: Some(sealed.updated_at_ms),
                    })
                }
            }),
        ToolBuilder::new("agentos.secret_list")
            .title("List secrets")
            .description("Lists the names of your secrets (never their values), in name order.")
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, ctx| {
                let services = list_services.clone();
                async move {
                    let names = services.store.secret_names(&ctx.caller.agent_id).await?;
                    Ok(ListResult {
                        secrets: names
                            .into_iter()
                            .map(|(name, updated_at_ms)| Listed { name, updated_at_ms })
                            .collect(),
                    })
                }
            }),
        ToolBuilder::new("agentos.secret_delete")
            .title("Delete a secret")
            .description("Deletes one of your secrets. Returns deleted=false if there was none of that name.")
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: NameArgs, ctx| {
                let services = delete_services.clone();
                async move {
                    check_name(&args.name)?;
                    let deleted = services.store.secret_remove(&ctx.caller.agent_id, &args.name).await?;
                    Ok(DeleteResult {
                        name: args.name,
                        deleted,
                    })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(dir: &Path) -> Sealer {
        Sealer {
            key_file: dir.join("secrets.key"),
            cipher: OnceLock::new(),
        }
    }

    #[test]
    fn sealed_values_open_only_for_their_owner_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = sealer(dir.path());
        let (nonce, ciphertext) = sealer.seal("a", "TOKEN", b"hunter2").unwrap();
        assert!(
            !ciphertext.windows(7).any(|w| w == b"hunter2"),
            "no plaintext in the ciphertext"
        );
        assert_eq!(sealer.open("a", "TOKEN", &nonce, &ciphertext).unwrap(), b"hunter2");
        assert!(sealer.open("b", "TOKEN", &nonce, &ciphertext).is_err(), "another owner");
        assert!(sealer.open("a", "OTHER", &nonce, &ciphertext).is_err(), "another name");
        let (nonce2, _) = sealer.seal("a", "TOKEN", b"hunter2").unwrap();
        assert_ne!(nonce, nonce2, "fresh nonce per seal");
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (nonce, ciphertext) = sealer(dir.path()).seal("a", "n", b"v").unwrap();
        let mode = std::fs::metadata(dir.path().join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            sealer(dir.path()).open("a", "n", &nonce, &ciphertext).unwrap(),
            b"v",
            "same key next start"
        );
        std::fs::set_permissions(dir.path().join("secrets.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = sealer(dir.path()).open("a", "n", &nonce, &ciphertext).unwrap_err();
        assert!(error.message.contains("chmod 600"), "{}", error.message);
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(decode_key("not base64!").unwrap_err().contains("base64"));
        assert!(decode_key(&BASE64.encode([1u8; 16])).unwrap_err().contains("16 bytes"));
    }
}
