//! `mcp_fixture`: an MCP conformance fixture server.
//!
//! It implements the tools, prompts and resources that the official MCP conformance suite's
//! server scenarios expect (`test_simple_text`, `test_sampling`, `test://static-text`,
//! `test_prompt_with_arguments`, logging, completion, subscriptions, SSE polling, ...), so the
//! suite run against it alone passes. agentos uses it in tests, and it doubles as an example of
//! an upstream server that agentos proxies.
//!
//! ```text
//! mcp_fixture stdio                           MCP over stdin/stdout (logs go to stderr)
//! mcp_fixture http --listen 127.0.0.1:PORT    streamable HTTP at /mcp; prints
//!                                             "listening on http://127.0.0.1:PORT/mcp" to stderr
//! ```

// The suite still exercises logging, sampling and `resources/subscribe`, which rmcp marks
// deprecated (SEP-2577) although every pre-2026 client uses them.
#![allow(deprecated)]

mod catalog;
mod handler;
mod streams;
mod tools;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rmcp::{
    ServiceExt as _,
    transport::{StreamableHttpServerConfig, StreamableHttpService, stdio},
};

use crate::{handler::Fixture, streams::FixtureSessions};

#[derive(Parser)]
#[command(
    name = "mcp_fixture",
    about = "An MCP server implementing what the conformance suite's server scenarios expect"
)]
struct Cli {
    #[command(subcommand)]
    transport: Transport,
}

#[derive(Subcommand)]
enum Transport {
    /// Serve MCP over stdin/stdout.
    Stdio,
    /// Serve MCP streamable HTTP at /mcp.
    Http {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // stdout may carry the protocol, so diagnostics go to stderr only.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match Cli::parse().transport {
        Transport::Stdio => serve_stdio().await,
        Transport::Http { listen } => serve_http(listen).await,
    }
}

async fn serve_stdio() -> anyhow::Result<()> {
    let service = Fixture::new(None)
        .serve(stdio())
        .await
        .context("MCP initialization over stdio failed")?;
    service.waiting().await?;
    Ok(())
}

async fn serve_http(listen: SocketAddr) -> anyhow::Result<()> {
    let sessions = Arc::new(FixtureSessions::default());
    let factory_sessions = sessions.clone();
    // The default config keeps session mode (GET streams, resumable POST streams) and only
    // accepts loopback Host headers, which is the DNS-rebinding protection the suite checks.
    let service = StreamableHttpService::new(
        move || Ok(Fixture::new(Some(factory_sessions.clone()))),
        sessions,
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    eprintln!("listening on http://{local}/mcp");
    axum::serve(listener, router).await?;
    Ok(())
}
