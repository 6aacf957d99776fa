//! Audit: the queue that takes the pipeline's records off the call path, the background task
//! that writes them in batches, and `agentos.audit_query`, the one place the rule of who may
//! read whose records lives (REST's `GET /api/audit` calls this tool as its caller).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Governance;
use super::access::{may_name, visibility};
use super::filters::{time_arg, tool_filter};
use crate::ops::metrics::RecordLoss;
use crate::registry::{AuditOutcome, AuditRecord, AuditSink, Caller, Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{AuditEntry, AuditFilter, Store, now_ms};

/// Records waiting to be written; past this, new ones are dropped (and counted), never waited for.
const QUEUE: usize = 65_536;
/// Records per store write (one transaction).
const BATCH: usize = 4096;
/// After writing a partial batch the writer waits this long for more: fewer, larger transactions
/// cost the store far less than one per handful of calls.
const LINGER: Duration = Duration::from_millis(200);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// The pipeline's [`AuditSink`]: a bounded queue drained by [`start`]'s task.
struct AuditQueue {
    records: mpsc::Sender<AuditRecord>,
    loss: Arc<RecordLoss>,
}

impl AuditSink for AuditQueue {
    fn record(&self, record: AuditRecord) {
        match self.records.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.loss.audit_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // The first drop and then every thousandth: a full queue must not flood the log too.
                if dropped == 1 || dropped.is_multiple_of(1000) {
                    tracing::warn!(dropped, "audit queue full: records dropped");
                }
            }
            // The writer has stopped: agentos is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.loss.audit_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Installs the audit queue on `registry` and starts writing it to the store until `shutdown`;
/// then writes what is queued and ends. `None` when audit is off or was started already.
pub(super) fn start(gov: &Governance, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let registry = gov.registry()?;
    if !gov.config.audit.enabled {
        return None;
    }
    let (sender, receiver) = mpsc::channel(QUEUE);
    let queue = Arc::new(AuditQueue {
        records: sender,
        loss: gov.loss.clone(),
    });
    if !registry.set_audit_sink(queue) {
        return None;
    }
    let retention_ms = i64::from(gov.config.audit.retention_days) * DAY_MS;
    Some(tokio::spawn(drain(gov.store.clone(), receiver, retention_ms, shutdown)))
}

async fn drain(
    store: Arc<dyn Store>,
    mut records: mpsc::Receiver<AuditRecord>,
    retention_ms: i64,
    shutdown: CancellationToken,
) {
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            received = records.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                write(&*store, &mut batch).await;
                if received < BATCH {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(LINGER) => {}
                    }
                }
            }
            _ = purge.tick() => match store.audit_purge(now_ms() - retention_ms).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged old audit records"),
                Err(error) => tracing::warn!(%error, "could not purge old audit records"),
            },
        }
    }
    // Refuse new records, then write every one already queued.
    records.close();
    while records.recv_many(&mut batch, BATCH).await > 0 {
        write(&*store, &mut batch).await;
    }
    tracing::debug!("audit trail flushed");
}

async fn write(store: &dyn Store, batch: &mut Vec<AuditRecord>) {
    let entries: Vec<AuditEntry> = batch.drain(..).map(entry_of).collect();
    let count = entries.len();
    if let Err(error) = store.audit_append(entries).await {
        tracing::error!(%error, lost = count, "could not write audit records");
    }
}

fn entry_of(record: AuditRecord) -> AuditEntry {
    AuditEntry {
        seq: 0,
        time_ms: record.time_ms,
        request_id: record.request_id,
        agent_id: record.agent_id,
        account_id: record.account_id,
        tool: record.tool,
        origin: record.origin.map(|o| Cow::Borrowed(o.as_str())),
        input_digest: record.input_digest,
        outcome: Cow::Borrowed(record.outcome.as_str()),
        latency_us: i64::try_from(record.latency_us).unwrap_or(i64::MAX),
        error: record.error,
        skill: record.skill,
    }
}

/// The outcomes a record can have, as the query names them.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum OutcomeArg {
    Ok,
    Error,
    UnknownTool,
    InvalidArguments,
    Cancelled,
    Timeout,
    ApprovalPending,
    ApprovalDenied,
    NotFound,
    RateLimited,
}

impl OutcomeArg {
    fn outcome(self) -> AuditOutcome {
        match self {
            Self::Ok => AuditOutcome::Ok,
            Self::Error => AuditOutcome::Error,
            Self::UnknownTool => AuditOutcome::UnknownTool,
            Self::InvalidArguments => AuditOutcome::InvalidArguments,
            Self::Cancelled => AuditOutcome::Cancelled,
            Self::Timeout => AuditOutcome::Timeout,
            Self::ApprovalPending => AuditOutcome::ApprovalPending,
            Self::ApprovalDenied => AuditOutcome::ApprovalDenied,
            Self::NotFound => AuditOutcome::NotFound,
            Self::RateLimited => AuditOutcome::RateLimited,
        }
    }
}

fn default_limit() -> u32 {
    50
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryArgs {
    /// Only this agent's calls. Omit for every agent you may see (yourself; an operator also
    /// its account's agents; an ops-admin everyone).
    agent_id: Option<String>,
    /// Only this tool: an exact name such as `agentos.mem_set`, or a prefix ending in `*` such
    /// as `mcp.github.*`.
    tool: Option<String>,
    /// Only calls that ended this way.
    outcome: Option<OutcomeArg>,
    /// Only calls that started at or after this time (RFC 3339, e.g. `2025-01-31T00:00:00Z`).
    since: Option<String>,
    /// Only calls that started at or before this time (RFC 3339).
    until: Option<String>,
    /// Most records to return (1-500).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 500))]
    limit: u32,
    /// `nextCursor` of the previous page, to get older records.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RecordOut {
    /// When the call started (RFC 3339, UTC).
    time: String,
    time_ms: i64,
    request_id: String,
    agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    /// The tool called (as requested, when no such tool was available); `resource:<uri>` for a
    /// resource read, the prompt's name for a prompt get, `gate:<step>` for a step of the
    /// identity gate (`gate:signin`, `gate:signup`, `gate:register`, ...).
    tool: String,
    /// `primitive`, `skill` or `mcp`; absent for unknown tools and gate steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    /// SHA-256 (hex) of the input's JSON; the input itself is never kept.
    input_digest: String,
    /// `ok`, `error`, `unknown_tool`, `invalid_arguments`, `cancelled`, `timeout`,
    /// `approval_pending`, `approval_denied`, `not_found` (no such resource or prompt) or
    /// `rate_limited`.
    outcome: String,
    latency_us: i64,
    /// What went wrong (truncated), unless the outcome is `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// For a call a skill made (a host call): the skill, as `<slug>@<version>`. The agent is
    /// the one whose call ran the skill.
    #[serde(skip_serializing_if = "Option::is_none")]
    skill: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    /// Newest first.
    records: Vec<RecordOut>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

async fn query(gov: &Governance, args: QueryArgs, caller: &Caller) -> Result<QueryResult, ToolFailure> {
    if let Some(agent) = &args.agent_id {
        let registry = gov.registry();
        if !may_name(caller, registry.as_deref(), agent).await {
            return Err(ToolFailure::forbidden(format!(
                "you may only read your own audit records (and, as an operator, those of your \
                 account's agents); `{agent}` is not one of them. Omit agentId to see yours."
            )));
        }
    }
    let before_seq = args
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ToolFailure::invalid_input("`cursor` must be a `nextCursor` from an earlier audit_query"))?;
    let (tool, tool_prefix) = tool_filter(args.tool.as_deref());
    let limit = usize::try_from(args.limit.clamp(1, 500)).unwrap_or(500);
    let filter = AuditFilter {
        visibility: visibility(caller),
        agent_id: args.agent_id,
        tool,
        tool_prefix,
        outcome: args.outcome.map(|o| o.outcome().as_str().to_owned()),
        since_ms: time_arg("since", args.since.as_deref())?,
        until_ms: time_arg("until", args.until.as_deref())?,
        before_seq,
        limit,
    };
    let entries = gov.store.audit_query(&filter).await?;
    let next_cursor = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    let records = entries
        .into_iter()
        .map(|e| RecordOut {
            time: chrono::DateTime::from_timestamp_millis(e.time_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            time_ms: e.time_ms,
            request_id: e.request_id.to_string(),
            agent_id: e.agent_id.to_string(),
            account_id: e.account_id.map(|a| a.to_string()),
            tool: e.tool.to_string(),
            origin: e.origin.map(Cow::into_owned),
            input_digest: e.input_digest,
            outcome: e.outcome.into_owned(),
            latency_us: e.latency_us,
            error: e.error,
            skill: e.skill.map(|s| s.to_string()),
        })
        .collect();
    Ok(QueryResult { records, next_cursor })
}

pub(super) fn tools(gov: &Governance) -> Vec<Arc<dyn Tool>> {
    let gov = gov.clone();
    vec![
        ToolBuilder::new("agentos.audit_query")
            .title("Read the audit trail")
            .description(
                "Reads the audit trail, newest first: every tool call, resource read \
                 (`resource:<uri>`), prompt get and sign-in step (`gate:signin`, ...), with when, \
                 which agent, how it ended (ok, error, unknown_tool, invalid_arguments, cancelled, \
                 timeout, approval_pending, approval_denied, not_found, rate_limited), latency, the \
                 error text, and a SHA-256 digest of the input (inputs themselves are never kept). You see your own calls; an \
                 operator also sees its account's agents, an ops-admin everyone. Filter by \
                 agentId, tool (exact or `prefix*`), outcome and a since/until time window; page \
                 back with `cursor` = the previous `nextCursor`. Records appear within about a \
                 second of the call.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: QueryArgs, ctx| {
                let gov = gov.clone();
                async move { query(&gov, args, &ctx.caller).await }
            }),
    ]
}
