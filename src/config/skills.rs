//! `[skills]`: how large a published skill may be, who may sign one, and the limits every skill
//! call runs under whatever its manifest asks.

use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

/// `[skills]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SkillsConfig {
    /// Largest component (`.wasm`) a skill may publish, in bytes (default 64 MiB; a JavaScript
    /// component is about 12 MiB). Also the body limit of `POST /api/skills/publish`, which is
    /// the only route whose bodies may pass `http.max_body_bytes`.
    #[schemars(range(min = 1024))]
    pub max_component_bytes: u64,
    /// Publisher keys trusted to sign skills: ed25519 public keys, base64 (32 bytes), each
    /// optionally prefixed by a name and `:` (e.g. `acme:MCowBQ...`). A publish that carries a
    /// signature must verify against one of them.
    pub trusted_keys: Vec<String>,
    /// Refuse publishes without a valid signature from `trusted_keys` (default false).
    pub require_signatures: bool,
}

impl Default for SkillsConfig {
    fn default() -> Self {
        Self {
            max_component_bytes: 64 * MIB,
            trusted_keys: Vec::new(),
            require_signatures: false,
        }
    }
}

/// A publisher key an operator trusts (one `skills.trusted_keys` entry), and the name records
/// show for it. Parsed here so a bad entry stops the configuration from loading.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: VerifyingKey,
}

impl TrustedKey {
    /// `name:<base64>` or just `<base64>` (then named by the key's first 8 base64 characters).
    pub fn parse(entry: &str) -> Result<Self, String> {
        let bad = || format!("`{entry}` is not a trusted key: write `name:<base64 of the 32-byte ed25519 public key>`");
        let (name, encoded) = match entry.rsplit_once(':') {
            Some((name, encoded)) if !name.trim().is_empty() => (name.trim().to_owned(), encoded.trim()),
            _ => (String::new(), entry.trim()),
        };
        let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        let name = if name.is_empty() {
            format!("key {}", &encoded[..8.min(encoded.len())])
        } else {
            name
        };
        Ok(Self { name, key })
    }
}

impl SkillsConfig {
    /// `trusted_keys`, parsed.
    pub fn trusted(&self) -> Result<Vec<TrustedKey>, String> {
        self.trusted_keys.iter().map(|entry| TrustedKey::parse(entry)).collect()
    }
}
