//! `GET /api/v1/counts`: exact counts for the dashboard, where a paged
//! listing could only say "100+": the durable workflows by status, counted
//! over the engine's whole listing (its summaries, 1,000 per read), and the
//! agents registered in the application's registry, by kind.
//!
//! Counting reads every workflow summary: O(workflows / 1,000) store reads
//! per request, bounded in time by [`COUNT_TIMEOUT`]. Legacy CoordinatorV1
//! workflows (in memory, not in the engine) are not counted.
//!
//! This module is not for the listing itself (`api.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use foundation_core::registry::{Query, Value as RegistryValue};
use foundation_error::{Error, ErrorCode};
use foundation_persist::MAX_READ_LIMIT;
use jido_workflow::{ListFilter, WorkflowStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::guard::Reader;

/// How long one count may take.
pub(crate) const COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// Every status a durable workflow can have, each counted (0 included).
const STATUSES: [WorkflowStatus; 7] = [
    WorkflowStatus::Pending,
    WorkflowStatus::Running,
    WorkflowStatus::Waiting,
    WorkflowStatus::Compensating,
    WorkflowStatus::Completed,
    WorkflowStatus::Failed,
    WorkflowStatus::Cancelled,
];

/// `GET /api/v1/counts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsResponse {
    /// Durable workflows by status (every status, 0 included).
    pub workflows: BTreeMap<String, u64>,
    /// Durable workflows in all.
    pub workflows_total: u64,
    /// Registered agents by kind.
    pub agents: BTreeMap<String, u64>,
    /// Registered agents in all.
    pub agents_total: u64,
}

/// Exact counts: durable workflows by status, registered agents by kind.
#[utoipa::path(get, path = "/api/v1/counts", tag = "workflows",
    responses((status = 200, body = CountsResponse),
              (status = 503, description = "a component is restarting, or the count took longer than 10 s")))]
pub(super) async fn counts(
    State(state): State<ApiState>,
    _reader: Reader,
) -> Result<Json<CountsResponse>, ApiError> {
    let outcome = async {
        let (workflows, workflows_total) =
            tokio::time::timeout(COUNT_TIMEOUT, count_workflows(&state))
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorCode::TIMEOUT,
                        format!("counting the workflows took longer than {COUNT_TIMEOUT:?}"),
                    )
                })??;
        let mut agents = BTreeMap::new();
        let registry = state.shared.registry.get()?;
        let registered = registry.query(&Query::new());
        for registration in &registered {
            let kind = match registration.metadata.get(jido_agents::KIND_ATTRIBUTE) {
                Some(RegistryValue::Text(kind)) => kind.clone(),
                _ => "other".to_owned(),
            };
            *agents.entry(kind).or_insert(0) += 1;
        }
        Ok(CountsResponse {
            workflows,
            workflows_total,
            agents,
            agents_total: registered.len() as u64,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// Every durable workflow, counted by status, one listing page at a time.
async fn count_workflows(state: &ApiState) -> Result<(BTreeMap<String, u64>, u64), Error> {
    let engine = state.shared.engine.get()?;
    let mut counts: BTreeMap<String, u64> = STATUSES
        .iter()
        .map(|status| (status.as_str().to_owned(), 0))
        .collect();
    let mut total = 0;
    let mut after: Option<String> = None;
    loop {
        let mut filter = ListFilter::new();
        filter.limit(MAX_READ_LIMIT);
        if let Some(after) = &after {
            filter.after(after.clone());
        }
        let page = engine.list(&filter).await?;
        for workflow in &page.workflows {
            *counts
                .entry(workflow.status.as_str().to_owned())
                .or_insert(0) += 1;
            total += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok((counts, total)),
        }
    }
}
