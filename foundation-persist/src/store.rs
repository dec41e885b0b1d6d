//! [`Store`]: the engine-neutral handle users hold. It opens the built-in
//! redb backend (a file or memory) or wraps any other [`Backend`], hands
//! out the typed keyspaces, and passes their encoded writes and reads to
//! the backend.
//!
//! This module is not for the typed keyspaces (`state.rs`, `journal.rs`,
//! `metadata.rs`), for the redb engine (`redb_backend.rs`, `writer.rs`) or
//! for maintenance of a redb file (`file.rs`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};

use crate::backend::{Backend, Op};
use crate::batch::WriteBatch;
use crate::classify::closed;
use crate::codec::Record;
use crate::file::StoreFile;
use crate::journal::Journal;
use crate::lease::Leases;
use crate::memory_backend::MemoryBackend;
use crate::metadata::Metadata;
use crate::ops::Outcome;
use crate::options::StoreOptions;
use crate::redb_backend::RedbBackend;
use crate::state::StateStore;

/// A durable store: typed keyspaces over a storage [`Backend`]: a redb
/// file written through one group-committing writer thread
/// ([`open`](Store::open)), redb's in-memory storage
/// ([`open_in_memory`](Store::open_in_memory)), or another backend
/// ([`with_backend`](Store::with_backend)).
///
/// `Store` is a cheap handle (clone it freely); the store closes with
/// [`close`](Store::close) or when the last handle (including keyspace
/// handles) is dropped. Dropping commits what is queued and joins the writer
/// thread, which blocks for as long as that takes: prefer `close().await`
/// in async code.
///
/// Opening is a blocking call (after a crash redb repairs the file first):
/// call it at start-up, or from a blocking context.
///
/// The store sets no tokio timer: the writer enforces each write's
/// deadline on the real clock. Under paused tokio time, though, a file
/// store's write waits on the writer thread, and tokio auto-advances its
/// clock to the next pending timer meanwhile; tests under paused time
/// should use [`open_in_memory`](Store::open_in_memory), whose calls
/// complete within their first poll.
///
/// ```
/// use foundation_persist::{Record, Store, StoreOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Counter {
///     hits: u64,
/// }
///
/// impl Record for Counter {
///     const TYPE_TAG: &'static str = "counter";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let directory = tempfile::tempdir()?;
/// let store = Store::open(directory.path().join("state.redb"), &StoreOptions::new())?;
/// let counters = store.state::<Counter>("counters")?;
/// let version = counters.put("home", &Counter { hits: 1 }).await?;
/// let entry = counters.get_versioned("home").await?.expect("just written");
/// assert_eq!(entry.version, version);
/// assert_eq!(entry.value, Counter { hits: 1 });
/// store.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    options: StoreOptions,
}

impl Store {
    /// Opens the store at `path`, creating the file and its directory if
    /// they are missing.
    ///
    /// # Errors
    ///
    /// `store_in_use` when another process (or another open handle in this
    /// process) holds the file; `unsupported_version` for a store written by
    /// a newer version of this crate; `data_corruption` (naming the path)
    /// for a file that is not a readable store: an empty file, a file that
    /// is not a redb database, a redb database of another application
    /// (one without this crate's store format), or a damaged store. Such
    /// a file is left untouched (byte for byte) when it shut down cleanly;
    /// only a missing path creates a store. The I/O error's code (for
    /// example `permission_denied`) when the file cannot be opened or
    /// created.
    ///
    /// # Integrity
    ///
    /// After an unclean shutdown redb repairs the file on open, walking
    /// every committed page and verifying its checksum, so a crash never
    /// leaves damage unnoticed. A file that shut down cleanly is trusted;
    /// damage done to it outside redb (bit rot, a stray write) is found
    /// when the damaged page is read, and fails that read (or this open)
    /// with `data_corruption`, never a panic. To verify every page on
    /// every open, set
    /// [`StoreOptions::check_integrity_on_open`]; it reads the whole file
    /// (see that option for the measured cost).
    pub fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store, Error> {
        let backend = RedbBackend::open(path, options)?;
        Ok(Store::with_backend(Arc::new(backend), options))
    }

    /// Opens a store that lives in memory and disappears with it, for
    /// tests.
    ///
    /// It is a backend of its own (ordered maps behind a mutex), with the
    /// same API and semantics as a file store: versions, compare-and-set,
    /// all-or-nothing batches, classified errors; the conformance suite
    /// checks both. It has no writer thread: each write is applied on the
    /// calling task, so every call completes within its first poll, and
    /// under paused tokio time tests stay deterministic. The durability,
    /// queue and batch options do not apply to it, and it has no file:
    /// [`file`](Store::file) is `None` (no backup, restore or compaction).
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps the signature of [`open`](Store::open).
    pub fn open_in_memory(options: &StoreOptions) -> Result<Store, Error> {
        Ok(Store::with_backend(
            Arc::new(MemoryBackend::new(Arc::clone(&options.clock))),
            options,
        ))
    }

    /// A store served by `backend`, for example the PostgreSQL backend of
    /// another crate. The typed API behaves the same on every backend that
    /// passes the conformance suite (feature `conformance`). Of `options`,
    /// the store itself uses the key and value limits; the rest is for the
    /// backend to honour when it was built from them.
    ///
    /// The store closes the backend with [`close`](Store::close); dropping
    /// the last handle drops the backend, which must then release its
    /// resources itself.
    pub fn with_backend(backend: Arc<dyn Backend>, options: &StoreOptions) -> Store {
        Store {
            inner: Arc::new(Inner {
                backend,
                options: options.clone(),
            }),
        }
    }

    /// A typed state keyspace: values of `T` keyed by id.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a name that is not 1 to 64 characters of `a-z`,
    /// `0-9`, `_`, `-`, `.`; `invalid_config_value` when `T`'s migrations
    /// are inconsistent.
    pub fn state<T: Record>(&self, keyspace: &str) -> Result<StateStore<T>, Error> {
        StateStore::new(self.clone(), keyspace)
    }

    /// A typed append-only journal keyspace: records of `T` per stream.
    ///
    /// # Errors
    ///
    /// As for [`state`](Store::state).
    pub fn journal<T: Record>(&self, keyspace: &str) -> Result<Journal<T>, Error> {
        Journal::new(self.clone(), keyspace)
    }

    /// The metadata keyspace: a few named values of any [`Record`] type.
    pub fn metadata(&self) -> Metadata {
        Metadata::new(self.clone())
    }

    /// A batch of writes to any keyspaces of this store, committed together
    /// or not at all.
    pub fn batch(&self) -> WriteBatch {
        WriteBatch::new(self.clone())
    }

    /// The store's leases: ownership of named work among the processes
    /// sharing this store, with fencing tokens ([`WriteBatch::fence`]).
    pub fn leases(&self) -> Leases {
        Leases::new(self.clone())
    }

    /// The maintenance surface of a store file, the built-in redb backend
    /// (backup, restore, compaction, the file path); `None` for an
    /// in-memory store and for other backends, which have their own tools
    /// (a PostgreSQL store is backed up with PostgreSQL's).
    pub fn file(&self) -> Option<StoreFile> {
        self.redb().map(|_| StoreFile::new(self.clone()))
    }

    pub(crate) fn redb(&self) -> Option<&RedbBackend> {
        self.inner.backend.as_any().downcast_ref::<RedbBackend>()
    }

    /// The backend serving this store.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// Stops accepting work, commits what is already queued, makes it
    /// durable, releases the file and stops the writer thread. Every later
    /// call on this store or its keyspaces fails with `service_unavailable`.
    /// Closing twice is harmless.
    ///
    /// Waits for the writes already queued to commit (each bounded by the
    /// write timeout while it waits in the queue, then by its commit, which
    /// waits for the disk: a disk that never answers an fsync is the one
    /// wait that is not bounded here) and, for a file store, for the writer
    /// thread to stop.
    ///
    /// # Cancel safety
    ///
    /// The store is marked closed before the first await, so dropping the
    /// future still closes it: no new work is accepted and the writer
    /// finishes the queued writes and releases the file on its own; only
    /// the wait for that is abandoned. Reopening the same file in this
    /// process can then fail with `store_in_use` until it is done.
    ///
    /// # Errors
    ///
    /// Never for the built-in backends today; another backend may report a
    /// failed final flush.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.backend.close().await
    }

    /// A new consumer of the store's change feed: the committed puts and
    /// deletes of the keyspaces named by
    /// [`StoreOptions::watch`], from now on, by any writer the
    /// backend hears of (this process for memory and redb, every node for
    /// PostgreSQL). See [`crate::watch`].
    ///
    /// # Errors
    ///
    /// `service_unavailable` once the store is closed.
    pub fn changes(&self) -> Result<crate::watch::Changes, Error> {
        if self.is_closed() {
            return Err(closed());
        }
        self.inner.backend.changes()
    }

    /// Whether [`close`](Store::close) was called or the store is shutting down.
    pub fn is_closed(&self) -> bool {
        self.inner.backend.is_closed()
    }

    /// How errors name this store: its file path, `memory`, or what its
    /// backend calls itself.
    pub fn name(&self) -> &str {
        self.inner.backend.name()
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    pub(crate) fn same_store(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Hands operations to the backend as one all-or-nothing request and
    /// waits for the commit that holds them.
    pub(crate) async fn submit(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, Error> {
        if self.is_closed() {
            return Err(closed());
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let expected = ops.len();
        let outcomes = self.inner.backend.write(ops).await?;
        if outcomes.len() != expected {
            return Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                format!(
                    "the backend answered a write of {expected} operations with {} outcomes",
                    outcomes.len()
                ),
            )
            .with_context("store", self.name()));
        }
        Ok(outcomes)
    }

    /// Hands one operation to the backend.
    pub(crate) async fn submit_one(&self, op: Op) -> Result<Outcome, Error> {
        let mut outcomes = self.submit(vec![op]).await?;
        outcomes.pop().ok_or_else(|| {
            Error::new(
                ErrorCode::INTERNAL_ERROR,
                "the backend answered a write without its outcome",
            )
        })
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
