//! The TaskAgent: queue rules, retries, pausing, and surviving kills.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_core::{TaskSupervisor, testkit};
use foundation_error::{Error, ErrorCode};
use foundation_persist::Store;
use jido_agents::task::{
    PauseTasks, Priority, ResumeTasks, SubmitTask, Task, TaskAgent, TaskAgentArgs, TaskHandler,
    TaskRun, TaskStatus, TaskStatusQuery,
};
use jido_agents::{AgentRef, AgentSpec};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::support::{WAIT, memory_store, supervise};

/// Behaves by task type: `ok`, `fail` (business error), `invalid`
/// (validation error), `flaky` (a timeout error for the first
/// `input.fail_times` attempts), `block` (waits for a permit).
#[derive(Clone)]
struct Scripted {
    runs: Arc<Mutex<Vec<(String, String, u32)>>>,
    gate: Arc<Semaphore>,
}

impl Default for Scripted {
    fn default() -> Self {
        Scripted {
            runs: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Scripted {
    fn runs(&self) -> Vec<(String, String, u32)> {
        self.runs.lock().unwrap().clone()
    }

    fn attempts(&self) -> HashMap<String, u32> {
        let mut attempts = HashMap::new();
        for (id, _, attempt) in self.runs() {
            let entry = attempts.entry(id).or_insert(0);
            *entry = (*entry).max(attempt);
        }
        attempts
    }
}

impl TaskHandler for Scripted {
    async fn run(&self, task: TaskRun) -> Result<serde_json::Value, Error> {
        self.runs.lock().unwrap().push((
            task.id.clone(),
            task.idempotency_key.clone(),
            task.attempt,
        ));
        match task.kind.as_str() {
            "fail" => Err(Error::business("the work refused")),
            "invalid" => Err(Error::new(ErrorCode::VALIDATION_FAILED, "bad input")),
            "flaky" => {
                let fail_times = task.input["fail_times"].as_u64().unwrap_or(0);
                if u64::from(task.attempt) <= fail_times {
                    Err(Error::timeout("the dependency was slow"))
                } else {
                    Ok(json!("recovered"))
                }
            }
            "block" => {
                let permit = self
                    .gate
                    .acquire()
                    .await
                    .map_err(|_| Error::system("closed"))?;
                permit.forget();
                Ok(json!("unblocked"))
            }
            _ => Ok(task.input),
        }
    }
}

type Agent = TaskAgent<Scripted>;

fn spec(handler: &Scripted, tasks: &TaskSupervisor, store: Option<&Store>) -> AgentSpec<Agent> {
    let mut spec = AgentSpec::<Agent>::new("tasks-1", TaskAgentArgs::new(handler.clone()), tasks);
    if let Some(store) = store {
        spec.persistent(store);
    }
    spec
}

async fn submit(agent: &AgentRef<Agent>, id: &str, kind: &str) -> Result<usize, Error> {
    agent
        .run(SubmitTask(Task::new(id, kind, json!({"id": id}))))
        .await
        .map(|receipt| receipt.position)
}

async fn wait_until(
    agent: &AgentRef<Agent>,
    done: impl Fn(&Agent) -> bool + Clone + Send + 'static,
) {
    testkit::wait_for_state(agent.actor(), move |server| done(server.agent()), WAIT)
        .await
        .unwrap();
}

fn queue_ids(agent: &Agent) -> Vec<String> {
    agent
        .state()
        .queue
        .iter()
        .map(|task| task.id.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn high_priority_goes_to_the_front_in_submission_order() {
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let (tree, agent) = supervise(spec(&handler, &tasks, None).child_spec().unwrap()).await;
    agent.run(PauseTasks {}).await.unwrap();
    for (id, priority) in [
        ("low", Priority::Low),
        ("normal-1", Priority::Normal),
        ("high-1", Priority::High),
        ("normal-2", Priority::Normal),
        ("high-2", Priority::High),
    ] {
        agent
            .run(SubmitTask(
                Task::new(id, "ok", json!(null)).priority(priority),
            ))
            .await
            .unwrap();
    }
    let order = agent.inspect(queue_ids).await.unwrap();
    assert_eq!(order, ["high-1", "high-2", "normal-1", "normal-2", "low"]);

    agent.run(ResumeTasks {}).await.unwrap();
    wait_until(&agent, |agent| agent.state().counters.processed == 5).await;
    let ran: Vec<String> = handler.runs().into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ran, order);
    let status = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(status.status, TaskStatus::Idle);
    assert!(status.counters.fastest_us <= status.counters.slowest_us);
    assert!(status.average_duration_ms.is_some());
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_queue_holds_1000_tasks_and_the_1001st_is_queue_full() {
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let (tree, agent) = supervise(spec(&handler, &tasks, None).child_spec().unwrap()).await;
    agent.run(PauseTasks {}).await.unwrap();
    for index in 0..1_000 {
        submit(&agent, &format!("t-{index}"), "ok").await.unwrap();
    }
    let error = submit(&agent, "t-1000", "ok").await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::QUEUE_FULL);
    let duplicate = submit(&agent, "t-5", "ok").await.unwrap_err();
    assert_eq!(duplicate.code(), ErrorCode::ALREADY_EXISTS);
    assert_eq!(agent.run(TaskStatusQuery {}).await.unwrap().queued, 1_000);
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn task_parameters_are_validated_by_name() {
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let (tree, agent) = supervise(spec(&handler, &tasks, None).child_spec().unwrap()).await;
    let short = Task::new("t", "ok", json!(null)).timeout(Duration::from_millis(999));
    let error = agent.run(SubmitTask(short)).await.unwrap_err();
    assert_eq!(error.context_value("parameter"), Some("timeout_ms"));

    for (params, parameter) in [
        (json!({"id": "", "type": "ok"}), "id"),
        (json!({"id": "a"}), "type"),
        (
            json!({"id": "a", "type": "ok", "priority": "urgent"}),
            "priority",
        ),
        (
            json!({"id": "a", "type": "ok", "timeout_ms": 10}),
            "timeout_ms",
        ),
    ] {
        let error = agent.run_json("submit", params.clone()).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED, "{params}");
        assert_eq!(
            error.context_value("parameter"),
            Some(parameter),
            "{params}"
        );
    }
    let receipt = agent
        .run_json(
            "submit",
            json!({"id": "a", "type": "ok", "priority": "high"}),
        )
        .await
        .unwrap();
    assert_eq!(receipt["position"], 0);
    wait_until(&agent, |agent| agent.state().counters.processed == 1).await;
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn it_pauses_itself_after_10_consecutive_errors_and_resumes_on_command() {
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let (tree, agent) = supervise(spec(&handler, &tasks, None).child_spec().unwrap()).await;
    for index in 0..12 {
        submit(&agent, &format!("f-{index}"), "fail").await.unwrap();
    }
    wait_until(&agent, |agent| agent.state().status == TaskStatus::Paused).await;
    let status = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(status.counters.failed, 10);
    assert_eq!(status.queued, 2);
    assert_eq!(status.consecutive_errors, 10);
    assert!(status.status_reason.unwrap().contains("10 consecutive"));

    let resumed = agent.run(ResumeTasks {}).await.unwrap();
    assert_ne!(resumed.status, TaskStatus::Paused);
    wait_until(&agent, |agent| agent.state().counters.failed == 12).await;
    let status = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(
        (status.status, status.consecutive_errors),
        (TaskStatus::Idle, 2)
    );
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn only_infrastructure_errors_are_retried() {
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let (tree, agent) = supervise(spec(&handler, &tasks, None).child_spec().unwrap()).await;
    let flaky = |id: &str, fail_times: u64, retries: u32| {
        SubmitTask(Task::new(id, "flaky", json!({"fail_times": fail_times})).retries(retries))
    };
    agent.run(flaky("recovers", 2, 3)).await.unwrap();
    agent.run(flaky("gives-up", 10, 2)).await.unwrap();
    agent
        .run(SubmitTask(
            Task::new("invalid", "invalid", json!(null)).retries(3),
        ))
        .await
        .unwrap();
    agent
        .run(SubmitTask(
            Task::new("business", "fail", json!(null)).retries(3),
        ))
        .await
        .unwrap();
    wait_until(&agent, |agent| {
        let counters = agent.state().counters;
        counters.processed + counters.failed == 4
    })
    .await;
    let attempts = handler.attempts();
    assert_eq!(attempts["recovers"], 3);
    assert_eq!(attempts["gives-up"], 3, "one attempt and two retries");
    assert_eq!(attempts["invalid"], 1);
    assert_eq!(attempts["business"], 1);
    let counters = agent.run(TaskStatusQuery {}).await.unwrap().counters;
    assert_eq!((counters.processed, counters.failed), (1, 3));
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn status_answers_while_a_task_runs() {
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let (tree, agent) = supervise(spec(&handler, &tasks, None).child_spec().unwrap()).await;
    submit(&agent, "slow", "block").await.unwrap();
    submit(&agent, "next", "ok").await.unwrap();
    let status = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(status.status, TaskStatus::Processing);
    assert_eq!(status.in_progress, ["slow"]);
    assert_eq!(status.queued, 1);
    handler.gate.add_permits(1);
    wait_until(&agent, |agent| agent.state().counters.processed == 2).await;
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_killed_agent_restarts_with_its_queue_and_counters() {
    let store = memory_store();
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let spec = spec(&handler, &tasks, Some(&store));
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    submit(&agent, "done-1", "ok").await.unwrap();
    submit(&agent, "done-2", "fail").await.unwrap();
    wait_until(&agent, |agent| agent.state().counters.failed == 1).await;
    agent.run(PauseTasks {}).await.unwrap();
    for index in 0..10 {
        submit(&agent, &format!("queued-{index}"), "ok")
            .await
            .unwrap();
    }
    let before = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(before.queued, 10);

    // A crash, an abort, and a new supervisor under the same id.
    testkit::crash_and_wait_restart(agent.actor(), WAIT)
        .await
        .unwrap();
    assert_eq!(agent.run(TaskStatusQuery {}).await.unwrap(), before);
    let incarnation = agent.actor().incarnation();
    agent.actor().kill();
    testkit::wait_for(|| agent.actor().incarnation() > incarnation, WAIT)
        .await
        .unwrap();
    assert_eq!(agent.run(TaskStatusQuery {}).await.unwrap(), before);
    tree.shutdown().await.unwrap();
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    let after = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(after, before);
    assert_eq!((after.counters.processed, after.counters.failed), (1, 1));
    assert_eq!(agent.inspect(queue_ids).await.unwrap().len(), 10);

    agent.run(ResumeTasks {}).await.unwrap();
    wait_until(&agent, |agent| agent.state().counters.processed == 11).await;
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_task_in_progress_at_a_crash_runs_again_with_its_key_and_counts_once() {
    let store = memory_store();
    let handler = Scripted::default();
    let tasks = TaskSupervisor::new("work");
    let spec = spec(&handler, &tasks, Some(&store));
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    agent
        .run(SubmitTask(
            Task::new("slow", "block", json!(null)).idempotency_key("key-7"),
        ))
        .await
        .unwrap();
    submit(&agent, "after", "ok").await.unwrap();
    let runs = handler.clone();
    testkit::wait_for(move || runs.runs().len() == 1, WAIT)
        .await
        .unwrap();

    testkit::crash_and_wait_restart(agent.actor(), WAIT)
        .await
        .unwrap();
    let runs = handler.clone();
    testkit::wait_for(move || runs.runs().len() == 2, WAIT)
        .await
        .unwrap();
    let keys: Vec<String> = handler.runs().into_iter().map(|(_, key, _)| key).collect();
    assert_eq!(keys, ["key-7", "key-7"]);
    let status = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!((status.in_progress.len(), status.queued), (1, 1));

    // Both runs finish: the stale one is ignored, the task counts once.
    handler.gate.add_permits(2);
    wait_until(&agent, |agent| agent.state().counters.processed == 2).await;
    let live = tasks.clone();
    testkit::wait_for(move || live.live_tasks() == 0, WAIT)
        .await
        .unwrap();
    let counters = agent.run(TaskStatusQuery {}).await.unwrap().counters;
    assert_eq!((counters.processed, counters.failed), (2, 0));
    tree.shutdown().await.unwrap();
}
