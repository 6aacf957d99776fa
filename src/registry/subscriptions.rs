//! Resource subscriptions (`resources/subscribe`): one subscription per resource at its provider
//! however many sessions want it, counted here; the changes themselves reach sessions as
//! provider news (see `provider_news`), which each subscribed session filters for its own.

use std::collections::HashMap;
use std::sync::Mutex;

use super::resources::{ResourceError, may_use_resources, split_uri};
use super::{Caller, Registry};

#[derive(Default)]
pub(super) struct Subscriptions {
    /// Namespaced URI → sessions subscribed to it.
    counts: Mutex<HashMap<String, usize>>,
}

impl Subscriptions {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Registry {
    /// Subscribes one more session to a resource it may read; the provider is asked only for the
    /// first. Returns the namespaced URI its changes will carry (a transparent server's plain
    /// URI is counted, and changes, under it).
    pub async fn subscribe_resource(&self, caller: &Caller, uri: &str) -> Result<String, ResourceError> {
        let namespaced = self.transparent_uri(uri).await;
        let uri = namespaced.as_deref().unwrap_or(uri);
        let (server, original) = split_uri(uri)
            .filter(|(server, _)| may_use_resources(caller, server))
            .ok_or_else(|| ResourceError::NotFound(format!("unknown resource `{uri}`")))?;
        let provider = self
            .provider(server)
            .ok_or_else(|| ResourceError::NotFound(format!("unknown resource `{uri}`")))?;
        let first = {
            let mut counts = self.subscriptions.counts();
            let count = counts.entry(uri.to_owned()).or_default();
            *count += 1;
            *count == 1
        };
        if first && let Err(error) = provider.subscribe(original.to_owned()).await {
            self.release_count(uri);
            return Err(error);
        }
        Ok(uri.to_owned())
    }

    /// Ends one session's subscription; the provider is told when the last one ends.
    pub async fn unsubscribe_resource(&self, uri: &str) {
        let namespaced = self.transparent_uri(uri).await;
        let uri = namespaced.as_deref().unwrap_or(uri);
        if !self.release_count(uri) {
            return;
        }
        let Some((server, original)) = split_uri(uri) else {
            return;
        };
        if let Some(provider) = self.provider(server)
            && let Err(error) = provider.unsubscribe(original.to_owned()).await
        {
            tracing::debug!(%uri, %error, "could not end a resource subscription upstream");
        }
    }

    /// Lowers a resource's count; true when it reached zero.
    fn release_count(&self, uri: &str) -> bool {
        let mut counts = self.subscriptions.counts();
        match counts.get_mut(uri) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                counts.remove(uri);
                true
            }
            None => false,
        }
    }

    /// Sessions subscribed to `uri` now.
    pub fn resource_subscribers(&self, uri: &str) -> usize {
        self.subscriptions.counts().get(uri).copied().unwrap_or(0)
    }
}
