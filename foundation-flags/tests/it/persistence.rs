//! Persistence and start-up: restart through the store, the precedence of
//! defaults, stored values and environment overrides, store faults, and
//! invalid configuration.

use std::time::Duration;

use foundation_error::ErrorCode;
use foundation_flags::{
    AuditAction, AuditQuery, Flag, FlagValue, Flags, InMemoryFlagStore, StoreFault,
    process_environment,
};

use crate::support::{builder, by, percent};

async fn open_with(store: &InMemoryFlagStore, environment: &[(&str, &str)]) -> Flags {
    let mut builder = builder();
    builder
        .store(store.clone())
        .environment(environment.iter().copied());
    builder.open().await.expect("the test flags open")
}

#[tokio::test]
async fn values_survive_a_restart_through_the_store() {
    let store = InMemoryFlagStore::new();
    let flags = open_with(&store, &[]).await;
    flags
        .set("use_v2_coordinator", percent(40), by("t"))
        .await
        .unwrap();
    flags
        .set("use_reliable_messaging", FlagValue::On, by("t"))
        .await
        .unwrap();
    flags
        .reset("use_reliable_messaging", by("t"))
        .await
        .unwrap();
    drop(flags);

    let flags = open_with(&store, &[]).await;
    assert_eq!(flags.value("use_v2_coordinator").unwrap(), percent(40));
    // A reset forgets the stored value: the declared default applies.
    assert_eq!(
        flags.value("use_reliable_messaging").unwrap(),
        FlagValue::Off
    );
    assert!(!store.stored().values.contains_key("use_reliable_messaging"));
    // Sequence numbers continue across the restart.
    let written = flags
        .set("use_v2_coordinator", percent(60), by("t"))
        .await
        .unwrap();
    assert_eq!(written.entries()[0].sequence, 4);
}

#[tokio::test]
async fn stored_values_of_undeclared_flags_are_kept_and_ignored() {
    let store = InMemoryFlagStore::new();
    let mut builder = Flags::builder();
    builder
        .declare(Flag::new("retired_flag", "d", FlagValue::Off))
        .store(store.clone());
    let flags = builder.open().await.unwrap();
    flags
        .set("retired_flag", FlagValue::On, by("t"))
        .await
        .unwrap();
    drop(flags);

    let flags = open_with(&store, &[]).await;
    assert!(flags.declaration("retired_flag").is_none());
    assert_eq!(
        store.stored().values.get("retired_flag"),
        Some(&FlagValue::On)
    );
}

#[tokio::test]
async fn precedence_is_default_then_stored_then_environment() {
    let store = InMemoryFlagStore::new();
    let flags = open_with(&store, &[]).await;
    flags
        .set("use_v2_coordinator", percent(40), by("t"))
        .await
        .unwrap();
    flags
        .set("use_sync_test_apis", FlagValue::On, by("t"))
        .await
        .unwrap();
    drop(flags);

    let flags = open_with(
        &store,
        &[
            ("FOUNDATION_FLAG_USE_V2_COORDINATOR", "off"),
            ("FOUNDATION_FLAG_USE_PERSISTENT_AGENTS", "75"),
            ("HOME", "/root"),
        ],
    )
    .await;
    // Environment over stored, environment over default, stored over default.
    assert_eq!(flags.value("use_v2_coordinator").unwrap(), FlagValue::Off);
    assert_eq!(flags.value("use_persistent_agents").unwrap(), percent(75));
    assert_eq!(flags.value("use_sync_test_apis").unwrap(), FlagValue::On);
    assert_eq!(
        flags.value("use_reliable_messaging").unwrap(),
        FlagValue::Off
    );

    // Audited, not stored.
    let log = flags.audit_log(AuditQuery::recent(2)).await.unwrap();
    assert!(
        log.iter()
            .all(|entry| entry.action == AuditAction::EnvironmentOverride)
    );
    assert!(log.iter().all(|entry| entry.who == "environment"));
    assert_eq!(log[0].reason, "FOUNDATION_FLAG_USE_V2_COORDINATOR=off");
    assert_eq!(
        store.stored().values.get("use_v2_coordinator"),
        Some(&percent(40))
    );
    assert!(!store.stored().values.contains_key("use_persistent_agents"));
    drop(flags);

    // Without the variable, the stored value is back.
    let flags = open_with(&store, &[]).await;
    assert_eq!(flags.value("use_v2_coordinator").unwrap(), percent(40));
    assert_eq!(
        flags.value("use_persistent_agents").unwrap(),
        FlagValue::Off
    );
}

#[tokio::test]
async fn invalid_environment_overrides_fail_start_up() {
    let store = InMemoryFlagStore::new();
    for (variable, value, code) in [
        (
            "FOUNDATION_FLAG_USE_V2_COORDINATOR",
            "101",
            ErrorCode::RANGE_ERROR,
        ),
        (
            "FOUNDATION_FLAG_USE_V2_COORDINATOR",
            "sometimes",
            ErrorCode::FORMAT_ERROR,
        ),
        (
            "FOUNDATION_FLAG_USE_V3_COORDINATOR",
            "on",
            ErrorCode::INVALID_CONFIG_VALUE,
        ),
    ] {
        let mut builder = builder();
        builder
            .store(store.clone())
            .environment([(variable, value)]);
        let error = builder.open().await.unwrap_err();
        assert_eq!(error.code(), code, "{variable}={value}");
        assert!(error.message().contains(variable), "{error}");
    }
    assert_eq!(store.commit_count(), 0);
}

#[test]
fn the_process_environment_is_filtered_by_prefix() {
    let pairs = process_environment().unwrap();
    assert!(
        pairs
            .iter()
            .all(|(key, _)| key.starts_with("FOUNDATION_FLAG_"))
    );
}

#[tokio::test]
async fn invalid_declarations_fail_start_up() {
    let cases: Vec<(Vec<Flag>, ErrorCode)> = vec![
        (
            vec![
                Flag::new("a", "d", FlagValue::Off),
                Flag::new("a", "d", FlagValue::On),
            ],
            ErrorCode::ALREADY_EXISTS,
        ),
        (
            vec![
                Flag::new("a.b", "d", FlagValue::Off),
                Flag::new("a_b", "d", FlagValue::Off),
            ],
            ErrorCode::CONSTRAINT_VIOLATION,
        ),
        (
            vec![Flag::new("has space", "d", FlagValue::Off)],
            ErrorCode::INVALID_CONFIG_VALUE,
        ),
        (
            vec![Flag::new("a", "d", FlagValue::Off).with_group_id("")],
            ErrorCode::INVALID_CONFIG_VALUE,
        ),
    ];
    for (declarations, code) in cases {
        let mut builder = Flags::builder();
        builder.declare_all(declarations);
        assert_eq!(builder.open().await.unwrap_err().code(), code);
    }
    let mut builder = Flags::builder();
    builder.timeout(Duration::ZERO);
    assert_eq!(
        builder.open().await.unwrap_err().code(),
        ErrorCode::INVALID_CONFIG_VALUE
    );
}

#[tokio::test]
async fn a_failing_store_changes_nothing() {
    let store = InMemoryFlagStore::new();
    let flags = open_with(&store, &[]).await;
    let mut changes = flags.subscribe();
    store.set_fault(StoreFault::FailCommits);
    let error = flags
        .set("use_v2_coordinator", FlagValue::On, by("t"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert!(!flags.is_enabled("use_v2_coordinator"));
    assert_eq!(flags.snapshot().version(), 0);
    assert!(changes.try_recv().is_err());

    store.set_fault(StoreFault::None);
    let written = flags
        .set("use_v2_coordinator", FlagValue::On, by("t"))
        .await
        .unwrap();
    assert_eq!(
        written.entries()[0].sequence,
        1,
        "the failed write used no sequence"
    );
    assert!(flags.is_enabled("use_v2_coordinator"));

    store.set_fault(StoreFault::FailLoads);
    let mut builder = builder();
    builder.store(store.clone());
    assert_eq!(
        builder.open().await.unwrap_err().code(),
        ErrorCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_store_times_out_and_the_change_is_dropped_if_not_stored() {
    let store = InMemoryFlagStore::new();
    let flags = open_with(&store, &[]).await;
    store.set_fault(StoreFault::StallCommits);
    let error = flags
        .set("use_v2_coordinator", FlagValue::On, by("t"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert!(!flags.is_enabled("use_v2_coordinator"));

    store.set_fault(StoreFault::None);
    let written = flags
        .set("use_sync_test_apis", FlagValue::On, by("t"))
        .await
        .unwrap();
    // The unconfirmed change was not stored, so it was dropped.
    assert!(!flags.is_enabled("use_v2_coordinator"));
    assert_eq!(written.entries()[0].sequence, 1);
    assert_eq!(flags.snapshot().version(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unconfirmed_change_that_was_stored_is_applied_before_the_next_write() {
    let store = InMemoryFlagStore::new();
    let flags = open_with(&store, &[]).await;
    let mut changes = flags.subscribe();

    // A lost acknowledgement: stored, but the call times out.
    store.set_fault(StoreFault::StallAfterCommit);
    let error = flags
        .set("use_v2_coordinator", FlagValue::On, by("t"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert!(
        !flags.is_enabled("use_v2_coordinator"),
        "not applied while unconfirmed"
    );

    // A caller that stops waiting mid-commit (its future is dropped). This
    // write first settles the previous one: the store has it, so it is
    // published now.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(10),
        flags.set("use_reliable_messaging", FlagValue::On, by("t")),
    )
    .await;
    assert!(abandoned.is_err());
    assert!(flags.is_enabled("use_v2_coordinator"));
    assert!(
        !flags.is_enabled("use_reliable_messaging"),
        "not applied while unconfirmed"
    );

    store.set_fault(StoreFault::None);
    flags
        .set("use_sync_test_apis", FlagValue::On, by("t"))
        .await
        .unwrap();
    assert!(flags.is_enabled("use_reliable_messaging"));
    assert!(flags.is_enabled("use_sync_test_apis"));
    // Each change was published once, in order, with its own sequence.
    let published: Vec<(u64, String)> = std::iter::from_fn(|| changes.try_recv().ok())
        .flat_map(|change| change.entries().to_vec())
        .map(|entry| (entry.sequence, entry.flag))
        .collect();
    assert_eq!(
        published,
        vec![
            (1, "use_v2_coordinator".to_owned()),
            (2, "use_reliable_messaging".to_owned()),
            (3, "use_sync_test_apis".to_owned()),
        ]
    );
    assert_eq!(store.stored().last_sequence, 3);
}
