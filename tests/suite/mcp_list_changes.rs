//! `notifications/resources/list_changed` and `notifications/prompts/list_changed`. In process,
//! with providers whose news the test sends: a session hears about a server's lists only if its
//! policy lets it see them, and about both when a server is added or removed. Through the real
//! binary with the real server-everything added at run time: a 2026-07-28 client hears the list
//! changes on its `subscriptions/listen` stream, and changes of the resources it named there.

use std::sync::Arc;
use std::time::Duration;

use agentos::registry::{Caller, CatalogList, ProviderNews, Registry, ResourceError, ResourceProvider, ToolPolicy};
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    ClientConfig, GetPromptResult, JsonObject, Prompt, ReadResourceResult, Resource, ResourceTemplate,
    ServerNotification, SubscriptionFilter,
};
use serde_json::json;
use tokio::sync::broadcast;

use crate::common::real_servers::upstreams;
use crate::common::{self, Client, Observed, Server, call};

/// A provider that offers nothing but announces what the test sends.
struct Announcing(broadcast::Sender<ProviderNews>);

impl Announcing {
    fn new() -> Arc<Self> {
        Arc::new(Self(broadcast::channel(16).0))
    }
}

impl ResourceProvider for Announcing {
    fn list_resources(&self) -> BoxFuture<'_, Result<Vec<Resource>, ResourceError>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn list_resource_templates(&self) -> BoxFuture<'_, Result<Vec<ResourceTemplate>, ResourceError>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn read_resource(&self, uri: String) -> BoxFuture<'_, Result<ReadResourceResult, ResourceError>> {
        async move { Err(ResourceError::NotFound(uri)) }.boxed()
    }
    fn list_prompts(&self) -> BoxFuture<'_, Result<Vec<Prompt>, ResourceError>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn get_prompt(&self, name: String, _: Option<JsonObject>) -> BoxFuture<'_, Result<GetPromptResult, ResourceError>> {
        async move { Err(ResourceError::NotFound(name)) }.boxed()
    }
    fn news(&self) -> Option<broadcast::Receiver<ProviderNews>> {
        Some(self.0.subscribe())
    }
}

/// A pre-2026 session with agentos's MCP handler in this process, as a caller holding `patterns`.
async fn session(registry: &Arc<Registry>, patterns: &[&str]) -> (Client, Arc<Observed>) {
    common::in_process_session(registry, Caller::owner(ToolPolicy::parse(patterns).unwrap())).await
}

async fn lists_changed(observed: &Observed, count: usize) -> Vec<&'static str> {
    common::recorded(
        &observed.lists_changed,
        &observed.lists_changed_signal,
        count,
        "list changes",
    )
    .await
}

#[tokio::test]
async fn a_session_hears_about_the_lists_of_servers_it_may_see() {
    let registry = Arc::new(Registry::new(Duration::from_secs(10)));
    let (hidden, open) = (Announcing::new(), Announcing::new());
    registry.set_resource_provider("hidden", hidden.clone());
    registry.set_resource_provider("open", open.clone());
    let (everyone, everyone_heard) = session(&registry, &["*"]).await;
    let (limited, limited_heard) = session(&registry, &["mcp.open.*"]).await;
    // Each session's watcher starts once it is initialized.
    assert!(common::eventually(Duration::from_secs(10), || registry.list_watchers() == 2).await);
    let capabilities = everyone.peer().peer_info().unwrap().capabilities.clone();
    assert_eq!(capabilities.resources.unwrap().list_changed, Some(true));
    assert_eq!(capabilities.prompts.unwrap().list_changed, Some(true));

    hidden.0.send(ProviderNews::ListChanged(CatalogList::Prompts)).unwrap();
    open.0.send(ProviderNews::ListChanged(CatalogList::Resources)).unwrap();
    assert_eq!(lists_changed(&everyone_heard, 2).await, ["prompts", "resources"]);
    // The limited session's first notice is the open server's: it never hears of the hidden one.
    assert_eq!(lists_changed(&limited_heard, 1).await, ["resources"]);

    // A server removed takes its resources and prompts away: both lists changed.
    assert!(registry.remove_resource_provider("open"));
    let heard = lists_changed(&limited_heard, 3).await;
    assert_eq!(heard[1..].iter().filter(|l| **l == "resources").count(), 1, "{heard:?}");
    assert_eq!(heard[1..].iter().filter(|l| **l == "prompts").count(), 1, "{heard:?}");
    everyone.cancel().await.unwrap();
    limited.cancel().await.unwrap();
}

/// The notifications of a listen stream, until one matches, within 20 s.
async fn until(
    subscription: &mut rmcp::service::Subscription,
    wanted: impl Fn(&ServerNotification) -> bool,
) -> ServerNotification {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let next = tokio::time::timeout_at(deadline, subscription.next())
            .await
            .expect("the notification within 20 s")
            .expect("the stream stays open")
            .expect("a notification");
        if wanted(&next) {
            return next;
        }
    }
}

#[tokio::test]
async fn a_2026_client_hears_list_changes_and_its_resources_on_its_listen_stream() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (setup, _) = common::http_client(&server.mcp_url()).await;
    let client = common::stateless_client(&server.mcp_url(), ClientConfig::default()).await;
    let mut lists = client
        .peer()
        .listen(
            SubscriptionFilter::builder()
                .resources_list_changed()
                .prompts_list_changed()
                .build(),
        )
        .await
        .expect("subscriptions/listen");
    assert_eq!(lists.acknowledged().resources_list_changed, Some(true));

    up.add_everything(&setup, "everything").await;
    until(&mut lists, |n| {
        matches!(n, ServerNotification::ResourceListChangedNotification(_))
    })
    .await;
    until(&mut lists, |n| {
        matches!(n, ServerNotification::PromptListChangedNotification(_))
    })
    .await;

    let resources = client.peer().list_all_resources().await.unwrap();
    let mine = resources[0].uri.clone();
    let mut changes = client
        .peer()
        .listen(
            SubscriptionFilter::builder()
                .resource_subscriptions([mine.clone()])
                .build(),
        )
        .await
        .expect("subscriptions/listen for a resource");
    assert_eq!(changes.acknowledged().resource_subscriptions, Some(vec![mine.clone()]));
    // server-everything now sends a change notice for each subscribed resource, then every 5 s.
    call(&setup, "mcp.everything.toggle-subscriber-updates", json!({})).await;
    let notice = until(&mut changes, |n| {
        matches!(n, ServerNotification::ResourceUpdatedNotification(_))
    })
    .await;
    let ServerNotification::ResourceUpdatedNotification(notice) = notice else {
        unreachable!()
    };
    assert_eq!(notice.params.uri, mine);

    changes.cancel().await.unwrap();
    lists.cancel().await.unwrap();
    client.cancel().await.unwrap();
    setup.cancel().await.unwrap();
}
