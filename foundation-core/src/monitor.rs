//! Monitors: a one-shot notification of the end of a process.
//!
//! A [`Monitor`] is a future that resolves to the [`Down`] of its process.
//! It registers one exit hook on the target; dropping the monitor removes
//! the hook, so a monitor can never leak. Exit hooks run in the order they
//! were registered, so a monitor set after a registry entry or a signal
//! subscription fires only after that entry is gone. Monitors follow the *process*
//! (see `process.rs`): a restart under a supervisor is not an end; the
//! process ends when it stops and will not be restarted.
//!
//! For monitors owned by an actor, delivering to its `handle_down`, see
//! [`Context::monitor`](crate::Context::monitor).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::sync::oneshot;

use crate::process::{Down, ExitReason, ProcessControl, ProcessId, ProcessRef};

/// Live monitors (and registry entries, which are monitors too) across the
/// OS process: the number behind [`live_monitors`] and the
/// [`MONITORS_LIVE`](crate::metrics::MONITORS_LIVE) gauge.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The number of live monitors across this OS process: [`Monitor`]s,
/// actors' monitors ([`Context::monitor`](crate::Context::monitor)),
/// registry entries and signal subscriptions that watch a process, minus
/// those that fired or were dropped. A leak test reads it before and after
/// (with nothing else monitoring meanwhile).
///
/// ```standalone_crate
/// use foundation_core::{Actor, Context, ExitReason, live_monitors, spawn};
/// use foundation_error::Error;
///
/// struct Idle;
/// impl Actor for Idle {
///     type Args = ();
///     type Call = ();
///     type Reply = ();
///     type Cast = ();
///     type Info = ();
///     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Idle) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let before = live_monitors();
/// let idle = spawn::<Idle>(()).await?;
/// let monitor = idle.monitor();
/// assert_eq!(live_monitors(), before + 1);
/// idle.stop(ExitReason::Normal);
/// monitor.await;
/// assert_eq!(live_monitors(), before);
/// # Ok(())
/// # }
/// ```
pub fn live_monitors() -> usize {
    LIVE.load(Ordering::Acquire)
}

/// `count` monitors were registered.
pub(crate) fn monitors_added(count: usize) {
    LIVE.fetch_add(count, Ordering::AcqRel);
    metrics::gauge!(crate::metrics::MONITORS_LIVE).increment(count as f64);
}

/// `count` monitors fired or were removed.
pub(crate) fn monitors_removed(count: usize) {
    if count > 0 {
        LIVE.fetch_sub(count, Ordering::AcqRel);
        metrics::gauge!(crate::metrics::MONITORS_LIVE).decrement(count as f64);
    }
}

/// A one-shot notification of a process's end. Await it (or
/// [`Monitor::wait_timeout`]); drop it to stop monitoring.
///
/// ```
/// use foundation_core::{Actor, Context, ExitReason, spawn};
/// use foundation_error::Error;
///
/// struct Idle;
/// impl Actor for Idle {
///     type Args = ();
///     type Call = ();
///     type Reply = ();
///     type Cast = ();
///     type Info = ();
///     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Idle) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let idle = spawn::<Idle>(()).await?;
/// let monitor = idle.monitor();
/// assert_eq!(idle.monitor_count(), 1);
/// idle.stop(ExitReason::Normal);
/// let down = monitor.await;
/// assert!(down.reason.is_normal());
/// assert_eq!(idle.monitor_count(), 0);
/// # Ok(())
/// # }
/// ```
#[must_use = "a monitor that is dropped at once monitors nothing: await it or keep it"]
pub struct Monitor {
    process: ProcessId,
    receiver: oneshot::Receiver<Down>,
    target: Weak<dyn ProcessControl>,
    key: Option<u64>,
}

impl Monitor {
    /// Monitors `target`. A target that already ended resolves at once
    /// with its final reason.
    pub fn new(target: &ProcessRef) -> Monitor {
        let (sender, receiver) = oneshot::channel();
        let hook = Box::new(move |down: &Down| {
            // The monitor may have been dropped meanwhile; then nobody waits.
            let _ = sender.send(down.clone());
        });
        let key = match target.inner.add_exit_hook(hook) {
            Ok(key) => Some(key),
            Err((hook, reason)) => {
                hook(&Down {
                    process: target.id(),
                    reason,
                });
                None
            }
        };
        Monitor {
            process: target.id(),
            receiver,
            target: Arc::downgrade(&target.inner),
            key,
        }
    }

    /// The monitored process.
    pub fn process(&self) -> ProcessId {
        self.process
    }

    /// Waits at most `timeout` for the end of the process.
    pub async fn wait_timeout(self, timeout: Duration) -> Result<Down, Error> {
        let process = self.process;
        tokio::time::timeout(timeout, self).await.map_err(|_| {
            Error::new(
                ErrorCode::TIMEOUT,
                format!("process {process} did not end in time"),
            )
        })
    }
}

impl Future for Monitor {
    type Output = Down;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Down> {
        let process = self.process;
        match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Ready(Ok(down)) => {
                self.key = None;
                Poll::Ready(down)
            }
            // The hook was dropped without running: the target's memory is
            // gone, which only happens once it has ended.
            Poll::Ready(Err(_)) => {
                self.key = None;
                Poll::Ready(Down {
                    process,
                    reason: ExitReason::Killed,
                })
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let (Some(key), Some(target)) = (self.key.take(), self.target.upgrade()) {
            target.remove_exit_hook(key);
        }
    }
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("process", &self.process)
            .finish()
    }
}
