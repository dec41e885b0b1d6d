//! Crash safety with real processes: a child process (this test binary,
//! re-run in child mode) writes in a loop and prints each acknowledged key;
//! the parent kills it with SIGKILL at random moments, reopens the store and
//! checks that every acknowledged record is present and intact, and that no
//! partial write (half of a batch) is visible.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use foundation_persist::{Record, Store, StoreOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::bounded;

const TEST_NAME: &str = "crash::killed_writers_lose_no_acknowledged_write";
const CHILD_PATH: &str = "FOUNDATION_PERSIST_CRASH_CHILD_PATH";
const CHILD_ROUND: &str = "FOUNDATION_PERSIST_CRASH_CHILD_ROUND";
const ROUNDS: u64 = 24;
const LANES: u64 = 8;
/// How long the parent waits for one line of the child's output.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Written {
    round: u64,
    lane: u64,
    n: u64,
    /// Long enough to span pages now and then, derived from the key so a
    /// torn or mixed-up value cannot pass the check.
    payload: Vec<u8>,
}

impl Record for Written {
    const TYPE_TAG: &'static str = "crash_written";
    const SCHEMA_VERSION: u32 = 1;
}

impl Written {
    fn new(round: u64, lane: u64, n: u64) -> Written {
        let length = ((round * 7 + lane * 13 + n * 31) % 3000) as usize;
        let seed = (round << 40) ^ (lane << 32) ^ n;
        Written {
            round,
            lane,
            n,
            payload: (0..length)
                .map(|index| (seed as usize + index * 7) as u8)
                .collect(),
        }
    }

    fn key(&self) -> String {
        key(self.round, self.lane, self.n)
    }
}

fn key(round: u64, lane: u64, n: u64) -> String {
    format!("r{round:02}-l{lane}-{n:06}")
}

fn stream(round: u64, lane: u64) -> String {
    format!("r{round:02}-l{lane}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writers_lose_no_acknowledged_write() {
    if let Ok(path) = std::env::var(CHILD_PATH) {
        let round = std::env::var(CHILD_ROUND)
            .ok()
            .and_then(|round| round.parse().ok())
            .expect("the parent passes the round");
        return child(PathBuf::from(path), round).await;
    }

    let seed = fastrand::u64(..);
    eprintln!("crash test seed: {seed}");
    let mut random = fastrand::Rng::with_seed(seed);
    let directory = crate::support::temp_dir();
    let path = directory.path().join("crash.redb");
    let mut acknowledged_total = 0;
    for round in 0..ROUNDS {
        // Some rounds are killed before or while the store opens (and
        // repairs the previous round's crash), most while writing.
        let wait_for = match random.u8(0..10) {
            0 => None,
            1 => Some(0),
            _ => Some(random.usize(1..=100)),
        };
        let acknowledged = run_and_kill(&path, round, wait_for).await;
        acknowledged_total += acknowledged.len();
        verify(&path, round, &acknowledged).await;
    }
    assert!(acknowledged_total > 0, "the children wrote something");
}

/// Starts a child writing round `round`, kills it after `wait_for`
/// acknowledgements (`None`: at once), and returns every key it
/// acknowledged before it died.
async fn run_and_kill(path: &Path, round: u64, wait_for: Option<usize>) -> BTreeSet<String> {
    let executable = std::env::current_exe().expect("the test binary knows its path");
    let mut child = Command::new(executable)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_PATH, path)
        .env(CHILD_ROUND, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the test binary can be re-run");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut acknowledged = BTreeSet::new();
    if let Some(wait_for) = wait_for {
        while acknowledged.len() < wait_for.max(1) {
            match next_line(&mut lines).await {
                Some(line) => {
                    if let Some(key) = acknowledged_key(&line) {
                        acknowledged.insert(key.to_owned());
                    } else if line.ends_with("OPENED") && wait_for == 0 {
                        break;
                    }
                }
                None => panic!("the child exited before it was killed"),
            }
        }
    }
    kill(&mut child).await;
    // Acknowledgements printed before the kill are still in the pipe.
    while let Some(line) = next_line(&mut lines).await {
        if let Some(key) = acknowledged_key(&line) {
            acknowledged.insert(key.to_owned());
        }
    }
    acknowledged
}

/// The key of an acknowledgement line. The test harness prints the test's
/// name without a line break before the child's first line, so a marker
/// may follow other text.
fn acknowledged_key(line: &str) -> Option<&str> {
    line.rsplit_once("ACK ").map(|(_, key)| key)
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<ChildStdout>>) -> Option<String> {
    match tokio::time::timeout(LINE_TIMEOUT, lines.next_line()).await {
        Ok(Ok(line)) => line,
        Ok(Err(error)) => panic!("reading the child's output failed: {error}"),
        Err(_) => panic!("the child printed nothing for {LINE_TIMEOUT:?}"),
    }
}

async fn kill(child: &mut Child) {
    child.start_kill().expect("the child can be killed");
    let status = tokio::time::timeout(LINE_TIMEOUT, child.wait())
        .await
        .expect("a killed child exits")
        .expect("the child's status is readable");
    assert!(
        !status.success(),
        "the child was killed, not finished: {status}"
    );
}

/// Reopens the store and checks round `round`.
async fn verify(path: &Path, round: u64, acknowledged: &BTreeSet<String>) {
    let store = Store::open(path, &StoreOptions::new()).expect("the store reopens after a kill");
    let state = store
        .state::<Written>("crash-state")
        .expect("the store call succeeds");
    let journal = store
        .journal::<Written>("crash-journal")
        .expect("the store call succeeds");

    // Everything of this round that is visible: it must decode and be intact.
    let prefix = format!("r{round:02}-");
    let mut present: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = bounded(state.list(&prefix, after.as_deref(), 1000))
            .await
            .expect("every visible record decodes");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for entry in page {
            let value = &entry.value;
            assert_eq!(entry.key, value.key(), "a record under another key");
            assert_eq!(
                value,
                &Written::new(value.round, value.lane, value.n),
                "a torn record"
            );
            present.entry(value.lane).or_default().insert(value.n);
        }
    }

    for lane in 0..LANES {
        let in_state = present.remove(&lane).unwrap_or_default();
        // Each batch wrote the state record and the journal record together.
        let records = bounded(journal.read(&stream(round, lane), 1, 10_000))
            .await
            .expect("every visible journal record decodes");
        let in_journal: BTreeSet<u64> = records
            .iter()
            .map(|entry| {
                let record = &entry.record;
                assert_eq!(
                    record,
                    &Written::new(round, lane, record.n),
                    "a torn journal record"
                );
                assert_eq!(entry.sequence, record.n + 1, "journal order");
                record.n
            })
            .collect();
        assert_eq!(
            in_state, in_journal,
            "a half-applied batch in round {round}, lane {lane}"
        );
        // A lane writes sequentially: what is there is 0..m, with no gap.
        if let Some(&highest) = in_state.last() {
            assert_eq!(
                in_state.len() as u64,
                highest + 1,
                "a gap in round {round}, lane {lane}"
            );
        }
        let acknowledged_here: Vec<u64> = acknowledged
            .iter()
            .filter(|key| key.starts_with(&format!("{}-", stream(round, lane))))
            .map(|key| {
                key.rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a numbered key")
            })
            .collect();
        for n in &acknowledged_here {
            assert!(
                in_state.contains(n),
                "acknowledged {} is missing after the kill",
                key(round, lane, *n)
            );
        }
        // At most the one write in flight when the child died is there
        // beyond what was acknowledged.
        let highest_acknowledged = acknowledged_here.iter().max().map_or(0, |n| n + 1);
        assert!(in_state.len() as u64 <= highest_acknowledged + 1);
    }
    assert!(present.is_empty(), "records of unknown lanes: {present:?}");
    bounded(store.close())
        .await
        .expect("the store call succeeds");
}

/// The child: opens the store and writes forever in `LANES` concurrent
/// lanes, each a sequence of batches (a state record and a journal record),
/// printing each key once its batch is acknowledged.
async fn child(path: PathBuf, round: u64) {
    let store = Store::open(&path, &StoreOptions::new()).expect("the child opens the store");
    let state = store
        .state::<Written>("crash-state")
        .expect("the store call succeeds");
    let journal = store
        .journal::<Written>("crash-journal")
        .expect("the store call succeeds");
    say("OPENED");
    let lanes = (0..LANES).map(|lane| {
        let store = store.clone();
        let state = state.clone();
        let journal = journal.clone();
        async move {
            // The parent kills the child long before this bound; it only
            // keeps a forgotten child from running forever.
            for n in 0..100_000 {
                let record = Written::new(round, lane, n);
                let mut batch = store.batch();
                batch
                    .put(&state, &record.key(), &record)
                    .expect("the store call succeeds")
                    .append_expecting(&journal, &stream(round, lane), n + 1, &record)
                    .expect("the store call succeeds");
                batch.commit().await.expect("the child's write commits");
                say(&format!("ACK {}", record.key()));
            }
        }
    });
    futures::future::join_all(lanes).await;
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A failed print only under-reports acknowledgements.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

const CREATE_TEST_NAME: &str = "crash::a_store_killed_while_it_is_created_opens_or_is_absent";
const CREATOR_DIRECTORY: &str = "FOUNDATION_PERSIST_CREATOR_DIRECTORY";

/// A process killed while it creates a new store leaves either no store
/// file or one that opens: never a half-initialised file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_killed_while_it_is_created_opens_or_is_absent() {
    if let Ok(directory) = std::env::var(CREATOR_DIRECTORY) {
        return create_forever(PathBuf::from(directory)).await;
    }
    let seed = fastrand::u64(..);
    eprintln!("creation crash test seed: {seed}");
    let mut random = fastrand::Rng::with_seed(seed);
    let directory = crate::support::temp_dir();
    for round in 0..10 {
        let round_directory = directory.path().join(format!("round-{round}"));
        let executable = std::env::current_exe().expect("the test binary knows its path");
        let mut child = Command::new(executable)
            .args([
                "--exact",
                CREATE_TEST_NAME,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CREATOR_DIRECTORY, &round_directory)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary can be re-run");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let wait_for = random.usize(1..=4);
        let mut created = 0;
        while created < wait_for {
            match next_line(&mut lines).await {
                Some(line) if line.contains("CREATED") => created += 1,
                Some(_) => {}
                None => panic!("the creator exited before it was killed"),
            }
        }
        kill(&mut child).await;
        let mut stores = 0;
        for entry in std::fs::read_dir(&round_directory).expect("the round directory exists") {
            let path = entry.expect("a directory entry").path();
            if path
                .extension()
                .is_some_and(|extension| extension == "redb")
            {
                let store = Store::open(&path, &StoreOptions::new())
                    .unwrap_or_else(|error| panic!("{} does not open: {error}", path.display()));
                bounded(store.close()).await.expect("the store closes");
                stores += 1;
            }
        }
        assert!(stores >= wait_for, "every reported store exists");
    }
}

/// The creator: creates new stores one after another, forever.
async fn create_forever(directory: PathBuf) {
    // Bounded so that a forgotten creator ends by itself.
    for index in 0..10_000 {
        let path = directory.join(format!("store-{index:05}.redb"));
        let store = Store::open(&path, &StoreOptions::new()).expect("the creator creates a store");
        store.close().await.expect("the store closes");
        say(&format!("CREATED {index}"));
    }
}
