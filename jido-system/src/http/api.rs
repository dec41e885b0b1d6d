//! The handlers of the HTTP API, one per route, each annotated for the
//! OpenAPI document.
//!
//! This module is not for guards (`guard.rs`) or the status mapping
//! (`error.rs`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use foundation_core::signal::Signal;
use foundation_error::{Error, ErrorCode};
use foundation_error::{RetryPolicy, retry};
use foundation_flags::{Attribution, FlagValue};
use jido_agents::monitor::{AcknowledgeAlert, HealthQuery};
use jido_agents::task::TaskStatusQuery;
use jido_workflow::coordinator::{CoordinatorVersion, V1Call, V1Reply};
use jido_workflow::{ListFilter, WorkflowDefinition, WorkflowStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::dto::*;
use super::error::{ApiError, METHOD_NOT_ALLOWED, ROUTE_NOT_FOUND};
use super::guard::{JsonBody, Reader, Writer};
use super::{ApiState, unavailable};
use crate::flags::{USE_NEW_ERROR_HANDLING, USE_RELIABLE_MESSAGING, USE_SYNC_TEST_APIS};

/// The dashboard page.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
/// How many transitions `GET /api/v1/rollout` returns.
const HISTORY_LIMIT: usize = 50;

type ApiResult<T> = Result<T, ApiError>;

/// `?wait=true` on a write.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Answer only once the effect is durable and visible (needs the flag
    /// `use_sync_test_apis`).
    #[serde(default)]
    pub(crate) wait: bool,
}

/// `GET /api/v1/workflows` filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this status (`running`, `completed`, ...).
    pub(crate) status: Option<String>,
    /// Only this definition name.
    pub(crate) name: Option<String>,
    /// The `next` of the previous page.
    pub(crate) after: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub(crate) limit: Option<usize>,
}

impl ApiState {
    /// Runs `operation`, retrying infrastructure errors when
    /// `use_new_error_handling` is on (the legacy path does not retry).
    async fn attempt<T, F, Fut>(&self, operation: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut operation = operation;
        let retries = self
            .shared
            .flags
            .get()
            .is_ok_and(|flags| flags.is_enabled(USE_NEW_ERROR_HANDLING));
        if retries {
            let policy = RetryPolicy::new()
                .max_attempts(3)
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200));
            retry(&policy, operation).await
        } else {
            operation().await
        }
    }

    /// Refuses `?wait=true` unless `use_sync_test_apis` is on.
    fn check_wait(&self, wait: &WaitQuery) -> Result<bool, Error> {
        if !wait.wait {
            return Ok(false);
        }
        let flags = self.shared.flags.get()?;
        if flags.is_enabled(USE_SYNC_TEST_APIS) {
            Ok(true)
        } else {
            Err(Error::new(
                ErrorCode::OPERATION_NOT_PERMITTED,
                "?wait=true needs the flag use_sync_test_apis",
            )
            .with_context("flag", USE_SYNC_TEST_APIS))
        }
    }
}

/// The dashboard.
pub(super) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

/// A path no route serves.
pub(super) async fn no_route(State(state): State<ApiState>) -> ApiError {
    state.fail(Error::new(ROUTE_NOT_FOUND, "no such route"))
}

/// A method the route does not serve.
pub(super) async fn no_method(State(state): State<ApiState>) -> ApiError {
    state.fail(Error::new(
        METHOD_NOT_ALLOWED,
        "this route does not serve that method",
    ))
}

/// Liveness and readiness.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "ready", body = HealthResponse),
              (status = 503, description = "alive, not ready (reason given)", body = HealthResponse)))]
pub(super) async fn health(State(state): State<ApiState>) -> Response {
    let shared = &state.shared;
    let store_problem = probe_store(&shared.store).await.err();
    let components: BTreeMap<String, bool> = [
        ("store", store_problem.is_none()),
        ("flags", shared.flags.is_set()),
        ("errors", shared.errors.is_set()),
        ("registry", shared.registry.is_set()),
        ("tasks", !shared.tasks.is_shut_down()),
        ("signals", shared.signals.is_set()),
        (
            "agents",
            shared.task_agent.is_set() && shared.monitor_agent.is_set(),
        ),
        ("workflows", shared.engine.is_set()),
        ("coordinators", shared.coordinators.is_set()),
        ("deploy", shared.monitor.is_set()),
    ]
    .into_iter()
    .map(|(name, up)| (name.to_owned(), up))
    .collect();
    let down: Vec<&str> = components
        .iter()
        .filter(|(_, up)| !**up)
        .map(|(name, _)| name.as_str())
        .collect();
    let ready = down.is_empty();
    let reason = (!ready).then(|| match &store_problem {
        Some(problem) => format!("not running: {} (store: {problem})", down.join(", ")),
        None => format!("not running: {}", down.join(", ")),
    });
    let body = HealthResponse {
        status: if ready { "ok" } else { "unavailable" }.to_owned(),
        ready,
        reason,
        components,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// How long `/health` waits for the store to answer its probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The metadata entry `/health` reads (it need not exist).
const STORE_PROBE_KEY: &str = "jido_system.health_probe";

/// The record type of [`STORE_PROBE_KEY`]; never written.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HealthProbe {}

impl foundation_persist::Record for HealthProbe {
    const TYPE_TAG: &'static str = "jido_system_health_probe";
    const SCHEMA_VERSION: u32 = 1;
}

/// Whether the store answers a read within [`STORE_PROBE_TIMEOUT`]: a
/// closed store, a database that is down or restarting, or a stalled
/// disk is the reason `/health` gives for not being ready. One read per
/// call (on PostgreSQL a round trip on a pooled connection).
async fn probe_store(store: &foundation_persist::Store) -> Result<(), String> {
    if store.is_closed() {
        return Err("closed".to_owned());
    }
    let read = store.metadata();
    match tokio::time::timeout(
        STORE_PROBE_TIMEOUT,
        read.get::<HealthProbe>(STORE_PROBE_KEY),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("{} ({})", error.message(), error.code().name())),
        Err(_) => Err(format!(
            "no answer to a read within {STORE_PROBE_TIMEOUT:?}"
        )),
    }
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<ApiState>) -> ApiResult<Response> {
    let handle = state.shared.prometheus.clone().ok_or_else(|| {
        state.fail(unavailable(
            "the Prometheus recorder (another recorder was installed)",
        ))
    })?;
    if let Ok(monitor) = state.shared.monitor.get() {
        monitor.publish_metrics();
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

/// The OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "this document")))]
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}

fn flag_text(value: FlagValue) -> String {
    value.to_string()
}

/// Every flag.
#[utoipa::path(get, path = "/api/v1/flags", tag = "flags",
    responses((status = 200, body = FlagsResponse)))]
pub(super) async fn list_flags(
    State(state): State<ApiState>,
    _reader: Reader,
) -> ApiResult<Json<FlagsResponse>> {
    let flags = state
        .shared
        .flags
        .get()
        .map_err(|error| state.fail(error))?;
    let snapshot = flags.snapshot();
    let views = flags
        .declarations()
        .iter()
        .map(|flag| FlagView {
            name: flag.name().to_owned(),
            value: flag_text(snapshot.value(flag.name()).unwrap_or(flag.default_value())),
            description: flag.description().to_owned(),
        })
        .collect();
    Ok(Json(FlagsResponse {
        flags: views,
        version: snapshot.version(),
    }))
}

fn parse_value(value: &Value) -> Result<FlagValue, Error> {
    let invalid = || {
        Error::validation("value must be \"on\", \"off\" or a percentage 0-100")
            .with_context("field", "value")
    };
    match value {
        Value::String(text) => text
            .parse::<FlagValue>()
            .map_err(|error| error.with_context("field", "value")),
        Value::Number(number) => {
            let percentage = number.as_u64().ok_or_else(invalid)?;
            let percentage = u32::try_from(percentage).map_err(|_| invalid())?;
            FlagValue::percentage(percentage).map_err(|error| error.with_context("field", "value"))
        }
        Value::Bool(true) => Ok(FlagValue::On),
        Value::Bool(false) => Ok(FlagValue::Off),
        _ => Err(invalid()),
    }
}

fn need_reason(reason: &str) -> Result<(), Error> {
    if reason.trim().is_empty() {
        Err(Error::validation("reason must not be empty").with_context("field", "reason"))
    } else {
        Ok(())
    }
}

/// Sets one flag.
#[utoipa::path(put, path = "/api/v1/flags/{name}", tag = "flags",
    params(("name" = String, Path, description = "the flag"), WaitQuery),
    request_body = SetFlagRequest,
    security(("bearer" = [])),
    responses((status = 200, body = FlagView),
              (status = 400, description = "bad value or body"),
              (status = 401, description = "no or wrong token"),
              (status = 404, description = "no such flag"),
              (status = 413, description = "body over 1 MiB"),
              (status = 429, description = "write limit reached (Retry-After)")))]
pub(super) async fn set_flag(
    State(state): State<ApiState>,
    Writer(client): Writer,
    Path(name): Path<String>,
    Query(wait): Query<WaitQuery>,
    JsonBody(request): JsonBody<SetFlagRequest>,
) -> ApiResult<Json<FlagView>> {
    let outcome = async {
        let wait = state.check_wait(&wait)?;
        let flags = state.shared.flags.get()?;
        let declaration = flags.declaration(&name).cloned().ok_or_else(|| {
            Error::new(ErrorCode::FLAG_NOT_FOUND, format!("no flag named {name:?}"))
                .with_context("flag", name.clone())
        })?;
        let value = parse_value(&request.value)?;
        need_reason(&request.reason)?;
        let by = Attribution::new(client.who(), request.reason.clone());
        state
            .attempt(|| flags.set(&name, value, by.clone()))
            .await?;
        if wait && flags.value(&name)? != value {
            return Err(Error::new(
                ErrorCode::VERSION_CONFLICT,
                "another write changed the flag before it could be read back",
            ));
        }
        Ok(FlagView {
            name: name.clone(),
            value: flag_text(flags.value(&name)?),
            description: declaration.description().to_owned(),
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

async fn rollout_view(state: &ApiState) -> Result<RolloutResponse, Error> {
    let monitor = state.shared.monitor.get()?;
    let status = monitor.status().await?;
    let plan = monitor.plan();
    let phases = plan
        .phases()
        .iter()
        .enumerate()
        .map(|(index, phase)| PhaseView {
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            name: phase.name.clone(),
            flags: phase
                .flags
                .iter()
                .map(|(flag, value)| (flag.clone(), value.to_string()))
                .collect(),
            min_duration_secs: phase.min_duration.as_secs(),
            validation: phase.validation.clone(),
        })
        .collect();
    let health = monitor.last_evaluation().map(|evaluation| {
        let report = &evaluation.report;
        HealthView {
            phase: evaluation.phase,
            outcome: evaluation.judgement.outcome.as_str().to_owned(),
            counted: evaluation.counted,
            checks: evaluation
                .judgement
                .checks
                .iter()
                .map(CheckView::from)
                .collect(),
            requests: report.overall.requests,
            error_rate: report.overall.error_rate,
            treatment_error_rate: report.cohort(deploy_monitor::Cohort::Treatment).error_rate,
            control_error_rate: report.cohort(deploy_monitor::Cohort::Control).error_rate,
            consecutive_failures: evaluation.consecutive_failures,
        }
    });
    let mut history: Vec<TransitionView> = monitor
        .history(HISTORY_LIMIT)
        .await?
        .iter()
        .map(TransitionView::from)
        .collect();
    history.sort_by_key(|record| std::cmp::Reverse(record.id));
    Ok(RolloutResponse {
        phase: status.phase,
        phase_name: status.phase_name,
        phases,
        paused: status.paused,
        entered_at: rfc3339(status.entered_at),
        last_rollback_at: status.last_rollback_at.map(rfc3339),
        flag_drift: status.flag_drift,
        health,
        history,
    })
}

/// Where the rollout stands.
#[utoipa::path(get, path = "/api/v1/rollout", tag = "rollout",
    responses((status = 200, body = RolloutResponse)))]
pub(super) async fn rollout(
    State(state): State<ApiState>,
    _reader: Reader,
) -> ApiResult<Json<RolloutResponse>> {
    rollout_view(&state)
        .await
        .map(Json)
        .map_err(|error| state.fail(error))
}

#[derive(Clone, Copy)]
enum RolloutAction {
    Advance,
    Rollback,
    Emergency,
}

async fn act(
    state: ApiState,
    client: super::guard::Client,
    action: RolloutAction,
    request: RolloutActionRequest,
) -> ApiResult<Json<RolloutResponse>> {
    let outcome = async {
        need_reason(&request.reason)?;
        if request.force && !matches!(action, RolloutAction::Advance) {
            return Err(
                Error::validation("force applies to advance only").with_context("field", "force")
            );
        }
        let monitor = state.shared.monitor.get()?;
        let who = client.who();
        match action {
            RolloutAction::Advance if request.force => {
                monitor.force_advance(&who, &request.reason).await?
            }
            RolloutAction::Advance => monitor.advance(&who, &request.reason).await?,
            RolloutAction::Rollback => monitor.rollback(&who, &request.reason).await?,
            RolloutAction::Emergency => monitor.emergency_rollback(&who, &request.reason).await?,
        };
        rollout_view(&state).await
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// Advances one phase (`force`: skip the health requirements).
#[utoipa::path(post, path = "/api/v1/rollout/advance", tag = "rollout",
    request_body = RolloutActionRequest, security(("bearer" = [])),
    responses((status = 200, body = RolloutResponse),
              (status = 422, description = "the rules forbid it now (not healthy long enough, last phase, quiet period)")))]
pub(super) async fn advance(
    State(state): State<ApiState>,
    Writer(client): Writer,
    JsonBody(request): JsonBody<RolloutActionRequest>,
) -> ApiResult<Json<RolloutResponse>> {
    act(state, client, RolloutAction::Advance, request).await
}

/// Rolls back one phase.
#[utoipa::path(post, path = "/api/v1/rollout/rollback", tag = "rollout",
    request_body = RolloutActionRequest, security(("bearer" = [])),
    responses((status = 200, body = RolloutResponse),
              (status = 422, description = "already at the baseline")))]
pub(super) async fn rollback(
    State(state): State<ApiState>,
    Writer(client): Writer,
    JsonBody(request): JsonBody<RolloutActionRequest>,
) -> ApiResult<Json<RolloutResponse>> {
    act(state, client, RolloutAction::Rollback, request).await
}

/// Turns every rollout flag off at once (phase 0).
#[utoipa::path(post, path = "/api/v1/rollout/emergency-rollback", tag = "rollout",
    request_body = RolloutActionRequest, security(("bearer" = [])),
    responses((status = 200, body = RolloutResponse)))]
pub(super) async fn emergency_rollback(
    State(state): State<ApiState>,
    Writer(client): Writer,
    JsonBody(request): JsonBody<RolloutActionRequest>,
) -> ApiResult<Json<RolloutResponse>> {
    act(state, client, RolloutAction::Emergency, request).await
}

/// Starts a workflow (201; the same idempotency key returns the same id).
/// The key is the body's `idempotency_key` or the `Idempotency-Key` header.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows",
    params(WaitQuery,
           ("Idempotency-Key" = Option<String>, Header,
            description = "the idempotency key, instead of the body's idempotency_key (both: they must agree)")),
    request_body = StartWorkflowRequest, security(("bearer" = [])),
    responses((status = 201, body = StartedResponse),
              (status = 200, description = "the idempotency key had started it", body = StartedResponse),
              (status = 400, description = "bad definition or body (the field is named)"),
              (status = 409, description = "the idempotency key was used with another definition or metadata")))]
pub(super) async fn start_workflow(
    State(state): State<ApiState>,
    Writer(_client): Writer,
    Query(wait): Query<WaitQuery>,
    headers: axum::http::HeaderMap,
    JsonBody(request): JsonBody<StartWorkflowRequest>,
) -> ApiResult<Response> {
    let outcome = async {
        let wait = state.check_wait(&wait)?;
        let idempotency_key = super::idempotency::key_of(&headers, request.idempotency_key)?;
        let text = serde_json::to_string(&request.definition).map_err(|error| {
            Error::new(ErrorCode::SERIALIZATION_FAILED, error.to_string())
        })?;
        let definition = WorkflowDefinition::from_json(&text)
            .map_err(|error| error.with_context("field", "definition"))?;
        let coordinators = state.shared.coordinators.get()?;
        let metadata = match request.metadata {
            Value::Null => json!({}),
            other => other,
        };
        let (id, coordinator, existing) = match &idempotency_key {
            Some(key) => {
                let started = super::idempotency::start(
                    &state,
                    &coordinators,
                    key,
                    definition,
                    metadata,
                )
                .await?;
                (started.id, started.coordinator, started.existing)
            }
            None => {
                let coordinator_id = uuid::Uuid::new_v4().simple().to_string();
                let router = coordinators.router(&coordinator_id);
                injected_fault(&state, router.route(&coordinator_id))?;
                let routed = router
                    .start_workflow(&coordinator_id, definition, metadata)
                    .await?;
                (
                    routed.workflow_id,
                    routed.version.as_str().to_owned(),
                    false,
                )
            }
        };
        let workflow = if wait {
            if coordinator == CoordinatorVersion::V2.as_str() {
                let engine = state.shared.engine.get()?;
                let info = engine.wait(&id, state.shared.http.max_wait).await?;
                Some(WorkflowView::from(&info))
            } else {
                return Err(Error::new(
                    ErrorCode::OPERATION_NOT_PERMITTED,
                    "?wait=true needs a workflow on CoordinatorV2 (use_v2_coordinator routed it to V1)",
                ));
            }
        } else {
            None
        };
        let status = if existing {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((
            status,
            Json(StartedResponse {
                id,
                coordinator,
                existing,
                workflow,
            }),
        )
            .into_response())
    }
    .await;
    outcome.map_err(|error| state.fail(error))
}

/// The fault injection of [`ApplicationBuilder::inject_v2_start_faults`]:
/// fails a start routed to CoordinatorV2, recorded as a failed V2 request.
///
/// [`ApplicationBuilder::inject_v2_start_faults`]: crate::ApplicationBuilder::inject_v2_start_faults
pub(super) fn injected_fault(state: &ApiState, version: CoordinatorVersion) -> Result<(), Error> {
    if version != CoordinatorVersion::V2 || !state.shared.inject_v2_fault() {
        return Ok(());
    }
    use jido_workflow::coordinator::CoordinatorRecorder;
    crate::app::recorder::MonitorFeed::new(std::sync::Arc::clone(&state.shared)).record_request(
        "v2",
        false,
        Duration::ZERO,
    );
    Err(Error::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        "injected fault: this start routed to CoordinatorV2 failed (fault injection is on)",
    )
    .with_context("coordinator", "v2"))
}

/// One workflow: status, each step's status and result.
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "the workflow"), WaitQuery),
    responses((status = 200, body = WorkflowView), (status = 404, description = "no such workflow")))]
pub(super) async fn workflow(
    State(state): State<ApiState>,
    _reader: Reader,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> ApiResult<Json<WorkflowView>> {
    let outcome = async {
        let wait = state.check_wait(&wait)?;
        let engine = state.shared.engine.get()?;
        if wait {
            let info = engine.wait(&id, state.shared.http.max_wait).await?;
            return Ok(WorkflowView::from(&info));
        }
        match state.attempt(|| engine.status(&id)).await {
            Ok(info) => return Ok(WorkflowView::from(&info)),
            Err(error) if error.code() == ErrorCode::DATA_NOT_FOUND => {}
            Err(error) => return Err(error),
        }
        // A legacy workflow lives in the memory of the V1 coordinator that
        // started it; its id does not name the shard, so ask each.
        if let Ok(coordinators) = state.shared.coordinators.get() {
            for v1 in &coordinators.v1 {
                if let V1Reply::Status(Some(status)) = v1
                    .call_timeout(
                        V1Call::Status {
                            workflow: id.clone(),
                        },
                        Duration::from_secs(5),
                    )
                    .await?
                {
                    return Ok(v1_view(&id, status));
                }
            }
        }
        Err(
            Error::new(ErrorCode::DATA_NOT_FOUND, format!("no workflow {id:?}"))
                .with_context("workflow", id.clone()),
        )
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

fn v1_view(id: &str, status: WorkflowStatus) -> WorkflowView {
    WorkflowView {
        id: id.to_owned(),
        name: String::new(),
        definition: String::new(),
        status: status.as_str().to_owned(),
        metadata: Value::Null,
        started_at: None,
        steps: Vec::new(),
        results: BTreeMap::new(),
        coordinator: "v1".into(),
    }
}

fn parse_status(text: &str) -> Result<WorkflowStatus, Error> {
    [
        WorkflowStatus::Pending,
        WorkflowStatus::Running,
        WorkflowStatus::Waiting,
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
        WorkflowStatus::Compensating,
    ]
    .into_iter()
    .find(|status| status.as_str() == text)
    .ok_or_else(|| {
        Error::validation(format!("unknown workflow status {text:?}"))
            .with_context("field", "status")
    })
}

/// The durable workflows (CoordinatorV2's engine), by id.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    params(ListQuery),
    responses((status = 200, body = WorkflowListResponse)))]
pub(super) async fn list_workflows(
    State(state): State<ApiState>,
    _reader: Reader,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<WorkflowListResponse>> {
    let outcome = async {
        let engine = state.shared.engine.get()?;
        let mut filter = ListFilter::new();
        if let Some(status) = &query.status {
            filter.status(parse_status(status)?);
        }
        if let Some(name) = &query.name {
            filter.name(name.clone());
        }
        if let Some(after) = &query.after {
            filter.after(after.clone());
        }
        if let Some(limit) = query.limit {
            filter.limit(limit);
        }
        let page = state.attempt(|| engine.list(&filter)).await?;
        let mut counts = BTreeMap::new();
        for workflow in &page.workflows {
            *counts
                .entry(workflow.status.as_str().to_owned())
                .or_insert(0u64) += 1;
        }
        Ok(WorkflowListResponse {
            workflows: page.workflows.iter().map(WorkflowView::from).collect(),
            next: page.next,
            counts,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// Cancels a workflow (its completed steps are compensated).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/cancel", tag = "workflows",
    params(("id" = String, Path, description = "the workflow"), WaitQuery),
    request_body = CancelRequest, security(("bearer" = [])),
    responses((status = 200, body = AcceptedResponse), (status = 404, description = "no such workflow")))]
pub(super) async fn cancel_workflow(
    State(state): State<ApiState>,
    Writer(client): Writer,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
    JsonBody(request): JsonBody<CancelRequest>,
) -> ApiResult<Json<AcceptedResponse>> {
    let outcome = async {
        let wait = state.check_wait(&wait)?;
        let engine = state.shared.engine.get()?;
        let reason = request
            .reason
            .unwrap_or_else(|| format!("cancelled by {}", client.who()));
        engine.cancel(&id, &reason).await?;
        if wait {
            engine.wait(&id, state.shared.http.max_wait).await?;
        }
        Ok(AcceptedResponse {
            id: id.clone(),
            accepted: "cancel".into(),
            delivered: 1,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// Sends a signal to a workflow (the body is its payload), and routes the
/// application signal `jido.workflow.signal`.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/signals/{name}", tag = "workflows",
    params(("id" = String, Path, description = "the workflow"), ("name" = String, Path, description = "the signal")),
    request_body(content = Object, description = "the signal's payload (any JSON)"), security(("bearer" = [])),
    responses((status = 200, body = AcceptedResponse), (status = 404, description = "no such workflow")))]
pub(super) async fn signal_workflow(
    State(state): State<ApiState>,
    Writer(_client): Writer,
    Path((id, name)): Path<(String, String)>,
    JsonBody(payload): JsonBody<Value>,
) -> ApiResult<Json<AcceptedResponse>> {
    let outcome = async {
        let engine = state.shared.engine.get()?;
        engine.signal(&id, &name, payload.clone()).await?;
        let delivered = route_signal(
            &state,
            "jido.workflow.signal",
            json!({"workflow": id, "signal": name}),
        )
        .await?;
        Ok(AcceptedResponse {
            id: id.clone(),
            accepted: name.clone(),
            delivered,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// Routes an application signal: with acknowledgements under
/// `use_reliable_messaging`, fire-and-forget otherwise. Returns the
/// acknowledged (or handed over) count; deliveries feed the deployment
/// monitor.
async fn route_signal(state: &ApiState, signal_type: &str, data: Value) -> Result<usize, Error> {
    let router = state.shared.signals.get()?;
    let flags = state.shared.flags.get()?;
    let signal = Signal::new_at(
        signal_type,
        "/jido-system/http",
        data,
        state.shared.clock.as_ref(),
    )?;
    let recorder = state
        .shared
        .monitor
        .get()
        .ok()
        .map(|monitor| monitor.recorder());
    if flags.is_enabled(USE_RELIABLE_MESSAGING) {
        metrics::counter!(crate::metrics::SIGNALS_SENT_TOTAL, "mode" => "acknowledged")
            .increment(1);
        let report = router.route_sync(signal).await;
        let acknowledged = report.acknowledged();
        if let Some(recorder) = recorder {
            recorder.record_delivery(
                deploy_monitor::Cohort::Unassigned,
                acknowledged == report.outcomes.len(),
            );
        }
        Ok(acknowledged)
    } else {
        metrics::counter!(crate::metrics::SIGNALS_SENT_TOTAL, "mode" => "fire_and_forget")
            .increment(1);
        let report = router.route(signal);
        Ok(report.delivered)
    }
}

/// The agents and what they report.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, body = AgentsResponse)))]
pub(super) async fn agents(
    State(state): State<ApiState>,
    _reader: Reader,
) -> ApiResult<Json<AgentsResponse>> {
    let outcome = async {
        let shared = &state.shared;
        let persistent = shared
            .flags
            .get()?
            .is_enabled(crate::flags::USE_PERSISTENT_AGENTS);
        let task_agent = shared.task_agent.get()?;
        let monitor_agent = shared.monitor_agent.get()?;
        let tasks = task_agent.run(TaskStatusQuery {}).await?;
        let health = monitor_agent.run(HealthQuery {}).await?;
        let signals = match shared.event_log.get() {
            Ok(log) => log.call(()).await?.counts,
            Err(_) => BTreeMap::new(),
        };
        let to_json = |value: &dyn erased::Serialize| value.to_json();
        Ok(AgentsResponse {
            agents: vec![
                json!({"id": "task_agent", "kind": "task_agent", "persistent": persistent,
                       "alive": task_agent.is_alive(), "status": to_json(&tasks)}),
                json!({"id": "monitor_agent", "kind": "monitor_agent", "persistent": persistent,
                       "alive": monitor_agent.is_alive(), "status": to_json(&health)}),
            ],
            signals,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// A tiny object-safe view of `Serialize`, to turn reports into JSON.
mod erased {
    /// Serialises to a JSON value.
    pub(super) trait Serialize {
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Serialize for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// Alerts whose breach has not ended.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    responses((status = 200, body = AlertsResponse)))]
pub(super) async fn alerts(
    State(state): State<ApiState>,
    _reader: Reader,
) -> ApiResult<Json<AlertsResponse>> {
    let outcome = async {
        let monitor_agent = state.shared.monitor_agent.get()?;
        let health = monitor_agent.run(HealthQuery {}).await?;
        let rollout_paused = match state.shared.monitor.get() {
            Ok(monitor) => monitor.status().await?.paused,
            Err(_) => None,
        };
        Ok(AlertsResponse {
            alerts: health
                .active_alerts
                .iter()
                .map(|alert| serde_json::to_value(alert).unwrap_or(Value::Null))
                .collect(),
            score: health.score,
            band: serde_json::to_value(health.band)
                .ok()
                .and_then(|band| band.as_str().map(str::to_owned))
                .unwrap_or_default(),
            rollout_paused,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// Acknowledges an alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts",
    params(("id" = String, Path, description = "the alert")), security(("bearer" = [])),
    responses((status = 200, description = "the alert, acknowledged"), (status = 404, description = "no such alert")))]
pub(super) async fn ack_alert(
    State(state): State<ApiState>,
    Writer(_client): Writer,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let outcome = async {
        let monitor_agent = state.shared.monitor_agent.get()?;
        let alert = monitor_agent
            .run(AcknowledgeAlert { id: id.clone() })
            .await?;
        Ok(serde_json::to_value(alert).unwrap_or(Value::Null))
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}
