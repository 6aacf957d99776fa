//! `[voice]`: where the speech models are, and how much speech work agentos takes on at once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[voice]` in the config file. The models themselves are installed by `agentos voice setup`;
/// the paths here only matter to point at other files (a larger Whisper model, another voice).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceConfig {
    /// Offer `agentos.voice_*` (default true). In a build without the `stt`/`tts` features the
    /// tools are still listed and answer how to get a build with voice.
    pub enabled: bool,
    /// Where `agentos voice setup` installs the models and the others are looked for
    /// [default: `<data_dir>/voice`].
    pub models_dir: Option<PathBuf>,
    /// The Whisper model in whisper.cpp's ggml format [default: `<models_dir>/ggml-tiny.en.bin`].
    pub whisper_model: Option<PathBuf>,
    /// A directory of Piper voices, each `NAME.onnx` with its `NAME.onnx.json`
    /// [default: `<models_dir>/voices`].
    pub voices_dir: Option<PathBuf>,
    /// The voice used when a call names none [default: `en_US-joe-medium` when installed, else
    /// the first voice by name].
    pub default_voice: Option<String>,
    /// The ONNX Runtime shared library Piper runs on
    /// [default: `<models_dir>/libonnxruntime.so.1.32.0`].
    pub onnxruntime_library: Option<PathBuf>,
    /// The directory holding `espeak-ng-data`, which turns text into phonemes [default: the
    /// environment's `PIPER_ESPEAKNG_DATA_DIRECTORY`, else the system's espeak-ng data, e.g.
    /// `/usr/lib/x86_64-linux-gnu` on Debian with the `espeak-ng-data` package].
    pub espeak_data_dir: Option<PathBuf>,
    /// Encode clips shorter than 30 s at their own length rather than as a full 30 s window
    /// (default true): several times faster for short commands; turn it off if a larger
    /// model mishears short clips.
    pub short_audio_context: bool,
    /// CPU threads one job uses (0: as many as there are cores, at most 4).
    pub threads: usize,
    /// Longest audio `voice_transcribe` accepts, in seconds (default 120, at most 3600).
    pub max_audio_seconds: f64,
    /// Largest audio file `voice_transcribe` accepts, in bytes (default 32 MiB). Over HTTP the
    /// MCP body limit (`http.max_body_bytes`) applies first to inline base64 audio; write the
    /// file with `agentos.fs_write` in parts, or use `POST /api/voice/transcribe`.
    pub max_audio_bytes: u64,
    /// Longest text `voice_speak` accepts, in characters (default 2000).
    pub max_text_chars: usize,
    /// Speech jobs that run at once (default 1). Each uses `threads` cores.
    pub max_concurrent_jobs: usize,
    /// Jobs that may wait for a free slot (default 8); past that a call fails at once as busy.
    pub max_queued_jobs: usize,
    /// Longest a job may take, waiting in the queue included, in seconds (default 120). The
    /// call's own deadline (`limits.call_timeout_secs`) applies too: the earlier one wins.
    pub timeout_secs: f64,
    /// Scheduling priority (nice, 0-19) of the threads that run speech jobs (default 10), so a
    /// busy model never slows the tool calls agentos answers meanwhile.
    pub nice: i32,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            models_dir: None,
            whisper_model: None,
            voices_dir: None,
            default_voice: None,
            onnxruntime_library: None,
            espeak_data_dir: None,
            short_audio_context: true,
            threads: 0,
            max_audio_seconds: 120.0,
            max_audio_bytes: 32 * 1024 * 1024,
            max_text_chars: 2000,
            max_concurrent_jobs: 1,
            max_queued_jobs: 8,
            timeout_secs: 120.0,
            nice: 10,
        }
    }
}

/// The file `agentos voice setup` writes the Whisper model to.
pub const WHISPER_FILE: &str = "ggml-tiny.en.bin";
/// The directory of voices under the models directory.
pub const VOICES_DIR: &str = "voices";
/// The ONNX Runtime library as `agentos voice setup` installs it.
pub const ONNXRUNTIME_FILE: &str = "libonnxruntime.so.1.32.0";
/// The voice `agentos voice setup` installs, and the default when present.
pub const DEFAULT_VOICE: &str = "en_US-joe-medium";

impl VoiceConfig {
    pub fn models_dir(&self, data_dir: &Path) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(|| data_dir.join("voice"))
    }

    pub fn whisper_model(&self, data_dir: &Path) -> PathBuf {
        self.whisper_model
            .clone()
            .unwrap_or_else(|| self.models_dir(data_dir).join(WHISPER_FILE))
    }

    pub fn voices_dir(&self, data_dir: &Path) -> PathBuf {
        self.voices_dir
            .clone()
            .unwrap_or_else(|| self.models_dir(data_dir).join(VOICES_DIR))
    }

    pub fn onnxruntime_library(&self, data_dir: &Path) -> PathBuf {
        self.onnxruntime_library
            .clone()
            .unwrap_or_else(|| self.models_dir(data_dir).join(ONNXRUNTIME_FILE))
    }

    /// Threads per job: the setting, or the cores (at most 4) when it is 0.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            n => n,
        }
    }

    /// The first setting that is out of range, with why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let seconds = self.max_audio_seconds;
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
            return Some((
                "voice.max_audio_seconds",
                format!("{seconds} is not between 0 and 3600"),
            ));
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0 && self.timeout_secs <= 86_400.0) {
            return Some((
                "voice.timeout_secs",
                format!("{} is not between 0 and 86400 seconds", self.timeout_secs),
            ));
        }
        if self.max_concurrent_jobs == 0 || self.max_concurrent_jobs > 64 {
            return Some(("voice.max_concurrent_jobs", "must be between 1 and 64".to_owned()));
        }
        if self.max_queued_jobs > 10_000 {
            return Some(("voice.max_queued_jobs", "must be at most 10000".to_owned()));
        }
        if self.max_text_chars == 0 || self.max_text_chars > 100_000 {
            return Some(("voice.max_text_chars", "must be between 1 and 100000".to_owned()));
        }
        if self.max_audio_bytes < 1024 {
            return Some(("voice.max_audio_bytes", "must be at least 1024".to_owned()));
        }
        if self.threads > 256 {
            return Some(("voice.threads", "must be at most 256".to_owned()));
        }
        if !(0..=19).contains(&self.nice) {
            return Some(("voice.nice", format!("{} is not between 0 and 19", self.nice)));
        }
        None
    }
}
