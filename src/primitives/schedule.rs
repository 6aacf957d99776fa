//! Schedules: fire a tool call on a cron expression, once at a time, or every interval.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tokio_util::sync::CancellationToken;

use super::Services;
use crate::registry::Tool;

/// `[schedule]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let _ = services;
    Vec::new()
}

/// Starts this family's background work; returns at once.
pub fn start(services: &Services, shutdown: CancellationToken) {
    let _ = (services, shutdown);
}
