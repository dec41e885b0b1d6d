//! The injectable clock the services measure time on (the rate limiter's
//! windows, the circuit breaker's reset timeout).
//!
//! This is the workspace's one clock, defined at layer 0 in
//! [`foundation_error::clock`] and re-exported here so that users of the
//! kernel need not name the error crate: one [`ManualClock`] or paused
//! [`TokioClock`] drives every service of a test.
//!
//! This module is not for timers or deadlines that must wake a task; those
//! use tokio's timer directly.

pub use foundation_error::clock::{Clock, ManualClock, SharedClock, TokioClock, system};
