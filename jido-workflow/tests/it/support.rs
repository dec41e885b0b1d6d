//! Shared test fixtures: works that count their executions, an executor
//! whose running works a test can kill, engines on in-memory stores.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use foundation_core::TaskSupervisor;
use foundation_error::Error;
use foundation_error::clock::{SharedClock, TokioClock};
use foundation_persist::{Store, StoreOptions};
use jido_workflow::{
    StepAbort, StepExecutor, StepInput, StepJob, TaskExecutor, WorkRegistry, WorkflowDefinition,
    WorkflowEngine,
};
use serde_json::json;

/// The plan's 5-task workflow: 3 parallel, then 2 sequential.
pub(crate) const PLAN: &str = r#"{
  "name": "integration_test_workflow",
  "steps": [
    {"parallel": [
      {"task": {"id": "task1", "work": "process_data"}},
      {"task": {"id": "task2", "work": "validate_data"}},
      {"task": {"id": "task3", "work": "transform_data"}}
    ]},
    {"sequential": [
      {"task": {"id": "task4", "work": "aggregate_results"}},
      {"task": {"id": "task5", "work": "save_results"}}
    ]}
  ]
}"#;

pub(crate) const PLAN_WORKS: [&str; 5] = [
    "process_data",
    "validate_data",
    "transform_data",
    "aggregate_results",
    "save_results",
];

pub(crate) fn plan() -> WorkflowDefinition {
    WorkflowDefinition::from_json(PLAN).expect("the plan's definition is valid")
}

/// Executions per idempotency key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Executions(Arc<Mutex<HashMap<String, u32>>>);

impl Executions {
    pub(crate) fn record(&self, key: &str) {
        *self
            .0
            .lock()
            .expect("not poisoned")
            .entry(key.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn total(&self) -> u32 {
        self.0.lock().expect("not poisoned").values().sum()
    }

    pub(crate) fn of(&self, key: &str) -> u32 {
        self.0
            .lock()
            .expect("not poisoned")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// How long a work takes: a future the test makes (a paused test makes a
/// tokio sleep, which only advances virtual time).
pub(crate) type Pause = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A [`Pause`] from a closure written in the test.
pub(crate) fn pause<F, Fut>(make: F) -> Pause
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move || Box::pin(make()))
}

/// The plan's works: each records its execution, takes the test's
/// `pause`, and returns how many outputs it saw.
pub(crate) fn plan_works(executions: &Executions, pause: Pause) -> WorkRegistry {
    let mut works = WorkRegistry::new();
    for name in PLAN_WORKS {
        let executions = executions.clone();
        let pause = Arc::clone(&pause);
        works.register(name, move |input: StepInput| {
            let executions = executions.clone();
            let wait = pause();
            async move {
                executions.record(&input.idempotency_key);
                wait.await;
                Ok(json!({"step": input.step_id, "saw": input.outputs.len()}))
            }
        });
    }
    works
}

/// An executor whose running works the test can kill, as if the task
/// agent running them died.
#[derive(Debug)]
pub(crate) struct KillableExecutor {
    inner: TaskExecutor,
    running: Mutex<Vec<StepAbort>>,
}

impl KillableExecutor {
    pub(crate) fn new() -> Arc<KillableExecutor> {
        Arc::new(KillableExecutor {
            inner: TaskExecutor::new(TaskSupervisor::new("test_tasks")),
            running: Mutex::new(Vec::new()),
        })
    }

    /// Aborts every work started so far; returns how many were live.
    pub(crate) fn kill_all(&self) -> usize {
        let aborts: Vec<StepAbort> =
            std::mem::take(&mut *self.running.lock().expect("not poisoned"));
        let live = self.inner.tasks().live_tasks();
        for abort in aborts {
            abort.abort();
        }
        live
    }
}

impl StepExecutor for KillableExecutor {
    fn execute(&self, job: StepJob) -> Result<StepAbort, Error> {
        let abort = self.inner.execute(job)?;
        let mut running = self.running.lock().expect("not poisoned");
        running.push(abort.clone());
        Ok(abort)
    }
}

pub(crate) fn clock() -> SharedClock {
    Arc::new(TokioClock::following(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ))
}

pub(crate) fn memory_store() -> Store {
    Store::open_in_memory(&StoreOptions::new()).expect("an in-memory store opens")
}

pub(crate) async fn engine(
    store: &Store,
    works: WorkRegistry,
    clock: &SharedClock,
) -> WorkflowEngine {
    let mut builder = WorkflowEngine::builder(store.clone(), works);
    builder.clock(Arc::clone(clock));
    builder.start().await.expect("the engine starts")
}

/// Each task's `step_succeeded` count, and whether any task started
/// again after it succeeded.
pub(crate) async fn recorded(engine: &WorkflowEngine, id: &str) -> (HashMap<String, u32>, bool) {
    let history = engine.history(id).await.expect("history reads");
    let mut succeeded: HashMap<String, u32> = HashMap::new();
    let mut restarted_after_success = false;
    for entry in history {
        let Some(step) = entry.step else { continue };
        match entry.kind {
            "step_succeeded" => *succeeded.entry(step).or_default() += 1,
            "step_started" if succeeded.contains_key(&step) => restarted_after_success = true,
            _ => {}
        }
    }
    (succeeded, restarted_after_success)
}
