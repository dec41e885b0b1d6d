//! CoordinatorV1, **legacy**: the coordinator the plan migrates from. It
//! runs workflows in its own memory, without a journal, as the original
//! god agent did: a kill loses every workflow in flight. It exists so that
//! the V1 to V2 migration is real and measurable; do not build on it.
//!
//! It runs registered works only (no retries, timers, signals or
//! compensation), each as a task under its task supervisor, and keeps the
//! same replayable state as a workflow process, only never written down.
//!
//! This module is not for new code: use [`CoordinatorV2`](super::CoordinatorV2).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use foundation_core::{Actor, ActorOptions, ChildSpec, Context, TaskSupervisor};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use serde_json::Value;

use super::CoordinatorRecorder;
use crate::definition::{WorkflowDefinition, invalid};
use crate::record::{Event, StoredError, to_json_text};
use crate::state::{TaskPhase, WorkflowState};
use crate::status::WorkflowStatus;
use crate::work::{AWAIT_SIGNAL, DELAY, StepInput, WorkRegistry};

/// How many ended workflows V1 remembers the status of.
const REMEMBERED: usize = 10_000;

/// What CoordinatorV1 is started from.
#[derive(Clone)]
pub struct CoordinatorV1Args {
    /// Its id.
    pub id: String,
    /// The works it runs.
    pub works: WorkRegistry,
    /// Where the works run.
    pub tasks: TaskSupervisor,
    /// The clock for request durations.
    pub clock: SharedClock,
    /// Where it reports requests.
    pub recorder: Option<Arc<dyn CoordinatorRecorder>>,
}

impl std::fmt::Debug for CoordinatorV1Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorV1Args")
            .field("id", &self.id)
            .finish()
    }
}

/// Requests to CoordinatorV1.
#[derive(Debug)]
#[non_exhaustive]
pub enum V1Call {
    /// Start a workflow in memory; the reply is its id.
    StartWorkflow {
        /// The definition.
        definition: WorkflowDefinition,
        /// Its metadata.
        metadata: Value,
    },
    /// The status of a workflow it knows (`None`: unknown, or lost in a
    /// crash).
    Status {
        /// The workflow.
        workflow: String,
    },
    /// Counts.
    Stats,
    /// Hands over every workflow in flight (for the migration) and forgets
    /// them.
    TakeInFlight,
}

/// A workflow handed over by V1.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct V1Workflow {
    /// Its V1 id.
    pub id: String,
    /// The definition.
    pub definition: WorkflowDefinition,
    /// Its metadata.
    pub metadata: Value,
    /// The outputs of the tasks that completed, by task id.
    pub completed: BTreeMap<String, Value>,
    /// The path of the first task that had not completed.
    pub original_step: String,
}

/// Replies of CoordinatorV1.
#[derive(Debug)]
#[non_exhaustive]
pub enum V1Reply {
    /// The new workflow's id.
    Started(String),
    /// A workflow's status.
    Status(Option<WorkflowStatus>),
    /// Counts.
    Stats {
        /// Workflows in flight.
        in_flight: usize,
        /// Workflows completed.
        completed_count: u64,
        /// Workflows failed.
        failed_count: u64,
    },
    /// The workflows handed over.
    InFlight(Vec<V1Workflow>),
}

/// A work ended.
#[derive(Debug)]
pub struct V1StepDone {
    workflow: String,
    task: u32,
    result: Result<Value, Error>,
}

struct InMemory {
    state: WorkflowState,
}

/// The legacy coordinator; see the module docs.
pub struct CoordinatorV1 {
    args: CoordinatorV1Args,
    workflows: HashMap<String, InMemory>,
    ended: HashMap<String, WorkflowStatus>,
    completed_count: u64,
    failed_count: u64,
}

impl std::fmt::Debug for CoordinatorV1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorV1")
            .field("id", &self.args.id)
            .field("in_flight", &self.workflows.len())
            .finish()
    }
}

impl CoordinatorV1 {
    /// A child spec for a supervisor.
    pub fn child_spec(args: CoordinatorV1Args) -> ChildSpec<CoordinatorV1> {
        let mut options = ActorOptions::new();
        options.unbounded_mailbox();
        let id = format!("coordinator_v1_{}", args.id);
        ChildSpec::with_options(id, args, options)
    }

    fn start(
        &mut self,
        definition: WorkflowDefinition,
        metadata: Value,
        ctx: &mut Context<Self>,
    ) -> Result<String, Error> {
        definition.check_works(&self.args.works)?;
        if let Some(task) = definition
            .tasks()
            .iter()
            .find(|task| task.work == DELAY || task.work == AWAIT_SIGNAL)
        {
            return Err(invalid(
                "the legacy coordinator runs registered works only",
                &task.path,
                "work",
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut state = WorkflowState::new(definition);
        state.metadata = metadata;
        self.workflows.insert(id.clone(), InMemory { state });
        self.schedule(&id, ctx)?;
        Ok(id)
    }

    /// Starts every ready task of `workflow` (no bound, as the original).
    fn schedule(&mut self, workflow: &str, ctx: &mut Context<Self>) -> Result<(), Error> {
        let Some(entry) = self.workflows.get_mut(workflow) else {
            return Ok(());
        };
        let mut ready = Vec::new();
        if entry.state.ready(&mut ready, usize::MAX) {
            self.end(workflow, WorkflowStatus::Completed);
            return Ok(());
        }
        for task in ready {
            entry
                .state
                .apply(&Event::StepStarted { task, attempt: 1 })?;
            let spec = &entry.state.definition.tasks()[task as usize];
            let work = self.args.works.get(&spec.work).ok_or_else(|| {
                Error::new(
                    ErrorCode::VALIDATION_FAILED,
                    format!("unknown work {:?}", spec.work),
                )
            })?;
            let input = StepInput {
                workflow_id: workflow.into(),
                step_id: spec.id.clone(),
                path: spec.path.clone(),
                idempotency_key: format!("{workflow}/{}", spec.path),
                attempt: 1,
                params: spec.params.clone(),
                outputs: Arc::clone(&entry.state.outputs),
            };
            let timeout = spec.timeout;
            let me = ctx.myself();
            let workflow = workflow.to_owned();
            self.args.tasks.spawn(async move {
                let result = match tokio::time::timeout(timeout, work.run(input)).await {
                    Ok(result) => result,
                    Err(_) => Err(Error::timeout("the step did not finish in time")),
                };
                // V1 is the legacy coordinator without a journal: this fails
                // only when its instance has ended, and that instance's
                // in-memory workflows (this one included) are lost with it,
                // which is the behaviour the migration to V2 removes.
                let _ = me.try_send_info(V1StepDone {
                    workflow,
                    task,
                    result,
                });
            })?;
        }
        Ok(())
    }

    fn end(&mut self, workflow: &str, status: WorkflowStatus) {
        self.workflows.remove(workflow);
        if status == WorkflowStatus::Completed {
            self.completed_count += 1;
        } else {
            self.failed_count += 1;
        }
        if self.ended.len() >= REMEMBERED {
            self.ended.clear();
        }
        self.ended.insert(workflow.to_owned(), status);
    }
}

impl Actor for CoordinatorV1 {
    type Args = CoordinatorV1Args;
    type Call = V1Call;
    type Reply = V1Reply;
    type Cast = ();
    type Info = V1StepDone;

    async fn init(args: CoordinatorV1Args, _ctx: &mut Context<Self>) -> Result<Self, Error> {
        // Nothing to recover: that is the point of V1.
        if let Some(recorder) = &args.recorder {
            recorder.record_restore("coordinator_v1", true, Duration::ZERO);
        }
        Ok(CoordinatorV1 {
            args,
            workflows: HashMap::new(),
            ended: HashMap::new(),
            completed_count: 0,
            failed_count: 0,
        })
    }

    async fn handle_call(
        &mut self,
        request: V1Call,
        ctx: &mut Context<Self>,
    ) -> Result<V1Reply, Error> {
        match request {
            V1Call::StartWorkflow {
                definition,
                metadata,
            } => {
                let since = self.args.clock.elapsed();
                let result = self.start(definition, metadata, ctx);
                if let Some(recorder) = &self.args.recorder {
                    recorder.record_request(
                        "v1",
                        result.is_ok(),
                        self.args.clock.elapsed().saturating_sub(since),
                    );
                }
                result.map(V1Reply::Started)
            }
            V1Call::Status { workflow } => {
                Ok(V1Reply::Status(match self.workflows.get(&workflow) {
                    Some(entry) => Some(entry.state.status(true)),
                    None => self.ended.get(&workflow).copied(),
                }))
            }
            V1Call::Stats => Ok(V1Reply::Stats {
                in_flight: self.workflows.len(),
                completed_count: self.completed_count,
                failed_count: self.failed_count,
            }),
            V1Call::TakeInFlight => {
                let taken = self
                    .workflows
                    .drain()
                    .map(|(id, entry)| {
                        let state = entry.state;
                        let original_step = state
                            .definition
                            .tasks()
                            .iter()
                            .zip(&state.tasks)
                            .find(|(_, task)| task.phase != TaskPhase::Succeeded)
                            .map(|(spec, _)| spec.path.clone())
                            .unwrap_or_default();
                        V1Workflow {
                            id,
                            completed: (*state.outputs).clone(),
                            definition: state.definition,
                            metadata: state.metadata,
                            original_step,
                        }
                    })
                    .collect();
                Ok(V1Reply::InFlight(taken))
            }
        }
    }

    async fn handle_info(
        &mut self,
        done: V1StepDone,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        let Some(entry) = self.workflows.get_mut(&done.workflow) else {
            // Forgotten (migrated, or lost in a crash).
            return Ok(());
        };
        match done.result {
            Ok(output) => {
                entry.state.apply(&Event::StepSucceeded {
                    task: done.task,
                    output: to_json_text(&output),
                })?;
                self.schedule(&done.workflow, ctx)
            }
            Err(error) => {
                entry.state.apply(&Event::StepFailed {
                    task: done.task,
                    error: StoredError::from_error(&error),
                })?;
                self.end(&done.workflow, WorkflowStatus::Failed);
                Ok(())
            }
        }
    }
}
