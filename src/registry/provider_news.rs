//! What resource providers announce (one of their resources changed, their list of resources or
//! prompts changed), passed on under agentos's names to the sessions that may see it. A provider
//! added, replaced or removed changes both of its lists.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::resources::{ResourceProvider, may_use_prompts, may_use_resources, namespaced_uri};
use super::{Caller, Registry};

/// News buffered for a slow session before it misses some (it is then told nothing is lost: a
/// change notice carries no content, and later ones follow).
const NEWS_BUFFER: usize = 256;

/// One thing a provider announces, in its own names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderNews {
    /// The resource with this URI (the provider's own) changed.
    ResourceUpdated(String),
    /// What the provider lists of this kind changed.
    ListChanged(CatalogList),
}

/// The lists a provider contributes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogList {
    Resources,
    Prompts,
}

/// A list a server contributes to changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListChange {
    pub server: Arc<str>,
    pub list: CatalogList,
}

impl ListChange {
    /// Whether `caller`'s listing can differ because of it: only if its policy lets it see that
    /// server's resources or prompts.
    pub fn concerns(&self, caller: &Caller) -> bool {
        match self.list {
            CatalogList::Resources => may_use_resources(caller, &self.server),
            CatalogList::Prompts => may_use_prompts(caller, &self.server),
        }
    }
}

pub(super) struct News {
    /// Resources that changed, by namespaced URI.
    updates: broadcast::Sender<Arc<str>>,
    lists: broadcast::Sender<ListChange>,
}

impl Default for News {
    fn default() -> Self {
        Self {
            updates: broadcast::channel(NEWS_BUFFER).0,
            lists: broadcast::channel(NEWS_BUFFER).0,
        }
    }
}

impl News {
    /// Both of `server`'s lists changed (it was added, replaced or removed).
    pub(super) fn lists_changed(&self, server: &str) {
        announce_lists(&self.lists, server);
    }

    /// Passes a provider's news on under `server`'s names until its stream ends (the server was
    /// removed, which changes its lists once more).
    pub(super) fn forward(&self, server: &str, provider: &dyn ResourceProvider) {
        let (Some(mut news), Ok(runtime)) = (provider.news(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let updates = self.updates.clone();
        let lists = self.lists.clone();
        let server: Arc<str> = server.into();
        runtime.spawn(async move {
            loop {
                // Nobody listening is not an error: the sends' results are dropped.
                match news.recv().await {
                    Ok(ProviderNews::ResourceUpdated(uri)) => {
                        let _ = updates.send(namespaced_uri(&server, &uri).into());
                    }
                    Ok(ProviderNews::ListChanged(list)) => {
                        let _ = lists.send(ListChange {
                            server: server.clone(),
                            list,
                        });
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(%server, missed, "provider news dropped; announcing both lists");
                        announce_lists(&lists, &server);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        announce_lists(&lists, &server);
                        return;
                    }
                }
            }
        });
    }
}

fn announce_lists(lists: &broadcast::Sender<ListChange>, server: &str) {
    for list in [CatalogList::Resources, CatalogList::Prompts] {
        let _ = lists.send(ListChange {
            server: server.into(),
            list,
        });
    }
}

impl Registry {
    /// Every change of a subscribed resource from now on, by namespaced URI.
    pub fn resource_updates(&self) -> broadcast::Receiver<Arc<str>> {
        self.news.updates.subscribe()
    }

    /// Every change of a server's resource or prompt list from now on; sessions keep those that
    /// [`ListChange::concerns`] them.
    pub fn list_changes(&self) -> broadcast::Receiver<ListChange> {
        self.news.lists.subscribe()
    }

    /// Sessions and listen streams watching list changes now.
    pub fn list_watchers(&self) -> usize {
        self.news.lists.receiver_count()
    }
}
