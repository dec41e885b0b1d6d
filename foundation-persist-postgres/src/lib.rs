//! Foundation's durable state on PostgreSQL: foundation-persist's
//! [`Backend`](foundation_persist::Backend) on a server, so that
//! [`StateStore`](foundation_persist::StateStore),
//! [`Journal`](foundation_persist::Journal),
//! [`Metadata`](foundation_persist::Metadata) and
//! [`WriteBatch`](foundation_persist::WriteBatch) behave exactly as on
//! redb: the same versions and compare-and-set, the same journal
//! sequences, the same errors by code. foundation-persist's conformance
//! suite runs against it (`tests/it/conformance.rs`).
//!
//! ```no_run
//! use foundation_persist_postgres::{PostgresOptions, open_postgres};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Agent { done: u64 }
//! # impl foundation_persist::Record for Agent {
//! #     const TYPE_TAG: &'static str = "agent"; const SCHEMA_VERSION: u32 = 1; }
//! # async fn example() -> Result<(), foundation_error::Error> {
//! let store = open_postgres("postgres://app@db.internal/app", &PostgresOptions::new()).await?;
//! let agents = store.state::<Agent>("agents")?;
//! agents.put("agent-1", &Agent { done: 3 }).await?; // returns once committed
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! How it works:
//!
//! - **Driver**: tokio-postgres with the deadpool-postgres pool (see the
//!   commit that added them: no macros or build-time database, a small
//!   dependency tree on tokio, pipelining and prepared statements cached
//!   per connection; sqlx would add its own runtime layer and a large
//!   tree for features we do not use).
//! - **Schema** (`schema.rs`): created and migrated on open, versioned in
//!   `foundation_persist_schema`; a newer schema is refused.
//! - **Group commit** (`writer.rs`): one writer task per store takes the
//!   waiting write requests and applies them in one transaction, each
//!   request all-or-nothing, one `COMMIT` for all. The whole batch is one
//!   statement: its operations go to the server-side function
//!   `foundation_persist_apply` (schema version 3, `ops.rs`) as parallel
//!   arrays, and the server applies them in order (a subtransaction for a
//!   request whose precondition may fail after it wrote), so a batch costs
//!   three round trips (`BEGIN`, the batch, `COMMIT`) whatever its size.
//!   Every connection runs with `synchronous_commit = on`, so an
//!   acknowledged write is flushed to the server's WAL.
//! - **Versions** come from a PostgreSQL `SEQUENCE`: unique, growing, never
//!   repeated for a key (not across a delete either). **Journal
//!   sequences** are per stream, kept in a heads table, never reused.
//! - **Errors** (`classify.rs`): a lost connection is `network_error`, a
//!   server shutting down or restarting `service_unavailable` (both
//!   infrastructure, retryable); a full disk `resource_exhausted`; a
//!   serialization failure or deadlock is retried (bounded), then
//!   `service_unavailable`. A batch that failed before `COMMIT` was sent is
//!   retried on a fresh connection (bounded), because nothing of it was
//!   committed. A write whose `COMMIT` was in flight when the connection
//!   died is never reported as success: it fails with
//!   `commit_outcome=unknown` in its context, because it may or may not
//!   have been committed (use compare-and-set or `append_expecting` to make
//!   a retry safe).
//! - Reads run on the calling task on pooled connections and never wait
//!   for the writer; so do lease renewals, claims and listings (one
//!   statement each, retried once on a dead connection). Lease acquires
//!   and releases are group committed by a lease task of their own
//!   (`lease_batch.rs`): a node's concurrent ones share one transaction,
//!   each request still answered on its own, and never wait for the
//!   writer.
//! - **TLS** (`tls.rs`): rustls on the ring provider, configured by
//!   libpq's `sslmode` (`disable`, `prefer` (the default), `require`,
//!   `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file of CA
//!   certificates; Mozilla's roots without it) in the connection string,
//!   for every connection of the store (the pool, so the schema
//!   migration, and the `LISTEN` connection):
//!   `postgres://app@db.internal/app?sslmode=verify-full&sslrootcert=/etc/app/ca.pem`.
//!   As in libpq, `prefer` and `require` check no certificate unless
//!   `sslrootcert` is given; only `verify-full` also checks the host name.
//!
//! Limits worth knowing:
//!
//! - TLS: client certificates (`sslcert`, `sslkey`) are not supported,
//!   nor libpq's `sslmode=allow`; PostgreSQL offers no TLS over a unix
//!   socket.
//! - One database holds one store (the tables have fixed names); use one
//!   database per store.
//! - Several nodes on one database: the backend's statements are safe
//!   under concurrent writers (preconditions are checked in the statements
//!   or on rows locked `FOR UPDATE`), and
//!   [`Store::leases`](foundation_persist::Store::leases) works across
//!   them (`leases.rs`: expiry by the server's clock, claims with `FOR
//!   UPDATE SKIP LOCKED`, fences checked `FOR SHARE` inside the writer's
//!   transaction). The change feed (`listen.rs`: `NOTIFY` inside the
//!   write's transaction, one `LISTEN` connection per watching store)
//!   carries the shared flags, the rollout phase and the workflow
//!   engines' hand-over announcements between nodes.
//! - The typed API's [`StoreOptions`](foundation_persist::StoreOptions)
//!   for batching, durability and files do not apply; see
//!   [`PostgresOptions`].
//! - `Store::file()` is `None`: backups and compaction are PostgreSQL's
//!   own (`pg_dump`, `VACUUM`).
//!
//! The feature `test-harness` adds [`testing`]: a throwaway cluster
//! (initdb + pg_ctl in a temporary directory) for tests and benchmarks.
//!
//! This crate depends on foundation-error and foundation-persist (of ours).

mod backend;
mod classify;
mod lease_batch;
mod leases;
mod listen;
pub mod metrics;
mod ops;
mod options;
mod schema;
#[cfg(feature = "test-harness")]
pub mod testing;
mod tls;
mod writer;

pub use backend::{PostgresBackend, open_postgres};
pub use options::PostgresOptions;
pub use schema::SCHEMA_VERSION;

use foundation_error::{Error, ErrorCode};

/// The error every operation on a closed store returns.
pub(crate) fn closed(store: &str) -> Error {
    Error::new(ErrorCode::SERVICE_UNAVAILABLE, "the store is closed").with_context("store", store)
}
