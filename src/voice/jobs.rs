//! The speech job queue: at most `max_concurrent_jobs` jobs run, at most `max_queued_jobs`
//! wait, and the rest are refused at once as busy. Each job runs on a thread of its own at a
//! lower scheduling priority (threads it starts, such as whisper.cpp's, inherit it), so speech
//! work yields the CPU to the tool calls agentos answers meanwhile.
// A build without either engine has no job to run.
#![cfg_attr(not(any(feature = "stt", feature = "tts")), allow(dead_code))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{JobLimits, VoiceError};

pub(crate) struct Jobs {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_queued: usize,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
    nice: i32,
}

/// Counts a waiting job until dropped (it got a slot, timed out or was cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Frees the slot, and the running count, when the job's thread ends.
struct Running {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The queue's state, for `voice_status`.
#[derive(Debug, Clone, Copy)]
pub struct QueueState {
    pub running: usize,
    pub waiting: usize,
    pub max_concurrent: usize,
    pub max_queued: usize,
}

impl Jobs {
    pub fn new(max_concurrent: usize, max_queued: usize, nice: i32) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_concurrent: max_concurrent.max(1),
            max_queued,
            waiting: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
            nice,
        }
    }

    pub fn state(&self) -> QueueState {
        QueueState {
            running: self.running.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            max_concurrent: self.max_concurrent,
            max_queued: self.max_queued,
        }
    }

    /// Runs `work` on a job thread once a slot is free, within `limits`. On the deadline or a
    /// cancellation the caller gets its answer at once and `abort` is raised; the thread keeps
    /// its slot until `work` returns (the engines check `abort` as they go), so no more jobs
    /// run than allowed.
    pub async fn run<T, W>(&self, limits: &JobLimits, abort: Arc<AtomicBool>, work: W) -> Result<T, VoiceError>
    where
        T: Send + 'static,
        W: FnOnce() -> Result<T, VoiceError> + Send + 'static,
    {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.wait_for_slot(limits).await?,
        };
        self.running.fetch_add(1, Ordering::Relaxed);
        let running = Running {
            _permit: permit,
            running: self.running.clone(),
        };
        let (done, result) = oneshot::channel();
        let nice = self.nice;
        std::thread::Builder::new()
            .name("agentos-voice".to_owned())
            .spawn(move || {
                let _running = running;
                lower_priority(nice);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .unwrap_or_else(|_| Err(VoiceError::Failed("the speech engine failed unexpectedly".into())));
                let _ = done.send(outcome);
            })
            .map_err(|error| VoiceError::Failed(format!("cannot start a speech job thread: {error}")))?;
        let seconds = limits
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs_f64();
        tokio::select! {
            outcome = result => outcome.unwrap_or_else(|_| Err(VoiceError::Failed("the speech job ended without an answer".into()))),
            _ = tokio::time::sleep_until(limits.deadline) => {
                abort.store(true, Ordering::Relaxed);
                Err(VoiceError::Timeout { seconds })
            }
            _ = limits.cancel.cancelled() => {
                abort.store(true, Ordering::Relaxed);
                Err(VoiceError::Cancelled)
            }
        }
    }

    async fn wait_for_slot(&self, limits: &JobLimits) -> Result<OwnedSemaphorePermit, VoiceError> {
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.max_queued {
            return Err(VoiceError::Busy {
                running: self.running.load(Ordering::Relaxed),
                queued,
            });
        }
        let seconds = limits
            .deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs_f64();
        tokio::select! {
            permit = self.slots.clone().acquire_owned() => {
                permit.map_err(|_| VoiceError::Failed("agentos is shutting down".into()))
            }
            _ = tokio::time::sleep_until(limits.deadline) => Err(VoiceError::Timeout { seconds }),
            _ = limits.cancel.cancelled() => Err(VoiceError::Cancelled),
        }
    }
}

/// Lowers the calling thread's priority (Linux nice values are per thread, and threads it
/// starts inherit them). Best effort: a refusal leaves the job at normal priority.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: gettid and setpriority only read their arguments; `who` is this thread.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use tokio_util::sync::CancellationToken;

    use super::*;

    fn limits(seconds: u64) -> JobLimits {
        JobLimits {
            deadline: Instant::now() + Duration::from_secs(seconds),
            cancel: Arc::new(CancellationToken::new()),
        }
    }

    #[tokio::test]
    async fn past_the_queue_calls_are_refused_as_busy_and_the_slot_is_honoured() {
        let jobs = Arc::new(Jobs::new(1, 1, 0));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = {
            let jobs = jobs.clone();
            tokio::spawn(async move {
                jobs.run(&limits(30), Arc::default(), move || {
                    let _ = hold.recv();
                    Ok(1)
                })
                .await
            })
        };
        // The first job holds the only slot; the second waits; the third is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while jobs.state().running != 1 {
            assert!(Instant::now() < deadline, "the first job never started");
            tokio::task::yield_now().await;
        }
        let second = {
            let jobs = jobs.clone();
            tokio::spawn(async move { jobs.run(&limits(30), Arc::default(), || Ok(2)).await })
        };
        while jobs.state().waiting != 1 {
            assert!(Instant::now() < deadline, "the second job never queued");
            tokio::task::yield_now().await;
        }
        let third = jobs.run(&limits(30), Arc::default(), || Ok(3)).await;
        assert!(
            matches!(third, Err(VoiceError::Busy { running: 1, queued: 1 })),
            "{third:?}"
        );
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        // A job's thread gives its slot back just after it answers.
        while (jobs.state().running, jobs.state().waiting) != (0, 0) {
            assert!(
                Instant::now() < deadline,
                "the slots never came back: {:?}",
                jobs.state()
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_deadline_answers_at_once_and_raises_abort() {
        let jobs = Jobs::new(1, 0, 0);
        let abort = Arc::new(AtomicBool::new(false));
        let seen = abort.clone();
        let short = JobLimits {
            deadline: Instant::now() + Duration::from_millis(50),
            cancel: Arc::new(CancellationToken::new()),
        };
        let outcome = jobs
            .run(&short, abort.clone(), move || {
                while !seen.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
                Ok(())
            })
            .await;
        assert!(matches!(outcome, Err(VoiceError::Timeout { .. })), "{outcome:?}");
        assert!(abort.load(Ordering::Relaxed));
    }
}
