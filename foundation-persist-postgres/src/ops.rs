//! Applying one write request inside a PostgreSQL transaction.
//!
//! Each operation is one or two statements whose precondition is part of
//! the statement (`UPDATE ... WHERE version = $expected`, `INSERT ... ON
//! CONFLICT DO NOTHING`) or checked on a row locked `FOR UPDATE`, so a
//! precondition that fails leaves the row untouched, and concurrent
//! writers (several nodes) cannot slip between the check and the write.
//! A request whose precondition may fail after one of its earlier
//! operations wrote runs inside a savepoint, rolled back when the
//! precondition fails; other requests (one operation, or conditions and
//! fences before every write) need none. Conflicts are answers (`version_conflict` naming the keyspace
//! and key or stream, like the other backends); database errors abort the
//! whole batch.
//!
//! This module is not for batching or committing (`writer.rs`).

use deadpool_postgres::Transaction;
use foundation_error::{Error, ErrorCode};
use foundation_persist::backend::{Expect, JournalKeyspace, Op, StateKeyspace};
use foundation_persist::{Outcome, Version};

/// Why a request was not applied.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A precondition failed: the request's answer; the batch goes on.
    Conflict(Error),
    /// The database failed: the batch fails.
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Refusal {
    fn from(error: tokio_postgres::Error) -> Refusal {
        Refusal::Database(error)
    }
}

/// Whether a request needs a savepoint: one of its operations can be
/// refused after an earlier one wrote. A refused operation itself changes
/// nothing (its precondition is part of its statement, or checked before
/// it writes), and a fence writes nothing, so a request whose conditional
/// operations all come before its first write (a fenced journal flush:
/// the fence, an expected-sequence append, then plain appends) needs none.
pub(crate) fn needs_savepoint(ops: &[Op]) -> bool {
    let mut wrote = false;
    for op in ops {
        if wrote && is_conditional(op) {
            return true;
        }
        if !matches!(op, Op::Fence { .. }) {
            wrote = true;
        }
    }
    false
}

fn is_conditional(op: &Op) -> bool {
    match op {
        Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect != Expect::Any,
        Op::Append {
            expect_sequence, ..
        } => expect_sequence.is_some(),
        Op::Truncate { .. } => false,
        Op::Fence { .. } => true,
        // An operation this crate does not know is refused (`apply`), after
        // the request's earlier operations: a savepoint undoes them.
        _ => true,
    }
}

/// The statements of the pipelinable operations, prepared before a
/// pipelined run ([`prepare_pipelined`]).
const UPDATE_IF_VERSION: &str = "UPDATE foundation_persist_state \
                     SET version = nextval('foundation_persist_versions'), envelope = $3 \
                     WHERE keyspace = $1 AND key = $2 AND version = $4 RETURNING version";
const INSERT_IF_ABSENT: &str = "INSERT INTO foundation_persist_state (keyspace, key, version, envelope) \
                     VALUES ($1, $2, nextval('foundation_persist_versions'), $3) \
                     ON CONFLICT (keyspace, key) DO NOTHING RETURNING version";
const UPSERT: &str = "INSERT INTO foundation_persist_state (keyspace, key, version, envelope) \
                     VALUES ($1, $2, nextval('foundation_persist_versions'), $3) \
                     ON CONFLICT (keyspace, key) DO UPDATE \
                     SET version = EXCLUDED.version, envelope = EXCLUDED.envelope \
                     RETURNING version";
const DELETE_IF_VERSION: &str = "DELETE FROM foundation_persist_state \
                     WHERE keyspace = $1 AND key = $2 AND version = $3";
const DELETE_ANY: &str = "DELETE FROM foundation_persist_state WHERE keyspace = $1 AND key = $2";
const APPEND: &str = "WITH head AS ( \
               INSERT INTO foundation_persist_heads AS h \
                 (journal, stream, next_sequence, truncated_through) VALUES ($1, $2, 2, 0) \
               ON CONFLICT (journal, stream) DO UPDATE SET next_sequence = h.next_sequence + 1 \
               RETURNING h.next_sequence - 1 AS sequence) \
             INSERT INTO foundation_persist_journal (journal, stream, sequence, record) \
             SELECT $1, $2, sequence, $3 FROM head RETURNING sequence";
const CURRENT_VERSION: &str =
    "SELECT version FROM foundation_persist_state WHERE keyspace = $1 AND key = $2";

/// Whether a request is one statement whose failed precondition changes
/// nothing (a put, a delete that is unconditional or expects a version, an
/// append that expects no sequence number): such requests can be sent to
/// the server back to back without waiting for each answer (pipelined);
/// the server runs them in the order sent.
pub(crate) fn is_pipelinable(ops: &[Op]) -> bool {
    match ops {
        [Op::Put { .. }] => true,
        [Op::Delete { expect, .. }] => *expect != Expect::Absent,
        [
            Op::Append {
                expect_sequence, ..
            },
        ] => expect_sequence.is_none(),
        _ => false,
    }
}

/// Prepares (or finds in the connection's cache) every statement a
/// pipelinable request uses, so that applying one sends its statement
/// within its first poll, in order.
pub(crate) async fn prepare_pipelined(
    transaction: &Transaction<'_>,
) -> Result<(), tokio_postgres::Error> {
    for sql in [
        UPDATE_IF_VERSION,
        INSERT_IF_ABSENT,
        UPSERT,
        DELETE_IF_VERSION,
        DELETE_ANY,
        APPEND,
        CURRENT_VERSION,
    ] {
        transaction.prepare_cached(sql).await?;
    }
    Ok(())
}

/// Applies the operations of one request in order.
pub(crate) async fn apply_request(
    transaction: &Transaction<'_>,
    ops: &[Op],
) -> Result<Vec<Outcome>, Refusal> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        outcomes.push(apply(transaction, op).await?);
    }
    Ok(outcomes)
}

async fn apply(transaction: &Transaction<'_>, op: &Op) -> Result<Outcome, Refusal> {
    match op {
        Op::Put {
            keyspace,
            key,
            value,
            expect,
        } => put(transaction, keyspace, key, value, *expect).await,
        Op::Delete {
            keyspace,
            key,
            expect,
        } => delete(transaction, keyspace, key, *expect).await,
        Op::Append {
            journal,
            stream,
            record,
            expect_sequence,
        } => append(transaction, journal, stream, record, *expect_sequence).await,
        Op::Truncate {
            journal,
            stream,
            through,
        } => truncate(transaction, journal, stream, *through).await,
        Op::Fence { name, token } => fence(transaction, name, *token).await,
        other => Err(Refusal::Conflict(Error::new(
            ErrorCode::INTERNAL_ERROR,
            format!("the PostgreSQL backend does not know the operation {other:?}"),
        ))),
    }
}

async fn put(
    transaction: &Transaction<'_>,
    keyspace: &StateKeyspace,
    key: &str,
    value: &[u8],
    expect: Expect,
) -> Result<Outcome, Refusal> {
    let space = keyspace.storage_name();
    let row = match expect {
        Expect::Version(version) => {
            let expected = as_i64(version.get());
            let statement = transaction.prepare_cached(UPDATE_IF_VERSION).await?;
            transaction
                .query_opt(&statement, &[&space, &key, &value, &expected])
                .await?
        }
        Expect::Absent => {
            let statement = transaction.prepare_cached(INSERT_IF_ABSENT).await?;
            transaction
                .query_opt(&statement, &[&space, &key, &value])
                .await?
        }
        _ => {
            let statement = transaction.prepare_cached(UPSERT).await?;
            transaction
                .query_opt(&statement, &[&space, &key, &value])
                .await?
        }
    };
    match row {
        Some(row) => {
            let version: i64 = row.try_get(0)?;
            Ok(Outcome::Written {
                version: Version::new(as_u64(version)),
            })
        }
        None => {
            let current = current_version(transaction, space, key).await?;
            Err(Refusal::Conflict(state_conflict(
                expect, current, keyspace, key,
            )))
        }
    }
}

async fn delete(
    transaction: &Transaction<'_>,
    keyspace: &StateKeyspace,
    key: &str,
    expect: Expect,
) -> Result<Outcome, Refusal> {
    let space = keyspace.storage_name();
    match expect {
        Expect::Absent => {
            let current = current_version(transaction, space, key).await?;
            if current != 0 {
                return Err(Refusal::Conflict(state_conflict(
                    expect, current, keyspace, key,
                )));
            }
            Ok(Outcome::Deleted { existed: false })
        }
        Expect::Version(version) => {
            let expected = as_i64(version.get());
            let statement = transaction.prepare_cached(DELETE_IF_VERSION).await?;
            let deleted = transaction
                .execute(&statement, &[&space, &key, &expected])
                .await?;
            if deleted == 0 {
                let current = current_version(transaction, space, key).await?;
                return Err(Refusal::Conflict(state_conflict(
                    expect, current, keyspace, key,
                )));
            }
            Ok(Outcome::Deleted { existed: true })
        }
        _ => {
            let statement = transaction.prepare_cached(DELETE_ANY).await?;
            let deleted = transaction.execute(&statement, &[&space, &key]).await?;
            Ok(Outcome::Deleted {
                existed: deleted != 0,
            })
        }
    }
}

async fn append(
    transaction: &Transaction<'_>,
    journal: &JournalKeyspace,
    stream: &str,
    record: &[u8],
    expect_sequence: Option<u64>,
) -> Result<Outcome, Refusal> {
    let space = journal.storage_name();
    if let Some(expected) = expect_sequence {
        let (next, _) = lock_head(transaction, space, stream).await?;
        if next != expected {
            return Err(Refusal::Conflict(sequence_conflict(
                journal, stream, expected, next,
            )));
        }
    }
    let statement = transaction.prepare_cached(APPEND).await?;
    let row = transaction
        .query_one(&statement, &[&space, &stream, &record])
        .await?;
    let sequence: i64 = row.try_get(0)?;
    Ok(Outcome::Appended {
        sequence: as_u64(sequence),
    })
}

async fn truncate(
    transaction: &Transaction<'_>,
    journal: &JournalKeyspace,
    stream: &str,
    through: u64,
) -> Result<Outcome, Refusal> {
    let space = journal.storage_name();
    let (next, truncated_through) = lock_head(transaction, space, stream).await?;
    if through <= truncated_through || next == 1 {
        return Ok(Outcome::Truncated { removed: 0 });
    }
    let new_through = through.min(next - 1).max(truncated_through);
    let (from, to) = (as_i64(truncated_through), as_i64(new_through));
    let statement = transaction
        .prepare_cached(
            "DELETE FROM foundation_persist_journal \
             WHERE journal = $1 AND stream = $2 AND sequence > $3 AND sequence <= $4",
        )
        .await?;
    let removed = transaction
        .execute(&statement, &[&space, &stream, &from, &to])
        .await?;
    let statement = transaction
        .prepare_cached(
            "UPDATE foundation_persist_heads SET truncated_through = $3 \
             WHERE journal = $1 AND stream = $2",
        )
        .await?;
    transaction
        .execute(&statement, &[&space, &stream, &to])
        .await?;
    Ok(Outcome::Truncated { removed })
}

/// Share-locks the lease rows every fence of a batch checks, in name
/// order, at the start of the batch's transaction. Every statement that
/// locks several lease rows (the renewal) locks them in name order too, so
/// a batch and a renewal can never deadlock; the fences' own checks then
/// find their rows locked already.
pub(crate) async fn lock_fences<'a>(
    transaction: &Transaction<'_>,
    requests: impl Iterator<Item = &'a [Op]>,
) -> Result<(), tokio_postgres::Error> {
    let mut names: Vec<&str> = requests
        .flatten()
        .filter_map(|op| match op {
            Op::Fence { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort_unstable();
    names.dedup();
    let statement = transaction
        .prepare_cached(
            "SELECT name FROM foundation_persist_leases WHERE name = ANY($1::text[]) \
             ORDER BY name FOR SHARE",
        )
        .await?;
    transaction.query(&statement, &[&names]).await?;
    Ok(())
}

/// Checks that `token` is the current token of the lease `name` (and the
/// lease not released), its row share-locked until the transaction (or the
/// request's savepoint) ends, so that no takeover can commit between this
/// check and the commit of the request's writes.
async fn fence(transaction: &Transaction<'_>, name: &str, token: u64) -> Result<Outcome, Refusal> {
    let statement = transaction
        .prepare_cached(
            "SELECT token, owner IS NULL FROM foundation_persist_leases \
             WHERE name = $1 FOR SHARE",
        )
        .await?;
    let current = match transaction.query_opt(&statement, &[&name]).await? {
        Some(row) => {
            let current: i64 = row.try_get(0)?;
            let released: bool = row.try_get(1)?;
            Some((as_u64(current), released))
        }
        None => None,
    };
    match current {
        Some((current, false)) if current == token => Ok(Outcome::Fenced),
        _ => Err(Refusal::Conflict(foundation_persist::lease::lost(
            name,
            token,
            current.map(|(current, _)| current),
        ))),
    }
}

/// The stream's `(next_sequence, truncated_through)`, its row locked until
/// the transaction ends; `(1, 0)` for a stream never written.
async fn lock_head(
    transaction: &Transaction<'_>,
    space: &str,
    stream: &str,
) -> Result<(u64, u64), tokio_postgres::Error> {
    let statement = transaction
        .prepare_cached(
            "SELECT next_sequence, truncated_through FROM foundation_persist_heads \
             WHERE journal = $1 AND stream = $2 FOR UPDATE",
        )
        .await?;
    match transaction
        .query_opt(&statement, &[&space, &stream])
        .await?
    {
        Some(row) => {
            let next: i64 = row.try_get(0)?;
            let truncated: i64 = row.try_get(1)?;
            Ok((as_u64(next), as_u64(truncated)))
        }
        None => Ok((1, 0)),
    }
}

/// The key's current version (0: absent), for a conflict's message.
async fn current_version(
    transaction: &Transaction<'_>,
    space: &str,
    key: &str,
) -> Result<u64, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(CURRENT_VERSION).await?;
    match transaction.query_opt(&statement, &[&space, &key]).await? {
        Some(row) => Ok(as_u64(row.try_get::<_, i64>(0)?)),
        None => Ok(0),
    }
}

/// A failed compare-and-set, worded and named like the other backends'.
fn state_conflict(expect: Expect, current: u64, keyspace: &StateKeyspace, key: &str) -> Error {
    let describe = |version: u64| {
        if version == 0 {
            "absent".to_owned()
        } else {
            Version::new(version).to_string()
        }
    };
    let expected = match expect {
        Expect::Version(version) => version.get(),
        _ => 0,
    };
    Error::new(
        ErrorCode::VERSION_CONFLICT,
        format!(
            "compare-and-set expected the value {} but found it {}",
            describe(expected),
            describe(current)
        ),
    )
    .with_context("keyspace", keyspace.name())
    .with_context("key", key)
    .with_context("expected_version", describe(expected))
    .with_context("found_version", describe(current))
}

/// An append whose expected sequence number was not the stream's next.
fn sequence_conflict(journal: &JournalKeyspace, stream: &str, expected: u64, next: u64) -> Error {
    Error::new(
        ErrorCode::VERSION_CONFLICT,
        format!("the append expected sequence number {expected}, but the stream's next is {next}"),
    )
    .with_context("keyspace", journal.name())
    .with_context("stream", stream)
    .with_context("expected_sequence", expected)
    .with_context("next_sequence", next)
}

/// A version or sequence number as PostgreSQL's `bigint`; numbers past
/// `i64::MAX` (which this backend never hands out) become `i64::MAX`, so
/// they can only fail a comparison.
pub(crate) fn as_i64(number: u64) -> i64 {
    i64::try_from(number).unwrap_or(i64::MAX)
}

/// A stored `bigint` as a version or sequence number (stored numbers are
/// never negative; a negative one reads as 0).
pub(crate) fn as_u64(number: i64) -> u64 {
    u64::try_from(number).unwrap_or(0)
}
