//! [`WriteBatch`]: writes to several keyspaces committed together.
//!
//! A workflow records a step's result in its journal and updates its state
//! in one batch, so that after a crash both or neither are there. A batch
//! is one request to the writer: all of its preconditions are checked
//! first, and if any fails nothing of it is applied.
//!
//! This module is not for single writes (the keyspace handles do those).

use std::fmt;

use foundation_error::{Error, ErrorCode};

use crate::backend::{Expect, Op};
use crate::codec::Record;
use crate::journal::Journal;
use crate::ops::{Outcome, Version};
use crate::state::{StateStore, expect};
use crate::store::Store;

/// Writes to keyspaces of one store, committed together or not at all.
///
/// ```
/// use foundation_persist::{Outcome, Record, Store, StoreOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Step {
///     name: String,
/// }
///
/// impl Record for Step {
///     const TYPE_TAG: &'static str = "step";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::open_in_memory(&StoreOptions::new())?;
/// let current = store.state::<Step>("current-step")?;
/// let history = store.journal::<Step>("step-history")?;
///
/// let step = Step { name: "charge".into() };
/// let mut batch = store.batch();
/// batch.append(&history, "order-7", &step)?.put(&current, "order-7", &step)?;
/// let outcomes = batch.commit().await?;
/// assert!(matches!(outcomes[0], Outcome::Appended { sequence: 1 }));
/// assert_eq!(current.get("order-7").await?, Some(step));
/// # Ok::<(), foundation_error::Error>(())
/// # }).unwrap();
/// ```
pub struct WriteBatch {
    store: Store,
    ops: Vec<Op>,
}

impl fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBatch")
            .field("operations", &self.ops.len())
            .finish()
    }
}

impl WriteBatch {
    pub(crate) fn new(store: Store) -> WriteBatch {
        WriteBatch {
            store,
            ops: Vec::new(),
        }
    }

    /// Adds an unconditional write of `value` at `key`.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a keyspace of another store, a bad key or an
    /// oversized value; `serialization_failed`. The batch is unchanged.
    pub fn put<T: Record>(
        &mut self,
        keyspace: &StateStore<T>,
        key: &str,
        value: &T,
    ) -> Result<&mut WriteBatch, Error> {
        self.check_store(keyspace.store())?;
        self.push(keyspace.put_op(key, value, Expect::Any)?)
    }

    /// Adds a write that requires `key` to hold version `expected` (`None`:
    /// to be absent); if it does not, the whole batch fails with
    /// `version_conflict`.
    ///
    /// # Errors
    ///
    /// As for [`put`](WriteBatch::put).
    pub fn compare_and_set<T: Record>(
        &mut self,
        keyspace: &StateStore<T>,
        key: &str,
        expected: Option<Version>,
        value: &T,
    ) -> Result<&mut WriteBatch, Error> {
        self.check_store(keyspace.store())?;
        self.push(keyspace.put_op(key, value, expect(expected))?)
    }

    /// Adds a delete of `key`.
    ///
    /// # Errors
    ///
    /// As for [`put`](WriteBatch::put).
    pub fn delete<T: Record>(
        &mut self,
        keyspace: &StateStore<T>,
        key: &str,
    ) -> Result<&mut WriteBatch, Error> {
        self.check_store(keyspace.store())?;
        self.push(keyspace.keyspace().delete_op(key, Expect::Any)?)
    }

    /// Adds an append of `record` to `stream`.
    ///
    /// # Errors
    ///
    /// As for [`put`](WriteBatch::put).
    pub fn append<T: Record>(
        &mut self,
        journal: &Journal<T>,
        stream: &str,
        record: &T,
    ) -> Result<&mut WriteBatch, Error> {
        self.check_store(journal.store())?;
        self.push(journal.append_op(stream, record, None)?)
    }

    /// Adds an append that must get sequence number `expected`; if it would
    /// not, the whole batch fails with `version_conflict`.
    ///
    /// # Errors
    ///
    /// As for [`put`](WriteBatch::put).
    pub fn append_expecting<T: Record>(
        &mut self,
        journal: &Journal<T>,
        stream: &str,
        expected: u64,
        record: &T,
    ) -> Result<&mut WriteBatch, Error> {
        self.check_store(journal.store())?;
        self.push(journal.append_op(stream, record, Some(expected))?)
    }

    /// Adds a truncation of `stream` through sequence number `through`.
    ///
    /// # Errors
    ///
    /// As for [`put`](WriteBatch::put).
    pub fn truncate<T: Record>(
        &mut self,
        journal: &Journal<T>,
        stream: &str,
        through: u64,
    ) -> Result<&mut WriteBatch, Error> {
        self.check_store(journal.store())?;
        self.push(journal.truncate_op(stream, through)?)
    }

    /// Adds a fence: the batch commits only while `lease`'s token is the
    /// current token of its name (and the lease was not released), checked
    /// inside the batch's write transaction; otherwise the whole batch
    /// fails with `version_conflict` and writes nothing. Expiry is not
    /// checked: a takeover bumps the token, and that is what refuses a
    /// stale owner. Add it first, before the writes it guards (the
    /// PostgreSQL backend then locks the lease row before any other row).
    ///
    /// # Errors
    ///
    /// `invalid_input` for a lease of an invalid name. The batch is
    /// unchanged.
    pub fn fence(&mut self, lease: &crate::lease::Lease) -> Result<&mut WriteBatch, Error> {
        crate::layout::check_key(&lease.name, "lease name")?;
        self.push(Op::Fence {
            name: lease.name.clone(),
            token: lease.token,
        })
    }

    /// The number of operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Commits the batch; returns one [`Outcome`] per operation, in order,
    /// once durable. An empty batch commits nothing and returns at once.
    ///
    /// # Errors
    ///
    /// `version_conflict` when a precondition fails (nothing is applied);
    /// otherwise as for [`StateStore::put`](crate::StateStore::put),
    /// including the refusal of writes after a storage failure until the
    /// store is reopened.
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the outcome unknown, but all-or-nothing:
    /// either every write of the batch was applied or none. Read one of
    /// its writes (a journal append is easiest: the stream's head) to find
    /// out which.
    pub async fn commit(self) -> Result<Vec<Outcome>, Error> {
        self.store.submit(self.ops).await
    }

    fn check_store(&self, other: &Store) -> Result<(), Error> {
        if self.store.same_store(other) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::INVALID_INPUT,
                "a batch can only hold writes to keyspaces of the store it was created from",
            ))
        }
    }

    fn push(&mut self, op: Op) -> Result<&mut WriteBatch, Error> {
        self.ops.push(op);
        Ok(self)
    }
}
