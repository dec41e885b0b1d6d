//! `GET /api/v1/cluster`: this node, the store's kind, the nodes sharing
//! the store (their `node/<id>` leases: last seen, expiry) and a page of
//! the workflows' leases (owner, fencing token, expiry). On the embedded
//! redb store the only node is this one.
//!
//! Expiry is shown as the store judges it (on PostgreSQL the database's
//! clock); `live` compares it with this node's wall clock, so a node whose
//! clock is off shows it off by as much.
//!
//! This module is not for holding the leases (`app/cluster.rs`, and
//! jido-workflow's engine for the workflows').

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Query, State};
use foundation_error::{Error, ErrorCode};
use foundation_persist::Lease;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::dto::rfc3339;
use super::error::ApiError;
use super::guard::Reader;
use crate::app::cluster::{NODE_LEASE_PREFIX, Node, WORKFLOW_LEASE_PREFIX};

/// The most nodes listed (one page).
pub const MAX_NODES: usize = 1_000;
/// The default and largest page of workflow leases.
const DEFAULT_LEASE_PAGE: usize = 100;
const MAX_LEASE_PAGE: usize = 1_000;

/// `GET /api/v1/cluster` paging of the workflows' leases.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterQuery {
    /// The `next` of the previous page (a lease name).
    pub(crate) after: Option<String>,
    /// At most this many workflow leases (default 100, at most 1,000).
    pub(crate) limit: Option<usize>,
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterResponse {
    /// The node that answered.
    pub node: String,
    /// Its store: `redb`, `postgres` or `memory`.
    pub store: String,
    /// When the answering node started (RFC 3339).
    pub started_at: String,
    /// The answering node's membership lease time in milliseconds
    /// (`--lease-ttl`, 10 s by default): a node that dies stops being
    /// `live` at most this long after its death. `last_seen` assumes every
    /// node runs with the same lease time.
    pub node_lease_ttl_ms: u64,
    /// The nodes holding a node lease, live or recently expired, by id.
    pub nodes: Vec<NodeView>,
    /// A page of the workflows' leases, by name.
    pub leases: Vec<LeaseView>,
    /// Pass as `after` for the next page of leases.
    pub next: Option<String>,
}

/// One node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// The node id.
    pub id: String,
    /// Whether it is the node that answered.
    pub this_node: bool,
    /// Whether its lease had not expired when the page was read.
    pub live: bool,
    /// Its last heartbeat: the lease's expiry less the answering node's
    /// lease time (RFC 3339).
    pub last_seen: String,
    /// When its lease lapses unless renewed (RFC 3339).
    pub expires_at: String,
    /// The lease's fencing token (grows with every grant).
    pub token: u64,
}

/// One workflow's lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    /// The lease name (`workflow/<id>`).
    pub name: String,
    /// The workflow id.
    pub workflow: String,
    /// The node holding it.
    pub owner: String,
    /// The fencing token.
    pub token: u64,
    /// When it lapses unless renewed (RFC 3339).
    pub expires_at: String,
    /// Whether it had not expired when the page was read.
    pub live: bool,
}

/// The cluster: this node, the nodes, the workflows' leases.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "system",
    params(ClusterQuery),
    responses((status = 200, body = ClusterResponse)))]
pub(super) async fn cluster(
    State(state): State<ApiState>,
    _reader: Reader,
    Query(query): Query<ClusterQuery>,
) -> Result<Json<ClusterResponse>, ApiError> {
    let outcome = async {
        let limit = query.limit.unwrap_or(DEFAULT_LEASE_PAGE);
        if limit == 0 || limit > MAX_LEASE_PAGE {
            return Err(Error::new(
                ErrorCode::INVALID_INPUT,
                format!("limit is 1 to {MAX_LEASE_PAGE}"),
            )
            .with_context("parameter", "limit"));
        }
        let shared = &state.shared;
        let leases = shared.store.leases();
        let now = shared.clock.wall();
        let nodes = leases.list(NODE_LEASE_PREFIX, None, MAX_NODES).await?;
        let after = query.after.as_deref();
        let mut page = leases.list(WORKFLOW_LEASE_PREFIX, after, limit + 1).await?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|lease| lease.name.clone())
        } else {
            None
        };
        Ok(ClusterResponse {
            node: shared.node.id().to_owned(),
            store: shared.node.store_kind().as_str().to_owned(),
            started_at: rfc3339(shared.node.started_at()),
            node_lease_ttl_ms: u64::try_from(shared.node.node_lease_ttl().as_millis())
                .unwrap_or(u64::MAX),
            nodes: nodes
                .iter()
                .map(|lease| node_view(lease, &shared.node, now))
                .collect(),
            leases: page.iter().map(|lease| lease_view(lease, now)).collect(),
            next,
        })
    }
    .await;
    outcome.map(Json).map_err(|error| state.fail(error))
}

fn node_view(lease: &Lease, this_node: &Node, now: SystemTime) -> NodeView {
    let id = lease
        .name
        .strip_prefix(NODE_LEASE_PREFIX)
        .unwrap_or(&lease.name)
        .to_owned();
    NodeView {
        this_node: id == this_node.id(),
        id,
        live: lease.expires_at > now,
        last_seen: rfc3339(
            lease
                .expires_at
                .checked_sub(this_node.node_lease_ttl())
                .unwrap_or(lease.expires_at),
        ),
        expires_at: rfc3339(lease.expires_at),
        token: lease.token,
    }
}

fn lease_view(lease: &Lease, now: SystemTime) -> LeaseView {
    LeaseView {
        workflow: lease
            .name
            .strip_prefix(WORKFLOW_LEASE_PREFIX)
            .unwrap_or(&lease.name)
            .to_owned(),
        name: lease.name.clone(),
        owner: lease.owner.clone(),
        token: lease.token,
        expires_at: rfc3339(lease.expires_at),
        live: lease.expires_at > now,
    }
}
