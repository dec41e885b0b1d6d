//! Applying a write batch inside a PostgreSQL transaction: the batch's
//! operations are sent as parallel arrays to the server-side function
//! `foundation_persist_apply` (`schema.rs`), which applies every request
//! in order, all-or-nothing, in one statement, so a group commit costs one
//! round trip for its writes, whatever its size (before schema version 3
//! every request cost two to four round trips, one per statement, most of
//! a batch's time).
//!
//! Each operation is one or two statements of that function whose
//! precondition is part of the statement (`UPDATE ... WHERE version =
//! $expected`, `INSERT ... ON CONFLICT DO NOTHING`) or checked on a row
//! locked `FOR UPDATE` (a journal head) or `FOR SHARE` (a fence's lease),
//! so a precondition that fails leaves the row untouched, and concurrent
//! writers (several nodes) cannot slip between the check and the write. A
//! request whose precondition may fail after one of its earlier
//! operations wrote runs inside a subtransaction (the function's exception
//! block), undone when the precondition fails; other requests (one
//! operation, or conditions and fences before every write) need none.
//! Conflicts are answers (`version_conflict` naming the keyspace and key,
//! stream or lease, like the other backends), built here from what the
//! function found; database errors abort the whole batch.
//!
//! This module is not for batching or committing (`writer.rs`).

use deadpool_postgres::Transaction;
use foundation_error::{Error, ErrorCode};
use foundation_persist::backend::{Expect, JournalKeyspace, Op, StateKeyspace};
use foundation_persist::{Outcome, Version};

/// The statement that applies a batch (`schema.rs` defines the function).
const APPLY_BATCH: &str = "SELECT operation, applied, result FROM foundation_persist_apply(\
     $1::integer[], $2::smallint[], $3::text[], $4::text[], $5::bytea[], $6::smallint[], \
     $7::bigint[], $8::boolean[], $9::text[])";

/// The kinds of operation, as `foundation_persist_apply_op` numbers them.
const PUT: i16 = 0;
const DELETE: i16 = 1;
const APPEND: i16 = 2;
const TRUNCATE: i16 = 3;
const FENCE: i16 = 4;

/// The expectations, as `foundation_persist_apply_op` numbers them.
const EXPECT_ANY: i16 = 0;
const EXPECT_ABSENT: i16 = 1;
const EXPECT_NUMBER: i16 = 2;

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
        _ => true,
    }
}

/// A batch as the function's parallel arrays, one element per operation.
#[derive(Default)]
struct Arrays<'a> {
    requests: Vec<i32>,
    kinds: Vec<i16>,
    spaces: Vec<&'a str>,
    items: Vec<&'a str>,
    payloads: Vec<Option<&'a [u8]>>,
    expectings: Vec<i16>,
    numbers: Vec<i64>,
    guarded: Vec<bool>,
    fences: Vec<&'a str>,
}

/// One operation's arguments: `(kind, space, item, payload, expecting,
/// number)`; `None` for an operation this crate does not know.
type Encoded<'a> = (i16, &'a str, &'a str, Option<&'a [u8]>, i16, i64);

fn encode(op: &Op) -> Option<Encoded<'_>> {
    let expectation = |expect: &Expect| match expect {
        Expect::Absent => (EXPECT_ABSENT, 0),
        Expect::Version(version) => (EXPECT_NUMBER, as_i64(version.get())),
        _ => (EXPECT_ANY, 0),
    };
    Some(match op {
        Op::Put {
            keyspace,
            key,
            value,
            expect,
        } => {
            let (expecting, number) = expectation(expect);
            (
                PUT,
                keyspace.storage_name(),
                key,
                Some(value),
                expecting,
                number,
            )
        }
        Op::Delete {
            keyspace,
            key,
            expect,
        } => {
            let (expecting, number) = expectation(expect);
            (
                DELETE,
                keyspace.storage_name(),
                key,
                None,
                expecting,
                number,
            )
        }
        Op::Append {
            journal,
            stream,
            record,
            expect_sequence,
        } => match expect_sequence {
            Some(expected) => (
                APPEND,
                journal.storage_name(),
                stream,
                Some(record),
                EXPECT_NUMBER,
                as_i64(*expected),
            ),
            None => (
                APPEND,
                journal.storage_name(),
                stream,
                Some(record),
                EXPECT_ANY,
                0,
            ),
        },
        Op::Truncate {
            journal,
            stream,
            through,
        } => (
            TRUNCATE,
            journal.storage_name(),
            stream,
            None,
            EXPECT_ANY,
            as_i64(*through),
        ),
        Op::Fence { name, token } => (FENCE, name, "", None, EXPECT_NUMBER, as_i64(*token)),
        _ => return None,
    })
}

/// Applies the requests of a batch in order, each all-or-nothing, in one
/// statement: one answer per request (its outcomes, or the conflict that
/// refused it). The outer error is a database failure, which aborts the
/// batch's transaction.
///
/// The fences' lease rows are share-locked in name order before any
/// request runs, as a renewal locks its rows, so that a batch and a
/// heartbeat cannot deadlock, and no takeover of a fenced lease can commit
/// before the batch does.
pub(crate) async fn apply_batch<'a>(
    transaction: &Transaction<'_>,
    requests: impl Iterator<Item = &'a [Op]>,
) -> Result<Vec<Result<Vec<Outcome>, Error>>, tokio_postgres::Error> {
    let requests: Vec<&[Op]> = requests.collect();
    let mut answers: Vec<Option<Result<Vec<Outcome>, Error>>> = Vec::with_capacity(requests.len());
    let mut arrays = Arrays::default();
    // The first operation's index (in the arrays) of each request sent.
    let mut first_of = Vec::with_capacity(requests.len());
    for (index, ops) in requests.iter().enumerate() {
        let encoded: Option<Vec<Encoded<'_>>> = ops.iter().map(encode).collect();
        let Some(encoded) = encoded else {
            let unknown = ops.iter().find(|op| encode(op).is_none());
            answers.push(Some(Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                format!("the PostgreSQL backend does not know the operation {unknown:?}"),
            ))));
            first_of.push(None);
            continue;
        };
        answers.push(None);
        first_of.push(Some(arrays.kinds.len()));
        let guarded = needs_savepoint(ops);
        let request = i32::try_from(index).unwrap_or(i32::MAX);
        for (kind, space, item, payload, expecting, number) in encoded {
            if kind == FENCE {
                arrays.fences.push(space);
            }
            arrays.requests.push(request);
            arrays.kinds.push(kind);
            arrays.spaces.push(space);
            arrays.items.push(item);
            arrays.payloads.push(payload);
            arrays.expectings.push(expecting);
            arrays.numbers.push(number);
            arrays.guarded.push(guarded);
        }
    }
    if !arrays.kinds.is_empty() {
        arrays.fences.sort_unstable();
        arrays.fences.dedup();
        let statement = transaction.prepare_cached(APPLY_BATCH).await?;
        let rows = transaction
            .query(
                &statement,
                &[
                    &arrays.requests,
                    &arrays.kinds,
                    &arrays.spaces,
                    &arrays.items,
                    &arrays.payloads,
                    &arrays.expectings,
                    &arrays.numbers,
                    &arrays.guarded,
                    &arrays.fences,
                ],
            )
            .await?;
        // Rows come in operation order; the function numbers operations
        // from 1.
        let mut rows = rows.iter().peekable();
        for (index, ops) in requests.iter().enumerate() {
            let Some(first) = first_of[index] else {
                continue;
            };
            let mut outcomes = Vec::with_capacity(ops.len());
            let mut refusal = None;
            while let Some(&row) = rows.peek() {
                let operation: i32 = row.try_get(0)?;
                let position = usize::try_from(operation).unwrap_or(0).wrapping_sub(1);
                if position < first || position >= first + ops.len() {
                    break;
                }
                rows.next();
                let applied: bool = row.try_get(1)?;
                let number: Option<i64> = row.try_get(2)?;
                let op = &ops[position - first];
                if applied {
                    outcomes.push(outcome(op, number.unwrap_or(0)));
                } else {
                    refusal = Some(conflict(op, number));
                    break;
                }
            }
            answers[index] = Some(match refusal {
                Some(error) => Err(error),
                None if outcomes.len() == ops.len() => Ok(outcomes),
                None => Err(Error::new(
                    ErrorCode::INTERNAL_ERROR,
                    "PostgreSQL answered a write request without all its outcomes",
                )),
            });
        }
    }
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(Error::new(
                    ErrorCode::INTERNAL_ERROR,
                    "PostgreSQL did not answer a write request",
                ))
            })
        })
        .collect())
}

/// An applied operation's outcome from the function's number.
fn outcome(op: &Op, number: i64) -> Outcome {
    match op {
        Op::Put { .. } => Outcome::Written {
            version: Version::new(as_u64(number)),
        },
        Op::Delete { .. } => Outcome::Deleted {
            existed: number != 0,
        },
        Op::Append { .. } => Outcome::Appended {
            sequence: as_u64(number),
        },
        Op::Truncate { .. } => Outcome::Truncated {
            removed: as_u64(number),
        },
        _ => Outcome::Fenced,
    }
}

/// A refused operation's conflict from what the function found.
fn conflict(op: &Op, found: Option<i64>) -> Error {
    let found_number = as_u64(found.unwrap_or(0));
    match op {
        Op::Put {
            keyspace,
            key,
            expect,
            ..
        }
        | Op::Delete {
            keyspace,
            key,
            expect,
        } => state_conflict(*expect, found_number, keyspace, key),
        Op::Append {
            journal,
            stream,
            expect_sequence,
            ..
        } => sequence_conflict(journal, stream, expect_sequence.unwrap_or(0), found_number),
        Op::Fence { name, token } => {
            foundation_persist::lease::lost(name, *token, found.map(as_u64))
        }
        other => Error::new(
            ErrorCode::INTERNAL_ERROR,
            format!("PostgreSQL refused an operation that has no precondition: {other:?}"),
        ),
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
