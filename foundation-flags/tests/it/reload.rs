//! Several processes on one store: `Flags::reload` publishes what another
//! instance stored, keeps environment overrides, and follows resets; two
//! instances writing at once share one audit sequence (allocated by the
//! store), and a ramp step due on both is applied once.

use std::collections::BTreeSet;
use std::time::Duration;

use foundation_flags::{AuditAction, AuditQuery, FlagValue, Flags, InMemoryFlagStore, RampPlan};

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

#[tokio::test(start_paused = true)]
async fn two_instances_writing_at_once_share_one_audit_sequence() {
    let store = InMemoryFlagStore::new();
    let first = open_with(&store, &[]).await;
    let second = open_with(&store, &[]).await;
    const WRITES: u32 = 20;
    let writes = |flags: Flags, flag: &'static str, who: &'static str| async move {
        let mut sequences = Vec::new();
        for value in 1..=WRITES {
            let change = flags
                .set(flag, percent(value), by(who))
                .await
                .expect("a write succeeds after re-reading the store");
            sequences.extend(change.entries().iter().map(|entry| entry.sequence));
            // Let the other instance write in between.
            tokio::task::yield_now().await;
        }
        sequences
    };
    let (ours, theirs) = tokio::join!(
        writes(first.clone(), "use_v2_coordinator", "a"),
        writes(second.clone(), "use_sync_test_apis", "b"),
    );
    let total = u64::from(2 * WRITES);
    let mut all: Vec<u64> = ours.iter().chain(&theirs).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=total).collect::<Vec<_>>(),
        "one sequence for both instances, no duplicate, no gap (a: {ours:?}, b: {theirs:?})"
    );
    assert_eq!(store.stored().last_sequence, total);
    let audit = first
        .audit_log(AuditQuery::recent(100))
        .await
        .expect("the audit log");
    let sequences: Vec<u64> = audit.iter().map(|entry| entry.sequence).collect();
    assert_eq!(
        sequences,
        (1..=total).collect::<Vec<_>>(),
        "one total order"
    );
    // Each entry's old value is the value the store held when it was
    // written: the instance re-read before deciding again.
    for flag in ["use_v2_coordinator", "use_sync_test_apis"] {
        let history: Vec<_> = audit.iter().filter(|entry| entry.flag == flag).collect();
        assert!(
            history
                .windows(2)
                .all(|pair| pair[0].new_value == pair[1].old_value),
            "{flag}'s history is a chain: {history:?}"
        );
    }
    second.reload().await.expect("reload");
    assert_eq!(
        second.value("use_v2_coordinator").expect("declared"),
        percent(WRITES)
    );
}

#[tokio::test(start_paused = true)]
async fn a_ramp_step_due_on_two_instances_is_applied_once() {
    let store = InMemoryFlagStore::new();
    let first = open_with(&store, &[]).await;
    let second = open_with(&store, &[]).await;
    let plan = RampPlan::new("use_v2_coordinator", 10, 30, 10, Duration::from_secs(60))
        .expect("a valid plan");
    first
        .start_ramp(plan, by("a"))
        .await
        .expect("the ramp starts");
    second.reload().await.expect("reload");
    assert_eq!(second.snapshot().ramps().len(), 1, "both know the ramp");

    for expected in [20, 30] {
        tokio::time::advance(Duration::from_secs(60)).await;
        let (a, b) = tokio::join!(first.advance_ramps(), second.advance_ramps());
        let (a, b) = (a.expect("advance"), b.expect("advance"));
        let steps: Vec<_> = a
            .entries()
            .iter()
            .chain(b.entries())
            .filter(|entry| entry.action == AuditAction::RampStep)
            .collect();
        assert_eq!(steps.len(), 1, "the step is applied once: {a:?} {b:?}");
        assert_eq!(steps[0].new_value, percent(expected));
        for flags in [&first, &second] {
            assert_eq!(
                flags.value("use_v2_coordinator").expect("declared"),
                percent(expected),
                "the loser adopted the step it lost"
            );
        }
    }
    let audit = first
        .audit_log(AuditQuery::recent(100))
        .await
        .expect("the audit log");
    let actions: Vec<AuditAction> = audit.iter().map(|entry| entry.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::RampStarted,
            AuditAction::RampStep,
            AuditAction::RampStep
        ],
        "{audit:?}"
    );
    let sequences: BTreeSet<u64> = audit.iter().map(|entry| entry.sequence).collect();
    assert_eq!(sequences.len(), audit.len(), "no duplicate sequence");
    assert!(first.snapshot().ramps().is_empty(), "the ramp completed");
    assert!(second.snapshot().ramps().is_empty(), "on both");
}
