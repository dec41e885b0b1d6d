//! The rate limiter: the original system's race tests on a real
//! multi-thread runtime (on a manual clock, so no window can roll mid-test),
//! window rolling under paused tokio time, errors, cleanup, metrics, and a
//! model-based property test.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foundation_core::clock::ManualClock;
use foundation_core::rate_limiter::RATE_LIMITER_CHECKS_TOTAL;
use foundation_core::rate_limiter::{Decision, RateLimiter};
use foundation_error::ErrorCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use proptest::prelude::*;

use crate::support::{Metrics, labels};

fn manual() -> (RateLimiter, ManualClock) {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .clock(clock.clone())
        .build()
        .expect("valid");
    (limiter, clock)
}

/// Runs `tasks` concurrent checks of `key` on a multi-thread runtime, all
/// released together; returns (allowed, denied).
async fn concurrent_checks(
    limiters: &RateLimiter,
    id: &str,
    key: &str,
    tasks: usize,
) -> (usize, usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let limiters = limiters.clone();
        let barrier = Arc::clone(&barrier);
        let (id, key) = (id.to_owned(), key.to_owned());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            limiters.check(&id, &key).expect("configured")
        }));
    }
    let mut allowed = 0;
    let mut denied = 0;
    for handle in handles {
        match handle.await.expect("the task does not panic") {
            Decision::Allowed { .. } => allowed += 1,
            Decision::Denied { .. } => denied += 1,
        }
    }
    (allowed, denied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_checks_at_100_per_second_allow_exactly_100() {
    let (limiters, _clock) = manual();
    limiters
        .configure("api", 100, Duration::from_millis(1_000))
        .expect("valid");
    // Twenty rounds on fresh keys, to give the race many chances.
    for round in 0..20 {
        let key = format!("client-{round}");
        let (allowed, denied) = concurrent_checks(&limiters, "api", &key, 200).await;
        assert_eq!((allowed, denied), (100, 100), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_rapid_calls_at_10_per_100_ms_give_10_and_10() {
    let (limiters, _clock) = manual();
    let limiter = limiters
        .configure("burst", 10, Duration::from_millis(100))
        .expect("valid");
    let decisions: Vec<Decision> = (0..20)
        .map(|_| limiter.check("user").expect("configured"))
        .collect();
    let remaining: Vec<u64> = decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Allowed { remaining } => Some(*remaining),
            Decision::Denied { .. } => None,
        })
        .collect();
    assert_eq!(remaining, (0..10).rev().collect::<Vec<u64>>());
    assert!(decisions[10..].iter().all(|decision| *decision
        == Decision::Denied {
            retry_after: Duration::from_millis(100)
        }));
    // The same, concurrently.
    let (allowed, denied) = concurrent_checks(&limiters, "burst", "other-user", 20).await;
    assert_eq!((allowed, denied), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_keys_with_fifteen_concurrent_calls_each_allow_exactly_10_per_key() {
    let (limiters, _clock) = manual();
    limiters
        .configure("per-key", 10, Duration::from_secs(1))
        .expect("valid");
    let barrier = Arc::new(tokio::sync::Barrier::new(75));
    let mut handles = Vec::new();
    for key in 0..5 {
        for _ in 0..15 {
            let limiters = limiters.clone();
            let barrier = Arc::clone(&barrier);
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                let decision = limiters
                    .check("per-key", &format!("key-{key}"))
                    .expect("configured");
                (key, decision.is_allowed())
            }));
        }
    }
    let mut allowed_per_key = [0; 5];
    for handle in handles {
        let (key, allowed) = handle.await.expect("the task does not panic");
        allowed_per_key[key] += usize::from(allowed);
    }
    assert_eq!(allowed_per_key, [10; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_limit_is_available_again_after_the_window_rolls() {
    let (limiters, clock) = manual();
    limiters
        .configure("api", 100, Duration::from_millis(1_000))
        .expect("valid");
    assert_eq!(
        concurrent_checks(&limiters, "api", "client", 200).await,
        (100, 100)
    );
    clock.advance(Duration::from_millis(999));
    assert_eq!(
        concurrent_checks(&limiters, "api", "client", 10).await,
        (0, 10)
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        concurrent_checks(&limiters, "api", "client", 200).await,
        (100, 100)
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_clock_follows_paused_tokio_time() {
    let limiters = RateLimiter::new();
    let limiter = limiters
        .configure("api", 2, Duration::from_secs(1))
        .expect("valid");
    assert!(limiter.check("k").expect("configured").is_allowed());
    assert!(limiter.check("k").expect("configured").is_allowed());
    assert_eq!(
        limiter.check("k").expect("configured"),
        Decision::Denied {
            retry_after: Duration::from_secs(1)
        }
    );
    tokio::time::advance(Duration::from_millis(400)).await;
    assert_eq!(
        limiter.status("k").expect("configured").resets_in,
        Duration::from_millis(600)
    );
    tokio::time::advance(Duration::from_millis(600)).await;
    assert_eq!(
        limiter.check("k").expect("configured"),
        Decision::Allowed { remaining: 1 }
    );
}

#[test]
fn windows_are_aligned_to_multiples_of_the_window() {
    let (limiters, clock) = manual();
    let limiter = limiters
        .configure("aligned", 1, Duration::from_millis(100))
        .expect("valid");
    clock.advance(Duration::from_millis(250));
    assert!(limiter.check("k").expect("configured").is_allowed());
    // The window is [200, 300) ms: it ends 50 ms from now, not 100.
    assert_eq!(
        limiter.check("k").expect("configured"),
        Decision::Denied {
            retry_after: Duration::from_millis(50)
        }
    );
    clock.advance(Duration::from_millis(50));
    assert!(limiter.check("k").expect("configured").is_allowed());
}

#[test]
fn keys_and_limiters_are_counted_separately() {
    let (limiters, _clock) = manual();
    limiters
        .configure("a", 1, Duration::from_secs(1))
        .expect("valid");
    limiters
        .configure("b", 1, Duration::from_secs(1))
        .expect("valid");
    assert!(limiters.check("a", "x").expect("configured").is_allowed());
    assert!(!limiters.check("a", "x").expect("configured").is_allowed());
    assert!(limiters.check("a", "y").expect("configured").is_allowed());
    assert!(limiters.check("b", "x").expect("configured").is_allowed());
}

#[test]
fn an_unknown_limiter_is_a_clear_error() {
    let (limiters, _clock) = manual();
    for error in [
        limiters.check("missing", "k").unwrap_err(),
        limiters.status("missing", "k").unwrap_err(),
        limiters.reset("missing", "k").unwrap_err(),
        limiters.enforce("missing", "k").unwrap_err(),
        limiters.remove("missing").unwrap_err(),
        limiters.limiter("missing").unwrap_err(),
    ] {
        assert_eq!(error.code(), ErrorCode::DATA_NOT_FOUND);
        assert_eq!(error.context_value("limiter"), Some("missing"));
        assert!(error.message().contains("no rate limiter"), "{error}");
    }
}

#[test]
fn invalid_configuration_is_a_validation_error() {
    let (limiters, _clock) = manual();
    let cases = [
        ("api", 0, Duration::from_secs(1), "limit"),
        ("api", 10, Duration::ZERO, "window"),
        ("", 10, Duration::from_secs(1), "id"),
        ("api", u64::MAX, Duration::from_secs(1), "limit"),
    ];
    for (id, limit, window, field) in cases {
        let error = limiters.configure(id, limit, window).unwrap_err();
        assert_eq!(error.code(), ErrorCode::INVALID_CONFIG_VALUE, "{error}");
        assert_eq!(error.context_value("field"), Some(field), "{error}");
    }
    assert!(limiters.ids().is_empty());
    let error = RateLimiter::builder()
        .sweep_threshold(0)
        .build()
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::INVALID_CONFIG_VALUE);
}

#[test]
fn status_reports_without_counting() {
    let (limiters, clock) = manual();
    limiters
        .configure("api", 5, Duration::from_secs(1))
        .expect("valid");
    let fresh = limiters.status("api", "k").expect("configured");
    assert_eq!((fresh.limit, fresh.remaining), (5, 5));
    assert_eq!(fresh.window, Duration::from_secs(1));
    assert_eq!(limiters.bucket_count(), 0, "status creates no bucket");
    limiters.check("api", "k").expect("configured");
    limiters.check("api", "k").expect("configured");
    clock.advance(Duration::from_millis(300));
    let status = limiters.status("api", "k").expect("configured");
    assert_eq!(status.remaining, 3);
    assert_eq!(status.resets_in, Duration::from_millis(700));
    assert_eq!(
        limiters.status("api", "k").expect("configured").remaining,
        3
    );
}

#[test]
fn enforce_turns_a_denial_into_a_rate_limited_error() {
    let (limiters, _clock) = manual();
    let limiter = limiters
        .configure("api", 1, Duration::from_secs(2))
        .expect("valid");
    assert_eq!(limiter.enforce("k").expect("allowed"), 0);
    let error = limiter.enforce("k").unwrap_err();
    assert_eq!(error.code(), ErrorCode::RATE_LIMITED);
    assert!(error.is_retryable());
    assert_eq!(error.context_value("limiter"), Some("api"));
    assert_eq!(error.context_value("key"), Some("k"));
    assert_eq!(error.context_value("retry_after_ms"), Some("2000"));
}

#[test]
fn reset_restores_the_full_limit() {
    let (limiters, _clock) = manual();
    let limiter = limiters
        .configure("api", 1, Duration::from_secs(1))
        .expect("valid");
    limiter.check("a").expect("configured");
    limiter.check("b").expect("configured");
    limiters.reset("api", "a").expect("configured");
    assert!(limiter.check("a").expect("configured").is_allowed());
    assert!(!limiter.check("b").expect("configured").is_allowed());
    limiter.reset_all().expect("configured");
    assert!(limiter.check("a").expect("configured").is_allowed());
    assert!(limiter.check("b").expect("configured").is_allowed());
}

#[test]
fn reconfiguring_keeps_handles_working() {
    let (limiters, _clock) = manual();
    let handle = limiters
        .configure("api", 2, Duration::from_secs(1))
        .expect("valid");
    handle.check("k").expect("configured");
    // The same configuration again changes nothing: the count is kept.
    let again = limiters
        .configure("api", 2, Duration::from_secs(1))
        .expect("valid");
    assert_eq!(
        again.check("k").expect("configured"),
        Decision::Allowed { remaining: 0 }
    );
    // A new limit starts over, and the old handle follows it.
    limiters
        .configure("api", 5, Duration::from_secs(1))
        .expect("valid");
    assert_eq!(handle.limit(), Some(5));
    assert_eq!(
        handle.check("k").expect("configured"),
        Decision::Allowed { remaining: 4 }
    );
    assert_eq!(limiters.ids(), vec!["api".to_owned()]);
}

#[test]
fn a_removed_limiter_fails_its_handles_clearly() {
    let (limiters, _clock) = manual();
    let handle = limiters
        .configure("api", 2, Duration::from_secs(1))
        .expect("valid");
    handle.check("k").expect("configured");
    limiters.remove("api").expect("configured");
    assert!(handle.is_removed());
    let error = handle.check("k").unwrap_err();
    assert_eq!(error.code(), ErrorCode::DATA_NOT_FOUND);
    assert!(error.message().contains("was removed"), "{error}");
    assert_eq!(
        limiters.check("api", "k").unwrap_err().code(),
        ErrorCode::DATA_NOT_FOUND
    );
    // Configured again, it starts empty; the old handle stays removed.
    let fresh = limiters
        .configure("api", 2, Duration::from_secs(1))
        .expect("valid");
    assert_eq!(
        fresh.check("k").expect("configured"),
        Decision::Allowed { remaining: 1 }
    );
    assert!(handle.check("k").is_err());
}

#[test]
fn an_explicit_sweep_removes_expired_windows_only() {
    let (limiters, clock) = manual();
    let limiter = limiters
        .configure("api", 3, Duration::from_secs(1))
        .expect("valid");
    for key in 0..100 {
        limiter.check(&format!("old-{key}")).expect("configured");
    }
    assert_eq!(limiters.sweep(), 0, "nothing has expired yet");
    clock.advance(Duration::from_secs(1));
    for key in 0..10 {
        limiter.check(&format!("new-{key}")).expect("configured");
    }
    assert_eq!(limiters.bucket_count(), 110);
    assert_eq!(limiters.sweep(), 100);
    assert_eq!(limiters.bucket_count(), 10);
    assert_eq!(
        limiter.status("new-0").expect("configured").remaining,
        2,
        "live counts survive a sweep"
    );
}

#[test]
fn checks_sweep_expired_windows_themselves() {
    let (limiters, clock) = manual();
    let limiter = limiters
        .configure("api", 3, Duration::from_secs(1))
        .expect("valid");
    for key in 0..5_000 {
        limiter.check(&format!("burst-{key}")).expect("configured");
    }
    assert_eq!(limiter.bucket_count(), 5_000);
    clock.advance(Duration::from_secs(1));
    // 5,000 new keys in the next window: the 5,000 expired buckets are
    // swept by the checks themselves, long before the map doubles.
    let mut peak = 0;
    for key in 0..5_000 {
        limiter.check(&format!("next-{key}")).expect("configured");
        peak = peak.max(limiter.bucket_count());
    }
    assert!(peak < 10_000, "peak {peak}");
    assert_eq!(
        limiter.bucket_count(),
        5_000,
        "only the live window is left"
    );
    assert!(peak > limiter.bucket_count(), "the count went back down");
    // Keys that keep coming back in each window do not grow the map.
    let (steady, clock) = manual();
    let limiter = steady
        .configure("steady", 3, Duration::from_secs(1))
        .expect("valid");
    for _ in 0..50 {
        for key in 0..20 {
            limiter.check(&format!("k-{key}")).expect("configured");
        }
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(limiter.bucket_count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeps_racing_with_checks_lose_no_count() {
    // 100 expired buckets and a sweep threshold of 1, so that sweeps run
    // (and remove buckets) while 8 tasks hammer 50 live keys and keep
    // making new ones: every live key is still allowed exactly its limit.
    let clock = ManualClock::new();
    let limiters = RateLimiter::builder()
        .clock(clock.clone())
        .sweep_threshold(1)
        .build()
        .expect("valid");
    let limiter = limiters
        .configure("api", 20, Duration::from_secs(1))
        .expect("valid");
    for key in 0..100 {
        limiter.check(&format!("expired-{key}")).expect("live");
    }
    clock.advance(Duration::from_secs(3));
    let mut handles = Vec::new();
    for task in 0..8 {
        let limiter = limiter.clone();
        handles.push(tokio::spawn(async move {
            let mut allowed: HashMap<u32, u32> = HashMap::new();
            for round in 0..40 {
                for key in 0..50 {
                    if limiter
                        .check(&format!("k-{key}"))
                        .expect("live")
                        .is_allowed()
                    {
                        *allowed.entry(key).or_default() += 1;
                    }
                }
                limiter
                    .check(&format!("churn-{task}-{round}"))
                    .expect("live");
            }
            allowed
        }));
    }
    let mut total: HashMap<u32, u32> = HashMap::new();
    for handle in handles {
        for (key, count) in handle.await.expect("the task does not panic") {
            *total.entry(key).or_default() += count;
        }
    }
    assert_eq!(total.len(), 50);
    assert!(total.values().all(|count| *count == 20), "{total:?}");
    // The expired buckets were swept; the 50 live keys and 320 churn keys remain.
    assert_eq!(limiter.bucket_count(), 370);
}

#[test]
fn metrics_count_allowed_and_denied_per_limiter_not_per_key() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    metrics::with_local_recorder(&recorder, || {
        let limiters = RateLimiter::builder()
            .clock(clock.clone())
            .build()
            .expect("valid");
        limiters
            .configure("api", 2, Duration::from_secs(1))
            .expect("valid");
        for key in ["a", "a", "a", "b", "b", "b", "b"] {
            limiters.check("api", key).expect("configured");
        }
    });
    let mut metrics = Metrics::take(&snapshotter);
    let found = metrics.named(RATE_LIMITER_CHECKS_TOTAL);
    assert_eq!(
        found,
        vec![
            (
                labels(&[("limiter", "api"), ("outcome", "allowed")]),
                DebugValue::Counter(4)
            ),
            (
                labels(&[("limiter", "api"), ("outcome", "denied")]),
                DebugValue::Counter(3)
            ),
        ]
    );
}

#[derive(Debug, Clone)]
enum Step {
    Check(u8),
    Advance(u64),
    Sweep,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..3).prop_map(Step::Check),
        2 => (0u64..250).prop_map(Step::Advance),
        1 => Just(Step::Sweep),
    ]
}

proptest! {
    /// The limiter agrees with a model that counts checks per (key, window
    /// index) in a plain map: same decisions, same remaining counts, same
    /// retry-after times; sweeps change nothing observable.
    #[test]
    fn the_limiter_matches_a_fixed_window_model(
        limit in 1u64..5,
        window_ms in 1u64..200,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let (limiters, clock) = manual();
        let window = Duration::from_millis(window_ms);
        let limiter = limiters.configure("model", limit, window).expect("valid");
        let mut now_ms = 0u64;
        let mut counts: HashMap<(u8, u64), u64> = HashMap::new();
        for step in steps {
            match step {
                Step::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    now_ms += ms;
                }
                Step::Sweep => {
                    limiter.sweep();
                }
                Step::Check(key) => {
                    let index = now_ms / window_ms;
                    let count = counts.entry((key, index)).or_default();
                    let expected = if *count < limit {
                        *count += 1;
                        Decision::Allowed { remaining: limit - *count }
                    } else {
                        Decision::Denied {
                            retry_after: Duration::from_millis((index + 1) * window_ms - now_ms),
                        }
                    };
                    let actual = limiter.check(&format!("key-{key}")).expect("configured");
                    prop_assert_eq!(actual, expected);
                }
            }
        }
    }
}
