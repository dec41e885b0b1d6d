//! A workflow's state rebuilt from its journal: a pure state machine over
//! [`Event`]s, shared by the live process (which applies each event once
//! it is durable) and by status queries of workflows that are not running.
//!
//! It decides which tasks are ready (walking the step tree) and what is
//! left to compensate. It does no I/O and reads no clock. This module is
//! not for running anything (see `process`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};
use serde_json::Value;

use crate::definition::{Step, WorkflowDefinition};
use crate::record::{Event, StoredError, from_json_text};
use crate::status::{StepStatus, StepView, WorkflowStatus};
use crate::work::{AWAIT_SIGNAL, DELAY};

/// One task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskPhase {
    NotStarted,
    InFlight,
    RetryWait,
    Succeeded,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompensationPhase {
    None,
    Started,
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct TaskState {
    pub(crate) phase: TaskPhase,
    pub(crate) attempts: u32,
    pub(crate) failures: u32,
    pub(crate) retry_at_ms: Option<u64>,
    pub(crate) timer_due_ms: Option<u64>,
    pub(crate) error: Option<StoredError>,
    pub(crate) compensation: CompensationPhase,
}

/// The empty outputs every new state starts from, shared (an output's
/// insertion copies it first), so that a workflow that has no output yet
/// allocates none.
fn no_outputs() -> Arc<BTreeMap<String, Value>> {
    static EMPTY: std::sync::LazyLock<Arc<BTreeMap<String, Value>>> =
        std::sync::LazyLock::new(|| Arc::new(BTreeMap::new()));
    Arc::clone(&EMPTY)
}

/// The replayed state of one workflow.
#[derive(Debug, Clone)]
pub(crate) struct WorkflowState {
    pub(crate) definition: WorkflowDefinition,
    pub(crate) tasks: Vec<TaskState>,
    pub(crate) completed_order: Vec<u32>,
    pub(crate) outputs: Arc<BTreeMap<String, Value>>,
    pub(crate) signals: BTreeMap<String, VecDeque<String>>,
    pub(crate) cancel: Option<String>,
    pub(crate) failure: Option<(u32, StoredError)>,
    pub(crate) finished: Option<WorkflowStatus>,
    pub(crate) metadata: Value,
    pub(crate) started_at_ms: u64,
    /// The sequence number the next journal append must get.
    pub(crate) next_sequence: u64,
}

impl WorkflowState {
    pub(crate) fn new(definition: WorkflowDefinition) -> WorkflowState {
        let tasks = vec![
            TaskState {
                phase: TaskPhase::NotStarted,
                attempts: 0,
                failures: 0,
                retry_at_ms: None,
                timer_due_ms: None,
                error: None,
                compensation: CompensationPhase::None,
            };
            definition.tasks().len()
        ];
        WorkflowState {
            definition,
            tasks,
            completed_order: Vec::new(),
            outputs: no_outputs(),
            signals: BTreeMap::new(),
            cancel: None,
            failure: None,
            finished: None,
            metadata: Value::Null,
            started_at_ms: 0,
            next_sequence: 1,
        }
    }

    fn task_mut(&mut self, task: u32) -> Result<&mut TaskState, Error> {
        self.tasks.get_mut(task as usize).ok_or_else(|| {
            Error::new(
                ErrorCode::DATA_CORRUPTION,
                format!("the journal names task {task}, which its definition does not have"),
            )
        })
    }

    /// Applies one durable journal record (one event, or a batch of them)
    /// and counts it.
    pub(crate) fn apply(&mut self, record: &Event) -> Result<(), Error> {
        for event in record.events() {
            self.apply_event(event)?;
        }
        self.next_sequence += 1;
        Ok(())
    }

    /// Counts one journal record whose events were applied with
    /// [`apply_event`](Self::apply_event).
    pub(crate) fn count_record(&mut self) {
        self.next_sequence += 1;
    }

    /// Applies one event, without counting a journal record (the process
    /// stages events and journals them later as one record).
    pub(crate) fn apply_event(&mut self, event: &Event) -> Result<(), Error> {
        match event {
            Event::Started {
                metadata,
                started_at_ms,
                ..
            } => {
                self.metadata = from_json_text(metadata)?;
                self.started_at_ms = *started_at_ms;
            }
            Event::StepStarted { task, attempt } => {
                let state = self.task_mut(*task)?;
                state.phase = TaskPhase::InFlight;
                state.attempts = *attempt;
                state.retry_at_ms = None;
                state.timer_due_ms = None;
            }
            Event::StepSucceeded { task, output } => {
                let value = from_json_text(output)?;
                let state = self.task_mut(*task)?;
                if state.phase == TaskPhase::Succeeded {
                    return Ok(());
                }
                state.phase = TaskPhase::Succeeded;
                state.timer_due_ms = None;
                let spec = &self.definition.tasks()[*task as usize];
                if spec.work == AWAIT_SIGNAL
                    && let Some(Value::String(name)) = spec.params.get("signal")
                    && let Some(queue) = self.signals.get_mut(name)
                {
                    queue.pop_front();
                }
                let id = spec.id.clone();
                Arc::make_mut(&mut self.outputs).insert(id, value);
                self.completed_order.push(*task);
            }
            Event::AttemptFailed {
                task,
                error,
                retry_at_ms,
            } => {
                let state = self.task_mut(*task)?;
                state.phase = TaskPhase::RetryWait;
                state.failures += 1;
                state.retry_at_ms = Some(*retry_at_ms);
                state.error = Some(error.clone());
            }
            Event::StepFailed { task, error } => {
                let state = self.task_mut(*task)?;
                state.phase = TaskPhase::Failed;
                state.error = Some(error.clone());
                state.timer_due_ms = None;
                if self.failure.is_none() {
                    self.failure = Some((*task, error.clone()));
                }
            }
            Event::StepInterrupted { task } => {
                let error = StoredError {
                    code: ErrorCode::PROCESS_CRASHED.number(),
                    message: "interrupted: the step was running during a crash and is at-most-once"
                        .into(),
                };
                let state = self.task_mut(*task)?;
                state.phase = TaskPhase::Interrupted;
                state.error = Some(error.clone());
                if self.failure.is_none() {
                    self.failure = Some((*task, error));
                }
            }
            Event::TimerSet { task, due_ms } => {
                self.task_mut(*task)?.timer_due_ms = Some(*due_ms);
            }
            Event::SignalReceived { name, payload } => {
                self.signals
                    .entry(name.clone())
                    .or_default()
                    .push_back(payload.clone());
            }
            Event::CancelRequested { reason } => {
                if self.cancel.is_none() {
                    self.cancel = Some(reason.clone());
                }
            }
            Event::CompensationStarted { task } => {
                self.task_mut(*task)?.compensation = CompensationPhase::Started;
            }
            Event::CompensationFinished { task, error } => {
                let state = self.task_mut(*task)?;
                state.compensation = CompensationPhase::Done;
                if let Some(error) = error {
                    state.error = Some(error.clone());
                }
            }
            Event::Finished { status } => {
                self.finished =
                    Some(WorkflowStatus::from_code(*status).unwrap_or(WorkflowStatus::Failed));
            }
            Event::Batch(_) => {
                return Err(Error::new(
                    ErrorCode::DATA_CORRUPTION,
                    "a journal batch holds another batch",
                ));
            }
        }
        Ok(())
    }

    /// Whether the workflow is failing or cancelled (compensations are due).
    pub(crate) fn is_unwinding(&self) -> bool {
        self.cancel.is_some() || self.failure.is_some()
    }

    /// Appends up to `room` ready tasks to `ready`; returns whether every
    /// step has succeeded.
    pub(crate) fn ready(&self, ready: &mut Vec<u32>, room: usize) -> bool {
        let mut walk = Walker {
            tasks: &self.tasks,
            ready,
            room,
        };
        walk.sequence(self.definition.steps()) == Progress::Done
    }

    /// The next compensation to run: the latest-completed task with a
    /// compensation that has not finished.
    pub(crate) fn next_compensation(&self) -> Option<u32> {
        self.completed_order.iter().rev().copied().find(|task| {
            self.definition.tasks()[*task as usize]
                .compensation
                .is_some()
                && self.tasks[*task as usize].compensation != CompensationPhase::Done
        })
    }

    /// The status while the workflow runs.
    pub(crate) fn status(&self, has_running_work: bool) -> WorkflowStatus {
        if let Some(status) = self.finished {
            return status;
        }
        if self.is_unwinding() {
            return WorkflowStatus::Compensating;
        }
        let started = self
            .tasks
            .iter()
            .any(|task| task.phase != TaskPhase::NotStarted);
        if !started {
            return WorkflowStatus::Pending;
        }
        if has_running_work {
            WorkflowStatus::Running
        } else {
            WorkflowStatus::Waiting
        }
    }

    /// Whether a task waits on the process itself (a delay or a signal).
    pub(crate) fn is_builtin(&self, task: u32) -> bool {
        let work = &self.definition.tasks()[task as usize].work;
        work == DELAY || work == AWAIT_SIGNAL
    }

    pub(crate) fn steps(&self) -> Vec<StepView> {
        self.definition
            .tasks()
            .iter()
            .zip(&self.tasks)
            .map(|(spec, state)| StepView {
                id: spec.id.clone(),
                path: spec.path.clone(),
                status: match state.phase {
                    TaskPhase::NotStarted => StepStatus::Pending,
                    TaskPhase::InFlight => StepStatus::Running,
                    TaskPhase::RetryWait => StepStatus::Retrying,
                    TaskPhase::Succeeded => StepStatus::Completed,
                    TaskPhase::Failed => StepStatus::Failed,
                    TaskPhase::Interrupted => StepStatus::Interrupted,
                },
                attempts: state.attempts,
                output: self.outputs.get(&spec.id).cloned(),
                error: state
                    .error
                    .as_ref()
                    .map(|error| error.to_error().to_string()),
                compensated: state.compensation == CompensationPhase::Done,
            })
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Done,
    Pending,
    Failed,
}

struct Walker<'a> {
    tasks: &'a [TaskState],
    ready: &'a mut Vec<u32>,
    room: usize,
}

impl Walker<'_> {
    // Recursion is bounded by the validated depth (at most `Limits::max_depth`).
    fn step(&mut self, step: &Step) -> Progress {
        match step {
            Step::Task(index) => match self.tasks[*index].phase {
                TaskPhase::Succeeded => Progress::Done,
                TaskPhase::Failed | TaskPhase::Interrupted => Progress::Failed,
                TaskPhase::NotStarted => {
                    if self.ready.len() < self.room {
                        self.ready.push(*index as u32);
                    }
                    Progress::Pending
                }
                TaskPhase::InFlight | TaskPhase::RetryWait => Progress::Pending,
            },
            Step::Sequential(children) => self.sequence(children),
            Step::Parallel(children) => {
                let mut progress = Progress::Done;
                for child in children {
                    match self.step(child) {
                        Progress::Done => {}
                        Progress::Failed => progress = Progress::Failed,
                        Progress::Pending => {
                            if progress == Progress::Done {
                                progress = Progress::Pending;
                            }
                        }
                    }
                }
                progress
            }
        }
    }

    fn sequence(&mut self, steps: &[Step]) -> Progress {
        for step in steps {
            match self.step(step) {
                Progress::Done => {}
                other => return other,
            }
        }
        Progress::Done
    }
}
