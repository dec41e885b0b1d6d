//! The redb backend: a store file behind the [`Backend`] seam.
//!
//! A store file is written through its writer thread (group commit, see
//! `writer.rs`); reads run on the calling task. (In-memory stores are
//! another backend, `memory_backend.rs`.)
//!
//! Opening (the checks that refuse files that are not stores, the atomic
//! creation), the write paths and the maintenance operations (backup,
//! restore, compaction, reached through [`StoreFile`](crate::StoreFile))
//! live here. This module is not for the typed keyspaces or for the
//! engine-neutral [`Store`](crate::Store).

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use redb::{Database, ReadableDatabase};
use tokio::sync::{oneshot, watch};

use crate::backend::{
    Backend, BackendFuture, JournalKeyspace, Op, StateKeyspace, StoredEntry, StoredValue,
};
use crate::classify::{closed, storage_error};
use crate::contain::contain;
use crate::journal::StreamHead;
#[cfg(test)]
use crate::layout::REVISION_KEY;
use crate::layout::{FORMAT_KEY, STORE_FORMAT, SYSTEM};
use crate::lease::Lease;
use crate::maintenance::check_format;
use crate::ops::{
    Answer, BackupReport, Command, CompactionReport, LeaseOp, Outcome, Version, Work, WriteRequest,
};
use crate::options::StoreOptions;
use crate::read;
use crate::shared::{Shared, deadline_after};
use crate::writer::{spawn_backup, spawn_writer};

/// The redb backend of a store: its shared state and how writes reach the
/// database.
pub(crate) struct RedbBackend {
    shared: Arc<Shared>,
    writes: Writes,
}

/// How writes reach the database: through the writer thread, which
/// group-commits.
struct Writes {
    commands: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stopped: watch::Receiver<bool>,
}

impl RedbBackend {
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
    pub(crate) fn open(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<RedbBackend, Error> {
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
            RedbBackend::start(database, Some(path.to_path_buf()), options)
        })
        .map_err(with_path)
    }

    fn start(
        database: Database,
        path: Option<PathBuf>,
        options: &StoreOptions,
    ) -> Result<RedbBackend, Error> {
        prepare(&database, path.as_deref(), Preparing::Existing)?;
        crate::metrics::describe();
        let shared = Arc::new(Shared::new(database, path, options.clone()));
        let (commands, receiver) = mpsc::channel();
        let (stopped_sender, stopped) = watch::channel(false);
        let writer = spawn_writer(Arc::clone(&shared), receiver, stopped_sender)?;
        Ok(RedbBackend {
            shared,
            writes: Writes {
                commands,
                writer: Mutex::new(Some(writer)),
                stopped,
            },
        })
    }

    /// Writes a consistent copy of the store, as of now, to `destination`,
    /// which must not exist yet. Writes go on while the copy is made (on its
    /// own thread); none after the snapshot is in the copy.
    ///
    /// The copy is a store file: open it with [`Store::open`] or load it
    /// into a store with [`restore`](crate::StoreFile::restore).
    ///
    /// # Errors
    ///
    /// `already_exists` for an existing destination; `timeout` after the
    /// maintenance timeout; the I/O error's code when writing fails (a
    /// partial copy is removed); `service_unavailable` once the store is
    /// closed (closing also stops a running backup).
    pub(crate) async fn backup(
        &self,
        destination: impl AsRef<Path>,
    ) -> Result<BackupReport, Error> {
        let shared = &self.shared;
        let snapshot = shared
            .read(|database| {
                database
                    .begin_read()
                    .map_err(|error| storage_error(error, "begin_read"))
            })
            .await?;
        let deadline = deadline_after(shared.options.maintenance_timeout);
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
    pub(crate) async fn restore(&self, source: impl AsRef<Path>) -> Result<u64, Error> {
        let shared = &self.shared;
        let source = source.as_ref().to_path_buf();
        let (reply, answer) = oneshot::channel();
        shared.check_open()?;
        self.writes
            .commands
            .send(Command::Restore { source, reply })
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
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
    pub(crate) async fn compact(&self) -> Result<CompactionReport, Error> {
        let shared = &self.shared;
        let (reply, answer) = oneshot::channel();
        shared.check_open()?;
        self.writes
            .commands
            .send(Command::Compact(reply))
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
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
    pub(crate) async fn close(&self) -> Result<(), Error> {
        self.shared.mark_closed();
        self.shared.changes.close();
        let _ = self.writes.commands.send(Command::Shutdown);
        let mut stopped = self.writes.stopped.clone();
        // An error means the writer thread is gone (it exited or panicked):
        // stopped either way.
        let _ = stopped.wait_for(|stopped| *stopped).await;
        self.join_writer();
        Ok(())
    }

    /// Queues operations as one all-or-nothing request and waits for the
    /// commit that holds them.
    pub(crate) async fn submit(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, Error> {
        if ops.is_empty() {
            self.shared.check_open()?;
            return Ok(Vec::new());
        }
        let bytes = ops.iter().map(Op::encoded_bytes).sum();
        match self.submit_work(Work::Ops(ops), bytes).await? {
            Answer::Outcomes(outcomes) => Ok(outcomes),
            Answer::Leases(_) => Err(unexpected_answer()),
        }
    }

    /// Queues a lease operation; it commits with the batch it joins.
    async fn submit_lease(&self, op: LeaseOp) -> Result<Vec<Result<Lease, Error>>, Error> {
        match self.submit_work(Work::Lease(op), 0).await? {
            Answer::Leases(leases) => Ok(leases),
            Answer::Outcomes(_) => Err(unexpected_answer()),
        }
    }

    /// Queues one request for the writer and waits for its answer.
    async fn submit_work(&self, work: Work, bytes: usize) -> Result<Answer, Error> {
        let shared = &self.shared;
        shared.check_open()?;
        shared.check_writable()?;
        let commands = &self.writes.commands;
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            work,
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
}

impl RedbBackend {
    fn join_writer(&self) {
        let handle = self
            .writes
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The writer has stopped or is stopping; a panic in it was
            // already answered to its waiters as `service_unavailable`.
            let _ = handle.join();
        }
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        self.shared.mark_closed();
        let _ = self.writes.commands.send(Command::Shutdown);
        self.join_writer();
    }
}

fn unexpected_answer() -> Error {
    Error::new(
        ErrorCode::INTERNAL_ERROR,
        "the store's writer answered a request with another kind of answer",
    )
}

/// The one lease of an answer that holds exactly one.
fn single(mut answers: Vec<Result<Lease, Error>>) -> Result<Lease, Error> {
    match (answers.pop(), answers.is_empty()) {
        (Some(answer), true) => answer,
        _ => Err(unexpected_answer()),
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

impl fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbBackend")
            .field("store", &self.shared.name)
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

impl RedbBackend {
    /// The store file, or `None` in memory.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }
}

impl RedbBackend {
    /// A state value decoded in place, while redb lends its bytes: the
    /// typed API's fast path for the built-in engine (no copy, no boxed
    /// future), equivalent to [`Backend::get`].
    pub(crate) async fn get_decoded<R>(
        &self,
        keyspace: &StateKeyspace,
        key: &str,
        decode: impl FnOnce(Version, &[u8]) -> Result<R, Error>,
    ) -> Result<Option<R>, Error> {
        self.shared
            .read(|database| {
                read::get_state(database, &keyspace.storage, key, |version, envelope| {
                    decode(Version(version), envelope)
                })
            })
            .await
    }
}

impl Backend for RedbBackend {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn write(&self, ops: Vec<Op>) -> BackendFuture<'_, Vec<Outcome>> {
        Box::pin(self.submit(ops))
    }

    fn acquire_lease(
        &self,
        name: String,
        owner: String,
        ttl: Duration,
    ) -> BackendFuture<'_, Lease> {
        Box::pin(async move {
            single(
                self.submit_lease(LeaseOp::Acquire { name, owner, ttl })
                    .await?,
            )
        })
    }

    fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
    ) -> BackendFuture<'_, Vec<Result<Lease, Error>>> {
        Box::pin(self.submit_lease(LeaseOp::Renew { leases, ttl }))
    }

    fn release_lease(&self, lease: Lease) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            self.submit_lease(LeaseOp::Release(lease)).await?;
            Ok(())
        })
    }

    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            self.submit_lease(LeaseOp::Claim {
                prefix,
                owner,
                ttl,
                limit,
            })
            .await?
            .into_iter()
            .collect()
        })
    }

    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        Box::pin(
            self.shared.read(move |database| {
                read::list_leases(database, &prefix, after.as_deref(), limit)
            }),
        )
    }

    fn get<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        key: &'a str,
    ) -> BackendFuture<'a, Option<StoredValue>> {
        Box::pin(self.shared.read(move |database| {
            read::get_state(database, &keyspace.storage, key, |version, envelope| {
                Ok(StoredValue {
                    version: Version(version),
                    envelope: envelope.to_vec(),
                })
            })
        }))
    }

    fn list<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<StoredEntry>> {
        Box::pin(self.shared.read(move |database| {
            read::list_state(
                database,
                &keyspace.storage,
                prefix,
                after,
                limit,
                |key, version, envelope| {
                    Ok(StoredEntry {
                        key: key.to_owned(),
                        value: StoredValue {
                            version: Version(version),
                            envelope: envelope.to_vec(),
                        },
                    })
                },
            )
        }))
    }

    fn read_journal<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> BackendFuture<'a, Vec<(u64, Vec<u8>)>> {
        Box::pin(self.shared.read(move |database| {
            read::read_journal(
                database,
                &journal.records,
                stream,
                from,
                limit,
                |sequence, envelope| Ok((sequence, envelope.to_vec())),
            )
        }))
    }

    fn journal_head<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
    ) -> BackendFuture<'a, StreamHead> {
        Box::pin(async move {
            let (next_sequence, truncated_through) = self
                .shared
                .read(|database| read::journal_head(database, &journal.heads, stream))
                .await?;
            Ok(StreamHead {
                next_sequence,
                truncated_through,
            })
        })
    }

    fn list_streams<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<String>> {
        Box::pin(self.shared.read(move |database| {
            read::list_streams(database, &journal.heads, prefix, after, limit)
        }))
    }

    fn close(&self) -> BackendFuture<'_, ()> {
        Box::pin(RedbBackend::close(self))
    }

    fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn changes(&self) -> Result<crate::watch::Changes, Error> {
        self.shared.changes.subscribe()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

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
        let backend = store.redb().unwrap();
        let probes = store.state::<Probe>("probes").unwrap();
        let queued = &backend.shared.queued_writes;
        queued.store(4, std::sync::atomic::Ordering::SeqCst);
        let error = probes.put("k", &Probe(1)).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::QUEUE_FULL);
        assert!(error.is_retryable());
        assert_eq!(queued.load(std::sync::atomic::Ordering::SeqCst), 4);
        queued.store(3, std::sync::atomic::Ordering::SeqCst);
        probes.put("k", &Probe(1)).await.unwrap();
        assert_eq!(queued.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;
    use crate::Store;
    use crate::apply::VERSION_BLOCK;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Probe(u32);

    impl crate::Record for Probe {
        const TYPE_TAG: &'static str = "probe";
        const SCHEMA_VERSION: u32 = 1;
    }

    fn reserved(store: &Store) -> u64 {
        let backend = store.redb().unwrap();
        let guard = backend.shared.writer_read();
        read::system_value(guard.as_ref().unwrap(), REVISION_KEY)
            .unwrap()
            .unwrap_or(0)
    }

    /// Versions are per key and drawn from a reserved block: the system row
    /// is written once per block (and once after each open), not by every
    /// commit, and a reopened store never repeats a version.
    #[tokio::test]
    async fn the_version_reservation_is_not_rewritten_by_every_commit() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("versions.redb");
        let store = Store::open(&path, &StoreOptions::new()).unwrap();
        let probes = store.state::<Probe>("probes").unwrap();
        let first = probes.put("k", &Probe(0)).await.unwrap();
        let reservation = reserved(&store);
        assert_eq!(reservation, first.get() + VERSION_BLOCK);
        let mut last = first;
        for n in 1..100 {
            let version = probes.put(&format!("k{n}"), &Probe(n)).await.unwrap();
            assert!(version > last);
            last = version;
        }
        assert_eq!(reserved(&store), reservation, "not rewritten per commit");
        store.close().await.unwrap();
        drop((probes, store));

        let store = Store::open(&path, &StoreOptions::new()).unwrap();
        let probes = store.state::<Probe>("probes").unwrap();
        let after_reopen = probes.put("k", &Probe(1)).await.unwrap();
        assert!(after_reopen.get() > reservation, "no version repeats");
        store.close().await.unwrap();
    }
}
