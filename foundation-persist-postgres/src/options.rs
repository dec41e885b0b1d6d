//! How a PostgreSQL store is opened: [`PostgresOptions`].
//!
//! This module is not for the typed API's options (those are
//! [`StoreOptions`], passed through).

use std::time::Duration;

use foundation_error::clock::{self, SharedClock};
use foundation_error::{Error, ErrorCode};
use foundation_persist::StoreOptions;

/// Options of [`open_postgres`](crate::open_postgres), with safe defaults:
/// 16 connections, 5 s to connect, 5 s for a write to wait its turn, 30 s
/// per transaction (and for opening's schema migration), 30 s per read,
/// batches of at most 1,024 operations, a queue of 4,096
/// writes, 5 s for a transaction left idle by its client.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub(crate) store: StoreOptions,
    pub(crate) max_connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) commit_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) max_batch_operations: usize,
    pub(crate) max_queued_writes: usize,
    pub(crate) idle_transaction_timeout: Duration,
    pub(crate) clock: SharedClock,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions::new()
    }
}

impl PostgresOptions {
    /// The defaults.
    pub fn new() -> PostgresOptions {
        PostgresOptions {
            store: StoreOptions::new(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            commit_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            max_batch_operations: 1024,
            max_queued_writes: 4096,
            idle_transaction_timeout: Duration::from_secs(5),
            clock: clock::system(),
        }
    }

    /// The typed API's options (value size limit and the like). Its batch,
    /// queue, durability and file options do not apply: this backend's own
    /// options below replace them, and commits are always durable
    /// (`synchronous_commit = on`).
    pub fn store_options(&mut self, options: StoreOptions) -> &mut PostgresOptions {
        self.store = options;
        self
    }

    /// The most connections the store opens (readers and the writer share
    /// them); at least 2.
    pub fn max_connections(&mut self, connections: usize) -> &mut PostgresOptions {
        self.max_connections = connections;
        self
    }

    /// How long connecting (or waiting for a free connection) may take.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut PostgresOptions {
        self.connect_timeout = timeout;
        self
    }

    /// How long a write may wait in the queue for its batch; past it, the
    /// write is answered `timeout` and not applied.
    pub fn write_timeout(&mut self, timeout: Duration) -> &mut PostgresOptions {
        self.write_timeout = timeout;
        self
    }

    /// How long one transaction (a batch) may take; past it, its writes
    /// are answered `timeout` with `commit_outcome=unknown`.
    pub fn commit_timeout(&mut self, timeout: Duration) -> &mut PostgresOptions {
        self.commit_timeout = timeout;
        self
    }

    /// How long one read may take; past it, the read fails with `timeout`
    /// and its connection is closed.
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut PostgresOptions {
        self.read_timeout = timeout;
        self
    }

    /// The most operations one transaction holds (a single larger request
    /// still gets a transaction of its own).
    pub fn max_batch_operations(&mut self, operations: usize) -> &mut PostgresOptions {
        self.max_batch_operations = operations;
        self
    }

    /// The most writes waiting for the writer; more are refused with
    /// `queue_full`.
    pub fn max_queued_writes(&mut self, writes: usize) -> &mut PostgresOptions {
        self.max_queued_writes = writes;
        self
    }

    /// How long the server lets one of this store's transactions sit idle
    /// (the client sending nothing) before it ends the session, rolling
    /// the transaction back (PostgreSQL's
    /// `idle_in_transaction_session_timeout`, set on every connection).
    /// Default 5 s. A process that is paused (SIGSTOP, a VM freeze) in the
    /// middle of a write transaction holds that transaction's row locks,
    /// among them the share locks of its fences, which keep other nodes
    /// from claiming those leases (`FOR UPDATE SKIP LOCKED` skips them):
    /// this bound ends that. Whole milliseconds, at least 1 ms.
    pub fn idle_transaction_timeout(&mut self, timeout: Duration) -> &mut PostgresOptions {
        self.idle_transaction_timeout = timeout;
        self
    }

    /// The clock that write deadlines and commit durations are measured on.
    pub fn clock(&mut self, clock: SharedClock) -> &mut PostgresOptions {
        self.clock = clock;
        self
    }

    /// Checks the options.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &'static str, rule: &str| {
            Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("PostgresOptions::{field} {rule}"),
            )
            .with_context("field", field))
        };
        if self.max_connections < 2 {
            return invalid("max_connections", "must be at least 2");
        }
        if self.max_batch_operations == 0 {
            return invalid("max_batch_operations", "must be at least 1");
        }
        if self.max_queued_writes == 0 {
            return invalid("max_queued_writes", "must be at least 1");
        }
        for (field, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("write_timeout", self.write_timeout),
            ("commit_timeout", self.commit_timeout),
            ("read_timeout", self.read_timeout),
            ("idle_transaction_timeout", self.idle_transaction_timeout),
        ] {
            if timeout.is_zero() {
                return invalid(field, "must be longer than zero");
            }
        }
        Ok(())
    }
}
