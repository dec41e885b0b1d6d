//! Deployment monitoring for Foundation: health metrics computed from real
//! events, a phased rollout over feature flags, automatic and manual
//! rollback, and Prometheus export.
//!
//! # Health
//!
//! The plan's five metrics, each over a sliding window with its sample
//! count, per cohort (unassigned, control, treatment) and overall
//! ([`HealthReport`]):
//!
//! - **error rate**: failed requests (or, with an [`ErrorTracker`] attached,
//!   the errors it tracked) against requests;
//! - **restart frequency**: `ChildRestarted` events from a supervisor
//!   [`EventBus`], per minute;
//! - **message delivery success**: the signal router's delivered against
//!   routed counters (and deliveries given to the [`Recorder`]);
//! - **state recovery success**: restores that succeeded against restores
//!   attempted, reported through [`Recorder::record_restore`];
//! - **response time**: a log-linear histogram of request latencies, as
//!   p50, p95, p99 and the mean.
//!
//! Recording a request ([`Recorder::record_request`]) is one or two atomic
//! additions: no lock, no allocation, no clock read. A request carries the
//! [`Cohort`] of the percentage flag that routed it ([`Cohort::of`], from
//! the flag's own bucketing), so a canary is judged against its control.
//!
//! # Analysis and actions
//!
//! Every `interval` each check ([`Check`]) is judged [`Outcome::Pass`],
//! [`Outcome::Fail`] or [`Outcome::Inconclusive`] (too few samples, no
//! data, lost events: never a pass, never a fail) against the phase's
//! [`Thresholds`] (the plan's defaults: error rate above 5%, restarts above
//! 10 per minute, delivery below 95%, recovery below 99%, p99 above twice
//! the phase's baseline, treatment error rate above control's by more than
//! 2 points). Then, in Argo Rollouts' vocabulary ([`AnalysisSettings`]):
//! `failureLimit` consecutive failures roll back one phase (once; the
//! `cooldown` stops flapping), `inconclusiveLimit` consecutive inconclusive
//! checks pause the rollout and raise an alert, `dryRun` only reports, and
//! with `autoAdvance` `count` consecutive passes advance it. Advancing by
//! hand ([`DeployMonitor::advance`]) needs the phase healthy for its minimum
//! duration and no rollback in the last hour, unless forced with a reason.
//! Manual and emergency rollbacks (every rollout flag off at once) skip the
//! analysis. Every transition is recorded ([`TransitionRecord`], with the
//! triggering metrics, checks and thresholds, who and why) and sent to
//! [`DeployMonitor::subscribe`]rs.
//!
//! # Rollout plan and persistence
//!
//! A [`RolloutPlan`] comes from TOML ([`DEFAULT_PLAN_TOML`] is stage 05's
//! five phases over its six flags). Applying a phase is one atomic,
//! attributed bulk change of foundation-flags ("rollout: phase 3 (...), by
//! ..., because ..."). The current phase and the history are stored with
//! foundation-persist; a transition stores its intent first, so a process
//! killed between writing the flags and recording the phase is completed at
//! the next open: the flags and the phase always agree after a restart.
//!
//! # Running it
//!
//! This crate spawns nothing. Run [`MonitorActor`] under a supervisor (it
//! ticks on its own timer), or call [`DeployMonitor::tick`] /
//! [`DeployMonitor::evaluate_now`] yourself. Time is read only through the
//! injected clock, so a paused or manual clock drives tests.
//! [`PrometheusExport`] renders the metrics ([`metrics`] names them);
//! serving them over HTTP is the integration crate's job.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use deploy_monitor::{Action, Cohort, DeployMonitor, RequestOutcome, RolloutPlan};
//! use foundation_error::clock::ManualClock;
//! use foundation_flags::{Flag, FlagValue, Flags};
//! use foundation_persist::{Store, StoreOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> foundation_error::Result<()> {
//! let plan = RolloutPlan::from_toml(r#"
//!     [analysis]
//!     interval = "1m"
//!     window = "1m"
//!     failureLimit = 2
//!     [[phase]]
//!     name = "canary"
//!     minDuration = "1h"
//!     flags = { new_checkout = 10 }
//! "#)?;
//! let mut flags = Flags::builder();
//! flags.declare(Flag::new("new_checkout", "The new checkout", FlagValue::Off));
//! let flags = flags.open().await?;
//! let clock = ManualClock::new();
//! let monitor = DeployMonitor::builder()
//!     .plan(plan)
//!     .flags(flags.clone())
//!     .store(Store::open_in_memory(&StoreOptions::new())?)
//!     .clock(Arc::new(clock.clone()))
//!     .open()
//!     .await?;
//!
//! monitor.force_advance("alice", "start the canary").await?;
//! assert_eq!(flags.value("new_checkout")?, FlagValue::percentage(10)?);
//!
//! // Two evaluations, half a minute apart, in which a fifth of the requests fail.
//! let recorder = monitor.recorder();
//! let mut last = None;
//! for _ in 0..2 {
//!     for request in 0..200 {
//!         let outcome = if request % 5 == 0 { RequestOutcome::Error } else { RequestOutcome::Success };
//!         recorder.record_request(Cohort::Unassigned, Duration::from_millis(20), outcome);
//!     }
//!     clock.advance(Duration::from_secs(30));
//!     last = Some(monitor.evaluate_now().await?);
//! }
//! assert!(matches!(last.map(|evaluation| evaluation.action), Some(Action::RolledBack(_))));
//! assert_eq!(flags.value("new_checkout")?, FlagValue::Off);
//! assert_eq!(monitor.history(10).await?.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! This crate sits at layer 2: it depends on foundation-error,
//! foundation-core, foundation-flags and foundation-persist, never on
//! agents or workflows (which feed it through the [`Recorder`]).
//!
//! [`ErrorTracker`]: foundation_error::ErrorTracker
//! [`EventBus`]: foundation_core::EventBus

mod actor;
mod analysis;
mod cohort;
mod events;
mod health;
mod histogram;
pub mod metrics;
mod monitor;
mod plan;
mod prometheus;
mod recorder;
mod sources;
mod store;
mod window;

pub use actor::{MonitorActor, MonitorActorArgs, MonitorRequest, Tick};
pub use analysis::{Check, CheckResult, Judgement, Outcome, Thresholds};
pub use cohort::Cohort;
pub use events::{AlertReason, Evidence, RolloutEvent, TransitionKind, TransitionRecord};
pub use health::{CohortHealth, HealthReport, LatencySummary};
pub use monitor::{
    Action, DEFAULT_EVENT_CAPACITY, DEFAULT_OPERATION_TIMEOUT, DEFAULT_WHO, DEFAULT_WINDOW_SLOTS,
    DeployMonitor, DeployMonitorBuilder, Evaluation, RolloutStatus,
};
pub use plan::{AnalysisSettings, DEFAULT_PLAN_TOML, Phase, RolloutPlan};
pub use prometheus::PrometheusExport;
pub use recorder::{Recorder, RequestOutcome};
pub use sources::RestartClassifier;
pub use store::ROLLOUT_KEYSPACE;
