//! What moving the rate limiter into the registry costs (issue 10's targets):
//! 1. `agentos.time_now` over the plain form at `BENCH_CONNECTIONS` (default 32) as a registered
//!    agent, with rate limits on (a budget it never spends) against off, in alternating rounds;
//!    target: limits on keep at least 97% of the calls/s.
//! 2. One charge of the limiter itself with 10 keys remembered against 100,000 (callers spread
//!    over many agents or addresses), in alternating rounds; target: the same cost per charge.
//!
//! 3. With `BENCH_BASELINE_BIN` set to an earlier agentos binary, the same load against it and
//!    against this build, limits on in both. Against a build from before issue 10 (the limiter in
//!    the HTTP layer) this is issue 10's move; against one from before issue 11 (d62d406) it is
//!    the hardening's cost (timeouts, connection cap, body budget, quotas, redaction), whose
//!    target is also to keep at least 97% of the calls/s.
//!
//! `cargo bench --bench limits`. `BENCH_SECS` sets each load phase (default 4), `BENCH_ROUNDS`
//! the rounds (default 3).

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos::registry::{Budget, LimitClass, LimitKey, RateLimits};
use support::paired::{median, paired, rounds};
use support::{Figures, Target, load, register_agent, start_agentos_binary, start_agentos_configured};

/// Audit off: its SQLite inserts dominate a call and would drown the limiter's share in noise.
const LIMITS_ON: &str = "[audit]\nenabled = false\n[rate_limits]\nmcp = { per_minute = 1000000000, burst = 1000000 }\n";
const LIMITS_OFF: &str = "[audit]\nenabled = false\n[rate_limits]\nenabled = false\n";

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
    let rounds = rounds(smoke);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(calls(Duration::from_secs_f64(secs), connections, rounds));
    keys(if smoke { 100_000 } else { 2_000_000 }, rounds);
}

async fn phase(on: bool, duration: Duration, connections: usize) -> Figures {
    let (agentos, owner) = start_agentos_configured(if on { LIMITS_ON } else { LIMITS_OFF }, true);
    as_agent(agentos, owner, duration, connections).await
}

/// Loads `agentos` with plain-form `time_now` calls as a registered agent.
async fn as_agent(agentos: support::Proc, owner: Option<String>, duration: Duration, connections: usize) -> Figures {
    let token = register_agent(agentos.addr, owner.as_deref());
    let mut target = Target::post_json(
        agentos.addr,
        "/mcp",
        r#"{"tool":"agentos.time_now"}"#,
        "\"success\":true",
    )
    .of(&agentos);
    target.headers.push(("authorization".into(), format!("Bearer {token}")));
    load(target, duration, connections).await
}

async fn calls(duration: Duration, connections: usize, rounds: usize) {
    println!(
        "agentos rate limits in the pipeline: {connections} connections, {:.1}s per phase, {rounds} rounds\n",
        duration.as_secs_f64()
    );
    let measured = paired(rounds, |on| phase(on, duration, connections)).await;
    let (off, on) = measured.median_round();
    println!(
        "{:<36} {:>10} {:>9} {:>9}",
        "plain form time_now, as an agent", "calls/s", "p50 us", "p99 us"
    );
    for (name, figures) in [("limits off", off), ("limits on", on)] {
        println!(
            "{name:<36} {:>10.0} {:>9.0} {:>9.0}",
            figures.calls_per_sec, figures.p50_us, figures.p99_us
        );
    }
    println!(
        "rate limiting in the registry, on against off: kept {}\n",
        measured.describe()
    );
    let Some(baseline) = std::env::var_os("BENCH_BASELINE_BIN") else {
        return;
    };
    let baseline = std::path::PathBuf::from(baseline);
    // `off` is the earlier build, `on` this one; limits on in both.
    let moved = paired(rounds, |this_build| {
        let baseline = baseline.clone();
        async move {
            let (agentos, owner) = if this_build {
                start_agentos_configured(LIMITS_ON, true)
            } else {
                start_agentos_binary(&baseline, LIMITS_ON, true, "warn")
            };
            as_agent(agentos, owner, duration, connections).await
        }
    })
    .await;
    let (before, after) = moved.median_round();
    println!(
        "{:<36} {:>10.0} {:>9.0} {:>9.0}",
        "baseline build (BENCH_BASELINE_BIN)", before.calls_per_sec, before.p50_us, before.p99_us
    );
    println!(
        "{:<36} {:>10.0} {:>9.0} {:>9.0}",
        "this build", after.calls_per_sec, after.p50_us, after.p99_us
    );
    println!(
        "this build against the baseline build (target: keep at least 97% of the calls/s): kept {}\n",
        moved.describe()
    );
}

/// Nanoseconds per charge over `charges` charges cycling through the first `active` of
/// `population` keys, after every key has been charged once (so the limiter remembers them all).
fn charge_cost(population: usize, active: usize, charges: usize) -> f64 {
    let budget = Budget {
        per_minute: u32::MAX,
        burst: u32::MAX,
    };
    let limits = RateLimits::new([budget; 3]);
    let keys: Vec<LimitKey> = (0..population)
        .map(|i| LimitKey::Agent(Arc::from(format!("agent-{i:06}"))))
        .collect();
    for key in &keys {
        let _ = limits.charge(LimitClass::Mcp, key);
    }
    // A stride through the active keys visits them in an order unrelated to their insertion.
    let stride = (7919 % active).max(1);
    let mut index = 0;
    let started = Instant::now();
    for _ in 0..charges {
        black_box(limits.charge(LimitClass::Mcp, &keys[index]).is_ok());
        index = (index + stride) % active;
    }
    started.elapsed().as_nanos() as f64 / charges as f64
}

/// Alternating rounds of `a` and `b`; the median of each and of their ratios b/a.
fn compare(rounds: usize, a: impl Fn() -> f64, b: impl Fn() -> f64) -> (f64, f64, f64, Vec<f64>) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which runs first, so drift favours neither.
        if round % 2 == 0 {
            first.push(a());
            second.push(b());
        } else {
            second.push(b());
            first.push(a());
        }
    }
    let ratios: Vec<f64> = second.iter().zip(&first).map(|(b, a)| b / a).collect();
    (median(first), median(second), median(ratios.clone()), ratios)
}

fn keys(charges: usize, rounds: usize) {
    println!("limiter charge, {charges} charges per round");
    let (few, many, ratio, ratios) = compare(
        rounds,
        || charge_cost(10, 10, charges),
        || charge_cost(100_000, 10, charges),
    );
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    println!("{:<48} {:>8.0} ns", "10 callers, 10 keys remembered", few);
    println!("{:<48} {:>8.0} ns", "10 callers, 100,000 keys remembered", many);
    println!(
        "100,000 keys remembered against 10 (target: the same cost per charge): {ratio:.2}x (rounds: {})",
        each.join(", ")
    );
    // Informational: 100,000 callers active at once touch 100,000 buckets, which no cache
    // holds; that is memory latency, not work that grows with the keys.
    let (_, spread, ratio, _) = compare(
        rounds,
        || charge_cost(10, 10, charges),
        || charge_cost(100_000, 100_000, charges),
    );
    println!(
        "{:<48} {:>8.0} ns ({ratio:.2}x, each call a different bucket out of cache)",
        "100,000 callers, all active", spread
    );
}
