//! foundation-core's integration tests, one binary with a module per area.
//! Time-dependent tests run under paused tokio time or on a manually
//! advanced clock; nothing sleeps for real.

// Helpers shared by tests unwrap like the tests themselves do.
#![allow(clippy::unwrap_used)]

mod actor;
mod circuit_breaker;
mod ending;
mod monitor;
mod rate_limiter;
mod registry;
mod reply;
mod signal;
mod supervisor;
mod support;
mod task;
