//! Several processes on one store: `Flags::reload` publishes what another
//! instance stored, keeps environment overrides, and follows resets.

use foundation_flags::{FlagValue, Flags, InMemoryFlagStore};

use crate::support::{builder, by, percent};

async fn open_with(store: &InMemoryFlagStore, environment: &[(&str, &str)]) -> Flags {
    let mut builder = builder();
    builder
        .store(store.clone())
        .environment(environment.iter().copied());
    builder.open().await.expect("the test flags open")
}

#[tokio::test(start_paused = true)]
async fn a_reload_publishes_what_another_instance_stored() {
    let store = InMemoryFlagStore::new();
    let first = open_with(&store, &[]).await;
    let second = open_with(&store, &[]).await;
    let mut changes = second.subscribe();
    first
        .set("use_v2_coordinator", percent(40), by("a"))
        .await
        .expect("set");
    assert_eq!(
        second.value("use_v2_coordinator").expect("declared"),
        FlagValue::Off,
        "nothing reaches the other instance before it reloads"
    );
    let change = second.reload().await.expect("reload");
    assert!(change.entries().is_empty(), "the writer recorded the audit");
    assert_eq!(
        second.value("use_v2_coordinator").expect("declared"),
        percent(40)
    );
    assert_eq!(
        second.snapshot().value("use_v2_coordinator"),
        Some(percent(40)),
        "the snapshot follows"
    );
    assert_eq!(
        changes.try_recv().expect("a change").version(),
        change.version()
    );
    let unchanged = second.reload().await.expect("reload");
    assert_eq!(unchanged.version(), change.version(), "nothing new");

    second
        .set("use_reliable_messaging", FlagValue::On, by("b"))
        .await
        .expect("set");
    first.reload().await.expect("reload");
    assert_eq!(
        first.value("use_reliable_messaging").expect("declared"),
        FlagValue::On,
        "the other direction too"
    );
    assert_eq!(
        first.value("use_v2_coordinator").expect("declared"),
        percent(40),
        "the second instance's write did not undo the first's"
    );
    first
        .reset("use_v2_coordinator", by("a"))
        .await
        .expect("reset");
    second.reload().await.expect("reload");
    assert_eq!(
        second.value("use_v2_coordinator").expect("declared"),
        FlagValue::Off,
        "a reset returns the flag to its default everywhere"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_an_environment_override() {
    let store = InMemoryFlagStore::new();
    let first = open_with(&store, &[]).await;
    let second = open_with(&store, &[("FOUNDATION_FLAG_USE_RELIABLE_MESSAGING", "on")]).await;
    first
        .set("use_reliable_messaging", FlagValue::Off, by("a"))
        .await
        .expect("set");
    first
        .set("use_sync_test_apis", FlagValue::On, by("a"))
        .await
        .expect("set");
    second.reload().await.expect("reload");
    assert_eq!(
        second.value("use_reliable_messaging").expect("declared"),
        FlagValue::On,
        "the environment wins over the store, as at open"
    );
    assert_eq!(
        second.value("use_sync_test_apis").expect("declared"),
        FlagValue::On
    );
}
