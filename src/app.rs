//! Assembles one agentos instance from its configuration: store, registry and the providers that
//! fill it. Both front doors (`agentos mcp`, `agentos serve`) start from here.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::governance::approvals::{CoverageError, check_coverage};
use crate::governance::{Governance, Writers};
use crate::identity::{Identity, IdentityError};
use crate::ops::metrics::Metrics;
use crate::primitives::{self, Services};
use crate::registry::{Caller, RateLimits, RegisterError, Registry};
use crate::sealing::Sealer;
use crate::skills::Skills;
use crate::store::{PgStore, SqliteStore, Store, StoreError};
use crate::upstream::{ServerSpec, UpstreamError, Upstreams, spec};
use crate::voice::Voice;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot register the built-in tools: {0}")]
    Register(#[from] RegisterError),
    #[error("cannot start the identity service: {0}")]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Approvals(#[from] CoverageError),
    /// Replicas sharing one database were given different keys.
    #[error("{0}")]
    SharedKeys(String),
}

pub struct App {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub upstreams: Arc<Upstreams>,
    pub services: Services,
    /// Counts every call (the registry tells it) and, under `serve`, every HTTP request.
    pub metrics: Arc<Metrics>,
    /// Audit, traces and approvals.
    pub governance: Governance,
    /// The audit and trace writers, so `shutdown` can wait until every queued record is written
    /// (and the last traces posted to the OTLP endpoint).
    writers: Mutex<Option<Writers>>,
    /// Accounts, agents and their tokens.
    pub identity: Arc<Identity>,
    /// The skills marketplace and every agent's installed skills.
    pub skills: Arc<Skills>,
    /// Speech to text and text to speech.
    pub voice: Arc<Voice>,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        crate::tls::install_crypto_provider();
        let store: Arc<dyn Store> = match &config.store.database_url {
            Some(url) => Arc::new(PgStore::connect(url, config.store.pool_size, config.store_limits()).await?),
            None => Arc::new(SqliteStore::open_with(
                &config.data_dir,
                config.store.synchronous,
                config.store_limits(),
            )?),
        };
        let registry = Arc::new(Registry::new(config.call_timeout()));
        registry.set_startup_wait(config.mcp_startup_wait());
        registry.set_page_size(config.mcp_page_size);
        let upstreams = Arc::new(Upstreams::new(registry.clone()));
        let metrics = Arc::new(Metrics::new(config.metrics.public));
        if config.metrics.enabled {
            registry.set_call_observer(metrics.clone());
        }
        metrics.set_sources(&registry, &upstreams, store.clone());
        let shared_config = Arc::new(config.clone());
        let voice = Voice::new(&config);
        metrics.add_source(voice.clone());
        // One key for everything sealed at rest: secrets and held or scheduled sensitive inputs.
        let sealer = Arc::new(Sealer::new(config.secrets_key_file()));
        let services = Services {
            store: store.clone(),
            config: shared_config.clone(),
            registry: Arc::downgrade(&registry),
            upstreams: Arc::downgrade(&upstreams),
            own_listeners: Arc::default(),
            sealer: sealer.clone(),
            voice: config.voice.enabled.then(|| voice.clone()),
        };
        let governance = Governance::new(
            store.clone(),
            shared_config.clone(),
            &registry,
            metrics.record_loss(),
            sealer.clone(),
        );
        let identity = Identity::open(store.clone(), &config)?;
        Self::check_shared_keys(&*store, &identity, &sealer).await?;
        // Work that runs later for an agent (approved calls) acts as that agent is *now*.
        registry.set_directory(identity.clone());
        identity.audit_through(&registry);
        if config.rate_limits.enabled {
            let mut limits = RateLimits::new(config.rate_limits.budgets());
            let feed = store.changes();
            if feed.is_some() {
                limits.share();
            }
            let limits = Arc::new(limits);
            if let Some(feed) = feed {
                crate::cluster::share_rate_limits(limits.clone(), store.clone(), feed);
            }
            registry.set_rate_limits(limits);
        }
        let skills = Arc::new(Skills::new(
            store.clone(),
            &registry,
            &config.data_dir,
            config.skills.clone(),
        ));
        let mut tools = primitives::tools(&services);
        tools.extend(crate::skills::tools::tools(&skills, &registry));
        tools.extend(governance.install());
        tools.extend(crate::ops::metrics::tools(metrics.clone(), shared_config));
        tools.extend(crate::ops::health::tools(
            store.clone(),
            Arc::downgrade(&upstreams),
            health_sources(&voice),
        ));
        tools.extend(crate::identity::tools::tools(&identity));
        registry.register(tools)?;
        // Upstream servers are checked when they are known (`start_upstreams`); only a pattern
        // that could hold nothing at all stops the start here.
        check_coverage(&config.approvals.require, &builtin_names(&registry), &[])?;
        Ok(Self {
            config,
            registry,
            store,
            upstreams,
            services,
            metrics,
            governance,
            writers: Mutex::new(None),
            identity,
            skills,
            voice,
        })
    }

    /// On a database several replicas share, refuses to start a replica whose token signing key or
    /// secrets key differs from the ones recorded by the first replica: it would issue tokens the
    /// others reject and seal secrets they cannot open. The first replica records a digest of its
    /// signing key and a canary sealed with its secrets key; the others compare.
    async fn check_shared_keys(store: &dyn Store, identity: &Identity, sealer: &Sealer) -> Result<(), AppError> {
        if store.changes().is_none() {
            return Ok(());
        }
        let signing = identity.signing_key_check();
        if store
            .cluster_setting("identity.signing_key.check", signing.to_vec())
            .await?
            != signing
        {
            return Err(AppError::SharedKeys(
                "this replica's token signing key differs from the one the other replicas sharing its database \
             use, so each would reject the others' tokens: give every replica the same `identity.signing_key`"
                    .into(),
            ));
        }
        const CANARY_CONTEXT: &[u8] = b"agentos shared secrets key check";
        let canary = sealer
            .seal(CANARY_CONTEXT, b"agentos")
            .map_err(|error| AppError::SharedKeys(format!("cannot use the secrets key: {error}")))?
            .to_blob();
        let recorded = store.cluster_setting("secrets.key.canary", canary).await?;
        let opens =
            crate::sealing::Sealed::from_blob(&recorded).and_then(|sealed| sealer.open(CANARY_CONTEXT, &sealed));
        if opens.is_err() {
            return Err(AppError::SharedKeys(
                "this replica's secrets key differs from the one the other replicas sharing its database use, \
             so it could not open what they seal: give every replica the same `secrets.key_file`"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The providers that report services of their own to health checks.
    pub fn health_sources(&self) -> crate::ops::health::HealthSources {
        health_sources(&self.voice)
    }

    /// Starts background work (the audit writer, schedules, workflows, approval expiry) until
    /// `shutdown`; needs a Tokio runtime.
    pub fn start_background(&self, shutdown: CancellationToken) {
        let writers = self.governance.start(&shutdown);
        *self.writers.lock().unwrap_or_else(|p| p.into_inner()) = Some(writers);
        let identity = self.identity.clone();
        let prune_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = prune_stop.cancelled() => return,
                    _ = hourly.tick() => {
                        match identity.prune_expired().await {
                            Ok(pruned) => tracing::debug!(pruned, "expired sessions and tokens pruned"),
                            Err(error) => tracing::warn!(%error, "pruning expired sessions and tokens failed"),
                        }
                    }
                }
            }
        });
        // Agents' installed skills, before the first listing (which waits for it).
        let (skills, starting) = (self.skills.clone(), self.registry.starting("skills"));
        tokio::spawn(async move {
            match skills.load_installs().await {
                Ok(agents) => tracing::debug!(agents, "installed skills offered"),
                Err(error) => tracing::error!(%error, "cannot offer installed skills"),
            }
            drop(starting);
        });
        if let Some(limits) = self.registry.rate_limits().cloned() {
            tokio::spawn(forget_idle_buckets(limits, shutdown.clone()));
        }
        primitives::start_background(&self.services, shutdown);
    }

    /// Connects, in the background, the servers of `[[mcp_servers]]` and of the
    /// `tools/servers/*.toml` files (beside `config_file` when given, else in the current directory).
    /// Fails only on an invalid spec or a duplicate name; needs a Tokio runtime.
    pub fn start_upstreams(&self, config_file: Option<&std::path::Path>) -> Result<(), UpstreamError> {
        let mut specs: Vec<ServerSpec> = self.config.mcp_servers.clone();
        if let Some(dir) = spec::servers_dir(config_file) {
            specs.extend(spec::load_dir(&dir)?);
        }
        let servers: Vec<&str> = specs.iter().filter(|s| s.enabled).map(|s| s.name.as_str()).collect();
        if let Ok(warnings) = check_coverage(&self.config.approvals.require, &builtin_names(&self.registry), &servers) {
            for warning in warnings {
                tracing::warn!("{warning}");
            }
        }
        self.upstreams.start_all(specs)
    }

    /// Stops every upstream server and reaps its processes, then writes the audit records and
    /// traces still queued (the last calls' included).
    pub async fn shutdown(&self) {
        self.upstreams.shutdown().await;
        let writers = self.writers.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writers) = writers {
            writers.flush().await;
        }
    }

    /// Records an address agentos's HTTP server listens on, once bound: the network tools never
    /// reach it unless the operator lists it with its port.
    pub fn listening_on(&self, addr: std::net::SocketAddr) {
        self.services.own_listeners.add(addr);
    }

    /// The identity of local callers: the owner, limited by `access.allowed_tools`.
    pub fn owner(&self) -> Arc<Caller> {
        Arc::new(Caller::owner(self.config.access.allowed_tools.clone()))
    }
}

/// The names of the built-in `agentos.*` tools.
fn health_sources(voice: &Arc<Voice>) -> crate::ops::health::HealthSources {
    Arc::from([voice.clone() as Arc<dyn crate::ops::health::HealthSource>])
}

fn builtin_names(registry: &Registry) -> Vec<String> {
    let mut names = registry.tool_names();
    names.retain(|name| name.starts_with("agentos."));
    names
}

/// Every minute, forgets the rate-limit buckets that are full again, so callers spread over many
/// addresses or agents cannot grow the limiter without bound. The scan touches every key, so it
/// runs on a blocking thread, never on the call path.
async fn forget_idle_buckets(limits: Arc<RateLimits>, shutdown: CancellationToken) {
    let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
    every_minute.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every_minute.tick() => {
                let limits = limits.clone();
                if let Err(error) = tokio::task::spawn_blocking(move || limits.forget_idle()).await {
                    tracing::warn!(%error, "forgetting idle rate-limit buckets failed");
                }
            }
        }
    }
}
