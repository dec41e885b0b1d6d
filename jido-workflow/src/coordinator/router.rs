//! Routing between the coordinators by the flag `use_v2_coordinator`, and
//! the migration of V1's in-flight workflows to V2.
//!
//! A start is routed by the caller's coordinator id: the flag's stable
//! bucketing (foundation-flags, Unleash's murmur3 buckets) sends the same
//! id to the same coordinator for a given percentage, and raising the
//! percentage only moves ids from V1 to V2. The migration takes every
//! workflow V1 has in flight and starts it on V2 with the results it
//! already has (those tasks do not run again) and the metadata
//! `{migrated: true, original_step, v1_id}` merged into its own.
//!
//! This module is not for running workflows (see `process`).

use std::time::Duration;

use foundation_core::ActorRef;
use foundation_error::{Error, ErrorCode};
use foundation_flags::Flags;
use serde_json::{Map, Value, json};

use super::{CoordinatorV1, CoordinatorV2Ref, V1Call, V1Reply};
use crate::definition::WorkflowDefinition;

/// The flag that routes starts to V2 (off, on, or a percentage of
/// coordinator ids).
pub const USE_V2_COORDINATOR: &str = "use_v2_coordinator";

/// How long a call to a coordinator waits.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which coordinator served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoordinatorVersion {
    /// The legacy coordinator.
    V1,
    /// The thin, durable coordinator.
    V2,
}

impl CoordinatorVersion {
    /// `"v1"` or `"v2"` (the cohort name for the deployment monitor).
    pub fn as_str(self) -> &'static str {
        match self {
            CoordinatorVersion::V1 => "v1",
            CoordinatorVersion::V2 => "v2",
        }
    }
}

/// A routed start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Routed {
    /// The workflow's id (on the coordinator that serves it).
    pub workflow_id: String,
    /// Which coordinator serves it.
    pub version: CoordinatorVersion,
}

/// Routes starts to V1 or V2 and migrates V1's workflows.
#[derive(Debug, Clone)]
pub struct CoordinatorRouter {
    flags: Flags,
    v1: ActorRef<CoordinatorV1>,
    v2: CoordinatorV2Ref,
}

impl CoordinatorRouter {
    /// A router over the two coordinators (`v2`: CoordinatorV2's child
    /// spec handle or a [`CoordinatorV2Ref`]). The flag must be declared.
    ///
    /// # Errors
    ///
    /// `flag_not_found` when `use_v2_coordinator` is not declared.
    pub fn new(
        flags: Flags,
        v1: ActorRef<CoordinatorV1>,
        v2: impl Into<CoordinatorV2Ref>,
    ) -> Result<CoordinatorRouter, Error> {
        flags.handle(USE_V2_COORDINATOR)?;
        Ok(CoordinatorRouter {
            flags,
            v1,
            v2: v2.into(),
        })
    }

    /// Which coordinator serves `coordinator_id` now.
    pub fn route(&self, coordinator_id: &str) -> CoordinatorVersion {
        if self
            .flags
            .is_enabled_for(USE_V2_COORDINATOR, coordinator_id)
        {
            CoordinatorVersion::V2
        } else {
            CoordinatorVersion::V1
        }
    }

    /// Starts a workflow on the coordinator the flag picks for
    /// `coordinator_id`.
    ///
    /// # Errors
    ///
    /// The coordinator's errors (validation, storage, a coordinator that is
    /// restarting: `process_not_alive`, retryable).
    ///
    /// # Cancel safety
    ///
    /// If dropped after the coordinator received the request, the workflow
    /// may have started.
    pub async fn start_workflow(
        &self,
        coordinator_id: &str,
        definition: WorkflowDefinition,
        metadata: Value,
    ) -> Result<Routed, Error> {
        self.start_on(self.route(coordinator_id), None, definition, metadata)
            .await
    }

    /// Starts a workflow on `version` whatever the flag says now (a retry
    /// of a start routed earlier), under `workflow_id` when given (V2
    /// only: see [`StartWorkflow::workflow`](super::StartWorkflow::workflow)).
    ///
    /// # Errors
    ///
    /// `invalid_input` for a given id on V1 (it picks its own ids);
    /// `already_exists` when a V2 workflow of that id exists or is
    /// starting; otherwise as for
    /// [`start_workflow`](CoordinatorRouter::start_workflow).
    ///
    /// # Cancel safety
    ///
    /// As for [`start_workflow`](CoordinatorRouter::start_workflow).
    pub async fn start_on(
        &self,
        version: CoordinatorVersion,
        workflow_id: Option<&str>,
        definition: WorkflowDefinition,
        metadata: Value,
    ) -> Result<Routed, Error> {
        let workflow_id = match version {
            CoordinatorVersion::V2 => match workflow_id {
                Some(id) => {
                    self.v2
                        .start_workflow_with_id(id, definition, metadata)
                        .await?
                }
                None => self.v2.start_workflow(definition, metadata).await?,
            },
            CoordinatorVersion::V1 if workflow_id.is_some() => {
                return Err(Error::new(
                    ErrorCode::INVALID_INPUT,
                    "CoordinatorV1 picks its own workflow ids; a given id needs CoordinatorV2",
                ));
            }
            CoordinatorVersion::V1 => {
                match self
                    .v1
                    .call_timeout(
                        V1Call::StartWorkflow {
                            definition,
                            metadata,
                        },
                        CALL_TIMEOUT,
                    )
                    .await?
                {
                    V1Reply::Started(id) => id,
                    other => return Err(unexpected(&other)),
                }
            }
        };
        Ok(Routed {
            workflow_id,
            version,
        })
    }

    /// Moves every workflow V1 has in flight to V2; returns the V1 id and
    /// the new V2 id of each.
    ///
    /// # Errors
    ///
    /// The coordinators' errors. Workflows taken from V1 before an error
    /// that were not started on V2 are lost, as a V1 crash would lose them.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping it part-way loses the workflows taken from
    /// V1 and not yet started on V2.
    pub async fn migrate_v1_to_v2(&self) -> Result<Vec<(String, String)>, Error> {
        let taken = match self
            .v1
            .call_timeout(V1Call::TakeInFlight, CALL_TIMEOUT)
            .await?
        {
            V1Reply::InFlight(taken) => taken,
            other => return Err(unexpected(&other)),
        };
        let mut moved = Vec::with_capacity(taken.len());
        for workflow in taken {
            let mut metadata = match workflow.metadata {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                other => {
                    let mut map = Map::new();
                    map.insert("original_metadata".into(), other);
                    map
                }
            };
            metadata.insert("migrated".into(), json!(true));
            metadata.insert("original_step".into(), json!(workflow.original_step));
            metadata.insert("v1_id".into(), json!(workflow.id));
            let id = self
                .v2
                .start_migrated(
                    workflow.definition,
                    Value::Object(metadata),
                    workflow.completed,
                )
                .await?;
            moved.push((workflow.id, id));
        }
        Ok(moved)
    }
}

fn unexpected(reply: &dyn std::fmt::Debug) -> Error {
    Error::new(
        ErrorCode::INTERNAL_ERROR,
        format!("a coordinator answered with an unexpected reply: {reply:?}"),
    )
}
