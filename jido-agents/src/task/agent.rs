//! The TaskAgent's behaviour: the queue rules, the actions, and the work
//! that runs each task under the task supervisor.
//!
//! A task moves queue -> in progress -> finished. Moving it into progress
//! is saved before its work starts (the work is a `StartWork` directive, run
//! after the save), and its completion is an action saved like any other,
//! so a kill at any point leaves it queued or in progress on disk, never
//! lost, and counted only once: a run's completion counts only if that run
//! is still the one in progress.
//!
//! This module is not the data model (see `task::model`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode, RetryPolicy, isolate, retry};
use serde::Deserialize;

use super::model::{
    InProgress, MAX_TASK_ID_BYTES, MIN_TASK_TIMEOUT, SubmitReceipt, Task, TaskAgentState,
    TaskAgentStatus, TaskRecord, TaskRun, TaskStatus, duration_ms,
};
use crate::agent::{Action, ActionContext, Agent, AgentEnv};
use crate::metrics;
use crate::persist::PersistentAgent;
use crate::server::AgentRef;
use crate::{ActionSet, validation_error};

/// The largest queue: 1,000 tasks; one more is `queue_full`.
pub const DEFAULT_MAX_QUEUE: usize = 1_000;
/// Consecutive task errors after which the agent pauses itself: 10.
pub const DEFAULT_PAUSE_AFTER_ERRORS: u32 = 10;

/// The application's work: runs one attempt of one task.
///
/// It may run more than once for one task (after a crash, with the same
/// [`TaskRun::idempotency_key`]), so it should be idempotent by that key.
/// An infrastructure error ([`Error::is_retryable`]) is retried with the
/// error crate's backoff up to the task's retries; any other error fails
/// the task at once. A panic is a failure too.
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs one attempt.
    fn run(&self, task: TaskRun) -> impl Future<Output = Result<serde_json::Value, Error>> + Send;
}

/// How a [`TaskAgent`] is built.
pub struct TaskAgentArgs<H> {
    handler: Arc<H>,
    max_queue: usize,
    max_concurrent: usize,
    pause_after_errors: u32,
    retry_base_delay: Duration,
    capabilities: Vec<String>,
}

impl<H> Clone for TaskAgentArgs<H> {
    fn clone(&self) -> Self {
        TaskAgentArgs {
            handler: Arc::clone(&self.handler),
            max_queue: self.max_queue,
            max_concurrent: self.max_concurrent,
            pause_after_errors: self.pause_after_errors,
            retry_base_delay: self.retry_base_delay,
            capabilities: self.capabilities.clone(),
        }
    }
}

impl<H> std::fmt::Debug for TaskAgentArgs<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskAgentArgs")
            .field("max_queue", &self.max_queue)
            .field("max_concurrent", &self.max_concurrent)
            .field("pause_after_errors", &self.pause_after_errors)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl<H: TaskHandler> TaskAgentArgs<H> {
    /// The defaults: a queue of 1,000, one task at a time, pause after 10
    /// consecutive errors, retries from 100 ms doubling (the error crate's
    /// backoff), capability `"tasks"`.
    pub fn new(handler: H) -> TaskAgentArgs<H> {
        TaskAgentArgs {
            handler: Arc::new(handler),
            max_queue: DEFAULT_MAX_QUEUE,
            max_concurrent: 1,
            pause_after_errors: DEFAULT_PAUSE_AFTER_ERRORS,
            retry_base_delay: Duration::from_millis(100),
            capabilities: vec!["tasks".to_owned()],
        }
    }

    /// Sets the queue bound (at least 1).
    pub fn max_queue(&mut self, max_queue: usize) -> &mut Self {
        self.max_queue = max_queue.max(1);
        self
    }

    /// Sets how many tasks run at once (at least 1).
    pub fn max_concurrent(&mut self, max_concurrent: usize) -> &mut Self {
        self.max_concurrent = max_concurrent.max(1);
        self
    }

    /// Sets after how many consecutive task errors the agent pauses itself
    /// (at least 1).
    pub fn pause_after_errors(&mut self, errors: u32) -> &mut Self {
        self.pause_after_errors = errors.max(1);
        self
    }

    /// Sets the first retry delay (doubling, capped at 5 s).
    pub fn retry_base_delay(&mut self, delay: Duration) -> &mut Self {
        self.retry_base_delay = delay;
        self
    }

    /// Sets the capabilities published in the registry.
    pub fn capabilities(&mut self, capabilities: Vec<String>) -> &mut Self {
        self.capabilities = capabilities;
        self
    }
}

/// An agent that runs queued tasks through a [`TaskHandler`], one run per
/// task under the task supervisor, with its queue, tasks in progress,
/// counters and status persisted (use [`AgentSpec::persistent`]).
///
/// Actions: [`SubmitTask`] (`submit`), [`PauseTasks`] (`pause`),
/// [`ResumeTasks`] (`resume`), [`TaskStatusQuery`] (`status`),
/// [`CancelTask`] (`cancel`); all callable by name with JSON.
///
/// [`AgentSpec::persistent`]: crate::AgentSpec::persistent
pub struct TaskAgent<H: TaskHandler> {
    state: TaskAgentState,
    args: TaskAgentArgs<H>,
    clock: SharedClock,
    id: Arc<str>,
}

impl<H: TaskHandler> std::fmt::Debug for TaskAgent<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskAgent")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish()
    }
}

impl<H: TaskHandler> TaskAgent<H> {
    /// The current state (queue, tasks in progress, counters, status).
    pub fn state(&self) -> &TaskAgentState {
        &self.state
    }

    /// The status summary.
    pub fn status(&self) -> TaskAgentStatus {
        let counters = self.state.counters;
        TaskAgentStatus {
            status: self.state.status,
            status_reason: self.state.status_reason.clone(),
            queued: self.state.queue.len(),
            in_progress: self
                .state
                .in_progress
                .iter()
                .map(|running| running.task.id.clone())
                .collect(),
            counters,
            average_duration_ms: counters
                .average()
                .map(|average| average.as_secs_f64() * 1_000.0),
            consecutive_errors: self.state.consecutive_errors,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0)
    }

    fn can_start(&self) -> bool {
        matches!(self.state.status, TaskStatus::Idle | TaskStatus::Processing)
    }

    /// Starts queued tasks while there is room, then settles the status.
    fn pump(&mut self, ctx: &mut ActionContext<Self>) {
        while self.can_start() && self.state.in_progress.len() < self.args.max_concurrent {
            let Some(task) = self.state.queue.pop_front() else {
                break;
            };
            let running = InProgress {
                task,
                run: self.state.next_run,
                started_at_ms: self.now_ms(),
            };
            self.state.next_run += 1;
            self.start_run(&running, ctx);
            self.state.in_progress.push(running);
        }
        if self.can_start() {
            self.state.status = if self.state.in_progress.is_empty() {
                TaskStatus::Idle
            } else {
                TaskStatus::Processing
            };
        }
    }

    /// Leaves the work of one run for the runtime to start after the save.
    fn start_run(&self, running: &InProgress, ctx: &mut ActionContext<Self>) {
        let task = &running.task;
        // The text was written by `serde_json::to_string` at submit time,
        // so it parses; `Null` only guards a hand-edited store.
        let input = serde_json::from_str(&task.input_json).unwrap_or(serde_json::Value::Null);
        let run = TaskRun {
            id: task.id.clone(),
            kind: task.kind.clone(),
            input,
            idempotency_key: task.idempotency_key.clone(),
            attempt: 0,
        };
        let policy = RetryPolicy::new()
            .max_attempts(task.retries.saturating_add(1))
            .base_delay(self.args.retry_base_delay);
        let work = run_task(
            Arc::clone(&self.args.handler),
            run,
            running.run,
            Duration::from_millis(task.timeout_ms),
            policy,
            Arc::clone(&self.clock),
            ctx.myself().clone(),
        );
        ctx.start_work(work);
    }
}

/// One run of one task: attempts with retries, each isolated (a panic is
/// an error) and bounded by the task's timeout; then the completion is
/// delivered to the agent.
async fn run_task<H: TaskHandler>(
    handler: Arc<H>,
    run: TaskRun,
    run_number: u64,
    timeout: Duration,
    policy: RetryPolicy,
    clock: SharedClock,
    agent: AgentRef<TaskAgent<H>>,
) {
    let started = clock.elapsed();
    let task_id = run.id.clone();
    let mut attempt = 0;
    let outcome = retry(&policy, || {
        attempt += 1;
        let handler = Arc::clone(&handler);
        let mut run = run.clone();
        run.attempt = attempt;
        isolate(timeout, async move { handler.run(run).await })
    })
    .await;
    let finished = TaskFinished {
        task_id,
        run: run_number,
        error: outcome.err(),
        duration: clock.elapsed().saturating_sub(started),
    };
    // Undeliverable only when the agent's process ended for good; the task
    // is still in progress on disk and runs again at the next start.
    if let Err(error) = agent.cast_until_delivered(finished).await {
        tracing::warn!(%error, "a task's completion could not be delivered");
    }
}

impl<H: TaskHandler> Agent for TaskAgent<H> {
    const KIND: &'static str = "task_agent";
    type Args = TaskAgentArgs<H>;

    fn init(args: TaskAgentArgs<H>, env: &AgentEnv) -> Result<Self, Error> {
        Ok(TaskAgent {
            state: TaskAgentState::default(),
            args,
            clock: Arc::clone(env.clock()),
            id: Arc::from(env.id()),
        })
    }

    fn actions(actions: &mut ActionSet<Self>) {
        actions
            .add::<SubmitTask>()
            .add::<PauseTasks>()
            .add::<ResumeTasks>()
            .add::<TaskStatusQuery>()
            .add::<CancelTask>();
    }

    /// Runs the tasks that were in progress when the last instance ended
    /// again (new run numbers, same idempotency keys), then queued ones.
    fn on_start(&mut self, ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        let mut restarted = std::mem::take(&mut self.state.in_progress);
        for running in &mut restarted {
            running.run = self.state.next_run;
            running.started_at_ms = self.now_ms();
            self.state.next_run += 1;
            self.start_run(running, ctx);
        }
        self.state.in_progress = restarted;
        self.pump(ctx);
        Ok(())
    }

    fn capabilities(&self) -> Vec<String> {
        self.args.capabilities.clone()
    }

    fn load(&self) -> u64 {
        (self.state.queue.len() + self.state.in_progress.len()) as u64
    }

    /// A run whose work could not be started (the task supervisor is shut
    /// down) puts the agent in the error state until resumed; the run
    /// stays in progress and starts again at the next start.
    fn on_action_error(&mut self, _action: &'static str, error: &Error) {
        if error.code() == ErrorCode::SHUT_DOWN {
            self.state.status = TaskStatus::Error;
            self.state.status_reason = Some(format!("work could not be started: {error}"));
        }
    }
}

impl<H: TaskHandler> PersistentAgent for TaskAgent<H> {
    type Snapshot = TaskAgentState;

    fn snapshot(&self) -> TaskAgentState {
        self.state.clone()
    }

    fn restore(&mut self, stored: TaskAgentState) {
        self.state = stored;
    }
}

/// Queues a task (`submit`; the JSON parameters are a [`Task`]).
///
/// Fails with `validation_failed` naming the parameter (`id`, `type`,
/// `timeout_ms`, `idempotency_key`), `already_exists` for an id already
/// queued or running, `queue_full` when the queue holds its maximum.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct SubmitTask(pub Task);

fn check_name(parameter: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > MAX_TASK_ID_BYTES {
        return Err(validation_error(
            parameter,
            format!("must be 1 to {MAX_TASK_ID_BYTES} bytes long"),
        ));
    }
    Ok(())
}

impl<H: TaskHandler> Action<TaskAgent<H>> for SubmitTask {
    const NAME: &'static str = "submit";
    type Output = SubmitReceipt;

    fn validate(&self) -> Result<(), Error> {
        let task = &self.0;
        check_name("id", &task.id)?;
        check_name("type", &task.kind)?;
        if let Some(key) = &task.idempotency_key {
            check_name("idempotency_key", key)?;
        }
        if task.timeout_ms < duration_ms(MIN_TASK_TIMEOUT) {
            return Err(validation_error(
                "timeout_ms",
                format!("must be at least {}", duration_ms(MIN_TASK_TIMEOUT)),
            ));
        }
        Ok(())
    }

    fn run(
        self,
        agent: &mut TaskAgent<H>,
        ctx: &mut ActionContext<TaskAgent<H>>,
    ) -> Result<SubmitReceipt, Error> {
        let task = self.0;
        let state = &agent.state;
        if state.queue.iter().any(|queued| queued.id == task.id)
            || state
                .in_progress
                .iter()
                .any(|running| running.task.id == task.id)
        {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!("task {} is already queued or running", task.id),
            )
            .with_context("task", &task.id));
        }
        if state.queue.len() >= agent.args.max_queue {
            return Err(Error::new(
                ErrorCode::QUEUE_FULL,
                format!(
                    "the task queue holds its maximum of {}",
                    agent.args.max_queue
                ),
            )
            .with_context("max_queue", agent.args.max_queue));
        }
        let input_json = serde_json::to_string(&task.input).map_err(|error| {
            validation_error("input", "is not serialisable JSON").with_cause(error)
        })?;
        let record = TaskRecord {
            idempotency_key: task.idempotency_key.unwrap_or_else(|| task.id.clone()),
            id: task.id,
            kind: task.kind,
            input_json,
            priority: task.priority,
            timeout_ms: task.timeout_ms,
            retries: task.retries,
            queued_at_ms: agent.now_ms(),
        };
        let queue = &mut agent.state.queue;
        let position = queue
            .iter()
            .position(|queued| queued.priority < record.priority)
            .unwrap_or(queue.len());
        queue.insert(position, record);
        agent.pump(ctx);
        Ok(SubmitReceipt {
            position,
            queued: agent.state.queue.len(),
        })
    }
}

/// Stops starting tasks (`pause`); running ones finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseTasks {}

impl<H: TaskHandler> Action<TaskAgent<H>> for PauseTasks {
    const NAME: &'static str = "pause";
    type Output = TaskAgentStatus;

    fn run(
        self,
        agent: &mut TaskAgent<H>,
        _ctx: &mut ActionContext<TaskAgent<H>>,
    ) -> Result<TaskAgentStatus, Error> {
        agent.state.status = TaskStatus::Paused;
        agent.state.status_reason = Some("paused by command".to_owned());
        Ok(agent.status())
    }
}

/// Starts tasks again after a pause or an error (`resume`), and clears the
/// consecutive error count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeTasks {}

impl<H: TaskHandler> Action<TaskAgent<H>> for ResumeTasks {
    const NAME: &'static str = "resume";
    type Output = TaskAgentStatus;

    fn run(
        self,
        agent: &mut TaskAgent<H>,
        ctx: &mut ActionContext<TaskAgent<H>>,
    ) -> Result<TaskAgentStatus, Error> {
        agent.state.status = TaskStatus::Idle;
        agent.state.status_reason = None;
        agent.state.consecutive_errors = 0;
        agent.pump(ctx);
        Ok(agent.status())
    }
}

/// The status summary (`status`); changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusQuery {}

impl<H: TaskHandler> Action<TaskAgent<H>> for TaskStatusQuery {
    const NAME: &'static str = "status";
    type Output = TaskAgentStatus;

    fn run(
        self,
        agent: &mut TaskAgent<H>,
        _ctx: &mut ActionContext<TaskAgent<H>>,
    ) -> Result<TaskAgentStatus, Error> {
        Ok(agent.status())
    }
}

/// Removes a queued task (`cancel`); true when it was queued. A running
/// task is not interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelTask {
    /// The task id.
    pub id: String,
}

impl<H: TaskHandler> Action<TaskAgent<H>> for CancelTask {
    const NAME: &'static str = "cancel";
    type Output = bool;

    fn validate(&self) -> Result<(), Error> {
        check_name("id", &self.id)
    }

    fn run(
        self,
        agent: &mut TaskAgent<H>,
        _ctx: &mut ActionContext<TaskAgent<H>>,
    ) -> Result<bool, Error> {
        let before = agent.state.queue.len();
        agent.state.queue.retain(|queued| queued.id != self.id);
        Ok(agent.state.queue.len() != before)
    }
}

/// A run finished (sent by the run's work; not callable by name).
#[derive(Debug)]
struct TaskFinished {
    task_id: String,
    run: u64,
    error: Option<Error>,
    duration: Duration,
}

impl<H: TaskHandler> Action<TaskAgent<H>> for TaskFinished {
    const NAME: &'static str = "task_finished";
    type Output = ();

    fn run(
        self,
        agent: &mut TaskAgent<H>,
        ctx: &mut ActionContext<TaskAgent<H>>,
    ) -> Result<(), Error> {
        let state = &mut agent.state;
        let Some(index) = state
            .in_progress
            .iter()
            .position(|running| running.run == self.run && running.task.id == self.task_id)
        else {
            // A run from before a restart, already started again.
            return Ok(());
        };
        state.in_progress.remove(index);
        let succeeded = self.error.is_none();
        state.counters.record(succeeded, self.duration);
        metrics::task_finished(<TaskAgent<H> as Agent>::KIND, succeeded, self.duration);
        match &self.error {
            None => state.consecutive_errors = 0,
            Some(error) => {
                state.consecutive_errors += 1;
                tracing::debug!(agent = %agent.id, task = %self.task_id, %error, "a task failed");
                if state.consecutive_errors >= agent.args.pause_after_errors
                    && state.status != TaskStatus::Paused
                {
                    state.status = TaskStatus::Paused;
                    state.status_reason = Some(format!(
                        "paused after {} consecutive task errors",
                        state.consecutive_errors
                    ));
                }
            }
        }
        agent.pump(ctx);
        Ok(())
    }
}
