//! Write operations as the writer sees them: already encoded, already
//! validated, addressed to tables by name.
//!
//! Typed handles (`state.rs`, `journal.rs`, `metadata.rs`, `batch.rs`)
//! build these; `apply.rs` executes them inside a transaction. The public
//! result types of writes and maintenance ([`Version`], [`Outcome`],
//! [`BackupReport`], [`CompactionReport`]) live here too. This module is
//! not for encoding values (`codec.rs`) or for applying operations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use foundation_error::Error;
use tokio::sync::oneshot;

use crate::layout::JournalTables;

/// A store revision: the version of a state value, unique across the
/// store's history, growing with every write.
///
/// A key that is deleted and written again gets a new, larger version, so a
/// compare-and-set against an old version can never succeed by accident.
///
/// It serialises as its number, so a record may remember the version it was
/// derived from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub(crate) u64);

impl Version {
    /// The version with this revision number, for example one read back
    /// from a record that remembered it.
    pub const fn new(revision: u64) -> Version {
        Version(revision)
    }

    /// The revision number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// What a state write requires of the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Nothing: write unconditionally.
    Any,
    /// The key must be absent.
    Absent,
    /// The key must hold exactly this version.
    Version(u64),
}

/// One encoded write.
#[derive(Debug)]
pub(crate) enum Op {
    Put {
        table: Arc<str>,
        key: String,
        value: Vec<u8>,
        expect: Expect,
    },
    Delete {
        table: Arc<str>,
        key: String,
        expect: Expect,
    },
    Append {
        journal: JournalTables,
        stream: String,
        record: Vec<u8>,
        expect_sequence: Option<u64>,
    },
    Truncate {
        journal: JournalTables,
        stream: String,
        through: u64,
    },
}

impl Op {
    /// The bytes this operation adds to a batch, for the batch size bound.
    pub(crate) fn encoded_bytes(&self) -> usize {
        match self {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Delete { key, .. } => key.len(),
            Op::Append { stream, record, .. } => stream.len() + record.len(),
            Op::Truncate { stream, .. } => stream.len(),
        }
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
}

/// The answer to a write request: one outcome per operation, or why none
/// was applied.
pub(crate) type WriteReply = Result<Vec<Outcome>, Error>;

/// A group of operations that commit together or not at all.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) ops: Vec<Op>,
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
    /// The store revision it captures: every write up to this revision is in
    /// it, none after.
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
