use std::time::Duration;

use foundation_error::{AlertRule, Category, Error, ErrorCode, ErrorTracker, Severity};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::broadcast::error::TryRecvError;

fn drain(
    alerts: &mut tokio::sync::broadcast::Receiver<foundation_error::ErrorAlert>,
) -> Vec<foundation_error::ErrorAlert> {
    let mut received = Vec::new();
    loop {
        match alerts.try_recv() {
            Ok(alert) => received.push(alert),
            Err(TryRecvError::Empty) => return received,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn fifteen_errors_of_one_code_raise_exactly_one_alert() {
    let tracker = ErrorTracker::new();
    let mut alerts = tracker.subscribe();
    for index in 0..15 {
        tracker.track(&Error::timeout(format!("database timeout #{index}")));
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let received = drain(&mut alerts);
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].code, ErrorCode::TIMEOUT);
    assert!(received[0].count >= 10);
    assert_eq!(received[0].window, Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn errors_spread_wider_than_the_window_raise_none() {
    let tracker = ErrorTracker::new();
    let mut alerts = tracker.subscribe();
    // One error every 40 s: any 5-minute window holds at most 8.
    for _ in 0..30 {
        tracker.track(&Error::timeout("database timeout"));
        tokio::time::advance(Duration::from_secs(40)).await;
    }
    assert!(drain(&mut alerts).is_empty());
    assert_eq!(tracker.total_count(ErrorCode::TIMEOUT), 30);
}

#[tokio::test(start_paused = true)]
async fn the_rule_rearms_after_its_window() {
    let tracker = ErrorTracker::new();
    let mut alerts = tracker.subscribe();
    for _ in 0..40 {
        tracker.track(&Error::timeout("burst one"));
    }
    assert_eq!(drain(&mut alerts).len(), 1);
    tokio::time::advance(Duration::from_secs(301)).await;
    for _ in 0..10 {
        tracker.track(&Error::timeout("burst two"));
    }
    assert_eq!(drain(&mut alerts).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn codes_are_judged_separately() {
    let tracker = ErrorTracker::new();
    let mut alerts = tracker.subscribe();
    for _ in 0..9 {
        tracker.track(&Error::timeout("a"));
        tracker.track(&Error::new(ErrorCode::NETWORK_ERROR, "b"));
    }
    assert!(drain(&mut alerts).is_empty());
    tracker.track(&Error::new(ErrorCode::NETWORK_ERROR, "b"));
    let received = drain(&mut alerts);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].code, ErrorCode::NETWORK_ERROR);
}

#[tokio::test(start_paused = true)]
async fn recent_counts_slide_with_time() {
    let tracker = ErrorTracker::builder().clear_rules().build().unwrap();
    tracker.track(&Error::timeout("a"));
    tracker.track(&Error::business("b"));
    tokio::time::advance(Duration::from_secs(30)).await;
    tracker.track(&Error::timeout("c"));

    let minute = Duration::from_secs(60);
    assert_eq!(tracker.recent_count(ErrorCode::TIMEOUT, minute), 2);
    assert_eq!(
        tracker.recent_count(ErrorCode::TIMEOUT, Duration::from_secs(10)),
        1
    );
    assert_eq!(
        tracker.recent_count_by_category(Category::Infrastructure, minute),
        2
    );
    assert_eq!(
        tracker.recent_count_by_category(Category::Business, minute),
        1
    );
    assert_eq!(tracker.recent_total(minute), 3);
    assert_eq!(tracker.recent_count(ErrorCode::DATA_CORRUPTION, minute), 0);

    tokio::time::advance(Duration::from_secs(45)).await;
    assert_eq!(tracker.recent_count(ErrorCode::TIMEOUT, minute), 1);
    assert_eq!(tracker.recent_total(minute), 1);
    assert_eq!(
        tracker.totals(),
        vec![
            (ErrorCode::TIMEOUT, 2),
            (ErrorCode::BUSINESS_RULE_VIOLATION, 1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn custom_rules_and_invalid_rules() {
    let tracker = ErrorTracker::builder()
        .clear_rules()
        .rule(AlertRule::for_code(
            ErrorCode::DATA_CORRUPTION,
            1,
            Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    let mut alerts = tracker.subscribe();
    for _ in 0..20 {
        tracker.track(&Error::timeout("not watched"));
    }
    tracker.track(&Error::new(ErrorCode::DATA_CORRUPTION, "bad page"));
    let received = drain(&mut alerts);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].code, ErrorCode::DATA_CORRUPTION);
    assert_eq!(received[0].count, 1);

    let invalid = ErrorTracker::builder()
        .rule(AlertRule::each_code(0, Duration::from_secs(1)))
        .build()
        .unwrap_err();
    assert_eq!(invalid.code(), ErrorCode::INVALID_CONFIG_VALUE);
}

#[tokio::test(start_paused = true)]
async fn tracking_is_safe_from_many_threads() {
    let tracker = ErrorTracker::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..1_000 {
                    tracker.track(&Error::timeout("x"));
                }
            });
        }
    });
    assert_eq!(tracker.total_count(ErrorCode::TIMEOUT), 4_000);
}

#[test]
fn every_tracked_error_is_counted_in_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let tracker = ErrorTracker::new();
        tracker.track(&Error::timeout("a"));
        tracker.track(&Error::timeout("b").with_severity(Severity::Critical));
        tracker.track(&Error::timeout("c"));
    });
    let mut found = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != "foundation_errors_total" {
            continue;
        }
        let label = |name: &str| {
            key.labels()
                .find(|label| label.key() == name)
                .map(|label| label.value().to_owned())
                .unwrap()
        };
        assert_eq!(label("code"), "timeout");
        assert_eq!(label("category"), "infrastructure");
        if let DebugValue::Counter(count) = value {
            found.push((label("severity"), count));
        }
    }
    found.sort();
    assert_eq!(
        found,
        vec![("critical".to_owned(), 1), ("medium".to_owned(), 2)]
    );
}

#[test]
fn a_manual_clock_drives_the_windows_without_a_runtime() {
    let clock = foundation_error::clock::ManualClock::new();
    let tracker = ErrorTracker::builder()
        .clear_rules()
        .clock(clock.clone())
        .build()
        .expect("valid");
    tracker.track(&Error::timeout("slow"));
    clock.advance(Duration::from_secs(30));
    tracker.track(&Error::timeout("slow"));
    assert_eq!(
        tracker.recent_count(ErrorCode::TIMEOUT, Duration::from_secs(60)),
        2
    );
    assert_eq!(
        tracker.recent_count(ErrorCode::TIMEOUT, Duration::from_secs(10)),
        1
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        tracker.recent_count(ErrorCode::TIMEOUT, Duration::from_secs(60)),
        0
    );
    assert_eq!(tracker.total_count(ErrorCode::TIMEOUT), 2);
}
