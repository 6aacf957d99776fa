//! What one session is told about changes: its tool listing (only when it would really differ),
//! the resource and prompt lists of servers it may see, and, for a 2026-07-28 `subscriptions/listen`
//! stream, the resources it named. Both kinds of session (a pre-2026 one's notifications, a
//! listen stream's) read the same [`Watching::next`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rmcp::model::Tool;
use tokio::sync::{broadcast, watch};

use super::RequestIdentity;
use super::session_subscriptions::SessionSubscriptions;
use crate::registry::{Caller, CatalogList, ListChange, NameStyle, Registry};

/// A change to tell a session about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Notice {
    Tools,
    Resources,
    Prompts,
    /// A resource the listen stream named changed (the URI as the client gave it).
    ResourceUpdated(String),
}

/// The fingerprint of the listing a session was last given (or, before its first listing, of
/// what it could see when start-up ended), so it is told only about changes that make its
/// listing differ. Shared by the session's listings and its change watcher; the lock makes each
/// "compute and record" step atomic, so a change can never fall between a listing and its record.
#[derive(Clone, Default)]
pub(super) struct Shown(Arc<Mutex<Option<u64>>>);

impl Shown {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The listing for `identity`, recorded as shown.
    pub(super) fn list(&self, registry: &Registry, identity: &RequestIdentity) -> Vec<Tool> {
        let mut shown = self.lock();
        // Fingerprint first: if a change lands in between, the record is older than the listing
        // and the session gets one needless notification, never a missed one.
        let fingerprint = registry.visible_fingerprint(&identity.caller, identity.name_style);
        let tools = registry.mcp_tools_for(&identity.caller, identity.name_style);
        *shown = Some(fingerprint);
        tools
    }

    /// Records what the session can see now, unless it has listed already.
    fn baseline(&self, registry: &Registry, caller: &Caller, style: NameStyle) {
        let mut shown = self.lock();
        if shown.is_none() {
            *shown = Some(registry.visible_fingerprint(caller, style));
        }
    }

    /// Whether the session's listing would now differ from the one recorded; records it if so.
    fn changed(&self, registry: &Registry, caller: &Caller, style: NameStyle) -> bool {
        let mut shown = self.lock();
        let now = registry.visible_fingerprint(caller, style);
        let changed = *shown != Some(now);
        *shown = Some(now);
        changed
    }
}

/// One session's watch over what it is told about.
pub(super) struct Watching {
    registry: Arc<Registry>,
    identity: RequestIdentity,
    shown: Shown,
    tools: watch::Receiver<u64>,
    lists: broadcast::Receiver<ListChange>,
    /// Resources named by a listen stream.
    watched: SessionSubscriptions,
    /// Their changes; none for sessions that named none.
    updates: Option<broadcast::Receiver<Arc<str>>>,
    /// Notices owed and not yet returned (news was dropped for a slow session: both lists).
    owed: VecDeque<Notice>,
}

impl Watching {
    /// Starts watching once start-up has ended. Subscribed before that, so no change after the
    /// baseline can be missed; tools that arrive while the first listing waits for them are in
    /// that listing, so they are no change to announce.
    pub(super) async fn start(registry: Arc<Registry>, identity: RequestIdentity, shown: Shown) -> Self {
        let tools = registry.subscribe();
        let lists = registry.list_changes();
        registry.until_started().await;
        shown.baseline(&registry, &identity.caller, identity.name_style);
        Self {
            registry,
            identity,
            shown,
            tools,
            lists,
            watched: SessionSubscriptions::default(),
            updates: None,
            owed: VecDeque::new(),
        }
    }

    /// Also watches these resources (as the client names them); one it may not read, or whose
    /// server offers no change notices, is skipped (and logged).
    pub(super) async fn with_resources(mut self, uris: &[String]) -> Self {
        self.updates = Some(self.registry.resource_updates());
        for uri in uris {
            if let Err(error) = self
                .watched
                .add(&self.registry, &self.identity.caller, uri.clone())
                .await
            {
                tracing::debug!(%uri, %error, "a listen stream's resource cannot be watched");
            }
        }
        self
    }

    /// The next change the session should hear about; None once the registry is gone.
    pub(super) async fn next(&mut self) -> Option<Notice> {
        let Self {
            registry,
            identity,
            shown,
            tools,
            lists,
            watched,
            updates,
            owed,
        } = self;
        loop {
            if let Some(notice) = owed.pop_front() {
                return Some(notice);
            }
            let update = async {
                match updates {
                    Some(changes) => changes.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = tools.changed() => {
                    changed.ok()?;
                    if shown.changed(registry, &identity.caller, identity.name_style) {
                        return Some(Notice::Tools);
                    }
                }
                change = lists.recv() => match change {
                    Ok(change) if change.concerns(&identity.caller) => return Some(list_notice(change.list)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => owed.extend([Notice::Resources, Notice::Prompts]),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                update = update => match update {
                    Ok(namespaced) => {
                        if let Some(given) = watched.given(&namespaced) {
                            return Some(Notice::ResourceUpdated(given));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "resource change notices dropped for a slow listen stream");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Ends the watch of the listen stream's resources (the provider is told about the last).
    pub(super) async fn release(self) {
        self.watched.release_all(&self.registry).await;
    }
}

fn list_notice(list: CatalogList) -> Notice {
    match list {
        CatalogList::Resources => Notice::Resources,
        CatalogList::Prompts => Notice::Prompts,
    }
}
