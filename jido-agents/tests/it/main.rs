//! The integration tests of jido-agents: one binary, one module per area.

mod agent;
mod monitor;
mod persistent;
mod sigkill;
mod support;
mod task_agent;
