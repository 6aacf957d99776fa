//! What voice reports about itself: per engine, the outcome of every job, its latency (queue
//! wait included: what a caller waits) and its real-time factor (seconds of work per second of
//! audio), in the histograms the rest of ops uses; `/metrics`, `voice_stats` and health read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use super::{Voice, VoiceError};
use crate::ops::health::{HealthSource, ServiceHealth};
use crate::ops::metrics::{Exposition, Histogram, HistogramSnapshot, MetricsSource};

/// Job outcomes, as `/metrics` labels them.
const OUTCOMES: [&str; 4] = ["ok", "failed", "busy", "timeout"];

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub stt: EngineStats,
    pub tts: EngineStats,
}

/// One engine's figures.
#[derive(Debug, Default)]
pub struct EngineStats {
    latency: Histogram,
    /// Real-time factors, stored as if they were seconds (the buckets suit ratios 0.0005-10).
    realtime: Histogram,
    outcomes: [AtomicU64; OUTCOMES.len()],
    audio_micros: AtomicU64,
}

impl EngineStats {
    /// Records a finished job; `measure` gives (audio seconds, processing seconds) of a success.
    pub(crate) fn record<T>(
        &self,
        outcome: &Result<T, VoiceError>,
        started: Instant,
        measure: impl Fn(&T) -> (f64, f64),
    ) {
        let slot = match outcome {
            Ok(done) => {
                let (audio, work) = measure(done);
                self.latency.observe(started.elapsed());
                if audio > 0.0 {
                    self.realtime
                        .observe(Duration::from_secs_f64((work / audio).clamp(0.0, 1e6)));
                }
                self.audio_micros
                    .fetch_add((audio * 1e6).clamp(0.0, 1e15) as u64, Ordering::Relaxed);
                0
            }
            Err(VoiceError::Busy { .. }) => 2,
            Err(VoiceError::Timeout { .. }) => 3,
            Err(_) => 1,
        };
        self.outcomes[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn report(&self) -> EngineReport {
        let latency = self.latency.snapshot();
        let realtime = self.realtime.snapshot();
        let count = |slot: usize| self.outcomes[slot].load(Ordering::Relaxed);
        EngineReport {
            jobs: count(0) + count(1) + count(2) + count(3),
            ok: count(0),
            failed: count(1),
            busy: count(2),
            timed_out: count(3),
            audio_seconds: self.audio_micros.load(Ordering::Relaxed) as f64 / 1e6,
            latency_ms: Quantiles::of(&latency, 1.0),
            realtime_factor: Quantiles::of(&realtime, 1e-3),
        }
    }
}

/// p50, p95 and p99 of a histogram (bucket-interpolated, as Prometheus computes them).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Quantiles {
    fn of(snapshot: &HistogramSnapshot, scale: f64) -> Self {
        let at = |q| (snapshot.quantile_ms(q) * scale * 1e4).round() / 1e4;
        Self {
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

/// One engine's figures since agentos started.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineReport {
    /// Jobs asked for, whatever became of them.
    pub jobs: u64,
    pub ok: u64,
    /// Refused or failed: bad audio, missing model, too long, ...
    pub failed: u64,
    /// Refused because the queue was full.
    pub busy: u64,
    /// Not done by their deadline.
    pub timed_out: u64,
    /// Seconds of audio heard (stt) or spoken (tts) by successful jobs.
    pub audio_seconds: f64,
    /// What a successful job took from the call to the answer, queue wait included, in
    /// milliseconds.
    pub latency_ms: Quantiles,
    /// Seconds of work per second of audio (below 1: faster than real time).
    pub realtime_factor: Quantiles,
}

impl MetricsSource for Voice {
    fn render(&self, out: &mut Exposition<'_>) {
        let engines = [("stt", &self.stats.stt), ("tts", &self.stats.tts)];
        out.family(
            "voice_jobs_total",
            "counter",
            "Speech jobs per engine (stt, tts) and outcome (ok, failed, busy, timeout).",
        );
        for (engine, stats) in engines {
            for (outcome, count) in OUTCOMES.iter().zip(&stats.outcomes) {
                out.sample(
                    "voice_jobs_total",
                    &[("engine", engine), ("outcome", outcome)],
                    count.load(Ordering::Relaxed),
                );
            }
        }
        out.family(
            "voice_job_duration_seconds",
            "histogram",
            "Successful speech jobs from call to answer, queue wait included.",
        );
        for (engine, stats) in engines {
            out.histogram(
                "voice_job_duration_seconds",
                &[("engine", engine)],
                &stats.latency.snapshot(),
            );
        }
        out.family(
            "voice_realtime_factor",
            "histogram",
            "Seconds of model work per second of audio, per successful job (buckets are ratios).",
        );
        for (engine, stats) in engines {
            out.histogram(
                "voice_realtime_factor",
                &[("engine", engine)],
                &stats.realtime.snapshot(),
            );
        }
        out.family(
            "voice_audio_seconds_total",
            "counter",
            "Seconds of audio transcribed (stt) or synthesized (tts).",
        );
        for (engine, stats) in engines {
            out.sample(
                "voice_audio_seconds_total",
                &[("engine", engine)],
                stats.audio_micros.load(Ordering::Relaxed) as f64 / 1e6,
            );
        }
        let queue = self.jobs.state();
        out.family(
            "voice_queue_jobs",
            "gauge",
            "Speech jobs running and waiting for a slot.",
        );
        out.sample("voice_queue_jobs", &[("state", "running")], queue.running);
        out.sample("voice_queue_jobs", &[("state", "waiting")], queue.waiting);
        out.family(
            "voice_model_loaded",
            "gauge",
            "1 when the engine's model is loaded in memory.",
        );
        out.sample(
            "voice_model_loaded",
            &[("engine", "stt")],
            u8::from(self.engines.stt_loaded()),
        );
        out.sample(
            "voice_model_loaded",
            &[("engine", "tts")],
            u8::from(self.engines.tts_loaded()),
        );
    }
}

impl HealthSource for Voice {
    fn services(&self) -> Vec<(&'static str, ServiceHealth)> {
        vec![("stt", self.engines.stt_health()), ("tts", self.engines.tts_health())]
    }
}
