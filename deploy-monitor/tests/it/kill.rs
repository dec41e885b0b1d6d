//! Real processes: a child process runs transitions in a loop on file
//! stores (the monitor's records and the flags in one redb file) and is
//! killed with SIGKILL at arbitrary points; after every kill the reopened
//! monitor's flags and phase agree, and every transition the child
//! reported as done is in the history. (The exact kill point between the
//! flag write and the phase record is forced deterministically in
//! `persistence.rs`; here the kills land wherever the child happens to be.)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use deploy_monitor::{DeployMonitor, RolloutPlan};
use foundation_error::clock::ManualClock;
use foundation_flags::{
    AuditEntry, AuditQuery, Flag, FlagCommit, FlagStore, FlagValue, Flags, StoreFuture, StoredFlags,
};
use foundation_persist::{Metadata, Record, Store, StoreOptions};
use serde::{Deserialize, Serialize};

use crate::{TEST_FLAGS, TEST_PLAN};

/// The environment variable that makes the test its own child.
const CHILD: &str = "DEPLOY_MONITOR_KILL_CHILD";
/// The test's name, to run only it in the child.
const TEST_NAME: &str = "kill::a_killed_process_leaves_the_flags_and_the_phase_consistent";

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredValues {
    values: BTreeMap<String, String>,
    last_sequence: u64,
}

impl Record for StoredValues {
    const TYPE_TAG: &'static str = "test.flag_values";
    const SCHEMA_VERSION: u32 = 1;
}

/// A flag store on foundation-persist, as the integration crate would
/// write one (values only; this test keeps no audit log).
struct FileFlagStore {
    metadata: Metadata,
}

impl FlagStore for FileFlagStore {
    fn load(&self) -> StoreFuture<'_, StoredFlags> {
        Box::pin(async move {
            let stored = self
                .metadata
                .get::<StoredValues>("test.flags")
                .await?
                .unwrap_or_default();
            let mut flags = StoredFlags::default();
            for (flag, value) in stored.values {
                flags.values.insert(flag, value.parse::<FlagValue>()?);
            }
            flags.last_sequence = stored.last_sequence;
            Ok(flags)
        })
    }

    fn commit<'a>(&'a self, commit: &'a FlagCommit) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut stored = self
                .metadata
                .get::<StoredValues>("test.flags")
                .await?
                .unwrap_or_default();
            // The contract: a commit decided on a stale state stores nothing.
            if stored.last_sequence != commit.base_sequence {
                return Err(foundation_flags::stale_commit(
                    commit.base_sequence,
                    stored.last_sequence,
                ));
            }
            for (flag, value) in &commit.values {
                match value {
                    Some(value) => stored.values.insert(flag.clone(), value.to_string()),
                    None => stored.values.remove(flag),
                };
            }
            stored.last_sequence = commit.last_sequence();
            self.metadata.put("test.flags", &stored).await.map(|_| ())
        })
    }

    fn audit_log<'a>(&'a self, _query: &'a AuditQuery) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

async fn open(path: &Path) -> (DeployMonitor, Flags, Store) {
    let store = Store::open(path, &StoreOptions::new()).expect("the store opens");
    let mut builder = Flags::builder();
    for flag in TEST_FLAGS {
        builder.declare(Flag::new(flag, "a test flag", FlagValue::Off));
    }
    builder.store(FileFlagStore {
        metadata: store.metadata(),
    });
    let flags = builder.open().await.expect("the flags open");
    let monitor = DeployMonitor::builder()
        .plan(RolloutPlan::from_toml(TEST_PLAN).expect("plan"))
        .flags(flags.clone())
        .store(store.clone())
        .clock(Arc::new(ManualClock::new()))
        .open()
        .await
        .expect("the monitor opens");
    (monitor, flags, store)
}

/// The child: transitions forever, reporting each completed one.
async fn child(path: &Path) -> ! {
    let (monitor, _flags, _store) = open(path).await;
    let mut stdout = std::io::stdout();
    loop {
        let status = monitor.status().await.expect("status");
        let record = if status.phase < 3 {
            monitor.force_advance("child", "kill test").await
        } else {
            monitor.emergency_rollback("child", "kill test").await
        }
        .expect("transition");
        writeln!(stdout, "transition {}", record.id).expect("stdout");
        stdout.flush().expect("stdout");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_killed_process_leaves_the_flags_and_the_phase_consistent() {
    if let Some(path) = std::env::var_os(CHILD) {
        runtime().block_on(child(Path::new(&path)));
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("rollout.redb");
    let runtime = runtime();
    let mut reported = 0u64;
    for round in 0..5u64 {
        let mut process = Command::new(std::env::current_exe().expect("the test binary"))
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the child starts");
        let stdout = process.stdout.take().expect("piped");
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("transition ")
                    && lines.send(id.parse::<u64>().unwrap_or(0)).is_err()
                {
                    return;
                }
            }
        });
        // Let it complete a few transitions (more each round), then kill it
        // wherever it is.
        for _ in 0..=round * 2 {
            let id = received
                .recv_timeout(Duration::from_secs(30))
                .expect("the child reports transitions");
            reported = reported.max(id);
        }
        process.kill().expect("SIGKILL");
        process.wait().expect("reaped");
        reader
            .join()
            .expect("the reader ends with the child's stdout");
        while let Ok(id) = received.try_recv() {
            reported = reported.max(id);
        }

        runtime.block_on(async {
            let (monitor, flags, store) = open(&path).await;
            let status = monitor.status().await.expect("status");
            for (flag, expected) in monitor.plan().values(status.phase as usize) {
                assert_eq!(
                    flags.value(&flag).expect("declared"),
                    expected,
                    "round {round}: {flag} in phase {}",
                    status.phase
                );
            }
            let history = monitor.history(1_000).await.expect("history");
            let ids: Vec<u64> = history.iter().map(|record| record.id).collect();
            let expected: Vec<u64> = (1..=ids.len() as u64).collect();
            assert_eq!(ids, expected, "round {round}: one record per transition");
            assert!(
                ids.len() as u64 >= reported,
                "round {round}: transition {reported} was reported done but the history has {}",
                ids.len()
            );
            assert_eq!(
                history.last().map(|record| record.to),
                Some(status.phase),
                "round {round}: the last transition leads to the recorded phase"
            );
            drop(monitor);
            store.close().await.expect("close");
        });
    }
}
