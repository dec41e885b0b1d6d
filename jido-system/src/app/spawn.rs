//! The only places jido-system starts tokio tasks: work under the
//! application's task supervisor, the unsupervised fallback that the
//! flag `enforce_supervised_tasks` (off) permits, the waiter of a step
//! parked until the task supervisor is back (flag on), and the long-lived
//! services a part of the tree owns itself (the HTTP server, the agents'
//! flag watcher, the deployment monitor's driver).
//!
//! This module is not for deciding which to use; the callers read the flag.

use std::future::Future;

use foundation_core::{TaskHandle, TaskSupervisor};
use foundation_error::Result;

/// Runs `future` under `tasks`; fails with `shut_down` while the task
/// supervisor is stopped (its child is restarting).
///
/// # Errors
///
/// The task supervisor's errors.
pub(crate) fn supervised<F>(tasks: &TaskSupervisor, future: F) -> Result<TaskHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tasks.spawn(future)
}

/// Runs `future` as a plain tokio task that no supervisor owns: the legacy
/// path, taken only when `enforce_supervised_tasks` is off and the task
/// supervisor refused the work. The caller counts and logs it.
pub(crate) fn unsupervised<F>(future: F) -> tokio::task::AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(future).abort_handle()
}

/// Runs `future`, a parked step's waiter, as a plain tokio task: it waits
/// (bounded) for the stopped task supervisor and hands the step to it; it
/// runs no step work itself. Aborted with the step.
pub(crate) fn parked<F>(future: F) -> tokio::task::AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(future).abort_handle()
}

/// Runs `future`, a long-lived service of one part of the application
/// tree (the HTTP server, the agents' flag watcher, the deployment
/// monitor's driver), as a tokio task that the part owns: the part aborts
/// it when it stops or is dropped, and the part's restart starts it again.
/// It does not depend on the `tasks` child, so a restart of that child
/// alone (a crash, or `terminate_child` then `restart_child` by hand)
/// leaves it running. Not for work (steps, actions, requests' side
/// effects): that runs under the task supervisor ([`supervised`]).
pub(crate) fn owned<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}
