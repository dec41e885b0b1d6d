//! PersistentAgent: load and merge at start, save before the reply, failed
//! saves, migrations, undecodable state.

use std::io;

use foundation_core::{TaskSupervisor, spawn, testkit};
use foundation_error::{Error, ErrorCode};
use foundation_persist::{FaultInjection, Record, Store, StoreOptions};
use jido_agents::{
    Action, ActionContext, Agent, AgentEnv, AgentServer, AgentSpec, OnCorruptState, PersistentAgent,
};
use serde::{Deserialize, Serialize};

use crate::support::{
    Add, AddThenFail, Counter, CounterArgs, CounterState, Explode, Get, ProfileV1, ProfileV2,
    Replace, WAIT, counter_spec, memory_store, supervise,
};

async fn stored(store: &Store) -> Option<CounterState> {
    store
        .state::<CounterState>("agents.counter")
        .unwrap()
        .get("counter-1")
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_acknowledged_action_is_on_disk_and_survives_restarts() {
    let store = memory_store();
    let tasks = TaskSupervisor::new("work");
    let spec = counter_spec(Some(&store), &tasks, CounterArgs::new());
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;

    assert_eq!(stored(&store).await, None, "nothing changed, nothing saved");
    agent.run(Add { amount: 7 }).await.unwrap();
    assert_eq!(stored(&store).await.map(|state| state.value), Some(7));

    // A crash (abnormal stop), a panic and an abort: every restart loads.
    testkit::crash_and_wait_restart(agent.actor(), WAIT)
        .await
        .unwrap();
    assert_eq!(agent.run(Get {}).await.unwrap(), 7);
    assert!(
        agent.inspect(|counter| counter.loaded).await.unwrap(),
        "after_load ran"
    );

    let before = agent.actor().incarnation();
    assert_eq!(
        agent.run(Explode).await.unwrap_err().code(),
        ErrorCode::PROCESS_CRASHED
    );
    testkit::wait_for(
        || agent.actor().incarnation() > before && agent.is_alive(),
        WAIT,
    )
    .await
    .unwrap();
    agent.run(Add { amount: 1 }).await.unwrap();

    let before = agent.actor().incarnation();
    agent.actor().kill();
    testkit::wait_for(|| agent.actor().incarnation() > before, WAIT)
        .await
        .unwrap();
    assert_eq!(agent.run(Get {}).await.unwrap(), 8);
    tree.shutdown().await.unwrap();

    // A new supervisor, the same id: the same state.
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    assert_eq!(agent.run(Get {}).await.unwrap(), 8);
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_action_restores_the_persisted_part() {
    let store = memory_store();
    let tasks = TaskSupervisor::new("work");
    let spec = counter_spec(Some(&store), &tasks, CounterArgs::new());
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    agent.run(Add { amount: 4 }).await.unwrap();
    agent.run(AddThenFail(100)).await.unwrap_err();
    assert_eq!(agent.run(Get {}).await.unwrap(), 4);
    agent.run(Replace(9)).await.unwrap();
    assert_eq!(
        stored(&store).await,
        Some(CounterState {
            value: 9,
            label: "replaced".into()
        })
    );
    tree.shutdown().await.unwrap();
}

/// A save that fails (the store's fault injection) fails the action with
/// the store's error, and memory stays equal to what is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_fails_the_action_and_memory_equals_disk() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("agents.redb");
    let faults = FaultInjection::new();
    let mut options = StoreOptions::new();
    options.fault_injection(faults.clone());
    let store = Store::open(&path, &options).unwrap();
    let tasks = TaskSupervisor::new("work");
    let args = CounterArgs::new();
    let spec = counter_spec(Some(&store), &tasks, args.clone());
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    agent.run(Add { amount: 5 }).await.unwrap();

    faults.fail_writes_after(0, io::ErrorKind::Other);
    let error = agent.run(Add { amount: 3 }).await.unwrap_err();
    // The store's own error for a failed disk write.
    assert_eq!(error.code(), ErrorCode::STORAGE_FAILURE, "{error}");
    assert_eq!(error.context_value("agent"), Some("counter-1"));
    assert!(
        args.hooks()
            .iter()
            .any(|entry| entry.starts_with("error:add"))
    );
    assert_eq!(
        agent.run(Get {}).await.unwrap(),
        5,
        "memory is back to the last save"
    );

    tree.shutdown().await.unwrap();
    faults.heal();
    store.close().await.unwrap();
    drop(store);
    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    assert_eq!(
        stored(&store).await.map(|state| state.value),
        Some(5),
        "disk agrees"
    );
    store.close().await.unwrap();
}

// A profile agent whose projection moved from version 1 to version 2.

struct ProfileAgentV1 {
    profile: ProfileV1,
}

impl Agent for ProfileAgentV1 {
    const KIND: &'static str = "profile";
    type Args = ();
    fn init(_: (), _env: &AgentEnv) -> Result<Self, Error> {
        Ok(ProfileAgentV1 {
            profile: ProfileV1 {
                name: String::new(),
            },
        })
    }
}

impl PersistentAgent for ProfileAgentV1 {
    type Snapshot = ProfileV1;
    fn snapshot(&self) -> ProfileV1 {
        self.profile.clone()
    }
    fn restore(&mut self, stored: ProfileV1) {
        self.profile = stored;
    }
}

struct Rename(&'static str);

impl Action<ProfileAgentV1> for Rename {
    const NAME: &'static str = "rename";
    type Output = ();
    fn run(
        self,
        agent: &mut ProfileAgentV1,
        _: &mut ActionContext<ProfileAgentV1>,
    ) -> Result<(), Error> {
        agent.profile.name = self.0.to_owned();
        Ok(())
    }
}

struct ProfileAgentV2 {
    profile: ProfileV2,
}

impl Agent for ProfileAgentV2 {
    const KIND: &'static str = "profile";
    type Args = ();
    fn init(_: (), _env: &AgentEnv) -> Result<Self, Error> {
        Ok(ProfileAgentV2 {
            profile: ProfileV2 {
                first_name: String::new(),
                last_name: String::new(),
                email: None,
            },
        })
    }
}

impl PersistentAgent for ProfileAgentV2 {
    type Snapshot = ProfileV2;
    fn snapshot(&self) -> ProfileV2 {
        self.profile.clone()
    }
    fn restore(&mut self, stored: ProfileV2) {
        self.profile = stored;
    }
}

#[tokio::test(start_paused = true)]
async fn persisted_state_migrates_from_version_1_to_2_across_a_restart() {
    let store = memory_store();
    let tasks = TaskSupervisor::new("work");
    let mut v1 = AgentSpec::<ProfileAgentV1>::new("ada", (), &tasks);
    v1.persistent(&store);
    let (tree, agent) = supervise(v1.child_spec().unwrap()).await;
    agent.run(Rename("Ada Lovelace")).await.unwrap();
    tree.shutdown().await.unwrap();

    let mut v2 = AgentSpec::<ProfileAgentV2>::new("ada", (), &tasks);
    v2.persistent(&store);
    let (tree, agent) = supervise(v2.child_spec().unwrap()).await;
    let profile = agent.inspect(|agent| agent.profile.clone()).await.unwrap();
    assert_eq!(
        profile,
        ProfileV2 {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: None
        }
    );
    tree.shutdown().await.unwrap();
}

#[derive(Serialize, Deserialize)]
struct Intruder {
    bytes: Vec<u8>,
}

impl Record for Intruder {
    const TYPE_TAG: &'static str = "intruder";
    const SCHEMA_VERSION: u32 = 1;
}

#[tokio::test(start_paused = true)]
async fn undecodable_state_fails_the_start_naming_the_agent_unless_defaults_are_allowed() {
    let store = memory_store();
    store
        .state::<Intruder>("agents.counter")
        .unwrap()
        .put(
            "counter-1",
            &Intruder {
                bytes: vec![1, 2, 3],
            },
        )
        .await
        .unwrap();
    let tasks = TaskSupervisor::new("work");
    let mut spec = counter_spec(Some(&store), &tasks, CounterArgs::new());
    let error = spawn::<AgentServer<Counter>>(spec.start_args().unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION, "{error}");
    assert_eq!(error.context_value("agent"), Some("counter-1"));

    // Under a supervisor, the start fails and is reported, no crash loop.
    let mut tree = foundation_core::Supervisor::builder("corrupt");
    tree.child(spec.child_spec().unwrap());
    let reported = tree.start().await.unwrap_err();
    assert!(reported.to_string().contains("counter-1"), "{reported}");

    spec.on_corrupt_state(OnCorruptState::StartFromDefaults);
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;
    assert_eq!(agent.run(Get {}).await.unwrap(), 0);
    agent.run(Add { amount: 2 }).await.unwrap();
    assert_eq!(
        stored(&store).await.map(|state| state.value),
        Some(2),
        "overwritten"
    );
    tree.shutdown().await.unwrap();
}
