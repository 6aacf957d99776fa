//! Skills: what a capability costs beside a built-in primitive, how fast a JavaScript one
//! answers, how long a restart takes to serve 20 installed skills, and the memory 32 concurrent
//! skill calls take. In one run, on one machine:
//!
//! - `agentos.hash` (a util primitive) against `skill.text-stats.analyze` (C) and
//!   `skill.probe.greet` (JavaScript), in-process through `Registry::call` and over the plain
//!   form of POST /mcp, 32 callers each; ratios against the primitive.
//! - p50/p99 of the JavaScript capability with one caller.
//! - peak RSS of the server (VmHWM) after 32 concurrent skill calls, beside its idle RSS.
//! - a restart with 20 distinct skills installed: spawn to every skill answered once, with
//!   compiled components cached (warm) and without (cold, the cache deleted).
//!
//! `cargo bench --features skills --bench skills`; needs the skills `scripts/build-skills`
//! builds (`AGENTOS_TEST_SKILLS`, set by `. .cache/test-env.sh`). `BENCH_SECS` (default 5);
//! `BENCH_PHASES` (default `in-process,http,restart`) picks phases.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos::app::App;
use agentos::config::Config;
use agentos::registry::{CallContext, Caller, ToolPolicy};
use base64::Engine as _;
use serde_json::{Value, json};
use support::{Figures, Target, exchange, load, rss_kib};

const HASH: &str = r#"{"tool":"agentos.hash","input":{"text":"the quick brown fox jumps over the lazy dog"}}"#;
const C_SKILL: &str =
    r#"{"tool":"skill.text-stats.analyze","input":{"text":"the quick brown fox jumps over the lazy dog"}}"#;
const JS_SKILL: &str = r#"{"tool":"skill.probe.greet","input":{"name":"Ada","mood":"calm"}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let Some(built) = std::env::var_os("AGENTOS_TEST_SKILLS").map(PathBuf::from) else {
        println!(
            "skills benchmark: AGENTOS_TEST_SKILLS is not set (run scripts/build-skills and `. .cache/test-env.sh`); skipped"
        );
        return;
    };
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let (duration, connections) = if smoke {
        (Duration::from_millis(200), 2)
    } else {
        (Duration::from_secs_f64(secs), 32)
    };
    println!(
        "agentos skills benchmark: {connections} concurrent callers, {:.1}s per phase\n",
        duration.as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "in-process,http,restart".into());
    let phases: Vec<&str> = phases.split(',').map(str::trim).collect();
    if let Some(unknown) = phases.iter().find(|p| !["in-process", "http", "restart"].contains(p)) {
        panic!("BENCH_PHASES: unknown phase `{unknown}` (in-process, http, restart)");
    }
    if phases.contains(&"in-process") {
        runtime.block_on(in_process(&built, duration, connections));
    }
    if phases.contains(&"http") {
        runtime.block_on(over_http(&built, duration, connections));
    }
    if phases.contains(&"restart") {
        restart(&built, if smoke { 3 } else { 20 });
    }
}

fn package(dir: &Path) -> (String, Vec<u8>) {
    (
        std::fs::read_to_string(dir.join("skill.toml")).unwrap(),
        std::fs::read(dir.join("skill.wasm")).unwrap(),
    )
}

fn print_row(name: &str, f: &Figures, baseline: Option<&Figures>) {
    let ratio = baseline.map_or(String::new(), |b| {
        format!("{:>8.2}x", b.calls_per_sec / f.calls_per_sec)
    });
    let cpu = f.cpu_us_per_call.map_or(String::new(), |c| format!("{c:>9.1}"));
    println!(
        "{name:<46} {:>9.0} {:>8.0} {:>8.0} {cpu:>9} {ratio}",
        f.calls_per_sec, f.p50_us, f.p99_us
    );
}

fn header(title: &str) {
    println!("{title}");
    println!(
        "{:<46} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "target", "calls/s", "p50 us", "p99 us", "cpu us", "cost"
    );
}

/// Calls `tool` with `input` through `Registry::call` from `callers` tasks for `duration`.
async fn registry_load(
    app: &Arc<App>,
    tool: &'static str,
    input: Value,
    duration: Duration,
    callers: usize,
) -> Figures {
    let caller = Arc::new(Caller::owner(ToolPolicy::allow_all()));
    let warm_until = Instant::now() + Duration::from_millis(300);
    let until = warm_until + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (app, caller, input) = (app.clone(), caller.clone(), input.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let now = Instant::now();
                    let ctx = CallContext::new(caller.clone(), "bench", Duration::from_secs(10));
                    let result = app.registry.call(&ctx, tool, input.clone()).await.unwrap();
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
        cpu_us_per_call: None,
    }
}

async fn in_process(built: &Path, duration: Duration, callers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let app = Arc::new(App::build(config).await.unwrap());
    for skill in ["text-stats", "probe"] {
        let (manifest, wasm) = package(&built.join(skill));
        app.skills.publish("owner", &manifest, wasm, None).await.unwrap();
        app.skills.install(Caller::OWNER_ID, skill, None).await.unwrap();
    }
    let text = json!({"text": "the quick brown fox jumps over the lazy dog"});
    let hash = registry_load(&app, "agentos.hash", text.clone(), duration, callers).await;
    let c = registry_load(&app, "skill.text-stats.analyze", text, duration, callers).await;
    let js = registry_load(
        &app,
        "skill.probe.greet",
        json!({"name": "Ada", "mood": "calm"}),
        duration,
        callers,
    )
    .await;
    header("in-process, Registry::call");
    print_row("agentos.hash (util primitive)", &hash, None);
    print_row("skill.text-stats.analyze (C)", &c, Some(&hash));
    print_row("skill.probe.greet (JavaScript)", &js, Some(&hash));
    println!();
}

/// `agentos serve --no-auth` on `data_dir` (created if needed) and a free port; returns the
/// process and its address once it answers.
fn serve(data_dir: &Path) -> (support::Proc, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = data_dir.with_extension("toml");
    std::fs::write(&config, "[rate_limits]\nenabled = false\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agentos"))
        .args(["serve", "--no-auth", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(&config)
        .env("AGENTOS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (support::Proc::adopt(child, addr), addr)
}

fn post(addr: SocketAddr, path: &str, body: &str) -> String {
    exchange(addr, "POST", path, None, body).unwrap_or_default()
}

fn until_answers(addr: SocketAddr, body: &str, limit: Duration) {
    let started = Instant::now();
    while !post(addr, "/mcp", body).contains("\"success\":true") {
        assert!(started.elapsed() < limit, "no answer to {body} within {limit:?}");
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn publish_and_install(addr: SocketAddr, manifest: &str, wasm: &[u8], slug: &str) {
    let body = json!({
        "manifest": manifest,
        "component": base64::engine::general_purpose::STANDARD.encode(wasm),
    });
    let published = post(addr, "/api/skills/publish", &body.to_string());
    assert!(published.contains("201 Created"), "{published}");
    let installed = post(addr, "/api/skills/install", &json!({"skill_id": slug}).to_string());
    assert!(installed.contains("200 OK"), "{installed}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

async fn over_http(built: &Path, duration: Duration, connections: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(&dir.path().join("data"));
    until_answers(addr, r#"{"tool":"agentos.time_now"}"#, Duration::from_secs(10));
    let idle = rss_kib(server.child.id());
    for skill in ["text-stats", "probe"] {
        let (manifest, wasm) = package(&built.join(skill));
        publish_and_install(addr, &manifest, &wasm, skill);
    }
    let target = |body: &'static str| Target::post_json(addr, "/mcp", body, "\"success\":true").of(&server);
    let hash = load(target(HASH), duration, connections).await;
    let c = load(target(C_SKILL), duration, connections).await;
    let js = load(target(JS_SKILL), duration, connections).await;
    let peak = peak_rss_kib(server.child.id());
    let js_alone = load(target(JS_SKILL), duration, 1).await;
    let c_alone = load(target(C_SKILL), duration, 1).await;
    header(&format!(
        "POST /mcp plain form, {connections} connections (cost: calls/s of the primitive / of the skill)"
    ));
    print_row("agentos.hash (util primitive)", &hash, None);
    print_row("skill.text-stats.analyze (C)", &c, Some(&hash));
    print_row("skill.probe.greet (JavaScript)", &js, Some(&hash));
    print_row("skill.probe.greet, 1 connection", &js_alone, None);
    support::table::record(
        "skill call `skill.text-stats.analyze` (C) over the plain form",
        &c,
        Some(("`agentos.hash`", c.calls_per_sec / hash.calls_per_sec)),
    );
    support::table::record(
        "skill call `skill.probe.greet` (JavaScript) over the plain form",
        &js,
        Some(("`agentos.hash`", js.calls_per_sec / hash.calls_per_sec)),
    );
    print_row("skill.text-stats.analyze, 1 connection", &c_alone, None);
    println!(
        "\nserver memory: idle RSS {:.1} MiB; peak RSS (VmHWM) after {connections} concurrent skill calls {:.1} MiB",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!();
}

/// `wasm` with a custom section appended: the same code under another digest, so each of the
/// restart's skills is a distinct component to load.
fn distinct(wasm: &[u8], n: usize) -> Vec<u8> {
    fn leb(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            out.push(if value == 0 { byte } else { byte | 0x80 });
            if value == 0 {
                break;
            }
        }
    }
    let name = b"agentos-bench";
    let payload = n.to_le_bytes();
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

fn restart(built: &Path, count: usize) {
    let skill = if built.join("text-stats/skill.wasm").exists() {
        "text-stats"
    } else {
        "probe"
    };
    let (manifest, wasm) = package(&built.join(skill));
    let capability = if skill == "text-stats" { "analyze" } else { "greet" };
    let input = if skill == "text-stats" {
        json!({"text": "hello"})
    } else {
        json!({"name": "Ada", "mood": "calm"})
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slugs: Vec<String> = (0..count).map(|n| format!("bench-{n:02}")).collect();
    {
        let (_server, addr) = serve(&data);
        until_answers(addr, r#"{"tool":"agentos.time_now"}"#, Duration::from_secs(10));
        for (n, slug) in slugs.iter().enumerate() {
            let edited = manifest.replacen(&format!("slug = \"{skill}\""), &format!("slug = \"{slug}\""), 1);
            publish_and_install(addr, &edited, &distinct(&wasm, n), slug);
        }
    }
    let every_skill_answers = |label: &str| {
        let started = Instant::now();
        let (_server, addr) = serve(&data);
        for slug in &slugs {
            let body = json!({"tool": format!("skill.{slug}.{capability}"), "input": input}).to_string();
            until_answers(addr, &body, Duration::from_secs(600));
        }
        let elapsed = started.elapsed();
        println!(
            "restart with {count} {skill} skills installed, {label}: {:.0} ms from spawn to every skill answered once",
            elapsed.as_secs_f64() * 1000.0
        );
        elapsed
    };
    let warm = every_skill_answers("compiled components cached (warm)");
    std::fs::remove_dir_all(data.join("skills/compiled")).unwrap();
    let cold = every_skill_answers("cache deleted (cold: every component compiled)");
    println!(
        "warm restart: {:.2}x of the cold one",
        warm.as_secs_f64() / cold.as_secs_f64()
    );
}
