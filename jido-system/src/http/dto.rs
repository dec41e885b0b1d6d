//! The JSON shapes of the HTTP API, as the OpenAPI document describes them
//! (each derives `utoipa::ToSchema`). Requests refuse unknown fields.
//!
//! This module is not for behaviour: conversions from the components'
//! types only.

use std::collections::BTreeMap;
use std::time::SystemTime;

use deploy_monitor::{CheckResult, TransitionRecord};
use jido_workflow::{StepStatus, StepView, WorkflowInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Wall time as RFC 3339 text.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// `PUT /api/v1/flags/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFlagRequest {
    /// `"on"`, `"off"`, or a percentage 0-100 (a number or its text).
    #[schema(value_type = Object, example = json!("on"))]
    pub value: Value,
    /// Why (recorded in the audit log).
    pub reason: String,
}

/// A flag and its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagView {
    /// Its name.
    pub name: String,
    /// `"on"`, `"off"`, or a percentage as text (`"10%"`).
    pub value: String,
    /// What it gates.
    pub description: String,
}

/// `GET /api/v1/flags`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagsResponse {
    /// Every declared flag.
    pub flags: Vec<FlagView>,
    /// The snapshot version (grows with every change).
    pub version: u64,
}

/// The body of the rollout actions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutActionRequest {
    /// Why (recorded with the transition).
    pub reason: String,
    /// Advance only: skip the health requirements (minimum duration, quiet
    /// period); recorded as a forced advance.
    #[serde(default)]
    pub force: bool,
}

/// One phase of the plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhaseView {
    /// Its number (1-based; 0 is the baseline).
    pub number: u32,
    /// Its name.
    pub name: String,
    /// Its flags' values (`on`, `off` or a percentage).
    pub flags: BTreeMap<String, String>,
    /// How long it must be healthy before advancing, in seconds.
    pub min_duration_secs: u64,
    /// What to validate in it.
    pub validation: String,
}

/// One health check of the latest evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// Which check (`error_rate`, `restart_frequency`, `delivery_success`,
    /// `recovery_success`, `p99_latency`, `cohort_error_rate`, ...).
    pub check: String,
    /// `pass`, `fail` or `inconclusive`.
    pub outcome: String,
    /// The measured value, if any.
    pub value: Option<f64>,
    /// The threshold it was held against, if any.
    pub threshold: Option<f64>,
    /// The samples behind the value.
    pub samples: u64,
    /// Why this outcome.
    pub detail: String,
}

impl From<&CheckResult> for CheckView {
    fn from(check: &CheckResult) -> CheckView {
        CheckView {
            check: check.check.to_string(),
            outcome: check.outcome.as_str().to_owned(),
            value: check.value,
            threshold: check.threshold,
            samples: check.samples,
            detail: check.detail.clone(),
        }
    }
}

/// The latest health evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// The phase judged.
    pub phase: u32,
    /// `pass`, `fail` or `inconclusive`.
    pub outcome: String,
    /// Whether the outcome counted (false in the initial delay).
    pub counted: bool,
    /// Each check.
    pub checks: Vec<CheckView>,
    /// Overall requests in the window.
    pub requests: u64,
    /// Overall error rate, if there were requests.
    pub error_rate: Option<f64>,
    /// Treatment cohort's error rate, if any.
    pub treatment_error_rate: Option<f64>,
    /// Control cohort's error rate, if any.
    pub control_error_rate: Option<f64>,
    /// Consecutive failed evaluations.
    pub consecutive_failures: u32,
}

/// One recorded transition.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    /// Its number.
    pub id: u64,
    /// `advance`, `automatic_advance`, `forced_advance`, or a rollback:
    /// `automatic`, `manual`, `emergency`.
    pub kind: String,
    /// The phase before.
    pub from: u32,
    /// The phase after.
    pub to: u32,
    /// The phase after's name.
    pub to_name: String,
    /// The rollout flags' values after.
    pub flags: BTreeMap<String, String>,
    /// Who made it.
    pub who: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
    /// The checks behind it (automatic rollbacks: the failing evaluation).
    pub checks: Vec<CheckView>,
}

impl From<&TransitionRecord> for TransitionView {
    fn from(record: &TransitionRecord) -> TransitionView {
        TransitionView {
            id: record.id,
            kind: record.kind.as_str().to_owned(),
            from: record.from,
            to: record.to,
            to_name: record.to_name.clone(),
            flags: record.flags.iter().cloned().collect(),
            who: record.who.clone(),
            reason: record.reason.clone(),
            at: rfc3339(record.at),
            checks: record
                .evidence
                .as_ref()
                .map(|evidence| evidence.checks.iter().map(CheckView::from).collect())
                .unwrap_or_default(),
        }
    }
}

/// `GET /api/v1/rollout`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutResponse {
    /// The current phase (0: baseline).
    pub phase: u32,
    /// Its name.
    pub phase_name: String,
    /// The plan's phases.
    pub phases: Vec<PhaseView>,
    /// Why the rollout is paused, if it is.
    pub paused: Option<String>,
    /// When the phase was entered (RFC 3339).
    pub entered_at: String,
    /// When the last rollback happened (RFC 3339).
    pub last_rollback_at: Option<String>,
    /// Flags that did not match the phase at start.
    pub flag_drift: Vec<String>,
    /// The latest evaluation, if any.
    pub health: Option<HealthView>,
    /// The most recent transitions, newest first.
    pub history: Vec<TransitionView>,
}

/// `POST /api/v1/workflows`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartWorkflowRequest {
    /// The definition (jido-workflow's JSON form: `name`, `steps`).
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Free-form metadata kept with the workflow.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The same key returns the same workflow id, also after a crash of
    /// the server (the key is stored before the start); the same key with
    /// another definition or metadata is refused (409). The
    /// `Idempotency-Key` header may carry it instead.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The answer to a start.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedResponse {
    /// The workflow's id.
    pub id: String,
    /// `v1` or `v2`: the coordinator that took it.
    pub coordinator: String,
    /// Whether the idempotency key had already started it.
    pub existing: bool,
    /// With `?wait=true`: the workflow once finished.
    pub workflow: Option<WorkflowView>,
}

/// One task of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepViewDto {
    /// The task's id.
    pub id: String,
    /// Its path in the definition.
    pub path: String,
    /// `pending`, `running`, `retrying`, `completed`, `failed`, `interrupted`.
    pub status: String,
    /// Attempts started.
    pub attempts: u32,
    /// Its output, once completed.
    #[schema(value_type = Object)]
    pub output: Option<Value>,
    /// The last error.
    pub error: Option<String>,
    /// Whether its compensation ran.
    pub compensated: bool,
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Retrying => "retrying",
        StepStatus::Completed => "completed",
        StepStatus::Failed => "failed",
        StepStatus::Interrupted => "interrupted",
        _ => "unknown",
    }
}

impl From<&StepView> for StepViewDto {
    fn from(step: &StepView) -> StepViewDto {
        StepViewDto {
            id: step.id.clone(),
            path: step.path.clone(),
            status: step_status(step.status).to_owned(),
            attempts: step.attempts,
            output: step.output.clone(),
            error: step.error.clone(),
            compensated: step.compensated,
        }
    }
}

/// A workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowView {
    /// Its id.
    pub id: String,
    /// The definition's name (empty for a V1 workflow known only by status).
    pub name: String,
    /// The definition's version (content hash).
    pub definition: String,
    /// `pending`, `running`, `waiting`, `completed`, `failed`, `cancelled`,
    /// `compensating`.
    pub status: String,
    /// The metadata given at start.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// When it started (RFC 3339), if known.
    pub started_at: Option<String>,
    /// Each task (empty in listings).
    pub steps: Vec<StepViewDto>,
    /// Completed tasks' outputs by task id.
    #[schema(value_type = Object)]
    pub results: BTreeMap<String, Value>,
    /// `v2` (durable engine) or `v1` (legacy, in memory).
    pub coordinator: String,
}

impl From<&WorkflowInfo> for WorkflowView {
    fn from(info: &WorkflowInfo) -> WorkflowView {
        WorkflowView {
            id: info.id.clone(),
            name: info.name.clone(),
            definition: info.definition.clone(),
            status: info.status.as_str().to_owned(),
            metadata: info.metadata.clone(),
            started_at: Some(rfc3339(info.started_at)),
            steps: info.steps.iter().map(StepViewDto::from).collect(),
            results: info.results(),
            coordinator: "v2".into(),
        }
    }
}

/// `GET /api/v1/workflows`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowListResponse {
    /// The workflows of this page, by id.
    pub workflows: Vec<WorkflowView>,
    /// Pass as `after` for the next page.
    pub next: Option<String>,
    /// Counts by status over this page.
    pub counts: BTreeMap<String, u64>,
}

/// `POST /api/v1/workflows/{id}/cancel`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to a cancel or a signal.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    /// The workflow.
    pub id: String,
    /// What was accepted (`cancel` or the signal's name).
    pub accepted: String,
    /// Signals: how many subscribers acknowledged the application signal
    /// (reliable messaging) or were handed it (fire-and-forget).
    pub delivered: usize,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Whether every component runs.
    pub ready: bool,
    /// Why not ready.
    pub reason: Option<String>,
    /// Each component and whether it runs.
    pub components: BTreeMap<String, bool>,
}

/// `GET /api/v1/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsResponse {
    /// The agents: id, kind, persistent, and their status.
    #[schema(value_type = Vec<Object>)]
    pub agents: Vec<Value>,
    /// Application signals received by the event log, by type.
    pub signals: BTreeMap<String, u64>,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsResponse {
    /// The MonitorAgent's alerts whose breach has not ended: `id`, `type`,
    /// `component`, `severity`, `message`, `value`, `threshold`,
    /// `created_at_ms`, `acknowledged`.
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<Value>,
    /// The health score (0-100) and its band.
    pub score: f64,
    /// `healthy`, `degraded`, `critical`...
    pub band: String,
    /// Why the rollout is paused, if it is (an alert of the deployment
    /// monitor).
    pub rollout_paused: Option<String>,
}
