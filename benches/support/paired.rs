//! Paired measurements: a feature off and on, measured in alternating order over several rounds,
//! reported as the median of each round's on/off ratio. The machine is shared and drifts by 5-15%
//! within a run; one off phase followed by one on phase charges that drift to the feature.

use std::future::Future;

use super::Figures;

/// How many rounds a paired comparison runs: `BENCH_ROUNDS`, else 3 (1 in a smoke run).
pub fn rounds(smoke: bool) -> usize {
    if smoke {
        return 1;
    }
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3)
}

/// Both sides of every round, in measuring order per round.
pub struct Paired {
    pub off: Vec<Figures>,
    pub on: Vec<Figures>,
}

impl Paired {
    /// Each round's on/off calls/s ratio, in round order.
    pub fn ratios(&self) -> Vec<f64> {
        self.off
            .iter()
            .zip(&self.on)
            .map(|(off, on)| on.calls_per_sec / off.calls_per_sec)
            .collect()
    }

    /// The figure to report: the median round's ratio.
    pub fn median_ratio(&self) -> f64 {
        median(self.ratios())
    }

    /// The round whose ratio is the median, for the table (its own off and on figures).
    pub fn median_round(&self) -> (&Figures, &Figures) {
        let ratios = self.ratios();
        let target = median(ratios.clone());
        let index = ratios.iter().position(|r| *r == target).unwrap_or(0);
        (&self.off[index], &self.on[index])
    }

    /// Each round's on/off ratio of the server's CPU time per call, when both sides have one.
    pub fn cpu_ratios(&self) -> Vec<f64> {
        self.off
            .iter()
            .zip(&self.on)
            .filter_map(|(off, on)| Some(on.cpu_us_per_call? / off.cpu_us_per_call?))
            .collect()
    }

    /// "89% (rounds: 85%, 89%, 93%); server CPU per call +6% (rounds: +5%, +6%, +9%)".
    pub fn describe(&self) -> String {
        let rounds: Vec<String> = self.ratios().iter().map(|r| format!("{:.0}%", 100.0 * r)).collect();
        let mut text = format!("{:.0}% (rounds: {})", 100.0 * self.median_ratio(), rounds.join(", "));
        let cpu = self.cpu_ratios();
        if !cpu.is_empty() {
            let each: Vec<String> = cpu.iter().map(|r| format!("{:+.0}%", 100.0 * (r - 1.0))).collect();
            text.push_str(&format!(
                "; server CPU per call {:+.0}% (rounds: {})",
                100.0 * (median(cpu.clone()) - 1.0),
                each.join(", ")
            ));
        }
        text
    }
}

/// The middle value (the lower middle of an even count, so it is always a measured value).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get((values.len().max(1) - 1) / 2).copied().unwrap_or(f64::NAN)
}

/// Measures `phase(false)` and `phase(true)` once per round, off first in even rounds and on
/// first in odd ones, so a steady drift favours neither side.
pub async fn paired<F, Fut>(rounds: usize, mut phase: F) -> Paired
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Figures>,
{
    let mut paired = Paired {
        off: Vec::with_capacity(rounds),
        on: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        let on_first = round % 2 == 1;
        let first = phase(on_first).await;
        let second = phase(!on_first).await;
        let (off, on) = if on_first { (second, first) } else { (first, second) };
        paired.off.push(off);
        paired.on.push(on);
    }
    paired
}
