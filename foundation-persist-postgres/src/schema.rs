//! The crate's tables, created and migrated on open, versioned in
//! `foundation_persist_schema`.
//!
//! Schema version 1:
//!
//! - `foundation_persist_schema (version)`: one row, the schema version.
//! - `foundation_persist_versions`: a `SEQUENCE` every state write draws
//!   its [`Version`](foundation_persist::Version) from. A sequence never
//!   hands out a number twice (not even in a rolled-back transaction), so
//!   a key deleted and written again never repeats a version, and no row
//!   is rewritten by every commit.
//! - `foundation_persist_state (keyspace, key, version, envelope)`: state
//!   and metadata values, keyed by the keyspace's storage name and the key.
//! - `foundation_persist_journal (journal, stream, sequence, record)`:
//!   journal records.
//! - `foundation_persist_heads (journal, stream, next_sequence,
//!   truncated_through)`: where each stream stands; a stream has a row once
//!   it has had an append, and keeps it after truncation, so sequences are
//!   never reused.
//!
//! Schema version 2 adds:
//!
//! - `foundation_persist_leases (name, owner, token, expires_at)`: one row
//!   per lease name ever granted; `owner` is `NULL` once released (the row
//!   stays, so the name's token never repeats); `expires_at` is judged by
//!   the server's clock (`clock_timestamp()`), never a node's. A partial
//!   index on `expires_at` of held leases serves the claim of expired ones.
//!
//! A version 1 database is migrated to version 2 on open (the table and
//! index are added; nothing else changes).
//!
//! Text columns use the `"C"` collation, so keys order byte-wise, as on
//! redb. Opening takes a transaction-scoped advisory lock, so several
//! processes opening one database at once migrate it once. A database
//! whose schema version is newer than this crate knows is refused with
//! `unsupported_version`, never written to.
//!
//! This module is not for the statements that read and write data
//! (`ops.rs`, `read.rs`).

use foundation_error::{Error, ErrorCode};

use crate::classify::database_error;

/// The schema version this crate writes.
pub const SCHEMA_VERSION: i32 = 2;

/// The advisory lock key taken while migrating ("fpersist" in ASCII).
const MIGRATION_LOCK: i64 = 0x6670_6572_7369_7374;

/// The statements of each schema version, applied in order: index 0
/// brings an empty database to version 1, index 1 from 1 to 2.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE SEQUENCE foundation_persist_versions AS bigint START 1;
CREATE TABLE foundation_persist_state (
    keyspace text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    envelope bytea NOT NULL,
    PRIMARY KEY (keyspace, key)
);
CREATE TABLE foundation_persist_journal (
    journal text COLLATE "C" NOT NULL,
    stream text COLLATE "C" NOT NULL,
    sequence bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (journal, stream, sequence)
);
CREATE TABLE foundation_persist_heads (
    journal text COLLATE "C" NOT NULL,
    stream text COLLATE "C" NOT NULL,
    next_sequence bigint NOT NULL,
    truncated_through bigint NOT NULL,
    PRIMARY KEY (journal, stream)
);
"#,
    r#"
CREATE TABLE foundation_persist_leases (
    name text COLLATE "C" PRIMARY KEY,
    owner text COLLATE "C",
    token bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX foundation_persist_leases_expiry
    ON foundation_persist_leases (expires_at) WHERE owner IS NOT NULL;
"#,
];

/// Creates the tables of an empty database, migrates an older schema, and
/// refuses a newer one.
pub(crate) async fn migrate(
    client: &mut deadpool_postgres::Client,
    store: &str,
) -> Result<(), Error> {
    let fail = |error| database_error(error, store, "migrate");
    let transaction = client.transaction().await.map_err(fail)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS foundation_persist_schema (version integer NOT NULL)",
        )
        .await
        .map_err(fail)?;
    let rows = transaction
        .query("SELECT version FROM foundation_persist_schema", &[])
        .await
        .map_err(fail)?;
    let current: i32 = match rows.as_slice() {
        [] => 0,
        [row] => row.try_get(0).map_err(fail)?,
        _ => {
            return Err(Error::new(
                ErrorCode::DATA_CORRUPTION,
                "foundation_persist_schema has more than one row",
            )
            .with_context("store", store));
        }
    };
    if current > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorCode::UNSUPPORTED_VERSION,
            format!(
                "the database has schema version {current}, newer than this crate's \
                 {SCHEMA_VERSION}; upgrade the application"
            ),
        )
        .with_context("store", store)
        .with_context("schema_version", current));
    }
    if current == SCHEMA_VERSION {
        return transaction.commit().await.map_err(fail);
    }
    for migration in &MIGRATIONS[usize::try_from(current).unwrap_or(0)..] {
        transaction.batch_execute(migration).await.map_err(fail)?;
    }
    transaction
        .execute("DELETE FROM foundation_persist_schema", &[])
        .await
        .map_err(fail)?;
    transaction
        .execute(
            "INSERT INTO foundation_persist_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(fail)?;
    transaction.commit().await.map_err(fail)
}

/// Runs one statement on a connection of its own, bounded by `timeout`,
/// driving the connection on the calling task (no task is started).
#[cfg(feature = "test-harness")]
pub(crate) async fn execute_once(
    url: &str,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), Error> {
    let work = async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|error| database_error(error, url, "connect"))?;
        let statement = async {
            let result = client.batch_execute(sql).await;
            drop(client);
            result
        };
        let (result, _) = futures::join!(statement, connection);
        result.map_err(|error| database_error(error, url, "execute"))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|elapsed| Error::from(elapsed).with_context("store", url))?
}
