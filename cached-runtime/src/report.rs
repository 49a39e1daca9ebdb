//! What a call reports: a `tracing` span with its fn, key template and outcome, the
//! `redis_cached_calls_total` count, and its loader's time. Reported when the call ends
//! or when its future is dropped (a caller's timeout) or unwinds (a panicking loader),
//! so every call counts once, as it does in `stats()`.

use std::time::Instant;

use tracing::{Instrument, Span};

use crate::Policy;
use crate::read_path::Came;
use crate::stats::Outcome;
use crate::telemetry;

/// Reports a call with what it has come to when dropped.
pub(crate) struct Report<'a> {
    function: &'static str,
    span: Span,
    came: &'a Came,
}

impl<'a> Report<'a> {
    /// The report of a call with `policy`; `span` is the call's, `came` what it comes to.
    pub(crate) fn new(policy: &Policy, came: &'a Came) -> Self {
        Self {
            function: policy.name,
            span: call_span(policy),
            came,
        }
    }

    /// The call's span, to run the call in.
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        let outcome = self.came.get();
        self.span.record("outcome", outcome.as_str());
        telemetry::call(self.function, outcome);
    }
}

/// Reports a near hit: a span that says so, and the count.
pub(crate) fn near_hit(policy: &Policy) {
    call_span(policy).record("outcome", Outcome::NearHit.as_str());
    telemetry::call(policy.name, Outcome::NearHit);
}

/// The span of a call with `policy`, its outcome to be recorded.
fn call_span(policy: &Policy) -> Span {
    tracing::debug_span!(
        "redis_cached",
        r#fn = policy.name,
        key = policy.key_template,
        outcome = tracing::field::Empty,
    )
}

/// The loader of a call, run (if it is) in a `load` span inside the call's, and timed
/// until it ends or is dropped.
pub(crate) async fn timed_load<F: Future>(function: &'static str, load: F) -> F::Output {
    let _timer = LoadTimer {
        function,
        started: Instant::now(),
    };
    load.instrument(tracing::debug_span!("load")).await
}

/// Records a loader's time when dropped: when it ended, or was given up.
struct LoadTimer {
    function: &'static str,
    started: Instant,
}

impl Drop for LoadTimer {
    fn drop(&mut self) {
        telemetry::load(self.function, self.started.elapsed());
    }
}
