//! Workflows: ordered tool calls whose inputs may take values from earlier outputs.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tokio_util::sync::CancellationToken;

use super::Services;
use crate::registry::Tool;

/// `[workflow]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}

/// Starts this family's background work; returns at once.
pub fn start(services: &Services, shutdown: CancellationToken) {
    let _ = (services, shutdown);
}
