//! Foundation's runtime kernel: Erlang/OTP's supervision semantics on tokio.
//!
//! Work in progress: the kernel (actors, supervisors, registry, monitors,
//! supervised tasks, test kit) and the signal router are being added module
//! by module. See the workspace README for what is ready.
//!
//! ## Services ready
//!
//! - [`rate_limiter`]: named fixed-window limiters ([`RateLimiter`], the
//!   hot-path handle [`Limiter`]), exact under concurrency, with no actor
//!   and no global lock on the check path and expired windows swept without
//!   a background task.
//! - [`circuit_breaker`]: [`CircuitBreaker`] with closed, open and half-open
//!   states, a bounded number of concurrent probes, the caller's future run
//!   on the caller's task with a timeout and panic capture, state-change
//!   events and metrics; [`CircuitBreakerRegistry`] looks breakers up by id.
//! - [`clock`]: the injectable [`Clock`] both services measure time on;
//!   [`ManualClock`] makes tests on a multi-thread runtime deterministic.

pub mod circuit_breaker;
pub mod clock;
pub mod rate_limiter;

pub use circuit_breaker::{
    CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerRegistry, CircuitState, StateChange,
    TransitionReason,
};
pub use clock::{Clock, ManualClock, TokioClock};
pub use rate_limiter::{Decision, Limiter, RateLimiter, RateLimiterBuilder, Status};
