//! A [`StepExecutor`] backed by a jido-agents `TaskAgent`: every step job
//! is submitted to the agent as a task and run by its [`StepHandler`], so
//! the agent's queue, concurrency bound, counters and pause/resume apply to
//! workflow steps, and killing the agent kills the steps it runs.
//!
//! A job itself (the work, its input, the report to its workflow process)
//! cannot be stored, so it waits in an in-memory table shared by the
//! executor and the handler, keyed by a task id unique to this executor
//! instance; the task carries only that id and the step's idempotency key.
//! The handler takes the job out when the agent runs the task and runs it
//! abortably; the step's outcome goes straight to its workflow process (as
//! with [`TaskExecutor`](crate::TaskExecutor)), the agent only learns that
//! the run ended.
//!
//! When the agent dies with steps running, its next instance runs its
//! in-progress tasks again (a persistent agent, as it should be: see
//! [`AgentSpec::persistent`](jido_agents::AgentSpec::persistent)); the
//! handler then aborts the earlier run of each, whose job reports the step
//! interrupted, and the workflow runs the step again with the same
//! idempotency key. A volatile agent forgets its in-progress tasks, so its
//! earlier runs go on to the end (their outcomes still count). A task whose
//! job is gone (its workflow process aborted it, or the whole OS process
//! restarted) ends at once with a null result.
//!
//! Submission is asynchronous (an action on the agent) while
//! [`StepExecutor::execute`] is not: one submitter, a task under the given
//! `TaskSupervisor`, hands jobs to the agent in order, one durable action
//! each. A job the agent refuses (a full queue, an agent that has ended)
//! is dropped and reports the step interrupted. That action per step makes
//! this executor slower than the default [`TaskExecutor`](crate::TaskExecutor),
//! which runs jobs directly under a `TaskSupervisor`; choose it when steps
//! must go through a TaskAgent.
//!
//! The agent's own controls act on steps: a paused agent holds them (the
//! job's timeout starts only when it runs), and a step task cancelled on
//! the agent (`CancelTask`) leaves its job in the table and its step in
//! flight until the workflow process restarts or cancels it. The agent's
//! counters count runs, not step outcomes (the handler always returns
//! null; outcomes go to the workflow).
//!
//! This module is not for deciding what runs (see `process`) nor for the
//! job's timeout and panic handling (see `executor`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foundation_core::TaskSupervisor;
use foundation_error::{Error, ErrorCode};
use futures::future::{AbortHandle, Abortable};
use jido_agents::AgentRef;
use jido_agents::task::{MIN_TASK_TIMEOUT, SubmitTask, Task, TaskAgent, TaskHandler, TaskRun};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::executor::{StepAbort, StepExecutor, StepJob};

/// The task type of workflow steps.
pub const STEP_TASK_TYPE: &str = "workflow_step";

/// How long a step task may run beyond its job's own timeout before the
/// agent gives up on it (the job times out first and reports).
const TASK_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How long one submission to the agent may wait.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A job between submission and the end of its run.
enum Slot {
    /// Submitted, not yet run.
    Waiting(StepJob),
    /// Running; aborting it drops the job, which reports "interrupted".
    Running(AbortHandle),
}

/// The jobs of one executor, by task id.
type Jobs = Arc<Mutex<HashMap<String, Slot>>>;

fn lock(jobs: &Jobs) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
    // The table stays consistent under a panic: every change is one
    // insert or remove.
    jobs.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `TaskHandler` that runs workflow step jobs; build the TaskAgent with
/// it (`TaskAgentArgs::new(handler.clone())`) and hand the same handler to
/// [`TaskAgentExecutor::start`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct StepHandler {
    jobs: Jobs,
}

impl StepHandler {
    /// A handler with an empty job table.
    pub fn new() -> StepHandler {
        StepHandler::default()
    }
}

impl fmt::Debug for StepHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepHandler")
            .field("jobs", &lock(&self.jobs).len())
            .finish()
    }
}

impl TaskHandler for StepHandler {
    async fn run(&self, task: TaskRun) -> Result<Value, Error> {
        let (abort, registration) = AbortHandle::new_pair();
        let job = {
            let mut jobs = lock(&self.jobs);
            match jobs.remove(&task.id) {
                Some(Slot::Waiting(job)) => {
                    jobs.insert(task.id.clone(), Slot::Running(abort));
                    job
                }
                // A run again after the agent restarted: the earlier run
                // belongs to the dead instance, so it ends (its job reports
                // the step interrupted, the workflow runs it again).
                Some(Slot::Running(earlier)) => {
                    earlier.abort();
                    return Ok(Value::Null);
                }
                // Aborted by its workflow process, or from before a restart
                // of the whole OS process: nothing to run.
                None => return Ok(Value::Null),
            }
        };
        // Aborted: the job future is dropped and reports "interrupted".
        let ran = Abortable::new(job.run(), registration).await.is_ok();
        if ran {
            lock(&self.jobs).remove(&task.id);
        }
        Ok(Value::Null)
    }
}

/// Runs step jobs as tasks of a TaskAgent; see the module docs.
pub struct TaskAgentExecutor {
    jobs: Jobs,
    submit: mpsc::UnboundedSender<Task>,
    prefix: String,
    next: AtomicU64,
}

impl fmt::Debug for TaskAgentExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskAgentExecutor")
            .field("prefix", &self.prefix)
            .field("jobs", &lock(&self.jobs).len())
            .finish()
    }
}

impl TaskAgentExecutor {
    /// An executor submitting to `agent` (a TaskAgent built with
    /// `handler`), its submitter a task under `tasks`.
    ///
    /// The agent should run several tasks at once
    /// (`TaskAgentArgs::max_concurrent`, at least the engine's parallel
    /// bound) and queue at least as many as can be in flight
    /// (`TaskAgentArgs::max_queue`), and be persistent so that a kill of
    /// the agent interrupts its running steps (see the module docs).
    ///
    /// # Errors
    ///
    /// `service_unavailable` outside a tokio runtime; `shut_down` when
    /// `tasks` is shut down.
    pub fn start(
        handler: &StepHandler,
        agent: AgentRef<TaskAgent<StepHandler>>,
        tasks: &TaskSupervisor,
    ) -> Result<TaskAgentExecutor, Error> {
        let (submit, receiver) = mpsc::unbounded_channel();
        let jobs = Arc::clone(&handler.jobs);
        tasks.spawn(submitter(receiver, agent, Arc::clone(&jobs)))?;
        Ok(TaskAgentExecutor {
            jobs,
            submit,
            prefix: uuid::Uuid::new_v4().simple().to_string(),
            next: AtomicU64::new(0),
        })
    }
}

/// Hands tasks to the agent in order; a refused task's job is dropped, so
/// it reports its step interrupted.
async fn submitter(
    mut receiver: mpsc::UnboundedReceiver<Task>,
    agent: AgentRef<TaskAgent<StepHandler>>,
    jobs: Jobs,
) {
    while let Some(task) = receiver.recv().await {
        let id = task.id.clone();
        if let Err(error) = agent.run_timeout(SubmitTask(task), SUBMIT_TIMEOUT).await {
            tracing::warn!(task = %id, %error, "the TaskAgent refused a workflow step; the step is interrupted");
            // Dropped after the lock is released: the report sends.
            let refused = lock(&jobs).remove(&id);
            drop(refused);
        }
    }
}

impl StepExecutor for TaskAgentExecutor {
    fn execute(&self, job: StepJob) -> Result<StepAbort, Error> {
        let id = format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let timeout = job
            .timeout
            .saturating_add(TASK_TIMEOUT_MARGIN)
            .max(MIN_TASK_TIMEOUT);
        let key = job.input().idempotency_key.clone();
        let mut task = Task::new(id.clone(), STEP_TASK_TYPE, Value::Null)
            .timeout(timeout)
            .retries(0);
        if !key.is_empty() && key.len() <= jido_agents::task::MAX_TASK_ID_BYTES {
            task = task.idempotency_key(key);
        }
        lock(&self.jobs).insert(id.clone(), Slot::Waiting(job));
        if self.submit.send(task).is_err() {
            let refused = lock(&self.jobs).remove(&id);
            drop(refused);
            return Err(Error::new(
                ErrorCode::SHUT_DOWN,
                "the TaskAgent executor's submitter has ended",
            ));
        }
        let jobs = Arc::clone(&self.jobs);
        Ok(StepAbort::new(move || {
            let slot = lock(&jobs).remove(&id);
            match slot {
                Some(Slot::Running(abort)) => abort.abort(),
                // Dropped here, outside the lock: it reports interrupted.
                Some(Slot::Waiting(job)) => drop(job),
                None => {}
            }
        }))
    }
}
