//! The SQLite identity tests (src/store/identity/tests.rs) run against PostgreSQL, plus the
//! claims this store adds: racing writers on several connections, and cross-replica
//! notifications on `agentos_identity`.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::super::testing;
use crate::store::{
    AccountRow, AgentRow, IdentityStore, PasswordReset, PgStore, SessionRow, StoreLimits, TokenRow, now_ms,
};

fn agent(id: &str, account_id: Option<&str>) -> AgentRow {
    AgentRow {
        id: id.into(),
        name: format!("{id} name"),
        description: None,
        owner_email: None,
        account_id: account_id.map(Into::into),
        role: "operator".into(),
        status: "active".into(),
        allowed_domains: vec!["example.com".into()],
        allowed_tools: vec!["agentos.*".into()],
        tokens_valid_after_ms: 0,
        created_at_ms: now_ms(),
    }
}

fn account(id: &str, email: &str, agent_id: &str) -> AccountRow {
    AccountRow {
        id: id.into(),
        email: email.into(),
        password_hash: "hash-1".into(),
        agent_id: agent_id.into(),
        created_at_ms: now_ms(),
    }
}

fn session(id_hash: &str, account_id: &str, created_at_ms: i64, expires_at_ms: i64) -> SessionRow {
    SessionRow {
        id_hash: id_hash.into(),
        account_id: account_id.into(),
        agent_id: "agent_1".into(),
        csrf_token: "csrf".into(),
        created_at_ms,
        expires_at_ms,
    }
}

/// A store on a fresh database, and that database's URL (for a listener of its own).
async fn store_and_url() -> Option<(PgStore, String)> {
    let url = testing::fresh_database().await?;
    let store = PgStore::connect(&url, 8, StoreLimits::default())
        .await
        .expect("connect to the test database");
    Some((store, url))
}

/// A connection that LISTENs on one channel, as another replica would, and hands over payloads.
pub(in crate::store::postgres) struct Listener {
    _client: tokio_postgres::Client,
    received: mpsc::UnboundedReceiver<String>,
}

impl Listener {
    pub(in crate::store::postgres) async fn new(url: &str, channel: &str) -> Self {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.expect("connect a listener");
        let (sender, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(notification) = message {
                    let _ = sender.send(notification.payload().to_owned());
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .expect("listen");
        Self {
            _client: client,
            received,
        }
    }

    /// The next payload; a test waiting 10 s for one has failed.
    pub(in crate::store::postgres) async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("a notification within 10 s")
            .expect("the listener is connected")
    }

    /// The next `count` payloads, sorted (one transaction's notifications, in whatever order
    /// its rows were changed).
    pub(in crate::store::postgres) async fn next_sorted(&mut self, count: usize) -> Vec<String> {
        let mut payloads = Vec::with_capacity(count);
        for _ in 0..count {
            payloads.push(self.next().await);
        }
        payloads.sort();
        payloads
    }
}

#[tokio::test]
async fn accounts_and_agents_are_created_once() {
    let Some(store) = testing::store().await else { return };
    let created = store
        .identity_create_account(
            account("acc1", "a@example.com", "agent_1"),
            agent("agent_1", Some("acc1")),
        )
        .await
        .unwrap();
    assert!(created);
    let again = store
        .identity_create_account(
            account("acc2", "a@example.com", "agent_2"),
            agent("agent_2", Some("acc2")),
        )
        .await
        .unwrap();
    assert!(!again, "a taken email is refused");
    assert!(
        store.identity_agent("agent_2").await.unwrap().is_none(),
        "nothing half-created"
    );

    let found = store.identity_account_by_email("a@example.com").await.unwrap().unwrap();
    assert_eq!(found.agent_id, "agent_1");
    let stored = store.identity_agent("agent_1").await.unwrap().unwrap();
    assert_eq!(stored.allowed_domains, vec!["example.com"]);
    assert_eq!(stored.account_id.as_deref(), Some("acc1"));

    assert!(store.identity_create_agent(agent("bot", None)).await.unwrap());
    assert!(!store.identity_create_agent(agent("bot", None)).await.unwrap());
    assert!(
        store
            .identity_set_agent_tools("bot", vec!["agentos.mem_*".into()])
            .await
            .unwrap()
    );
    assert!(store.identity_set_agent_status("bot", "disabled").await.unwrap());
    let bot = store.identity_agent("bot").await.unwrap().unwrap();
    assert_eq!(
        (bot.status.as_str(), bot.allowed_tools),
        ("disabled", vec!["agentos.mem_*".to_owned()])
    );
    assert!(!store.identity_set_agent_status("ghost", "disabled").await.unwrap());
    assert!(store.identity_set_agent_role("bot", "ops-admin").await.unwrap());
    assert_eq!(store.identity_agent("bot").await.unwrap().unwrap().role, "ops-admin");

    // An agent id clash inside a sign-up is an error, not "email taken", and leaves nothing.
    let clash = store
        .identity_create_account(account("acc3", "b@example.com", "bot"), agent("bot", Some("acc3")))
        .await;
    assert!(clash.is_err());
    assert!(
        store
            .identity_account_by_email("b@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn agents_are_listed_in_id_order_by_page_and_by_account() {
    let Some(store) = testing::store().await else { return };
    // Byte order, as SQLite compares: uppercase before lowercase, `_` between them.
    for (id, account) in [
        ("b", Some("acc1")),
        ("B", None),
        ("a_x", Some("acc1")),
        ("op", None),
        ("c", Some("acc2")),
    ] {
        assert!(store.identity_create_agent(agent(id, account)).await.unwrap());
    }
    let ids = |agents: Vec<AgentRow>| agents.into_iter().map(|agent| agent.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.identity_agents(None, None, 10).await.unwrap()),
        ["B", "a_x", "b", "c", "op"]
    );
    assert_eq!(ids(store.identity_agents(None, None, 2).await.unwrap()), ["B", "a_x"]);
    assert_eq!(
        ids(store.identity_agents(None, Some("a_x"), 2).await.unwrap()),
        ["b", "c"]
    );
    assert_eq!(
        ids(store.identity_agents(Some(("acc1", "op")), None, 10).await.unwrap()),
        ["a_x", "b", "op"]
    );
    assert_eq!(
        ids(store
            .identity_agents(Some(("acc1", "op")), Some("b"), 10)
            .await
            .unwrap()),
        ["op"]
    );
}

#[tokio::test]
async fn token_invalidation_never_moves_backwards() {
    let Some(store) = testing::store().await else { return };
    store.identity_create_agent(agent("bot", None)).await.unwrap();
    assert!(store.identity_invalidate_tokens("bot", 2_000).await.unwrap());
    assert!(store.identity_invalidate_tokens("bot", 1_000).await.unwrap());
    let bot = store.identity_agent("bot").await.unwrap().unwrap();
    assert_eq!(bot.tokens_valid_after_ms, 2_000);
    assert!(!store.identity_invalidate_tokens("ghost", 1).await.unwrap());
}

#[tokio::test]
async fn racing_invalidations_keep_the_latest_instant() {
    let Some(store) = testing::store().await else { return };
    store.identity_create_agent(agent("bot", None)).await.unwrap();
    // Many revocations at once on separate connections, in no particular order.
    let revocations = (1..=16).map(|i| store.identity_invalidate_tokens("bot", i * 1_000));
    for changed in futures::future::join_all(revocations).await {
        assert!(changed.unwrap());
    }
    let bot = store.identity_agent("bot").await.unwrap().unwrap();
    assert_eq!(bot.tokens_valid_after_ms, 16_000);
}

#[tokio::test]
async fn tokens_are_recorded_revoked_and_pruned() {
    let Some(store) = testing::store().await else { return };
    let now = now_ms();
    let token = TokenRow {
        jti: "j1".into(),
        agent_id: "bot".into(),
        issued_at_ms: now,
        expires_at_ms: now + 60_000,
        revoked: false,
    };
    store.identity_record_token(token.clone()).await.unwrap();
    assert_eq!(store.identity_token("j1").await.unwrap(), Some(token));
    store.identity_revoke_token("j1", "bot", now + 60_000).await.unwrap();
    assert!(store.identity_token("j1").await.unwrap().unwrap().revoked);
    // A jti never recorded (e.g. issued by another replica) is recorded as revoked.
    store.identity_revoke_token("j2", "bot", now - 1).await.unwrap();
    assert!(store.identity_token("j2").await.unwrap().unwrap().revoked);
    assert_eq!(store.identity_prune(now).await.unwrap(), 1);
    assert!(store.identity_token("j2").await.unwrap().is_none());
    assert!(store.identity_token("j1").await.unwrap().is_some());
}

#[tokio::test]
async fn racing_revocations_of_an_unrecorded_token_both_succeed() {
    let Some(store) = testing::store().await else { return };
    let expires = now_ms() + 60_000;
    let (first, second) = tokio::join!(
        store.identity_revoke_token("j", "bot", expires),
        store.identity_revoke_token("j", "bot", expires),
    );
    first.unwrap();
    second.unwrap();
    assert!(store.identity_token("j").await.unwrap().unwrap().revoked);
}

#[tokio::test]
async fn sessions_are_found_by_hash_and_deleted() {
    let Some(store) = testing::store().await else { return };
    let now = now_ms();
    let created = session("h1", "acc1", now, now + 60_000);
    store.identity_create_session(created.clone()).await.unwrap();
    assert_eq!(store.identity_session("h1").await.unwrap(), Some(created));
    assert!(store.identity_delete_session("h1").await.unwrap());
    assert!(!store.identity_delete_session("h1").await.unwrap());
    assert!(store.identity_session("h1").await.unwrap().is_none());

    // A new session drops its account's expired ones, and only those.
    store
        .identity_create_session(session("old", "acc1", now - 10, now - 1))
        .await
        .unwrap();
    store
        .identity_create_session(session("other", "acc2", now - 10, now - 1))
        .await
        .unwrap();
    store
        .identity_create_session(session("new", "acc1", now, now + 60_000))
        .await
        .unwrap();
    assert!(store.identity_session("old").await.unwrap().is_none());
    assert!(store.identity_session("other").await.unwrap().is_some());
}

#[tokio::test]
async fn a_reset_token_works_once_and_resets_everything_it_should() {
    let Some(store) = testing::store().await else { return };
    store
        .identity_create_account(
            account("acc1", "a@example.com", "agent_1"),
            agent("agent_1", Some("acc1")),
        )
        .await
        .unwrap();
    let now = now_ms();
    store.identity_create_reset("t1", "acc1", now + 60_000).await.unwrap();
    store.identity_create_reset("t2", "acc1", now + 60_000).await.unwrap();
    store.identity_create_reset("old", "acc1", now - 1).await.unwrap();
    store
        .identity_create_session(session("s", "acc1", now, now + 60_000))
        .await
        .unwrap();
    let reset = |token: &str| PasswordReset {
        token_hash: token.into(),
        account_id: "acc1".into(),
        password_hash: format!("hash-{token}"),
        now_ms: now,
    };
    assert!(!store.identity_reset_password(reset("old")).await.unwrap(), "expired");
    assert!(!store.identity_reset_password(reset("nope")).await.unwrap(), "unknown");
    let wrong_account = PasswordReset {
        account_id: "acc2".into(),
        ..reset("t1")
    };
    assert!(
        !store.identity_reset_password(wrong_account).await.unwrap(),
        "another account's token"
    );

    // Two connections, truly concurrent (unlike SQLite's single writer).
    let (first, second) = tokio::join!(
        store.identity_reset_password(reset("t1")),
        store.identity_reset_password(reset("t1"))
    );
    assert!(first.unwrap() ^ second.unwrap(), "exactly one racing confirmation wins");
    assert!(
        !store.identity_reset_password(reset("t2")).await.unwrap(),
        "other tokens are used up"
    );

    let account = store.identity_account_by_email("a@example.com").await.unwrap().unwrap();
    assert_eq!(account.password_hash, "hash-t1");
    assert!(store.identity_session("s").await.unwrap().is_none());
    assert_eq!(
        store
            .identity_agent("agent_1")
            .await
            .unwrap()
            .unwrap()
            .tokens_valid_after_ms,
        now
    );
}

#[tokio::test]
async fn racing_sign_ups_with_one_email_create_one_account() {
    let Some(store) = testing::store().await else { return };
    let sign_ups = (0..8).map(|i| {
        store.identity_create_account(
            account(&format!("acc{i}"), "same@example.com", &format!("agent_{i}")),
            agent(&format!("agent_{i}"), Some(&format!("acc{i}"))),
        )
    });
    let outcomes: Vec<bool> = futures::future::join_all(sign_ups)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes.iter().filter(|created| **created).count(), 1, "{outcomes:?}");
    let winner = outcomes.iter().position(|created| *created).unwrap();
    let found = store
        .identity_account_by_email("same@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.agent_id, format!("agent_{winner}"));
    // The losers' agents were rolled back with their accounts.
    assert_eq!(store.identity_agents(None, None, 100).await.unwrap().len(), 1);
}

#[tokio::test]
async fn credential_changes_notify_other_replicas_when_they_commit() {
    let Some((store, url)) = store_and_url().await else {
        return;
    };
    let mut listener = Listener::new(&url, "agentos_identity").await;
    let now = now_ms();

    // Every change to an agent row notifies with its id.
    assert!(store.identity_create_agent(agent("bot", None)).await.unwrap());
    assert_eq!(listener.next().await, "bot");
    store.identity_set_agent_tools("bot", vec!["x".into()]).await.unwrap();
    assert_eq!(listener.next().await, "bot");
    store.identity_set_agent_status("bot", "disabled").await.unwrap();
    assert_eq!(listener.next().await, "bot");
    store.identity_set_agent_role("bot", "agent").await.unwrap();
    assert_eq!(listener.next().await, "bot");
    store.identity_invalidate_tokens("bot", now).await.unwrap();
    assert_eq!(listener.next().await, "bot");

    // Writes that change no credentials stay quiet: the marker is the next thing heard.
    assert!(!store.identity_set_agent_status("ghost", "disabled").await.unwrap());
    let token = TokenRow {
        jti: "j1".into(),
        agent_id: "bot".into(),
        issued_at_ms: now,
        expires_at_ms: now + 60_000,
        revoked: false,
    };
    store.identity_record_token(token).await.unwrap();
    store
        .identity_create_session(session("s1", "acc1", now, now + 60_000))
        .await
        .unwrap();
    store.identity_create_agent(agent("marker_1", None)).await.unwrap();
    assert_eq!(listener.next().await, "marker_1");

    // A revoked token notifies its agent, recorded before or not.
    store.identity_revoke_token("j1", "bot", now + 60_000).await.unwrap();
    assert_eq!(listener.next().await, "bot");
    store.identity_revoke_token("j2", "bot_2", now + 60_000).await.unwrap();
    assert_eq!(listener.next().await, "bot_2");

    // A deleted session notifies `session:` and its hash.
    assert!(store.identity_delete_session("s1").await.unwrap());
    assert_eq!(listener.next().await, "session:s1");

    // A sign-up that loses (email taken) rolls back its agent: nothing is sent for it.
    store
        .identity_create_account(
            account("acc1", "a@example.com", "agent_1"),
            agent("agent_1", Some("acc1")),
        )
        .await
        .unwrap();
    assert_eq!(listener.next().await, "agent_1");
    assert!(
        !store
            .identity_create_account(
                account("acc2", "a@example.com", "agent_2"),
                agent("agent_2", Some("acc2"))
            )
            .await
            .unwrap()
    );
    store.identity_create_agent(agent("marker_2", None)).await.unwrap();
    assert_eq!(listener.next().await, "marker_2");

    // A password reset drops the account's sessions and its agent's tokens.
    store
        .identity_create_session(session("s2", "acc1", now, now + 60_000))
        .await
        .unwrap();
    store
        .identity_create_session(session("s3", "acc1", now, now + 60_000))
        .await
        .unwrap();
    store.identity_create_reset("t", "acc1", now + 60_000).await.unwrap();
    let reset = PasswordReset {
        token_hash: "t".into(),
        account_id: "acc1".into(),
        password_hash: "new".into(),
        now_ms: now_ms(),
    };
    assert!(store.identity_reset_password(reset).await.unwrap());
    assert_eq!(listener.next_sorted(3).await, ["agent_1", "session:s2", "session:s3"]);

    // Pruning an expired session notifies too.
    store
        .identity_create_session(session("s4", "acc9", now - 10, now - 1))
        .await
        .unwrap();
    assert!(store.identity_prune(now).await.unwrap() >= 1);
    assert_eq!(listener.next().await, "session:s4");
}
