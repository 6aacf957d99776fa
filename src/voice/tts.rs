//! Text to speech with Piper (piper-rs on ONNX Runtime). ONNX Runtime is a shared library
//! loaded at run time; it is checked by loading it ourselves first, because ort waits forever
//! on a library that cannot load. Voices are loaded on first use and kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use piper_rs::Piper;

use super::VoiceError;

const ORT_WHAT: &str = "ONNX Runtime";
const ORT_SETTING: &str = "voice.onnxruntime_library";
const VOICE_SETTING: &str = "voice.voices_dir";

pub(crate) struct Tts {
    voices_dir: PathBuf,
    default_voice: Option<String>,
    runtime: PathBuf,
    espeak: Option<PathBuf>,
    runtime_ready: Mutex<bool>,
    voices: Mutex<HashMap<String, Arc<Mutex<Piper>>>>,
}

impl Tts {
    pub fn new(voices_dir: PathBuf, default_voice: Option<String>, runtime: PathBuf, espeak: Option<PathBuf>) -> Self {
        Self {
            voices_dir,
            default_voice,
            runtime,
            espeak,
            runtime_ready: Mutex::new(false),
            voices: Mutex::new(HashMap::new()),
        }
    }

    /// Names of the voices installed: `NAME` for each `NAME.onnx` beside a `NAME.onnx.json`.
    pub fn voice_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.voices_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.strip_suffix(".onnx")?.to_owned();
                self.voices_dir
                    .join(format!("{name}.onnx.json"))
                    .is_file()
                    .then_some(name)
            })
            .collect();
        names.sort();
        names
    }

    pub fn loaded_voices(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .voices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The voice a call gets without naming one.
    pub fn default_voice(&self) -> Option<String> {
        let names = self.voice_names();
        match &self.default_voice {
            Some(name) => Some(name.clone()),
            None if names.iter().any(|n| n == crate::config::DEFAULT_VOICE) => {
                Some(crate::config::DEFAULT_VOICE.to_owned())
            }
            None => names.into_iter().next(),
        }
    }

    /// Whether what synthesis needs is in place (the runtime library, espeak-ng data, a
    /// voice), without loading anything.
    pub fn check(&self) -> Result<(), VoiceError> {
        check_runtime_file(&self.runtime)?;
        if !*self.runtime_ready.lock().unwrap_or_else(|p| p.into_inner()) {
            probe_library(&self.runtime)?;
        }
        self.check_espeak()?;
        if self.default_voice().is_none() {
            return Err(VoiceError::Missing {
                what: "a Piper voice",
                path: self.voices_dir.join("NAME.onnx"),
                setting: VOICE_SETTING,
            });
        }
        Ok(())
    }

    fn check_espeak(&self) -> Result<(), VoiceError> {
        let dir = self.espeak.clone().unwrap_or_else(|| PathBuf::from("(none found)"));
        if !dir.join("espeak-ng-data").join("phontab").is_file() {
            return Err(VoiceError::Missing {
                what: "espeak-ng's data (it turns text into phonemes; on Debian: apt install espeak-ng-data)",
                path: dir.join("espeak-ng-data"),
                setting: "voice.espeak_data_dir",
            });
        }
        Ok(())
    }

    /// Loads ONNX Runtime once; until that works every call checks again, so fixing the file
    /// needs no restart.
    fn ensure_runtime(&self) -> Result<(), VoiceError> {
        let mut ready = self.runtime_ready.lock().unwrap_or_else(|p| p.into_inner());
        if *ready {
            return Ok(());
        }
        check_runtime_file(&self.runtime)?;
        probe_library(&self.runtime)?;
        ort::init_from(&self.runtime)
            .map_err(|error| corrupt_runtime(&self.runtime, error.to_string()))?
            .commit();
        *ready = true;
        Ok(())
    }

    fn voice(&self, name: &str) -> Result<Arc<Mutex<Piper>>, VoiceError> {
        if let Some(voice) = self.voices.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(voice.clone());
        }
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.starts_with('.');
        let installed = self.voice_names();
        if !valid || !installed.iter().any(|n| n == name) {
            return Err(VoiceError::Invalid(format!(
                "there is no voice `{name}`; installed voices: {} (agentos.voice_status lists them)",
                if installed.is_empty() {
                    "none".to_owned()
                } else {
                    installed.join(", ")
                }
            )));
        }
        let model = self.voices_dir.join(format!("{name}.onnx"));
        let config = self.voices_dir.join(format!("{name}.onnx.json"));
        let piper = Piper::new(&model, &config).map_err(|error| VoiceError::Corrupt {
            what: "the Piper voice",
            path: model.clone(),
            detail: error.to_string(),
            setting: VOICE_SETTING,
        })?;
        let voice = Arc::new(Mutex::new(piper));
        self.voices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), voice.clone());
        Ok(voice)
    }

    /// Speaks `text`: (samples, sample rate, the voice used). `speed` 1.0 is the voice's own pace.
    pub fn speak(
        &self,
        text: &str,
        voice: Option<&str>,
        speed: f32,
        abort: &AtomicBool,
    ) -> Result<(Vec<f32>, u32, String), VoiceError> {
        self.check_espeak()?;
        self.ensure_runtime()?;
        let name = match voice {
            Some(name) => name.to_owned(),
            None => self.default_voice().ok_or_else(|| VoiceError::Missing {
                what: "a Piper voice",
                path: self.voices_dir.join("NAME.onnx"),
                setting: VOICE_SETTING,
            })?,
        };
        let piper = self.voice(&name)?;
        let mut piper = piper.lock().unwrap_or_else(|p| p.into_inner());
        let mut samples = Vec::new();
        let mut rate = 22_050;
        // Sentence by sentence, so a deadline stops a long text between sentences.
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if abort.load(Ordering::Relaxed) {
                return Err(VoiceError::Cancelled);
            }
            // noise 0: the same text always gives the same audio.
            let (part, part_rate) = piper
                .create(line, false, None, Some(1.0 / speed), Some(0.0), Some(0.0))
                .map_err(|error| VoiceError::Failed(format!("speech synthesis failed: {error}")))?;
            rate = part_rate;
            samples.extend(part);
        }
        Ok((samples, rate, name))
    }
}

fn corrupt_runtime(path: &Path, detail: String) -> VoiceError {
    VoiceError::Corrupt {
        what: ORT_WHAT,
        path: path.to_path_buf(),
        detail,
        setting: ORT_SETTING,
    }
}

/// The library file is there and is an ELF shared object (or a Mach-O / PE one elsewhere).
pub(crate) fn check_runtime_file(path: &Path) -> Result<(), VoiceError> {
    let mut header = [0u8; 18];
    let read = std::fs::File::open(path).and_then(|mut file| std::io::Read::read_exact(&mut file, &mut header));
    match read {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(VoiceError::Missing {
            what: ORT_WHAT,
            path: path.to_path_buf(),
            setting: ORT_SETTING,
        }),
        Err(error) => Err(corrupt_runtime(path, format!("it cannot be read ({error})"))),
        // ELF, type ET_DYN (3): a shared object.
        Ok(()) if cfg!(target_os = "linux") && (&header[..4] != b"\x7fELF" || header[16] != 3) => {
            Err(corrupt_runtime(path, "it is not a shared library".into()))
        }
        Ok(()) => Ok(()),
    }
}

/// Loads the library and looks up ONNX Runtime's entry point, then lets it go: an error here
/// is an answer, where ort would wait forever.
fn probe_library(path: &Path) -> Result<(), VoiceError> {
    #[cfg(unix)]
    {
        use std::ffi::{CStr, CString};
        use std::os::unix::ffi::OsStrExt;
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| corrupt_runtime(path, "its path holds a NUL byte".into()))?;
        // SAFETY: dlopen/dlsym/dlclose with a valid C string; the handle is closed before return
        // and nothing from the library is called.
        unsafe {
            let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                let reason = libc::dlerror();
                let reason = if reason.is_null() {
                    "unknown reason".to_owned()
                } else {
                    CStr::from_ptr(reason).to_string_lossy().into_owned()
                };
                return Err(corrupt_runtime(path, format!("it does not load ({reason})")));
            }
            let entry = libc::dlsym(handle, c"OrtGetApiBase".as_ptr());
            libc::dlclose(handle);
            if entry.is_null() {
                return Err(corrupt_runtime(
                    path,
                    "it is not ONNX Runtime (no OrtGetApiBase)".into(),
                ));
            }
        }
    }
    Ok(())
}
