//! The accept loop of `agentos serve`: HTTP/1.1 connections served by hyper, each under the
//! header, idle and (in `bodies`) body deadlines, at most `max_connections` at once (the next is
//! told `503` and closed, so the backlog drains and the ones within the cap, health probes
//! included, are still answered), and a graceful shutdown that lets requests in flight finish.

mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::config::HttpConfig;
use watch::{Activity, Deadline, Tracked, WatchedIo};
pub(super) use watch::{BodyClock, BodyDeadline};

/// Descriptors kept back from the open-file limit for everything but client connections: the
/// database (its file, WAL and shared memory for the writer and each reader), the listener,
/// logs, files the primitives open, outbound requests, upstream servers' pipes and the refusals
/// in progress.
const RESERVED_FDS: u64 = 128;

/// Refusals past the cap that may linger at once (each holds its socket for up to
/// [`REFUSAL_LINGER`]); beyond them a refused connection is closed right after the answer.
const MAX_LINGERING_REFUSALS: usize = 32;
/// How long a refused connection is read and discarded so the client, still writing its request,
/// gets the answer rather than a reset.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The connection limits and the count of open connections, shared by the accept loop and
/// `/health/ready`.
pub struct Connections {
    header_timeout: Duration,
    idle_timeout: Duration,
    body_timeout: Duration,
    max: usize,
    open_file_limit: Option<u64>,
    open: AtomicUsize,
    lingering: AtomicUsize,
}

impl Connections {
    /// The limits of `[http]`, with `max_connections` lowered (and logged) to what
    /// `open_file_limit` leaves room for.
    pub fn new(http: &HttpConfig, open_file_limit: Option<u64>) -> Arc<Self> {
        let max = effective_cap(http.max_connections, open_file_limit);
        if max < http.max_connections {
            tracing::warn!(
                configured = http.max_connections,
                max_connections = max,
                open_file_limit,
                reserved = RESERVED_FDS,
                "http.max_connections lowered to fit the open-file limit"
            );
        } else {
            tracing::info!(max_connections = max, open_file_limit, "connection cap");
        }
        Arc::new(Self {
            header_timeout: Duration::from_secs(http.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            body_timeout: Duration::from_secs(http.body_read_timeout_secs),
            max,
            open_file_limit,
            open: AtomicUsize::new(0),
            lingering: AtomicUsize::new(0),
        })
    }

    /// What `/health/ready` shows ops-admins.
    pub fn report(&self) -> crate::ops::health::Connections {
        crate::ops::health::Connections {
            open_file_limit: self.open_file_limit,
            max_connections: self.max,
            open_connections: self.open.load(Relaxed),
        }
    }

    /// A place for one more connection, unless the cap is reached. Only the accept loop takes
    /// places, so the check and the increment cannot race each other.
    fn admit(self: &Arc<Self>) -> Option<Place> {
        if self.open.load(Relaxed) >= self.max {
            return None;
        }
        self.open.fetch_add(1, Relaxed);
        Some(Place(self.clone()))
    }

    /// Answers a connection past the cap with `503` and closes it.
    fn refuse(self: &Arc<Self>, mut stream: TcpStream) {
        if self.lingering.fetch_add(1, Relaxed) >= MAX_LINGERING_REFUSALS {
            self.lingering.fetch_sub(1, Relaxed);
            // A fresh socket's send buffer holds the whole answer, so this write completes.
            let _ = stream.try_write(refusal());
            return;
        }
        let connections = self.clone();
        tokio::spawn(async move {
            let linger = async {
                stream.write_all(refusal()).await?;
                stream.shutdown().await?;
                let mut discard = [0u8; 2048];
                while stream.read(&mut discard).await? > 0 {}
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
            connections.lingering.fetch_sub(1, Relaxed);
        });
    }
}

/// The cap: as configured, but never more than the open-file limit minus [`RESERVED_FDS`]
/// (and at least half the limit, so a small limit still serves).
fn effective_cap(configured: usize, open_file_limit: Option<u64>) -> usize {
    let Some(limit) = open_file_limit else {
        return configured;
    };
    let room = limit.saturating_sub(RESERVED_FDS).max(limit / 2).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// One open connection, counted until dropped.
struct Place(Arc<Connections>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// The whole answer to a connection past the cap.
fn refusal() -> &'static [u8] {
    static REFUSAL: OnceLock<Vec<u8>> = OnceLock::new();
    REFUSAL.get_or_init(|| {
        let body = serde_json::json!({
            "error": "too_many_connections",
            "message": "the server is at its connection limit (http.max_connections); retry in a second",
        })
        .to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then waits for the open ones
/// to finish their requests (hyper closes each once it is idle).
pub(super) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watch below keeps the header deadline; hyper's would also cut idle connections short.
    builder.header_read_timeout(None);
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        // Streamed (SSE) answers go out in several writes; without TCP_NODELAY, Nagle's algorithm
        // and the client's delayed ACK hold each answer back by ~40 ms.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Some(place) = connections.admit() else {
            tracing::debug!(%remote, "connection refused: at the connection cap");
            connections.refuse(stream);
            continue;
        };
        let activity = Activity::new(
            connections.header_timeout,
            connections.idle_timeout,
            connections.body_timeout,
        );
        let service = service(router.clone(), remote, activity.clone());
        let connection = builder.serve_connection(TokioIo::new(WatchedIo::new(stream, activity.clone())), service);
        let connection = Deadline::new(graceful.watch(connection), activity);
        tokio::spawn(async move {
            let _place = place;
            match connection.await {
                None => tracing::debug!(%remote, "connection closed: no request or no progress in time"),
                Some(Err(error)) => tracing::debug!(%remote, %error, "connection ended with an error"),
                Some(Ok(())) => {}
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The router as a hyper service for one connection: each request carries the client's address
/// (`ConnectInfo`, as `into_make_service_with_connect_info` would put it) and the connection's
/// [`BodyClock`], and is in progress until its response body is dropped.
fn service(
    router: Router,
    remote: SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Tracked>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<Tracked>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request.extensions_mut().insert(BodyClock(activity.clone()));
        let in_progress = activity.begin();
        // A `Router` is always ready, so it is called without `poll_ready`.
        let call = router.clone().call(request);
        async move {
            let response = match call.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| Tracked {
                body,
                _in_progress: in_progress,
            }))
        }
    })
}

/// Connection-level errors (the client went away before we accepted) are routine; others, such
/// as running out of descriptors, are logged and the loop pauses briefly instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_descriptors() {
        assert_eq!(effective_cap(1024, None), 1024);
        assert_eq!(effective_cap(1024, Some(1_048_576)), 1024);
        assert_eq!(effective_cap(1024, Some(512)), 384);
        assert_eq!(effective_cap(1024, Some(256)), 128);
        assert_eq!(effective_cap(1024, Some(100)), 50);
        assert_eq!(effective_cap(20, Some(512)), 20);
    }

    #[test]
    fn the_refusal_is_a_complete_answer() {
        let text = String::from_utf8_lossy(refusal()).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "too_many_connections");
    }
}
