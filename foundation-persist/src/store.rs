//! [`Store`]: opening, the write paths, maintenance (backup, restore,
//! compaction) and closing.
//!
//! A file store writes through its writer thread (group commit, see
//! `writer.rs`). An in-memory store, which has no fsync to amortise, writes
//! inline: each write is applied and committed on the calling task, in its
//! own transaction, so the write's future completes within its first poll.
//! That keeps tests under paused tokio time deterministic: a test never
//! waits on another thread, so tokio never auto-advances the clock while a
//! write is in flight.
//!
//! This module is not for the typed keyspaces (`state.rs`, `journal.rs`,
//! `metadata.rs`) or for batching (`writer.rs`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use foundation_error::{Error, ErrorCode};
use redb::{Database, ReadableDatabase};
use tokio::sync::{oneshot, watch};

use crate::apply::commit_requests;
use crate::batch::WriteBatch;
use crate::classify::{closed, storage_error};
use crate::codec::Record;
use crate::contain::contain;
use crate::journal::Journal;
use crate::layout::{FORMAT_KEY, REVISION_KEY, STORE_FORMAT, SYSTEM};
use crate::maintenance::{self, check_format};
use crate::metadata::Metadata;
use crate::ops::{BackupReport, Command, CompactionReport, Op, Outcome, WriteRequest};
use crate::options::StoreOptions;
use crate::read;
use crate::shared::{Shared, deadline_after};
use crate::state::StateStore;
use crate::writer::{spawn_backup, spawn_writer};

/// A durable store: typed keyspaces over one redb file, written through one
/// group-committing writer thread.
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
    shared: Arc<Shared>,
    writes: Writes,
}

/// How writes reach the database.
enum Writes {
    /// Through the writer thread, which group-commits (file stores).
    Thread {
        commands: mpsc::Sender<Command>,
        writer: Mutex<Option<JoinHandle<()>>>,
        stopped: watch::Receiver<bool>,
    },
    /// Inline on the calling task, one write at a time (in-memory stores).
    Inline { serial: Mutex<()> },
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
        let path = path.as_ref();
        let with_path = |error: Error| error.with_context("path", path.display());
        let name = path.display().to_string();
        // A damaged file can make redb panic while it opens; see contain.rs.
        contain(&name, "open", || {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::metadata(path) {
                Ok(metadata) => probe_existing(path, &metadata)?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    create_atomically(path, options)?;
                }
                Err(error) => return Err(error.into()),
            }
            let database = open_file(path, options)?;
            Store::start(database, Some(path.to_path_buf()), options)
        })
        .map_err(with_path)
    }

    /// Opens a store that lives in memory and disappears with it, for
    /// tests.
    ///
    /// It has the same API and semantics as a file store (versions,
    /// compare-and-set, all-or-nothing batches, classified errors), except
    /// that it has no writer thread: each write is applied and committed on
    /// the calling task, in its own transaction, so every call completes
    /// within its first poll. Under paused tokio time that keeps tests
    /// deterministic. The write queue options do not apply to it, and its
    /// backups are written on the calling task.
    ///
    /// # Errors
    ///
    /// Only storage errors of the in-memory backend.
    pub fn open_in_memory(options: &StoreOptions) -> Result<Store, Error> {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(options.cache_bytes);
        let database = builder
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|error| storage_error(error, "open"))?;
        prepare(&database, None, Preparing::New)?;
        crate::metrics::describe();
        Ok(Store {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::new(database, None, options.clone())),
                writes: Writes::Inline {
                    serial: Mutex::new(()),
                },
            }),
        })
    }

    fn start(
        database: Database,
        path: Option<PathBuf>,
        options: &StoreOptions,
    ) -> Result<Store, Error> {
        prepare(&database, path.as_deref(), Preparing::Existing)?;
        crate::metrics::describe();
        let shared = Arc::new(Shared::new(database, path, options.clone()));
        let (commands, receiver) = mpsc::channel();
        let (stopped_sender, stopped) = watch::channel(false);
        let writer = spawn_writer(Arc::clone(&shared), receiver, stopped_sender)?;
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                writes: Writes::Thread {
                    commands,
                    writer: Mutex::new(Some(writer)),
                    stopped,
                },
            }),
        })
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

    /// Writes a consistent copy of the store, as of now, to `destination`,
    /// which must not exist yet. Writes go on while the copy is made (on its
    /// own thread); none after the snapshot is in the copy.
    ///
    /// The copy is a store file: open it with [`Store::open`] or load it
    /// into a store with [`restore`](Store::restore).
    ///
    /// # Errors
    ///
    /// `already_exists` for an existing destination; `timeout` after the
    /// maintenance timeout; the I/O error's code when writing fails (a
    /// partial copy is removed); `service_unavailable` once the store is
    /// closed (closing also stops a running backup).
    pub async fn backup(&self, destination: impl AsRef<Path>) -> Result<BackupReport, Error> {
        let shared = &self.inner.shared;
        let snapshot = shared
            .read(|database| {
                database
                    .begin_read()
                    .map_err(|error| storage_error(error, "begin_read"))
            })
            .await?;
        let deadline = deadline_after(shared.options.maintenance_timeout);
        if let Writes::Inline { .. } = self.inner.writes {
            let never_abandoned = || false;
            return contain(&shared.name, "backup", || {
                maintenance::write_backup(
                    &snapshot,
                    destination.as_ref(),
                    deadline,
                    &never_abandoned,
                )
            });
        }
        let (reply, answer) = oneshot::channel();
        spawn_backup(
            shared.name.clone(),
            snapshot,
            destination.as_ref().to_path_buf(),
            deadline,
            reply,
        )?;
        answer.await.map_err(|_| {
            Error::new(
                ErrorCode::INTERNAL_ERROR,
                "the backup thread stopped without an answer",
            )
        })?
    }

    /// Replaces the whole contents of this store with the backup at
    /// `source`, in one durable transaction; returns the number of entries
    /// restored. Readers see the old contents until the commit and the new
    /// ones after; writes wait behind the restore. Versions keep growing
    /// across a restore, so compare-and-set with a version read before it
    /// fails rather than matching by accident.
    ///
    /// A store that is closed can also be restored by copying the backup
    /// file over the store file.
    ///
    /// # Errors
    ///
    /// `data_not_found` when `source` does not exist, `invalid_input` when
    /// it is a redb file but not a store, `data_corruption` when it is not a
    /// redb file, `unsupported_version` for a newer store format,
    /// `store_in_use` when the backup file is open for writing elsewhere,
    /// `timeout` (nothing restored) after the maintenance timeout.
    pub async fn restore(&self, source: impl AsRef<Path>) -> Result<u64, Error> {
        let shared = &self.inner.shared;
        match &self.inner.writes {
            Writes::Thread { commands, .. } => {
                let source = source.as_ref().to_path_buf();
                let (reply, answer) = oneshot::channel();
                shared.check_open()?;
                commands
                    .send(Command::Restore { source, reply })
                    .map_err(|_| closed())?;
                answer.await.map_err(|_| closed())?
            }
            Writes::Inline { serial } => {
                let _serial = serial.lock().unwrap_or_else(PoisonError::into_inner);
                shared.check_open()?;
                let guard = shared.writer_read();
                let database = guard.as_ref().ok_or_else(closed)?;
                let deadline = deadline_after(shared.options.maintenance_timeout);
                contain(&shared.name, "restore", || {
                    maintenance::restore(database, source.as_ref(), deadline)
                })
                .inspect_err(|error| fail_writes_after_panic(shared, error))
            }
        }
    }

    /// Compacts the store file, returning free space to the file system.
    /// Reads wait (without blocking their thread) and writes queue while it
    /// runs; it stops early, keeping what it achieved, at the maintenance
    /// timeout.
    ///
    /// # Errors
    ///
    /// `service_unavailable` while a backup is running (its snapshot pins
    /// pages) or once the store is closed.
    pub async fn compact(&self) -> Result<CompactionReport, Error> {
        let shared = &self.inner.shared;
        match &self.inner.writes {
            Writes::Thread { commands, .. } => {
                let (reply, answer) = oneshot::channel();
                shared.check_open()?;
                commands
                    .send(Command::Compact(reply))
                    .map_err(|_| closed())?;
                answer.await.map_err(|_| closed())?
            }
            Writes::Inline { serial } => {
                let _serial = serial.lock().unwrap_or_else(PoisonError::into_inner);
                shared.check_open()?;
                contain(&shared.name, "compact", || {
                    maintenance::compact(shared, deadline_after(shared.options.maintenance_timeout))
                })
                .inspect_err(|error| fail_writes_after_panic(shared, error))
            }
        }
    }

    /// The store revision: the version the most recent state write got.
    ///
    /// # Errors
    ///
    /// `service_unavailable` once the store is closed; storage errors.
    pub async fn revision(&self) -> Result<u64, Error> {
        self.inner
            .shared
            .read(|database| Ok(read::system_value(database, REVISION_KEY)?.unwrap_or(0)))
            .await
    }

    /// Stops accepting work, commits what is already queued, makes it
    /// durable, releases the file and stops the writer thread. Every later
    /// call on this store or its keyspaces fails with `service_unavailable`.
    /// Closing twice is harmless.
    ///
    /// # Errors
    ///
    /// Never today; the `Result` leaves room for reporting a failed final
    /// flush.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.shared.mark_closed();
        match &self.inner.writes {
            Writes::Thread {
                commands, stopped, ..
            } => {
                let _ = commands.send(Command::Shutdown);
                let mut stopped = stopped.clone();
                // An error means the writer thread is gone (it exited or
                // panicked): stopped either way.
                let _ = stopped.wait_for(|stopped| *stopped).await;
                self.inner.join_writer();
            }
            Writes::Inline { .. } => self.inner.release_inline(),
        }
        Ok(())
    }

    /// Whether [`close`](Store::close) was called or the store is shutting down.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// The store file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.inner.shared.path.as_deref()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub(crate) fn same_store(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Queues operations as one all-or-nothing request and waits for the
    /// commit that holds them.
    pub(crate) async fn submit(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, Error> {
        let shared = &self.inner.shared;
        shared.check_open()?;
        shared.check_writable()?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let commands = match &self.inner.writes {
            Writes::Thread { commands, .. } => commands,
            Writes::Inline { serial } => {
                let _serial = serial.lock().unwrap_or_else(PoisonError::into_inner);
                shared.check_open()?;
                shared.check_writable()?;
                let guard = shared.writer_read();
                let database = guard.as_ref().ok_or_else(closed)?;
                let (mut replies, _) = contain(&shared.name, "commit", || {
                    commit_requests(database, std::iter::once(ops.as_slice()), true)
                })
                .inspect_err(|error| fail_writes_after_panic(shared, error))?;
                return replies.pop().unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorCode::INTERNAL_ERROR,
                        "an inline write produced no reply",
                    ))
                });
            }
        };
        let bytes = ops.iter().map(Op::encoded_bytes).sum();
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            ops,
            bytes,
            deadline: deadline_after(shared.options.write_timeout),
            reply,
        };
        let limit = shared.options.max_queued_writes;
        let queued = shared
            .queued_writes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if queued >= limit {
            shared
                .queued_writes
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(Error::new(
                ErrorCode::QUEUE_FULL,
                "the store's write queue is full; retry with backoff",
            )
            .with_context("max_queued_writes", limit));
        }
        if commands.send(Command::Write(request)).is_err() {
            shared
                .queued_writes
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(closed());
        }
        // The writer answers every request it takes (committed, rejected,
        // timed out or refused at shutdown); a dropped sender means the
        // writer is gone.
        answer.await.map_err(|_| closed())?
    }

    /// Queues one operation.
    pub(crate) async fn submit_one(&self, op: Op) -> Result<Outcome, Error> {
        let mut outcomes = self.submit(vec![op]).await?;
        outcomes.pop().ok_or_else(|| {
            Error::new(
                ErrorCode::INTERNAL_ERROR,
                "the writer answered a write without its outcome",
            )
        })
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Inner {
    fn join_writer(&self) {
        let Writes::Thread { writer, .. } = &self.writes else {
            return;
        };
        let handle = writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            // The writer has stopped or is stopping; a panic in it was
            // already answered to its waiters as `service_unavailable`.
            let _ = handle.join();
        }
    }

    /// Releases the database of an in-memory store.
    fn release_inline(&self) {
        let Writes::Inline { serial } = &self.writes else {
            return;
        };
        let _serial = serial.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.shared.writer_exclusive().take());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.mark_closed();
        match &self.writes {
            Writes::Thread { commands, .. } => {
                let _ = commands.send(Command::Shutdown);
                self.join_writer();
            }
            Writes::Inline { .. } => self.release_inline(),
        }
    }
}

fn open_file(path: &Path, options: &StoreOptions) -> Result<Database, Error> {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(options.cache_bytes);
    builder.set_check_integrity_on_open(options.check_integrity_on_open);
    #[cfg(feature = "fault-injection")]
    if let Some(faults) = &options.fault_injection {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let backend =
            redb::backends::FileBackend::new(file).map_err(|error| storage_error(error, "open"))?;
        return builder
            .create_with_backend(crate::fault::FaultyBackend::new(backend, faults.clone()))
            .map_err(|error| storage_error(error, "open"));
    }
    builder
        .create(path)
        .map_err(|error| storage_error(error, "open"))
}

/// Creates a new store file so that a crash at any moment leaves either no
/// file or a complete, empty store: redb initialises a file in place, and a
/// process killed half-way would leave a file that is not a database and
/// can never be opened. The store is built in a temporary file beside the
/// destination and linked into place (a link never replaces a file another
/// process created meanwhile).
fn create_atomically(path: &Path, options: &StoreOptions) -> Result<(), Error> {
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::new(ErrorCode::INVALID_INPUT, "the store path has no file name"))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut creating_name = std::ffi::OsString::from(".");
    creating_name.push(file_name);
    creating_name.push(format!(".creating-{}", std::process::id()));
    let creating = directory.join(creating_name);
    if creating.exists() {
        std::fs::remove_file(&creating)?;
    }
    let result = (|| {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(options.cache_bytes);
        let database = builder
            .create(&creating)
            .map_err(|error| storage_error(error, "create"))?;
        prepare(&database, Some(path), Preparing::New)?;
        database
            .close()
            .map_err(|error| storage_error(error, "close"))?;
        match std::fs::hard_link(&creating, path) {
            Ok(()) => {}
            // Another process created the store first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error.into()),
        }
        std::fs::File::open(&directory)?.sync_all()?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&creating);
    result
}

/// After a panic inside a write, the store refuses writes until reopened.
pub(crate) fn fail_writes_after_panic(shared: &Shared, error: &Error) {
    if error.context_value("panic").is_some() {
        shared.fail_writes(error);
    }
}

/// Whether [`prepare`] sees a store it just created or an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preparing {
    New,
    Existing,
}

/// Checks the store format and writes it into a new store. An existing
/// file without a store format is another application's redb database:
/// refused, never adopted.
fn prepare(database: &Database, path: Option<&Path>, preparing: Preparing) -> Result<(), Error> {
    let format = read::system_value(database, FORMAT_KEY)?;
    check_format(format, path)?;
    match (format, preparing) {
        (Some(_), _) => return Ok(()),
        (None, Preparing::Existing) => return Err(not_a_store(NO_STORE_FORMAT)),
        (None, Preparing::New) => {}
    }
    let transaction = database
        .begin_write()
        .map_err(|error| storage_error(error, "begin_write"))?;
    {
        let mut system = transaction
            .open_table(SYSTEM)
            .map_err(|error| storage_error(error, "open_table"))?;
        system
            .insert(FORMAT_KEY, STORE_FORMAT)
            .map_err(|error| storage_error(error, "write"))?;
    }
    transaction
        .commit()
        .map_err(|error| storage_error(error, "commit"))
}

const NO_STORE_FORMAT: &str = "the file is a redb database without a foundation-persist store format \
     (another application's database); it was left untouched";

fn not_a_store(why: &str) -> Error {
    Error::new(ErrorCode::DATA_CORRUPTION, format!("not a store: {why}"))
}

/// Checks, without writing to it, that an existing file is a store: not
/// empty, a redb database, with this crate's format. A file that needs
/// redb's repair after an unclean shutdown cannot be read without writing;
/// it is checked after the repair, in [`prepare`].
fn probe_existing(path: &Path, metadata: &std::fs::Metadata) -> Result<(), Error> {
    if !metadata.is_file() {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            "the store path exists but is not a file",
        ));
    }
    if metadata.len() == 0 {
        return Err(not_a_store(
            "the file is empty (a store is never empty: only a missing path creates one); it was left untouched",
        ));
    }
    let database = match redb::Builder::new().open_read_only(path) {
        Ok(database) => database,
        Err(redb::DatabaseError::RepairAborted) => return Ok(()),
        // A lock held elsewhere, a newer redb format and I/O failures keep
        // their own codes; anything else redb cannot open read-only is not
        // a store.
        Err(
            error @ (redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::UpgradeRequired(_)
            | redb::DatabaseError::Storage(redb::StorageError::Io(_))),
        ) => return Err(storage_error(error, "open")),
        Err(error) => {
            return Err(
                not_a_store("the file is not a redb database; it was left untouched")
                    .with_cause(storage_error(error, "open")),
            );
        }
    };
    let format = read::system_value(&database, FORMAT_KEY)?;
    drop(database);
    check_format(format, Some(path))?;
    if format.is_none() {
        return Err(not_a_store(NO_STORE_FORMAT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Probe(u32);

    impl crate::Record for Probe {
        const TYPE_TAG: &'static str = "probe";
        const SCHEMA_VERSION: u32 = 1;
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_queue_full() {
        let mut options = StoreOptions::new();
        options.max_queued_writes(4);
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(directory.path().join("queue.redb"), &options).unwrap();
        let probes = store.state::<Probe>("probes").unwrap();
        let queued = &store.inner.shared.queued_writes;
        queued.store(4, std::sync::atomic::Ordering::SeqCst);
        let error = probes.put("k", &Probe(1)).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::QUEUE_FULL);
        assert!(error.is_retryable());
        assert_eq!(queued.load(std::sync::atomic::Ordering::SeqCst), 4);
        queued.store(3, std::sync::atomic::Ordering::SeqCst);
        probes.put("k", &Probe(1)).await.unwrap();
        assert_eq!(queued.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn store_handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
