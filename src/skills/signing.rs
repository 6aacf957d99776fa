//! Publisher signatures: an ed25519 signature over a skill's identity (slug, version) and the
//! digests of its component and manifest, checked at publish against the keys an operator
//! trusts (`skills.trusted_keys`). A signed skill is recorded with the name of the key that
//! verified it; with `skills.require_signatures` an unsigned one is refused.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use sha2::{Digest, Sha256};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The file beside `skill.toml` that holds a skill's signature (base64), written by
/// `agentos skills sign` and read by `agentos skills publish`.
pub const SIGNATURE_FILE: &str = "skill.sig";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("the signature is not base64 of a 64-byte ed25519 signature")]
    BadSignature,
    #[error("the signature does not verify against any key in skills.trusted_keys")]
    Untrusted,
    #[error("this agentos requires signed skills (skills.require_signatures): sign it with `agentos skills sign`")]
    Unsigned,
    #[error("the signing key file is not a base64 ed25519 secret key (32 bytes)")]
    BadSecret,
}

pub use crate::config::TrustedKey;

/// What is signed: the skill's slug and version and the SHA-256 of its component and of its
/// manifest's text, one per line after a fixed tag.
pub fn message(slug: &str, version: &str, component_sha256: &str, manifest_text: &str) -> Vec<u8> {
    let manifest_sha256 = hex::encode(Sha256::digest(manifest_text.as_bytes()));
    format!("agentos-skill-signature-v1\n{slug}\n{version}\n{component_sha256}\n{manifest_sha256}\n").into_bytes()
}

/// Checks `signature` (base64) on `message` against `trusted`; returns the name of the key that
/// verified it.
pub fn verify(trusted: &[TrustedKey], signature: &str, message: &[u8]) -> Result<String, SigningError> {
    let bytes: [u8; 64] = BASE64
        .decode(signature.trim())
        .map_err(|_| SigningError::BadSignature)?
        .try_into()
        .map_err(|_| SigningError::BadSignature)?;
    let signature = Signature::from_bytes(&bytes);
    trusted
        .iter()
        .find(|trusted| trusted.key.verify(message, &signature).is_ok())
        .map(|trusted| trusted.name.clone())
        .ok_or(SigningError::Untrusted)
}

/// A new key pair: the secret key and the public key, each base64.
pub fn generate() -> (String, String) {
    let mut seed = [0u8; 32];
    // The operating system's generator; failing it is a broken machine, not a user error.
    getrandom::fill(&mut seed).expect("the operating system's random number generator failed");
    let key = SigningKey::from_bytes(&seed);
    (
        BASE64.encode(key.to_bytes()),
        BASE64.encode(key.verifying_key().to_bytes()),
    )
}

/// Signs `message` with a secret key (base64); the signature in base64.
pub fn sign(secret: &str, message: &[u8]) -> Result<String, SigningError> {
    let bytes: [u8; 32] = BASE64
        .decode(secret.trim())
        .map_err(|_| SigningError::BadSecret)?
        .try_into()
        .map_err(|_| SigningError::BadSecret)?;
    Ok(BASE64.encode(SigningKey::from_bytes(&bytes).sign(message).to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_its_exact_skill() {
        let (secret, public) = generate();
        let (_, other_public) = generate();
        let trusted = vec![
            TrustedKey::parse(&format!("other:{other_public}")).unwrap(),
            TrustedKey::parse(&format!("acme:{public}")).unwrap(),
        ];
        let signed = message("page-links", "1.0.0", &"a".repeat(64), "slug = \"page-links\"");
        let signature = sign(&secret, &signed).unwrap();
        assert_eq!(verify(&trusted, &signature, &signed), Ok("acme".to_owned()));
        let changed = message("page-links", "1.0.0", &"a".repeat(64), "slug = \"page-links\"\n");
        assert_eq!(verify(&trusted, &signature, &changed), Err(SigningError::Untrusted));
        assert_eq!(verify(&trusted[..1], &signature, &signed), Err(SigningError::Untrusted));
        assert_eq!(
            verify(&trusted, "not base64!", &signed),
            Err(SigningError::BadSignature)
        );
        assert!(TrustedKey::parse("acme:short").is_err());
        assert!(TrustedKey::parse(&public).unwrap().name.starts_with("key "));
        assert_eq!(sign("nope", &signed), Err(SigningError::BadSecret));
    }
}
