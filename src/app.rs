//! Assembles one agentos instance from its configuration: store, registry and the providers that
//! fill it. Both front doors (`agentos mcp`, `agentos serve`) start from here.

use std::sync::Arc;

use crate::config::Config;
use crate::primitives::{self, Services};
use crate::registry::{Caller, RegisterError, Registry};
use crate::store::{SqliteStore, StoreError};
use crate::upstream::{ServerSpec, UpstreamError, Upstreams, spec};

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

    /// Connects, in the background, the servers of `[[mcp_servers]]` and of the
    /// `tools/servers/*.toml` files (beside `config_file`, else in the current directory).
    /// Fails only on an invalid spec or a duplicate name; needs a Tokio runtime.
    pub fn start_upstreams(&self, config_file: Option<&std::path::Path>) -> Result<(), UpstreamError> {
        let mut specs: Vec<ServerSpec> = self.config.mcp_servers.clone();
        if let Some(dir) = spec::servers_dir(config_file) {
            specs.extend(spec::load_dir(&dir)?);
        }
        self.upstreams.start_all(specs)
    }

    /// Stops every upstream server and reaps its processes.
    pub async fn shutdown(&self) {
        self.upstreams.shutdown().await;
    }

    /// The identity of local callers: the owner, limited by `access.allowed_tools`.
    pub fn owner(&self) -> Arc<Caller> {
        Arc::new(Caller::owner(self.config.access.allowed_tools.clone()))
    }
}
