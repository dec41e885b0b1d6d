//! [`GatedExecutor`]: where workflow steps run, gated by the flag
//! `enforce_supervised_tasks`.
//!
//! Steps run as tasks of the application's task supervisor. While that
//! supervisor is stopped (its child is restarting, or an operator stopped
//! it), a step cannot start under it:
//!
//! - with the flag on, the step waits, parked, for the supervisor to be
//!   back (at most [`PARK_LIMIT`]) and then runs under it; past the limit
//!   it is dropped, which reports it interrupted, and the workflow runs it
//!   again. Its workflow's process is not failed (refusing the step with
//!   an error crashed the process at every restart, and the repeated
//!   crashes ended the whole application tree; the test
//!   `tests/it/supervised.rs` found it). The waiting is a small task of its
//!   own, outside the supervisor (which is what it waits for); it runs no
//!   step work itself, and aborting the step (its workflow's process
//!   ends) ends it.
//! - with it off, the step falls back to an unsupervised tokio task at
//!   once, with a warning and the counter
//!   `jido_system_unsupervised_work_total`.
//!
//! This module is not for running steps (jido-workflow's `StepJob`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foundation_core::{TaskHandle, TaskSupervisor};
use foundation_error::Result;
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
            tracing::info!(
                step = %job.input().idempotency_key,
                "the task supervisor is stopped; the step waits for it (enforce_supervised_tasks is on)"
            );
            let parked = Arc::new(Mutex::new(Parked::default()));
            let waiter = spawn::parked(wait_then_run(
                self.shared.tasks.clone(),
                job,
                Arc::clone(&parked),
            ));
            return Ok(StepAbort::new(move || {
                waiter.abort();
                let mut parked = parked.lock().unwrap_or_else(PoisonError::into_inner);
                parked.aborted = true;
                if let Some(handle) = parked.running.take() {
                    handle.abort();
                }
            }));
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

/// How long a parked step waits for the task supervisor before it is
/// dropped (reported interrupted; its workflow runs it again).
pub(crate) const PARK_LIMIT: Duration = Duration::from_secs(60);
/// How often a parked step looks whether the task supervisor is back.
const PARK_POLL: Duration = Duration::from_millis(50);

/// A parked step: whether it was aborted, and its task once it runs.
#[derive(Default)]
struct Parked {
    aborted: bool,
    running: Option<TaskHandle<()>>,
}

/// Waits (at most [`PARK_LIMIT`]) until `tasks` takes work again, then
/// runs `job` under it, unless the step was aborted meanwhile.
async fn wait_then_run(tasks: TaskSupervisor, job: StepJob, parked: Arc<Mutex<Parked>>) {
    let waited = tokio::time::timeout(PARK_LIMIT, async {
        while tasks.is_shut_down() {
            tokio::time::sleep(PARK_POLL).await;
        }
    })
    .await;
    if waited.is_err() {
        tracing::warn!(
            step = %job.input().idempotency_key,
            "the task supervisor stayed stopped for {PARK_LIMIT:?}; the step is reported interrupted"
        );
        return;
    }
    let mut parked = parked.lock().unwrap_or_else(PoisonError::into_inner);
    if parked.aborted {
        return;
    }
    // Stopped again in between: dropping the job reports it interrupted.
    match spawn::supervised(&tasks, job.run()) {
        Ok(handle) => parked.running = Some(handle),
        Err(error) => tracing::warn!(%error, "a parked step could not start; reported interrupted"),
    }
}
