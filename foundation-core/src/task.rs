//! Supervised tasks: futures spawned under a [`TaskSupervisor`], awaited
//! through a [`TaskHandle`].
//!
//! A task's panic is an error for whoever awaits it, never a crash of the
//! awaiting task. Tasks end with their supervisor (aborted on shutdown),
//! and spawning on a supervisor that was shut down is an error, never a
//! silent unsupervised spawn. The number of live tasks is observable. A
//! task supervisor can stand alone or be a child of a [`Supervisor`]
//! (see [`TaskSupervisor::child_spec`]), so that its tasks stop with the
//! tree.
//!
//! [`Supervisor`]: crate::Supervisor

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinError, JoinHandle};

use crate::{Actor, ChildSpec, Context, ExitReason};

/// How long shutdown waits for aborted tasks to be gone.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Spawns and owns supervised tasks. Cheap to clone; clones share the
/// tasks.
///
/// ```
/// use std::time::Duration;
/// use foundation_core::TaskSupervisor;
/// use foundation_error::ErrorCode;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), foundation_error::Error> {
/// let tasks = TaskSupervisor::new("work");
/// let answer = tasks.spawn(async { 6 * 7 })?;
/// assert_eq!(answer.await?, 42);
///
/// let crashed = tasks.spawn(async { panic!("bad input") })?;
/// let error = crashed.join_timeout(Duration::from_secs(1)).await.map(|()| ()).unwrap_err();
/// assert_eq!(error.code(), ErrorCode::PROCESS_CRASHED);
///
/// tasks.shutdown().await;
/// assert!(tasks.spawn(async {}).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskSupervisor {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    closed: AtomicBool,
    next_id: AtomicU64,
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    idle: Notify,
}

impl Inner {
    fn tasks(&self) -> MutexGuard<'_, HashMap<u64, AbortHandle>> {
        // No user code runs under this lock.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a task from its supervisor when the task ends, however it ends.
struct Registration {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut tasks = self.inner.tasks();
        tasks.remove(&self.id);
        let empty = tasks.is_empty();
        drop(tasks);
        if empty {
            self.inner.idle.notify_waiters();
        }
    }
}

impl std::fmt::Debug for TaskSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSupervisor")
            .field("name", &self.inner.name)
            .field("live_tasks", &self.live_tasks())
            .field("closed", &self.is_shut_down())
            .finish()
    }
}

impl TaskSupervisor {
    /// A running task supervisor named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> TaskSupervisor {
        TaskSupervisor {
            inner: Arc::new(Inner {
                name: name.into(),
                closed: AtomicBool::new(false),
                next_id: AtomicU64::new(0),
                tasks: Mutex::new(HashMap::new()),
                idle: Notify::new(),
            }),
        }
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Spawns `future` under this supervisor. Fails with `shut_down` after
    /// [`TaskSupervisor::shutdown`], and with `service_unavailable` outside
    /// a tokio runtime.
    pub fn spawn<F>(&self, future: F) -> Result<TaskHandle<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorCode::SERVICE_UNAVAILABLE,
                "spawning a task needs a running tokio runtime",
            )
        })?;
        // Holding the lock across the spawn: the task cannot deregister
        // before it is registered, and shutdown cannot miss it.
        let mut tasks = self.inner.tasks();
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorCode::SHUT_DOWN,
                format!("task supervisor {} is shut down", self.inner.name),
            ));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let registration = Registration {
            inner: Arc::clone(&self.inner),
            id,
        };
        let join = runtime.spawn(async move {
            let _registration = registration;
            future.await
        });
        tasks.insert(id, join.abort_handle());
        Ok(TaskHandle { join })
    }

    /// The number of tasks that have not finished.
    pub fn live_tasks(&self) -> usize {
        self.inner.tasks().len()
    }

    /// Whether [`TaskSupervisor::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Refuses new tasks, aborts the running ones, and waits (at most a
    /// second) until they are gone. Their awaiters get `cancelled`.
    ///
    /// # Cancel safety
    ///
    /// New tasks are refused and the running ones aborted before the first
    /// wait, so dropping the future only stops waiting for them to be gone.
    pub async fn shutdown(&self) {
        let aborts: Vec<AbortHandle> = {
            let tasks = self.inner.tasks();
            self.inner.closed.store(true, Ordering::Release);
            tasks.values().cloned().collect()
        };
        for abort in aborts {
            abort.abort();
        }
        let drained = async {
            loop {
                let notified = self.inner.idle.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if self.live_tasks() == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::warn!(
                supervisor = %self.inner.name,
                live = self.live_tasks(),
                "tasks still running after abort (blocking code?)"
            );
        }
    }

    /// A child spec running this task supervisor under a [`Supervisor`]:
    /// its tasks are shut down when the tree stops it. After a restart it
    /// accepts tasks again.
    ///
    /// [`Supervisor`]: crate::Supervisor
    pub fn child_spec(&self, id: impl Into<Arc<str>>) -> ChildSpec<TaskSupervisorActor> {
        ChildSpec::new(id, self.clone())
    }
}

/// A task supervisor as a supervised child (see
/// [`TaskSupervisor::child_spec`]).
pub struct TaskSupervisorActor {
    tasks: TaskSupervisor,
}

impl Actor for TaskSupervisorActor {
    type Args = TaskSupervisor;
    type Call = ();
    type Reply = usize;
    type Cast = ();
    type Info = ();

    async fn init(tasks: TaskSupervisor, _ctx: &mut Context<Self>) -> Result<Self, Error> {
        tasks.inner.closed.store(false, Ordering::Release);
        Ok(TaskSupervisorActor { tasks })
    }

    /// Replies with the number of live tasks.
    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<usize, Error> {
        Ok(self.tasks.live_tasks())
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Context<Self>) {
        self.tasks.shutdown().await;
    }
}

impl Drop for TaskSupervisorActor {
    /// A killed instance still takes its tasks with it.
    fn drop(&mut self) {
        let tasks = self.tasks.inner.tasks();
        self.tasks.inner.closed.store(true, Ordering::Release);
        for abort in tasks.values() {
            abort.abort();
        }
    }
}

/// Awaits a supervised task's result. Dropping it leaves the task running
/// under its supervisor.
#[derive(Debug)]
pub struct TaskHandle<T> {
    join: JoinHandle<T>,
}

impl<T> TaskHandle<T> {
    /// Waits at most `timeout` for the result; on timeout the task is
    /// aborted (nobody is left to receive its result) and the error is
    /// `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the handle, which detaches the task: it
    /// runs on under its supervisor, and its result is lost.
    pub async fn join_timeout(mut self, timeout: Duration) -> Result<T, Error> {
        match tokio::time::timeout(timeout, &mut self.join).await {
            Ok(result) => result.map_err(task_failure),
            Err(_) => {
                self.join.abort();
                Err(
                    Error::new(ErrorCode::TIMEOUT, "the task did not finish in time")
                        .with_context("timeout_ms", timeout.as_millis()),
                )
            }
        }
    }

    /// Aborts the task.
    pub fn abort(&self) {
        self.join.abort();
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join)
            .poll(cx)
            .map(|result| result.map_err(task_failure))
    }
}

fn task_failure(error: JoinError) -> Error {
    if error.is_cancelled() {
        return Error::new(ErrorCode::CANCELLED, "the task was aborted");
    }
    match error.try_into_panic() {
        Ok(payload) => {
            let message = crate::panic::panic_message(payload.as_ref());
            Error::new(
                ErrorCode::PROCESS_CRASHED,
                format!("the task panicked: {message}"),
            )
            .with_context("panic", message)
        }
        Err(error) => Error::system("the task failed").with_cause(error),
    }
}
