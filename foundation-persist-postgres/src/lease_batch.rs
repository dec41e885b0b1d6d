//! Group commit of lease acquires and releases: the store's lease task.
//!
//! Every [`acquire`](foundation_persist::Leases::acquire) and
//! [`release`](foundation_persist::Leases::release) of a PostgreSQL store
//! goes through one bounded queue to one task per store, which takes
//! whatever requests are waiting (up to `max_batch_operations`) and runs
//! them in one transaction, each request its own statement (`leases.rs`:
//! the same upsert and delete as alone, sent pipelined), then commits once
//! and answers every request. So a node's concurrent lease operations share
//! one WAL flush instead of one each (`synchronous_commit = on`), the way
//! its writes share the writer's (`writer.rs`). The task is separate from
//! the writer: a lease operation never waits behind a write batch.
//!
//! Each request keeps its own answer: a granted lease with its token, or
//! the refusal `already_exists` naming the holder (read in the same
//! transaction, after the batch's own grants), exactly as when it ran
//! alone. Within a batch the requests run in name order (arrival order for
//! one name), so that two nodes' batches lock lease rows in the same order
//! and cannot deadlock each other (renewals and the writer's fences lock in
//! name order too). Of several acquires of one name in one batch by
//! different owners the first wins and the others are refused, as they
//! would be one after another.
//!
//! Failures and retries, all bounded (the writer's retry loop and its
//! [`MAX_ATTEMPTS`](crate::writer::MAX_ATTEMPTS)): a lost connection or a
//! deadlock/serialization failure runs the batch again on a fresh
//! connection, also when the connection died while `COMMIT` was in flight
//! (a lease operation is safe to run again: at worst it grants a lease its
//! caller does not know of, which expires, or the same owner's next
//! acquire re-grants it). Any other error fails every request of the batch
//! with it (one failed statement aborts the transaction; nothing was
//! applied). A batch that takes longer than the commit timeout fails with
//! `timeout` and its connection is discarded.
//!
//! A request whose caller stopped waiting before its batch began is
//! dropped unapplied.
//!
//! The task is started by [`PostgresBackend`](crate::PostgresBackend)'s
//! open (an allowed spawn site, ARCHITECTURE.md) and ends when the store is
//! closed or dropped, after answering what was queued.
//!
//! This module is not for renewals, claims or listings of leases (one
//! statement each on a pooled connection, `leases.rs`), nor for the fence
//! of a write (`ops.rs`).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use foundation_persist::Lease;
use foundation_persist::lease::held_by_another;
use futures::future::try_join_all;
use tokio::sync::{mpsc, oneshot};

use crate::classify::{Kind, database_error, kind, pool_error, pool_kind};
use crate::leases::{ACQUIRE, HOLDER, RELEASE, lease, micros};
use crate::ops::{as_i64, as_u64};
use crate::writer::{Failed, answer_all, with_retries};

/// What a request asks for.
pub(crate) enum LeaseOp {
    /// Grant `owner` the lease of `name` for `ttl`.
    Acquire {
        name: String,
        owner: String,
        ttl: Duration,
    },
    /// Delete `lease`'s row if its token is current.
    Release(Lease),
}

impl LeaseOp {
    fn name(&self) -> &str {
        match self {
            LeaseOp::Acquire { name, .. } => name,
            LeaseOp::Release(lease) => &lease.name,
        }
    }
}

/// One lease request and where its answer goes: the granted lease for an
/// acquire, `None` for a release.
pub(crate) struct LeaseRequest {
    pub(crate) op: LeaseOp,
    pub(crate) reply: oneshot::Sender<Result<Option<Lease>, Error>>,
}

/// What the lease task needs.
pub(crate) struct LeaseBatcher {
    pub(crate) pool: Pool,
    pub(crate) store: Arc<str>,
    pub(crate) max_batch_operations: usize,
    pub(crate) commit_timeout: Duration,
    pub(crate) clock: SharedClock,
}

impl LeaseBatcher {
    /// Runs until every sender is gone, answering each request.
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<LeaseRequest>) {
        while let Some(first) = requests.recv().await {
            let mut batch = Vec::new();
            if !first.reply.is_closed() {
                batch.push(first);
            }
            while batch.len() < self.max_batch_operations {
                let Ok(request) = requests.try_recv() else {
                    break;
                };
                if !request.reply.is_closed() {
                    batch.push(request);
                }
            }
            if batch.is_empty() {
                continue;
            }
            // Name order (stable: arrival order within a name).
            batch.sort_by(|a, b| a.op.name().cmp(b.op.name()));
            let answers =
                with_retries(&self.store, "a lease batch", || self.commit_once(&batch)).await;
            answer_all(batch.into_iter().map(|request| request.reply), answers);
        }
    }

    /// One attempt: one transaction for the whole batch.
    async fn commit_once(
        &self,
        batch: &[LeaseRequest],
    ) -> Result<Vec<Result<Option<Lease>, Error>>, Failed> {
        let started = self.clock.elapsed();
        let mut client = match self.pool.get().await {
            Ok(client) => client,
            Err(error) => {
                let retryable = pool_kind(&error) == Kind::Connection;
                let error = pool_error(error, &self.store);
                return Err(if retryable {
                    Failed::Retryable(error)
                } else {
                    Failed::Final(error)
                });
            }
        };
        let work = async {
            let transaction = client.transaction().await?;
            let answers = run_batch(&transaction, batch).await?;
            transaction.commit().await?;
            Ok::<_, tokio_postgres::Error>(answers)
        };
        match tokio::time::timeout(self.commit_timeout, work).await {
            Ok(Ok(answers)) => {
                crate::metrics::record_lease_commit(
                    batch.len(),
                    self.clock.elapsed().saturating_sub(started),
                );
                Ok(answers)
            }
            Ok(Err(error)) => {
                let retryable = matches!(kind(&error), Kind::Connection | Kind::Serialization);
                let error = database_error(error, &self.store, "lease_batch");
                Err(if retryable {
                    Failed::Retryable(error)
                } else {
                    Failed::Final(error)
                })
            }
            Err(_elapsed) => {
                // The connection's state is unknown: keep it out of the
                // pool. Its transaction ends when the connection closes.
                drop(deadpool_postgres::Object::take(client));
                Err(Failed::Final(
                    Error::new(
                        ErrorCode::TIMEOUT,
                        format!(
                            "a PostgreSQL lease transaction took longer than {:?}; its \
                             acquires and releases may or may not have been applied",
                            self.commit_timeout
                        ),
                    )
                    .with_context("store", &*self.store),
                ))
            }
        }
    }
}

/// Runs every request's statement in `transaction` (pipelined, in batch
/// order), then reads the holder of each refused acquire; one answer per
/// request.
async fn run_batch(
    transaction: &Transaction<'_>,
    batch: &[LeaseRequest],
) -> Result<Vec<Result<Option<Lease>, Error>>, tokio_postgres::Error> {
    let acquire = transaction.prepare_cached(ACQUIRE).await?;
    let release = transaction.prepare_cached(RELEASE).await?;
    // Joined futures send their statements in order before any answer is
    // awaited: one round trip for the batch.
    let outcomes = try_join_all(batch.iter().map(|request| {
        let (acquire, release) = (&acquire, &release);
        async move {
            match &request.op {
                LeaseOp::Acquire { name, owner, ttl } => {
                    let row = transaction
                        .query_opt(acquire, &[name, owner, &micros(*ttl)])
                        .await?;
                    row.map(|row| lease(&row)).transpose().map(Outcome::Acquire)
                }
                LeaseOp::Release(lease) => transaction
                    .execute(release, &[&lease.name, &as_i64(lease.token)])
                    .await
                    .map(|_| Outcome::Released),
            }
        }
    }))
    .await?;
    let holder = transaction.prepare_cached(HOLDER).await?;
    let refusals = try_join_all(batch.iter().zip(&outcomes).filter_map(
        |(request, outcome)| match (&request.op, outcome) {
            (LeaseOp::Acquire { name, .. }, Outcome::Acquire(None)) => {
                let holder = &holder;
                Some(async move {
                    let row = transaction.query_opt(holder, &[name]).await?;
                    refusal(name, row.as_ref())
                })
            }
            _ => None,
        },
    ))
    .await?;
    let mut refusals = refusals.into_iter();
    Ok(outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::Acquire(Some(lease)) => Ok(Some(lease)),
            Outcome::Acquire(None) => Err(refusals.next().unwrap_or_else(|| {
                Error::new(
                    ErrorCode::INTERNAL_ERROR,
                    "a refused lease acquire was left without its answer",
                )
            })),
            Outcome::Released => Ok(None),
        })
        .collect())
}

/// The refusal of an acquire of `name`, from its row's holder and
/// remaining milliseconds (`HOLDER`).
fn refusal(name: &str, row: Option<&tokio_postgres::Row>) -> Result<Error, tokio_postgres::Error> {
    let (holder, remaining_ms) = match row {
        Some(row) => {
            let owner: Option<String> = row.try_get(0)?;
            let remaining: i64 = row.try_get(1)?;
            (
                owner.unwrap_or_else(|| "nobody (just released)".to_owned()),
                remaining,
            )
        }
        None => ("nobody (just released)".to_owned(), 0),
    };
    Ok(held_by_another(
        name,
        &holder,
        Duration::from_millis(as_u64(remaining_ms)),
    ))
}

/// What one request's statement did.
enum Outcome {
    /// The granted lease, or `None` when another owner holds it.
    Acquire(Option<Lease>),
    Released,
}
