//! Shared helpers: an in-process application with its HTTP server, an HTTP
//! client, and the binary as a child process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use foundation_persist::{Store, StoreOptions};
use jido_system::{Application, ApplicationBuilder};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";

/// The plan's 5-task workflow over the demo works.
pub(crate) fn plan_workflow(delay_ms: u64) -> Value {
    json!({
        "name": "integration_test_workflow",
        "steps": [
            {"parallel": [
                {"task": {"id": "task1", "work": "process_data", "params": {"rows": 1000}}},
                {"task": {"id": "task2", "work": "validate_data", "params": {"rows": 1000}}},
                {"task": {"id": "task3", "work": "transform_data", "params": {"rows": 1000}}}
            ]},
            {"sequential": [
                {"task": {"id": "task4", "work": "aggregate_results", "params": {"delay_ms": delay_ms, "fail_times": 1},
                          "retry": {"attempts": 3, "backoff_ms": 50}}},
                {"task": {"id": "task5", "work": "save_results", "params": {"delay_ms": delay_ms}}}
            ]}
        ]
    })
}

/// A running in-process server.
pub(crate) struct Server {
    pub(crate) app: Application,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Server {
    /// Starts an application on an in-memory store, listening on port 0.
    pub(crate) async fn start(configure: impl FnOnce(&mut ApplicationBuilder)) -> Server {
        let store = Store::open_in_memory(&StoreOptions::new()).expect("in-memory store");
        Server::start_on(store, configure).await
    }

    /// As [`start`](Server::start), on `store`.
    pub(crate) async fn start_on(
        store: Store,
        configure: impl FnOnce(&mut ApplicationBuilder),
    ) -> Server {
        let mut builder = Application::builder();
        builder
            .store(store)
            .listen("127.0.0.1:0".parse().expect("address"))
            .token(TOKEN);
        configure(&mut builder);
        let app = builder.start().await.expect("the application starts");
        let address = app
            .listening(Duration::from_secs(30))
            .await
            .expect("the server listens");
        Server {
            app,
            base: format!("http://{address}"),
            http: client(),
        }
    }

    /// A request with the token.
    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        send(&self.http, &self.base, method, path, body, Some(TOKEN)).await
    }

    /// A request without a token.
    pub(crate) async fn anonymous(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        send(&self.http, &self.base, method, path, body, None).await
    }

    /// Sets a flag through the API.
    pub(crate) async fn set_flag(&self, name: &str, value: Value) {
        let response = self
            .send(
                Method::PUT,
                &format!("/api/v1/flags/{name}"),
                Some(json!({"value": value, "reason": "test"})),
            )
            .await;
        assert_eq!(response.status(), 200, "setting {name}");
    }

    /// Stops the application.
    pub(crate) async fn stop(self) {
        self.app
            .shutdown(Duration::from_secs(30))
            .await
            .expect("the application stops");
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

pub(crate) async fn send(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Response {
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("the server answers")
}

/// The JSON body of a response.
pub(crate) async fn body(response: Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// The binary, serving `data_dir` on a free port.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
}

/// Starts `jido-system serve` on `data_dir`; returns once it listens.
pub(crate) async fn spawn_server(data_dir: &Path, log: &Path) -> ServerProcess {
    spawn_command(serve_command(data_dir, log), log).await
}

/// Starts `command` (a [`serve_command`], perhaps with more settings);
/// returns once it listens.
pub(crate) async fn spawn_command(mut command: Command, log: &Path) -> ServerProcess {
    let mut child = command.spawn().expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if line.contains("listening on http://") {
                return line;
            }
        }
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("the server ended before listening: {log}");
    })
    .await
    .expect("the server listens in time");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address");
    ServerProcess {
        child,
        base: format!("http://{address}"),
    }
}

/// The `serve` command on `data_dir`, logging to `log`.
pub(crate) fn serve_command(data_dir: &Path, log: &Path) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_jido-system"));
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("JIDO_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    command
}
