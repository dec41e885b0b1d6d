//! The backend contract as a reusable test suite (feature `conformance`).
//!
//! Every [`Backend`](crate::Backend) must pass it: this crate runs it
//! against its in-memory and file stores, and a backend in another crate
//! (PostgreSQL, issue 15) runs the same functions against its own stores.
//! Each check takes a factory that returns a fresh, empty, open store, and
//! panics with a message naming the broken rule, like any test assertion.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use foundation_persist::{Store, StoreOptions, conformance};
//!
//! conformance::run_all(|| async {
//!     Store::open_in_memory(&StoreOptions::new()).expect("a memory store opens")
//! })
//! .await;
//! # });
//! ```
//!
//! The crash and fault tests of the redb backend (process kills, injected
//! I/O failures, damaged files) are not here: they depend on how a backend
//! stores its data. A server backend adds its own (a restarted server, a
//! lost connection) and checks the same promise: no acknowledged write is
//! lost, and every failure is a classified error.
//!
//! This module is not compiled without the feature and not for production
//! use.

use std::future::Future;
use std::time::Duration;

use foundation_error::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::{Lease, Outcome, Record, Store};

/// The record the suite stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformanceRecord {
    /// A number, to tell records apart.
    pub id: u64,
    /// Some text.
    pub text: String,
    /// Some bytes.
    pub bytes: Vec<u8>,
}

impl Record for ConformanceRecord {
    const TYPE_TAG: &'static str = "foundation_persist_conformance";
    const SCHEMA_VERSION: u32 = 1;
}

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: format!("record-{id}"),
        bytes: (0..(id % 32) as u8).collect(),
    }
}

/// Runs every check of the suite, each on a fresh store from `new_store`.
pub async fn run_all<F, Fut>(mut new_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Store>,
{
    state_values_round_trip_with_versions(new_store().await).await;
    compare_and_set_follows_versions(new_store().await).await;
    versions_never_repeat_across_delete(new_store().await).await;
    listing_is_ordered_by_key_and_pages(new_store().await).await;
    journal_sequences_start_at_one_and_never_repeat(new_store().await).await;
    expected_sequences_refuse_stale_appends(new_store().await).await;
    batches_are_all_or_nothing(new_store().await).await;
    metadata_holds_values_of_any_record_type(new_store().await).await;
    concurrent_writers_are_all_acknowledged_and_readable(new_store().await).await;
    leases_are_granted_refused_and_regranted(new_store().await).await;
    stale_lease_tokens_cannot_renew_or_release(new_store().await).await;
    claims_skip_live_leases_and_take_expired_ones(new_store().await).await;
    fences_refuse_stale_tokens_and_write_nothing(new_store().await).await;
    a_failed_fence_fails_only_its_own_request(new_store().await).await;
    concurrent_claimers_never_get_the_same_lease(new_store().await).await;
    a_closed_store_answers_service_unavailable(new_store().await).await;
}

/// The lease ttl of the lease checks: long enough that no lease expires
/// on its own during a check (leases are expired on purpose by renewing
/// them with a zero ttl, which works on every backend whatever clock
/// judges expiry).
const LEASE_TTL: Duration = Duration::from_secs(600);

/// Expires `lease` now, through the API (a renewal with a zero ttl).
async fn expire(store: &Store, lease: &Lease) {
    store
        .leases()
        .renew(lease, Duration::ZERO)
        .await
        .expect("a current lease renews with a zero ttl");
}

/// A lease is granted when free, refused (`already_exists`) while another
/// owner holds it, re-granted to its owner with a larger token, and
/// granted to another owner after a release, with a larger token still.
pub async fn leases_are_granted_refused_and_regranted(store: Store) {
    let leases = store.leases();
    let first = leases
        .acquire("workflow/w1", "a", LEASE_TTL)
        .await
        .expect("a free lease is granted");
    assert_eq!(
        (first.name.as_str(), first.owner.as_str()),
        ("workflow/w1", "a")
    );
    assert!(first.token > 0, "tokens start above zero");
    let refused = leases
        .acquire("workflow/w1", "b", LEASE_TTL)
        .await
        .expect_err("another owner holds it");
    assert_eq!(refused.code(), ErrorCode::ALREADY_EXISTS, "{refused}");
    let again = leases
        .acquire("workflow/w1", "a", LEASE_TTL)
        .await
        .expect("the owner is granted it again");
    assert!(again.token > first.token, "a re-grant gets a larger token");
    let listed = leases.list("workflow/", None, 10).await.expect("list");
    assert_eq!(listed, vec![again.clone()], "the listing shows the grant");

    leases
        .release(&first)
        .await
        .expect("a stale release is no error");
    let still = leases
        .acquire("workflow/w1", "b", LEASE_TTL)
        .await
        .expect_err("a stale release changes nothing");
    assert_eq!(still.code(), ErrorCode::ALREADY_EXISTS, "{still}");
    leases.release(&again).await.expect("release");
    assert!(
        leases
            .list("workflow/", None, 10)
            .await
            .expect("list")
            .is_empty(),
        "released leases are not listed"
    );
    // Other names come and go (their released rows are not kept): a
    // name's next token is still larger than any it had.
    for index in 0..20 {
        let churn = leases
            .acquire(&format!("churn/{index}"), "a", LEASE_TTL)
            .await
            .expect("acquire");
        leases.release(&churn).await.expect("release");
    }
    let taken = leases
        .acquire("workflow/w1", "b", LEASE_TTL)
        .await
        .expect("a released lease is granted to anyone");
    assert!(
        taken.token > again.token,
        "tokens never repeat after a release"
    );

    expire(&store, &taken).await;
    let after_expiry = leases
        .acquire("workflow/w1", "c", LEASE_TTL)
        .await
        .expect("an expired lease is granted to anyone");
    assert!(after_expiry.token > taken.token);

    let other = leases
        .acquire("workflow/w2", "b", LEASE_TTL)
        .await
        .expect("names are separate");
    let page = leases.list("workflow/", None, 1).await.expect("list");
    assert_eq!(page, vec![after_expiry.clone()]);
    let next = leases
        .list("workflow/", Some("workflow/w1"), 10)
        .await
        .expect("list");
    assert_eq!(next, vec![other]);
    for bad in [
        leases.acquire("", "a", LEASE_TTL).await,
        leases.acquire("x", "", LEASE_TTL).await,
        leases.acquire("x", "a", Duration::ZERO).await,
    ] {
        let error = bad.expect_err("bad input is refused");
        assert_eq!(error.code(), ErrorCode::INVALID_INPUT, "{error}");
    }
    store.close().await.expect("close");
}

/// Renewal extends a current lease and keeps its token; a stale token
/// (after a re-grant) cannot renew (`version_conflict`), nor release.
pub async fn stale_lease_tokens_cannot_renew_or_release(store: Store) {
    let leases = store.leases();
    let first = leases
        .acquire("job/1", "a", LEASE_TTL)
        .await
        .expect("acquire");
    let renewed = leases
        .renew(&first, LEASE_TTL * 2)
        .await
        .expect("a current lease renews");
    assert_eq!(renewed.token, first.token, "a renewal keeps the token");
    assert!(
        renewed.expires_at > first.expires_at,
        "and extends the expiry"
    );
    let second = leases
        .acquire("job/1", "a", LEASE_TTL)
        .await
        .expect("re-grant");
    let error = leases
        .renew(&first, LEASE_TTL)
        .await
        .expect_err("a stale token cannot renew");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");

    let other = leases
        .acquire("job/2", "a", LEASE_TTL)
        .await
        .expect("acquire");
    let answers = leases
        .renew_all(&[first.clone(), second.clone(), other.clone()], LEASE_TTL)
        .await
        .expect("a renewal of several leases");
    assert_eq!(answers.len(), 3);
    assert_eq!(
        answers[0].as_ref().map_err(|error| error.code()).err(),
        Some(ErrorCode::VERSION_CONFLICT)
    );
    assert_eq!(
        answers[1].as_ref().map(|lease| lease.token).ok(),
        Some(second.token)
    );
    assert_eq!(
        answers[2].as_ref().map(|lease| lease.token).ok(),
        Some(other.token)
    );

    leases
        .release(&first)
        .await
        .expect("a stale release is harmless");
    let listed = leases.list("job/1", None, 10).await.expect("list");
    assert_eq!(listed.len(), 1, "the stale release freed nothing");
    assert_eq!(listed[0].token, second.token);
    leases.release(&second).await.expect("release");
    let error = leases
        .renew(&second, LEASE_TTL)
        .await
        .expect_err("a released lease cannot renew");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    store.close().await.expect("close");
}

/// `claim_expired` takes held, expired leases under its prefix, each with
/// a new token, up to its limit; it skips live and released leases and
/// other prefixes.
pub async fn claims_skip_live_leases_and_take_expired_ones(store: Store) {
    let leases = store.leases();
    let mut granted = Vec::new();
    for name in ["w/1", "w/2", "w/3", "w/4", "x/1"] {
        granted.push(leases.acquire(name, "a", LEASE_TTL).await.expect("acquire"));
    }
    expire(&store, &granted[0]).await; // w/1 expired
    expire(&store, &granted[2]).await; // w/3 expired
    expire(&store, &granted[4]).await; // x/1 expired, other prefix
    expire(&store, &granted[3]).await;
    leases.release(&granted[3]).await.expect("release"); // w/4 released

    let first = leases
        .claim_expired("w/", "b", LEASE_TTL, 1)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "the limit is honoured: {first:?}");
    let rest = leases
        .claim_expired("w/", "b", LEASE_TTL, 10)
        .await
        .expect("claim");
    let mut claimed: Vec<_> = first.into_iter().chain(rest).collect();
    claimed.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = claimed.iter().map(|lease| lease.name.as_str()).collect();
    assert_eq!(
        names,
        ["w/1", "w/3"],
        "only held, expired leases under the prefix"
    );
    for (claim, old) in claimed.iter().zip([&granted[0], &granted[2]]) {
        assert_eq!(claim.owner, "b");
        assert!(claim.token > old.token, "a takeover gets a larger token");
        let error = leases
            .renew(old, LEASE_TTL)
            .await
            .expect_err("the old holder lost it");
        assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    }
    assert!(
        leases
            .claim_expired("w/", "c", LEASE_TTL, 10)
            .await
            .expect("claim")
            .is_empty(),
        "claimed leases are live again"
    );
    leases
        .renew(&granted[1], LEASE_TTL)
        .await
        .expect("the live lease was left alone");
    let x = leases
        .claim_expired("x/", "c", LEASE_TTL, 10)
        .await
        .expect("claim");
    assert_eq!(x.len(), 1);
    assert!(
        leases
            .claim_expired("w/", "c", LEASE_TTL, 0)
            .await
            .expect("a zero limit claims nothing")
            .is_empty()
    );
    store.close().await.expect("close");
}

/// A fenced batch commits while its lease's token is current; after a
/// takeover (or a release) the same fence fails the whole batch with
/// `version_conflict` and nothing of it is written.
pub async fn fences_refuse_stale_tokens_and_write_nothing(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    let leases = store.leases();
    let lease = leases
        .acquire("workflow/f", "a", LEASE_TTL)
        .await
        .expect("acquire");
    let mut batch = store.batch();
    batch
        .fence(&lease)
        .expect("fence")
        .append(&journal, "f", &record(1))
        .expect("op")
        .put(&values, "f", &record(1))
        .expect("op");
    let outcomes = batch.commit().await.expect("a current fence commits");
    assert!(matches!(outcomes[0], Outcome::Fenced), "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Appended { sequence: 1 }));

    let mut wrong_sequence = store.batch();
    wrong_sequence
        .fence(&lease)
        .expect("fence")
        .append_expecting(&journal, "f", 7, &record(9))
        .expect("op")
        .append(&journal, "f", &record(9))
        .expect("op")
        .put(&values, "f", &record(9))
        .expect("op");
    let error = wrong_sequence
        .commit()
        .await
        .expect_err("a current fence does not excuse a wrong sequence");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    assert_eq!(journal.head("f").await.expect("head").next_sequence, 2);
    assert_eq!(values.get("f").await.expect("get"), Some(record(1)));

    expire(&store, &lease).await;
    let mut stale_but_current = store.batch();
    stale_but_current
        .fence(&lease)
        .expect("fence")
        .append(&journal, "f", &record(2))
        .expect("op");
    stale_but_current
        .commit()
        .await
        .expect("a fence does not check expiry: nobody took the lease over");

    let taken = leases
        .claim_expired("workflow/", "b", LEASE_TTL, 10)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    let mut stale = store.batch();
    stale
        .fence(&lease)
        .expect("fence")
        .append(&journal, "f", &record(3))
        .expect("op")
        .put(&values, "f", &record(3))
        .expect("op");
    let error = stale.commit().await.expect_err("the token was taken over");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    assert_eq!(journal.head("f").await.expect("head").next_sequence, 3);
    assert_eq!(values.get("f").await.expect("get"), Some(record(1)));

    let mut current = store.batch();
    current
        .fence(&taken[0])
        .expect("fence")
        .append(&journal, "f", &record(4))
        .expect("op");
    current.commit().await.expect("the new holder writes");

    leases.release(&taken[0]).await.expect("release");
    let mut released = store.batch();
    released
        .fence(&taken[0])
        .expect("fence")
        .append(&journal, "f", &record(5))
        .expect("op");
    let error = released
        .commit()
        .await
        .expect_err("a released lease fences nothing in");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");

    let never = Lease::new("workflow/never".into(), "a".into(), 1, lease.expires_at);
    let mut unknown = store.batch();
    unknown
        .fence(&never)
        .expect("fence")
        .put(&values, "never", &record(6))
        .expect("op");
    let error = unknown.commit().await.expect_err("a lease never granted");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    assert_eq!(values.get("never").await.expect("get"), None);
    assert_eq!(journal.head("f").await.expect("head").next_sequence, 4);
    store.close().await.expect("close");
}

/// Concurrent fenced writes (which a backend may group into one
/// transaction): the one with a stale token fails alone, the others
/// commit.
pub async fn a_failed_fence_fails_only_its_own_request(store: Store) {
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    let leases = store.leases();
    let mut held = Vec::new();
    for index in 0..8 {
        held.push(
            leases
                .acquire(&format!("workflow/g{index}"), "a", LEASE_TTL)
                .await
                .expect("acquire"),
        );
    }
    let stale = held[3].clone();
    leases
        .acquire(&stale.name, "a", LEASE_TTL)
        .await
        .expect("a re-grant makes the first token stale");
    let commits = held.iter().enumerate().map(|(index, lease)| {
        let mut batch = store.batch();
        let prepared = batch
            .fence(lease)
            .and_then(|batch| batch.append(&journal, &format!("g{index}"), &record(index as u64)))
            .map(drop);
        async move {
            prepared?;
            batch.commit().await
        }
    });
    let results = futures_join_all(commits).await;
    for (index, result) in results.iter().enumerate() {
        if index == 3 {
            let error = result.as_ref().expect_err("the stale fence fails");
            assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
            assert_eq!(journal.head("g3").await.expect("head").next_sequence, 1);
        } else {
            assert!(
                result.is_ok(),
                "request {index} fails only for its own reasons: {result:?}"
            );
            assert_eq!(
                journal
                    .head(&format!("g{index}"))
                    .await
                    .expect("head")
                    .next_sequence,
                2
            );
        }
    }
    store.close().await.expect("close");
}

/// Many concurrent claimers of the same expired leases: every lease is
/// claimed exactly once.
pub async fn concurrent_claimers_never_get_the_same_lease(store: Store) {
    let leases = store.leases();
    let total = 60;
    for index in 0..total {
        let lease = leases
            .acquire(&format!("pool/{index:03}"), "dead", LEASE_TTL)
            .await
            .expect("acquire");
        expire(&store, &lease).await;
    }
    let claimers = (0..12).map(|claimer| {
        let leases = leases.clone();
        async move {
            let owner = format!("node-{claimer}");
            let mut mine = Vec::new();
            loop {
                let claimed = leases
                    .claim_expired("pool/", &owner, LEASE_TTL, 3)
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    break mine;
                }
                mine.extend(claimed);
            }
        }
    });
    let claimed: Vec<Lease> = futures_join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut names: Vec<_> = claimed.iter().map(|lease| lease.name.clone()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "a lease was claimed twice");
    assert_eq!(names.len(), total, "every expired lease was claimed");
    let listed = leases.list("pool/", None, 100).await.expect("list");
    for lease in &listed {
        assert!(
            claimed.iter().any(|claim| claim == lease),
            "the store holds the grant its claimer got: {lease:?}"
        );
    }
    store.close().await.expect("close");
}

/// The state keyspace the change-feed checks watch: the stores handed to
/// [`run_change_feed`] must be opened with
/// `StoreOptions::watch(WATCHED_KEYSPACE)`.
pub const WATCHED_KEYSPACE: &str = "watched";

/// Runs every check of the change feed ([`crate::watch`]), each on a fresh
/// store from `new_store`, which must watch [`WATCHED_KEYSPACE`] and no
/// other keyspace of the suite.
pub async fn run_change_feed<F, Fut>(mut new_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Store>,
{
    the_change_feed_reports_committed_writes_of_watched_keyspaces_only(new_store().await).await;
    the_change_feed_ends_when_the_store_closes(new_store().await).await;
}

/// How long a check waits for a change it expects: generous, since a
/// server backend delivers through its own connection.
const CHANGE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The next change that is not a resync (a server backend may resync when
/// its notification connection flaps; that is allowed at any time).
async fn next_key(changes: &mut crate::Changes, after: &str) -> (String, String) {
    loop {
        match changes.next(CHANGE_WAIT).await {
            Ok(Some(crate::Change::Key { keyspace, key })) => return (keyspace, key),
            Ok(Some(_resync)) => continue,
            Ok(None) => panic!("no change reported within {CHANGE_WAIT:?} after {after}"),
            Err(error) => panic!("the change feed failed after {after}: {error}"),
        }
    }
}

/// Puts, deletes and batch writes of a watched keyspace are reported once
/// committed; writes to unwatched keyspaces, journals and metadata, and
/// refused requests, are not. Every check writes something that is not
/// reported and then something that is, and requires the next change to
/// be the latter, so no check waits for an absence.
pub async fn the_change_feed_reports_committed_writes_of_watched_keyspaces_only(store: Store) {
    let watched = store
        .state::<ConformanceRecord>(WATCHED_KEYSPACE)
        .expect("a keyspace");
    let unwatched = store
        .state::<ConformanceRecord>("unwatched")
        .expect("a keyspace");
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    let mut changes = store.changes().expect("a feed");
    let key = |name: &str| (WATCHED_KEYSPACE.to_owned(), name.to_owned());

    watched.put("a", &record(1)).await.expect("put");
    assert_eq!(next_key(&mut changes, "a put").await, key("a"));

    unwatched.put("a", &record(2)).await.expect("put");
    journal.append("s", &record(3)).await.expect("append");
    store
        .metadata()
        .put("m", &record(4))
        .await
        .expect("metadata put");
    watched.put("b", &record(5)).await.expect("put");
    assert_eq!(
        next_key(&mut changes, "writes to unwatched keyspaces").await,
        key("b"),
        "only the watched keyspace is reported"
    );

    let error = watched
        .compare_and_set("b", None, &record(6))
        .await
        .expect_err("b exists");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    let mut refused = store.batch();
    refused
        .put(&watched, "refused", &record(7))
        .expect("op")
        .compare_and_set(&watched, "a", None, &record(8))
        .expect("op");
    refused.commit().await.expect_err("a exists");
    assert!(watched.delete("a").await.expect("delete"));
    assert_eq!(
        next_key(&mut changes, "refused writes").await,
        key("a"),
        "a refused request is not reported; a delete is"
    );

    let mut batch = store.batch();
    batch
        .put(&unwatched, "c", &record(9))
        .expect("op")
        .put(&watched, "c", &record(10))
        .expect("op");
    batch.commit().await.expect("commit");
    assert_eq!(next_key(&mut changes, "a batch").await, key("c"));

    let mut late = store.changes().expect("a second feed");
    watched.put("d", &record(11)).await.expect("put");
    assert_eq!(next_key(&mut changes, "d").await, key("d"));
    assert_eq!(
        next_key(&mut late, "d").await,
        key("d"),
        "a feed taken later starts at the changes after it"
    );
    store.close().await.expect("close");
}

/// Closing the store ends its feeds with `service_unavailable`, and a
/// closed store gives no new feed.
pub async fn the_change_feed_ends_when_the_store_closes(store: Store) {
    let mut changes = store.changes().expect("a feed");
    store.close().await.expect("close");
    let error = loop {
        match changes.next(CHANGE_WAIT).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the feed of a closed store is still open after {CHANGE_WAIT:?}"),
            Err(error) => break error,
        }
    };
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE, "{error}");
    let error = store.changes().expect_err("closed");
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE, "{error}");
}

/// Put, get, overwrite, delete; versions grow with every write to a key.
pub async fn state_values_round_trip_with_versions(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    assert_eq!(
        values.get("k").await.expect("get"),
        None,
        "a new store is empty"
    );
    let first = values.put("k", &record(1)).await.expect("put");
    let entry = values
        .get_versioned("k")
        .await
        .expect("get")
        .expect("the value is there");
    assert_eq!(entry.value, record(1));
    assert_eq!(entry.version, first, "get returns the version put returned");
    let second = values.put("k", &record(2)).await.expect("put");
    assert!(second > first, "versions grow with every write to a key");
    assert_eq!(values.get("k").await.expect("get"), Some(record(2)));
    assert!(values.delete("k").await.expect("delete"), "the key existed");
    assert!(!values.delete("k").await.expect("delete"), "deleted twice");
    assert_eq!(values.get("k").await.expect("get"), None);
    let other = store
        .state::<ConformanceRecord>("other")
        .expect("a keyspace");
    other.put("k", &record(3)).await.expect("put");
    assert_eq!(
        values.get("k").await.expect("get"),
        None,
        "keyspaces are separate"
    );
    store.close().await.expect("close");
}

/// Compare-and-set succeeds only on the expected version (or absence), and
/// a conflict is `version_conflict` naming the keyspace and key.
pub async fn compare_and_set_follows_versions(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    let created = values
        .compare_and_set("k", None, &record(1))
        .await
        .expect("create when absent");
    let conflict = values
        .compare_and_set("k", None, &record(2))
        .await
        .expect_err("absent expected, but present");
    assert_eq!(conflict.code(), ErrorCode::VERSION_CONFLICT, "{conflict}");
    assert_eq!(conflict.context_value("keyspace"), Some("values"));
    assert_eq!(conflict.context_value("key"), Some("k"));
    let updated = values
        .compare_and_set("k", Some(created), &record(3))
        .await
        .expect("the expected version");
    let stale = values
        .compare_and_set("k", Some(created), &record(4))
        .await
        .expect_err("a stale version");
    assert_eq!(stale.code(), ErrorCode::VERSION_CONFLICT, "{stale}");
    assert_eq!(values.get("k").await.expect("get"), Some(record(3)));
    let wrong = values
        .compare_and_delete("k", created)
        .await
        .expect_err("a delete with a stale version");
    assert_eq!(wrong.code(), ErrorCode::VERSION_CONFLICT, "{wrong}");
    values
        .compare_and_delete("k", updated)
        .await
        .expect("a delete with the current version");
    assert_eq!(values.get("k").await.expect("get"), None);
    store.close().await.expect("close");
}

/// A key deleted and written again gets a version larger than any it had:
/// a compare-and-set holding a version from before the delete fails.
pub async fn versions_never_repeat_across_delete(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    let first = values.put("k", &record(1)).await.expect("put");
    let second = values.put("k", &record(2)).await.expect("put");
    values.delete("k").await.expect("delete");
    let third = values.put("k", &record(3)).await.expect("put");
    assert!(third > second && second > first, "versions only grow");
    for stale in [first, second] {
        let error = values
            .compare_and_set("k", Some(stale), &record(4))
            .await
            .expect_err("a version from before the delete");
        assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    }
    store.close().await.expect("close");
}

/// Listing returns keys with a prefix in byte order, pages with `after`,
/// and stops at the limit.
pub async fn listing_is_ordered_by_key_and_pages(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    for id in [5, 1, 3, 2, 4] {
        values
            .put(&format!("item-{id}"), &record(id))
            .await
            .expect("put");
    }
    values.put("itex", &record(9)).await.expect("put");
    values.put("other", &record(10)).await.expect("put");
    let all = values.list("item-", None, 100).await.expect("list");
    let keys: Vec<_> = all.iter().map(|entry| entry.key.as_str()).collect();
    assert_eq!(keys, ["item-1", "item-2", "item-3", "item-4", "item-5"]);
    assert!(
        all.iter()
            .all(|entry| entry.value.id.to_string() == entry.key[5..])
    );
    let page = values.list("item-", Some("item-2"), 2).await.expect("list");
    let keys: Vec<_> = page.iter().map(|entry| entry.key.as_str()).collect();
    assert_eq!(
        keys,
        ["item-3", "item-4"],
        "after is exclusive, limit holds"
    );
    let everything = values.list("", None, 100).await.expect("list");
    assert_eq!(everything.len(), 7);
    store.close().await.expect("close");
}

/// Sequences start at 1 per stream, grow by one, and are never reused
/// after a truncation; heads and stream listings agree.
pub async fn journal_sequences_start_at_one_and_never_repeat(store: Store) {
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    let head = journal.head("a").await.expect("head");
    assert_eq!((head.next_sequence, head.truncated_through), (1, 0));
    for id in 1..=5 {
        assert_eq!(journal.append("a", &record(id)).await.expect("append"), id);
    }
    assert_eq!(journal.append("b", &record(100)).await.expect("append"), 1);
    let read = journal.read("a", 2, 2).await.expect("read");
    let sequences: Vec<_> = read.iter().map(|entry| entry.sequence).collect();
    assert_eq!(sequences, [2, 3]);
    assert_eq!(read[0].record, record(2));
    assert_eq!(journal.truncate("a", 3).await.expect("truncate"), 3);
    assert_eq!(journal.truncate("a", 3).await.expect("truncate"), 0);
    let head = journal.head("a").await.expect("head");
    assert_eq!((head.next_sequence, head.truncated_through), (6, 3));
    let rest = journal.read("a", 1, 100).await.expect("read");
    let sequences: Vec<_> = rest.iter().map(|entry| entry.sequence).collect();
    assert_eq!(sequences, [4, 5]);
    assert_eq!(journal.append("a", &record(6)).await.expect("append"), 6);
    assert_eq!(
        journal.streams("", None, 10).await.expect("streams"),
        ["a", "b"]
    );
    assert_eq!(
        journal.streams("", Some("a"), 10).await.expect("streams"),
        ["b"]
    );
    store.close().await.expect("close");
}

/// An append expecting a sequence number fails with `version_conflict`
/// when the stream is elsewhere, and appends nothing.
pub async fn expected_sequences_refuse_stale_appends(store: Store) {
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    assert_eq!(
        journal
            .append_expecting("s", 1, &record(1))
            .await
            .expect("the first"),
        1
    );
    let stale = journal
        .append_expecting("s", 1, &record(2))
        .await
        .expect_err("a stale writer");
    assert_eq!(stale.code(), ErrorCode::VERSION_CONFLICT, "{stale}");
    assert_eq!(stale.context_value("stream"), Some("s"));
    assert_eq!(journal.head("s").await.expect("head").next_sequence, 2);
    store.close().await.expect("close");
}

/// A batch commits all of its writes or none; its preconditions see its
/// own earlier writes.
pub async fn batches_are_all_or_nothing(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    let version = values.put("k", &record(1)).await.expect("put");
    let mut batch = store.batch();
    batch
        .append(&journal, "s", &record(2))
        .expect("op")
        .put(&values, "other", &record(3))
        .expect("op")
        .put(&values, "k", &record(4))
        .expect("op")
        .compare_and_set(&values, "k", Some(version), &record(5))
        .expect("op");
    let error = batch
        .commit()
        .await
        .expect_err("the batch's own put moved k");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    assert!(journal.read("s", 1, 10).await.expect("read").is_empty());
    assert_eq!(values.get("other").await.expect("get"), None);
    let unchanged = values
        .get_versioned("k")
        .await
        .expect("get")
        .expect("still there");
    assert_eq!((unchanged.version, unchanged.value), (version, record(1)));

    let mut batch = store.batch();
    batch
        .append(&journal, "s", &record(6))
        .expect("op")
        .compare_and_set(&values, "k", Some(version), &record(7))
        .expect("op")
        .delete(&values, "missing")
        .expect("op");
    let outcomes = batch.commit().await.expect("the batch commits");
    assert_eq!(outcomes.len(), 3);
    assert!(matches!(outcomes[0], Outcome::Appended { sequence: 1 }));
    assert!(
        matches!(outcomes[1], Outcome::Written { version: new } if new > version),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[2], Outcome::Deleted { existed: false }));
    assert_eq!(values.get("k").await.expect("get"), Some(record(7)));
    assert!(store.batch().commit().await.expect("empty").is_empty());
    store.close().await.expect("close");
}

/// Metadata holds values of any record type, each checked on read.
pub async fn metadata_holds_values_of_any_record_type(store: Store) {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Phase(u32);
    impl Record for Phase {
        const TYPE_TAG: &'static str = "foundation_persist_conformance_phase";
        const SCHEMA_VERSION: u32 = 1;
    }
    let metadata = store.metadata();
    metadata.put("phase", &Phase(2)).await.expect("put");
    metadata.put("record", &record(1)).await.expect("put");
    assert_eq!(
        metadata.get::<Phase>("phase").await.expect("get"),
        Some(Phase(2))
    );
    let mismatch = metadata
        .get::<Phase>("record")
        .await
        .expect_err("another type");
    assert_eq!(mismatch.code(), ErrorCode::TYPE_MISMATCH, "{mismatch}");
    let values = store
        .state::<ConformanceRecord>("meta")
        .expect("a state keyspace named like the metadata keyspace");
    assert_eq!(
        values.get("record").await.expect("get"),
        None,
        "the metadata keyspace is separate from every state keyspace"
    );
    store.close().await.expect("close");
}

/// Many concurrent writers: every acknowledged write is readable, every
/// write got its own version, and a shared stream's sequences are gapless.
pub async fn concurrent_writers_are_all_acknowledged_and_readable(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    let writes = (0..200u64).map(|id| {
        let (values, journal) = (values.clone(), journal.clone());
        async move {
            if id % 2 == 0 {
                values
                    .put(&format!("key-{id:03}"), &record(id))
                    .await
                    .map(|version| version.get())
            } else {
                journal.append("shared", &record(id)).await
            }
        }
    });
    let results = futures_join_all(writes).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let stored = values.list("key-", None, 1000).await.expect("list");
    assert_eq!(stored.len(), 100);
    let mut versions: Vec<_> = stored.iter().map(|entry| entry.version).collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 100, "every write got its own version");
    let appended = journal.read("shared", 1, 1000).await.expect("read");
    let sequences: Vec<_> = appended.iter().map(|entry| entry.sequence).collect();
    assert_eq!(
        sequences,
        (1..=100).collect::<Vec<_>>(),
        "gapless, in order"
    );
    store.close().await.expect("close");
}

/// Once closed, every call fails with `service_unavailable`; closing
/// twice is harmless.
pub async fn a_closed_store_answers_service_unavailable(store: Store) {
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("a keyspace");
    let journal = store
        .journal::<ConformanceRecord>("log")
        .expect("a keyspace");
    values.put("k", &record(1)).await.expect("put");
    store.close().await.expect("close");
    assert!(store.is_closed());
    let errors = [
        values.put("k", &record(2)).await.map(drop),
        values.get("k").await.map(drop),
        values.list("", None, 10).await.map(drop),
        journal.append("s", &record(1)).await.map(drop),
        journal.read("s", 1, 10).await.map(drop),
        journal.head("s").await.map(drop),
        store
            .metadata()
            .get::<ConformanceRecord>("m")
            .await
            .map(drop),
    ];
    for result in errors {
        let error = result.expect_err("a closed store refuses");
        assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE, "{error}");
    }
    store.close().await.expect("closing twice is harmless");
}

/// Awaits every future concurrently on the current task.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
