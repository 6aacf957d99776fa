//! Skills: published, versioned WebAssembly components whose exported functions become the
//! tools `skill.<slug>.<capability>`. This part owns the manifest format (`skill.toml`); the
//! sandboxed runtime, the catalog and per-agent installs build on it.

pub mod manifest;

pub use manifest::{CapabilityManifest, Manifest, ManifestError, SkillLimits, SkillPermissions};
