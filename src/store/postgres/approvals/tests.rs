//! The SQLite approval tests (src/store/approvals.rs) run against PostgreSQL, plus the claims
//! this store adds: replicas deciding or sweeping the same approvals at once change each one
//! exactly once, and every status change notifies `agentos_approvals`.

use std::collections::HashSet;

use super::super::identity::tests::Listener;
use super::super::testing;
use crate::store::{ApprovalRecord, ApprovalStatus, ApprovalStore, PgStore, StoreLimits, Visibility};

fn pending(id: &str, agent: &str, account: Option<&str>, created_at: i64) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        agent_id: agent.into(),
        account_id: account.map(str::to_owned),
        caller: "{}".into(),
        tool: "mcp.e.echo".into(),
        input: r#"{"message":"hi"}"#.into(),
        sealed_input: None,
        preview: "{\n  \"message\": \"hi\"\n}".into(),
        request_id: "r1".into(),
        status: ApprovalStatus::Pending,
        created_at,
        expires_at: created_at + 1000,
        decided_at: None,
        decided_by: None,
        note: None,
        result: None,
    }
}

/// Two stores on one fresh database, as two replicas would be, and its URL.
async fn replicas() -> Option<(PgStore, PgStore, String)> {
    let url = testing::fresh_database().await?;
    let connect = || PgStore::connect(&url, 8, StoreLimits::default());
    let (first, second) = tokio::join!(connect(), connect());
    Some((first.expect("connect"), second.expect("connect"), url))
}

#[tokio::test]
async fn an_approval_is_decided_once_and_finished_once() {
    let Some(store) = testing::store().await else { return };
    store.approval_create(pending("p1", "a", None, 100)).await.unwrap();
    assert_eq!(store.approval_pending_count(150).await.unwrap(), 1);
    assert_eq!(store.approval_pending_count(1100).await.unwrap(), 0, "expired");
    assert!(
        !store
            .approval_finish("p1", ApprovalStatus::Completed, "{}", 150)
            .await
            .unwrap()
    );
    let (first, second) = tokio::join!(
        store.approval_decide("p1", true, "op", Some("fine"), 200),
        store.approval_decide("p1", false, "other", None, 200),
    );
    assert!(first.unwrap() ^ second.unwrap(), "exactly one decision wins");
    let decided = store.approval_get("p1").await.unwrap().unwrap();
    assert!(matches!(
        decided.status,
        ApprovalStatus::Approved | ApprovalStatus::Denied
    ));
    if decided.status == ApprovalStatus::Approved {
        assert!(
            store
                .approval_finish("p1", ApprovalStatus::Completed, "{\"content\":[]}", 300)
                .await
                .unwrap()
        );
        assert!(
            !store
                .approval_finish("p1", ApprovalStatus::Failed, "x", 301)
                .await
                .unwrap()
        );
        let done = store.approval_get("p1").await.unwrap().unwrap();
        assert_eq!(done.status, ApprovalStatus::Completed);
        assert_eq!(done.result.as_deref(), Some("{\"content\":[]}"));
    }
    assert!(store.approval_get("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn expired_ones_cannot_be_decided_and_lists_respect_visibility() {
    let Some(store) = testing::store().await else { return };
    store
        .approval_create(pending("p1", "a", Some("acct"), 100))
        .await
        .unwrap();
    store
        .approval_create(pending("p2", "b", Some("acct"), 200))
        .await
        .unwrap();
    store.approval_create(pending("p3", "c", None, 5000)).await.unwrap();
    assert!(
        !store.approval_decide("p1", true, "op", None, 1100).await.unwrap(),
        "past expiry"
    );
    assert_eq!(store.approval_sweep(1250, 0).await.unwrap(), ["p1", "p2"]);
    assert_eq!(
        store.approval_get("p2").await.unwrap().unwrap().status,
        ApprovalStatus::Expired
    );

    let all = store.approval_list(&Visibility::All, None, None, 10).await.unwrap();
    let ids: Vec<_> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["p3", "p2", "p1"]);
    let operator = Visibility::Account {
        agent_id: "op".into(),
        account_id: "acct".into(),
    };
    assert_eq!(store.approval_list(&operator, None, None, 10).await.unwrap().len(), 2);
    let agent = Visibility::Agent("c".into());
    let own = store
        .approval_list(&agent, Some(ApprovalStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(own.len(), 1);
    let filtered = store
        .approval_list(&Visibility::All, None, Some("b"), 10)
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);

    assert!(store.approval_decide("p3", true, "op", None, 5001).await.unwrap());
    assert_eq!(
        store.approval_sweep(6000, 5002).await.unwrap(),
        ["p3"],
        "a stale run fails"
    );
    let failed = store.approval_get("p3").await.unwrap().unwrap();
    assert_eq!(failed.status, ApprovalStatus::Failed);
    assert_eq!(failed.result.as_deref(), Some(super::STALE_RESULT));
}

#[tokio::test]
async fn records_round_trip_and_list_newest_first_with_ties_by_id() {
    let Some(store) = testing::store().await else { return };
    let sealed = ApprovalRecord {
        sealed_input: Some(vec![0, 255, 1, 128]),
        input: r#"{"b":1,  "a":"é"}"#.into(),
        note: Some("n".into()),
        decided_by: Some("x".into()),
        decided_at: Some(7),
        ..pending("B", "a", Some("acct"), 100)
    };
    store.approval_create(sealed.clone()).await.unwrap();
    store.approval_create(pending("a", "a", None, 100)).await.unwrap();
    store.approval_create(pending("_", "a", None, 100)).await.unwrap();
    store.approval_create(pending("z", "a", None, 50)).await.unwrap();
    assert_eq!(store.approval_get("B").await.unwrap(), Some(sealed));
    let listed = store.approval_list(&Visibility::All, None, None, 3).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["B", "_", "a"], "byte order breaks ties, as on SQLite");
    let by_agent = store
        .approval_list(
            &Visibility::Agent("a".into()),
            Some(ApprovalStatus::Pending),
            Some("a"),
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_agent.len(), 4);
    assert!(
        store
            .approval_list(&Visibility::Agent("a".into()), None, Some("b"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A duplicate id is an error, as SQLite's primary key makes it.
    assert!(store.approval_create(pending("a", "a", None, 1)).await.is_err());
}

#[tokio::test]
async fn replicas_racing_to_decide_one_approval_only_one_wins() {
    let Some((one, two, _)) = replicas().await else { return };
    let ids: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    for id in &ids {
        one.approval_create(pending(id, "a", None, 100)).await.unwrap();
    }
    for id in &ids {
        // Four deciders per replica, each on its own connection, all at once.
        let deciders = (0..8).map(|i| {
            let (replica, by) = if i % 2 == 0 {
                (&one, format!("one-{i}"))
            } else {
                (&two, format!("two-{i}"))
            };
            async move {
                let won = replica.approval_decide(id, i % 3 == 0, &by, None, 200).await.unwrap();
                (won, by)
            }
        });
        let outcomes = futures::future::join_all(deciders).await;
        let winners: Vec<_> = outcomes.iter().filter(|(won, _)| *won).map(|(_, by)| by).collect();
        assert_eq!(winners.len(), 1, "{id}: {outcomes:?}");
        let stored = two.approval_get(id).await.unwrap().unwrap();
        assert_eq!(
            stored.decided_by.as_ref(),
            Some(winners[0]),
            "the winner's decision is the one kept"
        );
    }
}

#[tokio::test]
async fn a_decision_racing_the_sweep_changes_each_approval_once() {
    let Some((one, two, _)) = replicas().await else { return };
    let ids: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
    for id in &ids {
        one.approval_create(pending(id, "a", None, 100)).await.unwrap();
    }
    // Each decider is in time by its own clock (999 < 1100); the sweeper's clock says expired.
    let decisions = futures::future::join_all(ids.iter().map(|id| one.approval_decide(id, true, "op", None, 999)));
    let (decisions, swept) = tokio::join!(decisions, two.approval_sweep(1100, 0));
    let swept: HashSet<String> = swept.unwrap().into_iter().collect();
    for (id, decided) in ids.iter().zip(decisions) {
        let decided = decided.unwrap();
        let status = one.approval_get(id).await.unwrap().unwrap().status;
        assert_ne!(decided, swept.contains(id), "{id}: exactly one of decide and sweep won");
        let expected = if decided {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Expired
        };
        assert_eq!(status, expected, "{id}");
    }
}

#[tokio::test]
async fn replicas_sweeping_at_once_change_each_approval_once() {
    let Some((one, two, _)) = replicas().await else { return };
    // 30 due to expire and 10 approved runs gone stale.
    for i in 0..40 {
        one.approval_create(pending(&format!("p{i:02}"), "a", None, 100 + i))
            .await
            .unwrap();
    }
    for i in 30..40 {
        assert!(
            one.approval_decide(&format!("p{i:02}"), true, "op", None, 150)
                .await
                .unwrap()
        );
    }
    let sweeps = (0..6).map(|i| {
        if i % 2 == 0 {
            one.approval_sweep(5000, 1000)
        } else {
            two.approval_sweep(5000, 1000)
        }
    });
    let mut all: Vec<String> = futures::future::join_all(sweeps)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    // Whatever a sweep skipped (held by another) the next one changes.
    all.extend(one.approval_sweep(5000, 1000).await.unwrap());
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "no approval changed twice: {all:?}");
    assert_eq!(all.len(), 40);
    for i in 0..40 {
        let status = two.approval_get(&format!("p{i:02}")).await.unwrap().unwrap().status;
        let expected = if i < 30 {
            ApprovalStatus::Expired
        } else {
            ApprovalStatus::Failed
        };
        assert_eq!(status, expected);
    }
}

#[tokio::test]
async fn status_changes_wake_waiters_on_other_replicas() {
    let Some((one, two, url)) = replicas().await else {
        return;
    };
    let mut listener = Listener::new(&url, "agentos_approvals").await;
    for id in ["p1", "p2", "p3", "p4"] {
        one.approval_create(pending(id, "a", None, 100)).await.unwrap();
    }
    assert!(one.approval_decide("p1", true, "op", None, 200).await.unwrap());
    assert_eq!(listener.next().await, "p1");
    // A decision that loses, or a finish of what is not running, changes nothing and says
    // nothing: the next thing heard is the marker.
    assert!(!two.approval_decide("p1", false, "other", None, 200).await.unwrap());
    assert!(
        !two.approval_finish("p2", ApprovalStatus::Completed, "{}", 200)
            .await
            .unwrap()
    );
    assert!(two.approval_decide("p2", false, "op", None, 200).await.unwrap());
    assert_eq!(listener.next().await, "p2");

    assert!(
        two.approval_finish("p1", ApprovalStatus::Completed, "{}", 300)
            .await
            .unwrap()
    );
    assert_eq!(listener.next().await, "p1");

    assert!(one.approval_decide("p4", true, "op", None, 200).await.unwrap());
    assert_eq!(listener.next().await, "p4");
    assert_eq!(two.approval_sweep(2000, 1000).await.unwrap(), ["p3", "p4"]);
    assert_eq!(listener.next_sorted(2).await, ["p3", "p4"]);
}
