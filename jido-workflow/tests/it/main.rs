//! The integration tests of jido-workflow, one binary.

mod chaos;
mod coordinator;
mod definition;
mod engine;
mod events;
mod lease;
mod nodes;
mod outage;
mod real_process;
mod support;
mod task_agent;
