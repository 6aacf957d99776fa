//! Operations: what operators watch to keep agentos running, metrics and health. (What they read
//! to trust it, audit, traces and approvals, is `governance`.)

pub mod fds;
pub mod health;
pub mod metrics;
