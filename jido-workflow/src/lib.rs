//! Durable workflows for Foundation: one supervised process per workflow,
//! a journal entry per step, resume after any crash.
//!
//! A [`WorkflowDefinition`] (JSON or TOML: tasks, parallel and sequential
//! groups) runs on a [`WorkflowEngine`]. Each workflow gets its own
//! [`WorkflowProcess`] under the WorkflowSupervisor; each task calls a
//! [`Work`] registered in a [`WorkRegistry`], run under a task supervisor
//! through the [`StepExecutor`] seam, never in a mailbox. Every step's
//! start and result are journaled in a foundation-persist store before
//! they count, so after a crash of a work, of a workflow process, or of
//! the whole OS process, the workflow resumes from its journal: a
//! recorded step never runs again; a step that was in flight runs again
//! with the same idempotency key (or, declared at-most-once, is reported
//! interrupted).
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`definition`] | [`WorkflowDefinition`], [`Step`], [`TaskSpec`], [`Limits`], content-hash versions |
//! | [`work`] | [`Work`], [`WorkRegistry`], [`StepInput`], the built-ins [`DELAY`] and [`AWAIT_SIGNAL`] |
//! | [`WorkflowEngine`] | start, status, wait, cancel, signal, list, resume |
//! | [`WorkflowProcess`] | the per-workflow actor (journal, retries, timers, compensation) |
//! | [`StepExecutor`], [`TaskExecutor`] | where works run |
//! | [`Lease`], the engine's multi-node mode | workflow ownership through the store's leases, fenced writes, heartbeat and claims (see [`WorkflowEngineBuilder::multi_node`]) |
//! | [`coordinator`] | CoordinatorV2 (thin, durable), legacy CoordinatorV1, the `use_v2_coordinator` router and the V1 to V2 migration |
//! | [`metrics`] | metric names |
//!
//! Semantics, in short:
//!
//! - **At least once, recorded once.** A work may run more than once
//!   (after a crash while it ran, or a retry); its result is recorded once
//!   and never recomputed. Works receive `workflow id/step path` as their
//!   idempotency key.
//! - **Retries** apply to errors with a retryable code (infrastructure:
//!   `timeout`, `service_unavailable`, ...), with the task's attempts and
//!   exponential backoff; a timeout of an attempt is such an error. Other
//!   errors fail the step at once.
//! - **Failure and cancellation** run the compensations of completed
//!   tasks, latest first, one at a time (a saga), then end the workflow
//!   `failed` or `cancelled`.
//! - **Durable time.** A delay's end and a signal wait's timeout are
//!   wall-clock deadlines in the journal: after a restart the workflow
//!   waits only for the time remaining. All time is read through the
//!   injected `foundation_error::clock::SharedClock`.
//! - **Versions.** A workflow runs the definition version (content hash)
//!   it started with; the definition is stored by hash.
//!
//! CoordinatorV2 is a jido-agents `PersistentAgent`.
//!
//! Steps run on a [`StepExecutor`]: the default [`TaskExecutor`] runs each
//! step as a task under a `TaskSupervisor`; [`TaskAgentExecutor`] submits
//! each to a jido-agents TaskAgent (its queue, concurrency bound and
//! pause apply, and killing the agent interrupts the steps it runs, which
//! the workflow runs again), at the cost of one agent action per step.
//!
//! Several engines can share one store (PostgreSQL) in multi-node mode:
//! each workflow is owned by one engine through the store's lease
//! `workflow/<id>`, every journal write is fenced by its token, and a
//! heartbeat renews leases and claims the expired ones of engines that
//! died, resuming their workflows from the journal (module `lease`).
//! A graceful hand-over is announced on the store's change feed (a
//! PostgreSQL `NOTIFY`) so that the others claim at once; a dead engine's
//! leases are claimed once they expire.

pub mod coordinator;
pub mod definition;
mod engine;
mod executor;
mod lease;
pub mod metrics;
mod process;
mod record;
mod state;
mod status;
mod task_agent_executor;
pub mod work;

pub use definition::{
    Compensation, DefinitionHash, Delivery, Limits, RetrySpec, Step, TaskSpec, WorkflowDefinition,
};
pub use engine::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_PARALLEL, FinishListener, WorkflowEngine,
    WorkflowEngineBuilder,
};
pub use executor::{StepAbort, StepExecutor, StepJob, TaskExecutor};
pub use foundation_persist::Lease;
pub use lease::{CLAIM_BATCH, DEFAULT_LEASE_TTL, HANDOVER_KEYSPACE, MIN_LEASE_TTL};
pub use process::{ProcessArgs, StepMessage, WorkflowCall, WorkflowProcess, WorkflowReply};
pub use status::{
    HistoryEntry, ListFilter, StepStatus, StepView, WorkflowInfo, WorkflowPage, WorkflowStatus,
};
pub use task_agent_executor::{STEP_TASK_TYPE, StepHandler, TaskAgentExecutor};
pub use work::{AWAIT_SIGNAL, DELAY, StepInput, Work, WorkFuture, WorkRegistry};
