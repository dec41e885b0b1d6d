//! The store's metrics, through the `metrics` facade.
//!
//! - `foundation_persist_batch_size` (histogram): operations per committed
//!   transaction.
//! - `foundation_persist_commit_duration_seconds` (histogram): how long a
//!   commit took, from beginning the transaction to the end of its fsync.
//!
//! No labels: a process usually has one store, and keyspace names would
//! multiply series. This module is not for recording anything else.

use std::time::Duration;

/// Operations per committed transaction.
pub const BATCH_SIZE: &str = "foundation_persist_batch_size";

/// Seconds per commit, fsync included.
pub const COMMIT_DURATION_SECONDS: &str = "foundation_persist_commit_duration_seconds";

pub(crate) fn describe() {
    metrics::describe_histogram!(
        BATCH_SIZE,
        metrics::Unit::Count,
        "Operations per committed foundation-persist transaction (group commit batch size)."
    );
    metrics::describe_histogram!(
        COMMIT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one foundation-persist commit, fsync included."
    );
}

pub(crate) fn record_commit(operations: usize, duration: Duration) {
    metrics::histogram!(BATCH_SIZE).record(operations as f64);
    metrics::histogram!(COMMIT_DURATION_SECONDS).record(duration.as_secs_f64());
}
