//! Foundation's runtime kernel: Erlang/OTP's supervision semantics on tokio.
//!
//! Work in progress: the kernel (actors, supervisors, registry, monitors,
//! supervised tasks, test kit) and the services (rate limiter, circuit
//! breaker, signal router) are being added module by module. See the
//! workspace README for what is ready.
