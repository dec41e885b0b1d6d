//! The versioned codec: how a value becomes bytes at rest and back.
//!
//! A stored value is an *envelope*: a format byte, a CRC-32 of the rest, the
//! value's type tag, its schema version and the postcard encoding of the
//! value itself. Reading checks all of it, so a stored value is never
//! silently misread:
//!
//! - a checksum mismatch, or bytes that do not decode, are `data_corruption`;
//! - a type tag other than the one expected is `type_mismatch`;
//! - a schema version newer than the code knows is `unsupported_version`;
//! - an older schema version is upgraded through the [`Migrations`] the type
//!   registered, one version at a time.
//!
//! This module knows nothing about keyspaces or storage; the store adds the
//! keyspace and the key to the errors it returns.
//!
//! Layout (all integers of the header little-endian, the rest postcard):
//!
//! ```text
//! byte 0      envelope format (1)
//! bytes 1..5  CRC-32 (IEEE) of byte 0 followed by bytes 5..
//! bytes 5..   type tag (postcard string: varint length, UTF-8)
//!             schema version (postcard varint u32)
//!             payload (postcard encoding of the value, to the end)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The envelope format this code writes and reads.
pub const ENVELOPE_FORMAT: u8 = 1;

const HEADER_BYTES: usize = 5;

/// A type that can be stored: serde-serialisable, with a stable type tag and
/// a schema version.
///
/// # Everything stored round-trips
///
/// Values are encoded with postcard, which is compact but not
/// self-describing: it writes fields by position and cannot ask the bytes
/// what comes next. A type that serialises but does not read back would
/// fail every read (as `data_corruption`, never a misread). So a stored
/// type, and every type inside it, must:
///
/// - never use `#[serde(skip_serializing_if = ...)]` (the field is missing
///   from the bytes, but the reader expects it; `#[serde(default)]` alone is
///   fine), nor `#[serde(flatten)]`;
/// - never hold `serde_json::Value`, `#[serde(untagged)]` enums, or any type
///   whose `Deserialize` calls `deserialize_any` (postcard cannot decode
///   them). Store free-form JSON as a [`JsonValue`](crate::JsonValue) (JSON
///   text inside postcard), or as a `String` of JSON;
/// - have a postcard round-trip test (encode, decode, compare), as this
///   crate has for [`Version`](crate::Version) and
///   [`JsonValue`](crate::JsonValue).
///
/// Persisted structs evolve by bumping
/// [`SCHEMA_VERSION`](Record::SCHEMA_VERSION) and registering a migration
/// from the previous version. Never add, reorder or remove fields without a
/// version bump: postcard encodes fields by position, so even a field
/// added at the end with `#[serde(default)]` makes older values fail to
/// decode.
///
/// ```
/// use foundation_persist::{Codec, Migrations, Record};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct ProfileV1 {
///     name: String,
/// }
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Profile {
///     name: String,
///     email: Option<String>,
/// }
///
/// impl Record for Profile {
///     const TYPE_TAG: &'static str = "profile";
///     const SCHEMA_VERSION: u32 = 2;
///
///     fn migrations(migrations: &mut Migrations) {
///         migrations.add(1, |old: ProfileV1| Profile { name: old.name, email: None });
///     }
/// }
///
/// let codec = Codec::<Profile>::new()?;
/// let profile = Profile { name: "ada".into(), email: None };
/// let bytes = codec.encode(&profile)?;
/// assert_eq!(codec.decode(&bytes)?, profile);
/// # Ok::<(), foundation_error::Error>(())
/// ```
pub trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name of this type in stored envelopes, for example
    /// `"task_agent_state"`. Changing it makes stored values unreadable as
    /// this type.
    const TYPE_TAG: &'static str;

    /// The current schema version, starting at 1.
    const SCHEMA_VERSION: u32;

    /// Registers the migrations from older schema versions. The default
    /// registers none.
    fn migrations(migrations: &mut Migrations) {
        let _ = migrations;
    }
}

type Step = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, Error> + Send + Sync>;

/// The upgrade steps of one [`Record`] type, each from one schema version to
/// the next.
///
/// Steps must be contiguous and end at the current version: with version 3
/// current, steps from 1 and from 2 (or only from 2). [`Codec::new`] checks
/// this.
#[derive(Default)]
pub struct Migrations {
    steps: BTreeMap<u32, Step>,
    duplicates: Vec<u32>,
}

impl Migrations {
    /// Registers the step from `from_version` to `from_version + 1`: values
    /// stored as `Old` are decoded, passed to `upgrade`, and the result is
    /// treated as a value of the next version.
    pub fn add<Old, New>(
        &mut self,
        from_version: u32,
        upgrade: impl Fn(Old) -> New + Send + Sync + 'static,
    ) -> &mut Migrations
    where
        Old: DeserializeOwned,
        New: Serialize,
    {
        let step: Step = Box::new(move |payload: &[u8]| {
            let old: Old = decode_payload(payload).map_err(|error| {
                error
                    .with_message(
                        "a stored value does not decode as the type its migration expects",
                    )
                    .with_context("schema_version", from_version)
            })?;
            encode_payload(&upgrade(old))
        });
        if self.steps.insert(from_version, step).is_some() {
            self.duplicates.push(from_version);
        }
        self
    }

    fn validate(&self, type_tag: &str, current: u32) -> Result<(), Error> {
        let invalid = |message: String| {
            Error::new(ErrorCode::INVALID_CONFIG_VALUE, message).with_context("type_tag", type_tag)
        };
        if current == 0 {
            return Err(invalid("schema versions start at 1".into()));
        }
        if let Some(version) = self.duplicates.first() {
            return Err(invalid(format!(
                "two migrations are registered from schema version {version}"
            )));
        }
        let mut expected_next = None;
        for &from in self.steps.keys() {
            if from == 0 || from >= current {
                return Err(invalid(format!(
                    "a migration from schema version {from} cannot lead to the current version {current}"
                )));
            }
            if let Some(expected) = expected_next
                && from != expected
            {
                return Err(invalid(format!(
                    "migrations skip schema version {expected}: no step from it is registered"
                )));
            }
            expected_next = Some(from + 1);
        }
        if let Some(next) = expected_next
            && next != current
        {
            return Err(invalid(format!(
                "migrations stop at schema version {next}, before the current version {current}"
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for Migrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migrations")
            .field("from_versions", &self.steps.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The encoder and decoder of one [`Record`] type, with its migrations.
///
/// Cheap to clone (the migrations are shared). Keyspace handles build one
/// when they are created.
pub struct Codec<T> {
    migrations: Arc<Migrations>,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        Codec {
            migrations: Arc::clone(&self.migrations),
            record: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Codec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("type", &std::any::type_name::<T>())
            .field("migrations", &self.migrations)
            .finish()
    }
}

impl<T: Record> Codec<T> {
    /// Collects `T`'s migrations and checks them.
    ///
    /// # Errors
    ///
    /// `invalid_config_value` when `T`'s schema version is 0, or its
    /// migrations are duplicated, not contiguous, or do not end at the
    /// current version.
    pub fn new() -> Result<Codec<T>, Error> {
        let mut migrations = Migrations::default();
        T::migrations(&mut migrations);
        migrations.validate(T::TYPE_TAG, T::SCHEMA_VERSION)?;
        Ok(Codec {
            migrations: Arc::new(migrations),
            record: PhantomData,
        })
    }

    /// Encodes `value` in an envelope of `T`'s tag and current version.
    ///
    /// # Errors
    ///
    /// `serialization_failed` when serde cannot serialise the value (for
    /// example a sequence of unknown length).
    pub fn encode(&self, value: &T) -> Result<Vec<u8>, Error> {
        encode_envelope(T::TYPE_TAG, T::SCHEMA_VERSION, value)
    }

    /// Decodes an envelope, upgrading an older schema version through the
    /// registered migrations.
    ///
    /// # Errors
    ///
    /// `data_corruption` for a checksum mismatch or undecodable bytes,
    /// `type_mismatch` for another type's tag, `unsupported_version` for a
    /// version newer than `T`'s or one no migration leads from.
    pub fn decode(&self, bytes: &[u8]) -> Result<T, Error> {
        let envelope = open_envelope(bytes)?;
        if envelope.type_tag != T::TYPE_TAG {
            return Err(Error::new(
                ErrorCode::TYPE_MISMATCH,
                format!(
                    "the stored value is a `{}`, not a `{}`",
                    envelope.type_tag,
                    T::TYPE_TAG
                ),
            )
            .with_context("stored_type_tag", envelope.type_tag)
            .with_context("type_tag", T::TYPE_TAG));
        }
        let mut version = envelope.schema_version;
        if version > T::SCHEMA_VERSION {
            return Err(Error::new(
                ErrorCode::UNSUPPORTED_VERSION,
                format!(
                    "the stored value has schema version {version}, newer than the version {} this code knows; upgrade the code before reading it",
                    T::SCHEMA_VERSION
                ),
            )
            .with_context("type_tag", T::TYPE_TAG)
            .with_context("stored_version", version)
            .with_context("known_version", T::SCHEMA_VERSION));
        }
        if version == T::SCHEMA_VERSION {
            return decode_payload(envelope.payload).map_err(|error| {
                error
                    .with_context("type_tag", T::TYPE_TAG)
                    .with_context("schema_version", version)
            });
        }
        let mut payload = std::borrow::Cow::Borrowed(envelope.payload);
        while version < T::SCHEMA_VERSION {
            let Some(step) = self.migrations.steps.get(&version) else {
                return Err(Error::new(
                    ErrorCode::UNSUPPORTED_VERSION,
                    format!(
                        "no migration is registered from schema version {version} of `{}`",
                        T::TYPE_TAG
                    ),
                )
                .with_context("type_tag", T::TYPE_TAG)
                .with_context("stored_version", envelope.schema_version)
                .with_context("known_version", T::SCHEMA_VERSION));
            };
            payload = std::borrow::Cow::Owned(
                step(&payload).map_err(|error| error.with_context("type_tag", T::TYPE_TAG))?,
            );
            version += 1;
        }
        decode_payload(&payload).map_err(|error| {
            error
                .with_message("a migrated value does not decode as the current type")
                .with_context("type_tag", T::TYPE_TAG)
                .with_context("stored_version", envelope.schema_version)
        })
    }
}

/// The parts of an envelope, checksum verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) type_tag: &'a str,
    pub(crate) schema_version: u32,
    pub(crate) payload: &'a [u8],
}

pub(crate) fn encode_envelope<T: Serialize + ?Sized>(
    type_tag: &str,
    schema_version: u32,
    value: &T,
) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(ENVELOPE_FORMAT);
    bytes.extend_from_slice(&[0; 4]);
    let bytes = postcard::to_extend(type_tag, bytes).map_err(serialization_failed)?;
    let bytes = postcard::to_extend(&schema_version, bytes).map_err(serialization_failed)?;
    let mut bytes = postcard::to_extend(value, bytes).map_err(serialization_failed)?;
    let checksum = checksum(bytes[0], &bytes[HEADER_BYTES..]);
    bytes[1..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    Ok(bytes)
}

/// Verifies the checksum and splits an envelope into its parts.
pub(crate) fn open_envelope(bytes: &[u8]) -> Result<Envelope<'_>, Error> {
    if bytes.len() < HEADER_BYTES {
        return Err(corruption(format!(
            "a stored value of {} bytes is shorter than an envelope header",
            bytes.len()
        )));
    }
    let mut stored = [0; 4];
    stored.copy_from_slice(&bytes[1..HEADER_BYTES]);
    let stored = u32::from_le_bytes(stored);
    let computed = checksum(bytes[0], &bytes[HEADER_BYTES..]);
    if stored != computed {
        return Err(corruption(
            "a stored value fails its checksum: it was altered or torn after it was written",
        )
        .with_context("stored_checksum", format!("{stored:08x}"))
        .with_context("computed_checksum", format!("{computed:08x}")));
    }
    let format = bytes[0];
    if format != ENVELOPE_FORMAT {
        return Err(Error::new(
            ErrorCode::UNSUPPORTED_VERSION,
            format!(
                "a stored value uses envelope format {format}; this code reads format {ENVELOPE_FORMAT}"
            ),
        )
        .with_context("envelope_format", format));
    }
    let rest = &bytes[HEADER_BYTES..];
    let (type_tag, rest): (&str, &[u8]) = postcard::take_from_bytes(rest).map_err(|error| {
        corruption("the type tag of a stored value is unreadable").with_cause(error)
    })?;
    let (schema_version, payload): (u32, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|error| {
            corruption("the schema version of a stored value is unreadable").with_cause(error)
        })?;
    Ok(Envelope {
        type_tag,
        schema_version,
        payload,
    })
}

fn checksum(format: u8, rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[format]);
    hasher.update(rest);
    hasher.finalize()
}

fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_stdvec(value).map_err(serialization_failed)
}

/// Decodes a whole payload: trailing bytes are corruption, not ignored.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Error> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(corruption(format!(
            "a stored value has {} bytes after its end",
            rest.len()
        ))),
        Err(error) => {
            Err(corruption("a stored value does not decode as its type").with_cause(error))
        }
    }
}

fn corruption(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorCode::DATA_CORRUPTION, message)
}

fn serialization_failed(error: postcard::Error) -> Error {
    Error::new(
        ErrorCode::SERIALIZATION_FAILED,
        format!("a value could not be serialised: {error}"),
    )
    .with_cause(error)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        id: u64,
        name: String,
    }

    impl Record for Plain {
        const TYPE_TAG: &'static str = "plain";
        const SCHEMA_VERSION: u32 = 1;
    }

    fn plain() -> Plain {
        Plain {
            id: 7,
            name: "seven".into(),
        }
    }

    #[test]
    fn envelope_layout_is_stable() {
        let bytes = Codec::<Plain>::new().unwrap().encode(&plain()).unwrap();
        assert_eq!(bytes[0], ENVELOPE_FORMAT);
        // Tag "plain" as a postcard string, then version 1, then the payload.
        assert_eq!(&bytes[5..11], b"\x05plain");
        assert_eq!(bytes[11], 1);
        assert_eq!(&bytes[12..], b"\x07\x05seven");
        let envelope = open_envelope(&bytes).unwrap();
        assert_eq!(envelope.type_tag, "plain");
        assert_eq!(envelope.schema_version, 1);
    }

    #[test]
    fn trailing_bytes_are_corruption() {
        // A valid checksum over a payload with garbage after the value.
        let mut payload = postcard::to_stdvec(&plain()).unwrap();
        payload.push(0);
        let bytes = encode_envelope("plain", 1, &RawBytes(&payload)).unwrap();
        let error = Codec::<Plain>::new().unwrap().decode(&bytes).unwrap_err();
        assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION);
    }

    #[test]
    fn undecodable_payload_with_valid_checksum_is_corruption() {
        let bytes = encode_envelope("plain", 1, &RawBytes(&[0xff, 0xff, 0xff])).unwrap();
        let error = Codec::<Plain>::new().unwrap().decode(&bytes).unwrap_err();
        assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION);
        assert_eq!(error.context_value("type_tag"), Some("plain"));
    }

    #[test]
    fn newer_envelope_format_is_unsupported() {
        let mut bytes = Codec::<Plain>::new().unwrap().encode(&plain()).unwrap();
        bytes[0] = ENVELOPE_FORMAT + 1;
        let checksum = checksum(bytes[0], &bytes[HEADER_BYTES..]);
        bytes[1..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
        let error = Codec::<Plain>::new().unwrap().decode(&bytes).unwrap_err();
        assert_eq!(error.code(), ErrorCode::UNSUPPORTED_VERSION);
    }

    #[test]
    fn short_input_is_corruption() {
        for length in 0..HEADER_BYTES {
            let error = open_envelope(&vec![1; length]).unwrap_err();
            assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION);
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Gappy;

    impl Record for Gappy {
        const TYPE_TAG: &'static str = "gappy";
        const SCHEMA_VERSION: u32 = 4;

        fn migrations(migrations: &mut Migrations) {
            migrations.add(1, |_: Gappy| Gappy).add(3, |_: Gappy| Gappy);
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Short;

    impl Record for Short {
        const TYPE_TAG: &'static str = "short";
        const SCHEMA_VERSION: u32 = 4;

        fn migrations(migrations: &mut Migrations) {
            migrations.add(1, |_: Short| Short).add(2, |_: Short| Short);
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Twice;

    impl Record for Twice {
        const TYPE_TAG: &'static str = "twice";
        const SCHEMA_VERSION: u32 = 2;

        fn migrations(migrations: &mut Migrations) {
            migrations.add(1, |_: Twice| Twice).add(1, |_: Twice| Twice);
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Zero;

    impl Record for Zero {
        const TYPE_TAG: &'static str = "zero";
        const SCHEMA_VERSION: u32 = 0;
    }

    #[test]
    fn broken_migration_chains_are_rejected_up_front() {
        for error in [
            Codec::<Gappy>::new().unwrap_err(),
            Codec::<Short>::new().unwrap_err(),
            Codec::<Twice>::new().unwrap_err(),
            Codec::<Zero>::new().unwrap_err(),
        ] {
            assert_eq!(error.code(), ErrorCode::INVALID_CONFIG_VALUE, "{error}");
        }
    }

    /// Serialises as the raw bytes, for building envelopes by hand.
    struct RawBytes<'a>(&'a [u8]);

    impl Serialize for RawBytes<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            let mut tuple = serializer.serialize_tuple(self.0.len())?;
            for byte in self.0 {
                tuple.serialize_element(byte)?;
            }
            tuple.end()
        }
    }
}
