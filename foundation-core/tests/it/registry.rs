use foundation_core::registry::{Metadata, Query, Registry, Value};
use foundation_core::{ActorRef, ExitReason, spawn};
use foundation_error::ErrorCode;

use crate::support::{Probe, ProbeArgs, ProbeCall};

fn metadata(pairs: &[(&str, Value)]) -> Metadata {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

async fn probe() -> ActorRef<Probe> {
    spawn::<Probe>(ProbeArgs::named("r")).await.unwrap()
}

#[tokio::test]
async fn names_are_unique_and_resolve_to_typed_handles() {
    let registry = Registry::new();
    let first = probe().await;
    let second = probe().await;
    registry
        .register("worker", &first, Metadata::new())
        .unwrap();
    let taken = registry
        .register("worker", &second, Metadata::new())
        .unwrap_err();
    assert_eq!(taken.code(), ErrorCode::ALREADY_EXISTS);
    let found = registry.lookup_actor::<Probe>("worker").unwrap();
    assert_eq!(found, first);
    assert_eq!(found.call(ProbeCall::Add(2)).await.unwrap(), 2);
    assert!(registry.lookup("nobody").is_none());
    assert_eq!(registry.count(), 1);
}

#[tokio::test]
async fn entries_vanish_when_their_process_ends() {
    let registry = Registry::new();
    let actor = probe().await;
    registry
        .register("short-lived", &actor, Metadata::new())
        .unwrap();
    assert_eq!(actor.monitor_count(), 1);
    let monitor = actor.monitor();
    actor.stop(ExitReason::Normal);
    monitor.await;
    assert!(registry.lookup("short-lived").is_none());
    assert_eq!(registry.count(), 0);
    // A process that has ended cannot be registered.
    let error = registry
        .register("late", &actor, Metadata::new())
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_NOT_ALIVE);
}

#[tokio::test]
async fn unregistering_releases_the_exit_hook() {
    let registry = Registry::new();
    let actor = probe().await;
    registry.register("a", &actor, Metadata::new()).unwrap();
    assert!(registry.unregister("a"));
    assert!(!registry.unregister("a"));
    assert_eq!(actor.monitor_count(), 0);
    // The name is free again, for another process.
    let other = probe().await;
    registry.register("a", &other, Metadata::new()).unwrap();
    // The first process ending does not remove the new registration.
    let monitor = actor.monitor();
    actor.stop(ExitReason::Normal);
    monitor.await;
    assert_eq!(registry.whereis("a").unwrap(), other.process());
}

async fn fleet(indexed: bool) -> (Registry, Vec<ActorRef<Probe>>) {
    let registry = if indexed {
        let mut builder = Registry::builder();
        builder.index("capability").index("health").index("load");
        builder.build()
    } else {
        Registry::new()
    };
    let rows: [(&str, Value, &str, i64, &str); 4] = [
        (
            "a1",
            vec!["planning", "coding"].into(),
            "healthy",
            1,
            "node-1",
        ),
        ("a2", vec!["coding"].into(), "degraded", 5, "node-1"),
        ("a3", vec!["review"].into(), "healthy", 3, "node-2"),
        ("a4", vec!["planning"].into(), "critical", 9, "node-2"),
    ];
    let mut actors = Vec::new();
    for (name, capability, health, load, node) in rows {
        let actor = probe().await;
        registry
            .register(
                name,
                &actor,
                metadata(&[
                    ("capability", capability),
                    ("health", health.into()),
                    ("load", load.into()),
                    ("node", node.into()),
                ]),
            )
            .unwrap();
        actors.push(actor);
    }
    (registry, actors)
}

fn names(registry: &Registry, query: &Query) -> Vec<String> {
    registry
        .query(query)
        .into_iter()
        .map(|registration| registration.name)
        .collect()
}

#[tokio::test]
async fn every_query_operator_with_and_without_indexes() {
    for indexed in [false, true] {
        let (registry, _actors) = fleet(indexed).await;
        let cases: Vec<(Query, Vec<&str>)> = vec![
            (Query::new().eq("capability", "coding"), vec!["a1", "a2"]),
            (Query::new().neq("health", "healthy"), vec!["a2", "a4"]),
            (Query::new().gt("load", 3), vec!["a2", "a4"]),
            (Query::new().lt("load", 3), vec!["a1"]),
            (Query::new().gte("load", 3), vec!["a2", "a3", "a4"]),
            (Query::new().lte("load", 3), vec!["a1", "a3"]),
            (
                Query::new().is_in("health", ["degraded", "critical"]),
                vec!["a2", "a4"],
            ),
            (Query::new().not_in("node", ["node-1"]), vec!["a3", "a4"]),
            (
                Query::new()
                    .eq("capability", "planning")
                    .neq("health", "critical"),
                vec!["a1"],
            ),
            (Query::new().eq("missing", 1), vec![]),
            (Query::new().gt("health", 1), vec![]),
            (Query::new(), vec!["a1", "a2", "a3", "a4"]),
        ];
        for (query, expected) in cases {
            assert_eq!(
                names(&registry, &query),
                expected,
                "{query:?} indexed={indexed}"
            );
            assert_eq!(registry.count_matching(&query), expected.len());
        }
    }
}

#[tokio::test]
async fn metadata_updates_move_index_entries() {
    let (registry, _actors) = fleet(true).await;
    registry
        .update_metadata_with("a3", |metadata| {
            metadata.insert("health".into(), "critical".into());
        })
        .unwrap();
    assert_eq!(
        names(&registry, &Query::new().eq("health", "critical")),
        vec!["a3", "a4"]
    );
    assert!(names(&registry, &Query::new().eq("health", "healthy")) == vec!["a1"]);
    registry
        .update_metadata("a1", metadata(&[("load", 7.into())]))
        .unwrap();
    assert_eq!(
        names(&registry, &Query::new().eq("capability", "planning")),
        vec!["a4"]
    );
    let missing = registry.update_metadata("zz", Metadata::new()).unwrap_err();
    assert_eq!(missing.code(), ErrorCode::DATA_NOT_FOUND);
}

#[tokio::test]
async fn lookups_run_concurrently_with_writes() {
    let registry = Registry::new();
    let actor = probe().await;
    std::thread::scope(|scope| {
        for writer in 0..2 {
            let registry = registry.clone();
            let process = actor.process();
            scope.spawn(move || {
                for index in 0..500 {
                    let name = format!("w{writer}-{index}");
                    registry
                        .register(&name, process.clone(), Metadata::new())
                        .unwrap();
                }
            });
        }
        for _ in 0..2 {
            let registry = registry.clone();
            scope.spawn(move || {
                for index in 0..500 {
                    let _ = registry.lookup(&format!("w0-{index}"));
                }
            });
        }
    });
    assert_eq!(registry.count(), 1_000);
    assert_eq!(actor.monitor_count(), 1_000);
    let monitor = actor.monitor();
    actor.stop(ExitReason::Normal);
    monitor.await;
    assert_eq!(registry.count(), 0);
}
