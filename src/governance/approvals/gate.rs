//! The store-backed approval gate: records held calls, waits for their decisions, decides them,
//! and runs approved calls once, as their original caller.
//!
//! The store is the source of truth (another replica may decide); the in-memory notify map only
//! wakes local waiters early, and every waiter re-reads the store at least every two seconds. On
//! a store replicas share, its change feed wakes the waiter as soon as another replica's decision
//! or outcome commits.
//!
//! Sensitive values (see `registry::Redaction`) never reach the record in the clear: it keeps
//! the input redacted (what deciders see) and, when that differs from the real input, the real
//! one sealed with the secrets key (`crate::sealing`), bound to the approval's id. So a held call
//! survives a restart and may be decided on another replica sharing the key; if the key is gone
//! or changed, the approved call fails and says so. The run's result is stored redacted too; a
//! caller still waiting in this process gets the real one, handed over in memory.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::CallToolResult;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ApprovalsConfig;
use crate::registry::{
    ApprovalGate, CallContext, Caller, CallerSnapshot, Hold, Operation, Registry, ToolFailure, ToolPolicy,
    new_approval_id, run_approved,
};
use crate::sealing::{Sealed, Sealer};
use crate::store::{ApprovalRecord, ApprovalStatus, Store, StoreChange, Visibility, now_ms};

use super::rules::{final_hold, not_found, not_pending, pending_hold, preview};
use crate::governance::access::may_decide_approval;

/// The note on approvals denied because their agent was disabled.
const WITHDRAWN_NOTE: &str = "withdrawn: the agent was disabled";

/// How often a waiting call reports progress and re-reads the store.
const TICK: Duration = Duration::from_secs(2);
/// A real result nobody collected (its waiter left just as it finished) is dropped after this.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// What sealed inputs are bound to: an approval's, and no other row's.
fn sealing_context(id: &str) -> Vec<u8> {
    format!("agentos-approval\0{id}").into_bytes()
}

/// An approved call that ran: its result, and the same as it may be stored and shown.
struct Ran {
    result: CallToolResult,
    recorded: CallToolResult,
}

pub struct Approvals {
    store: Arc<dyn Store>,
    /// Weak: the registry holds this gate.
    registry: Weak<Registry>,
    require: ToolPolicy,
    wait: Duration,
    expire: Duration,
    /// Approved runs still `approved` after this long were cut off by a restart.
    stale_after: Duration,
    waiters: DashMap<String, Arc<Notify>>,
    /// Real (unredacted) results of approved runs, for the local caller still waiting on them.
    fresh: DashMap<String, (Instant, CallToolResult)>,
    sealer: Arc<Sealer>,
}

impl Approvals {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Weak<Registry>,
        config: &ApprovalsConfig,
        call_timeout: Duration,
        sealer: Arc<Sealer>,
    ) -> Self {
        Self {
            store,
            registry,
            require: config.require.clone(),
            wait: Duration::from_secs(config.wait_secs),
            expire: Duration::from_secs(config.expire_secs),
            stale_after: call_timeout * 2 + Duration::from_secs(60),
            waiters: DashMap::new(),
            fresh: DashMap::new(),
            sealer,
        }
    }

    pub(super) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Approves or denies a pending approval as `decider`. On approval the call starts in the
    /// background; the returned status is `approved` (running) or `denied`.
    pub(super) async fn decide(
        self: &Arc<Self>,
        decider: &Caller,
        id: &str,
        approve: bool,
        note: Option<&str>,
    ) -> Result<ApprovalRecord, ToolFailure> {
        let record = self
            .store
            .approval_get(id)
            .await?
            .filter(|record| may_decide_approval(decider, record))
            .ok_or_else(|| not_found(id))?;
        if record.status != ApprovalStatus::Pending {
            return Err(not_pending(&record));
        }
        if !self
            .store
            .approval_decide(id, approve, &decider.agent_id, note, now_ms())
            .await?
        {
            // Someone else decided first, or it expired just now.
            let current = self.store.approval_get(id).await?.unwrap_or(record);
            return Err(match current.status {
                ApprovalStatus::Pending => ToolFailure::new(format!(
                    "approval {id} has expired; the agent must call {} again to ask anew",
                    current.tool
                )),
                _ => not_pending(&current),
            });
        }
        tracing::info!(approval = id, decider = %decider.agent_id, approve, "approval decided");
        let decided = self.store.approval_get(id).await?.ok_or_else(|| not_found(id))?;
        if approve {
            let gate = self.clone();
            let running = decided.clone();
            tokio::spawn(async move { gate.execute(running).await });
        } else {
            self.wake(id);
        }
        Ok(decided)
    }

    /// Runs an approved call as its requester is *now* (the directory's answer, else the stored
    /// snapshot), through the whole pipeline again, and stores how it ended.
    async fn execute(&self, record: ApprovalRecord) {
        let (status, outcome) = match self.run(&record).await {
            Ok(Ran { result, recorded }) => match serde_json::to_string(&recorded) {
                Ok(json) => {
                    // Handed over before the record says completed, so the waiter finds it.
                    if self.waiters.contains_key(&record.id) {
                        self.fresh.insert(record.id.clone(), (Instant::now(), result));
                    }
                    (ApprovalStatus::Completed, json)
                }
                Err(error) => (
                    ApprovalStatus::Failed,
                    format!("the result could not be stored: {error}"),
                ),
            },
            Err(reason) => (ApprovalStatus::Failed, reason),
        };
        tracing::info!(approval = %record.id, status = status.as_str(), "approved call finished");
        if let Err(error) = self.store.approval_finish(&record.id, status, &outcome, now_ms()).await {
            tracing::error!(approval = %record.id, %error, "could not store the approved call's outcome");
        }
        self.wake(&record.id);
    }

    async fn run(&self, record: &ApprovalRecord) -> Result<Ran, String> {
        let registry = self.registry.upgrade().ok_or("agentos is shutting down")?;
        let caller = match registry.directory() {
            Some(directory) => directory.lookup(&record.agent_id).await,
            None => serde_json::from_str::<CallerSnapshot>(&record.caller)
                .ok()
                .map(Caller::from),
        };
        let caller = caller.ok_or_else(|| {
            format!(
                "agent `{}` no longer exists or is disabled, so the approved call did not run",
                record.agent_id
            )
        })?;
        let input = self.input_of(record)?;
        let redaction = registry.redaction(&record.tool);
        let secrets = redaction.input(&input).secrets;
        let ctx = CallContext::new(Arc::new(caller), record.request_id.as_str(), registry.default_timeout())
            .with_front_door("approval");
        // The record names a tool call, a resource read or a prompt get (`Operation::encode`).
        let operation = Operation::decode(&record.tool);
        let result = run_approved(&record.tool, registry.perform(&ctx, operation, input))
            .await
            .map_err(|error| secrets.scrub_text(&error.to_string()).into_owned())?;
        let recorded = redaction.result(&result, &secrets);
        Ok(Ran { result, recorded })
    }

    /// The input the approved call runs with: the sealed real one when there is one.
    fn input_of(&self, record: &ApprovalRecord) -> Result<Value, String> {
        let Some(blob) = &record.sealed_input else {
            return serde_json::from_str(&record.input).map_err(|e| format!("the stored input is unreadable: {e}"));
        };
        let opened = Sealed::from_blob(blob)
            .and_then(|sealed| self.sealer.open(&sealing_context(&record.id), &sealed))
            .map_err(|error| {
                format!(
                    "its input holds sensitive values kept sealed, and they cannot be opened ({error}); \
                     the call did not run. Call {} again to ask anew",
                    record.tool
                )
            })?;
        serde_json::from_slice(&opened).map_err(|e| format!("the sealed input is unreadable: {e}"))
    }

    /// Wakes local waiters when another replica decides or finishes their approvals (and all of
    /// them when the store's feed was interrupted), until the gate or the store goes.
    pub(super) fn follow_store(self: &Arc<Self>) {
        let Some(mut changes) = self.store.changes() else {
            return;
        };
        let gate = Arc::downgrade(self);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let change = changes.recv().await;
                let Some(gate) = gate.upgrade() else { return };
                match change {
                    Ok(StoreChange::Approval(id)) => gate.wake(&id),
                    Ok(StoreChange::Resync) | Err(RecvError::Lagged(_)) => {
                        let all: Vec<_> = gate.waiters.iter().map(|entry| entry.value().clone()).collect();
                        all.iter().for_each(|notify| notify.notify_waiters());
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// Wakes the local waiter of `id`, if any; the waiter removes its entry when it leaves.
    fn wake(&self, id: &str) {
        let notify = self.waiters.get(id).map(|entry| entry.value().clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Waits for `id` to be decided (and, if approved, run), up to the configured time.
    async fn wait_for(&self, ctx: &CallContext, id: &str, tool: &str) -> Hold {
        let notify = self.waiters.entry(id.to_owned()).or_default().clone();
        let started = Instant::now();
        let deadline = started + self.wait;
        let message =
            format!("waiting for a human to approve {tool} (approval {id}; decide with agentos.approval_decide)");
        let total = self.wait.as_secs_f64();
        ctx.report_progress(0.0, Some(total), Some(message.clone())).await;
        let hold = loop {
            // Registered before the store is read, so a decision between the two is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = match self.store.approval_get(id).await {
                Ok(Some(record)) => record,
                Ok(None) => break Hold::Failed(format!("approval {id} disappeared")),
                Err(error) => break Hold::Failed(format!("could not read approval {id}: {error}")),
            };
            if record.status.is_final() {
                break final_hold(&record);
            }
            let now = Instant::now();
            if now >= deadline {
                break pending_hold(&record, self.wait);
            }
            tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => break Hold::Cancelled,
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.min(now + TICK)) => {
                    let elapsed = started.elapsed().as_secs_f64().min(total);
                    ctx.report_progress(elapsed, Some(total), Some(message.clone())).await;
                }
            }
        };
        drop(notify);
        // The last local waiter leaves: forget the entry (the map and nobody else hold it).
        self.waiters.remove_if(id, |_, notify| Arc::strong_count(notify) == 1);
        let fresh = self.fresh.remove(id).map(|(_, (_, result))| result);
        match (hold, fresh) {
            // The stored result is redacted; the caller who made the call gets it whole.
            (Hold::Ran(_), Some(result)) => Hold::Ran(result),
            (hold, _) => hold,
        }
    }
}

impl ApprovalGate for Approvals {
    fn requires(&self, tool: &str) -> bool {
        self.require.allows(tool)
    }

    fn hold<'a>(
        &'a self,
        ctx: &'a CallContext,
        tool: &'a str,
        input: &'a Value,
        shown: &'a Value,
    ) -> BoxFuture<'a, Hold> {
        async move {
            let now = now_ms();
            let snapshot = CallerSnapshot::from(&*ctx.caller);
            let id = new_approval_id();
            let sealed_input = if shown == input {
                None
            } else {
                match self.sealer.seal(&sealing_context(&id), input.to_string().as_bytes()) {
                    Ok(sealed) => Some(sealed.to_blob()),
                    Err(error) => {
                        tracing::error!(%error, "could not seal the sensitive input of a held call");
                        return Hold::Failed(format!(
                            "{tool} needs a human's approval, and its input holds sensitive values that \
                             agentos could not seal for safekeeping ({error}); nothing was held or run"
                        ));
                    }
                }
            };
            let record = ApprovalRecord {
                id,
                agent_id: ctx.caller.agent_id.to_string(),
                account_id: ctx.caller.account_id.as_deref().map(str::to_owned),
                caller: serde_json::to_string(&snapshot).unwrap_or_default(),
                tool: tool.to_owned(),
                input: shown.to_string(),
                sealed_input,
                preview: preview(shown),
                request_id: ctx.request_id.to_string(),
                status: ApprovalStatus::Pending,
                created_at: now,
                expires_at: now.saturating_add(i64::try_from(self.expire.as_millis()).unwrap_or(i64::MAX)),
                decided_at: None,
                decided_by: None,
                note: None,
                result: None,
            };
            let id = record.id.clone();
            if let Err(error) = self.store.approval_create(record).await {
                tracing::error!(%error, "could not record an approval request");
                return Hold::Failed(format!(
                    "{tool} needs a human's approval, but agentos could not record the request ({error}); retry shortly"
                ));
            }
            tracing::info!(approval = %id, "approval requested");
            self.wait_for(ctx, &id, tool).await
        }
        .boxed()
    }

    fn withdraw(&self, agent_id: &str) -> BoxFuture<'_, usize> {
        let agent_id = agent_id.to_owned();
        async move {
            let pending = match self
                .store
                .approval_list(
                    &Visibility::All,
                    Some(ApprovalStatus::Pending),
                    Some(&agent_id),
                    usize::MAX,
                )
                .await
            {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::error!(agent = %agent_id, %error, "cannot find a disabled agent's pending approvals");
                    return 0;
                }
            };
            let mut withdrawn = 0;
            for record in pending {
                let note = Some(WITHDRAWN_NOTE);
                match self
                    .store
                    .approval_decide(&record.id, false, Caller::SYSTEM_ID, note, now_ms())
                    .await
                {
                    Ok(true) => {
                        withdrawn += 1;
                        self.wake(&record.id);
                    }
                    Ok(false) => {}
                    Err(error) => tracing::error!(approval = %record.id, %error, "cannot withdraw an approval"),
                }
            }
            withdrawn
        }
        .boxed()
    }

    fn sweep(&self) -> BoxFuture<'_, usize> {
        async move {
            let now = now_ms();
            let stale_before = now - i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX);
            self.fresh.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
            match self.store.approval_sweep(now, stale_before).await {
                Ok(ids) => {
                    for id in &ids {
                        self.wake(id);
                    }
                    ids.len()
                }
                Err(error) => {
                    tracing::warn!(%error, "could not expire approvals");
                    0
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{FailureKind, ToolBuilder, approval_id_of, failure_kind};
    use crate::store::{SqliteStore, Synchronous};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Said {
        said: String,
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Signed {
        said: String,
        #[schemars(extend("x-sensitive" = true))]
        key: String,
    }

    struct Setup {
        registry: Arc<Registry>,
        gate: Arc<Approvals>,
        _dir: tempfile::TempDir,
    }

    fn setup(wait_secs: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), Synchronous::Normal).unwrap());
        let registry = Arc::new(Registry::new(Duration::from_secs(5)));
        let echo = ToolBuilder::new("test.echo")
            .description("echo")
            .handler(|args: Said, _ctx| async move { Ok(args) });
        let free = ToolBuilder::new("free.echo")
            .description("echo")
            .handler(|args: Said, _ctx| async move { Ok(args) });
        let signed = ToolBuilder::new("test.signed")
            .description("echo with a key")
            .handler(|args: Signed, _ctx| async move { Ok(args) });
        registry.register(vec![echo, free, signed]).unwrap();
        let config = ApprovalsConfig {
            require: ToolPolicy::parse(&["test.*"]).unwrap(),
            wait_secs,
            expire_secs: 60,
        };
        let gate = Arc::new(Approvals::new(
            store,
            Arc::downgrade(&registry),
            &config,
            Duration::from_secs(5),
            Arc::new(Sealer::new(dir.path().join("secrets.key"))),
        ));
        assert!(registry.set_approval_gate(gate.clone()));
        Setup {
            registry,
            gate,
            _dir: dir,
        }
    }

    fn ctx(caller: Caller) -> CallContext {
        CallContext::new(Arc::new(caller), "req-1", Duration::from_secs(5))
    }

    fn agent(id: &str) -> Caller {
        Caller::agent(id, ToolPolicy::allow_all(), Vec::new())
    }

    #[tokio::test]
    async fn unlisted_tools_run_and_listed_ones_wait_then_stay_pending() {
        let s = setup(1);
        let free = s
            .registry
            .call(&ctx(agent("a")), "free.echo", serde_json::json!({"said": "hi"}))
            .await;
        assert_eq!(free.unwrap().structured_content.unwrap()["said"], "hi");
        let held = s
            .registry
            .call(&ctx(agent("a")), "test.echo", serde_json::json!({"said": "hi"}))
            .await
            .unwrap();
        assert_eq!(failure_kind(&held), Some(FailureKind::Pending));
        let id = approval_id_of(&held).unwrap().to_owned();
        let text = format!("{:?}", held.content);
        assert!(text.contains(&id) && text.contains("agentos.approval_result"), "{text}");
        let record = s.gate.store().approval_get(&id).await.unwrap().unwrap();
        assert_eq!(record.status, ApprovalStatus::Pending);
        assert!(record.preview.contains("\"said\": \"hi\""));

        // The requester cannot decide its own approval, and it looks like it does not exist.
        let own = s.gate.decide(&agent("a"), &id, true, None).await.unwrap_err();
        assert_eq!(own.kind, FailureKind::NotFound);
        let stranger = s.gate.decide(&agent("b"), &id, true, None).await.unwrap_err();
        assert_eq!(stranger.kind, FailureKind::NotFound);

        let owner = Caller::owner(ToolPolicy::allow_all());
        let decided = s.gate.decide(&owner, &id, true, Some("ok")).await.unwrap();
        assert_eq!(decided.status, ApprovalStatus::Approved);
        let again = s.gate.decide(&owner, &id, false, None).await.unwrap_err();
        assert_eq!(again.kind, FailureKind::InvalidInput, "{}", again.message);
        let mut status = ApprovalStatus::Approved;
        for _ in 0..100 {
            let record = s.gate.store().approval_get(&id).await.unwrap().unwrap();
            status = record.status;
            if status.is_final() {
                let result: CallToolResult = serde_json::from_str(record.result.as_deref().unwrap()).unwrap();
                assert_eq!(result.structured_content.unwrap()["said"], "hi");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, ApprovalStatus::Completed);
    }

    async fn first_pending(s: &Setup) -> ApprovalRecord {
        for _ in 0..100 {
            let pending = s
                .gate
                .store()
                .approval_list(&crate::store::Visibility::All, Some(ApprovalStatus::Pending), None, 10)
                .await
                .unwrap();
            if let Some(record) = pending.into_iter().next() {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no pending approval appeared");
    }

    #[tokio::test]
    async fn sensitive_inputs_are_stored_sealed_and_run_whole() {
        let s = setup(10);
        let owner = Caller::owner(ToolPolicy::allow_all());
        let registry = s.registry.clone();
        let input = serde_json::json!({"said": "hi", "key": "k-s3cr3t-value"});
        let waiting = tokio::spawn(async move { registry.call(&ctx(agent("a")), "test.signed", input).await });
        let record = first_pending(&s).await;
        assert!(!record.input.contains("s3cr3t") && !record.preview.contains("s3cr3t"));
        assert!(record.input.contains(crate::registry::REDACTED), "{}", record.input);
        let blob = record.sealed_input.clone().expect("the real input, sealed");
        assert!(!blob.windows(6).any(|w| w == b"s3cr3t"));
        s.gate.decide(&owner, &record.id, true, None).await.unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter woke")
            .unwrap()
            .unwrap();
        assert_eq!(
            result.structured_content.unwrap()["key"],
            "k-s3cr3t-value",
            "the call ran with, and its waiter got, the real value"
        );
        let stored = s.gate.store().approval_get(&record.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ApprovalStatus::Completed);
        let kept = stored.result.unwrap();
        assert!(
            !kept.contains("s3cr3t") && kept.contains(crate::registry::REDACTED),
            "{kept}"
        );
        assert!(s.gate.fresh.is_empty(), "the handed-over result is not kept");

        // A sealed input bound to another approval does not open: the run fails and says why.
        let other = ApprovalRecord {
            id: new_approval_id(),
            ..record
        };
        let error = s.gate.input_of(&other).unwrap_err();
        assert!(error.contains("cannot be opened"), "{error}");
    }

    #[tokio::test]
    async fn a_waiting_caller_gets_the_run_or_the_denial() {
        let s = setup(10);
        let owner = Caller::owner(ToolPolicy::allow_all());
        for approve in [true, false] {
            let registry = s.registry.clone();
            let waiting = tokio::spawn(async move {
                registry
                    .call(&ctx(agent("a")), "test.echo", serde_json::json!({"said": "yo"}))
                    .await
            });
            let mut pending = Vec::new();
            for _ in 0..100 {
                pending = s
                    .gate
                    .store()
                    .approval_list(&crate::store::Visibility::All, Some(ApprovalStatus::Pending), None, 10)
                    .await
                    .unwrap();
                if !pending.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let id = pending.first().expect("a pending approval").id.clone();
            s.gate.decide(&owner, &id, approve, Some("not now")).await.unwrap();
            let result = tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("the waiter woke")
                .unwrap()
                .unwrap();
            if approve {
                assert_eq!(result.structured_content.unwrap()["said"], "yo");
            } else {
                assert_eq!(failure_kind(&result), Some(FailureKind::Denied));
                let text = format!("{:?}", result.content);
                assert!(text.contains("test.echo was denied by owner: not now"), "{text}");
            }
        }
    }
}
