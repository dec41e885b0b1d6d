//! The TaskAgent in a child OS process on a file store, SIGKILLed with
//! tasks queued and one in progress, restarted, ten rounds.
//!
//! The parent re-executes this test binary with an environment variable
//! selecting the child role (`child_role`). Each child round:
//!
//! 1. starts the agent under a supervisor (the task that was in progress
//!    at the last kill runs again at once, and waits on a gate);
//! 2. prints the restored status (`AGENT restored {...}`): it must equal
//!    the status the previous child printed just before it was killed;
//! 3. opens the gate, resumes, lets the queue drain, submits 10 quick
//!    tasks, one that blocks for this round and 10 more quick ones;
//! 4. once the blocking task has started, pauses and prints `AGENT ready
//!    {...}`: 10 queued, 1 in progress, exact counters. The parent then
//!    SIGKILLs it.
//!
//! Every task run prints `AGENT run KEY`, so the parent sees the task in
//! progress at the kill run again with the same idempotency key.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use foundation_core::TaskSupervisor;
use foundation_error::Error;
use foundation_persist::{Store, StoreOptions};
use jido_agents::AgentSpec;
use jido_agents::task::{
    PauseTasks, ResumeTasks, SubmitTask, Task, TaskAgent, TaskAgentArgs, TaskHandler, TaskRun,
    TaskStatus, TaskStatusQuery,
};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc as async_mpsc};

const STORE_ENV: &str = "JIDO_AGENTS_SIGKILL_STORE";
const ROUND_ENV: &str = "JIDO_AGENTS_SIGKILL_ROUND";
const ROUNDS: u64 = 10;
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_sigkilled_task_agent_restarts_with_its_queue_counters_and_task_in_progress() {
    let directory = tempfile::tempdir().unwrap();
    let store = directory.path().join("agents.redb");
    let mut previous_ready: Option<Value> = None;
    for round in 1..=ROUNDS {
        let lines = run_child(&store, round);
        let restored = message(&lines, "restored");
        let ready = message(&lines, "ready");
        match &previous_ready {
            None => assert_eq!(restored["queued"], 0),
            Some(previous) => {
                assert_eq!(
                    &restored, previous,
                    "round {round}: the restart changed the state"
                );
                assert_eq!(restored["queued"], 10);
                // The task in progress at the kill ran again, same key.
                let key = format!("block-{}", round - 1);
                assert!(
                    lines.iter().any(|line| *line == format!("AGENT run {key}")),
                    "round {round}: {key} did not run again: {lines:?}"
                );
            }
        }
        // Counted once: the re-run, the 10 queued and the 10 before the
        // new blocking task.
        let processed = |status: &Value| status["counters"]["processed"].as_u64().unwrap();
        let expected = processed(&restored) + if round == 1 { 10 } else { 21 };
        assert_eq!(processed(&ready), expected, "round {round}");
        assert_eq!(ready["queued"], 10);
        assert_eq!(ready["in_progress"], json!([format!("block-{round}")]));
        assert_eq!(ready["counters"]["failed"], 0);
        previous_ready = Some(ready);
    }
}

/// Runs one child round until it is ready, SIGKILLs it, returns its lines.
fn run_child(store: &Path, round: u64) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill::child_role",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(STORE_ENV, store)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = receiver.recv_timeout(LINE_TIMEOUT).unwrap_or_else(|error| {
            panic!("round {round}: no line from the child ({error}): {lines:?}")
        });
        // libtest may print the test's name on the same line first.
        let Some(start) = line.find("AGENT ") else {
            continue;
        };
        let line = line[start..].to_owned();
        let ready = line.starts_with("AGENT ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, it did not exit");
    reader.join().unwrap();
    lines
}

fn message(lines: &[String], kind: &str) -> Value {
    let prefix = format!("AGENT {kind} ");
    let line = lines
        .iter()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {kind} line in {lines:?}"));
    serde_json::from_str(&line[prefix.len()..]).unwrap()
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "AGENT {line}").unwrap();
    stdout.flush().unwrap();
}

/// Quick tasks succeed; `block` tasks of this round wait forever (the
/// child is killed); `block` tasks of earlier rounds (re-runs) wait for
/// the gate.
struct ChildHandler {
    round: u64,
    gate: Arc<Semaphore>,
    started: async_mpsc::UnboundedSender<String>,
}

impl TaskHandler for ChildHandler {
    async fn run(&self, task: TaskRun) -> Result<Value, Error> {
        say(&format!("run {}", task.idempotency_key));
        if task.kind == "block" {
            if task.input["round"].as_u64() == Some(self.round) {
                let _ = self.started.send(task.id.clone());
                std::future::pending::<()>().await;
            }
            let permit = self
                .gate
                .acquire()
                .await
                .map_err(|_| Error::system("closed"))?;
            permit.forget();
        }
        Ok(Value::Null)
    }
}

/// The child role; does nothing unless the parent selected it.
#[test]
fn child_role() {
    let (Ok(store), Ok(round)) = (std::env::var(STORE_ENV), std::env::var(ROUND_ENV)) else {
        return;
    };
    let round: u64 = round.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(child(Path::new(&store), round));
}

async fn child(path: &Path, round: u64) {
    let store = Store::open(path, &StoreOptions::new()).unwrap();
    let tasks = TaskSupervisor::new("child-work");
    let gate = Arc::new(Semaphore::new(0));
    let (started, mut started_receiver) = async_mpsc::unbounded_channel();
    let handler = ChildHandler {
        round,
        gate: Arc::clone(&gate),
        started,
    };
    let mut spec = AgentSpec::<TaskAgent<ChildHandler>>::new(
        "sigkill-agent",
        TaskAgentArgs::new(handler),
        &tasks,
    );
    spec.persistent(&store);
    let (_tree, agent) = crate::support::supervise(spec.child_spec().unwrap()).await;

    let restored = agent.run(TaskStatusQuery {}).await.unwrap();
    say(&format!(
        "restored {}",
        serde_json::to_string(&restored).unwrap()
    ));
    gate.add_permits(1);
    agent.run(ResumeTasks {}).await.unwrap();
    let drained = restored.counters.processed + if round == 1 { 0 } else { 11 };
    wait_processed(&agent, drained).await;

    let submit = |id: String, kind: &str| {
        let task = Task::new(id, kind, json!({"round": round})).timeout(Duration::from_secs(600));
        SubmitTask(task)
    };
    for index in 0..10 {
        agent
            .run(submit(format!("before-{round}-{index}"), "quick"))
            .await
            .unwrap();
    }
    agent
        .run(submit(format!("block-{round}"), "block"))
        .await
        .unwrap();
    for index in 0..10 {
        agent
            .run(submit(format!("after-{round}-{index}"), "quick"))
            .await
            .unwrap();
    }
    let blocked = tokio::time::timeout(LINE_TIMEOUT, started_receiver.recv())
        .await
        .unwrap();
    assert_eq!(blocked, Some(format!("block-{round}")));
    agent.run(PauseTasks {}).await.unwrap();
    let ready = agent.run(TaskStatusQuery {}).await.unwrap();
    assert_eq!(ready.status, TaskStatus::Paused);
    say(&format!("ready {}", serde_json::to_string(&ready).unwrap()));
    // Wait to be killed (bounded: the parent kills at once).
    let _killed_first = tokio::time::timeout(LINE_TIMEOUT, std::future::pending::<()>()).await;
}

async fn wait_processed(agent: &jido_agents::AgentRef<TaskAgent<ChildHandler>>, processed: u64) {
    foundation_core::testkit::wait_for_state(
        agent.actor(),
        move |server| server.agent().state().counters.processed >= processed,
        LINE_TIMEOUT,
    )
    .await
    .unwrap();
}
