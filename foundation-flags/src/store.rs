//! Persistence of flag values, ramps and the audit log: the [`FlagStore`]
//! contract and an in-memory implementation.
//!
//! The contract is small so that the integration crate can implement it on
//! foundation-persist (redb) without this crate knowing either: load what
//! was stored, commit one write's effects atomically, read the audit log.
//! Methods return boxed futures so that `Flags` holds an
//! `Arc<dyn FlagStore>` and stays non-generic; an implementation on a
//! blocking store runs its work on a blocking thread.
//!
//! This module is not for deciding values; `Flags` does that and only asks
//! the store to remember.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use foundation_error::{Error, ErrorCode, Result};

use crate::audit::{AuditEntry, AuditQuery};
use crate::ramp::RampState;
use crate::value::FlagValue;

/// The future a [`FlagStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where flags persist.
///
/// Contract:
/// - [`commit`](FlagStore::commit) applies a whole [`FlagCommit`] or
///   nothing: an `Err` means nothing of it was stored. (`Flags` bounds every
///   call with a timeout; when the outcome is unknown it finds out through
///   [`StoredFlags::last_sequence`] and the audit log before the next
///   write.)
/// - A commit is conditional: the store applies it only if its highest
///   stored audit sequence is still the commit's
///   [`base_sequence`](FlagCommit::base_sequence), atomically with the
///   write (a compare-and-set on the stored sequence), and otherwise
///   refuses it with [`ErrorCode::VERSION_CONFLICT`], storing nothing.
///   Several `Flags` (several processes) sharing one store therefore
///   allocate the audit sequence from the store: it is one total order,
///   without gaps or duplicates, and a write decided on a stale state
///   (a ramp step another process already took) never lands; `Flags`
///   re-reads the store and decides again.
/// - [`load`](FlagStore::load) returns the values and ramps as the last
///   commit left them, and the highest audit sequence number stored.
/// - Entries for flags the application no longer declares are kept and
///   ignored, never an error.
pub trait FlagStore: Send + Sync + 'static {
    /// Reads the stored values, ramps and last audit sequence.
    fn load(&self) -> StoreFuture<'_, StoredFlags>;

    /// Stores one write's effects, atomically.
    fn commit<'a>(&'a self, commit: &'a FlagCommit) -> StoreFuture<'a, ()>;

    /// Reads audit entries: the most recent `query.limit` that match, in
    /// sequence order (oldest first).
    fn audit_log<'a>(&'a self, query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditEntry>>;
}

/// What a store holds, as [`FlagStore::load`] returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredFlags {
    /// Stored values by flag name; a flag without one uses its default.
    pub values: BTreeMap<String, FlagValue>,
    /// Running ramps, at most one per flag.
    pub ramps: Vec<RampState>,
    /// The highest audit sequence number stored, 0 if none.
    pub last_sequence: u64,
}

/// The effects of one write, applied by [`FlagStore::commit`] as one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlagCommit {
    /// The highest audit sequence stored when the write was decided: the
    /// commit applies only if it is still the highest (see the
    /// [`FlagStore`] contract). The entries are numbered from
    /// `base_sequence + 1`, one by one.
    pub base_sequence: u64,
    /// Audit entries to append, in sequence order; never empty.
    pub entries: Vec<AuditEntry>,
    /// Stored values to set (`Some`) or forget (`None`, after a reset).
    pub values: Vec<(String, Option<FlagValue>)>,
    /// Ramps to insert, replace or remove.
    pub ramps: Vec<RampUpdate>,
}

impl FlagCommit {
    /// The sequence number of the commit's last entry.
    pub fn last_sequence(&self) -> u64 {
        self.entries.last().map_or(0, |entry| entry.sequence)
    }
}

/// A change to the stored ramps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RampUpdate {
    /// Insert or replace the ramp of `state.plan.flag()`.
    Upsert(RampState),
    /// Remove the ramp of this flag.
    Remove(String),
}

/// A fault the [`InMemoryFlagStore`] injects, for tests of failure handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreFault {
    /// Work normally.
    #[default]
    None,
    /// Refuse commits with an infrastructure error; nothing is stored.
    FailCommits,
    /// Never answer commits (and store nothing), like a hung disk.
    StallCommits,
    /// Store commits, then never answer, like a lost acknowledgement.
    StallAfterCommit,
    /// Refuse loads with an infrastructure error.
    FailLoads,
}

/// A [`FlagStore`] in memory: for tests, examples and services that do not
/// need flags to outlive the process. Clones share the same data, so a
/// clone handed to a second `Flags` simulates a restart.
///
/// The audit log keeps the most recent entries up to a capacity (10,000
/// unless set); older ones are dropped.
///
/// ```
/// use foundation_flags::{Attribution, Flag, FlagValue, Flags, InMemoryFlagStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foundation_error::Result<()> {
/// let store = InMemoryFlagStore::new();
/// let mut builder = Flags::builder();
/// builder.declare(Flag::new("beta", "Beta features", FlagValue::Off)).store(store.clone());
/// let flags = builder.open().await?;
/// flags.set("beta", FlagValue::On, Attribution::new("alice", "launch")).await?;
/// drop(flags);
///
/// // "Restart": the value comes back from the store.
/// let mut builder = Flags::builder();
/// builder.declare(Flag::new("beta", "Beta features", FlagValue::Off)).store(store);
/// let flags = builder.open().await?;
/// assert!(flags.is_enabled("beta"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InMemoryFlagStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug)]
struct MemoryInner {
    stored: StoredFlags,
    audit: VecDeque<AuditEntry>,
    audit_capacity: usize,
    fault: StoreFault,
    commits: u64,
}

/// The default audit capacity of [`InMemoryFlagStore`].
pub const DEFAULT_MEMORY_AUDIT_CAPACITY: usize = 10_000;

impl InMemoryFlagStore {
    /// An empty store keeping the last 10,000 audit entries.
    pub fn new() -> InMemoryFlagStore {
        InMemoryFlagStore::with_audit_capacity(DEFAULT_MEMORY_AUDIT_CAPACITY)
    }

    /// An empty store keeping the last `capacity` audit entries (at least one).
    pub fn with_audit_capacity(capacity: usize) -> InMemoryFlagStore {
        InMemoryFlagStore {
            inner: Arc::new(Mutex::new(MemoryInner {
                stored: StoredFlags::default(),
                audit: VecDeque::new(),
                audit_capacity: capacity.max(1),
                fault: StoreFault::None,
                commits: 0,
            })),
        }
    }

    /// Injects `fault` into every later call until replaced.
    pub fn set_fault(&self, fault: StoreFault) {
        self.lock().fault = fault;
    }

    /// What is stored now.
    pub fn stored(&self) -> StoredFlags {
        self.lock().stored.clone()
    }

    /// How many commits were stored.
    pub fn commit_count(&self) -> u64 {
        self.lock().commits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // Every critical section leaves the data consistent, so a panic in
        // another thread holding the lock does not invalidate it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `commit` if its base is still the last stored sequence.
    fn apply(&self, commit: &FlagCommit) -> Result<()> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.stored.last_sequence != commit.base_sequence {
            return Err(stale_commit(
                commit.base_sequence,
                inner.stored.last_sequence,
            ));
        }
        for (flag, value) in &commit.values {
            match value {
                Some(value) => {
                    inner.stored.values.insert(flag.clone(), *value);
                }
                None => {
                    inner.stored.values.remove(flag);
                }
            }
        }
        for update in &commit.ramps {
            match update {
                RampUpdate::Upsert(state) => {
                    inner
                        .stored
                        .ramps
                        .retain(|ramp| ramp.plan.flag() != state.plan.flag());
                    inner.stored.ramps.push(state.clone());
                }
                RampUpdate::Remove(flag) => {
                    inner.stored.ramps.retain(|ramp| ramp.plan.flag() != flag);
                }
            }
        }
        for entry in &commit.entries {
            if inner.audit.len() == inner.audit_capacity {
                inner.audit.pop_front();
            }
            inner.audit.push_back(entry.clone());
        }
        inner.stored.last_sequence = inner.stored.last_sequence.max(commit.last_sequence());
        inner.commits += 1;
        Ok(())
    }
}

/// The error of a commit decided on a stale state: another writer stored
/// a change since (see the [`FlagStore`] contract). For implementations
/// of [`FlagStore`].
pub fn stale_commit(base_sequence: u64, stored_sequence: u64) -> Error {
    Error::new(
        ErrorCode::VERSION_CONFLICT,
        format!(
            "the flags changed since this write was decided (audit sequence {stored_sequence}, the write expected {base_sequence}); nothing was stored"
        ),
    )
    .with_context("base_sequence", base_sequence)
    .with_context("stored_sequence", stored_sequence)
}

impl Default for InMemoryFlagStore {
    fn default() -> InMemoryFlagStore {
        InMemoryFlagStore::new()
    }
}

fn injected(operation: &str) -> Error {
    Error::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        format!("in-memory flag store: injected {operation} failure"),
    )
}

impl FlagStore for InMemoryFlagStore {
    fn load(&self) -> StoreFuture<'_, StoredFlags> {
        let result = {
            let inner = self.lock();
            match inner.fault {
                StoreFault::FailLoads => Err(injected("load")),
                _ => Ok(inner.stored.clone()),
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn commit<'a>(&'a self, commit: &'a FlagCommit) -> StoreFuture<'a, ()> {
        let fault = self.lock().fault;
        match fault {
            StoreFault::FailCommits => Box::pin(std::future::ready(Err(injected("commit")))),
            StoreFault::StallCommits => Box::pin(std::future::pending()),
            StoreFault::StallAfterCommit => {
                // Applied or refused, the caller never hears.
                let _ = self.apply(commit);
                Box::pin(std::future::pending())
            }
            StoreFault::None | StoreFault::FailLoads => {
                Box::pin(std::future::ready(self.apply(commit)))
            }
        }
    }

    fn audit_log<'a>(&'a self, query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditEntry>> {
        let entries = {
            let inner = self.lock();
            let mut matching: Vec<AuditEntry> = inner
                .audit
                .iter()
                .rev()
                .filter(|entry| query.matches(entry))
                .take(query.limit)
                .cloned()
                .collect();
            matching.reverse();
            matching
        };
        Box::pin(std::future::ready(Ok(entries)))
    }
}
