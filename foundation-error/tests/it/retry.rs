use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use foundation_error::{Error, ErrorCode, Jitter, RetryPolicy, retry};
use proptest::prelude::*;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn an_infrastructure_error_twice_then_success_takes_three_calls() {
    let calls = AtomicU32::new(0);
    let result = retry(&RetryPolicy::default(), || async {
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err(Error::new(ErrorCode::NETWORK_ERROR, "connection reset")),
            _ => Ok("done"),
        }
    })
    .await;
    assert_eq!(result.unwrap(), "done");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn business_and_validation_errors_are_tried_once() {
    for error in [
        Error::new(ErrorCode::INSUFFICIENT_FUNDS, "balance too low"),
        Error::validation("bad amount"),
    ] {
        let calls = AtomicU32::new(0);
        let result = retry(&RetryPolicy::default(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            let error = error.clone();
            async move { Err::<(), _>(error) }
        })
        .await;
        let returned = result.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(returned.code(), error.code());
        assert_eq!(returned.attempts(), Some(1));
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_is_not_retried() {
    let calls = AtomicU32::new(0);
    let result = retry(&RetryPolicy::default(), || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(Error::new(ErrorCode::CIRCUIT_OPEN, "payments breaker open"))
    })
    .await;
    assert_eq!(result.unwrap_err().attempts(), Some(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn delays_follow_the_backoff_formula_and_attempts_are_recorded() {
    let policy = RetryPolicy::default()
        .max_attempts(5)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(300));
    let started = Instant::now();
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let error = retry(&policy, || {
        times.lock().unwrap().push(started.elapsed());
        async { Err::<(), _>(Error::timeout("slow")) }
    })
    .await
    .unwrap_err();
    assert_eq!(error.attempts(), Some(5));
    let times = times.lock().unwrap().clone();
    let ms = |millis| Duration::from_millis(millis);
    // Delays 100, 200, then capped at 300, 300.
    assert_eq!(times, vec![ms(0), ms(100), ms(300), ms(600), ms(900)]);
}

#[tokio::test(start_paused = true)]
async fn external_service_errors_wait_their_fixed_delay() {
    let started = Instant::now();
    let times = std::sync::Mutex::new(Vec::new());
    let _ = retry(&RetryPolicy::default(), || {
        times.lock().unwrap().push(started.elapsed());
        async { Err::<(), _>(Error::new(ErrorCode::EXTERNAL_SERVICE_ERROR, "502")) }
    })
    .await;
    let secs = |seconds| Duration::from_secs(seconds);
    assert_eq!(*times.lock().unwrap(), vec![secs(0), secs(1), secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_stops_retries_and_long_attempts() {
    // The next delay would cross the deadline: stop with the last error.
    let policy = RetryPolicy::default()
        .max_attempts(10)
        .deadline(Duration::from_millis(250));
    let calls = AtomicU32::new(0);
    let error = retry(&policy, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(Error::timeout("slow"))
    })
    .await
    .unwrap_err();
    // Attempts at 0 ms and 100 ms; the next would start at 300 ms.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert_eq!(error.context_value("retry_stopped"), Some("deadline"));

    // An attempt that hangs is cut off at the deadline.
    let started = Instant::now();
    let error = retry(&policy, std::future::pending::<Result<(), Error>>)
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::DEADLINE_EXCEEDED);
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(error.attempts(), Some(1));
}

proptest! {
    #[test]
    fn backoff_without_jitter_is_min_of_doubling_and_cap(
        base_ms in 1u64..10_000,
        cap_ms in 1u64..100_000,
        retry_number in 1u32..80,
    ) {
        let policy = RetryPolicy::default()
            .base_delay(Duration::from_millis(base_ms))
            .max_delay(Duration::from_millis(cap_ms));
        let expected = if retry_number > 40 {
            Duration::from_millis(cap_ms)
        } else {
            Duration::from_millis(base_ms.saturating_mul(1 << (retry_number - 1)).min(cap_ms))
        };
        prop_assert_eq!(policy.backoff_delay(retry_number), expected);
        prop_assert_eq!(policy.delay_for(ErrorCode::TIMEOUT, retry_number), expected);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_backoff(
        base_ms in 1u64..10_000,
        cap_ms in 1u64..100_000,
        retry_number in 1u32..80,
    ) {
        let policy = RetryPolicy::default()
            .base_delay(Duration::from_millis(base_ms))
            .max_delay(Duration::from_millis(cap_ms))
            .jitter(Jitter::Full);
        let bound = policy.backoff_delay(retry_number);
        let delay = policy.delay_for(ErrorCode::TIMEOUT, retry_number);
        prop_assert!(delay <= bound, "{:?} > {:?}", delay, bound);
        prop_assert!(bound <= Duration::from_millis(cap_ms));
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_measured_on_the_policys_clock() {
    let clock = foundation_error::clock::ManualClock::new();
    let policy = RetryPolicy::default()
        .max_attempts(10)
        .deadline(Duration::from_secs(1))
        .clock(clock.clone());
    let calls = AtomicU32::new(0);
    let error = retry(&policy, || {
        calls.fetch_add(1, Ordering::SeqCst);
        // Each attempt takes 600 ms by the policy's clock.
        clock.advance(Duration::from_millis(600));
        async { Err::<(), _>(Error::timeout("slow")) }
    })
    .await
    .unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the third could not begin in time"
    );
    assert_eq!(error.context_value("retry_stopped"), Some("deadline"));
    assert_eq!(error.attempts(), Some(2));
}
