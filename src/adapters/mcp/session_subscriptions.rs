//! `resources/subscribe` and `resources/unsubscribe` for one MCP session (and the resources a
//! 2026-07-28 listen stream names): the resources it is subscribed to, a `notifications/resources/updated` for each change of one of them, and the
//! release of every subscription when the session ends (so a provider stops sending changes
//! nobody reads).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::{Peer, RoleServer};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::registry::{Caller, Registry, ResourceError};

#[derive(Clone, Default)]
pub(super) struct SessionSubscriptions(Arc<Mutex<Watched>>);

#[derive(Default)]
struct Watched {
    /// Namespaced URI (what changes carry) → the URI as the client gave it.
    uris: HashMap<String, String>,
    /// Whether the task forwarding changes to this session runs.
    forwarding: bool,
}

impl SessionSubscriptions {
    fn watched(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds a subscription to `uri` (again is a no-op); true if it is newly held.
    pub(super) async fn add(&self, registry: &Registry, caller: &Caller, uri: String) -> Result<bool, ResourceError> {
        if self.watched().uris.values().any(|given| *given == uri) {
            return Ok(false);
        }
        let namespaced = registry.subscribe_resource(caller, &uri).await?;
        let inserted = {
            let mut watched = self.watched();
            let inserted = !watched.uris.contains_key(&namespaced);
            if inserted {
                watched.uris.insert(namespaced.clone(), uri);
            }
            inserted
        };
        if !inserted {
            // Subscribed meanwhile (a concurrent request, or the same resource named twice):
            // keep one count.
            registry.unsubscribe_resource(&namespaced).await;
        }
        Ok(inserted)
    }

    /// The URI as the client gave it of a held resource, by the namespaced URI changes carry.
    pub(super) fn given(&self, namespaced: &str) -> Option<String> {
        self.watched().uris.get(namespaced).cloned()
    }

    /// Ends every subscription held (the provider is told about the last of each).
    pub(super) async fn release_all(&self, registry: &Registry) {
        let held: Vec<String> = std::mem::take(&mut self.watched().uris).into_keys().collect();
        for uri in held {
            registry.unsubscribe_resource(&uri).await;
        }
    }

    /// Subscribes the session to `uri` (again is a no-op), starting its forwarder on the first.
    pub(super) async fn subscribe(
        &self,
        registry: &Arc<Registry>,
        caller: &Caller,
        uri: String,
        peer: &Peer<RoleServer>,
        session_end: &CancellationToken,
    ) -> Result<(), ResourceError> {
        let start = self.add(registry, caller, uri).await? && !std::mem::replace(&mut self.watched().forwarding, true);
        if start {
            tokio::spawn(forward(
                self.clone(),
                registry.clone(),
                peer.clone(),
                session_end.clone(),
            ));
        }
        Ok(())
    }

    /// Ends the session's subscription to `uri` (as it gave it, or namespaced), if it has one.
    pub(super) async fn unsubscribe(&self, registry: &Registry, uri: &str) {
        let held = {
            let mut watched = self.watched();
            let key = watched
                .uris
                .iter()
                .find(|(namespaced, given)| *given == uri || *namespaced == uri)
                .map(|(namespaced, _)| namespaced.clone());
            key.inspect(|key| {
                watched.uris.remove(key);
            })
        };
        if let Some(namespaced) = held {
            registry.unsubscribe_resource(&namespaced).await;
        }
    }
}

/// Sends the session the changes of its resources until it ends, then releases them all.
async fn forward(
    subscriptions: SessionSubscriptions,
    registry: Arc<Registry>,
    peer: Peer<RoleServer>,
    session_end: CancellationToken,
) {
    let mut changes = registry.resource_updates();
    loop {
        tokio::select! {
            _ = session_end.cancelled() => break,
            change = changes.recv() => match change {
                Ok(uri) => {
                    let Some(given) = subscriptions.given(&uri) else { continue };
                    let notice = ResourceUpdatedNotificationParam::new(given);
                    if peer.notify_resource_updated(notice).await.is_err() && peer.is_transport_closed() {
                        break;
                    }
                }
                Err(RecvError::Lagged(missed)) => tracing::debug!(missed, "resource change notices dropped for a slow session"),
                Err(RecvError::Closed) => break,
            },
        }
    }
    subscriptions.release_all(&registry).await;
}
