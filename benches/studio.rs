//! The studio's cost: a read command through `POST /api/studio/command` against the plain-form
//! call of the tool it wraps, in one run against one server. The studio adds its parsing (words,
//! the command table, typing by the tool's schema) and its snippet; the target is a p50 within
//! 2x of the plain call.
//!
//! `cargo bench --bench studio`. `BENCH_SECS` (default 5).

mod support;

use std::time::Duration;

use support::{Figures, Target, exchange, load, start_agentos};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--baseline-server") {
        return support::baseline_server();
    }
    let smoke = !args.iter().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let duration = if smoke {
        Duration::from_millis(200)
    } else {
        Duration::from_secs_f64(secs)
    };
    let (agentos, _) = start_agentos(&[]);
    let stored = exchange(
        agentos.addr,
        "POST",
        "/mcp",
        None,
        r#"{"tool":"agentos.mem_set","input":{"key":"bench","value":{"text":"a value to read back"}}}"#,
    );
    assert!(
        stored.is_some_and(|body| body.contains("\"success\":true")),
        "storing the value to read"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "agentos studio benchmark: {:.1}s per phase; cost = studio p50 / plain-form p50 (target <= 2x)\n",
        duration.as_secs_f64()
    );
    println!(
        "{:<44} {:>6} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "target", "conns", "calls/s", "p50 us", "p99 us", "cpu us", "cost"
    );
    let pairs = [
        (
            "mem get",
            r#"{"tool":"agentos.mem_get","input":{"key":"bench"}}"#,
            r#"{"command":"mem get bench"}"#,
        ),
        (
            "time",
            r#"{"tool":"agentos.time_now","input":{}}"#,
            r#"{"command":"time"}"#,
        ),
    ];
    for connections in [1, 32] {
        for (name, plain, studio) in pairs {
            let plain_target = Target::post_json(agentos.addr, "/mcp", plain, "\"success\":true").of(&agentos);
            let studio_target =
                Target::post_json(agentos.addr, "/api/studio/command", studio, "\"kind\":\"result\"").of(&agentos);
            let direct = runtime.block_on(load(plain_target, duration, connections));
            let through = runtime.block_on(load(studio_target, duration, connections));
            print_row(&format!("plain form: {name}"), connections, &direct, None);
            print_row(&format!("studio: {name}"), connections, &through, Some(&direct));
        }
    }
}

fn print_row(name: &str, connections: usize, f: &Figures, baseline: Option<&Figures>) {
    let cost = baseline.map_or(String::new(), |b| format!("{:.2}x", f.p50_us / b.p50_us.max(1.0)));
    let cpu = f.cpu_us_per_call.map_or(String::new(), |c| format!("{c:.1}"));
    println!(
        "{name:<44} {connections:>6} {:>10.0} {:>9.0} {:>9.0} {cpu:>9} {cost:>8}",
        f.calls_per_sec, f.p50_us, f.p99_us
    );
}
