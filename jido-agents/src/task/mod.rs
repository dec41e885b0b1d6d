//! The TaskAgent: a persistent queue of tasks run by an application's
//! [`TaskHandler`] under the task supervisor.
//!
//! The rules, as the original's: tasks have an id, a type, JSON input, a
//! priority (high to the front), a timeout (default 30 s, at least 1 s),
//! retries (default 3, infrastructure errors only, with the error crate's
//! backoff) and an idempotency key (the task id unless given). The queue
//! holds at most 1,000 tasks (`queue_full` beyond). The agent is idle,
//! processing, paused or in error; it pauses itself after 10 consecutive
//! task errors and resumes on command. It counts processed and failed
//! tasks and their average, fastest and slowest duration, also through the
//! metrics facade.
//!
//! Persisted (with [`AgentSpec::persistent`](crate::AgentSpec::persistent)):
//! the queue, the tasks in progress, the counters and the status. After a
//! crash the tasks that were in progress run again with the same
//! idempotency key (at least once), before the queue moves on; none is
//! dropped and none counted twice.
//!
//! Not here: task results are not stored (the handler stores what it
//! produces, idempotently by key), and a running task is not interrupted
//! by `pause` or `cancel`.

mod agent;
mod model;

pub use agent::{
    CancelTask, DEFAULT_MAX_QUEUE, DEFAULT_PAUSE_AFTER_ERRORS, PauseTasks, ResumeTasks, SubmitTask,
    TaskAgent, TaskAgentArgs, TaskHandler, TaskStatusQuery,
};
pub use model::{
    DEFAULT_RETRIES, DEFAULT_TASK_TIMEOUT, InProgress, MAX_TASK_ID_BYTES, MIN_TASK_TIMEOUT,
    Priority, SubmitReceipt, Task, TaskAgentState, TaskAgentStatus, TaskCounters, TaskRecord,
    TaskRun, TaskStatus,
};
