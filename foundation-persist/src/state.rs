//! State keyspaces: values keyed by id, with versions for compare-and-set.
//!
//! [`StateStore<T>`] is the typed handle; [`Keyspace`] is its untyped core,
//! shared with the metadata keyspace, which builds operations and runs
//! reads without knowing `T` (so little code is generic).
//!
//! This module is not for journals (`journal.rs`) or multi-keyspace
//! batches (`batch.rs`).

use std::fmt;

use foundation_error::{Error, ErrorCode};

use crate::backend::{Expect, Op, StateKeyspace};
use crate::codec::{Codec, Record};
use crate::layout::{self, check_key};
use crate::ops::{Outcome, Version};
use crate::options::MAX_READ_LIMIT;
use crate::store::Store;

/// A value with the version it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The store revision of the write that stored this value.
    pub version: Version,
    /// The value.
    pub value: T,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    /// The key.
    pub key: String,
    /// The store revision of the write that stored this value.
    pub version: Version,
    /// The value.
    pub value: T,
}

/// The untyped core of a state keyspace.
#[derive(Clone)]
pub(crate) struct Keyspace {
    pub(crate) store: Store,
    pub(crate) id: StateKeyspace,
}

impl Keyspace {
    pub(crate) fn put_op(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<Op, Error> {
        check_key(key, "key").map_err(|error| self.locate(error, key))?;
        let limit = self.store.options().max_value_bytes;
        if value.len() > limit {
            return Err(self.locate(
                Error::new(
                    ErrorCode::INVALID_INPUT,
                    format!(
                        "the encoded value is {} bytes, more than the store's limit of {limit}",
                        value.len()
                    ),
                ),
                key,
            ));
        }
        Ok(Op::Put {
            keyspace: self.id.clone(),
            key: key.to_owned(),
            value,
            expect,
        })
    }

    pub(crate) fn delete_op(&self, key: &str, expect: Expect) -> Result<Op, Error> {
        check_key(key, "key").map_err(|error| self.locate(error, key))?;
        Ok(Op::Delete {
            keyspace: self.id.clone(),
            key: key.to_owned(),
            expect,
        })
    }

    /// Adds the store, the keyspace and (a bounded prefix of) the key to
    /// an error.
    pub(crate) fn locate(&self, error: Error, key: &str) -> Error {
        let error = if error.context_value("store").is_some() {
            error
        } else {
            error.with_context("store", self.store.name())
        };
        error
            .with_context("keyspace", self.id.name())
            .with_context("key", bounded(key))
    }

    pub(crate) async fn get<R>(
        &self,
        key: &str,
        decode: impl FnOnce(Version, &[u8]) -> Result<R, Error>,
    ) -> Result<Option<R>, Error> {
        check_key(key, "key").map_err(|error| self.locate(error, key))?;
        if self.store.is_closed() {
            return Err(crate::classify::closed());
        }
        if let Some(redb) = self.store.redb() {
            // The built-in engine's fast path: decode while redb still
            // lends the bytes (no copy, no boxed future). Same result as the
            // seam's `get`.
            return redb
                .get_decoded(&self.id, key, |version, envelope| {
                    decode(version, envelope).map_err(|error| self.locate(error, key))
                })
                .await;
        }
        let Some(stored) = self.store.backend().get(&self.id, key).await? else {
            return Ok(None);
        };
        decode(stored.version, &stored.envelope)
            .map(Some)
            .map_err(|error| self.locate(error, key))
    }

    pub(crate) async fn write(&self, op: Op) -> Result<Outcome, Error> {
        self.store.submit_one(op).await
    }
}

fn bounded(key: &str) -> &str {
    const SHOWN: usize = 128;
    if key.len() <= SHOWN {
        return key;
    }
    let mut end = SHOWN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

pub(crate) fn check_limit(limit: usize) -> Result<(), Error> {
    if limit > MAX_READ_LIMIT {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            format!("a read returns at most {MAX_READ_LIMIT} records; page with a smaller limit"),
        )
        .with_context("limit", limit));
    }
    Ok(())
}

pub(crate) fn written(outcome: Outcome) -> Result<Version, Error> {
    match outcome {
        Outcome::Written { version } => Ok(version),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn deleted(outcome: Outcome) -> Result<bool, Error> {
    match outcome {
        Outcome::Deleted { existed } => Ok(existed),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn unexpected(outcome: Outcome) -> Error {
    Error::new(
        ErrorCode::INTERNAL_ERROR,
        format!("the writer answered with an outcome of another operation: {outcome:?}"),
    )
}

/// A typed state keyspace: values of `T` keyed by string ids.
///
/// Every value carries a [`Version`], the store revision of the write that
/// stored it. `put` writes unconditionally; `compare_and_set` writes only
/// if the current version is the expected one (or the key is absent when
/// `None` is expected), and fails with `version_conflict` otherwise.
///
/// Writes are acknowledged after their group commit is durable (see
/// [`Durability`](crate::Durability)). Reads run a redb read transaction on
/// the calling task and never wait for the writer; they are short (cache or
/// page reads), so they do not need a blocking thread.
///
/// ```
/// use foundation_persist::{Record, Store, StoreOptions};
/// use foundation_error::ErrorCode;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct Account {
///     balance: i64,
/// }
///
/// impl Record for Account {
///     const TYPE_TAG: &'static str = "account";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::open_in_memory(&StoreOptions::new())?;
/// let accounts = store.state::<Account>("accounts")?;
/// let created = accounts.compare_and_set("acc-1", None, &Account { balance: 10 }).await?;
/// let updated = accounts
///     .compare_and_set("acc-1", Some(created), &Account { balance: 15 })
///     .await?;
/// // A writer holding the old version loses.
/// let stale = accounts
///     .compare_and_set("acc-1", Some(created), &Account { balance: 0 })
///     .await
///     .unwrap_err();
/// assert_eq!(stale.code(), ErrorCode::VERSION_CONFLICT);
/// assert_eq!(accounts.get_versioned("acc-1").await?.unwrap().version, updated);
/// # Ok::<(), foundation_error::Error>(())
/// # }).unwrap();
/// ```
pub struct StateStore<T> {
    keyspace: Keyspace,
    codec: Codec<T>,
}

impl<T> Clone for StateStore<T> {
    fn clone(&self) -> Self {
        StateStore {
            keyspace: self.keyspace.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<T> fmt::Debug for StateStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("keyspace", &self.keyspace.id.name())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Record> StateStore<T> {
    pub(crate) fn new(store: Store, name: &str) -> Result<StateStore<T>, Error> {
        let id = layout::state_keyspace(name, store.options().is_watched(name))?;
        Ok(StateStore {
            keyspace: Keyspace { store, id },
            codec: Codec::new()?,
        })
    }

    /// The keyspace name.
    pub fn name(&self) -> &str {
        self.keyspace.id.name()
    }

    /// The store this keyspace belongs to.
    pub fn store(&self) -> &Store {
        &self.keyspace.store
    }

    /// The value at `key`, upgraded to `T`'s current schema version.
    ///
    /// # Errors
    ///
    /// `data_corruption` (naming the keyspace and key) for a value that
    /// fails its checksum or does not decode; `unsupported_version` for a
    /// newer schema version; `type_mismatch` for another type's value;
    /// `invalid_input` for an empty or over-long key; `service_unavailable`
    /// once the store is closed.
    ///
    /// # Cancel safety
    ///
    /// Safe: a read changes nothing, and dropping it abandons only the
    /// answer. It waits only while a compaction holds the store alone.
    pub async fn get(&self, key: &str) -> Result<Option<T>, Error> {
        Ok(self.get_versioned(key).await?.map(|entry| entry.value))
    }

    /// The value at `key` with its version.
    ///
    /// # Errors
    ///
    /// As for [`get`](StateStore::get).
    pub async fn get_versioned(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        self.keyspace
            .get(key, |version, bytes| {
                Ok(Versioned {
                    version,
                    value: self.codec.decode(bytes)?,
                })
            })
            .await
    }

    /// Writes `value` at `key`; returns its new version once durable.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a bad key or a value over the size limit,
    /// `serialization_failed`, `queue_full` when the write queue is full,
    /// `timeout` when the write waited too long in the queue (it was then
    /// not applied), storage errors (a full disk is `resource_exhausted`),
    /// `service_unavailable` once the store is closed.
    ///
    /// # Storage failures
    ///
    /// After a failed write or fsync (an I/O error from the disk,
    /// `storage_failure`), or a panic
    /// inside the storage engine, the store refuses every later write
    /// (`storage_failure`, or `service_unavailable` after an engine panic)
    /// until it is closed and reopened: the OS may
    /// have dropped the pages that failed, so nothing is trusted until the
    /// next open has re-read the file. Reads go on.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves the outcome
    /// **unknown**: a write the writer had not yet taken into a commit is
    /// dropped and never applied, but one already in a committing batch is
    /// applied (and durable) although nobody hears of it. To find out,
    /// read the key back ([`get_versioned`](StateStore::get_versioned)):
    /// a version newer than the one you last saw, holding your value, is
    /// your write. On an in-memory store the write completes within the
    /// future's first poll, so a future dropped before it was polled did
    /// nothing.
    pub async fn put(&self, key: &str, value: &T) -> Result<Version, Error> {
        let op = self.put_op(key, value, Expect::Any)?;
        written(self.keyspace.write(op).await?)
    }

    /// Writes `value` at `key` only if the key's current version is
    /// `expected` (`None`: only if the key is absent).
    ///
    /// # Errors
    ///
    /// `version_conflict` when the current version differs; otherwise as
    /// for [`put`](StateStore::put).
    ///
    /// # Cancel safety
    ///
    /// As for [`StateStore::put`](crate::StateStore::put): a dropped future
    /// leaves the outcome unknown (applied or not, never half); read the key's version to find out: `expected` still there means it was not applied.
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<Version>,
        value: &T,
    ) -> Result<Version, Error> {
        let op = self.put_op(key, value, expect(expected))?;
        written(self.keyspace.write(op).await?)
    }

    /// Deletes `key`; returns whether it held a value.
    ///
    /// # Errors
    ///
    /// As for [`put`](StateStore::put).
    ///
    /// # Cancel safety
    ///
    /// As for [`StateStore::put`](crate::StateStore::put): a dropped future
    /// leaves the outcome unknown (applied or not, never half); read the key to find out (absent: deleted, by this call or another).
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        let op = self.keyspace.delete_op(key, Expect::Any)?;
        deleted(self.keyspace.write(op).await?)
    }

    /// Deletes `key` only if it holds exactly version `expected`.
    ///
    /// # Errors
    ///
    /// `version_conflict` when it does not (or is absent); otherwise as for
    /// [`put`](StateStore::put).
    ///
    /// # Cancel safety
    ///
    /// As for [`StateStore::put`](crate::StateStore::put): a dropped future
    /// leaves the outcome unknown (applied or not, never half); read the key to find out: still at `expected` means it was not applied.
    pub async fn compare_and_delete(&self, key: &str, expected: Version) -> Result<(), Error> {
        let op = self.keyspace.delete_op(key, Expect::Version(expected))?;
        deleted(self.keyspace.write(op).await?).map(drop)
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order,
    /// starting after the key `after` when given (pass the last key of one
    /// page to get the next).
    ///
    /// # Errors
    ///
    /// `invalid_input` for a limit over [`MAX_READ_LIMIT`]; the decoding
    /// errors of [`get`](StateStore::get) for any entry.
    ///
    /// # Cancel safety
    ///
    /// Safe, as for every read: dropping it abandons only the answer.
    pub async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry<T>>, Error> {
        check_limit(limit)?;
        let keyspace = &self.keyspace;
        if keyspace.store.is_closed() {
            return Err(crate::classify::closed());
        }
        let stored = keyspace
            .store
            .backend()
            .list(&keyspace.id, prefix, after, limit)
            .await?;
        stored
            .into_iter()
            .map(|entry| {
                let value = self
                    .codec
                    .decode(&entry.value.envelope)
                    .map_err(|error| keyspace.locate(error, &entry.key))?;
                Ok(Entry {
                    key: entry.key,
                    version: entry.value.version,
                    value,
                })
            })
            .collect()
    }

    pub(crate) fn put_op(&self, key: &str, value: &T, expect: Expect) -> Result<Op, Error> {
        let bytes = self
            .codec
            .encode(value)
            .map_err(|error| self.keyspace.locate(error, key))?;
        self.keyspace.put_op(key, bytes, expect)
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }
}

pub(crate) fn expect(expected: Option<Version>) -> Expect {
    match expected {
        Some(version) => Expect::Version(version),
        None => Expect::Absent,
    }
}
