//! A store outage under a running engine, as a database restart looks from
//! the engine: a wrapper backend fails every call for a while
//! (`service_unavailable`). The workflows' writes fail and their processes
//! end; the engine does not give up (its resumer tries again instead of
//! crashing and exhausting the tree's restart intensity), and once the
//! store answers again every workflow completes and no recorded step runs
//! again. The same with real PostgreSQL restarts and three node processes
//! is jido-system's `nodes.rs`. Paused tokio time: the outage lasts 30
//! virtual seconds.

use std::any::Any;
use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use foundation_persist::backend::{
    Backend, BackendFuture, JournalKeyspace, Op, StateKeyspace, StoredEntry, StoredValue,
};
use foundation_persist::{Lease, Outcome, Store, StoreOptions, StreamHead};
use jido_workflow::{WorkflowEngine, WorkflowStatus};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::lease::{three_steps, works};
use crate::support::{Executions, clock, memory_store, recorded};

/// A backend that refuses every call while `down`, else passes it on.
#[derive(Debug)]
struct OutageBackend {
    inner: Arc<dyn Backend>,
    down: AtomicBool,
    refused: AtomicU64,
}

impl OutageBackend {
    fn refusal<'a, T: Send + 'a>(&self) -> Option<BackendFuture<'a, T>> {
        if !self.down.load(Ordering::Acquire) {
            return None;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Some(Box::pin(ready(Err(Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            "injected outage: the store is restarting",
        )))))
    }
}

impl Backend for OutageBackend {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn write(&self, ops: Vec<Op>) -> BackendFuture<'_, Vec<Outcome>> {
        self.refusal().unwrap_or_else(|| self.inner.write(ops))
    }

    fn get<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        key: &'a str,
    ) -> BackendFuture<'a, Option<StoredValue>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.get(keyspace, key))
    }

    fn list<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<StoredEntry>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.list(keyspace, prefix, after, limit))
    }

    fn read_journal<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> BackendFuture<'a, Vec<(u64, Vec<u8>)>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.read_journal(journal, stream, from, limit))
    }

    fn journal_head<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
    ) -> BackendFuture<'a, StreamHead> {
        self.refusal()
            .unwrap_or_else(|| self.inner.journal_head(journal, stream))
    }

    fn list_streams<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<String>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.list_streams(journal, prefix, after, limit))
    }

    fn acquire_lease(
        &self,
        name: String,
        owner: String,
        ttl: Duration,
    ) -> BackendFuture<'_, Lease> {
        self.refusal()
            .unwrap_or_else(|| self.inner.acquire_lease(name, owner, ttl))
    }

    fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
    ) -> BackendFuture<'_, Vec<Result<Lease, Error>>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.renew_leases(leases, ttl))
    }

    fn release_lease(&self, lease: Lease) -> BackendFuture<'_, ()> {
        self.refusal()
            .unwrap_or_else(|| self.inner.release_lease(lease))
    }

    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.claim_expired_leases(prefix, owner, ttl, limit))
    }

    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        self.refusal()
            .unwrap_or_else(|| self.inner.list_leases(prefix, after, limit))
    }

    fn close(&self) -> BackendFuture<'_, ()> {
        self.inner.close()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn changes(&self) -> Result<foundation_persist::Changes, Error> {
        self.inner.changes()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_outage_does_not_take_the_engine_down_and_every_workflow_completes() {
    let memory = memory_store();
    let outage = Arc::new(OutageBackend {
        inner: Arc::clone(memory.backend()),
        down: AtomicBool::new(false),
        refused: AtomicU64::new(0),
    });
    let store = Store::with_backend(outage.clone(), &StoreOptions::new());
    let executions = Executions::default();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (open, gate) = watch::channel(false);
    let mut builder =
        WorkflowEngine::builder(store.clone(), works(&executions, Some(entered), Some(gate)));
    builder.clock(clock());
    let engine = builder.start().await.expect("the engine starts");
    let count = 10;
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(
            engine
                .start_workflow(&three_steps(), Value::Null)
                .await
                .expect("starts"),
        );
    }
    for _ in 0..count {
        tokio::time::timeout(Duration::from_secs(60), entries.recv())
            .await
            .expect("s2 runs in time")
            .expect("s2 runs");
    }

    // The store goes away; the gated steps finish, and recording their
    // results fails.
    outage.down.store(true, Ordering::Release);
    open.send_replace(true);
    // Thirty virtual seconds of outage: a resumer that crashed on every
    // failed pass would exhaust the engine tree's restart intensity (10 in
    // 10 s) within the first instant.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        outage.refused.load(Ordering::Relaxed) > 0,
        "the engine met the outage"
    );
    outage.down.store(false, Ordering::Release);

    for id in &ids {
        let info = engine
            .wait(id, Duration::from_secs(60))
            .await
            .expect("the engine is still up and finishes the workflow");
        assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
        let (succeeded, restarted) = recorded(&engine, id).await;
        assert_eq!(succeeded.len(), 3, "{id}: {succeeded:?}");
        assert!(succeeded.values().all(|count| *count == 1), "{id}");
        assert!(!restarted, "{id}: a recorded step started again");
        assert_eq!(executions.of(&format!("{id}/s1")), 1, "{id}: s1 ran once");
    }
    engine.shutdown().await.expect("shuts down");
}
