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
//!   per lease name granted; until version 4, `owner` was `NULL` once
//!   released (the row stayed, so the name's token never repeated); `expires_at` is judged by
//!   the server's clock (`clock_timestamp()`), never a node's. A partial
//!   index on `expires_at` of held leases serves the claim of expired ones.
//!
//! Schema version 3 adds:
//!
//! - the functions `foundation_persist_apply` and
//!   `foundation_persist_apply_op` (PL/pgSQL, built into every PostgreSQL):
//!   the writer sends a whole batch to the first in one statement, which
//!   applies each request all-or-nothing in order (see
//!   [`APPLY_FUNCTIONS`]).
//!
//! Schema version 4 adds:
//!
//! - `foundation_persist_lease_tokens`: a `SEQUENCE` every lease grant
//!   draws its fencing token from, so tokens never repeat without the
//!   rows that used to remember them: a release deletes its row, and the
//!   lease table holds only held leases. The migration starts the
//!   sequence above every stored token and deletes the released rows.
//!
//! An older database is migrated on open, one version at a time (the
//! tables, index and functions are added; no data changes).
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
pub const SCHEMA_VERSION: i32 = 4;

/// The advisory lock key taken while migrating ("fpersist" in ASCII).
const MIGRATION_LOCK: i64 = 0x6670_6572_7369_7374;

/// The statements of each schema version, applied in order: index 0
/// brings an empty database to version 1, index 1 from 1 to 2, and so
/// on.
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
    APPLY_FUNCTIONS,
    r#"
CREATE SEQUENCE foundation_persist_lease_tokens AS bigint START 1;
SELECT setval('foundation_persist_lease_tokens', max(token))
  FROM foundation_persist_leases HAVING max(token) IS NOT NULL;
DELETE FROM foundation_persist_leases WHERE owner IS NULL;
"#,
];

/// Schema version 3: the functions that apply a whole write batch in one
/// statement (`ops.rs` states what each operation does; these are the
/// same statements, run by the server in order, so that a batch costs one
/// round trip instead of two to four per request).
///
/// `foundation_persist_apply_op` applies one operation and answers
/// `(applied, number)`: applied, the operation's number (the new version;
/// 1 or 0 for whether a deleted key existed; the appended sequence; the
/// removed records; the fence's token); refused, what the precondition
/// found (the key's current version, 0 when absent; the stream's next
/// sequence; the lease's current token, `NULL` when it has none or was
/// released). Kinds: 0 put, 1 delete, 2 append, 3 truncate, 4 fence.
/// Expectations of a put or delete: 0 any, 1 absent, 2 the version in
/// `number`; of an append: 0 none, 2 the sequence in `number`.
///
/// `foundation_persist_apply` takes the batch as parallel arrays, one
/// element per operation, its request's index in `requests` (requests
/// are contiguous and in order). It share-locks the fences' lease rows in
/// name order first (as a renewal locks them), then applies each request
/// all-or-nothing: at its first refused operation the request stops, and
/// when `guarded` (an earlier operation of it wrote) its writes are undone
/// by the exception block's subtransaction. It returns one row per
/// operation of an applied request and one row (the refused operation)
/// per refused request, in order. Any other error aborts the statement,
/// and with it the batch's transaction.
const APPLY_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION foundation_persist_apply_op(
    kind smallint, space text, item text, payload bytea, expecting smallint,
    number bigint, OUT applied boolean, OUT result bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    head_next bigint;
    truncated bigint;
    upto bigint;
    removed bigint;
    released boolean;
BEGIN
    applied := true;
    IF kind = 0 THEN
        IF expecting = 2 THEN
            UPDATE foundation_persist_state
               SET version = nextval('foundation_persist_versions'), envelope = payload
             WHERE keyspace = space AND key = item AND version = number
            RETURNING version INTO result;
        ELSIF expecting = 1 THEN
            INSERT INTO foundation_persist_state (keyspace, key, version, envelope)
            VALUES (space, item, nextval('foundation_persist_versions'), payload)
            ON CONFLICT (keyspace, key) DO NOTHING
            RETURNING version INTO result;
        ELSE
            INSERT INTO foundation_persist_state AS s (keyspace, key, version, envelope)
            VALUES (space, item, nextval('foundation_persist_versions'), payload)
            ON CONFLICT (keyspace, key) DO UPDATE
               SET version = EXCLUDED.version, envelope = EXCLUDED.envelope
            RETURNING s.version INTO result;
        END IF;
        IF result IS NULL THEN
            applied := false;
            SELECT coalesce(max(version), 0) INTO result FROM foundation_persist_state
             WHERE keyspace = space AND key = item;
        END IF;
    ELSIF kind = 1 THEN
        IF expecting = 1 THEN
            SELECT coalesce(max(version), 0) INTO result FROM foundation_persist_state
             WHERE keyspace = space AND key = item;
            applied := result = 0;
        ELSIF expecting = 2 THEN
            DELETE FROM foundation_persist_state
             WHERE keyspace = space AND key = item AND version = number;
            IF FOUND THEN
                result := 1;
            ELSE
                applied := false;
                SELECT coalesce(max(version), 0) INTO result FROM foundation_persist_state
                 WHERE keyspace = space AND key = item;
            END IF;
        ELSE
            DELETE FROM foundation_persist_state WHERE keyspace = space AND key = item;
            result := CASE WHEN FOUND THEN 1 ELSE 0 END;
        END IF;
    ELSIF kind = 2 THEN
        IF expecting = 2 THEN
            SELECT h.next_sequence INTO head_next FROM foundation_persist_heads h
             WHERE h.journal = space AND h.stream = item FOR UPDATE;
            head_next := coalesce(head_next, 1);
            IF head_next <> number THEN
                applied := false;
                result := head_next;
                RETURN;
            END IF;
        END IF;
        INSERT INTO foundation_persist_heads AS h
            (journal, stream, next_sequence, truncated_through)
        VALUES (space, item, 2, 0)
        ON CONFLICT (journal, stream) DO UPDATE SET next_sequence = h.next_sequence + 1
        RETURNING h.next_sequence - 1 INTO result;
        INSERT INTO foundation_persist_journal (journal, stream, sequence, record)
        VALUES (space, item, result, payload);
    ELSIF kind = 3 THEN
        SELECT h.next_sequence, h.truncated_through INTO head_next, truncated
          FROM foundation_persist_heads h WHERE h.journal = space AND h.stream = item FOR UPDATE;
        head_next := coalesce(head_next, 1);
        truncated := coalesce(truncated, 0);
        result := 0;
        IF number > truncated AND head_next > 1 THEN
            upto := greatest(least(number, head_next - 1), truncated);
            DELETE FROM foundation_persist_journal
             WHERE journal = space AND stream = item AND sequence > truncated AND sequence <= upto;
            GET DIAGNOSTICS removed = ROW_COUNT;
            UPDATE foundation_persist_heads SET truncated_through = upto
             WHERE journal = space AND stream = item;
            result := removed;
        END IF;
    ELSIF kind = 4 THEN
        SELECT token, owner IS NULL INTO result, released FROM foundation_persist_leases
         WHERE name = space FOR SHARE;
        IF result IS NULL OR released OR result <> number THEN
            applied := false;
        END IF;
    ELSE
        RAISE EXCEPTION 'foundation_persist_apply_op: unknown operation kind %', kind;
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION foundation_persist_apply(
    requests integer[], kinds smallint[], spaces text[], items text[], payloads bytea[],
    expectings smallint[], numbers bigint[], guarded boolean[], fences text[])
RETURNS TABLE (operation integer, applied boolean, result bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    total integer := coalesce(array_length(kinds, 1), 0);
    first integer := 1;
    last integer;
    i integer;
    outcome record;
    results bigint[];
    refused_at integer;
    refused_with bigint;
BEGIN
    IF coalesce(array_length(fences, 1), 0) > 0 THEN
        PERFORM 1 FROM foundation_persist_leases WHERE name = ANY(fences)
         ORDER BY name FOR SHARE;
    END IF;
    WHILE first <= total LOOP
        last := first;
        WHILE last < total AND requests[last + 1] = requests[first] LOOP
            last := last + 1;
        END LOOP;
        refused_at := NULL;
        results := ARRAY[]::bigint[];
        IF guarded[first] THEN
            BEGIN
                FOR i IN first..last LOOP
                    SELECT * INTO outcome FROM foundation_persist_apply_op(kinds[i], spaces[i],
                        items[i], payloads[i], expectings[i], numbers[i]);
                    IF NOT outcome.applied THEN
                        refused_at := i;
                        refused_with := outcome.result;
                        RAISE EXCEPTION USING ERRCODE = 'FP001';
                    END IF;
                    results := results || outcome.result;
                END LOOP;
            EXCEPTION WHEN SQLSTATE 'FP001' THEN
                NULL;
            END;
        ELSE
            FOR i IN first..last LOOP
                SELECT * INTO outcome FROM foundation_persist_apply_op(kinds[i], spaces[i],
                    items[i], payloads[i], expectings[i], numbers[i]);
                IF NOT outcome.applied THEN
                    refused_at := i;
                    refused_with := outcome.result;
                    EXIT;
                END IF;
                results := results || outcome.result;
            END LOOP;
        END IF;
        IF refused_at IS NULL THEN
            FOR i IN first..last LOOP
                operation := i;
                applied := true;
                result := results[i - first + 1];
                RETURN NEXT;
            END LOOP;
        ELSE
            operation := refused_at;
            applied := false;
            result := refused_with;
            RETURN NEXT;
        END IF;
        first := last + 1;
    END LOOP;
END
$fn$;
"#;

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
        let crate::tls::Connect { config, tls } = crate::tls::connect_settings(url)?;
        let (client, connection) = config
            .connect(tls)
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
