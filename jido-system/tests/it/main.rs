//! jido-system's integration tests: the HTTP API on a real server on
//! 127.0.0.1 (port 0), the application tree, and the binary as real OS
//! processes (SIGKILL, a second server on the same data directory, token
//! files).

mod agent_mode;
mod api;
mod counts;
mod dashboard;
mod flag_store;
mod idempotency;
mod load;
mod nodes;
mod openapi;
mod process;
mod runbook;
mod supervised;
mod support;
mod tree;
