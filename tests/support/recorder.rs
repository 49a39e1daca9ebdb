//! `metrics-util`'s debugging recorder, installed as an application installs its own.
//! One per test binary: the recorder is the process's.

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Installs a debugging recorder as the process's; reads it through what is returned.
pub fn install() -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the test installs the process's recorder");
    snapshotter
}

/// The gauge `name` in a new snapshot (which resets it), if it was ever set.
pub fn gauge(snapshotter: &Snapshotter, name: &str) -> Option<f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            match (kind, value) {
                (MetricKind::Gauge, DebugValue::Gauge(x)) if key.name() == name => Some(x.into_inner()),
                _ => None,
            }
        })
}
