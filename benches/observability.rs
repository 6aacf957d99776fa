//! What each record-keeping stage costs: `agentos.time_now` over the plain form of POST /mcp with
//! audit, metrics, traces and logs all off, then each one on alone, then everything at its
//! defaults, one process per configuration, all in one run (the machine is shared and noisy, so
//! only the ratios within a run mean anything).
//!
//! `cargo bench --bench observability`. `BENCH_SECS` sets each phase's length (default 4),
//! `BENCH_CONNECTIONS` the concurrency (default 32), `BENCH_ROUNDS` the rounds (default 3; each
//! measures the baseline before and after its phases), `BENCH_ONLY` picks phases by name.
//!
//! With `BENCH_BASELINE_BIN` set to an earlier agentos binary, also paired rounds of this build
//! against that one, both with audit alone on and with everything at its defaults: what a change
//! to a stage (say, how audit records are written) gained or cost.

mod support;

use std::time::Duration;

use support::paired::{median, paired, rounds};
use support::{Figures, load_time_now_plain, start_agentos_binary, start_agentos_logged, time_now_plain};

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
        .block_on(run(Duration::from_secs_f64(secs), connections, rounds(smoke)));
}

/// The configuration with every stage off but `section`.
fn only_on(section: &str) -> String {
    ALL_OFF.replace(&format!("[{section}]\nenabled = false\n"), "")
}

async fn run(duration: Duration, connections: usize, rounds: usize) {
    println!(
        "agentos record-keeping cost: {connections} connections, {:.1}s per phase, {rounds} rounds\n",
        duration.as_secs_f64()
    );
    let all: Vec<(&str, String, &str)> = vec![
        ("audit only", only_on("audit"), "off"),
        ("metrics only", only_on("metrics"), "off"),
        ("traces only", only_on("traces"), "off"),
        ("logs only (info)", ALL_OFF.to_owned(), "info"),
        (
            "metrics + traces + logs (defaults), no audit",
            "[audit]\nenabled = false\n".to_owned(),
            "info",
        ),
        ("defaults (all on, info logs)", String::new(), "info"),
    ];
    // `BENCH_ONLY=traces` runs the phases whose name contains `traces`, e.g. to profile one.
    let only = std::env::var("BENCH_ONLY").ok();
    let phases: Vec<_> = all
        .iter()
        .filter(|(name, _, _)| only.as_deref().is_none_or(|only| name.contains(only)))
        .collect();
    // Every round brackets its phases with the baseline (all off) and rotates their order, so
    // each phase is compared with the baseline of its own round and no phase always runs last.
    let mut baselines: Vec<Figures> = Vec::new();
    // Per phase, per round: the figures, calls/s against the round's baseline, and the server's
    // CPU time per call against the baseline's.
    let mut measured: Vec<Vec<(Figures, f64, Option<f64>)>> = phases.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let before = time_now_plain(ALL_OFF, "off", duration, connections).await;
        let mut this_round = Vec::new();
        for step in 0..phases.len() {
            let index = (step + round) % phases.len();
            let (_, config, log) = phases[index];
            this_round.push((index, time_now_plain(config, log, duration, connections).await));
        }
        let after = time_now_plain(ALL_OFF, "off", duration, connections).await;
        let base = (before.calls_per_sec + after.calls_per_sec) / 2.0;
        let base_cpu = before
            .cpu_us_per_call
            .zip(after.cpu_us_per_call)
            .map(|(b, a)| (b + a) / 2.0);
        for (index, figures) in this_round {
            let ratio = figures.calls_per_sec / base;
            let cpu_ratio = figures.cpu_us_per_call.zip(base_cpu).map(|(cpu, base)| cpu / base);
            measured[index].push((figures, ratio, cpu_ratio));
        }
        println!(
            "round {}: baseline {:.0} calls/s before, {:.0} after",
            round + 1,
            before.calls_per_sec,
            after.calls_per_sec
        );
        baselines.push(before);
        baselines.push(after);
    }
    println!(
        "\n{:<44} {:>10} {:>9} {:>9} {:>9} {:>10}  rounds (calls/s)",
        "configuration (median round)", "calls/s", "p50 us", "p99 us", "vs off", "CPU/call"
    );
    let base = median(baselines.iter().map(|f| f.calls_per_sec).collect());
    println!(
        "{:<44} {:>10.0} {:>9} {:>9} {:>8}% {:>10}",
        "all off (audit, metrics, traces, logs)", base, "", "", 100, "="
    );
    for ((name, _, _), rounds) in phases.iter().zip(&measured) {
        let ratios: Vec<f64> = rounds.iter().map(|(_, ratio, _)| *ratio).collect();
        let middle = median(ratios.clone());
        let (figures, _, _) = rounds
            .iter()
            .find(|(_, ratio, _)| *ratio == middle)
            .unwrap_or(&rounds[0]);
        let cpu: Vec<f64> = rounds.iter().filter_map(|(_, _, cpu)| *cpu).collect();
        let cpu = if cpu.is_empty() {
            "-".to_owned()
        } else {
            format!("{:+.0}%", 100.0 * (median(cpu) - 1.0))
        };
        let each: Vec<String> = ratios.iter().map(|r| format!("{:.0}%", 100.0 * r)).collect();
        println!(
            "{name:<44} {:>10.0} {:>9.0} {:>9.0} {:>8.0}% {:>10}  {}",
            figures.calls_per_sec,
            figures.p50_us,
            figures.p99_us,
            100.0 * middle,
            cpu,
            each.join(" ")
        );
    }
    compare_builds(duration, connections, rounds).await;
}

/// This build against `BENCH_BASELINE_BIN`, if set: audit alone on, then everything at its
/// defaults.
async fn compare_builds(duration: Duration, connections: usize, rounds: usize) {
    let Some(baseline) = std::env::var_os("BENCH_BASELINE_BIN") else {
        return;
    };
    let baseline = std::path::PathBuf::from(baseline);
    let audit_only = only_on("audit");
    println!("\nthis build against the baseline build (BENCH_BASELINE_BIN), calls/s and CPU per call:");
    for (name, config, log) in [("audit only", audit_only.as_str(), "off"), ("defaults", "", "info")] {
        // `off` is the earlier build, `on` this one.
        let compared = paired(rounds, |this_build| {
            let baseline = baseline.clone();
            async move {
                let (agentos, _) = if this_build {
                    start_agentos_logged(config, false, log)
                } else {
                    start_agentos_binary(&baseline, config, false, log)
                };
                load_time_now_plain(&agentos, duration, connections).await
            }
        })
        .await;
        let (before, after) = compared.median_round();
        println!(
            "  {name:<12} baseline {:>8.0} calls/s, this build {:>8.0}: {}",
            before.calls_per_sec,
            after.calls_per_sec,
            compared.describe()
        );
    }
}
