//! The two lock-free building blocks of the collector: a fixed-bucket latency histogram and a
//! one-minute sliding window of request counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus' usual spread, down to 0.5 ms
/// because most tool calls are that fast). Fixed: a scrape never depends on what was observed.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds in microseconds, so recording compares integers.
const BUCKET_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Observations per bucket (not cumulative; the last slot is `+Inf`) and their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A consistent-enough copy of a histogram: `count` is the sum of the buckets, so `+Inf` always
/// equals `_count` in the exposition even while observations race the scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub counts: [u64; BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKET_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0; BUCKETS.len() + 1];
        for (to, from) in counts.iter_mut().zip(&self.counts) {
            *to = from.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            counts,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (to, from) in self.counts.iter_mut().zip(&other.counts) {
            *to += from;
        }
        self.sum_seconds += other.sum_seconds;
    }

    /// Cumulative counts per bucket, `+Inf` last.
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |total, count| {
            *total += count;
            Some(*total)
        })
    }

    /// The `q` quantile (0..=1) in milliseconds, interpolated linearly inside its bucket (as
    /// Prometheus' `histogram_quantile` does); 0 without observations. Past the last bound it
    /// reports that bound: the histogram knows nothing finer.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (slot, &count) in self.counts.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = BUCKETS.get(slot) else {
                    return BUCKETS[BUCKETS.len() - 1] * 1000.0;
                };
                let lower = if slot == 0 { 0.0 } else { BUCKETS[slot - 1] };
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                let seconds = lower + (upper - lower) * within;
                return (seconds * 1e6).round() / 1e3;
            }
            below += count;
        }
        BUCKETS[BUCKETS.len() - 1] * 1000.0
    }
}

/// Seconds in the sliding window.
const WINDOW: usize = 60;

/// One second of the window: which second it holds (+1, so 0 means never used) and its counts.
#[derive(Debug, Default)]
struct Slot {
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Requests and errors in the last minute, one slot per second. Lock-free: a slot reused for a
/// new second is reset by whoever gets there first, so a count racing that reset may be lost,
/// which a per-minute rate can afford.
#[derive(Debug)]
pub struct MinuteWindow {
    slots: [Slot; WINDOW],
}

impl Default for MinuteWindow {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl MinuteWindow {
    /// Counts one request (and an error if `error`) in second `now` (seconds since start).
    pub fn record(&self, now: u64, error: bool) {
        let stamp = now + 1;
        let slot = &self.slots[(now % WINDOW as u64) as usize];
        if slot.second.load(Ordering::Acquire) != stamp && slot.second.swap(stamp, Ordering::AcqRel) != stamp {
            slot.requests.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
        }
        slot.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests and errors in the minute up to second `now`.
    pub fn last_minute(&self, now: u64) -> (u64, u64) {
        let oldest = (now + 1).saturating_sub(WINDOW as u64 - 1);
        self.slots
            .iter()
            .filter(|slot| slot.second.load(Ordering::Acquire) >= oldest.max(1))
            .fold((0, 0), |(requests, errors), slot| {
                (
                    requests + slot.requests.load(Ordering::Relaxed),
                    errors + slot.errors.load(Ordering::Relaxed),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_micros(501));
        histogram.observe(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts[0], 1, "bounds are inclusive (le)");
        assert_eq!(snapshot.counts[1], 1);
        assert_eq!(snapshot.counts[BUCKETS.len()], 1, "+Inf");
        let cumulative: Vec<u64> = snapshot.cumulative().collect();
        assert_eq!(cumulative.last(), Some(&3));
        assert!(cumulative.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!((snapshot.sum_seconds - 60.001001).abs() < 1e-9);
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let histogram = Histogram::default();
        assert_eq!(histogram.snapshot().quantile_ms(0.5), 0.0);
        for _ in 0..100 {
            histogram.observe(Duration::from_millis(7));
        }
        let snapshot = histogram.snapshot();
        // All in (5 ms, 10 ms]: the median is half-way.
        assert_eq!(snapshot.quantile_ms(0.5), 7.5);
        assert_eq!(snapshot.quantile_ms(1.0), 10.0);
        histogram.observe(Duration::from_secs(100));
        assert_eq!(histogram.snapshot().quantile_ms(1.0), 10_000.0);
    }

    #[test]
    fn the_window_forgets_what_is_older_than_a_minute() {
        let window = MinuteWindow::default();
        window.record(0, false);
        window.record(0, true);
        window.record(30, false);
        assert_eq!(window.last_minute(30), (3, 1));
        assert_eq!(window.last_minute(59), (3, 1));
        assert_eq!(window.last_minute(60), (1, 0), "second 0 fell out");
        window.record(60, false);
        assert_eq!(window.last_minute(60), (2, 0), "the reused slot was reset");
        assert_eq!(window.last_minute(200), (0, 0));
    }
}
