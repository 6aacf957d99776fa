//! The tool registry: every tool agentos offers, and the one call path every adapter uses.
//!
//! Providers (primitives, proxied servers, skills) add and remove tools at run time; each change
//! bumps a version that live sessions watch to send `notifications/tools/list_changed`.

mod approval;
mod audit;
mod catalog;
mod client_channel;
mod completion;
mod context;
mod error;
mod input_rounds;
mod limits;
pub mod limits_shared;
mod listing;
pub mod names;
mod operation;
pub mod pages;
mod personal;
mod pipeline;
mod policy;
mod provider_news;
mod redact;
mod resources;
mod results;
mod standing;
mod startup;
mod subscriptions;
mod target;
mod tool;
pub mod trace;
mod trace_trail;
mod transparent;
mod typed;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub use approval::{
    APPROVAL_TOOLS, ApprovalGate, CallerSnapshot, Hold, approval_id_of, is_approval_id, new_approval_id, run_approved,
};
pub use audit::{AuditOutcome, AuditRecord, AuditSink, CallObservation, CallObserver, MAX_ERROR_CHARS, input_digest};
pub use catalog::{Entry, ToolStats};
pub use client_channel::ClientChannel;
pub use context::{CallContext, Caller, CallerDirectory, ProgressSink, Role, SkillScope};
pub use error::{CallError, RegisterError};
pub use input_rounds::{Resume, Round, RoundError};
pub use limits::{Budget, LimitClass, LimitKey, RateLimits, Refusal, Verdict};
pub use names::NameStyle;
pub use operation::Operation;
pub use pages::{DEFAULT_PAGE_SIZE, InvalidCursor};
pub(crate) use pipeline::schema_bug;
pub use pipeline::{failure_kind, refusal_result};
pub use policy::{PolicyError, ToolPattern, ToolPolicy};
pub use provider_news::{CatalogList, ListChange, ProviderNews};
pub use redact::{REDACTED, Redacted, Redaction, SENSITIVE_KEYWORD, Secrets, is_sensitive_key};
pub use resources::{RESOURCE_SCHEME, ResourceError, ResourceProvider};
pub use results::{bounded_json, json_result, output_of, result_text, truncate};
pub use standing::{AgentStop, StopKind};
pub use startup::{DEFAULT_STARTUP_WAIT, Starting};
pub use tool::{Audience, FailureKind, Hints, Origin, Tool, ToolFailure, ToolResult, ToolSpec};
pub use trace::{TraceLink, TraceSink};
pub use typed::{Empty, ToolBuilder};

use catalog::Catalog;

/// Counters over all calls, whichever tool they reached.
#[derive(Debug, Default)]
pub struct RegistryStats {
    pub calls: AtomicU64,
    pub unknown: AtomicU64,
    pub invalid: AtomicU64,
    pub failed: AtomicU64,
    /// Calls running right now.
    pub in_flight: AtomicU64,
}

pub struct Registry {
    catalog: RwLock<Arc<Catalog>>,
    changes: watch::Sender<u64>,
    default_timeout: Duration,
    /// Items per page of a listing (`mcp_page_size`).
    page_size: std::sync::atomic::AtomicUsize,
    pub stats: RegistryStats,
    /// Resource and prompt providers by server name (see `resources`).
    providers: RwLock<BTreeMap<String, Arc<dyn ResourceProvider>>>,
    /// Who is subscribed to which resource (see `subscriptions`).
    subscriptions: subscriptions::Subscriptions,
    /// Multi-round-trip calls parked between their client's rounds (see `input_rounds`).
    input_rounds: input_rounds::InputRounds,
    /// Providers' announcements: resources and lists that changed (see `provider_news`).
    news: provider_news::News,
    /// Pipeline hooks, set once at start. `OnceLock`: reading them on every call takes no lock.
    audit: OnceLock<Arc<dyn AuditSink>>,
    observer: OnceLock<Arc<dyn CallObserver>>,
    approvals: OnceLock<Arc<dyn ApprovalGate>>,
    traces: OnceLock<Arc<dyn TraceSink>>,
    /// The limit stage's buckets; none set: nothing is limited.
    limits: OnceLock<Arc<RateLimits>>,
    /// Replaceable (rarely read: only when work runs later for an agent), so embedders and tests
    /// can put their own directory in place of the identity service.
    directory: RwLock<Option<Arc<dyn CallerDirectory>>>,
    /// Providers still starting, which the first listing waits for (see `startup`).
    startup: Arc<startup::Startup>,
    /// Work running on agents' behalf, and the stream of agents stopped (see `standing`).
    standing: standing::Standing,
}

impl Registry {
    pub fn new(default_timeout: Duration) -> Self {
        let (changes, _) = watch::channel(0);
        Self {
            catalog: RwLock::new(Arc::new(Catalog::default())),
            changes,
            default_timeout,
            page_size: std::sync::atomic::AtomicUsize::new(DEFAULT_PAGE_SIZE),
            stats: RegistryStats::default(),
            providers: RwLock::new(BTreeMap::new()),
            subscriptions: subscriptions::Subscriptions::default(),
            news: provider_news::News::default(),
            input_rounds: input_rounds::InputRounds::default(),
            audit: OnceLock::new(),
            observer: OnceLock::new(),
            approvals: OnceLock::new(),
            traces: OnceLock::new(),
            limits: OnceLock::new(),
            directory: RwLock::new(None),
            startup: Arc::default(),
            standing: standing::Standing::default(),
        }
    }

    /// How many items one page of a listing holds (at least 1).
    pub fn set_page_size(&self, size: usize) {
        self.page_size.store(size.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// One page of a listing (see [`pages`]), at this registry's page size.
    pub fn page<T>(
        &self,
        items: Vec<T>,
        cursor: Option<&str>,
        key: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, Option<String>), InvalidCursor> {
        pages::page(
            items,
            cursor,
            self.page_size.load(std::sync::atomic::Ordering::Relaxed),
            key,
        )
    }

    /// Sends a record of every call from now on to `sink`. Returns false if one was set already.
    pub fn set_audit_sink(&self, sink: Arc<dyn AuditSink>) -> bool {
        self.audit.set(sink).is_ok()
    }

    /// Records something that is not a call (a step of the identity gate: a sign-in, say) in the
    /// audit trail, if audit is on. Like the pipeline's records, it is queued, never waited for.
    pub fn audit_event(&self, record: AuditRecord) {
        if let Some(sink) = self.audit.get() {
            sink.record(record);
        }
    }

    /// Tells `observer` how every call ends from now on. Returns false if one was set already.
    pub fn set_call_observer(&self, observer: Arc<dyn CallObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// The hooks every call's trail reports to (see `pipeline`).
    fn trail_hooks(&self) -> (Option<&dyn AuditSink>, Option<&dyn CallObserver>) {
        (self.audit.get().map(|s| &**s), self.observer.get().map(|o| &**o))
    }

    /// Sends the span tree of every call from now on to `sink`. Returns false if one was set already.
    pub fn set_trace_sink(&self, sink: Arc<dyn TraceSink>) -> bool {
        self.traces.set(sink).is_ok()
    }

    /// Charges every call from now on to `limits`. Returns false if limits were set already.
    pub fn set_rate_limits(&self, limits: Arc<RateLimits>) -> bool {
        self.limits.set(limits).is_ok()
    }

    pub fn rate_limits(&self) -> Option<&Arc<RateLimits>> {
        self.limits.get()
    }

    /// Charges one request by `caller` (from `client`, when known) to `class`'s budget, for what
    /// a front door serves without a call (listings, the sign-in gate). `Ok(None)`: not
    /// limited (no limits set, an ops-admin, or an anonymous caller without an address).
    /// A refusal is counted in the metrics.
    pub fn charge(
        &self,
        caller: &Caller,
        client: Option<std::net::IpAddr>,
        class: LimitClass,
    ) -> Result<Option<Verdict>, Refusal> {
        let Some(limits) = self.limits.get() else {
            return Ok(None);
        };
        if caller.is_admin() {
            return Ok(None);
        }
        let Some(key) = LimitKey::of(caller, client) else {
            return Ok(None);
        };
        limits.charge(class, &key).map(Some).inspect_err(|refusal| {
            if let Some(observer) = self.observer.get() {
                observer.rate_limited(refusal.class);
            }
        })
    }

    /// The limit stage of a call: charges the context's caller and class, and leaves the
    /// verdict where the front door asked for it.
    fn charge_call(&self, ctx: &CallContext) -> Result<(), Refusal> {
        if let Some(verdict) = self.charge(&ctx.caller, ctx.client, ctx.limit_class)?
            && let Some(slot) = &ctx.rate_report
        {
            let _ = slot.set(verdict);
        }
        Ok(())
    }

    /// Holds calls to the tools `gate` requires approval for. Returns false if one was set already.
    pub fn set_approval_gate(&self, gate: Arc<dyn ApprovalGate>) -> bool {
        self.approvals.set(gate).is_ok()
    }

    pub fn approval_gate(&self) -> Option<Arc<dyn ApprovalGate>> {
        self.approvals.get().cloned()
    }

    /// Where work done later on an agent's behalf looks up who that agent is now; replaces the
    /// directory set before.
    pub fn set_directory(&self, directory: Arc<dyn CallerDirectory>) {
        *self.directory.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(directory);
    }

    pub fn directory(&self) -> Option<Arc<dyn CallerDirectory>> {
        self.directory
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How long a call may run when its adapter sets no tighter deadline.
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    fn snapshot(&self) -> Arc<Catalog> {
        // A poisoned lock only means a writer panicked between two complete snapshots.
        self.catalog
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies one change to the tool set atomically and tells every watcher once.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<Arc<str>, Arc<Entry>>) -> Result<T, RegisterError>,
    ) -> Result<T, RegisterError> {
        let mut guard = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let mut tools = guard.tools.clone();
        let outcome = change(&mut tools)?;
        let changed = tools.len() != guard.tools.len()
            || tools
                .iter()
                .zip(guard.tools.iter())
                .any(|((a, ea), (b, eb))| a != b || !Arc::ptr_eq(ea, eb));
        if changed {
            *guard = Arc::new(Catalog::with_tools(tools, guard.personal.clone()));
            drop(guard);
            self.changes.send_modify(|version| *version += 1);
        }
        Ok(outcome)
    }

    /// Adds tools; all or none: a duplicate or invalid tool leaves the registry unchanged.
    pub fn register(&self, tools: Vec<Arc<dyn Tool>>) -> Result<(), RegisterError> {
        let entries = tools
            .into_iter()
            .map(|tool| Entry::new(tool).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(personal) = entries.iter().find(|e| personal::is_personal_name(e.name())) {
            return Err(RegisterError::InvalidName(personal.name().to_string()));
        }
        self.update(|map| {
            for entry in &entries {
                if map.contains_key(entry.name()) {
                    return Err(RegisterError::Duplicate(entry.name().to_string()));
                }
            }
            for entry in entries {
                map.insert(entry.name().clone(), entry);
            }
            Ok(())
        })
    }

    /// Replaces every tool whose name starts with `prefix` (and every alias of one) by `tools`
    /// in one step (a provider re-listing its tools). Tools outside the prefix are refused.
    pub fn replace_prefix(&self, prefix: &str, tools: Vec<Arc<dyn Tool>>) -> Result<(), RegisterError> {
        self.replace_prefix_with_aliases(prefix, tools, Vec::new()).map(drop)
    }

    /// [`Self::replace_prefix`], plus `aliases`: some of the same tools under other names (a
    /// transparent server's own names), each an alias of a tool in the prefix. An alias whose
    /// name another tool holds is left out; the names left out are returned.
    pub fn replace_prefix_with_aliases(
        &self,
        prefix: &str,
        tools: Vec<Arc<dyn Tool>>,
        aliases: Vec<Arc<dyn Tool>>,
    ) -> Result<Vec<String>, RegisterError> {
        let entries = tools
            .into_iter()
            .map(|tool| Entry::new(tool).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let aliases = aliases
            .into_iter()
            .map(|tool| Entry::new(tool).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let alias_of_prefix = |entry: &Entry| entry.tool.alias_of().is_some_and(|of| of.starts_with(prefix));
        self.update(|map| {
            if let Some(outside) = entries
                .iter()
                .find(|e| !e.name().starts_with(prefix) || personal::is_personal_name(e.name()))
            {
                return Err(RegisterError::InvalidName(outside.name().to_string()));
            }
            if let Some(stray) = aliases
                .iter()
                .find(|e| !alias_of_prefix(e) || personal::is_personal_name(e.name()))
            {
                return Err(RegisterError::InvalidName(stray.name().to_string()));
            }
            map.retain(|name, entry| !name.starts_with(prefix) && !alias_of_prefix(entry));
            for entry in entries {
                if map.insert(entry.name().clone(), entry.clone()).is_some() {
                    return Err(RegisterError::Duplicate(entry.name().to_string()));
                }
            }
            let mut left_out = Vec::new();
            for alias in aliases {
                if map.contains_key(alias.name()) {
                    left_out.push(alias.name().to_string());
                } else {
                    map.insert(alias.name().clone(), alias);
                }
            }
            Ok(left_out)
        })
    }

    /// Removes the named tools; returns how many were there.
    pub fn unregister(&self, names: &[&str]) -> usize {
        self.update(|map| Ok(names.iter().filter(|n| map.remove(**n).is_some()).count()))
            .unwrap_or(0)
    }

    /// A receiver whose value changes whenever the tool set does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn len(&self) -> usize {
        self.snapshot().tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A token cancelled when `agent_id` is disabled: work that outlives the call that started it
    /// (a background workflow) runs under it.
    pub fn work_token(&self, agent_id: &str) -> tokio_util::sync::CancellationToken {
        self.standing.work_token(agent_id)
    }

    /// Tells everything that runs for `agent_id` that it was stopped: work under its
    /// `work_token`s is cancelled when it is disabled, and subscribers (held approvals, live MCP
    /// sessions) act on the stop.
    pub fn stop_agent(&self, agent_id: &str, kind: StopKind) {
        tracing::info!(agent = agent_id, ?kind, "agent stopped");
        self.standing.stop(agent_id, kind);
    }

    /// The agents stopped from now on.
    pub fn agent_stops(&self) -> tokio::sync::broadcast::Receiver<AgentStop> {
        self.standing.subscribe()
    }

    /// Every registered tool's name, in name order, whoever may call it.
    pub fn tool_names(&self) -> Vec<String> {
        self.snapshot()
            .tools
            .values()
            .map(|entry| entry.name().to_string())
            .collect()
    }

    /// The tools this caller may use: shared ones in name order, then those it installed.
    /// Denied tools are simply absent.
    pub fn list_for(&self, caller: &Caller) -> Vec<Arc<Entry>> {
        self.snapshot()
            .visible(caller)
            .map(|(entry, _)| entry.clone())
            .collect()
    }

    /// The MCP listing for this caller, with names spelled in the given style.
    pub fn mcp_tools_for(&self, caller: &Caller, style: NameStyle) -> Vec<rmcp::model::Tool> {
        self.snapshot()
            .visible(caller)
            .map(|(entry, strict)| {
                let mut tool = entry.listing.clone();
                if style == NameStyle::Strict
                    && let Some(strict) = strict
                {
                    tool.name = strict.to_string().into();
                }
                tool
            })
            .collect()
    }

    /// Looks a tool up as this caller would see it: by native or strict name, and only if allowed.
    pub fn resolve_for(&self, caller: &Caller, name: &str) -> Option<Arc<Entry>> {
        self.snapshot()
            .resolve_for(caller, name)
            .filter(|entry| entry.visible_to(caller))
            .cloned()
    }

    /// How records of calls to `name` are redacted (see [`Redaction`]): a tool's by its native or
    /// strict name, whoever may call it; anything else (an operation's encoding, a tool gone
    /// since) by key names alone.
    pub fn redaction(&self, name: &str) -> Arc<Redaction> {
        self.snapshot()
            .resolve(name)
            .map(|entry| entry.redaction.clone())
            .unwrap_or_else(Redaction::by_name)
    }

    /// The strict spelling of a registered tool's name.
    pub fn strict_name(&self, native: &str) -> Option<Arc<str>> {
        self.snapshot().strict.strict_of(native).cloned()
    }
}
