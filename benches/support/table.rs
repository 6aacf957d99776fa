//! Rows of the README's benchmark table. When `BENCH_TABLE` names a file (`scripts/bench` sets
//! it), each benchmark appends its headline figures there as Markdown table rows, and
//! `scripts/bench-table` writes them into README.md: one table from one run.

use std::io::Write;

use super::Figures;

/// Appends the row of `path` with its figures, compared (`ratio`) with `versus`, a baseline
/// measured in the same run.
pub fn record(path: &str, figures: &Figures, versus: Option<(&str, f64)>) {
    let Some(file) = std::env::var_os("BENCH_TABLE") else {
        return;
    };
    let compared = versus.map_or_else(|| "baseline".to_owned(), |(name, ratio)| format!("{ratio:.2}× {name}"));
    let cpu = figures
        .cpu_us_per_call
        .map_or_else(|| "–".to_owned(), |us| format!("{us:.1}"));
    let row = format!(
        "| {path} | {:.0} | {compared} | {:.0} | {:.0} | {cpu} |\n",
        figures.calls_per_sec, figures.p50_us, figures.p99_us
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut table| table.write_all(row.as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "could not add a row to the benchmark table {}: {error}",
            file.to_string_lossy()
        );
    }
}
