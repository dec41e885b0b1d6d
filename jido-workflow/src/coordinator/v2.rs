//! CoordinatorV2: the thin coordinator. It starts workflows on the engine
//! and keeps, durably, the active workflows (id to start time and
//! metadata) and the completed and failed counts; it can answer "when this
//! workflow ends" with a deferred reply.
//!
//! Its state is saved with foundation-persist before every reply (and
//! before a workflow is started, so a kill cannot leave a running workflow
//! it does not know); on start it loads the state and reconciles it with
//! the engine (workflows that ended while it was down are counted then).
//! Workflow ends reach it as info messages from an engine finish listener
//! registered on its handle, which stays valid across restarts.
//!
//! This module is not for routing between V1 and V2 (see `router`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use foundation_core::{Actor, ActorOptions, ActorRef, ChildSpec, Context, ReplyPort};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use foundation_persist::{Record, StateStore, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CoordinatorRecorder;
use crate::definition::WorkflowDefinition;
use crate::engine::WorkflowEngine;
use crate::record::{from_json_text, to_json_text, wall_millis};
use crate::status::WorkflowStatus;

/// The state keyspace of coordinator states, by `v2/{coordinator id}`.
const COORDINATORS: &str = "jido_coordinators";

/// One active workflow, as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveWorkflow {
    /// When it was started (wall clock, milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// Its metadata, as JSON text.
    pub metadata: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CoordinatorState {
    active: BTreeMap<String, ActiveWorkflow>,
    completed_count: u64,
    failed_count: u64,
}

impl Record for CoordinatorState {
    const TYPE_TAG: &'static str = "jido_coordinator_v2_state";
    const SCHEMA_VERSION: u32 = 1;
}

/// What CoordinatorV2 reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoordinatorStats {
    /// The active workflows.
    pub active: BTreeMap<String, ActiveWorkflow>,
    /// Workflows that completed.
    pub completed_count: u64,
    /// Workflows that failed or were cancelled.
    pub failed_count: u64,
}

/// What CoordinatorV2 is started from.
#[derive(Clone)]
pub struct CoordinatorV2Args {
    /// Its id (the key of its saved state).
    pub id: String,
    /// The engine it starts workflows on.
    pub engine: WorkflowEngine,
    /// The store its state is saved in.
    pub store: Store,
    /// The clock for start times.
    pub clock: SharedClock,
    /// Where it reports requests and recoveries.
    pub recorder: Option<Arc<dyn CoordinatorRecorder>>,
}

impl std::fmt::Debug for CoordinatorV2Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorV2Args")
            .field("id", &self.id)
            .finish()
    }
}

/// Requests to CoordinatorV2.
#[derive(Debug)]
#[non_exhaustive]
pub enum V2Call {
    /// Start a workflow; the reply is its id.
    StartWorkflow {
        /// The definition.
        definition: WorkflowDefinition,
        /// Its metadata.
        metadata: Value,
    },
    /// Start a workflow migrated from V1 with the results it already has.
    StartMigrated {
        /// The definition.
        definition: WorkflowDefinition,
        /// Its metadata (with `migrated` and `original_step`).
        metadata: Value,
        /// Outputs of the tasks that completed on V1, by task id.
        completed: BTreeMap<String, Value>,
    },
    /// The state.
    Stats,
}

/// Requests to CoordinatorV2 answered later, through a kept
/// `foundation_core::ReplyPort` (use `ActorRef::ask`).
#[derive(Debug)]
#[non_exhaustive]
pub enum V2Cast {
    /// Answered with the workflow's final status when it ends (at once if
    /// it has ended; `data_not_found` for an unknown workflow). If the
    /// coordinator restarts meanwhile, the port is dropped and the caller
    /// fails at once: ask again.
    WhenFinished {
        /// The workflow.
        workflow: String,
        /// Where the answer goes.
        reply: ReplyPort<WorkflowStatus>,
    },
}

/// Replies of CoordinatorV2.
#[derive(Debug)]
#[non_exhaustive]
pub enum V2Reply {
    /// The new workflow's id.
    Started(String),
    /// The state.
    Stats(CoordinatorStats),
}

/// A workflow ended (from the engine's finish listener).
#[derive(Debug)]
pub struct WorkflowEnded {
    workflow: String,
    status: WorkflowStatus,
}

/// The thin coordinator; see the module docs.
pub struct CoordinatorV2 {
    args: CoordinatorV2Args,
    states: StateStore<CoordinatorState>,
    state: CoordinatorState,
    waiters: BTreeMap<String, Vec<ReplyPort<WorkflowStatus>>>,
}

impl std::fmt::Debug for CoordinatorV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorV2")
            .field("id", &self.args.id)
            .field("active", &self.state.active.len())
            .finish()
    }
}

impl CoordinatorV2 {
    /// A child spec for a supervisor, with the engine's finish listener
    /// wired to the child's handle.
    pub fn child_spec(args: CoordinatorV2Args) -> ChildSpec<CoordinatorV2> {
        let engine = args.engine.clone();
        let id = format!("coordinator_v2_{}", args.id);
        let mut options = ActorOptions::new();
        options.unbounded_mailbox();
        let spec = ChildSpec::<CoordinatorV2>::with_options(id, args, options);
        listen(&engine, spec.handle());
        spec
    }

    fn key(&self) -> String {
        format!("v2/{}", self.args.id)
    }

    async fn save(&self) -> Result<(), Error> {
        self.states.put(&self.key(), &self.state).await.map(drop)
    }

    fn record_request(&self, succeeded: bool, since: Duration) {
        if let Some(recorder) = &self.args.recorder {
            recorder.record_request(
                "v2",
                succeeded,
                self.args.clock.elapsed().saturating_sub(since),
            );
        }
    }

    fn stats(&self) -> CoordinatorStats {
        CoordinatorStats {
            active: self.state.active.clone(),
            completed_count: self.state.completed_count,
            failed_count: self.state.failed_count,
        }
    }

    async fn start(
        &mut self,
        definition: WorkflowDefinition,
        metadata: Value,
        completed: BTreeMap<String, Value>,
    ) -> Result<String, Error> {
        definition.check_works(self.args.engine.works())?;
        let workflow = uuid::Uuid::new_v4().simple().to_string();
        self.state.active.insert(
            workflow.clone(),
            ActiveWorkflow {
                started_at_ms: wall_millis(self.args.clock.as_ref()),
                metadata: to_json_text(&metadata),
            },
        );
        // Saved first: a kill after this leaves an entry that the next
        // start reconciles (dropped if the workflow never started).
        self.save().await?;
        match self
            .args
            .engine
            .start_seeded(&workflow, &definition, metadata, &completed)
            .await
        {
            Ok(()) => Ok(workflow),
            Err(error) => {
                if self.args.engine.summary_status(&workflow).await?.is_none() {
                    self.state.active.remove(&workflow);
                    self.save().await?;
                }
                Err(error)
            }
        }
    }

    fn ended(&mut self, workflow: &str, status: WorkflowStatus) -> bool {
        if let Some(waiters) = self.waiters.remove(workflow) {
            for waiter in waiters {
                waiter.send(Ok(status));
            }
        }
        if self.state.active.remove(workflow).is_none() {
            return false;
        }
        if status == WorkflowStatus::Completed {
            self.state.completed_count += 1;
        } else {
            self.state.failed_count += 1;
        }
        true
    }
}

/// Sends every workflow end to `coordinator` (kept across its restarts;
/// dropped once its process has ended for good).
fn listen(engine: &WorkflowEngine, coordinator: ActorRef<CoordinatorV2>) {
    engine.on_finished(Arc::new(move |workflow: &str, status| {
        // Unbounded mailbox: fails only once the coordinator has ended,
        // and its next incarnation reconciles with the engine at start.
        let _ = coordinator.try_send_info(WorkflowEnded {
            workflow: workflow.to_owned(),
            status,
        });
    }));
}

impl Actor for CoordinatorV2 {
    type Args = CoordinatorV2Args;
    type Call = V2Call;
    type Reply = V2Reply;
    type Cast = V2Cast;
    type Info = WorkflowEnded;

    async fn init(args: CoordinatorV2Args, _ctx: &mut Context<Self>) -> Result<Self, Error> {
        let since = args.clock.elapsed();
        let states = args.store.state::<CoordinatorState>(COORDINATORS)?;
        let key = format!("v2/{}", args.id);
        let loaded = states.get(&key).await;
        if let Some(recorder) = &args.recorder {
            recorder.record_restore(
                "coordinator_v2",
                loaded.is_ok(),
                args.clock.elapsed().saturating_sub(since),
            );
        }
        let mut coordinator = CoordinatorV2 {
            state: loaded?.unwrap_or_default(),
            args,
            states,
            waiters: BTreeMap::new(),
        };
        // Reconcile: workflows that ended (or never started) while down.
        let mut changed = false;
        let active: Vec<String> = coordinator.state.active.keys().cloned().collect();
        for workflow in active {
            match coordinator.args.engine.summary_status(&workflow).await? {
                None => {
                    coordinator.state.active.remove(&workflow);
                    changed = true;
                }
                Some(status) if status.is_terminal() => {
                    changed |= coordinator.ended(&workflow, status);
                }
                Some(_) => {}
            }
        }
        if changed {
            coordinator.save().await?;
        }
        Ok(coordinator)
    }

    async fn handle_call(
        &mut self,
        request: V2Call,
        _ctx: &mut Context<Self>,
    ) -> Result<V2Reply, Error> {
        match request {
            V2Call::StartWorkflow {
                definition,
                metadata,
            } => {
                let since = self.args.clock.elapsed();
                let result = self.start(definition, metadata, BTreeMap::new()).await;
                self.record_request(result.is_ok(), since);
                result.map(V2Reply::Started)
            }
            V2Call::StartMigrated {
                definition,
                metadata,
                completed,
            } => self
                .start(definition, metadata, completed)
                .await
                .map(V2Reply::Started),
            V2Call::Stats => Ok(V2Reply::Stats(self.stats())),
        }
    }

    async fn handle_cast(
        &mut self,
        message: V2Cast,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match message {
            V2Cast::WhenFinished { workflow, reply } => {
                match self.args.engine.summary_status(&workflow).await {
                    Err(error) => {
                        reply.send(Err(error));
                    }
                    Ok(None) => {
                        reply.send(Err(Error::new(
                            ErrorCode::DATA_NOT_FOUND,
                            format!("no workflow {workflow}"),
                        )));
                    }
                    Ok(Some(status)) if status.is_terminal() => {
                        reply.send(Ok(status));
                    }
                    Ok(Some(_)) => self.waiters.entry(workflow).or_default().push(reply),
                }
                Ok(())
            }
        }
    }

    async fn handle_info(
        &mut self,
        ended: WorkflowEnded,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        if self.ended(&ended.workflow, ended.status) {
            self.save().await?;
        }
        Ok(())
    }
}

/// Reads metadata text back (for callers of [`CoordinatorStats`]).
impl ActiveWorkflow {
    /// The metadata as JSON.
    ///
    /// # Errors
    ///
    /// `data_corruption` when the stored text does not parse.
    pub fn metadata(&self) -> Result<Value, Error> {
        from_json_text(&self.metadata)
    }
}
