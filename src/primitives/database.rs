//! Database: a per-agent SQLite scratch database for the agent's own tables.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::Tool;

/// `[database]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}
