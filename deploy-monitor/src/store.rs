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
//! This module is not for deciding transitions.

use std::time::SystemTime;

use foundation_error::Result;
use foundation_persist::{Journal, Record, StateStore, Store};
use serde::{Deserialize, Serialize};

use crate::events::TransitionRecord;

/// The keyspace of the current record.
const ROLLOUT_KEYSPACE: &str = "deploy_monitor.rollout";
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

    pub(crate) async fn load(&self) -> Result<Option<RolloutRecord>> {
        self.current.get(CURRENT_KEY).await
    }

    /// Stores `record` alone (the intent, a pause, the first record).
    pub(crate) async fn save(&self, record: &RolloutRecord) -> Result<()> {
        self.current.put(CURRENT_KEY, record).await.map(|_| ())
    }

    /// Stores `record` and appends `transition` to the history, together.
    pub(crate) async fn complete(
        &self,
        record: &RolloutRecord,
        transition: &TransitionRecord,
    ) -> Result<()> {
        let mut batch = self.store.batch();
        batch
            .append(&self.history, HISTORY_STREAM, transition)?
            .put(&self.current, CURRENT_KEY, record)?;
        batch.commit().await.map(|_| ())
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
