//! The deadlines of one connection. hyper's own `header_read_timeout` starts whenever it waits
//! for a request head, the idle wait between kept-alive requests included, so it cannot give an
//! idle connection longer than a slow request head. This watch tells the two apart: the head
//! deadline runs from the connection's start or from the first byte of a later request, the idle
//! deadline from the end of the last response, and neither while a request is in progress (its
//! response still streaming included). Every change happens while the connection's own task
//! polls it (reads, the service and the response body all run inside hyper's dispatcher), so
//! [`Deadline`] sees each one right after the poll that made it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use futures::task::AtomicWaker;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// No deadline: a request is in progress.
const NONE: u64 = u64::MAX;

/// What one connection is doing, as far as its deadlines care.
pub(super) struct Activity {
    started: Instant,
    header_ms: u64,
    idle_ms: u64,
    body_ms: u64,
    /// Requests whose response has not been sent in full (at most one at a time on HTTP/1.1).
    active: AtomicU32,
    /// Bytes of a request head have arrived (or the connection is new) and no request began.
    reading_head: AtomicBool,
    /// Milliseconds from `started` when the connection is closed, or [`NONE`].
    deadline_ms: AtomicU64,
    /// Milliseconds from `started` by which the body being read must have arrived, or [`NONE`].
    body_deadline_ms: AtomicU64,
    /// The body being read missed its deadline; its reader answers 408.
    body_expired: AtomicBool,
    body_reader: AtomicWaker,
}

impl Activity {
    /// A new connection: it owes a request head within the header timeout.
    pub fn new(header: Duration, idle: Duration, body: Duration) -> Arc<Self> {
        let header_ms = millis(header);
        Arc::new(Self {
            started: Instant::now(),
            header_ms,
            idle_ms: millis(idle),
            body_ms: millis(body),
            active: AtomicU32::new(0),
            reading_head: AtomicBool::new(true),
            deadline_ms: AtomicU64::new(header_ms),
            body_deadline_ms: AtomicU64::new(NONE),
            body_expired: AtomicBool::new(false),
            body_reader: AtomicWaker::new(),
        })
    }

    /// Tells the body reader its time is up, if it is.
    fn expire_body(&self, now_ms: u64) {
        if now_ms >= self.body_deadline_ms.load(Relaxed) {
            self.body_expired.store(true, Relaxed);
            self.body_reader.wake();
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// A request head arrived: no deadline until its response is sent.
    pub fn begin(self: &Arc<Self>) -> InProgress {
        self.active.fetch_add(1, Relaxed);
        self.reading_head.store(false, Relaxed);
        self.deadline_ms.store(NONE, Relaxed);
        InProgress(self.clone())
    }

    fn end(&self) {
        if self.active.fetch_sub(1, Relaxed) == 1 {
            self.deadline_ms
                .store(self.now_ms().saturating_add(self.idle_ms), Relaxed);
        }
    }

    /// Bytes arrived: on an idle connection they start the next request's head.
    fn bytes_arrived(&self) {
        if self.active.load(Relaxed) == 0 && !self.reading_head.load(Relaxed) {
            self.reading_head.store(true, Relaxed);
            self.deadline_ms
                .store(self.now_ms().saturating_add(self.header_ms), Relaxed);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NONE - 1)
}

/// The body deadline of the request in progress on a connection, kept by the connection's own
/// timer so that reading a body arms no timer of its own. A request extension.
#[derive(Clone)]
pub struct BodyClock(pub(super) Arc<Activity>);

impl BodyClock {
    /// Starts the body deadline (`body_read_timeout_secs` from now); the returned future
    /// resolves once it has passed.
    pub fn start(&self) -> BodyDeadline {
        let activity = &self.0;
        activity.body_expired.store(false, Relaxed);
        activity
            .body_deadline_ms
            .store(activity.now_ms().saturating_add(activity.body_ms), Relaxed);
        BodyDeadline(activity.clone())
    }
}

/// Resolves when the body being read has missed its deadline; dropping it ends the deadline.
pub struct BodyDeadline(Arc<Activity>);

impl Future for BodyDeadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.body_reader.register(cx.waker());
        if self.0.body_expired.load(Relaxed) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for BodyDeadline {
    fn drop(&mut self) {
        self.0.body_deadline_ms.store(NONE, Relaxed);
        self.0.body_expired.store(false, Relaxed);
    }
}

/// Held from a request's head until its response body is dropped (sent or abandoned).
pub(super) struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body that keeps its request in progress while it streams.
pub(super) struct Tracked {
    pub body: Body,
    pub _in_progress: InProgress,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the activity when bytes arrive.
pub(super) struct WatchedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl WatchedIo {
    pub fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Self { stream, activity }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Runs a connection until it ends (`Some`) or passes its deadline (`None`, and dropping it
/// closes the socket).
///
/// The timer is never moved per request: moving a tokio timer takes the timer wheel's lock and,
/// when it becomes the earliest, wakes the driver, which at tens of thousands of requests a
/// second was a measurable share of a call. Instead it stays armed no later than any deadline
/// the connection can still get (a new deadline is always at least the shorter timeout away),
/// and when it fires before the real deadline it is re-armed the same way: at most once per
/// shortest timeout on a busy connection. The body deadline of a request in progress is kept the
/// same way ([`BodyClock`]).
pub(super) struct Deadline<F> {
    connection: Pin<Box<F>>,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
    /// The shortest of the head, idle and body timeouts, in milliseconds.
    step_ms: u64,
}

impl<F: Future> Deadline<F> {
    pub fn new(connection: F, activity: Arc<Activity>) -> Self {
        let step_ms = activity.header_ms.min(activity.idle_ms).min(activity.body_ms);
        let first = activity.deadline_ms.load(Relaxed).min(step_ms);
        let timer = Box::pin(tokio::time::sleep_until(
            activity.started + Duration::from_millis(first),
        ));
        Self {
            connection: Box::pin(connection),
            activity,
            timer,
            step_ms,
        }
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(output) = this.connection.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let now_ms = this.activity.now_ms();
            let deadline_ms = this.activity.deadline_ms.load(Relaxed);
            if deadline_ms != NONE && now_ms >= deadline_ms {
                return Poll::Ready(None);
            }
            this.activity.expire_body(now_ms);
            // Not yet (or a request is in progress): look again when the next deadline could be
            // due at the earliest.
            let next_ms = deadline_ms
                .min(this.activity.body_deadline_ms.load(Relaxed))
                .min(now_ms.saturating_add(this.step_ms))
                .max(now_ms + 1);
            this.timer
                .as_mut()
                .reset(this.activity.started + Duration::from_millis(next_ms));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(activity: &Activity) -> u64 {
        activity.deadline_ms.load(Relaxed)
    }

    #[test]
    fn deadlines_follow_the_connection_s_state() {
        let activity = Activity::new(Duration::from_secs(2), Duration::from_secs(50), Duration::from_secs(30));
        assert_eq!(deadline(&activity), 2_000);
        let request = activity.begin();
        assert_eq!(deadline(&activity), NONE);
        // Bytes of a body (or a pipelined request) while a request is in progress change nothing.
        activity.bytes_arrived();
        assert_eq!(deadline(&activity), NONE);
        drop(request);
        let idle = deadline(&activity);
        assert!((50_000..51_000).contains(&idle), "{idle}");
        activity.bytes_arrived();
        let head = deadline(&activity);
        assert!((2_000..3_000).contains(&head), "{head}");
        // Later bytes of the same head do not push the deadline back.
        activity.bytes_arrived();
        assert_eq!(deadline(&activity), head);
    }

    #[tokio::test]
    async fn a_connection_past_its_deadline_is_dropped_and_one_in_progress_is_not() {
        let short = Duration::from_millis(50);
        let activity = Activity::new(short, short, short);
        let outcome = Deadline::new(std::future::pending::<()>(), activity).await;
        assert!(outcome.is_none());
        let activity = Activity::new(short, short, short);
        let request = activity.begin();
        let finished = Deadline::new(
            async move {
                tokio::time::sleep(short * 6).await;
                drop(request);
                7
            },
            activity,
        )
        .await;
        assert_eq!(finished, Some(7));
    }
}
