//! Two processes' monitors on one store (as two nodes on one PostgreSQL,
//! here on one in-memory store): a transition made by one is followed by
//! the other without recording it again, and two transitions decided from
//! the same state never both count (compare-and-set on the record).

use std::sync::Arc;

use deploy_monitor::{DeployMonitor, RolloutPlan};
use foundation_error::ErrorCode;
use foundation_error::clock::ManualClock;
use foundation_flags::{Flags, InMemoryFlagStore};
use foundation_persist::{Store, StoreOptions};

use crate::{TEST_PLAN, open_flags};

async fn open_monitor(store: &Store, flags: &Flags) -> DeployMonitor {
    DeployMonitor::builder()
        .plan(RolloutPlan::from_toml(TEST_PLAN).expect("plan"))
        .flags(flags.clone())
        .store(store.clone())
        .clock(Arc::new(ManualClock::new()))
        .open()
        .await
        .expect("open")
}

#[tokio::test(start_paused = true)]
async fn a_transition_on_one_node_is_followed_by_the_other_without_a_second_record() {
    let store = Store::open_in_memory(&StoreOptions::new()).expect("store");
    let flag_store = InMemoryFlagStore::new();
    let (flags_a, flags_b) = (open_flags(&flag_store).await, open_flags(&flag_store).await);
    let a = open_monitor(&store, &flags_a).await;
    let b = open_monitor(&store, &flags_b).await;

    a.force_advance("alice", "go").await.expect("advance on a");
    assert_eq!(
        b.status().await.expect("status").phase,
        0,
        "b has not looked"
    );
    assert!(
        b.sync_from_store().await.expect("sync"),
        "b adopts a's phase"
    );
    assert_eq!(b.status().await.expect("status").phase, 1);
    assert!(!b.sync_from_store().await.expect("sync"), "nothing new");
    assert_eq!(
        b.history(10).await.expect("history").len(),
        1,
        "recorded once"
    );

    b.rollback("bob", "bad").await.expect("rollback on b");
    assert!(a.sync_from_store().await.expect("sync"));
    assert_eq!(
        a.status().await.expect("status").phase,
        0,
        "a rolled back too"
    );
    flags_a.reload().await.expect("reload");
    for (flag, expected) in a.plan().values(0) {
        assert_eq!(flags_a.value(&flag).expect("declared"), expected, "{flag}");
    }
    assert_eq!(a.history(10).await.expect("history").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn two_nodes_deciding_from_the_same_phase_record_one_transition() {
    let store = Store::open_in_memory(&StoreOptions::new()).expect("store");
    let flag_store = InMemoryFlagStore::new();
    let (flags_a, flags_b) = (open_flags(&flag_store).await, open_flags(&flag_store).await);
    let a = open_monitor(&store, &flags_a).await;
    let b = open_monitor(&store, &flags_b).await;

    a.force_advance("alice", "go").await.expect("advance on a");
    let error = b
        .force_advance("bob", "go too")
        .await
        .expect_err("b decided from phase 0, which is gone");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    assert_eq!(
        b.status().await.expect("status").phase,
        1,
        "the loser follows the stored phase"
    );
    assert_eq!(
        b.history(10).await.expect("history").len(),
        1,
        "one transition recorded, not two"
    );
    b.force_advance("bob", "now from phase 1")
        .await
        .expect("deciding again works");
    assert_eq!(b.status().await.expect("status").phase, 2);
}
