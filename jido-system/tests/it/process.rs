//! The binary as real OS processes: a server killed with SIGKILL mid-run
//! and started again finishes the workflow; a second server on the same
//! data directory fails clearly; bad token files are refused; SIGTERM
//! stops the server in order.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::{body, client, send, serve_command, spawn_server};

fn token(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("token"))
        .expect("the token file")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_server_resumes_the_plan_workflow_with_five_results() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    let log = directory.path().join("server.log");
    let mut first = spawn_server(&data, &log).await;
    let token = token(&data);
    let mode = std::fs::metadata(data.join("token"))
        .expect("token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let http = client();
    for (flag, value) in [
        ("use_v2_coordinator", json!(100)),
        ("use_sync_test_apis", json!("on")),
    ] {
        let response = send(
            &http,
            &first.base,
            Method::PUT,
            &format!("/api/v1/flags/{flag}"),
            Some(json!({"value": value, "reason": "test"})),
            Some(&token),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let started = send(
        &http,
        &first.base,
        Method::POST,
        "/api/v1/workflows",
        Some(json!({"definition": crate::support::plan_workflow(1500), "idempotency_key": "plan-05"})),
        Some(&token),
    )
    .await;
    assert_eq!(started.status(), 201);
    let id = body(started).await["id"].as_str().expect("id").to_owned();
    let running = body(
        send(
            &http,
            &first.base,
            Method::GET,
            &format!("/api/v1/workflows/{id}"),
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(running["status"], "running", "killed mid-run: {running}");

    first.child.start_kill().expect("SIGKILL");
    let status = first.child.wait().await.expect("the server ends");
    assert!(!status.success(), "killed: {status}");

    let second = spawn_server(&data, &log).await;
    let done = send(
        &http,
        &second.base,
        Method::GET,
        &format!("/api/v1/workflows/{id}?wait=true"),
        None,
        None,
    )
    .await;
    assert_eq!(done.status(), 200);
    let done = body(done).await;
    assert_eq!(done["status"], "completed", "{done}");
    let results = done["results"].as_object().expect("results");
    assert_eq!(results.len(), 5);
    // The same key still names the same workflow after the restart.
    let again = send(
        &http,
        &second.base,
        Method::POST,
        "/api/v1/workflows",
        Some(json!({"definition": crate::support::plan_workflow(1500), "idempotency_key": "plan-05"})),
        Some(&token),
    )
    .await;
    assert_eq!(body(again).await["id"], id.as_str());
    let flags = body(
        send(
            &http,
            &second.base,
            Method::GET,
            "/api/v1/flags",
            None,
            None,
        )
        .await,
    )
    .await;
    assert!(
        flags.to_string().contains("100%"),
        "the flags survived: {flags}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_directory_fails_clearly() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    let _first = spawn_server(&data, &directory.path().join("first.log")).await;
    let second_log = directory.path().join("second.log");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        serve_command(&data, &second_log).status(),
    )
    .await
    .expect("the second server gives up at once, no hang")
    .expect("it ran");
    assert_eq!(status.code(), Some(8), "exit code 8: data directory in use");
    let log = std::fs::read_to_string(&second_log).expect("log");
    assert!(log.contains("in use"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_shared_token_files_are_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    std::fs::create_dir_all(&data).expect("dir");
    let path = data.join("token");
    std::fs::write(&path, "short\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let log = directory.path().join("corrupt.log");
    let status = tokio::time::timeout(Duration::from_secs(60), serve_command(&data, &log).status())
        .await
        .expect("no hang")
        .expect("it ran");
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("valid token"), "{text}");

    std::fs::write(&path, "a-long-enough-token-0123456789").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let log = directory.path().join("shared.log");
    let status = tokio::time::timeout(Duration::from_secs(60), serve_command(&data, &log).status())
        .await
        .expect("no hang")
        .expect("it ran");
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("chmod 600"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_in_order() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    let log = directory.path().join("server.log");
    let mut server = spawn_server(&data, &log).await;
    let pid = server.child.id().expect("a pid");
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), server.child.wait())
        .await
        .expect("stops within its bound")
        .expect("status");
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("stopped"), "{text}");
    // Offline maintenance on the stopped store.
    let backup = directory.path().join("backup.redb");
    let offline = |args: Vec<std::ffi::OsString>| async move {
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_jido-system"))
                .args(args)
                .output(),
        )
        .await
        .expect("no hang")
        .expect("it runs")
    };
    let copied = offline(vec![
        "backup".into(),
        backup.clone().into(),
        "--data-dir".into(),
        data.clone().into(),
    ])
    .await;
    assert_eq!(
        copied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert!(backup.exists());
    // The store was closed cleanly: a new server opens it; offline
    // commands then refuse the store in use.
    let _again = spawn_server(&data, &log).await;
    let refused = offline(vec![
        "restore".into(),
        backup.into(),
        "--data-dir".into(),
        data.into(),
    ])
    .await;
    assert_eq!(
        refused.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_answers_with_exit_codes_scripts_can_use() {
    let server = crate::support::Server::start(|_| {}).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let run = |args: Vec<&str>, token: Option<&str>, url: &str| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_jido-system"));
        command
            .args(&args)
            .arg("--url")
            .arg(url)
            .arg("--data-dir")
            .arg(directory.path())
            .env_remove("JIDO_TOKEN")
            .env_remove("JIDO_URL");
        if let Some(token) = token {
            command.env("JIDO_TOKEN", token);
        }
        async move {
            tokio::time::timeout(Duration::from_secs(60), command.output())
                .await
                .expect("the CLI answers")
                .expect("it runs")
        }
    };
    let base = server.base.clone();
    let listed = run(vec!["flags", "list"], None, &base).await;
    assert_eq!(listed.status.code(), Some(0));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed["flags"].as_array().map(Vec::len), Some(6));

    let set = run(
        vec![
            "flags",
            "set",
            "use_sync_test_apis",
            "on",
            "--reason",
            "cli",
        ],
        Some(crate::support::TOKEN),
        &base,
    )
    .await;
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    let no_token = run(
        vec![
            "flags",
            "set",
            "use_sync_test_apis",
            "off",
            "--reason",
            "cli",
        ],
        None,
        &base,
    )
    .await;
    assert_eq!(no_token.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("hint:"));

    let unknown = run(
        vec!["flags", "set", "no_such_flag", "on", "--reason", "cli"],
        Some(crate::support::TOKEN),
        &base,
    )
    .await;
    assert_eq!(unknown.status.code(), Some(5));

    let unreachable = run(vec!["status"], None, "http://127.0.0.1:9").await;
    assert_eq!(unreachable.status.code(), Some(3));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walks_the_plan_and_every_step_happens() {
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_jido-system"))
            .arg("demo")
            .env_remove("JIDO_TOKEN")
            .output(),
    )
    .await
    .expect("the demo ends within its bound")
    .expect("it runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert!(stdout.contains("rollback 4 -> 3"), "{stdout}");
    assert!(stdout.contains("cohort_error_rate"), "{stdout}");
}
