//! [`DeployMonitor`]: the rollout controller. It judges the health in the
//! window every interval, counts consecutive outcomes, and acts: an
//! automatic rollback after `failureLimit` failures, a pause and an alert
//! after `inconclusiveLimit` inconclusive checks, an optional automatic
//! advance after `count` passes; and it serves the manual operations
//! (advance, forced advance, rollback, emergency rollback, pause, resume).
//!
//! Every transition goes through one path (`transition` and
//! `finish_pending`): intent stored, flags applied in one attributed bulk
//! change, phase and history stored together (see `../store.rs`). Operations
//! are serialised by one async lock, taken with a timeout.
//!
//! - `mod.rs`: the types, the shared state, reads (`status`, `history`)
//!   and `tick`;
//! - `builder.rs`: [`DeployMonitorBuilder`] and `open`;
//! - `evaluate.rs`: `evaluate_now` and the automatic actions;
//! - `operations.rs`: the manual operations and the advance rules;
//! - `transition.rs`: the transition path and its completion;
//! - `sync.rs`: following a rollout changed by another process sharing the
//!   store.
//!
//! This module spawns nothing: the evaluation loop is [`MonitorActor`]
//! (`actor.rs`) or the caller's own calls to [`DeployMonitor::tick`] or
//! [`DeployMonitor::evaluate_now`].
//!
//! [`MonitorActor`]: crate::MonitorActor

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode, Result};
use foundation_flags::Flags;
use tokio::sync::broadcast;

use crate::analysis::{Judgement, Outcome};
use crate::events::{AlertReason, RolloutEvent, TransitionKind, TransitionRecord};
use crate::health::HealthReport;
use crate::plan::RolloutPlan;
use crate::recorder::Recorder;
use crate::sources::Sources;
use crate::store::{RolloutRecord, RolloutStore};
use crate::window::SlidingWindow;

mod builder;
mod evaluate;
mod operations;
mod sync;
mod transition;

pub use builder::DeployMonitorBuilder;
pub(crate) use transition::ROLLBACK_KINDS;

/// The default number of slots a window is cut into.
pub const DEFAULT_WINDOW_SLOTS: u32 = 12;
/// The default bound on every wait for the monitor's lock.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of events a subscriber may fall behind.
pub const DEFAULT_EVENT_CAPACITY: usize = 256;
/// The default `who` of the monitor's own transitions.
pub const DEFAULT_WHO: &str = "deploy-monitor";
/// The longest reason kept in a flag audit entry, in bytes.
const MAX_AUDIT_REASON: usize = 1000;

/// What an evaluation did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Nothing.
    None,
    /// Rolled back one phase.
    RolledBack(TransitionRecord),
    /// Advanced one phase.
    Advanced(TransitionRecord),
    /// Paused the rollout and raised an alert.
    Paused(AlertReason),
    /// Dry run: would have made this transition.
    WouldTransition(TransitionKind),
    /// A limit was reached but no action was possible; an alert was raised.
    Blocked(String),
}

/// One evaluation: the health, its judgement, and what the monitor did.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The phase judged.
    pub phase: u32,
    /// The health metrics.
    pub report: HealthReport,
    /// The checks and the combined outcome.
    pub judgement: Judgement,
    /// False inside the `initialDelay` after a phase change: the outcome
    /// was not counted.
    pub counted: bool,
    /// Consecutive failed evaluations, this one included.
    pub consecutive_failures: u32,
    /// Consecutive inconclusive evaluations, this one included.
    pub consecutive_inconclusive: u32,
    /// Consecutive passing evaluations, this one included.
    pub consecutive_passes: u32,
    /// What the monitor did.
    pub action: Action,
}

/// Where the rollout stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutStatus {
    /// The current phase (0 is the baseline: every rollout flag off).
    pub phase: u32,
    /// Its name.
    pub phase_name: String,
    /// The number of phases in the plan.
    pub phases: u32,
    /// Why the rollout is paused, if it is.
    pub paused: Option<String>,
    /// When the current phase was entered (wall clock).
    pub entered_at: SystemTime,
    /// When the last rollback happened (wall clock).
    pub last_rollback_at: Option<SystemTime>,
    /// The p99 latency baseline of this phase.
    pub baseline_p99: Option<Duration>,
    /// How long the phase has been passing its checks without a break.
    pub healthy_for: Option<Duration>,
    /// Consecutive failed evaluations.
    pub consecutive_failures: u32,
    /// Consecutive inconclusive evaluations.
    pub consecutive_inconclusive: u32,
    /// Consecutive passing evaluations.
    pub consecutive_passes: u32,
    /// Rollout flags whose value did not match the phase at open
    /// (`"flag: expected on, found off"`); empty when they agreed.
    pub flag_drift: Vec<String>,
    /// Whether the monitor only judges and reports.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Streaks {
    failures: u32,
    inconclusive: u32,
    errors: u32,
    passes: u32,
}

struct State {
    record: RolloutRecord,
    /// The stored version of `record` as this process last read or wrote
    /// it: every write of the record is a compare-and-set on it.
    version: Option<foundation_persist::Version>,
    entered_elapsed: Duration,
    streaks: Streaks,
    healthy_since: Option<Duration>,
    last_evaluation: Option<Duration>,
    drift: Vec<String>,
}

/// Figures readable without the async lock (for metrics).
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    pub(crate) phase: u32,
    pub(crate) paused: bool,
    pub(crate) last: Option<Evaluation>,
    pub(crate) rollbacks: [u64; 3],
    pub(crate) evaluations: [u64; 3],
}

struct Inner {
    plan: RolloutPlan,
    flags: Flags,
    store: RolloutStore,
    clock: SharedClock,
    who: String,
    window: Arc<SlidingWindow>,
    sources: Mutex<Sources>,
    restart_source: bool,
    error_tracker: bool,
    state: tokio::sync::Mutex<State>,
    events: broadcast::Sender<RolloutEvent>,
    published: Mutex<Published>,
    timeout: Duration,
}

/// The deployment monitor. Cheap to clone; clones share everything.
///
/// See the crate documentation for an example.
#[derive(Clone)]
pub struct DeployMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DeployMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployMonitor")
            .field("who", &self.inner.who)
            .field("phases", &self.inner.plan.phases().len())
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::INVALID_INPUT, message.into())
}

fn check_attribution(who: &str, reason: &str, what: &str) -> Result<()> {
    if who.trim().is_empty() {
        return Err(invalid(format!("{what} needs a `who`")));
    }
    if reason.trim().is_empty() {
        return Err(invalid(format!("{what} needs a reason")));
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn since(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

impl DeployMonitor {
    /// A builder.
    pub fn builder() -> DeployMonitorBuilder {
        DeployMonitorBuilder::default()
    }

    /// The handle to record requests, restores and deliveries through.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(Arc::clone(&self.inner.window))
    }

    /// The plan.
    pub fn plan(&self) -> &RolloutPlan {
        &self.inner.plan
    }

    /// The width of one window slot: how often [`tick`](Self::tick) should
    /// run ([`MonitorActor`](crate::MonitorActor) does).
    pub fn slot_width(&self) -> Duration {
        self.inner.window.slot_width()
    }

    /// Subscribes to transitions (rollbacks included), pauses, alerts and
    /// dry-run reports from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RolloutEvent> {
        self.inner.events.subscribe()
    }

    /// The latest evaluation, without waiting.
    pub fn last_evaluation(&self) -> Option<Evaluation> {
        self.published().last.clone()
    }

    pub(crate) fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.inner
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn lock(&self) -> Result<tokio::sync::MutexGuard<'_, State>> {
        tokio::time::timeout(self.inner.timeout, self.inner.state.lock())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    format!(
                        "the deploy monitor was busy for {:?} (another operation holds it)",
                        self.inner.timeout
                    ),
                )
            })
    }

    fn emit(&self, event: RolloutEvent) {
        // No subscriber is fine: the record is stored either way.
        let _unseen = self.inner.events.send(event);
    }

    fn alert(&self, reason: AlertReason, message: String) {
        tracing::warn!(?reason, %message, "deploy monitor alert");
        self.emit(RolloutEvent::Alert { reason, message });
    }

    /// Rollout flags whose current value differs from `phase`'s.
    fn drift(&self, phase: u32) -> Vec<String> {
        let snapshot = self.inner.flags.snapshot();
        self.inner
            .plan
            .values(phase as usize)
            .into_iter()
            .filter_map(|(flag, expected)| {
                let found = snapshot.value(&flag);
                (found != Some(expected)).then(|| {
                    let found =
                        found.map_or_else(|| "nothing".to_owned(), |value| value.to_string());
                    format!("{flag}: expected {expected}, found {found}")
                })
            })
            .collect()
    }

    /// Where the rollout stands.
    ///
    /// # Errors
    ///
    /// `timeout` when another operation holds the monitor too long.
    ///
    /// # Cancel safety
    ///
    /// Only reads; dropping it changes nothing.
    pub async fn status(&self) -> Result<RolloutStatus> {
        let state = self.lock().await?;
        let now = self.inner.clock.elapsed();
        let phase = state.record.phase;
        Ok(RolloutStatus {
            phase,
            phase_name: self.inner.plan.phase_name(phase as usize).to_owned(),
            phases: self.inner.plan.phases().len() as u32,
            paused: state.record.paused.clone(),
            entered_at: state.record.entered_at,
            last_rollback_at: state.record.last_rollback_at,
            baseline_p99: state.record.baseline_p99_micros.map(Duration::from_micros),
            healthy_for: state.healthy_since.map(|since| now.saturating_sub(since)),
            consecutive_failures: state.streaks.failures,
            consecutive_inconclusive: state.streaks.inconclusive,
            consecutive_passes: state.streaks.passes,
            flag_drift: state.drift.clone(),
            dry_run: self.inner.plan.analysis().dry_run,
        })
    }

    /// The last `limit` transitions (rollbacks included), oldest first.
    ///
    /// # Errors
    ///
    /// The store's errors.
    ///
    /// # Cancel safety
    ///
    /// Only reads; dropping it changes nothing.
    pub async fn history(&self, limit: usize) -> Result<Vec<TransitionRecord>> {
        self.inner.store.history(limit).await
    }

    /// Moves the window to the current time, reads the attached sources,
    /// and evaluates when an `interval` has passed since the last
    /// evaluation. Call it every [`slot_width`](Self::slot_width).
    ///
    /// # Errors
    ///
    /// As [`evaluate_now`](Self::evaluate_now).
    ///
    /// # Cancel safety
    ///
    /// As [`evaluate_now`](Self::evaluate_now).
    pub async fn tick(&self) -> Result<Option<Evaluation>> {
        self.drain();
        let due = {
            let state = self.lock().await?;
            let now = self.inner.clock.elapsed();
            state
                .last_evaluation
                .is_none_or(|last| now.saturating_sub(last) >= self.inner.plan.analysis().interval)
        };
        if due {
            self.evaluate_now().await.map(Some)
        } else {
            Ok(None)
        }
    }

    fn drain(&self) -> crate::sources::DrainReport {
        let now = self.inner.clock.elapsed_nanos();
        self.inner.window.rotate(now);
        let mut sources = self
            .inner
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sources.drain(&self.inner.window)
    }
}

pub(crate) fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Pass => 0,
        Outcome::Fail => 1,
        Outcome::Inconclusive => 2,
    }
}
