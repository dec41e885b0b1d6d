//! jido-agents' integration tests: one binary, one module per area. They
//! drive the public API as a user would. Time-dependent tests run under
//! paused tokio time; the crash test re-runs this binary as a child OS
//! process and SIGKILLs it. Every wait is bounded; nothing sleeps for
//! synchronisation.

// Helpers shared by tests unwrap like the tests themselves do.
#![allow(clippy::unwrap_used)]

mod agent;
mod monitor;
mod persistent;
mod sigkill;
mod support;
mod task_agent;
