//! Waiting for a future on a plain OS thread, without a tokio runtime: the
//! machinery behind `call_blocking` and `ask_blocking`.
//!
//! The future is polled on the caller's thread with a waker that unparks
//! that thread; between polls the thread parks, at most until the
//! deadline. This is what tokio's own `blocking_recv` does, minus its
//! "not inside a runtime" check, and it costs one park/unpark per wait:
//! no runtime is entered, no timer is registered.
//!
//! The deadline is measured on the OS's monotonic clock: it bounds a
//! thread's park (a timer that wakes a thread), it is not logic that a
//! test drives with a paused or manual clock.
//!
//! This module is not for async callers: they use the `async` methods.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
}

/// The deadline `timeout` from now; `None` when it lies past the end of
/// time (wait as long as it takes).
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Polls `future` on this thread until it completes (`Some`) or `deadline`
/// has passed (`None`; the future is dropped).
pub(crate) fn wait_blocking<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut future = pin!(future);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Some(output);
            }
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    std::thread::park_timeout(deadline - now);
                }
                // A timeout past the end of time: wait as long as it takes.
                None => std::thread::park(),
            }
        }
    })
}
