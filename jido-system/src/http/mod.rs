//! The HTTP API (axum): the router, the request guards (auth, rate limit,
//! body limit, JSON decoding that names the field at fault), and the
//! server, run as a task of the application's task supervisor.
//!
//! Reads are open to loopback clients; everything else needs
//! `Authorization: Bearer TOKEN` (compared in constant time). Writes need
//! the token always and are rate limited per client address with
//! foundation-core's rate limiter (429 with `Retry-After`). Bodies over
//! 1 MiB are refused with 413. Errors map to statuses in one place
//! ([`error::status_for`]).
//!
//! This module is not for behaviour: handlers (`api.rs`) call the
//! components the application published.

mod api;
pub mod cluster;
pub mod counts;
pub mod dto;
pub mod error;
mod guard;
mod idempotency;
pub mod openapi;
pub mod restarts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post, put};
use deploy_monitor::{Cohort, RequestOutcome};
use foundation_core::rate_limiter::{Limiter, RateLimiter};
use foundation_error::{Error, ErrorCode, Result};
use tokio::sync::watch;

use crate::app::Shared;
use crate::app::spawn;

pub use error::{ApiError, status_for};

/// The largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The rate limiter id of writes.
pub const WRITE_LIMITER: &str = "jido_system_http_writes";

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) writes: Limiter,
    /// The workflow counts of `GET /api/v1/counts` (see `counts.rs`).
    pub(crate) counts: Arc<counts::CountsCache>,
}

/// The router of the whole API on `shared` (without a listener: tests and
/// benchmarks drive it directly too).
///
/// # Errors
///
/// `invalid_config_value` for a write limit of 0.
pub fn router(shared: Arc<Shared>) -> Result<Router> {
    let mut limiter = RateLimiter::builder();
    limiter.clock(Arc::clone(&shared.clock));
    let limiter = limiter.build()?;
    let writes = limiter.configure(
        WRITE_LIMITER,
        shared.http.write_limit,
        shared.http.write_window,
    )?;
    let max_body = shared.http.max_body_bytes;
    let state = ApiState {
        shared,
        writes,
        counts: Arc::new(counts::CountsCache::default()),
    };
    Ok(Router::new()
        .route("/", get(api::dashboard))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/flags", get(api::list_flags))
        .route("/api/v1/flags/{name}", put(api::set_flag))
        .route("/api/v1/rollout", get(api::rollout))
        .route("/api/v1/rollout/advance", post(api::advance))
        .route("/api/v1/rollout/rollback", post(api::rollback))
        .route(
            "/api/v1/rollout/emergency-rollback",
            post(api::emergency_rollback),
        )
        .route(
            "/api/v1/workflows",
            post(api::start_workflow).get(api::list_workflows),
        )
        .route("/api/v1/workflows/{id}", get(api::workflow))
        .route("/api/v1/workflows/{id}/cancel", post(api::cancel_workflow))
        .route(
            "/api/v1/workflows/{id}/signals/{name}",
            post(api::signal_workflow),
        )
        .route("/api/v1/agents", get(api::agents))
        .route("/api/v1/counts", get(counts::counts))
        .route("/api/v1/restarts", get(restarts::restarts))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/alerts/{id}/ack", post(api::ack_alert))
        .route("/api/v1/cluster", get(cluster::cluster))
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::no_method)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state))
}

/// Records every request in the `jido_system_http_*` metrics, and the
/// workflow requests in the deployment monitor's request window (5xx
/// answers count as errors).
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = state.shared.clock.elapsed();
    let response = next.run(request).await;
    let elapsed = state.shared.clock.elapsed().saturating_sub(started);
    let status = response.status();
    let class = match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(
        crate::metrics::HTTP_REQUESTS_TOTAL,
        "method" => method,
        "route" => route.clone(),
        "status" => class
    )
    .increment(1);
    metrics::histogram!(crate::metrics::HTTP_REQUEST_DURATION_SECONDS, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    // Only the workload (workflow starts, reads, cancels, signals) is
    // judged: operators' and the dashboard's reads of the rollout, flags
    // and alerts are not what a canary changes, and counting them let a
    // slow admin read fail the latency check of an idle server.
    if route.starts_with("/api/v1/workflows")
        && let Ok(monitor) = state.shared.monitor.get()
    {
        let outcome = if status.is_server_error() {
            RequestOutcome::Error
        } else {
            RequestOutcome::Success
        };
        monitor
            .recorder()
            .record_request(Cohort::Unassigned, elapsed, outcome);
    }
    response
}

/// The running server: stop it gracefully or abort it.
pub struct ServerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    address: SocketAddr,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("address", &self.address)
            .finish()
    }
}

impl ServerHandle {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish for at most
    /// `timeout`, then aborts the rest.
    ///
    /// # Cancel safety
    ///
    /// The stop is requested before the first wait; dropping the future
    /// only stops waiting (the server still stops).
    pub async fn stop(self, timeout: Duration) {
        // Fails only when the server task has already ended: nothing to stop.
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
            tracing::warn!(address = %self.address, "the HTTP server did not stop in time; aborted");
        }
    }

    /// Aborts the server at once.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Binds the listen address (the same port again after a restart when it
/// was 0) and runs the server as a task the `http` part owns (not under
/// the task supervisor: a restart of the `tasks` child alone leaves it
/// serving).
///
/// # Errors
///
/// The bind's I/O errors (`address in use`: another server listens).
pub async fn serve(shared: Arc<Shared>) -> Result<ServerHandle> {
    let mut listen = shared.http.listen;
    if listen.port() == 0
        && let Some(previous) = *shared.address.borrow()
    {
        listen = previous;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| Error::from(error).with_context("listen", listen))?;
    let address = listener.local_addr().map_err(Error::from)?;
    let app = router(Arc::clone(&shared))?;
    let (stop, mut stopped) = watch::channel(false);
    let server = async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let shutdown = async move {
            // An error means the handle was dropped: stop as well.
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "the HTTP server failed");
        }
    };
    let task = spawn::owned(server);
    shared.address.send_replace(Some(address));
    tracing::info!(%address, "HTTP API listening");
    Ok(ServerHandle {
        stop,
        task,
        address,
    })
}

/// An error for a missing component.
pub(crate) fn unavailable(what: &str) -> Error {
    Error::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        format!("{what} is not available"),
    )
}
