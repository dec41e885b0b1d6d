//! [`PostgresBackend`]: foundation-persist's [`Backend`] on PostgreSQL.
//!
//! Reads run on the calling task, each on a pooled connection (one retry
//! on a fresh connection when the first one turns out to be dead, which
//! is safe for a read). Writes go to the writer task (`writer.rs`), which
//! group-commits them.
//!
//! This module is not for the statements of writes (`ops.rs`) or for the
//! schema (`schema.rs`).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use foundation_persist::backend::{
    Backend, BackendFuture, JournalKeyspace, Op, StateKeyspace, StoredEntry, StoredValue,
};
use foundation_persist::watch::{ChangeFeed, Changes};
use foundation_persist::{Lease, Outcome, Store, StreamHead, Version};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;

use crate::classify::{Kind, database_error, kind, pool_error, pool_kind};
use crate::lease_batch::{LeaseBatcher, LeaseOp, LeaseRequest};
use crate::listen::Listener;
use crate::ops::{as_i64, as_u64};
use crate::options::PostgresOptions;
use crate::writer::{Request, Writer};

/// Opens (creating or migrating the schema of) the PostgreSQL database at
/// `url` as a [`Store`]: the same typed API as a redb store.
///
/// `url` is a libpq connection string (`host=... dbname=...`) or URL
/// (`postgres://user@host/db`). TLS follows libpq's `sslmode`
/// (`disable`, `prefer` (the default), `require`, `verify-ca`,
/// `verify-full`) and `sslrootcert` (a PEM file of CA certificates;
/// Mozilla's roots without it), for every connection of the store: see
/// the crate's docs. Must be called on a tokio runtime: the store's
/// writer task runs there.
///
/// # Errors
///
/// `invalid_config_value` for a malformed `url`, an unknown `sslmode`, an
/// `sslrootcert` file that cannot be read or holds no valid certificate
/// (the error names the file), bad options, a missing database, or a
/// server that does not offer TLS when the `sslmode` demands it;
/// `authentication_failed` for refused credentials or a server
/// certificate that fails verification; `network_error` or `timeout`
/// when the server cannot be reached; `unsupported_version` for a
/// database whose schema is newer than this crate's.
///
/// # Cancel safety
///
/// Dropping the future may leave the schema created; nothing else.
pub async fn open_postgres(url: &str, options: &PostgresOptions) -> Result<Store, Error> {
    let backend = PostgresBackend::open(url, options).await?;
    Ok(Store::with_backend(Arc::new(backend), &options.store))
}

/// The PostgreSQL backend. Usually reached through [`open_postgres`];
/// [`Store::with_backend`] takes it too.
///
/// # Cancel safety
///
/// Dropping a write's future after it was queued does not withdraw it: it
/// is applied if its batch began before the drop was seen, skipped
/// otherwise, never half applied. Dropping a read changes nothing.
/// Dropping `close`'s future leaves the store closed to new work; the
/// writer still answers what was queued and ends on its own.
pub struct PostgresBackend {
    name: Arc<str>,
    pool: Pool,
    writes: Mutex<Option<mpsc::Sender<Request>>>,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// The lease task's queue (acquires and releases).
    lease_requests: Mutex<Option<mpsc::Sender<LeaseRequest>>>,
    lease_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    write_timeout: std::time::Duration,
    commit_timeout: std::time::Duration,
    read_timeout: std::time::Duration,
    clock: SharedClock,
    /// The change feed: published by the listener task, if any.
    changes: Arc<ChangeFeed>,
    /// The `LISTEN` task, started when the store watches a keyspace.
    listener: tokio::sync::Mutex<Option<Listener>>,
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("name", &self.name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PostgresBackend {
    /// Connects, migrates the schema, and starts the writer task.
    ///
    /// # Errors
    ///
    /// As for [`open_postgres`].
    ///
    /// # Cancel safety
    ///
    /// As for [`open_postgres`].
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<PostgresBackend, Error> {
        options.validate()?;
        crate::metrics::describe();
        let crate::tls::Connect { mut config, tls } = crate::tls::connect_settings(url)?;
        // Acknowledged means flushed: whatever the server's default. A
        // transaction its client left idle (a paused process) ends, and
        // with it the locks it held (fenced lease rows among them).
        let idle_ms = options.idle_transaction_timeout.as_millis().max(1);
        config.options(format!(
            "-c synchronous_commit=on -c idle_in_transaction_session_timeout={idle_ms}"
        ));
        config.connect_timeout(options.connect_timeout);
        let name: Arc<str> = Arc::from(display_name(&config));
        let mut listen_config = config.clone();
        // A dead peer of the one long-lived connection is noticed.
        listen_config.keepalives(true);
        listen_config.keepalives_idle(std::time::Duration::from_secs(10));
        let manager = Manager::from_config(
            config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| {
                Error::new(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    "the PostgreSQL connection pool could not be built",
                )
                .with_context("store", &*name)
                .with_context("cause", error.to_string())
            })?;
        let mut client = pool.get().await.map_err(|error| pool_error(error, &name))?;
        tokio::time::timeout(
            options.commit_timeout,
            crate::schema::migrate(&mut client, &name),
        )
        .await
        .map_err(|_| {
            Error::new(
                ErrorCode::TIMEOUT,
                "creating or migrating the schema took longer than the commit timeout \
                 (another process may hold the migration lock)",
            )
            .with_context("store", &*name)
        })??;
        drop(client);
        let changes = Arc::new(ChangeFeed::new(&*name));
        let listener = if options.store.watches_any() {
            Some(
                Listener::start(
                    listen_config,
                    tls,
                    Arc::clone(&changes),
                    Arc::clone(&name),
                    options.connect_timeout,
                )
                .await?,
            )
        } else {
            None
        };
        let (sender, receiver) = mpsc::channel(options.max_queued_writes);
        let writer = Writer {
            pool: pool.clone(),
            store: Arc::clone(&name),
            max_batch_operations: options.max_batch_operations,
            commit_timeout: options.commit_timeout,
            clock: Arc::clone(&options.clock),
        };
        let handle = tokio::spawn(writer.run(receiver));
        let (lease_sender, lease_receiver) = mpsc::channel(options.max_queued_writes);
        let lease_batcher = LeaseBatcher {
            pool: pool.clone(),
            store: Arc::clone(&name),
            max_batch_operations: options.max_batch_operations,
            commit_timeout: options.commit_timeout,
            clock: Arc::clone(&options.clock),
        };
        let lease_task = tokio::spawn(lease_batcher.run(lease_receiver));
        Ok(PostgresBackend {
            name,
            pool,
            writes: Mutex::new(Some(sender)),
            writer: tokio::sync::Mutex::new(Some(handle)),
            lease_requests: Mutex::new(Some(lease_sender)),
            lease_task: tokio::sync::Mutex::new(Some(lease_task)),
            closed: AtomicBool::new(false),
            write_timeout: options.write_timeout,
            commit_timeout: options.commit_timeout,
            read_timeout: options.read_timeout,
            clock: Arc::clone(&options.clock),
            changes,
            listener: tokio::sync::Mutex::new(listener),
        })
    }
}

/// Runs a read (`$query`, an expression using `$client`) on a pooled
/// connection, once more on a fresh connection when the first was dead
/// (safe: a read changes nothing).
macro_rules! read {
    ($backend:expr, $operation:literal, |$client:ident| $query:expr) => {{
        let backend: &PostgresBackend = $backend;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if backend.is_closed() {
                break Err(crate::closed(&backend.name));
            }
            let $client = match backend.pool.get().await {
                Ok(client) => client,
                Err(error) if attempt < 2 && pool_kind(&error) == Kind::Connection => continue,
                Err(error) => break Err(pool_error(error, &backend.name)),
            };
            let read = async { $query };
            let result: Result<_, tokio_postgres::Error> =
                match tokio::time::timeout(backend.read_timeout, read).await {
                    Ok(result) => result,
                    Err(_) => {
                        // The connection's state is unknown: keep it out
                        // of the pool.
                        drop(deadpool_postgres::Object::take($client));
                        break Err(Error::new(
                            ErrorCode::TIMEOUT,
                            format!(
                                "a PostgreSQL read took longer than {:?}",
                                backend.read_timeout
                            ),
                        )
                        .with_context("store", &*backend.name)
                        .with_context("operation", $operation));
                    }
                };
            match result {
                Ok(value) => break Ok(value),
                Err(error) if attempt < 2 && kind(&error) == Kind::Connection => continue,
                Err(error) => break Err(database_error(error, &backend.name, $operation)),
            }
        }
    }};
}

/// A listing's statement: rows of `select` (which binds `$1`) whose
/// `column` is after (or from) `$2`, starts with `$3`, at most `$4`, and,
/// when the prefix has an end, is below it (`$5`). The bounds are a range
/// of the primary key, so a listing reads only the rows it returns, also
/// in a prepared statement's generic plan.
fn range_query(
    select: &str,
    column: &str,
    exclusive: bool,
    prefix: &str,
) -> (String, Option<String>) {
    let from = if exclusive { ">" } else { ">=" };
    let end = prefix_end(prefix);
    let below = if end.is_some() {
        format!(" AND {column} < $5")
    } else {
        String::new()
    };
    (
        format!(
            "{select} AND {column} {from} $2{below} AND starts_with({column}, $3) \
             ORDER BY {column} LIMIT $4"
        ),
        end,
    )
}

/// The least string above every string that starts with `prefix` (in
/// byte order, which for UTF-8 is code point order): the prefix with its
/// last character incremented, dropping trailing `char::MAX`es; `None`
/// when there is no such string (an empty prefix, or only `char::MAX`es).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            other => char::from_u32(u32::from(other) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The store's name: the address without credentials.
fn display_name(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{database}")
}

impl Backend for PostgresBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, ops: Vec<Op>) -> BackendFuture<'_, Vec<Outcome>> {
        Box::pin(async move {
            let sender = self.sender(&self.writes)?;
            let (reply, answer) = oneshot::channel();
            let request = Request {
                ops,
                deadline: self.clock.elapsed() + self.write_timeout,
                reply,
            };
            sender.try_send(request).map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => Error::new(
                    ErrorCode::QUEUE_FULL,
                    "too many writes are waiting for the PostgreSQL writer; retry later",
                )
                .with_context("store", &*self.name),
                mpsc::error::TrySendError::Closed(_) => crate::closed(&self.name),
            })?;
            drop(sender);
            // The writer answers within the write timeout (queueing) plus
            // the commit timeout times the attempts; this bound is a
            // backstop.
            let bound =
                self.write_timeout + self.commit_timeout * (crate::writer::MAX_ATTEMPTS + 1);
            match tokio::time::timeout(bound, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Error::new(
                    ErrorCode::SERVICE_UNAVAILABLE,
                    "the PostgreSQL writer stopped before answering; the write may or may not \
                     have been committed",
                )
                .with_context("store", &*self.name)
                .with_context("commit_outcome", "unknown")),
                Err(_) => Err(Error::new(
                    ErrorCode::TIMEOUT,
                    "the PostgreSQL writer did not answer in time; the write may or may not \
                     have been committed",
                )
                .with_context("store", &*self.name)
                .with_context("commit_outcome", "unknown")),
            }
        })
    }

    fn get<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        key: &'a str,
    ) -> BackendFuture<'a, Option<StoredValue>> {
        Box::pin(async move {
            read!(self, "get", |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT version, envelope FROM foundation_persist_state \
                     WHERE keyspace = $1 AND key = $2",
                    )
                    .await?;
                let row = client
                    .query_opt(&statement, &[&keyspace.storage_name(), &key])
                    .await?;
                row.map(|row| {
                    Ok(StoredValue {
                        version: Version::new(as_u64(row.try_get(0)?)),
                        envelope: row.try_get(1)?,
                    })
                })
                .transpose()
            })
        })
    }

    fn list<'a>(
        &'a self,
        keyspace: &'a StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<StoredEntry>> {
        let limit = as_i64(limit as u64);
        let (start, exclusive) = range_start(prefix, after);
        Box::pin(async move {
            read!(self, "list", |client| {
                let (sql, end) = range_query(
                    "SELECT key, version, envelope FROM foundation_persist_state \
                     WHERE keyspace = $1",
                    "key",
                    exclusive,
                    prefix,
                );
                let statement = client.prepare_cached(&sql).await?;
                let space = keyspace.storage_name();
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&space, &start, &prefix, &limit];
                if let Some(end) = &end {
                    params.push(end);
                }
                let rows = client.query(&statement, &params).await?;
                rows.iter()
                    .map(|row| {
                        Ok(StoredEntry {
                            key: row.try_get(0)?,
                            value: StoredValue {
                                version: Version::new(as_u64(row.try_get(1)?)),
                                envelope: row.try_get(2)?,
                            },
                        })
                    })
                    .collect()
            })
        })
    }

    fn read_journal<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> BackendFuture<'a, Vec<(u64, Vec<u8>)>> {
        let (from, limit) = (as_i64(from), as_i64(limit as u64));
        Box::pin(async move {
            read!(self, "read_journal", |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT sequence, record FROM foundation_persist_journal \
                     WHERE journal = $1 AND stream = $2 AND sequence >= $3 \
                     ORDER BY sequence LIMIT $4",
                    )
                    .await?;
                let rows = client
                    .query(
                        &statement,
                        &[&journal.storage_name(), &stream, &from, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|row| Ok((as_u64(row.try_get(0)?), row.try_get(1)?)))
                    .collect()
            })
        })
    }

    fn journal_head<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        stream: &'a str,
    ) -> BackendFuture<'a, StreamHead> {
        Box::pin(async move {
            read!(self, "journal_head", |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT next_sequence, truncated_through FROM foundation_persist_heads \
                     WHERE journal = $1 AND stream = $2",
                    )
                    .await?;
                let row = client
                    .query_opt(&statement, &[&journal.storage_name(), &stream])
                    .await?;
                Ok(match row {
                    Some(row) => StreamHead::new(as_u64(row.try_get(0)?), as_u64(row.try_get(1)?)),
                    None => StreamHead::new(1, 0),
                })
            })
        })
    }

    fn list_streams<'a>(
        &'a self,
        journal: &'a JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BackendFuture<'a, Vec<String>> {
        let limit = as_i64(limit as u64);
        let (start, exclusive) = range_start(prefix, after);
        Box::pin(async move {
            read!(self, "list_streams", |client| {
                let (sql, end) = range_query(
                    "SELECT stream FROM foundation_persist_heads WHERE journal = $1",
                    "stream",
                    exclusive,
                    prefix,
                );
                let statement = client.prepare_cached(&sql).await?;
                let space = journal.storage_name();
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&space, &start, &prefix, &limit];
                if let Some(end) = &end {
                    params.push(end);
                }
                let rows = client.query(&statement, &params).await?;
                rows.iter().map(|row| row.try_get(0)).collect()
            })
        })
    }

    fn acquire_lease(
        &self,
        name: String,
        owner: String,
        ttl: Duration,
    ) -> BackendFuture<'_, Lease> {
        Box::pin(async move {
            match self
                .lease_request(LeaseOp::Acquire { name, owner, ttl }, "acquire_lease")
                .await?
            {
                Some(lease) => Ok(lease),
                None => Err(Error::new(
                    ErrorCode::INTERNAL_ERROR,
                    "the PostgreSQL lease task answered an acquire without a lease",
                )
                .with_context("store", &*self.name)),
            }
        })
    }

    fn renew_leases(
        &self,
        leases: Vec<Lease>,
        ttl: Duration,
    ) -> BackendFuture<'_, Vec<Result<Lease, Error>>> {
        Box::pin(async move {
            read!(self, "renew_leases", |client| {
                crate::leases::renew(&client, &leases, ttl).await
            })
        })
    }

    fn release_lease(&self, lease: Lease) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            self.lease_request(LeaseOp::Release(lease), "release_lease")
                .await
                .map(|_| ())
        })
    }

    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            read!(self, "claim_expired_leases", |client| {
                crate::leases::claim_expired(&client, &prefix, &owner, ttl, limit).await
            })
        })
    }

    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<Lease>> {
        Box::pin(async move {
            let (start, exclusive) = range_start(&prefix, after.as_deref());
            let end = prefix_end(&prefix);
            read!(self, "list_leases", |client| {
                crate::leases::list(&client, (start, exclusive, end.as_deref()), &prefix, limit)
                    .await
            })
        })
    }

    fn close(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            self.closed.store(true, Ordering::Release);
            self.changes.close();
            if let Some(listener) = self.listener.lock().await.take() {
                listener.stop(self.commit_timeout).await;
            }
            self.drop_senders();
            let lease_bound = self.commit_timeout * (crate::writer::MAX_ATTEMPTS + 1);
            if let Some(handle) = self.lease_task.lock().await.take() {
                // The lease task answers what was queued, then ends.
                let abort = handle.abort_handle();
                if tokio::time::timeout(lease_bound, handle).await.is_err() {
                    abort.abort();
                }
            }
            let mut writer = self.writer.lock().await;
            if let Some(handle) = writer.as_mut() {
                // The writer answers what was queued, then ends.
                let bound =
                    self.write_timeout + self.commit_timeout * (crate::writer::MAX_ATTEMPTS + 1);
                match tokio::time::timeout(bound, handle).await {
                    Ok(_) => {}
                    Err(_) => {
                        if let Some(handle) = writer.take() {
                            handle.abort();
                        }
                        self.pool.close();
                        return Err(Error::new(
                            ErrorCode::TIMEOUT,
                            "the PostgreSQL writer did not finish the queued writes in time",
                        )
                        .with_context("store", &*self.name));
                    }
                }
                writer.take();
            }
            self.pool.close();
            Ok(())
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn changes(&self) -> Result<Changes, Error> {
        if self.is_closed() {
            return Err(crate::closed(&self.name));
        }
        self.changes.subscribe()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Dropping the senders lets the writer and the lease task answer
        // what is queued and end on their own.
        self.drop_senders();
    }
}

impl PostgresBackend {
    /// The sender of a task's queue (the writer's or the lease task's);
    /// `closed` once the store was closed.
    fn sender<T>(&self, slot: &Mutex<Option<mpsc::Sender<T>>>) -> Result<mpsc::Sender<T>, Error> {
        if self.is_closed() {
            return Err(crate::closed(&self.name));
        }
        slot.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| crate::closed(&self.name))
    }

    /// Drops the writer's and the lease task's senders: each task answers
    /// what is queued and ends.
    fn drop_senders(&self) {
        drop(
            self.writes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        drop(
            self.lease_requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
    /// Queues a lease acquire or release for the lease task and waits for
    /// its answer: the granted lease (acquire) or `None` (release).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before its batch began withdraws the request;
    /// after, the request is applied or not with its batch (a lease
    /// operation is safe to run again).
    async fn lease_request(
        &self,
        op: LeaseOp,
        operation: &'static str,
    ) -> Result<Option<Lease>, Error> {
        let sender = self.sender(&self.lease_requests)?;
        let (reply, answer) = oneshot::channel();
        let timed_out = || {
            Error::new(
                ErrorCode::TIMEOUT,
                "the PostgreSQL lease task did not answer in time; the operation may or may \
                 not have been applied",
            )
            .with_context("store", &*self.name)
            .with_context("operation", operation)
        };
        // Queueing waits for room (a full queue pushes back) within the
        // read timeout; the task answers within the commit timeout times
        // the attempts plus their pauses, so this bound is a backstop.
        match tokio::time::timeout(self.read_timeout, sender.send(LeaseRequest { op, reply })).await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(crate::closed(&self.name)),
            Err(_) => return Err(timed_out()),
        }
        drop(sender);
        let bound = self.read_timeout + self.commit_timeout * (crate::writer::MAX_ATTEMPTS + 1);
        match tokio::time::timeout(bound, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::new(
                ErrorCode::SERVICE_UNAVAILABLE,
                "the PostgreSQL lease task stopped before answering; the operation may or may \
                 not have been applied",
            )
            .with_context("store", &*self.name)
            .with_context("operation", operation)),
            Err(_) => Err(timed_out()),
        }
    }
}

/// Where a listing of keys with `prefix` begins, and whether that first key
/// is excluded: after `after` when it is past the prefix, else from the
/// prefix itself.
fn range_start<'a>(prefix: &'a str, after: Option<&'a str>) -> (&'a str, bool) {
    let start = match after {
        Some(after) if after >= prefix => after,
        _ => prefix,
    };
    (start, start != prefix || after == Some(prefix))
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_at_its_last_character_incremented() {
        assert_eq!(prefix_end("item-").as_deref(), Some("item."));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("ab\u{10FFFF}").as_deref(), Some("ac"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        for key in ["item-", "item-1", "item-\u{10FFFF}", "item-zzz"] {
            assert!(key < "item.", "{key}");
        }
    }
}
