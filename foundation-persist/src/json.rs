//! [`JsonValue`]: arbitrary JSON that can be stored.
//!
//! postcard, the codec of stored values, is not self-describing: it cannot
//! decode `serde_json::Value` (or any type that needs
//! `deserialize_any`, such as untagged enums), though it encodes it. A
//! record that must hold free-form JSON (a workflow's parameters and
//! results, a signal's data) holds a [`JsonValue`] instead: it is stored as
//! JSON text in binary formats such as postcard, and as the JSON value
//! itself in human-readable formats (so an HTTP API shows the JSON, not a
//! string of it).
//!
//! This module is not for typed data: a struct with named fields stores
//! smaller and decodes faster than the same data as JSON.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// A JSON value that round-trips through every format, postcard included.
///
/// ```
/// use foundation_persist::{Codec, JsonValue, Record};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct StepResult {
///     step: String,
///     output: JsonValue,
/// }
///
/// impl Record for StepResult {
///     const TYPE_TAG: &'static str = "step_result";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// let result = StepResult {
///     step: "fetch".into(),
///     output: JsonValue::new(serde_json::json!({"status": 200, "tags": ["a", null]})),
/// };
/// let codec = Codec::<StepResult>::new()?;
/// assert_eq!(codec.decode(&codec.encode(&result)?)?, result);
/// # Ok::<(), foundation_error::Error>(())
/// ```
#[derive(Clone, PartialEq, Default)]
pub struct JsonValue(serde_json::Value);

impl JsonValue {
    /// Wraps a JSON value.
    pub fn new(value: serde_json::Value) -> JsonValue {
        JsonValue(value)
    }

    /// The JSON value.
    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }

    /// Unwraps the JSON value.
    pub fn into_value(self) -> serde_json::Value {
        self.0
    }
}

impl From<serde_json::Value> for JsonValue {
    fn from(value: serde_json::Value) -> JsonValue {
        JsonValue(value)
    }
}

impl From<JsonValue> for serde_json::Value {
    fn from(value: JsonValue) -> serde_json::Value {
        value.0
    }
}

impl fmt::Debug for JsonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for JsonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return self.0.serialize(serializer);
        }
        let text = serde_json::to_string(&self.0).map_err(ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonValue, D::Error> {
        if deserializer.is_human_readable() {
            return serde_json::Value::deserialize(deserializer).map(JsonValue);
        }
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        serde_json::from_str(&text)
            .map(JsonValue)
            .map_err(de::Error::custom)
    }
}
