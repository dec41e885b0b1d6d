//! Operation isolation: run a future on its own task, so that its panic or
//! its hang cannot take the caller down.
//!
//! This is the one place below foundation-core that spawns a task. The task
//! never outlives the call: it is aborted on timeout and when the caller
//! drops the returned future. For supervised, long-lived work use
//! foundation-core's task supervisor instead.

use std::future::Future;
use std::time::Duration;

use crate::code::ErrorCode;
use crate::error::Error;
use crate::scope;

/// The default isolation timeout, 5 s, as in the original system.
pub const DEFAULT_ISOLATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `future` on its own tokio task with a timeout.
///
/// - Its result (value or error) passes through unchanged.
/// - A panic becomes system/`isolated_operation_failed`, carrying the panic
///   message (in the message and as the `panic` context entry).
/// - A timeout becomes infrastructure/`timeout` and the task is aborted.
/// - Outside a tokio runtime the call fails with `service_unavailable`
///   instead of panicking.
///
/// The caller's error scope, if any, is carried into the task.
///
/// # Cancel safety
///
/// Dropping the returned future aborts the task at its next await point:
/// whatever `future` did up to there stays done, the rest never runs.
/// Whether it took effect is unknown to the caller, as for any dropped
/// future; make the operation idempotent or checkable if that matters.
///
/// ```
/// use std::time::Duration;
/// use foundation_error::{isolate, Error, ErrorCode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let crashed = isolate(Duration::from_secs(1), async {
///     if true { panic!("boom") }
///     Ok::<(), Error>(())
/// })
/// .await;
/// let error = crashed.unwrap_err();
/// assert_eq!(error.code(), ErrorCode::ISOLATED_OPERATION_FAILED);
/// assert_eq!(error.context_value("panic"), Some("boom"));
/// # }
/// ```
pub async fn isolate<T, F>(timeout: Duration, future: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            "isolate needs a running tokio runtime",
        )
    })?;
    let handle = match scope::current() {
        Some(context) => runtime.spawn(scope::scope(context, future)),
        None => runtime.spawn(future),
    };
    let mut task = AbortOnDrop(handle);
    match tokio::time::timeout(timeout, &mut task.0).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(Error::from(join_error)),
        Err(_elapsed) => {
            task.0.abort();
            Err(
                Error::new(ErrorCode::TIMEOUT, "the isolated operation timed out")
                    .with_context("timeout_ms", timeout.as_millis()),
            )
        }
    }
}

/// [`isolate`] with [`DEFAULT_ISOLATION_TIMEOUT`].
///
/// # Cancel safety
///
/// As [`isolate`]'s: dropping the future aborts the task.
pub async fn isolate_default<T, F>(future: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    isolate(DEFAULT_ISOLATION_TIMEOUT, future).await
}

/// Aborts the task when the caller stops waiting for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
