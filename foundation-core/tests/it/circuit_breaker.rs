//! The circuit breaker: the state machine under paused time, the half-open
//! probe limit (also under real concurrency), classification of outcomes,
//! the caller's task, retry composition, events, metrics, and a
//! model-based property test of the synchronous API.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use foundation_core::circuit_breaker::{
    CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL, CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
    CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerRegistry, CircuitState, StateChange,
    TransitionReason,
};
use foundation_core::clock::ManualClock;
use foundation_error::{Category, Error, ErrorCode, RetryPolicy, retry};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use proptest::prelude::*;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::support::{Metrics, block_on_without_runtime, labels, yield_until};

fn down() -> Error {
    Error::new(ErrorCode::NETWORK_ERROR, "connection refused")
}

async fn fail(breaker: &CircuitBreaker) -> Error {
    breaker
        .call(async { Err::<(), _>(down()) })
        .await
        .expect_err("the operation fails")
}

async fn succeed(breaker: &CircuitBreaker) -> Result<u32, Error> {
    breaker.call(async { Ok(7) }).await
}

/// A breaker on a manual clock, opened by `trip`, whose reset timeout
/// (60 s) has passed: the next call is a probe.
fn ready_to_probe(probes: u32) -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder("dependency")
        .half_open_probes(probes)
        .clock(clock.clone())
        .build()
        .expect("valid");
    breaker.trip();
    clock.advance(Duration::from_secs(60));
    (breaker, clock)
}

/// A call in flight on its own task, finished by sending its outcome.
struct HeldCall {
    task: JoinHandle<Result<(), Error>>,
    finish: oneshot::Sender<Result<(), Error>>,
}

impl HeldCall {
    async fn complete(self, outcome: Result<(), Error>) -> Result<(), Error> {
        self.finish.send(outcome).expect("the call is waiting");
        self.task.await.expect("the task does not panic")
    }
}

/// Starts a call that waits for its outcome, and waits until the operation
/// runs (so it was admitted).
async fn hold_call(breaker: &CircuitBreaker) -> HeldCall {
    let (finish, outcome) = oneshot::channel::<Result<(), Error>>();
    let started = Arc::new(AtomicBool::new(false));
    let running = Arc::clone(&started);
    let breaker = breaker.clone();
    let task = tokio::spawn(async move {
        breaker
            .call(async move {
                running.store(true, Ordering::SeqCst);
                outcome
                    .await
                    .unwrap_or_else(|_| Err(Error::system("the test dropped the call")))
            })
            .await
    });
    yield_until(|| started.load(Ordering::SeqCst)).await;
    HeldCall { task, finish }
}

fn drain(
    events: &mut broadcast::Receiver<StateChange>,
) -> Vec<(CircuitState, CircuitState, TransitionReason)> {
    let mut seen = Vec::new();
    while let Ok(change) = events.try_recv() {
        seen.push((change.from, change.to, change.reason));
    }
    seen
}

#[test]
fn the_defaults_are_the_original_systems() {
    let breaker = CircuitBreaker::new("defaults").expect("valid");
    let config = breaker.config();
    assert_eq!(config.failure_threshold, 5);
    assert_eq!(config.success_threshold, 3);
    assert_eq!(config.reset_timeout, Duration::from_secs(60));
    assert_eq!(config.call_timeout, Duration::from_secs(5));
    assert_eq!(config.half_open_probes, 1);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.id(), "defaults");
}

type Misconfigure = fn(&mut CircuitBreakerBuilder);

#[test]
fn invalid_configuration_is_a_validation_error() {
    let cases: [(&str, Misconfigure); 6] = [
        ("failure_threshold", |builder| {
            builder.failure_threshold(0);
        }),
        ("success_threshold", |builder| {
            builder.success_threshold(0);
        }),
        ("half_open_probes", |builder| {
            builder.half_open_probes(u32::MAX);
        }),
        ("reset_timeout", |builder| {
            builder.reset_timeout(Duration::ZERO);
        }),
        ("call_timeout", |builder| {
            builder.call_timeout(Duration::ZERO);
        }),
        ("id", |_| {}),
    ];
    for (field, configure) in cases {
        let id = if field == "id" { "" } else { "breaker" };
        let mut builder = CircuitBreaker::builder(id);
        configure(&mut builder);
        let error = builder.build().unwrap_err();
        assert_eq!(error.code(), ErrorCode::INVALID_CONFIG_VALUE, "{error}");
        assert_eq!(error.category(), Category::Validation);
        assert_eq!(error.context_value("field"), Some(field), "{error}");
    }
}

#[tokio::test(start_paused = true)]
async fn five_consecutive_failures_open_it_and_a_success_clears_the_count() {
    let breaker = CircuitBreaker::new("payments").expect("valid");
    for _ in 0..4 {
        assert_eq!(fail(&breaker).await.code(), ErrorCode::NETWORK_ERROR);
    }
    assert_eq!(breaker.consecutive_failures(), 4);
    assert_eq!(succeed(&breaker).await.expect("closed"), 7);
    assert_eq!(breaker.consecutive_failures(), 0);
    for _ in 0..4 {
        fail(&breaker).await;
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_without_running_the_operation() {
    let breaker = CircuitBreaker::new("payments").expect("valid");
    breaker.trip();
    let ran = Cell::new(false);
    let error = breaker
        .call(async {
            ran.set(true);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(!ran.get());
    assert_eq!(error.code(), ErrorCode::CIRCUIT_OPEN);
    assert_eq!(error.category(), Category::Infrastructure);
    assert!(!error.is_retryable());
    assert_eq!(error.context_value("breaker"), Some("payments"));
    assert_eq!(error.context_value("state"), Some("open"));
    assert_eq!(error.context_value("retry_after_ms"), Some("60000"));
}

#[tokio::test(start_paused = true)]
async fn the_full_cycle_under_paused_time() {
    let breaker = CircuitBreaker::new("payments").expect("valid");
    let mut events = breaker.subscribe();
    for _ in 0..5 {
        fail(&breaker).await;
    }
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        succeed(&breaker).await.unwrap_err().code(),
        ErrorCode::CIRCUIT_OPEN
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    // Three successful probes, one at a time, close it.
    for expected in [
        CircuitState::HalfOpen,
        CircuitState::HalfOpen,
        CircuitState::Closed,
    ] {
        assert_eq!(succeed(&breaker).await.expect("a probe"), 7);
        assert_eq!(breaker.state(), expected);
    }
    assert_eq!(
        drain(&mut events),
        vec![
            (
                CircuitState::Closed,
                CircuitState::Open,
                TransitionReason::FailureThreshold
            ),
            (
                CircuitState::Open,
                CircuitState::HalfOpen,
                TransitionReason::ResetTimeoutElapsed
            ),
            (
                CircuitState::HalfOpen,
                CircuitState::Closed,
                TransitionReason::ProbesSucceeded
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_it_for_another_reset_timeout() {
    let breaker = CircuitBreaker::new("payments").expect("valid");
    let mut events = breaker.subscribe();
    breaker.trip();
    tokio::time::advance(Duration::from_secs(60)).await;
    succeed(&breaker).await.expect("the first probe");
    fail(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // The success count started over: three more probes are needed.
    for _ in 0..2 {
        succeed(&breaker).await.expect("a probe");
    }
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    let reasons: Vec<_> = drain(&mut events)
        .into_iter()
        .map(|(_, _, reason)| reason)
        .collect();
    assert_eq!(
        reasons,
        vec![
            TransitionReason::Tripped,
            TransitionReason::ResetTimeoutElapsed,
            TransitionReason::ProbeFailed,
            TransitionReason::ResetTimeoutElapsed,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_probe_limit_at_once() {
    let (breaker, _clock) = ready_to_probe(2);
    let first = hold_call(&breaker).await;
    let second = hold_call(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    let rejected = succeed(&breaker).await.unwrap_err();
    assert_eq!(rejected.code(), ErrorCode::CIRCUIT_OPEN);
    assert_eq!(rejected.context_value("state"), Some("half_open"));
    // A finished probe frees its permit.
    first.complete(Ok(())).await.expect("succeeds");
    let third = hold_call(&breaker).await;
    assert!(succeed(&breaker).await.is_err());
    second.complete(Ok(())).await.expect("succeeds");
    third.complete(Ok(())).await.expect("succeeds");
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_probe_dropped_by_its_caller_releases_its_permit() {
    let (breaker, _clock) = ready_to_probe(1);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(10),
        breaker.call(std::future::pending::<Result<(), Error>>()),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up first");
    // Neutral: still half-open, the permit is free, no success counted.
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    let held = hold_call(&breaker).await;
    held.complete(Ok(())).await.expect("succeeds");
    succeed(&breaker).await.expect("a probe");
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    succeed(&breaker).await.expect("a probe");
    assert_eq!(breaker.state(), CircuitState::Closed);
    // An aborted task releases its permit too.
    let (breaker, _clock) = ready_to_probe(1);
    let held = hold_call(&breaker).await;
    held.task.abort();
    assert!(held.task.await.expect_err("aborted").is_cancelled());
    assert!(succeed(&breaker).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn business_and_validation_errors_never_trip_it() {
    let breaker = CircuitBreaker::new("payments").expect("valid");
    for index in 0..100 {
        let error = if index % 2 == 0 {
            Error::new(ErrorCode::INSUFFICIENT_FUNDS, "balance too low")
        } else {
            Error::validation("amount must be positive")
        };
        let code = error.code();
        let returned = breaker
            .call(async move { Err::<(), _>(error) })
            .await
            .unwrap_err();
        assert_eq!(returned.code(), code, "the operation's own error");
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.consecutive_failures(), 0);
    // Neutral, not successes: they do not clear a failure count either.
    fail(&breaker).await;
    breaker
        .call(async { Err::<(), _>(Error::business("no")) })
        .await
        .unwrap_err();
    assert_eq!(breaker.consecutive_failures(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_business_error_from_a_probe_is_neutral() {
    let (breaker, _clock) = ready_to_probe(1);
    breaker
        .call(async { Err::<(), _>(Error::business("declined")) })
        .await
        .unwrap_err();
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    for _ in 0..2 {
        succeed(&breaker).await.expect("a probe");
    }
    assert_eq!(
        breaker.state(),
        CircuitState::HalfOpen,
        "the business error did not count as a success"
    );
    succeed(&breaker).await.expect("a probe");
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_failure_predicate_is_configurable() {
    // By default a system error returned by the operation is neutral.
    let default = CircuitBreaker::builder("default")
        .failure_threshold(1)
        .build()
        .expect("valid");
    default
        .call(async { Err::<(), _>(Error::system("bug")) })
        .await
        .unwrap_err();
    assert_eq!(default.state(), CircuitState::Closed);
    let strict = CircuitBreaker::builder("strict")
        .failure_threshold(1)
        .counts_as_failure(|error| {
            matches!(
                error.category(),
                Category::Infrastructure | Category::System
            )
        })
        .build()
        .expect("valid");
    strict
        .call(async { Err::<(), _>(Error::system("bug")) })
        .await
        .unwrap_err();
    assert_eq!(strict.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_past_the_call_timeout_fails_as_a_timeout() {
    let breaker = CircuitBreaker::builder("slow")
        .failure_threshold(2)
        .build()
        .expect("valid");
    let started = tokio::time::Instant::now();
    let error = breaker
        .call(std::future::pending::<Result<(), Error>>())
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(error.context_value("breaker"), Some("slow"));
    assert_eq!(error.context_value("timeout_ms"), Some("5000"));
    assert_eq!(breaker.consecutive_failures(), 1);
    // A call that waits but finishes in time is a plain success.
    let value = breaker
        .call(async {
            tokio::time::sleep(Duration::from_millis(4_900)).await;
            Ok(1)
        })
        .await
        .expect("in time");
    assert_eq!(value, 1);
    assert_eq!(breaker.consecutive_failures(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_becomes_a_classified_error_and_counts_as_a_failure() {
    let breaker = CircuitBreaker::builder("crashy")
        .failure_threshold(2)
        .build()
        .expect("valid");
    for _ in 0..2 {
        let error = breaker
            .call(async {
                tokio::task::yield_now().await;
                if breaker.id() == "crashy" {
                    panic!("the parser fell over");
                }
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::ISOLATED_OPERATION_FAILED);
        assert_eq!(error.category(), Category::System);
        assert_eq!(error.context_value("panic"), Some("the parser fell over"));
        assert_eq!(error.context_value("breaker"), Some("crashy"));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_operation_runs_on_the_callers_task_and_may_borrow() {
    let breaker = CircuitBreaker::new("local").expect("valid");
    let task = {
        let breaker = breaker.clone();
        tokio::spawn(async move {
            let caller = tokio::task::id();
            let inside = breaker
                .call(async { Ok(tokio::task::id()) })
                .await
                .expect("closed");
            (caller, inside)
        })
    };
    let (caller, inside) = task.await.expect("the task does not panic");
    assert_eq!(caller, inside);
    // Neither `Send` nor `'static`: an `Rc` held across an await, and a
    // borrow of a local.
    let shared = Rc::new(Cell::new(0));
    let local = String::from("borrowed");
    let length = breaker
        .call(async {
            shared.set(1);
            tokio::task::yield_now().await;
            shared.set(2);
            Ok(local.len())
        })
        .await
        .expect("closed");
    assert_eq!((shared.get(), length), (2, 8));
}

#[test]
fn a_ready_operation_needs_no_runtime_and_a_waiting_one_fails_cleanly() {
    let breaker = CircuitBreaker::new("no-runtime").expect("valid");
    let value = block_on_without_runtime(breaker.call(async { Ok::<_, Error>(5) }));
    assert_eq!(value.expect("ready"), 5);
    let error = block_on_without_runtime(breaker.call(std::future::pending::<Result<(), Error>>()))
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        breaker.consecutive_failures(),
        0,
        "not the dependency's fault"
    );
}

#[tokio::test(start_paused = true)]
async fn an_outcome_counts_only_in_the_period_it_started_in() {
    let breaker = CircuitBreaker::builder("stale")
        .failure_threshold(1)
        .build()
        .expect("valid");
    let held = hold_call(&breaker).await;
    breaker.trip();
    breaker.reset();
    let error = held.complete(Err(down())).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NETWORK_ERROR);
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "a failure from before the reset does not open the new period"
    );
}

#[tokio::test(start_paused = true)]
async fn resetting_a_closed_breaker_starts_a_new_period() {
    let breaker = CircuitBreaker::builder("closed-reset")
        .failure_threshold(1)
        .build()
        .expect("valid");
    let held = hold_call(&breaker).await;
    assert_eq!(breaker.state(), CircuitState::Closed);
    breaker.reset();
    let error = held.complete(Err(down())).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NETWORK_ERROR);
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "a late failure of a call admitted before the reset is ignored"
    );
    assert_eq!(breaker.consecutive_failures(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_around_a_call_stops_at_once_on_an_open_circuit() {
    let breaker = CircuitBreaker::builder("flaky")
        .failure_threshold(3)
        .build()
        .expect("valid");
    let polled = AtomicU32::new(0);
    let policy = RetryPolicy::new().max_attempts(10);
    let (breaker, polled_ref) = (&breaker, &polled);
    let operation = || {
        breaker.call(async move {
            polled_ref.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(down())
        })
    };
    // Three failures open the breaker; the fourth attempt is rejected and
    // retry gives up at once instead of using its other six attempts.
    let error = retry(&policy, operation).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::CIRCUIT_OPEN);
    assert_eq!(error.attempts(), Some(4));
    assert_eq!(polled.load(Ordering::SeqCst), 3);
    // Already open: one attempt, the operation is never polled.
    let error = retry(&policy, operation).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::CIRCUIT_OPEN);
    assert_eq!(error.attempts(), Some(1));
    assert_eq!(polled.load(Ordering::SeqCst), 3);
}

#[test]
fn the_synchronous_test_api_drives_every_transition() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder("sync")
        .clock(clock.clone())
        .build()
        .expect("valid");
    let mut events = breaker.subscribe();
    for _ in 0..4 {
        breaker.record_failure();
    }
    assert_eq!(breaker.consecutive_failures(), 4);
    breaker.record_success();
    assert_eq!(breaker.consecutive_failures(), 0);
    for _ in 0..5 {
        breaker.record_failure();
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker.record_failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(60));
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    breaker.record_failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker.reset();
    assert_eq!(breaker.state(), CircuitState::Closed);
    breaker.trip();
    // Tripping an open breaker restarts its reset timeout.
    clock.advance(Duration::from_secs(30));
    breaker.trip();
    clock.advance(Duration::from_secs(30));
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(30));
    for _ in 0..3 {
        breaker.record_success();
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    let transitions: Vec<_> = drain(&mut events)
        .into_iter()
        .map(|(from, to, _)| (from, to))
        .collect();
    use CircuitState::{Closed, HalfOpen, Open};
    assert_eq!(
        transitions,
        vec![
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, Closed),
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed),
        ]
    );
}

#[test]
fn transitions_and_rejections_are_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    metrics::with_local_recorder(&recorder, || {
        let breaker = CircuitBreaker::builder("payments")
            .clock(clock.clone())
            .build()
            .expect("valid");
        breaker.trip();
        let rejected = block_on_without_runtime(breaker.call(async { Ok::<_, Error>(()) }));
        assert_eq!(rejected.unwrap_err().code(), ErrorCode::CIRCUIT_OPEN);
        clock.advance(Duration::from_secs(60));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
    });
    let mut metrics = Metrics::take(&snapshotter);
    let gauge = metrics.named(CIRCUIT_BREAKER_STATE);
    assert_eq!(
        gauge,
        vec![(
            labels(&[("breaker", "payments")]),
            DebugValue::Gauge(1.0.into())
        )]
    );
    let transition = |from: &str, to: &str, count: u64| {
        (
            labels(&[("breaker", "payments"), ("from", from), ("to", to)]),
            DebugValue::Counter(count),
        )
    };
    let mut expected = vec![
        transition("closed", "half_open", 0),
        transition("closed", "open", 1),
        transition("half_open", "closed", 0),
        transition("half_open", "open", 0),
        transition("open", "closed", 0),
        transition("open", "half_open", 1),
    ];
    expected.sort_by(|left, right| left.0.cmp(&right.0));
    assert_eq!(metrics.named(CIRCUIT_BREAKER_TRANSITIONS_TOTAL), expected);
    assert_eq!(
        metrics.named(CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL),
        vec![(labels(&[("breaker", "payments")]), DebugValue::Counter(1))]
    );
}

#[tokio::test(start_paused = true)]
async fn the_registry_finds_breakers_by_id() {
    let breakers = CircuitBreakerRegistry::new();
    breakers
        .insert(CircuitBreaker::new("search").expect("valid"))
        .expect("new id");
    breakers
        .insert(CircuitBreaker::new("billing").expect("valid"))
        .expect("new id");
    let duplicate = breakers
        .insert(CircuitBreaker::new("search").expect("valid"))
        .unwrap_err();
    assert_eq!(duplicate.code(), ErrorCode::ALREADY_EXISTS);
    breakers.get("billing").expect("registered").trip();
    assert_eq!(
        breakers.states(),
        vec![
            ("billing".to_owned(), CircuitState::Open),
            ("search".to_owned(), CircuitState::Closed),
        ]
    );
    assert_eq!(
        breakers
            .call("search", async { Ok::<_, Error>(3) })
            .await
            .expect("closed"),
        3
    );
    assert_eq!(
        breakers
            .call("billing", async { Ok::<_, Error>(3) })
            .await
            .unwrap_err()
            .code(),
        ErrorCode::CIRCUIT_OPEN
    );
    let removed = breakers.remove("billing").expect("registered");
    assert_eq!(removed.state(), CircuitState::Open);
    for error in [
        breakers.get("billing").unwrap_err(),
        breakers.remove("billing").unwrap_err(),
    ] {
        assert_eq!(error.code(), ErrorCode::DATA_NOT_FOUND);
        assert_eq!(error.context_value("breaker"), Some("billing"));
    }
}

/// Waits for `count` messages, each within 10 s (a bound, not a
/// synchronisation: the messages are the events waited for).
async fn receive(messages: &mut mpsc::UnboundedReceiver<bool>, count: usize) -> Vec<bool> {
    let mut received = Vec::with_capacity(count);
    for _ in 0..count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .expect("every caller reports within the bound")
            .expect("the callers are alive");
        received.push(message);
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_never_exceed_the_probe_limit() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder("crowded")
        .half_open_probes(3)
        .success_threshold(1_000)
        .clock(clock.clone())
        .build()
        .expect("valid");
    breaker.trip();
    clock.advance(Duration::from_secs(60));
    // Each caller reports `true` once its operation runs (admitted) or
    // `false` once it is rejected; admitted ones then wait for the gate.
    let (report, mut reports) = mpsc::unbounded_channel();
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let running = Arc::new(AtomicUsize::new(0));
    let most_running = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (breaker, report, mut gate) = (breaker.clone(), report.clone(), gate.clone());
        let (running, most_running, barrier) = (
            Arc::clone(&running),
            Arc::clone(&most_running),
            Arc::clone(&barrier),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = breaker
                .call(async {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most_running.fetch_max(now, Ordering::SeqCst);
                    let _ = report.send(true);
                    let opened = gate.wait_for(|open| *open).await.is_ok();
                    running.fetch_sub(1, Ordering::SeqCst);
                    if opened {
                        Ok(())
                    } else {
                        Err(Error::system("the gate was dropped"))
                    }
                })
                .await;
            if let Err(error) = &outcome {
                assert_eq!(error.code(), ErrorCode::CIRCUIT_OPEN);
                let _ = report.send(false);
            }
            outcome.is_ok()
        }));
    }
    let received = receive(&mut reports, 100).await;
    assert_eq!(received.iter().filter(|admitted| **admitted).count(), 3);
    assert_eq!(most_running.load(Ordering::SeqCst), 3);
    open_gate.send(true).expect("the admitted callers wait");
    let mut succeeded = 0;
    for task in tasks {
        succeeded += usize::from(task.await.expect("the task does not panic"));
    }
    assert_eq!(succeeded, 3);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert!(succeed(&breaker).await.is_ok(), "the permits were released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_open_it_exactly_once() {
    let breaker = CircuitBreaker::builder("stampede")
        .failure_threshold(5)
        .build()
        .expect("valid");
    let mut events = breaker.subscribe();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (breaker, barrier) = (breaker.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fail(&breaker).await.code()
        }));
    }
    let mut failed = 0;
    for task in tasks {
        let code = task.await.expect("the task does not panic");
        if code == ErrorCode::NETWORK_ERROR {
            failed += 1;
        } else {
            assert_eq!(code, ErrorCode::CIRCUIT_OPEN);
        }
    }
    assert!(failed >= 5, "{failed}");
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        drain(&mut events),
        vec![(
            CircuitState::Closed,
            CircuitState::Open,
            TransitionReason::FailureThreshold
        )]
    );
}

/// A reference model of the synchronous API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Closed { failures: u32 },
    Open { until_ms: u64 },
    HalfOpen { successes: u32 },
}

#[derive(Debug, Clone)]
enum Op {
    Failure,
    Success,
    Advance(u64),
    Trip,
    Reset,
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Failure),
        3 => Just(Op::Success),
        3 => (0u64..80).prop_map(Op::Advance),
        1 => Just(Op::Trip),
        1 => Just(Op::Reset),
        2 => Just(Op::Read),
    ]
}

struct Reference {
    state: Model,
    now_ms: u64,
    failure_threshold: u32,
    success_threshold: u32,
    reset_ms: u64,
    transitions: Vec<(CircuitState, CircuitState)>,
}

impl Reference {
    fn public(state: Model) -> CircuitState {
        match state {
            Model::Closed { .. } => CircuitState::Closed,
            Model::Open { .. } => CircuitState::Open,
            Model::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn enter(&mut self, next: Model) {
        let (from, to) = (Self::public(self.state), Self::public(next));
        if from != to {
            self.transitions.push((from, to));
        }
        self.state = next;
    }

    fn open(&self) -> Model {
        Model::Open {
            until_ms: self.now_ms + self.reset_ms,
        }
    }

    fn lazy_half_open(&mut self) {
        if let Model::Open { until_ms } = self.state
            && self.now_ms >= until_ms
        {
            self.enter(Model::HalfOpen { successes: 0 });
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Advance(ms) => self.now_ms += ms,
            Op::Read => self.lazy_half_open(),
            Op::Trip => {
                let open = self.open();
                self.enter(open);
            }
            Op::Reset => self.enter(Model::Closed { failures: 0 }),
            Op::Failure => {
                self.lazy_half_open();
                match self.state {
                    Model::Closed { failures } if failures + 1 >= self.failure_threshold => {
                        let open = self.open();
                        self.enter(open);
                    }
                    Model::Closed { failures } => {
                        self.state = Model::Closed {
                            failures: failures + 1,
                        }
                    }
                    Model::HalfOpen { .. } => {
                        let open = self.open();
                        self.enter(open);
                    }
                    Model::Open { .. } => {}
                }
            }
            Op::Success => {
                self.lazy_half_open();
                match self.state {
                    Model::Closed { .. } => self.state = Model::Closed { failures: 0 },
                    Model::HalfOpen { successes } if successes + 1 >= self.success_threshold => {
                        self.enter(Model::Closed { failures: 0 });
                    }
                    Model::HalfOpen { successes } => {
                        self.state = Model::HalfOpen {
                            successes: successes + 1,
                        }
                    }
                    Model::Open { .. } => {}
                }
            }
        }
    }
}

proptest! {
    /// The breaker's synchronous API agrees with a plain state-machine
    /// model: same state at every read, same failure counts, same
    /// sequence of transition events.
    #[test]
    fn the_breaker_matches_its_state_machine_model(
        failure_threshold in 1u32..5,
        success_threshold in 1u32..5,
        reset_ms in 1u64..100,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let clock = ManualClock::new();
        let breaker = CircuitBreaker::builder("model")
            .failure_threshold(failure_threshold)
            .success_threshold(success_threshold)
            .reset_timeout(Duration::from_millis(reset_ms))
            .clock(clock.clone())
            .build()
            .expect("valid");
        let mut events = breaker.subscribe();
        let mut seen = Vec::new();
        let mut reference = Reference {
            state: Model::Closed { failures: 0 },
            now_ms: 0,
            failure_threshold,
            success_threshold,
            reset_ms,
            transitions: Vec::new(),
        };
        for op in &ops {
            reference.apply(op);
            match op {
                Op::Failure => breaker.record_failure(),
                Op::Success => breaker.record_success(),
                Op::Advance(ms) => clock.advance(Duration::from_millis(*ms)),
                Op::Trip => breaker.trip(),
                Op::Reset => breaker.reset(),
                Op::Read => {
                    prop_assert_eq!(breaker.state(), Reference::public(reference.state));
                    if let Model::Closed { failures } = reference.state {
                        prop_assert_eq!(breaker.consecutive_failures(), failures);
                    }
                }
            }
            // Drained after every step: the channel keeps only 64 events.
            seen.extend(drain(&mut events).into_iter().map(|(from, to, _)| (from, to)));
        }
        prop_assert_eq!(seen, reference.transitions);
    }
}
