//! Assembles one agentos instance from its configuration: store, registry and the providers that
//! fill it. Both front doors (`agentos mcp`, `agentos serve`) start from here.

use std::sync::Arc;

use crate::config::Config;
use crate::primitives::{self, Services};
use crate::registry::{Caller, RegisterError, Registry};
use crate::store::{SqliteStore, StoreError};
use crate::upstream::Upstreams;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot register the built-in tools: {0}")]
    Register(#[from] RegisterError),
}

pub struct App {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub store: Arc<SqliteStore>,
    pub upstreams: Arc<Upstreams>,
    pub services: Services,
}

impl App {
    pub fn build(config: Config) -> Result<Self, AppError> {
        crate::tls::install_crypto_provider();
        let store = Arc::new(SqliteStore::open(&config.data_dir, config.store.synchronous)?);
        let registry = Arc::new(Registry::new(config.call_timeout()));
        let upstreams = Arc::new(Upstreams::new(registry.clone()));
        let services = Services {
            store: store.clone(),
            config: Arc::new(config.clone()),
            registry: Arc::downgrade(&registry),
            upstreams: Arc::downgrade(&upstreams),
        };
        primitives::register_all(&registry, services.clone())?;
        Ok(Self {
            config,
            registry,
            store,
            upstreams,
            services,
        })
    }

    /// Starts background work (schedules, workflows) until `shutdown`; needs a Tokio runtime.
    pub fn start_background(&self, shutdown: tokio_util::sync::CancellationToken) {
        primitives::start_background(&self.services, shutdown);
    }

    /// The identity of local callers: the owner, limited by `access.allowed_tools`.
    pub fn owner(&self) -> Arc<Caller> {
        Arc::new(Caller::owner(self.config.access.allowed_tools.clone()))
    }
}
