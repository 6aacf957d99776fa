//! Store-level tests of the identity tables: conflicts, single-use resets, revocation, pruning.

use super::*;
use crate::store::{SqliteStore, Synchronous, now_ms};

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

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
    (dir, store)
}

#[tokio::test]
async fn accounts_and_agents_are_created_once() {
    let (_dir, store) = open();
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
}

#[tokio::test]
async fn token_invalidation_never_moves_backwards() {
    let (_dir, store) = open();
    store.identity_create_agent(agent("bot", None)).await.unwrap();
    assert!(store.identity_invalidate_tokens("bot", 2_000).await.unwrap());
    assert!(store.identity_invalidate_tokens("bot", 1_000).await.unwrap());
    let bot = store.identity_agent("bot").await.unwrap().unwrap();
    assert_eq!(bot.tokens_valid_after_ms, 2_000);
    assert!(!store.identity_invalidate_tokens("ghost", 1).await.unwrap());
}

#[tokio::test]
async fn tokens_are_recorded_revoked_and_pruned() {
    let (_dir, store) = open();
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
async fn sessions_are_found_by_hash_and_deleted() {
    let (_dir, store) = open();
    let now = now_ms();
    let session = SessionRow {
        id_hash: "h1".into(),
        account_id: "acc1".into(),
        agent_id: "agent_1".into(),
        csrf_token: "csrf".into(),
        created_at_ms: now,
        expires_at_ms: now + 60_000,
    };
    store.identity_create_session(session.clone()).await.unwrap();
    assert_eq!(store.identity_session("h1").await.unwrap(), Some(session));
    assert!(store.identity_delete_session("h1").await.unwrap());
    assert!(!store.identity_delete_session("h1").await.unwrap());
    assert!(store.identity_session("h1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_reset_token_works_once_and_resets_everything_it_should() {
    let (_dir, store) = open();
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
        .identity_create_session(SessionRow {
            id_hash: "s".into(),
            account_id: "acc1".into(),
            agent_id: "agent_1".into(),
            csrf_token: "c".into(),
            created_at_ms: now,
            expires_at_ms: now + 60_000,
        })
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
