//! Speech to text with Whisper (whisper.cpp through whisper-rs). The model is checked before it
//! is handed to whisper.cpp (a damaged file must give an error, not a crash), loaded on first
//! use and shared; each job gets its own decoding state.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{Segment, VoiceError};

/// The sample rate Whisper listens at.
pub(crate) const RATE: u32 = 16_000;

const WHAT: &str = "the Whisper model";
const SETTING: &str = "voice.whisper_model";

pub(crate) struct Stt {
    path: PathBuf,
    threads: usize,
    short_context: bool,
    loaded: Mutex<Option<Arc<Loaded>>>,
}

struct Loaded {
    context: WhisperContext,
    multilingual: bool,
}

/// What a model file says about itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelInfo {
    pub multilingual: bool,
}

impl Stt {
    pub fn new(path: PathBuf, threads: usize, short_context: bool) -> Self {
        // whisper.cpp's own logging (to stderr) goes nowhere; our errors say what failed.
        whisper_rs::install_logging_hooks();
        Self {
            path,
            threads,
            short_context,
            loaded: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn loaded(&self) -> bool {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Whether the model is there and whole, without loading it.
    pub fn check(&self) -> Result<ModelInfo, VoiceError> {
        if let Some(loaded) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(ModelInfo {
                multilingual: loaded.multilingual,
            });
        }
        check_model(&self.path)
    }

    fn context(&self) -> Result<Arc<Loaded>, VoiceError> {
        let mut slot = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loaded) = slot.as_ref() {
            return Ok(loaded.clone());
        }
        let info = check_model(&self.path)?;
        let path = self.path.to_str().ok_or_else(|| VoiceError::Corrupt {
            what: WHAT,
            path: self.path.clone(),
            detail: "its path is not UTF-8".into(),
            setting: SETTING,
        })?;
        let mut context_params = WhisperContextParameters::default();
        // Fused attention: the encoder's attention over 1500 frames dominates short clips.
        context_params.flash_attn(true);
        let context = WhisperContext::new_with_params(path, context_params).map_err(|error| VoiceError::Corrupt {
            what: WHAT,
            path: self.path.clone(),
            detail: format!("whisper.cpp could not load it ({error})"),
            setting: SETTING,
        })?;
        let loaded = Arc::new(Loaded {
            context,
            multilingual: info.multilingual,
        });
        *slot = Some(loaded.clone());
        Ok(loaded)
    }

    /// Transcribes 16 kHz mono samples. Stops early, with an error, once `abort` is raised.
    pub fn transcribe(
        &self,
        samples: &[f32],
        language: Option<&str>,
        abort: Arc<AtomicBool>,
    ) -> Result<(Vec<Segment>, String), VoiceError> {
        let loaded = self.context()?;
        if let Some(language) = language
            && !loaded.multilingual
            && language != "en"
        {
            return Err(VoiceError::Invalid(format!(
                "the installed Whisper model understands English only, not `{language}`; leave `language` out \
                 or set voice.whisper_model to a multilingual model"
            )));
        }
        if let Some(language) = language
            && whisper_rs::get_lang_id(language).is_none()
        {
            return Err(VoiceError::Invalid(format!(
                "`language` must be an ISO 639-1 code Whisper knows, such as `en`, `de` or `fr`; `{language}` is not one"
            )));
        }
        let mut state = loaded
            .context
            .create_state()
            .map_err(|error| VoiceError::Failed(format!("whisper.cpp could not start a transcription: {error}")))?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(self.threads).unwrap_or(4));
        if let Some(frames) = audio_context(samples.len(), self.short_context) {
            params.set_audio_ctx(frames);
        }
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_language(match (loaded.multilingual, language) {
            (false, _) => Some("en"),
            (true, Some(language)) => Some(language),
            (true, None) => Some("auto"),
        });
        // whisper-rs 0.16's closure form passes the wrong pointer to its trampoline (every job
        // aborted at once), so the plain C callback reads the flag itself.
        unsafe extern "C" fn should_abort(flag: *mut std::ffi::c_void) -> bool {
            // SAFETY: `flag` is the `AtomicBool` of `abort`, alive until `full` returns.
            unsafe { (*(flag as *const AtomicBool)).load(Ordering::Relaxed) }
        }
        // SAFETY: the callback only reads the flag, which `abort` keeps alive during `full`.
        unsafe {
            params.set_abort_callback(Some(should_abort));
            params.set_abort_callback_user_data(Arc::as_ptr(&abort) as *mut std::ffi::c_void);
        }
        state
            .full(params, samples)
            .map_err(|error| match abort.load(Ordering::Relaxed) {
                true => VoiceError::Cancelled,
                false => VoiceError::Failed(format!("whisper.cpp failed: {error}")),
            })?;
        let mut segments = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map(|t| t.trim().to_owned()).unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            segments.push(Segment {
                // whisper.cpp counts time in hundredths of a second.
                start: segment.start_timestamp() as f64 / 100.0,
                end: segment.end_timestamp() as f64 / 100.0,
                text,
            });
        }
        let language = if loaded.multilingual {
            whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("unknown")
        } else {
            "en"
        };
        Ok((segments, language.to_owned()))
    }
}

/// The encoder frames to use for `samples` of audio: Whisper encodes 30 s windows (1500
/// frames, 50 per second) whatever the clip's length, so a 5 s clip pays for 30 s. With
/// `short` on, a clip under 30 s is encoded as its own length plus a margin, which cuts the
/// encoder's work roughly by the ratio (whisper.cpp's `audio_ctx`; accuracy holds for clear
/// speech, and `voice.short_audio_context = false` restores full windows).
fn audio_context(samples: usize, short: bool) -> Option<i32> {
    const FRAMES_PER_SECOND: f64 = 50.0;
    let seconds = samples as f64 / f64::from(RATE);
    if !short || seconds >= 28.0 {
        return None;
    }
    let frames = ((seconds + 2.0) * FRAMES_PER_SECOND * 1.1).ceil() as i32;
    Some(frames.clamp(256, 1500))
}

/// Reads a ggml Whisper model's structure (header, mel filters, vocabulary and every tensor's
/// header, seeking over the data) and checks that it ends exactly where the file does. A
/// truncated or foreign file is refused here: whisper.cpp trusts what it reads.
pub(crate) fn check_model(path: &Path) -> Result<ModelInfo, VoiceError> {
    let corrupt = |detail: String| VoiceError::Corrupt {
        what: WHAT,
        path: path.to_path_buf(),
        detail,
        setting: SETTING,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(VoiceError::Missing {
                what: WHAT,
                path: path.to_path_buf(),
                setting: SETTING,
            });
        }
        Err(error) => return Err(corrupt(format!("it cannot be read ({error})"))),
    };
    let size = file
        .metadata()
        .map_err(|e| corrupt(format!("it cannot be read ({e})")))?
        .len();
    let mut reader = BufReader::new(file);
    let info = walk(&mut reader, size).map_err(corrupt)?;
    let position = reader.stream_position().map_err(|e| corrupt(e.to_string()))?;
    if position != size {
        return Err(corrupt(format!(
            "{} bytes follow its last weights",
            size.saturating_sub(position)
        )));
    }
    Ok(info)
}

fn walk(reader: &mut BufReader<File>, size: u64) -> Result<ModelInfo, String> {
    if int(reader)? != 0x6767_6d6c {
        return Err(
            "it is not a ggml model (wrong magic number); Whisper models for whisper.cpp start with `lmgg`".into(),
        );
    }
    let mut hparams = [0i64; 11];
    for value in &mut hparams {
        *value = int(reader)?;
    }
    let n_vocab = hparams[0];
    if hparams[..10].iter().any(|&v| !(1..=1 << 20).contains(&v)) {
        return Err("its header holds impossible sizes".into());
    }
    let (n_mel, n_fft) = (int(reader)?, int(reader)?);
    if !(1..=1024).contains(&n_mel) || !(1..=4096).contains(&n_fft) {
        return Err("its mel filter header holds impossible sizes".into());
    }
    skip(reader, size, n_mel * n_fft * 4)?;
    let words = int(reader)?;
    if !(0..=n_vocab).contains(&words) {
        return Err("its vocabulary size is impossible".into());
    }
    for _ in 0..words {
        let length = read_u32(reader)?;
        skip(reader, size, i64::from(length))?;
    }
    let mut tensors = 0;
    loop {
        let mut first = [0u8; 4];
        match reader.read(&mut first[..1]) {
            Ok(0) => break,
            Ok(_) => reader
                .read_exact(&mut first[1..])
                .map_err(|_| "it ends in the middle of a tensor (truncated?)".to_owned())?,
            Err(error) => return Err(format!("it cannot be read ({error})")),
        }
        let dims = i32::from_le_bytes(first);
        let name_length = read_u32(reader)?;
        let kind = read_u32(reader)?;
        if !(1..=4).contains(&dims) || !(1..=256).contains(&name_length) {
            return Err(format!("tensor {tensors} has an impossible header"));
        }
        let mut elements: i64 = 1;
        let mut row = 0;
        for axis in 0..dims {
            let extent = i64::from(read_u32(reader)?);
            if axis == 0 {
                row = extent;
            }
            elements = elements.saturating_mul(extent);
        }
        skip(reader, size, i64::from(name_length))?;
        let (block, block_bytes) =
            tensor_type(kind).ok_or_else(|| format!("tensor {tensors} has unknown type {kind}"))?;
        if row % block != 0 {
            return Err(format!("tensor {tensors} does not fit its type's blocks"));
        }
        skip(reader, size, elements / block * block_bytes)?;
        tensors += 1;
    }
    if tensors == 0 {
        return Err("it holds no weights".into());
    }
    Ok(ModelInfo {
        multilingual: n_vocab >= 51_865,
    })
}

fn int(reader: &mut impl Read) -> Result<i64, String> {
    Ok(i64::from(read_u32(reader)? as i32))
}

fn read_u32(reader: &mut impl Read) -> Result<u32, String> {
    let mut bytes = [0u8; 4];
    reader
        .read_exact(&mut bytes)
        .map_err(|_| "it ends too early (truncated?)".to_owned())?;
    Ok(u32::from_le_bytes(bytes))
}

/// Skips `bytes` forward, failing if that passes `size`, the end of the file.
fn skip<R: Read + Seek>(reader: &mut BufReader<R>, size: u64, bytes: i64) -> Result<(), String> {
    let here = reader.stream_position().map_err(|e| e.to_string())?;
    if bytes < 0 || here.saturating_add(bytes as u64) > size {
        return Err("it ends too early (truncated?)".into());
    }
    reader.seek_relative(bytes).map_err(|e| e.to_string())
}

/// (elements per block, bytes per block) of ggml's tensor types that Whisper models use.
fn tensor_type(kind: u32) -> Option<(i64, i64)> {
    Some(match kind {
        0 => (1, 4),      // f32
        1 => (1, 2),      // f16
        2 => (32, 18),    // q4_0
        3 => (32, 20),    // q4_1
        6 => (32, 22),    // q5_0
        7 => (32, 24),    // q5_1
        8 => (32, 34),    // q8_0
        10 => (256, 84),  // q2_k
        11 => (256, 110), // q3_k
        12 => (256, 144), // q4_k
        13 => (256, 176), // q5_k
        14 => (256, 210), // q6_k
        30 => (1, 2),     // bf16
        _ => return None,
    })
}
