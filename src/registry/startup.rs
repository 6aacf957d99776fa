//! Start-up: providers whose tools are still on their way when agentos starts (configured
//! upstream servers connecting), so the first listing a client asks for can wait for them.
//!
//! Many clients (Claude Desktop among them) list tools once, right after `initialize`, and
//! ignore `notifications/tools/list_changed`; answering before the configured servers are in
//! would hide their tools for the whole session. So a provider marks itself starting with
//! [`Registry::starting`] and the guard it gets marks it done when dropped (connected or failed);
//! [`Registry::until_started`] waits until none is left, for at most the start-up wait. Once
//! that wait has ended, for whatever reason, start-up is over and every later call returns at
//! once: a provider that is slow or keeps failing never delays a listing twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Registry;

/// How long the first listing waits when nobody configured otherwise.
pub const DEFAULT_STARTUP_WAIT: Duration = Duration::from_secs(5);

/// The providers still starting, and how long a listing may wait for them.
pub(super) struct Startup {
    /// Names of the providers still starting, in the order they began.
    pending: watch::Sender<Vec<String>>,
    /// When the first provider began: the wait is counted from there, so a client that asks
    /// late waits only for what is left of it.
    began: OnceLock<Instant>,
    wait_millis: AtomicU64,
    over: AtomicBool,
}

impl Default for Startup {
    fn default() -> Self {
        Self {
            pending: watch::channel(Vec::new()).0,
            began: OnceLock::new(),
            wait_millis: AtomicU64::new(DEFAULT_STARTUP_WAIT.as_millis() as u64),
            over: AtomicBool::new(false),
        }
    }
}

/// A provider that is starting; dropping it says the provider is done (either way).
#[must_use = "the provider counts as starting only while this guard lives"]
pub struct Starting {
    startup: Arc<Startup>,
    name: String,
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.startup.pending.send_modify(|pending| {
            if let Some(at) = pending.iter().position(|name| *name == self.name) {
                pending.remove(at);
            }
        });
    }
}

impl Registry {
    /// How long [`Registry::until_started`] may wait, counted from when the first provider
    /// began; zero never waits.
    pub fn set_startup_wait(&self, wait: Duration) {
        let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.startup.wait_millis.store(millis, Ordering::Relaxed);
    }

    /// Marks the provider `name` as starting until the returned guard is dropped.
    pub fn starting(&self, name: &str) -> Starting {
        self.startup.began.get_or_init(Instant::now);
        self.startup
            .pending
            .send_modify(|pending| pending.push(name.to_owned()));
        Starting {
            startup: self.startup.clone(),
            name: name.to_owned(),
        }
    }

    /// Whether the start-up wait is behind us (every provider done, or the wait passed).
    pub(super) fn startup_over(&self) -> bool {
        self.startup.over.load(Ordering::Acquire) || self.startup.began.get().is_none()
    }

    /// Waits until every provider that began starting is done, or the start-up wait has passed;
    /// afterwards returns at once. Providers still starting when the wait ends are logged.
    pub async fn until_started(&self) {
        let startup = &self.startup;
        if startup.over.load(Ordering::Acquire) {
            return;
        }
        let Some(began) = startup.began.get() else {
            // Nothing has begun starting (no providers configured): nothing to wait for.
            return;
        };
        let deadline = *began + Duration::from_millis(startup.wait_millis.load(Ordering::Relaxed));
        let mut pending = startup.pending.subscribe();
        let done = tokio::time::timeout_at(deadline, pending.wait_for(Vec::is_empty)).await;
        // The sender lives as long as the registry, so the wait ends only by emptying or timing out.
        if done.is_err() && !startup.over.swap(true, Ordering::AcqRel) {
            let still: Vec<String> = startup.pending.borrow().clone();
            tracing::warn!(
                providers = ?still,
                waited_ms = startup.wait_millis.load(Ordering::Relaxed),
                "listing tools before these providers finished starting; their tools follow with \
                 notifications/tools/list_changed"
            );
        }
        startup.over.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(wait: Duration) -> Registry {
        let registry = Registry::new(Duration::from_secs(5));
        registry.set_startup_wait(wait);
        registry
    }

    #[tokio::test]
    async fn nothing_starting_means_no_wait() {
        let registry = registry(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_millis(100), registry.until_started())
            .await
            .expect("returned at once");
    }

    #[tokio::test]
    async fn waits_until_every_provider_is_done() {
        let registry = Arc::new(registry(Duration::from_secs(60)));
        let (a, b) = (registry.starting("a"), registry.starting("b"));
        let waiter = tokio::spawn({
            let registry = registry.clone();
            async move { registry.until_started().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "b is still starting");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("done once b is")
            .unwrap();
    }

    #[tokio::test]
    async fn a_slow_provider_delays_only_the_first_wait_and_only_for_the_wait() {
        let registry = registry(Duration::from_millis(300));
        let _slow = registry.starting("slow");
        let started = Instant::now();
        registry.until_started().await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        tokio::time::timeout(Duration::from_millis(100), registry.until_started())
            .await
            .expect("start-up is over: no second wait");
    }
}
