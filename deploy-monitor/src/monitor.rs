//! [`DeployMonitor`]: the rollout controller. It judges the health in the
//! window every interval, counts consecutive outcomes, and acts: an
//! automatic rollback after `failureLimit` failures, a pause and an alert
//! after `inconclusiveLimit` inconclusive checks, an optional automatic
//! advance after `count` passes; and it serves the manual operations
//! (advance, forced advance, rollback, emergency rollback, pause, resume).
//!
//! Every transition goes through one path (`transition` and
//! `finish_pending`): intent stored, flags applied in one attributed bulk
//! change, phase and history stored together (see `store.rs`). Operations
//! are serialised by one async lock, taken with a timeout.
//!
//! This module spawns nothing: the evaluation loop is [`MonitorActor`]
//! (`actor.rs`) or the caller's own calls to [`DeployMonitor::tick`] or
//! [`DeployMonitor::evaluate_now`].
//!
//! [`MonitorActor`]: crate::MonitorActor

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use foundation_core::signal::SignalRouter;
use foundation_core::{EventBus, SupervisorEvent};
use foundation_error::clock::{self, SharedClock};
use foundation_error::{Error, ErrorCode, ErrorTracker, Result};
use foundation_flags::{Attribution, FlagValue, Flags};
use foundation_persist::Store;
use tokio::sync::broadcast;

use crate::analysis::{Judgement, Outcome, judge};
use crate::cohort::Cohort;
use crate::events::{AlertReason, Evidence, RolloutEvent, TransitionKind, TransitionRecord};
use crate::health::{self, HealthReport, ReportInputs};
use crate::histogram::micros;
use crate::plan::RolloutPlan;
use crate::recorder::Recorder;
use crate::sources::{DeliverySource, ErrorSource, RestartClassifier, RestartSource, Sources};
use crate::store::{RolloutRecord, RolloutStore};
use crate::window::SlidingWindow;

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

/// Builds a [`DeployMonitor`].
#[derive(Default)]
pub struct DeployMonitorBuilder {
    plan: Option<RolloutPlan>,
    flags: Option<Flags>,
    store: Option<Store>,
    clock: Option<SharedClock>,
    who: Option<String>,
    supervisor_events: Option<EventBus>,
    restart_classifier: Option<RestartClassifier>,
    router: Option<SignalRouter>,
    tracker: Option<ErrorTracker>,
    window_slots: Option<u32>,
    timeout: Option<Duration>,
    event_capacity: Option<usize>,
}

impl std::fmt::Debug for DeployMonitorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployMonitorBuilder")
            .finish_non_exhaustive()
    }
}

impl DeployMonitorBuilder {
    /// The rollout plan (required; [`RolloutPlan::default_plan`] is stage
    /// 05's).
    pub fn plan(&mut self, plan: RolloutPlan) -> &mut Self {
        self.plan = Some(plan);
        self
    }

    /// The flags the plan's phases set (required; every rollout flag must
    /// be declared there).
    pub fn flags(&mut self, flags: Flags) -> &mut Self {
        self.flags = Some(flags);
        self
    }

    /// The store the phase and the history live in (required). It may be
    /// the flags' store file or another one.
    pub fn store(&mut self, store: Store) -> &mut Self {
        self.store = Some(store);
        self
    }

    /// The clock (default: the system clock, following paused tokio time).
    pub fn clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// Who the monitor's own transitions are attributed to (default
    /// `deploy-monitor`).
    pub fn who(&mut self, who: impl Into<String>) -> &mut Self {
        self.who = Some(who.into());
        self
    }

    /// Counts restarts from this supervisor event bus.
    pub fn supervisor_events(&mut self, bus: &EventBus) -> &mut Self {
        self.supervisor_events = Some(bus.clone());
        self
    }

    /// Assigns restarts to cohorts (default: unassigned).
    pub fn restart_classifier(
        &mut self,
        classify: impl Fn(&SupervisorEvent) -> Cohort + Send + Sync + 'static,
    ) -> &mut Self {
        self.restart_classifier = Some(Arc::new(classify));
        self
    }

    /// Counts deliveries from this signal router's counters.
    pub fn signal_router(&mut self, router: SignalRouter) -> &mut Self {
        self.router = Some(router);
        self
    }

    /// Counts overall errors from this tracker (instead of failed requests).
    pub fn error_tracker(&mut self, tracker: ErrorTracker) -> &mut Self {
        self.tracker = Some(tracker);
        self
    }

    /// Cuts the window into this many slots (default 12, at least 1).
    pub fn window_slots(&mut self, slots: u32) -> &mut Self {
        self.window_slots = Some(slots);
        self
    }

    /// Bounds every wait for the monitor's lock (default 30 s).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Events a subscriber may fall behind before losing the oldest
    /// (default 256).
    pub fn event_capacity(&mut self, capacity: usize) -> &mut Self {
        self.event_capacity = Some(capacity);
        self
    }

    /// Opens the monitor: loads the stored phase, completes a transition a
    /// killed process left half done (re-applying its flags, then recording
    /// the phase), and notes flags that disagree with the phase.
    ///
    /// # Errors
    ///
    /// `missing_required_field` without a plan, flags or store;
    /// `flag_not_found` naming a rollout flag the flags do not declare;
    /// `invalid_config_value` when the stored phase is beyond the plan;
    /// the store's and the flags' errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave a stored transition pending; the next
    /// open completes it.
    pub async fn open(&self) -> Result<DeployMonitor> {
        let missing = |what: &str| {
            Error::new(
                ErrorCode::MISSING_REQUIRED_FIELD,
                format!("a deploy monitor needs {what}"),
            )
        };
        let plan = self.plan.clone().ok_or_else(|| missing("a rollout plan"))?;
        let flags = self.flags.clone().ok_or_else(|| missing("flags"))?;
        let store = self.store.clone().ok_or_else(|| missing("a store"))?;
        for flag in plan.flags() {
            if flags.declaration(flag).is_none() {
                return Err(Error::new(
                    ErrorCode::FLAG_NOT_FOUND,
                    format!("the rollout plan sets `{flag}`, which the flags do not declare"),
                )
                .with_context("flag", flag));
            }
        }
        let clock = self.clock.clone().unwrap_or_else(clock::system);
        let store = RolloutStore::new(store)?;
        let now = clock.elapsed();
        let record = match store.load().await? {
            Some(record) => record,
            None => {
                let record = RolloutRecord {
                    phase: 0,
                    entered_at: clock.wall(),
                    last_rollback_at: None,
                    baseline_p99_micros: None,
                    pending_baseline_p99_micros: None,
                    paused: None,
                    next_transition: 1,
                    pending: None,
                };
                store.save(&record).await?;
                record
            }
        };
        let phases = plan.phases().len();
        for phase in
            std::iter::once(record.phase).chain(record.pending.as_ref().map(|pending| pending.to))
        {
            if phase as usize > phases {
                return Err(Error::new(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    format!("the store records phase {phase}, but the plan has {phases} phases"),
                )
                .with_context("phase", phase));
            }
        }
        let mut sources = Sources::default();
        if let Some(bus) = &self.supervisor_events {
            sources.restarts = Some(RestartSource::new(bus, self.restart_classifier.clone()));
        }
        if let Some(router) = &self.router {
            sources.delivery = Some(DeliverySource::new(router.clone()));
        }
        if let Some(tracker) = &self.tracker {
            sources.errors = Some(ErrorSource::new(tracker.clone()));
        }
        let window = Arc::new(SlidingWindow::new(
            plan.analysis().window,
            self.window_slots.unwrap_or(DEFAULT_WINDOW_SLOTS),
            clock.elapsed_nanos(),
        ));
        let (events, _) =
            broadcast::channel(self.event_capacity.unwrap_or(DEFAULT_EVENT_CAPACITY).max(1));
        let published = Published {
            phase: record.phase,
            paused: record.paused.is_some(),
            ..Published::default()
        };
        let monitor = DeployMonitor {
            inner: Arc::new(Inner {
                plan,
                flags,
                store,
                clock,
                who: self.who.clone().unwrap_or_else(|| DEFAULT_WHO.to_owned()),
                window,
                sources: Mutex::new(sources),
                restart_source: self.supervisor_events.is_some(),
                error_tracker: self.tracker.is_some(),
                state: tokio::sync::Mutex::new(State {
                    record,
                    entered_elapsed: now,
                    streaks: Streaks::default(),
                    healthy_since: None,
                    last_evaluation: Some(now),
                    drift: Vec::new(),
                }),
                events,
                published: Mutex::new(published),
                timeout: self.timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT),
            }),
        };
        {
            let mut state = monitor.lock().await?;
            monitor.finish_pending(&mut state).await?;
            state.drift = monitor.drift(state.record.phase);
        }
        Ok(monitor)
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

    fn count(&self, state: &mut State, judgement: &Judgement, now: Duration) {
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

    async fn decide(
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
    fn acting<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.alert(
                AlertReason::ActionFailed,
                format!("the deploy monitor could not complete an action: {error}"),
            );
        }
        result
    }

    async fn pause_for(
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

    async fn set_paused(&self, state: &mut State, paused: Option<String>, who: &str) -> Result<()> {
        let mut record = state.record.clone();
        record.paused = paused.clone();
        self.inner.store.save(&record).await?;
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
    fn advance_refusal(&self, state: &State) -> Option<String> {
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

    /// The latest evaluation of `phase` as evidence for a manual or
    /// emergency rollback (what was known when the person decided).
    fn latest_evidence(&self, phase: u32) -> Option<Box<Evidence>> {
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
    async fn transition(
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
        state.record = intent;
        self.inner.store.save(&state.record).await?;
        self.finish_pending(state)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "a stored transition vanished"))
    }

    /// Completes a pending transition: applies its flags (again, if they
    /// were applied already: the write is idempotent), then stores the
    /// phase and the history entry together.
    async fn finish_pending(&self, state: &mut State) -> Result<Option<TransitionRecord>> {
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
        self.inner.store.complete(&next, &transition).await?;
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

fn inconclusive_details(judgement: &Judgement) -> String {
    let details: Vec<&str> = judgement
        .checks
        .iter()
        .filter(|check| check.required && check.outcome == Outcome::Inconclusive)
        .map(|check| check.detail.as_str())
        .collect();
    details.join("; ")
}

pub(crate) fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Pass => 0,
        Outcome::Fail => 1,
        Outcome::Inconclusive => 2,
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
