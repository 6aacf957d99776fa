//! Rate limits: one token bucket per caller and route class, refilled continuously. A refused
//! request gets 429 with `Retry-After`; every limited response carries `X-RateLimit-*` headers.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use dashmap::DashMap;

use super::error_response;
use crate::config::{RateLimit, RateLimitConfig};

/// Buckets idle this long are full again and can be forgotten.
const IDLE_FORGET: Duration = Duration::from_secs(600);
/// Past this many buckets, idle ones are swept on the next insert.
const SWEEP_ABOVE: usize = 10_000;

/// What a request is charged against; each class has its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum RouteClass {
    /// `/mcp`: tool calls and the other MCP messages.
    Mcp,
    /// Sign-up, sign-in, password reset, registration: keyed by client address.
    Auth,
    /// Every other authenticated route.
    Api,
}

impl RouteClass {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            RouteClass::Mcp => "mcp",
            RouteClass::Auth => "auth",
            RouteClass::Api => "api",
        }
    }
}

/// The state of one bucket after a request was charged (or refused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the next request would be allowed (0 when one is allowed now).
    pub retry_after_secs: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

pub(super) struct RateLimiter {
    config: RateLimitConfig,
    buckets: DashMap<(RouteClass, String), Bucket>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: DashMap::new(),
        }
    }

    fn rule(&self, class: RouteClass) -> RateLimit {
        match class {
            RouteClass::Mcp => self.config.mcp,
            RouteClass::Auth => self.config.auth,
            RouteClass::Api => self.config.api,
        }
    }

    /// Charges one request by `key` to `class`'s bucket.
    pub fn check(&self, class: RouteClass, key: &str) -> Verdict {
        self.check_at(class, key, Instant::now())
    }

    fn check_at(&self, class: RouteClass, key: &str, now: Instant) -> Verdict {
        let rule = self.rule(class);
        let capacity = f64::from(rule.burst.max(1));
        let per_sec = f64::from(rule.per_minute) / 60.0;
        if self.buckets.len() > SWEEP_ABOVE {
            self.buckets
                .retain(|_, bucket| now.duration_since(bucket.refilled) < IDLE_FORGET);
        }
        let mut bucket = self.buckets.entry((class, key.to_owned())).or_insert_with(|| Bucket {
            tokens: capacity,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.refilled = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let seconds_for = |tokens: f64| -> u64 {
            if tokens <= 0.0 {
                0
            } else {
                (tokens / per_sec).ceil() as u64
            }
        };
        Verdict {
            allowed,
            limit: rule.burst.max(1),
            remaining: bucket.tokens.floor() as u32,
            retry_after_secs: if allowed {
                0
            } else {
                seconds_for(1.0 - bucket.tokens).max(1)
            },
            reset_secs: seconds_for(capacity - bucket.tokens),
        }
    }

    /// The 429 for a refused request.
    pub fn refusal(class: RouteClass, verdict: &Verdict) -> Response {
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!(
                "too many {} requests; retry after {} s",
                class.as_str(),
                verdict.retry_after_secs
            ),
        );
        let headers = response.headers_mut();
        headers.insert("retry-after", HeaderValue::from(verdict.retry_after_secs));
        Self::annotate(headers, verdict);
        response
    }

    pub fn annotate(headers: &mut HeaderMap, verdict: &Verdict) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(verdict.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset_secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        let rule = RateLimit { per_minute, burst };
        RateLimiter::new(RateLimitConfig {
            enabled: true,
            mcp: rule,
            api: rule,
            auth: rule,
        })
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let limiter = limiter(60, 3);
        let start = Instant::now();
        for remaining in [2, 1, 0] {
            let verdict = limiter.check_at(RouteClass::Api, "a", start);
            assert!(verdict.allowed);
            assert_eq!(verdict.remaining, remaining);
        }
        let refused = limiter.check_at(RouteClass::Api, "a", start);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1, "one token per second");
        assert_eq!(refused.reset_secs, 3);
        assert!(
            limiter
                .check_at(RouteClass::Api, "a", start + Duration::from_millis(1001))
                .allowed
        );
    }

    #[test]
    fn callers_and_classes_have_their_own_buckets() {
        let limiter = limiter(1, 1);
        let now = Instant::now();
        assert!(limiter.check_at(RouteClass::Api, "a", now).allowed);
        assert!(!limiter.check_at(RouteClass::Api, "a", now).allowed);
        assert!(limiter.check_at(RouteClass::Api, "b", now).allowed);
        assert!(limiter.check_at(RouteClass::Mcp, "a", now).allowed);
        let refused = limiter.check_at(RouteClass::Api, "a", now);
        assert_eq!(refused.retry_after_secs, 60);
    }
}
