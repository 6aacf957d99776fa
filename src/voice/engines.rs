//! The two engines as this build has them (a feature left out answers how to get it), what
//! they report to status and health, and the job each call becomes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use super::{JobLimits, Speech, Transcript, Voice, VoiceError};
use crate::config::Config;
use crate::ops::health::{ServiceHealth, ServiceStatus};

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Stt,
    Tts,
}

pub(crate) struct Engines {
    enabled: bool,
    #[cfg(feature = "stt")]
    stt: Arc<super::stt::Stt>,
    #[cfg(feature = "tts")]
    tts: Arc<super::tts::Tts>,
}

/// Where espeak-ng's data is: the setting, the environment, or the first system location
/// that has it.
pub fn espeak_data_dir(config: &Config) -> Option<PathBuf> {
    if let Some(dir) = &config.voice.espeak_data_dir {
        return Some(dir.clone());
    }
    if let Some(dir) = std::env::var_os("PIPER_ESPEAKNG_DATA_DIRECTORY") {
        return Some(PathBuf::from(dir));
    }
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/share",
        "/usr/local/share",
        "/opt/homebrew/share",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("espeak-ng-data").join("phontab").is_file())
}

/// Points the phonemizer at espeak-ng's data. It reads the environment when it first runs,
/// so this must be called before any thread starts (in `main`).
///
/// # Safety
/// No other thread may be running: it sets an environment variable.
pub unsafe fn prepare_process(config: &Config) {
    if let Some(dir) = espeak_data_dir(config) {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::set_var("PIPER_ESPEAKNG_DATA_DIRECTORY", dir) };
    }
}

fn disabled(error: &'static str) -> ServiceHealth {
    ServiceHealth {
        status: ServiceStatus::Disabled,
        response_time: 0,
        error: Some(error),
    }
}

/// Health from a check: healthy when usable, disabled when not installed (that is a choice,
/// not a failure), unhealthy when installed but broken.
#[cfg_attr(not(any(feature = "stt", feature = "tts")), allow(dead_code))]
fn health_of(check: impl FnOnce() -> Result<(), VoiceError>) -> ServiceHealth {
    let started = Instant::now();
    let check = check();
    let response_time = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, error) = match check {
        Ok(()) => (ServiceStatus::Healthy, None),
        Err(VoiceError::Missing { .. }) => (ServiceStatus::Disabled, Some("not_installed")),
        Err(_) => (ServiceStatus::Unhealthy, Some("unavailable")),
    };
    ServiceHealth {
        status,
        response_time,
        error,
    }
}

/// Speech to text as `voice_status` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SttStatus {
    /// Whether this build has speech to text (the `stt` cargo feature).
    pub built: bool,
    /// The model file's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether the model is installed and whole.
    pub ready: bool,
    /// Whether it is loaded in memory (it loads on the first transcription).
    pub loaded: bool,
    /// Whether it understands languages other than English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multilingual: Option<bool>,
    /// Why it is not ready, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Text to speech as `voice_status` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtsStatus {
    /// Whether this build has text to speech (the `tts` cargo feature).
    pub built: bool,
    /// Voices that can be named in `voice_speak`.
    pub voices: Vec<String>,
    /// The voice used when none is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_voice: Option<String>,
    /// Voices loaded in memory (each loads on its first use).
    pub loaded: Vec<String>,
    /// Whether ONNX Runtime, espeak-ng's data and a voice are in place.
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Engines {
    pub fn new(config: &Config) -> Self {
        #[cfg(not(any(feature = "stt", feature = "tts")))]
        let _ = config;
        Self {
            enabled: config.voice.enabled,
            #[cfg(feature = "stt")]
            stt: Arc::new(super::stt::Stt::new(
                config.voice.whisper_model(&config.data_dir),
                config.voice.threads(),
                config.voice.short_audio_context,
            )),
            #[cfg(feature = "tts")]
            tts: Arc::new(super::tts::Tts::new(
                config.voice.voices_dir(&config.data_dir),
                config.voice.default_voice.clone(),
                config.voice.onnxruntime_library(&config.data_dir),
                espeak_data_dir(config),
            )),
        }
    }

    pub fn stt_loaded(&self) -> bool {
        #[cfg(feature = "stt")]
        return self.stt.loaded();
        #[cfg(not(feature = "stt"))]
        false
    }

    pub fn tts_loaded(&self) -> bool {
        #[cfg(feature = "tts")]
        return !self.tts.loaded_voices().is_empty();
        #[cfg(not(feature = "tts"))]
        false
    }

    pub fn stt_health(&self) -> ServiceHealth {
        if !self.enabled {
            return disabled("off");
        }
        #[cfg(feature = "stt")]
        return health_of(|| self.stt.check().map(|_| ()));
        #[cfg(not(feature = "stt"))]
        disabled("not_built")
    }

    pub fn tts_health(&self) -> ServiceHealth {
        if !self.enabled {
            return disabled("off");
        }
        #[cfg(feature = "tts")]
        return health_of(|| self.tts.check());
        #[cfg(not(feature = "tts"))]
        disabled("not_built")
    }

    pub fn stt_status(&self) -> SttStatus {
        #[cfg(feature = "stt")]
        {
            let check = self.stt.check();
            SttStatus {
                built: true,
                model: self.stt.path().file_name().map(|n| n.to_string_lossy().into_owned()),
                ready: check.is_ok(),
                loaded: self.stt.loaded(),
                multilingual: check.as_ref().ok().map(|info| info.multilingual),
                problem: check.err().map(|e| e.to_string()),
            }
        }
        #[cfg(not(feature = "stt"))]
        SttStatus {
            built: false,
            model: None,
            ready: false,
            loaded: false,
            multilingual: None,
            problem: Some(VoiceError::NotBuilt { what: "speech to text" }.to_string()),
        }
    }

    pub fn tts_status(&self) -> TtsStatus {
        #[cfg(feature = "tts")]
        {
            let check = self.tts.check();
            TtsStatus {
                built: true,
                voices: self.tts.voice_names(),
                default_voice: self.tts.default_voice(),
                loaded: self.tts.loaded_voices(),
                ready: check.is_ok(),
                problem: check.err().map(|e| e.to_string()),
            }
        }
        #[cfg(not(feature = "tts"))]
        TtsStatus {
            built: false,
            voices: Vec::new(),
            default_voice: None,
            loaded: Vec::new(),
            ready: false,
            problem: Some(VoiceError::NotBuilt { what: "text to speech" }.to_string()),
        }
    }
}

impl Voice {
    pub(super) async fn transcribe_inner(
        self: &Arc<Self>,
        audio: Vec<u8>,
        language: Option<String>,
        limits: JobLimits,
    ) -> Result<Transcript, VoiceError> {
        #[cfg(not(feature = "stt"))]
        {
            let _ = (audio, language, limits);
            Err(VoiceError::NotBuilt { what: "speech to text" })
        }
        #[cfg(feature = "stt")]
        {
            use super::audio;
            if audio.len() as u64 > self.limits.max_audio_bytes {
                return Err(VoiceError::Invalid(format!(
                    "the audio file is {} bytes; at most {} are accepted (voice.max_audio_bytes)",
                    audio.len(),
                    self.limits.max_audio_bytes
                )));
            }
            // What fails at once is found before the job waits for a slot.
            self.engines.stt.check()?;
            let max_seconds = self.limits.max_audio_seconds;
            if let Some(seconds) = audio::probe(&audio)?
                && seconds > max_seconds
            {
                return Err(VoiceError::TooLong {
                    seconds,
                    max: max_seconds,
                });
            }
            let limits = self.deadline(&limits);
            let stt = self.engines.stt.clone();
            let abort = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let job_abort = abort.clone();
            self.jobs
                .run(&limits, abort, move || {
                    let started = Instant::now();
                    let decoded = audio::decode_mono(&audio, super::stt::RATE, max_seconds)?;
                    drop(audio);
                    let (segments, language) = stt.transcribe(&decoded.samples, language.as_deref(), job_abort)?;
                    let text = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
                    Ok(Transcript {
                        text,
                        segments,
                        language,
                        audio_seconds: decoded.seconds(),
                        processing_seconds: started.elapsed().as_secs_f64(),
                    })
                })
                .await
        }
    }

    pub(super) async fn speak_inner(
        self: &Arc<Self>,
        text: String,
        voice: Option<String>,
        speed: f32,
        limits: JobLimits,
    ) -> Result<Speech, VoiceError> {
        let chars = text.chars().count();
        if text.trim().is_empty() {
            return Err(VoiceError::Invalid("`text` is empty: give the words to speak".into()));
        }
        if chars > self.limits.max_text_chars {
            return Err(VoiceError::Invalid(format!(
                "`text` has {chars} characters; at most {} are spoken in one call (voice.max_text_chars): split it",
                self.limits.max_text_chars
            )));
        }
        if !(speed.is_finite() && (0.25..=4.0).contains(&speed)) {
            return Err(VoiceError::Invalid("`speed` must be between 0.25 and 4".into()));
        }
        #[cfg(not(feature = "tts"))]
        {
            let _ = (voice, limits);
            Err(VoiceError::NotBuilt { what: "text to speech" })
        }
        #[cfg(feature = "tts")]
        {
            self.engines.tts.check()?;
            let limits = self.deadline(&limits);
            let tts = self.engines.tts.clone();
            let abort = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let job_abort = abort.clone();
            self.jobs
                .run(&limits, abort, move || {
                    let started = Instant::now();
                    let (samples, rate, voice) = tts.speak(&text, voice.as_deref(), speed, &job_abort)?;
                    let audio_seconds = samples.len() as f64 / f64::from(rate.max(1));
                    Ok(Speech {
                        wav: super::audio::wav(&samples, rate),
                        voice,
                        sample_rate: rate,
                        audio_seconds,
                        processing_seconds: started.elapsed().as_secs_f64(),
                    })
                })
                .await
        }
    }
}
