//! The builder of [`DeployMonitor`]: inputs, defaults, and `open`, which
//! completes a transition a killed process left pending.
//!
//! This module is not for the rules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_core::signal::SignalRouter;
use foundation_core::{EventBus, SupervisorEvent};
use foundation_error::clock::{self, SharedClock};
use foundation_error::{Error, ErrorCode, ErrorTracker, Result};
use foundation_flags::Flags;
use foundation_persist::Store;
use tokio::sync::broadcast;

use crate::cohort::Cohort;
use crate::plan::RolloutPlan;
use crate::sources::{DeliverySource, ErrorSource, RestartClassifier, RestartSource, Sources};
use crate::store::{RolloutRecord, RolloutStore};
use crate::window::SlidingWindow;

use super::{
    DEFAULT_EVENT_CAPACITY, DEFAULT_OPERATION_TIMEOUT, DEFAULT_WHO, DEFAULT_WINDOW_SLOTS,
    DeployMonitor, Inner, Published, State, Streaks,
};

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
        let (record, version) = match store.load().await? {
            Some(loaded) => loaded,
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
                match store.save(&record, None).await {
                    Ok(version) => (record, version),
                    // Another process sharing the store created it first.
                    Err(error) if error.code() == ErrorCode::VERSION_CONFLICT => {
                        store.load().await?.ok_or(error)?
                    }
                    Err(error) => return Err(error),
                }
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
                    version: Some(version),
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
