//! The engine end to end on an in-memory store under paused time: the
//! plan's workflow through kills, retries, timeouts, cancel and
//! compensation, durable delays and signals across restarts, listing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use foundation_core::testkit::wait_for;
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use jido_workflow::{
    ListFilter, StepInput, StepStatus, WorkRegistry, WorkflowDefinition, WorkflowEngine,
    WorkflowStatus,
};
use serde_json::{Value, json};

use crate::support::{
    Executions, KillableExecutor, clock, engine, memory_store, pause, plan, plan_works, recorded,
};

const LONG: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn the_plan_survives_killing_its_tasks_and_its_process() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let executor = KillableExecutor::new();
    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(100))),
        ),
    );
    builder.clock(Arc::clone(&clock)).executor(executor.clone());
    let engine = builder.start().await?;

    let id = engine
        .start_workflow(&plan(), json!({"test": "plan"}))
        .await?;
    wait_for(|| executions.total() >= 3, Duration::from_secs(1)).await?;
    // Kill the task agent: every running work dies.
    assert_eq!(executor.kill_all(), 3);
    // Kill the workflow process.
    let process = engine
        .process(&id)
        .expect("the workflow's process is registered");
    let before = process.incarnation();
    assert!(process.kill());
    wait_for(
        || process.incarnation() > before && process.is_alive(),
        Duration::from_secs(1),
    )
    .await?;

    let info = engine.wait(&id, Duration::from_secs(30)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(info.results().len(), 5, "all 5 results present");
    assert_eq!(info.metadata, json!({"test": "plan"}));
    let (succeeded, restarted) = recorded(&engine, &id).await;
    assert_eq!(succeeded.len(), 5);
    assert!(succeeded.values().all(|count| *count == 1), "{succeeded:?}");
    assert!(!restarted, "a recorded step ran again");
    // The killed steps ran again with the same idempotency key.
    let key = format!("{id}/steps[0].parallel[0]");
    assert!(executions.of(&key) >= 2);
    assert_eq!(executions.of(&format!("{id}/steps[1].sequential[1]")), 1);
    // task5 saw the outputs of the four steps before it.
    assert_eq!(info.results()["task5"]["saw"], json!(4));
    // The process ended normally and left the registry.
    wait_for(|| engine.process(&id).is_none(), Duration::from_secs(1)).await?;
    engine.shutdown().await
}

fn definition(text: &str) -> WorkflowDefinition {
    WorkflowDefinition::from_json(text).expect("a valid definition")
}

#[tokio::test(start_paused = true)]
async fn infrastructure_errors_are_retried_and_business_errors_are_not() -> Result<(), Error> {
    let clock = clock();
    let failures = Arc::new(Mutex::new(0u32));
    let mut works = WorkRegistry::new();
    let counter = Arc::clone(&failures);
    works.register("flaky", move |input: StepInput| {
        let counter = Arc::clone(&counter);
        async move {
            let mut failures = counter.lock().expect("not poisoned");
            if *failures < 2 {
                *failures += 1;
                return Err(Error::new(ErrorCode::SERVICE_UNAVAILABLE, "down"));
            }
            Ok(json!(input.attempt))
        }
    });
    works.register("refuses", |_input: StepInput| async {
        Err::<Value, _>(Error::business("insufficient funds"))
    });
    let engine = engine(&memory_store(), works, &clock).await;

    let started = clock.elapsed();
    let flaky = definition(
        r#"{"name": "flaky", "steps": [{"task": {"id": "a", "work": "flaky",
            "retry": {"attempts": 3, "backoff_ms": 100}}}]}"#,
    );
    let id = engine.start_workflow(&flaky, Value::Null).await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(info.steps[0].attempts, 3);
    assert_eq!(info.results()["a"], json!(3));
    // Backoff 100 ms, then 200 ms.
    assert!(clock.elapsed() - started >= Duration::from_millis(300));
    let history = engine.history(&id).await?;
    assert_eq!(
        history
            .iter()
            .filter(|entry| entry.kind == "attempt_failed")
            .count(),
        2
    );

    let refuses = definition(
        r#"{"name": "refuses", "steps": [{"task": {"id": "a", "work": "refuses",
            "retry": {"attempts": 5}}}]}"#,
    );
    let id = engine.start_workflow(&refuses, Value::Null).await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Failed);
    assert_eq!(info.steps[0].attempts, 1);
    assert_eq!(info.steps[0].status, StepStatus::Failed);
    assert!(
        info.steps[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("insufficient funds")
    );
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_times_out_and_is_retried() -> Result<(), Error> {
    let clock = clock();
    let executions = Executions::default();
    let mut works = WorkRegistry::new();
    let seen = executions.clone();
    works.register("slow", move |input: StepInput| {
        let seen = seen.clone();
        async move {
            seen.record(&input.idempotency_key);
            tokio::time::sleep(LONG).await;
            Ok(Value::Null)
        }
    });
    let engine = engine(&memory_store(), works, &clock).await;
    let slow = definition(
        r#"{"name": "slow", "steps": [{"task": {"id": "a", "work": "slow", "timeout_ms": 50,
            "retry": {"attempts": 2, "backoff_ms": 10}}}]}"#,
    );
    let id = engine.start_workflow(&slow, Value::Null).await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Failed);
    assert_eq!(info.steps[0].attempts, 2);
    assert!(
        info.steps[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("timeout"),
        "{:?}",
        info.steps[0]
    );
    assert_eq!(executions.total(), 2);
    engine.shutdown().await
}

/// Works that log their names in order, and one that never ends.
fn saga_works(log: &Arc<Mutex<Vec<String>>>) -> WorkRegistry {
    let mut works = WorkRegistry::new();
    for name in ["book", "charge", "undo_book", "undo_charge", "undo_ship"] {
        let log = Arc::clone(log);
        works.register(name, move |input: StepInput| {
            let log = Arc::clone(&log);
            let name = name.to_owned();
            async move {
                log.lock()
                    .expect("not poisoned")
                    .push(format!("{name}:{}", input.idempotency_key));
                Ok(Value::Null)
            }
        });
    }
    // Never ends by itself (a stuck dependency); only cancellation stops it.
    works.register("ship", |_input: StepInput| async {
        std::future::pending::<()>().await;
        Ok(Value::Null)
    });
    works.register("fail", |_input: StepInput| async {
        Err::<Value, _>(Error::business("no stock"))
    });
    works
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_running_steps_and_compensates_in_reverse() -> Result<(), Error> {
    let clock = clock();
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = engine(&memory_store(), saga_works(&log), &clock).await;
    let saga = definition(
        r#"{"name": "saga", "steps": [
            {"task": {"id": "book", "work": "book", "compensation": "undo_book"}},
            {"task": {"id": "charge", "work": "charge", "compensation": {"work": "undo_charge", "params": {"full": true}}}},
            {"task": {"id": "ship", "work": "ship", "timeout_ms": 7200000, "compensation": "undo_ship"}}
        ]}"#,
    );
    let id = engine.start_workflow(&saga, Value::Null).await?;
    let log_view = Arc::clone(&log);
    wait_for(
        || log_view.lock().expect("not poisoned").len() == 2,
        Duration::from_secs(1),
    )
    .await?;
    engine.cancel(&id, "customer changed their mind").await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Cancelled);
    let log = log.lock().expect("not poisoned").clone();
    assert_eq!(
        log,
        [
            format!("book:{id}/steps[0]"),
            format!("charge:{id}/steps[1]"),
            format!("undo_charge:{id}/steps[1]/compensate"),
            format!("undo_book:{id}/steps[0]/compensate"),
        ]
    );
    assert!(info.steps[0].compensated && info.steps[1].compensated && !info.steps[2].compensated);
    assert_eq!(
        engine.cancel(&id, "again").await.unwrap_err().code(),
        ErrorCode::INVALID_STATE_TRANSITION
    );
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_compensates_the_completed_ones() -> Result<(), Error> {
    let clock = clock();
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = engine(&memory_store(), saga_works(&log), &clock).await;
    let saga = definition(
        r#"{"name": "saga", "steps": [
            {"parallel": [
                {"task": {"id": "book", "work": "book", "compensation": "undo_book"}},
                {"task": {"id": "charge", "work": "charge"}}
            ]},
            {"task": {"id": "fail", "work": "fail"}}
        ]}"#,
    );
    let id = engine.start_workflow(&saga, Value::Null).await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Failed);
    let log = log.lock().expect("not poisoned").clone();
    assert_eq!(
        log.last(),
        Some(&format!("undo_book:{id}/steps[0].parallel[0]/compensate"))
    );
    assert_eq!(log.len(), 3);
    engine.shutdown().await
}

fn stamp_works(clock: &SharedClock) -> WorkRegistry {
    let mut works = WorkRegistry::new();
    let clock = Arc::clone(clock);
    works.register("stamp", move |input: StepInput| {
        let clock = Arc::clone(&clock);
        async move {
            let at = clock
                .wall()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(json!({"at_ms": at.as_millis() as u64, "outputs": input.outputs.len()}))
        }
    });
    works
}

#[tokio::test(start_paused = true)]
async fn a_durable_delay_waits_only_for_the_time_remaining_after_a_restart() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let first = engine(&store, stamp_works(&clock), &clock).await;
    let delayed = definition(
        r#"{"name": "delayed", "steps": [
            {"task": {"id": "wait", "work": "delay", "params": {"duration_ms": 600000}}},
            {"task": {"id": "after", "work": "stamp"}}
        ]}"#,
    );
    let start_ms = clock
        .wall()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let id = first.start_workflow(&delayed, Value::Null).await?;
    wait_for(|| first.process(&id).is_some(), Duration::from_secs(1)).await?;
    wait_status(&first, &id, WorkflowStatus::Waiting).await?;

    tokio::time::advance(Duration::from_secs(240)).await;
    first.shutdown().await?;
    // Four minutes later, a new engine on the same store.
    tokio::time::advance(Duration::from_secs(60)).await;
    let second = engine(&store, stamp_works(&clock), &clock).await;
    second.resumed(Duration::from_secs(5)).await?;
    let info = second.wait(&id, Duration::from_secs(3600)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    let finished_at = info.results()["after"]["at_ms"].as_u64().unwrap_or(0);
    // Due ten minutes after the start, not ten minutes after the restart.
    assert!(
        finished_at >= start_ms + 600_000,
        "{finished_at} vs {start_ms}"
    );
    assert!(
        finished_at < start_ms + 601_000,
        "{finished_at} vs {start_ms}"
    );
    second.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn signals_reach_their_step_before_and_after_a_restart() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let mut works = stamp_works(&clock);
    works.register("slow", |_input: StepInput| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Value::Null)
    });
    let first = engine(&store, works.clone(), &clock).await;
    let approval = definition(
        r#"{"name": "approval", "steps": [
            {"task": {"id": "prepare", "work": "slow"}},
            {"task": {"id": "approved", "work": "await_signal", "params": {"signal": "approve"}, "timeout_ms": 3600000}},
            {"task": {"id": "done", "work": "stamp"}}
        ]}"#,
    );

    // Before: the signal arrives while the step before the wait runs; the
    // process is then killed; the restarted one finds the signal.
    let early = first.start_workflow(&approval, Value::Null).await?;
    wait_for(|| first.process(&early).is_some(), Duration::from_secs(1)).await?;
    first
        .signal(&early, "approve", json!({"by": "ada"}))
        .await?;
    let process = first.process(&early).expect("running");
    let before = process.incarnation();
    process.kill();
    wait_for(
        || process.incarnation() > before && process.is_alive(),
        Duration::from_secs(1),
    )
    .await?;
    let info = first.wait(&early, Duration::from_secs(60)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(info.results()["approved"], json!({"by": "ada"}));

    // After: the engine restarts while the step waits; the signal goes to
    // the resumed process.
    let late = first.start_workflow(&approval, Value::Null).await?;
    wait_for(|| first.process(&late).is_some(), Duration::from_secs(1)).await?;
    wait_status(&first, &late, WorkflowStatus::Waiting).await?;
    first.shutdown().await?;
    assert_eq!(
        first
            .signal(&late, "approve", Value::Null)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::SERVICE_UNAVAILABLE
    );
    let second = engine(&store, works, &clock).await;
    second.resumed(Duration::from_secs(5)).await?;
    second
        .signal(&late, "approve", json!({"by": "grace"}))
        .await?;
    let info = second.wait(&late, Duration::from_secs(60)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(info.results()["approved"], json!({"by": "grace"}));

    // Never: the wait times out and the workflow fails.
    let short = definition(
        r#"{"name": "short", "steps": [
            {"task": {"id": "approved", "work": "await_signal", "params": {"signal": "approve"}, "timeout_ms": 1000}}
        ]}"#,
    );
    let never = second.start_workflow(&short, Value::Null).await?;
    let info = second.wait(&never, Duration::from_secs(60)).await?;
    assert_eq!(info.status, WorkflowStatus::Failed);
    assert!(
        info.steps[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("no signal")
    );
    second.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn an_at_most_once_step_in_flight_during_a_crash_is_reported_interrupted() -> Result<(), Error>
{
    let clock = clock();
    let executions = Executions::default();
    let mut works = WorkRegistry::new();
    let seen = executions.clone();
    works.register("pay", move |input: StepInput| {
        let seen = seen.clone();
        async move {
            seen.record(&input.idempotency_key);
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Value::Null)
        }
    });
    let engine = engine(&memory_store(), works, &clock).await;
    let pay = definition(
        r#"{"name": "pay", "steps": [{"task": {"id": "pay", "work": "pay", "at_most_once": true}}]}"#,
    );
    let id = engine.start_workflow(&pay, Value::Null).await?;
    wait_for(|| executions.total() == 1, Duration::from_secs(1)).await?;
    engine.process(&id).expect("running").kill();
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Failed);
    assert_eq!(info.steps[0].status, StepStatus::Interrupted);
    assert_eq!(
        executions.total(),
        1,
        "an at-most-once step never runs twice"
    );
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn list_filters_by_status_and_name_and_pages() -> Result<(), Error> {
    let clock = clock();
    let executions = Executions::default();
    let mut works = plan_works(
        &executions,
        pause(|| tokio::time::sleep(Duration::from_millis(10))),
    );
    works.register("fail", |_input: StepInput| async {
        Err::<Value, _>(Error::business("no"))
    });
    let engine = engine(&memory_store(), works, &clock).await;
    let failing =
        definition(r#"{"name": "failing", "steps": [{"task": {"id": "f", "work": "fail"}}]}"#);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(engine.start_workflow(&plan(), Value::Null).await?);
    }
    ids.push(engine.start_workflow(&failing, Value::Null).await?);
    for id in &ids {
        engine.wait(id, Duration::from_secs(10)).await?;
    }
    let mut filter = ListFilter::new();
    filter
        .name("integration_test_workflow")
        .status(WorkflowStatus::Completed)
        .limit(2);
    let mut seen = Vec::new();
    loop {
        let page = engine.list(&filter).await?;
        assert!(page.workflows.len() <= 2);
        seen.extend(page.workflows.iter().map(|workflow| workflow.id.clone()));
        match page.next {
            Some(next) => {
                filter.after(next);
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut failed = ListFilter::new();
    failed.status(WorkflowStatus::Failed);
    let page = engine.list(&failed).await?;
    assert_eq!(page.workflows.len(), 1);
    assert_eq!(page.workflows[0].name, "failing");
    assert_eq!(
        engine
            .list(ListFilter::new().limit(0))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::INVALID_INPUT
    );
    assert_eq!(
        engine.status("nope").await.unwrap_err().code(),
        ErrorCode::DATA_NOT_FOUND
    );
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_running_workflow_keeps_the_version_it_started_with() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let first = engine(&store, stamp_works(&clock), &clock).await;
    let v1 = definition(
        r#"{"name": "versioned", "steps": [
            {"task": {"id": "wait", "work": "delay", "params": {"duration_ms": 1000}}},
            {"task": {"id": "one", "work": "stamp"}}]}"#,
    );
    let v2 = definition(
        r#"{"name": "versioned", "steps": [
            {"task": {"id": "wait", "work": "delay", "params": {"duration_ms": 1000}}},
            {"task": {"id": "two", "work": "stamp"}}]}"#,
    );
    assert_ne!(v1.hash(), v2.hash());
    let old = first.start_workflow(&v1, Value::Null).await?;
    first.shutdown().await?;
    let second = engine(&store, stamp_works(&clock), &clock).await;
    let new = second.start_workflow(&v2, Value::Null).await?;
    let old_info = second.wait(&old, Duration::from_secs(10)).await?;
    let new_info = second.wait(&new, Duration::from_secs(10)).await?;
    assert_eq!(old_info.definition, v1.hash().as_str());
    assert!(old_info.results().contains_key("one"));
    assert!(new_info.results().contains_key("two"));
    second.shutdown().await
}

/// Waits (event-driven, at most ten seconds) until the workflow's process
/// reports `status`.
async fn wait_status(
    engine: &WorkflowEngine,
    id: &str,
    status: WorkflowStatus,
) -> Result<(), Error> {
    let process = engine
        .process(id)
        .ok_or_else(|| Error::not_found(format!("workflow {id} has no process")))?;
    foundation_core::testkit::wait_for_state(
        &process,
        move |workflow: &jido_workflow::WorkflowProcess| workflow.status() == status,
        Duration::from_secs(10),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_parallel_group_runs_within_the_bound() -> Result<(), Error> {
    let clock = clock();
    let running = Arc::new(Mutex::new((0u32, 0u32))); // (now, most)
    let mut works = WorkRegistry::new();
    let gauge = Arc::clone(&running);
    works.register("slow", move |_input: StepInput| {
        let gauge = Arc::clone(&gauge);
        async move {
            {
                let mut counts = gauge.lock().expect("not poisoned");
                counts.0 += 1;
                counts.1 = counts.1.max(counts.0);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            gauge.lock().expect("not poisoned").0 -= 1;
            Ok(Value::Null)
        }
    });
    let mut builder = WorkflowEngine::builder(memory_store(), works);
    builder.clock(Arc::clone(&clock)).max_parallel(2);
    let engine = builder.start().await?;
    let tasks: Vec<Value> = (0..5)
        .map(|index| json!({"task": {"id": format!("t{index}"), "work": "slow"}}))
        .collect();
    let wide =
        WorkflowDefinition::from_value(&json!({"name": "wide", "steps": [{"parallel": tasks}]}))?;
    let started = clock.elapsed();
    let id = engine.start_workflow(&wide, Value::Null).await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(
        running.lock().expect("not poisoned").1,
        2,
        "at most 2 at once, and 2 did run together"
    );
    // Five 100 ms tasks two at a time: three rounds.
    assert!(clock.elapsed() - started >= Duration::from_millis(300));
    assert_eq!(
        WorkflowEngine::builder(memory_store(), WorkRegistry::new())
            .max_parallel(0)
            .start()
            .await
            .unwrap_err()
            .code(),
        ErrorCode::INVALID_CONFIG_VALUE
    );
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn the_engine_runs_as_a_child_of_an_application_supervisor() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(10))),
        ),
    );
    builder.clock(Arc::clone(&clock));
    let (spec, engine) = builder.into_child_spec("workflows")?;
    let mut app = foundation_core::Supervisor::builder("app");
    app.child(spec);
    let app = app.start().await?;
    engine.resumed(Duration::from_secs(5)).await?;
    let id = engine.start_workflow(&plan(), Value::Null).await?;
    let info = engine.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    app.shutdown().await?;
    assert!(!engine.supervisor().process().is_alive());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn list_reports_workflows_waiting_on_a_delay_or_a_signal_as_waiting() -> Result<(), Error> {
    let clock = clock();
    let engine = engine(&memory_store(), stamp_works(&clock), &clock).await;
    let delayed = definition(
        r#"{"name": "delayed", "steps": [
            {"task": {"id": "wait", "work": "delay", "params": {"duration_ms": 600000}}},
            {"task": {"id": "after", "work": "stamp"}}
        ]}"#,
    );
    let approval = definition(
        r#"{"name": "approval", "steps": [
            {"task": {"id": "approved", "work": "await_signal", "params": {"signal": "approve"}, "timeout_ms": 3600000}},
            {"task": {"id": "done", "work": "stamp"}}
        ]}"#,
    );
    let on_delay = engine.start_workflow(&delayed, Value::Null).await?;
    let on_signal = engine.start_workflow(&approval, Value::Null).await?;
    for id in [&on_delay, &on_signal] {
        wait_for(|| engine.process(id).is_some(), Duration::from_secs(1)).await?;
        wait_status(&engine, id, WorkflowStatus::Waiting).await?;
    }
    let mut waiting = ListFilter::new();
    waiting.status(WorkflowStatus::Waiting);
    let mut listed: Vec<String> = engine
        .list(&waiting)
        .await?
        .workflows
        .into_iter()
        .map(|workflow| {
            assert_eq!(workflow.status, WorkflowStatus::Waiting);
            workflow.id
        })
        .collect();
    listed.sort();
    let mut expected = vec![on_delay.clone(), on_signal.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // A killed process's successor lists itself again; a signal ends the
    // wait and the workflow is listed by its stored status.
    let process = engine.process(&on_signal).expect("running");
    let before = process.incarnation();
    process.kill();
    wait_for(
        || process.incarnation() > before && process.is_alive(),
        Duration::from_secs(1),
    )
    .await?;
    wait_status(&engine, &on_signal, WorkflowStatus::Waiting).await?;
    assert_eq!(engine.list(&waiting).await?.workflows.len(), 2);
    engine.signal(&on_signal, "approve", Value::Null).await?;
    engine.wait(&on_signal, Duration::from_secs(60)).await?;
    let page = engine.list(&ListFilter::new()).await?;
    let status_of = |id: &str| {
        page.workflows
            .iter()
            .find(|workflow| workflow.id == id)
            .map(|workflow| workflow.status)
    };
    assert_eq!(status_of(&on_signal), Some(WorkflowStatus::Completed));
    assert_eq!(status_of(&on_delay), Some(WorkflowStatus::Waiting));
    engine.shutdown().await
}
