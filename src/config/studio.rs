//! `[studio]`: the command language's previews.

use serde::{Deserialize, Serialize};

/// `[studio]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StudioConfig {
    /// How long the confirmation token of a preview stays good, in seconds (default 60, at
    /// most 3600). A mutating command runs only if sent back with its token within this time.
    #[schemars(range(min = 1, max = 3600))]
    pub confirm_ttl_secs: u64,
}

impl Default for StudioConfig {
    fn default() -> Self {
        Self { confirm_ttl_secs: 60 }
    }
}
