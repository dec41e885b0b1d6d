//! Reliable signal routing: CloudEvents-shaped [`Signal`]s routed by type
//! pattern to handler actors, with a report of what happened to each
//! delivery and acknowledged routing when the caller must know.
//!
//! This replaces the original system's fire-and-forget routing and its use
//! of telemetry as control flow: `route` says how many handlers got the
//! signal, `route_sync` waits for each to acknowledge (1 s each, 5 s in
//! all by default) and reports handlers that died instead of losing them.

mod event;
mod pattern;
mod router;

pub use event::Signal;
pub use pattern::Pattern;
pub use router::{
    AckOutcome, DEFAULT_ACK_TIMEOUT, DEFAULT_MAX_QUEUE, DEFAULT_SYNC_TIMEOUT, DEFAULT_WARN_QUEUE,
    Delivery, RouteReport, RouterStats, SIGNALS_DELIVERED_TOTAL, SIGNALS_DROPPED_TOTAL,
    SIGNALS_FAILED_TOTAL, SIGNALS_ROUTED_TOTAL, SignalRouter, SignalRouterBuilder, SubscriptionId,
    SyncRouteReport,
};
