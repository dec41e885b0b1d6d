//! jido-system: Foundation's integration crate. One application wires
//! every component into a supervision tree; the `jido-system` binary serves
//! it over HTTP and drives it from the command line.
//!
//! This is the only crate that knows HTTP (axum) or the command line
//! (clap), and the only one that installs the Prometheus recorder; nothing
//! below it does.
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`app`] | [`Application`]: the `rest_for_one` tree (store, flags, error tracker, registry, task supervisor, signal router, agents, workflow engine, coordinators, deployment monitor, HTTP) |
//! | [`flags`] | the six rollout flags and [`PersistFlagStore`](flags::PersistFlagStore), foundation-flags' store on foundation-persist |
//! | [`works`] | the plan's demo works, with `delay_ms`, `fail_times` and `executions` |
//! | [`http`] | the HTTP API: routes, guards, the status mapping, the OpenAPI document |
//! | [`cli`] | the command line: clap definitions, client commands, offline backup/restore, exit codes |
//! | [`demo`] | `jido-system demo`, the scripted walk-through of the plan |
//! | [`token`] | the API token: `JIDO_TOKEN`, `--token-file` (one file several nodes share) or the data directory's `token` file (0600) |
//! | [`metrics`] | metric names |
//!
//! # Several nodes
//!
//! `serve --store postgres://...` (or `JIDO_STORE`) keeps the state in a
//! PostgreSQL database several nodes share, each with its own `--node-id`
//! (default `hostname-pid`). [`app::cluster`] holds the node's lease and
//! keeps its flags and rollout phase in step with the other nodes (change
//! notifications, a one-second poll as the fallback); `GET
//! /api/v1/cluster` and the dashboard list the nodes and the workflows'
//! leases. On a PostgreSQL store the workflow engine runs in jido-workflow's
//! multi-node mode with the node id as owner: a dead node's workflows
//! resume on another node once their leases expire (`--lease-ttl`).
//!
//! # The six flags
//!
//! Each gates a real behaviour; the rollout plan's phases set them (phase 0,
//! the baseline: all off).
//!
//! | flag | on | off |
//! | --- | --- | --- |
//! | `use_persistent_agents` | TaskAgent and MonitorAgent save their state before every reply and restore it after a crash | they run volatile (state lost on a crash). A change takes effect at once: the `agents` child watches the flag and swaps its agents for ones in the new mode (a volatile agent's queue is lost in the swap; calls during it fail with a retryable error); no other child restarts |
//! | `use_v2_coordinator` | workflow starts go to CoordinatorV2 (durable engine, journal) for this percentage of coordinator ids (the idempotency key, or a fresh id) | they go to legacy CoordinatorV1 (in memory) |
//! | `use_new_error_handling` | API errors in the portable classified form (`PortableError`: code, name, category, severity, context); store and engine calls of the handlers retried on infrastructure errors | legacy `{"error": "message"}`, no retries |
//! | `use_sync_test_apis` | `?wait=true` on `POST /api/v1/workflows`, `PUT /api/v1/flags/{name}`, `POST /api/v1/workflows/{id}/cancel` and `GET /api/v1/workflows/{id}` answers once the effect is durable and visible (the workflow finished, the value read back), at most 60 s | `?wait=true` is refused with 422 |
//! | `enforce_supervised_tasks` | a workflow step that the task supervisor refuses (it is restarting or stopped) waits for it (at most 60 s, then it is reported interrupted and runs again) and runs under it | it runs as an unsupervised task, with a warning and `jido_system_unsupervised_work_total` |
//! | `use_reliable_messaging` | application signals (`jido.workflow.signal`) are routed with acknowledgements, and deliveries feed the deployment monitor | fire-and-forget |
//!
//! # Errors at the HTTP edge
//!
//! One mapping, [`http::status_for`], from an error code to a status:
//! validation 400, `authentication_failed` 401, not found 404, conflicts
//! 409, `payload_too_large` 413, business rules 422, `rate_limited` 429
//! (with `Retry-After`), other infrastructure errors 503, the rest 500.

pub mod app;
pub mod cli;
pub mod demo;
pub mod flags;
pub mod http;
pub mod metrics;
pub mod token;
pub mod works;

pub use app::{Application, ApplicationBuilder};
