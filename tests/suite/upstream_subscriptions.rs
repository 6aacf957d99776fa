//! `resources/subscribe` through agentos. With the real server-everything behind the real
//! binary: each session hears only about the resources it subscribed to, under agentos's URIs,
//! and not after it unsubscribed. In process, with a provider that counts: the provider is asked
//! once however many sessions subscribe, and told when the last subscription ends, including
//! when a session ends without unsubscribing, and a 2026-07-28 listen stream naming a resource
//! holds it until the stream ends.
#![allow(deprecated)] // resources/subscribe is legacy-only in rmcp: the revisions spoken here

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentos::registry::{Caller, Registry, ResourceError, ResourceProvider, ToolPolicy};
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    ErrorCode, GetPromptResult, JsonObject, Prompt, ReadResourceResult, Resource, ResourceTemplate,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use serde_json::json;
use tokio::sync::Notify;

use crate::common::real_servers::upstreams;
use crate::common::{self, Client, Observed, Server, call};

/// The URIs a session was told changed, once there are at least `count`.
async fn updated(observed: &Observed, count: usize) -> Vec<String> {
    common::recorded(&observed.updated, &observed.updated_signal, count, "change notices").await
}

async fn subscribe(client: &Client, uri: &str) {
    client
        .peer()
        .subscribe(SubscribeRequestParams::new(uri))
        .await
        .expect("resources/subscribe");
}

#[tokio::test]
async fn each_session_hears_only_about_its_own_subscriptions() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (first, first_heard) = common::http_client(&server.mcp_url()).await;
    let (second, second_heard) = common::http_client(&server.mcp_url()).await;
    let caps = first
        .peer()
        .peer_info()
        .unwrap()
        .capabilities
        .resources
        .clone()
        .unwrap();
    assert_eq!(caps.subscribe, Some(true), "agentos offers resource subscriptions");
    up.add_everything(&first, "everything").await;
    let resources = first.peer().list_all_resources().await.unwrap();
    let (mine, theirs) = (resources[0].uri.clone(), resources[1].uri.clone());
    assert!(mine.starts_with("agentos+mcp://everything/"), "{mine}");

    subscribe(&first, &mine).await;
    subscribe(&first, &mine).await; // again: still one subscription
    subscribe(&second, &theirs).await;
    // server-everything now sends a change notice for each subscribed resource, then every 5 s.
    call(&first, "mcp.everything.toggle-subscriber-updates", json!({})).await;
    let heard = updated(&first_heard, 1).await;
    assert!(heard.iter().all(|uri| *uri == mine), "{heard:?}");
    let heard = updated(&second_heard, 1).await;
    assert!(heard.iter().all(|uri| *uri == theirs), "{heard:?}");

    // After unsubscribing, the next round reaches the other session but not this one.
    first
        .peer()
        .unsubscribe(UnsubscribeRequestParams::new(&mine))
        .await
        .unwrap();
    let before = first_heard.updated.lock().unwrap().len();
    let round = second_heard.updated.lock().unwrap().len() + 1;
    updated(&second_heard, round).await;
    assert_eq!(
        first_heard.updated.lock().unwrap().len(),
        before,
        "nothing after unsubscribe"
    );

    let unknown = first
        .peer()
        .subscribe(SubscribeRequestParams::new("agentos+mcp://nowhere/x"))
        .await;
    match unknown {
        Err(rmcp::ServiceError::McpError(error)) => assert_eq!(error.code, ErrorCode::RESOURCE_NOT_FOUND),
        other => panic!("expected resource not found, got {other:?}"),
    }
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}

/// A provider with one resource that counts what it is asked.
#[derive(Default)]
struct Counting {
    subscribed: AtomicUsize,
    unsubscribed: AtomicUsize,
    changed: Notify,
}

impl ResourceProvider for Counting {
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
    fn subscribe(&self, _uri: String) -> BoxFuture<'_, Result<(), ResourceError>> {
        self.subscribed.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }.boxed()
    }
    fn unsubscribe(&self, _uri: String) -> BoxFuture<'_, Result<(), ResourceError>> {
        self.unsubscribed.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        async { Ok(()) }.boxed()
    }
}

async fn session(registry: &Arc<Registry>) -> Client {
    common::in_process_session(registry, Caller::owner(ToolPolicy::allow_all()))
        .await
        .0
}

#[tokio::test]
async fn the_provider_is_asked_once_and_released_when_the_last_session_ends() {
    let registry = Arc::new(Registry::new(Duration::from_secs(10)));
    let provider = Arc::new(Counting::default());
    registry.set_resource_provider("fake", provider.clone());
    let uri = "agentos+mcp://fake/thing";

    let (one, two) = (session(&registry).await, session(&registry).await);
    subscribe(&one, uri).await;
    subscribe(&two, uri).await;
    assert_eq!(
        provider.subscribed.load(Ordering::SeqCst),
        1,
        "asked once for two sessions"
    );
    assert_eq!(registry.resource_subscribers(uri), 2);

    two.peer()
        .unsubscribe(UnsubscribeRequestParams::new(uri))
        .await
        .unwrap();
    assert_eq!(
        provider.unsubscribed.load(Ordering::SeqCst),
        0,
        "one session still wants it"
    );

    // The last session ends without unsubscribing: its subscription ends with it.
    let released = provider.changed.notified();
    one.cancel().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), released)
        .await
        .expect("released when the session ended");
    assert_eq!(provider.unsubscribed.load(Ordering::SeqCst), 1);
    assert_eq!(registry.resource_subscribers(uri), 0);
    two.cancel().await.unwrap();
}

/// A 2026-07-28 `subscriptions/listen` stream naming a resource holds one subscription at the
/// provider, released when the stream is cancelled.
#[tokio::test]
async fn a_listen_stream_holds_its_resources_until_it_ends() {
    use rmcp::model::{ClientConfig, ProtocolVersion, SubscriptionFilter};
    use rmcp::{ClientLifecycleMode, ClientServiceExt};

    let registry = Arc::new(Registry::new(Duration::from_secs(10)));
    let provider = Arc::new(Counting::default());
    registry.set_resource_provider("fake", provider.clone());
    let uri = "agentos+mcp://fake/thing";
    let client_end = common::in_process_server(&registry, Caller::owner(ToolPolicy::allow_all()));
    let client = ClientConfig::default()
        .serve_with_lifecycle(
            client_end,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover");
    let mut stream = client
        .peer()
        .listen(SubscriptionFilter::builder().resource_subscriptions([uri]).build())
        .await
        .expect("subscriptions/listen");
    assert!(common::eventually(Duration::from_secs(10), || registry.resource_subscribers(uri) == 1).await);
    assert_eq!(provider.subscribed.load(Ordering::SeqCst), 1);

    let released = provider.changed.notified();
    stream.cancel().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), released)
        .await
        .expect("released when the stream ended");
    assert_eq!(provider.unsubscribed.load(Ordering::SeqCst), 1);
    assert_eq!(registry.resource_subscribers(uri), 0);
    client.cancel().await.unwrap();
}
