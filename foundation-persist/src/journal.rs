//! Journal keyspaces: append-only records per stream, with sequence numbers.
//!
//! Each stream (a workflow id, an agent id) has its own sequence: the first
//! record is 1, each append takes the next number, and numbers are never
//! reused, even after the records before them are truncated. Appends can
//! require a sequence number (`append_expecting`), which makes a journal a
//! safe log for one writer that might be restarted: a stale writer's append
//! fails with `version_conflict` instead of interleaving.
//!
//! This module is not for state values (`state.rs`).

use std::fmt;
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};

use crate::backend::Op;
use crate::codec::{Codec, Record};
use crate::layout::{self, JournalTables, check_key};
use crate::ops::Outcome;
use crate::state::{check_limit, unexpected};
use crate::store::Store;

/// A journal record with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry<T> {
    /// The record's number in its stream (the first is 1).
    pub sequence: u64,
    /// The record.
    pub record: T,
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamHead {
    /// The sequence number the next append gets (1 for a new stream).
    pub next_sequence: u64,
    /// Records up to and including this number were truncated (0: none).
    pub truncated_through: u64,
}

impl StreamHead {
    /// A stream's position, as a backend in another crate reports it
    /// (`StreamHead::new(1, 0)` for a stream never written).
    pub const fn new(next_sequence: u64, truncated_through: u64) -> StreamHead {
        StreamHead {
            next_sequence,
            truncated_through,
        }
    }
}

/// A typed journal keyspace: records of `T` appended per stream.
///
/// ```
/// use foundation_persist::{Record, Store, StoreOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct StepDone {
///     step: String,
/// }
///
/// impl Record for StepDone {
///     const TYPE_TAG: &'static str = "step_done";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::open_in_memory(&StoreOptions::new())?;
/// let journal = store.journal::<StepDone>("workflow-steps")?;
/// assert_eq!(journal.append("wf-1", &StepDone { step: "fetch".into() }).await?, 1);
/// assert_eq!(journal.append("wf-1", &StepDone { step: "store".into() }).await?, 2);
/// let entries = journal.read("wf-1", 1, 100).await?;
/// assert_eq!(entries[1].record.step, "store");
/// assert_eq!(journal.truncate("wf-1", 1).await?, 1);
/// assert_eq!(journal.read("wf-1", 1, 100).await?.len(), 1);
/// # Ok::<(), foundation_error::Error>(())
/// # }).unwrap();
/// ```
pub struct Journal<T> {
    store: Store,
    name: Arc<str>,
    tables: JournalTables,
    codec: Codec<T>,
}

impl<T> Clone for Journal<T> {
    fn clone(&self) -> Self {
        Journal {
            store: self.store.clone(),
            name: Arc::clone(&self.name),
            tables: self.tables.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<T> fmt::Debug for Journal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("keyspace", &self.name)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Record> Journal<T> {
    pub(crate) fn new(store: Store, name: &str) -> Result<Journal<T>, Error> {
        Ok(Journal {
            tables: layout::journal_tables(name)?,
            store,
            name: name.into(),
            codec: Codec::new()?,
        })
    }

    /// The keyspace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store this journal belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Appends `record` to `stream`; returns its sequence number once
    /// durable.
    ///
    /// # Errors
    ///
    /// As for [`StateStore::put`](crate::StateStore::put), including the
    /// refusal of writes after a storage failure until the store is
    /// reopened.
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the outcome unknown (appended or not, never
    /// half): read the stream's [`head`](Journal::head) or its last records
    /// to find out. Use [`append_expecting`](Journal::append_expecting) to
    /// retry without appending twice.
    pub async fn append(&self, stream: &str, record: &T) -> Result<u64, Error> {
        let op = self.append_op(stream, record, None)?;
        appended(self.store.submit_one(op).await?)
    }

    /// Appends `record` only if it gets sequence number `expected`.
    ///
    /// # Errors
    ///
    /// `version_conflict` when the stream's next number is another;
    /// otherwise as for [`append`](Journal::append).
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the outcome unknown, but retrying is safe:
    /// the same append expecting the same number either succeeds (it was
    /// not applied) or fails with `version_conflict` (it was, or another
    /// writer took the number; read the record to tell).
    pub async fn append_expecting(
        &self,
        stream: &str,
        expected: u64,
        record: &T,
    ) -> Result<u64, Error> {
        let op = self.append_op(stream, record, Some(expected))?;
        appended(self.store.submit_one(op).await?)
    }

    /// Up to `limit` records of `stream` from sequence number `from` on, in
    /// order.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a limit over [`MAX_READ_LIMIT`](crate::MAX_READ_LIMIT)
    /// or a bad stream id; `data_corruption` (naming the keyspace, stream
    /// and sequence) for a record that does not decode;
    /// `unsupported_version`, `type_mismatch` as for state values.
    ///
    /// # Cancel safety
    ///
    /// Safe, as for every read: dropping it abandons only the answer.
    pub async fn read(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<JournalEntry<T>>, Error> {
        check_key(stream, "stream id").map_err(|error| self.locate(error, stream))?;
        check_limit(limit)?;
        if self.store.is_closed() {
            return Err(crate::classify::closed());
        }
        let stored = self
            .store
            .backend()
            .read_journal(&self.tables, stream, from, limit)
            .await?;
        stored
            .into_iter()
            .map(|(sequence, envelope)| {
                let record = self.codec.decode(&envelope).map_err(|error| {
                    self.locate(error, stream)
                        .with_context("sequence", sequence)
                })?;
                Ok(JournalEntry { sequence, record })
            })
            .collect()
    }

    /// Removes the records of `stream` up to and including `through`;
    /// returns how many were removed. Sequence numbers are not reused.
    ///
    /// # Errors
    ///
    /// As for [`append`](Journal::append).
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the outcome unknown (truncated or not, never
    /// partly): [`head`](Journal::head)'s `truncated_through` tells.
    /// Truncating again is harmless.
    pub async fn truncate(&self, stream: &str, through: u64) -> Result<u64, Error> {
        let op = self.truncate_op(stream, through)?;
        match self.store.submit_one(op).await? {
            Outcome::Truncated { removed } => Ok(removed),
            other => Err(unexpected(other)),
        }
    }

    /// Where `stream` stands: its next sequence number and how far it was
    /// truncated.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a bad stream id; storage errors.
    pub async fn head(&self, stream: &str) -> Result<StreamHead, Error> {
        check_key(stream, "stream id").map_err(|error| self.locate(error, stream))?;
        if self.store.is_closed() {
            return Err(crate::classify::closed());
        }
        self.store
            .backend()
            .journal_head(&self.tables, stream)
            .await
    }

    /// Up to `limit` stream ids starting with `prefix`, in order, after
    /// `after` when given. A stream is listed once it has had an append.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a limit over [`MAX_READ_LIMIT`](crate::MAX_READ_LIMIT).
    pub async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        check_limit(limit)?;
        if self.store.is_closed() {
            return Err(crate::classify::closed());
        }
        self.store
            .backend()
            .list_streams(&self.tables, prefix, after, limit)
            .await
    }

    pub(crate) fn append_op(
        &self,
        stream: &str,
        record: &T,
        expect_sequence: Option<u64>,
    ) -> Result<Op, Error> {
        check_key(stream, "stream id").map_err(|error| self.locate(error, stream))?;
        let bytes = self
            .codec
            .encode(record)
            .map_err(|error| self.locate(error, stream))?;
        let limit = self.store.options().max_value_bytes;
        if bytes.len() > limit {
            return Err(self.locate(
                Error::new(
                    ErrorCode::INVALID_INPUT,
                    format!(
                        "the encoded record is {} bytes, more than the store's limit of {limit}",
                        bytes.len()
                    ),
                ),
                stream,
            ));
        }
        Ok(Op::Append {
            journal: self.tables.clone(),
            stream: stream.to_owned(),
            record: bytes,
            expect_sequence,
        })
    }

    pub(crate) fn truncate_op(&self, stream: &str, through: u64) -> Result<Op, Error> {
        check_key(stream, "stream id").map_err(|error| self.locate(error, stream))?;
        Ok(Op::Truncate {
            journal: self.tables.clone(),
            stream: stream.to_owned(),
            through,
        })
    }

    fn locate(&self, error: Error, stream: &str) -> Error {
        let shown: String = stream.chars().take(128).collect();
        let error = if error.context_value("store").is_some() {
            error
        } else {
            error.with_context("store", self.store.name())
        };
        error
            .with_context("keyspace", &*self.name)
            .with_context("stream", shown)
    }
}

fn appended(outcome: Outcome) -> Result<u64, Error> {
    match outcome {
        Outcome::Appended { sequence } => Ok(sequence),
        other => Err(unexpected(other)),
    }
}
