//! The OpenAPI document of the HTTP API, generated with utoipa from the
//! handlers' annotations and the DTOs' schemas (`GET
//! /api/v1/openapi.json`). A test checks that every documented operation is
//! routed and every route documented.
//!
//! This module is not for serving it (`api.rs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::cluster::{self, ClusterResponse, LeaseView, NodeView};
use super::counts::{self, CountsResponse};
use super::dto::*;
use super::restarts::{self, RestartView, RestartsResponse};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "jido-system", description = "Foundation's application API: flags, the rollout, workflows, agents, alerts."),
    paths(
        api::health, api::metrics, api::openapi,
        api::list_flags, api::set_flag,
        api::rollout, api::advance, api::rollback, api::emergency_rollback,
        api::start_workflow, api::list_workflows, api::workflow, api::cancel_workflow, api::signal_workflow,
        api::agents, api::alerts, api::ack_alert, counts::counts,
        restarts::restarts, cluster::cluster,
    ),
    components(schemas(
        SetFlagRequest, FlagView, FlagsResponse, RolloutActionRequest, PhaseView, CheckView,
        HealthView, TransitionView, RolloutResponse, StartWorkflowRequest, StartedResponse,
        StepViewDto, WorkflowView, WorkflowListResponse, CancelRequest, AcceptedResponse,
        HealthResponse, AgentsResponse, AlertsResponse, CountsResponse,
        RestartView, RestartsResponse, ClusterResponse, NodeView, LeaseView,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
