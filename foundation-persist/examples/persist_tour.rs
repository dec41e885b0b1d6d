//! A tour of foundation-persist: open a store, write and read a versioned
//! type (and read data written by its previous version through a
//! migration), keep a journal, commit a batch, back the store up, and see
//! the classified errors.
//!
//! Run with `cargo run -p foundation-persist --example persist_tour`.

#![allow(clippy::print_stdout)]

use foundation_error::{Error, ErrorCode};
use foundation_persist::{Migrations, Record, Store, StoreOptions};
use serde::{Deserialize, Serialize};

/// Version 1 of an agent's persisted state, as an older release wrote it.
#[derive(Debug, Serialize, Deserialize)]
struct AgentStateV1 {
    queue: Vec<String>,
    completed: u32,
}

impl Record for AgentStateV1 {
    const TYPE_TAG: &'static str = "agent_state";
    const SCHEMA_VERSION: u32 = 1;
}

/// The current version: a wider counter and an error count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AgentState {
    queue: Vec<String>,
    completed: u64,
    errors: u32,
}

impl Record for AgentState {
    const TYPE_TAG: &'static str = "agent_state";
    const SCHEMA_VERSION: u32 = 2;

    fn migrations(migrations: &mut Migrations) {
        migrations.add(1, |old: AgentStateV1| AgentState {
            queue: old.queue,
            completed: u64::from(old.completed),
            errors: 0,
        });
    }
}

/// A journal record: one finished workflow step.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StepDone {
    step: String,
    result: String,
}

impl Record for StepDone {
    const TYPE_TAG: &'static str = "step_done";
    const SCHEMA_VERSION: u32 = 1;
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let directory = std::env::temp_dir().join(format!("persist-tour-{}", std::process::id()));
    let path = directory.join("store.redb");
    let options = StoreOptions::new();

    // 1. An older release wrote version 1 of the agent state.
    {
        let store = Store::open(&path, &options)?;
        let agents = store.state::<AgentStateV1>("agents")?;
        let old = AgentStateV1 {
            queue: vec!["task-1".into(), "task-2".into()],
            completed: 7,
        };
        agents.put("agent-1", &old).await?;
        println!("v1 written:        {old:?}");
        store.close().await?;
    }

    // 2. This release reads it as version 2, through the migration.
    let store = Store::open(&path, &options)?;
    let agents = store.state::<AgentState>("agents")?;
    let migrated = agents.get_versioned("agent-1").await?;
    println!("read as v2:        {migrated:?}");

    // 3. Typed writes return once durable, with a version for
    //    compare-and-set.
    let Some(current) = migrated else {
        return Err(Error::not_found("agent-1 was just written"));
    };
    let mut next = current.value.clone();
    next.queue.remove(0);
    next.completed += 1;
    let version = agents
        .compare_and_set("agent-1", Some(current.version), &next)
        .await?;
    println!("updated to:        {version}");
    let stale = agents
        .compare_and_set("agent-1", Some(current.version), &next)
        .await;
    if let Err(error) = &stale {
        println!("stale update:      {error}");
    }

    // 4. A journal: records per stream, numbered from 1.
    let steps = store.journal::<StepDone>("workflow-steps")?;
    for step in ["fetch", "transform"] {
        let done = StepDone {
            step: step.into(),
            result: "ok".into(),
        };
        let sequence = steps.append("workflow-42", &done).await?;
        println!("journal append:    {step} -> #{sequence}");
    }

    // 5. A batch: a journal record and a state change, both or neither.
    let mut batch = store.batch();
    batch
        .append(
            &steps,
            "workflow-42",
            &StepDone {
                step: "store".into(),
                result: "ok".into(),
            },
        )?
        .put(&agents, "agent-1", &next)?;
    let outcomes = batch.commit().await?;
    println!("batch committed:   {outcomes:?}");
    for entry in steps.read("workflow-42", 1, 100).await? {
        println!("  #{} {:?}", entry.sequence, entry.record);
    }

    // 6. A backup of the live store is itself a store.
    let report = store
        .file()
        .expect("a redb store")
        .backup(directory.join("backup.redb"))
        .await?;
    println!(
        "backup:            {} entries at revision {} in {}",
        report.entries,
        report.revision,
        report.path.display()
    );
    let copy = Store::open(&report.path, &options)?;
    let copied = copy.state::<AgentState>("agents")?.get("agent-1").await?;
    println!("backup holds:      {copied:?}");
    copy.close().await?;

    // 7. Failures are classified errors.
    let second = Store::open(&path, &options);
    if let Err(error) = &second {
        println!("second open:       {error}");
        assert_eq!(error.code(), ErrorCode::STORE_IN_USE);
    }
    store.close().await?;
    let closed = agents.get("agent-1").await;
    if let Err(error) = &closed {
        println!("after close:       {error}");
    }

    std::fs::remove_dir_all(&directory)?;
    Ok(())
}
