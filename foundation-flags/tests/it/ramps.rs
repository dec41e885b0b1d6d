//! Scheduled ramps under paused time: steps on schedule, pause, resume,
//! cancel, take-over by other writes, restarts mid-ramp, the driver's life.

use std::time::{Duration, SystemTime};

use foundation_error::ErrorCode;
use foundation_error::clock::TokioClock;
use foundation_flags::{
    Attribution, AuditAction, AuditQuery, FlagChange, FlagValue, Flags, InMemoryFlagStore,
    RampPlan, StoreFault,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::support::{by, epoch, percent, rollout_flags};

const MINUTE: Duration = Duration::from_secs(60);
const FLAG: &str = "use_v2_coordinator";

async fn open_with(
    store: &InMemoryFlagStore,
    clock: &TokioClock,
    environment: &[(&str, &str)],
) -> Flags {
    let mut builder = Flags::builder();
    builder
        .declare_all(rollout_flags())
        .store(store.clone())
        .clock(*clock)
        .environment(environment.iter().copied());
    builder.open().await.expect("the test flags open")
}

/// The next change, waiting at most a simulated day.
async fn next_change(changes: &mut broadcast::Receiver<FlagChange>) -> FlagChange {
    tokio::time::timeout(Duration::from_secs(86_400), changes.recv())
        .await
        .expect("a change within a simulated day")
        .expect("the change channel is open")
}

fn plan(from: u32, to: u32, step: u32) -> RampPlan {
    RampPlan::new(FLAG, from, to, step, MINUTE).expect("a valid test plan")
}

fn at(minutes: u64) -> SystemTime {
    epoch() + MINUTE * u32::try_from(minutes).expect("few minutes")
}

fn spawn_driver(flags: &Flags) -> JoinHandle<foundation_error::Result<()>> {
    tokio::spawn(flags.ramp_driver().run())
}

#[tokio::test(start_paused = true)]
async fn a_ramp_steps_on_schedule_and_completes() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    let driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();

    flags
        .start_ramp(plan(10, 40, 10), Attribution::new("alice", "gradual V2"))
        .await
        .unwrap();
    assert_eq!(flags.value(FLAG).unwrap(), percent(10));
    assert_eq!(flags.snapshot().ramp(FLAG).unwrap().next_step_at, at(1));
    next_change(&mut changes).await; // the start

    let mut steps = Vec::new();
    for _ in 0..3 {
        let change = next_change(&mut changes).await;
        let entry = &change.entries()[0];
        assert_eq!(entry.action, AuditAction::RampStep);
        assert_eq!(entry.who, "alice");
        assert!(entry.reason.contains("gradual V2"), "{}", entry.reason);
        steps.push((entry.new_value, entry.at));
    }
    assert_eq!(
        steps,
        vec![
            (percent(20), at(1)),
            (percent(30), at(2)),
            (percent(40), at(3))
        ]
    );
    assert!(flags.snapshot().ramp(FLAG).is_none(), "complete");
    assert!(store.stored().ramps.is_empty());
    assert_eq!(store.stored().values.get(FLAG), Some(&percent(40)));

    // Nothing more happens.
    tokio::time::advance(MINUTE * 10).await;
    assert!(changes.try_recv().is_err());
    drop(flags);
    assert!(
        driver.await.unwrap().is_ok(),
        "the driver ends with the flags"
    );
}

#[tokio::test(start_paused = true)]
async fn ramps_pause_resume_and_cancel() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    let _driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();

    flags
        .start_ramp(plan(0, 100, 20), by("alice"))
        .await
        .unwrap();
    let error = flags
        .start_ramp(plan(0, 100, 20), by("alice"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ALREADY_EXISTS);
    next_change(&mut changes).await;
    next_change(&mut changes).await; // 20% at minute 1

    flags.pause_ramp(FLAG, by("bob")).await.unwrap();
    let paused_again = flags.pause_ramp(FLAG, by("bob")).await.unwrap();
    assert!(
        paused_again.is_empty(),
        "pausing a paused ramp changes nothing"
    );
    assert!(flags.snapshot().ramp(FLAG).unwrap().paused);
    assert!(store.stored().ramps[0].paused);
    next_change(&mut changes).await; // the pause
    tokio::time::advance(MINUTE * 30).await;
    tokio::task::yield_now().await;
    assert!(changes.try_recv().is_err(), "a paused ramp does not step");
    assert_eq!(flags.value(FLAG).unwrap(), percent(20));

    // Resumed at minute 31: the next step falls due at minute 32.
    flags.resume_ramp(FLAG, by("bob")).await.unwrap();
    next_change(&mut changes).await; // the resume
    let step = next_change(&mut changes).await;
    assert_eq!(step.entries()[0].new_value, percent(40));
    assert_eq!(step.entries()[0].at, at(32));

    flags.cancel_ramp(FLAG, by("carol")).await.unwrap();
    assert_eq!(
        flags.value(FLAG).unwrap(),
        percent(40),
        "cancelling keeps the value"
    );
    assert!(flags.snapshot().ramps().is_empty());
    assert!(store.stored().ramps.is_empty());
    for error in [
        flags.cancel_ramp(FLAG, by("carol")).await.unwrap_err(),
        flags.pause_ramp(FLAG, by("carol")).await.unwrap_err(),
        flags.resume_ramp(FLAG, by("carol")).await.unwrap_err(),
    ] {
        assert_eq!(error.code(), ErrorCode::DATA_NOT_FOUND);
    }

    let actions: Vec<AuditAction> = flags
        .audit_log(AuditQuery::recent(100))
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::RampStarted,
            AuditAction::RampStep,
            AuditAction::RampPaused,
            AuditAction::RampResumed,
            AuditAction::RampStep,
            AuditAction::RampCancelled,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn another_write_takes_the_flag_over_from_its_ramp() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    let _driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();
    flags
        .start_ramp(plan(10, 100, 10), by("alice"))
        .await
        .unwrap();
    next_change(&mut changes).await;
    next_change(&mut changes).await; // 20%

    // An emergency rollback as a bulk apply.
    let rollback = flags
        .apply(
            [(FLAG, FlagValue::Off)],
            Attribution::new("oncall", "emergency rollback"),
        )
        .await
        .unwrap();
    let actions: Vec<_> = rollback
        .entries()
        .iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(
        actions,
        vec![AuditAction::RampCancelled, AuditAction::BulkApply]
    );
    assert!(rollback.entries()[0].reason.contains("emergency rollback"));
    assert!(flags.snapshot().ramps().is_empty());
    next_change(&mut changes).await;

    tokio::time::advance(MINUTE * 60).await;
    tokio::task::yield_now().await;
    assert!(
        changes.try_recv().is_err(),
        "the cancelled ramp never steps again"
    );
    assert_eq!(flags.value(FLAG).unwrap(), FlagValue::Off);
}

#[tokio::test(start_paused = true)]
async fn a_ramp_continues_its_schedule_after_a_restart() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());

    let flags = open_with(&store, &clock, &[]).await;
    let driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();
    flags
        .start_ramp(plan(0, 100, 25), by("alice"))
        .await
        .unwrap();
    next_change(&mut changes).await;
    let first = next_change(&mut changes).await;
    assert_eq!(
        (first.entries()[0].new_value, first.entries()[0].at),
        (percent(25), at(1))
    );

    // The service stops half-way to the next step and is down 30 seconds.
    drop(flags);
    assert!(driver.await.unwrap().is_ok());
    tokio::time::advance(Duration::from_secs(30)).await;

    let flags = open_with(&store, &clock, &[]).await;
    assert_eq!(flags.value(FLAG).unwrap(), percent(25));
    let ramp = flags.snapshot().ramp(FLAG).cloned().unwrap();
    assert_eq!(ramp.next_step_at, at(2), "the schedule survived");
    let _driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();
    let mut steps = Vec::new();
    for _ in 0..3 {
        let change = next_change(&mut changes).await;
        steps.push((change.entries()[0].new_value, change.entries()[0].at));
    }
    assert_eq!(
        steps,
        vec![
            (percent(50), at(2)),
            (percent(75), at(3)),
            (percent(100), at(4))
        ]
    );
    assert!(store.stored().ramps.is_empty());
}

#[tokio::test(start_paused = true)]
async fn steps_missed_while_down_do_not_burst() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    flags
        .start_ramp(plan(0, 100, 10), by("alice"))
        .await
        .unwrap();
    drop(flags);
    tokio::time::advance(MINUTE * 10).await; // ten steps' worth of downtime

    let flags = open_with(&store, &clock, &[]).await;
    let _driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();
    let first = next_change(&mut changes).await;
    let second = next_change(&mut changes).await;
    assert_eq!(
        (first.entries()[0].new_value, first.entries()[0].at),
        (percent(10), at(10))
    );
    assert_eq!(
        (second.entries()[0].new_value, second.entries()[0].at),
        (percent(20), at(11))
    );
}

#[tokio::test(start_paused = true)]
async fn an_environment_override_pauses_a_stored_ramp() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    flags
        .start_ramp(plan(0, 100, 10), by("alice"))
        .await
        .unwrap();
    drop(flags);

    let flags = open_with(
        &store,
        &clock,
        &[("FOUNDATION_FLAG_USE_V2_COORDINATOR", "off")],
    )
    .await;
    assert_eq!(flags.value(FLAG).unwrap(), FlagValue::Off);
    assert!(flags.snapshot().ramp(FLAG).unwrap().paused);
    let log = flags.audit_log(AuditQuery::recent(2)).await.unwrap();
    assert_eq!(log[0].action, AuditAction::RampPaused);
    assert_eq!(log[1].action, AuditAction::EnvironmentOverride);
    let _driver = spawn_driver(&flags);
    tokio::time::advance(MINUTE * 10).await;
    tokio::task::yield_now().await;
    assert_eq!(
        flags.value(FLAG).unwrap(),
        FlagValue::Off,
        "the override holds"
    );
}

#[tokio::test(start_paused = true)]
async fn ramps_can_be_driven_by_hand() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    flags
        .start_ramp(plan(60, 0, 30), by("alice"))
        .await
        .unwrap();
    assert!(
        flags.advance_ramps().await.unwrap().is_empty(),
        "nothing due yet"
    );
    tokio::time::advance(MINUTE).await;
    let step = flags.advance_ramps().await.unwrap();
    assert_eq!(step.entries()[0].new_value, percent(30));
    tokio::time::advance(MINUTE).await;
    flags.advance_ramps().await.unwrap();
    assert_eq!(flags.value(FLAG).unwrap(), percent(0));
    assert!(flags.snapshot().ramps().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_driver_fails_when_a_step_cannot_be_stored_and_a_restart_retries_it() {
    let store = InMemoryFlagStore::new();
    let clock = TokioClock::following(epoch());
    let flags = open_with(&store, &clock, &[]).await;
    flags
        .start_ramp(plan(0, 100, 50), by("alice"))
        .await
        .unwrap();
    store.set_fault(StoreFault::FailCommits);
    let error = spawn_driver(&flags).await.unwrap().unwrap_err();
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        flags.value(FLAG).unwrap(),
        percent(0),
        "the failed step is not applied"
    );

    // What a supervisor does: run it again.
    store.set_fault(StoreFault::None);
    let _driver = spawn_driver(&flags);
    let mut changes = flags.subscribe();
    let step = next_change(&mut changes).await;
    assert_eq!(step.entries()[0].new_value, percent(50));
}
