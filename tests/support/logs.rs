//! Captures `tracing` events as text, for tests that check what the cache logs.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event, one line each: `LEVEL message field=value ...`.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<Line>>>);

impl Logs {
    /// Installs the capture for this thread until the guard drops. Run the test on a
    /// current-thread runtime so the cache's tasks log on this thread too.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let guard = tracing::subscriber::set_default(logs.clone());
        (logs, guard)
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|line| line.text.clone()).collect()
    }

    /// `field in: line` for each field recorded without content (`""`, or nothing).
    pub fn empty_fields(&self) -> Vec<String> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .flat_map(|line| line.empty.iter().map(|field| format!("{field} in: {}", line.text)))
            .collect()
    }
}

struct Line {
    text: String,
    empty: Vec<&'static str>,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let value = format!("{value:?}");
        if value.is_empty() || value == "\"\"" {
            self.empty.push(field.name());
        }
        if field.name() == "message" {
            let _ = write!(self.text, " {value}");
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Logs {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line {
            text: event.metadata().level().to_string(),
            empty: Vec::new(),
        };
        event.record(&mut line);
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
