//! The signal router: routes signals to subscribed handler actors, never
//! waiting on a slow one, and reports what happened to every delivery.
//!
//! Each subscription has its own bounded queue and a forwarder task (under
//! the router's task supervisor) that hands queued signals to the handler's
//! mailbox, so `route` only ever does non-blocking queue pushes. A queue
//! past the warning mark logs once; a full queue drops and counts. Each
//! subscription is an exit hook on its handler: when the handler's process
//! ends, the subscription and its forwarder go, and nothing is left
//! behind.
//!
//! How long a `route_sync` took is measured on the router's clock
//! ([`SignalRouterBuilder::clock`]); the waits themselves sleep on tokio's
//! timer. This module is not for building signals (see `event.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use foundation_error::clock::{self, Clock, SharedClock};
use foundation_error::{Error, ErrorCode};
use tokio::sync::{mpsc, oneshot};

use super::event::Signal;
use super::pattern::Pattern;
use crate::actor::SendErrorKind;
use crate::process::{Down, ProcessId, ProcessRef};
use crate::{Actor, ActorRef, TaskSupervisor};

/// Counter: signal-handler pairs matched by `route` and `route_sync`.
pub const SIGNALS_ROUTED_TOTAL: &str = "foundation_signals_routed_total";
/// Counter: signals handed to a handler's mailbox.
pub const SIGNALS_DELIVERED_TOTAL: &str = "foundation_signals_delivered_total";
/// Counter: signals dropped because a handler's queue was full.
pub const SIGNALS_DROPPED_TOTAL: &str = "foundation_signals_dropped_total";
/// Counter: signals that could not be handed over (handler gone, or its
/// mailbox stayed full past the send timeout).
pub const SIGNALS_FAILED_TOTAL: &str = "foundation_signals_failed_total";

/// The default queue length at which a handler's queue drops signals.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// The default queue length at which a warning is logged.
pub const DEFAULT_WARN_QUEUE: usize = 5_000;
/// The default time each handler has to acknowledge in `route_sync`.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// The default bound on a whole `route_sync`.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `route_sync` waits, after a handler dropped a signal without
/// acknowledging it, to see whether that was the handler dying (a crash
/// drops the signal a moment before the instance is seen to exit).
const CRASH_GRACE: Duration = Duration::from_millis(100);

/// How a delivery ended, as its handler reported it.
#[derive(Debug)]
enum AckKind {
    Acked,
    Dropped,
}

/// Identifies a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

/// A signal handed to a handler. Call [`Delivery::ack`] once handled;
/// `route_sync` waits for it. Dropping it without acknowledging reports
/// the delivery as not acknowledged (or, if the handler died, as such).
#[derive(Debug)]
pub struct Delivery {
    signal: Arc<Signal>,
    ack: Option<oneshot::Sender<AckKind>>,
}

impl Delivery {
    /// The signal.
    pub fn signal(&self) -> &Signal {
        &self.signal
    }

    /// Whether the sender waits for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Acknowledges the signal (a no-op for `route`'s deliveries).
    pub fn ack(mut self) {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(AckKind::Acked);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(AckKind::Dropped);
        }
    }
}

/// What `route` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteReport {
    /// Subscriptions whose pattern matched.
    pub matched: usize,
    /// Accepted into a handler's queue.
    pub delivered: usize,
    /// Dropped: the handler's queue was full.
    pub dropped: usize,
    /// Failed: the handler had already ended.
    pub failed: usize,
}

/// How one handler fared in `route_sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckOutcome {
    /// It acknowledged in time.
    Acknowledged,
    /// It did not acknowledge within its timeout (or the overall one).
    TimedOut,
    /// It handled (or dropped) the signal without acknowledging.
    NotAcknowledged,
    /// It died before acknowledging (or had ended already).
    HandlerDied,
    /// Its queue was full: the signal was dropped.
    Dropped,
}

/// What `route_sync` did, per handler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRouteReport {
    /// Each matched subscription, its handler, and how it fared, in
    /// subscription order.
    pub outcomes: Vec<(SubscriptionId, ProcessId, AckOutcome)>,
    /// How long the whole `route_sync` took, by the router's clock.
    pub elapsed: Duration,
}

impl SyncRouteReport {
    /// How many handlers had this outcome.
    pub fn count(&self, outcome: AckOutcome) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, _, actual)| *actual == outcome)
            .count()
    }

    /// How many handlers acknowledged.
    pub fn acknowledged(&self) -> usize {
        self.count(AckOutcome::Acknowledged)
    }
}

/// Running totals of one router, for in-process health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Signal-handler pairs matched.
    pub routed: u64,
    /// Signals handed to handler mailboxes.
    pub delivered: u64,
    /// Signals dropped on full queues.
    pub dropped: u64,
    /// Signals that could not be handed over.
    pub failed: u64,
}

#[derive(Default)]
struct Stats {
    routed: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    fn add(&self, counter: &AtomicU64, metric: &'static str, router: &Arc<str>, amount: u64) {
        if amount > 0 {
            counter.fetch_add(amount, Ordering::Relaxed);
            metrics::counter!(metric, "router" => router.to_string()).increment(amount);
        }
    }
}

/// Configures a [`SignalRouter`].
#[derive(Debug, Clone)]
pub struct SignalRouterBuilder {
    name: Arc<str>,
    max_queue: usize,
    warn_queue: usize,
    clock: Option<SharedClock>,
}

impl SignalRouterBuilder {
    /// Sets the queue length at which signals are dropped (default 10,000).
    pub fn max_queue(&mut self, max_queue: usize) -> &mut Self {
        self.max_queue = max_queue;
        self
    }

    /// Sets the queue length at which a warning is logged (default 5,000).
    pub fn warn_queue(&mut self, warn_queue: usize) -> &mut Self {
        self.warn_queue = warn_queue;
        self
    }

    /// Sets the clock `route_sync` measures its time on (default: the
    /// system clock, which follows paused tokio time). Waits for
    /// acknowledgements always sleep on tokio's timer.
    pub fn clock(&mut self, clock: impl Clock) -> &mut Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the router; fails on a zero queue or a warning mark above it.
    pub fn build(&self) -> Result<SignalRouter, Error> {
        if self.max_queue == 0 || self.warn_queue == 0 || self.warn_queue > self.max_queue {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a signal router needs 0 < warn_queue <= max_queue",
            )
            .with_context("max_queue", self.max_queue)
            .with_context("warn_queue", self.warn_queue));
        }
        Ok(SignalRouter {
            inner: Arc::new(RouterInner {
                tasks: TaskSupervisor::new(format!("signal-router-{}", self.name)),
                name: Arc::clone(&self.name),
                max_queue: self.max_queue,
                warn_queue: self.warn_queue,
                clock: self.clock.clone().unwrap_or_else(clock::system),
                routes: RwLock::new(Routes::default()),
                next_id: AtomicU64::new(0),
                stats: Arc::new(Stats::default()),
            }),
        })
    }
}

/// Routes signals to handler actors by type pattern. Cheap to clone.
///
/// A handler is an actor whose info messages can be made from a
/// [`Delivery`]:
///
/// ```
/// use foundation_core::signal::{Delivery, Signal, SignalRouter};
/// use foundation_core::{Actor, Context, spawn};
/// use foundation_error::Error;
///
/// struct Audit { seen: usize }
///
/// impl Actor for Audit {
///     type Args = ();
///     type Call = ();
///     type Reply = usize;
///     type Cast = ();
///     type Info = Delivery;
///     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Audit { seen: 0 }) }
///     async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<usize, Error> {
///         Ok(self.seen)
///     }
///     async fn handle_info(&mut self, delivery: Delivery, _ctx: &mut Context<Self>) -> Result<(), Error> {
///         self.seen += 1;
///         delivery.ack();
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let router = SignalRouter::new("main");
/// let audit = spawn::<Audit>(()).await?;
/// router.subscribe("agent.task.*", &audit)?;
///
/// let signal = Signal::new("agent.task.completed", "/agents/7", serde_json::json!({}))?;
/// let report = router.route_sync(signal).await;
/// assert_eq!(report.acknowledged(), 1);
/// assert_eq!(audit.call(()).await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SignalRouter {
    inner: Arc<RouterInner>,
}

struct RouterInner {
    name: Arc<str>,
    max_queue: usize,
    warn_queue: usize,
    clock: SharedClock,
    routes: RwLock<Routes>,
    next_id: AtomicU64,
    tasks: TaskSupervisor,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Routes {
    exact: HashMap<String, Vec<Arc<Subscription>>>,
    prefixes: Vec<Arc<Subscription>>,
    by_id: HashMap<SubscriptionId, Arc<Subscription>>,
}

struct Subscription {
    id: SubscriptionId,
    pattern: Pattern,
    handler: ProcessRef,
    queue: mpsc::Sender<Delivery>,
    hook: OnceLock<u64>,
    warned: AtomicBool,
}

impl Routes {
    fn insert(&mut self, subscription: Arc<Subscription>) {
        match &subscription.pattern {
            Pattern::Exact(exact) => self
                .exact
                .entry(exact.clone())
                .or_default()
                .push(Arc::clone(&subscription)),
            Pattern::Prefix(_) => self.prefixes.push(Arc::clone(&subscription)),
        }
        self.by_id.insert(subscription.id, subscription);
    }

    fn remove(&mut self, id: SubscriptionId) -> Option<Arc<Subscription>> {
        let subscription = self.by_id.remove(&id)?;
        match &subscription.pattern {
            Pattern::Exact(exact) => {
                if let Some(list) = self.exact.get_mut(exact) {
                    list.retain(|existing| existing.id != id);
                    if list.is_empty() {
                        self.exact.remove(exact);
                    }
                }
            }
            Pattern::Prefix(_) => self.prefixes.retain(|existing| existing.id != id),
        }
        Some(subscription)
    }

    fn matching(&self, signal_type: &str) -> Vec<Arc<Subscription>> {
        let mut found: Vec<Arc<Subscription>> = self
            .exact
            .get(signal_type)
            .map(|list| list.to_vec())
            .unwrap_or_default();
        found.extend(
            self.prefixes
                .iter()
                .filter(|subscription| subscription.pattern.matches(signal_type))
                .cloned(),
        );
        found.sort_by_key(|subscription| subscription.id);
        found
    }
}

enum Enqueued {
    Queued,
    Dropped,
    HandlerGone,
}

impl std::fmt::Debug for SignalRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalRouter")
            .field("name", &self.inner.name)
            .field("subscriptions", &self.subscription_count())
            .finish()
    }
}

impl SignalRouter {
    /// A router with the default queue limits.
    pub fn new(name: impl Into<Arc<str>>) -> SignalRouter {
        SignalRouter::builder(name)
            .build()
            .expect("the default limits are valid")
    }

    /// A builder, to change the queue limits.
    pub fn builder(name: impl Into<Arc<str>>) -> SignalRouterBuilder {
        SignalRouterBuilder {
            name: name.into(),
            max_queue: DEFAULT_MAX_QUEUE,
            warn_queue: DEFAULT_WARN_QUEUE,
            clock: None,
        }
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        // No user code runs under this lock.
        self.inner
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes `handler` to signals matching `pattern` (an exact type or
    /// a prefix ending in `*`). Fails on an invalid pattern, a handler
    /// whose process has ended, a router that was shut down, or outside a
    /// tokio runtime (the subscription's forwarder is a task).
    pub fn subscribe<A>(
        &self,
        pattern: &str,
        handler: &ActorRef<A>,
    ) -> Result<SubscriptionId, Error>
    where
        A: Actor,
        A::Info: From<Delivery>,
    {
        let pattern = Pattern::parse(pattern)?;
        let id = SubscriptionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (queue, receiver) = mpsc::channel(self.inner.max_queue);
        let forwarder = forward(
            handler.clone(),
            receiver,
            Arc::clone(&self.inner.stats),
            Arc::clone(&self.inner.name),
        );
        self.inner.tasks.spawn(forwarder)?;
        let subscription = Arc::new(Subscription {
            id,
            pattern,
            handler: handler.process(),
            queue,
            hook: OnceLock::new(),
            warned: AtomicBool::new(false),
        });
        self.inner
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Arc::clone(&subscription));
        let router = Arc::downgrade(&self.inner);
        let hook = Box::new(move |_: &Down| unsubscribe_on_exit(&router, id));
        match subscription.handler.inner.add_exit_hook(hook) {
            Ok(key) => {
                let _ = subscription.hook.set(key);
                Ok(id)
            }
            Err((_, reason)) => {
                self.remove(id);
                Err(Error::new(
                    ErrorCode::PROCESS_NOT_ALIVE,
                    format!("cannot subscribe: the handler has ended ({reason})"),
                ))
            }
        }
    }

    /// Removes a subscription; false when it is already gone.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        match self.remove(id) {
            Some(subscription) => {
                if let Some(key) = subscription.hook.get() {
                    subscription.handler.inner.remove_exit_hook(*key);
                }
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: SubscriptionId) -> Option<Arc<Subscription>> {
        self.inner
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// The number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.routes().by_id.len()
    }

    /// The number of running forwarders (one per live subscription, until
    /// it has drained).
    pub fn forwarder_count(&self) -> usize {
        self.inner.tasks.live_tasks()
    }

    /// Running totals.
    pub fn stats(&self) -> RouterStats {
        let stats = &self.inner.stats;
        RouterStats {
            routed: stats.routed.load(Ordering::Relaxed),
            delivered: stats.delivered.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
        }
    }

    /// The clock the router measures time on.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Queues `signal` for every matching handler, without waiting. A
    /// signal queued is delivered unless its handler ends first (then it
    /// counts as failed); there is no future to drop.
    pub fn route(&self, signal: Signal) -> RouteReport {
        let subscriptions = self.routes().matching(&signal.signal_type);
        let signal = Arc::new(signal);
        let mut report = RouteReport {
            matched: subscriptions.len(),
            ..RouteReport::default()
        };
        for subscription in &subscriptions {
            let delivery = Delivery {
                signal: Arc::clone(&signal),
                ack: None,
            };
            match self.enqueue(subscription, delivery) {
                Enqueued::Queued => report.delivered += 1,
                Enqueued::Dropped => report.dropped += 1,
                Enqueued::HandlerGone => report.failed += 1,
            }
        }
        self.count_route(report.matched, report.dropped, report.failed);
        report
    }

    /// Routes `signal` and waits for every handler to acknowledge it, each
    /// within 1 s and all within 5 s.
    ///
    /// # Cancel safety
    ///
    /// The signal is queued for every matching handler before the first
    /// await, so once the future has been polled, dropping it stops only
    /// the waiting: the handlers still receive and handle the signal, and
    /// their acknowledgements go nowhere. Dropped before its first poll,
    /// nothing was routed.
    pub async fn route_sync(&self, signal: Signal) -> SyncRouteReport {
        self.route_sync_with(signal, DEFAULT_ACK_TIMEOUT, DEFAULT_SYNC_TIMEOUT)
            .await
    }

    /// Routes `signal` and waits for every handler to acknowledge it, each
    /// within `ack_timeout` and all within `overall_timeout`.
    ///
    /// # Cancel safety
    ///
    /// As [`SignalRouter::route_sync`]'s: once polled, the signal has been
    /// queued for every handler; dropping the future stops only the wait.
    pub async fn route_sync_with(
        &self,
        signal: Signal,
        ack_timeout: Duration,
        overall_timeout: Duration,
    ) -> SyncRouteReport {
        let clock = &self.inner.clock;
        let started = clock.elapsed();
        let deadline = started.saturating_add(ack_timeout.min(overall_timeout));
        let subscriptions = self.routes().matching(&signal.signal_type);
        let signal = Arc::new(signal);
        let mut pending = Vec::with_capacity(subscriptions.len());
        let mut report = SyncRouteReport::default();
        let (mut dropped, mut failed) = (0, 0);
        for subscription in &subscriptions {
            let (ack, acknowledged) = oneshot::channel();
            let delivery = Delivery {
                signal: Arc::clone(&signal),
                ack: Some(ack),
            };
            let incarnation = subscription.handler.incarnation();
            let outcome = match self.enqueue(subscription, delivery) {
                Enqueued::Queued => {
                    pending.push((report.outcomes.len(), incarnation, acknowledged));
                    AckOutcome::TimedOut
                }
                Enqueued::Dropped => {
                    dropped += 1;
                    AckOutcome::Dropped
                }
                Enqueued::HandlerGone => {
                    failed += 1;
                    AckOutcome::HandlerDied
                }
            };
            report
                .outcomes
                .push((subscription.id, subscription.handler.id(), outcome));
        }
        self.count_route(subscriptions.len(), dropped, failed);
        // Every handler got its signal at the same moment, so waiting for
        // each in turn against the same deadline waits for all at once.
        for (index, incarnation, acknowledged) in pending {
            let remaining = deadline.saturating_sub(clock.elapsed());
            let outcome = match tokio::time::timeout(remaining, acknowledged).await {
                Ok(Ok(AckKind::Acked)) => AckOutcome::Acknowledged,
                Ok(Ok(AckKind::Dropped) | Err(_)) => {
                    let handler = &subscriptions[index].handler;
                    let grace = deadline.saturating_sub(clock.elapsed()).min(CRASH_GRACE);
                    if handler.wait_instance_change(incarnation, grace).await {
                        AckOutcome::HandlerDied
                    } else {
                        AckOutcome::NotAcknowledged
                    }
                }
                Err(_elapsed) => AckOutcome::TimedOut,
            };
            report.outcomes[index].2 = outcome;
        }
        report.elapsed = clock.elapsed().saturating_sub(started);
        report
    }

    fn count_route(&self, matched: usize, dropped: usize, failed: usize) {
        let stats = &self.inner.stats;
        let name = &self.inner.name;
        stats.add(&stats.routed, SIGNALS_ROUTED_TOTAL, name, matched as u64);
        stats.add(&stats.dropped, SIGNALS_DROPPED_TOTAL, name, dropped as u64);
        stats.add(&stats.failed, SIGNALS_FAILED_TOTAL, name, failed as u64);
    }

    fn enqueue(&self, subscription: &Subscription, delivery: Delivery) -> Enqueued {
        match subscription.queue.try_send(delivery) {
            Ok(()) => {
                let queued = self.inner.max_queue - subscription.queue.capacity();
                if queued >= self.inner.warn_queue {
                    if !subscription.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            router = %self.inner.name,
                            handler = %subscription.handler.id(),
                            pattern = %subscription.pattern,
                            queued,
                            "a signal handler is falling behind"
                        );
                    }
                } else if queued < self.inner.warn_queue / 2 {
                    subscription.warned.store(false, Ordering::Relaxed);
                }
                Enqueued::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => Enqueued::Dropped,
            Err(mpsc::error::TrySendError::Closed(_)) => Enqueued::HandlerGone,
        }
    }

    /// Removes every subscription and stops every forwarder.
    ///
    /// # Cancel safety
    ///
    /// Every subscription is removed and every forwarder aborted before the
    /// first await; the await only waits (at most a second) for the aborted
    /// forwarders to be gone. Dropping the future skips that wait; nothing
    /// is left half done.
    pub async fn shutdown(&self) {
        let ids: Vec<SubscriptionId> = self.routes().by_id.keys().copied().collect();
        for id in ids {
            self.unsubscribe(id);
        }
        self.inner.tasks.shutdown().await;
    }
}

impl Drop for RouterInner {
    /// Leaves no exit hook behind on handlers that outlive the router.
    fn drop(&mut self) {
        let routes =
            std::mem::take(&mut *self.routes.write().unwrap_or_else(PoisonError::into_inner));
        for subscription in routes.by_id.values() {
            if let Some(key) = subscription.hook.get() {
                subscription.handler.inner.remove_exit_hook(*key);
            }
        }
    }
}

fn unsubscribe_on_exit(router: &Weak<RouterInner>, id: SubscriptionId) {
    if let Some(router) = router.upgrade() {
        router
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// Hands queued signals to the handler, waiting for room in its mailbox.
async fn forward<A>(
    handler: ActorRef<A>,
    mut queue: mpsc::Receiver<Delivery>,
    stats: Arc<Stats>,
    router: Arc<str>,
) where
    A: Actor,
    A::Info: From<Delivery>,
{
    while let Some(delivery) = queue.recv().await {
        match handler.send_info(A::Info::from(delivery)).await {
            Ok(()) => stats.add(&stats.delivered, SIGNALS_DELIVERED_TOTAL, &router, 1),
            Err(error) if error.kind == SendErrorKind::Closed && !handler.is_alive() => {
                // The handler ended: this and everything still queued fail.
                queue.close();
                let mut lost = 1;
                while queue.try_recv().is_ok() {
                    lost += 1;
                }
                stats.add(&stats.failed, SIGNALS_FAILED_TOTAL, &router, lost);
                return;
            }
            // Held stopped by its supervisor, or full past the send timeout.
            Err(_refused) => stats.add(&stats.failed, SIGNALS_FAILED_TOTAL, &router, 1),
        }
    }
}
