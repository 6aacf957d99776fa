//! Queue: push work items, pop them with a visibility timeout, acknowledge when done.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::Tool;

/// `[queue]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}
