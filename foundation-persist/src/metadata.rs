//! The metadata keyspace: a few named values of any [`Record`] type.
//!
//! For store-wide facts an application keeps beside its data (the current
//! rollout phase, a schema marker, the time of the last backup). Each value
//! is an envelope with its own type tag, so reading a name as the wrong type
//! is `type_mismatch`, not a misread. Names starting with `foundation.` are
//! reserved for Foundation's own crates.
//!
//! This module is not for bulk data: use a state keyspace.

use std::fmt;

use foundation_error::Error;

use crate::backend::Expect;
use crate::codec::{Codec, Record};
use crate::layout::metadata_keyspace;
use crate::ops::Version;
use crate::state::{Keyspace, Versioned, deleted, expect, written};
use crate::store::Store;

/// The metadata keyspace of a store.
///
/// ```
/// use foundation_persist::{Record, Store, StoreOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct RolloutPhase(u32);
///
/// impl Record for RolloutPhase {
///     const TYPE_TAG: &'static str = "rollout_phase";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::open_in_memory(&StoreOptions::new())?;
/// store.metadata().put("rollout.phase", &RolloutPhase(2)).await?;
/// assert_eq!(store.metadata().get::<RolloutPhase>("rollout.phase").await?, Some(RolloutPhase(2)));
/// # Ok::<(), foundation_error::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Metadata {
    keyspace: Keyspace,
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata").finish_non_exhaustive()
    }
}

impl Metadata {
    pub(crate) fn new(store: Store) -> Metadata {
        Metadata {
            keyspace: Keyspace {
                store,
                id: metadata_keyspace(),
            },
        }
    }

    /// The value named `name`, read as a `T`.
    ///
    /// # Errors
    ///
    /// As for [`StateStore::get`](crate::StateStore::get).
    pub async fn get<T: Record>(&self, name: &str) -> Result<Option<T>, Error> {
        Ok(self.get_versioned(name).await?.map(|entry| entry.value))
    }

    /// The value named `name` with its version.
    ///
    /// # Errors
    ///
    /// As for [`StateStore::get`](crate::StateStore::get).
    pub async fn get_versioned<T: Record>(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<T>>, Error> {
        let codec = Codec::<T>::new()?;
        self.keyspace
            .get(name, |version, bytes| {
                Ok(Versioned {
                    version,
                    value: codec.decode(bytes)?,
                })
            })
            .await
    }

    /// Writes `value` under `name`.
    ///
    /// # Errors
    ///
    /// As for [`StateStore::put`](crate::StateStore::put).
    ///
    /// # Cancel safety
    ///
    /// As for [`StateStore::put`](crate::StateStore::put): a dropped future
    /// leaves the outcome unknown; read the name back to find out.
    pub async fn put<T: Record>(&self, name: &str, value: &T) -> Result<Version, Error> {
        self.write(name, value, Expect::Any).await
    }

    /// Writes `value` under `name` only if its current version is `expected`
    /// (`None`: only if absent).
    ///
    /// # Errors
    ///
    /// As for [`StateStore::compare_and_set`](crate::StateStore::compare_and_set).
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the outcome unknown: `expected` still there
    /// means it was not applied.
    pub async fn compare_and_set<T: Record>(
        &self,
        name: &str,
        expected: Option<Version>,
        value: &T,
    ) -> Result<Version, Error> {
        self.write(name, value, expect(expected)).await
    }

    /// Deletes `name`; returns whether it existed.
    ///
    /// # Errors
    ///
    /// As for [`StateStore::delete`](crate::StateStore::delete).
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the outcome unknown; read the name to find
    /// out.
    pub async fn delete(&self, name: &str) -> Result<bool, Error> {
        let op = self.keyspace.delete_op(name, Expect::Any)?;
        deleted(self.keyspace.write(op).await?)
    }

    async fn write<T: Record>(
        &self,
        name: &str,
        value: &T,
        expect: Expect,
    ) -> Result<Version, Error> {
        let bytes = Codec::<T>::new()?
            .encode(value)
            .map_err(|error| self.keyspace.locate(error, name))?;
        let op = self.keyspace.put_op(name, bytes, expect)?;
        written(self.keyspace.write(op).await?)
    }
}
