//! The skill sandbox itself (`agentos::skills::runtime`), with the probe skill of
//! `tests/skills/probe` built from source by `scripts/build-skills` (JavaScript, jco).
//!
//! Attacks tried, and the outcome each must have (a clear error for that call; the runtime and
//! the next call unharmed): an infinite loop → fuel; the same with fuel to spare → wall time;
//! allocating past the memory cap → memory; deep recursion → call stack; a result past the
//! output cap → output; more host calls than the cap → host calls. Host calls reach the host
//! with the skill's input and bring its answer back; inputs are checked against the schema
//! generated from the WIT types. At load: a component importing an interface agentos does not
//! provide (`tests/skills/forbidden`), bytes that are no component, and a manifest describing a
//! capability the component does not export are each refused with an error that says so.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use agentos::skills::Manifest;
use agentos::skills::runtime::{Host, LoadedSkill, Runtime, SkillError};
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// The directory `scripts/build-skills` built the skills into.
fn built(name: &str) -> Option<(Vec<u8>, Manifest)> {
    let Some(dir) = std::env::var_os("AGENTOS_TEST_SKILLS") else {
        assert!(
            std::env::var_os("AGENTOS_SKIP_SKILL_BUILDS").is_some(),
            "AGENTOS_TEST_SKILLS is not set: run scripts/install-test-deps and scripts/build-skills, then \
             `. .cache/test-env.sh` before cargo test (scripts/test does all three), or set \
             AGENTOS_SKIP_SKILL_BUILDS=1 to skip these tests"
        );
        return None;
    };
    let dir = std::path::Path::new(&dir).join(name);
    let manifest = Manifest::parse(&std::fs::read_to_string(dir.join("skill.toml")).unwrap()).unwrap();
    Some((std::fs::read(dir.join(&manifest.component)).unwrap(), manifest))
}

/// Answers `agentos.time_now` and records every call.
#[derive(Default)]
struct RecordingHost {
    calls: Mutex<Vec<(String, Value)>>,
}

impl Host for RecordingHost {
    fn call_tool(&self, name: String, input: Value, _deadline: Instant) -> BoxFuture<'_, Result<Value, String>> {
        let answer = match name.as_str() {
            "agentos.time_now" => Ok(json!({"iso": "2026-12-06T00:00:00Z"})),
            other => Err(format!("`{other}` is not a tool this skill may call")),
        };
        self.calls.lock().unwrap().push((name, input));
        Box::pin(std::future::ready(answer))
    }
}

/// One runtime and one compiled probe for all the tests (compiling the 1.6 MB JavaScript
/// component is the slow part); each test has its own host.
struct Loaded {
    runtime: Runtime,
    skill: LoadedSkill,
    manifest: Manifest,
}

static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();

struct Probe {
    loaded: &'static Loaded,
    host: Arc<RecordingHost>,
}

impl Probe {
    fn load() -> Option<Self> {
        let loaded = LOADED
            .get_or_init(|| {
                let (wasm, manifest) = built("probe")?;
                let runtime = Runtime::new().unwrap();
                let skill = runtime.load(&wasm, &manifest).unwrap();
                Some(Loaded {
                    runtime,
                    skill,
                    manifest,
                })
            })
            .as_ref()?;
        Some(Self {
            loaded,
            host: Arc::default(),
        })
    }

    fn call(&self, capability: &str, input: Value) -> Result<Value, SkillError> {
        self.call_with(capability, input, |_| {})
    }

    fn call_with(
        &self,
        capability: &str,
        input: Value,
        adjust: impl FnOnce(&mut agentos::skills::SkillLimits),
    ) -> Result<Value, SkillError> {
        let mut limits = self.loaded.manifest.limits;
        adjust(&mut limits);
        let host: Arc<dyn Host> = self.host.clone();
        // No async runtime needed: the call runs on its own fiber, which any executor can poll.
        futures::executor::block_on(
            self.loaded
                .runtime
                .call(&self.loaded.skill, capability, &input, &limits, host),
        )
        .map(|(value, _log)| value)
    }
}

#[test]
fn capabilities_get_schemas_from_their_wit_types_and_convert_both_ways() {
    let Some(probe) = Probe::load() else { return };
    let greet = probe
        .loaded
        .skill
        .capabilities
        .iter()
        .find(|c| c.name == "greet")
        .unwrap();
    assert_eq!(greet.input_schema["required"], json!(["name", "mood"]));
    assert_eq!(
        greet.input_schema["properties"]["mood"]["enum"],
        json!(["calm", "loud"])
    );
    assert_eq!(greet.output_schema["properties"]["nameLength"]["type"], "integer");
    assert_eq!(greet.output_schema["required"], json!(["text", "nameLength"]));

    let answer = probe.call("greet", json!({"name": "Ada", "mood": "loud"})).unwrap();
    assert_eq!(
        answer,
        json!({"text": "Hello, Ada!", "nameLength": 3, "shout": "HELLO, ADA!"})
    );
    let calm = probe.call("greet", json!({"name": "Ada", "mood": "calm"})).unwrap();
    assert_eq!(calm["shout"], Value::Null);

    let described = probe
        .call(
            "describe",
            json!({"shape": {"circle": 2.5}, "tags": ["a", "b"], "pair": [7, true]}),
        )
        .unwrap();
    assert_eq!(described, json!("circle of radius 2.5 [a,b] 7 true"));
    let dot = probe
        .call("describe", json!({"shape": "dot", "tags": [], "pair": [0, false]}))
        .unwrap();
    assert_eq!(dot, json!("dot [] 0 false"));

    for (input, needle) in [
        (json!({"name": "Ada"}), "`/mood` is required"),
        (json!({"name": "Ada", "mood": "angry"}), "one of calm, loud"),
        (json!({"name": 7, "mood": "calm"}), "`/name` must be a string"),
        (
            json!({"name": "Ada", "mood": "calm", "extra": 1}),
            "`/extra` is not a field",
        ),
    ] {
        let error = probe.call("greet", input).unwrap_err();
        assert!(
            matches!(&error, SkillError::Input(m) if m.contains(needle)),
            "{needle}: {error}"
        );
    }
    let pair = probe.call("describe", json!({"shape": "dot", "tags": [], "pair": [300, true]}));
    assert!(
        matches!(&pair, Err(SkillError::Input(m)) if m.contains("/pair/0")),
        "{pair:?}"
    );
}

#[test]
fn every_limit_ends_only_its_own_call_with_a_clear_error() {
    let Some(probe) = Probe::load() else { return };
    let fuel = probe.call_with("spin", json!({}), |l| l.fuel = 50_000_000).unwrap_err();
    assert_eq!(fuel, SkillError::Fuel(50_000_000));
    assert!(fuel.to_string().contains("limits.fuel"));

    let wall = probe
        .call_with("spin", json!({}), |l| {
            l.fuel = u64::MAX / 2;
            l.wall_ms = 200;
        })
        .unwrap_err();
    assert_eq!(wall, SkillError::Timeout(200));

    let memory = probe
        .call_with("hog", json!({"megabytes": 64}), |l| l.memory_bytes = 16 * 1024 * 1024)
        .unwrap_err();
    assert_eq!(memory, SkillError::Memory(16 * 1024 * 1024), "{memory}");

    let deep = probe.call("recurse", json!({"depth": 10_000_000})).unwrap_err();
    assert_eq!(deep, SkillError::StackOverflow);

    let output = probe
        .call_with("big-output", json!({"bytes": 5000}), |l| l.output_bytes = 1000)
        .unwrap_err();
    assert_eq!(output, SkillError::Output { size: 5002, max: 1000 });

    let calls = probe
        .call_with("call-many", json!({"times": 10}), |l| l.host_calls = 3)
        .unwrap_err();
    assert_eq!(calls, SkillError::HostCalls(3));
    assert_eq!(
        probe.host.calls.lock().unwrap().len(),
        3,
        "the fourth call never reached the host"
    );

    // After all that, the same runtime and skill still serve.
    let fine = probe.call("greet", json!({"name": "again", "mood": "calm"})).unwrap();
    assert_eq!(fine["text"], "Hello, again!");
    assert_eq!(probe.call("recurse", json!({"depth": 100})).unwrap(), json!(100));
}

#[test]
fn host_calls_reach_the_host_and_errors_come_back_as_tool_errors() {
    let Some(probe) = Probe::load() else { return };
    let time = probe
        .call(
            "call",
            json!({"tool": "agentos.time_now", "inputJson": "{\"zone\":\"UTC\"}"}),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(time.as_str().unwrap()).unwrap()["iso"],
        "2026-12-06T00:00:00Z"
    );
    assert_eq!(
        probe.host.calls.lock().unwrap()[0],
        ("agentos.time_now".to_owned(), json!({"zone": "UTC"}))
    );
    let refused = probe
        .call("call", json!({"tool": "agentos.fs_read", "inputJson": "{}"}))
        .unwrap_err();
    assert_eq!(
        refused,
        SkillError::Failed("`agentos.fs_read` is not a tool this skill may call".into())
    );
    let failed = probe.call("fail", json!({"message": "no such page"})).unwrap_err();
    assert_eq!(failed, SkillError::Failed("no such page".into()));
}

#[test]
fn what_the_sandbox_cannot_provide_is_refused_when_the_skill_is_loaded() {
    let Some((wasm, manifest)) = built("forbidden") else {
        return;
    };
    let runtime = Runtime::new().unwrap();
    let refused = runtime
        .load(&wasm, &manifest)
        .err()
        .expect("a forbidden import is refused");
    assert_eq!(
        refused,
        SkillError::ForbiddenImport("agentos-test:forbidden/raw-socket".into())
    );
    assert!(refused.to_string().contains("agentos:skill/host"), "{refused}");

    let garbage = runtime.load(b"\0asm not really a component", &manifest).err().unwrap();
    assert!(matches!(garbage, SkillError::Compile(_)), "{garbage}");

    // A capability the manifest describes but the component does not export.
    let Some((probe, mut described)) = built("probe") else {
        return;
    };
    described.capabilities.insert(
        "teleport".into(),
        agentos::skills::CapabilityManifest {
            description: "Not there.".into(),
            read_only: false,
        },
    );
    let missing = runtime.load(&probe, &described).err().unwrap();
    assert!(
        matches!(&missing, SkillError::Signature { capability, .. } if capability == "teleport"),
        "{missing}"
    );
}
