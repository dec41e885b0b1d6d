//! The rollout's durable state on foundation-persist: the current phase
//! (with a pending transition, the *intent*) and the transition history.
//!
//! A transition is three writes: (1) the intent is stored in the current
//! record, (2) the flags are applied (one atomic, audited bulk change in the
//! flags' own store), (3) the new phase and the history entry are stored
//! together in one batch, clearing the intent. A process killed anywhere in
//! between leaves an intent behind; the next open rolls it forward by
//! applying the target phase's flags again (an idempotent write) and doing
//! step 3, so the flags and the phase agree after every restart. The flags'
//! store and this store may be the same file or different ones: the
//! protocol needs only that each write is durable when acknowledged.
//!
//! Several processes may share one store (nodes on one PostgreSQL): every
//! write of the current record is a compare-and-set on the version this
//! process last read or wrote, so two nodes never overwrite each other's
//! transition; the loser gets `version_conflict` and re-reads
//! (`DeployMonitor::sync_from_store`).
//!
//! This module is not for deciding transitions.

use std::time::SystemTime;

use foundation_error::Result;
use foundation_persist::{Journal, Outcome, Record, StateStore, Store, Version};
use serde::{Deserialize, Serialize};

use crate::events::TransitionRecord;

/// The keyspace of the current record: the one to watch
/// (`StoreOptions::watch`) for a store shared by several processes.
pub const ROLLOUT_KEYSPACE: &str = "deploy_monitor.rollout";
/// The key of the current record.
const CURRENT_KEY: &str = "current";
/// The journal of transitions.
const HISTORY_KEYSPACE: &str = "deploy_monitor.history";
/// The stream of the journal.
const HISTORY_STREAM: &str = "transitions";

/// The current state of the rollout, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RolloutRecord {
    pub(crate) phase: u32,
    pub(crate) entered_at: SystemTime,
    pub(crate) last_rollback_at: Option<SystemTime>,
    pub(crate) baseline_p99_micros: Option<u64>,
    /// The baseline the pending transition's phase gets.
    pub(crate) pending_baseline_p99_micros: Option<u64>,
    pub(crate) paused: Option<String>,
    pub(crate) next_transition: u64,
    /// A transition whose flags may or may not be written yet.
    pub(crate) pending: Option<TransitionRecord>,
}

impl Record for RolloutRecord {
    const TYPE_TAG: &'static str = "deploy_monitor.rollout";
    const SCHEMA_VERSION: u32 = 1;
}

impl Record for TransitionRecord {
    const TYPE_TAG: &'static str = "deploy_monitor.transition";
    const SCHEMA_VERSION: u32 = 1;
}

/// The typed keyspaces, declared once.
#[derive(Clone)]
pub(crate) struct RolloutStore {
    store: Store,
    current: StateStore<RolloutRecord>,
    history: Journal<TransitionRecord>,
}

impl RolloutStore {
    pub(crate) fn new(store: Store) -> Result<RolloutStore> {
        Ok(RolloutStore {
            current: store.state(ROLLOUT_KEYSPACE)?,
            history: store.journal(HISTORY_KEYSPACE)?,
            store,
        })
    }

    /// The current record and its version.
    pub(crate) async fn load(&self) -> Result<Option<(RolloutRecord, Version)>> {
        Ok(self
            .current
            .get_versioned(CURRENT_KEY)
            .await?
            .map(|versioned| (versioned.value, versioned.version)))
    }

    /// Stores `record` alone (the intent, a pause, the first record) if the
    /// stored one still has version `expected` (`None`: none is stored);
    /// returns the new version. `version_conflict` when another process
    /// wrote it meanwhile.
    pub(crate) async fn save(
        &self,
        record: &RolloutRecord,
        expected: Option<Version>,
    ) -> Result<Version> {
        self.current
            .compare_and_set(CURRENT_KEY, expected, record)
            .await
    }

    /// Stores `record` and appends `transition` to the history, together,
    /// if the stored record still has version `expected`; returns the new
    /// version.
    pub(crate) async fn complete(
        &self,
        record: &RolloutRecord,
        transition: &TransitionRecord,
        expected: Option<Version>,
    ) -> Result<Version> {
        let mut batch = self.store.batch();
        batch
            .append(&self.history, HISTORY_STREAM, transition)?
            .compare_and_set(&self.current, CURRENT_KEY, expected, record)?;
        let outcomes = batch.commit().await?;
        match outcomes.last() {
            Some(Outcome::Written { version }) => Ok(*version),
            _ => Err(foundation_error::Error::new(
                foundation_error::ErrorCode::INTERNAL_ERROR,
                "the store answered the rollout's write without its version",
            )),
        }
    }

    /// The last `limit` transitions, oldest first.
    pub(crate) async fn history(&self, limit: usize) -> Result<Vec<TransitionRecord>> {
        let head = self.history.head(HISTORY_STREAM).await?;
        let limit = limit.clamp(1, foundation_persist::MAX_READ_LIMIT);
        let from = head.next_sequence.saturating_sub(limit as u64).max(1);
        let entries = self.history.read(HISTORY_STREAM, from, limit).await?;
        Ok(entries.into_iter().map(|entry| entry.record).collect())
    }
}
