//! Health metrics from real events: supervisor restarts, the signal
//! router's counters, the error tracker, restores and latencies.

use std::sync::Arc;
use std::time::Duration;

use deploy_monitor::{Check, Cohort, DeployMonitor, Outcome, RequestOutcome, RolloutPlan};
use foundation_core::signal::{Delivery, Signal, SignalRouter};
use foundation_core::testkit::crash_and_wait_restart;
use foundation_core::{Actor, ChildSpec, Context, Supervisor};
use foundation_error::clock::ManualClock;
use foundation_error::{Error, ErrorTracker};
use foundation_flags::InMemoryFlagStore;
use foundation_persist::{Store, StoreOptions};

use crate::{TEST_PLAN, open_flags};

struct Worker;

impl Actor for Worker {
    type Args = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = Delivery;

    async fn init(_args: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Worker)
    }
}

#[tokio::test(start_paused = true)]
async fn every_metric_comes_from_its_source() {
    let mut builder = Supervisor::builder("app");
    let spec = ChildSpec::<Worker>::new("v2-coordinator", ());
    let child = spec.handle();
    builder.child(spec);
    builder.intensity(100, Duration::from_secs(60));
    let supervisor = builder.start().await.expect("supervisor");
    let router = SignalRouter::new("signals");
    let tracker = ErrorTracker::new();
    let flag_store = InMemoryFlagStore::new();
    let flags = open_flags(&flag_store).await;
    let clock = ManualClock::new();
    let monitor = DeployMonitor::builder()
        .plan(RolloutPlan::from_toml(TEST_PLAN).expect("plan"))
        .flags(flags)
        .store(Store::open_in_memory(&StoreOptions::new()).expect("store"))
        .clock(Arc::new(clock.clone()))
        .supervisor_events(&supervisor.event_bus())
        .restart_classifier(|event| {
            if event.child.starts_with("v2-") {
                Cohort::Treatment
            } else {
                Cohort::Control
            }
        })
        .signal_router(router.clone())
        .error_tracker(tracker.clone())
        .open()
        .await
        .expect("monitor");

    // Twelve restarts of the V2 child in the first minute.
    for _ in 0..12 {
        crash_and_wait_restart(&child, Duration::from_secs(5))
            .await
            .expect("restarted");
    }
    // Ten signals to one live handler.
    router.subscribe("work.*", &child).expect("subscribe");
    for number in 0..10 {
        let signal =
            Signal::new("work.item", "test", serde_json::json!({ "n": number })).expect("signal");
        router.route(signal);
    }
    // The forwarders hand signals over on their own tasks.
    foundation_core::testkit::wait_for(|| router.stats().delivered == 10, Duration::from_secs(5))
        .await
        .expect("delivered");
    // 150 requests, 3 of them failed, and 4 errors tracked.
    let recorder = monitor.recorder();
    for request in 0..150u64 {
        let outcome = if request < 3 {
            RequestOutcome::Error
        } else {
            RequestOutcome::Success
        };
        recorder.record_request(Cohort::Control, Duration::from_millis(request + 1), outcome);
    }
    for _ in 0..4 {
        tracker.track(&Error::timeout("database timeout"));
    }
    // Restores: 99 of 100.
    for restore in 0..100 {
        recorder.record_restore(Cohort::Treatment, restore != 0);
    }
    clock.advance(Duration::from_secs(30));
    let evaluation = monitor.evaluate_now().await.expect("evaluation");
    let overall = &evaluation.report.overall;

    assert_eq!(overall.restarts, 12);
    assert_eq!(evaluation.report.cohort(Cohort::Treatment).restarts, 12);
    assert_eq!(overall.restarts_per_minute, Some(12.0));
    let restarts = evaluation
        .judgement
        .check(Check::RestartFrequency)
        .expect("checked");
    assert_eq!(restarts.outcome, Outcome::Fail, "{}", restarts.detail);

    assert_eq!(overall.deliveries_attempted, 10);
    assert_eq!(overall.delivery_success, Some(1.0));
    assert_eq!(
        evaluation
            .judgement
            .check(Check::DeliverySuccess)
            .expect("checked")
            .outcome,
        Outcome::Inconclusive,
        "10 of the 20 deliveries needed"
    );

    assert_eq!(overall.requests, 150);
    assert_eq!(
        overall.errors, 4,
        "the tracker's count is the overall error figure"
    );
    assert_eq!(evaluation.report.cohort(Cohort::Control).errors, 3);
    let error_rate = overall.error_rate.expect("data");
    assert!((error_rate - 4.0 / 150.0).abs() < 1e-9);

    assert_eq!(overall.restores_attempted, 100);
    assert_eq!(overall.recovery_success, Some(0.99));
    assert_eq!(
        evaluation
            .judgement
            .check(Check::RecoverySuccess)
            .expect("checked")
            .outcome,
        Outcome::Pass
    );

    // Latencies 1..=150 ms: p50 near 75 ms, p95 near 143 ms, p99 near 149 ms
    // (buckets are at most 12.5% wide).
    let near = |measured: Option<Duration>, expected_ms: f64| {
        let measured = measured.expect("data").as_secs_f64() * 1000.0;
        assert!(
            (measured - expected_ms).abs() <= expected_ms * 0.125,
            "{measured} ms against {expected_ms} ms"
        );
    };
    near(overall.latency.p50, 75.0);
    near(overall.latency.p95, 143.0);
    near(overall.latency.p99, 149.0);
    near(overall.latency.mean, 75.5);
    assert_eq!(evaluation.judgement.outcome, Outcome::Fail);
    assert_eq!(evaluation.report.lost_restart_events, 0);
    supervisor.shutdown().await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn lost_restart_events_are_measurement_errors_that_pause_the_rollout() {
    use deploy_monitor::{Action, AlertReason};
    use foundation_core::EventBus;

    let bus = EventBus::with_capacity(2);
    let mut builder = Supervisor::builder("app");
    builder.events(&bus);
    let spec = ChildSpec::<Worker>::new("worker", ());
    let child = spec.handle();
    builder.child(spec);
    builder.intensity(1_000, Duration::from_secs(60));
    let supervisor = builder.start().await.expect("supervisor");
    let flags = open_flags(&InMemoryFlagStore::new()).await;
    let clock = ManualClock::new();
    let monitor = DeployMonitor::builder()
        .plan(RolloutPlan::from_toml(TEST_PLAN).expect("plan"))
        .flags(flags)
        .store(Store::open_in_memory(&StoreOptions::new()).expect("store"))
        .clock(Arc::new(clock.clone()))
        .supervisor_events(&bus)
        .open()
        .await
        .expect("monitor");
    monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    let mut actions = Vec::new();
    for _ in 0..4 {
        // Each restart is three events (exited, started, restarted): the
        // two-event bus overflows between evaluations.
        for _ in 0..2 {
            crash_and_wait_restart(&child, Duration::from_secs(5))
                .await
                .expect("restarted");
        }
        for _ in 0..200 {
            monitor.recorder().record_request(
                Cohort::Unassigned,
                Duration::from_millis(3),
                RequestOutcome::Success,
            );
        }
        clock.advance(Duration::from_secs(30));
        let evaluation = monitor.evaluate_now().await.expect("evaluation");
        assert_eq!(evaluation.judgement.outcome, Outcome::Pass);
        assert!(evaluation.report.lost_restart_events > 0);
        let restarts = evaluation
            .judgement
            .check(Check::RestartFrequency)
            .expect("checked");
        assert_eq!(
            restarts.outcome,
            Outcome::Inconclusive,
            "{}",
            restarts.detail
        );
        assert!(evaluation.judgement.measurement_error);
        actions.push(evaluation.action);
    }
    assert_eq!(actions[..3], [Action::None, Action::None, Action::None]);
    assert_eq!(actions[3], Action::Paused(AlertReason::MeasurementErrors));
    assert!(monitor.status().await.expect("status").paused.is_some());
    supervisor.shutdown().await.expect("shutdown");
}
