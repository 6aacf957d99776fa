//! What each record-keeping stage costs: `agentos.time_now` over the plain form of POST /mcp with
//! audit, metrics, traces and logs all off, then each one on alone, then everything at its
//! defaults, one process per configuration, all in one run (the machine is shared and noisy, so
//! only the ratios within a run mean anything).
//!
//! `cargo bench --bench observability`. `BENCH_SECS` sets each phase's length (default 4),
//! `BENCH_CONNECTIONS` the concurrency (default 32), `BENCH_ONLY` picks phases by name.

mod support;

use std::time::Duration;

use support::{Figures, Target, load, start_agentos_logged};

const ALL_OFF: &str =
    "[audit]\nenabled = false\n[metrics]\nenabled = false\n[traces]\nenabled = false\n[rate_limits]\nenabled = false\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let smoke = !args.iter().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 0.3 } else { 4.0 });
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 4 } else { 32 });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(Duration::from_secs_f64(secs), connections));
}

async fn phase(config: &str, log: &str, duration: Duration, connections: usize) -> Figures {
    let (agentos, _) = start_agentos_logged(config, false, log);
    let figures = load(
        Target::post_json(
            agentos.addr,
            "/mcp",
            r#"{"tool":"agentos.time_now"}"#,
            "\"success\":true",
        ),
        duration,
        connections,
    )
    .await;
    drop(agentos);
    figures
}

async fn run(duration: Duration, connections: usize) {
    println!(
        "agentos record-keeping cost: {connections} connections, {:.1}s per phase\n",
        duration.as_secs_f64()
    );
    let on = |section: &str| ALL_OFF.replace(&format!("[{section}]\nenabled = false\n"), "");
    let phases: Vec<(&str, String, &str)> = vec![
        ("all off (audit, metrics, traces, logs)", ALL_OFF.to_owned(), "off"),
        ("audit only", on("audit"), "off"),
        ("metrics only", on("metrics"), "off"),
        ("traces only", on("traces"), "off"),
        ("logs only (info)", ALL_OFF.to_owned(), "info"),
        (
            "metrics + traces + logs (defaults), no audit",
            "[audit]\nenabled = false\n".to_owned(),
            "info",
        ),
        ("defaults (all on, info logs)", String::new(), "info"),
        // The baseline again: how far the machine drifted during the run.
        ("all off, again", ALL_OFF.to_owned(), "off"),
    ];
    // `BENCH_ONLY=traces` runs the phases whose name contains `traces` (after the baseline), e.g.
    // to profile one of them.
    let only = std::env::var("BENCH_ONLY").ok();
    let mut results = Vec::new();
    for (index, (name, config, log)) in phases.iter().enumerate() {
        if index > 0 && only.as_deref().is_some_and(|only| !name.contains(only)) {
            continue;
        }
        results.push((*name, phase(config, log, duration, connections).await));
    }
    let base = results[0].1.calls_per_sec;
    println!(
        "{:<44} {:>10} {:>9} {:>9} {:>9}",
        "configuration", "calls/s", "p50 us", "p99 us", "vs off"
    );
    for (name, f) in &results {
        println!(
            "{name:<44} {:>10.0} {:>9.0} {:>9.0} {:>8.0}%",
            f.calls_per_sec,
            f.p50_us,
            f.p99_us,
            100.0 * f.calls_per_sec / base
        );
    }
}
