//! Works: the named units of application code that tasks call, and the
//! registry that maps a task's `work` name to one.
//!
//! A work receives a [`StepInput`] (its parameters, the outputs of the
//! steps completed before it, and an idempotency key stable across
//! re-runs) and returns a JSON value or an error. Errors whose code is
//! retryable (infrastructure: timeouts, unavailable services) are retried
//! by the task's retry policy; others fail the step at once.
//!
//! Two names are built in and run by the workflow process itself, never
//! by a work: [`DELAY`] and [`AWAIT_SIGNAL`]. This module is not for
//! where works run (see `executor`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use foundation_error::Error;
use serde_json::Value;

/// The built-in durable delay: `{"work": "delay", "params": {"duration_ms": N}}`.
/// Its deadline is a wall-clock time in the journal, so a restart waits
/// only for the time remaining.
pub const DELAY: &str = "delay";

/// The built-in wait for an external signal:
/// `{"work": "await_signal", "params": {"signal": "approved"}, "timeout_ms": N}`.
/// The step's output is the signal's payload; a signal that arrived before
/// the step started is kept for it. Without the signal before the timeout
/// the step fails with `timeout` (not retried).
pub const AWAIT_SIGNAL: &str = "await_signal";

/// A boxed future of a work's result.
pub type WorkFuture = Pin<Box<dyn Future<Output = Result<Value, Error>> + Send + 'static>>;

/// What a work is given.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepInput {
    /// The workflow's id.
    pub workflow_id: Arc<str>,
    /// The task's id.
    pub step_id: String,
    /// The task's path in the definition, for example `steps[0].parallel[2]`.
    pub path: String,
    /// `"{workflow_id}/{path}"` (with `/compensate` for a compensation):
    /// the same for every run of this step, so the work can make its side
    /// effects idempotent.
    pub idempotency_key: String,
    /// The attempt (1 for the first run; re-runs after a crash count too).
    pub attempt: u32,
    /// The task's parameters.
    pub params: Value,
    /// The outputs of the steps completed before this one started, by task
    /// id.
    pub outputs: Arc<BTreeMap<String, Value>>,
}

/// Application code a task runs. Implemented for closures
/// `Fn(StepInput) -> impl Future<Output = Result<Value, Error>>`.
pub trait Work: Send + Sync + 'static {
    /// Runs the work once.
    fn run(&self, input: StepInput) -> WorkFuture;
}

impl<F, Fut> Work for F
where
    F: Fn(StepInput) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, Error>> + Send + 'static,
{
    fn run(&self, input: StepInput) -> WorkFuture {
        Box::pin(self(input))
    }
}

/// The works an engine knows, by name.
///
/// ```
/// use jido_workflow::WorkRegistry;
/// use serde_json::json;
///
/// let mut works = WorkRegistry::new();
/// works.register("echo", |input: jido_workflow::StepInput| async move { Ok(input.params) });
/// assert!(works.contains("echo"));
/// ```
#[derive(Clone, Default)]
pub struct WorkRegistry {
    works: HashMap<String, Arc<dyn Work>>,
}

impl fmt::Debug for WorkRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.works.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("WorkRegistry")
            .field("works", &names)
            .finish()
    }
}

impl WorkRegistry {
    /// An empty registry.
    pub fn new() -> WorkRegistry {
        WorkRegistry::default()
    }

    /// Registers `work` under `name`, replacing any earlier one.
    pub fn register(&mut self, name: impl Into<String>, work: impl Work) -> &mut Self {
        self.works.insert(name.into(), Arc::new(work));
        self
    }

    /// Whether `name` is registered (built-ins are not listed here).
    pub fn contains(&self, name: &str) -> bool {
        self.works.contains_key(name)
    }

    /// The work registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Work>> {
        self.works.get(name).cloned()
    }
}
