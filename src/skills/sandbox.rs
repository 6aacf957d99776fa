//! The sandbox as the skills service uses it: one runtime per process, published versions
//! compiled once and kept on disk (`<data_dir>/skills/compiled/`) so a restart loads them in
//! milliseconds, and each version prepared once per process, when first called.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::capability::CapabilitySpec;
use super::library::Library;
use super::manifest::Manifest;
use super::runtime::{LoadedSkill, Runtime, SkillError};

/// Why a published version could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Library(#[from] super::library::LibraryError),
    #[error(transparent)]
    Skill(#[from] SkillError),
}

pub struct Sandbox {
    pub runtime: Runtime,
    compiled_dir: PathBuf,
    /// Prepared versions by component digest (and manifest: its capabilities are checked
    /// against the component), shared by every agent that installed them.
    ready: Mutex<HashMap<String, Arc<LoadedSkill>>>,
    /// Compiled components by digest (cheap to clone: they share their code), so publishing
    /// or loading the same component again never reads or compiles it twice.
    components: Mutex<HashMap<String, wasmtime::component::Component>>,
}

impl Sandbox {
    pub fn new(data_dir: &Path) -> Result<Self, SkillError> {
        Ok(Self {
            runtime: Runtime::new()?,
            compiled_dir: data_dir.join("skills").join("compiled"),
            ready: Mutex::new(HashMap::new()),
            components: Mutex::new(HashMap::new()),
        })
    }

    /// Checks a component about to be published against its manifest (it compiles, imports
    /// nothing agentos does not provide, exports every capability with JSON-able types) and
    /// returns its capabilities' tool specs. The compiled form is kept for later loads.
    pub fn inspect(&self, wasm: &[u8], sha256: &str, manifest: &Manifest) -> Result<Vec<CapabilitySpec>, SkillError> {
        // The same component published again (another version, another manifest) is compiled
        // once: `sha256` is the digest of these very bytes.
        let component = self.compiled(wasm, sha256)?;
        let skill = self.runtime.prepare(&component, manifest)?;
        Ok(skill
            .capabilities
            .iter()
            .map(|capability| {
                let described = &manifest.capabilities[&capability.name];
                CapabilitySpec::new(
                    &capability.name,
                    &described.description,
                    described.read_only,
                    capability.input_schema.clone(),
                    capability.output_schema.clone(),
                )
            })
            .collect())
    }

    /// The published version `sha256` ready to run: verified against its digest, then loaded
    /// from its compiled form on disk (compiled again when that is missing or was made by
    /// another build). Blocks: run it off the async threads.
    pub fn ready(&self, library: &Library, sha256: &str, manifest: &Manifest) -> Result<Arc<LoadedSkill>, LoadError> {
        if let Some(ready) = self.already_ready(sha256, manifest) {
            return Ok(ready);
        }
        let key = ready_key(sha256, manifest);
        // Read and check the component even when its compiled form is on disk: a component
        // changed after it was published is refused, not run from a stale cache.
        let wasm = library.get(sha256)?;
        let cached = self.compiled_path(sha256);
        // SAFETY: files in `compiled_dir` are written only by `keep_compiled`, from components
        // this process compiled, in the data directory that only agentos may write to.
        let component = match cached
            .exists()
            .then(|| unsafe { self.runtime.deserialize_file(&cached) })
        {
            Some(Ok(component)) => component,
            Some(Err(error)) => {
                tracing::info!(%error, sha256, "compiled skill is stale; compiling it again");
                let component = self.runtime.compile(&wasm)?;
                self.keep_compiled(sha256, &component);
                component
            }
            None => {
                let component = self.runtime.compile(&wasm)?;
                self.keep_compiled(sha256, &component);
                component
            }
        };
        let skill = Arc::new(self.runtime.prepare(&component, manifest)?);
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, skill.clone());
        Ok(skill)
    }

    /// The published version `sha256` if it was made ready before; never blocks on a compile.
    pub fn already_ready(&self, sha256: &str, manifest: &Manifest) -> Option<Arc<LoadedSkill>> {
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ready_key(sha256, manifest))
            .cloned()
    }

    /// `wasm` (whose digest is `sha256`) compiled: from its compiled form on disk when that is
    /// there and made by this build, else compiled now and kept.
    fn compiled(&self, wasm: &[u8], sha256: &str) -> Result<wasmtime::component::Component, SkillError> {
        if let Some(component) = self.components.lock().unwrap_or_else(|p| p.into_inner()).get(sha256) {
            return Ok(component.clone());
        }
        let component = self.compiled_from_disk(wasm, sha256)?;
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.to_owned(), component.clone());
        Ok(component)
    }

    fn compiled_from_disk(&self, wasm: &[u8], sha256: &str) -> Result<wasmtime::component::Component, SkillError> {
        let cached = self.compiled_path(sha256);
        if cached.exists() {
            // SAFETY: files in `compiled_dir` are written only by `keep_compiled`, from
            // components this runtime compiled, in the data directory only agentos may write to.
            match unsafe { self.runtime.deserialize_file(&cached) } {
                Ok(component) => return Ok(component),
                Err(error) => tracing::info!(%error, sha256, "compiled skill is stale; compiling it again"),
            }
        }
        let component = self.runtime.compile(wasm)?;
        self.keep_compiled(sha256, &component);
        Ok(component)
    }

    fn compiled_path(&self, sha256: &str) -> PathBuf {
        self.compiled_dir.join(format!("{sha256}.cwasm"))
    }

    /// Writes the compiled form (to a temporary name, then renamed into place). A failure only
    /// costs a compile on the next start, so it is logged, not returned.
    fn keep_compiled(&self, sha256: &str, component: &wasmtime::component::Component) {
        let written = Runtime::serialize(component).and_then(|bytes| {
            std::fs::create_dir_all(&self.compiled_dir).map_err(|e| SkillError::Runtime(e.to_string()))?;
            let temporary = self
                .compiled_dir
                .join(format!(".{sha256}.{}.partial", std::process::id()));
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, self.compiled_path(sha256)))
                .map_err(|e| SkillError::Runtime(e.to_string()))
        });
        if let Err(error) = written {
            tracing::warn!(%error, sha256, "could not keep a compiled skill on disk");
        }
    }
}

fn ready_key(sha256: &str, manifest: &Manifest) -> String {
    format!("{sha256}:{}@{}", manifest.slug, manifest.version)
}
