//! The versioned codec: round trips (property tests), corruption always
//! detected, migrations 1 -> 2 through a store, newer versions rejected,
//! corrupt bytes in the store file reported as data_corruption.

use std::collections::BTreeMap;

use foundation_error::ErrorCode;
use foundation_persist::{Codec, Migrations, Record, Store, StoreOptions};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::support::{bounded, temp_dir};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Idle,
    Running { since: u64 },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rich {
    id: u64,
    delta: i32,
    name: String,
    bytes: Vec<u8>,
    flag: Option<bool>,
    ratio: f64,
    status: Status,
    tags: BTreeMap<String, u32>,
}

impl Record for Rich {
    const TYPE_TAG: &'static str = "rich";
    const SCHEMA_VERSION: u32 = 3;
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Idle),
        any::<u64>().prop_map(|since| Status::Running { since }),
        ".{0,20}".prop_map(Status::Failed),
    ]
}

fn rich() -> impl Strategy<Value = Rich> {
    (
        any::<u64>(),
        any::<i32>(),
        ".{0,40}",
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<Option<bool>>(),
        -1.0e12f64..1.0e12,
        status(),
        proptest::collection::btree_map(".{0,8}", any::<u32>(), 0..6),
    )
        .prop_map(|(id, delta, name, bytes, flag, ratio, status, tags)| Rich {
            id,
            delta,
            name,
            bytes,
            flag,
            ratio,
            status,
            tags,
        })
}

proptest! {
    #[test]
    fn every_value_round_trips(value in rich()) {
        let codec = Codec::<Rich>::new().unwrap();
        let bytes = codec.encode(&value).unwrap();
        prop_assert_eq!(codec.decode(&bytes).unwrap(), value);
    }

    /// Any change of one byte is reported, never decoded to some value.
    #[test]
    fn any_single_byte_change_is_detected(value in rich(), position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let codec = Codec::<Rich>::new().unwrap();
        let mut bytes = codec.encode(&value).unwrap();
        let position = position.index(bytes.len());
        bytes[position] ^= flip;
        let error = codec.decode(&bytes).unwrap_err();
        prop_assert!(
            error.code() == ErrorCode::DATA_CORRUPTION || error.code() == ErrorCode::UNSUPPORTED_VERSION,
            "{}", error
        );
    }

    /// Truncated envelopes (a torn value) are reported, never decoded.
    #[test]
    fn any_truncation_is_detected(value in rich(), keep in any::<prop::sample::Index>()) {
        let codec = Codec::<Rich>::new().unwrap();
        let bytes = codec.encode(&value).unwrap();
        let keep = keep.index(bytes.len());
        let error = codec.decode(&bytes[..keep]).unwrap_err();
        prop_assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION);
    }
}

mod v1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) struct Profile {
        pub(super) name: String,
        pub(super) age: u32,
    }

    impl Record for Profile {
        const TYPE_TAG: &'static str = "profile";
        const SCHEMA_VERSION: u32 = 1;
    }
}

mod v2 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) struct Profile {
        pub(super) first_name: String,
        pub(super) age: u64,
        pub(super) email: Option<String>,
    }

    impl Record for Profile {
        const TYPE_TAG: &'static str = "profile";
        const SCHEMA_VERSION: u32 = 2;

        fn migrations(migrations: &mut Migrations) {
            migrations.add(1, |old: v1::Profile| Profile {
                first_name: old.name,
                age: u64::from(old.age),
                email: None,
            });
        }
    }
}

mod v3 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(super) struct Profile {
        pub(super) first_name: String,
        pub(super) age: u64,
        pub(super) email: Option<String>,
        pub(super) admin: bool,
    }

    impl Record for Profile {
        const TYPE_TAG: &'static str = "profile";
        const SCHEMA_VERSION: u32 = 3;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unrelated(u32);

impl Record for Unrelated {
    const TYPE_TAG: &'static str = "unrelated";
    const SCHEMA_VERSION: u32 = 1;
}

#[tokio::test]
async fn version_1_values_are_migrated_to_version_2_on_read() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    {
        let store = Store::open(&path, &StoreOptions::new()).unwrap();
        let old = store.state::<v1::Profile>("profiles").unwrap();
        let profile = v1::Profile {
            name: "ada".into(),
            age: 36,
        };
        bounded(old.put("ada", &profile)).await.unwrap();
        let journal = store.journal::<v1::Profile>("profile-log").unwrap();
        bounded(journal.append("ada", &profile)).await.unwrap();
        bounded(store.close()).await.unwrap();
    }
    // The code is upgraded: the same keyspaces are read with version 2.
    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let profiles = store.state::<v2::Profile>("profiles").unwrap();
    let expected = v2::Profile {
        first_name: "ada".into(),
        age: 36,
        email: None,
    };
    assert_eq!(
        bounded(profiles.get("ada")).await.unwrap(),
        Some(expected.clone())
    );
    let listed = bounded(profiles.list("", None, 10)).await.unwrap();
    assert_eq!(listed[0].value, expected);
    let journal = store.journal::<v2::Profile>("profile-log").unwrap();
    assert_eq!(
        bounded(journal.read("ada", 1, 10)).await.unwrap()[0].record,
        expected
    );

    // Writing stores version 2; reading it again needs no migration.
    bounded(profiles.put("ada", &expected)).await.unwrap();
    assert_eq!(bounded(profiles.get("ada")).await.unwrap(), Some(expected));
}

#[tokio::test]
async fn a_newer_version_is_rejected_not_misread() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let newer = store.state::<v3::Profile>("profiles").unwrap();
    bounded(newer.put(
        "grace",
        &v3::Profile {
            first_name: "grace".into(),
            age: 45,
            email: None,
            admin: true,
        },
    ))
    .await
    .unwrap();
    let current = store.state::<v2::Profile>("profiles").unwrap();
    let error = bounded(current.get("grace")).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::UNSUPPORTED_VERSION);
    assert_eq!(error.context_value("stored_version"), Some("3"));
    assert_eq!(error.context_value("known_version"), Some("2"));
    assert_eq!(error.context_value("keyspace"), Some("profiles"));
    assert_eq!(error.context_value("key"), Some("grace"));

    // A version 1 reader has no migration from anything: also rejected.
    let oldest = store.state::<v1::Profile>("profiles").unwrap();
    assert_eq!(
        bounded(oldest.get("grace")).await.unwrap_err().code(),
        ErrorCode::UNSUPPORTED_VERSION
    );
}

#[tokio::test]
async fn another_types_value_is_a_type_mismatch() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    bounded(store.metadata().put("setting", &Unrelated(5)))
        .await
        .unwrap();
    let error = bounded(store.metadata().get::<v1::Profile>("setting"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TYPE_MISMATCH);
    assert_eq!(error.context_value("stored_type_tag"), Some("unrelated"));
    assert_eq!(
        bounded(store.metadata().get::<Unrelated>("setting"))
            .await
            .unwrap(),
        Some(Unrelated(5))
    );
    assert!(bounded(store.metadata().delete("setting")).await.unwrap());
}

/// Bytes of a stored value altered in the file itself (bit rot, a bad
/// sector, a stray write) are reported as data_corruption naming the
/// keyspace and key. redb does not verify its page checksums on ordinary
/// reads; the envelope's checksum catches it.
#[tokio::test]
async fn a_value_corrupted_on_disk_is_data_corruption() {
    const MARKER: &[u8] = b"corrupt-me-if-you-can-0123456789";
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    {
        let store = Store::open(&path, &StoreOptions::new()).unwrap();
        let values = store.state::<Unrelated>("values").unwrap();
        bounded(values.put("fine", &Unrelated(1))).await.unwrap();
        let profiles = store.state::<v1::Profile>("profiles").unwrap();
        let profile = v1::Profile {
            name: String::from_utf8(MARKER.to_vec()).unwrap(),
            age: 1,
        };
        bounded(profiles.put("victim", &profile)).await.unwrap();
        bounded(store.close()).await.unwrap();
    }
    let mut file = std::fs::read(&path).unwrap();
    let mut flipped = 0;
    let mut start = 0;
    while let Some(offset) = find(&file[start..], MARKER) {
        let at = start + offset + MARKER.len() / 2;
        file[at] ^= 0x01;
        flipped += 1;
        start = at + 1;
    }
    assert!(flipped > 0, "the value is stored verbatim in the file");
    std::fs::write(&path, &file).unwrap();

    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let profiles = store.state::<v1::Profile>("profiles").unwrap();
    let error = bounded(profiles.get("victim")).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION, "{error}");
    assert_eq!(error.context_value("keyspace"), Some("profiles"));
    assert_eq!(error.context_value("key"), Some("victim"));
    let listing = bounded(profiles.list("", None, 10)).await.unwrap_err();
    assert_eq!(listing.code(), ErrorCode::DATA_CORRUPTION);
    // Other values are unaffected.
    let values = store.state::<Unrelated>("values").unwrap();
    assert_eq!(
        bounded(values.get("fine")).await.unwrap(),
        Some(Unrelated(1))
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
