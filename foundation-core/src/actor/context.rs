//! [`Context`]: what a running instance can do besides handling its
//! message: reach its own handle, stop, set timers, monitor others.
//!
//! The context belongs to one instance. Its timers and monitors end with
//! the instance (a restarted instance starts with none), and it holds the
//! batch of messages taken from the mailbox but not yet handled, which go
//! back to the mailbox if the instance dies.

use std::collections::{HashMap, VecDeque};
use std::mem;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::mailbox::{Envelope, Mailbox, SystemMessage};
use super::timers::Timers;
use super::{Actor, ActorRef};
use crate::process::{Down, ExitReason, ProcessControl, ProcessId, ProcessRef};

/// Identifies a timer set with [`Context::send_after`] or
/// [`Context::send_interval`], for [`Context::cancel_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerRef(u64);

/// Identifies a monitor set with [`Context::monitor`]; keep it to
/// [`Context::demonitor`] later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MonitorRef(u64);

/// A reply held until [`Actor::after_handle`] has run: given `None` when it
/// succeeded (send the handler's answer), or its error.
pub(super) type HeldReply = Box<dyn FnOnce(Option<&foundation_error::Error>) + Send>;

/// A monitored process: its id, the process, and the exit hook's key
/// (`None` for a target that had already ended, whose `Down` was queued
/// at once).
type Watched = (ProcessId, Weak<dyn ProcessControl>, Option<u64>);

/// The running instance's view of itself.
pub struct Context<A: Actor> {
    pub(super) mailbox: Arc<Mailbox<A>>,
    pub(super) batch: VecDeque<Envelope<A>>,
    pub(super) unreleased: usize,
    pub(super) timers: Timers<A::Info>,
    pub(super) stop: Option<ExitReason>,
    pub(super) held: Vec<HeldReply>,
    /// The monitors this instance set.
    monitors: HashMap<MonitorRef, Watched>,
    next_monitor: u64,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(mailbox: Arc<Mailbox<A>>) -> Context<A> {
        Context {
            mailbox,
            batch: VecDeque::new(),
            unreleased: 0,
            timers: Timers::default(),
            stop: None,
            held: Vec::new(),
            monitors: HashMap::new(),
            next_monitor: 0,
        }
    }

    /// A handle to this actor (valid across its restarts).
    pub fn myself(&self) -> ActorRef<A> {
        ActorRef::from_mailbox(Arc::clone(&self.mailbox))
    }

    /// This actor's process id.
    pub fn id(&self) -> ProcessId {
        self.mailbox.id()
    }

    /// Stops the instance with `reason` once the current handler returns.
    /// `Normal` and `Shutdown` are normal exits; any other reason is a
    /// crash for the supervisor.
    pub fn stop(&mut self, reason: ExitReason) {
        self.stop = Some(reason);
    }

    /// Answers `port` with `result` once the current handler and
    /// [`Actor::after_handle`] have finished: if `after_handle` fails, the
    /// caller gets its error instead. Use it to acknowledge only what
    /// `after_handle` made durable. Answers queued here during `init` are
    /// released after `init` succeeds.
    pub fn reply_after<T: Send + 'static>(
        &mut self,
        port: crate::ReplyPort<T>,
        result: Result<T, foundation_error::Error>,
    ) {
        self.held.push(Box::new(move |failure| {
            // The caller may have gone; nothing to do then.
            let _ = match failure {
                None => port.send(result),
                Some(error) => port.send(Err(error.clone())),
            };
        }));
    }

    /// Releases the held replies: the handlers' answers when `failure` is
    /// `None`, else that error.
    pub(super) fn release_held(&mut self, failure: Option<&foundation_error::Error>) {
        if !self.held.is_empty() {
            for reply in mem::take(&mut self.held) {
                reply(failure);
            }
        }
    }

    /// Delivers `info` to [`Actor::handle_info`] after `delay`.
    pub fn send_after(&mut self, delay: Duration, info: A::Info) -> TimerRef {
        TimerRef(self.timers.once(Instant::now() + delay, info))
    }

    /// Delivers a clone of `info` every `period` (the first after one
    /// period). Ticks missed while the actor was busy are skipped.
    pub fn send_interval(&mut self, period: Duration, info: A::Info) -> TimerRef
    where
        A::Info: Clone + Sync,
    {
        let period = period.max(Duration::from_millis(1));
        TimerRef(self.timers.every(
            Instant::now() + period,
            period,
            Box::new(move || info.clone()),
        ))
    }

    /// Cancels a timer; false when it already fired (a one-shot) or was
    /// cancelled.
    pub fn cancel_timer(&mut self, timer: TimerRef) -> bool {
        self.timers.cancel(timer.0)
    }

    /// The number of live timers.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Monitors another process: when it ends, this actor's
    /// [`Actor::handle_down`] receives a [`Down`]. Monitoring a process
    /// that already ended delivers the `Down` at once. The monitor is
    /// released when this instance exits or on [`Context::demonitor`].
    /// A `Down` reaches only the instance that set the monitor: one left
    /// queued for a crashed predecessor (the mailbox outlives instances),
    /// or for a monitor released since, is dropped unhandled.
    pub fn monitor(&mut self, target: impl Into<ProcessRef>) -> MonitorRef {
        let target = target.into();
        let reference = MonitorRef(self.next_monitor);
        self.next_monitor += 1;
        let watcher = Arc::downgrade(&self.mailbox);
        let hook = Box::new(move |down: &Down| {
            if let Some(watcher) = watcher.upgrade() {
                watcher.push_system(SystemMessage::Down(down.clone()));
            }
        });
        match target.inner.add_exit_hook(hook) {
            Ok(key) => {
                self.monitors.insert(
                    reference,
                    (target.id(), Arc::downgrade(&target.inner), Some(key)),
                );
            }
            Err((hook, reason)) => {
                self.monitors.insert(
                    reference,
                    (target.id(), Arc::downgrade(&target.inner), None),
                );
                hook(&Down {
                    process: target.id(),
                    reason,
                });
            }
        }
        reference
    }

    /// The number of monitors this instance holds whose `Down` it has not
    /// handled yet.
    pub fn monitor_count(&self) -> usize {
        self.monitors.len()
    }

    /// Releases a monitor; false when it already fired or was released.
    pub fn demonitor(&mut self, monitor: MonitorRef) -> bool {
        match self.monitors.remove(&monitor) {
            Some((_, target, Some(key))) => target
                .upgrade()
                .is_some_and(|target| target.remove_exit_hook(key)),
            Some((_, _, None)) | None => false,
        }
    }
}

impl<A: Actor> Context<A> {
    /// Forgets the monitors of a process whose `Down` has arrived; false
    /// when this instance holds none, so the `Down` is not its own (it was
    /// queued for a crashed predecessor, or for a monitor released since)
    /// and is dropped unhandled.
    pub(super) fn forget_monitors_of(&mut self, process: ProcessId) -> bool {
        let before = self.monitors.len();
        self.monitors.retain(|_, (target, _, _)| *target != process);
        self.monitors.len() < before
    }
}

impl<A: Actor> Drop for Context<A> {
    fn drop(&mut self) {
        for (_, (_, target, key)) in self.monitors.drain() {
            if let (Some(target), Some(key)) = (target.upgrade(), key) {
                target.remove_exit_hook(key);
            }
        }
    }
}
