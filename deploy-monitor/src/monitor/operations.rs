//! The manual operations: advance (with its rules), forced advance,
//! rollback, emergency rollback, pause and resume.
//!
//! This module is not for automatic actions (`evaluate.rs`).

use std::time::Duration;

use foundation_error::{Error, ErrorCode, Result};

use crate::events::{RolloutEvent, TransitionKind, TransitionRecord};

use super::{DeployMonitor, State, Streaks, check_attribution, since};

impl DeployMonitor {
    pub(super) async fn set_paused(
        &self,
        state: &mut State,
        paused: Option<String>,
        who: &str,
    ) -> Result<()> {
        let mut record = state.record.clone();
        record.paused = paused.clone();
        self.save(state, &record).await?;
        state.record = record;
        self.published().paused = paused.is_some();
        match paused {
            Some(reason) => self.emit(RolloutEvent::Paused {
                who: who.to_owned(),
                reason,
            }),
            None => self.emit(RolloutEvent::Resumed {
                who: who.to_owned(),
                reason: "resumed".to_owned(),
            }),
        }
        Ok(())
    }

    /// Why an advance is not allowed now, or `None`.
    pub(super) fn advance_refusal(&self, state: &State) -> Option<String> {
        let plan = &self.inner.plan;
        let phase = state.record.phase as usize;
        if phase >= plan.phases().len() {
            return Some(format!("phase {phase} is the plan's last"));
        }
        if let Some(reason) = &state.record.paused {
            return Some(format!("the rollout is paused ({reason})"));
        }
        let minimum = plan
            .phase(phase)
            .map_or(Duration::ZERO, |current| current.min_duration);
        let now = self.inner.clock.elapsed();
        match state.healthy_since {
            None => {
                return Some(format!(
                    "phase {phase} has not passed its last check; it must be healthy for {}",
                    humantime::format_duration(minimum)
                ));
            }
            Some(since) if now.saturating_sub(since) < minimum => {
                return Some(format!(
                    "phase {phase} has been healthy for {} of the {} required",
                    humantime::format_duration(now.saturating_sub(since)),
                    humantime::format_duration(minimum)
                ));
            }
            Some(_) => {}
        }
        let quiet = plan.analysis().advance_quiet_period;
        if let Some(at) = state.record.last_rollback_at {
            let ago = since(self.inner.clock.wall(), at);
            if ago < quiet {
                return Some(format!(
                    "the last rollback was {} ago; no advance within {} of one",
                    humantime::format_duration(ago),
                    humantime::format_duration(quiet)
                ));
            }
        }
        None
    }

    /// Advances one phase if the rules allow it: the current phase healthy
    /// (passing every evaluation) for its minimum duration, no rollback
    /// within the quiet period (one hour by default), not paused.
    ///
    /// # Errors
    ///
    /// `business_rule_violation` saying which rule refused it;
    /// `invalid_input` without a `who` or a reason; `timeout`; the store's
    /// and the flags' errors.
    ///
    /// # Cancel safety
    ///
    /// As [`evaluate_now`](Self::evaluate_now).
    pub async fn advance(&self, who: &str, reason: &str) -> Result<TransitionRecord> {
        check_attribution(who, reason, "an advance")?;
        let mut state = self.lock().await?;
        self.finish_pending(&mut state).await?;
        if let Some(refusal) = self.advance_refusal(&state) {
            return Err(Error::new(
                ErrorCode::BUSINESS_RULE_VIOLATION,
                format!("advance refused: {refusal} (force it with a reason to override)"),
            ));
        }
        let to = state.record.phase + 1;
        self.transition(&mut state, TransitionKind::Advance, to, who, reason, None)
            .await
    }

    /// Advances one phase whatever the health, with a reason (recorded).
    ///
    /// # Errors
    ///
    /// `business_rule_violation` at the last phase; otherwise as
    /// [`advance`](Self::advance).
    ///
    /// # Cancel safety
    ///
    /// As [`evaluate_now`](Self::evaluate_now).
    pub async fn force_advance(&self, who: &str, reason: &str) -> Result<TransitionRecord> {
        check_attribution(who, reason, "a forced advance")?;
        let mut state = self.lock().await?;
        self.finish_pending(&mut state).await?;
        let phase = state.record.phase;
        if phase as usize >= self.inner.plan.phases().len() {
            return Err(Error::new(
                ErrorCode::BUSINESS_RULE_VIOLATION,
                format!("phase {phase} is the plan's last; there is nothing to advance to"),
            ));
        }
        self.transition(
            &mut state,
            TransitionKind::ForcedAdvance,
            phase + 1,
            who,
            reason,
            None,
        )
        .await
    }

    /// Rolls back one phase, with a reason; no analysis, no cooldown. The
    /// record carries the phase's latest evaluation as evidence, if any.
    ///
    /// # Errors
    ///
    /// `business_rule_violation` at the baseline; otherwise as
    /// [`advance`](Self::advance).
    ///
    /// # Cancel safety
    ///
    /// As [`evaluate_now`](Self::evaluate_now).
    pub async fn rollback(&self, who: &str, reason: &str) -> Result<TransitionRecord> {
        check_attribution(who, reason, "a manual rollback")?;
        let mut state = self.lock().await?;
        self.finish_pending(&mut state).await?;
        let phase = state.record.phase;
        if phase == 0 {
            return Err(Error::new(
                ErrorCode::BUSINESS_RULE_VIOLATION,
                "the rollout is at the baseline; there is nothing to roll back",
            ));
        }
        let evidence = self.latest_evidence(phase);
        self.transition(
            &mut state,
            TransitionKind::ManualRollback,
            phase - 1,
            who,
            reason,
            evidence,
        )
        .await
    }

    /// Turns every rollout flag off at once (phase 0), skipping analysis.
    /// Allowed in any phase, paused or not, in dry run too. The record
    /// carries the phase's latest evaluation as evidence, if any.
    ///
    /// # Errors
    ///
    /// As [`advance`](Self::advance), except the rules.
    ///
    /// # Cancel safety
    ///
    /// As [`evaluate_now`](Self::evaluate_now).
    pub async fn emergency_rollback(&self, who: &str, reason: &str) -> Result<TransitionRecord> {
        check_attribution(who, reason, "an emergency rollback")?;
        let mut state = self.lock().await?;
        self.finish_pending(&mut state).await?;
        let evidence = self.latest_evidence(state.record.phase);
        self.transition(
            &mut state,
            TransitionKind::EmergencyRollback,
            0,
            who,
            reason,
            evidence,
        )
        .await
    }

    /// Pauses the rollout: no advance until [`resume`](Self::resume).
    /// Automatic rollbacks still act.
    ///
    /// # Errors
    ///
    /// `invalid_input` without a `who` or a reason; `timeout`; the store's
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// The pause is stored whole or not at all.
    pub async fn pause(&self, who: &str, reason: &str) -> Result<()> {
        check_attribution(who, reason, "a pause")?;
        let mut state = self.lock().await?;
        self.set_paused(&mut state, Some(format!("{reason} (by {who})")), who)
            .await
    }

    /// Resumes a paused rollout.
    ///
    /// # Errors
    ///
    /// As [`pause`](Self::pause).
    ///
    /// # Cancel safety
    ///
    /// As [`pause`](Self::pause).
    pub async fn resume(&self, who: &str, reason: &str) -> Result<()> {
        check_attribution(who, reason, "a resume")?;
        let mut state = self.lock().await?;
        state.streaks = Streaks::default();
        self.set_paused(&mut state, None, who).await
    }
}
