//! The test kit (cargo feature `test-util`): bounded, event-driven waits
//! for tests of actors and supervisors.
//!
//! Everything here works under `#[tokio::test(start_paused = true)]`, and
//! every wait has a bound and fails with a `timeout` error naming what it
//! waited for, instead of hanging. Polling waits re-check on every
//! millisecond of tokio time, which paused time skips through instantly.
//!
//! ```
//! use std::time::Duration;
//! use foundation_core::testkit::wait_for;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let started = tokio::time::Instant::now();
//! wait_for(|| started.elapsed() >= Duration::from_secs(3), Duration::from_secs(5))
//!     .await
//!     .unwrap();
//! assert!(wait_for(|| false, Duration::from_secs(1)).await.is_err());
//! # }
//! ```

use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::{Actor, ActorRef, ExitReason, ProcessStatus, SupervisorEvent};

/// The default bound of the kit's waits: 1 s, as the original's helpers.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

const POLL: Duration = Duration::from_millis(1);

fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorCode::TIMEOUT,
        format!("test kit: {what} did not happen within {timeout:?}"),
    )
}

/// Waits until `condition` holds, checking every millisecond of tokio
/// time, at most `timeout`.
pub async fn wait_for(mut condition: impl FnMut() -> bool, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(timed_out("the condition", timeout));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the asynchronous `condition` holds (a call to an actor, a
/// store read), checking every millisecond of tokio time, at most
/// `timeout`. A check still running at the deadline is given until it
/// answers, but the wait as a whole stays bounded by `timeout` plus one
/// check: each check runs under the time left.
///
/// ```
/// # use std::time::Duration;
/// # use std::sync::Arc;
/// # use std::sync::atomic::{AtomicU32, Ordering};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), foundation_error::Error> {
/// let polls = Arc::new(AtomicU32::new(0));
/// foundation_core::testkit::wait_until(
///     || {
///         let polls = Arc::clone(&polls);
///         async move { polls.fetch_add(1, Ordering::AcqRel) >= 3 }
///     },
///     Duration::from_secs(1),
/// )
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn wait_until<F, Fut>(mut condition: F, timeout: Duration) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(true) = tokio::time::timeout(left.max(POLL), condition()).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(timed_out("the condition", timeout));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Returns once every message sent to `actor` before this call has been
/// handled (a barrier through its mailbox).
pub async fn sync<A: Actor>(actor: &ActorRef<A>) -> Result<(), Error> {
    actor.inspect_timeout(|_| (), DEFAULT_WAIT).await
}

/// Waits until the actor's state satisfies `predicate`, at most `timeout`.
pub async fn wait_for_state<A, P>(
    actor: &ActorRef<A>,
    predicate: P,
    timeout: Duration,
) -> Result<(), Error>
where
    A: Actor,
    P: Fn(&A) -> bool + Clone + Send + 'static,
{
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let check = predicate.clone();
        // While the actor restarts, inspections fail; keep waiting.
        if let Ok(true) = actor.inspect_timeout(check, remaining).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(timed_out("the actor state", timeout));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Crashes the actor on purpose (an abnormal stop, so its supervisor
/// restarts it) and waits until its next instance is running; returns the
/// new incarnation.
pub async fn crash_and_wait_restart<A: Actor>(
    actor: &ActorRef<A>,
    timeout: Duration,
) -> Result<u64, Error> {
    let before = actor.incarnation();
    let reason = ExitReason::Error(Error::system("crashed on purpose by the test kit"));
    if !actor.stop(reason) {
        return Err(Error::new(
            ErrorCode::INVALID_STATE_TRANSITION,
            "test kit: the actor is not running, so it cannot be crashed",
        ));
    }
    wait_for(
        || actor.incarnation() > before && actor.status() == ProcessStatus::Running,
        timeout,
    )
    .await?;
    Ok(actor.incarnation())
}

/// Collects supervisor events, so a test can wait for and assert on them.
///
/// ```
/// # use std::time::Duration;
/// # use foundation_core::{Supervisor, SupervisorEventKind, testkit::EventCollector};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), foundation_error::Error> {
/// let app = Supervisor::builder("app").start().await?;
/// let mut events = EventCollector::new(&app.event_bus());
/// // ... crash something ...
/// let restarts = events.count(|event| matches!(event.kind, SupervisorEventKind::ChildRestarted { .. }));
/// assert_eq!(restarts, 0);
/// # Ok(())
/// # }
/// ```
pub struct EventCollector {
    receiver: broadcast::Receiver<SupervisorEvent>,
    events: Vec<SupervisorEvent>,
    lagged: u64,
}

impl EventCollector {
    /// Starts collecting events sent on `bus` from now on.
    pub fn new(bus: &crate::EventBus) -> EventCollector {
        EventCollector {
            receiver: bus.subscribe(),
            events: Vec::new(),
            lagged: 0,
        }
    }

    fn drain(&mut self) {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => self.events.push(event),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => self.lagged += missed,
                Err(_) => return,
            }
        }
    }

    /// Every event collected so far.
    pub fn events(&mut self) -> &[SupervisorEvent] {
        self.drain();
        &self.events
    }

    /// How many collected events match.
    pub fn count(&mut self, matches: impl Fn(&SupervisorEvent) -> bool) -> usize {
        self.drain();
        self.events.iter().filter(|event| matches(event)).count()
    }

    /// How many events were lost because the collector fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    /// Waits until the collected events satisfy `predicate`, at most
    /// `timeout`.
    pub async fn wait_for(
        &mut self,
        predicate: impl Fn(&[SupervisorEvent]) -> bool,
        timeout: Duration,
    ) -> Result<&[SupervisorEvent], Error> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if predicate(&self.events) {
                return Ok(&self.events);
            }
            match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                Ok(Ok(event)) => self.events.push(event),
                Ok(Err(RecvError::Lagged(missed))) => self.lagged += missed,
                Ok(Err(RecvError::Closed)) | Err(_) => {
                    return if predicate(&self.events) {
                        Ok(&self.events)
                    } else {
                        Err(timed_out("the expected supervisor events", timeout))
                    };
                }
            }
        }
    }
}
