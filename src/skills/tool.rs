//! A skill capability as a registry tool (`skill.<slug>.<capability>`), and the host its calls
//! get: every `call-tool` goes back through `Registry::call` as the calling agent, narrowed to
//! what the skill's manifest declares.

use std::sync::{Arc, Weak};
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::capability::CapabilitySpec;
use super::library::Library;
use super::manifest::Manifest;
use super::runtime::{Host, LoadedSkill, SkillError};
use super::sandbox::Sandbox;
use crate::registry::{
    Audience, CallContext, CallError, Caller, Hints, Origin, Registry, SkillScope, Tool, ToolFailure, ToolPolicy,
    ToolResult, ToolSpec, json_result, output_of, result_text,
};

/// The `_meta` key holding what the skill logged during the call (its `log` calls and prints).
pub const SKILL_LOG_META: &str = "agentos/skillLog";

/// What every capability's tool shares: the sandbox, the published components and the registry
/// that host calls go back to.
pub struct Runner {
    /// Started on first use (a publish or a call), so an agentos that runs no skill pays
    /// nothing for the engine.
    sandbox: std::sync::OnceLock<Result<Sandbox, String>>,
    data_dir: std::path::PathBuf,
    pub library: Library,
    pub registry: Weak<Registry>,
}

impl Runner {
    pub fn new(data_dir: &std::path::Path, registry: Weak<Registry>) -> Self {
        Self {
            sandbox: std::sync::OnceLock::new(),
            data_dir: data_dir.to_owned(),
            library: Library::new(data_dir),
            registry,
        }
    }

    /// The sandbox, started now if this is its first use. Blocks while it starts.
    pub fn sandbox(&self) -> Result<&Sandbox, SkillError> {
        self.sandbox
            .get_or_init(|| Sandbox::new(&self.data_dir).map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|error| SkillError::Runtime(error.clone()))
    }

    /// The sandbox if it has started.
    fn started(&self) -> Option<&Sandbox> {
        self.sandbox.get().and_then(|started| started.as_ref().ok())
    }
}

/// One published version, as its tools run it.
pub struct Published {
    pub slug: String,
    pub version: String,
    pub sha256: String,
    pub manifest: Manifest,
    /// Names the skill in records and carries its declared domains.
    pub scope: Arc<SkillScope>,
    /// The tools its manifest declares (`permissions.tools`).
    pub tools: ToolPolicy,
}

impl Published {
    pub fn new(sha256: String, manifest: Manifest) -> Result<Self, crate::registry::PolicyError> {
        Ok(Self {
            slug: manifest.slug.clone(),
            version: manifest.version.clone(),
            sha256,
            tools: ToolPolicy::parse(&manifest.permissions.tools)?,
            scope: Arc::new(SkillScope {
                name: Arc::from(format!("{}@{}", manifest.slug, manifest.version)),
                domains: Arc::from(manifest.permissions.domains.clone()),
            }),
            manifest,
        })
    }
}

pub struct SkillTool {
    spec: ToolSpec,
    capability: CapabilitySpec,
    published: Arc<Published>,
    runner: Arc<Runner>,
}

fn object(value: &Value) -> Arc<rmcp::model::JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

impl SkillTool {
    pub fn new(capability: CapabilitySpec, published: Arc<Published>, runner: Arc<Runner>) -> Self {
        let manifest = &published.manifest;
        let hints = if capability.read_only {
            Hints::READ_ONLY
        } else {
            Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: !manifest.permissions.domains.is_empty(),
            }
        };
        let spec = ToolSpec {
            name: Arc::from(capability.tool_name(&published.slug)),
            title: Some(format!("{} ({})", capability.name, manifest.name)),
            description: format!(
                "{}\n\nA capability of the skill `{}` {} by {}, run in agentos's sandbox.",
                capability.description, manifest.slug, manifest.version, manifest.author
            ),
            input_schema: object(&capability.input_schema),
            output_schema: Some(object(&capability.output_schema)),
            annotations: Some(hints),
            origin: Origin::Skill,
            audience: Audience::ByPolicy,
        };
        Self {
            spec,
            capability,
            published,
            runner,
        }
    }
}

impl SkillTool {
    /// The published version ready to run, and the sandbox that runs it. Starting the sandbox
    /// and compiling or loading a version block, so they run on a blocking thread; once a
    /// version is ready, calls find it without leaving the async thread.
    async fn loaded(&self) -> Result<(Arc<LoadedSkill>, &Sandbox), ToolFailure> {
        let (sha256, manifest) = (&self.published.sha256, &self.published.manifest);
        if let Some(sandbox) = self.runner.started()
            && let Some(skill) = sandbox.already_ready(sha256, manifest)
        {
            return Ok((skill, sandbox));
        }
        let (runner, published) = (self.runner.clone(), self.published.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            let sandbox = runner.sandbox()?;
            sandbox.ready(&runner.library, &published.sha256, &published.manifest)
        })
        .await
        .map_err(|error| ToolFailure::new(format!("the skill's loading thread failed: {error}")))?;
        let skill = loaded.map_err(|error| {
            tracing::error!(skill = %self.published.scope.name, %error, "a published skill cannot be loaded");
            ToolFailure::new(format!(
                "the skill `{}` cannot be loaded: {error}",
                self.published.scope.name
            ))
        })?;
        let sandbox = self
            .runner
            .sandbox()
            .map_err(|error| ToolFailure::new(error.to_string()))?;
        Ok((skill, sandbox))
    }
}

impl Tool for SkillTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, input: Value, ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
        async move {
            let registry = self
                .runner
                .registry
                .upgrade()
                .ok_or_else(|| ToolFailure::busy("agentos is shutting down"))?;
            let host = Arc::new(RegistryHost::new(registry, ctx, self.published.clone()));
            let mut limits = self.published.manifest.limits;
            let remaining = u64::try_from(ctx.remaining().as_millis()).unwrap_or(u64::MAX);
            limits.wall_ms = limits.wall_ms.min(remaining).max(1);
            let (skill, sandbox) = self.loaded().await?;
            let outcome = sandbox
                .runtime
                .call(&skill, &self.capability.name, &input, &limits, host)
                .await;
            let (value, log) = match outcome {
                Ok(answer) => answer,
                Err(SkillError::Input(message)) => return Err(ToolFailure::invalid_input(message)),
                Err(error) => return Err(ToolFailure::new(error.to_string())),
            };
            let mut result = json_result(self.capability.answer(value));
            if !log.is_empty() {
                let mut meta = rmcp::model::JsonObject::new();
                meta.insert(SKILL_LOG_META.into(), Value::String(log));
                result.meta = Some(rmcp::model::MetaObject(meta));
            }
            Ok(result)
        }
        .boxed()
    }
}

/// Host calls of one skill call: the registry, as the calling agent narrowed by the skill.
struct RegistryHost {
    registry: Arc<Registry>,
    /// The skill's own call, and the skill.
    ctx: CallContext,
    published: Arc<Published>,
    /// The context host calls run in: the agent narrowed by the skill. Built at the first host
    /// call; most calls of most skills make none.
    narrowed: std::sync::OnceLock<CallContext>,
}

impl RegistryHost {
    fn new(registry: Arc<Registry>, ctx: &CallContext, published: Arc<Published>) -> Self {
        Self {
            registry,
            ctx: ctx.clone(),
            published,
            narrowed: std::sync::OnceLock::new(),
        }
    }

    fn narrowed(&self) -> &CallContext {
        self.narrowed.get_or_init(|| {
            let caller = Caller {
                tools: self.ctx.caller.tools.intersect(&self.published.tools),
                skill: Some(self.published.scope.clone()),
                ..(*self.ctx.caller).clone()
            };
            let mut inner = self.ctx.clone();
            inner.caller = Arc::new(caller);
            inner
        })
    }
}

impl Host for RegistryHost {
    fn call_tool(&self, name: String, input: Value, deadline: Instant) -> BoxFuture<'_, Result<Value, String>> {
        async move {
            if name.starts_with("skill.") || name.starts_with("skill_") {
                // Skills calling skills would nest sandboxes without bound.
                return Err(format!("`{name}`: a skill cannot call another skill's capabilities"));
            }
            let mut ctx = self.narrowed().clone();
            ctx.deadline = ctx.deadline.min(tokio::time::Instant::from_std(deadline));
            match self.registry.call(&ctx, &name, input).await {
                Ok(result) if result.is_error == Some(true) => Err(result_text(&result)),
                Ok(result) => Ok(output_of(&result)),
                Err(CallError::UnknownTool(_)) => Err(format!(
                    "no tool `{name}` is available to this skill: it may call only the tools its manifest \
                     lists in permissions.tools that the calling agent may use too"
                )),
                Err(error) => Err(error.to_string()),
            }
        }
        .boxed()
    }
}
