//! The state every part of a store shares: the redb database behind a gate,
//! the closed flag, the options and the queue count.
//!
//! The gate lets many readers and the writer thread use the database at
//! once, and lets the writer thread take it alone for compaction and to
//! release it at close. Readers never block an async worker on the gate:
//! while the writer holds it alone, they await a watch channel that the
//! writer clears when it is done.
//!
//! This module is not for what readers or the writer do with the database.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use foundation_error::Error;
use redb::Database;
use tokio::sync::watch;

use crate::classify::closed;
use crate::options::StoreOptions;

pub(crate) struct Shared {
    database: RwLock<Option<Database>>,
    /// Set (watch first, then this flag) while the writer holds the gate alone.
    exclusive: AtomicBool,
    exclusive_watch: watch::Sender<bool>,
    closed: AtomicBool,
    pub(crate) queued_writes: AtomicUsize,
    /// The versions writes draw from; used by the one writer at a time.
    pub(crate) versions: std::sync::Mutex<Option<crate::apply::VersionBlock>>,
    /// Set when a write panicked inside the storage engine: writes are
    /// refused until the store is reopened.
    write_failure: std::sync::Mutex<Option<Error>>,
    pub(crate) path: Option<PathBuf>,
    /// How errors name this store: its path, or `memory`.
    pub(crate) name: String,
    pub(crate) options: StoreOptions,
    /// The change feed the writer publishes committed watched writes to.
    pub(crate) changes: crate::watch::ChangeFeed,
}

pub(crate) type DatabaseGuard<'a> = RwLockReadGuard<'a, Option<Database>>;

impl Shared {
    pub(crate) fn new(database: Database, path: Option<PathBuf>, options: StoreOptions) -> Shared {
        let name = path
            .as_ref()
            .map_or_else(|| "memory".to_owned(), |path| path.display().to_string());
        Shared {
            changes: crate::watch::ChangeFeed::new(name.clone()),
            database: RwLock::new(Some(database)),
            exclusive: AtomicBool::new(false),
            exclusive_watch: watch::Sender::new(false),
            closed: AtomicBool::new(false),
            queued_writes: AtomicUsize::new(0),
            versions: std::sync::Mutex::new(None),
            write_failure: std::sync::Mutex::new(None),
            name,
            path,
            options,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the store closed; returns whether it already was.
    pub(crate) fn mark_closed(&self) -> bool {
        self.closed.swap(true, Ordering::AcqRel)
    }

    /// Fails with `service_unavailable` once the store is closed.
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.is_closed() {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// Fails once a write has failed in a way that leaves the store unable
    /// to write (a panic inside the storage engine): `service_unavailable`
    /// until the store is reopened.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        let failure = self
            .write_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*failure {
            Some(error) => Err(Error::new(
                foundation_error::ErrorCode::SERVICE_UNAVAILABLE,
                "an earlier write failed inside the storage engine; the store refuses writes until it is reopened",
            )
            .with_context("store", &self.name)
            .with_cause(error.clone())),
            None => Ok(()),
        }
    }

    /// Refuses every later write until the store is reopened.
    pub(crate) fn fail_writes(&self, cause: &Error) {
        let mut failure = self
            .write_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert_with(|| cause.clone());
    }

    /// Runs a short read against the database.
    ///
    /// The read runs inline on the calling task: it touches redb's cache
    /// or, for a cold page, the OS page cache or the disk. It waits (without
    /// blocking the thread) only while the writer holds the gate alone for a
    /// compaction. A panic inside the storage engine (a damaged page) is
    /// contained: it fails this read with `data_corruption`.
    pub(crate) async fn read<R>(
        &self,
        read: impl FnOnce(&Database) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.check_open()?;
        loop {
            if let Some(guard) = self.try_read() {
                return match guard.as_ref() {
                    Some(database) => {
                        crate::contain::contain(&self.name, "read", || read(database))
                    }
                    None => Err(closed()),
                };
            }
            let mut exclusive = self.exclusive_watch.subscribe();
            // The sender lives as long as `self`, so this cannot fail.
            let _ = exclusive.wait_for(|held| !*held).await;
        }
    }

    /// A shared guard, unless the writer holds or is taking the gate alone.
    fn try_read(&self) -> Option<DatabaseGuard<'_>> {
        if self.exclusive.load(Ordering::Acquire) {
            return None;
        }
        match self.database.try_read() {
            Ok(guard) => Some(guard),
            // A panic while the writer held the gate alone (inside redb's
            // compaction) poisons it; redb's own state is transactional, so
            // the database is still usable.
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The writer thread's shared guard. Only the writer thread takes the
    /// gate alone, so from that thread this never waits for long: at most
    /// for a reader that loaded the flag just before it was raised.
    pub(crate) fn writer_read(&self) -> DatabaseGuard<'_> {
        self.database.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the gate alone (writer thread only): new readers wait, the call
    /// returns once the readers in flight (each a short read) are done.
    pub(crate) fn writer_exclusive(&self) -> ExclusiveGuard<'_> {
        self.exclusive_watch.send_replace(true);
        self.exclusive.store(true, Ordering::Release);
        let guard = self
            .database
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        ExclusiveGuard {
            guard: Some(guard),
            shared: self,
        }
    }
}

/// The gate held alone; releasing it wakes the waiting readers.
pub(crate) struct ExclusiveGuard<'a> {
    guard: Option<RwLockWriteGuard<'a, Option<Database>>>,
    shared: &'a Shared,
}

impl ExclusiveGuard<'_> {
    pub(crate) fn database(&mut self) -> Option<&mut Database> {
        self.guard.as_mut().and_then(|guard| guard.as_mut())
    }

    /// Takes the database out, leaving the store without one (closed).
    pub(crate) fn take(&mut self) -> Option<Database> {
        self.guard.as_mut().and_then(|guard| guard.take())
    }
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.shared.exclusive.store(false, Ordering::Release);
        self.shared.exclusive_watch.send_replace(false);
    }
}

/// `timeout` from now, or a year from now when that overflows.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_never_overflow() {
        let far = deadline_after(Duration::MAX);
        assert!(far > Instant::now());
    }
}
