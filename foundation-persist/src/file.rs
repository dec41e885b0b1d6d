//! [`StoreFile`]: the redb backend's own surface, reached with
//! [`Store::file`]: backup, restore, compaction and the file path.
//!
//! These exist only for the embedded engine; a server backend has its own
//! tools for them. This module is not for the typed keyspaces or for
//! writing (`redb_backend.rs` does the work).

use std::fmt;
use std::path::Path;

use foundation_error::{Error, ErrorCode};

use crate::ops::{BackupReport, CompactionReport};
use crate::redb_backend::RedbBackend;
use crate::store::Store;

/// The maintenance handle of a store file (the built-in redb backend),
/// from [`Store::file`].
///
/// ```
/// use foundation_persist::{Store, StoreOptions};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let directory = tempfile::tempdir()?;
/// let store = Store::open(directory.path().join("live.redb"), &StoreOptions::new())?;
/// let file = store.file().expect("a redb store has a file surface");
/// assert_eq!(file.path(), directory.path().join("live.redb"));
/// file.backup(directory.path().join("copy.redb")).await?;
/// file.compact().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct StoreFile {
    store: Store,
}

impl fmt::Debug for StoreFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreFile")
            .field("store", &self.store.name())
            .finish()
    }
}

impl StoreFile {
    pub(crate) fn new(store: Store) -> StoreFile {
        StoreFile { store }
    }

    fn backend(&self) -> Result<&RedbBackend, Error> {
        self.store.redb().ok_or_else(|| {
            Error::new(
                ErrorCode::INTERNAL_ERROR,
                "a store file handle was made for a store without the redb backend",
            )
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        self.store
            .redb()
            .and_then(RedbBackend::path)
            .unwrap_or_else(|| Path::new(""))
    }

    /// Writes a consistent copy of the store, as of now, to `destination`,
    /// which must not exist yet. Writes go on while the copy is made (on its
    /// own thread); none after the snapshot is in the copy.
    ///
    /// The copy is a store file: open it with [`Store::open`] or load it
    /// into a store with [`restore`](StoreFile::restore).
    ///
    /// # Errors
    ///
    /// `already_exists` for an existing destination; `timeout` after the
    /// maintenance timeout; the I/O error's code when writing fails (a
    /// partial copy is removed); `service_unavailable` once the store is
    /// closed (closing also stops a running backup).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the copy at its next check (every 1,024
    /// entries) and removes the partial file; the destination is then
    /// absent. A backup is either complete at `destination` or absent.
    pub async fn backup(&self, destination: impl AsRef<Path>) -> Result<BackupReport, Error> {
        self.backend()?.backup(destination).await
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
    ///
    /// # Cancel safety
    ///
    /// Once sent to the writer, the restore runs to its end (committed or
    /// not) even if the future is dropped; whether it took effect is then
    /// unknown to the caller: read a value that only the backup (or only
    /// the old contents) holds to find out. On an in-memory store the
    /// restore completes within the first poll.
    pub async fn restore(&self, source: impl AsRef<Path>) -> Result<u64, Error> {
        self.backend()?.restore(source).await
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
    ///
    /// # Cancel safety
    ///
    /// Once sent to the writer, the compaction runs (bounded by the
    /// maintenance timeout) even if the future is dropped; it never loses
    /// data either way, only the report is lost.
    pub async fn compact(&self) -> Result<CompactionReport, Error> {
        self.backend()?.compact().await
    }
}
