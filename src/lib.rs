//! agentos: an MCP-first tool router and operating layer for AI agents.
//!
//! # Layout
//! - [`registry`]: the tool model and the one call pipeline every adapter goes through.
//! - [`primitives`]: the built-in `agentos.*` tools.
//! - [`store`]: persistence (SQLite by default).
//! - [`upstream`]: clients to external MCP servers whose tools agentos proxies.
//! - [`identity`]: accounts, agents, passwords, bearer tokens and browser sessions: who a caller is.
//! - [`adapters`]: the front doors: MCP over stdio, MCP over HTTP and its plain JSON form, REST.
//! - [`ops`]: what operators read: metrics, health, traces.
//! - [`config`]: settings from defaults, a TOML file, the environment and flags.
//! - [`app`]: assembles the pieces into one running instance.
//! - [`schemas`]: the published JSON Schemas of tools and config.

pub mod adapters;
pub mod app;
pub mod config;
pub mod identity;
pub mod ops;
pub mod primitives;
pub mod registry;
pub mod schemas;
pub mod store;
pub mod tls;
pub mod upstream;
