//! Voice: `agentos.voice_transcribe` and `agentos.voice_speak` over the voice provider, with
//! audio inline (base64) or in the caller's virtual filesystem, and `voice_status` /
//! `voice_stats` for what is installed and how fast it runs.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use super::files::{decode_base64_field, file_path};
use crate::registry::{CallContext, Empty, Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{FileLimits, FileWriteMode};
use crate::voice::{EngineReport, JobLimits, SttStatus, Transcript, TtsStatus, Voice, VoiceError};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TranscribeArgs {
    /// The audio file (WAV, FLAC, MP3 or Ogg Vorbis; any sample rate, mono or stereo) as
    /// standard base64. Give this or `path`.
    audio: Option<String>,
    /// Instead of `audio`: the audio file's path in your virtual filesystem (agentos.fs_*),
    /// e.g. `/recordings/memo.wav`.
    #[schemars(length(min = 1, max = 1024))]
    path: Option<String>,
    /// The language spoken, as an ISO 639-1 code such as `en` or `de`. Leave it out to detect
    /// it (English-only models always hear English).
    #[schemars(length(min = 2, max = 8))]
    language: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SpeakArgs {
    /// What to say: plain text, up to `voice.max_text_chars` characters (2000 by default).
    /// Each line is spoken as its own sentence.
    #[schemars(length(min = 1))]
    text: String,
    /// The voice, as agentos.voice_status lists them (e.g. `en_US-joe-medium`); the default
    /// voice when left out.
    #[schemars(length(min = 1, max = 128))]
    voice: Option<String>,
    /// Pace: 1.0 (default) is the voice's own, 2.0 twice as fast, 0.5 half as fast (0.25-4).
    #[schemars(range(min = 0.25, max = 4.0))]
    speed: Option<f32>,
    /// Write the WAV file to this path in your virtual filesystem instead of returning it,
    /// e.g. `/speech/greeting.wav`.
    #[schemars(length(min = 1, max = 1024))]
    path: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Spoken {
    /// The WAV file (mono, 16-bit) as base64; absent when it was written to `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<String>,
    /// Where the WAV file was written, when `path` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// Always `audio/wav`.
    mime_type: &'static str,
    /// The voice that spoke.
    voice: String,
    sample_rate: u32,
    /// Length of the speech, in seconds.
    audio_seconds: f64,
    /// Seconds the synthesis took, queue wait excluded.
    processing_seconds: f64,
    /// Size of the WAV file, in bytes.
    bytes: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Queue {
    /// Jobs running now.
    running: usize,
    /// Jobs waiting for a slot.
    waiting: usize,
    /// Jobs that run at once (voice.max_concurrent_jobs).
    max_concurrent: usize,
    /// Jobs that may wait; past that calls are refused as busy (voice.max_queued_jobs).
    max_queued: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Status {
    /// Speech to text: the model, whether it is ready and loaded.
    stt: SttStatus,
    /// Text to speech: the voices, whether they are ready and loaded.
    tts: TtsStatus,
    queue: Queue,
    /// Longest audio accepted, in seconds.
    max_audio_seconds: f64,
    /// Longest text spoken in one call, in characters.
    max_text_chars: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Stats {
    /// Speech to text since agentos started.
    stt: EngineReport,
    /// Text to speech since agentos started.
    tts: EngineReport,
}

/// How a speech failure reaches the model: busy and deadlines as retryable, the rest as what
/// to change.
impl From<VoiceError> for ToolFailure {
    fn from(error: VoiceError) -> Self {
        let message = error.to_string();
        match error {
            VoiceError::Busy { .. } | VoiceError::Timeout { .. } => ToolFailure::busy(message),
            VoiceError::Invalid(_) | VoiceError::TooLong { .. } => ToolFailure::invalid_input(message),
            _ => ToolFailure::new(message),
        }
    }
}

fn limits_of(ctx: &CallContext) -> JobLimits {
    JobLimits {
        deadline: ctx.deadline,
        cancel: ctx.cancel.clone(),
    }
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let Some(voice) = services.voice.clone() else {
        return Vec::new();
    };
    let (transcribe, speak, status, stats) = (
        (services.clone(), voice.clone()),
        (services.clone(), voice.clone()),
        voice.clone(),
        voice,
    );
    vec![
        ToolBuilder::new("agentos.voice_transcribe")
            .title("Transcribe speech")
            .description(
                "Turns recorded speech into text, locally (Whisper; nothing leaves this machine). \
                 Give the audio file as base64 in `audio`, or the path of a file in your virtual \
                 filesystem in `path`: WAV, FLAC, MP3 or Ogg Vorbis, any sample rate. Returns the \
                 text, timed segments and the language. Audio longer than the configured limit \
                 (120 s by default) is refused: split it. When many jobs are waiting the call \
                 fails as busy; retry shortly.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: TranscribeArgs, ctx| {
                let (services, voice) = transcribe.clone();
                async move {
                    let audio = match (args.audio, args.path) {
                        (Some(audio), None) => {
                            let limit = services.config.voice.max_audio_bytes;
                            if audio.len() as u64 / 4 * 3 > limit + 3 {
                                return Err(VoiceError::Invalid(format!(
                                    "the audio is larger than voice.max_audio_bytes ({limit} bytes)"
                                ))
                                .into());
                            }
                            decode_base64_field("audio", &audio)?
                        }
                        (None, Some(path)) => read_audio(&services, &ctx, &path).await?,
                        _ => {
                            return Err(ToolFailure::invalid_input(
                                "give the audio either inline as base64 in `audio` or as a file `path`, not both",
                            ));
                        }
                    };
                    let transcript: Transcript = voice.transcribe(audio, args.language, limits_of(&ctx)).await?;
                    Ok(transcript)
                }
            }),
        ToolBuilder::new("agentos.voice_speak")
            .title("Speak text")
            .description(
                "Turns text into natural speech, locally (Piper; nothing leaves this machine). \
                 Returns a WAV file (mono, 16-bit) as base64 in `audio`, or writes it to `path` in \
                 your virtual filesystem. Choose a `voice` from agentos.voice_status and a `speed` \
                 (1.0 normal). The same text and voice always give the same audio.",
            )
            .hints(Hints::WRITE)
            .handler(move |args: SpeakArgs, ctx| {
                let (services, voice) = speak.clone();
                async move {
                    let target = args.path.as_deref().map(file_path).transpose()?;
                    let speech = voice
                        .speak(args.text, args.voice, args.speed.unwrap_or(1.0), limits_of(&ctx))
                        .await?;
                    let bytes = speech.wav.len() as u64;
                    let audio = match &target {
                        Some(path) => {
                            let files = &services.config.files;
                            let limits = FileLimits {
                                max_file_bytes: files.max_file_bytes,
                                quota_bytes: files.quota_bytes,
                            };
                            services
                                .store
                                .fs_write(&ctx.caller.agent_id, path, speech.wav, FileWriteMode::Replace, limits)
                                .await?;
                            None
                        }
                        None => Some(STANDARD.encode(&speech.wav)),
                    };
                    Ok(Spoken {
                        audio,
                        path: target,
                        mime_type: "audio/wav",
                        voice: speech.voice,
                        sample_rate: speech.sample_rate,
                        audio_seconds: (speech.audio_seconds * 1000.0).round() / 1000.0,
                        processing_seconds: speech.processing_seconds,
                        bytes,
                    })
                }
            }),
        ToolBuilder::new("agentos.voice_status")
            .title("Voice status")
            .description(
                "What speech agentos can do here: whether speech to text and text to speech are \
                 built, installed and loaded, the voices you can name in agentos.voice_speak, and \
                 the job queue. When something is not ready, `problem` says how to fix it.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, _ctx| {
                let voice = status.clone();
                async move { Ok(status_of(&voice)) }
            }),
        ToolBuilder::new("agentos.voice_stats")
            .title("Voice statistics")
            .description(
                "How speech jobs went since agentos started, per engine: counts by outcome, \
                 latency p50/p95/p99 in milliseconds (queue wait included) and the real-time \
                 factor (seconds of work per second of audio; below 1 is faster than real time).",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, _ctx| {
                let voice = stats.clone();
                async move {
                    let (stt, tts) = voice.reports();
                    Ok(Stats { stt, tts })
                }
            }),
    ]
}

fn status_of(voice: &Voice) -> Status {
    let (stt, tts, queue, limits) = voice.status();
    Status {
        stt,
        tts,
        queue: Queue {
            running: queue.running,
            waiting: queue.waiting,
            max_concurrent: queue.max_concurrent,
            max_queued: queue.max_queued,
        },
        max_audio_seconds: limits.0,
        max_text_chars: limits.1,
    }
}

async fn read_audio(services: &Services, ctx: &CallContext, raw: &str) -> Result<Vec<u8>, ToolFailure> {
    let path = file_path(raw)?;
    let limit = services.config.voice.max_audio_bytes;
    let slice = services
        .store
        .fs_read(&ctx.caller.agent_id, &path, 0, Some(limit + 1))
        .await?
        .ok_or_else(|| {
            ToolFailure::not_found(format!(
                "there is no file at `{path}`; write it with agentos.fs_write first (agentos.fs_list shows your files)"
            ))
        })?;
    if slice.meta.bytes > limit {
        return Err(ToolFailure::invalid_input(format!(
            "`{path}` is {} bytes; at most {limit} are accepted (voice.max_audio_bytes)",
            slice.meta.bytes
        )));
    }
    Ok(slice.data)
}
