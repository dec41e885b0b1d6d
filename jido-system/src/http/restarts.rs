//! `GET /api/v1/restarts`: the recent restarts of every supervisor on the
//! application's event bus (the application's own, the agents', the
//! coordinators', and the workflow engine's: a workflow process restarted
//! shows here), newest last, for the dashboard's list.
//!
//! This module is not for the log itself (`app/restarts.rs`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::guard::Reader;

/// One restart.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestartView {
    /// The supervisor (`workflows`: the engine's workflow processes).
    pub supervisor: String,
    /// The child.
    pub child: String,
    /// `restarted`, `restart_failed` or `intensity_exceeded`.
    pub kind: String,
    /// When (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

/// `GET /api/v1/restarts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestartsResponse {
    /// The most recent restarts (at most 100), oldest first.
    pub restarts: Vec<RestartView>,
    /// Events the bus dropped before they were read (not in the list).
    pub lost: u64,
}

/// The recent restarts.
#[utoipa::path(get, path = "/api/v1/restarts", tag = "agents",
    responses((status = 200, body = RestartsResponse)))]
pub(super) async fn restarts(
    State(state): State<ApiState>,
    _reader: Reader,
) -> Result<Json<RestartsResponse>, ApiError> {
    let (recent, lost) = state.shared.restarts.recent();
    Ok(Json(RestartsResponse {
        restarts: recent
            .into_iter()
            .map(|record| RestartView {
                supervisor: record.supervisor,
                child: record.child,
                kind: record.kind.to_owned(),
                at_ms: record.at_ms,
            })
            .collect(),
        lost,
    }))
}
