//! Integration tests of deploy-monitor: synthetic event streams under a
//! manual clock (and paused tokio time), real stores, real flags.

mod actor;
mod health;
mod kill;
mod persistence;
mod plan;
mod prometheus;
mod rollout;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use deploy_monitor::{Cohort, DeployMonitor, Evaluation, Recorder, RequestOutcome, RolloutPlan};
use foundation_error::clock::ManualClock;
use foundation_flags::{Flag, FlagValue, Flags, InMemoryFlagStore};
use foundation_persist::{Store, StoreOptions};

/// The flags of the test plans.
pub(crate) const TEST_FLAGS: [&str; 3] = ["use_a", "use_b", "use_c"];

/// A three-phase plan with a one-minute interval and window.
pub(crate) const TEST_PLAN: &str = r#"
[analysis]
interval = "1m"
window = "1m"
count = 3
failureLimit = 3
inconclusiveLimit = 4
cooldown = "10m"
advanceQuietPeriod = "1h"

[[phase]]
name = "one"
minDuration = "5m"
validation = "a works"
flags = { use_a = "on" }

[[phase]]
name = "two"
minDuration = "5m"
validation = "b canary is healthy"
flags = { use_a = "on", use_b = 10 }

[[phase]]
name = "three"
minDuration = "5m"
validation = "everything on"
flags = { use_a = "on", use_b = 100, use_c = "on" }
"#;

/// Everything a rollout test needs.
pub(crate) struct Fixture {
    pub(crate) monitor: DeployMonitor,
    pub(crate) flags: Flags,
    pub(crate) clock: ManualClock,
    pub(crate) recorder: Recorder,
}

pub(crate) async fn open_flags(store: &InMemoryFlagStore) -> Flags {
    let mut builder = Flags::builder();
    for flag in TEST_FLAGS {
        builder.declare(Flag::new(flag, "a test flag", FlagValue::Off));
    }
    builder.store(store.clone());
    builder.open().await.expect("flags open")
}

pub(crate) async fn fixture(plan: &str) -> Fixture {
    let plan = RolloutPlan::from_toml(plan).expect("valid plan");
    let flag_store = InMemoryFlagStore::new();
    let flags = open_flags(&flag_store).await;
    let clock = ManualClock::new();
    let monitor = DeployMonitor::builder()
        .plan(plan)
        .flags(flags.clone())
        .store(Store::open_in_memory(&StoreOptions::new()).expect("store"))
        .clock(Arc::new(clock.clone()))
        .open()
        .await
        .expect("monitor opens");
    let recorder = monitor.recorder();
    Fixture {
        monitor,
        flags,
        clock,
        recorder,
    }
}

/// Traffic of one slot: `requests` per cohort with `errors` of them failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Traffic {
    pub(crate) cohort: Cohort,
    pub(crate) requests: u32,
    pub(crate) errors: u32,
    pub(crate) latency: Duration,
}

impl Traffic {
    pub(crate) fn new(cohort: Cohort, requests: u32, errors: u32) -> Traffic {
        Traffic {
            cohort,
            requests,
            errors,
            latency: Duration::from_millis(20),
        }
    }

    pub(crate) fn record(&self, recorder: &Recorder) {
        for request in 0..self.requests {
            let outcome = if request < self.errors {
                RequestOutcome::Error
            } else {
                RequestOutcome::Success
            };
            recorder.record_request(self.cohort, self.latency, outcome);
        }
    }
}

impl Fixture {
    /// Runs one interval the way the actor does: every slot (5 s) the
    /// traffic is recorded, the clock moves and the monitor ticks; returns
    /// the evaluation made at the end of the interval.
    pub(crate) async fn interval(&self, traffic: &[Traffic]) -> Evaluation {
        let slot = self.monitor.slot_width();
        for _ in 0..1_000 {
            for flow in traffic {
                flow.record(&self.recorder);
            }
            self.clock.advance(slot);
            if let Some(evaluation) = self.monitor.tick().await.expect("tick") {
                return evaluation;
            }
        }
        panic!("no evaluation within 1,000 slots");
    }

    pub(crate) fn value(&self, flag: &str) -> FlagValue {
        self.flags.value(flag).expect("declared")
    }
}

/// Healthy traffic: 20 requests per slot, none failed (220 per window).
pub(crate) fn healthy() -> Vec<Traffic> {
    vec![Traffic::new(Cohort::Unassigned, 20, 0)]
}

/// Failing traffic: 20 requests per slot, 4 failed (20%).
pub(crate) fn failing() -> Vec<Traffic> {
    vec![Traffic::new(Cohort::Unassigned, 20, 4)]
}
