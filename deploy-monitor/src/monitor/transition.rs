//! The one path every transition takes: intent stored, flags applied in
//! one attributed bulk change, phase and history stored together; and its
//! completion after a failure, a drop or a kill.
//!
//! This module is not for deciding transitions.

use foundation_error::{Error, ErrorCode, Result};
use foundation_flags::{Attribution, FlagValue};

use crate::events::{Evidence, RolloutEvent, TransitionKind, TransitionRecord};
use crate::histogram::micros;

use super::{DeployMonitor, MAX_AUDIT_REASON, State, Streaks, truncate};

impl DeployMonitor {
    /// The latest evaluation of `phase` as evidence for a manual or
    /// emergency rollback (what was known when the person decided).
    pub(super) fn latest_evidence(&self, phase: u32) -> Option<Box<Evidence>> {
        let last = self.published().last.clone()?;
        (last.phase == phase).then(|| {
            Box::new(Evidence {
                outcome: last.judgement.outcome,
                checks: last.judgement.checks,
                thresholds: self.inner.plan.thresholds(phase as usize).clone(),
                report: last.report,
                consecutive: last.consecutive_failures,
            })
        })
    }

    /// Makes a transition: stores the intent, then completes it.
    pub(super) async fn transition(
        &self,
        state: &mut State,
        kind: TransitionKind,
        to: u32,
        who: &str,
        reason: &str,
        evidence: Option<Box<Evidence>>,
    ) -> Result<TransitionRecord> {
        let plan = &self.inner.plan;
        let record = TransitionRecord {
            id: state.record.next_transition,
            kind,
            from: state.record.phase,
            to,
            to_name: plan.phase_name(to as usize).to_owned(),
            flags: plan
                .values(to as usize)
                .into_iter()
                .map(|(flag, value)| (flag, value.to_string()))
                .collect(),
            who: who.to_owned(),
            reason: reason.to_owned(),
            at: self.inner.clock.wall(),
            evidence,
        };
        // An advance takes the p99 measured in the phase it leaves as the
        // next phase's latency baseline (when there were enough requests).
        let baseline = if kind.is_rollback() {
            state.record.baseline_p99_micros
        } else {
            let counts = self.inner.window.counts(self.inner.clock.elapsed_nanos());
            let merged = counts.merged_histogram();
            let requests: u64 = merged.iter().sum();
            let minimum = plan.thresholds(state.record.phase as usize).min_requests;
            crate::histogram::quantile(&merged, 0.99)
                .filter(|_| requests >= minimum)
                .map(micros)
                .or(state.record.baseline_p99_micros)
        };
        let mut intent = state.record.clone();
        intent.pending = Some(record);
        intent.pending_baseline_p99_micros = baseline;
        // From here on the transition may be stored: keep it pending in
        // memory too, so a failure or a drop is completed, not abandoned.
        state.record = intent.clone();
        // A conflict replaces the intent with the stored record (another
        // process moved the rollout); any other error keeps it pending.
        self.save(state, &intent).await?;
        self.finish_pending(state)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "a stored transition vanished"))
    }

    /// Completes a pending transition: applies its flags (again, if they
    /// were applied already: the write is idempotent), then stores the
    /// phase and the history entry together.
    pub(super) async fn finish_pending(
        &self,
        state: &mut State,
    ) -> Result<Option<TransitionRecord>> {
        let Some(transition) = state.record.pending.clone() else {
            return Ok(None);
        };
        let plan = &self.inner.plan;
        let audit_reason = format!(
            "rollout: phase {} ({}), by {}, because {} [transition {}, {}]",
            transition.to,
            transition.to_name,
            transition.who,
            transition.reason,
            transition.id,
            transition.kind.as_str(),
        );
        let values: Vec<(String, FlagValue)> = plan.values(transition.to as usize);
        self.inner
            .flags
            .apply(
                values,
                Attribution::new(
                    transition.who.clone(),
                    truncate(&audit_reason, MAX_AUDIT_REASON),
                ),
            )
            .await?;
        let mut next = state.record.clone();
        next.pending = None;
        next.phase = transition.to;
        next.entered_at = transition.at;
        next.next_transition = transition.id + 1;
        next.baseline_p99_micros = next.pending_baseline_p99_micros.take();
        if transition.kind.is_rollback() {
            next.last_rollback_at = Some(transition.at);
        }
        self.complete(state, &next, &transition).await?;
        state.record = next;
        let now = self.inner.clock.elapsed();
        state.entered_elapsed = now;
        state.streaks = Streaks::default();
        state.healthy_since = None;
        state.drift.clear();
        self.inner.window.reset(self.inner.clock.elapsed_nanos());
        {
            let mut published = self.published();
            published.phase = transition.to;
            if let Some(index) = rollback_index(transition.kind) {
                published.rollbacks[index] += 1;
            }
        }
        tracing::info!(
            kind = transition.kind.as_str(),
            from = transition.from,
            to = transition.to,
            who = %transition.who,
            reason = %transition.reason,
            "rollout transition"
        );
        self.emit(RolloutEvent::Transition(transition.clone()));
        Ok(Some(transition))
    }
}

/// The rollback kinds, in counter order.
pub(crate) const ROLLBACK_KINDS: [TransitionKind; 3] = [
    TransitionKind::AutomaticRollback,
    TransitionKind::ManualRollback,
    TransitionKind::EmergencyRollback,
];

fn rollback_index(kind: TransitionKind) -> Option<usize> {
    ROLLBACK_KINDS
        .iter()
        .position(|candidate| *candidate == kind)
}
