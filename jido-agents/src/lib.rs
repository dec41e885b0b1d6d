//! Agents on Foundation: supervised actors with typed state, named actions
//! validated before they run, lifecycle hooks and directives, capability
//! routing, and state that survives crashes.
//!
//! | item | what it gives |
//! | --- | --- |
//! | [`Agent`], [`Action`], [`ActionContext`], [`Directive`] | the agent model: typed state, named validated actions, hooks with empty defaults, directives (set state, enqueue a follow-up, spawn work, stop) |
//! | [`AgentSpec`], [`AgentRef`], [`AgentServer`] | running an agent under a supervisor; typed calls and the by-name JSON entry point ([`AgentRef::run_json`]) |
//! | [`PersistentAgent`], [`OnCorruptState`] | a persisted, versioned projection of the state, loaded at start and saved before each reply |
//! | [`route`] | the live agent with a capability and the lowest load |
//! | [`task`] | the TaskAgent: a persistent, prioritised task queue run under the task supervisor |
//! | [`monitor`] | the MonitorAgent: health checks, score and bands, de-duplicated alerts |
//! | [`metrics`] | the metric names |
//!
//! # The guarantees
//!
//! - **Validation first.** An action's parameters are validated before it
//!   runs; a failure is `validation_failed` naming the parameter (context
//!   key `parameter`) and the state is untouched.
//! - **Acknowledged means durable.** A persistent agent saves its
//!   projection after every action that changed it, *before* the action's
//!   reply is released. A save that fails fails the action with the
//!   store's error, and the persisted part of the state in memory returns
//!   to the last saved one: memory equals disk.
//! - **Restarts resume.** On every start the stored projection is loaded
//!   by agent id (upgraded through its record's migrations) and merged
//!   over the defaults. State that cannot be decoded fails the start with
//!   `data_corruption` naming the agent, unless the agent is configured to
//!   start from defaults ([`OnCorruptState`]).
//! - **The mailbox never waits on work.** Actions are synchronous state
//!   transitions; work (tasks, health checks) runs under the task
//!   supervisor and reports back with an action, so an agent answers
//!   while its work runs.
//! - **One clock.** Every time reading goes through the injected
//!   [`SharedClock`](foundation_error::clock::SharedClock).
//! - **Nothing added on the hot path.** A save is one `StateStore::put`;
//!   concurrent agents share the store's group commit. This crate spawns
//!   no thread and no task of its own: work starts through the
//!   `TaskSupervisor` given in the `AgentSpec` (`src/server.rs`).
//!
//! # Example
//!
//! ```
//! use foundation_core::{Supervisor, TaskSupervisor};
//! use foundation_error::Error;
//! use foundation_persist::{Store, StoreOptions};
//! use jido_agents::task::{PauseTasks, SubmitTask, Task, TaskAgent, TaskAgentArgs, TaskHandler, TaskRun};
//! use jido_agents::{AgentRef, AgentSpec};
//!
//! struct Echo;
//! impl TaskHandler for Echo {
//!     async fn run(&self, task: TaskRun) -> Result<serde_json::Value, Error> {
//!         Ok(task.input)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let store = Store::open_in_memory(&StoreOptions::new())?;
//! let tasks = TaskSupervisor::new("work");
//! let mut spec = AgentSpec::<TaskAgent<Echo>>::new("tasks-1", TaskAgentArgs::new(Echo), &tasks);
//! spec.persistent(&store);
//! let spec = spec.child_spec()?;
//! let agent = AgentRef::from(spec.handle());
//! let mut app = Supervisor::builder("app");
//! app.child(spec);
//! let app = app.start().await?;
//!
//! agent.run(PauseTasks {}).await?;
//! let receipt = agent.run(SubmitTask(Task::new("t-1", "echo", serde_json::json!({"x": 1})))).await?;
//! assert_eq!(receipt.queued, 1); // durable: it survives a crash from here on
//!
//! let status = agent.run_json("status", serde_json::Value::Null).await?;
//! assert_eq!(status["queued"], 1);
//! app.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod action;
mod agent;
pub mod metrics;
pub mod monitor;
mod persist;
mod route;
mod server;
pub mod task;

pub use action::{ActionSet, validation_error};
pub use agent::{Action, ActionContext, Agent, AgentEnv, Directive, PendingAction, Work};
pub use persist::{OnCorruptState, PersistentAgent};
pub use route::{route, route_any};
pub use server::{
    AgentCall, AgentCast, AgentInfo, AgentRef, AgentServer, AgentSpec, AgentStart,
    CAPABILITY_ATTRIBUTE, KIND_ATTRIBUTE, LOAD_ATTRIBUTE, MAX_AGENT_ID_BYTES, MAX_KIND_BYTES,
};
