//! CoordinatorV2: the thin coordinator, a jido-agents [`PersistentAgent`].
//! It starts workflows on the engine and keeps, durably, the active
//! workflows (id to start time and metadata) and the completed and failed
//! counts; it can answer "when this workflow ends" with a deferred reply.
//!
//! The agent runtime saves its state (the [`PersistentAgent`] snapshot)
//! after every action that changed it and before the action's reply, and
//! loads it on every start. Actions are synchronous, so everything that
//! waits runs as agent work under the engine's task supervisor and reports
//! back with an action:
//!
//! - [`StartWorkflow`] queues the start and replies at once with a
//!   [`PendingStart`]; the first start or end queued also queues one
//!   `Flush` action behind the messages already in the mailbox, which
//!   records every queued start as active and counts every queued end in
//!   one save (group commit: one write per mailbox drain, not one per
//!   start, so a coordinator takes many starts while a save is on its
//!   way). The same flush starts each of those workflows on the engine at
//!   once, under the task supervisor, in parallel with the save: the
//!   coordinator's write and the engine's start record share the store's
//!   group commit instead of following each other. A start's
//!   [`PendingStart`] resolves once both are settled, by the rule of
//!   `start_and_answer`: success means the workflow is durable in the
//!   engine's journal (and its entry in the coordinator's saved state,
//!   now or, when that save failed, at the next save that holds it);
//!   an error means nothing started. A kill before the flush drops the
//!   queued starts (their callers hear `process_not_alive`, nothing
//!   started); an entry saved for a start the engine refused or never
//!   made is dropped (at once, or by the reconciliation of the next
//!   start).
//! - [`WhenFinished`] registers a waiter (a oneshot, the deferred reply);
//!   the workflow's end completes it. Waiters live in memory: when the
//!   coordinator restarts they are dropped and their callers fail at once
//!   (`process_not_alive`, retryable): ask again.
//! - Workflow ends reach it from the engine's finish listener (only those
//!   of workflows it is active for or waits on) through a channel that
//!   one forwarding work (per coordinator, across restarts) turns into
//!   [`WorkflowEnded`] actions. Their waiters are answered at once; they
//!   are counted by the next flush, a start's or, within
//!   [`END_FLUSH_INTERVAL`], the coordinator's tick's (an end costs no
//!   save of its own). An end is not lost to a crash before that save: at
//!   every start the coordinator reconciles its active workflows with the
//!   engine (workflows that ended while it was down, or before their end
//!   was saved, are counted then).
//!
//! Use it through [`CoordinatorV2Ref`].
//!
//! This module is not for routing between V1 and V2 (see `router`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use foundation_core::{ActorRef, ChildSpec};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use foundation_persist::{Record, Store};
use jido_agents::{
    Action, ActionContext, ActionSet, Agent, AgentEnv, AgentRef, AgentServer, AgentSpec,
    PersistentAgent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::CoordinatorRecorder;
use crate::definition::WorkflowDefinition;
use crate::engine::WorkflowEngine;
use crate::record::{from_json_text, to_json_text, wall_millis};
use crate::status::WorkflowStatus;

/// How long [`CoordinatorV2Ref::start_workflow`] waits, in all.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest workflow id a start may give.
const MAX_GIVEN_ID: usize = 128;
/// How long a workflow end may wait for a start's flush before a flush
/// of its own saves it (the coordinator's tick).
pub const END_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How many workflow ends may wait for a flush.
const MAX_QUEUED_ENDS: usize = 256;

/// One active workflow, as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveWorkflow {
    /// When it was started (wall clock, milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// Its metadata, as JSON text.
    pub metadata: String,
}

/// The coordinator's persisted state (its [`PersistentAgent`] snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorState {
    active: BTreeMap<String, ActiveWorkflow>,
    completed_count: u64,
    failed_count: u64,
}

impl Record for CoordinatorState {
    const TYPE_TAG: &'static str = "jido_coordinator_v2_state";
    const SCHEMA_VERSION: u32 = 1;
}

/// What CoordinatorV2 reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Its id: the agent (and child) id is `coordinator_v2_{id}`, the key
    /// of its saved state in the keyspace `agents.coordinator_v2`.
    pub id: String,
    /// The engine it starts workflows on (its work runs under the engine's
    /// task supervisor).
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

/// The workflow ends the engine's listener feeds, read by one forwarder.
type EndFeed = Arc<Mutex<mpsc::UnboundedReceiver<WorkflowEnded>>>;

/// The workflows whose ends a coordinator needs (its active ones and those
/// it has waiters for, a superset kept across its restarts): the engine's
/// listener forwards only their ends, so that a workflow's end costs one
/// action in the coordinator that owns it instead of one in every shard.
type Interest = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

fn interested(interest: &Interest) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    interest
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What each instance of the agent is built from (made by
/// [`CoordinatorV2::child_spec`]).
#[derive(Clone)]
pub struct CoordinatorV2Start {
    engine: WorkflowEngine,
    recorder: Option<Arc<dyn CoordinatorRecorder>>,
    ends: EndFeed,
    interest: Interest,
}

impl std::fmt::Debug for CoordinatorV2Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoordinatorV2Start")
    }
}

/// The thin coordinator; see the module docs.
pub struct CoordinatorV2 {
    engine: WorkflowEngine,
    recorder: Option<Arc<dyn CoordinatorRecorder>>,
    ends: EndFeed,
    interest: Interest,
    clock: SharedClock,
    /// When this instance began loading (for the restore's duration).
    loading_since: Duration,
    /// When the start request being handled began (for its duration).
    request_since: Duration,
    state: CoordinatorState,
    waiters: BTreeMap<String, Vec<oneshot::Sender<Result<WorkflowStatus, Error>>>>,
    /// Starts waiting for the next [`Flush`] (in memory only: a crash
    /// before it drops them, and their callers hear `process_not_alive`).
    queued: Vec<QueuedStart>,
    /// Workflow ends waiting for the next [`Flush`] (a crash before it
    /// leaves them to the reconciliation at the next start).
    queued_ends: Vec<(String, WorkflowStatus)>,
    /// Whether a [`Flush`] is queued.
    flush_scheduled: bool,
    /// Where the last [`Flush`] with starts tells them its save's outcome
    /// (set to `Err` by `on_action_error` when the save fails).
    flush_saved: Option<Arc<SaveSignal>>,
    /// Workflows the engine started whose entries a failed save lost,
    /// waiting for the next [`Flush`].
    adoptions: Vec<(String, ActiveWorkflow)>,
    /// The adoptions the last [`Flush`] applied, queued again if its save
    /// fails.
    flushing_adoptions: Vec<(String, ActiveWorkflow)>,
    /// The ends the last [`Flush`] applied, queued again if its save fails.
    flushing_ends: Vec<(String, WorkflowStatus)>,
}

/// The answer of one start, taken by its work or, when the save of its
/// [`Flush`] fails, by `on_action_error`.
type StartAnswer = Arc<std::sync::Mutex<Option<oneshot::Sender<Result<(), Error>>>>>;

/// Answers a start once; false when its caller has gone (or it was
/// answered already).
fn answer_start(answer: &StartAnswer, result: Result<(), Error>) -> bool {
    let sender = answer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    sender.is_some_and(|sender| sender.send(result).is_ok())
}

/// A start waiting for the next [`Flush`].
struct QueuedStart {
    workflow: String,
    entry: ActiveWorkflow,
    definition: WorkflowDefinition,
    metadata: Value,
    completed: BTreeMap<String, Value>,
    /// Whether its outcome is reported to the recorder (not migrations).
    record: bool,
    /// When its request began.
    since: Duration,
    answer: StartAnswer,
}

impl std::fmt::Debug for CoordinatorV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorV2")
            .field("active", &self.state.active.len())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl CoordinatorV2 {
    /// A child spec for a supervisor (a permanent jido-agents agent of kind
    /// `coordinator_v2`, persistent in `args.store`, its work under the
    /// engine's task supervisor), with the engine's finish listener wired
    /// to it. Its handle becomes a [`CoordinatorV2Ref`] with `From`.
    ///
    /// # Errors
    ///
    /// `invalid_config_value` for an empty or over-long id.
    pub fn child_spec(
        args: CoordinatorV2Args,
    ) -> Result<ChildSpec<AgentServer<CoordinatorV2>>, Error> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let interest = Interest::default();
        let start = CoordinatorV2Start {
            engine: args.engine.clone(),
            recorder: args.recorder,
            ends: Arc::new(Mutex::new(receiver)),
            interest: Arc::clone(&interest),
        };
        // The child id as before the agent runtime: `coordinator_v2_{id}`,
        // also the agent id (the key of its saved state).
        let agent_id = format!("coordinator_v2_{}", args.id);
        let mut spec = AgentSpec::<CoordinatorV2>::new(agent_id, start, args.engine.tasks());
        spec.clock(args.clock).persistent(&args.store);
        let spec = spec.child_spec()?;
        args.engine
            .on_finished(Arc::new(move |workflow: &str, status| {
                if !interested(&interest).contains(workflow) {
                    // Another shard's workflow, or one this coordinator
                    // does not wait for.
                    return;
                }
                let ended = WorkflowEnded {
                    workflow: workflow.to_owned(),
                    status,
                };
                if sender.send(ended).is_err() {
                    // The receiver went with the coordinator's spec: nobody is
                    // left to count this end.
                    tracing::trace!(workflow, "no coordinator listens to workflow ends");
                }
            }));
        Ok(spec)
    }

    fn record_request(&self, succeeded: bool) {
        if let Some(recorder) = &self.recorder {
            recorder.record_request(
                "v2",
                succeeded,
                self.clock.elapsed().saturating_sub(self.request_since),
            );
        }
    }

    /// What it knows: the state with the ends that wait for the next
    /// flush applied (saved within [`END_FLUSH_INTERVAL`]).
    fn stats(&self) -> CoordinatorStats {
        let mut stats = CoordinatorStats {
            active: self.state.active.clone(),
            completed_count: self.state.completed_count,
            failed_count: self.state.failed_count,
        };
        for (workflow, status) in &self.queued_ends {
            if stats.active.remove(workflow).is_some() {
                if *status == WorkflowStatus::Completed {
                    stats.completed_count += 1;
                } else {
                    stats.failed_count += 1;
                }
            }
        }
        stats
    }

    /// Queues `definition`'s start (under `given`, or a new id) for the
    /// next [`Flush`], which records it as active and leaves the work that
    /// starts it.
    fn start(
        &mut self,
        ctx: &mut ActionContext<CoordinatorV2>,
        given: Option<String>,
        definition: WorkflowDefinition,
        metadata: Value,
        completed: BTreeMap<String, Value>,
        record: bool,
    ) -> Result<PendingStart, Error> {
        definition.check_works(self.engine.works())?;
        let workflow = match given {
            Some(id) => {
                if id.is_empty() || id.len() > MAX_GIVEN_ID {
                    return Err(Error::validation(format!(
                        "a workflow id must be 1 to {MAX_GIVEN_ID} bytes"
                    ))
                    .with_context("field", "workflow"));
                }
                if self.state.active.contains_key(&id)
                    || self.queued.iter().any(|queued| queued.workflow == id)
                {
                    return Err(Error::new(
                        ErrorCode::ALREADY_EXISTS,
                        format!("workflow {id} is active already"),
                    )
                    .with_context("workflow", id));
                }
                id
            }
            None => self.engine.new_workflow_id(),
        };
        let (sender, started) = oneshot::channel();
        self.queued.push(QueuedStart {
            workflow: workflow.clone(),
            entry: ActiveWorkflow {
                started_at_ms: wall_millis(self.clock.as_ref()),
                metadata: to_json_text(&metadata),
            },
            definition,
            metadata,
            completed,
            record,
            since: self.request_since,
            answer: Arc::new(std::sync::Mutex::new(Some(sender))),
        });
        self.schedule_flush(ctx);
        Ok(PendingStart { workflow, started })
    }

    /// Makes sure one [`Flush`] follows the messages queued now.
    fn schedule_flush(&mut self, ctx: &mut ActionContext<CoordinatorV2>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.enqueue(Flush {});
        }
    }

    /// Applies the queued starts, adoptions and ends to the state (saved
    /// by the agent runtime after this) and starts each queued start on
    /// the engine at once, in parallel with that save; each start's answer
    /// waits for both (see [`start_and_answer`] for the rule when only one
    /// of them is durable).
    fn flush(&mut self, ctx: &mut ActionContext<CoordinatorV2>) {
        self.flush_scheduled = false;
        self.flushing_adoptions = std::mem::take(&mut self.adoptions);
        for (workflow, entry) in self.flushing_adoptions.clone() {
            if let std::collections::btree_map::Entry::Vacant(vacant) =
                self.state.active.entry(workflow.clone())
            {
                vacant.insert(entry);
                interested(&self.interest).insert(workflow.clone());
                // It may have ended before it was adopted (its end was not
                // counted then): the engine says.
                ctx.start_work(check(
                    self.engine.clone(),
                    ctx.myself().clone(),
                    vec![workflow],
                ));
            }
        }
        let queued = std::mem::take(&mut self.queued);
        self.flush_saved = None;
        if !queued.is_empty() {
            let (saved, outcome) = watch::channel(None);
            let saved = Arc::new(saved);
            self.flush_saved = Some(Arc::clone(&saved));
            // Runs only once the save is durable; a failed save is told by
            // `on_action_error`, a coordinator gone mid-save by the
            // sender's drop.
            ctx.start_work(async move {
                saved.send_replace(Some(Ok(())));
            });
            for queued in queued {
                self.launch_start(ctx, queued, outcome.clone());
            }
        }
        self.flushing_ends = std::mem::take(&mut self.queued_ends);
        for (workflow, status) in self.flushing_ends.clone() {
            self.ended(&workflow, status);
        }
    }

    /// Records `queued` as active in the state this flush saves and starts
    /// it on the engine now, under the task supervisor, in parallel with
    /// that save (`saved` tells its outcome).
    fn launch_start(
        &mut self,
        ctx: &ActionContext<CoordinatorV2>,
        queued: QueuedStart,
        saved: SaveOutcome,
    ) {
        let workflow = queued.workflow.clone();
        // Before the engine can end it.
        interested(&self.interest).insert(workflow.clone());
        self.state
            .active
            .insert(workflow.clone(), queued.entry.clone());
        let answer = Arc::clone(&queued.answer);
        let recorder = if queued.record {
            self.recorder.clone()
        } else {
            None
        };
        let since = queued.since;
        let launched = Launched {
            engine: self.engine.clone(),
            myself: ctx.myself().clone(),
            recorder: recorder.clone(),
            clock: Arc::clone(&self.clock),
            queued,
        };
        if let Err(error) = ctx.env().tasks().spawn(start_and_answer(launched, saved)) {
            // Nothing started: the entry goes before the save.
            self.state.active.remove(&workflow);
            if let Some(recorder) = recorder {
                recorder.record_request("v2", false, self.clock.elapsed().saturating_sub(since));
            }
            answer_start(&answer, Err(error));
        }
    }

    /// Counts `workflow`'s end if it is active and answers its waiters;
    /// true when the state changed.
    fn ended(&mut self, workflow: &str, status: WorkflowStatus) -> bool {
        if let Some(waiters) = self.waiters.remove(workflow) {
            for waiter in waiters {
                // A waiter whose caller has gone needs no answer.
                let _ = waiter.send(Ok(status));
            }
        }
        let removed = self.state.active.remove(workflow).is_some();
        self.forget(workflow);
        if !removed {
            return false;
        }
        if status == WorkflowStatus::Completed {
            self.state.completed_count += 1;
        } else {
            self.state.failed_count += 1;
        }
        true
    }

    fn fail_waiters(&mut self, workflow: &str, error: &Error) {
        if let Some(waiters) = self.waiters.remove(workflow) {
            for waiter in waiters {
                // A waiter whose caller has gone needs no answer.
                let _ = waiter.send(Err(error.clone()));
            }
        }
        self.forget(workflow);
    }

    /// Stops listening for `workflow`'s end unless it is active or waited
    /// for (a failed save that brings its entry back listens again: see
    /// `restore`).
    fn forget(&mut self, workflow: &str) {
        if !self.state.active.contains_key(workflow) && !self.waiters.contains_key(workflow) {
            interested(&self.interest).remove(workflow);
        }
    }
}

/// The outcome of one [`Flush`]'s save, for the starts it carries: `None`
/// while it is under way.
type SaveOutcome = watch::Receiver<Option<Result<(), Error>>>;
/// Where a [`Flush`] tells its [`SaveOutcome`].
type SaveSignal = watch::Sender<Option<Result<(), Error>>>;

/// One start handed to the engine (see [`start_and_answer`]).
struct Launched {
    engine: WorkflowEngine,
    myself: AgentRef<CoordinatorV2>,
    /// Where its outcome is reported (`None` for migrations).
    recorder: Option<Arc<dyn CoordinatorRecorder>>,
    clock: SharedClock,
    queued: QueuedStart,
}

/// Waits until the save `outcome` tells is settled.
async fn save_outcome(mut outcome: SaveOutcome) -> Result<(), Error> {
    let gone = || {
        Error::new(
            ErrorCode::PROCESS_NOT_ALIVE,
            "the coordinator instance ended before its save was known",
        )
    };
    match outcome.wait_for(Option::is_some).await {
        Ok(settled) => settled.clone().unwrap_or_else(|| Err(gone())),
        Err(_) => Err(gone()),
    }
}

/// Starts one queued start on the engine while the coordinator's save of
/// its entry is under way (the two writes share the store's group commit
/// instead of following each other), and answers its caller once both are
/// settled. The rule when only one of them is durable:
///
/// - **The engine's start failed** (whatever the save did): nothing
///   started; the caller hears the engine's error, and the entry goes
///   (`Withdraw` or `Resolve`, which run after the save).
/// - **The engine's start is durable but the save failed** (or the
///   coordinator instance ended before its save was known): the workflow
///   exists and runs, and the engine resumes it after any crash. The
///   caller hears success (an error would invite a retry that starts the
///   workflow twice), and the coordinator adopts the workflow: its entry
///   rides in the next flush, again after every failed save until one
///   holds it, and the engine is asked whether it ended meanwhile so that
///   its end is counted once. Not covered: the whole OS process dying
///   between the engine's commit and the coordinator's save; the workflow
///   then still runs once (the engine resumes it), but this coordinator
///   never counts its end.
///
/// So a success means the workflow is durable in the engine's journal,
/// and an error means it was not started.
async fn start_and_answer(launched: Launched, saved: SaveOutcome) {
    let Launched {
        engine,
        myself,
        recorder,
        clock,
        queued,
    } = launched;
    let QueuedStart {
        workflow: id,
        entry,
        definition,
        metadata,
        completed,
        since,
        answer,
        ..
    } = queued;
    let (result, saved) = tokio::join!(
        engine.start_seeded(&id, &definition, metadata, &completed),
        save_outcome(saved),
    );
    match (&result, saved) {
        (Ok(()), Ok(())) => {}
        (Ok(()), Err(error)) => {
            tracing::warn!(workflow = %id, %error, "the workflow started but CoordinatorV2 did not save its entry; it adopts it");
            report(
                &myself,
                Adopt {
                    workflow: id.clone(),
                    entry,
                },
            )
            .await;
        }
        (Err(error), _) if error.code() == ErrorCode::ALREADY_EXISTS => {
            // The id was taken (a start under a given id that another
            // start made first): that workflow is not this start's.
            report(
                &myself,
                Withdraw {
                    workflow: id.clone(),
                },
            )
            .await;
        }
        (Err(_), _) => {
            // The entry goes if the workflow never started.
            let found = engine.summary_status(&id).await;
            if matches!(found, Ok(None)) {
                report(
                    &myself,
                    Resolve {
                        workflow: id.clone(),
                        found,
                    },
                )
                .await;
            }
        }
    }
    if let Some(recorder) = recorder {
        recorder.record_request("v2", result.is_ok(), clock.elapsed().saturating_sub(since));
    }
    if !answer_start(&answer, result) {
        // The caller stopped waiting; the workflow runs regardless.
        tracing::trace!(workflow = %id, "a start's caller has gone");
    }
}

/// Queues `action` on the coordinator (any instance); a coordinator that
/// has ended for good needs no report, and its next start reconciles.
async fn report<Act: Action<CoordinatorV2>>(myself: &AgentRef<CoordinatorV2>, action: Act) {
    if let Err(error) = myself.cast_until_delivered(action).await {
        tracing::debug!(%error, "a report to CoordinatorV2 was not delivered (it has ended)");
    }
}

/// Asks the engine about `workflows` and reports each answer back.
async fn check(engine: WorkflowEngine, myself: AgentRef<CoordinatorV2>, workflows: Vec<String>) {
    for workflow in workflows {
        let found = engine.summary_status(&workflow).await;
        report(&myself, Resolve { workflow, found }).await;
    }
}

/// Turns the engine's workflow ends into actions. One forwarder runs at a
/// time: a restarted instance finds the feed held while its predecessor's
/// forwarder still runs (the handle it sends to is valid across restarts),
/// and takes over once that one has gone.
async fn forward(ends: EndFeed, myself: AgentRef<CoordinatorV2>) {
    let Ok(mut feed) = ends.try_lock_owned() else {
        return;
    };
    while let Some(ended) = feed.recv().await {
        if let Err(error) = myself.cast_until_delivered(ended).await {
            tracing::debug!(%error, "CoordinatorV2 has ended; workflow ends are no longer forwarded");
            return;
        }
    }
}

impl Agent for CoordinatorV2 {
    const KIND: &'static str = "coordinator_v2";
    type Args = CoordinatorV2Start;

    fn init(args: CoordinatorV2Start, env: &AgentEnv) -> Result<Self, Error> {
        let clock = Arc::clone(env.clock());
        Ok(CoordinatorV2 {
            engine: args.engine,
            recorder: args.recorder,
            ends: args.ends,
            interest: args.interest,
            loading_since: clock.elapsed(),
            request_since: clock.elapsed(),
            clock,
            state: CoordinatorState::default(),
            waiters: BTreeMap::new(),
            queued: Vec::new(),
            queued_ends: Vec::new(),
            flush_scheduled: false,
            flush_saved: None,
            adoptions: Vec::new(),
            flushing_adoptions: Vec::new(),
            flushing_ends: Vec::new(),
        })
    }

    fn actions(actions: &mut ActionSet<Self>) {
        actions.add::<Stats>();
    }

    fn on_start(&mut self, ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        ctx.start_work(forward(Arc::clone(&self.ends), ctx.myself().clone()));
        // Reconcile: workflows that ended (or never started) while down.
        let active: Vec<String> = self.state.active.keys().cloned().collect();
        if !active.is_empty() {
            ctx.start_work(check(self.engine.clone(), ctx.myself().clone(), active));
        }
        Ok(())
    }

    fn load(&self) -> u64 {
        self.state.active.len() as u64
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(END_FLUSH_INTERVAL)
    }

    /// An idle coordinator's tick does nothing (and costs no snapshot).
    fn tick_due(&self) -> bool {
        !self.queued_ends.is_empty()
    }

    /// Saves the workflow ends that no start's flush took along.
    fn tick(&mut self, ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        if !self.queued_ends.is_empty() {
            self.schedule_flush(ctx);
        }
        Ok(())
    }

    fn on_action_error(&mut self, action: &'static str, error: &Error) {
        if action == StartWorkflow::NAME {
            tracing::debug!(%error, "CoordinatorV2 refused a start");
            self.record_request(false);
        }
        if action == Flush::NAME {
            // The save failed: the state is the last saved one. The
            // starts of this flush hear it and answer by the rule of
            // `start_and_answer`; its adoptions wait for the next flush.
            tracing::warn!(%error, "CoordinatorV2 could not save its starts and ends");
            if let Some(saved) = self.flush_saved.take() {
                saved.send_replace(Some(Err(error.clone())));
            }
            let adoptions = std::mem::take(&mut self.flushing_adoptions);
            self.adoptions.extend(adoptions);
            // The ends count with the next flush (or the reconciliation of
            // the next start).
            let ends = std::mem::take(&mut self.flushing_ends);
            self.queued_ends.extend(ends);
        }
    }
}

impl PersistentAgent for CoordinatorV2 {
    type Snapshot = CoordinatorState;

    fn snapshot(&self) -> CoordinatorState {
        self.state.clone()
    }

    fn restore(&mut self, stored: CoordinatorState) {
        // Also after a failed save: the entries it brings back are
        // listened for again.
        interested(&self.interest).extend(stored.active.keys().cloned());
        self.state = stored;
    }

    fn after_load(&mut self) -> Result<(), Error> {
        // A load that fails fails the start (jido-agents counts it); only
        // successful restores reach the recorder.
        if let Some(recorder) = &self.recorder {
            recorder.record_restore(
                "coordinator_v2",
                true,
                self.clock.elapsed().saturating_sub(self.loading_since),
            );
        }
        Ok(())
    }
}

/// Starts a workflow; its output resolves to the id once the
/// coordinator's save of it and the engine's start are durable (the
/// action itself only queues it for the next flush).
#[derive(Debug)]
#[non_exhaustive]
pub struct StartWorkflow {
    /// The definition.
    pub definition: WorkflowDefinition,
    /// Its metadata.
    pub metadata: Value,
    /// The id to start it under (`None`: a new one). A caller that
    /// reserved the id durably first (an idempotency key) starts it under
    /// that id, so a retry after a crash finds or makes the same workflow;
    /// the engine refuses a second workflow under one id
    /// (`already_exists`).
    pub workflow: Option<String>,
}

impl StartWorkflow {
    /// A start of `definition` with `metadata` under a new id.
    pub fn new(definition: WorkflowDefinition, metadata: Value) -> StartWorkflow {
        StartWorkflow {
            definition,
            metadata,
            workflow: None,
        }
    }

    /// A start of `definition` with `metadata` under the id `workflow`.
    pub fn with_id(
        workflow: impl Into<String>,
        definition: WorkflowDefinition,
        metadata: Value,
    ) -> StartWorkflow {
        StartWorkflow {
            definition,
            metadata,
            workflow: Some(workflow.into()),
        }
    }
}

impl Action<CoordinatorV2> for StartWorkflow {
    const NAME: &'static str = "start_workflow";
    type Output = PendingStart;

    fn run(
        self,
        agent: &mut CoordinatorV2,
        ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<PendingStart, Error> {
        agent.request_since = agent.clock.elapsed();
        agent.start(
            ctx,
            self.workflow,
            self.definition,
            self.metadata,
            BTreeMap::new(),
            true,
        )
    }
}

/// Starts a workflow migrated from V1 with the results it already has.
#[derive(Debug)]
#[non_exhaustive]
pub struct StartMigrated {
    /// The definition.
    pub definition: WorkflowDefinition,
    /// Its metadata (with `migrated` and `original_step`).
    pub metadata: Value,
    /// Outputs of the tasks that completed on V1, by task id.
    pub completed: BTreeMap<String, Value>,
}

impl StartMigrated {
    /// A migrated start.
    pub fn new(
        definition: WorkflowDefinition,
        metadata: Value,
        completed: BTreeMap<String, Value>,
    ) -> StartMigrated {
        StartMigrated {
            definition,
            metadata,
            completed,
        }
    }
}

impl Action<CoordinatorV2> for StartMigrated {
    const NAME: &'static str = "start_migrated";
    type Output = PendingStart;

    fn run(
        self,
        agent: &mut CoordinatorV2,
        ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<PendingStart, Error> {
        agent.start(
            ctx,
            None,
            self.definition,
            self.metadata,
            self.completed,
            false,
        )
    }
}

/// The coordinator's state.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Stats {}

impl Action<CoordinatorV2> for Stats {
    const NAME: &'static str = "stats";
    type Output = CoordinatorStats;

    fn run(
        self,
        agent: &mut CoordinatorV2,
        _ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<CoordinatorStats, Error> {
        Ok(agent.stats())
    }
}

/// Registers a deferred reply: the output resolves to the workflow's final
/// status when it ends (at once if it has ended; `data_not_found` for an
/// unknown workflow).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WhenFinished {
    /// The workflow.
    pub workflow: String,
}

impl WhenFinished {
    /// Waits for `workflow`.
    pub fn new(workflow: impl Into<String>) -> WhenFinished {
        WhenFinished {
            workflow: workflow.into(),
        }
    }
}

impl Action<CoordinatorV2> for WhenFinished {
    const NAME: &'static str = "when_finished";
    type Output = PendingStatus;

    fn run(
        self,
        agent: &mut CoordinatorV2,
        ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<PendingStatus, Error> {
        if let Some((_, status)) = agent
            .queued_ends
            .iter()
            .find(|(workflow, _)| *workflow == self.workflow)
        {
            // Ended; its count waits for the next flush.
            let (sender, status_now) = oneshot::channel();
            // The receiver is in hand: the send cannot fail.
            let _ = sender.send(Ok(*status));
            return Ok(PendingStatus { status: status_now });
        }
        let (sender, status) = oneshot::channel();
        // Before the engine is asked: an end after its answer must come.
        interested(&agent.interest).insert(self.workflow.clone());
        let active = agent.state.active.contains_key(&self.workflow);
        agent
            .waiters
            .entry(self.workflow.clone())
            .or_default()
            .push(sender);
        if !active {
            // Not (or no longer) one of its active workflows: the engine
            // says whether it has ended or exists.
            ctx.start_work(check(
                agent.engine.clone(),
                ctx.myself().clone(),
                vec![self.workflow],
            ));
        }
        Ok(PendingStatus { status })
    }
}

/// A workflow ended (from the engine's finish listener).
#[derive(Debug)]
pub struct WorkflowEnded {
    workflow: String,
    status: WorkflowStatus,
}

impl Action<CoordinatorV2> for WorkflowEnded {
    const NAME: &'static str = "workflow_ended";
    type Output = ();

    fn run(
        self,
        agent: &mut CoordinatorV2,
        ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<(), Error> {
        // The waiters need no save: answered now.
        if let Some(waiters) = agent.waiters.remove(&self.workflow) {
            for waiter in waiters {
                // A waiter whose caller has gone needs no answer.
                let _ = waiter.send(Ok(self.status));
            }
        }
        agent.queued_ends.push((self.workflow, self.status));
        // The count rides in the next start's flush, or the tick's; a
        // flush of its own only when many ends wait.
        if agent.queued_ends.len() >= MAX_QUEUED_ENDS {
            agent.schedule_flush(ctx);
        }
        Ok(())
    }
}

/// Applies the queued starts and workflow ends in one save (queued by the
/// first of them, so it runs after the messages already in the mailbox:
/// one save per mailbox drain, however many starts and ends it holds).
#[derive(Debug)]
struct Flush {}

impl Action<CoordinatorV2> for Flush {
    const NAME: &'static str = "flush";
    type Output = ();

    fn run(
        self,
        agent: &mut CoordinatorV2,
        ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<(), Error> {
        agent.flush(ctx);
        Ok(())
    }
}

/// A start under a given id lost to another start of that id: the entry
/// goes, uncounted (the workflow is the other start's).
struct Withdraw {
    workflow: String,
}

impl Action<CoordinatorV2> for Withdraw {
    const NAME: &'static str = "withdraw";
    type Output = ();

    fn run(
        self,
        agent: &mut CoordinatorV2,
        _ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<(), Error> {
        agent.state.active.remove(&self.workflow);
        agent.forget(&self.workflow);
        Ok(())
    }
}

/// A workflow the engine started whose entry the coordinator's save did
/// not hold (see [`start_and_answer`]): it rides in the next flush.
struct Adopt {
    workflow: String,
    entry: ActiveWorkflow,
}

impl Action<CoordinatorV2> for Adopt {
    const NAME: &'static str = "adopt";
    type Output = ();

    fn run(
        self,
        agent: &mut CoordinatorV2,
        ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<(), Error> {
        agent.adoptions.push((self.workflow, self.entry));
        agent.schedule_flush(ctx);
        Ok(())
    }
}

/// What the engine said about a workflow (reconciliation and waiters).
struct Resolve {
    workflow: String,
    found: Result<Option<WorkflowStatus>, Error>,
}

impl Action<CoordinatorV2> for Resolve {
    const NAME: &'static str = "resolve";
    type Output = ();

    fn run(
        self,
        agent: &mut CoordinatorV2,
        _ctx: &mut ActionContext<CoordinatorV2>,
    ) -> Result<(), Error> {
        match self.found {
            Ok(Some(status)) if status.is_terminal() => {
                agent.ended(&self.workflow, status);
            }
            // Running: its end arrives as `WorkflowEnded`.
            Ok(Some(_)) => {}
            Ok(None) => {
                agent.state.active.remove(&self.workflow);
                let error = Error::new(
                    ErrorCode::DATA_NOT_FOUND,
                    format!("no workflow {}", self.workflow),
                );
                agent.fail_waiters(&self.workflow, &error);
            }
            Err(error) => agent.fail_waiters(&self.workflow, &error),
        }
        Ok(())
    }
}

/// A start on its way: the id, and the engine's answer to come.
#[derive(Debug)]
pub struct PendingStart {
    workflow: String,
    started: oneshot::Receiver<Result<(), Error>>,
}

impl PendingStart {
    /// The new workflow's id (active in the coordinator's saved state
    /// once [`wait`](PendingStart::wait) succeeds).
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// Waits, at most `timeout`, until the engine has started the workflow.
    ///
    /// # Errors
    ///
    /// The engine's error; `timeout`; `process_not_alive` when the start's
    /// work was dropped (its task supervisor shut down).
    ///
    /// # Cancel safety
    ///
    /// Waits only: dropping it does not stop the start.
    pub async fn wait(self, timeout: Duration) -> Result<String, Error> {
        match tokio::time::timeout(timeout, self.started).await {
            Ok(Ok(Ok(()))) => Ok(self.workflow),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(Error::new(
                ErrorCode::PROCESS_NOT_ALIVE,
                format!("the start of workflow {} was dropped", self.workflow),
            )),
            Err(_) => Err(Error::timeout(format!(
                "workflow {} was not started within {} ms",
                self.workflow,
                timeout.as_millis()
            ))),
        }
    }
}

/// A deferred reply: the final status of a workflow, when it ends.
#[derive(Debug)]
pub struct PendingStatus {
    status: oneshot::Receiver<Result<WorkflowStatus, Error>>,
}

impl PendingStatus {
    /// Waits, at most `timeout`, for the workflow's end.
    ///
    /// # Errors
    ///
    /// `data_not_found` for an unknown workflow; `timeout`;
    /// `process_not_alive` (retryable) when the coordinator instance that
    /// held the waiter ended: ask again.
    ///
    /// # Cancel safety
    ///
    /// Waits only.
    pub async fn wait(self, timeout: Duration) -> Result<WorkflowStatus, Error> {
        match tokio::time::timeout(timeout, self.status).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::new(
                ErrorCode::PROCESS_NOT_ALIVE,
                "the coordinator instance holding the deferred reply ended; ask again",
            )),
            Err(_) => Err(Error::timeout(format!(
                "no end within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// A handle to CoordinatorV2, valid across its restarts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CoordinatorV2Ref {
    agent: AgentRef<CoordinatorV2>,
}

impl From<ActorRef<AgentServer<CoordinatorV2>>> for CoordinatorV2Ref {
    fn from(actor: ActorRef<AgentServer<CoordinatorV2>>) -> Self {
        CoordinatorV2Ref {
            agent: AgentRef::from(actor),
        }
    }
}

impl From<AgentRef<CoordinatorV2>> for CoordinatorV2Ref {
    fn from(agent: AgentRef<CoordinatorV2>) -> Self {
        CoordinatorV2Ref { agent }
    }
}

impl CoordinatorV2Ref {
    /// The agent (for `run`, `run_json`, `inspect`).
    pub fn agent(&self) -> &AgentRef<CoordinatorV2> {
        &self.agent
    }

    /// The underlying actor handle (kill, incarnation, monitors).
    pub fn actor(&self) -> &ActorRef<AgentServer<CoordinatorV2>> {
        self.agent.actor()
    }

    /// Starts a workflow and returns its id once the engine has it; waits
    /// at most [`START_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// `validation_failed`/`unknown_work`-style errors of the definition;
    /// the store's error (nothing was started); the engine's error;
    /// `timeout`; `process_not_alive` (retryable).
    ///
    /// # Cancel safety
    ///
    /// Dropping it after the coordinator received the request does not
    /// withdraw it: the workflow may start.
    pub async fn start_workflow(
        &self,
        definition: WorkflowDefinition,
        metadata: Value,
    ) -> Result<String, Error> {
        let pending = self
            .agent
            .run_timeout(StartWorkflow::new(definition, metadata), START_TIMEOUT)
            .await?;
        pending.wait(START_TIMEOUT).await
    }

    /// As [`start_workflow`](CoordinatorV2Ref::start_workflow), under the
    /// id `workflow` (see [`StartWorkflow::workflow`]).
    ///
    /// # Errors
    ///
    /// `already_exists` when a workflow of that id exists or is starting;
    /// `invalid_input` for an empty or over-long id; otherwise as for
    /// [`start_workflow`](CoordinatorV2Ref::start_workflow).
    ///
    /// # Cancel safety
    ///
    /// As for [`start_workflow`](CoordinatorV2Ref::start_workflow).
    pub async fn start_workflow_with_id(
        &self,
        workflow: &str,
        definition: WorkflowDefinition,
        metadata: Value,
    ) -> Result<String, Error> {
        let pending = self
            .agent
            .run_timeout(
                StartWorkflow::with_id(workflow, definition, metadata),
                START_TIMEOUT,
            )
            .await?;
        pending.wait(START_TIMEOUT).await
    }

    /// Starts a workflow migrated from V1 (see [`StartMigrated`]); waits at
    /// most [`START_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// As for [`start_workflow`](CoordinatorV2Ref::start_workflow).
    ///
    /// # Cancel safety
    ///
    /// As for [`start_workflow`](CoordinatorV2Ref::start_workflow).
    pub async fn start_migrated(
        &self,
        definition: WorkflowDefinition,
        metadata: Value,
        completed: BTreeMap<String, Value>,
    ) -> Result<String, Error> {
        let pending = self
            .agent
            .run_timeout(
                StartMigrated::new(definition, metadata, completed),
                START_TIMEOUT,
            )
            .await?;
        pending.wait(START_TIMEOUT).await
    }

    /// The coordinator's state.
    ///
    /// # Errors
    ///
    /// `timeout`, `process_not_alive`.
    ///
    /// # Cancel safety
    ///
    /// Reads only.
    pub async fn stats(&self) -> Result<CoordinatorStats, Error> {
        self.agent.run(Stats {}).await
    }

    /// The final status of `workflow` once it ends, waiting at most
    /// `timeout` in all.
    ///
    /// # Errors
    ///
    /// As for [`PendingStatus::wait`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it leaves a waiter that is answered into the void.
    pub async fn when_finished(
        &self,
        workflow: &str,
        timeout: Duration,
    ) -> Result<WorkflowStatus, Error> {
        let pending = self
            .agent
            .run_timeout(WhenFinished::new(workflow), timeout)
            .await?;
        pending.wait(timeout).await
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
