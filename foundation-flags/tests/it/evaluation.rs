//! Evaluation: is_enabled semantics, details in OpenFeature terms, unknown
//! flags, handles and snapshots agreeing.

use foundation_error::ErrorCode;
use foundation_flags::{
    EvaluationContext, EvaluationErrorCode, Flag, FlagValue, Flags, Reason, normalized_bucket,
};

use crate::support::{by, open, percent};

#[tokio::test]
async fn is_enabled_is_true_only_for_on_and_a_hundred_percent() {
    let flags = open().await;
    let handle = flags.handle("use_v2_coordinator").unwrap();
    let cases = [
        (FlagValue::Off, false),
        (percent(0), false),
        (percent(99), false),
        (percent(100), true),
        (FlagValue::On, true),
    ];
    for (value, expected) in cases {
        flags
            .set("use_v2_coordinator", value, by("t"))
            .await
            .unwrap();
        assert_eq!(handle.is_enabled(), expected, "{value}");
        assert_eq!(flags.is_enabled("use_v2_coordinator"), expected, "{value}");
        assert_eq!(flags.snapshot().is_enabled("use_v2_coordinator"), expected);
        assert_eq!(handle.value(), value);
    }
}

#[tokio::test]
async fn is_enabled_for_follows_the_bucket() {
    let flags = open().await;
    let handle = flags.handle("use_v2_coordinator").unwrap();
    flags
        .set("use_v2_coordinator", percent(30), by("t"))
        .await
        .unwrap();
    for n in 0..1_000 {
        let id = format!("coordinator-{n}");
        let expected = normalized_bucket("use_v2_coordinator", &id) <= 30;
        assert_eq!(handle.is_enabled_for(&id), expected);
        assert_eq!(flags.is_enabled_for("use_v2_coordinator", &id), expected);
    }
    flags
        .set("use_v2_coordinator", FlagValue::On, by("t"))
        .await
        .unwrap();
    assert!(handle.is_enabled_for("anyone"));
    flags
        .set("use_v2_coordinator", FlagValue::Off, by("t"))
        .await
        .unwrap();
    assert!(!handle.is_enabled_for("anyone"));
}

#[tokio::test]
async fn evaluate_reports_reasons() {
    let flags = open().await;
    let key = EvaluationContext::for_key("user-1");
    let no_key = EvaluationContext::default();

    flags
        .set("use_v2_coordinator", FlagValue::On, by("t"))
        .await
        .unwrap();
    let details = flags.evaluate("use_v2_coordinator", key, false);
    assert_eq!((details.value, details.reason), (true, Reason::Static));
    assert_eq!(details.variant(), Some("on"));
    assert_eq!(details.error_code, None);

    flags
        .set("use_v2_coordinator", FlagValue::Off, by("t"))
        .await
        .unwrap();
    let details = flags.evaluate("use_v2_coordinator", key, true);
    assert_eq!((details.value, details.reason), (false, Reason::Disabled));
    assert_eq!(details.variant(), Some("off"));

    flags
        .set("use_v2_coordinator", percent(50), by("t"))
        .await
        .unwrap();
    let details = flags.evaluate("use_v2_coordinator", key, false);
    let bucket = normalized_bucket("use_v2_coordinator", "user-1");
    assert_eq!(details.reason, Reason::Split);
    assert_eq!(details.bucket, Some(bucket));
    assert_eq!(details.value, bucket <= 50);
    assert_eq!(details.flag_value, Some(percent(50)));

    // Without a targeting key nothing can be bucketed: the keyless answer.
    let details = flags.evaluate("use_v2_coordinator", no_key, true);
    assert_eq!((details.value, details.reason), (false, Reason::Default));
    flags
        .set("use_v2_coordinator", percent(100), by("t"))
        .await
        .unwrap();
    let details = flags.evaluate("use_v2_coordinator", no_key, false);
    assert_eq!((details.value, details.reason), (true, Reason::Default));
}

#[tokio::test]
async fn unknown_flags_give_the_callers_default_and_never_panic() {
    let flags = open().await;
    for default in [false, true] {
        let details = flags.evaluate("no_such_flag", EvaluationContext::for_key("u"), default);
        assert_eq!(details.value, default);
        assert_eq!(details.reason, Reason::Error);
        assert_eq!(details.error_code, Some(EvaluationErrorCode::FlagNotFound));
        assert_eq!(details.error_code.unwrap().as_str(), "FLAG_NOT_FOUND");
        assert_eq!(details.variant(), None);
        let snapshot_details =
            flags
                .snapshot()
                .evaluate("no_such_flag", EvaluationContext::default(), default);
        assert_eq!(snapshot_details, details);
    }
    assert!(!flags.is_enabled("no_such_flag"));
    assert!(!flags.is_enabled_for("no_such_flag", "u"));
    assert_eq!(
        flags.handle("no_such_flag").unwrap_err().code(),
        ErrorCode::FLAG_NOT_FOUND
    );
    assert_eq!(
        flags.value("no_such_flag").unwrap_err().code(),
        ErrorCode::FLAG_NOT_FOUND
    );
    assert_eq!(flags.snapshot().value("no_such_flag"), None);
}

#[tokio::test]
async fn snapshots_are_immutable_views_and_handles_read_live() {
    let flags = open().await;
    let handle = flags.handle("use_reliable_messaging").unwrap();
    let before = flags.snapshot();
    flags
        .set("use_reliable_messaging", FlagValue::On, by("t"))
        .await
        .unwrap();
    assert_eq!(before.value_of(&handle), Some(FlagValue::Off));
    assert_eq!(flags.snapshot().value_of(&handle), Some(FlagValue::On));
    assert!(handle.is_enabled());
    assert_eq!(flags.snapshot().version(), before.version() + 1);
    let names: Vec<&str> = before.iter().map(|(name, _)| name).collect();
    assert_eq!(names.len(), 6);
    assert_eq!(names[0], "use_persistent_agents");

    // A handle of other flags is matched by name.
    let mut builder = Flags::builder();
    builder.declare(Flag::new("use_reliable_messaging", "d", percent(5)));
    let other = builder.open().await.unwrap();
    let foreign = other.handle("use_reliable_messaging").unwrap();
    assert_eq!(flags.snapshot().value_of(&foreign), Some(FlagValue::On));
}

#[tokio::test]
async fn handles_outlive_the_flags() {
    let flags = open().await;
    flags
        .set("use_sync_test_apis", FlagValue::On, by("t"))
        .await
        .unwrap();
    let handle = flags.handle("use_sync_test_apis").unwrap();
    drop(flags);
    assert!(handle.is_enabled());
    assert_eq!(handle.name(), "use_sync_test_apis");
    assert_eq!(
        handle.declaration().description(),
        "gates use_sync_test_apis"
    );
}

#[tokio::test]
async fn long_names_that_differ_only_in_the_middle_are_told_apart() {
    // The name index hashes at most 32 bytes of a name; these two agree on
    // them and must still resolve to their own flags.
    let first = format!("{}a{}", "x".repeat(20), "y".repeat(27));
    let second = format!("{}b{}", "x".repeat(20), "y".repeat(27));
    let mut builder = Flags::builder();
    builder
        .declare(Flag::new(first.as_str(), "d", FlagValue::On))
        .declare(Flag::new(second.as_str(), "d", FlagValue::Off));
    let flags = builder.open().await.unwrap();
    assert!(flags.is_enabled(&first));
    assert!(!flags.is_enabled(&second));
    assert_eq!(flags.handle(&second).unwrap().name(), second);
}
