//! The batch size and commit latency histograms.

use std::sync::OnceLock;
use std::time::Duration;

use foundation_persist::{Store, StoreOptions, metrics};
use futures::future::join_all;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::support::{Task, bounded};

/// The writer records on its own thread, so the recorder must be global;
/// it is installed once for this test binary.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other recorder is installed");
        snapshotter
    })
}

#[tokio::test]
async fn commits_record_batch_size_and_latency() {
    let snapshotter = snapshotter();
    let mut options = StoreOptions::new();
    // The writer of a file store waits for ten writes (the bound closes the
    // batch), so the ten concurrent puts below share exactly one commit.
    options
        .max_batch_operations(10)
        .max_batch_delay(Duration::from_secs(30));
    let directory = crate::support::temp_dir();
    let store = Store::open(directory.path().join("metrics.redb"), &options).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let puts = join_all((0..10).map(|id| {
        let tasks = tasks.clone();
        async move { tasks.put(&format!("k{id}"), &Task::new(id)).await }
    }));
    let versions: Vec<_> = bounded(puts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions.iter().map(|v| v.get()).max(), Some(10));

    let mut batch_sizes = Vec::new();
    let mut latencies = Vec::new();
    for (key, unit, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Histogram(values) = value {
            match key.key().name() {
                metrics::BATCH_SIZE => batch_sizes.extend(values),
                metrics::COMMIT_DURATION_SECONDS => {
                    assert_eq!(unit, Some(::metrics::Unit::Seconds));
                    latencies.extend(values);
                }
                _ => {}
            }
        }
    }
    assert!(
        batch_sizes.iter().any(|size| size.0 == 10.0),
        "one commit of ten operations among {batch_sizes:?}"
    );
    assert!(!latencies.is_empty());
    assert!(
        latencies
            .iter()
            .all(|seconds| seconds.0 >= 0.0 && seconds.0 < 60.0)
    );
}
