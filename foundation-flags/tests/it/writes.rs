//! Writes: validation that changes nothing on error, audit entries,
//! subscribers and metrics.

use std::time::Duration;

use foundation_error::ErrorCode;
use foundation_flags::metrics::{FLAG_CHANGES_TOTAL, FLAG_ROLLOUT_PERCENTAGE};
use foundation_flags::{
    Attribution, AuditAction, AuditQuery, FlagValue, InMemoryFlagStore, Percentage,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::support::{builder, by, epoch, open, percent};

#[tokio::test]
async fn invalid_writes_are_classified_and_change_nothing() {
    let store = InMemoryFlagStore::new();
    let mut builder = builder();
    builder.store(store.clone());
    let flags = builder.open().await.unwrap();
    let mut changes = flags.subscribe();
    let before = flags.snapshot();

    // An unknown flag anywhere in a bulk change.
    let error = flags
        .apply(
            [
                ("use_v2_coordinator", FlagValue::On),
                ("no_such_flag", FlagValue::On),
            ],
            by("t"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::FLAG_NOT_FOUND);
    assert_eq!(error.context_value("flag"), Some("no_such_flag"));

    // The same flag twice.
    let error = flags
        .apply(
            [
                ("use_v2_coordinator", FlagValue::On),
                ("use_v2_coordinator", FlagValue::Off),
            ],
            by("t"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::INVALID_INPUT);

    // No who, no reason, or an oversized one.
    for attribution in [
        Attribution::new("", "why"),
        Attribution::new("alice", "  "),
        Attribution::new("alice", "x".repeat(2_000)),
    ] {
        let error = flags
            .set("use_v2_coordinator", FlagValue::On, attribution)
            .await
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::INVALID_INPUT);
    }

    // Out-of-range percentages never become values: not by constructor,
    // parsing or deserialising.
    assert_eq!(
        FlagValue::percentage(101).unwrap_err().code(),
        ErrorCode::RANGE_ERROR
    );
    assert_eq!(
        Percentage::new(1_000).unwrap_err().code(),
        ErrorCode::RANGE_ERROR
    );
    assert!(serde_json::from_str::<FlagValue>(r#"{"percentage":101}"#).is_err());
    assert_eq!(
        serde_json::from_str::<FlagValue>(r#"{"percentage":42}"#).unwrap(),
        percent(42)
    );

    let after = flags.snapshot();
    assert_eq!(after.version(), before.version());
    assert!(after.iter().eq(before.iter()));
    assert_eq!(store.commit_count(), 0);
    assert!(
        flags
            .audit_log(AuditQuery::recent(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(changes.try_recv().is_err(), "nothing was broadcast");
}

#[tokio::test(start_paused = true)]
async fn every_change_is_audited_with_who_why_and_when() {
    let flags = open().await;
    flags
        .set(
            "use_v2_coordinator",
            percent(10),
            Attribution::new("alice", "canary"),
        )
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    flags
        .apply(
            [
                ("use_v2_coordinator", percent(50)),
                ("use_reliable_messaging", FlagValue::On),
            ],
            Attribution::new("rollout-plan", "phase 2"),
        )
        .await
        .unwrap();
    flags
        .reset("use_v2_coordinator", Attribution::new("bob", "rollback"))
        .await
        .unwrap();

    let log = flags.audit_log(AuditQuery::recent(10)).await.unwrap();
    let summary: Vec<_> = log
        .iter()
        .map(|entry| {
            (
                entry.sequence,
                entry.flag.as_str(),
                entry.action,
                entry.old_value,
                entry.new_value,
                entry.who.as_str(),
                entry.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                1,
                "use_v2_coordinator",
                AuditAction::Set,
                FlagValue::Off,
                percent(10),
                "alice",
                "canary"
            ),
            (
                2,
                "use_v2_coordinator",
                AuditAction::BulkApply,
                percent(10),
                percent(50),
                "rollout-plan",
                "phase 2"
            ),
            (
                3,
                "use_reliable_messaging",
                AuditAction::BulkApply,
                FlagValue::Off,
                FlagValue::On,
                "rollout-plan",
                "phase 2"
            ),
            (
                4,
                "use_v2_coordinator",
                AuditAction::Reset,
                percent(50),
                FlagValue::Off,
                "bob",
                "rollback"
            ),
        ]
    );
    assert_eq!(log[0].at, epoch());
    assert_eq!(log[1].at, epoch() + Duration::from_secs(30));

    let only = flags
        .audit_log(AuditQuery::recent(1).for_flag("use_v2_coordinator"))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].sequence, 4);
}

#[tokio::test]
async fn subscribers_get_one_change_per_write() {
    let flags = open().await;
    let mut changes = flags.subscribe();
    let written = flags
        .apply(
            [
                ("use_persistent_agents", FlagValue::On),
                ("use_new_error_handling", percent(20)),
                ("enforce_supervised_tasks", FlagValue::On),
            ],
            by("plan"),
        )
        .await
        .unwrap();
    let received = changes.try_recv().unwrap();
    assert_eq!(received, written);
    assert_eq!(received.entries().len(), 3);
    assert_eq!(received.version(), flags.snapshot().version());
    assert!(changes.try_recv().is_err(), "one write, one change");

    // An empty bulk apply changes nothing and broadcasts nothing.
    let empty = flags
        .apply(std::iter::empty::<(&str, FlagValue)>(), by("plan"))
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert!(changes.try_recv().is_err());
}

#[test]
fn changes_are_counted_and_percentages_gauged() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let flags = open().await;
            flags
                .set("use_v2_coordinator", percent(25), by("t"))
                .await
                .unwrap();
            flags
                .set("use_v2_coordinator", percent(25), by("t"))
                .await
                .unwrap(); // no change
            flags
                .set("use_v2_coordinator", FlagValue::On, by("t"))
                .await
                .unwrap();
            flags
                .set("use_reliable_messaging", FlagValue::Off, by("t"))
                .await
                .unwrap(); // no change
        });
    });
    let mut counted = Vec::new();
    let mut gauged = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let flag = key
            .labels()
            .find(|label| label.key() == "flag")
            .map(|label| label.value().to_owned())
            .unwrap();
        match (key.name(), value) {
            (FLAG_CHANGES_TOTAL, DebugValue::Counter(count)) => counted.push((flag, count)),
            (FLAG_ROLLOUT_PERCENTAGE, DebugValue::Gauge(gauge)) => {
                gauged.push((flag, gauge.into_inner()))
            }
            other => panic!("unexpected metric {other:?}"),
        }
    }
    assert_eq!(counted, vec![("use_v2_coordinator".to_owned(), 2)]);
    gauged.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(gauged.len(), 6, "every flag has a gauge from start-up");
    let v2 = gauged
        .iter()
        .find(|(flag, _)| flag == "use_v2_coordinator")
        .unwrap();
    assert_eq!(v2.1, 100.0);
    let messaging = gauged
        .iter()
        .find(|(flag, _)| flag == "use_reliable_messaging")
        .unwrap();
    assert_eq!(messaging.1, 0.0);
}
