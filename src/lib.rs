//! agentos: an MCP-first tool router and operating layer for AI agents.
//!
//! # Layout
//! - [`registry`]: the tool model and the one call pipeline every adapter goes through.
//! - [`primitives`]: the built-in `agentos.*` tools.
//! - [`store`]: persistence (SQLite by default).
//! - [`sealing`]: values encrypted at rest under the data directory's key (secrets, and the
//!   sensitive inputs of held and scheduled calls, whose stored copies are redacted).
//! - [`upstream`]: clients to external MCP servers whose tools agentos proxies.
//! - [`skills`]: skills, WebAssembly components whose capabilities become tools: their manifest.
//! - [`identity`]: accounts, agents, passwords, bearer tokens and browser sessions: who a caller is.
//! - [`adapters`]: the front doors: MCP over stdio, MCP over HTTP and its plain JSON form, REST.
//! - [`governance`]: what operators read to trust agentos: audit, traces, approvals, and who may
//!   see which of them.
//! - [`ops`]: what operators watch: metrics and health.
//! - [`voice`]: speech to text and text to speech, local (cargo features `stt`, `tts`, `voice`).
//! - [`config`]: settings from defaults, a TOML file, the environment and flags.
//! - [`app`]: assembles the pieces into one running instance.
//! - [`schemas`]: the published JSON Schemas of tools and config.
//!
//! # The rule
//! A front door authenticates a caller, builds a call context, makes one registry call and
//! renders the answer; everything else (validation, authorization, rate limits, approvals,
//! traces, metrics, audit) happens once, in the registry's pipeline. So nothing under
//! `adapters` imports `store`, `primitives` or `upstream`, and no two parts import each other
//! (`tests/suite/layering.rs` holds both). Two kinds of routes have no tool behind them:
//! - the gate that produces callers (sign-up, sign-in, sessions, password reset, self-service
//!   registration) calls the identity service directly and writes an audit record of each
//!   attempt through the registry's audit hook;
//! - unauthenticated probes (`/health`, `/health/*`) and `/metrics` read health and counters
//!   directly, so that they answer even when the pipeline is saturated.

pub mod adapters;
pub mod app;
pub mod cluster;
pub mod config;
pub mod error_chain;
pub mod governance;
pub mod identity;
mod jsonrpc_lines;
pub mod malloc_tuning;
pub mod ops;
pub mod primitives;
pub mod registry;
pub mod schemas;
pub mod sealing;
pub mod skills;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod voice;
