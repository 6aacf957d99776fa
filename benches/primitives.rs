//! Primitive throughput: `agentos.mem_set` / `agentos.mem_get` beside `agentos.time_now`, through
//! the registry in-process and over POST /mcp (plain form), in one run. Every mem_set is answered
//! only after its write is committed (group commit), so the figures are for durable writes.
//!
//! `cargo bench --bench primitives`. `BENCH_SECS` (default 5) and `BENCH_CONNECTIONS` (default 32).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentos::app::App;
use agentos::config::Config;
use agentos::registry::{CallContext, Caller, ToolPolicy};
use serde_json::json;
use support::{Figures, Target, load, start_agentos};

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
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let (duration, connections) = if smoke {
        (Duration::from_millis(200), 2)
    } else {
        (Duration::from_secs_f64(secs), connections)
    };
    println!(
        "agentos primitives benchmark: {connections} concurrent callers, {:.1}s per phase\n",
        duration.as_secs_f64()
    );
    println!("{:<44} {:>10} {:>9} {:>9}", "target", "calls/s", "p50 us", "p99 us");

    let in_process = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let time_now = in_process.block_on(registry_load("agentos.time_now", duration, connections));
    let mem_set = in_process.block_on(registry_load("agentos.mem_set", duration, connections));
    let mem_get = in_process.block_on(registry_load("agentos.mem_get", duration, connections));
    drop(in_process);
    print_row("in-process registry: time_now", &time_now);
    print_row("in-process registry: mem_set", &mem_set);
    print_row("in-process registry: mem_get", &mem_get);

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (http_time, http_set, http_get) = client.block_on(http_phases(duration, connections));
    print_row("POST /mcp plain form: time_now", &http_time);
    print_row("POST /mcp plain form: mem_set", &http_set);
    print_row("POST /mcp plain form: mem_get", &http_get);
    println!();
    println!(
        "mem_get / time_now: {:.2}x in-process, {:.2}x over POST /mcp",
        mem_get.calls_per_sec / time_now.calls_per_sec,
        http_get.calls_per_sec / http_time.calls_per_sec
    );
    println!(
        "mem_set over POST /mcp: {:.0} durable writes/s ({:.2}x of time_now)",
        http_set.calls_per_sec,
        http_set.calls_per_sec / http_time.calls_per_sec
    );
}

fn print_row(name: &str, f: &Figures) {
    println!(
        "{name:<44} {:>10.0} {:>9.0} {:>9.0}",
        f.calls_per_sec, f.p50_us, f.p99_us
    );
}

/// Calls `tool` through `Registry::call` from `callers` tasks for `duration`.
async fn registry_load(tool: &'static str, duration: Duration, callers: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let app = Arc::new(App::build(config).await.unwrap());
    let caller = Arc::new(Caller::owner(ToolPolicy::allow_all()));
    if tool == "agentos.mem_get" {
        let ctx = CallContext::new(caller.clone(), "seed", Duration::from_secs(10));
        app.registry
            .call(
                &ctx,
                "agentos.mem_set",
                json!({"key": "hot", "value": {"some": "value"}}),
            )
            .await
            .unwrap();
    }
    let sequence = Arc::new(AtomicU64::new(0));
    let warm_until = Instant::now() + Duration::from_millis(300);
    let until = warm_until + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (app, caller, sequence) = (app.clone(), caller.clone(), sequence.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    let n = sequence.fetch_add(1, Ordering::Relaxed);
                    let input = match tool {
                        "agentos.mem_set" => json!({"key": format!("k{n}"), "value": {"n": n}}),
                        "agentos.mem_get" => json!({"key": "hot"}),
                        _ => json!({}),
                    };
                    let ctx = CallContext::new(caller.clone(), "bench", Duration::from_secs(10));
                    let result = app.registry.call(&ctx, tool, input).await.unwrap();
                    assert_ne!(result.is_error, Some(true), "{result:?}");
                    if now >= warm_until {
                        latencies.push(u32::try_from(now.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    let percentile = |p: f64| all.get(((all.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64;
    Figures {
        calls_per_sec: all.len() as f64 / duration.as_secs_f64(),
        p50_us: percentile(0.5),
        p99_us: percentile(0.99),
        // In process: the load generator shares the process, so its CPU time is not the server's.
        cpu_us_per_call: None,
    }
}

async fn http_phases(duration: Duration, connections: usize) -> (Figures, Figures, Figures) {
    let (agentos, _) = start_agentos(&[]);
    let target = |body: &'static str| Target::post_json(agentos.addr, "/mcp", body, "\"success\":true");
    let time_now = load(target(r#"{"tool":"agentos.time_now"}"#), duration, connections).await;
    let mem_set = load(
        target(r#"{"tool":"agentos.mem_set","input":{"key":"k{n}","value":{"n":{n}}}}"#),
        duration,
        connections,
    )
    .await;
    {
        agentos::tls::install_crypto_provider();
        reqwest::Client::new()
    }
    .post(format!("http://{}/mcp", agentos.addr))
    .body(r#"{"tool":"agentos.mem_set","input":{"key":"hot","value":{"some":"value"}}}"#)
    .send()
    .await
    .unwrap();
    let mem_get = load(
        target(r#"{"tool":"agentos.mem_get","input":{"key":"hot"}}"#),
        duration,
        connections,
    )
    .await;
    (time_now, mem_set, mem_get)
}
