//! Capability routing: agents publish their kind, capabilities and load in
//! the registry ([`AgentSpec::registry`](crate::AgentSpec::registry)), and
//! [`route`] picks the live agent with a capability and the lowest load.
//!
//! This module is not a load balancer across machines; it reads one
//! process's registry.

use foundation_core::ProcessStatus;
use foundation_core::registry::{Query, Registration, Registry, Value};
use foundation_error::{Error, ErrorCode};

use crate::agent::Agent;
use crate::server::{AgentRef, AgentServer, CAPABILITY_ATTRIBUTE, LOAD_ATTRIBUTE};

/// The live agent of kind `A` with `capability` and the lowest load (ties:
/// the first name in order). Live: running, starting or restarting (its
/// messages queue); an agent its supervisor holds stopped is skipped.
///
/// # Errors
///
/// `data_not_found` when no live agent of kind `A` has the capability.
pub fn route<A: Agent>(registry: &Registry, capability: &str) -> Result<AgentRef<A>, Error> {
    candidates(registry, capability)
        .filter_map(|(load, registration)| {
            registration
                .process
                .downcast::<AgentServer<A>>()
                .map(|actor| (load, AgentRef::from(actor)))
        })
        .min_by_key(|(load, _)| *load)
        .map(|(_, agent)| agent)
        .ok_or_else(|| no_agent(capability))
}

/// As [`route`], for agents of any kind: the registration of the live
/// agent with `capability` and the lowest load.
///
/// # Errors
///
/// `data_not_found` when no live agent has the capability.
pub fn route_any(registry: &Registry, capability: &str) -> Result<Registration, Error> {
    candidates(registry, capability)
        .min_by_key(|(load, _)| *load)
        .map(|(_, registration)| registration)
        .ok_or_else(|| no_agent(capability))
}

fn candidates(registry: &Registry, capability: &str) -> impl Iterator<Item = (i64, Registration)> {
    registry
        .query(&Query::new().eq(CAPABILITY_ATTRIBUTE, capability))
        .into_iter()
        .filter(|registration| {
            // Live: running, or about to run with its messages queued.
            matches!(
                registration.process.status(),
                ProcessStatus::Running | ProcessStatus::Restarting | ProcessStatus::Starting
            )
        })
        .map(|registration| {
            let load = match registration.metadata.get(LOAD_ATTRIBUTE) {
                Some(Value::Int(load)) => *load,
                _ => i64::MAX,
            };
            (load, registration)
        })
}

fn no_agent(capability: &str) -> Error {
    Error::new(
        ErrorCode::DATA_NOT_FOUND,
        format!("no live agent offers the capability {capability}"),
    )
    .with_context("capability", capability)
}
