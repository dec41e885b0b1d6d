//! Listings read a key range: exact for prefixes whose last character is
//! multi-byte or the largest there is, and in byte order.

use foundation_persist::conformance::ConformanceRecord;

use crate::cluster::{fresh_store, shared};

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: String::new(),
        bytes: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_select_exactly_their_keys_in_byte_order() {
    let Some(cluster) = shared() else { return };
    let store = fresh_store(cluster).await;
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let journal = store.journal::<ConformanceRecord>("log").expect("keyspace");
    let keys = [
        "e",
        "f",
        "é",
        "éa",
        "éz",
        "ê",
        "\u{10FFFF}",
        "\u{10FFFF}a",
        "Z",
        "a\u{D7FF}",
        "a\u{E000}",
    ];
    for (id, key) in keys.iter().enumerate() {
        values.put(key, &record(id as u64)).await.expect("put");
        journal
            .append(key, &record(id as u64))
            .await
            .expect("append");
    }
    for (prefix, expected) in [
        ("é", vec!["é", "éa", "éz"]),
        ("\u{10FFFF}", vec!["\u{10FFFF}", "\u{10FFFF}a"]),
        ("a\u{D7FF}", vec!["a\u{D7FF}"]),
        ("", {
            let mut all = keys.to_vec();
            all.sort_unstable();
            all
        }),
    ] {
        let listed = values.list(prefix, None, 100).await.expect("list");
        let listed: Vec<_> = listed.iter().map(|entry| entry.key.as_str()).collect();
        assert_eq!(listed, expected, "prefix {prefix:?}");
        let streams = journal.streams(prefix, None, 100).await.expect("streams");
        assert_eq!(streams, expected, "streams with prefix {prefix:?}");
    }
    let after = values.list("é", Some("éa"), 100).await.expect("list");
    let after: Vec<_> = after.iter().map(|entry| entry.key.as_str()).collect();
    assert_eq!(after, ["éz"]);
    store.close().await.expect("close");
}
