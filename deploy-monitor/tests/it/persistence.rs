//! The phase and the history survive restarts, and a process killed
//! between writing the flags and recording the phase leaves them
//! consistent on restart (file stores, reopened).

use std::io;
use std::path::Path;
use std::sync::Arc;

use deploy_monitor::{DeployMonitor, RolloutPlan, TransitionKind};
use foundation_error::clock::ManualClock;
use foundation_flags::{FlagValue, Flags, InMemoryFlagStore, StoreFault};
use foundation_persist::{FaultInjection, Store, StoreOptions};

use crate::{TEST_PLAN, open_flags};

async fn open_monitor(
    path: &Path,
    flags: &Flags,
    options: &StoreOptions,
) -> foundation_error::Result<DeployMonitor> {
    let store = Store::open(path, options)?;
    DeployMonitor::builder()
        .plan(RolloutPlan::from_toml(TEST_PLAN)?)
        .flags(flags.clone())
        .store(store)
        .clock(Arc::new(ManualClock::new()))
        .open()
        .await
}

/// Asserts that the flags hold exactly the values of the recorded phase.
async fn assert_consistent(monitor: &DeployMonitor, flags: &Flags) -> u32 {
    let status = monitor.status().await.expect("status");
    for (flag, expected) in monitor.plan().values(status.phase as usize) {
        assert_eq!(
            flags.value(&flag).expect("declared"),
            expected,
            "{flag} in phase {}",
            status.phase
        );
    }
    assert!(status.flag_drift.is_empty(), "{:?}", status.flag_drift);
    status.phase
}

#[tokio::test]
async fn the_phase_and_the_history_survive_a_restart() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("rollout.redb");
    let flag_store = InMemoryFlagStore::new();
    {
        let flags = open_flags(&flag_store).await;
        let monitor = open_monitor(&path, &flags, &StoreOptions::new())
            .await
            .expect("open");
        monitor
            .force_advance("alice", "start")
            .await
            .expect("advance");
        monitor
            .force_advance("alice", "canary")
            .await
            .expect("advance");
        monitor.rollback("bob", "INC-9").await.expect("rollback");
    }
    let flags = open_flags(&flag_store).await;
    let monitor = open_monitor(&path, &flags, &StoreOptions::new())
        .await
        .expect("reopen");
    assert_eq!(assert_consistent(&monitor, &flags).await, 1);
    let status = monitor.status().await.expect("status");
    assert!(status.last_rollback_at.is_some());
    let history = monitor.history(10).await.expect("history");
    let kinds: Vec<_> = history.iter().map(|record| record.kind).collect();
    assert_eq!(
        kinds,
        [
            TransitionKind::ForcedAdvance,
            TransitionKind::ForcedAdvance,
            TransitionKind::ManualRollback
        ]
    );
    assert_eq!(history[2].reason, "INC-9");
    // The transition numbers continue where they stopped.
    let next = monitor
        .force_advance("alice", "again")
        .await
        .expect("advance");
    assert_eq!(next.id, 4);
}

/// Kills the monitor's store at every write of a transition in turn: the
/// store refuses every write after the first `successful` ones, the
/// process "dies" (everything dropped), and a fresh process reopens the
/// file. Whatever the point, the flags and the recorded phase agree, and
/// the history holds each completed transition once.
#[tokio::test]
async fn a_kill_between_flags_written_and_phase_recorded_is_completed_on_restart() {
    let mut flags_written_phase_not_recorded = 0;
    for successful in 0..40 {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("rollout.redb");
        let flag_store = InMemoryFlagStore::new();
        let faults = FaultInjection::new();
        {
            let flags = open_flags(&flag_store).await;
            let mut options = StoreOptions::new();
            options.fault_injection(faults.clone());
            let monitor = open_monitor(&path, &flags, &options).await.expect("open");
            monitor
                .force_advance("alice", "start")
                .await
                .expect("advance");
            faults.fail_writes_after(successful, io::ErrorKind::Other);
            let result = monitor.force_advance("alice", "canary").await;
            let flags_moved = flags.value("use_b").expect("declared")
                == FlagValue::percentage(10).expect("valid");
            if result.is_err() && flags_moved {
                flags_written_phase_not_recorded += 1;
                assert_eq!(
                    monitor.status().await.expect("status").phase,
                    1,
                    "phase not recorded yet"
                );
            }
            // The process dies here: nothing more is written.
        }
        let flags = open_flags(&flag_store).await;
        let monitor = open_monitor(&path, &flags, &StoreOptions::new())
            .await
            .expect("reopen");
        let phase = assert_consistent(&monitor, &flags).await;
        let history = monitor.history(10).await.expect("history");
        assert_eq!(
            history.len(),
            phase as usize,
            "one record per completed transition"
        );
        assert!(phase == 1 || phase == 2);
        if faults.injected_failures() == 0 {
            assert_eq!(phase, 2);
            break;
        }
    }
    assert!(
        flags_written_phase_not_recorded > 0,
        "no write point fell between the flags and the phase"
    );
}

#[tokio::test]
async fn a_kill_after_the_intent_before_the_flags_is_completed_on_restart() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("rollout.redb");
    let flag_store = InMemoryFlagStore::new();
    {
        let flags = open_flags(&flag_store).await;
        let monitor = open_monitor(&path, &flags, &StoreOptions::new())
            .await
            .expect("open");
        monitor
            .force_advance("alice", "start")
            .await
            .expect("advance");
        flag_store.set_fault(StoreFault::FailCommits);
        monitor
            .emergency_rollback("carol", "INC-10")
            .await
            .expect_err("the flags refuse");
        assert_eq!(flags.value("use_a").expect("declared"), FlagValue::On);
    }
    flag_store.set_fault(StoreFault::None);
    let flags = open_flags(&flag_store).await;
    let monitor = open_monitor(&path, &flags, &StoreOptions::new())
        .await
        .expect("reopen");
    assert_eq!(assert_consistent(&monitor, &flags).await, 0);
    let history = monitor.history(10).await.expect("history");
    assert_eq!(
        history.last().map(|record| record.kind),
        Some(TransitionKind::EmergencyRollback)
    );
}

#[tokio::test]
async fn flags_changed_behind_the_rollouts_back_are_reported_as_drift() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("rollout.redb");
    let flag_store = InMemoryFlagStore::new();
    {
        let flags = open_flags(&flag_store).await;
        let monitor = open_monitor(&path, &flags, &StoreOptions::new())
            .await
            .expect("open");
        monitor
            .force_advance("alice", "start")
            .await
            .expect("advance");
        flags
            .set(
                "use_c",
                FlagValue::On,
                foundation_flags::Attribution::new("mallory", "by hand"),
            )
            .await
            .expect("set");
    }
    let flags = open_flags(&flag_store).await;
    let monitor = open_monitor(&path, &flags, &StoreOptions::new())
        .await
        .expect("reopen");
    let status = monitor.status().await.expect("status");
    assert_eq!(
        status.flag_drift,
        vec!["use_c: expected off, found on".to_owned()]
    );
}
