//! An upstream connection's transport, watched for progress: each progress notification is
//! counted as it arrives, in order with everything else the server sends, before rmcp hands it
//! to a task of its own. A call whose result has arrived then waits for the progress its server
//! sent before that result to reach the caller, which rmcp's concurrent handling would otherwise
//! let the result overtake.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{JsonRpcMessage, ProgressToken, ServerNotification};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::Notify;

use super::supervisor::Link;

/// How long a finished call waits at most for its progress to be delivered (a slow client).
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// Progress notifications received from the server and not yet passed on, by token.
#[derive(Default)]
pub(crate) struct InTransit {
    counts: Mutex<HashMap<ProgressToken, usize>>,
    /// The sum of `counts`, so a call whose server sent no progress looks without locking.
    total: AtomicUsize,
    delivered: Notify,
}

impl InTransit {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arrived(&self, token: &ProgressToken) {
        *self.counts().entry(token.clone()).or_default() += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
    }

    /// One notification of `token` was passed on (or had nobody to go to).
    pub(crate) fn delivered(&self, token: &ProgressToken) {
        let mut counts = self.counts();
        if let Some(count) = counts.get_mut(token) {
            *count -= 1;
            self.total.fetch_sub(1, Ordering::SeqCst);
            if *count == 0 {
                counts.remove(token);
            }
        }
        drop(counts);
        self.delivered.notify_waiters();
    }

    /// Forgets a finished call's token: a notification still on its way has nobody to reach.
    pub(crate) fn forget(&self, token: &ProgressToken) {
        if self.total.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(count) = self.counts().remove(token) {
            self.total.fetch_sub(count, Ordering::SeqCst);
        }
    }

    /// Waits until every progress notification of `token` received so far was passed on.
    pub(crate) async fn settled(&self, token: &ProgressToken) {
        if self.total.load(Ordering::SeqCst) == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let next = self.delivered.notified();
            if !self.counts().contains_key(token) {
                return;
            }
            if tokio::time::timeout_at(deadline, next).await.is_err() {
                return;
            }
        }
    }
}

pub(crate) struct Watched<T> {
    inner: T,
    link: Weak<Link>,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, link: Weak<Link>) -> Self {
        Self { inner, link }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Watched<T> {
    type Error = T::Error;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        let link = &self.link;
        let next = self.inner.receive();
        async move {
            let message = next.await;
            if let Some(JsonRpcMessage::Notification(notification)) = &message
                && let ServerNotification::ProgressNotification(progress) = &notification.notification
                && let Some(link) = link.upgrade()
            {
                link.in_transit.arrived(&progress.params.progress_token);
            }
            message
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
