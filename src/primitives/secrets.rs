//! Secrets: per-agent values encrypted at rest with AES-256-GCM.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::Tool;

/// `[secrets]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}
