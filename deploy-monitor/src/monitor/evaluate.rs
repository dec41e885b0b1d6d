//! Evaluations: count each outcome and decide the automatic action
//! (rollback, pause, advance), or report it in dry run.
//!
//! This module is not for making transitions (`transition.rs`).

use std::time::Duration;

use foundation_error::Result;

use crate::analysis::{Judgement, Outcome, judge};
use crate::events::{AlertReason, Evidence, RolloutEvent, TransitionKind};
use crate::health::{self, HealthReport, ReportInputs};

use super::{Action, DeployMonitor, Evaluation, State, outcome_index, since};

impl DeployMonitor {
    /// Judges the health now and acts on it: counts the outcome, rolls back
    /// after `failureLimit` consecutive failures, pauses with an alert after
    /// `inconclusiveLimit` inconclusive checks (or `consecutiveErrorLimit`
    /// measurement errors), advances after `count` passes when automatic
    /// advance is on. In dry run it only reports what it would do.
    ///
    /// # Errors
    ///
    /// `timeout` when the monitor is busy; the store's and the flags' errors
    /// when an action could not be completed (also raised as an alert).
    ///
    /// # Cancel safety
    ///
    /// Dropping it during a transition leaves the transition pending: the
    /// next operation (or the next open) completes it, so the flags and the
    /// recorded phase still end up agreeing.
    pub async fn evaluate_now(&self) -> Result<Evaluation> {
        let drained = self.drain();
        let mut state = self.lock().await?;
        self.finish_pending(&mut state).await?;
        let now = self.inner.clock.elapsed();
        let counts = self.inner.window.counts(self.inner.clock.elapsed_nanos());
        let report = health::report(
            &counts,
            ReportInputs {
                at: now,
                restart_source: self.inner.restart_source,
                error_tracker: self.inner.error_tracker,
                lost_restart_events: drained.lost_restart_events,
            },
        );
        let phase = state.record.phase;
        let thresholds = self.inner.plan.thresholds(phase as usize);
        let baseline = state.record.baseline_p99_micros.map(Duration::from_micros);
        let judgement = judge(&report, thresholds, baseline);
        state.last_evaluation = Some(now);
        let analysis = self.inner.plan.analysis();
        let counted = now.saturating_sub(state.entered_elapsed) >= analysis.initial_delay;
        let mut action = Action::None;
        if counted {
            self.count(&mut state, &judgement, now);
            action = self.decide(&mut state, &report, &judgement).await?;
        }
        let evaluation = Evaluation {
            phase,
            report,
            judgement,
            counted,
            consecutive_failures: state.streaks.failures,
            consecutive_inconclusive: state.streaks.inconclusive,
            consecutive_passes: state.streaks.passes,
            action,
        };
        {
            let mut published = self.published();
            published.evaluations[outcome_index(evaluation.judgement.outcome)] += 1;
            published.last = Some(evaluation.clone());
        }
        Ok(evaluation)
    }

    pub(super) fn count(&self, state: &mut State, judgement: &Judgement, now: Duration) {
        let streaks = &mut state.streaks;
        match judgement.outcome {
            Outcome::Pass => {
                streaks.passes += 1;
                streaks.failures = 0;
                streaks.inconclusive = 0;
                state.healthy_since.get_or_insert(now);
            }
            Outcome::Fail => {
                streaks.failures += 1;
                streaks.passes = 0;
                streaks.inconclusive = 0;
                state.healthy_since = None;
            }
            Outcome::Inconclusive => {
                streaks.inconclusive += 1;
                streaks.passes = 0;
                streaks.failures = 0;
                state.healthy_since = None;
            }
        }
        if judgement.measurement_error {
            streaks.errors += 1;
        } else {
            streaks.errors = 0;
        }
    }

    pub(super) async fn decide(
        &self,
        state: &mut State,
        report: &HealthReport,
        judgement: &Judgement,
    ) -> Result<Action> {
        let analysis = self.inner.plan.analysis();
        let wall = self.inner.clock.wall();
        let phase = state.record.phase;
        let cooldown_left = state
            .record
            .last_rollback_at
            .map(|at| analysis.cooldown.saturating_sub(since(wall, at)))
            .filter(|left| !left.is_zero());
        let evidence = |consecutive: u32| Evidence {
            outcome: judgement.outcome,
            checks: judgement.checks.clone(),
            thresholds: self.inner.plan.thresholds(phase as usize).clone(),
            report: report.clone(),
            consecutive,
        };
        if judgement.outcome == Outcome::Fail && state.streaks.failures >= analysis.failure_limit {
            let failures = state.streaks.failures;
            state.streaks.failures = 0;
            let reason = format!(
                "{failures} consecutive failed checks: {}",
                judgement.failures()
            );
            if phase == 0 {
                let message =
                    format!("rollback needed but the rollout is at the baseline already: {reason}");
                self.alert(AlertReason::RollbackBlocked, message.clone());
                return Ok(Action::Blocked(message));
            }
            if let Some(left) = cooldown_left {
                let message = format!(
                    "rollback needed but the cooldown after the last rollback has {} left: {reason}",
                    humantime::format_duration(left)
                );
                self.alert(AlertReason::RollbackBlocked, message.clone());
                return Ok(Action::Blocked(message));
            }
            if analysis.dry_run {
                self.emit(RolloutEvent::DryRun {
                    kind: TransitionKind::AutomaticRollback,
                    to: phase - 1,
                    message: reason,
                });
                return Ok(Action::WouldTransition(TransitionKind::AutomaticRollback));
            }
            let who = self.inner.who.clone();
            let record = self.acting(
                self.transition(
                    state,
                    TransitionKind::AutomaticRollback,
                    phase - 1,
                    &who,
                    &reason,
                    Some(Box::new(evidence(failures))),
                )
                .await,
            )?;
            return Ok(Action::RolledBack(record));
        }
        if state.streaks.errors >= analysis.consecutive_error_limit {
            let count = state.streaks.errors;
            state.streaks.errors = 0;
            let message = format!("{count} consecutive evaluations lost restart events");
            return self
                .pause_for(state, AlertReason::MeasurementErrors, message)
                .await;
        }
        if judgement.outcome == Outcome::Inconclusive
            && state.streaks.inconclusive >= analysis.inconclusive_limit
        {
            let count = state.streaks.inconclusive;
            state.streaks.inconclusive = 0;
            let message = format!(
                "{count} consecutive inconclusive checks in phase {phase}: {}",
                inconclusive_details(judgement)
            );
            return self
                .pause_for(state, AlertReason::Inconclusive, message)
                .await;
        }
        if judgement.outcome == Outcome::Pass
            && analysis.auto_advance
            && state.streaks.passes >= analysis.count
            && cooldown_left.is_none()
            && self.advance_refusal(state).is_none()
        {
            let passes = state.streaks.passes;
            let reason = format!("{passes} consecutive passing checks");
            if analysis.dry_run {
                self.emit(RolloutEvent::DryRun {
                    kind: TransitionKind::AutomaticAdvance,
                    to: phase + 1,
                    message: reason,
                });
                return Ok(Action::WouldTransition(TransitionKind::AutomaticAdvance));
            }
            let who = self.inner.who.clone();
            let record = self.acting(
                self.transition(
                    state,
                    TransitionKind::AutomaticAdvance,
                    phase + 1,
                    &who,
                    &reason,
                    Some(Box::new(evidence(passes))),
                )
                .await,
            )?;
            return Ok(Action::Advanced(record));
        }
        Ok(Action::None)
    }

    /// Raises an alert when an automatic action failed, and passes the
    /// result on.
    pub(super) fn acting<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.alert(
                AlertReason::ActionFailed,
                format!("the deploy monitor could not complete an action: {error}"),
            );
        }
        result
    }

    pub(super) async fn pause_for(
        &self,
        state: &mut State,
        reason: AlertReason,
        message: String,
    ) -> Result<Action> {
        if self.inner.plan.analysis().dry_run {
            self.alert(reason, format!("dry run, not pausing: {message}"));
            return Ok(Action::Blocked(message));
        }
        if state.record.paused.is_none() {
            let who = self.inner.who.clone();
            self.acting(self.set_paused(state, Some(message.clone()), &who).await)?;
        }
        self.alert(reason, message);
        Ok(Action::Paused(reason))
    }
}

fn inconclusive_details(judgement: &Judgement) -> String {
    let details: Vec<&str> = judgement
        .checks
        .iter()
        .filter(|check| check.required && check.outcome == Outcome::Inconclusive)
        .map(|check| check.detail.as_str())
        .collect();
    details.join("; ")
}
