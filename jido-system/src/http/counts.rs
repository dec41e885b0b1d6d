//! `GET /api/v1/counts`: exact counts for the dashboard, where a paged
//! listing could only say "100+": the workflows by status (the durable
//! ones, counted over the engine's whole listing, its summaries 1,000 per
//! read, and the legacy CoordinatorV1's in-memory ones, from each shard's
//! own counts), and the agents registered in the application's registry,
//! by kind.
//!
//! Counting the durable workflows reads every summary: O(workflows /
//! 1,000) store reads, bounded in time by [`COUNT_TIMEOUT`]. So the
//! workflow counts are cached for the application's `counts_max_age`
//! (default 2 s, `ApplicationBuilder::counts_max_age`): a request
//! gets counts at most that old (the response's `age_ms` says how old),
//! and one count runs at a time however many requests ask (the others wait
//! for it and share it). The cache lives with the HTTP server, so the
//! first request after a start (or a restart of the `http` child) counts
//! afresh from the store: the counts are exact after a restart. The
//! agents are counted at every request (a registry query, in memory).
//!
//! This module is not for the listing itself (`api.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use foundation_core::registry::{Query, Value as RegistryValue};
use foundation_error::{Error, ErrorCode};
use foundation_persist::MAX_READ_LIMIT;
use jido_workflow::coordinator::{V1Call, V1Reply};
use jido_workflow::{ListFilter, WorkflowStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::guard::Reader;

/// How long one count may take.
pub(crate) const COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a CoordinatorV1 shard may take to give its counts.
const V1_CALL_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// Workflows by status, durable and in-memory (every status, 0
    /// included).
    pub workflows: BTreeMap<String, u64>,
    /// Workflows in all, durable and in-memory.
    pub workflows_total: u64,
    /// The legacy CoordinatorV1's in-memory workflows (lost when it
    /// restarts) by status, included in `workflows`: in flight (`running`),
    /// `completed` and `failed` (cancelled included).
    pub in_memory_workflows: BTreeMap<String, u64>,
    /// How old the workflow counts are, in milliseconds (at most the
    /// application's `counts_max_age`).
    pub age_ms: u64,
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
        let counted = tokio::time::timeout(COUNT_TIMEOUT, state.counts.get(&state))
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
            workflows: counted.workflows,
            workflows_total: counted.total,
            in_memory_workflows: counted.in_memory,
            age_ms: u64::try_from(counted.age.as_millis()).unwrap_or(u64::MAX),
            agents,
            agents_total: registered.len() as u64,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

/// The workflow counts of one count, and how old they are.
#[derive(Debug, Clone)]
pub(crate) struct Counted {
    /// Every workflow by status, durable and in-memory.
    workflows: BTreeMap<String, u64>,
    /// Every workflow.
    total: u64,
    /// CoordinatorV1's in-memory workflows by status.
    in_memory: BTreeMap<String, u64>,
    /// How old the counts are when served.
    age: Duration,
}

/// The last workflow counts and when (the clock's `elapsed`) they were
/// taken; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct CountsCache {
    last: tokio::sync::Mutex<Option<(Duration, Counted)>>,
}

impl CountsCache {
    /// The counts, at most `counts_max_age` old: the cached ones, or a new
    /// count (one at a time: the lock is held while counting).
    ///
    /// # Cancel safety
    ///
    /// Reads only; a count dropped part-way leaves the cache as it was.
    async fn get(&self, state: &ApiState) -> Result<Counted, Error> {
        let mut last = self.last.lock().await;
        let now = state.shared.clock.elapsed();
        if let Some((taken, counted)) = last.as_ref() {
            let age = now.saturating_sub(*taken);
            if age < state.shared.http.counts_max_age {
                let mut counted = counted.clone();
                counted.age = age;
                return Ok(counted);
            }
        }
        let counted = count_workflows(state).await?;
        *last = Some((now, counted.clone()));
        Ok(counted)
    }
}

/// Every workflow counted by status: the durable ones one listing page at
/// a time, then CoordinatorV1's in-memory ones, shard by shard.
async fn count_workflows(state: &ApiState) -> Result<Counted, Error> {
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
            None => break,
        }
    }
    let mut in_memory: BTreeMap<String, u64> = [
        WorkflowStatus::Running,
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
    ]
    .iter()
    .map(|status| (status.as_str().to_owned(), 0))
    .collect();
    let coordinators = state.shared.coordinators.get()?;
    for v1 in &coordinators.v1 {
        match v1.call_timeout(V1Call::Stats, V1_CALL_TIMEOUT).await? {
            V1Reply::Stats {
                in_flight,
                completed_count,
                failed_count,
                ..
            } => {
                let in_flight = in_flight as u64;
                for (status, count) in [
                    (WorkflowStatus::Running, in_flight),
                    (WorkflowStatus::Completed, completed_count),
                    (WorkflowStatus::Failed, failed_count),
                ] {
                    *in_memory.entry(status.as_str().to_owned()).or_insert(0) += count;
                    *counts.entry(status.as_str().to_owned()).or_insert(0) += count;
                    total += count;
                }
            }
            other => {
                return Err(Error::new(
                    ErrorCode::INTERNAL_ERROR,
                    format!("CoordinatorV1 answered its stats with {other:?}"),
                ));
            }
        }
    }
    Ok(Counted {
        workflows: counts,
        total,
        in_memory,
        age: Duration::ZERO,
    })
}
