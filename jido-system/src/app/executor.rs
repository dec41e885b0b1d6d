//! [`GatedExecutor`]: where workflow steps run, gated by the flag
//! `enforce_supervised_tasks`.
//!
//! Steps run as tasks of the application's task supervisor. While that
//! supervisor is stopped (its child is restarting), a step cannot start:
//! with the flag on that is an error (the step is reported interrupted and
//! runs again when the workflow resumes); with it off the step falls back
//! to an unsupervised tokio task, with a warning and the counter
//! `jido_system_unsupervised_work_total`.
//!
//! This module is not for running steps (jido-workflow's `StepJob`).

use std::sync::Arc;

use foundation_error::{Error, ErrorCode, Result};
use jido_workflow::{StepAbort, StepExecutor, StepJob};

use super::Shared;
use super::spawn;
use crate::flags::ENFORCE_SUPERVISED_TASKS;

/// The application's step executor.
pub struct GatedExecutor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GatedExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatedExecutor")
            .field("tasks", &self.shared.tasks.name())
            .finish()
    }
}

impl GatedExecutor {
    /// An executor on the application's task supervisor.
    pub fn new(shared: Arc<Shared>) -> GatedExecutor {
        GatedExecutor { shared }
    }

    fn enforced(&self) -> bool {
        // Without flags (restarting), enforce: the safe side.
        self.shared
            .flags
            .get()
            .map_or(true, |flags| flags.is_enabled(ENFORCE_SUPERVISED_TASKS))
    }
}

impl StepExecutor for GatedExecutor {
    fn execute(&self, job: StepJob) -> Result<StepAbort> {
        if !self.shared.tasks.is_shut_down() {
            let handle = spawn::supervised(&self.shared.tasks, job.run())?;
            let handle = Arc::new(handle);
            return Ok(StepAbort::new(move || handle.abort()));
        }
        if self.enforced() {
            return Err(Error::new(
                ErrorCode::SHUT_DOWN,
                "the task supervisor is restarting and enforce_supervised_tasks is on",
            )
            .with_context("flag", ENFORCE_SUPERVISED_TASKS));
        }
        tracing::warn!(
            step = %job.input().idempotency_key,
            "the task supervisor is stopped; running the step unsupervised (enforce_supervised_tasks is off)"
        );
        metrics::counter!(crate::metrics::UNSUPERVISED_WORK_TOTAL).increment(1);
        let abort = spawn::unsupervised(job.run());
        Ok(StepAbort::new(move || abort.abort()))
    }
}
