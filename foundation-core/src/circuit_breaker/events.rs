//! How a breaker reports its transitions: [`StateChange`] events on a
//! broadcast channel, and metrics.
//!
//! Metrics (handles registered when the breaker is built, so they bind to
//! the `metrics` recorder installed at that moment):
//! - gauge `foundation_circuit_breaker_state{breaker}`: 0 closed,
//!   1 half-open, 2 open;
//! - counter `foundation_circuit_breaker_transitions_total{breaker, from,
//!   to}`, states named `closed`, `half_open`, `open`;
//! - counter `foundation_circuit_breaker_rejected_calls_total{breaker}`:
//!   calls refused with `circuit_open`.
//!
//! This module is not for deciding transitions (see `machine.rs`).

use std::sync::Arc;

use super::state::CircuitState;

/// The gauge of each breaker's state (0 closed, 1 half-open, 2 open).
pub const CIRCUIT_BREAKER_STATE: &str = "foundation_circuit_breaker_state";
/// The counter of state transitions, by breaker, from and to.
pub const CIRCUIT_BREAKER_TRANSITIONS_TOTAL: &str = "foundation_circuit_breaker_transitions_total";
/// The counter of calls rejected with `circuit_open`, by breaker.
pub const CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL: &str =
    "foundation_circuit_breaker_rejected_calls_total";

/// How many events a subscriber may fall behind before it loses the oldest.
pub(crate) const EVENT_CAPACITY: usize = 64;

/// One transition of a breaker, as sent to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The breaker's id.
    pub breaker: Arc<str>,
    /// The state left.
    pub from: CircuitState,
    /// The state entered.
    pub to: CircuitState,
    /// Why.
    pub reason: TransitionReason,
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// Closed to open: the failure threshold was reached.
    FailureThreshold,
    /// Open to half-open: the reset timeout passed.
    ResetTimeoutElapsed,
    /// Half-open to closed: the success threshold of probes was reached.
    ProbesSucceeded,
    /// Half-open to open: a probe failed.
    ProbeFailed,
    /// Forced open by [`CircuitBreaker::trip`](super::CircuitBreaker::trip).
    Tripped,
    /// Forced closed by [`CircuitBreaker::reset`](super::CircuitBreaker::reset).
    Reset,
}

/// The breaker's metric handles.
pub(crate) struct BreakerMetrics {
    state: metrics::Gauge,
    /// Indexed by `[from.gauge_value()][to.gauge_value()]`; the diagonal is
    /// never used.
    transitions: [[metrics::Counter; 3]; 3],
    rejected: metrics::Counter,
}

impl BreakerMetrics {
    pub(crate) fn register(breaker: &str) -> BreakerMetrics {
        metrics::describe_gauge!(
            CIRCUIT_BREAKER_STATE,
            "Circuit breaker state: 0 closed, 1 half-open, 2 open."
        );
        metrics::describe_counter!(
            CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
            "Circuit breaker state transitions, by breaker, from and to."
        );
        metrics::describe_counter!(
            CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL,
            "Calls a circuit breaker rejected with circuit_open."
        );
        let transition = |from: CircuitState, to: CircuitState| {
            if from == to {
                return metrics::Counter::noop();
            }
            metrics::counter!(
                CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
                "breaker" => breaker.to_owned(),
                "from" => from.as_str(),
                "to" => to.as_str(),
            )
        };
        let transitions =
            CircuitState::ALL.map(|from| CircuitState::ALL.map(|to| transition(from, to)));
        let state = metrics::gauge!(CIRCUIT_BREAKER_STATE, "breaker" => breaker.to_owned());
        state.set(f64::from(CircuitState::Closed.gauge_value()));
        BreakerMetrics {
            state,
            transitions,
            rejected: metrics::counter!(
                CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL,
                "breaker" => breaker.to_owned(),
            ),
        }
    }

    pub(crate) fn transition(&self, from: CircuitState, to: CircuitState) {
        self.transitions[usize::from(from.gauge_value())][usize::from(to.gauge_value())]
            .increment(1);
        self.state.set(f64::from(to.gauge_value()));
    }

    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }
}
