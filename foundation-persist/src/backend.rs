//! The backend seam: what a storage engine must do to serve a [`Store`].
//!
//! The typed API ([`StateStore`](crate::StateStore), [`Journal`](crate::Journal),
//! [`Metadata`](crate::Metadata), [`WriteBatch`](crate::WriteBatch)) encodes
//! values, checks keys and limits, and hands a backend plain data: write
//! requests made of [`Op`]s, and reads by keyspace and key that return
//! stored envelopes as bytes. The backend stores bytes, keeps versions and
//! sequence numbers, and checks preconditions; it never sees a Rust type.
//! Decoding, migrations and the errors that name a keyspace and a key stay
//! above the seam, so every backend behaves alike.
//!
//! Two backends ship in this crate: a redb file ([`Store::open`]) with a
//! group-committing writer thread, and ordered maps in memory
//! ([`Store::open_in_memory`]) with inline writes, for tests. Another crate (the
//! PostgreSQL backend of issue 15) implements [`Backend`] and builds its
//! stores with [`Store::with_backend`]; the behaviour all of them must share
//! is written once as the conformance suite (the `conformance` module,
//! behind the feature of the same name).
//!
//! The contract every backend keeps:
//!
//! - **A write request is all-or-nothing.** Its preconditions
//!   ([`Expect`], expected journal sequences) are checked against the state
//!   the earlier requests left and against the request's own earlier
//!   operations; if one fails, nothing of the request is applied and the
//!   answer is `version_conflict` (naming the keyspace and key or stream).
//!   Concurrent requests may share one transaction (group commit), but one
//!   request's conflict never fails another's.
//! - **Acknowledged means committed** under the store's durability.
//! - **Versions are per key.** Every write to a key gives it a new
//!   [`Version`] larger than any the key had before, including across a
//!   delete (a key deleted and written again never repeats a version), so a
//!   compare-and-set with a stale version can never succeed. Versions of
//!   different keys are unrelated: a backend may draw them from a shared
//!   sequence (redb reserves them in blocks; PostgreSQL can use a
//!   `SEQUENCE`), but no row may be rewritten by every commit.
//! - **Journal sequences** start at 1 per stream, grow by one per append
//!   and are never reused, even after truncation.
//! - **Leases** (the [`lease`](crate::lease) module states their rules):
//!   tokens strictly increase per name; an [`Op::Fence`] is checked inside
//!   the same write transaction as the rest of its request, and a failed
//!   fence fails only its own request (`version_conflict`), like a failed
//!   compare-and-set; concurrent claimers never get the same lease.
//! - **The change feed** ([`Backend::changes`], `watch.rs`): every
//!   committed put or delete of a watched state keyspace is published,
//!   never a refused or rolled-back one; a backend shared by several
//!   processes publishes every process's commits, and publishes
//!   `Resync` whenever it may have missed some.
//! - **Errors by code**: `service_unavailable` once closed (and for a store
//!   that refuses writes after a storage failure), `resource_exhausted` for
//!   a full disk, `data_corruption` naming the store for damaged storage,
//!   `timeout` for a write that waited too long (then not applied),
//!   `queue_full` under overload. Never a panic.
//!
//! This module is not for encoding values (`codec.rs`) or for a particular
//! engine (`redb_backend.rs`, `memory_backend.rs`).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::Error;

use crate::journal::StreamHead;
use crate::lease::Lease;
use crate::ops::{Outcome, Version};

#[cfg(doc)]
use crate::Store;

/// The future a [`Backend`] method returns: boxed, so that the trait is
/// object-safe and [`Store`] stays one non-generic type.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A storage engine behind a [`Store`]. See the module documentation for
/// the contract; the conformance suite (feature `conformance`) checks it.
///
/// Every method's future must be cancel-safe in this sense: dropping it
/// either leaves the operation applied or not applied, never half applied,
/// and a write request whose future was dropped may still be committed.
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// How errors and logs name this store: a file path, `memory`, a
    /// database address without credentials.
    fn name(&self) -> &str;

    /// Applies one write request (all-or-nothing) and answers once it is
    /// committed under the store's durability: one [`Outcome`] per
    /// operation, in order. `ops` is never empty.
    fn write(&self, ops: Vec<Op>) -> BackendFuture<'_, Vec<Outcome>>;

    /// The stored envelope at `key` with its version, or `None`.
    fn get<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        key: &'a str,
    ) -> BackendFuture<'a, Option<StoredValue>>;

    /// Up to `limit` entries whose keys start with `prefix`, in key order
    /// (byte-wise), after `after` when given.
    fn list<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<StoredEntry>>;

    /// Up to `limit` records of `stream` from sequence `from` on, in order,
    /// as `(sequence, envelope)`.
    fn read_journal<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> BackendFuture<'a, Vec<(u64, Vec<u8>)>>;

    /// Where `stream` stands (`next_sequence` 1 and `truncated_through` 0
    /// for a stream never written).
    fn journal_head<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
    ) -> BackendFuture<'a, StreamHead>;

    /// Up to `limit` stream ids of `journal` starting with `prefix`, in
    /// order, after `after` when given; a stream is listed once it has had
    /// an append.
    fn list_streams<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<String>>;

    /// Grants `owner` the lease of `name` for `ttl` (arguments already
    /// checked): see [`Leases::acquire`](crate::lease::Leases::acquire) for
    /// the rules and the errors.
    fn acquire_lease(&self, name: String, owner: String, ttl: Duration)
    -> BackendFuture<'_, Lease>;

    /// Renews each lease to `ttl` from now if its token is current and it
    /// was not released: one answer per lease, in order (`version_conflict`
    /// for a lease lost). `leases` is never empty.
    fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
    ) -> BackendFuture<'_, Vec<Result<Lease, Error>>>;

    /// Releases `lease` if its token is current; no effect otherwise.
    fn release_lease(&self, lease: Lease) -> BackendFuture<'_, ()>;

    /// Takes over up to `limit` held, expired leases whose name starts
    /// with `prefix`, each with a new token, for `owner` and `ttl`; two
    /// concurrent calls never take the same lease.
    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>>;

    /// Up to `limit` unreleased leases whose name starts with `prefix`, in
    /// name order (byte-wise), after `after` when given.
    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>>;

    /// Stops accepting work, commits what was accepted, releases the
    /// storage. Later calls fail with `service_unavailable`. Idempotent.
    fn close(&self) -> BackendFuture<'_, ()>;

    /// Whether [`close`](Backend::close) was called.
    fn is_closed(&self) -> bool;

    /// A new consumer of the store's change feed: every committed put or
    /// delete of a watched keyspace ([`StateKeyspace::is_watched`]) from
    /// now on, by any writer the backend can hear of (this process for an
    /// embedded store, every node for a server), and
    /// [`Change::Resync`](crate::watch::Change::Resync) when changes may
    /// have been missed. See [`crate::watch`].
    ///
    /// # Errors
    ///
    /// `service_unavailable` once the store is closed.
    fn changes(&self) -> Result<crate::watch::Changes, Error>;

    /// The backend as [`Any`], so that its own surface (the redb file's
    /// maintenance, for example) can be reached from a [`Store`].
    fn as_any(&self) -> &dyn Any;
}

/// A stored envelope with its version, as a backend returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The version of the write that stored it.
    pub version: Version,
    /// The envelope's bytes, exactly as they were written.
    pub envelope: Vec<u8>,
}

/// One entry of a listing, as a backend returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The key.
    pub key: String,
    /// The value and its version.
    pub value: StoredValue,
}

/// What a state write requires of the current value of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expect {
    /// Nothing: write unconditionally.
    Any,
    /// The key must be absent.
    Absent,
    /// The key must hold exactly this version.
    Version(Version),
}

/// One encoded write, as the typed API hands it to a backend: keys and
/// limits already checked, values already encoded as envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Write `value` at `key` if `expect` holds.
    Put {
        /// The keyspace.
        keyspace: StateKeyspace,
        /// The key.
        key: String,
        /// The envelope.
        value: Vec<u8>,
        /// The precondition.
        expect: Expect,
    },
    /// Delete `key` if `expect` holds.
    Delete {
        /// The keyspace.
        keyspace: StateKeyspace,
        /// The key.
        key: String,
        /// The precondition.
        expect: Expect,
    },
    /// Append `record` to `stream`, requiring it to get sequence number
    /// `expect_sequence` when given.
    Append {
        /// The journal keyspace.
        journal: JournalKeyspace,
        /// The stream id.
        stream: String,
        /// The envelope.
        record: Vec<u8>,
        /// The sequence number the record must get.
        expect_sequence: Option<u64>,
    },
    /// Remove the records of `stream` up to and including `through`.
    Truncate {
        /// The journal keyspace.
        journal: JournalKeyspace,
        /// The stream id.
        stream: String,
        /// The last sequence number to remove.
        through: u64,
    },
    /// Requires `token` to be the current token of the lease `name` (and
    /// the lease not released); if it is not, the whole request fails with
    /// `version_conflict` and writes nothing. Checked inside the request's
    /// write transaction; expiry is not checked. Its outcome is
    /// [`Outcome::Fenced`].
    Fence {
        /// The lease name.
        name: String,
        /// The token the lease must still have.
        token: u64,
    },
}

impl Op {
    /// The bytes this operation adds to a batch, for batch size bounds.
    pub fn encoded_bytes(&self) -> usize {
        match self {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Delete { key, .. } => key.len(),
            Op::Append { stream, record, .. } => stream.len() + record.len(),
            Op::Truncate { stream, .. } => stream.len(),
            Op::Fence { name, .. } => name.len(),
        }
    }
}

/// A state keyspace (or the metadata keyspace) as backends see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateKeyspace {
    pub(crate) name: Arc<str>,
    /// `state/{name}`, or `meta` for the metadata keyspace.
    pub(crate) storage: Arc<str>,
    /// Whether writes to it are reported on the change feed
    /// ([`StoreOptions::watch`](crate::StoreOptions::watch)).
    pub(crate) watched: bool,
}

impl StateKeyspace {
    /// The keyspace name as the user gave it (`meta` for metadata).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The keyspace's stable name in storage: `state/{name}`, or `meta`
    /// for the metadata keyspace. Distinct for every keyspace of a store,
    /// journals included; a backend may use it as a table name or a key
    /// column.
    pub fn storage_name(&self) -> &str {
        &self.storage
    }

    /// Whether the store reports writes to this keyspace on its change
    /// feed ([`Backend::changes`]); set with
    /// [`StoreOptions::watch`](crate::StoreOptions::watch).
    pub fn is_watched(&self) -> bool {
        self.watched
    }

    /// Whether this is the metadata keyspace.
    pub fn is_metadata(&self) -> bool {
        &*self.storage == crate::layout::METADATA_TABLE
    }
}

/// A journal keyspace as backends see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JournalKeyspace {
    pub(crate) name: Arc<str>,
    /// `journal/{name}`: the records.
    pub(crate) records: Arc<str>,
    /// `journal_head/{name}`: each stream's next sequence and truncation.
    pub(crate) heads: Arc<str>,
}

impl JournalKeyspace {
    /// The keyspace name as the user gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The keyspace's stable name in storage: `journal/{name}`.
    pub fn storage_name(&self) -> &str {
        &self.records
    }
}
