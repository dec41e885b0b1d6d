//! The on-disk layout: which redb tables hold what, and how names and keys
//! are checked.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `foundation/system` | name | u64 (`format`, `revision`) |
//! | `meta` | key | (version, envelope) |
//! | `state/{keyspace}` | key | (version, envelope) |
//! | `journal/{keyspace}` | (stream, sequence) | envelope |
//! | `journal_head/{keyspace}` | stream | (next sequence, truncated through) |
//!
//! Versions come from a store-wide sequence reserved in blocks: `revision`
//! in the system table is the upper end of the current reservation,
//! rewritten once per block of versions (and after each open), not by
//! every commit. A key deleted and written again never repeats a version.
//!
//! This module is not for reading or writing those tables; see `read.rs`
//! and `apply.rs`.

use foundation_error::{Error, ErrorCode};
use redb::TableDefinition;

use crate::backend::{JournalKeyspace, StateKeyspace};
use crate::options::MAX_KEY_BYTES;

/// The store file format this code writes; a newer one is refused.
pub(crate) const STORE_FORMAT: u64 = 1;

pub(crate) const SYSTEM_TABLE: &str = "foundation/system";
pub(crate) const FORMAT_KEY: &str = "format";
pub(crate) const REVISION_KEY: &str = "revision";
/// The last lease token handed out (absent in a store written before it
/// existed: then the largest token of the lease table).
pub(crate) const LEASE_TOKEN_KEY: &str = "lease_token";
pub(crate) const METADATA_TABLE: &str = "meta";
/// The leases: name to (token, expiry in microseconds since the Unix
/// epoch, owner). A release deletes the row; stores written before that
/// kept released rows with an empty owner, which the first lease operation
/// deletes.
pub(crate) const LEASES_TABLE: &str = "foundation/leases";
const STATE_PREFIX: &str = "state/";
const JOURNAL_PREFIX: &str = "journal/";
const HEAD_PREFIX: &str = "journal_head/";

/// The longest keyspace name.
pub const MAX_KEYSPACE_NAME_BYTES: usize = 64;

pub(crate) type SystemTable = TableDefinition<'static, &'static str, u64>;
pub(crate) type StateTable<'a> = TableDefinition<'a, &'static str, (u64, &'static [u8])>;
pub(crate) type JournalTable<'a> = TableDefinition<'a, (&'static str, u64), &'static [u8]>;
pub(crate) type HeadTable<'a> = TableDefinition<'a, &'static str, (u64, u64)>;

pub(crate) type LeaseTable<'a> = TableDefinition<'a, &'static str, (u64, u64, &'static str)>;

pub(crate) const SYSTEM: SystemTable = TableDefinition::new(SYSTEM_TABLE);
pub(crate) const LEASES: LeaseTable<'static> = TableDefinition::new(LEASES_TABLE);

/// What kind of table a name is, for backup and restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableKind {
    System,
    State,
    Journal,
    Head,
    Leases,
}

pub(crate) fn table_kind(name: &str) -> Option<TableKind> {
    if name == SYSTEM_TABLE {
        Some(TableKind::System)
    } else if name == LEASES_TABLE {
        Some(TableKind::Leases)
    } else if name == METADATA_TABLE || name.starts_with(STATE_PREFIX) {
        Some(TableKind::State)
    } else if name.starts_with(JOURNAL_PREFIX) {
        Some(TableKind::Journal)
    } else if name.starts_with(HEAD_PREFIX) {
        Some(TableKind::Head)
    } else {
        None
    }
}

/// The table names of one journal keyspace.
pub(crate) type JournalTables = JournalKeyspace;

pub(crate) fn state_table(keyspace: &str) -> Result<std::sync::Arc<str>, Error> {
    check_keyspace_name(keyspace)?;
    Ok(format!("{STATE_PREFIX}{keyspace}").into())
}

pub(crate) fn state_keyspace(keyspace: &str, watched: bool) -> Result<StateKeyspace, Error> {
    Ok(StateKeyspace {
        storage: state_table(keyspace)?,
        name: keyspace.into(),
        watched,
    })
}

pub(crate) fn metadata_keyspace() -> StateKeyspace {
    StateKeyspace {
        name: METADATA_TABLE.into(),
        storage: METADATA_TABLE.into(),
        watched: false,
    }
}

pub(crate) fn journal_tables(keyspace: &str) -> Result<JournalTables, Error> {
    check_keyspace_name(keyspace)?;
    Ok(JournalKeyspace {
        name: keyspace.into(),
        records: format!("{JOURNAL_PREFIX}{keyspace}").into(),
        heads: format!("{HEAD_PREFIX}{keyspace}").into(),
    })
}

/// The keyspace name a table belongs to, for error messages (`meta` for
/// the metadata keyspace).
pub(crate) fn keyspace_of(table: &str) -> &str {
    [STATE_PREFIX, JOURNAL_PREFIX, HEAD_PREFIX]
        .iter()
        .find_map(|prefix| table.strip_prefix(prefix))
        .unwrap_or(table)
}

/// Keyspace names: 1 to 64 bytes of `a-z`, `0-9`, `_`, `-` and `.`.
fn check_keyspace_name(name: &str) -> Result<(), Error> {
    let valid_byte =
        |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-.".contains(&byte);
    if name.is_empty() || name.len() > MAX_KEYSPACE_NAME_BYTES || !name.bytes().all(valid_byte) {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            "a keyspace name is 1 to 64 characters of a-z, 0-9, '_', '-' and '.'",
        )
        .with_context("keyspace", name));
    }
    Ok(())
}

/// Keys and stream ids: 1 to [`MAX_KEY_BYTES`] bytes of UTF-8.
pub(crate) fn check_key(key: &str, what: &'static str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            format!("a {what} is 1 to {MAX_KEY_BYTES} bytes long"),
        )
        .with_context("length", key.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_checked() {
        assert!(state_table("agents").is_ok());
        assert!(journal_tables("workflow.steps-v2_x").is_ok());
        for bad in ["", "Agents", "a/b", "a b", &"x".repeat(65)] {
            let error = state_table(bad).unwrap_err();
            assert_eq!(error.code(), ErrorCode::INVALID_INPUT, "{bad:?}");
        }
    }

    #[test]
    fn table_kinds_round_trip() {
        assert_eq!(
            table_kind(&state_table("a").unwrap()),
            Some(TableKind::State)
        );
        let journal = journal_tables("a").unwrap();
        assert_eq!(table_kind(&journal.records), Some(TableKind::Journal));
        assert_eq!(table_kind(&journal.heads), Some(TableKind::Head));
        assert_eq!(table_kind(METADATA_TABLE), Some(TableKind::State));
        assert_eq!(table_kind(SYSTEM_TABLE), Some(TableKind::System));
        assert_eq!(table_kind("other"), None);
    }

    #[test]
    fn keys_are_bounded() {
        assert!(check_key("k", "key").is_ok());
        assert!(check_key("", "key").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1), "key").is_err());
    }
}
