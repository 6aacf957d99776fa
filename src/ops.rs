//! Operations: what operators read to trust agentos (metrics, health, traces).

pub mod health;
pub mod metrics;
pub mod traces;
