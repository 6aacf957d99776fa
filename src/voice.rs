//! Voice: speech to text (Whisper, through whisper.cpp) and text to speech (Piper, on ONNX
//! Runtime), both local. One provider of the registry: `agentos.voice_*` tools (in `tools`),
//! a bounded job queue run on low-priority threads (`jobs`), the latency and real-time-factor
//! series ops reads (`stats`), and `agentos voice setup`, which installs the models (`setup`).
//!
//! The engines sit behind the `stt` and `tts` cargo features; without them the tools still
//! exist and say how to get a build that has them.

mod audio;
mod engines;
pub mod jobs;
#[cfg(feature = "voice-setup")]
pub mod setup;
mod stats;
#[cfg(feature = "stt")]
mod stt;
#[cfg(feature = "tts")]
mod tts;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
pub use engines::{Engine, SttStatus, TtsStatus, espeak_data_dir, prepare_process};
pub use stats::{EngineReport, EngineStats};

/// What went wrong with a speech job, each with what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VoiceError {
    #[error(
        "this agentos was built without {what}; build it with `cargo build --release --features voice` (see the README, \"Voice\")"
    )]
    NotBuilt { what: &'static str },
    #[error("{what} is not installed: {path} does not exist. Run `agentos voice setup` (or set {setting} to the file)")]
    Missing {
        what: &'static str,
        path: PathBuf,
        setting: &'static str,
    },
    #[error(
        "{what} at {path} cannot be used: {detail}. Run `agentos voice setup --force` to install it again (or set {setting})"
    )]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        detail: String,
        setting: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the audio is {seconds:.1} s long; at most {max:.0} s is accepted (voice.max_audio_seconds): split it")]
    TooLong { seconds: f64, max: f64 },
    #[error(
        "voice is busy: {running} job(s) running and {queued} waiting (voice.max_concurrent_jobs, voice.max_queued_jobs); retry in a few seconds"
    )]
    Busy { running: usize, queued: usize },
    #[error("the speech job did not finish within {seconds:.0} s (its deadline); try shorter audio or text")]
    Timeout { seconds: f64 },
    #[error("the speech job was cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

/// One transcribed stretch of speech.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Where it starts, in seconds from the beginning of the audio.
    pub start: f64,
    /// Where it ends, in seconds.
    pub end: f64,
    pub text: String,
}

/// What `transcribe` heard.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    /// Everything said, as one text.
    pub text: String,
    /// The text in timed pieces.
    pub segments: Vec<Segment>,
    /// The language spoken (ISO 639-1, e.g. `en`).
    pub language: String,
    /// Length of the audio, in seconds.
    pub audio_seconds: f64,
    /// Seconds the model worked, queue wait excluded.
    pub processing_seconds: f64,
}

/// Synthesized speech: a mono 16-bit WAV file.
#[derive(Debug, Clone)]
pub struct Speech {
    pub wav: Vec<u8>,
    pub voice: String,
    pub sample_rate: u32,
    pub audio_seconds: f64,
    pub processing_seconds: f64,
}

/// When a job must be done by, and what stops it early.
#[derive(Debug, Clone)]
pub struct JobLimits {
    pub deadline: tokio::time::Instant,
    pub cancel: Arc<CancellationToken>,
}

/// The voice provider of one agentos: its settings, engines, queue and figures.
pub struct Voice {
    pub(crate) engines: engines::Engines,
    pub(crate) jobs: jobs::Jobs,
    pub(crate) stats: stats::Stats,
    pub(crate) limits: Limits,
}

/// The settings a call is checked against.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "stt"), allow(dead_code))]
pub(crate) struct Limits {
    pub max_audio_seconds: f64,
    pub max_audio_bytes: u64,
    pub max_text_chars: usize,
    pub timeout: std::time::Duration,
}

impl Voice {
    pub fn new(config: &Config) -> Arc<Self> {
        let voice = &config.voice;
        Arc::new(Self {
            engines: engines::Engines::new(config),
            jobs: jobs::Jobs::new(voice.max_concurrent_jobs, voice.max_queued_jobs, voice.nice),
            stats: stats::Stats::default(),
            limits: Limits {
                max_audio_seconds: voice.max_audio_seconds,
                max_audio_bytes: voice.max_audio_bytes,
                max_text_chars: voice.max_text_chars,
                timeout: std::time::Duration::from_secs_f64(voice.timeout_secs),
            },
        })
    }

    /// Transcribes an audio file (WAV, FLAC, MP3, Ogg Vorbis). `language`: ISO 639-1, or
    /// `None` to detect it (English-only models always answer `en`).
    pub async fn transcribe(
        self: &Arc<Self>,
        audio: Vec<u8>,
        language: Option<String>,
        limits: JobLimits,
    ) -> Result<Transcript, VoiceError> {
        let started = Instant::now();
        let outcome = self.transcribe_inner(audio, language, limits).await;
        self.stats
            .stt
            .record(&outcome, started, |t| (t.audio_seconds, t.processing_seconds));
        outcome
    }

    /// Speaks `text` with `voice` (or the default one) at `speed` (1.0 normal).
    pub async fn speak(
        self: &Arc<Self>,
        text: String,
        voice: Option<String>,
        speed: f32,
        limits: JobLimits,
    ) -> Result<Speech, VoiceError> {
        let started = Instant::now();
        let outcome = self.speak_inner(text, voice, speed, limits).await;
        self.stats
            .tts
            .record(&outcome, started, |s| (s.audio_seconds, s.processing_seconds));
        outcome
    }

    /// What is installed and loaded, the queue, and (max audio seconds, max text characters).
    pub fn status(&self) -> (SttStatus, TtsStatus, jobs::QueueState, (f64, usize)) {
        (
            self.engines.stt_status(),
            self.engines.tts_status(),
            self.jobs.state(),
            (self.limits.max_audio_seconds, self.limits.max_text_chars),
        )
    }

    /// Each engine's figures since start: (speech to text, text to speech).
    pub fn reports(&self) -> (EngineReport, EngineReport) {
        (self.stats.stt.report(), self.stats.tts.report())
    }

    /// The earlier of the call's deadline and the job timeout.
    #[cfg_attr(not(any(feature = "stt", feature = "tts")), allow(dead_code))]
    fn deadline(&self, limits: &JobLimits) -> JobLimits {
        JobLimits {
            deadline: limits.deadline.min(tokio::time::Instant::now() + self.limits.timeout),
            cancel: limits.cancel.clone(),
        }
    }
}
