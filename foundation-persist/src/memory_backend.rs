//! The in-memory backend: the whole store in ordered maps behind one mutex,
//! for tests ([`Store::open_in_memory`](crate::Store::open_in_memory)).
//!
//! It is the second implementation of the [`Backend`] contract beside
//! redb, and the simplest reading of it: every write request is applied
//! under the lock, all or nothing, on the calling task, so each call
//! completes within its first poll (tests under paused tokio time stay
//! deterministic). Versions come from one counter, so they never repeat
//! for a key. Nothing is durable: the data goes with the last handle.
//!
//! This module is not for production data, for maintenance (it has no
//! file: [`Store::file`](crate::Store::file) is `None`), or for metrics.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foundation_error::clock::SharedClock;

use foundation_error::{Error, ErrorCode};

use crate::apply::{check, sequence_conflict};
use crate::backend::{
    Backend, BackendFuture, Expect, JournalKeyspace, Op, StateKeyspace, StoredEntry, StoredValue,
};
use crate::classify::closed;
use crate::journal::StreamHead;
use crate::lease::{
    Lease, LeaseRow, acquire_row, check_fence, claim_row, micros, releases, renew_row,
};
use crate::ops::{Outcome, Version};
use crate::watch::{ChangeFeed, Changes, watched_changes};

/// One state keyspace: key to (version, envelope).
type StateValues = BTreeMap<String, (u64, Vec<u8>)>;

/// The store's data.
#[derive(Default)]
struct Data {
    /// Per state keyspace, by storage name.
    state: HashMap<Arc<str>, StateValues>,
    /// Per journal keyspace (by storage name).
    journals: HashMap<Arc<str>, JournalData>,
    /// The last version handed out.
    last_version: u64,
    /// Held leases by name (a release deletes its row).
    leases: BTreeMap<String, LeaseRow>,
    /// The last lease token handed out (tokens never repeat, whether or
    /// not their rows are kept).
    last_lease_token: u64,
}

#[derive(Default)]
struct JournalData {
    records: BTreeMap<(String, u64), Vec<u8>>,
    /// Per stream: (next sequence, truncated through).
    heads: BTreeMap<String, (u64, u64)>,
}

impl JournalData {
    fn head(&self, stream: &str) -> (u64, u64) {
        self.heads.get(stream).copied().unwrap_or((1, 0))
    }
}

/// The in-memory backend.
pub(crate) struct MemoryBackend {
    data: Mutex<Option<Data>>,
    closed: AtomicBool,
    changes: ChangeFeed,
    /// Judges lease expiry.
    clock: SharedClock,
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl MemoryBackend {
    pub(crate) fn new(clock: SharedClock) -> MemoryBackend {
        MemoryBackend {
            data: Mutex::new(Some(Data::default())),
            closed: AtomicBool::new(false),
            changes: ChangeFeed::new("memory"),
            clock,
        }
    }

    /// The store clock's wall time in microseconds.
    fn now(&self) -> u64 {
        micros(self.clock.wall())
    }

    /// Runs `work` on the data, or fails with `service_unavailable` once
    /// closed.
    fn with_data<R>(&self, work: impl FnOnce(&mut Data) -> Result<R, Error>) -> Result<R, Error> {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        match data.as_mut() {
            Some(data) if !self.is_closed() => work(data),
            _ => Err(closed()),
        }
    }
}

impl Data {
    fn version_of(&self, keyspace: &StateKeyspace, key: &str) -> u64 {
        self.state
            .get(&keyspace.storage)
            .and_then(|values| values.get(key))
            .map_or(0, |(version, _)| *version)
    }

    fn head_of(&self, journal: &JournalKeyspace, stream: &str) -> (u64, u64) {
        self.journals
            .get(&journal.records)
            .map_or((1, 0), |data| data.head(stream))
    }

    /// Checks every precondition of a request against the data and the
    /// request's own earlier operations, then applies it; on a conflict
    /// nothing is applied.
    fn apply(&mut self, ops: Vec<Op>) -> Result<Vec<Outcome>, Error> {
        let mut versions: HashMap<(Arc<str>, String), u64> = HashMap::new();
        let mut sequences: HashMap<(Arc<str>, String), u64> = HashMap::new();
        let mut next_version = self.last_version;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in &ops {
            match op {
                Op::Put {
                    keyspace,
                    key,
                    expect,
                    ..
                } => {
                    let slot = (Arc::clone(&keyspace.storage), key.clone());
                    if *expect != Expect::Any {
                        let current = match versions.get(&slot) {
                            Some(&version) => version,
                            None => self.version_of(keyspace, key),
                        };
                        check(*expect, current, &keyspace.storage, key)?;
                    }
                    next_version += 1;
                    versions.insert(slot, next_version);
                    outcomes.push(Outcome::Written {
                        version: Version(next_version),
                    });
                }
                Op::Delete {
                    keyspace,
                    key,
                    expect,
                } => {
                    let slot = (Arc::clone(&keyspace.storage), key.clone());
                    let current = match versions.get(&slot) {
                        Some(&version) => version,
                        None => self.version_of(keyspace, key),
                    };
                    check(*expect, current, &keyspace.storage, key)?;
                    versions.insert(slot, 0);
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
                    let slot = (Arc::clone(&journal.records), stream.clone());
                    let next = match sequences.get(&slot) {
                        Some(&next) => next,
                        None => self.head_of(journal, stream).0,
                    };
                    if let Some(expected) = *expect_sequence
                        && expected != next
                    {
                        return Err(sequence_conflict(&journal.records, stream, expected, next));
                    }
                    sequences.insert(slot, next + 1);
                    outcomes.push(Outcome::Appended { sequence: next });
                }
                Op::Truncate { .. } => outcomes.push(Outcome::Truncated { removed: 0 }),
                Op::Fence { name, token } => {
                    check_fence(name, *token, self.leases.get(name))?;
                    outcomes.push(Outcome::Fenced);
                }
            }
        }
        for (op, outcome) in ops.into_iter().zip(outcomes.iter_mut()) {
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
                    self.state
                        .entry(keyspace.storage)
                        .or_default()
                        .insert(key, (version.0, value));
                }
                (Op::Delete { keyspace, key, .. }, Outcome::Deleted { .. }) => {
                    if let Some(values) = self.state.get_mut(&keyspace.storage) {
                        values.remove(&key);
                    }
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
                    let data = self.journals.entry(journal.records).or_default();
                    let (_, truncated_through) = data.head(&stream);
                    data.records.insert((stream.clone(), *sequence), record);
                    data.heads
                        .insert(stream, (*sequence + 1, truncated_through));
                }
                (
                    Op::Truncate {
                        journal,
                        stream,
                        through,
                    },
                    Outcome::Truncated { removed },
                ) => {
                    let Some(data) = self.journals.get_mut(&journal.records) else {
                        continue;
                    };
                    let (next, truncated_through) = data.head(&stream);
                    if through <= truncated_through || next == 1 {
                        continue;
                    }
                    let doomed: Vec<_> = data
                        .records
                        .range((stream.clone(), truncated_through + 1)..=(stream.clone(), through))
                        .map(|(slot, _)| slot.clone())
                        .collect();
                    for slot in doomed {
                        data.records.remove(&slot);
                        *removed += 1;
                    }
                    let truncated_through = through.min(next - 1).max(truncated_through);
                    data.heads.insert(stream, (next, truncated_through));
                }
                (Op::Fence { .. }, Outcome::Fenced) => {}
                (op, outcome) => {
                    return Err(Error::new(
                        ErrorCode::INTERNAL_ERROR,
                        format!("the memory store paired {op:?} with {outcome:?}"),
                    ));
                }
            }
        }
        self.last_version = next_version;
        Ok(outcomes)
    }
}

/// The start of a listing: after `after` when it is past the prefix.
fn start<'a>(prefix: &'a str, after: Option<&'a str>) -> Bound<&'a str> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &str {
        "memory"
    }

    fn write(&self, ops: Vec<Op>) -> BackendFuture<'_, Vec<Outcome>> {
        let result = self.with_data(|data| {
            let changes = watched_changes(&ops);
            let outcomes = data.apply(ops)?;
            // Published under the lock, so consumers see commits in order.
            for change in changes {
                self.changes.publish(change);
            }
            Ok(outcomes)
        });
        Box::pin(std::future::ready(result))
    }

    fn get<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        key: &'a str,
    ) -> BackendFuture<'a, Option<StoredValue>> {
        let result = self.with_data(|data| {
            Ok(data
                .state
                .get(&keyspace.storage)
                .and_then(|values| values.get(key))
                .map(|(version, envelope)| StoredValue {
                    version: Version(*version),
                    envelope: envelope.clone(),
                }))
        });
        Box::pin(std::future::ready(result))
    }

    fn list<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<StoredEntry>> {
        let result = self.with_data(|data| {
            let Some(values) = data.state.get(&keyspace.storage) else {
                return Ok(Vec::new());
            };
            Ok(values
                .range::<str, _>((start(prefix, after), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .take(limit)
                .map(|(key, (version, envelope))| StoredEntry {
                    key: key.clone(),
                    value: StoredValue {
                        version: Version(*version),
                        envelope: envelope.clone(),
                    },
                })
                .collect())
        });
        Box::pin(std::future::ready(result))
    }

    fn read_journal<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> BackendFuture<'a, Vec<(u64, Vec<u8>)>> {
        let result = self.with_data(|data| {
            let Some(journal) = data.journals.get(&journal.records) else {
                return Ok(Vec::new());
            };
            Ok(journal
                .records
                .range((stream.to_owned(), from)..=(stream.to_owned(), u64::MAX))
                .take(limit)
                .map(|((_, sequence), envelope)| (*sequence, envelope.clone()))
                .collect())
        });
        Box::pin(std::future::ready(result))
    }

    fn journal_head<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
    ) -> BackendFuture<'a, StreamHead> {
        let result = self.with_data(|data| {
            let (next_sequence, truncated_through) = data.head_of(journal, stream);
            Ok(StreamHead {
                next_sequence,
                truncated_through,
            })
        });
        Box::pin(std::future::ready(result))
    }

    fn list_streams<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<String>> {
        let result = self.with_data(|data| {
            let Some(journal) = data.journals.get(&journal.records) else {
                return Ok(Vec::new());
            };
            Ok(journal
                .heads
                .range::<str, _>((start(prefix, after), Bound::Unbounded))
                .take_while(|(stream, _)| stream.starts_with(prefix))
                .take(limit)
                .map(|(stream, _)| stream.clone())
                .collect())
        });
        Box::pin(std::future::ready(result))
    }

    fn acquire_lease(
        &self,
        name: String,
        owner: String,
        ttl: Duration,
    ) -> BackendFuture<'_, Lease> {
        let now = self.now();
        let result = self.with_data(|data| {
            let token = data.last_lease_token.saturating_add(1);
            let row = acquire_row(&name, data.leases.get(&name), &owner, ttl, now, token)?;
            data.last_lease_token = token;
            let lease = row.lease(&name);
            data.leases.insert(name, row);
            lease.ok_or_else(|| {
                Error::new(ErrorCode::INTERNAL_ERROR, "a granted lease has no owner")
            })
        });
        Box::pin(std::future::ready(result))
    }

    fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
    ) -> BackendFuture<'_, Vec<Result<Lease, Error>>> {
        let now = self.now();
        let result = self.with_data(|data| {
            Ok(leases
                .iter()
                .map(|lease| {
                    let row = renew_row(lease, data.leases.get(&lease.name), ttl, now)?;
                    let renewed = row.lease(&lease.name);
                    data.leases.insert(lease.name.clone(), row);
                    renewed.ok_or_else(|| {
                        Error::new(ErrorCode::INTERNAL_ERROR, "a renewed lease has no owner")
                    })
                })
                .collect())
        });
        Box::pin(std::future::ready(result))
    }

    fn release_lease(&self, lease: Lease) -> BackendFuture<'_, ()> {
        let result = self.with_data(|data| {
            if releases(&lease, data.leases.get(&lease.name)) {
                data.leases.remove(&lease.name);
            }
            Ok(())
        });
        Box::pin(std::future::ready(result))
    }

    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        let now = self.now();
        let result = self.with_data(|data| {
            let mut claimed = Vec::new();
            let mut last_token = data.last_lease_token;
            for (name, row) in data
                .leases
                .range_mut::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(name, _)| name.starts_with(&prefix))
            {
                if claimed.len() >= limit {
                    break;
                }
                let token = last_token.saturating_add(1);
                if let Some(new_row) = claim_row(row, &owner, ttl, now, token) {
                    last_token = token;
                    *row = new_row;
                    claimed.extend(row.lease(name));
                }
            }
            data.last_lease_token = last_token;
            Ok(claimed)
        });
        Box::pin(std::future::ready(result))
    }

    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        let result = self.with_data(|data| {
            Ok(data
                .leases
                .range::<str, _>((start(&prefix, after.as_deref()), Bound::Unbounded))
                .take_while(|(name, _)| name.starts_with(&prefix))
                .filter_map(|(name, row)| row.lease(name))
                .take(limit)
                .collect())
        });
        Box::pin(std::future::ready(result))
    }

    fn close(&self) -> BackendFuture<'_, ()> {
        self.closed.store(true, Ordering::Release);
        self.changes.close();
        drop(
            self.data
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        Box::pin(std::future::ready(Ok(())))
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn changes(&self) -> Result<Changes, Error> {
        self.changes.subscribe()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use foundation_error::clock::ManualClock;

    use super::*;

    /// Lease churn leaves no rows behind (the lease table holds only held
    /// leases), and tokens keep growing across names.
    #[tokio::test(start_paused = true)]
    async fn released_leases_leave_no_rows() {
        let backend = MemoryBackend::new(Arc::new(ManualClock::new()));
        let ttl = Duration::from_secs(10);
        let mut largest = 0;
        for index in 0..50 {
            let lease = backend
                .acquire_lease(format!("workflow/{index}"), "a".to_owned(), ttl)
                .await
                .expect("acquire");
            assert!(lease.token > largest);
            largest = lease.token;
            backend.release_lease(lease).await.expect("release");
        }
        let kept = backend
            .acquire_lease("workflow/0".to_owned(), "b".to_owned(), ttl)
            .await
            .expect("acquire");
        assert!(
            kept.token > largest,
            "a released name's next token is larger"
        );
        let rows = backend
            .with_data(|data| Ok(data.leases.keys().cloned().collect::<Vec<_>>()))
            .expect("open");
        assert_eq!(rows, vec!["workflow/0".to_owned()]);
    }
}
