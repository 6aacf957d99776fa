//! Resources and prompts: the registry's second catalog, next to the tools. Each provider (today
//! one per proxied MCP server) is registered under its server name; the registry aggregates
//! listings and routes reads and prompt requests back to the provider that owns them.
//!
//! # Namespacing
//! - A prompt `p` of server `s` is offered as `mcp.<s>.<p>` (as its tools are).
//! - A resource URI `u` of server `s` is offered as `agentos+mcp://<s>/<u>`, with `u` kept
//!   verbatim (not percent-encoded). Reads strip the prefix and send `u` to `s`. Because nothing
//!   is encoded, resource templates work the same way: the template `t` is offered as
//!   `agentos+mcp://<s>/<t>`, and a client filling it produces a URI that routes back to `s` with
//!   the filled original. Contents returned by a read carry the namespaced URI as well.
//!
//! Reads and prompt gets are operations of the pipeline like tool calls ([`super::Operation`]):
//! limited, approved, traced, metered and audited (a read as `resource:<uri>`, a prompt as its
//! name). This file keeps the providers, the names and the listings.
//!
//! # Authorization
//! A caller may list and read server `s`'s resources iff its tool policy allows the name
//! `mcp.<s>.resources`, and list and get its prompts iff it allows `mcp.<s>.prompts`. So `*`,
//! `mcp.*` and `mcp.<s>.*` grant both; a policy naming only single tools (`mcp.<s>.echo`) or
//! other families (`agentos.*`) grants neither; the exact names grant one kind alone. Servers a
//! caller may not use are absent from its listings, and reads of their URIs or prompts answer
//! "not found", exactly like unknown ones.

use std::sync::Arc;

use futures::future::{BoxFuture, join_all};
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptResult, JsonObject, Prompt, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};

use super::provider_news::ProviderNews;
use super::{Caller, Registry};

/// The URI scheme of namespaced resource URIs.
pub const RESOURCE_SCHEME: &str = "agentos+mcp://";

/// Why a provider could not answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    /// No such resource or prompt, or the caller may not use it.
    #[error("{0}")]
    NotFound(String),
    /// The provider is there but failed (down, timed out, refused).
    #[error("{0}")]
    Failed(String),
}

/// A source of resources and prompts, registered under a server name.
pub trait ResourceProvider: Send + Sync + 'static {
    /// Whether the provider still exists (false once its server was removed: it is then skipped
    /// and dropped at the next registration).
    fn live(&self) -> bool {
        true
    }
    /// All resources, with the provider's own URIs; empty if it offers none right now (an
    /// upstream that did not declare the capability, or is down).
    fn list_resources(&self) -> BoxFuture<'_, Result<Vec<Resource>, ResourceError>>;
    fn list_resource_templates(&self) -> BoxFuture<'_, Result<Vec<ResourceTemplate>, ResourceError>>;
    fn read_resource(&self, uri: String) -> BoxFuture<'_, Result<ReadResourceResult, ResourceError>>;
    /// All prompts, with the provider's own names; empty if it offers none right now.
    fn list_prompts(&self) -> BoxFuture<'_, Result<Vec<Prompt>, ResourceError>>;
    fn get_prompt(
        &self,
        name: String,
        arguments: Option<JsonObject>,
    ) -> BoxFuture<'_, Result<GetPromptResult, ResourceError>>;
    /// Suggestions for an argument of one of its prompts or resource templates (its own names);
    /// none unless the provider offers completion.
    fn complete(&self, request: CompleteRequestParams) -> BoxFuture<'_, Result<CompleteResult, ResourceError>> {
        let _ = request;
        Box::pin(std::future::ready(Ok(CompleteResult::default())))
    }
    /// Asks to be told when one of its resources (its own URI) changes; refused unless the
    /// provider offers subscriptions.
    fn subscribe(&self, uri: String) -> BoxFuture<'_, Result<(), ResourceError>> {
        Box::pin(std::future::ready(Err(ResourceError::NotFound(format!(
            "`{uri}` offers no change notices"
        )))))
    }
    fn unsubscribe(&self, uri: String) -> BoxFuture<'_, Result<(), ResourceError>> {
        let _ = uri;
        Box::pin(std::future::ready(Ok(())))
    }
    /// Whether its prompts and resources are also offered under their own names (see
    /// `transparent`).
    fn transparent(&self) -> bool {
        false
    }
    /// What it announces (resources and lists that changed, in its own names) while it exists;
    /// the stream ending means it was removed.
    fn news(&self) -> Option<tokio::sync::broadcast::Receiver<ProviderNews>> {
        None
    }
}

/// `agentos+mcp://<server>/<uri>`.
pub fn namespaced_uri(server: &str, uri: &str) -> String {
    format!("{RESOURCE_SCHEME}{server}/{uri}")
}

/// The server and original URI of a namespaced URI.
pub fn split_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(RESOURCE_SCHEME)?;
    let (server, original) = rest.split_once('/')?;
    (!server.is_empty() && !original.is_empty()).then_some((server, original))
}

/// The server and original name of a namespaced prompt name (`mcp.<server>.<prompt>`).
pub fn split_prompt_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("mcp.")?;
    let (server, original) = rest.split_once('.')?;
    (!server.is_empty() && !original.is_empty()).then_some((server, original))
}

pub fn may_use_resources(caller: &Caller, server: &str) -> bool {
    caller.tools.allows(&format!("mcp.{server}.resources"))
}

pub fn may_use_prompts(caller: &Caller, server: &str) -> bool {
    caller.tools.allows(&format!("mcp.{server}.prompts"))
}

pub(super) fn rename_contents(server: &str, contents: &mut ResourceContents) {
    if let ResourceContents::TextResourceContents { uri, .. } | ResourceContents::BlobResourceContents { uri, .. } =
        contents
    {
        *uri = namespaced_uri(server, uri);
    }
}

/// A read's contents under the server's own URI again (for a transparent server's plain URI).
pub(super) fn plain_contents(contents: &mut ResourceContents) {
    if let ResourceContents::TextResourceContents { uri, .. } | ResourceContents::BlobResourceContents { uri, .. } =
        contents
        && let Some((_, original)) = split_uri(uri)
    {
        *uri = original.to_owned();
    }
}

impl Registry {
    /// Registers (or replaces) the resource and prompt provider of `server`.
    pub fn set_resource_provider(&self, server: &str, provider: Arc<dyn ResourceProvider>) {
        let mut providers = self.providers.write().unwrap_or_else(|p| p.into_inner());
        providers.retain(|_, p| p.live());
        self.news.forward(server, provider.as_ref());
        providers.insert(server.to_owned(), provider);
        self.news.lists_changed(server);
    }

    /// Removes `server`'s provider; true if there was one.
    pub fn remove_resource_provider(&self, server: &str) -> bool {
        let removed = self
            .providers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(server)
            .is_some();
        if removed {
            self.news.lists_changed(server);
        }
        removed
    }

    /// Live providers, in server-name order.
    pub(super) fn providers(&self) -> Vec<(String, Arc<dyn ResourceProvider>)> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, p)| p.live())
            .map(|(name, p)| (name.clone(), p.clone()))
            .collect()
    }

    pub(super) fn provider(&self, server: &str) -> Option<Arc<dyn ResourceProvider>> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
            .filter(|p| p.live())
            .cloned()
    }

    /// Every resource this caller may read, under namespaced URIs (and a transparent server's
    /// also under its own).
    pub async fn list_resources_for(&self, caller: &Caller) -> Vec<Resource> {
        let listing = Listing {
            may_use: may_use_resources,
            list: |provider| provider.list_resources(),
            key: |resource| &mut resource.uri,
            namespaced: namespaced_uri,
            what: "resources",
        };
        self.gather(caller, listing).await
    }

    /// Every resource template this caller may use, under namespaced URI templates.
    pub async fn list_resource_templates_for(&self, caller: &Caller) -> Vec<ResourceTemplate> {
        let listing = Listing {
            may_use: may_use_resources,
            list: |provider| provider.list_resource_templates(),
            key: |template| &mut template.uri_template,
            namespaced: namespaced_uri,
            what: "resource templates",
        };
        self.gather(caller, listing).await
    }

    /// Every prompt this caller may get, named `mcp.<server>.<prompt>`.
    pub async fn list_prompts_for(&self, caller: &Caller) -> Vec<Prompt> {
        let listing = Listing {
            may_use: may_use_prompts,
            list: |provider| provider.list_prompts(),
            key: |prompt| &mut prompt.name,
            namespaced: |server, name| format!("mcp.{server}.{name}"),
            what: "prompts",
        };
        self.gather(caller, listing).await
    }

    /// One kind of listing from every provider the caller may use: a transparent provider's items
    /// under their own keys first (the first provider to offer a key keeps it), then every item
    /// under its namespaced key. A provider that fails is left out (and logged) rather than
    /// failing the whole listing.
    async fn gather<T: Clone>(&self, caller: &Caller, listing: Listing<T>) -> Vec<T> {
        let visible: Vec<_> = self
            .providers()
            .into_iter()
            .filter(|(server, _)| (listing.may_use)(caller, server))
            .collect();
        let lists = join_all(visible.iter().map(|(_, provider)| (listing.list)(provider.as_ref()))).await;
        let (mut plain, mut namespaced) = (Vec::new(), Vec::new());
        let mut plain_keys = std::collections::HashSet::new();
        for ((server, provider), list) in visible.iter().zip(lists) {
            let list = match list {
                Ok(list) => list,
                Err(error) => {
                    tracing::warn!(%server, %error, "listing {} failed", listing.what);
                    continue;
                }
            };
            for mut item in list {
                let key = (listing.key)(&mut item);
                if provider.transparent() && plain_keys.insert(key.clone()) {
                    plain.push(item.clone());
                }
                let key = (listing.key)(&mut item);
                *key = (listing.namespaced)(server, key);
                namespaced.push(item);
            }
        }
        plain.extend(namespaced);
        plain
    }
}

/// One provider's answer to a listing.
type Listed<'a, T> = BoxFuture<'a, Result<Vec<T>, ResourceError>>;

/// How one kind of listing is gathered from the providers (see `Registry::gather`).
struct Listing<T> {
    may_use: fn(&Caller, &str) -> bool,
    list: for<'a> fn(&'a dyn ResourceProvider) -> Listed<'a, T>,
    key: fn(&mut T) -> &mut String,
    namespaced: fn(&str, &str) -> String,
    what: &'static str,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::FutureExt;

    use super::*;
    use crate::registry::{CallContext, CallError, ToolPolicy};

    struct Fake;

    impl ResourceProvider for Fake {
        fn list_resources(&self) -> BoxFuture<'_, Result<Vec<Resource>, ResourceError>> {
            async { Ok(vec![Resource::new("file:///a?b=c", "a")]) }.boxed()
        }
        fn list_resource_templates(&self) -> BoxFuture<'_, Result<Vec<ResourceTemplate>, ResourceError>> {
            async { Ok(vec![ResourceTemplate::new("demo://x/{id}", "x")]) }.boxed()
        }
        fn read_resource(&self, uri: String) -> BoxFuture<'_, Result<ReadResourceResult, ResourceError>> {
            async move { Ok(ReadResourceResult::new(vec![ResourceContents::text("hi", uri)])) }.boxed()
        }
        fn list_prompts(&self) -> BoxFuture<'_, Result<Vec<Prompt>, ResourceError>> {
            async { Ok(vec![Prompt::new("greet", None::<String>, None)]) }.boxed()
        }
        fn get_prompt(
            &self,
            name: String,
            _arguments: Option<JsonObject>,
        ) -> BoxFuture<'_, Result<GetPromptResult, ResourceError>> {
            async move { Ok(GetPromptResult::new(vec![]).with_description(name)) }.boxed()
        }
    }

    #[test]
    fn names_and_uris_round_trip() {
        let uri = namespaced_uri("fs", "demo://resource/{id}?q=1#f");
        assert_eq!(split_uri(&uri), Some(("fs", "demo://resource/{id}?q=1#f")));
        assert_eq!(split_uri("demo://x"), None);
        assert_eq!(split_uri("agentos+mcp://fs/"), None);
        assert_eq!(split_prompt_name("mcp.fs.a.b"), Some(("fs", "a.b")));
        assert_eq!(split_prompt_name("agentos.x"), None);
    }

    #[tokio::test]
    async fn listings_are_namespaced_and_authorized() {
        let registry = Registry::new(Duration::from_secs(5));
        registry.set_resource_provider("fs", Arc::new(Fake));
        let all = Caller::owner(ToolPolicy::allow_all());
        let resources = registry.list_resources_for(&all).await;
        assert_eq!(resources[0].uri, "agentos+mcp://fs/file:///a?b=c");
        let templates = registry.list_resource_templates_for(&all).await;
        assert_eq!(templates[0].uri_template, "agentos+mcp://fs/demo://x/{id}");
        let as_caller = |caller: &Caller| CallContext::new(Arc::new(caller.clone()), "r", Duration::from_secs(5));
        let read = registry
            .read_resource(&as_caller(&all), "agentos+mcp://fs/demo://x/7")
            .await
            .unwrap();
        let ResourceContents::TextResourceContents { uri, .. } = &read.contents[0] else {
            panic!()
        };
        assert_eq!(uri, "agentos+mcp://fs/demo://x/7");
        assert_eq!(registry.list_prompts_for(&all).await[0].name, "mcp.fs.greet");
        let prompt = registry
            .get_prompt(&as_caller(&all), "mcp.fs.greet", None)
            .await
            .unwrap();
        assert_eq!(prompt.description.as_deref(), Some("greet"));

        let family = Caller::owner(ToolPolicy::parse(&["mcp.fs.*"]).unwrap());
        assert_eq!(registry.list_resources_for(&family).await.len(), 1);
        let prompts_only = Caller::owner(ToolPolicy::parse(&["mcp.fs.prompts"]).unwrap());
        assert!(registry.list_resources_for(&prompts_only).await.is_empty());
        assert_eq!(registry.list_prompts_for(&prompts_only).await.len(), 1);
        let other = Caller::owner(ToolPolicy::parse(&["agentos.*", "mcp.fs.echo"]).unwrap());
        assert!(registry.list_resources_for(&other).await.is_empty());
        assert!(registry.list_resource_templates_for(&other).await.is_empty());
        assert!(registry.list_prompts_for(&other).await.is_empty());
        assert!(matches!(
            registry
                .read_resource(&as_caller(&other), "agentos+mcp://fs/demo://x/7")
                .await,
            Err(CallError::NotFound(_))
        ));
        assert!(matches!(
            registry.get_prompt(&as_caller(&other), "mcp.fs.greet", None).await,
            Err(CallError::NotFound(_))
        ));
        assert!(registry.remove_resource_provider("fs"));
        assert!(registry.list_resources_for(&all).await.is_empty());
    }
}
