//! Where a step's work runs: the [`StepExecutor`] seam and its default,
//! [`TaskExecutor`], which runs each work as a supervised task under a
//! `foundation_core::TaskSupervisor`, never inline in a workflow's mailbox.
//!
//! A [`StepJob`] is self-contained: it runs the work under the task's
//! timeout, catches a panic, and reports the outcome to its workflow
//! process. If the job is dropped before it reports (its task was aborted,
//! its executor shut down), it reports the step interrupted, so the
//! workflow re-runs it; the workflow never waits on a step that is gone.
//!
//! This module is not for deciding what runs (see `process`).

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use foundation_core::{ActorRef, TaskHandle, TaskSupervisor};
use foundation_error::{Error, ErrorCode};
use futures::FutureExt;
use serde_json::Value;

use crate::metrics;
use crate::process::{StepMessage, WorkflowProcess};
use crate::work::{StepInput, Work};

/// A step's work, ready to run.
pub struct StepJob {
    pub(crate) work: Arc<dyn Work>,
    pub(crate) input: StepInput,
    pub(crate) timeout: Duration,
    pub(crate) report: Report,
}

impl fmt::Debug for StepJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepJob")
            .field("key", &self.input.idempotency_key)
            .field("attempt", &self.input.attempt)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl StepJob {
    /// The step's input (its idempotency key, parameters, attempt).
    pub fn input(&self) -> &StepInput {
        &self.input
    }

    /// Runs the work once (bounded by the task's timeout, a panic caught as
    /// `process_crashed`) and reports the outcome to the workflow.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it finishes reports the step as
    /// interrupted; the workflow runs it again.
    pub async fn run(mut self) {
        let work = self.work.run(self.input.clone());
        let outcome =
            match tokio::time::timeout(self.timeout, AssertUnwindSafe(work).catch_unwind()).await {
                Ok(Ok(result)) => result,
                Ok(Err(_panic)) => Err(Error::new(
                    ErrorCode::PROCESS_CRASHED,
                    format!("the work of step {} panicked", self.input.path),
                )),
                Err(_) => Err(Error::timeout(format!(
                    "step {} did not finish within {} ms",
                    self.input.path,
                    self.timeout.as_millis()
                ))
                .with_context("timeout_ms", self.timeout.as_millis())),
            };
        self.report.send(Some(outcome));
    }
}

/// Sends a job's outcome to its workflow once; on drop without an outcome,
/// sends "interrupted".
pub(crate) struct Report {
    pub(crate) process: ActorRef<WorkflowProcess>,
    pub(crate) task: u32,
    pub(crate) run: u64,
    pub(crate) compensation: bool,
    pub(crate) sent: bool,
}

impl Report {
    fn send(&mut self, outcome: Option<Result<Value, Error>>) {
        if self.sent {
            return;
        }
        self.sent = true;
        // Workflow mailboxes are unbounded (at most one message per running
        // step is outstanding), so this fails only when the process
        // instance has ended. The outcome is then lost on purpose, never
        // silently: the step's start is in the journal without a result,
        // so the process's next instance runs the step again with the same
        // idempotency key (at least once), or reports it interrupted if it
        // is at-most-once. Counted and traced here.
        let reason = match &outcome {
            Some(Ok(_)) => "result",
            Some(Err(_)) => "failure",
            None => "interrupted",
        };
        if let Err(error) = self.process.try_send_info(StepMessage::Outcome {
            task: self.task,
            run: self.run,
            compensation: self.compensation,
            outcome,
        }) {
            ::metrics::counter!(metrics::UNDELIVERED_OUTCOMES_TOTAL, "outcome" => reason)
                .increment(1);
            tracing::warn!(
                task = self.task,
                run = self.run,
                compensation = self.compensation,
                error = %error,
                "a step outcome could not reach its workflow process (it has ended); \
                 its next instance re-runs the step from the journal with the same key"
            );
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.send(None);
    }
}

/// Stops a running job (its report then says interrupted).
#[derive(Clone)]
pub struct StepAbort(Arc<dyn Fn() + Send + Sync>);

impl StepAbort {
    /// A handle that runs `abort` when asked to stop the job.
    pub fn new(abort: impl Fn() + Send + Sync + 'static) -> StepAbort {
        StepAbort(Arc::new(abort))
    }

    /// Stops the job.
    pub fn abort(&self) {
        (self.0)();
    }
}

impl fmt::Debug for StepAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StepAbort")
    }
}

/// Runs step jobs somewhere other than the workflow's mailbox.
pub trait StepExecutor: Send + Sync + fmt::Debug + 'static {
    /// Starts `job` (it must eventually be run or dropped); returns how to
    /// stop it.
    ///
    /// # Errors
    ///
    /// When the job cannot be started (the executor has shut down); the
    /// job is dropped and reports the step interrupted.
    fn execute(&self, job: StepJob) -> Result<StepAbort, Error>;
}

/// The default executor: each job is a supervised task.
#[derive(Debug, Clone)]
pub struct TaskExecutor {
    tasks: TaskSupervisor,
}

impl TaskExecutor {
    /// Runs jobs under `tasks`.
    pub fn new(tasks: TaskSupervisor) -> TaskExecutor {
        TaskExecutor { tasks }
    }

    /// The task supervisor.
    pub fn tasks(&self) -> &TaskSupervisor {
        &self.tasks
    }
}

impl StepExecutor for TaskExecutor {
    fn execute(&self, job: StepJob) -> Result<StepAbort, Error> {
        let handle: TaskHandle<()> = self.tasks.spawn(job.run())?;
        let handle = Arc::new(handle);
        Ok(StepAbort::new(move || handle.abort()))
    }
}
