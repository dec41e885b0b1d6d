//! Bucketing: murmur3 against published vectors and the `murmur3` crate,
//! the Unleash normalisation vectors, and the rollout properties (share,
//! monotonicity, stability).

use std::io::Cursor;

use foundation_flags::{Flag, FlagValue, Flags, murmur3_x86_32, normalized_bucket};
use proptest::prelude::*;

use crate::support::{by, percent};

fn reference_murmur3(bytes: &[u8]) -> u32 {
    murmur3::murmur3_32(&mut Cursor::new(bytes), 0).expect("reading from memory cannot fail")
}

#[test]
fn murmur3_published_vectors() {
    assert_eq!(murmur3_x86_32(b"", 0), 0x0000_0000);
    assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
    assert_eq!(
        murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
        0x2e4f_f723
    );
}

/// The normalisation vectors the Unleash SDKs share: "normalized values are
/// the same across node, java, and go clients" (Unleash/unleash-client-node,
/// src/test/strategy/util.test.ts: `normalizedValue('123', 'gr1') === 73`,
/// `normalizedValue('999', 'groupX') === 25`).
#[test]
fn unleash_normalized_value_vectors() {
    assert_eq!(normalized_bucket("gr1", "123"), 73);
    assert_eq!(normalized_bucket("groupX", "999"), 25);
}

/// Cases from the Unleash client specification (Unleash/client-specification):
/// specifications/10-flexible-rollout-strategy.json and
/// specifications/03-gradual-rollout-user-id-strategy.json. Each names a
/// group id, a rollout percentage, an id and the expected answer; here the
/// flag takes the group id and percentage, and the id is the targeting key.
#[tokio::test]
async fn unleash_client_specification_rollout_cases() {
    let cases = [
        // (group id, percentage, id, expected)
        ("Feature.flexibleRollout.10", 10, "174", true),
        ("Feature.flexibleRollout.10", 10, "499", false),
        ("Feature.flexibleRollout.userId.55", 55, "25", true),
        ("Feature.flexibleRollout.sessionId.42", 42, "147", true),
        ("Feature.flexibleRollout.100", 100, "anyone", true),
        ("AB12A", 50, "122", true),
        ("AB12A", 50, "155", false),
        ("AB12A", 0, "122", false),
        ("AB12A", 100, "123", true),
    ];
    let mut builder = Flags::builder();
    for (index, (group, percentage, _, _)) in cases.iter().enumerate() {
        builder.declare(
            Flag::new(format!("case_{index}"), "spec case", percent(*percentage))
                .with_group_id(*group),
        );
    }
    let flags = builder.open().await.unwrap();
    for (index, (group, percentage, id, expected)) in cases.iter().enumerate() {
        let name = format!("case_{index}");
        assert_eq!(
            flags.is_enabled_for(&name, id),
            *expected,
            "group {group} at {percentage}% for id {id}"
        );
        assert_eq!(flags.handle(&name).unwrap().is_enabled_for(id), *expected);
        assert_eq!(flags.snapshot().is_enabled_for(&name, id), *expected);
    }
}

#[tokio::test]
async fn group_id_defaults_to_the_flag_name_and_can_be_shared() {
    let mut builder = Flags::builder();
    builder
        .declare(Flag::new("checkout", "d", percent(40)))
        .declare(Flag::new("checkout_banner", "d", percent(40)).with_group_id("checkout"))
        .declare(Flag::new("other", "d", percent(40)));
    let flags = builder.open().await.unwrap();
    let checkout = flags.handle("checkout").unwrap();
    let banner = flags.handle("checkout_banner").unwrap();
    let other = flags.handle("other").unwrap();
    let mut differs_from_other = 0;
    for n in 0..2_000 {
        let id = format!("user-{n}");
        assert_eq!(checkout.bucket(&id), normalized_bucket("checkout", &id));
        assert_eq!(banner.bucket(&id), checkout.bucket(&id), "shared group");
        assert_eq!(banner.is_enabled_for(&id), checkout.is_enabled_for(&id));
        if other.is_enabled_for(&id) != checkout.is_enabled_for(&id) {
            differs_from_other += 1;
        }
    }
    // Independent groups disagree on roughly 2 * 0.4 * 0.6 = 48% of ids.
    assert!(differs_from_other > 500, "{differs_from_other}");
}

/// Buckets must never change between runs or releases: users would move
/// between buckets. These sums pin the function over 10,000 ids.
#[test]
fn buckets_are_stable_across_runs() {
    let sum: u64 = (0..10_000)
        .map(|n| u64::from(normalized_bucket("stable", &format!("user-{n}"))))
        .sum();
    let reference: u64 = (0..10_000)
        .map(|n| u64::from(reference_murmur3(format!("stable:user-{n}").as_bytes()) % 100 + 1))
        .sum();
    assert_eq!(sum, reference);
    assert_eq!(sum, PINNED_STABLE_SUM);
}

const PINNED_STABLE_SUM: u64 = 510_188;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn murmur3_matches_the_murmur3_crate(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(murmur3_x86_32(&bytes, 0), reference_murmur3(&bytes));
    }

    #[test]
    fn bucket_matches_the_murmur3_crate_on_the_joined_key(group in ".{0,40}", id in ".{0,40}") {
        let key = format!("{group}:{id}");
        prop_assert_eq!(
            normalized_bucket(&group, &id),
            reference_murmur3(key.as_bytes()) % 100 + 1
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The enabled share of 100,000 ids at p lies within 1 point of p.
    #[test]
    fn enabled_share_is_within_one_point(p in 0u32..=100, group in "[a-z_]{1,24}") {
        let value = percent(p);
        let enabled = (0..100_000)
            .filter(|n| value.is_enabled_in_bucket(normalized_bucket(&group, &format!("id-{n}"))))
            .count();
        let share = enabled as f64 / 1_000.0;
        prop_assert!((share - f64::from(p)).abs() <= 1.0, "{share}% enabled at {p}%");
    }

    /// Raising a percentage keeps every id that was already enabled, through
    /// real writes on a real flag.
    #[test]
    fn raising_a_percentage_keeps_enabled_ids(low in 0u32..=100, raise in 0u32..=100, group in "[a-z]{1,12}") {
        let high = (low + raise).min(100);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let mut builder = Flags::builder();
            builder.declare(Flag::new("ramped", "d", FlagValue::Off).with_group_id(group));
            let flags = builder.open().await.unwrap();
            let handle = flags.handle("ramped").unwrap();
            flags.set("ramped", percent(low), by("t")).await.unwrap();
            let ids: Vec<String> = (0..2_000).map(|n| format!("u{n}")).collect();
            let before: Vec<bool> = ids.iter().map(|id| handle.is_enabled_for(id)).collect();
            flags.set("ramped", percent(high), by("t")).await.unwrap();
            for (id, was) in ids.iter().zip(before) {
                if was {
                    assert!(handle.is_enabled_for(id), "{id} lost at {high}% after {low}%");
                }
            }
        });
    }
}
