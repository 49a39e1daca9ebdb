//! Latency samples and the tables the bench prints.

use std::time::Duration;

/// Latencies of one row, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<u64>);

impl Samples {
    pub(crate) fn push(&mut self, latency: Duration) {
        self.0.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// Every latency, in the order pushed (or sorted, after a `quantile`).
    pub(crate) fn durations(&self) -> Vec<Duration> {
        self.0.iter().map(|&nanos| Duration::from_nanos(nanos)).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0.5 = median), or zero without samples.
    pub(crate) fn quantile(&mut self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let rank = ((self.0.len() - 1) as f64 * q).round() as usize;
        Duration::from_nanos(self.0[rank])
    }
}

/// A table: a title, column names, rows of cells.
pub(crate) struct Table {
    title: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(title: &str, columns: &[&str]) -> Table {
        Table {
            title: title.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Markdown, so the README can carry it as printed.
    pub(crate) fn print(&self) {
        println!("\n### {}\n", self.title);
        println!("| {} |", self.columns.join(" | "));
        println!("|{}", " --- |".repeat(self.columns.len()));
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
    }
}

pub(crate) fn nanos(d: Duration) -> String {
    format!("{} ns", d.as_nanos())
}

pub(crate) fn micros(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

pub(crate) fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn ratio(value: f64, base: f64) -> String {
    if base == 0.0 {
        "-".to_owned()
    } else {
        let ratio = value / base;
        // A near hit is thousandths of a Redis round trip.
        let digits = if ratio < 0.1 { 4 } else { 2 };
        format!("{ratio:.digits$}x")
    }
}
