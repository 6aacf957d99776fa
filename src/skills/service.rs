//! The skills service: publishing versions into the marketplace, each agent's installs, and
//! keeping every agent's `skill.<slug>.<capability>` tools in the registry in step with them.
//! Browsing works in every build; running skills needs the `skills` feature (the sandbox).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

use super::capability::CapabilitySpec;
use super::library::{self, Library, LibraryError};
use super::manifest::{Manifest, ManifestError};
use crate::config::SkillsConfig;
use crate::registry::{Entry, Registry, ToolFailure};
use crate::store::{
    NewSkillVersion, PublishRefusal, SkillInstall, SkillQuery, SkillSummary, SkillVersion, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum SkillsError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the component is refused: {0}")]
    Component(String),
    #[error("the component is {bytes} bytes; this agentos accepts at most {max} (skills.max_component_bytes)")]
    TooLarge { bytes: u64, max: u64 },
    #[error("`component` is not base64: {0}")]
    Encoding(String),
    #[error("{slug} {version} is not newer than the published {latest}: versions of a skill only go up")]
    NotNewer {
        slug: String,
        version: String,
        latest: String,
    },
    #[error("no skill `{0}` in the marketplace (give its id or slug; agentos.skills_search lists them)")]
    NoSuchSkill(String),
    #[error("the skill `{slug}` has no published version {version}")]
    NoSuchVersion { slug: String, version: String },
    #[error("you have not installed the skill `{0}` (agentos.skills_installed lists yours)")]
    NotInstalled(String),
    #[error(transparent)]
    Signature(#[from] super::signing::SigningError),
    #[error(
        "this agentos was built without the `skills` feature, so it cannot run skills; build it with \
         `cargo build --release --features skills`"
    )]
    Unavailable,
    #[error("the skill sandbox could not start: {0}")]
    Sandbox(String),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SkillsError> for ToolFailure {
    fn from(error: SkillsError) -> Self {
        match error {
            SkillsError::Store(error) => error.into(),
            SkillsError::Manifest(_)
            | SkillsError::Component(_)
            | SkillsError::TooLarge { .. }
            | SkillsError::Encoding(_) => ToolFailure::invalid_input(error.to_string()),
            SkillsError::NotNewer { .. } => {
                ToolFailure::new(error.to_string()).with_kind(crate::registry::FailureKind::Conflict)
            }
            SkillsError::NoSuchSkill(_) | SkillsError::NoSuchVersion { .. } | SkillsError::NotInstalled(_) => {
                ToolFailure::not_found(error.to_string())
            }
            SkillsError::Signature(_) => ToolFailure::forbidden(error.to_string()),
            SkillsError::Unavailable | SkillsError::Sandbox(_) | SkillsError::Library(_) => {
                ToolFailure::new(error.to_string())
            }
        }
    }
}

/// A version just published.
#[derive(Debug, Clone)]
pub struct Published {
    pub skill: SkillSummary,
    pub version: String,
    pub sha256: String,
    pub bytes: u64,
    pub capabilities: Vec<CapabilitySpec>,
    /// The trusted key that signed it, if any.
    pub signed_by: Option<String>,
}

/// One of an agent's installs, with the skill and the tools it gave the agent.
#[derive(Debug, Clone)]
pub struct Installed {
    pub install: SkillInstall,
    pub skill: SkillSummary,
    pub tools: Vec<String>,
}

pub struct Skills {
    store: Arc<dyn Store>,
    registry: Weak<Registry>,
    pub config: SkillsConfig,
    /// `config.trusted_keys`, parsed (checked when the configuration was loaded).
    trusted: Vec<super::signing::TrustedKey>,
    library: Arc<Library>,
    /// Every agent's tools are rebuilt one agent at a time, so two installs never race.
    refreshing: tokio::sync::Mutex<()>,
    /// The tools of each published version (`slug@version`), built once and shared by every
    /// agent that installed it.
    #[cfg_attr(not(feature = "skills"), allow(dead_code))]
    entries: Mutex<HashMap<String, Arc<Vec<Arc<Entry>>>>>,
    #[cfg(feature = "skills")]
    runner: Arc<super::tool::Runner>,
}

impl Skills {
    pub fn new(store: Arc<dyn Store>, registry: &Arc<Registry>, data_dir: &Path, config: SkillsConfig) -> Self {
        #[cfg(feature = "skills")]
        let runner = Arc::new(super::tool::Runner::new(data_dir, Arc::downgrade(registry)));
        // Config::validate refused bad entries; a hand-built config with one trusts none of them.
        let trusted = config.trusted().unwrap_or_else(|error| {
            tracing::error!(%error, "ignoring skills.trusted_keys");
            Vec::new()
        });
        Self {
            store,
            registry: Arc::downgrade(registry),
            trusted,
            config,
            library: Arc::new(Library::new(data_dir)),
            refreshing: tokio::sync::Mutex::new(()),
            entries: Mutex::new(HashMap::new()),
            #[cfg(feature = "skills")]
            runner,
        }
    }

    /// Publishes a version: checks the manifest and the component (it must compile, import only
    /// what agentos provides and export every capability the manifest describes), stores the
    /// component by digest and records the version.
    pub async fn publish(
        &self,
        publisher: &str,
        manifest_text: &str,
        wasm: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<Published, SkillsError> {
        let bytes = wasm.len() as u64;
        if bytes > self.config.max_component_bytes {
            return Err(SkillsError::TooLarge {
                bytes,
                max: self.config.max_component_bytes,
            });
        }
        let manifest = Manifest::parse(manifest_text)?;
        let version = manifest.semver()?;
        if let Some(latest) = self.store.skill_version(&manifest.slug, None).await?
            && semver::Version::parse(&latest.version).is_ok_and(|latest| version <= latest)
        {
            // Checked before compiling: a refused publish should not cost a compile.
            return Err(SkillsError::NotNewer {
                slug: manifest.slug.clone(),
                version: manifest.version.clone(),
                latest: latest.version,
            });
        }
        let sha256 = library::digest(&wasm);
        let signed_by = match signature {
            Some(signature) => {
                let signed = super::signing::message(&manifest.slug, &manifest.version, &sha256, manifest_text);
                Some(super::signing::verify(&self.trusted, signature, &signed)?)
            }
            None if self.config.require_signatures => return Err(super::signing::SigningError::Unsigned.into()),
            None => None,
        };
        let capabilities = self.inspect(wasm.clone(), sha256.clone(), manifest.clone()).await?;
        let library = self.library.clone();
        tokio::task::spawn_blocking(move || library.put(&wasm))
            .await
            .map_err(|error| SkillsError::Sandbox(error.to_string()))??;
        let new = NewSkillVersion {
            id: uuid::Uuid::new_v4().to_string(),
            slug: manifest.slug.clone(),
            version,
            name: manifest.name.clone(),
            author: manifest.author.clone(),
            category: manifest.category.clone(),
            description: manifest.description.clone(),
            tags: Value::from(manifest.tags.clone()).to_string(),
            manifest: serde_json::to_string(&manifest).unwrap_or_default(),
            capabilities: serde_json::to_string(&capabilities).unwrap_or_default(),
            sha256: sha256.clone(),
            bytes,
            published_by: publisher.to_owned(),
            signed_by: signed_by.clone(),
        };
        match self.store.skill_publish(new).await? {
            Ok(skill) => Ok(Published {
                skill,
                version: manifest.version,
                sha256,
                bytes,
                capabilities,
                signed_by,
            }),
            Err(PublishRefusal::NotNewer { latest }) => Err(SkillsError::NotNewer {
                slug: manifest.slug,
                version: manifest.version,
                latest,
            }),
        }
    }

    #[cfg(feature = "skills")]
    async fn inspect(
        &self,
        wasm: Vec<u8>,
        sha256: String,
        manifest: Manifest,
    ) -> Result<Vec<CapabilitySpec>, SkillsError> {
        let runner = self.runner.clone();
        tokio::task::spawn_blocking(move || {
            let sandbox = runner
                .sandbox()
                .map_err(|error| SkillsError::Sandbox(error.to_string()))?;
            sandbox
                .inspect(&wasm, &sha256, &manifest)
                .map_err(|error| SkillsError::Component(error.to_string()))
        })
        .await
        .map_err(|error| SkillsError::Sandbox(error.to_string()))?
    }

    #[cfg(not(feature = "skills"))]
    async fn inspect(&self, _: Vec<u8>, _: String, _: Manifest) -> Result<Vec<CapabilitySpec>, SkillsError> {
        Err(SkillsError::Unavailable)
    }

    /// One page of the marketplace and how many skills match.
    pub async fn search(&self, query: &SkillQuery) -> Result<(Vec<SkillSummary>, u64), SkillsError> {
        Ok(self.store.skills_list(query).await?)
    }

    async fn find(&self, id_or_slug: &str) -> Result<SkillSummary, SkillsError> {
        self.store
            .skill_find(id_or_slug)
            .await?
            .ok_or_else(|| SkillsError::NoSuchSkill(id_or_slug.to_owned()))
    }

    /// Installs a skill for `agent_id` at `version` (default: the latest), or moves its pin.
    /// Returns the install, whether it is new, and the tools the agent now has from it.
    pub async fn install(
        &self,
        agent_id: &str,
        id_or_slug: &str,
        version: Option<&str>,
    ) -> Result<(Installed, bool), SkillsError> {
        if cfg!(not(feature = "skills")) {
            return Err(SkillsError::Unavailable);
        }
        let skill = self.find(id_or_slug).await?;
        let published =
            self.store
                .skill_version(&skill.slug, version)
                .await?
                .ok_or_else(|| SkillsError::NoSuchVersion {
                    slug: skill.slug.clone(),
                    version: version.unwrap_or("latest").to_owned(),
                })?;
        // Built before the install is recorded, so a version that cannot be offered is refused
        // instead of installed broken.
        let tools = self.tools_of(&published)?;
        let (install, new) = self
            .store
            .skill_install(
                agent_id,
                &skill.slug,
                &published.version,
                &uuid::Uuid::new_v4().to_string(),
            )
            .await?;
        self.refresh(agent_id).await?;
        let skill = self.find(&skill.slug).await?;
        let tools = tools.iter().map(|entry| entry.name().to_string()).collect();
        Ok((Installed { install, skill, tools }, new))
    }

    /// Removes `agent_id`'s install of a skill; its tools leave the agent's live sessions.
    pub async fn uninstall(&self, agent_id: &str, id_or_slug: &str) -> Result<SkillSummary, SkillsError> {
        let skill = self.find(id_or_slug).await?;
        if !self.store.skill_uninstall(agent_id, &skill.slug).await? {
            return Err(SkillsError::NotInstalled(skill.slug));
        }
        self.refresh(agent_id).await?;
        self.find(&skill.slug).await
    }

    /// `agent_id`'s installs, with the tools each gives it.
    pub async fn installed(&self, agent_id: &str) -> Result<Vec<Installed>, SkillsError> {
        let mut out = Vec::new();
        for install in self.store.skills_installed(agent_id).await? {
            let Some(skill) = self.store.skill_find(&install.slug).await? else {
                continue;
            };
            let capabilities = match self.store.skill_version(&install.slug, Some(&install.version)).await? {
                Some(version) => capabilities_of(&version),
                None => Vec::new(),
            };
            let tools = capabilities.iter().map(|c| c.tool_name(&install.slug)).collect();
            out.push(Installed { install, skill, tools });
        }
        Ok(out)
    }

    /// Puts every agent's installed tools into the registry (at start).
    pub async fn load_installs(&self) -> Result<usize, SkillsError> {
        let owners = self.store.skill_install_owners().await?;
        for owner in &owners {
            if let Err(error) = self.refresh(owner).await {
                tracing::error!(agent = %owner, %error, "cannot offer an agent's installed skills");
            }
        }
        Ok(owners.len())
    }

    /// Sets `agent_id`'s skill tools in the registry to what its installs say now. A version
    /// that cannot be offered is logged and left out; the others stay.
    pub async fn refresh(&self, agent_id: &str) -> Result<(), SkillsError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let Some(registry) = self.registry.upgrade() else {
            return Ok(());
        };
        let mut entries = Vec::new();
        for install in self.store.skills_installed(agent_id).await? {
            let Some(version) = self.store.skill_version(&install.slug, Some(&install.version)).await? else {
                tracing::warn!(agent = %agent_id, skill = %install.slug, version = %install.version, "installed version is gone");
                continue;
            };
            match self.tools_of(&version) {
                Ok(tools) => entries.extend(tools.iter().cloned()),
                Err(error) => {
                    tracing::error!(agent = %agent_id, skill = %install.slug, %error, "cannot offer an installed skill")
                }
            }
        }
        registry
            .set_personal_tools(agent_id, entries)
            .map_err(|error| SkillsError::Sandbox(error.to_string()))
    }

    /// The registry entries of a published version's capabilities, built once per version.
    #[cfg(feature = "skills")]
    fn tools_of(&self, version: &SkillVersion) -> Result<Arc<Vec<Arc<Entry>>>, SkillsError> {
        let key = format!("{}@{}", version.slug, version.version);
        if let Some(entries) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(entries.clone());
        }
        let manifest: Manifest = serde_json::from_str(&version.manifest)
            .map_err(|error| SkillsError::Component(format!("its stored manifest is unreadable: {error}")))?;
        let published = Arc::new(
            super::tool::Published::new(version.sha256.clone(), manifest)
                .map_err(|error| SkillsError::Component(error.to_string()))?,
        );
        let runner = self.runner.clone();
        let entries = capabilities_of(version)
            .into_iter()
            .map(|capability| {
                let tool = super::tool::SkillTool::new(capability, published.clone(), runner.clone());
                Entry::new(Arc::new(tool))
                    .map(Arc::new)
                    .map_err(|error| SkillsError::Component(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entries = Arc::new(entries);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, entries.clone());
        Ok(entries)
    }

    #[cfg(not(feature = "skills"))]
    fn tools_of(&self, _: &SkillVersion) -> Result<Arc<Vec<Arc<Entry>>>, SkillsError> {
        Err(SkillsError::Unavailable)
    }
}

/// The capabilities stored with a version (empty if unreadable: nothing is offered).
fn capabilities_of(version: &SkillVersion) -> Vec<CapabilitySpec> {
    serde_json::from_str(&version.capabilities).unwrap_or_else(|error| {
        tracing::error!(skill = %version.slug, version = %version.version, %error, "stored capabilities are unreadable");
        Vec::new()
    })
}
