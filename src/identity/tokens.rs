//! Bearer tokens: HS256 JWTs signed with the server's key, verified with the algorithm pinned,
//! checked against revocations and the agent's current state, and cached once verified so the
//! hot path of an authenticated request is one map lookup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::{AuthError, IdentityError};
use super::types::Authenticated;

/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 5;
/// Past this many cached tokens the cache starts over rather than grow without bound.
const CACHE_LIMIT: usize = 10_000;
/// A cached verification is redone after this long, so a revocation or a disabled agent made by
/// another process sharing the store takes effect here too, within this delay.
const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// The claims every token carries; all are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies tokens with one HS256 key and one issuer.
pub(crate) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_secs: i64,
}

impl Signer {
    pub(crate) fn new(key: &[u8], issuer: &str, ttl_days: u32) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_owned(),
            ttl_secs: i64::from(ttl_days) * 86_400,
        }
    }

    /// Claims for a new token of `agent_id`. `iat` is never before `valid_after_ms`: a token
    /// minted right after a revocation (in the same second) must outlive it.
    pub(crate) fn claims(&self, agent_id: &str, now_ms: i64, valid_after_ms: i64) -> Claims {
        let iat = now_ms.div_euclid(1000).max(ceil_div(valid_after_ms, 1000));
        Claims {
            iss: self.issuer.clone(),
            sub: agent_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat,
            exp: iat + self.ttl_secs,
        }
    }

    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, IdentityError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| IdentityError::internal(format!("cannot sign a token: {e}")))
    }

    /// Checks shape, algorithm, signature, expiry and issuer; revocation and the agent are the
    /// caller's business.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        check_algorithm(token)?;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    AuthError::WrongAlgorithm
                }
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
                _ => AuthError::Malformed,
            })
    }
}

fn ceil_div(value: i64, by: i64) -> i64 {
    value.div_euclid(by) + i64::from(value.rem_euclid(by) != 0)
}

/// Reads the header's `alg` before anything else: `none`, RS*/ES* and other HMAC sizes are
/// refused as a wrong algorithm, whatever the rest of the token says.
fn check_algorithm(token: &str) -> Result<(), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    match header.get("alg").and_then(serde_json::Value::as_str) {
        Some("HS256") => Ok(()),
        Some(_) => Err(AuthError::WrongAlgorithm),
        None => Err(AuthError::Malformed),
    }
}

/// Verified tokens, keyed by the token string. Any revocation or agent change clears it all:
/// those are rare, and clearing is simpler to get right than finding the affected entries.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: DashMap<String, Cached>,
}

struct Cached {
    auth: Arc<Authenticated>,
    exp_ms: i64,
    checked: Instant,
}

impl TokenCache {
    /// The cached verification of `token`, unless it expired or is due for a recheck.
    pub(crate) fn get(&self, token: &str, now_ms: i64) -> Option<Arc<Authenticated>> {
        let entry = self.entries.get(token)?;
        let expired = now_ms >= entry.exp_ms + LEEWAY_SECS as i64 * 1000;
        if expired || entry.checked.elapsed() > RECHECK_AFTER {
            drop(entry);
            self.entries.remove(token);
            return None;
        }
        Some(entry.auth.clone())
    }

    pub(crate) fn insert(&self, token: &str, auth: Arc<Authenticated>, exp_ms: i64) {
        if self.entries.len() >= CACHE_LIMIT {
            self.entries.clear();
        }
        let checked = Instant::now();
        self.entries.insert(token.to_owned(), Cached { auth, exp_ms, checked });
    }

    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&[7u8; 32], "agentos", 90)
    }

    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        let signer = signer();
        let claims = signer.claims("bot", 1_700_000_000_500, 0);
        assert_eq!(claims.iat, 1_700_000_000);
        assert_eq!(claims.exp - claims.iat, 90 * 86_400);
        let now = chrono::Utc::now().timestamp_millis();
        let claims = signer.claims("bot", now, 0);
        let token = signer.sign(&claims).unwrap();
        assert_eq!(signer.verify(&token).unwrap(), claims);
    }

    #[test]
    fn iat_never_precedes_a_revocation() {
        let claims = signer().claims("bot", 1_000_100, 1_000_300);
        assert_eq!(claims.iat, 1_001);
        let claims = signer().claims("bot", 1_000_100, 1_000_000);
        assert_eq!(claims.iat, 1_000);
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "a", "a.b", "a.b.c.d", "!!.b.c", "e30.e30.sig"] {
            assert_eq!(signer().verify(token), Err(AuthError::Malformed), "{token:?}");
        }
    }
}
