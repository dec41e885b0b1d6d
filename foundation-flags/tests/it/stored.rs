//! Every public type a flag store keeps round-trips through postcard, the
//! workspace's storage format: values, percentages, declarations, ramp
//! plans and states, audit entries and their actions.

use std::fmt::Debug;
use std::time::Duration;

use foundation_flags::{
    AuditAction, AuditEntry, AuditQuery, Flag, FlagValue, Percentage, RampPlan, RampState,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::support::{by, open, percent};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let bytes = postcard::to_allocvec(value).expect("postcard encodes it");
    let back: T = postcard::from_bytes(&bytes).expect("postcard decodes it");
    assert_eq!(&back, value);
}

#[test]
fn values_percentages_and_declarations_round_trip() {
    for value in [
        FlagValue::Off,
        FlagValue::On,
        percent(0),
        percent(37),
        percent(100),
    ] {
        round_trips(&value);
    }
    round_trips(&Percentage::new(42).unwrap());
    round_trips(&Flag::new("beta", "Beta features", percent(5)));
    round_trips(&Flag::new("beta", "Beta features", FlagValue::On).with_group_id("cohort"));
    round_trips(&RampPlan::new("beta", 10, 50, 10, Duration::from_secs(600)).unwrap());
}

#[test]
fn a_corrupt_stored_percentage_is_a_decoding_error() {
    let bytes = postcard::to_allocvec(&200u8).unwrap();
    assert!(postcard::from_bytes::<Percentage>(&bytes).is_err());
}

#[tokio::test(start_paused = true)]
async fn audit_entries_and_ramp_states_round_trip() {
    let flags = open().await;
    let flag = "use_v2_coordinator";
    flags.set(flag, percent(5), by("alice")).await.unwrap();
    flags.reset(flag, by("bob")).await.unwrap();
    let plan = RampPlan::new(flag, 10, 50, 10, Duration::from_secs(600)).unwrap();
    flags.start_ramp(plan, by("carol")).await.unwrap();
    flags.pause_ramp(flag, by("carol")).await.unwrap();

    let ramp: RampState = flags.snapshot().ramp(flag).expect("a ramp runs").clone();
    assert!(ramp.paused);
    round_trips(&ramp);

    let log: Vec<AuditEntry> = flags.audit_log(AuditQuery::recent(10)).await.unwrap();
    let actions: Vec<AuditAction> = log.iter().map(|entry| entry.action).collect();
    for action in [
        AuditAction::Set,
        AuditAction::Reset,
        AuditAction::RampStarted,
        AuditAction::RampPaused,
    ] {
        assert!(actions.contains(&action), "{actions:?} lacks {action:?}");
    }
    for entry in &log {
        round_trips(entry);
        round_trips(&entry.action);
    }
}
