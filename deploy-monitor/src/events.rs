//! What the rollout records and tells subscribers: [`TransitionRecord`]
//! (every phase change, rollbacks included, with its evidence) and
//! [`RolloutEvent`].
//!
//! This module is not for storing records (`store.rs`) nor for deciding
//! transitions (`monitor.rs`).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::analysis::{CheckResult, Outcome, Thresholds};
use crate::health::HealthReport;

/// Why a phase changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransitionKind {
    /// An advance allowed by the rules (healthy for the minimum duration,
    /// no recent rollback).
    Advance,
    /// An advance after `count` consecutive passing checks, by the monitor.
    AutomaticAdvance,
    /// An advance that skipped the rules, with a reason.
    ForcedAdvance,
    /// A rollback after `failureLimit` consecutive failed checks.
    AutomaticRollback,
    /// A rollback asked for by a person, with a reason.
    ManualRollback,
    /// Every rollout flag off at once, skipping analysis.
    EmergencyRollback,
}

impl TransitionKind {
    /// Whether this is a rollback.
    pub const fn is_rollback(self) -> bool {
        matches!(
            self,
            TransitionKind::AutomaticRollback
                | TransitionKind::ManualRollback
                | TransitionKind::EmergencyRollback
        )
    }

    /// The label in metrics and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Advance => "advance",
            TransitionKind::AutomaticAdvance => "automatic_advance",
            TransitionKind::ForcedAdvance => "forced_advance",
            TransitionKind::AutomaticRollback => "automatic",
            TransitionKind::ManualRollback => "manual",
            TransitionKind::EmergencyRollback => "emergency",
        }
    }
}

/// The health behind an automatic transition: the metrics that triggered
/// it, the checks and the thresholds they were held against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The evaluation's outcome.
    pub outcome: Outcome,
    /// Every check of the evaluation that triggered the transition.
    pub checks: Vec<CheckResult>,
    /// The thresholds of the phase it was judged in.
    pub thresholds: Thresholds,
    /// The health metrics it was judged on.
    pub report: HealthReport,
    /// The consecutive failed (or passing) checks that led to it.
    pub consecutive: u32,
}

/// One phase change, as recorded and broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// Its number, 1 for the first transition of this rollout.
    pub id: u64,
    /// Why.
    pub kind: TransitionKind,
    /// The phase before (0 is the baseline, every rollout flag off).
    pub from: u32,
    /// The phase after.
    pub to: u32,
    /// The name of the phase after.
    pub to_name: String,
    /// The rollout flags' values after, as `on`, `off` or a percentage.
    pub flags: Vec<(String, String)>,
    /// Who or what made it.
    pub who: String,
    /// Why, in words.
    pub reason: String,
    /// When (wall clock).
    pub at: SystemTime,
    /// The health behind the transition: for automatic ones the evaluation
    /// that triggered it; for manual and emergency rollbacks the phase's
    /// latest evaluation, if there was one; `None` for advances by hand.
    pub evidence: Option<Box<Evidence>>,
}

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertReason {
    /// `inconclusiveLimit` consecutive inconclusive checks: the rollout
    /// paused.
    Inconclusive,
    /// `consecutiveErrorLimit` consecutive measurement errors: the rollout
    /// paused.
    MeasurementErrors,
    /// `failureLimit` was reached but no rollback was possible (in the
    /// baseline already, or in the cooldown after a rollback).
    RollbackBlocked,
    /// The monitor could not act (a store or flag write failed).
    ActionFailed,
    /// After a restart the flags did not match the recorded phase.
    FlagDrift,
}

/// What subscribers of [`DeployMonitor::subscribe`](crate::DeployMonitor::subscribe) receive.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RolloutEvent {
    /// A phase changed; rollbacks are transitions whose kind
    /// [`is_rollback`](TransitionKind::is_rollback).
    Transition(TransitionRecord),
    /// The rollout paused: no advance until resumed (rollbacks still act).
    Paused {
        /// Who or what paused it.
        who: String,
        /// Why.
        reason: String,
    },
    /// The rollout resumed.
    Resumed {
        /// Who resumed it.
        who: String,
        /// Why.
        reason: String,
    },
    /// Something needs a person.
    Alert {
        /// The kind of alert.
        reason: AlertReason,
        /// What happened, for people.
        message: String,
    },
    /// In dry run: what the monitor would have done.
    DryRun {
        /// The transition it would have made.
        kind: TransitionKind,
        /// The phase it would have moved to.
        to: u32,
        /// Why.
        message: String,
    },
}
