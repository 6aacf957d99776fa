//! Operations: what operators watch to keep agentos running, metrics and health, and what
//! `agentos doctor` checks before it runs. (What they read
//! to trust it, audit, traces and approvals, is `governance`.)

pub mod doctor;
pub mod fds;
pub mod health;
pub mod metrics;
