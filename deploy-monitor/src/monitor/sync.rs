//! Following a rollout changed by another process that shares the store
//! (several nodes on one PostgreSQL): re-reading the current record and
//! adopting it, without recording anything.
//!
//! Each process runs its own monitor over the same record. Writes are
//! compare-and-set on the version a process last saw (`store.rs`), so two
//! processes never both record a transition from the same state: the
//! second gets `version_conflict`, adopts the stored record here, and its
//! caller may decide again. A process that learns of a change (a change
//! feed notification, or its own polling) calls
//! [`DeployMonitor::sync_from_store`]: the phase, pause and pending
//! transition become the stored ones; the history is not written again
//! (the process that made the transition recorded it), and the flags
//! follow through the flags' own store (`Flags::reload`).
//!
//! This module is not for deciding transitions.

use foundation_error::{Error, ErrorCode, Result};

use super::{DeployMonitor, State, Streaks};
use crate::events::TransitionRecord;
use crate::store::RolloutRecord;

impl DeployMonitor {
    /// Re-reads the stored rollout record and adopts it when another
    /// process changed it: its phase (the window and the streaks restart
    /// when the phase moved), its pause, its pending transition. Records
    /// nothing and applies no flags. Returns whether anything changed.
    ///
    /// # Errors
    ///
    /// `timeout` when another operation holds the monitor too long; the
    /// store's read errors; `invalid_config_value` when the stored phase is
    /// outside this process's plan (nothing is adopted then).
    ///
    /// # Cancel safety
    ///
    /// Only reads the store; the adoption is synchronous, so dropping the
    /// future adopts everything or nothing.
    pub async fn sync_from_store(&self) -> Result<bool> {
        let mut state = self.lock().await?;
        self.adopt_stored(&mut state).await
    }

    /// Adopts the stored record if its version differs from the one this
    /// process last saw.
    pub(super) async fn adopt_stored(&self, state: &mut State) -> Result<bool> {
        let Some((record, version)) = self.inner.store.load().await? else {
            return Ok(false);
        };
        if state.version == Some(version) {
            return Ok(false);
        }
        let phases = self.inner.plan.phases().len();
        if record.phase as usize > phases {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!(
                    "another process moved the rollout to phase {}, but this plan has {phases} phases",
                    record.phase
                ),
            )
            .with_context("phase", record.phase));
        }
        let moved = record.phase != state.record.phase;
        let from = state.record.phase;
        state.record = record;
        state.version = Some(version);
        if moved {
            state.entered_elapsed = self.inner.clock.elapsed();
            state.streaks = Streaks::default();
            state.healthy_since = None;
            state.drift.clear();
            self.inner.window.reset(self.inner.clock.elapsed_nanos());
            tracing::info!(
                from,
                to = state.record.phase,
                "the rollout was moved by another process sharing the store; following it"
            );
        }
        let mut published = self.published();
        published.phase = state.record.phase;
        published.paused = state.record.paused.is_some();
        Ok(true)
    }

    /// Stores `record` with a compare-and-set on the version this process
    /// last saw, and remembers the new version. On `version_conflict` the
    /// stored record is adopted (see [`after_conflict`](Self::after_conflict)).
    pub(super) async fn save(&self, state: &mut State, record: &RolloutRecord) -> Result<()> {
        match self.inner.store.save(record, state.version).await {
            Ok(version) => {
                state.version = Some(version);
                Ok(())
            }
            Err(error) => Err(self.after_conflict(state, error).await),
        }
    }

    /// Stores `record` and appends `transition` to the history, together,
    /// as [`save`](Self::save) does the record alone.
    pub(super) async fn complete(
        &self,
        state: &mut State,
        record: &RolloutRecord,
        transition: &TransitionRecord,
    ) -> Result<()> {
        match self
            .inner
            .store
            .complete(record, transition, state.version)
            .await
        {
            Ok(version) => {
                state.version = Some(version);
                Ok(())
            }
            Err(error) => Err(self.after_conflict(state, error).await),
        }
    }

    /// After a failed write of the record: on `version_conflict` (another
    /// process wrote it), adopts the stored record and says so in the
    /// error; any other error is returned as it is.
    pub(super) async fn after_conflict(&self, state: &mut State, error: Error) -> Error {
        if error.code() != ErrorCode::VERSION_CONFLICT {
            return error;
        }
        match self.adopt_stored(state).await {
            Ok(_) => error.with_message(format!(
                "another process sharing the store changed the rollout first; this process now \
                 follows it (phase {}); decide again",
                state.record.phase
            )),
            Err(reload) => error.with_context("reload_error", reload.to_string()),
        }
    }
}
