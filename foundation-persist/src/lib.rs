//! Durable, versioned state for Foundation, on the embedded redb database
//! by default, on any storage engine behind the [`Backend`] seam.
//!
//! A [`Store`] is one redb file (or an in-memory store for tests, or a
//! store of another backend) holding typed keyspaces:
//!
//! - [`StateStore<T>`]: values keyed by id, with get, put, delete, list by
//!   prefix, and compare-and-set on a per-key [`Version`];
//! - [`Journal<T>`]: append-only records per stream with sequence numbers:
//!   append, read from a sequence number, truncate up to one;
//! - [`Metadata`]: a few named values of any type;
//! - [`Leases`] ([`Store::leases`]): who owns a named piece of work among
//!   processes sharing the store, with fencing tokens that
//!   [`WriteBatch::fence`] checks inside a write's transaction.
//!
//! Values are stored in a versioned envelope ([`Record`], [`Codec`]): a
//! postcard payload with a type tag, a schema version and a checksum.
//! Registered [`Migrations`] upgrade old versions on read; a newer version
//! is `unsupported_version`, an undecodable value `data_corruption` naming
//! the store, the keyspace and the key. Nothing is ever silently misread.
//! Everything stored must round-trip through postcard: see the rule on
//! [`Record`]; free-form JSON is stored as a [`JsonValue`].
//!
//! Writes to a file store go through one writer thread that
//! **group-commits**: concurrent writes share one durable transaction, and
//! each `put(...).await` returns only once the commit holding it is on
//! disk ([`Durability::Immediate`], the default; under
//! [`Durability::Deferred`] an acknowledged write is **not** yet on disk
//! and is lost if the process dies before the next flush). Reads use their
//! own read transactions on the calling task and never wait for the
//! writer; they are short (a cache or page read), so they need no blocking
//! thread. [`WriteBatch`] commits writes to several keyspaces together. An
//! in-memory store ([`Store::open_in_memory`], for tests) writes inline
//! instead, so its calls complete within their first poll and tests under
//! paused tokio time stay deterministic.
//!
//! The [`backend`] module is the seam: the typed API hands a backend
//! encoded operations ([`backend::Op`]) and reads stored bytes back, so a
//! PostgreSQL backend in another crate serves the same API through
//! [`Store::with_backend`]; the contract is written down there and checked
//! by the conformance suite (feature `conformance`).
//!
//! Maintenance of a redb store lives on its own surface, [`StoreFile`]
//! (from [`Store::file`]): [`StoreFile::backup`] copies a live store
//! consistently, [`StoreFile::restore`] loads a backup,
//! [`StoreFile::compact`] shrinks the file.
//!
//! Every failure is a [`foundation_error::Error`]: `store_in_use` when
//! another process has the file, `data_corruption` (naming the store) for a
//! file that is not a store or is damaged, never a panic;
//! `resource_exhausted` for a full disk, `storage_failure` for any other
//! disk failure (after which the store refuses writes until reopened),
//! `service_unavailable` once the store is closed, `queue_full` and `timeout`
//! under overload, `version_conflict` for a failed compare-and-set.
//! Metrics: [`metrics::BATCH_SIZE`] and [`metrics::COMMIT_DURATION_SECONDS`].
//!
//! No redb type appears in this API. This crate depends on
//! foundation-error only (of ours).
//!
//! Limits worth knowing:
//!
//! - One process opens a store file at a time (`store_in_use` otherwise);
//!   several nodes sharing state need another backend.
//! - Opening a file that already exists never writes to it before it is
//!   known to be a store: an empty file, a file that is not a redb
//!   database, and another application's redb database are refused and
//!   left untouched; only a missing path creates a store.
//! - After a crash, the next open repairs the file (redb walks it whole and
//!   verifies every page), so that open takes longer the larger the file.
//!   A cleanly closed file is trusted; damage done to it later is found
//!   when the damaged page is read (or on open with
//!   [`StoreOptions::check_integrity_on_open`]).
//! - A kill can leave a hidden `.NAME.creating-PID` or `.NAME.partial-PID`
//!   file beside a store or a backup (an interrupted creation or copy);
//!   they are never read and can be deleted.
//! - Reads return at most [`MAX_READ_LIMIT`] records; page with `after`.
//!
//! ```
//! use foundation_persist::{Record, Store, StoreOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct AgentState {
//!     queue: Vec<String>,
//!     completed: u64,
//! }
//!
//! impl Record for AgentState {
//!     const TYPE_TAG: &'static str = "agent_state";
//!     const SCHEMA_VERSION: u32 = 1;
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let directory = tempfile::tempdir()?;
//! let path = directory.path().join("agents.redb");
//!
//! let store = Store::open(&path, &StoreOptions::new())?;
//! let agents = store.state::<AgentState>("agents")?;
//! let state = AgentState { queue: vec!["task-1".into()], completed: 3 };
//! agents.put("agent-1", &state).await?; // returns once on disk
//! store.close().await?;
//!
//! // Reopened (after a crash, too), the acknowledged state is there.
//! let store = Store::open(&path, &StoreOptions::new())?;
//! let agents = store.state::<AgentState>("agents")?;
//! assert_eq!(agents.get("agent-1").await?, Some(state));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod apply;
pub mod backend;
mod batch;
mod classify;
mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod contain;
#[cfg(feature = "fault-injection")]
mod fault;
mod file;
mod journal;
mod json;
mod layout;
pub mod lease;
mod maintenance;
mod memory_backend;
mod metadata;
pub mod metrics;
mod ops;
mod options;
mod read;
mod redb_backend;
mod shared;
mod state;
mod store;
pub mod watch;
mod writer;

pub use backend::Backend;
pub use batch::WriteBatch;
pub use codec::{Codec, ENVELOPE_FORMAT, Migrations, Record};
#[cfg(feature = "fault-injection")]
pub use fault::FaultInjection;
pub use file::StoreFile;
pub use journal::{Journal, JournalEntry, StreamHead};
pub use json::JsonValue;
pub use layout::MAX_KEYSPACE_NAME_BYTES;
pub use lease::{Lease, Leases};
pub use metadata::Metadata;
pub use ops::{BackupReport, CompactionReport, Outcome, Version};
pub use options::{Durability, MAX_KEY_BYTES, MAX_READ_LIMIT, StoreOptions};
pub use state::{Entry, StateStore, Versioned};
pub use store::Store;
pub use watch::{Change, Changes};
