//! Write operations as the writer sees them: already encoded, already
//! validated, addressed to tables by name.
//!
//! Typed handles (`state.rs`, `journal.rs`, `metadata.rs`, `batch.rs`)
//! build these; `apply.rs` executes them inside a transaction. The public
//! result types of writes and maintenance ([`Version`], [`Outcome`],
//! [`BackupReport`], [`CompactionReport`]) live here too. This module is
//! not for encoding values (`codec.rs`) or for applying operations.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use foundation_error::Error;
use tokio::sync::oneshot;

use crate::backend::Op;
use crate::lease::Lease;

/// The version of a state value: every write to a key gives it a new
/// version, larger than any the key had before, also across a delete (a
/// key deleted and written again never repeats a version), so a
/// compare-and-set against an old version can never succeed by accident.
///
/// Versions are per key: compare them only with versions of the same key.
/// (The redb backend draws them from one store-wide sequence reserved in
/// blocks; other backends may number differently.)
///
/// It serialises as its number, so a record may remember the version it was
/// derived from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub(crate) u64);

impl Version {
    /// The version with this number, for example one read back
    /// from a record that remembered it.
    pub const fn new(revision: u64) -> Version {
        Version(revision)
    }

    /// The version number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// What one operation of a committed write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A state value was written with this version.
    Written {
        /// The new version of the value.
        version: Version,
    },
    /// A state key was deleted.
    Deleted {
        /// Whether the key held a value.
        existed: bool,
    },
    /// A journal record was appended with this sequence number.
    Appended {
        /// The record's sequence number in its stream (the first is 1).
        sequence: u64,
    },
    /// Journal records were removed.
    Truncated {
        /// How many records were removed.
        removed: u64,
    },
    /// A fence held: the lease's token was current.
    Fenced,
}

/// The answer to a write request: what it did, or why nothing was applied.
pub(crate) type WriteReply = Result<Answer, Error>;

/// What an applied write request did.
#[derive(Debug)]
pub(crate) enum Answer {
    /// One outcome per operation of [`Work::Ops`].
    Outcomes(Vec<Outcome>),
    /// The leases of a [`Work::Lease`] (granted, renewed, claimed), each
    /// or its refusal.
    Leases(Vec<Result<Lease, Error>>),
}

/// What a write request asks the writer to do.
#[derive(Debug)]
pub(crate) enum Work {
    /// Operations that commit together or not at all.
    Ops(Vec<Op>),
    /// A lease operation, committed with the batch it joins.
    Lease(LeaseOp),
}

/// A lease operation on the lease table (the rules are in `lease.rs`).
#[derive(Debug)]
pub(crate) enum LeaseOp {
    Acquire {
        name: String,
        owner: String,
        ttl: Duration,
    },
    Renew {
        leases: Vec<Lease>,
        ttl: Duration,
    },
    Release(Lease),
    Claim {
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    },
}

impl Work {
    /// How many operations it counts as in a batch.
    pub(crate) fn operations(&self) -> usize {
        match self {
            Work::Ops(ops) => ops.len(),
            Work::Lease(LeaseOp::Renew { leases, .. }) => leases.len(),
            Work::Lease(LeaseOp::Claim { limit, .. }) => *limit,
            Work::Lease(_) => 1,
        }
    }
}

/// A group of operations that commit together or not at all.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) work: Work,
    pub(crate) bytes: usize,
    /// After this instant the writer answers `timeout` instead of committing.
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<WriteReply>,
}

/// What the compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// The file size before, for file stores.
    pub bytes_before: Option<u64>,
    /// The file size after, for file stores.
    pub bytes_after: Option<u64>,
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// Where the backup is.
    pub path: PathBuf,
    /// How many entries (state values, journal records and bookkeeping
    /// entries) it holds.
    pub entries: u64,
    /// The upper end of the version reservation it captures: every version
    /// in the backup is at most this, and a store restored from it hands out
    /// larger versions only.
    pub revision: u64,
}

/// Everything the writer thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Write(WriteRequest),
    Compact(oneshot::Sender<Result<CompactionReport, Error>>),
    Restore {
        source: PathBuf,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// Commit what is queued, flush, release the file, stop.
    Shutdown,
}
