//! Applying write requests inside one redb write transaction.
//!
//! A request is all-or-nothing: its preconditions (compare-and-set
//! versions, expected journal sequence numbers) are checked first, against
//! the transaction as earlier requests of the batch left it and against the
//! request's own earlier operations; only if all hold are its writes made.
//! A request whose precondition fails is answered `version_conflict` and
//! the rest of the batch goes on. A storage error, by contrast, fails the
//! whole batch: the transaction is dropped and nothing in it is committed.
//!
//! This module is not for batching or committing (`writer.rs`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use std::time::Instant;

use foundation_error::{Error, ErrorCode};
use redb::{Database, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::backend::{Expect, Op};
use crate::classify::storage_error;
use crate::layout::{self, LEASE_TOKEN_KEY, LEASES, REVISION_KEY, SYSTEM};
use crate::lease::{Lease, LeaseRow, acquire_row, check_fence, claim_row, releases, renew_row};
use crate::ops::{Answer, LeaseOp, Outcome, Version, Work, WriteReply};

/// Applies `requests` in one write transaction and commits it, durably or
/// not; returns one reply per request and whether anything was committed.
///
/// A request rejected by its preconditions gets its error and the others go
/// on; when no request applies, the transaction is aborted (no fsync). A
/// storage error fails the whole batch. Records the batch metrics of a
/// commit.
pub(crate) fn commit_requests<'a>(
    database: &Database,
    versions: &mut Option<VersionBlock>,
    requests: impl ExactSizeIterator<Item = &'a Work>,
    durable: bool,
    now: u64,
) -> Result<(Vec<WriteReply>, bool), Error> {
    let started = Instant::now();
    let mut transaction = database
        .begin_write()
        .map_err(|error| storage_error(error, "begin_write"))?;
    let level = if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    transaction
        .set_durability(level)
        .map_err(|error| storage_error(error, "set_durability"))?;
    let mut replies = Vec::with_capacity(requests.len());
    let mut operations = 0;
    let block = match versions {
        Some(block) => block,
        None => {
            let reserved = read_revision(&transaction)?;
            versions.insert(VersionBlock {
                issued: reserved,
                reserved,
            })
        }
    };
    let mut revision = block.issued;
    let applied = (|| {
        let mut tables = Tables::new(&transaction, now);
        for work in requests {
            match work {
                Work::Ops(ops) => {
                    let reply = apply_request(&mut tables, &mut revision, ops)?;
                    if reply.is_ok() {
                        operations += ops.len();
                    }
                    replies.push(reply.map(Answer::Outcomes));
                }
                Work::Lease(op) => {
                    let (answers, changed) = apply_lease(&mut tables, op)?;
                    operations += changed;
                    replies.push(Ok(Answer::Leases(answers)));
                }
            }
        }
        Ok::<(), Error>(())
    })();
    // Versions handed out are never handed out again, even when the
    // commit fails: a failed commit may still have reached the disk.
    block.issued = block.issued.max(revision);
    applied?;
    let mut reserved = None;
    if revision > block.reserved {
        let new_reserved = revision.saturating_add(VERSION_BLOCK);
        write_revision(&transaction, new_reserved)?;
        reserved = Some(new_reserved);
    }
    if operations == 0 {
        transaction
            .abort()
            .map_err(|error| storage_error(error, "abort"))?;
        return Ok((replies, false));
    }
    transaction
        .commit()
        .map_err(|error| storage_error(error, "commit"))?;
    if let Some(reserved) = reserved {
        block.reserved = reserved;
    }
    crate::metrics::record_commit(operations, started.elapsed());
    Ok((replies, true))
}

/// How many versions one reservation in the system table covers: the
/// system row is written once per this many versions (and once after each
/// open), never by every commit.
pub(crate) const VERSION_BLOCK: u64 = 1 << 16;

/// The versions a store hands out: drawn one by one from a block reserved
/// in the system table (`revision` there is the reservation's upper end).
/// A reservation is committed in the same transaction as the first version
/// drawn from it, so after a crash the next open starts above every
/// version that reached the disk. Loaded at the first commit after an open
/// or a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VersionBlock {
    /// The last version handed out.
    pub(crate) issued: u64,
    /// The reservation's upper end, as committed.
    pub(crate) reserved: u64,
}

type StateTableHandle<'txn> = Table<'txn, &'static str, (u64, &'static [u8])>;
type JournalTableHandle<'txn> = Table<'txn, (&'static str, u64), &'static [u8]>;
type HeadTableHandle<'txn> = Table<'txn, &'static str, (u64, u64)>;
type LeaseTableHandle<'txn> = Table<'txn, &'static str, (u64, u64, &'static str)>;

/// The tables a batch has opened, kept open until the batch is applied.
pub(crate) struct Tables<'txn> {
    transaction: &'txn WriteTransaction,
    state: HashMap<Arc<str>, StateTableHandle<'txn>>,
    journal: HashMap<Arc<str>, JournalTableHandle<'txn>>,
    heads: HashMap<Arc<str>, HeadTableHandle<'txn>>,
    leases: Option<LeaseTableHandle<'txn>>,
    /// The last lease token handed out, once read in this transaction.
    last_lease_token: Option<u64>,
    /// The store clock's wall time, in microseconds, for lease expiry.
    now: u64,
}

/// A request rejected by a precondition, or a storage failure that fails
/// the batch.
pub(crate) type Applied = Result<Result<Vec<Outcome>, Error>, Error>;

impl<'txn> Tables<'txn> {
    pub(crate) fn new(transaction: &'txn WriteTransaction, now: u64) -> Tables<'txn> {
        Tables {
            transaction,
            state: HashMap::new(),
            journal: HashMap::new(),
            heads: HashMap::new(),
            leases: None,
            last_lease_token: None,
            now,
        }
    }

    fn leases(&mut self) -> Result<&mut LeaseTableHandle<'txn>, Error> {
        if self.leases.is_none() {
            let table = self
                .transaction
                .open_table(LEASES)
                .map_err(|error| storage_error(error, "open_table"))?;
            self.leases = Some(table);
        }
        self.leases
            .as_mut()
            .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "the lease table did not open"))
    }

    fn lease_row(&mut self, name: &str) -> Result<Option<LeaseRow>, Error> {
        let table = self.leases()?;
        let row = table
            .get(name)
            .map_err(|error| storage_error(error, "read"))?
            .map(|value| row_of(value.value()));
        Ok(row)
    }

    fn delete_lease_row(&mut self, name: &str) -> Result<(), Error> {
        self.leases()?
            .remove(name)
            .map_err(|error| storage_error(error, "write"))?;
        Ok(())
    }

    /// The last lease token handed out. A store written before the
    /// counter existed has none stored: then it is the largest token of
    /// the lease table, and the released rows that table kept (tokens used
    /// to live in them) are deleted.
    fn last_lease_token(&mut self) -> Result<u64, Error> {
        if let Some(token) = self.last_lease_token {
            return Ok(token);
        }
        let stored = read_lease_token(self.transaction)?;
        let token = match stored {
            Some(token) => token,
            None => {
                let mut largest = 0;
                let mut released = Vec::new();
                for entry in self
                    .leases()?
                    .iter()
                    .map_err(|error| storage_error(error, "read"))?
                {
                    let (name, value) = entry.map_err(|error| storage_error(error, "read"))?;
                    let row = row_of(value.value());
                    largest = largest.max(row.token);
                    if row.owner.is_none() {
                        released.push(name.value().to_owned());
                    }
                }
                for name in released {
                    self.delete_lease_row(&name)?;
                }
                write_lease_token(self.transaction, largest)?;
                largest
            }
        };
        self.last_lease_token = Some(token);
        Ok(token)
    }

    /// Counts `token` (the last one + 1) as handed out.
    fn issue_lease_token(&mut self, token: u64) -> Result<(), Error> {
        write_lease_token(self.transaction, token)?;
        self.last_lease_token = Some(token);
        Ok(())
    }

    fn put_lease_row(&mut self, name: &str, row: &LeaseRow) -> Result<(), Error> {
        let owner = row.owner.as_deref().unwrap_or("");
        self.leases()?
            .insert(name, (row.token, row.expires_micros, owner))
            .map_err(|error| storage_error(error, "write"))?;
        Ok(())
    }

    fn state(&mut self, name: &Arc<str>) -> Result<&mut StateTableHandle<'txn>, Error> {
        open(self.transaction, &mut self.state, name)
    }

    fn journal(&mut self, name: &Arc<str>) -> Result<&mut JournalTableHandle<'txn>, Error> {
        open(self.transaction, &mut self.journal, name)
    }

    fn heads(&mut self, name: &Arc<str>) -> Result<&mut HeadTableHandle<'txn>, Error> {
        open(self.transaction, &mut self.heads, name)
    }

    fn current_version(&mut self, table: &Arc<str>, key: &str) -> Result<u64, Error> {
        let table = self.state(table)?;
        let current = table
            .get(key)
            .map_err(|error| storage_error(error, "read"))?
            .map_or(0, |value| value.value().0);
        Ok(current)
    }

    /// (next sequence, truncated through) of a stream.
    fn head(&mut self, heads: &Arc<str>, stream: &str) -> Result<(u64, u64), Error> {
        let table = self.heads(heads)?;
        let head = table
            .get(stream)
            .map_err(|error| storage_error(error, "read"))?
            .map_or((1, 0), |value| value.value());
        Ok(head)
    }
}

fn open<'map, 'txn, K, V>(
    transaction: &'txn WriteTransaction,
    tables: &'map mut HashMap<Arc<str>, Table<'txn, K, V>>,
    name: &Arc<str>,
) -> Result<&'map mut Table<'txn, K, V>, Error>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    match tables.entry(Arc::clone(name)) {
        Entry::Occupied(entry) => Ok(entry.into_mut()),
        Entry::Vacant(entry) => {
            let table = transaction
                .open_table(TableDefinition::<K, V>::new(name))
                .map_err(|error| storage_error(error, "open_table"))?;
            Ok(entry.insert(table))
        }
    }
}

/// Reads the upper end of the version reservation (0 in a new store).
pub(crate) fn read_revision(transaction: &WriteTransaction) -> Result<u64, Error> {
    let table = transaction
        .open_table(SYSTEM)
        .map_err(|error| storage_error(error, "open_table"))?;
    let revision = table
        .get(REVISION_KEY)
        .map_err(|error| storage_error(error, "read"))?
        .map_or(0, |value| value.value());
    Ok(revision)
}

/// Reads the last lease token handed out (`None` in a store written
/// before the counter existed).
pub(crate) fn read_lease_token(transaction: &WriteTransaction) -> Result<Option<u64>, Error> {
    let table = transaction
        .open_table(SYSTEM)
        .map_err(|error| storage_error(error, "open_table"))?;
    let token = table
        .get(LEASE_TOKEN_KEY)
        .map_err(|error| storage_error(error, "read"))?
        .map(|value| value.value());
    Ok(token)
}

pub(crate) fn write_lease_token(transaction: &WriteTransaction, token: u64) -> Result<(), Error> {
    let mut table = transaction
        .open_table(SYSTEM)
        .map_err(|error| storage_error(error, "open_table"))?;
    table
        .insert(LEASE_TOKEN_KEY, token)
        .map_err(|error| storage_error(error, "write"))?;
    Ok(())
}

/// Forgets the lease token counter: the next lease operation starts it
/// again from the lease table.
pub(crate) fn remove_lease_token(transaction: &WriteTransaction) -> Result<(), Error> {
    let mut table = transaction
        .open_table(SYSTEM)
        .map_err(|error| storage_error(error, "open_table"))?;
    table
        .remove(LEASE_TOKEN_KEY)
        .map_err(|error| storage_error(error, "write"))?;
    Ok(())
}

pub(crate) fn write_revision(transaction: &WriteTransaction, revision: u64) -> Result<(), Error> {
    let mut table = transaction
        .open_table(SYSTEM)
        .map_err(|error| storage_error(error, "open_table"))?;
    table
        .insert(REVISION_KEY, revision)
        .map_err(|error| storage_error(error, "write"))?;
    Ok(())
}

/// Checks a request's preconditions, then makes its writes.
///
/// `revision` is the last revision handed out; it advances only when the
/// request is applied.
pub(crate) fn apply_request(tables: &mut Tables<'_>, revision: &mut u64, ops: &[Op]) -> Applied {
    let mut versions: HashMap<(&str, &str), u64> = HashMap::new();
    let mut sequences: HashMap<(&str, &str), u64> = HashMap::new();
    let mut next_revision = *revision;
    let mut outcomes = Vec::with_capacity(ops.len());

    for op in ops {
        match op {
            Op::Put {
                keyspace,
                key,
                expect,
                ..
            } => {
                let table = &keyspace.storage;
                // An unconditional put needs no read: its version is the
                // next revision whatever the key held.
                if *expect != Expect::Any {
                    let current = match versions.get(&(&**table, key.as_str())) {
                        Some(&version) => version,
                        None => tables.current_version(table, key)?,
                    };
                    if let Err(conflict) = check(*expect, current, table, key) {
                        return Ok(Err(conflict));
                    }
                }
                next_revision += 1;
                versions.insert((&**table, key.as_str()), next_revision);
                outcomes.push(Outcome::Written {
                    version: Version(next_revision),
                });
            }
            Op::Delete {
                keyspace,
                key,
                expect,
            } => {
                let table = &keyspace.storage;
                let current = match versions.get(&(&**table, key.as_str())) {
                    Some(&version) => version,
                    None => tables.current_version(table, key)?,
                };
                if let Err(conflict) = check(*expect, current, table, key) {
                    return Ok(Err(conflict));
                }
                versions.insert((&**table, key.as_str()), 0);
                outcomes.push(Outcome::Deleted {
                    existed: current != 0,
                });
            }
            Op::Append {
                journal,
                stream,
                expect_sequence,
                ..
            } => {
                let next = match sequences.get(&(&*journal.heads, stream.as_str())) {
                    Some(&next) => next,
                    None => tables.head(&journal.heads, stream)?.0,
                };
                if let Some(expected) = *expect_sequence
                    && expected != next
                {
                    return Ok(Err(sequence_conflict(
                        &journal.records,
                        stream,
                        expected,
                        next,
                    )));
                }
                sequences.insert((&*journal.heads, stream.as_str()), next + 1);
                outcomes.push(Outcome::Appended { sequence: next });
            }
            Op::Truncate { .. } => outcomes.push(Outcome::Truncated { removed: 0 }),
            Op::Fence { name, token } => {
                let row = tables.lease_row(name)?;
                if let Err(conflict) = check_fence(name, *token, row.as_ref()) {
                    return Ok(Err(conflict));
                }
                outcomes.push(Outcome::Fenced);
            }
        }
    }

    // Each stream's head is written once per request, after its appends
    // and truncations: (next sequence, truncated through), by (heads
    // table, stream).
    let mut heads: HashMap<(&Arc<str>, &str), (u64, u64)> = HashMap::new();
    for (op, outcome) in ops.iter().zip(outcomes.iter_mut()) {
        match (op, outcome) {
            (
                Op::Put {
                    keyspace,
                    key,
                    value,
                    ..
                },
                Outcome::Written { version },
            ) => {
                tables
                    .state(&keyspace.storage)?
                    .insert(key.as_str(), (version.0, value.as_slice()))
                    .map_err(|error| storage_error(error, "write"))?;
            }
            (Op::Delete { keyspace, key, .. }, Outcome::Deleted { existed: true }) => {
                tables
                    .state(&keyspace.storage)?
                    .remove(key.as_str())
                    .map_err(|error| storage_error(error, "write"))?;
            }
            (
                Op::Append {
                    journal,
                    stream,
                    record,
                    ..
                },
                Outcome::Appended { sequence },
            ) => {
                let (_, truncated_through) =
                    pending_head(tables, &mut heads, &journal.heads, stream)?;
                tables
                    .journal(&journal.records)?
                    .insert((stream.as_str(), *sequence), record.as_slice())
                    .map_err(|error| storage_error(error, "write"))?;
                heads.insert(
                    (&journal.heads, stream.as_str()),
                    (*sequence + 1, truncated_through),
                );
            }
            (
                Op::Truncate {
                    journal,
                    stream,
                    through,
                },
                Outcome::Truncated { removed },
            ) => {
                let (next, truncated_through) =
                    pending_head(tables, &mut heads, &journal.heads, stream)?;
                if *through <= truncated_through || next == 1 {
                    continue;
                }
                let records = tables.journal(&journal.records)?;
                let extracted = records
                    .extract_from_if(
                        (stream.as_str(), truncated_through + 1)..=(stream.as_str(), *through),
                        |_, _| true,
                    )
                    .map_err(|error| storage_error(error, "truncate"))?;
                for entry in extracted {
                    entry.map_err(|error| storage_error(error, "truncate"))?;
                    *removed += 1;
                }
                let truncated_through = (*through).min(next - 1).max(truncated_through);
                heads.insert((&journal.heads, stream.as_str()), (next, truncated_through));
            }
            _ => {}
        }
    }
    for ((table, stream), head) in heads {
        tables
            .heads(table)?
            .insert(stream, head)
            .map_err(|error| storage_error(error, "write"))?;
    }
    *revision = next_revision;
    Ok(Ok(outcomes))
}

/// A stream's head as this request's earlier operations left it, else as
/// stored.
fn pending_head<'op>(
    tables: &mut Tables<'_>,
    heads: &mut HashMap<(&'op Arc<str>, &'op str), (u64, u64)>,
    table: &'op Arc<str>,
    stream: &'op str,
) -> Result<(u64, u64), Error> {
    if let Some(head) = heads.get(&(table, stream)) {
        return Ok(*head);
    }
    tables.head(table, stream)
}

/// A stored lease row: (token, expiry, owner; empty once released).
pub(crate) fn row_of((token, expires_micros, owner): (u64, u64, &str)) -> LeaseRow {
    LeaseRow {
        owner: (!owner.is_empty()).then(|| owner.to_owned()),
        token,
        expires_micros,
    }
}

/// Applies a lease operation; returns its answers and how many rows it
/// changed. A refusal (held by another, a lost lease) is an answer; a
/// storage error fails the batch.
fn apply_lease(
    tables: &mut Tables<'_>,
    op: &LeaseOp,
) -> Result<(Vec<Result<Lease, Error>>, usize), Error> {
    let now = tables.now;
    let granted = |name: &str, row: &LeaseRow| {
        row.lease(name)
            .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "a granted lease has no owner"))
    };
    match op {
        LeaseOp::Acquire { name, owner, ttl } => {
            let token = tables.last_lease_token()?.saturating_add(1);
            let row = tables.lease_row(name)?;
            match acquire_row(name, row.as_ref(), owner, *ttl, now, token) {
                Ok(row) => {
                    tables.issue_lease_token(token)?;
                    tables.put_lease_row(name, &row)?;
                    Ok((vec![granted(name, &row)], 1))
                }
                Err(refused) => Ok((vec![Err(refused)], 0)),
            }
        }
        LeaseOp::Renew { leases, ttl } => {
            let mut answers = Vec::with_capacity(leases.len());
            let mut changed = 0;
            for lease in leases {
                let row = tables.lease_row(&lease.name)?;
                match renew_row(lease, row.as_ref(), *ttl, now) {
                    Ok(row) => {
                        tables.put_lease_row(&lease.name, &row)?;
                        changed += 1;
                        answers.push(granted(&lease.name, &row));
                    }
                    Err(lost) => answers.push(Err(lost)),
                }
            }
            Ok((answers, changed))
        }
        LeaseOp::Release(lease) => {
            let row = tables.lease_row(&lease.name)?;
            if releases(lease, row.as_ref()) {
                tables.delete_lease_row(&lease.name)?;
                Ok((Vec::new(), 1))
            } else {
                Ok((Vec::new(), 0))
            }
        }
        LeaseOp::Claim {
            prefix,
            owner,
            ttl,
            limit,
        } => {
            let mut claimed = Vec::new();
            let mut last_token = tables.last_lease_token()?;
            {
                let table = tables.leases()?;
                let range = table
                    .range::<&str>(prefix.as_str()..)
                    .map_err(|error| storage_error(error, "read"))?;
                for entry in range {
                    if claimed.len() >= *limit {
                        break;
                    }
                    let (name, value) = entry.map_err(|error| storage_error(error, "read"))?;
                    let name = name.value();
                    if !name.starts_with(prefix.as_str()) {
                        break;
                    }
                    let token = last_token.saturating_add(1);
                    if let Some(row) = claim_row(&row_of(value.value()), owner, *ttl, now, token) {
                        last_token = token;
                        claimed.push((name.to_owned(), row));
                    }
                }
            }
            if !claimed.is_empty() {
                tables.issue_lease_token(last_token)?;
            }
            let mut answers = Vec::with_capacity(claimed.len());
            for (name, row) in &claimed {
                tables.put_lease_row(name, row)?;
                answers.push(granted(name, row));
            }
            Ok((answers, claimed.len()))
        }
    }
}

/// The `version_conflict` of an append that expected another sequence
/// number.
pub(crate) fn sequence_conflict(records: &str, stream: &str, expected: u64, next: u64) -> Error {
    Error::new(
        ErrorCode::VERSION_CONFLICT,
        format!("the append expected sequence number {expected}, but the stream's next is {next}"),
    )
    .with_context("keyspace", layout::keyspace_of(records))
    .with_context("stream", stream)
    .with_context("expected_sequence", expected)
    .with_context("next_sequence", next)
}

/// Checks a state write's precondition against the key's current version
/// (0: absent).
pub(crate) fn check(expect: Expect, current: u64, table: &str, key: &str) -> Result<(), Error> {
    let holds = match expect {
        Expect::Any => true,
        Expect::Absent => current == 0,
        Expect::Version(version) => current == version.get(),
    };
    if holds {
        return Ok(());
    }
    let describe = |version: u64| {
        if version == 0 {
            "absent".to_owned()
        } else {
            Version(version).to_string()
        }
    };
    let expected = match expect {
        Expect::Any | Expect::Absent => 0,
        Expect::Version(version) => version.get(),
    };
    Err(Error::new(
        ErrorCode::VERSION_CONFLICT,
        format!(
            "compare-and-set expected the value {} but found it {}",
            describe(expected),
            describe(current)
        ),
    )
    .with_context("keyspace", layout::keyspace_of(table))
    .with_context("key", key)
    .with_context("expected_version", describe(expected))
    .with_context("actual_version", describe(current)))
}
