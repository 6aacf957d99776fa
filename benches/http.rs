//! HTTP benchmark: `agentos.time_now` over POST /mcp (plain form and JSON-RPC) beside a minimal
//! hyper server answering a fixed JSON body, all measured in one run on this machine; plus time
//! to the first successful call and idle memory.
//!
//! `cargo bench --bench http` (or `scripts/bench`). `BENCH_SECS` sets each load phase's length
//! (default 5), `BENCH_CONNECTIONS` the concurrency (default 32), `BENCH_ROUNDS` how many
//! alternating off/on rounds the security and observability comparisons run (default 3).

mod support;

use std::time::Duration;

use support::paired::{paired, rounds};
use support::{
    Figures, Footprint, Target, load, register_agent, row, rss_kib, start_agentos, start_agentos_configured,
    start_baseline, time_now_plain,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--baseline-server") {
        return support::baseline_server();
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then a short smoke
    // run checks that every phase still gets working answers.
    let smoke = !args.iter().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let (secs, connections) = if smoke { (0.2, 2) } else { (secs, connections) };
    // The load generator gets one thread; the servers share what is left.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(
        Duration::from_secs_f64(secs),
        connections,
        if smoke { 1 } else { 5 },
        rounds(smoke),
    ));
}

/// The plain form as a registered agent with authentication, rate limiting (a limit it never
/// reaches) and audit on, or `--no-auth` with neither limits nor audit.
async fn security_phase(on: bool, duration: Duration, connections: usize) -> Figures {
    let plain_body = r#"{"tool":"agentos.time_now"}"#;
    if !on {
        let (open, _) = start_agentos_configured("[audit]\nenabled = false\n[rate_limits]\nenabled = false\n", false);
        return load(
            Target::post_json(open.addr, "/mcp", plain_body, "\"success\":true").of(&open),
            duration,
            connections,
        )
        .await;
    }
    let (secured, owner) = start_agentos_configured(
        "[rate_limits]\nmcp = { per_minute = 1000000000, burst = 1000000 }\n",
        true,
    );
    let agent_token = register_agent(secured.addr, owner.as_deref());
    let mut target = Target::post_json(secured.addr, "/mcp", plain_body, "\"success\":true").of(&secured);
    target
        .headers
        .push(("authorization".into(), format!("Bearer {agent_token}")));
    load(target, duration, connections).await
}

#[derive(Clone, Copy)]
enum JsonRpc {
    /// `tools/call` in a 2025-11-25 session (one per connection).
    Session,
    /// `tools/call` in the stateless 2026-07-28 revision.
    Stateless,
}

/// `tools/call agentos.time_now` in MCP's JSON-RPC, as real clients send it.
fn jsonrpc_target(agentos: &support::Proc, kind: JsonRpc) -> Target {
    let (body, headers): (&'static str, &[(&str, &str)]) = match kind {
        JsonRpc::Session => (
            r#"{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{"name":"agentos.time_now","arguments":{}}}"#,
            &[("mcp-protocol-version", "2025-11-25")],
        ),
        JsonRpc::Stateless => (
            r#"{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{"name":"agentos.time_now","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "agentos.time_now"),
            ],
        ),
    };
    let mut target = Target::post_json(agentos.addr, "/mcp", body, "\"structuredContent\"").of(agentos);
    target
        .headers
        .push(("accept".into(), "application/json, text/event-stream".into()));
    target
        .headers
        .extend(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    target.per_connection_session = matches!(kind, JsonRpc::Session);
    target
}

/// JSON-RPC `tools/call` with the `/mcp` fast path on (the default) or off (rmcp's transport).
async fn fast_path_phase(on: bool, kind: JsonRpc, duration: Duration, connections: usize) -> Figures {
    let (agentos, _) = start_agentos_configured(&format!("[http]\nmcp_fast_path = {on}\n"), false);
    load(jsonrpc_target(&agentos, kind), duration, connections).await
}

/// The plain form with metrics, traces and info logs at their defaults, or with none of them.
async fn observability_phase(on: bool, duration: Duration, connections: usize) -> Figures {
    if on {
        time_now_plain("", "info", duration, connections).await
    } else {
        time_now_plain(
            "[metrics]\nenabled = false\n[traces]\nenabled = false\n",
            "off",
            duration,
            connections,
        )
        .await
    }
}

async fn run(duration: Duration, connections: usize, starts: usize, rounds: usize) {
    println!(
        "agentos HTTP benchmark: {connections} connections, {:.1}s per phase\n",
        duration.as_secs_f64()
    );

    let mut first_calls: Vec<Duration> = Vec::new();
    for _ in 0..starts {
        let (proc, first) = start_agentos(&[]);
        first_calls.push(first);
        drop(proc);
    }
    first_calls.sort();
    let (agentos, _) = start_agentos(&[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_start = rss_kib(agentos.child.id());
    let footprint_start = Footprint::of(agentos.child.id());

    let baseline_proc = start_baseline();
    let baseline = load(
        Target::post_json(baseline_proc.addr, "/", r#"{"tool":"agentos.time_now"}"#, "\"result\"").of(&baseline_proc),
        duration,
        connections,
    )
    .await;
    drop(baseline_proc);

    let plain = load(
        Target::post_json(
            agentos.addr,
            "/mcp",
            r#"{"tool":"agentos.time_now"}"#,
            "\"success\":true",
        )
        .of(&agentos),
        duration,
        connections,
    )
    .await;

    let jsonrpc_session = load(jsonrpc_target(&agentos, JsonRpc::Session), duration, connections).await;
    let jsonrpc_stateless = load(jsonrpc_target(&agentos, JsonRpc::Stateless), duration, connections).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_after = rss_kib(agentos.child.id());
    let footprint_after = Footprint::of(agentos.child.id());
    drop(agentos);

    // Security stages and observability, each off and on in alternating rounds.
    let security = paired(rounds, |on| security_phase(on, duration, connections)).await;
    let observability = paired(rounds, |on| observability_phase(on, duration, connections)).await;
    let fast_sessions = paired(rounds, |on| {
        fast_path_phase(on, JsonRpc::Session, duration, connections)
    })
    .await;
    let fast_stateless = paired(rounds, |on| {
        fast_path_phase(on, JsonRpc::Stateless, duration, connections)
    })
    .await;
    let (security_off, security_on) = security.median_round();
    let (observability_off, observability_on) = observability.median_round();

    println!(
        "{:<44} {:>10} {:>9} {:>9} {:>10}",
        "target", "calls/s", "p50 us", "p99 us", "vs hyper"
    );
    row("minimal hyper server, fixed JSON (baseline)", &baseline, &baseline);
    let versus_hyper = |f: &Figures| Some(("hyper", f.calls_per_sec / baseline.calls_per_sec));
    support::table::record("ceiling: a bare hyper server answering a fixed body", &baseline, None);
    support::table::record(
        "plain form `POST /mcp {\"tool\":\"agentos.time_now\"}`",
        &plain,
        versus_hyper(&plain),
    );
    support::table::record(
        "JSON-RPC `tools/call agentos.time_now`, 2025-11-25 session",
        &jsonrpc_session,
        versus_hyper(&jsonrpc_session),
    );
    support::table::record(
        "JSON-RPC `tools/call agentos.time_now`, 2026-07-28 stateless",
        &jsonrpc_stateless,
        versus_hyper(&jsonrpc_stateless),
    );
    row("agentos plain form POST /mcp time_now", &plain, &baseline);
    row(
        "agentos JSON-RPC POST /mcp, 2025-11-25 sessions",
        &jsonrpc_session,
        &baseline,
    );
    row(
        "agentos JSON-RPC POST /mcp, 2026-07-28 stateless",
        &jsonrpc_stateless,
        &baseline,
    );
    for (name, comparison) in [
        ("2025-11-25 sessions", &fast_sessions),
        ("2026-07-28 stateless", &fast_stateless),
    ] {
        let (off, on) = comparison.median_round();
        row(&format!("JSON-RPC {name}, fast path off"), off, &baseline);
        row(&format!("JSON-RPC {name}, fast path on"), on, &baseline);
        println!("the /mcp fast path, {name} (on against off): {}", comparison.describe());
    }
    row("security off (--no-auth, no audit, no limits)", security_off, &baseline);
    row("security on (agent token, rate limit, audit)", security_on, &baseline);
    println!(
        "authentication + rate limiting + audit (target: keep at least 80% of the calls/s): kept {}",
        security.describe()
    );
    row(
        "observability off (no metrics, traces, logs)",
        observability_off,
        &baseline,
    );
    row(
        "observability on (defaults: metrics, traces, info logs)",
        observability_on,
        &baseline,
    );
    println!(
        "metrics + traces + logs (target: keep at least 95% of the calls/s): kept {}",
        observability.describe()
    );
    println!();
    println!(
        "first successful call after process start: median {:.1} ms (min {:.1}, max {:.1}, {starts} starts)",
        first_calls[starts / 2].as_secs_f64() * 1e3,
        first_calls[0].as_secs_f64() * 1e3,
        first_calls[starts - 1].as_secs_f64() * 1e3
    );
    println!(
        "resident memory: idle after start {:.1} MiB; idle after the load {:.1} MiB",
        idle_start as f64 / 1024.0,
        idle_after as f64 / 1024.0
    );
    println!("idle after start: {}", footprint_start.describe());
    println!("idle after the load: {}", footprint_after.describe());
}
