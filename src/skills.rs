//! Skills: published, versioned WebAssembly components whose exported functions become the
//! tools `skill.<slug>.<capability>`. This part owns the manifest format (`skill.toml`), the
//! library of published components on disk and, with the `skills` feature, the sandboxed runtime
//! (wasmtime) and the mapping between WIT types and JSON. The catalog and per-agent installs are
//! in the store.

pub mod capability;
#[cfg(feature = "skills")]
pub mod console;
pub mod library;
pub mod manifest;
#[cfg(feature = "skills")]
pub mod runtime;
#[cfg(feature = "skills")]
pub mod sandbox;
pub mod service;
pub mod signing;
#[cfg(feature = "skills")]
pub mod tool;
pub mod tools;
#[cfg(feature = "skills")]
pub mod types;

pub use manifest::{CapabilityManifest, Manifest, ManifestError, SkillLimits, SkillPermissions};
pub use service::{Installed, Published, Skills, SkillsError};
