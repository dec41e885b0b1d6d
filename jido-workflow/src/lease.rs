//! Workflow ownership: the lease contract (owner, fencing token, expiry)
//! and its embedded implementation.
//!
//! A workflow process acquires its workflow's lease when it starts and
//! checks it before every journal write, so that a writer whose lease was
//! taken over (a stale instance, another node) is fenced off with
//! `version_conflict` instead of interleaving. The journal's own
//! expected-sequence appends back this up inside the store. On the
//! embedded store this process holds every lease: [`EmbeddedLeases`]
//! grants each acquisition at once and bumps the token, so a restarted
//! instance fences off its predecessor. A PostgreSQL backend can implement
//! [`LeaseManager`] with expiring rows for several nodes; that backend is
//! not written yet.
//!
//! This module is not for the journal itself (see `record`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The workflow's id.
    pub workflow: String,
    /// Who holds it (a node id).
    pub owner: String,
    /// The fencing token: larger for every later grant of the workflow.
    pub token: u64,
    /// When it lapses unless renewed (wall clock).
    pub expires_at: SystemTime,
}

/// Grants and checks workflow leases.
pub trait LeaseManager: Send + Sync + fmt::Debug + 'static {
    /// Grants `owner` the lease of `workflow` with a new fencing token.
    ///
    /// # Errors
    ///
    /// `resource_exhausted`-style errors of the backend, or
    /// `already_exists` when another owner holds an unexpired lease.
    fn acquire(&self, workflow: &str, owner: &str) -> Result<Lease, Error>;

    /// Checks that `lease` is still the newest grant of its workflow and
    /// has not expired. Every journal write calls this first.
    ///
    /// # Errors
    ///
    /// `version_conflict` when a newer grant exists or the lease expired.
    fn check(&self, lease: &Lease) -> Result<(), Error>;

    /// Gives the lease up (no effect when a newer grant exists).
    fn release(&self, lease: &Lease);
}

/// The embedded implementation: one process holds every lease; the
/// newest grant wins. Leases do not expire while this process runs (the
/// expiry stamp is informational: `ttl` after the grant).
pub struct EmbeddedLeases {
    clock: SharedClock,
    ttl: Duration,
    next_token: AtomicU64,
    current: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for EmbeddedLeases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedLeases")
            .field("ttl", &self.ttl)
            .field("held", &self.held())
            .finish()
    }
}

impl EmbeddedLeases {
    /// Leases stamped with `clock`, expiring `ttl` after each grant.
    pub fn new(clock: SharedClock, ttl: Duration) -> EmbeddedLeases {
        EmbeddedLeases {
            clock,
            ttl,
            next_token: AtomicU64::new(1),
            current: Mutex::new(HashMap::new()),
        }
    }

    /// How many leases are held.
    pub fn held(&self) -> usize {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl LeaseManager for EmbeddedLeases {
    fn acquire(&self, workflow: &str, owner: &str) -> Result<Lease, Error> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(workflow.to_owned(), token);
        Ok(Lease {
            workflow: workflow.to_owned(),
            owner: owner.to_owned(),
            token,
            expires_at: self.clock.wall() + self.ttl,
        })
    }

    fn check(&self, lease: &Lease) -> Result<(), Error> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&lease.workflow)
            .copied();
        if current == Some(lease.token) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::VERSION_CONFLICT,
                format!("the lease of workflow {} was taken over", lease.workflow),
            )
            .with_context("token", lease.token)
            .with_context(
                "current",
                current.map_or_else(|| "none".to_owned(), |t| t.to_string()),
            ))
        }
    }

    fn release(&self, lease: &Lease) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.get(&lease.workflow) == Some(&lease.token) {
            current.remove(&lease.workflow);
        }
    }
}
