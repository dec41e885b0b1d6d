//! The dashboard in a real browser: the application runs in this process on
//! 127.0.0.1 (any free port), Debian's `chromedriver` runs as a child
//! process, and headless Chromium (driven through fantoccini) loads `GET /`
//! and presses the page's own buttons. It checks that the page shows the
//! phase, that the API's errors are shown (a wrong token, a refused
//! advance), that a rollback pressed in the page changes the phase and
//! appears in the history, as the server also says, and that the emergency
//! rollback acts on its second click, and that the nodes panel shows this
//! one node (live) on the redb store.
//!
//! When `/usr/bin/chromium` or `/usr/bin/chromedriver` is missing the test
//! fails if `FOUNDATION_REQUIRE_BROWSER=1` (CI sets it) and otherwise says
//! loudly that it was skipped and passes.
//!
//! This module is not for the JSON API's own behaviour (the API tests cover
//! it) nor for how the page looks.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use jido_system::Application;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "dashboard-test-token";
/// Bound on every wait for the page to show something (it refreshes every
/// two seconds; the first load starts a fresh browser).
const PAGE_WAIT: Duration = Duration::from_secs(30);
/// Bound on the whole scenario, browser start included.
const WHOLE_TEST: Duration = Duration::from_secs(180);

/// `chromedriver` as a child process in its own process group; dropping it
/// kills the group (chromedriver and any browser it started).
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits (bounded) for
    /// the line that says it listens.
    async fn start() -> ChromeDriver {
        let port = free_port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines
                .next_line()
                .await
                .expect("chromedriver's stdout reads")
            {
                eprintln!("chromedriver: {line}");
                if line.contains("started successfully") {
                    return true;
                }
            }
            false
        })
        .await
        .expect("chromedriver says within 30 s whether it started");
        assert!(started, "chromedriver exited before it listened");
        // Keep draining its output so that it never blocks on a full pipe.
        let drain = async move { while let Ok(Some(_)) = lines.next_line().await {} };
        drop(tokio::task::spawn(drain));
        ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it started, even
        // when the test failed before closing its session.
        if let Some(pid) = self.child.id() {
            let _already_gone = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _already_gone = self.child.start_kill();
    }
}

/// A free loopback port for chromedriver (which cannot report a port it
/// picked itself).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("a bound address").port()
}

/// Whether the browser is installed; when it is not, either fails (CI) or
/// says loudly that the test is skipped.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("FOUNDATION_REQUIRE_BROWSER").is_ok_and(|value| value == "1");
    assert!(
        !required,
        "FOUNDATION_REQUIRE_BROWSER=1 but {} is missing (apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    // Straight to the process's stderr, past the test harness's capture,
    // so that a skip shows even though the test passes.
    let notice = format!(
        "\n==================================================================\n\
         SKIPPED: the dashboard browser test did not run:\n\
         \x20 {} missing.\n\
         \x20 Install Debian's chromium and chromium-driver to run it;\n\
         \x20 set FOUNDATION_REQUIRE_BROWSER=1 to make this a failure.\n\
         ==================================================================\n",
        missing.join(" and ")
    );
    let _unseen = std::io::stderr().write_all(notice.as_bytes());
    false
}

async fn connect(driver: &ChromeDriver, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // Bounds inside the browser too: a page load or a script never waits
    // longer than these.
    capabilities.insert(
        "timeouts".to_owned(),
        json!({ "pageLoad": 30_000, "script": 10_000, "implicit": 0 }),
    );
    let connecting = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await;
    connecting.expect("a chromium session through chromedriver")
}

/// Waits (bounded) until the page has an element matching `css`.
async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(error) => {
            let errors = match client.find(Locator::Id("error")).await {
                Ok(banner) => banner.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!(
                "the page never showed `{css}` within {PAGE_WAIT:?}: {error}; its error banner: {errors:?}"
            )
        }
    }
}

/// The text of the element `css` matches now, read in one step inside the
/// page: the dashboard re-renders on every refresh, so a reference to an
/// element found earlier may already be stale.
async fn text_of(client: &Client, css: &str) -> String {
    let text = client
        .execute(
            "const element = document.querySelector(arguments[0]); \
             return element === null ? null : element.textContent;",
            vec![serde_json::Value::String(css.to_owned())],
        )
        .await
        .expect("the page runs the script");
    text.as_str()
        .unwrap_or_else(|| panic!("no element matches `{css}`"))
        .to_owned()
}

/// Replaces the text of the input `id`.
async fn type_into(client: &Client, id: &str, text: &str) {
    let input = client
        .find(Locator::Id(id))
        .await
        .expect("the input exists");
    input.clear().await.expect("the input clears");
    input.send_keys(text).await.expect("the input takes keys");
}

/// Presses `button` and waits for the action's outcome number `seq`;
/// returns its state (`ok` or `failed`) and text.
async fn press(client: &Client, button: &str, seq: u32) -> (String, String) {
    client
        .find(Locator::Id(button))
        .await
        .expect("the button exists")
        .click()
        .await
        .expect("the button clicks");
    let result = wait_for(client, &format!("#action-result[data-seq='{seq}']")).await;
    let state = result.attr("data-state").await.expect("an attribute read");
    (
        state.unwrap_or_default(),
        result.text().await.expect("a text read"),
    )
}

async fn rollout(address: SocketAddr) -> Value {
    let answer = reqwest::get(format!("http://{address}/api/v1/rollout"))
        .await
        .expect("GET /api/v1/rollout answers");
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json().await.expect("a JSON rollout")
}

/// Workflows run to completion before the page loads: more than the
/// listing's page of 100, so only an exact count shows them all.
const COUNTED: usize = 101;

async fn run_counted_workflows(application: &Application) {
    let engine = application.shared().engine.get().expect("the engine");
    let definition = jido_workflow::WorkflowDefinition::from_json(
        r#"{"name": "counted", "steps": [{"task": {"id": "only", "work": "process_data", "params": {"rows": 1}}}]}"#,
    )
    .expect("a definition");
    let mut ids = Vec::with_capacity(COUNTED);
    for _ in 0..COUNTED {
        ids.push(
            engine
                .start_workflow(&definition, serde_json::json!({}))
                .await
                .expect("a start"),
        );
    }
    for id in ids {
        engine
            .wait(&id, Duration::from_secs(60))
            .await
            .expect("the workflow ends");
    }
}

/// Kills a running workflow's process and waits until the engine has
/// restarted it and the workflow finished.
async fn restart_a_workflow_process(application: &Application) {
    let engine = application.shared().engine.get().expect("the engine");
    let mut events = foundation_core::testkit::EventCollector::new(&application.shared().events);
    let definition = jido_workflow::WorkflowDefinition::from_json(
        r#"{"name": "killed", "steps": [{"task": {"id": "only", "work": "process_data", "params": {"delay_ms": 1000}}}]}"#,
    )
    .expect("a definition");
    let id = engine
        .start_workflow(&definition, serde_json::json!({}))
        .await
        .expect("a start");
    assert!(engine.process(&id).expect("its process").kill());
    events
        .wait_for(
            |events| {
                events.iter().any(|event| {
                    &*event.supervisor == "workflows"
                        && matches!(
                            event.kind,
                            foundation_core::SupervisorEventKind::ChildRestarted { .. }
                        )
                })
            },
            Duration::from_secs(30),
        )
        .await
        .expect("the engine restarts the process");
    engine
        .wait(&id, Duration::from_secs(60))
        .await
        .expect("the workflow ends");
}

/// The scenario, in the browser; the caller closes the session whatever
/// happens.
async fn scenario(client: &Client, address: SocketAddr) {
    client
        .goto(&format!("http://{address}/"))
        .await
        .expect("the dashboard loads");

    // The page shows the phase: a fresh system is at the baseline.
    wait_for(client, "#phase[data-phase='0']").await;
    wait_for(client, "#connection.live").await;

    // Exact workflow counts past the listing's page of 100 (the caller
    // ran COUNTED workflows and the one whose process it killed to
    // completion), and the agents.
    let completed = COUNTED + 1;
    wait_for(
        client,
        &format!("#workflows-completed[data-count='{completed}']"),
    )
    .await;
    wait_for(
        client,
        &format!("#workflows-total[data-count='{completed}']"),
    )
    .await;
    wait_for(client, "#agents-total[data-count='2']").await;
    // The workflow process killed before the page loaded: its restart by
    // the engine is in the list.
    wait_for(
        client,
        "#restarts li[data-supervisor='workflows'][data-kind='restarted']",
    )
    .await;
    // The nodes panel: on the redb store, this one node, live.
    wait_for(
        client,
        "#cluster-summary[data-node='dashboard-node'][data-store='redb']",
    )
    .await;
    wait_for(
        client,
        "#cluster-nodes tr[data-node='dashboard-node'][data-live='true']",
    )
    .await;

    // A wrong token: the API's 401 is shown, nothing changes.
    type_into(client, "reason", "browser test").await;
    type_into(client, "token", "not-the-token").await;
    let (state, text) = press(client, "advance-button", 1).await;
    assert_eq!(state, "failed", "{text}");
    assert!(text.contains("401"), "the 401 is shown: {text}");

    // The right token, but the rules refuse an unforced advance (the
    // baseline has not passed a health check): the refusal is shown.
    type_into(client, "token", TOKEN).await;
    let (state, text) = press(client, "advance-button", 2).await;
    assert_eq!(state, "failed", "{text}");
    assert!(
        text.contains("advance refused"),
        "the refusal is shown: {text}"
    );
    wait_for(client, "#phase[data-phase='0']").await;

    // A forced advance from the page: phase 1, recorded in the history.
    client
        .find(Locator::Id("force"))
        .await
        .expect("the force box exists")
        .click()
        .await
        .expect("the force box ticks");
    type_into(client, "reason", "into phase 1 from the browser").await;
    let (state, text) = press(client, "advance-button", 3).await;
    assert_eq!(state, "ok", "{text}");
    wait_for(client, "#phase[data-phase='1']").await;
    wait_for(
        client,
        "#history tr[data-kind='forced_advance'][data-to='1']",
    )
    .await;

    // The rollback pressed in the page: back to the baseline, and the
    // rollback with its reason in the history.
    type_into(client, "reason", "rolled back from the dashboard").await;
    let (state, text) = press(client, "rollback-button", 4).await;
    assert_eq!(state, "ok", "{text}");
    wait_for(client, "#phase[data-phase='0']").await;
    let row = "#history tr[data-kind='manual'][data-to='0']";
    wait_for(client, row).await;
    let row_text = text_of(client, row).await;
    assert!(
        row_text.contains("rolled back from the dashboard"),
        "the history row shows the reason: {row_text}"
    );

    // The server agrees with the page.
    let rollout = rollout(address).await;
    assert_eq!(rollout["phase"], 0, "{rollout}");
    let history = rollout["history"].as_array().expect("a history list");
    assert!(
        history.iter().any(|record| record["kind"] == "manual"
            && record["from"] == 1
            && record["to"] == 0
            && record["reason"] == "rolled back from the dashboard"),
        "the server recorded the rollback: {rollout}"
    );

    // The emergency rollback asks for a second click before it acts.
    type_into(client, "reason", "emergency drill from the dashboard").await;
    let (state, text) = press(client, "emergency-button", 5).await;
    assert_eq!(state, "armed", "{text}");
    let (state, text) = press(client, "emergency-button", 6).await;
    assert_eq!(state, "ok", "{text}");
    wait_for(client, "#history tr[data-kind='emergency'][data-to='0']").await;

    // The token is remembered for the tab: a reload keeps it.
    client.refresh().await.expect("the page reloads");
    wait_for(client, "#phase[data-phase='0']").await;
    let kept = client
        .find(Locator::Id("token"))
        .await
        .expect("the token input")
        .prop("value")
        .await
        .expect("its value");
    assert_eq!(kept.as_deref(), Some(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_pressed_in_the_dashboard_changes_the_phase_and_shows_in_the_history() {
    if !browser_available() {
        return;
    }
    let data = tempfile::tempdir().expect("a data directory");
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let mut builder = Application::builder();
    builder
        .data_dir(data.path())
        .node_id("dashboard-node")
        .listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .token(TOKEN);
    let application = builder.start().await.expect("the application starts");
    let address = application
        .listening(Duration::from_secs(30))
        .await
        .expect("the HTTP server listens");
    run_counted_workflows(&application).await;
    restart_a_workflow_process(&application).await;

    let driver = ChromeDriver::start().await;
    let outcome = tokio::time::timeout(WHOLE_TEST, async {
        let client = connect(&driver, profile.path()).await;
        // Run the scenario as a task so that a failed assertion still
        // lets the session close below.
        let run = {
            let client = client.clone();
            tokio::task::spawn(async move { scenario(&client, address).await })
        };
        let result = run.await;
        let _closing = client.close().await;
        result
    })
    .await;
    drop(driver);
    application
        .shutdown(Duration::from_secs(30))
        .await
        .expect("the application stops");
    match outcome {
        Err(_) => panic!("the browser scenario took longer than {WHOLE_TEST:?}"),
        Ok(Err(failure)) if failure.is_panic() => std::panic::resume_unwind(failure.into_panic()),
        Ok(Err(failure)) => panic!("the browser scenario did not finish: {failure}"),
        Ok(Ok(())) => {}
    }
}
