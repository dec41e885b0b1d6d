//! The TaskAgent's data: tasks as submitted ([`Task`]), as queued and
//! stored ([`TaskRecord`]), as handed to the application ([`TaskRun`]),
//! the counters and the persisted state with its schema version.
//!
//! This module is not the agent's behaviour (see `task::agent`).

use std::collections::VecDeque;
use std::time::Duration;

use foundation_persist::Record;
use serde::{Deserialize, Serialize};

/// The default task timeout: 30 s.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest task timeout: 1 s.
pub const MIN_TASK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a failed attempt is retried by default (infrastructure errors
/// only).
pub const DEFAULT_RETRIES: u32 = 3;
/// The longest task id, type or idempotency key.
pub const MAX_TASK_ID_BYTES: usize = 256;

/// A task's priority: higher goes to the front of the queue (after the
/// tasks of the same priority already queued).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Priority {
    /// Behind every other task.
    Low,
    /// The default.
    #[default]
    Normal,
    /// In front of normal and low tasks.
    High,
}

/// A task as submitted (also the JSON parameters of the `submit` action).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique among the agent's queued and running tasks.
    pub id: String,
    /// What kind of work it is; the handler dispatches on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// The work's input.
    #[serde(default)]
    pub input: serde_json::Value,
    /// Its priority (default normal).
    #[serde(default)]
    pub priority: Priority,
    /// How long one attempt may run, in milliseconds (default 30,000,
    /// at least 1,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often a failed attempt is retried (infrastructure errors only;
    /// default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The key the handler deduplicates by; defaults to the task id.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

fn default_timeout_ms() -> u64 {
    duration_ms(DEFAULT_TASK_TIMEOUT)
}

fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Task {
    /// A normal-priority task with the default timeout and retries.
    pub fn new(id: impl Into<String>, kind: impl Into<String>, input: serde_json::Value) -> Task {
        Task {
            id: id.into(),
            kind: kind.into(),
            input,
            priority: Priority::Normal,
            timeout_ms: default_timeout_ms(),
            retries: DEFAULT_RETRIES,
            idempotency_key: None,
        }
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Task {
        self.priority = priority;
        self
    }

    /// Sets the timeout of one attempt.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Task {
        self.timeout_ms = duration_ms(timeout);
        self
    }

    /// Sets how often a failed attempt is retried.
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Task {
        self.retries = retries;
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Task {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A task as queued and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task id.
    pub id: String,
    /// The task type.
    pub kind: String,
    /// The input, as JSON text (the stored form is not self-describing).
    pub input_json: String,
    /// The priority.
    pub priority: Priority,
    /// The timeout of one attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// The idempotency key (the task id unless given).
    pub idempotency_key: String,
    /// When it was queued (wall clock, milliseconds since the Unix epoch).
    pub queued_at_ms: u64,
}

/// A task that was handed to the handler and has not finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    /// The task.
    pub task: TaskRecord,
    /// This run's number: a completion of an older run (from before a
    /// restart) is ignored.
    pub run: u64,
    /// When this run started (wall clock, milliseconds since the Unix
    /// epoch).
    pub started_at_ms: u64,
}

/// What the handler receives.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    /// The task id.
    pub id: String,
    /// The task type.
    pub kind: String,
    /// The input.
    pub input: serde_json::Value,
    /// The key to deduplicate by: the same for every run and attempt of
    /// the task, also after a crash.
    pub idempotency_key: String,
    /// The attempt within this run, from 1.
    pub attempt: u32,
}

/// The agent's state of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskStatus {
    /// Nothing is running.
    #[default]
    Idle,
    /// Tasks are running.
    Processing,
    /// Not starting tasks until resumed (by command, or after too many
    /// consecutive task errors).
    Paused,
    /// Not starting tasks because their work could not be started (the
    /// task supervisor is shut down) until resumed.
    Error,
}

/// Counters of finished tasks; durations cover every attempt of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskCounters {
    /// Tasks that succeeded.
    pub processed: u64,
    /// Tasks that failed (after their retries).
    pub failed: u64,
    /// The sum of all durations, in microseconds.
    pub total_duration_us: u64,
    /// The shortest duration, in microseconds.
    pub fastest_us: Option<u64>,
    /// The longest duration, in microseconds.
    pub slowest_us: Option<u64>,
}

impl TaskCounters {
    /// The mean duration of finished tasks.
    pub fn average(&self) -> Option<Duration> {
        let finished = self.processed + self.failed;
        (finished > 0).then(|| Duration::from_micros(self.total_duration_us / finished))
    }

    pub(crate) fn record(&mut self, succeeded: bool, duration: Duration) {
        if succeeded {
            self.processed += 1;
        } else {
            self.failed += 1;
        }
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.total_duration_us = self.total_duration_us.saturating_add(micros);
        self.fastest_us = Some(
            self.fastest_us
                .map_or(micros, |fastest| fastest.min(micros)),
        );
        self.slowest_us = Some(
            self.slowest_us
                .map_or(micros, |slowest| slowest.max(micros)),
        );
    }
}

/// The persisted state of a TaskAgent (schema version 1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskAgentState {
    /// Queued tasks, front first.
    pub queue: VecDeque<TaskRecord>,
    /// Tasks handed to the handler that have not finished.
    pub in_progress: Vec<InProgress>,
    /// Finished-task counters.
    pub counters: TaskCounters,
    /// The state of work.
    pub status: TaskStatus,
    /// Why the agent is paused or in error, if it is.
    pub status_reason: Option<String>,
    /// Task errors since the last success or resume.
    pub consecutive_errors: u32,
    /// The next run number.
    pub next_run: u64,
}

impl Record for TaskAgentState {
    const TYPE_TAG: &'static str = "jido_task_agent_state";
    const SCHEMA_VERSION: u32 = 1;
}

/// What `status` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskAgentStatus {
    /// The state of work.
    pub status: TaskStatus,
    /// Why paused or in error.
    pub status_reason: Option<String>,
    /// Queued tasks.
    pub queued: usize,
    /// The ids of the running tasks.
    pub in_progress: Vec<String>,
    /// Finished-task counters.
    pub counters: TaskCounters,
    /// The mean duration in milliseconds.
    pub average_duration_ms: Option<f64>,
    /// Task errors since the last success or resume.
    pub consecutive_errors: u32,
}

/// What `submit` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubmitReceipt {
    /// The task's place in the queue, from 0 (the front).
    pub position: usize,
    /// The queue's length after the submit.
    pub queued: usize,
}
