//! The PostgreSQL backend's metrics, through the `metrics` facade.
//!
//! - `foundation_persist_postgres_batch_size` (histogram): operations per
//!   committed transaction (group commit batch size).
//! - `foundation_persist_postgres_commit_duration_seconds` (histogram): how
//!   long one committed transaction took, from taking a connection to the
//!   end of `COMMIT` (the server's WAL flush included).
//! - `foundation_persist_postgres_lease_batch_size` (histogram): lease
//!   acquires and releases per committed lease transaction
//!   (`lease_batch.rs`).
//! - `foundation_persist_postgres_lease_commit_duration_seconds`
//!   (histogram): how long one committed lease transaction took, from
//!   taking a connection to the end of `COMMIT`.
//! - `foundation_persist_postgres_unknown_outcomes_total` (counter):
//!   batches whose commit outcome is unknown (the connection was lost while
//!   committing, or the commit timed out).
//! - `foundation_persist_postgres_listen_reconnects_total` (counter): times
//!   the change feed's `LISTEN` connection was lost (each followed by
//!   reconnection attempts and a resync).
//!
//! No labels. This module is not for recording anything else.

use std::time::Duration;

/// Operations per committed transaction.
pub const BATCH_SIZE: &str = "foundation_persist_postgres_batch_size";

/// Seconds per committed transaction.
pub const COMMIT_DURATION_SECONDS: &str = "foundation_persist_postgres_commit_duration_seconds";

/// Lease acquires and releases per committed lease transaction.
pub const LEASE_BATCH_SIZE: &str = "foundation_persist_postgres_lease_batch_size";

/// Seconds per committed lease transaction.
pub const LEASE_COMMIT_DURATION_SECONDS: &str =
    "foundation_persist_postgres_lease_commit_duration_seconds";

/// Batches whose commit outcome is unknown.
pub const UNKNOWN_OUTCOMES_TOTAL: &str = "foundation_persist_postgres_unknown_outcomes_total";

/// Times the change feed's `LISTEN` connection was lost.
pub const LISTEN_RECONNECTS_TOTAL: &str = "foundation_persist_postgres_listen_reconnects_total";

pub(crate) fn describe() {
    metrics::describe_counter!(
        LISTEN_RECONNECTS_TOTAL,
        metrics::Unit::Count,
        "Times the PostgreSQL change feed's LISTEN connection was lost."
    );
    metrics::describe_histogram!(
        BATCH_SIZE,
        metrics::Unit::Count,
        "Operations per committed PostgreSQL transaction (group commit batch size)."
    );
    metrics::describe_histogram!(
        COMMIT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one committed PostgreSQL transaction, WAL flush included."
    );
    metrics::describe_histogram!(
        LEASE_BATCH_SIZE,
        metrics::Unit::Count,
        "Lease acquires and releases per committed PostgreSQL lease transaction."
    );
    metrics::describe_histogram!(
        LEASE_COMMIT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one committed PostgreSQL lease transaction, WAL flush included."
    );
    metrics::describe_counter!(
        UNKNOWN_OUTCOMES_TOTAL,
        metrics::Unit::Count,
        "PostgreSQL batches whose commit outcome is unknown (connection lost while committing)."
    );
}

pub(crate) fn record_commit(operations: usize, duration: Duration) {
    metrics::histogram!(BATCH_SIZE).record(operations as f64);
    metrics::histogram!(COMMIT_DURATION_SECONDS).record(duration.as_secs_f64());
}

pub(crate) fn record_lease_commit(operations: usize, duration: Duration) {
    metrics::histogram!(LEASE_BATCH_SIZE).record(operations as f64);
    metrics::histogram!(LEASE_COMMIT_DURATION_SECONDS).record(duration.as_secs_f64());
}

pub(crate) fn record_listen_reconnect() {
    metrics::counter!(LISTEN_RECONNECTS_TOTAL).increment(1);
}

pub(crate) fn record_unknown_outcome() {
    metrics::counter!(UNKNOWN_OUTCOMES_TOTAL).increment(1);
}
