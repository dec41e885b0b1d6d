//! Several nodes on one store: this node's identity, its `node/<id>`
//! lease kept by heartbeat, and the loop that keeps the flags and the
//! rollout phase in step with what other nodes wrote.
//!
//! Every `jido-system serve` pointed at one PostgreSQL is a node. Each
//! runs its own application (flags, deployment monitor, workflow engine)
//! over the shared store, so what one node changes the others must reload:
//!
//! - the store watches the flags record
//!   ([`FLAGS_KEYSPACE`](crate::flags::FLAGS_KEYSPACE)) and the rollout
//!   record ([`ROLLOUT_KEYSPACE`](deploy_monitor::ROLLOUT_KEYSPACE))
//!   ([`watch_shared_records`]);
//! - [`follow_store`] waits on the store's change feed and, on a change of
//!   either record, on a resync, and at the latest every
//!   [`POLL_INTERVAL`] (the fallback when the feed is down), calls
//!   `Flags::reload` and `DeployMonitor::sync_from_store`; both are
//!   idempotent, so a node reloading its own change does nothing;
//! - writes of both records are compare-and-set on the version read
//!   (`PersistFlagStore` retries after merging, the monitor adopts the
//!   stored phase and refuses its stale decision), so no update is lost.
//!
//! The loop runs only for a store other nodes can write (PostgreSQL): on
//! the embedded redb store this process is the only writer, and its flags
//! and monitor are current by construction.
//!
//! [`keep_node_lease`] holds `node/<node_id>` in the store's leases for
//! the node's lease time ([`Node::node_lease_ttl`]: `--lease-ttl`, the
//! workflows' lease time, else [`DEFAULT_NODE_LEASE_TTL`]), renewed every
//! third of it, so a dead node stops being listed as live within one lease
//! time, as its workflows are taken over; `GET /api/v1/cluster` lists
//! those leases as the nodes (on redb: the one local node) with the
//! workflows' leases.
//!
//! This module is not for HTTP (`http/cluster.rs`) or for the workflows'
//! leases (jido-workflow's engine holds those).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use deploy_monitor::DeployMonitor;
use foundation_error::{ErrorCode, Result};
use foundation_flags::Flags;
use foundation_persist::{Change, Lease, Store, StoreOptions};

/// How long a node's lease lasts unless renewed, when no lease time is
/// set (`--lease-ttl`): the same as jido-workflow's default workflow
/// lease, so a node's membership and its workflows lapse together.
/// Renewed every third.
pub const DEFAULT_NODE_LEASE_TTL: Duration = jido_workflow::DEFAULT_LEASE_TTL;
/// The prefix of the nodes' lease names.
pub const NODE_LEASE_PREFIX: &str = "node/";
/// The prefix of the workflows' lease names (jido-workflow's engine).
pub const WORKFLOW_LEASE_PREFIX: &str = "workflow/";
/// The longest a node goes without re-reading the shared records when the
/// change feed is quiet or down.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The environment variable naming the node (else `--node-id`, else
/// `hostname-pid`).
pub const NODE_ID_ENV: &str = "JIDO_NODE_ID";

/// What serves the application's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// The redb file of the data directory (one node).
    Redb,
    /// An in-memory store (tests; one node).
    Memory,
    /// A PostgreSQL database, which several nodes may share.
    Postgres,
}

impl StoreKind {
    /// The name the API shows: `redb`, `memory`, `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Redb => "redb",
            StoreKind::Memory => "memory",
            StoreKind::Postgres => "postgres",
        }
    }

    /// Whether other processes may write the store (so the shared records
    /// must be followed).
    pub fn is_shared(self) -> bool {
        self == StoreKind::Postgres
    }

    /// The kind of an open store.
    pub fn of(store: &Store) -> StoreKind {
        if store.file().is_some() {
            StoreKind::Redb
        } else if store
            .backend()
            .as_any()
            .downcast_ref::<foundation_persist_postgres::PostgresBackend>()
            .is_some()
        {
            StoreKind::Postgres
        } else {
            StoreKind::Memory
        }
    }
}

/// This node: its id, its store, and the lease it holds as a member.
#[derive(Debug)]
pub struct Node {
    id: String,
    store_kind: StoreKind,
    started_at: SystemTime,
    lease: Mutex<Option<Lease>>,
    workflow_lease_ttl: Option<Duration>,
}

impl Node {
    /// A node named `id` on a store of kind `store_kind`, started at
    /// `started_at` (wall clock).
    pub fn new(id: String, store_kind: StoreKind, started_at: SystemTime) -> Node {
        Node {
            id,
            store_kind,
            started_at,
            lease: Mutex::new(None),
            workflow_lease_ttl: None,
        }
    }

    /// The same node with its workflows' lease time set (jido-workflow's
    /// default, 10 s, when not).
    pub fn with_workflow_lease_ttl(mut self, ttl: Option<Duration>) -> Node {
        self.workflow_lease_ttl = ttl;
        self
    }

    /// How long a workflow lease lasts unless renewed, if set: a dead
    /// node's workflows resume on another within about `ttl + ttl / 3`.
    pub fn workflow_lease_ttl(&self) -> Option<Duration> {
        self.workflow_lease_ttl
    }

    /// How long this node's membership lease lasts unless renewed: the
    /// workflows' lease time when set (`--lease-ttl`), else
    /// [`DEFAULT_NODE_LEASE_TTL`]. A node that dies is no longer listed as
    /// live at most this long after its last renewal, which was at most a
    /// third of it before its death.
    pub fn node_lease_ttl(&self) -> Duration {
        self.workflow_lease_ttl.unwrap_or(DEFAULT_NODE_LEASE_TTL)
    }

    /// The node id: the owner of its leases.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store's kind.
    pub fn store_kind(&self) -> StoreKind {
        self.store_kind
    }

    /// When this process started the application (wall clock).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The name of this node's lease.
    pub fn lease_name(&self) -> String {
        format!("{NODE_LEASE_PREFIX}{}", self.id)
    }

    /// The node lease as last granted or renewed, if any.
    pub fn lease(&self) -> Option<Lease> {
        self.lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_lease(&self, lease: Option<Lease>) {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = lease;
    }

    /// Releases the node lease (at shutdown), so the other nodes stop
    /// listing it at once instead of after its expiry.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the lease held until it expires.
    pub async fn release(&self, store: &Store) {
        if let Some(lease) = self.lease() {
            let bound = self.node_lease_ttl();
            match tokio::time::timeout(bound, store.leases().release(&lease)).await {
                Ok(Ok(())) => self.set_lease(None),
                Ok(Err(error)) => tracing::warn!(%error, "releasing the node lease failed"),
                Err(_) => tracing::warn!("releasing the node lease timed out"),
            }
        }
    }
}

/// The default node id: the host name and the process id
/// (`host-1234`), stable for the life of the process.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Checks a node id: 1 to 128 characters of `A-Z a-z 0-9 . _ -`.
///
/// # Errors
///
/// `invalid_config_value` naming the rule.
pub fn check_node_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(foundation_error::Error::new(
            ErrorCode::INVALID_CONFIG_VALUE,
            "a node id is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
        )
        .with_context("node_id", id))
    }
}

/// `options` with the records nodes share watched: the flags, the
/// rollout phase, and the workflow engines' hand-over announcements (so
/// that a node shutting down gracefully has its workflows claimed by the
/// others at once).
pub fn watch_shared_records(options: &StoreOptions) -> StoreOptions {
    let mut options = options.clone();
    options
        .watch(crate::flags::FLAGS_KEYSPACE)
        .watch(deploy_monitor::ROLLOUT_KEYSPACE)
        .watch(jido_workflow::HANDOVER_KEYSPACE);
    options
}

/// Holds this node's lease: acquires it, renews it every third of
/// [`Node::node_lease_ttl`], and acquires it again when it was lost
/// (expired and taken, or released by someone else). Each attempt is
/// bounded by a third of the lease time, so one that hangs (a database
/// restarting) does not delay the next beat. Runs until dropped.
pub(crate) async fn keep_node_lease(node: &Node, store: &Store) {
    let leases = store.leases();
    let ttl = node.node_lease_ttl();
    let mut beat = tokio::time::interval(ttl / 3);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        let renewed = match node.lease() {
            Some(lease) => tokio::time::timeout(ttl / 3, leases.renew(&lease, ttl)).await,
            None => {
                tokio::time::timeout(ttl / 3, leases.acquire(&node.lease_name(), node.id(), ttl))
                    .await
            }
        };
        match renewed {
            Ok(Ok(lease)) => node.set_lease(Some(lease)),
            Ok(Err(error)) if error.code() == ErrorCode::VERSION_CONFLICT => {
                // Lost (it expired and was taken or released): take it again.
                node.set_lease(None);
            }
            Ok(Err(error)) if error.code() == ErrorCode::ALREADY_EXISTS => {
                tracing::error!(node = node.id(), %error, "another live process uses this node id; give each node its own --node-id");
            }
            Ok(Err(error)) => {
                tracing::warn!(node = node.id(), %error, "renewing the node lease failed");
            }
            Err(_) => tracing::warn!(node = node.id(), "renewing the node lease timed out"),
        }
    }
}

/// What a change asks to reload.
#[derive(Debug, Clone, Copy, Default)]
struct Reload {
    flags: bool,
    rollout: bool,
}

impl Reload {
    const BOTH: Reload = Reload {
        flags: true,
        rollout: true,
    };

    fn of(change: &Change) -> Reload {
        match change {
            Change::Key { keyspace, .. } => Reload {
                flags: keyspace == crate::flags::FLAGS_KEYSPACE,
                rollout: keyspace == deploy_monitor::ROLLOUT_KEYSPACE,
            },
            _ => Reload::BOTH,
        }
    }
}

/// Keeps `flags` and `monitor` in step with the shared store (see the
/// module documentation). Runs until dropped.
pub(crate) async fn follow_store(store: Store, flags: Flags, monitor: DeployMonitor) {
    let mut changes = match store.changes() {
        Ok(changes) => Some(changes),
        Err(error) => {
            tracing::warn!(%error, "no change feed; polling the shared records every second");
            None
        }
    };
    loop {
        let reload = match changes.as_mut() {
            Some(feed) => match feed.next(POLL_INTERVAL).await {
                Ok(Some(change)) => Reload::of(&change),
                // Quiet for a poll interval: poll.
                Ok(None) => Reload::BOTH,
                Err(error) => {
                    tracing::warn!(%error, "the change feed ended; polling the shared records every second");
                    changes = None;
                    Reload::BOTH
                }
            },
            None => {
                tokio::time::sleep(POLL_INTERVAL).await;
                Reload::BOTH
            }
        };
        if reload.flags
            && let Err(error) = flags.reload().await
        {
            tracing::warn!(%error, "reloading the flags from the shared store failed");
        }
        if reload.rollout {
            match monitor.sync_from_store().await {
                Ok(true) => tracing::debug!("followed a rollout change made by another node"),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "re-reading the rollout from the shared store failed");
                }
            }
        }
    }
}
