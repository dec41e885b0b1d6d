//! `jido-system demo`: the plan's scripted walk-through, in about a minute
//! on a temporary store, against a real server process (this binary's
//! `serve`, started as a child).
//!
//! It runs the plan's workflow, walks phases 1 to 4, sends traffic to the
//! canary (phase 4: `use_v2_coordinator` at 10%) while the server injects
//! faults into the starts routed to CoordinatorV2, waits for the
//! deployment monitor's automatic rollback to phase 3 and shows the check
//! that triggered it, kills the server process with SIGKILL and starts it
//! again to show that a durable workflow and the flags survived, and
//! prints a timeline. It exits non-zero if any step did not happen.
//!
//! This module is not for tests (they drive the API themselves); the demo
//! polls with short sleeps, bounded, as a person at a terminal would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use foundation_error::{Error, ErrorCode};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::{ApiClient, CliError};

/// The demo's plan: the five phases of the default plan, judged every two
/// seconds over a four-second window, with small sample minimums.
const DEMO_ANALYSIS: &str = r#"
[analysis]
interval = "2s"
window = "4s"
count = 5
failureLimit = 2
inconclusiveLimit = 1000
consecutiveErrorLimit = 1000
initialDelay = "0s"
dryRun = false
autoAdvance = false
cooldown = "1m"
advanceQuietPeriod = "0s"

[thresholds]
maxErrorRate = 0.5
maxRestartsPerMinute = 10
minDeliverySuccess = 0.95
minRecoverySuccess = 0.99
maxP99Ratio = 1000.0
maxCohortErrorMargin = 0.02
minRequests = 20
minCohortRequests = 5
"#;

/// Share of V2 starts the demo server fails.
const V2_FAULTS_PERCENT: &str = "40";
/// How long the canary may take to be rolled back.
const ROLLBACK_BOUND: Duration = Duration::from_secs(90);

struct Timeline {
    started: Instant,
    steps: Vec<(Duration, bool, String)>,
}

impl Timeline {
    fn record(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        let at = self.started.elapsed();
        #[allow(clippy::print_stdout)]
        {
            println!(
                "[{:>6.1}s] {} {what}",
                at.as_secs_f64(),
                if ok { "ok  " } else { "FAIL" }
            );
        }
        self.steps.push((at, ok, what));
    }

    fn failed(&self) -> usize {
        self.steps.iter().filter(|(_, ok, _)| !ok).count()
    }
}

fn demo_plan() -> String {
    let default = deploy_monitor::DEFAULT_PLAN_TOML;
    let phases = default
        .find("[[phase]]")
        .map_or(default, |start| &default[start..]);
    format!("{DEMO_ANALYSIS}\n{phases}")
}

fn failure(message: impl Into<std::borrow::Cow<'static, str>>) -> CliError {
    CliError::from(Error::new(ErrorCode::INTERNAL_ERROR, message))
}

async fn start_server(
    data_dir: &Path,
    plan: &Path,
    log: &Path,
) -> Result<(Child, String), CliError> {
    let executable = std::env::current_exe().map_err(Error::from)?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::from)?;
    let mut child = Command::new(executable)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--plan")
        .arg(plan)
        .arg("--inject-v2-faults")
        .arg(V2_FAULTS_PERCENT)
        .env_remove("JIDO_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::from)?;
    let stdout = child.stdout.take().ok_or_else(|| failure("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listening on http://") {
                return Some(line);
            }
        }
        None
    })
    .await
    .map_err(|_| failure("the server did not start listening within 60 s"))?
    .ok_or_else(|| {
        failure(format!(
            "the server ended before listening; see {}",
            log.display()
        ))
    })?;
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| failure("no address in the server's output"))?;
    Ok((child, format!("http://{address}")))
}

fn plan_workflow() -> Value {
    json!({
        "name": "integration_test_workflow",
        "steps": [
            {"parallel": [
                {"task": {"id": "task1", "work": "process_data", "params": {"rows": 1000}}},
                {"task": {"id": "task2", "work": "validate_data", "params": {"rows": 1000}}},
                {"task": {"id": "task3", "work": "transform_data", "params": {"rows": 1000}}}
            ]},
            {"sequential": [
                {"task": {"id": "task4", "work": "aggregate_results", "params": {"delay_ms": 100}}},
                {"task": {"id": "task5", "work": "save_results", "params": {"delay_ms": 200}}}
            ]}
        ]
    })
}

/// Polls a V1 (in-memory) workflow until it has ended, at most `bound`.
async fn poll_until_ended(client: &ApiClient, id: &str, bound: Duration) -> Option<String> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(view) = client
            .send(Method::GET, &format!("/api/v1/workflows/{id}"), None)
            .await
        {
            let status = view["status"].as_str().unwrap_or_default().to_owned();
            if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
                return Some(status);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn phase(client: &ApiClient) -> Result<u64, CliError> {
    Ok(
        client.send(Method::GET, "/api/v1/rollout", None).await?["phase"]
            .as_u64()
            .unwrap_or(u64::MAX),
    )
}

/// Runs the demo.
///
/// # Errors
///
/// A [`CliError`] (exit code 1) when a step did not happen.
///
/// # Cancel safety
///
/// Dropping it kills the server process (`kill_on_drop`) and removes the
/// temporary store.
pub async fn run() -> Result<(), CliError> {
    let directory = tempfile::tempdir().map_err(Error::from)?;
    let data_dir: PathBuf = directory.path().join("data");
    let plan = directory.path().join("plan.toml");
    std::fs::write(&plan, demo_plan()).map_err(Error::from)?;
    let log = directory.path().join("server.log");
    let mut timeline = Timeline {
        started: Instant::now(),
        steps: Vec::new(),
    };
    let outcome = script(&data_dir, &plan, &log, &mut timeline).await;
    if let Err(error) = &outcome {
        timeline.record(false, format!("stopped: {error}"));
    }
    let failed = timeline.failed();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "\ntimeline: {} steps, {failed} failed",
            timeline.steps.len()
        );
    }
    if failed > 0 {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(20).collect();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("server log (last lines):");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        return Err(failure(format!(
            "{failed} step(s) of the demo did not happen"
        )));
    }
    Ok(())
}

async fn script(
    data_dir: &Path,
    plan: &Path,
    log: &Path,
    timeline: &mut Timeline,
) -> Result<(), CliError> {
    let (mut server, base) = start_server(data_dir, plan, log).await?;
    let token = crate::token::client_token(data_dir)?;
    let client = ApiClient::with_token(&base, Some(token.clone()))?;
    timeline.record(
        true,
        format!(
            "server started on {base} (temporary store {})",
            data_dir.display()
        ),
    );

    // Phases 1 to 3.
    for expected in 1..=3u64 {
        client
            .send(
                Method::POST,
                "/api/v1/rollout/advance",
                Some(json!({"reason": "demo", "force": true})),
            )
            .await?;
        let now = phase(&client).await?;
        timeline.record(now == expected, format!("advanced to phase {now}"));
    }

    // The plan's workflow on the legacy coordinator (use_v2_coordinator is off in phase 3).
    let started = client
        .send(
            Method::POST,
            "/api/v1/workflows",
            Some(json!({"definition": plan_workflow()})),
        )
        .await?;
    let id = started["id"].as_str().unwrap_or_default().to_owned();
    let ended = poll_until_ended(&client, &id, Duration::from_secs(30)).await;
    timeline.record(
        ended.as_deref() == Some("completed"),
        format!(
            "workflow {id} on {} ended {}",
            started["coordinator"],
            ended.unwrap_or_else(|| "not in time".into())
        ),
    );

    // Phase 4: the canary.
    client
        .send(
            Method::POST,
            "/api/v1/rollout/advance",
            Some(json!({"reason": "demo: canary", "force": true})),
        )
        .await?;
    let now = phase(&client).await?;
    timeline.record(
        now == 4,
        format!("advanced to phase {now}: use_v2_coordinator at 10%"),
    );

    // Traffic until the monitor rolls the canary back.
    let deadline = Instant::now() + ROLLBACK_BOUND;
    let mut sent = 0u64;
    let mut v2_failed = 0u64;
    let mut durable: Option<String> = None;
    let mut rolled_back = false;
    while Instant::now() < deadline {
        for _ in 0..20 {
            sent += 1;
            let body = json!({
                "definition": {"name": "canary", "steps": [
                    {"task": {"id": "only", "work": "process_data", "params": {"rows": 10, "delay_ms": 2000}}}]},
                "idempotency_key": format!("demo-{sent}")
            });
            match client
                .send(Method::POST, "/api/v1/workflows", Some(body))
                .await
            {
                Ok(answer) if answer["coordinator"] == "v2" && durable.is_none() => {
                    durable = answer["id"].as_str().map(str::to_owned);
                }
                Ok(_) => {}
                Err(error) if error.error.code() == ErrorCode::SERVICE_UNAVAILABLE => {
                    v2_failed += 1
                }
                Err(error) => return Err(error),
            }
        }
        if phase(&client).await? == 3 {
            rolled_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    timeline.record(
        rolled_back,
        format!("sent {sent} starts, {v2_failed} V2 starts failed by fault injection; automatic rollback to phase 3: {rolled_back}"),
    );
    let rollout = client.send(Method::GET, "/api/v1/rollout", None).await?;
    let automatic = rollout["history"]
        .as_array()
        .and_then(|history| history.iter().find(|record| record["kind"] == "automatic"))
        .cloned();
    match &automatic {
        Some(record) => {
            let failing: Vec<String> = record["checks"]
                .as_array()
                .map(|checks| {
                    checks
                        .iter()
                        .filter(|check| check["outcome"] == "fail")
                        .map(|check| {
                            format!(
                                "{} = {} against threshold {} ({} samples)",
                                check["check"],
                                check["value"],
                                check["threshold"],
                                check["samples"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            timeline.record(
                !failing.is_empty(),
                format!(
                    "rollback {} -> {} by {}: {}",
                    record["from"],
                    record["to"],
                    record["who"],
                    failing.join("; ")
                ),
            );
        }
        None => timeline.record(false, "no automatic rollback in the history"),
    }

    // Kill the OS process, start it again.
    let flags_before = client.send(Method::GET, "/api/v1/flags", None).await?["flags"].clone();
    server.start_kill().map_err(Error::from)?;
    let status = server.wait().await.map_err(Error::from)?;
    timeline.record(
        !status.success(),
        format!("server killed with SIGKILL ({status})"),
    );
    let (mut server, base) = start_server(data_dir, plan, log).await?;
    let client = ApiClient::with_token(&base, Some(token))?;
    timeline.record(true, format!("server restarted on {base}"));
    let flags_after = client.send(Method::GET, "/api/v1/flags", None).await?["flags"].clone();
    timeline.record(flags_before == flags_after, "the flags survived the kill");
    let now = phase(&client).await?;
    timeline.record(now == 3, format!("the phase survived the kill: {now}"));
    match durable {
        Some(id) => {
            let view = client
                .send(
                    Method::GET,
                    &format!("/api/v1/workflows/{id}?wait=true"),
                    None,
                )
                .await?;
            timeline.record(
                view["status"] == "completed",
                format!(
                    "durable workflow {id} (started on V2 before the kill) is {}",
                    view["status"]
                ),
            );
        }
        None => timeline.record(false, "no workflow reached V2 during the canary"),
    }
    // The demo is over: the server (and its temporary store) goes; a
    // failure to kill it is moot, `kill_on_drop` covers it.
    let _ = server.start_kill();
    // Reaps the killed child; its exit status is not part of the demo.
    let _ = server.wait().await;
    Ok(())
}
