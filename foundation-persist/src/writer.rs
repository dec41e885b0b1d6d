//! The writer thread: group commit, and the crate's only OS threads.
//!
//! redb has one write transaction at a time, and a durable commit costs an
//! fsync. One writer thread per store therefore takes every queued write
//! request, collects as many as arrive while it works (bounded by
//! [`StoreOptions::max_batch_operations`](crate::StoreOptions::max_batch_operations),
//! `max_batch_bytes` and a short `max_batch_delay`), applies them in one
//! transaction and commits once; then it answers every request of the
//! batch. A write is acknowledged only after the commit that holds it
//! returned, so with immediate durability an acknowledged write is on disk.
//!
//! The thread is named `foundation-persist-writer`, owned by the store, and
//! stopped and joined by `Store::close` and by the drop of the last store
//! handle. Backups run on a short-lived thread named
//! `foundation-persist-backup` started by [`spawn_backup`], so that a long
//! copy never blocks writes or an async worker. These are the documented
//! exception to "only foundation-core spawns" (see ARCHITECTURE.md): this
//! crate sits beside foundation-core and may not depend on it.
//!
//! This module is not for applying operations (`apply.rs`) or for the
//! async API (`store.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use foundation_error::{Error, ErrorCode};
use redb::ReadTransaction;
use tokio::sync::{oneshot, watch};

use crate::apply::commit_requests;
use crate::classify::{closed, storage_error};
use crate::contain::contain;
use crate::maintenance;
use crate::ops::{BackupReport, Command, CompactionReport, WriteReply, WriteRequest};
use crate::options::Durability;
use crate::shared::{Shared, deadline_after};

const WRITER_THREAD_NAME: &str = "foundation-persist-writer";
const BACKUP_THREAD_NAME: &str = "foundation-persist-backup";

/// Starts the writer thread of a store.
///
/// `stopped` is set to `true` when the thread has released the database and
/// is about to exit.
pub(crate) fn spawn_writer(
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    stopped: watch::Sender<bool>,
) -> Result<JoinHandle<()>, Error> {
    let writer = Writer {
        shared,
        commands,
        stopped,
        undurable_since: None,
    };
    std::thread::Builder::new()
        .name(WRITER_THREAD_NAME.into())
        .spawn(move || writer.run())
        .map_err(|error| {
            Error::new(
                ErrorCode::INITIALIZATION_FAILED,
                "the store's writer thread could not be started",
            )
            .with_cause(error)
        })
}

/// Writes a backup of `snapshot` on its own short-lived thread and answers
/// on `reply`. The copy stops early when the caller stops waiting or the
/// deadline passes.
pub(crate) fn spawn_backup(
    store: String,
    snapshot: ReadTransaction,
    destination: PathBuf,
    deadline: Instant,
    reply: oneshot::Sender<Result<BackupReport, Error>>,
) -> Result<(), Error> {
    std::thread::Builder::new()
        .name(BACKUP_THREAD_NAME.into())
        .spawn(move || {
            let abandoned = || reply.is_closed();
            let result = contain(&store, "backup", || {
                maintenance::write_backup(&snapshot, &destination, deadline, &abandoned)
            });
            drop(snapshot);
            let _ = reply.send(result);
        })
        .map(drop)
        .map_err(|error| {
            Error::new(
                ErrorCode::SERVICE_UNAVAILABLE,
                "the backup thread could not be started",
            )
            .with_cause(error)
        })
}

struct Writer {
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    stopped: watch::Sender<bool>,
    /// With deferred durability: when the oldest commit not yet made
    /// durable happened.
    undurable_since: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        let mut deferred: Option<Command> = None;
        loop {
            let command = match deferred.take() {
                Some(command) => command,
                None => match self.next_command() {
                    Some(command) => command,
                    None => break,
                },
            };
            match command {
                Command::Write(first) => {
                    let batch = self.collect_batch(first, &mut deferred);
                    self.commit(batch);
                }
                Command::Compact(reply) => {
                    let result = self.contained("compact", Writer::compact);
                    let _ = reply.send(result);
                }
                Command::Restore { source, reply } => {
                    let result = self.contained("restore", |writer| writer.restore(&source));
                    let _ = reply.send(result);
                }
                Command::Shutdown => break,
            }
        }
        self.shut_down();
    }

    /// Waits for the next command; flushes deferred commits when they are
    /// due. `None` when every sender is gone.
    fn next_command(&mut self) -> Option<Command> {
        loop {
            let flush_due = match (self.undurable_since, self.shared.options.durability) {
                (Some(since), Durability::Deferred { flush_after }) => Some(
                    since
                        .checked_add(flush_after)
                        .unwrap_or_else(|| deadline_after(flush_after)),
                ),
                _ => None,
            };
            let Some(due) = flush_due else {
                return self.commands.recv().ok();
            };
            match self
                .commands
                .recv_timeout(due.saturating_duration_since(Instant::now()))
            {
                Ok(command) => return Some(command),
                Err(RecvTimeoutError::Timeout) => {
                    if self.contained("flush", Writer::flush).is_err() {
                        // The commits stay pending; retry one interval
                        // later rather than at once, in a loop.
                        self.undurable_since = Some(Instant::now());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Collects the requests that join `first` in one batch.
    fn collect_batch(
        &mut self,
        first: WriteRequest,
        deferred: &mut Option<Command>,
    ) -> Vec<WriteRequest> {
        let options = &self.shared.options;
        self.shared.queued_writes.fetch_sub(1, Ordering::AcqRel);
        let mut operations = first.work.operations();
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        let linger_until = deadline_after(options.max_batch_delay);
        while operations < options.max_batch_operations && bytes < options.max_batch_bytes {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= linger_until {
                        break;
                    }
                    match self.commands.recv_timeout(linger_until - now) {
                        Ok(command) => command,
                        Err(_) => break,
                    }
                }
            };
            match command {
                Command::Write(request) => {
                    self.shared.queued_writes.fetch_sub(1, Ordering::AcqRel);
                    operations += request.work.operations();
                    bytes += request.bytes;
                    batch.push(request);
                }
                other => {
                    *deferred = Some(other);
                    break;
                }
            }
        }
        batch
    }

    /// Commits a batch and answers every request in it.
    fn commit(&mut self, batch: Vec<WriteRequest>) {
        let now = Instant::now();
        let mut live = Vec::with_capacity(batch.len());
        for request in batch {
            if request.reply.is_closed() {
                // The caller stopped waiting before the write was committed:
                // it is dropped, never applied.
                continue;
            }
            if now >= request.deadline {
                let _ = request.reply.send(Err(Error::timeout(
                    "the write waited in the queue longer than the store's write timeout; it was not applied",
                )));
                continue;
            }
            live.push(request);
        }
        if live.is_empty() {
            return;
        }
        if let Err(error) = self.shared.check_writable() {
            for request in live {
                let _ = request.reply.send(Err(error.clone()));
            }
            return;
        }
        match self.contained("commit", |writer| writer.apply_and_commit(&live)) {
            Ok(replies) => {
                for (request, reply) in live.into_iter().zip(replies) {
                    if reply.is_ok()
                        && let crate::ops::Work::Ops(ops) = &request.work
                    {
                        // Committed: tell the watchers before the writer
                        // hears back, so a writer's next read of its feed
                        // already holds its own change.
                        self.shared.changes.publish_committed(ops);
                    }
                    let _ = request.reply.send(reply);
                }
            }
            Err(error) => {
                for request in live {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn apply_and_commit(&mut self, requests: &[WriteRequest]) -> Result<Vec<WriteReply>, Error> {
        let shared = Arc::clone(&self.shared);
        let guard = shared.writer_read();
        let database = guard.as_ref().ok_or_else(closed)?;
        let durable = self.next_commit_durable();
        let mut versions = shared
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = crate::lease::micros(shared.options.clock.wall());
        let (replies, committed) = commit_requests(
            database,
            &mut versions,
            requests.iter().map(|request| &request.work),
            durable,
            now,
        )?;
        if committed {
            self.committed(durable);
        }
        Ok(replies)
    }

    /// Runs `work` with a panic inside the storage engine contained (see
    /// `contain.rs`); after such a panic the store refuses writes until it
    /// is reopened.
    fn contained<R>(
        &mut self,
        operation: &'static str,
        work: impl FnOnce(&mut Writer) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let shared = Arc::clone(&self.shared);
        contain(&shared.name, operation, || work(self))
            .inspect_err(|error| crate::redb_backend::fail_writes_after_panic(&shared, error))
    }

    /// Whether the next commit must be durable: always with immediate
    /// durability; with deferred durability once the oldest non-durable
    /// commit is `flush_after` old.
    fn next_commit_durable(&self) -> bool {
        match (self.shared.options.durability, self.undurable_since) {
            (Durability::Deferred { flush_after }, Some(since)) => since.elapsed() >= flush_after,
            (Durability::Deferred { .. }, None) => false,
            (Durability::Immediate, _) => true,
        }
    }

    fn committed(&mut self, durable: bool) {
        if durable {
            self.undurable_since = None;
        } else if self.undurable_since.is_none() {
            self.undurable_since = Some(Instant::now());
        }
    }

    /// Makes deferred commits durable with an empty durable commit.
    fn flush(&mut self) -> Result<(), Error> {
        if self.undurable_since.is_none() {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let guard = shared.writer_read();
        let database = guard.as_ref().ok_or_else(closed)?;
        let transaction = database
            .begin_write()
            .map_err(|error| storage_error(error, "begin_write"))?;
        transaction
            .commit()
            .map_err(|error| storage_error(error, "commit"))?;
        self.undurable_since = None;
        Ok(())
    }

    fn compact(&mut self) -> Result<CompactionReport, Error> {
        self.flush()?;
        let deadline = deadline_after(self.shared.options.maintenance_timeout);
        maintenance::compact(&self.shared, deadline)
    }

    fn restore(&mut self, source: &std::path::Path) -> Result<u64, Error> {
        self.flush()?;
        let shared = Arc::clone(&self.shared);
        let guard = shared.writer_read();
        let database = guard.as_ref().ok_or_else(closed)?;
        let deadline = deadline_after(shared.options.maintenance_timeout);
        // The restore moves the version reservation; reload it.
        *shared
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        maintenance::restore(database, source, deadline)
    }

    /// Commits what is still queued, flushes, releases the database.
    fn shut_down(mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Write(first)) => {
                    let mut deferred = None;
                    let batch = self.collect_batch(first, &mut deferred);
                    self.commit(batch);
                    if let Some(command) = deferred {
                        self.refuse(command);
                    }
                }
                Ok(other) => self.refuse(other),
                Err(_) => break,
            }
        }
        // Nobody is left to answer: a failed last flush can lose only writes
        // acknowledged under `Durability::Deferred`, which that mode
        // documents; `contained` marks the store failed, and redb repairs
        // the file at the next open.
        let _ = self.contained("flush", Writer::flush);
        let database = self.shared.writer_exclusive().take();
        if let Some(database) = database {
            // Errors on close are already reflected in the commits' answers;
            // redb repairs an unclean file at the next open.
            let _ = contain(&self.shared.name, "close", || {
                database
                    .close()
                    .map_err(|error| storage_error(error, "close"))
            });
        }
        self.stopped.send_replace(true);
    }

    /// Answers a maintenance command that arrived during shutdown.
    fn refuse(&self, command: Command) {
        match command {
            Command::Write(request) => {
                self.shared.queued_writes.fetch_sub(1, Ordering::AcqRel);
                let _ = request.reply.send(Err(closed()));
            }
            Command::Compact(reply) => {
                let _ = reply.send(Err(closed()));
            }
            Command::Restore { reply, .. } => {
                let _ = reply.send(Err(closed()));
            }
            Command::Shutdown => {}
        }
    }
}
