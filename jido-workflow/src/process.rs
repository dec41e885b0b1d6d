//! The workflow process: one supervised actor per running workflow that
//! replays its journal on start, then drives its steps.
//!
//! Every decision is journaled before it counts: a step's start (before
//! its work runs), its result (before later steps see it), a durable
//! timer's deadline, a signal, a cancellation, each compensation. The
//! process applies an event to its in-memory state only after the store
//! has acknowledged it (durably), and each write is fenced by the
//! workflow's lease and by the journal's expected sequence number, so a
//! stale instance cannot interleave. Works run under the engine's
//! [`StepExecutor`](crate::StepExecutor) and report back as info
//! messages; the mailbox is unbounded because at most one report per
//! running step is outstanding. A crash of the process aborts its running
//! works; the restarted instance replays the journal and re-runs each step
//! that was in flight with the same idempotency key (or reports an
//! at-most-once step interrupted). A recorded step never runs again.
//!
//! This module is not for starting, listing or routing to workflows (see
//! `engine`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foundation_core::registry::Metadata;
use foundation_core::{Actor, Context, ExitReason};
use foundation_error::{Error, ErrorCode};
use foundation_persist::MAX_READ_LIMIT;
use serde_json::Value;

use crate::definition::Delivery;
use crate::engine::Shared;
use crate::executor::{Report, StepAbort, StepJob};
use crate::lease::{Held, is_lost, lease_name};
use crate::metrics;
use crate::record::{Event, StoredError, Summary, to_json_text, wall_millis};
use crate::state::{CompensationPhase, TaskPhase, WorkflowState};
use crate::status::{WorkflowInfo, WorkflowStatus, time_from_millis};
use crate::work::{AWAIT_SIGNAL, DELAY, StepInput};
use foundation_persist::Lease;

/// How often a step may be interrupted (its work aborted or lost) before
/// it fails with `process_crashed`.
const MAX_INTERRUPTIONS: u32 = 100;

/// What a workflow process is started from (cloned for every restart).
#[derive(Clone)]
pub struct ProcessArgs {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: Arc<str>,
    /// The state of a workflow just written by the engine, taken by the
    /// first `init` (so it need not read back what was just written);
    /// every restart reads the journal.
    pub(crate) fresh: Option<FreshStart>,
    /// A lease the heartbeat claimed for this workflow, taken by the first
    /// `init` (every restart acquires the lease again).
    pub(crate) claimed: Option<Arc<Mutex<Option<Lease>>>>,
}

impl ProcessArgs {
    /// The arguments of a workflow resumed from its journal.
    pub(crate) fn resumed(shared: Arc<Shared>, id: Arc<str>) -> ProcessArgs {
        ProcessArgs {
            shared,
            id,
            fresh: None,
            claimed: None,
        }
    }

    /// The arguments of a workflow whose expired lease the heartbeat
    /// claimed.
    pub(crate) fn claimed(shared: Arc<Shared>, id: Arc<str>, lease: Lease) -> ProcessArgs {
        ProcessArgs {
            shared,
            id,
            fresh: None,
            claimed: Some(Arc::new(Mutex::new(Some(lease)))),
        }
    }
}

/// A just-written workflow's summary, state and lease (multi-node mode
/// only), for its first `init`. Boxed, so that what the supervisor keeps
/// for restarts is small once taken.
pub(crate) type FreshStart = Arc<Mutex<Option<Box<(Summary, WorkflowState, Option<Lease>)>>>>;

impl std::fmt::Debug for ProcessArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessArgs").field("id", &self.id).finish()
    }
}

/// Requests to a workflow process.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkflowCall {
    /// Its current state.
    Info,
    /// Cancel it: running steps are stopped, compensations run.
    Cancel {
        /// Why (journaled).
        reason: String,
    },
    /// Deliver a signal.
    Signal {
        /// The signal's name.
        name: String,
        /// Its payload.
        payload: Value,
    },
}

/// Replies of a workflow process.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkflowReply {
    /// The state.
    Info(Box<WorkflowInfo>),
    /// Done (journaled).
    Done,
}

/// The process's own messages: step reports and timers.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepMessage {
    /// A work ended (`None`: it was interrupted before it could report).
    Outcome {
        /// The task.
        task: u32,
        /// Which run of it.
        run: u64,
        /// Whether it was the task's compensation.
        compensation: bool,
        /// The result.
        outcome: Option<Result<Value, Error>>,
    },
    /// A durable timer is due.
    Timer {
        /// The task.
        task: u32,
    },
    /// Resume and schedule (a timer due at once, armed by `init`).
    Advance,
    /// Journal the staged step results (sent to itself, so that results
    /// already in the mailbox are journaled in the same batch).
    Flush,
    /// The workflow's lease with this token (or an older one) was taken
    /// over: an instance holding it gives the workflow up (sent by the
    /// engine's heartbeat).
    LeaseLost {
        /// The newest token that was lost.
        token: u64,
    },
}

struct Running {
    run: u64,
    abort: StepAbort,
}

/// One workflow's process. Started by the engine under its workflow
/// supervisor; see the module docs.
pub struct WorkflowProcess {
    shared: Arc<Shared>,
    id: Arc<str>,
    state: WorkflowState,
    /// The workflow's lease in multi-node mode. A single-node engine holds
    /// no store leases: its registry keeps one process per workflow, and
    /// the journal's expected sequence numbers refuse the late write of a
    /// predecessor instance. Boxed: most engines are single-node, and a
    /// waiting workflow's process should not carry 72 bytes of `None`.
    lease: Option<Box<Lease>>,
    stored_status: WorkflowStatus,
    /// By task; a B-tree map (no hasher state, no table) because most
    /// workflows run few steps at once and many run none (waiting).
    running: BTreeMap<u32, Running>,
    /// This instance's number (unique in the engine), so that a dead
    /// instance does not unlist its successor from the waiting list.
    instance: u64,
    /// Whether this instance listed the workflow as waiting.
    listed_waiting: bool,
    /// Whether a [`StepMessage::Flush`] is in the mailbox.
    flush_queued: bool,
    /// Whether this is the first instance of a workflow the engine just
    /// started: its in-flight tasks were journaled as started with the
    /// start (the first launch) and have not run yet, so `resume` runs
    /// them without journaling another attempt.
    fresh_launch: bool,
    compensating: Option<(u32, Running)>,
    resumed: bool,
    pending: Vec<Event>,
    pending_from: u64,
    pending_status: Option<WorkflowStatus>,
    /// Set once the lease was lost: the instance stops without writing.
    gave_up: bool,
}

impl Drop for WorkflowProcess {
    fn drop(&mut self) {
        let mut held = self
            .shared
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if held
            .get(&self.id)
            .is_some_and(|held| held.instance == self.instance)
        {
            held.remove(&self.id);
        }
        drop(held);
        if self.listed_waiting {
            self.shared.set_waiting(&self.id, self.instance, false);
        }
        // Linked work ends with its workflow's instance (also on a kill).
        for running in self.running.values() {
            running.abort.abort();
        }
        if let Some((_, running)) = &self.compensating {
            running.abort.abort();
        }
    }
}

impl Actor for WorkflowProcess {
    type Args = ProcessArgs;
    type Call = WorkflowCall;
    type Reply = WorkflowReply;
    type Cast = ();
    type Info = StepMessage;

    async fn init(args: ProcessArgs, ctx: &mut Context<Self>) -> Result<Self, Error> {
        let ProcessArgs {
            shared,
            id,
            fresh,
            claimed,
        } = args;
        let fresh =
            fresh.and_then(|fresh| fresh.lock().unwrap_or_else(PoisonError::into_inner).take());
        let fresh_launch = fresh.is_some();
        let claimed = claimed.and_then(|claimed| {
            claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        });
        if shared.registry.whereis(&id).is_none() {
            // No metadata: an entry per waiting workflow is kept small
            // (the summaries answer queries by name).
            shared
                .registry
                .register(id.to_string(), ctx.myself(), Metadata::new())?;
        }
        // After the registration, so that a duplicate start fails before it
        // takes the lease from the running instance; before reading the
        // journal, so that the read sees every write of the previous owner
        // (whose later writes the new token refuses).
        let (summary, state, lease) = match fresh {
            Some(started) => *started,
            None => {
                let lease = match claimed {
                    Some(lease) => Some(lease),
                    None if shared.multi_node => Some(
                        shared
                            .leases
                            .acquire(&lease_name(&id), &shared.owner, shared.lease_ttl)
                            .await?,
                    ),
                    None => None,
                };
                let (summary, state) = load(&shared, &id).await?;
                (summary, state, lease)
            }
        };
        let instance = shared.next_run.fetch_add(1, Ordering::Relaxed);
        if let Some(lease) = &lease {
            shared
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    Arc::clone(&id),
                    Held {
                        lease: lease.clone(),
                        instance,
                    },
                );
        }
        if !fresh_launch {
            ::metrics::counter!(metrics::RESUMED_TOTAL).increment(1);
        }
        // A timer due at once rather than a mailbox message: it runs before
        // any queued message all the same, and a process that then only
        // waits (on a signal or a delay, whose timer is armed anyway) never
        // grows a message queue (memory per waiting workflow).
        ctx.send_after(Duration::ZERO, StepMessage::Advance);
        Ok(WorkflowProcess {
            stored_status: summary.status(),
            shared,
            id,
            state,
            lease: lease.map(Box::new),
            running: BTreeMap::new(),
            compensating: None,
            resumed: false,
            pending: Vec::new(),
            pending_from: 0,
            pending_status: None,
            instance,
            listed_waiting: false,
            flush_queued: false,
            fresh_launch,
            gave_up: false,
        })
    }

    async fn handle_call(
        &mut self,
        request: WorkflowCall,
        ctx: &mut Context<Self>,
    ) -> Result<WorkflowReply, Error> {
        // Boxed: the actor's task then holds a pointer, not the whole
        // handler state machine, while it idles (memory per waiting
        // workflow).
        if self.gave_up {
            return Err(self.moved());
        }
        let result = Box::pin(self.on_call(request, ctx)).await;
        self.publish_waiting();
        if let Err(error) = &result
            && is_lost(error)
        {
            // A journal write was refused: the lease (or the journal) was
            // taken over; this instance wrote nothing and gives it up.
            self.give_up(ctx);
            return Err(self.moved());
        }
        if let Err(error) = &result
            && self.steps_aside_for(error)
        {
            self.step_aside(error, ctx);
            return result;
        }
        if let Err(error) = &result
            && error.code() != ErrorCode::INVALID_STATE_TRANSITION
        {
            // A call's error would leave the actor running on state that
            // may be ahead of the journal (staged, not flushed) or on work
            // that never started: end the instance, so its restart replays
            // the journal. The caller gets the error.
            ctx.stop(ExitReason::Error(error.clone()));
        }
        result
    }

    async fn handle_info(
        &mut self,
        message: StepMessage,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        if self.gave_up {
            return Ok(());
        }
        if let StepMessage::LeaseLost { token } = message {
            if self
                .lease
                .as_ref()
                .is_some_and(|lease| lease.token <= token)
            {
                self.give_up(ctx);
            }
            return Ok(());
        }
        let result = Box::pin(self.on_info(message, ctx)).await;
        self.publish_waiting();
        if let Err(error) = &result
            && is_lost(error)
        {
            // A journal write was refused (a fenced batch, or the journal
            // moved under it): stop without writing, not as a failure.
            self.give_up(ctx);
            return Ok(());
        }
        if let Err(error) = &result
            && self.steps_aside_for(error)
        {
            self.step_aside(error, ctx);
            return Ok(());
        }
        result
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Context<Self>) {
        let Some(lease) = &self.lease else {
            return;
        };
        if self.gave_up {
            return;
        }
        let leases = &self.shared.leases;
        let bound = self.shared.lease_ttl;
        let outcome = match reason {
            // Finished: nobody needs the lease any more.
            ExitReason::Normal => tokio::time::timeout(bound, leases.release(lease)).await,
            // Shut down with the engine: in multi-node mode, hand the
            // workflow over at once (its lease expires now).
            ExitReason::Shutdown if self.shared.multi_node => {
                tokio::time::timeout(bound, leases.renew(lease, Duration::ZERO))
                    .await
                    .map(|renewed| renewed.map(drop))
            }
            // A crash keeps the lease: the restarted instance re-acquires
            // it (same owner).
            _ => return,
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(workflow = %self.id, %error, "could not release a workflow lease");
            }
            Err(_) => tracing::debug!(workflow = %self.id, "releasing a workflow lease timed out"),
        }
    }
}

impl WorkflowProcess {
    async fn on_call(
        &mut self,
        request: WorkflowCall,
        ctx: &mut Context<Self>,
    ) -> Result<WorkflowReply, Error> {
        match request {
            WorkflowCall::Info => {
                // Staged results are not shown before they are durable.
                self.flush().await?;
                Ok(WorkflowReply::Info(Box::new(self.info())))
            }
            WorkflowCall::Cancel { reason } => {
                if self.state.finished.is_some() {
                    return Err(finished(&self.id));
                }
                if self.state.cancel.is_none() {
                    self.write(vec![Event::CancelRequested { reason }]).await?;
                }
                self.advance(ctx).await?;
                self.flush().await?;
                Ok(WorkflowReply::Done)
            }
            WorkflowCall::Signal { name, payload } => {
                if self.state.finished.is_some() {
                    return Err(finished(&self.id));
                }
                let payload = to_json_text(&payload);
                let mut events = vec![Event::SignalReceived {
                    name: name.clone(),
                    payload: payload.clone(),
                }];
                if let Some(task) = self.waiting_for(&name) {
                    events.push(Event::StepSucceeded {
                        task,
                        output: payload,
                    });
                }
                self.write(events).await?;
                self.advance(ctx).await?;
                self.flush().await?;
                Ok(WorkflowReply::Done)
            }
        }
    }

    async fn on_info(
        &mut self,
        message: StepMessage,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        let is_outcome = matches!(message, StepMessage::Outcome { .. });
        match message {
            // Handled before (`handle_info`).
            StepMessage::Advance | StepMessage::LeaseLost { .. } => {}
            StepMessage::Flush => self.flush_queued = false,
            StepMessage::Timer { task } => self.timer(task, ctx).await?,
            StepMessage::Outcome {
                task,
                run,
                compensation: true,
                outcome,
            } => self.compensation_outcome(task, run, outcome).await?,
            StepMessage::Outcome {
                task, run, outcome, ..
            } => self.outcome(task, run, outcome, ctx).await?,
        }
        self.advance(ctx).await?;
        if is_outcome && self.may_defer_flush() {
            if self.flush_queued {
                return Ok(());
            }
            if ctx.myself().try_send_info(StepMessage::Flush).is_ok() {
                self.flush_queued = true;
                return Ok(());
            }
            // The mailbox refused (the instance is ending): flush now.
        }
        self.flush().await
    }

    /// Whether the staged events may wait for a [`StepMessage::Flush`]:
    /// only results of at-least-once steps that made nothing ready (a
    /// launch flushes first) and ended nothing. Until they are journaled nothing outside sees
    /// them (no work starts, calls flush first); a crash loses them, and
    /// the next instance runs those steps again with the same key, as for
    /// any step in flight. This turns the results of a parallel group that
    /// arrive together into one durable batch.
    fn may_defer_flush(&self) -> bool {
        !self.pending.is_empty()
            && self.pending_status.is_none()
            && self.state.finished.is_none()
            && self.pending.iter().all(|event| match event {
                // An at-most-once step's result is journaled at once: a
                // lost one would make it look interrupted.
                Event::StepSucceeded { task, .. } => {
                    self.state.definition.tasks()[*task as usize].delivery != Delivery::AtMostOnce
                }
                _ => false,
            })
    }
}

fn finished(id: &str) -> Error {
    Error::new(
        ErrorCode::INVALID_STATE_TRANSITION,
        format!("workflow {id} has already ended"),
    )
}

/// Reads a workflow's summary, definition and journal.
pub(crate) async fn load(shared: &Shared, id: &str) -> Result<(Summary, WorkflowState), Error> {
    let summary = shared.keyspaces.summaries.get(id).await?.ok_or_else(|| {
        Error::new(ErrorCode::DATA_NOT_FOUND, format!("no workflow {id}"))
            .with_context("workflow", id)
    })?;
    let definition = shared.definition(&summary.definition).await?;
    let mut state = WorkflowState::new(definition);
    loop {
        let events = shared
            .keyspaces
            .journal
            .read(id, state.next_sequence, MAX_READ_LIMIT)
            .await?;
        let count = events.len();
        for entry in events {
            if entry.sequence != state.next_sequence {
                return Err(Error::new(
                    ErrorCode::DATA_CORRUPTION,
                    format!(
                        "the journal of workflow {id} skips from {} to {}",
                        state.next_sequence, entry.sequence
                    ),
                ));
            }
            state.apply(&entry.record)?;
        }
        if count < MAX_READ_LIMIT {
            break;
        }
    }
    Ok((summary, state))
}

impl WorkflowProcess {
    fn now_ms(&self) -> u64 {
        wall_millis(self.shared.clock.as_ref())
    }

    /// Keeps the engine's list of waiting workflows in step with this
    /// instance (written only when it changes).
    fn publish_waiting(&mut self) {
        let waiting = self.status() == WorkflowStatus::Waiting;
        if waiting != self.listed_waiting {
            self.shared.set_waiting(&self.id, self.instance, waiting);
            self.listed_waiting = waiting;
        }
    }

    /// The workflow's status as this instance sees it (for tests and
    /// inspections: `ActorRef::inspect`, the test kit's `wait_for_state`).
    pub fn status(&self) -> WorkflowStatus {
        self.state.status(self.has_running_work())
    }

    fn has_running_work(&self) -> bool {
        !self.running.is_empty()
            || self.compensating.is_some()
            || self.state.tasks.iter().enumerate().any(|(task, state)| {
                state.phase == TaskPhase::InFlight && !self.state.is_builtin(task as u32)
            })
    }

    pub(crate) fn info(&self) -> WorkflowInfo {
        info_from(&self.id, &self.state, self.has_running_work())
    }

    fn waiting_for(&self, signal: &str) -> Option<u32> {
        self.state
            .definition
            .tasks()
            .iter()
            .enumerate()
            .find_map(|(task, spec)| {
                (spec.work == AWAIT_SIGNAL
                    && self.state.tasks[task].phase == TaskPhase::InFlight
                    && spec.params.get("signal").and_then(Value::as_str) == Some(signal))
                .then_some(task as u32)
            })
    }

    /// Stages `events`: applies them to the state now and journals them
    /// with the next [`flush`](Self::flush). Nothing outside the process
    /// sees a staged event before it is durable: works are started, timers
    /// matter, and replies leave only after a flush (a failed flush ends
    /// the instance, and the next one replays the journal).
    async fn write(&mut self, events: Vec<Event>) -> Result<(), Error> {
        self.write_with(events, None).await
    }

    async fn write_with(
        &mut self,
        events: Vec<Event>,
        status: Option<WorkflowStatus>,
    ) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        if self.pending.is_empty() {
            self.pending_from = self.state.next_sequence;
        }
        for event in &events {
            self.state.apply_event(event)?;
        }
        self.pending.extend(events);
        if status.is_some() {
            self.pending_status = status;
        }
        Ok(())
    }

    /// Journals the staged events as one journal record (an
    /// [`Event::Batch`] when there are several) in one durable batch,
    /// fenced by the lease and by the journal's expected sequence number,
    /// with the summary when the status changed.
    async fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let keyspaces = &self.shared.keyspaces;
        let mut batch = keyspaces.store.batch();
        if let Some(lease) = &self.lease {
            batch.fence(lease)?;
        }
        // Freed rather than kept: most workflows wait far more than they
        // write.
        let record = Event::record(std::mem::take(&mut self.pending));
        batch.append_expecting(&keyspaces.journal, &self.id, self.pending_from, &record)?;
        let status = self.pending_status.take();
        if let Some(status) = status.filter(|status| *status != self.stored_status) {
            let summary = Summary {
                name: self.state.definition.name().to_owned(),
                definition: self.state.definition.hash().as_str().to_owned(),
                status: status.code(),
                metadata: to_json_text(&self.state.metadata),
                started_at_ms: self.state.started_at_ms,
                updated_at_ms: self.now_ms(),
            };
            batch.put(&keyspaces.summaries, &self.id, &summary)?;
        }
        batch.commit().await?;
        self.state.count_record();
        if let Some(status) = status {
            self.stored_status = status;
        }
        Ok(())
    }

    /// Brings the workflow forward: resume once, then either compensate or
    /// start what is ready, or finish.
    async fn advance(&mut self, ctx: &mut Context<Self>) -> Result<(), Error> {
        if let Some(status) = self.state.finished {
            self.stop(status, ctx);
            return Ok(());
        }
        if !self.resumed {
            self.resumed = true;
            self.resume(ctx).await?;
        }
        if self.state.is_unwinding() {
            return self.compensate(ctx).await;
        }
        loop {
            let room = self.shared.max_parallel.saturating_sub(self.running.len());
            let mut ready = Vec::new();
            let done = self.state.ready(&mut ready, room);
            if done {
                return self.finish(WorkflowStatus::Completed, ctx).await;
            }
            if ready.is_empty() {
                return Ok(());
            }
            self.launch(ready, ctx).await?;
            if self.state.is_unwinding() {
                return self.compensate(ctx).await;
            }
        }
    }

    /// After a (re)start: re-arm durable timers, re-run or interrupt steps
    /// that were in flight.
    async fn resume(&mut self, ctx: &mut Context<Self>) -> Result<(), Error> {
        let now = self.now_ms();
        let mut relaunch = Vec::new();
        let mut interrupted = Vec::new();
        let mut first_launch = Vec::new();
        for (index, task) in self.state.tasks.iter().enumerate() {
            let index = index as u32;
            match task.phase {
                TaskPhase::InFlight if self.state.is_builtin(index) => {
                    if let Some(due) = task.timer_due_ms {
                        ctx.send_after(
                            Duration::from_millis(due.saturating_sub(now)),
                            StepMessage::Timer { task: index },
                        );
                    }
                }
                TaskPhase::InFlight if self.fresh_launch => first_launch.push(index),
                TaskPhase::InFlight => {
                    if self.state.definition.tasks()[index as usize].delivery
                        == Delivery::AtMostOnce
                    {
                        interrupted.push(Event::StepInterrupted { task: index });
                    } else {
                        relaunch.push(index);
                    }
                }
                TaskPhase::RetryWait => {
                    let due = task.retry_at_ms.unwrap_or(now);
                    ctx.send_after(
                        Duration::from_millis(due.saturating_sub(now)),
                        StepMessage::Timer { task: index },
                    );
                }
                _ => {}
            }
        }
        if !interrupted.is_empty() {
            ::metrics::counter!(metrics::STEP_ATTEMPTS_TOTAL, "outcome" => "interrupted")
                .increment(interrupted.len() as u64);
            self.write_with(interrupted, Some(WorkflowStatus::Compensating))
                .await?;
        }
        if !self.state.is_unwinding() && !relaunch.is_empty() {
            self.launch(relaunch, ctx).await?;
        }
        self.fresh_launch = false;
        for task in first_launch {
            self.start_job(task, false, ctx)?;
        }
        // A signal that arrived while a wait was being set up.
        let waiting: Vec<(u32, String)> = self
            .state
            .definition
            .tasks()
            .iter()
            .enumerate()
            .filter(|(task, spec)| {
                spec.work == AWAIT_SIGNAL && self.state.tasks[*task].phase == TaskPhase::InFlight
            })
            .filter_map(|(task, spec)| {
                Some((task as u32, spec.params.get("signal")?.as_str()?.to_owned()))
            })
            .collect();
        for (task, signal) in waiting {
            self.complete_from_buffer(task, &signal).await?;
        }
        Ok(())
    }

    /// Journals the starts of `tasks` in one write, then runs them.
    async fn launch(&mut self, tasks: Vec<u32>, ctx: &mut Context<Self>) -> Result<(), Error> {
        let now = self.now_ms();
        let events = launch_events(&self.state, &tasks, now);
        let status = if self.stored_status == WorkflowStatus::Pending {
            Some(WorkflowStatus::Running)
        } else {
            None
        };
        self.write_with(events, status).await?;
        // The starts (and whatever was staged before them, such as the
        // result that made these tasks ready) are durable before any runs.
        self.flush().await?;
        for task in tasks {
            let spec = &self.state.definition.tasks()[task as usize];
            if spec.work == DELAY || spec.work == AWAIT_SIGNAL {
                let due = self.state.tasks[task as usize].timer_due_ms.unwrap_or(now);
                ctx.send_after(
                    Duration::from_millis(due.saturating_sub(now)),
                    StepMessage::Timer { task },
                );
                if spec.work == AWAIT_SIGNAL {
                    let signal = spec
                        .params
                        .get("signal")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    self.complete_from_buffer(task, &signal).await?;
                }
            } else {
                self.start_job(task, false, ctx)?;
            }
        }
        Ok(())
    }

    /// Completes a signal wait from a signal that arrived earlier.
    async fn complete_from_buffer(&mut self, task: u32, signal: &str) -> Result<(), Error> {
        let buffered = self
            .state
            .signals
            .get(signal)
            .and_then(|queue| queue.front())
            .cloned();
        if let Some(payload) = buffered {
            self.write(vec![Event::StepSucceeded {
                task,
                output: payload,
            }])
            .await?;
        }
        Ok(())
    }

    /// Hands a task's work (or its compensation) to the executor.
    fn start_job(
        &mut self,
        task: u32,
        compensation: bool,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        let spec = &self.state.definition.tasks()[task as usize];
        let (work_name, params, key) = match (&spec.compensation, compensation) {
            (Some(compensation), true) => (
                compensation.work.clone(),
                compensation.params.clone(),
                format!("{}/{}/compensate", self.id, spec.path),
            ),
            _ => (
                spec.work.clone(),
                spec.params.clone(),
                format!("{}/{}", self.id, spec.path),
            ),
        };
        let work = self.shared.works.get(&work_name).ok_or_else(|| {
            Error::new(
                ErrorCode::VALIDATION_FAILED,
                format!("unknown work {work_name:?}"),
            )
            .with_context("path", &spec.path)
        })?;
        let run = self.shared.next_run.fetch_add(1, Ordering::Relaxed);
        let job = StepJob {
            work,
            input: StepInput {
                workflow_id: Arc::clone(&self.id),
                step_id: spec.id.clone(),
                path: spec.path.clone(),
                idempotency_key: key,
                attempt: self.state.tasks[task as usize].attempts.max(1),
                params,
                outputs: Arc::clone(&self.state.outputs),
            },
            timeout: spec.timeout,
            report: Report {
                process: ctx.myself(),
                task,
                run,
                compensation,
                sent: false,
            },
        };
        let abort = self.shared.executor.execute(job)?;
        let running = Running { run, abort };
        if compensation {
            self.compensating = Some((task, running));
        } else {
            self.running.insert(task, running);
        }
        Ok(())
    }

    async fn outcome(
        &mut self,
        task: u32,
        run: u64,
        outcome: Option<Result<Value, Error>>,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match self.running.get(&task) {
            Some(running) if running.run == run => {}
            // A report from a run this instance did not start, or stopped.
            _ => return Ok(()),
        }
        self.running.remove(&task);
        if self.state.is_unwinding() || self.state.finished.is_some() {
            return Ok(());
        }
        let spec = &self.state.definition.tasks()[task as usize];
        let state = &self.state.tasks[task as usize];
        match outcome {
            Some(Ok(output)) => {
                ::metrics::counter!(metrics::STEP_ATTEMPTS_TOTAL, "outcome" => "succeeded")
                    .increment(1);
                let output = to_json_text(&output);
                self.write(vec![Event::StepSucceeded { task, output }])
                    .await
            }
            Some(Err(error))
                if error.is_retryable() && state.failures + 1 < spec.retry.attempts =>
            {
                ::metrics::counter!(metrics::STEP_ATTEMPTS_TOTAL, "outcome" => "retried")
                    .increment(1);
                let delay = spec.retry.delay(state.failures + 1);
                let retry_at_ms = self
                    .now_ms()
                    .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                self.write(vec![Event::AttemptFailed {
                    task,
                    error: StoredError::from_error(&error),
                    retry_at_ms,
                }])
                .await?;
                ctx.send_after(delay, StepMessage::Timer { task });
                Ok(())
            }
            Some(Err(error)) => {
                ::metrics::counter!(metrics::STEP_ATTEMPTS_TOTAL, "outcome" => "failed")
                    .increment(1);
                let error = StoredError::from_error(&error);
                self.write_with(
                    vec![Event::StepFailed { task, error }],
                    Some(WorkflowStatus::Compensating),
                )
                .await
            }
            None => {
                ::metrics::counter!(metrics::STEP_ATTEMPTS_TOTAL, "outcome" => "interrupted")
                    .increment(1);
                if spec.delivery == Delivery::AtMostOnce {
                    return self
                        .write_with(
                            vec![Event::StepInterrupted { task }],
                            Some(WorkflowStatus::Compensating),
                        )
                        .await;
                }
                if state.attempts.saturating_sub(state.failures) >= MAX_INTERRUPTIONS {
                    let error = StoredError {
                        code: ErrorCode::PROCESS_CRASHED.number(),
                        message: format!(
                            "step {} was interrupted {MAX_INTERRUPTIONS} times",
                            spec.path
                        ),
                    };
                    return self
                        .write_with(
                            vec![Event::StepFailed { task, error }],
                            Some(WorkflowStatus::Compensating),
                        )
                        .await;
                }
                self.launch(vec![task], ctx).await
            }
        }
    }

    async fn timer(&mut self, task: u32, ctx: &mut Context<Self>) -> Result<(), Error> {
        if self.state.is_unwinding() || self.state.finished.is_some() {
            return Ok(());
        }
        let spec = &self.state.definition.tasks()[task as usize];
        let state = &self.state.tasks[task as usize];
        let now = self.now_ms();
        if state.phase == TaskPhase::InFlight
            && let Some(due) = state.timer_due_ms
            && now < due
        {
            // Early by the wall clock (it moved back across a restart):
            // wait for the rest.
            ctx.send_after(
                Duration::from_millis(due - now),
                StepMessage::Timer { task },
            );
            return Ok(());
        }
        match state.phase {
            TaskPhase::InFlight if spec.work == DELAY => {
                self.write(vec![Event::StepSucceeded {
                    task,
                    output: "null".into(),
                }])
                .await
            }
            TaskPhase::InFlight if spec.work == AWAIT_SIGNAL => {
                let signal = spec
                    .params
                    .get("signal")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let error = StoredError {
                    code: ErrorCode::TIMEOUT.number(),
                    message: format!(
                        "no signal {signal:?} within {} ms",
                        spec.timeout.as_millis()
                    ),
                };
                self.write_with(
                    vec![Event::StepFailed { task, error }],
                    Some(WorkflowStatus::Compensating),
                )
                .await
            }
            TaskPhase::RetryWait => self.launch(vec![task], ctx).await,
            _ => Ok(()),
        }
    }

    /// Runs the compensations, one at a time, latest-completed first; then
    /// ends the workflow failed or cancelled.
    async fn compensate(&mut self, ctx: &mut Context<Self>) -> Result<(), Error> {
        for (_, running) in std::mem::take(&mut self.running) {
            running.abort.abort();
        }
        if self.compensating.is_some() {
            return Ok(());
        }
        match self.state.next_compensation() {
            Some(task) => {
                if self.state.tasks[task as usize].compensation != CompensationPhase::Started {
                    self.write_with(
                        vec![Event::CompensationStarted { task }],
                        Some(WorkflowStatus::Compensating),
                    )
                    .await?;
                }
                self.flush().await?;
                self.start_job(task, true, ctx)
            }
            None => {
                let status = if self.state.cancel.is_some() {
                    WorkflowStatus::Cancelled
                } else {
                    WorkflowStatus::Failed
                };
                self.finish(status, ctx).await
            }
        }
    }

    async fn compensation_outcome(
        &mut self,
        task: u32,
        run: u64,
        outcome: Option<Result<Value, Error>>,
    ) -> Result<(), Error> {
        match &self.compensating {
            Some((current, running)) if *current == task && running.run == run => {}
            _ => return Ok(()),
        }
        self.compensating = None;
        match outcome {
            // Interrupted: `advance` runs it again.
            None => Ok(()),
            Some(result) => {
                let error = result.err().map(|error| StoredError::from_error(&error));
                self.write(vec![Event::CompensationFinished { task, error }])
                    .await
            }
        }
    }

    async fn finish(
        &mut self,
        status: WorkflowStatus,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        self.write_with(
            vec![Event::Finished {
                status: status.code(),
            }],
            Some(status),
        )
        .await?;
        self.flush().await?;
        ::metrics::counter!(metrics::FINISHED_TOTAL, "status" => status.as_str()).increment(1);
        self.stop(status, ctx);
        Ok(())
    }

    /// Gives the workflow up after its lease was lost: stops at once,
    /// without writing and without reporting it ended (its new owner runs
    /// it); running works are aborted with the instance.
    fn give_up(&mut self, ctx: &mut Context<Self>) {
        self.gave_up = true;
        self.count_lost();
        ctx.stop(ExitReason::Normal);
    }

    /// Whether this instance steps aside after `error` instead of
    /// crashing: in multi-node mode, when the store failed in a way that
    /// passes (a lost connection, a restarting database, a timeout).
    /// Crashing would have the WorkflowSupervisor restart the instance
    /// while the store is still away, and a database restart fails every
    /// running workflow at once: the supervisor's restart intensity would
    /// run out and the engine would stop running workflows for good.
    fn steps_aside_for(&self, error: &Error) -> bool {
        self.shared.multi_node
            && self.lease.is_some()
            && error.category() == foundation_error::Category::Infrastructure
            && error.is_retryable()
    }

    /// Steps aside after a passing store failure (multi-node mode): stops
    /// at once, not as a failure, keeping the lease unrenewed (the engine
    /// no longer renews it), so that once it expires a claim resumes the
    /// workflow from its journal, on this engine or another; running works
    /// are aborted with the instance, and staged events that were not
    /// journaled are replayed by the next instance.
    fn step_aside(&mut self, error: &Error, ctx: &mut Context<Self>) {
        self.gave_up = true;
        tracing::info!(workflow = %self.id, %error, "stepped aside: the store failed; a claim resumes the workflow once its lease expires");
        ctx.stop(ExitReason::Normal);
    }

    fn count_lost(&self) {
        let token = self.lease.as_ref().map(|lease| lease.token);
        tracing::info!(workflow = %self.id, ?token, "gave a workflow up: its lease was taken over");
        self.shared.leases_lost.fetch_add(1, Ordering::AcqRel);
        ::metrics::counter!(metrics::LEASE_LOST_TOTAL).increment(1);
    }

    /// The answer to a call on a workflow this instance gave up.
    fn moved(&self) -> Error {
        Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            format!("workflow {} moved to another engine; retry", self.id),
        )
        .with_context("workflow", &*self.id)
    }

    fn stop(&mut self, status: WorkflowStatus, ctx: &mut Context<Self>) {
        for (_, running) in std::mem::take(&mut self.running) {
            running.abort.abort();
        }
        self.shared
            .notify_finished(&self.id, || info_from(&self.id, &self.state, false));
        for listener in self.shared.listeners() {
            listener(&self.id, status);
        }
        ctx.stop(ExitReason::Normal);
    }
}

/// The events that launch `tasks` of `state` at wall time `now`: each
/// one's start, and a built-in's durable timer.
pub(crate) fn launch_events(state: &WorkflowState, tasks: &[u32], now: u64) -> Vec<Event> {
    let mut events = Vec::with_capacity(tasks.len() * 2);
    for &task in tasks {
        let spec = &state.definition.tasks()[task as usize];
        events.push(Event::StepStarted {
            task,
            attempt: state.tasks[task as usize].attempts + 1,
        });
        if spec.work == DELAY {
            let duration = spec
                .params
                .get("duration_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            events.push(Event::TimerSet {
                task,
                due_ms: now.saturating_add(duration),
            });
        } else if spec.work == AWAIT_SIGNAL {
            let timeout = u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX);
            events.push(Event::TimerSet {
                task,
                due_ms: now.saturating_add(timeout),
            });
        }
    }
    events
}

pub(crate) fn info_from(id: &str, state: &WorkflowState, running: bool) -> WorkflowInfo {
    WorkflowInfo {
        id: id.to_owned(),
        name: state.definition.name().to_owned(),
        definition: state.definition.hash().as_str().to_owned(),
        status: state.status(running),
        metadata: state.metadata.clone(),
        started_at: time_from_millis(state.started_at_ms),
        steps: state.steps(),
    }
}
