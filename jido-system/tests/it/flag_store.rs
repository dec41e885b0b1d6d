//! `PersistFlagStore` keeps foundation-flags' `FlagStore` contract on
//! foundation-persist: values and the audit log survive a reopen, a commit
//! is all or nothing, undeclared stored flags are ignored.

use foundation_flags::{Attribution, AuditQuery, Flag, FlagValue, Flags};
use foundation_persist::{Store, StoreOptions};
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
