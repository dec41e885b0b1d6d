//! How a store is configured: durability, group-commit bounds, timeouts and
//! limits, all with safe defaults.
//!
//! This module only holds settings; opening a store is `store.rs`.

use std::time::Duration;

use foundation_error::clock::{self, SharedClock};

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every batch is committed with an fsync before any write in it is
    /// acknowledged: an acknowledged write survives a process kill and a
    /// power loss. The default.
    #[default]
    Immediate,
    /// Batches are committed without an fsync and acknowledged at once; a
    /// durable commit follows at most `flush_after` later (and at close).
    /// Writes acknowledged since the last durable commit are **lost** if the
    /// process dies, even by a plain kill. Only for data you can recompute.
    Deferred {
        /// The longest time between durable commits.
        flush_after: Duration,
    },
}

/// The settings of a [`Store`](crate::Store), a builder with `&mut self`
/// setters. [`StoreOptions::new`] gives the safe defaults listed on each
/// setter. The durability, batch, queue and write timeout settings concern
/// the writer thread of a file store; an in-memory store writes inline and
/// ignores them.
///
/// ```
/// use std::time::Duration;
/// use foundation_persist::StoreOptions;
///
/// let mut options = StoreOptions::new();
/// options
///     .write_timeout(Duration::from_secs(2))
///     .max_batch_operations(512);
/// let store = foundation_persist::Store::open_in_memory(&options)?;
/// # Ok::<(), foundation_error::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub(crate) durability: Durability,
    pub(crate) write_timeout: Duration,
    pub(crate) max_batch_operations: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_batch_delay: Duration,
    pub(crate) max_queued_writes: usize,
    pub(crate) max_value_bytes: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) maintenance_timeout: Duration,
    pub(crate) check_integrity_on_open: bool,
    /// The state keyspaces reported on the change feed.
    pub(crate) watched: std::sync::Arc<std::collections::BTreeSet<String>>,
    pub(crate) clock: SharedClock,
    #[cfg(feature = "fault-injection")]
    pub(crate) fault_injection: Option<crate::fault::FaultInjection>,
}

/// The longest key or journal stream id, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The most records one read (a list or a journal read) returns.
pub const MAX_READ_LIMIT: usize = 10_000;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions::new()
    }
}

impl StoreOptions {
    /// The defaults: immediate durability, a 10 s write timeout, batches of
    /// at most 1,024 operations and 32 MiB with no extra wait, 16,384 queued
    /// writes, 16 MiB values, a 64 MiB cache, a 10 minute timeout for
    /// backups, and the system clock for lease expiry.
    pub fn new() -> StoreOptions {
        StoreOptions {
            durability: Durability::Immediate,
            write_timeout: Duration::from_secs(10),
            max_batch_operations: 1024,
            max_batch_bytes: 32 << 20,
            max_batch_delay: Duration::ZERO,
            max_queued_writes: 16_384,
            max_value_bytes: 16 << 20,
            cache_bytes: 64 << 20,
            maintenance_timeout: Duration::from_secs(600),
            check_integrity_on_open: false,
            watched: std::sync::Arc::default(),
            clock: clock::system(),
            #[cfg(feature = "fault-injection")]
            fault_injection: None,
        }
    }

    /// Reports every committed put and delete of the state keyspace named
    /// `keyspace` on the store's change feed
    /// ([`Store::changes`](crate::Store::changes)). Off for every keyspace
    /// by default: watching is for small shared records (flags, a rollout
    /// phase), not for hot keyspaces. On a PostgreSQL store each watched
    /// write adds a notification to its transaction. The metadata keyspace
    /// and journals cannot be watched (watch a state record written in the
    /// same batch instead).
    pub fn watch(&mut self, keyspace: &str) -> &mut StoreOptions {
        std::sync::Arc::make_mut(&mut self.watched).insert(keyspace.to_owned());
        self
    }

    /// Whether [`watch`](StoreOptions::watch) named `keyspace`.
    pub fn is_watched(&self, keyspace: &str) -> bool {
        self.watched.contains(keyspace)
    }

    /// Whether any keyspace is watched.
    pub fn watches_any(&self) -> bool {
        !self.watched.is_empty()
    }

    /// When acknowledged writes reach the disk. Default
    /// [`Durability::Immediate`].
    pub fn durability(&mut self, durability: Durability) -> &mut StoreOptions {
        self.durability = durability;
        self
    }

    /// How long a write may wait in the queue before the writer gives up on
    /// it with `timeout` (it is then never committed). Once its batch is
    /// committing, the write waits for that commit. Default 10 s.
    pub fn write_timeout(&mut self, timeout: Duration) -> &mut StoreOptions {
        self.write_timeout = timeout;
        self
    }

    /// The most operations one commit holds. Default 1,024; at least 1.
    pub fn max_batch_operations(&mut self, operations: usize) -> &mut StoreOptions {
        self.max_batch_operations = operations.max(1);
        self
    }

    /// The most encoded bytes one commit collects before it closes (a single
    /// larger write is committed alone). Default 32 MiB.
    pub fn max_batch_bytes(&mut self, bytes: usize) -> &mut StoreOptions {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// How long the writer waits for more writes to join a batch once the
    /// queue is empty. Writes that arrive while a commit runs join the next
    /// batch anyway, so the default is zero: a batch closes as soon as the
    /// queue is empty. A small wait evens out batch sizes under steady
    /// load, but on a busy machine every wait costs a scheduling delay, so
    /// measure before raising it.
    pub fn max_batch_delay(&mut self, delay: Duration) -> &mut StoreOptions {
        self.max_batch_delay = delay;
        self
    }

    /// How many writes may wait for the writer; beyond that a write fails at
    /// once with `queue_full` (retryable with backoff). Default 16,384.
    pub fn max_queued_writes(&mut self, writes: usize) -> &mut StoreOptions {
        self.max_queued_writes = writes.max(1);
        self
    }

    /// The largest encoded value or journal record; larger ones are refused
    /// with `invalid_input`. Default 16 MiB.
    pub fn max_value_bytes(&mut self, bytes: usize) -> &mut StoreOptions {
        self.max_value_bytes = bytes;
        self
    }

    /// The memory redb may use to cache pages. Default 64 MiB.
    pub fn cache_bytes(&mut self, bytes: usize) -> &mut StoreOptions {
        self.cache_bytes = bytes;
        self
    }

    /// The longest a backup may take before it is abandoned with `timeout`.
    /// Default 10 minutes.
    pub fn maintenance_timeout(&mut self, timeout: Duration) -> &mut StoreOptions {
        self.maintenance_timeout = timeout;
        self
    }

    /// Whether opening a store file verifies the checksum of every
    /// committed page first (redb's integrity check), so that damage done
    /// to the file outside redb fails the open with `data_corruption`
    /// instead of surfacing at the first read of the damaged page.
    ///
    /// After an unclean shutdown redb repairs, and so verifies, the file on
    /// open anyway; this option adds the check to clean opens. It reads the
    /// whole file and commits once: measured on a 100 MB store on this
    /// project's build machine (`examples/integrity_cost.rs`), see the
    /// crate's ARCHITECTURE section for the figure. Default `false`: a
    /// damaged page is still never misread (redb or the envelope checksum
    /// report it as `data_corruption`) and never panics the caller.
    pub fn check_integrity_on_open(&mut self, check: bool) -> &mut StoreOptions {
        self.check_integrity_on_open = check;
        self
    }

    /// The clock whose wall time judges lease expiry on the built-in
    /// backends (memory and redb), so one paused or manual clock drives a
    /// test's leases. Default: the system clock. (A PostgreSQL store
    /// judges expiry by the database server's clock instead.)
    pub fn clock(&mut self, clock: SharedClock) -> &mut StoreOptions {
        self.clock = clock;
        self
    }

    /// The clock set with [`clock`](StoreOptions::clock).
    pub fn shared_clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Routes the store's file I/O through a [`FaultInjection`](crate::FaultInjection)
    /// that can fail writes or syncs on command. Only for tests; only for
    /// file stores.
    #[cfg(feature = "fault-injection")]
    pub fn fault_injection(&mut self, faults: crate::fault::FaultInjection) -> &mut StoreOptions {
        self.fault_injection = Some(faults);
        self
    }
}
