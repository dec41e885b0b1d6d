//! What callers see of a workflow: its status, each step's state, and the
//! filters of a listing.
//!
//! This module is not for the stored forms (see `record`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Where a workflow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkflowStatus {
    /// Accepted; its process has not run a step yet.
    Pending,
    /// Steps are running.
    Running,
    /// Every running step is waiting (a durable delay, a signal, a retry's
    /// backoff).
    Waiting,
    /// Every step succeeded.
    Completed,
    /// A step failed; compensations have run.
    Failed,
    /// Cancelled; compensations have run.
    Cancelled,
    /// Failed or cancelled; compensations are running.
    Compensating,
}

impl WorkflowStatus {
    /// Every status.
    pub const ALL: [WorkflowStatus; 7] = [
        WorkflowStatus::Pending,
        WorkflowStatus::Running,
        WorkflowStatus::Waiting,
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
        WorkflowStatus::Compensating,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Pending => "pending",
            WorkflowStatus::Running => "running",
            WorkflowStatus::Waiting => "waiting",
            WorkflowStatus::Completed => "completed",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
            WorkflowStatus::Compensating => "compensating",
        }
    }

    /// Whether the workflow has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowStatus::Completed | WorkflowStatus::Failed | WorkflowStatus::Cancelled
        )
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            WorkflowStatus::Pending => 0,
            WorkflowStatus::Running => 1,
            WorkflowStatus::Waiting => 2,
            WorkflowStatus::Completed => 3,
            WorkflowStatus::Failed => 4,
            WorkflowStatus::Cancelled => 5,
            WorkflowStatus::Compensating => 6,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<WorkflowStatus> {
        WorkflowStatus::ALL
            .into_iter()
            .find(|status| status.code() == code)
    }
}

impl std::fmt::Display for WorkflowStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// An attempt is running (or, after a crash, will run again).
    Running,
    /// Waiting for a retry's backoff.
    Retrying,
    /// Succeeded.
    Completed,
    /// Failed for good.
    Failed,
    /// An at-most-once step that was running during a crash.
    Interrupted,
}

/// One task's state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepView {
    /// The task's id.
    pub id: String,
    /// Its path in the definition.
    pub path: String,
    /// Its status.
    pub status: StepStatus,
    /// Attempts started (re-runs after a crash included).
    pub attempts: u32,
    /// Its output, once completed.
    pub output: Option<Value>,
    /// The last error, as `[code name] message`.
    pub error: Option<String>,
    /// Whether its compensation has run.
    pub compensated: bool,
}

/// A workflow as seen from outside.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkflowInfo {
    /// The id.
    pub id: String,
    /// The definition's name.
    pub name: String,
    /// The definition's version (its content hash).
    pub definition: String,
    /// The status.
    pub status: WorkflowStatus,
    /// The metadata given at start.
    pub metadata: Value,
    /// When it started (wall clock).
    pub started_at: SystemTime,
    /// Each task, in definition order (empty in listings).
    pub steps: Vec<StepView>,
}

impl WorkflowInfo {
    /// The outputs of completed tasks, by task id.
    pub fn results(&self) -> BTreeMap<String, Value> {
        self.steps
            .iter()
            .filter_map(|step| Some((step.id.clone(), step.output.clone()?)))
            .collect()
    }
}

pub(crate) fn time_from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// Which workflows a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub(crate) statuses: Vec<WorkflowStatus>,
    pub(crate) name: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<usize>,
}

impl ListFilter {
    /// Every workflow, first page.
    pub fn new() -> ListFilter {
        ListFilter::default()
    }

    /// Only workflows with this status (may be given several times).
    pub fn status(&mut self, status: WorkflowStatus) -> &mut Self {
        self.statuses.push(status);
        self
    }

    /// Only workflows of the definition named `name`.
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Only workflows whose id sorts after `id` (the `next` of the previous
    /// page).
    pub fn after(&mut self, id: impl Into<String>) -> &mut Self {
        self.after = Some(id.into());
        self
    }

    /// At most `limit` workflows (default 100, at most 1,000).
    pub fn limit(&mut self, limit: usize) -> &mut Self {
        self.limit = Some(limit);
        self
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkflowPage {
    /// The workflows, by id.
    pub workflows: Vec<WorkflowInfo>,
    /// Pass to [`ListFilter::after`] for the next page; `None` at the end.
    pub next: Option<String>,
}

/// One journal event of a workflow, for inspection and audits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The sequence number of the journal record holding it (the first
    /// is 1). Events journaled together (a step's result with the next
    /// steps' starts, say) are one record and share its number.
    pub sequence: u64,
    /// What happened: `started`, `step_started`, `step_succeeded`,
    /// `attempt_failed`, `step_failed`, `step_interrupted`, `timer_set`,
    /// `signal_received`, `cancel_requested`, `compensation_started`,
    /// `compensation_finished`, `finished`.
    pub kind: &'static str,
    /// The task's id, for events about one task.
    pub step: Option<String>,
    /// The attempt, for `step_started`.
    pub attempt: Option<u32>,
}
