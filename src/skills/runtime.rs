//! The sandbox skills run in: wasmtime, one engine per process, a fresh instance per call under
//! fuel, memory, wall-time, host-call and output limits. The only door out is the host
//! interface of `wit/skill.wit` (`call-tool`, `log`), handed to a [`Host`] that the caller
//! supplies (the registry, as the calling agent); WASI is linked to a context that grants
//! nothing (no files, environment, arguments, sockets or input).
//!
//! Calls are async: WebAssembly runs on a fiber on the caller's task and yields to the executor
//! every few milliseconds (epoch ticks), so a long skill never holds a thread; a host call
//! awaits the tool, bounded by the call's wall time. Compiling (`compile`, `prepare`) blocks:
//! run it off the async threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable, Type, Val};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::console::Console;
use super::manifest::{Manifest, SkillLimits};
use super::types;

/// The host interface's name as components import it.
pub const HOST_INTERFACE: &str = "agentos:skill/host@0.1.0";

/// How often the wall clock is checked inside WebAssembly.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What a skill's host calls reach: the registry, as the agent that called the skill.
pub trait Host: Send + Sync {
    /// Calls tool `name` with `input`; answers by `deadline`. `Err` is a message for the skill.
    fn call_tool(&self, name: String, input: Value, deadline: Instant) -> BoxFuture<'_, Result<Value, String>>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SkillError {
    #[error("the component could not be compiled: {0}")]
    Compile(String),
    #[error(
        "the component imports `{0}`, which agentos does not provide: a skill may import only \
         `agentos:skill/host` and the WASI interfaces language runtimes need (not `wasi:http`)"
    )]
    ForbiddenImport(String),
    #[error("the component cannot be linked to what agentos provides: {0}")]
    Link(String),
    #[error("capability `{capability}`: {problem}")]
    Signature { capability: String, problem: String },
    #[error("the skill has no capability `{0}`")]
    NoSuchCapability(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("the skill used all its fuel ({0} units, limits.fuel) and was stopped")]
    Fuel(u64),
    #[error("the skill ran longer than {0} ms (limits.wall_ms) and was stopped")]
    Timeout(u64),
    #[error("the skill asked for more than {0} bytes of memory (limits.memory_bytes) and was stopped")]
    Memory(u64),
    #[error("the skill recursed too deeply (call stack exhausted) and was stopped")]
    StackOverflow,
    #[error("the skill made more than {0} host calls (limits.host_calls) and was stopped")]
    HostCalls(u32),
    #[error("the skill's result is {size} bytes of JSON, more than {max} (limits.output_bytes)")]
    Output { size: usize, max: u64 },
    #[error("the skill failed: {0}")]
    Trapped(String),
    /// The capability answered with its own error (`err` of a `result`).
    #[error("{0}")]
    Failed(String),
    #[error("the skill runtime is unavailable: {0}")]
    Runtime(String),
}

/// One capability: an exported function, with the JSON Schemas of its input and result.
#[derive(Debug, Clone)]
pub struct Capability {
    /// As exported, in kebab-case.
    pub name: String,
    pub input_schema: Value,
    pub output_schema: Value,
    params: Vec<(String, Type)>,
    result: Option<Type>,
}

/// A compiled skill, ready to instantiate.
pub struct LoadedSkill {
    pre: InstancePre<SkillState>,
    pub capabilities: Vec<Capability>,
}

/// What one call's store holds.
pub struct SkillState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: u64,
    memory_denied: bool,
    host: Arc<dyn Host>,
    host_calls_left: u32,
    host_calls_exceeded: bool,
    deadline: Instant,
    timed_out: bool,
    console: Console,
}

impl WasiView for SkillState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for SkillState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_limit {
            self.memory_denied = true;
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The engine, the linker with the host interface, and the clock that stops runaway calls.
pub struct Runtime {
    engine: Engine,
    linker: Linker<SkillState>,
    ticking: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

/// Instances come from pools of ready slots instead of fresh mappings per call: a call's
/// instantiation then costs no `mmap`/`munmap`, and a reused slot's first pages are reset with
/// `memset` and stay resident, so the next call does not fault them in again. The pools only
/// reserve address space; concurrency is bounded by the calls agentos runs at once, far below
/// `SLOTS`.
fn pool(pagemap_scan: bool) -> wasmtime::PoolingAllocationConfig {
    const SLOTS: u32 = 1000;
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(SLOTS)
        // A Python component instantiates 38 core modules (its interpreter, libc, adapters).
        .total_core_instances(SLOTS * 16)
        .total_memories(SLOTS * 2)
        .total_tables(SLOTS * 4)
        .max_core_instances_per_component(128)
        .max_memories_per_component(16)
        .max_tables_per_component(32)
        // The largest memory a manifest may ask for; each call's own limit is enforced by the
        // store's limiter.
        .max_memory_size(usize::try_from(super::manifest::MAX_MEMORY_BYTES).unwrap_or(usize::MAX))
        // Language runtimes have large function tables (CPython: tens of thousands).
        .table_elements(200_000)
        .table_keep_resident(64 * 1024);
    if pagemap_scan {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(64 * 1024 * 1024);
    } else {
        pool.linear_memory_keep_resident(1024 * 1024);
    }
    pool
}

fn config(pool: wasmtime::PoolingAllocationConfig) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(1024 * 1024);
    // Host calls' futures are polled on the fiber too, above the WebAssembly stack.
    config.async_stack_size(4 * 1024 * 1024);
    // Skills use the synchronous component ABI (called with `call_async`, not concurrently):
    // without this, every store carries concurrent-task state, and dropping it formats an
    // error (a captured backtrace, when RUST_BACKTRACE is set) on each call.
    config.concurrency_support(false);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

fn runtime_error(error: impl std::fmt::Display) -> SkillError {
    SkillError::Runtime(error.to_string())
}

impl Runtime {
    pub fn new() -> Result<Self, SkillError> {
        // Dirty pages found with the kernel's PAGEMAP_SCAN (Linux 6.7+) are reset in place and
        // stay resident, so a language runtime's heap is not faulted in again on every call;
        // without it, only the first megabyte is kept (resetting more with memset costs more
        // than the faults it saves).
        let engine = Engine::new(&config(pool(true)))
            .or_else(|_| Engine::new(&config(pool(false))))
            .map_err(runtime_error)?;
        let mut linker: Linker<SkillState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(runtime_error)?;
        let mut host = linker.instance(HOST_INTERFACE).map_err(runtime_error)?;
        host.func_new_async("call-tool", |mut store, _ty, params, results| {
            Box::new(async move {
                let (Some(Val::String(name)), Some(Val::String(input))) = (params.first(), params.get(1)) else {
                    return Err(wasmtime::Error::msg("call-tool: unexpected arguments"));
                };
                let state = store.data_mut();
                if state.host_calls_left == 0 {
                    state.host_calls_exceeded = true;
                    return Err(wasmtime::Error::msg("host call limit reached"));
                }
                state.host_calls_left -= 1;
                let (host, deadline) = (state.host.clone(), state.deadline);
                let answer = match serde_json::from_str::<Value>(input) {
                    Err(error) => Err(format!("input-json is not JSON: {error}")),
                    Ok(input) => host.call_tool(name.clone(), input, deadline).await,
                };
                if Instant::now() >= deadline {
                    store.data_mut().timed_out = true;
                    return Err(wasmtime::Error::msg("wall time reached during a host call"));
                }
                results[0] = Val::Result(match answer {
                    Ok(value) => Ok(Some(Box::new(Val::String(value.to_string())))),
                    Err(message) => Err(Some(Box::new(Val::String(message)))),
                });
                Ok(())
            })
        })
        .map_err(runtime_error)?;
        host.func_new("log", |store, _ty, params, _results| {
            let level = match params.first() {
                Some(Val::Enum(level)) => level.clone(),
                _ => "info".into(),
            };
            let message = match params.get(1) {
                Some(Val::String(message)) => message.as_str(),
                _ => "",
            };
            store.data().console.push(&format!("{level}: {message}\n"));
            Ok(())
        })
        .map_err(runtime_error)?;
        let ticking = Arc::new(AtomicBool::new(true));
        let (clock, running) = (engine.weak(), ticking.clone());
        std::thread::Builder::new()
            .name("agentos-skill-clock".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match clock.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(runtime_error)?;
        Ok(Self {
            engine,
            linker,
            ticking,
        })
    }

    /// Compiles `wasm`, refuses imports agentos does not provide, and finds the capabilities
    /// `manifest` describes among the component's exported functions.
    pub fn load(&self, wasm: &[u8], manifest: &Manifest) -> Result<LoadedSkill, SkillError> {
        self.prepare(&self.compile(wasm)?, manifest)
    }

    /// Compiles `wasm` to machine code (the slow step: seconds for a JavaScript component).
    pub fn compile(&self, wasm: &[u8]) -> Result<Component, SkillError> {
        Component::new(&self.engine, wasm).map_err(|error| SkillError::Compile(format!("{error:#}")))
    }

    /// The compiled form of `component`, to keep on disk.
    pub fn serialize(component: &Component) -> Result<Vec<u8>, SkillError> {
        component.serialize().map_err(runtime_error)
    }

    /// A component compiled earlier by [`Runtime::serialize`]. Fails (and the caller compiles
    /// again) when the file was made by another wasmtime or engine configuration.
    ///
    /// # Safety
    /// The file is loaded as machine code without checks: it must be one this process's
    /// [`Runtime::serialize`] wrote, in a directory nobody else may write to.
    pub unsafe fn deserialize_file(&self, path: &std::path::Path) -> Result<Component, SkillError> {
        // SAFETY: the caller guarantees the file is our own serialized component.
        unsafe { Component::deserialize_file(&self.engine, path) }.map_err(runtime_error)
    }

    /// Checks a compiled component against `manifest` and prepares it for fast instantiation.
    pub fn prepare(&self, component: &Component, manifest: &Manifest) -> Result<LoadedSkill, SkillError> {
        let component_type = component.component_type();
        // Interfaces of the skill's own package that only declare types (records shared by its
        // exports) are imports too; they ask for nothing, so they get an empty instance.
        let mut types_only = Vec::new();
        for (name, item) in component_type.imports(&self.engine) {
            let allowed = name.starts_with("agentos:skill/host@0.1.")
                || (name.starts_with("wasi:") && !name.starts_with("wasi:http/"));
            if allowed {
                continue;
            }
            let declares_only_types = match &item.ty {
                wasmtime::component::types::ComponentItem::ComponentInstance(instance) => instance
                    .exports(&self.engine)
                    .all(|(_, export)| matches!(export.ty, wasmtime::component::types::ComponentItem::Type(_))),
                _ => false,
            };
            if !declares_only_types || name.starts_with("wasi:") || name.starts_with("agentos:") {
                return Err(SkillError::ForbiddenImport(name.to_owned()));
            }
            types_only.push(name.to_owned());
        }
        let mut capabilities = Vec::new();
        for name in manifest.capabilities.keys() {
            let signature = |problem: String| SkillError::Signature {
                capability: name.clone(),
                problem,
            };
            let Some(export) = component_type.get_export(&self.engine, name) else {
                return Err(signature("the component exports no function of that name".into()));
            };
            let wasmtime::component::types::ComponentItem::ComponentFunc(func) = export.ty else {
                return Err(signature("the export is not a function".into()));
            };
            let params: Vec<(String, Type)> = func.params().map(|(n, t)| (n.to_owned(), t)).collect();
            let results: Vec<Type> = func.results().collect();
            for (param, ty) in &params {
                if let Some(what) = types::unsupported(ty) {
                    return Err(signature(format!(
                        "parameter `{param}` is {what}, which has no JSON form"
                    )));
                }
            }
            if let Some(what) = results.iter().find_map(types::unsupported) {
                return Err(signature(format!("the result is {what}, which has no JSON form")));
            }
            let result = results.into_iter().next();
            let output_schema = match &result {
                None => serde_json::json!({"type": "null"}),
                Some(Type::Result(outcome)) => outcome
                    .ok()
                    .as_ref()
                    .map_or(serde_json::json!({"type": "null"}), types::schema),
                Some(ty) => types::schema(ty),
            };
            capabilities.push(Capability {
                name: name.clone(),
                input_schema: types::object(params.iter().map(|(n, t)| (n.as_str(), t.clone()))),
                output_schema,
                params,
                result,
            });
        }
        let link_error = |error: wasmtime::Error| SkillError::Link(format!("{error:#}"));
        let pre = if types_only.is_empty() {
            self.linker.instantiate_pre(component)
        } else {
            let mut linker = self.linker.clone();
            for name in &types_only {
                linker.instance(name).map_err(link_error)?;
            }
            linker.instantiate_pre(component)
        }
        .map_err(link_error)?;
        Ok(LoadedSkill { pre, capabilities })
    }

    /// Runs `capability` of `skill` with `input` (a JSON object, one key per parameter in
    /// camelCase) under `limits`; host calls go to `host`.
    pub async fn call(
        &self,
        skill: &LoadedSkill,
        capability: &str,
        input: &Value,
        limits: &SkillLimits,
        host: Arc<dyn Host>,
    ) -> Result<(Value, String), SkillError> {
        let found = skill
            .capabilities
            .iter()
            .find(|c| c.name == capability)
            .ok_or_else(|| SkillError::NoSuchCapability(capability.to_owned()))?;
        let params: Vec<Val> = types::fields_of(input, &found.params, "")
            .map_err(SkillError::Input)?
            .into_iter()
            .map(|(_, val)| val)
            .collect();
        let started = Instant::now();
        let console = Console::default();
        let state = SkillState {
            // Nothing but a place for its prints: no files, environment, arguments, sockets or
            // name lookup, and stdin at end of file.
            wasi: WasiCtx::builder()
                .stdout(console.stream())
                .stderr(console.stream())
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build(),
            table: ResourceTable::new(),
            memory_limit: limits.memory_bytes,
            memory_denied: false,
            host,
            host_calls_left: limits.host_calls,
            host_calls_exceeded: false,
            deadline: started + Duration::from_millis(limits.wall_ms),
            timed_out: false,
            console,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        store.set_fuel(limits.fuel).map_err(runtime_error)?;
        // Every tick: past the wall deadline, stop; else let other tasks run, then go on.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            let state = context.data_mut();
            if Instant::now() >= state.deadline {
                state.timed_out = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        let outcome = async {
            let instance = skill.pre.instantiate_async(&mut store).await?;
            let func = instance
                .get_func(&mut store, capability)
                .ok_or_else(|| wasmtime::Error::msg("capability not exported"))?;
            let mut results = vec![Val::Bool(false); usize::from(found.result.is_some())];
            func.call_async(&mut store, &params, &mut results).await?;
            Ok::<_, wasmtime::Error>(results)
        }
        .await;
        let state = store.data();
        let results = match outcome {
            Ok(results) => results,
            Err(error) => return Err(classify(&error, state, limits)),
        };
        let log = state.console.text();
        let value = match results.into_iter().next() {
            None => Value::Null,
            Some(Val::Result(Ok(payload))) => payload.as_deref().map_or(Value::Null, types::to_json),
            Some(Val::Result(Err(payload))) => {
                let message = match payload.as_deref().map(types::to_json) {
                    Some(Value::String(text)) => text,
                    Some(other) => other.to_string(),
                    None => format!("capability `{capability}` failed"),
                };
                return Err(SkillError::Failed(message));
            }
            Some(val) => types::to_json(&val),
        };
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |bytes| bytes.len());
        if size as u64 > limits.output_bytes {
            return Err(SkillError::Output {
                size,
                max: limits.output_bytes,
            });
        }
        Ok((value, log))
    }
}

/// Which limit ended a call, from the trap and what the store saw.
fn classify(error: &wasmtime::Error, state: &SkillState, limits: &SkillLimits) -> SkillError {
    if state.memory_denied {
        return SkillError::Memory(limits.memory_bytes);
    }
    if state.host_calls_exceeded {
        return SkillError::HostCalls(limits.host_calls);
    }
    if state.timed_out {
        return SkillError::Timeout(limits.wall_ms);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => SkillError::Fuel(limits.fuel),
        Some(Trap::Interrupt) => SkillError::Timeout(limits.wall_ms),
        Some(Trap::StackOverflow) => SkillError::StackOverflow,
        Some(trap) => SkillError::Trapped(trap.to_string()),
        None => SkillError::Trapped(format!("{error:#}")),
    }
}
