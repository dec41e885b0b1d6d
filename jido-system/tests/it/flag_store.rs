//! `PersistFlagStore` keeps foundation-flags' `FlagStore` contract on
//! foundation-persist: values and the audit log survive a reopen, a commit
//! is all or nothing, undeclared stored flags are ignored; and, on one
//! PostgreSQL database shared by two stores (two nodes), the audit
//! sequence is one total order and a ramp step due on both is applied once.

use std::collections::BTreeSet;
use std::time::Duration;

use foundation_error::clock::ManualClock;
use foundation_flags::{Attribution, AuditAction, AuditQuery, Flag, FlagValue, Flags, RampPlan};
use foundation_persist::{Store, StoreOptions};
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};
use jido_system::flags::PersistFlagStore;

async fn open(store: &Store, declarations: Vec<Flag>) -> Flags {
    let mut builder = Flags::builder();
    builder
        .declare_all(declarations)
        .store(PersistFlagStore::new(store).expect("keyspaces"));
    builder.open().await.expect("the flags open")
}

#[tokio::test(start_paused = true)]
async fn values_and_the_audit_log_survive_a_reopen() {
    let store = Store::open_in_memory(&StoreOptions::new()).expect("store");
    let flags = open(&store, jido_system::flags::declarations()).await;
    flags
        .set(
            "use_v2_coordinator",
            FlagValue::percentage(10).expect("10%"),
            Attribution::new("alice", "canary"),
        )
        .await
        .expect("set");
    flags
        .apply(
            [
                ("use_sync_test_apis", FlagValue::On),
                ("use_reliable_messaging", FlagValue::On),
            ],
            Attribution::new("bob", "phase 2"),
        )
        .await
        .expect("bulk");
    drop(flags);

    let flags = open(&store, jido_system::flags::declarations()).await;
    assert_eq!(
        flags.value("use_v2_coordinator").expect("flag"),
        FlagValue::percentage(10).expect("10%")
    );
    assert!(flags.is_enabled("use_sync_test_apis"));
    assert!(flags.is_enabled("use_reliable_messaging"));
    let audit = flags
        .audit_log(AuditQuery::recent(10))
        .await
        .expect("audit");
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[0].who, "alice");
    assert!(
        audit
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    let recent = flags.audit_log(AuditQuery::recent(1)).await.expect("audit");
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].sequence, audit[2].sequence);

    // A flag the application no longer declares is ignored, not an error.
    let fewer = vec![Flag::new("use_sync_test_apis", "kept", FlagValue::Off)];
    let flags = open(&store, fewer).await;
    assert!(flags.is_enabled("use_sync_test_apis"));
    // The next write continues the audit sequence.
    flags
        .set(
            "use_sync_test_apis",
            FlagValue::Off,
            Attribution::new("carol", "off"),
        )
        .await
        .expect("set");
    let audit = flags
        .audit_log(AuditQuery::recent(10))
        .await
        .expect("audit");
    assert_eq!(audit.last().map(|entry| entry.sequence), Some(4));
}

/// Two stores (two nodes) on one fresh PostgreSQL database, each with its
/// flags on one clock; `None` when PostgreSQL is not installed (the
/// harness says so loudly).
async fn two_nodes_on_postgres(clock: &ManualClock) -> Option<[(Store, Flags); 2]> {
    let cluster = TestCluster::shared().expect("the PostgreSQL test cluster starts")?;
    let url = cluster.create_database().await.expect("a database");
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let store = open_postgres(&url, &PostgresOptions::new())
            .await
            .expect("the store opens");
        let mut builder = Flags::builder();
        builder
            .declare_all(jido_system::flags::declarations())
            .store(PersistFlagStore::new(&store).expect("keyspaces"))
            .clock(clock.clone());
        let flags = builder.open().await.expect("the flags open");
        nodes.push((store, flags));
    }
    nodes.try_into().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_writing_flags_at_once_share_one_audit_sequence() {
    let clock = ManualClock::new();
    let Some([(first_store, first), (second_store, second)]) = two_nodes_on_postgres(&clock).await
    else {
        return;
    };
    const WRITES: u32 = 25;
    let writes = |flags: Flags, flag: &'static str, who: &'static str| async move {
        for value in 1..=WRITES {
            flags
                .set(
                    flag,
                    FlagValue::percentage(value).expect("a percentage"),
                    Attribution::new(who, "concurrent writes"),
                )
                .await
                .expect("a write succeeds after re-reading the store");
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(writes(first.clone(), "use_v2_coordinator", "node-a")),
        tokio::spawn(writes(second.clone(), "use_sync_test_apis", "node-b")),
    );
    a.expect("node A's writes");
    b.expect("node B's writes");
    let total = u64::from(2 * WRITES);
    for flags in [&first, &second] {
        let audit = flags
            .audit_log(AuditQuery::recent(1_000))
            .await
            .expect("the audit log");
        let sequences: Vec<u64> = audit.iter().map(|entry| entry.sequence).collect();
        assert_eq!(
            sequences,
            (1..=total).collect::<Vec<_>>(),
            "one total order read from either node, no duplicate, no gap"
        );
    }
    second.reload().await.expect("reload");
    assert_eq!(
        second.value("use_v2_coordinator").expect("declared"),
        FlagValue::percentage(WRITES).expect("a percentage")
    );
    first_store.close().await.expect("close");
    second_store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_step_due_on_two_nodes_is_applied_once() {
    let clock = ManualClock::new();
    let Some([(first_store, first), (second_store, second)]) = two_nodes_on_postgres(&clock).await
    else {
        return;
    };
    let interval = Duration::from_secs(60);
    let plan = RampPlan::new("use_v2_coordinator", 10, 30, 10, interval).expect("a valid plan");
    first
        .start_ramp(plan, Attribution::new("node-a", "ramp"))
        .await
        .expect("the ramp starts");
    second.reload().await.expect("reload");
    for expected in [20, 30] {
        clock.advance(interval);
        let (a, b) = tokio::join!(first.advance_ramps(), second.advance_ramps());
        let (a, b) = (a.expect("advance"), b.expect("advance"));
        let steps = a
            .entries()
            .iter()
            .chain(b.entries())
            .filter(|entry| entry.action == AuditAction::RampStep)
            .count();
        assert_eq!(steps, 1, "the step is applied once: {a:?} {b:?}");
        for flags in [&first, &second] {
            assert_eq!(
                flags.value("use_v2_coordinator").expect("declared"),
                FlagValue::percentage(expected).expect("a percentage")
            );
        }
    }
    let audit = second
        .audit_log(AuditQuery::recent(100))
        .await
        .expect("the audit log");
    let actions: Vec<AuditAction> = audit.iter().map(|entry| entry.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::RampStarted,
            AuditAction::RampStep,
            AuditAction::RampStep
        ],
        "{audit:?}"
    );
    let sequences: BTreeSet<u64> = audit.iter().map(|entry| entry.sequence).collect();
    assert_eq!(sequences.len(), audit.len(), "no duplicate sequence");
    first_store.close().await.expect("close");
    second_store.close().await.expect("close");
}
