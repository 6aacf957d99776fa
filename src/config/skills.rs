//! `[skills]`: how large a published skill may be, who may sign one, and the limits every skill
//! call runs under whatever its manifest asks.

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
