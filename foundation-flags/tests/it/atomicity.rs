//! Bulk apply is atomic under concurrent readers: a snapshot holds all of a
//! bulk change or none of it, and once a single read has seen a change,
//! later snapshots hold all of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use foundation_flags::{FlagValue, Flags};

use crate::support::{by, open, percent};

const NAMES: [&str; 6] = [
    "use_persistent_agents",
    "use_v2_coordinator",
    "use_new_error_handling",
    "use_sync_test_apis",
    "enforce_supervised_tasks",
    "use_reliable_messaging",
];

/// Reads until `done`, checking every snapshot; returns how many it checked.
fn reader(flags: Flags, done: Arc<AtomicBool>, started: Arc<AtomicU64>) -> u64 {
    let last = flags.handle(NAMES[5]).expect("declared");
    let mut checked = 0;
    while !done.load(Ordering::Acquire) {
        // Single read first, then a snapshot: the snapshot may not be older.
        let seen = last.value().rollout_percentage();
        let snapshot = flags.snapshot();
        let values: Vec<u8> = snapshot
            .iter()
            .map(|(_, value)| value.rollout_percentage())
            .collect();
        assert!(
            values.iter().all(|value| *value == values[0]),
            "a snapshot holds half of a bulk change: {values:?} (version {})",
            snapshot.version()
        );
        assert!(
            values[5] >= seen,
            "a snapshot taken after a handle saw {seen}% holds {}%",
            values[5]
        );
        checked += 1;
        started.fetch_add(1, Ordering::Release);
    }
    checked
}

#[tokio::test]
async fn readers_never_see_half_a_bulk_change() {
    let flags = open().await;
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (flags, done, started) = (flags.clone(), done.clone(), started.clone());
            std::thread::spawn(move || reader(flags, done, started))
        })
        .collect();
    // Event-driven start: wait (bounded) until both readers are reading.
    for _ in 0..1_000_000 {
        if started.load(Ordering::Acquire) >= 2 {
            break;
        }
        std::thread::yield_now();
    }

    // Phases 1..=100: every flag at the phase's percentage, in one change.
    for phase in 1..=100 {
        let value = percent(phase);
        flags
            .apply(NAMES.map(|name| (name, value)), by("rollout-plan"))
            .await
            .unwrap();
    }
    flags
        .apply(NAMES.map(|name| (name, FlagValue::On)), by("rollout-plan"))
        .await
        .unwrap();
    done.store(true, Ordering::Release);
    let checked: u64 = readers
        .into_iter()
        .map(|reader| reader.join().expect("a reader found an inconsistency"))
        .sum();
    assert!(checked > 0);
    assert_eq!(flags.snapshot().version(), 101);
    assert!(NAMES.iter().all(|name| flags.is_enabled(name)));
}
