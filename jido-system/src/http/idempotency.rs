//! Idempotent workflow starts: an `idempotency_key` names one workflow for
//! good, also across a crash of the server between the start and its
//! answer.
//!
//! The key is reserved durably *before* anything starts: one
//! compare-and-set write of key -> (workflow id, coordinator, the
//! request's fingerprint) in the keyspace `jido_system_idempotency`. For
//! CoordinatorV2 the id is chosen here and the start uses it
//! ([`CoordinatorRouter::start_on`]), so every crash point is covered:
//!
//! - killed after the reservation, before the start: the retry finds the
//!   reservation, sees that the engine has no workflow of that id, and
//!   starts it under that id (201);
//! - killed after the start: the retry finds the workflow (200,
//!   `existing`);
//! - two starts of one id race (a retry while a timed-out start is still
//!   on its way, or two servers on one store): the engine creates a
//!   workflow id once (`already_exists` for the other), so there is still
//!   one workflow.
//!
//! Legacy CoordinatorV1 picks its own ids and keeps its workflows in
//! memory only: its reservation gets the id once V1 answers, and the retry
//! of a V1 reservation that never got one starts again on V1 (a crash that
//! left it so also took V1's memory with it).
//!
//! The key is the body's `idempotency_key` or the `Idempotency-Key`
//! header (both given: they must agree).
//!
//! A key reused with a different request (another definition or other
//! metadata) is refused with `already_exists` (HTTP 409) naming the key;
//! keys stored before fingerprints existed (schema 1) match any request.
//!
//! Test-only fault hook: with `JIDO_FAULT_CRASH_AFTER=idempotency_reservation`
//! in its environment the server aborts (`std::process::abort`, as abrupt
//! as SIGKILL) right after a reservation is durable, so a test can crash
//! it exactly in the window.
//!
//! This module is not for the HTTP handler (`api.rs`) or for starts
//! without a key.

use std::sync::OnceLock;

use foundation_error::{Error, ErrorCode};
use foundation_persist::{Migrations, Record, StateStore};
use jido_workflow::WorkflowDefinition;
use jido_workflow::coordinator::CoordinatorVersion;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ApiState;
use crate::app::Coordinators;

/// The keyspace of idempotency keys.
pub(crate) const IDEMPOTENCY_KEYSPACE: &str = "jido_system_idempotency";
/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Lock stripes serialising starts with the same idempotency key in this
/// process (the compare-and-set serialises them across processes).
const KEY_STRIPES: usize = 64;
/// The header that may carry the key instead of the body.
const KEY_HEADER: &str = "idempotency-key";
/// The environment variable of the test-only fault hook.
const CRASH_AFTER_ENV: &str = "JIDO_FAULT_CRASH_AFTER";
/// The crash point right after a reservation is durable.
const AFTER_RESERVATION: &str = "idempotency_reservation";

/// A reserved key (schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotentStart {
    /// The workflow id; empty for a CoordinatorV1 start not answered yet.
    id: String,
    /// `v1` or `v2`.
    coordinator: String,
    /// The request's fingerprint (empty: stored before fingerprints, any
    /// request matches).
    fingerprint: String,
}

/// A reserved key as schema 1 stored it (after the start, without a
/// fingerprint).
#[derive(Debug, Deserialize)]
struct IdempotentStartV1 {
    id: String,
    coordinator: String,
}

impl Record for IdempotentStart {
    const TYPE_TAG: &'static str = "jido_system_idempotent_start";
    const SCHEMA_VERSION: u32 = 2;

    fn migrations(migrations: &mut Migrations) {
        migrations.add(1, |old: IdempotentStartV1| IdempotentStart {
            id: old.id,
            coordinator: old.coordinator,
            fingerprint: String::new(),
        });
    }
}

/// The outcome of a keyed start.
#[derive(Debug)]
pub(super) struct KeyedStart {
    /// The workflow's id.
    pub(super) id: String,
    /// `v1` or `v2`.
    pub(super) coordinator: String,
    /// Whether the workflow existed before this request.
    pub(super) existing: bool,
}

fn key_lock(key: &str) -> &'static tokio::sync::Mutex<()> {
    static STRIPES: OnceLock<Vec<tokio::sync::Mutex<()>>> = OnceLock::new();
    let stripes = STRIPES.get_or_init(|| {
        (0..KEY_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect()
    });
    let hash = foundation_flags::murmur3_x86_32(key.as_bytes(), 0) as usize;
    &stripes[hash % KEY_STRIPES]
}

/// The request's fingerprint: SHA-256 over the definition's hash and the
/// metadata's JSON text (keys sorted), as 32 hex digits.
fn fingerprint(definition: &WorkflowDefinition, metadata: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(definition.hash().as_str().as_bytes());
    hasher.update([0]);
    hasher.update(metadata.to_string().as_bytes());
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn version_of(text: &str) -> Result<CoordinatorVersion, Error> {
    match text {
        "v1" => Ok(CoordinatorVersion::V1),
        "v2" => Ok(CoordinatorVersion::V2),
        other => Err(Error::new(
            ErrorCode::DATA_CORRUPTION,
            format!("an idempotency key names the unknown coordinator {other:?}"),
        )),
    }
}

/// Aborts the process when the test-only fault hook names `point`.
fn crash_point(point: &str) {
    static CRASH_AFTER: OnceLock<Option<String>> = OnceLock::new();
    let armed = CRASH_AFTER.get_or_init(|| std::env::var(CRASH_AFTER_ENV).ok());
    if armed.as_deref() == Some(point) {
        tracing::error!(
            point,
            "{CRASH_AFTER_ENV} is set: aborting the process (test-only fault hook)"
        );
        std::process::abort();
    }
}

/// The request's idempotency key: the body's `idempotency_key` or the
/// `Idempotency-Key` header.
///
/// # Errors
///
/// `invalid_input` naming the header when it is not visible ASCII or
/// when both are given and differ.
pub(super) fn key_of(
    headers: &axum::http::HeaderMap,
    body: Option<String>,
) -> Result<Option<String>, Error> {
    let header = match headers.get(KEY_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    Error::new(
                        ErrorCode::INVALID_INPUT,
                        "the Idempotency-Key header must be visible ASCII",
                    )
                    .with_context("field", "Idempotency-Key")
                })?
                .to_owned(),
        ),
    };
    match (header, body) {
        (Some(header), Some(body)) if header != body => Err(Error::new(
            ErrorCode::INVALID_INPUT,
            "the Idempotency-Key header and the body's idempotency_key differ",
        )
        .with_context("field", "Idempotency-Key")),
        (header, body) => Ok(body.or(header)),
    }
}

/// Starts `definition` once for `key`; see the module docs.
///
/// # Errors
///
/// `validation_failed` for an empty or over-long key; `already_exists` for
/// a key used with another request; the store's and the coordinators'
/// errors (a retry with the same request then finishes the start).
///
/// # Cancel safety
///
/// Dropped after the reservation, the start may or may not happen; the
/// reservation stays, so a retry with the same request ends with exactly
/// one workflow.
pub(super) async fn start(
    state: &ApiState,
    coordinators: &Coordinators,
    key: &str,
    definition: WorkflowDefinition,
    metadata: Value,
) -> Result<KeyedStart, Error> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(Error::validation(format!(
            "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"
        ))
        .with_context("field", "idempotency_key"));
    }
    // A definition that cannot start reserves nothing.
    definition
        .check_works(&state.shared.works)
        .map_err(|error| error.with_context("field", "definition"))?;
    let keys: StateStore<IdempotentStart> = state.shared.store.state(IDEMPOTENCY_KEYSPACE)?;
    let fingerprint = fingerprint(&definition, &metadata);
    let router = coordinators.router(key);
    let _guard = key_lock(key).lock().await;
    let (reservation, fresh) = match keys.get_versioned(key).await? {
        Some(stored) => (stored, false),
        None => {
            let version = router.route(key);
            // A start refused by fault injection reserves nothing.
            super::api::injected_fault(state, version)?;
            let id = match version {
                CoordinatorVersion::V2 => state.shared.engine.get()?.new_workflow_id(),
                _ => String::new(),
            };
            let record = IdempotentStart {
                id,
                coordinator: version.as_str().to_owned(),
                fingerprint: fingerprint.clone(),
            };
            match keys.compare_and_set(key, None, &record).await {
                Ok(written) => {
                    crash_point(AFTER_RESERVATION);
                    (
                        foundation_persist::Versioned {
                            version: written,
                            value: record,
                        },
                        true,
                    )
                }
                // Another server on the same store reserved it first.
                Err(error) if error.code() == ErrorCode::VERSION_CONFLICT => {
                    let stored = keys.get_versioned(key).await?.ok_or(error)?;
                    (stored, false)
                }
                Err(error) => return Err(error),
            }
        }
    };
    let stored = &reservation.value;
    if !stored.fingerprint.is_empty() && stored.fingerprint != fingerprint {
        return Err(Error::new(
            ErrorCode::ALREADY_EXISTS,
            format!(
                "idempotency_key {key:?} was used with another request (definition or metadata); use a new key"
            ),
        )
        .with_context("field", "idempotency_key")
        .with_context("workflow", stored.id.clone()));
    }
    let version = version_of(&stored.coordinator)?;
    let coordinator = stored.coordinator.clone();
    match version {
        CoordinatorVersion::V2 => {
            let id = stored.id.clone();
            if !fresh {
                let engine = state.shared.engine.get()?;
                if engine.summary_status(&id).await?.is_some() {
                    return Ok(KeyedStart {
                        id,
                        coordinator,
                        existing: true,
                    });
                }
                // Reserved, never started (a crash in between): start it now.
                super::api::injected_fault(state, version)?;
            }
            match router
                .start_on(version, Some(&id), definition, metadata)
                .await
            {
                Ok(_) => Ok(KeyedStart {
                    id,
                    coordinator,
                    existing: false,
                }),
                Err(error) if error.code() == ErrorCode::ALREADY_EXISTS => Ok(KeyedStart {
                    id,
                    coordinator,
                    existing: true,
                }),
                Err(error) => Err(error),
            }
        }
        _ if !stored.id.is_empty() => Ok(KeyedStart {
            id: stored.id.clone(),
            coordinator,
            existing: true,
        }),
        _ => {
            let routed = router.start_on(version, None, definition, metadata).await?;
            let record = IdempotentStart {
                id: routed.workflow_id.clone(),
                coordinator: coordinator.clone(),
                fingerprint: stored.fingerprint.clone(),
            };
            keys.compare_and_set(key, Some(reservation.version), &record)
                .await?;
            Ok(KeyedStart {
                id: routed.workflow_id,
                coordinator,
                existing: false,
            })
        }
    }
}
