//! Network: HTTP requests to the caller's allowed domains, with SSRF protection.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::Tool;

/// `[network]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}
