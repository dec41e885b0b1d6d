//! The six rollout flags of the plan, their declarations, and the
//! [`PersistFlagStore`]: foundation-flags' `FlagStore` contract implemented
//! on foundation-persist, so flag values, ramps and the audit log live in
//! the application's store.
//!
//! This module is not for deciding what a flag gates; each component reads
//! its flag where the behaviour lives (see the crate documentation's table).

use std::collections::{BTreeMap, VecDeque};

use foundation_error::{Error, Result};
use foundation_flags::{
    AuditEntry, AuditQuery, Flag, FlagCommit, FlagStore, FlagValue, RampState, RampUpdate,
    StoreFuture, StoredFlags,
};
use foundation_persist::{Journal, StateStore, Store};
use serde::{Deserialize, Serialize};

/// TaskAgent persists its queue (on) or runs volatile (off).
pub const USE_PERSISTENT_AGENTS: &str = "use_persistent_agents";
/// Workflow starts go to CoordinatorV2 for this share of coordinator ids.
pub const USE_V2_COORDINATOR: &str = jido_workflow::coordinator::USE_V2_COORDINATOR;
/// API errors in the portable classified form with retries of
/// infrastructure errors (on), or the legacy plain form without (off).
pub const USE_NEW_ERROR_HANDLING: &str = "use_new_error_handling";
/// The `?wait=true` variants of the write endpoints exist (on).
pub const USE_SYNC_TEST_APIS: &str = "use_sync_test_apis";
/// Work that cannot be spawned under the task supervisor waits for it (on),
/// or falls back to an unsupervised task with a warning and a counter (off).
pub const ENFORCE_SUPERVISED_TASKS: &str = "enforce_supervised_tasks";
/// Signals are routed with acknowledgements (on) or fire-and-forget (off).
pub const USE_RELIABLE_MESSAGING: &str = "use_reliable_messaging";

/// The six flags, in the plan's order, with what each gates.
pub const ROLLOUT_FLAGS: [(&str, &str); 6] = [
    (
        USE_PERSISTENT_AGENTS,
        "TaskAgent persists its queue before every reply (on) or runs volatile (off)",
    ),
    (
        USE_V2_COORDINATOR,
        "workflow starts go to CoordinatorV2 for this share of coordinator ids, V1 otherwise",
    ),
    (
        USE_NEW_ERROR_HANDLING,
        "API errors in the portable classified form, infrastructure errors retried (on), or legacy plain errors (off)",
    ),
    (
        USE_SYNC_TEST_APIS,
        "the ?wait=true variants of the write endpoints answer only once the effect is durable and visible",
    ),
    (
        ENFORCE_SUPERVISED_TASKS,
        "a step that cannot run under the task supervisor waits for it (on) or runs unsupervised with a warning and a counter (off)",
    ),
    (
        USE_RELIABLE_MESSAGING,
        "application signals are routed with acknowledgements (on) or fire-and-forget (off)",
    ),
];

/// The declarations of the six flags, every one off by default (phase 0).
pub fn declarations() -> Vec<Flag> {
    ROLLOUT_FLAGS
        .iter()
        .map(|(name, description)| Flag::new(*name, *description, FlagValue::Off))
        .collect()
}

/// The keyspace of the stored values and ramps (one record, key
/// [`STATE_KEY`]): the one a store shared by several nodes watches
/// (`StoreOptions::watch`), so that each node reloads its flags when
/// another changes them.
pub const FLAGS_KEYSPACE: &str = "jido_system_flags";
/// The key of the one record in [`STATE_KEYSPACE`].
const STATE_KEY: &str = "current";
/// The journal of audit entries (one stream, [`AUDIT_STREAM`]).
const AUDIT_KEYSPACE: &str = "jido_system_flag_audit";
/// The stream of the audit journal.
const AUDIT_STREAM: &str = "flags";
/// How many audit entries one journal read returns.
const AUDIT_PAGE: usize = 1_000;

/// Stored flag values (as their `on|off|0-100` text) and ramps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredFlagState {
    values: BTreeMap<String, String>,
    ramps: Vec<RampState>,
    last_sequence: u64,
}

impl foundation_persist::Record for StoredFlagState {
    const TYPE_TAG: &'static str = "jido_system_flag_state";
    const SCHEMA_VERSION: u32 = 1;
}

/// One audit entry in the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAudit {
    entry: AuditEntry,
}

impl foundation_persist::Record for StoredAudit {
    const TYPE_TAG: &'static str = "jido_system_flag_audit";
    const SCHEMA_VERSION: u32 = 1;
}

/// foundation-flags' [`FlagStore`] on foundation-persist: values and ramps
/// in one record, the audit log in a journal, a commit in one
/// all-or-nothing write batch.
///
/// Reading the audit log walks the journal from its start (pages of
/// 1,000), keeping the most recent matches: fine for the audit volume of a
/// rollout (one entry per flag change), linear in the log's length.
#[derive(Debug, Clone)]
pub struct PersistFlagStore {
    state: StateStore<StoredFlagState>,
    audit: Journal<StoredAudit>,
}

impl PersistFlagStore {
    /// A flag store in `store`.
    ///
    /// # Errors
    ///
    /// The store's errors opening the keyspaces.
    pub fn new(store: &Store) -> Result<PersistFlagStore> {
        Ok(PersistFlagStore {
            state: store.state(FLAGS_KEYSPACE)?,
            audit: store.journal(AUDIT_KEYSPACE)?,
        })
    }
}

impl FlagStore for PersistFlagStore {
    fn load(&self) -> StoreFuture<'_, StoredFlags> {
        Box::pin(async move {
            let stored = self.state.get(STATE_KEY).await?.unwrap_or_default();
            let mut flags = StoredFlags::default();
            for (flag, value) in stored.values {
                let value = value
                    .parse::<FlagValue>()
                    .map_err(|error: Error| error.with_context("flag", flag.clone()))?;
                flags.values.insert(flag, value);
            }
            flags.ramps = stored.ramps;
            flags.last_sequence = stored.last_sequence;
            Ok(flags)
        })
    }

    /// Applies the commit only if the stored record's last audit sequence
    /// is still the commit's base (foundation-flags' contract), with a
    /// compare-and-set on the version of the record read, in one batch
    /// with the audit entries. Another node that stored a change between
    /// the decision and this write makes it `version_conflict` with
    /// nothing stored (its `Flags` re-reads and decides again): so the
    /// audit sequence is one per store, allocated through the record, and
    /// the journal holds it in order without duplicates.
    fn commit<'a>(&'a self, commit: &'a FlagCommit) -> StoreFuture<'a, ()> {
        Box::pin(self.commit_once(commit))
    }

    fn audit_log<'a>(&'a self, query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(self.read_audit(query))
    }
}

impl PersistFlagStore {
    /// One read-merge-compare-and-set of the record with the audit entries.
    async fn commit_once(&self, commit: &FlagCommit) -> Result<()> {
        {
            let current = self.state.get_versioned(STATE_KEY).await?;
            let expected = current.as_ref().map(|versioned| versioned.version);
            let mut stored = current.map(|versioned| versioned.value).unwrap_or_default();
            if stored.last_sequence != commit.base_sequence {
                return Err(foundation_flags::stale_commit(
                    commit.base_sequence,
                    stored.last_sequence,
                ));
            }
            for (flag, value) in &commit.values {
                match value {
                    Some(value) => {
                        stored.values.insert(flag.clone(), value.to_string());
                    }
                    None => {
                        stored.values.remove(flag);
                    }
                }
            }
            for update in &commit.ramps {
                match update {
                    RampUpdate::Upsert(state) => {
                        stored
                            .ramps
                            .retain(|ramp| ramp.plan.flag() != state.plan.flag());
                        stored.ramps.push(state.clone());
                    }
                    RampUpdate::Remove(flag) => {
                        stored.ramps.retain(|ramp| ramp.plan.flag() != flag);
                    }
                    _ => {}
                }
            }
            stored.last_sequence = stored.last_sequence.max(commit.last_sequence());
            let mut batch = self.state.store().batch();
            batch.compare_and_set(&self.state, STATE_KEY, expected, &stored)?;
            for entry in &commit.entries {
                batch.append(
                    &self.audit,
                    AUDIT_STREAM,
                    &StoredAudit {
                        entry: entry.clone(),
                    },
                )?;
            }
            batch.commit().await.map(|_| ())
        }
    }

    /// The most recent audit entries matching `query`.
    async fn read_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        {
            let mut recent = VecDeque::new();
            let mut from = 1;
            loop {
                let page = self.audit.read(AUDIT_STREAM, from, AUDIT_PAGE).await?;
                let Some(last) = page.last() else {
                    break;
                };
                from = last.sequence + 1;
                let full = page.len() == AUDIT_PAGE;
                for stored in page {
                    if query.matches(&stored.record.entry) {
                        if recent.len() == query.limit {
                            recent.pop_front();
                        }
                        if query.limit > 0 {
                            recent.push_back(stored.record.entry);
                        }
                    }
                }
                if !full {
                    break;
                }
            }
            Ok(recent.into_iter().collect())
        }
    }
}
