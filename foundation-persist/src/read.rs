//! Reads: one redb read transaction per call, never through the writer.
//!
//! Each function opens a snapshot, reads, decodes through the caller's
//! closure while the stored bytes are still borrowed (no copy), and closes
//! the snapshot. A table that was never written reads as empty.
//!
//! This module is not for typing or for errors' keyspace context beyond
//! what the closures add; see the keyspace handles.

use std::ops::Bound;

use foundation_error::Error;
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition};

use crate::classify::storage_error;
use crate::layout::{HeadTable, JournalTable, LEASES, StateTable};
use crate::lease::Lease;

fn snapshot(database: &impl ReadableDatabase) -> Result<ReadTransaction, Error> {
    database
        .begin_read()
        .map_err(|error| storage_error(error, "begin_read"))
}

/// Opens a table of a snapshot; `None` when it was never created.
fn open<K, V>(
    read: &ReadTransaction,
    definition: TableDefinition<'_, K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, Error>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    match read.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(error) => Err(storage_error(error, "open_table")),
    }
}

/// One state value: `decode(version, envelope)`.
pub(crate) fn get_state<R>(
    database: &Database,
    table: &str,
    key: &str,
    decode: impl FnOnce(u64, &[u8]) -> Result<R, Error>,
) -> Result<Option<R>, Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, StateTable::new(table))? else {
        return Ok(None);
    };
    let Some(value) = table
        .get(key)
        .map_err(|error| storage_error(error, "read"))?
    else {
        return Ok(None);
    };
    let (version, envelope) = value.value();
    decode(version, envelope).map(Some)
}

/// State values whose keys start with `prefix`, in key order, after `after`
/// when given, at most `limit`: `decode(key, version, envelope)`.
pub(crate) fn list_state<R>(
    database: &Database,
    table: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    mut decode: impl FnMut(&str, u64, &[u8]) -> Result<R, Error>,
) -> Result<Vec<R>, Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, StateTable::new(table))? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let mut entries = Vec::new();
    let range = table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(|error| storage_error(error, "read"))?;
    for entry in range {
        if entries.len() >= limit {
            break;
        }
        let (key, value) = entry.map_err(|error| storage_error(error, "read"))?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        let (version, envelope) = value.value();
        entries.push(decode(key, version, envelope)?);
    }
    Ok(entries)
}

/// Journal records of `stream` from sequence `from`, at most `limit`:
/// `decode(sequence, envelope)`.
pub(crate) fn read_journal<R>(
    database: &Database,
    records: &str,
    stream: &str,
    from: u64,
    limit: usize,
    mut decode: impl FnMut(u64, &[u8]) -> Result<R, Error>,
) -> Result<Vec<R>, Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, JournalTable::new(records))? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    let range = table
        .range((stream, from)..=(stream, u64::MAX))
        .map_err(|error| storage_error(error, "read"))?;
    for entry in range.take(limit) {
        let (key, value) = entry.map_err(|error| storage_error(error, "read"))?;
        let (_, sequence) = key.value();
        entries.push(decode(sequence, value.value())?);
    }
    Ok(entries)
}

/// (next sequence, truncated through) of a stream; `(1, 0)` when it has
/// never been written.
pub(crate) fn journal_head(
    database: &Database,
    heads: &str,
    stream: &str,
) -> Result<(u64, u64), Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, HeadTable::new(heads))? else {
        return Ok((1, 0));
    };
    let head = table
        .get(stream)
        .map_err(|error| storage_error(error, "read"))?
        .map_or((1, 0), |value| value.value());
    Ok(head)
}

/// Stream ids of a journal keyspace starting with `prefix`, after `after`,
/// at most `limit`.
pub(crate) fn list_streams(
    database: &Database,
    heads: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, HeadTable::new(heads))? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let mut streams = Vec::new();
    let range = table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(|error| storage_error(error, "read"))?;
    for entry in range {
        if streams.len() >= limit {
            break;
        }
        let (key, _) = entry.map_err(|error| storage_error(error, "read"))?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        streams.push(key.to_owned());
    }
    Ok(streams)
}

/// A value of the system table.
pub(crate) fn system_value(
    database: &impl ReadableDatabase,
    key: &str,
) -> Result<Option<u64>, Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, crate::layout::SYSTEM)? else {
        return Ok(None);
    };
    let value = table
        .get(key)
        .map_err(|error| storage_error(error, "read"))?
        .map(|value| value.value());
    Ok(value)
}

/// Unreleased leases whose names start with `prefix`, in name order, after
/// `after` when given, at most `limit`.
pub(crate) fn list_leases(
    database: &Database,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Lease>, Error> {
    let read = snapshot(database)?;
    let Some(table) = open(&read, LEASES)? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let range = table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(|error| storage_error(error, "read"))?;
    let mut leases = Vec::new();
    for entry in range {
        if leases.len() >= limit {
            break;
        }
        let (name, value) = entry.map_err(|error| storage_error(error, "read"))?;
        let name = name.value();
        if !name.starts_with(prefix) {
            break;
        }
        leases.extend(crate::apply::row_of(value.value()).lease(name));
    }
    Ok(leases)
}
