//! Request bodies in transit, read in full before a route sees them: each must arrive within
//! `body_read_timeout_secs` (else `408`), stay within `max_body_bytes` (else `413`), and one
//! caller may have at most `max_body_bytes_in_flight_per_caller` bytes of them arriving at once
//! (else `503` with `Retry-After`, before a byte is read), so a few slow senders cannot hold the
//! server's memory. Runs after authentication, which says who the caller is.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use dashmap::DashMap;
use http_body_util::BodyExt;

use super::conn::{BodyClock, BodyDeadline};
use super::{auth, error_response, layers};
use crate::config::HttpConfig;
use crate::identity::Authenticated;

/// Who a budget belongs to: the authenticated agent, else the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CallerKey {
    Agent(Arc<str>),
    Address(IpAddr),
    Unknown,
}

/// The limits and the bytes each caller has in transit.
pub(super) struct Bodies {
    timeout: Duration,
    max: usize,
    budget: usize,
    /// Hashed with foldhash: this is touched twice per request with a body, and SipHash showed
    /// in profiles. Its seed is random per process.
    in_transit: DashMap<CallerKey, usize, foldhash::fast::RandomState>,
}

impl Bodies {
    pub fn new(http: &HttpConfig) -> Arc<Self> {
        Arc::new(Self {
            timeout: Duration::from_secs(http.body_read_timeout_secs),
            max: http.max_body_bytes,
            budget: http.max_body_bytes_in_flight_per_caller,
            in_transit: DashMap::default(),
        })
    }

    /// The same limits, but bodies of up to `max` bytes (and a budget that fits one).
    pub fn with_max(http: &HttpConfig, max: usize) -> Arc<Self> {
        Arc::new(Self {
            timeout: Duration::from_secs(http.body_read_timeout_secs),
            max,
            budget: http.max_body_bytes_in_flight_per_caller.max(max),
            in_transit: DashMap::default(),
        })
    }
}

/// Bytes counted against a caller's budget, given back when dropped (the body arrived, or the
/// request was abandoned).
struct Reservation<'a> {
    bodies: &'a Bodies,
    key: CallerKey,
    held: usize,
}

impl Reservation<'_> {
    /// Counts `bytes` more, unless that would pass the budget.
    fn grow(&mut self, bytes: usize) -> bool {
        let mut entry = self.bodies.in_transit.entry(self.key.clone()).or_insert(0);
        if entry.saturating_add(bytes) > self.bodies.budget {
            return false;
        }
        *entry += bytes;
        self.held += bytes;
        true
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held == 0 {
            return;
        }
        // One step: give the bytes back, and forget the caller once it has none in transit.
        self.bodies.in_transit.remove_if_mut(&self.key, |_, in_transit| {
            *in_transit = in_transit.saturating_sub(self.held);
            *in_transit == 0
        });
    }
}

fn caller_key(extensions: &axum::http::Extensions) -> CallerKey {
    if let Some(found) = extensions.get::<Arc<Authenticated>>() {
        return CallerKey::Agent(found.caller.agent_id.clone());
    }
    auth::client_of(extensions).map_or(CallerKey::Unknown, CallerKey::Address)
}

/// Runs the route: requests without a body pass untouched; others reach it with their body read
/// in full. Called by authentication (not a layer of its own: each layer costs every request a
/// service clone and a boxed future), which has put the caller in the request's extensions.
pub(super) async fn read_in_full(bodies: &Bodies, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = declared.is_none() && headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && declared.unwrap_or(0) == 0 {
        return next.run(request).await;
    }
    let mut reservation = Reservation {
        bodies,
        key: caller_key(request.extensions()),
        held: 0,
    };
    // `layers::refuse_large_bodies` already refused declared lengths over the cap.
    if let Some(length) = declared
        && !reservation.grow(usize::try_from(length).unwrap_or(usize::MAX))
    {
        return over_budget(bodies);
    }
    let (parts, body) = request.into_parts();
    let read = read_counted(body, bodies.max, declared.is_none().then_some(&mut reservation));
    let outcome = tokio::select! {
        biased;
        read = read => Some(read),
        () = BodyTimer::start(&parts.extensions, bodies.timeout) => None,
    };
    let bytes = match outcome {
        Some(Ok(bytes)) => bytes,
        Some(Err(Unread::TooLarge(rest))) => {
            drop(reservation);
            layers::drain(rest).await;
            return layers::too_large(bodies.max);
        }
        Some(Err(Unread::OverBudget)) => return over_budget(bodies),
        Some(Err(Unread::Broken)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            );
        }
        None => return timed_out(bodies.timeout),
    };
    drop(reservation);
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// When a body must have arrived: kept by the connection's own timer when the request came
/// through agentos's accept loop (no timer per body), else by a timer of its own.
enum BodyTimer {
    Connection(BodyDeadline),
    Own(Pin<Box<tokio::time::Sleep>>),
}

impl BodyTimer {
    fn start(extensions: &axum::http::Extensions, timeout: Duration) -> Self {
        match extensions.get::<BodyClock>() {
            Some(clock) => BodyTimer::Connection(clock.start()),
            None => BodyTimer::Own(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl Future for BodyTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut() {
            BodyTimer::Connection(deadline) => Pin::new(deadline).poll(cx),
            BodyTimer::Own(sleep) => sleep.as_mut().poll(cx),
        }
    }
}

enum Unread {
    /// Past the cap: the rest, to drain.
    TooLarge(Body),
    OverBudget,
    /// The client went away or broke the framing.
    Broken,
}

/// The whole body, at most `max` bytes; a body of undeclared length counts against `reservation`
/// frame by frame as it arrives.
async fn read_counted(
    mut body: Body,
    max: usize,
    mut reservation: Option<&mut Reservation<'_>>,
) -> Result<Bytes, Unread> {
    let mut bytes: Option<Bytes> = None;
    let mut joined = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| Unread::Broken)?.into_data() else {
            continue;
        };
        let so_far = bytes.as_ref().map_or(0, Bytes::len) + joined.len();
        if so_far + data.len() > max {
            return Err(Unread::TooLarge(body));
        }
        if let Some(reservation) = reservation.as_deref_mut()
            && !reservation.grow(data.len())
        {
            return Err(Unread::OverBudget);
        }
        // Most bodies arrive in one frame: keep it as it is rather than copy it.
        match bytes.take() {
            None if joined.is_empty() => bytes = Some(data),
            first => {
                if let Some(first) = first {
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(bytes.unwrap_or_else(|| Bytes::from(joined)))
}

/// Refusals that leave the body unread end the connection: what the client still sends is not
/// waited for.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn over_budget(bodies: &Bodies) -> Response {
    let mut response = closing(error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_bodies_in_flight",
        &format!(
            "this caller already has request bodies arriving, and this one would take it past {} bytes in \
             transit at once (http.max_body_bytes_in_flight_per_caller); retry once they have arrived",
            bodies.budget
        ),
    ));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn timed_out(timeout: Duration) -> Response {
    closing(error_response(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        &format!(
            "the request body did not arrive in full within {} s (http.body_read_timeout_secs)",
            timeout.as_secs()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(budget: usize) -> Bodies {
        Bodies {
            timeout: Duration::from_secs(1),
            max: 4,
            budget,
            in_transit: DashMap::default(),
        }
    }

    #[test]
    fn a_budget_is_shared_by_a_caller_s_bodies_and_given_back() {
        let bodies = bodies(10);
        let agent = CallerKey::Agent("a".into());
        let mut first = Reservation {
            bodies: &bodies,
            key: agent.clone(),
            held: 0,
        };
        assert!(first.grow(6));
        let mut second = Reservation {
            bodies: &bodies,
            key: agent.clone(),
            held: 0,
        };
        assert!(!second.grow(5));
        let mut other = Reservation {
            bodies: &bodies,
            key: CallerKey::Address([127, 0, 0, 1].into()),
            held: 0,
        };
        assert!(other.grow(5));
        drop(first);
        assert!(second.grow(5));
        drop((second, other));
        assert!(bodies.in_transit.is_empty());
    }

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_cap() {
        let read = read_counted(Body::from("abcd"), 4, None).await;
        assert!(matches!(read, Ok(bytes) if bytes == "abcd"));
        let read = read_counted(Body::from("abcde"), 4, None).await;
        assert!(matches!(read, Err(Unread::TooLarge(_))));
        let bodies = bodies(3);
        let mut reservation = Reservation {
            bodies: &bodies,
            key: CallerKey::Unknown,
            held: 0,
        };
        let read = read_counted(Body::from("abcd"), 4, Some(&mut reservation)).await;
        assert!(matches!(read, Err(Unread::OverBudget)));
    }
}
