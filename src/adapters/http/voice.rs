//! `/api/voice/*`: REST adapters over the `agentos.voice_*` tools. Transcription takes the audio
//! as the raw request body or as a multipart upload; speech answers with the WAV file itself.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error_response;
use super::json::JsonBody;
use super::openapi::{Op, tool_schema};
use super::tool_call::ToolCall;

/// `?language=` of `POST /api/voice/transcribe`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TranscribeQuery {
    language: Option<String>,
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request", message)
}

const HOW: &str = "send the audio file as the request body (Content-Type audio/wav, audio/flac, audio/mpeg, \
                   audio/ogg or application/octet-stream), or as multipart/form-data with the file in a field \
                   named `file`";

/// `POST /api/voice/transcribe`: the body is the audio, or a multipart form with `file` (and
/// optionally `language`).
pub(super) async fn transcribe(call: ToolCall, Query(query): Query<TranscribeQuery>, request: Request) -> Response {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let (state, _) = call.parts();
    let state = state.clone();
    let (audio, language) = if multipart {
        match Multipart::from_request(request, &state).await {
            Ok(form) => match read_form(form).await {
                Ok(read) => read,
                Err(response) => return response,
            },
            Err(rejection) => return bad_request(&format!("the multipart form cannot be read ({rejection}); {HOW}")),
        }
    } else {
        match Bytes::from_request(request, &state).await {
            Ok(bytes) => (bytes, None),
            Err(rejection) => return rejection.into_response(),
        }
    };
    if audio.is_empty() {
        return bad_request(&format!("no audio: {HOW}"));
    }
    let mut input = json!({ "audio": STANDARD.encode(&audio) });
    if let Some(language) = language.or(query.language) {
        input["language"] = json!(language);
    }
    call.run("agentos.voice_transcribe", input).await
}

/// The `file` (or `audio`) field and the optional `language` field of a form.
async fn read_form(mut form: Multipart) -> Result<(Bytes, Option<String>), Response> {
    let mut audio = None;
    let mut language = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                return Err(bad_request(&format!(
                    "the multipart form cannot be read ({error}); {HOW}"
                )));
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let data = field
            .bytes()
            .await
            .map_err(|error| bad_request(&format!("the multipart field `{name}` cannot be read ({error})")))?;
        match name.as_str() {
            "file" | "audio" if audio.is_none() => audio = Some(data),
            "language" => {
                let text = String::from_utf8(data.to_vec()).map_err(|_| bad_request("`language` must be text"))?;
                language = Some(text.trim().to_owned());
            }
            _ => {}
        }
    }
    match audio {
        Some(audio) => Ok((audio, language)),
        None => Err(bad_request(&format!("the form has no `file` field: {HOW}"))),
    }
}

/// `POST /api/voice/speak` with `{"text": "...", "voice"?: "...", "speed"?: 1.0}`: answers the
/// WAV file (`audio/wav`), with the voice and length in headers.
pub(super) async fn speak(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    let Value::Object(input) = body else {
        return bad_request("expected {\"text\": \"...\", \"voice\"?: \"...\", \"speed\"?: 1.0}");
    };
    if input.contains_key("path") {
        return bad_request("`path` is not taken here: this route answers the WAV file itself");
    }
    call.run_rendered("agentos.voice_speak", Value::Object(input), |_, spoken| {
        let Some(wav) = spoken["audio"].as_str().and_then(|a| STANDARD.decode(a).ok()) else {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the speech tool answered without audio",
            );
        };
        let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "audio/wav")], wav).into_response();
        let headers = response.headers_mut();
        for (name, field) in [("x-voice", "voice"), ("x-audio-seconds", "audioSeconds")] {
            let value = match &spoken[field] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    })
    .await
}

/// `GET /api/voice/status`
pub(super) async fn status(call: ToolCall) -> Response {
    call.run("agentos.voice_status", json!({})).await
}

/// `GET /api/voice/stats`
pub(super) async fn stats(call: ToolCall) -> Response {
    call.run("agentos.voice_stats", json!({})).await
}

pub(super) fn transcribe_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    let mut op = op
        .named("voiceTranscribe", "Transcribe speech")
        .describe(
            "Backed by `agentos.voice_transcribe`. The body is the audio file (WAV, FLAC, MP3 or Ogg Vorbis), \
             or a multipart form with the file in `file` and optionally `language`.",
        )
        .param(
            "query",
            "language",
            false,
            json!({"type": "string", "minLength": 2, "maxLength": 8}),
            "The language spoken (ISO 639-1, e.g. `en`); detected when left out.",
        )
        .reply(
            200,
            "What was said.",
            tool_schema!(schemas, "voice_transcribe", "outputSchema"),
        )
        .tool_backed();
    op = op.raw_body(json!({
        "required": true,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "language": {"type": "string"}
                }
            }}
        }
    }));
    op.errors(&[400])
}

pub(super) fn speak_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("voiceSpeak", "Speak text")
        .describe("Backed by `agentos.voice_speak` (without `path`): answers the WAV file.")
        .json_body(tool_schema!(schemas, "voice_speak", "inputSchema"))
        .reply_as(
            200,
            "The speech, a mono 16-bit WAV file; `X-Voice` and `X-Audio-Seconds` describe it.",
            "audio/wav",
            json!({"type": "string", "format": "binary"}),
        )
        .tool_backed()
}

pub(super) fn status_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("voiceStatus", "Voice status")
        .describe("Backed by `agentos.voice_status`: models, voices and the job queue.")
        .reply(
            200,
            "The status.",
            tool_schema!(schemas, "voice_status", "outputSchema"),
        )
        .tool_backed()
}

pub(super) fn stats_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("voiceStats", "Voice statistics")
        .describe("Backed by `agentos.voice_stats`: latency and real-time factor per engine.")
        .reply(
            200,
            "The figures.",
            tool_schema!(schemas, "voice_stats", "outputSchema"),
        )
        .tool_backed()
}
