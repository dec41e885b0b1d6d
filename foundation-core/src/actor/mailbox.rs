//! The mailbox: an actor's queue and identity, shared by its handles, its
//! running instance and its supervisor, and outliving every instance.
//!
//! Two lanes: the *user* lane (calls, casts, info, inspections), bounded by
//! a semaphore, and the *system* lane (stop requests, monitor
//! notifications), unbounded and served first. One mutex guards both
//! queues and the process's state; the consumer takes the whole user queue
//! in one swap, so it locks once per batch, not per message. A sender wakes
//! the consumer only when the consumer said it is waiting.
//!
//! This module is not the run loop (see `run.rs`) nor the public handle
//! (see `handle.rs`).

use std::any::Any;
use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foundation_error::{Error, ErrorCode};
use tokio::sync::{Notify, Semaphore, TryAcquireError, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::slots::Slots;
use super::{ActorOptions, Capacity, Undelivered, UndeliveredHook};
use crate::Actor;
use crate::process::{
    Down, ExitHook, ExitReason, ProcessControl, ProcessId, ProcessRef, ProcessStatus,
};

/// The reply side of a call.
pub(crate) type ReplyTo<A> = oneshot::Sender<Result<<A as Actor>::Reply, Error>>;

/// A closure run against the actor's state, in mailbox order.
pub(crate) type Inspection<A> = Box<dyn FnOnce(&A) + Send>;

/// A message in the user lane.
pub(crate) enum Envelope<A: Actor> {
    Call(A::Call, ReplyTo<A>),
    Cast(A::Cast),
    Info(A::Info),
    Inspect(Inspection<A>),
}

/// A message in the system lane.
pub(crate) enum SystemMessage {
    Stop(ExitReason),
    Down(Down),
}

/// Why a message was not queued; the message comes back.
pub(crate) enum Refused<T> {
    Full(T),
    Closed(T),
    Timeout(T),
}

const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const RESTARTING: u8 = 2;
const STOPPED: u8 = 3;
const CLOSED: u8 = 4;

pub(crate) struct Mailbox<A: Actor> {
    id: ProcessId,
    bounded: bool,
    space: Semaphore,
    wake: Notify,
    instance_exit: Notify,
    system_pending: AtomicBool,
    status: AtomicU8,
    incarnation: AtomicU64,
    undelivered: Option<UndeliveredHook<A>>,
    state: Mutex<State<A>>,
}

struct State<A: Actor> {
    user: VecDeque<Envelope<A>>,
    system: VecDeque<SystemMessage>,
    consumer_waiting: bool,
    abort: Option<AbortHandle>,
    /// Run in registration order when the process ends.
    hooks: Slots<ExitHook>,
    next_hook: u64,
    /// Set while a supervisor holds the process stopped: sends fail.
    stopped: bool,
    final_reason: Option<ExitReason>,
}

impl<A: Actor> Mailbox<A> {
    pub(crate) fn new(options: &ActorOptions<A>) -> Arc<Mailbox<A>> {
        let (bounded, permits) = match options.capacity {
            Capacity::Bounded(capacity) => (true, capacity.min(Semaphore::MAX_PERMITS)),
            Capacity::Unbounded => (false, 0),
        };
        Arc::new(Mailbox {
            id: ProcessId::next(),
            bounded,
            space: Semaphore::new(permits),
            wake: Notify::new(),
            instance_exit: Notify::new(),
            system_pending: AtomicBool::new(false),
            status: AtomicU8::new(STARTING),
            incarnation: AtomicU64::new(0),
            undelivered: options.undelivered.clone(),
            state: Mutex::new(State {
                user: VecDeque::new(),
                system: VecDeque::new(),
                consumer_waiting: false,
                abort: None,
                hooks: Slots::new(),
                next_hook: 0,
                stopped: false,
                final_reason: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<A>> {
        // The critical sections never run user code, so a poisoned lock
        // still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn id(&self) -> ProcessId {
        self.id
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.status.load(Ordering::Acquire) == CLOSED
    }

    // ----- senders -------------------------------------------------------

    /// Queues a user message, waiting for room until `deadline`.
    pub(crate) async fn push(
        &self,
        envelope: Envelope<A>,
        deadline: Instant,
    ) -> Result<(), Refused<Envelope<A>>> {
        if self.bounded {
            match self.space.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::Closed) => return Err(Refused::Closed(envelope)),
                Err(TryAcquireError::NoPermits) => {
                    match tokio::time::timeout_at(deadline, self.space.acquire()).await {
                        Ok(Ok(permit)) => permit.forget(),
                        Ok(Err(_closed)) => return Err(Refused::Closed(envelope)),
                        Err(_elapsed) => return Err(Refused::Timeout(envelope)),
                    }
                }
            }
        }
        self.enqueue(envelope)
    }

    /// Queues a user message from a plain thread (no runtime needed),
    /// parking for room until `deadline`.
    pub(crate) fn push_blocking(
        &self,
        envelope: Envelope<A>,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), Refused<Envelope<A>>> {
        if self.bounded {
            match self.space.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::Closed) => return Err(Refused::Closed(envelope)),
                Err(TryAcquireError::NoPermits) => {
                    match super::blocking::wait_blocking(self.space.acquire(), deadline) {
                        Some(Ok(permit)) => permit.forget(),
                        Some(Err(_closed)) => return Err(Refused::Closed(envelope)),
                        None => return Err(Refused::Timeout(envelope)),
                    }
                }
            }
        }
        self.enqueue(envelope)
    }

    /// Queues a user message if there is room now.
    pub(crate) fn try_push(&self, envelope: Envelope<A>) -> Result<(), Refused<Envelope<A>>> {
        if self.bounded {
            match self.space.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::Closed) => return Err(Refused::Closed(envelope)),
                Err(TryAcquireError::NoPermits) => return Err(Refused::Full(envelope)),
            }
        }
        self.enqueue(envelope)
    }

    fn enqueue(&self, envelope: Envelope<A>) -> Result<(), Refused<Envelope<A>>> {
        let mut state = self.lock();
        if state.final_reason.is_some() || state.stopped {
            drop(state);
            self.release(1);
            return Err(Refused::Closed(envelope));
        }
        state.user.push_back(envelope);
        let wake = mem::take(&mut state.consumer_waiting);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues a system message; false when the process has ended.
    pub(crate) fn push_system(&self, message: SystemMessage) -> bool {
        let mut state = self.lock();
        if state.final_reason.is_some() {
            return false;
        }
        state.system.push_back(message);
        self.system_pending.store(true, Ordering::Release);
        let wake = mem::take(&mut state.consumer_waiting);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    // ----- the consumer (the running instance) --------------------------

    pub(crate) fn system_pending(&self) -> bool {
        self.system_pending.load(Ordering::Acquire)
    }

    pub(crate) fn pop_system(&self) -> Option<SystemMessage> {
        let mut state = self.lock();
        let message = state.system.pop_front();
        if state.system.is_empty() {
            self.system_pending.store(false, Ordering::Release);
        }
        message
    }

    /// Moves every queued user message into `buffer` (which must be empty).
    /// When there is none, records that the consumer is about to wait and
    /// returns false.
    pub(crate) fn refill(&self, buffer: &mut VecDeque<Envelope<A>>) -> bool {
        debug_assert!(buffer.is_empty());
        let mut state = self.lock();
        if state.user.is_empty() {
            if state.system.is_empty() {
                state.consumer_waiting = true;
            }
            return false;
        }
        mem::swap(&mut state.user, buffer);
        // Give back memory after a burst, so idle actors stay small.
        if state.user.capacity() > 256 {
            state.user.shrink_to(16);
        }
        true
    }

    pub(crate) async fn wait_for_work(&self) {
        self.wake.notified().await;
    }

    /// Frees room for `count` handled messages.
    pub(crate) fn release(&self, count: usize) {
        if self.bounded && count > 0 {
            self.space.add_permits(count);
        }
    }

    // ----- instance lifecycle --------------------------------------------

    /// Marks a new instance as running; returns its incarnation.
    pub(crate) fn begin_instance(&self) -> u64 {
        let mut state = self.lock();
        state.stopped = false;
        let incarnation = self.incarnation.fetch_add(1, Ordering::AcqRel) + 1;
        self.status.store(RUNNING, Ordering::Release);
        incarnation
    }

    /// Records how to abort `incarnation`, unless it has already exited
    /// (or been followed by another).
    pub(crate) fn set_abort_handle(&self, incarnation: u64, abort: AbortHandle) {
        let mut state = self.lock();
        if self.status.load(Ordering::Acquire) == RUNNING
            && self.incarnation.load(Ordering::Acquire) == incarnation
        {
            state.abort = Some(abort);
        }
    }

    /// The instance has exited: unhandled messages from its batch go back
    /// to the front of the queue, every queued call is failed, casts and
    /// info stay for a restarted instance.
    pub(crate) fn instance_exited(
        &self,
        mut unhandled: VecDeque<Envelope<A>>,
        unreleased: usize,
        reason: &ExitReason,
    ) {
        let mut failed_calls = Vec::new();
        let mut state = self.lock();
        state.abort = None;
        state.consumer_waiting = false;
        unhandled.append(&mut state.user);
        let mut kept = VecDeque::with_capacity(unhandled.len());
        for envelope in unhandled {
            match envelope {
                Envelope::Call(_, reply) => failed_calls.push(reply),
                other => kept.push_back(other),
            }
        }
        state.user = kept;
        if self.status.load(Ordering::Acquire) != CLOSED {
            let next = if state.stopped { STOPPED } else { RESTARTING };
            self.status.store(next, Ordering::Release);
        }
        drop(state);
        self.instance_exit.notify_waiters();
        self.release(unreleased + failed_calls.len());
        if !failed_calls.is_empty() {
            let error = crashed_error(self.id, reason);
            for reply in failed_calls {
                // The caller may have given up already; nothing to do then.
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    /// Ends the process for good: fails queued calls, hands casts and info
    /// to the undelivered hook, closes the mailbox and runs exit hooks.
    pub(crate) fn close_for_good(&self, reason: ExitReason) {
        let mut state = self.lock();
        if state.final_reason.is_some() {
            return;
        }
        state.final_reason = Some(reason.clone());
        self.status.store(CLOSED, Ordering::Release);
        let queued = mem::take(&mut state.user);
        state.system.clear();
        let hooks = state.hooks.take();
        let abort = state.abort.take();
        drop(state);
        self.space.close();
        if let Some(abort) = abort {
            abort.abort();
        }
        crate::monitor::monitors_removed(hooks.len());
        let error = Error::new(
            ErrorCode::PROCESS_NOT_ALIVE,
            format!("process {} ended ({reason})", self.id),
        );
        let mut undelivered = 0u64;
        for envelope in queued {
            match envelope {
                Envelope::Call(_, reply) => {
                    let _ = reply.send(Err(error.clone()));
                }
                Envelope::Cast(message) => {
                    undelivered += 1;
                    self.hand_undelivered(Undelivered::Cast(message));
                }
                Envelope::Info(message) => {
                    undelivered += 1;
                    self.hand_undelivered(Undelivered::Info(message));
                }
                Envelope::Inspect(_) => {}
            }
        }
        if undelivered > 0 {
            metrics::counter!(crate::metrics::ACTOR_UNDELIVERED_TOTAL).increment(undelivered);
        }
        let down = Down {
            process: self.id,
            reason,
        };
        for hook in hooks {
            hook(&down);
        }
    }

    fn hand_undelivered(&self, message: Undelivered<A>) {
        if let Some(hook) = &self.undelivered {
            hook(message);
        }
    }

    pub(crate) fn to_process_ref(self: &Arc<Self>) -> ProcessRef {
        ProcessRef {
            inner: Arc::clone(self) as Arc<dyn ProcessControl>,
        }
    }
}

/// The error a call gets when the instance handling (or about to handle)
/// it crashes.
pub(crate) fn crashed_error(process: ProcessId, reason: &ExitReason) -> Error {
    Error::new(
        ErrorCode::PROCESS_CRASHED,
        format!("process {process} exited before replying ({reason})"),
    )
}

impl<A: Actor> ProcessControl for Mailbox<A> {
    fn id(&self) -> ProcessId {
        self.id
    }

    fn status(&self) -> ProcessStatus {
        match self.status.load(Ordering::Acquire) {
            STARTING => ProcessStatus::Starting,
            RUNNING => ProcessStatus::Running,
            RESTARTING => ProcessStatus::Restarting,
            STOPPED => ProcessStatus::Stopped,
            _ => ProcessStatus::Closed,
        }
    }

    fn instance_exit(&self) -> &Notify {
        &self.instance_exit
    }

    fn set_stopped(&self, stopped: bool) {
        let mut state = self.lock();
        if state.final_reason.is_some() {
            return;
        }
        state.stopped = stopped;
        let status = self.status.load(Ordering::Acquire);
        if stopped && status != RUNNING {
            self.status.store(STOPPED, Ordering::Release);
        } else if !stopped && status == STOPPED {
            self.status.store(RESTARTING, Ordering::Release);
        }
    }

    fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Acquire)
    }

    fn request_stop(&self, reason: ExitReason) -> bool {
        self.status.load(Ordering::Acquire) == RUNNING
            && self.push_system(SystemMessage::Stop(reason))
    }

    fn kill(&self) -> bool {
        match self.lock().abort.take() {
            Some(abort) => {
                abort.abort();
                true
            }
            None => false,
        }
    }

    fn add_exit_hook(&self, hook: ExitHook) -> Result<u64, (ExitHook, ExitReason)> {
        let mut state = self.lock();
        if let Some(reason) = &state.final_reason {
            return Err((hook, reason.clone()));
        }
        let key = state.next_hook;
        state.next_hook += 1;
        state.hooks.insert(key, hook);
        drop(state);
        crate::monitor::monitors_added(1);
        Ok(key)
    }

    fn remove_exit_hook(&self, key: u64) -> bool {
        let removed = self.lock().hooks.remove(key).is_some();
        if removed {
            crate::monitor::monitors_removed(1);
        }
        removed
    }

    fn exit_hook_count(&self) -> usize {
        self.lock().hooks.len()
    }

    fn close(&self, reason: ExitReason) {
        self.close_for_good(reason);
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
