//! Group commit: the store's writer task.
//!
//! Every write request goes through one bounded queue to one task per
//! store, which takes whatever requests are waiting (up to the batch
//! limits) and applies them in one PostgreSQL transaction, each request in
//! order, then commits once and answers every request. So concurrent
//! writers of one node share transactions and their fsyncs (with
//! `synchronous_commit = on`, set on every connection, acknowledged means
//! flushed to the server's WAL).
//!
//! Retries, all bounded ([`MAX_ATTEMPTS`]):
//!
//! - a serialization failure or a deadlock: PostgreSQL rolled the
//!   transaction back, so the batch is run again; after the last attempt
//!   every request gets `service_unavailable`;
//! - a lost connection (a restarted server, a killed backend) **before**
//!   `COMMIT` was sent: nothing was committed, so the batch is run again
//!   on a fresh connection;
//! - any other error before or at `COMMIT` (a full disk, a failed
//!   statement) is not retried: every request of the batch gets it, with
//!   the context `commit_outcome=not_committed` (nothing of the batch was
//!   applied; retrying a request is safe);
//! - a lost connection **while** `COMMIT` was in flight is never retried
//!   and never reported as success: the outcome is unknown (the commit may
//!   or may not have happened), and every request of the batch gets
//!   `network_error` with the context `commit_outcome=unknown`.
//!
//! Fences: at the start of each transaction the writer share-locks the
//! lease rows of every fence in the batch, in name order (as a renewal
//! locks its rows), so that a batch and a heartbeat cannot deadlock, and
//! no takeover of a fenced lease can commit before the batch does. A
//! failed fence fails only its own request, like a failed compare-and-set.
//!
//! A request whose caller stopped waiting before its batch began is
//! dropped unapplied; one whose queueing took longer than the write
//! timeout is answered `timeout`, unapplied.
//!
//! The task is started by [`PostgresBackend`](crate::PostgresBackend)'s
//! open (an allowed spawn site, ARCHITECTURE.md) and ends when the store is
//! closed or dropped, after answering what was queued.
//!
//! This module is not for the statements (`ops.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use foundation_persist::Outcome;
use foundation_persist::backend::Op;
use tokio::sync::{mpsc, oneshot};

use crate::classify::{Kind, database_error, kind, pool_error, pool_kind};
use crate::ops::apply_batch;

/// How many times a batch (a write batch, or the lease task's) is tried
/// when PostgreSQL rolled it back (serialization failure, deadlock, a
/// connection lost before commit).
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// The pause before a retry after a lost connection, doubled each time.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// One write request and where its answer goes.
pub(crate) struct Request {
    pub(crate) ops: Vec<Op>,
    /// When the write stops waiting for its batch, on the store's clock
    /// (its `elapsed()`).
    pub(crate) deadline: Duration,
    pub(crate) reply: oneshot::Sender<Result<Vec<Outcome>, Error>>,
}

/// What the writer needs.
pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) store: Arc<str>,
    pub(crate) max_batch_operations: usize,
    pub(crate) commit_timeout: Duration,
    pub(crate) clock: SharedClock,
}

impl Writer {
    /// Runs until every sender is gone, answering each request.
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<Request>) {
        let mut pending: Option<Request> = None;
        loop {
            let first = match pending.take() {
                Some(request) => request,
                None => match requests.recv().await {
                    Some(request) => request,
                    None => return,
                },
            };
            let mut batch = Vec::new();
            let mut operations = 0;
            let now = self.clock.elapsed();
            if let Some(request) = admit(first, now) {
                operations += request.ops.len();
                batch.push(request);
            }
            while operations < self.max_batch_operations {
                let Ok(request) = requests.try_recv() else {
                    break;
                };
                if operations > 0 && operations + request.ops.len() > self.max_batch_operations {
                    pending = Some(request);
                    break;
                }
                if let Some(request) = admit(request, now) {
                    operations += request.ops.len();
                    batch.push(request);
                }
            }
            if batch.is_empty() {
                continue;
            }
            let answers = with_retries(&self.store, "a batch PostgreSQL rolled back", || {
                self.commit_once(&batch)
            })
            .await;
            answer_all(batch.into_iter().map(|request| request.reply), answers);
        }
    }

    /// One attempt: one transaction for the whole batch.
    async fn commit_once(
        &self,
        batch: &[Request],
    ) -> Result<Vec<Result<Vec<Outcome>, Error>>, Failed> {
        let started = self.clock.elapsed();
        let mut client = match self.pool.get().await {
            Ok(client) => client,
            Err(error) => {
                let retryable = pool_kind(&error) == Kind::Connection;
                let error = not_committed(pool_error(error, &self.store));
                return Err(if retryable {
                    Failed::Retryable(error)
                } else {
                    Failed::Final(error)
                });
            }
        };
        let work = async {
            let transaction = client.transaction().await.map_err(Attempt::Before)?;
            let answers = apply_batch(
                &transaction,
                batch.iter().map(|request| request.ops.as_slice()),
            )
            .await
            .map_err(Attempt::Before)?;
            let operations: usize = batch
                .iter()
                .zip(&answers)
                .filter(|(_, answer)| answer.is_ok())
                .map(|(request, _)| request.ops.len())
                .sum();
            if operations == 0 {
                transaction.rollback().await.map_err(Attempt::Before)?;
                return Ok((answers, 0));
            }
            // The change feed: delivered by PostgreSQL only if this
            // transaction commits, to every listening node.
            let payloads = crate::listen::payloads(
                batch
                    .iter()
                    .zip(&answers)
                    .filter(|(_, answer)| answer.is_ok())
                    .map(|(request, _)| request.ops.as_slice()),
            );
            if !payloads.is_empty() {
                transaction
                    .execute(crate::listen::NOTIFY_STATEMENT, &[&payloads])
                    .await
                    .map_err(Attempt::Before)?;
            }
            transaction.commit().await.map_err(Attempt::Commit)?;
            Ok((answers, operations))
        };
        let result = tokio::time::timeout(self.commit_timeout, work).await;
        match result {
            Ok(Ok((answers, operations))) => {
                if operations > 0 {
                    crate::metrics::record_commit(
                        operations,
                        self.clock.elapsed().saturating_sub(started),
                    );
                }
                Ok(answers)
            }
            Ok(Err(Attempt::Before(error))) => {
                let retryable = matches!(kind(&error), Kind::Connection | Kind::Serialization);
                let error = not_committed(database_error(error, &self.store, "write"));
                if retryable {
                    Err(Failed::Retryable(error))
                } else {
                    Err(Failed::Final(error))
                }
            }
            Ok(Err(Attempt::Commit(error))) => {
                if error.as_db_error().is_some() {
                    // The server answered COMMIT with an error: it rolled
                    // the transaction back.
                    let retryable = kind(&error) == Kind::Serialization;
                    let error = not_committed(database_error(error, &self.store, "commit"));
                    return Err(if retryable {
                        Failed::Retryable(error)
                    } else {
                        Failed::Final(error)
                    });
                }
                crate::metrics::record_unknown_outcome();
                Err(Failed::Final(
                    database_error(error, &self.store, "commit")
                        .with_message(
                            "the connection to PostgreSQL was lost while committing; the writes \
                             may or may not have been committed (read them back before retrying \
                             a write that is not idempotent)",
                        )
                        .with_context("commit_outcome", "unknown"),
                ))
            }
            Err(_elapsed) => {
                // The connection is in an unknown state: keep it out of the
                // pool. Its transaction ends when the connection closes.
                drop(deadpool_postgres::Object::take(client));
                crate::metrics::record_unknown_outcome();
                Err(Failed::Final(
                    Error::new(
                        ErrorCode::TIMEOUT,
                        format!(
                            "the PostgreSQL transaction took longer than {:?}; the writes may or \
                             may not have been committed",
                            self.commit_timeout
                        ),
                    )
                    .with_context("store", &*self.store)
                    .with_context("commit_outcome", "unknown"),
                ))
            }
        }
    }
}

/// The request, unless its caller stopped waiting (dropped, not applied)
/// or its deadline passed while it was queued (answered `timeout`, not
/// applied).
fn admit(request: Request, now: Duration) -> Option<Request> {
    if request.reply.is_closed() {
        return None;
    }
    if request.deadline <= now {
        let _ = request.reply.send(Err(Error::new(
            ErrorCode::TIMEOUT,
            "the write waited longer than the write timeout for its turn; it was not applied",
        )));
        return None;
    }
    Some(request)
}

/// An error of a batch that PostgreSQL did not commit (it failed before
/// `COMMIT`, or the server answered `COMMIT` with an error): every request
/// of the batch gets it, and it says that none of them was applied.
fn not_committed(error: Error) -> Error {
    error.with_context("commit_outcome", "not_committed")
}

/// Where an attempt failed.
enum Attempt {
    /// Before `COMMIT` was sent: nothing was committed.
    Before(tokio_postgres::Error),
    /// While committing.
    Commit(tokio_postgres::Error),
}

/// A failed attempt at a batch (here and in the lease task).
pub(crate) enum Failed {
    /// Nothing was committed; the batch may run again.
    Retryable(Error),
    /// Answer every request with this error.
    Final(Error),
}

/// Runs `attempt` (one transaction for a whole batch) until it succeeds,
/// fails for good, or has been tried [`MAX_ATTEMPTS`] times, pausing
/// [`RECONNECT_BACKOFF`] (doubled each time) before each retry. `what`
/// names the batch in the log. The error says how many attempts it took.
pub(crate) async fn with_retries<T, F, Fut>(
    store: &str,
    what: &str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failed>>,
{
    let mut attempts = 1;
    loop {
        match attempt().await {
            Ok(answers) => return Ok(answers),
            Err(Failed::Retryable(error)) if attempts < MAX_ATTEMPTS => {
                tracing::debug!(store, %error, attempt = attempts, "retrying {what}");
                tokio::time::sleep(RECONNECT_BACKOFF * 2u32.pow(attempts - 1)).await;
                attempts += 1;
            }
            Err(Failed::Retryable(error) | Failed::Final(error)) => {
                return Err(error.with_context("attempts", attempts));
            }
        }
    }
}

/// Answers each request of a batch: its own answer, or the batch's error.
/// A caller that stopped waiting needs no answer.
pub(crate) fn answer_all<A>(
    replies: impl IntoIterator<Item = oneshot::Sender<Result<A, Error>>>,
    answers: Result<Vec<Result<A, Error>>, Error>,
) {
    match answers {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
