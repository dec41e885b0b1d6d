//! foundation-core's integration tests, one binary with a module per area.
//! Time-dependent tests run under paused tokio time; nothing sleeps for
//! real.
