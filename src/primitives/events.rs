//! Events: publish to a topic and poll it by cursor, optionally waiting for news.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::Tool;

/// `[events]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}
