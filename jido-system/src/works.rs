//! The plan's demo works (`process_data`, `validate_data`,
//! `transform_data`, `aggregate_results`, `save_results`), registered by
//! the binary so that anyone can run the plan's workflow and watch retries
//! and crashes.
//!
//! Each does a small deterministic computation on its parameters and
//! accepts `delay_ms` (wait that long first) and `fail_times` (fail with an
//! infrastructure error, `service_unavailable`, on that many runs, then
//! succeed). Each counts its runs per idempotency key in a keyspace of its
//! own (`jido_system_executions`, outside the workflow journal) and reports
//! the count as `executions` in its result, so a recorded step that never
//! runs again shows `executions` unchanged. A count update that fails
//! because the store is unavailable for now (a database restarting) is
//! tried again for up to about 15 s, so a short outage does not fail the
//! step: only `fail_times` makes a demo work fail on purpose.
//!
//! This module is not for running works (jido-workflow does that).

use std::collections::BTreeMap;
use std::time::Duration;

use foundation_error::{Error, ErrorCode, Result};
use foundation_persist::{StateStore, Store};
use jido_workflow::{StepInput, WorkRegistry};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The names of the demo works.
pub const DEMO_WORKS: [&str; 5] = [
    "process_data",
    "validate_data",
    "transform_data",
    "aggregate_results",
    "save_results",
];

/// The keyspace of run counts by idempotency key.
pub const EXECUTIONS_KEYSPACE: &str = "jido_system_executions";
/// The longest `delay_ms` a demo work accepts (one minute).
pub const MAX_DELAY_MS: u64 = 60_000;
/// How often a count update is retried after a concurrent update.
const COUNT_ATTEMPTS: usize = 16;
/// The waits before the count update is tried again after a retryable
/// store error (about 15 s in all); after the last, the error is the
/// work's.
const COUNT_STORE_RETRIES: [Duration; 20] = {
    let mut waits = [Duration::from_secs(1); 20];
    waits[0] = Duration::from_millis(50);
    waits[1] = Duration::from_millis(100);
    waits[2] = Duration::from_millis(200);
    waits[3] = Duration::from_millis(400);
    waits[4] = Duration::from_millis(800);
    waits
};

/// How many times a work has run for one idempotency key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionCount {
    /// Runs started, this one included.
    pub count: u64,
}

impl foundation_persist::Record for ExecutionCount {
    const TYPE_TAG: &'static str = "jido_system_execution_count";
    const SCHEMA_VERSION: u32 = 1;
}

/// The demo works on `store`'s execution counts.
///
/// # Errors
///
/// The store's errors opening the keyspace.
pub fn demo_works(store: &Store) -> Result<WorkRegistry> {
    let counts: StateStore<ExecutionCount> = store.state(EXECUTIONS_KEYSPACE)?;
    let mut works = WorkRegistry::new();
    for name in DEMO_WORKS {
        let counts = counts.clone();
        works.register(name, move |input: StepInput| {
            let counts = counts.clone();
            async move {
                run(
                    name,
                    &counts,
                    &input.params,
                    &input.idempotency_key,
                    &input.outputs,
                )
                .await
            }
        });
    }
    Ok(works)
}

/// The keyspace of run counts in `store`.
///
/// # Errors
///
/// The store's errors opening the keyspace.
pub fn execution_counts(store: &Store) -> Result<StateStore<ExecutionCount>> {
    store.state(EXECUTIONS_KEYSPACE)
}

/// The run count stored for `key` (0 when it never ran).
///
/// # Errors
///
/// The store's errors.
///
/// # Cancel safety
///
/// Safe: a read.
pub async fn executions(store: &Store, key: &str) -> Result<u64> {
    let counts: StateStore<ExecutionCount> = store.state(EXECUTIONS_KEYSPACE)?;
    Ok(counts.get(key).await?.map_or(0, |count| count.count))
}

/// Runs the demo work `name` once: the task agent's handler and the
/// workflow works share it.
///
/// # Errors
///
/// `validation_failed`/`range_error` for bad parameters, `invalid_input`
/// for an unknown work, `service_unavailable` for an injected failure, the
/// store's errors counting the run.
///
/// # Cancel safety
///
/// The run is counted before the work waits; dropping the future after
/// that leaves the count raised (a run that started), as a crash would.
pub(crate) async fn run(
    name: &str,
    counts: &StateStore<ExecutionCount>,
    params: &Value,
    idempotency_key: &str,
    outputs: &BTreeMap<String, Value>,
) -> Result<Value> {
    if !DEMO_WORKS.contains(&name) {
        return Err(Error::new(
            ErrorCode::INVALID_INPUT,
            format!("unknown demo work {name:?}"),
        )
        .with_context("work", name));
    }
    let params = Params::read(params)?;
    let executions = count_run(counts, idempotency_key).await?;
    if params.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(params.delay_ms)).await;
    }
    if executions <= params.fail_times {
        return Err(Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            format!(
                "{name}: injected failure {executions} of {} (fail_times)",
                params.fail_times
            ),
        )
        .with_context("work", name)
        .with_context("executions", executions));
    }
    let mut result = compute(name, &params, outputs);
    if let Value::Object(map) = &mut result {
        map.insert("executions".into(), json!(executions));
        map.insert("work".into(), json!(name));
    }
    Ok(result)
}

/// Adds one to the run count of `key`; returns the new count. A
/// retryable store error is tried again after each of
/// [`COUNT_STORE_RETRIES`]. (A retried update whose first attempt was
/// committed though its answer was lost counts that run twice; the result
/// reports the count it stored, so it still agrees with the store.)
async fn count_run(counts: &StateStore<ExecutionCount>, key: &str) -> Result<u64> {
    let mut waits = COUNT_STORE_RETRIES.iter();
    loop {
        match count_run_once(counts, key).await {
            Err(error) if error.is_retryable() => match waits.next() {
                Some(wait) => {
                    tracing::debug!(%error, key, "the run count could not be stored; trying again");
                    tokio::time::sleep(*wait).await;
                }
                None => return Err(error),
            },
            result => return result,
        }
    }
}

/// One read-and-compare-and-set of the run count, retried on a
/// concurrent update.
async fn count_run_once(counts: &StateStore<ExecutionCount>, key: &str) -> Result<u64> {
    for _ in 0..COUNT_ATTEMPTS {
        let current = counts.get_versioned(key).await?;
        let expected = current.as_ref().map(|versioned| versioned.version);
        let next = ExecutionCount {
            count: current.map_or(0, |versioned| versioned.value.count) + 1,
        };
        match counts.compare_and_set(key, expected, &next).await {
            Ok(_) => return Ok(next.count),
            Err(error) if error.code() == ErrorCode::VERSION_CONFLICT => {}
            Err(error) => return Err(error),
        }
    }
    Err(Error::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        format!("the run count of {key} kept changing under concurrent runs"),
    ))
}

struct Params {
    delay_ms: u64,
    fail_times: u64,
    rows: u64,
}

impl Params {
    fn read(params: &Value) -> Result<Params> {
        let number = |field: &str, default: u64| -> Result<u64> {
            match params.get(field) {
                None | Some(Value::Null) => Ok(default),
                Some(value) => value.as_u64().ok_or_else(|| {
                    Error::validation(format!("{field} must be a non-negative integer"))
                        .with_context("parameter", field)
                }),
            }
        };
        let delay_ms = number("delay_ms", 0)?;
        if delay_ms > MAX_DELAY_MS {
            return Err(Error::new(
                ErrorCode::RANGE_ERROR,
                format!("delay_ms must be at most {MAX_DELAY_MS}"),
            )
            .with_context("parameter", "delay_ms"));
        }
        Ok(Params {
            delay_ms,
            fail_times: number("fail_times", 0)?,
            rows: number("rows", 100)?,
        })
    }
}

/// The deterministic computation of each work.
fn compute(name: &str, params: &Params, outputs: &BTreeMap<String, Value>) -> Value {
    let rows = params.rows;
    match name {
        "process_data" => json!({"processed": rows, "checksum": rows * (rows + 1) / 2}),
        "validate_data" => json!({"validated": rows, "invalid": rows / 50}),
        "transform_data" => json!({"transformed": rows, "columns": 2 * rows.min(64)}),
        "aggregate_results" => {
            let total: u64 = outputs
                .values()
                .filter_map(|output| {
                    ["processed", "validated", "transformed"]
                        .iter()
                        .find_map(|field| output.get(*field).and_then(Value::as_u64))
                })
                .sum();
            json!({"inputs": outputs.len(), "total": total})
        }
        _ => {
            let total = outputs
                .get("task4")
                .and_then(|output| output.get("total"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            json!({"saved": outputs.len(), "total": total})
        }
    }
}
