//! Catching panics in futures, so that a panicking handler becomes an exit
//! reason (or a classified error) instead of unwinding through the kernel.
//!
//! This only works with `panic = "unwind"` (the default); with
//! `panic = "abort"` a panic ends the OS process and nothing is caught.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

pub(crate) use foundation_error::panic_message;

/// Runs `future` to completion; a panic while polling it becomes
/// `Err(panic message)`. No allocation: the future is pinned in place.
pub(crate) async fn catch<F: Future>(future: F) -> Result<F::Output, String> {
    CatchUnwind {
        inner: pin!(future),
    }
    .await
}

struct CatchUnwind<'a, F> {
    inner: Pin<&'a mut F>,
}

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        // The actor's state may be left half-updated by a panic; the
        // instance is ended right after, so nothing observes it except
        // `terminate`, as in gen_server.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}
