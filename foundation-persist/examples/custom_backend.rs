//! The backend seam: a [`Backend`] that wraps another one and counts what
//! passes through it, served through [`Store::with_backend`] with the same
//! typed API as any store. A real backend (PostgreSQL) implements the same
//! trait against its engine and runs `foundation_persist::conformance`
//! (feature `conformance`) in its tests.
//!
//! Run with `cargo run -p foundation-persist --example custom_backend`.

#![allow(clippy::print_stdout)] // An example reports to its user on stdout.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foundation_error::Error;

use foundation_persist::backend::{
    BackendFuture, JournalKeyspace, Op, StateKeyspace, StoredEntry, StoredValue,
};
use foundation_persist::{
    Backend, JsonValue, Lease, Outcome, Record, Store, StoreOptions, StreamHead,
};
use serde::{Deserialize, Serialize};

/// Counts operations and reads, and passes everything to `inner`.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Backend>,
    operations: AtomicU64,
    reads: AtomicU64,
}

impl Counting {
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
}

impl Backend for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn write(&self, ops: Vec<Op>) -> BackendFuture<'_, Vec<Outcome>> {
        self.operations
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        self.inner.write(ops)
    }

    fn get<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        key: &'a str,
    ) -> BackendFuture<'a, Option<StoredValue>> {
        self.read();
        self.inner.get(keyspace, key)
    }

    fn list<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<StoredEntry>> {
        self.read();
        self.inner.list(keyspace, prefix, after, limit)
    }

    fn read_journal<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> BackendFuture<'a, Vec<(u64, Vec<u8>)>> {
        self.read();
        self.inner.read_journal(journal, stream, from, limit)
    }

    fn journal_head<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
    ) -> BackendFuture<'a, StreamHead> {
        self.read();
        self.inner.journal_head(journal, stream)
    }

    fn list_streams<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<String>> {
        self.read();
        self.inner.list_streams(journal, prefix, after, limit)
    }

    fn acquire_lease(
        &self,
        name: String,
        owner: String,
        ttl: Duration,
    ) -> BackendFuture<'_, Lease> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.inner.acquire_lease(name, owner, ttl)
    }

    fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
    ) -> BackendFuture<'_, Vec<Result<Lease, Error>>> {
        self.operations
            .fetch_add(leases.len() as u64, Ordering::Relaxed);
        self.inner.renew_leases(leases, ttl)
    }

    fn release_lease(&self, lease: Lease) -> BackendFuture<'_, ()> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.inner.release_lease(lease)
    }

    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.inner.claim_expired_leases(prefix, owner, ttl, limit)
    }

    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        self.read();
        self.inner.list_leases(prefix, after, limit)
    }

    fn close(&self) -> BackendFuture<'_, ()> {
        self.inner.close()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn changes(&self) -> Result<foundation_persist::Changes, foundation_error::Error> {
        self.inner.changes()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    name: String,
    params: JsonValue,
}

impl Record for Step {
    const TYPE_TAG: &'static str = "custom_backend_step";
    const SCHEMA_VERSION: u32 = 1;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), foundation_error::Error> {
    let options = StoreOptions::new();
    let inner = Store::open_in_memory(&options)?;
    let counting = Arc::new(Counting {
        inner: Arc::clone(inner.backend()),
        operations: AtomicU64::new(0),
        reads: AtomicU64::new(0),
    });
    let store = Store::with_backend(counting.clone(), &options);

    let steps = store.journal::<Step>("steps")?;
    let current = store.state::<Step>("current")?;
    let step = Step {
        name: "fetch".into(),
        params: JsonValue::new(serde_json::json!({"url": "https://example.com", "retries": 3})),
    };
    let mut batch = store.batch();
    batch
        .append(&steps, "wf-1", &step)?
        .put(&current, "wf-1", &step)?;
    batch.commit().await?;
    let read = current.get("wf-1").await?;
    println!("read back through the seam: {read:?}");
    println!(
        "the backend saw {} operations and {} reads",
        counting.operations.load(Ordering::Relaxed),
        counting.reads.load(Ordering::Relaxed)
    );
    store.close().await
}
