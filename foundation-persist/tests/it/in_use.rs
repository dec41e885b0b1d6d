//! A store file is used by one process at a time: a second open gets
//! `store_in_use` at once, never a hang, whether the holder is another
//! process or another handle in this one.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use foundation_error::ErrorCode;
use foundation_persist::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{Task, bounded, temp_dir};

const TEST_NAME: &str = "in_use::a_second_process_gets_store_in_use";
const HOLDER_PATH: &str = "FOUNDATION_PERSIST_HOLDER_PATH";
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_gets_store_in_use() {
    if let Ok(path) = std::env::var(HOLDER_PATH) {
        return hold(PathBuf::from(path)).await;
    }
    let directory = temp_dir();
    let path = directory.path().join("held.redb");
    let executable = std::env::current_exe().expect("the test binary knows its path");
    let mut holder = Command::new(executable)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(HOLDER_PATH, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the test binary can be re-run");
    let stdout = holder.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = tokio::time::timeout(LINE_TIMEOUT, lines.next_line())
            .await
            .expect("the holder reports within the timeout")
            .expect("the holder's output is readable")
            .expect("the holder reports before it exits");
        // The test harness prints the test's name without a line break
        // before the holder's first line.
        if line.ends_with("HOLDING") {
            break;
        }
    }

    let error = Store::open(&path, &StoreOptions::new()).expect_err("the call fails");
    assert_eq!(error.code(), ErrorCode::STORE_IN_USE, "{error}");
    assert!(!error.is_retryable());
    assert_eq!(
        error.context_value("path"),
        Some(path.display().to_string().as_str())
    );

    // Once the holder is gone (killed, even), the file opens.
    holder.start_kill().expect("the holder can be killed");
    tokio::time::timeout(LINE_TIMEOUT, holder.wait())
        .await
        .expect("a killed holder exits")
        .expect("its status is readable");
    let store = Store::open(&path, &StoreOptions::new()).expect("the store call succeeds");
    let tasks = store
        .state::<Task>("tasks")
        .expect("the store call succeeds");
    assert_eq!(
        bounded(tasks.get("held"))
            .await
            .expect("the store call succeeds"),
        Some(Task::new(7))
    );
}

/// The holder: opens the store, writes, says so, and waits to be killed.
async fn hold(path: PathBuf) {
    use std::io::Write;
    let store = Store::open(&path, &StoreOptions::new()).expect("the holder opens the store");
    let tasks = store
        .state::<Task>("tasks")
        .expect("the store call succeeds");
    bounded(tasks.put("held", &Task::new(7)))
        .await
        .expect("the store call succeeds");
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "HOLDING");
        let _ = stdout.flush();
    }
    // Waits until the parent closes stdin or kills this process; bounded
    // so that a forgotten holder ends by itself.
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let _ = tokio::time::timeout(LINE_TIMEOUT, stdin.next_line()).await;
    drop(store);
}

#[tokio::test]
async fn a_second_open_in_the_same_process_gets_store_in_use() {
    let directory = temp_dir();
    let path = directory.path().join("twice.redb");
    let first = Store::open(&path, &StoreOptions::new()).expect("the store call succeeds");
    let error = Store::open(&path, &StoreOptions::new()).expect_err("the call fails");
    assert_eq!(error.code(), ErrorCode::STORE_IN_USE, "{error}");
    bounded(first.close())
        .await
        .expect("the store call succeeds");
    let second = Store::open(&path, &StoreOptions::new()).expect("the store call succeeds");
    bounded(second.close())
        .await
        .expect("the store call succeeds");
}
