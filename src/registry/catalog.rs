//! The set of registered tools: an immutable snapshot swapped whole on every change, so a call
//! or a listing never waits for a provider that is adding or removing tools.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

use super::Caller;
use super::error::RegisterError;
use super::names::StrictNames;
use super::redact::Redaction;
use super::tool::Tool;

/// Running totals for one tool; the ops endpoints read them.
#[derive(Debug, Default)]
pub struct ToolStats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    pub total_micros: AtomicU64,
}

impl ToolStats {
    pub fn record(&self, failed: bool, micros: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// A tool as the registry holds it: the tool, its validator compiled once, its counters.
pub struct Entry {
    pub tool: Arc<dyn Tool>,
    /// Compiled at registration for schemas from outside (skills, upstream servers), so a bad one
    /// is refused there; on first use for agentos's own, whose schemas a test compiles: most are
    /// never called in a process's life, and a compiled validator is kilobytes of heap.
    validator: OnceLock<Result<Validator, String>>,
    pub stats: ToolStats,
    /// The MCP listing form under the native name, built once.
    pub listing: rmcp::model::Tool,
    /// A hash of `listing` as a client receives it, so list fingerprints compare content
    /// without serializing every tool again (see `listing`).
    pub listing_hash: u64,
    /// Where its sensitive values are, compiled from its schemas once, like the validator.
    pub redaction: Arc<Redaction>,
}

impl Entry {
    /// Whether `caller` may see and call this tool (see [`super::Audience`]). Everything else
    /// treats the tool as nonexistent.
    pub fn visible_to(&self, caller: &super::Caller) -> bool {
        let judged_as = self.tool.alias_of().unwrap_or(self.name());
        self.tool.spec().audience.admits(caller, judged_as)
    }

    pub fn new(tool: Arc<dyn Tool>) -> Result<Self, RegisterError> {
        let spec = tool.spec();
        if !valid_name(&spec.name) {
            return Err(RegisterError::InvalidName(spec.name.to_string()));
        }
        let validator = OnceLock::new();
        if spec.origin != super::Origin::Primitive {
            let compiled = compile(&spec.input_schema).map_err(|message| RegisterError::InvalidSchema {
                tool: spec.name.to_string(),
                message,
            })?;
            let _ = validator.set(Ok(compiled));
        }
        let listing = spec.to_mcp(&spec.name);
        let listing_hash = super::listing::content_hash(&listing);
        let redaction = Arc::new(Redaction::of(spec));
        Ok(Self {
            tool,
            validator,
            stats: ToolStats::default(),
            listing,
            listing_hash,
            redaction,
        })
    }

    /// Whether `input` passes this tool's input schema: the refusal a call with it would get,
    /// so a front door that previews a call can refuse it before anything is confirmed.
    pub fn check_input(&self, input: &Value) -> Result<(), super::CallError> {
        super::pipeline::validate(self, input).map_err(|message| super::CallError::InvalidArguments {
            tool: self.name().to_string(),
            message,
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.tool.spec().name
    }

    /// The validator of the tool's input schema, or why that schema does not compile (only
    /// possible for agentos's own tools, as a bug: `every_primitive_schema_compiles` guards it).
    pub fn validator(&self) -> Result<&Validator, &str> {
        self.validator
            .get_or_init(|| {
                compile(&self.tool.spec().input_schema).inspect_err(|message| {
                    tracing::error!(tool = %self.name(), %message, "a built-in tool's input schema does not compile");
                })
            })
            .as_ref()
            .map_err(|message| message.as_str())
    }
}

fn compile(schema: &serde_json::Map<String, Value>) -> Result<Validator, String> {
    jsonschema::validator_for(&Value::Object(schema.clone())).map_err(|e| e.to_string())
}

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One consistent view of every tool and the strict-name mapping that goes with it.
#[derive(Default)]
pub struct Catalog {
    pub tools: BTreeMap<Arc<str>, Arc<Entry>>,
    pub strict: StrictNames,
    /// The tools each agent installed for itself (see `personal`), by agent id.
    pub personal: HashMap<Arc<str>, Arc<Personal>>,
}

/// The tools one agent installed (skill capabilities): that agent sees and calls them beside
/// the shared ones; nobody else does.
#[derive(Default)]
pub struct Personal {
    pub tools: BTreeMap<Arc<str>, Arc<Entry>>,
    pub strict: StrictNames,
}

impl Catalog {
    pub fn with_tools(tools: BTreeMap<Arc<str>, Arc<Entry>>, personal: HashMap<Arc<str>, Arc<Personal>>) -> Self {
        let strict = StrictNames::build(tools.keys());
        Self {
            tools,
            strict,
            personal,
        }
    }

    /// Finds a shared tool by its native name or, failing that, its strict name. The two name
    /// spaces cannot clash (see `names`), so either spelling reaches exactly one tool.
    pub fn resolve(&self, name: &str) -> Option<&Arc<Entry>> {
        self.tools
            .get(name)
            .or_else(|| self.strict.native_of(name).and_then(|native| self.tools.get(native)))
    }

    /// Finds a tool as `caller` names it: a shared one, else one it installed, by either
    /// spelling. Shared and personal names never clash: only personal names start with
    /// `skill.` (or `skill_`, strictly spelled).
    pub fn resolve_for(&self, caller: &Caller, name: &str) -> Option<&Arc<Entry>> {
        self.resolve(name).or_else(|| {
            let personal = self.personal.get(&*caller.agent_id)?;
            personal.tools.get(name).or_else(|| {
                personal
                    .strict
                    .native_of(name)
                    .and_then(|native| personal.tools.get(native))
            })
        })
    }

    /// The tools `caller` may see, shared ones first, each with its strict spelling.
    pub fn visible<'a>(&'a self, caller: &'a Caller) -> impl Iterator<Item = (&'a Arc<Entry>, Option<&'a Arc<str>>)> {
        let shared = self
            .tools
            .values()
            .map(|entry| (entry, self.strict.strict_of(entry.name())));
        let personal = self.personal.get(&*caller.agent_id).into_iter().flat_map(|personal| {
            personal
                .tools
                .values()
                .map(|entry| (entry, personal.strict.strict_of(entry.name())))
        });
        shared.chain(personal).filter(|(entry, _)| entry.visible_to(caller))
    }
}
