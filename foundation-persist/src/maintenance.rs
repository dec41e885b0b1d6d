//! Maintenance: backup and restore as table copies, and compaction.
//!
//! A backup copies every table of one read snapshot into a new store file:
//! a consistent copy of a live store, written to a temporary file beside
//! the destination, committed durably, then linked into place (never over
//! an existing file) and the directory synced. A backup file is itself a
//! store: open it with `Store::open`, or restore it into a live store.
//!
//! A restore replaces the contents of the live store with a backup's in one
//! durable write transaction, so readers see the old contents or the new,
//! never a mix. The store revision never goes backwards across a restore,
//! so versions handed out before it are never handed out again.
//!
//! Compaction takes the database gate alone (readers wait, writes queue),
//! lets redb move pages towards the start of the file round by round, and
//! stops when nothing more moves or the maintenance deadline passes.
//!
//! This module is not for scheduling these operations (`writer.rs` and
//! `store.rs` do that).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use foundation_error::{Error, ErrorCode};
use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle, WriteTransaction,
};

use crate::apply::{
    read_lease_token, read_revision, remove_lease_token, write_lease_token, write_revision,
};
use crate::classify::{closed, storage_error};
use crate::layout::{FORMAT_KEY, REVISION_KEY, STORE_FORMAT, SYSTEM, TableKind, table_kind};
use crate::ops::{BackupReport, CompactionReport};
use crate::shared::Shared;

/// How often (in entries) a copy checks whether it should stop.
const CHECK_EVERY: u64 = 1024;

/// Whether a long copy should stop, and with which error.
pub(crate) type StopCheck<'a> = &'a dyn Fn() -> Result<(), Error>;

/// Copies every store table of `source` into `target` (the lease table
/// only with `leases`); returns the number of entries copied.
pub(crate) fn copy_tables(
    source: &ReadTransaction,
    target: &WriteTransaction,
    stop: StopCheck<'_>,
    leases: bool,
) -> Result<u64, Error> {
    let handles: Vec<_> = source
        .list_tables()
        .map_err(|error| storage_error(error, "list_tables"))?
        .collect();
    let mut copied = 0;
    for handle in handles {
        let name = handle.name();
        copied += match table_kind(name) {
            Some(TableKind::System) => copy_table::<&str, u64>(source, target, name, stop)?,
            Some(TableKind::State) => copy_table::<&str, (u64, &[u8])>(source, target, name, stop)?,
            Some(TableKind::Journal) => {
                copy_table::<(&str, u64), &[u8]>(source, target, name, stop)?
            }
            Some(TableKind::Head) => copy_table::<&str, (u64, u64)>(source, target, name, stop)?,
            Some(TableKind::Leases) if !leases => 0,
            Some(TableKind::Leases) => {
                copy_table::<&str, (u64, u64, &str)>(source, target, name, stop)?
            }
            None => {
                return Err(Error::new(
                    ErrorCode::DATA_CORRUPTION,
                    format!("the store holds a table `{name}` that this code does not know"),
                )
                .with_context("table", name));
            }
        };
    }
    Ok(copied)
}

fn copy_table<K, V>(
    source: &ReadTransaction,
    target: &WriteTransaction,
    name: &str,
    stop: StopCheck<'_>,
) -> Result<u64, Error>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let definition = TableDefinition::<K, V>::new(name);
    let from = source
        .open_table(definition)
        .map_err(|error| storage_error(error, "open_table"))?;
    let mut to = target
        .open_table(definition)
        .map_err(|error| storage_error(error, "open_table"))?;
    let mut copied = 0;
    for entry in from.iter().map_err(|error| storage_error(error, "read"))? {
        let (key, value) = entry.map_err(|error| storage_error(error, "read"))?;
        to.insert(key.value(), value.value())
            .map_err(|error| storage_error(error, "write"))?;
        copied += 1;
        if copied % CHECK_EVERY == 0 {
            stop()?;
        }
    }
    Ok(copied)
}

/// Checks that a store's format is one this code reads.
pub(crate) fn check_format(format: Option<u64>, path: Option<&Path>) -> Result<(), Error> {
    match format {
        Some(format) if format > STORE_FORMAT => {
            let mut error = Error::new(
                ErrorCode::UNSUPPORTED_VERSION,
                format!(
                    "the store has format {format}, newer than the format {STORE_FORMAT} this code reads; upgrade the code"
                ),
            )
            .with_context("store_format", format);
            if let Some(path) = path {
                error = error.with_context("path", path.display());
            }
            Err(error)
        }
        _ => Ok(()),
    }
}

fn read_system(read: &ReadTransaction, key: &str) -> Result<Option<u64>, Error> {
    let table = match read.open_table(SYSTEM) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(error) => return Err(storage_error(error, "open_table")),
    };
    let value = table
        .get(key)
        .map_err(|error| storage_error(error, "read"))?
        .map(|value| value.value());
    Ok(value)
}

/// Writes a backup of the snapshot `read` to `destination`.
pub(crate) fn write_backup(
    read: &ReadTransaction,
    destination: &Path,
    deadline: Instant,
    abandoned: &dyn Fn() -> bool,
) -> Result<BackupReport, Error> {
    let with_path = |error: Error| error.with_context("path", destination.display());
    if destination.exists() {
        return Err(Error::new(
            ErrorCode::ALREADY_EXISTS,
            "the backup destination already exists; choose a new path",
        )
        .with_context("path", destination.display()));
    }
    let file_name = destination.file_name().ok_or_else(|| {
        Error::new(
            ErrorCode::INVALID_INPUT,
            "the backup destination has no file name",
        )
        .with_context("path", destination.display())
    })?;
    let directory = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&directory).map_err(|error| with_path(error.into()))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(file_name);
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = directory.join(partial_name);

    let result = write_partial(read, &partial, deadline, abandoned).and_then(|report| {
        // A hard link never replaces an existing file, unlike a rename.
        fs::hard_link(&partial, destination)?;
        fs::remove_file(&partial)?;
        fs::File::open(&directory)?.sync_all()?;
        Ok(report)
    });
    match result {
        Ok((entries, revision)) => Ok(BackupReport {
            path: destination.to_path_buf(),
            entries,
            revision,
        }),
        Err(error) => {
            let _ = fs::remove_file(&partial);
            Err(with_path(error))
        }
    }
}

fn write_partial(
    read: &ReadTransaction,
    partial: &Path,
    deadline: Instant,
    abandoned: &dyn Fn() -> bool,
) -> Result<(u64, u64), Error> {
    if partial.exists() {
        fs::remove_file(partial)?;
    }
    let stop = || {
        if abandoned() {
            Err(Error::new(
                ErrorCode::CANCELLED,
                "the backup was abandoned by its caller",
            ))
        } else if Instant::now() > deadline {
            Err(Error::timeout(
                "the backup took longer than the maintenance timeout",
            ))
        } else {
            Ok(())
        }
    };
    let database = Database::create(partial).map_err(|error| storage_error(error, "create"))?;
    let transaction = database
        .begin_write()
        .map_err(|error| storage_error(error, "begin_write"))?;
    let entries = copy_tables(read, &transaction, &stop, true)?;
    let revision = read_system(read, REVISION_KEY)?.unwrap_or(0);
    transaction
        .commit()
        .map_err(|error| storage_error(error, "commit"))?;
    database
        .close()
        .map_err(|error| storage_error(error, "close"))?;
    Ok((entries, revision))
}

/// Replaces the contents of `live` with the backup at `source`, in one
/// durable transaction. Returns the number of entries restored. Past
/// `deadline` the restore is abandoned (nothing of it is applied).
pub(crate) fn restore(live: &Database, source: &Path, deadline: Instant) -> Result<u64, Error> {
    let with_path = |error: Error| error.with_context("path", source.display());
    if !source.is_file() {
        return Err(Error::not_found("no backup file exists at this path")
            .with_context("path", source.display()));
    }
    let backup: ReadOnlyDatabase = redb::Builder::new()
        .open_read_only(source)
        .map_err(|error| with_path(storage_error(error, "open_backup")))?;
    let read = backup
        .begin_read()
        .map_err(|error| with_path(storage_error(error, "begin_read")))?;
    let format = read_system(&read, FORMAT_KEY).map_err(with_path)?;
    if format.is_none() {
        return Err(with_path(Error::new(
            ErrorCode::INVALID_INPUT,
            "the file is a redb database but not a foundation-persist store",
        )));
    }
    check_format(format, Some(source))?;

    let transaction = live
        .begin_write()
        .map_err(|error| storage_error(error, "begin_write"))?;
    let revision_before = read_revision(&transaction)?;
    let lease_token_before = read_lease_token(&transaction)?;
    let ours: Vec<_> = transaction
        .list_tables()
        .map_err(|error| storage_error(error, "list_tables"))?
        // The live leases stay: their tokens must never go back to a
        // backup's, or a fenced-off writer could write again.
        .filter(|handle| table_kind(handle.name()).is_some_and(|kind| kind != TableKind::Leases))
        .collect();
    for handle in ours {
        transaction
            .delete_table(handle)
            .map_err(|error| storage_error(error, "delete_table"))?;
    }
    let stop = || {
        if Instant::now() > deadline {
            Err(Error::timeout(
                "the restore took longer than the maintenance timeout; nothing was restored",
            ))
        } else {
            Ok(())
        }
    };
    let entries = copy_tables(&read, &transaction, &stop, false).map_err(with_path)?;
    let revision_after = read_revision(&transaction)?;
    write_revision(&transaction, revision_before.max(revision_after))?;
    // Nor does the lease token counter go back (the live lease table
    // stays; a counter it has not reached yet is brought to it on the
    // first lease operation).
    match lease_token_before {
        Some(before) => {
            let after = read_lease_token(&transaction)?.unwrap_or(0);
            write_lease_token(&transaction, before.max(after))?;
        }
        // The live store never counted tokens: the counter is started from
        // its own lease table on the first lease operation, not taken
        // from the backup.
        None => remove_lease_token(&transaction)?,
    }
    transaction
        .commit()
        .map_err(|error| storage_error(error, "commit"))?;
    Ok(entries)
}

/// Compacts the database; must run where no write transaction is live
/// (the writer thread, or under the inline write lock).
pub(crate) fn compact(shared: &Shared, deadline: Instant) -> Result<CompactionReport, Error> {
    let file_size = || {
        shared
            .path
            .as_ref()
            .and_then(|path| fs::metadata(path).ok())
            .map(|metadata| metadata.len())
    };
    let bytes_before = file_size();
    {
        let mut exclusive = shared.writer_exclusive();
        let database = exclusive.database().ok_or_else(closed)?;
        // Each round moves pages towards the start of the file; redb says
        // when nothing more can move. The round bound only guards against a
        // storage engine that never says so.
        for _ in 0..1024 {
            let progressed = database
                .compact()
                .map_err(|error| storage_error(error, "compact"))?;
            if !progressed || Instant::now() > deadline {
                break;
            }
        }
    }
    Ok(CompactionReport {
        bytes_before,
        bytes_after: file_size(),
    })
}
