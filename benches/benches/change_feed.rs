//! The change feed (foundation-persist `watch`, issue 15): what a watched
//! write costs, and how fast another node hears it.
//!
//! - `put`: one durable put by 16 concurrent writers on PostgreSQL, to an
//!   unwatched keyspace of a store that watches nothing (the baseline), to
//!   an unwatched keyspace of a store that watches another one (what the
//!   hot path pays: nothing but a flag check), and to a watched keyspace
//!   (a `pg_notify` in the transaction). The same three on redb, where a
//!   watched write is an in-process broadcast.
//! - `heard`: one put on store A until store B (a second store on the same
//!   database, as a second node) hears it on its feed, against the put
//!   alone in the same run.
//!
//! The PostgreSQL server is a throwaway cluster started by the test
//! harness; without PostgreSQL only the redb cases run. The machine is
//! shared: compare ratios within a run.

use benches::runtime;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_persist::{Change, Record, StateStore, Store, StoreOptions};
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};
use futures::future::join_all;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flagged {
    value: u64,
    note: String,
}

impl Record for Flagged {
    const TYPE_TAG: &'static str = "bench_flagged";
    const SCHEMA_VERSION: u32 = 1;
}

const WRITERS: u64 = 16;

fn watching(keyspace: Option<&str>) -> StoreOptions {
    let mut options = StoreOptions::new();
    if let Some(keyspace) = keyspace {
        options.watch(keyspace);
    }
    options
}

async fn postgres(url: &str, watch: Option<&str>) -> Store {
    let mut options = PostgresOptions::new();
    options.store_options(watching(watch));
    open_postgres(url, &options)
        .await
        .expect("the PostgreSQL store opens")
}

/// One iteration: every writer completes one durable put.
fn bench_puts(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    keyspace: &StateStore<Flagged>,
) {
    group.throughput(Throughput::Elements(WRITERS));
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                join_all((0..WRITERS).map(|writer| {
                    let keyspace = keyspace.clone();
                    async move {
                        for n in 0..iterations {
                            let value = Flagged {
                                value: n,
                                note: "bench".into(),
                            };
                            keyspace
                                .put(&format!("key-{writer}"), &value)
                                .await
                                .expect("a durable put");
                        }
                    }
                }))
                .await;
                started.elapsed()
            })
        })
    });
}

fn puts(c: &mut Criterion) {
    let runtime = runtime();
    let directory = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a directory under the target dir");
    let mut group = c.benchmark_group("change_feed_put");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let plain =
        Store::open(directory.path().join("plain.redb"), &watching(None)).expect("redb opens");
    let watched = Store::open(
        directory.path().join("watched.redb"),
        &watching(Some("watched")),
    )
    .expect("redb opens");
    // A consumer, so that the broadcast really sends.
    let _feed = watched.changes().expect("a feed");
    for (name, store, keyspace) in [
        ("redb_no_watch", &plain, "other"),
        ("redb_unwatched_keyspace", &watched, "other"),
        ("redb_watched_keyspace", &watched, "watched"),
    ] {
        bench_puts(
            &mut group,
            &runtime,
            name,
            &store.state(keyspace).expect("keyspace"),
        );
    }

    let cluster = TestCluster::start().expect("the PostgreSQL cluster starts");
    let stores = cluster.as_ref().map(|cluster| {
        runtime.block_on(async {
            let plain_url = cluster.create_database().await.expect("a database");
            let watched_url = cluster.create_database().await.expect("a database");
            (
                postgres(&plain_url, None).await,
                postgres(&watched_url, Some("watched")).await,
            )
        })
    });
    if let Some((plain, watched)) = &stores {
        for (name, store, keyspace) in [
            ("postgres_no_watch", plain, "other"),
            ("postgres_unwatched_keyspace", watched, "other"),
            ("postgres_watched_keyspace", watched, "watched"),
        ] {
            bench_puts(
                &mut group,
                &runtime,
                name,
                &store.state(keyspace).expect("keyspace"),
            );
        }
    }
    group.finish();

    // Heard by another node: a put on A until B's feed has it.
    if let Some(cluster) = &cluster {
        let (a, b, a_keyspace) = runtime.block_on(async {
            let url = cluster.create_database().await.expect("a database");
            let a = postgres(&url, Some("watched")).await;
            let b = postgres(&url, Some("watched")).await;
            let keyspace: StateStore<Flagged> = a.state("watched").expect("keyspace");
            (a, b, keyspace)
        });
        let mut feed = b.changes().expect("a feed");
        let mut group = c.benchmark_group("change_feed_heard");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let value = Flagged {
            value: 1,
            note: "bench".into(),
        };
        group.bench_function("postgres_put_alone", |bencher| {
            bencher.to_async(&runtime).iter(|| async {
                a_keyspace.put("flag", &value).await.expect("a put");
            });
        });
        // Drain what the baseline's puts notified.
        runtime.block_on(async {
            while let Ok(Some(_)) = feed.next(Duration::from_millis(200)).await {}
        });
        group.bench_function("postgres_put_heard_by_another_store", |bencher| {
            bencher.iter(|| {
                runtime.block_on(async {
                    a_keyspace.put("flag", &value).await.expect("a put");
                    loop {
                        match feed.next(Duration::from_secs(10)).await {
                            Ok(Some(Change::Key { .. })) => break,
                            Ok(Some(_resync)) => continue,
                            Ok(None) => panic!("not heard within 10 s"),
                            Err(error) => panic!("the feed failed: {error}"),
                        }
                    }
                });
            });
        });
        group.finish();
        runtime.block_on(async {
            a.close().await.expect("close");
            b.close().await.expect("close");
        });
    }
    runtime.block_on(async {
        plain.close().await.expect("close");
        watched.close().await.expect("close");
        if let Some((plain, watched)) = stores {
            plain.close().await.expect("close");
            watched.close().await.expect("close");
        }
    });
    drop(cluster);
}

criterion_group!(benches, puts);
criterion_main!(benches);
