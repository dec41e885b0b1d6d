//! The plan's workflow (3 parallel tasks, then 2 in sequence) on a file
//! store, surviving a SIGKILL of the whole OS process.
//!
//! `cargo run -p jido-workflow --example plan_workflow`
//!
//! The example re-runs itself as a child process that starts the workflow;
//! the first run of task4 hangs, and while it is in flight the parent kills
//! the child with SIGKILL, then starts a second child on the same store,
//! which resumes the workflow from its journal and finishes it. The
//! recorded steps never run again; task4 runs again with the same
//! idempotency key.

#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use foundation_persist::{Store, StoreOptions};
use jido_workflow::{StepInput, WorkRegistry, WorkflowDefinition, WorkflowEngine, WorkflowStatus};
use serde_json::json;

const PLAN: &str = r#"{
  "name": "integration_test_workflow",
  "steps": [
    {"parallel": [
      {"task": {"id": "task1", "work": "process_data", "params": {"rows": 1000}}},
      {"task": {"id": "task2", "work": "validate_data"}},
      {"task": {"id": "task3", "work": "transform_data"}}
    ]},
    {"sequential": [
      {"task": {"id": "task4", "work": "aggregate_results", "retry": {"attempts": 3, "backoff_ms": 100}}},
      {"task": {"id": "task5", "work": "save_results"}}
    ]}
  ]
}"#;

const WORKFLOW_ID: &str = "plan-example";

fn works() -> WorkRegistry {
    let mut works = WorkRegistry::new();
    for name in [
        "process_data",
        "validate_data",
        "transform_data",
        "aggregate_results",
        "save_results",
    ] {
        works.register(name, move |input: StepInput| async move {
            let pid = std::process::id();
            println!(
                "  [pid {pid}] running {} (attempt {}, key {})",
                input.step_id, input.attempt, input.idempotency_key
            );
            if name == "aggregate_results" && input.attempt == 1 {
                // The first run hangs, as on a stuck dependency: the
                // process is killed while it is in flight.
                std::future::pending::<()>().await;
            }
            println!("  [pid {pid}] finished {}", input.step_id);
            Ok(json!({"step": input.step_id, "inputs_seen": input.outputs.len()}))
        });
    }
    works
}

/// The child: open the store, resume, start the workflow if it is new,
/// wait for it.
async fn child(directory: &Path) -> Result<(), Error> {
    let store = Store::open(directory.join("workflows.redb"), &StoreOptions::new())?;
    let engine = WorkflowEngine::builder(store.clone(), works())
        .start()
        .await?;
    let resumed = engine.resumed(Duration::from_secs(10)).await?;
    println!(
        "  [pid {}] engine started (resume pass {resumed})",
        std::process::id()
    );
    let definition = WorkflowDefinition::from_json(PLAN)?;
    match engine
        .start_workflow_with_id(WORKFLOW_ID, &definition, json!({"example": true}))
        .await
    {
        Ok(()) => println!(
            "  [pid {}] started workflow {WORKFLOW_ID}",
            std::process::id()
        ),
        Err(error) if error.code() == ErrorCode::ALREADY_EXISTS => {
            println!(
                "  [pid {}] workflow {WORKFLOW_ID} exists; resumed from its journal",
                std::process::id()
            );
        }
        Err(error) => return Err(error),
    }
    let info = engine.wait(WORKFLOW_ID, Duration::from_secs(60)).await?;
    println!(
        "  [pid {}] workflow {}: {}",
        std::process::id(),
        info.id,
        info.status
    );
    engine.shutdown().await?;
    store.close().await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--child") {
        let directory = args.next().ok_or("--child needs a directory")?;
        return Ok(runtime.block_on(child(Path::new(&directory)))?);
    }

    let directory = tempfile::tempdir()?;
    let executable = std::env::current_exe()?;
    println!("first process: runs the workflow, killed with SIGKILL during task4");
    let mut first = Command::new(&executable)
        .arg("--child")
        .arg(directory.path())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = first.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if line.contains("running task4") {
            first.kill()?; // SIGKILL on Unix
            break;
        }
    }
    let status = first.wait()?;
    println!("first process ended: {status}");

    println!("second process: resumes from the journal");
    let second = Command::new(&executable)
        .arg("--child")
        .arg(directory.path())
        .status()?;
    if !second.success() {
        return Err(format!("the second process failed: {second}").into());
    }

    runtime.block_on(async {
        let store = Store::open(
            directory.path().join("workflows.redb"),
            &StoreOptions::new(),
        )?;
        let engine = WorkflowEngine::builder(store.clone(), works())
            .start()
            .await?;
        let info = engine.status(WORKFLOW_ID).await?;
        println!("final status: {}", info.status);
        for step in &info.steps {
            println!(
                "  {:6} {:?} after {} attempt(s): {}",
                step.id,
                step.status,
                step.attempts,
                step.output.clone().unwrap_or_default()
            );
        }
        let history = engine.history(WORKFLOW_ID).await?;
        let succeeded = history
            .iter()
            .filter(|entry| entry.kind == "step_succeeded")
            .count();
        println!(
            "journal: {} events, {succeeded} step results (one per step)",
            history.len()
        );
        engine.shutdown().await?;
        store.close().await?;
        if info.status == WorkflowStatus::Completed && succeeded == 5 {
            Ok::<(), Error>(())
        } else {
            Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                "the workflow did not complete",
            ))
        }
    })?;
    Ok(())
}
