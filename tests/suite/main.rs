//! The integration suite: one test binary, so the whole suite links once (27 separate binaries
//! each linked every dependency with debug info and filled a CI disk). Each module is one area.

mod common;

mod approvals;
mod audit;
mod cluster;
mod cluster_balancer;
mod cluster_tls;
mod crash_safety;
mod examples;
mod layering;
mod mcp_fast_path;
mod mcp_http;
mod mcp_list_changes;
mod mcp_logging;
mod mcp_pages;
mod mcp_stdio;
mod mcp_stdio_inputs;
mod ops_health;
mod ops_logs;
mod ops_metrics;
mod ops_traces;
mod pipeline_limits;
mod pipeline_records;
mod primitives_database;
mod primitives_events;
mod primitives_files;
mod primitives_memory;
mod primitives_network;
mod primitives_queue;
mod primitives_schedule;
mod primitives_secrets_util;
mod primitives_workflow;
mod schemas;
mod security_auth;
mod security_config;
mod security_files;
mod security_limits;
mod security_policy;
mod security_privacy;
mod security_quotas;
mod security_redaction;
mod security_sessions;
mod security_slow_clients;
mod security_stop;
#[cfg(feature = "skills")]
mod skills_bundled;
#[cfg(feature = "skills")]
mod skills_market;
#[cfg(feature = "skills")]
mod skills_runtime;
#[cfg(feature = "skills")]
mod skills_sandbox;
mod studio_console;
mod studio_language;
mod studio_terminal;
mod tools_catalog;
mod upstream_client_requests;
mod upstream_completion;
mod upstream_core;
mod upstream_crew;
mod upstream_lifeline;
mod upstream_resources;
mod upstream_servers;
mod upstream_startup;
mod upstream_subscriptions;
mod upstream_transparent;
#[cfg(all(feature = "stt", feature = "tts"))]
mod voice;
