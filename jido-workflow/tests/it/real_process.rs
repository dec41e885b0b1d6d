//! Real processes: a child OS process (this test binary, re-executed with
//! an environment variable selecting the child role) runs 1,000 workflows
//! on a file store and is SIGKILLed at random moments, at least 10 rounds,
//! then runs to the end. Every work execution is appended to a side file
//! before the work returns; afterwards every workflow has completed, every
//! step is recorded exactly once, no step started again after its result
//! was recorded, and no work ran more often than its recorded starts.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use foundation_persist::{Store, StoreOptions};
use jido_workflow::{StepInput, WorkRegistry, WorkflowEngine, WorkflowStatus};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{PLAN_WORKS, plan, recorded};

const CHILD: &str = "JIDO_WORKFLOW_SIGKILL_CHILD";
const WORKFLOWS: usize = 1_000;
const KILL_ROUNDS: usize = 10;

fn side_file(directory: &Path) -> PathBuf {
    directory.join("executions.log")
}

/// The plan's works, each appending its idempotency key to the side file.
fn logging_works(side: &Path) -> WorkRegistry {
    let side = Arc::new(side.to_owned());
    let mut works = WorkRegistry::new();
    for name in PLAN_WORKS {
        let side = Arc::clone(&side);
        works.register(name, move |input: StepInput| {
            let side = Arc::clone(&side);
            async move {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*side)?;
                file.write_all(format!("{}\n", input.idempotency_key).as_bytes())?;
                // Progress for the parent, which kills after a random
                // number of these.
                eprintln!("executed {}", input.idempotency_key);
                tokio::task::yield_now().await;
                Ok(json!({"step": input.step_id}))
            }
        });
    }
    works
}

fn workflow_id(index: usize) -> String {
    format!("wf-{index:04}")
}

/// The child's role: resume, start whatever of the 1,000 does not exist
/// yet, wait for all. Not a test of its own: outside the child process
/// (the environment variable unset) it returns at once; the parent test
/// below runs it, kills it and checks what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_role() -> Result<(), Error> {
    let Some(directory) = std::env::var_os(CHILD) else {
        return Ok(());
    };
    let directory = PathBuf::from(directory);
    let store = Store::open(directory.join("workflows.redb"), &StoreOptions::new())?;
    let engine = WorkflowEngine::builder(store.clone(), logging_works(&side_file(&directory)))
        .start()
        .await?;
    engine.resumed(Duration::from_secs(60)).await?;
    let definition = plan();
    for index in 0..WORKFLOWS {
        match engine
            .start_workflow_with_id(&workflow_id(index), &definition, Value::Null)
            .await
        {
            Ok(()) => {}
            Err(error) if error.code() == ErrorCode::ALREADY_EXISTS => {}
            Err(error) => return Err(error),
        }
    }
    for index in 0..WORKFLOWS {
        engine
            .wait(&workflow_id(index), Duration::from_secs(120))
            .await?;
    }
    engine.shutdown().await?;
    store.close().await
}

fn executions(side: &Path) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(side) {
        for line in text.lines().filter(|line| !line.is_empty()) {
            *counts.entry(line.to_owned()).or_default() += 1;
        }
    }
    counts
}

fn child(directory: &Path) -> Result<tokio::process::Child, Error> {
    let executable = std::env::current_exe()?;
    let child = tokio::process::Command::new(executable)
        .args([
            "--exact",
            "real_process::child_role",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, directory)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    Ok(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_processes_lose_no_recorded_step() -> Result<(), Error> {
    if std::env::var_os(CHILD).is_some() {
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let side = side_file(directory.path());
    let mut rng = fastrand::Rng::with_seed(0x5161_4b11);
    let mut kills = 0;
    for round in 1.. {
        assert!(round <= 4 * KILL_ROUNDS, "too many rounds");
        let mut running = child(directory.path())?;
        let stderr = running
            .stderr
            .take()
            .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "the child has no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        // Kill once the child has run a random number of works (read from
        // its progress lines), unless it ends first; in the last round,
        // read until it ends.
        let target = if kills < KILL_ROUNDS {
            rng.usize(100..400)
        } else {
            usize::MAX
        };
        let mut executed = 0;
        let ended = loop {
            let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
                .await
                .map_err(|_| Error::timeout("the child went silent"))??;
            match line {
                None => break true,
                Some(line) if line.starts_with("executed ") => {
                    executed += 1;
                    if executed >= target {
                        break false;
                    }
                }
                Some(other) => eprintln!("child: {other}"),
            }
        };
        if ended {
            let status = tokio::time::timeout(Duration::from_secs(60), running.wait())
                .await
                .map_err(|_| Error::timeout("the child did not exit"))??;
            assert!(status.success(), "the child failed: {status}");
            if kills >= KILL_ROUNDS {
                break;
            }
        } else {
            running.start_kill()?; // SIGKILL
            tokio::time::timeout(Duration::from_secs(10), running.wait())
                .await
                .map_err(|_| Error::timeout("the killed child did not exit"))??;
            kills += 1;
        }
    }
    assert!(kills >= KILL_ROUNDS);

    // Audit the journal against the side file.
    let store = Store::open(
        directory.path().join("workflows.redb"),
        &StoreOptions::new(),
    )?;
    let engine = WorkflowEngine::builder(store.clone(), WorkRegistry::new())
        .start()
        .await?;
    let executed = executions(&side);
    let mut reruns = 0;
    for index in 0..WORKFLOWS {
        let id = workflow_id(index);
        let info = engine.status(&id).await?;
        assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
        let (succeeded, restarted) = recorded(&engine, &id).await;
        assert_eq!(succeeded.len(), 5, "{id}");
        assert!(
            succeeded.values().all(|count| *count == 1),
            "{id}: {succeeded:?}"
        );
        assert!(
            !restarted,
            "{id}: a step started again after its result was recorded"
        );
        let history = engine.history(&id).await?;
        for step in &info.steps {
            let key = format!("{id}/{}", step.path);
            let runs = executed.get(&key).copied().unwrap_or(0);
            let starts = history
                .iter()
                .filter(|entry| {
                    entry.kind == "step_started" && entry.step.as_deref() == Some(&step.id)
                })
                .count() as u32;
            assert!(runs >= 1, "{key} never ran");
            assert!(
                runs <= starts,
                "{key} ran {runs} times but was started {starts} times"
            );
            reruns += runs - 1;
        }
    }
    eprintln!(
        "{kills} kills; {reruns} works re-ran after a kill (at least once, never after their record)"
    );
    engine.shutdown().await?;
    store.close().await
}
