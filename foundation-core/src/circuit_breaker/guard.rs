//! Running the protected operation on the caller's task, guarded against
//! panics and hangs.
//!
//! The operation is polled in place, inside the caller's future: nothing is
//! spawned, so it may borrow from the caller and need not be `Send`. Each
//! poll runs under `catch_unwind`, so a panic becomes an outcome instead of
//! unwinding through the breaker. The timeout timer is armed only when the
//! operation first returns `Pending`; an operation that completes on its
//! first poll (a cache hit, a ready value) pays for no timer and needs no
//! runtime.
//!
//! This module is not for deciding what an outcome means for the breaker
//! (see `machine.rs`).

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use foundation_error::{Error, ErrorCode, panic_message};
use tokio::time::Sleep;

/// How a guarded operation ended.
pub(crate) enum Guarded<T> {
    /// It returned, with its value or its own error.
    Finished(Result<T, Error>),
    /// It panicked, with this message.
    Panicked(String),
    /// It was still waiting when the timeout passed.
    TimedOut,
    /// It had to wait, but no tokio timer was available to bound the wait.
    NoTimer(Error),
}

/// Polls `operation` until it finishes, panics, or has waited `timeout`
/// (measured from the first time it returns `Pending`).
pub(crate) async fn run_guarded<T, F>(operation: F, timeout: Duration) -> Guarded<T>
where
    F: Future<Output = Result<T, Error>>,
{
    let mut operation = pin!(operation);
    // Boxed, so that the call's future stays small when no timer is armed.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(move |context| {
        match catch_unwind(AssertUnwindSafe(|| operation.as_mut().poll(context))) {
            Ok(Poll::Ready(result)) => return Poll::Ready(Guarded::Finished(result)),
            Ok(Poll::Pending) => {}
            Err(payload) => return Poll::Ready(Guarded::Panicked(panic_message(payload.as_ref()))),
        }
        let sleep = match &mut timer {
            Some(sleep) => sleep,
            None => match arm(timeout) {
                Ok(sleep) => timer.insert(Box::pin(sleep)),
                Err(error) => return Poll::Ready(Guarded::NoTimer(error)),
            },
        };
        match catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(context))) {
            Ok(Poll::Ready(())) => Poll::Ready(Guarded::TimedOut),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Guarded::NoTimer(timers_disabled())),
        }
    })
    .await
}

fn arm(timeout: Duration) -> Result<Sleep, Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            "a circuit breaker call that waits needs a tokio runtime for its timeout",
        ));
    }
    // A runtime built without `enable_time` panics here or on first poll.
    catch_unwind(|| tokio::time::sleep(timeout)).map_err(|_| timers_disabled())
}

fn timers_disabled() -> Error {
    Error::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        "a circuit breaker call that waits needs tokio's timers (enable_time) for its timeout",
    )
}
