//! Circuit breakers: stop calling a dependency that keeps failing, and probe
//! it carefully before trusting it again.
//!
//! A [`CircuitBreaker`] wraps calls to one dependency (a payment API, a
//! database). [`CircuitBreaker::call`] runs the caller's future and
//! classifies how it ended:
//!
//! | the operation | the caller gets | for the breaker |
//! | --- | --- | --- |
//! | returns `Ok(value)` | `Ok(value)` | success |
//! | returns an error the failure predicate accepts (default: infrastructure category) | that error | failure |
//! | returns any other error (business, validation, system by default) | that error | neutral |
//! | waits longer than the call timeout (default 5 s) | `timeout` (infrastructure) | failure |
//! | panics | `isolated_operation_failed` (system), message in context `panic` | failure |
//! | is dropped by its caller mid-call | nothing | neutral |
//!
//! Neutral outcomes say nothing about the dependency's health: a business
//! refusal ("insufficient funds") is the dependency working, but so is a
//! local validation error that never reached it, so they neither trip the
//! breaker nor count toward closing it, nor clear the failure count.
//!
//! States (see [`CircuitState`]): closed, calls pass and consecutive
//! failures are counted; at the failure threshold (default 5) it opens and
//! rejects every call with `circuit_open` (infrastructure, never retried, so
//! [`foundation_error::retry`] around a call stops at once instead of
//! hammering the dependency). After the reset timeout (default 60 s) it is
//! half-open: at most `half_open_probes` calls (default 1) run at once as
//! probes, the others are rejected; the success threshold of successful
//! probes (default 3) closes it, one failed probe opens it again. A probe's
//! permit is released when the probe ends, however it ends, even when the
//! caller drops its future. A call's outcome counts only in the state
//! period it was admitted in: a slow call from before a transition never
//! counts after it.
//!
//! The move from open to half-open happens at the first call or state read
//! after the reset timeout; there is no timer task, so the state gauge shows
//! open until then.
//!
//! The caller's future runs on the caller's task, polled in place inside
//! `call`: nothing is spawned and no actor is involved, so the future may
//! borrow and need not be `Send`. A panic in it is caught (with
//! `catch_unwind` around each poll) and returned as an error; the panic hook
//! still reports it as usual. The call timeout is measured from the first
//! time the operation waits, and an operation that completes on its first
//! poll costs no timer: the closed-state overhead is two atomic loads.
//!
//! Transitions are sent to [subscribers](CircuitBreaker::subscribe) as
//! [`StateChange`] events and counted in metrics (see `events.rs`): the gauge
//! `foundation_circuit_breaker_state{breaker}` (0 closed, 1 half-open,
//! 2 open) and the counters
//! `foundation_circuit_breaker_transitions_total{breaker, from, to}` and
//! `foundation_circuit_breaker_rejected_calls_total{breaker}`.
//!
//! This module is not for retrying (see [`foundation_error::retry`]) nor for
//! isolating work on its own task (see [`foundation_error::isolate`]).
//!
//! ```
//! use foundation_core::circuit_breaker::{CircuitBreaker, CircuitState};
//! use foundation_error::{Error, ErrorCode};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let breaker = CircuitBreaker::builder("payments").failure_threshold(2).build()?;
//!
//! let charged = breaker.call(async { Ok::<_, Error>("charged") }).await?;
//! assert_eq!(charged, "charged");
//!
//! // Business errors pass through and do not trip the breaker.
//! let refused = breaker.call(async { Err::<(), _>(Error::business("card declined")) }).await;
//! assert_eq!(refused.unwrap_err().code(), ErrorCode::BUSINESS_RULE_VIOLATION);
//! assert_eq!(breaker.state(), CircuitState::Closed);
//!
//! // Two infrastructure failures in a row open it.
//! for _ in 0..2 {
//!     let _ = breaker.call(async { Err::<(), _>(Error::timeout("no answer")) }).await;
//! }
//! assert_eq!(breaker.state(), CircuitState::Open);
//! let rejected = breaker.call(async { Ok::<_, Error>(()) }).await.unwrap_err();
//! assert_eq!(rejected.code(), ErrorCode::CIRCUIT_OPEN);
//! # Ok(())
//! # }
//! ```

mod builder;
mod events;
mod guard;
mod machine;
mod registry;
mod state;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};
use tokio::sync::broadcast;

use crate::clock::SharedClock;

pub use builder::{
    BreakerConfig, CircuitBreakerBuilder, DEFAULT_CALL_TIMEOUT, DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_HALF_OPEN_PROBES, DEFAULT_RESET_TIMEOUT, DEFAULT_SUCCESS_THRESHOLD, FailurePredicate,
    is_infrastructure_error,
};
pub use events::{
    CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL, CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
    StateChange, TransitionReason,
};
pub use registry::CircuitBreakerRegistry;
pub use state::{CircuitState, MAX_COUNT};

use guard::{Guarded, run_guarded};
use machine::{Machine, Verdict};

/// A circuit breaker guarding one dependency. Cheap to clone; clones share
/// the state. See the [module documentation](self).
#[derive(Clone)]
pub struct CircuitBreaker {
    machine: Arc<Machine>,
}

impl CircuitBreaker {
    /// A builder for a breaker named `id`, with the defaults.
    pub fn builder(id: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(id)
    }

    /// A breaker named `id` with the defaults (failure threshold 5, success
    /// threshold 3, reset timeout 60 s, call timeout 5 s, 1 probe).
    ///
    /// Fails with `invalid_config_value` when `id` is empty.
    pub fn new(id: impl Into<String>) -> Result<CircuitBreaker, Error> {
        CircuitBreaker::builder(id).build()
    }

    pub(crate) fn from_parts(
        id: Arc<str>,
        config: BreakerConfig,
        clock: SharedClock,
    ) -> CircuitBreaker {
        CircuitBreaker {
            machine: Arc::new(Machine::new(id, config, clock)),
        }
    }

    /// Runs `operation` through the breaker, on the caller's task.
    ///
    /// Returns the operation's value or its own error unchanged;
    /// `circuit_open` when the breaker is open or its half-open probes are
    /// all in flight (the operation is then never polled); `timeout` when
    /// the operation waited longer than the call timeout (it is dropped);
    /// `isolated_operation_failed` when it panicked. When it must wait but
    /// no tokio runtime with timers is running, it fails with
    /// `service_unavailable` (neutral for the breaker) rather than wait
    /// without a bound.
    ///
    /// # Cancel safety
    ///
    /// The operation runs inside this future: dropping it drops the
    /// operation (whose own cancel safety then applies: it may or may not
    /// have taken effect). The abandoned call counts as neither success nor
    /// failure, and a probe's permit is released, so the breaker never
    /// waits for an outcome that will not come.
    ///
    /// ```
    /// use foundation_core::circuit_breaker::CircuitBreaker;
    /// use foundation_error::{Error, ErrorCode};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let breaker = CircuitBreaker::new("inventory")?;
    /// let crashed = breaker
    ///     .call(async {
    ///         if true { panic!("index out of bounds") }
    ///         Ok::<u32, Error>(1)
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(crashed.code(), ErrorCode::ISOLATED_OPERATION_FAILED);
    /// assert_eq!(crashed.context_value("panic"), Some("index out of bounds"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<T, F>(&self, operation: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let machine = &*self.machine;
        let admission = machine.admit()?;
        match run_guarded(operation, machine.config.call_timeout).await {
            Guarded::Finished(Ok(value)) => {
                machine.record(&admission, Verdict::Success);
                Ok(value)
            }
            Guarded::Finished(Err(error)) => {
                let verdict = if (machine.config.counts_as_failure)(&error) {
                    Verdict::Failure
                } else {
                    Verdict::Neutral
                };
                machine.record(&admission, verdict);
                Err(error)
            }
            Guarded::TimedOut => {
                machine.record(&admission, Verdict::Failure);
                let timeout = machine.config.call_timeout;
                Err(Error::new(
                    ErrorCode::TIMEOUT,
                    format!(
                        "the call through circuit breaker '{}' did not finish within {timeout:?}",
                        machine.id
                    ),
                )
                .with_context("breaker", &*machine.id)
                .with_context("timeout_ms", timeout.as_millis()))
            }
            Guarded::Panicked(message) => {
                machine.record(&admission, Verdict::Failure);
                Err(Error::new(
                    ErrorCode::ISOLATED_OPERATION_FAILED,
                    format!(
                        "the call through circuit breaker '{}' panicked: {message}",
                        machine.id
                    ),
                )
                .with_context("breaker", &*machine.id)
                .with_context("panic", message))
            }
            Guarded::NoTimer(error) => Err(error.with_context("breaker", &*machine.id)),
        }
    }

    /// The breaker's state. An open breaker whose reset timeout has passed
    /// becomes half-open here.
    pub fn state(&self) -> CircuitState {
        self.machine.current().state
    }

    /// Records a failure as if a call had just failed (a test API): counts
    /// toward opening when closed, reopens when half-open, nothing when open.
    pub fn record_failure(&self) {
        let word = self.machine.current();
        self.machine.on_failure(word.generation);
    }

    /// Records a success as if a call had just succeeded (a test API):
    /// clears the failure count when closed, counts toward closing when
    /// half-open, nothing when open.
    pub fn record_success(&self) {
        let word = self.machine.current();
        self.machine.on_success(word.generation);
    }

    /// Opens the breaker now, from any state (a test and operations API);
    /// the reset timeout starts again.
    pub fn trip(&self) {
        self.machine
            .force(CircuitState::Open, TransitionReason::Tripped);
    }

    /// Closes the breaker now, from any state, and clears its counts (a
    /// test and operations API). Outcomes of calls admitted before are
    /// ignored.
    pub fn reset(&self) {
        self.machine
            .force(CircuitState::Closed, TransitionReason::Reset);
    }

    /// Consecutive failures counted while closed (0 in other states).
    pub fn consecutive_failures(&self) -> u32 {
        let word = self.machine.current();
        match word.state {
            CircuitState::Closed => word.count,
            _ => 0,
        }
    }

    /// Subscribes to state changes from now on. A subscriber that falls 64
    /// events behind loses the oldest (the receiver reports the gap).
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.machine.subscribe()
    }

    /// The breaker's id.
    pub fn id(&self) -> &str {
        &self.machine.id
    }

    /// The breaker's settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.machine.config
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.machine.peek();
        f.debug_struct("CircuitBreaker")
            .field("id", &self.machine.id)
            .field("state", &word.state)
            .field("config", &self.machine.config)
            .field("clock", &self.machine.clock)
            .finish()
    }
}
