//! [`Signal`]: an event in the CloudEvents 1.0 shape.
//!
//! A signal serialises as CloudEvents JSON in human-readable formats and
//! round-trips through postcard (the workspace's storage format), where its
//! JSON `data` is written as JSON text: postcard cannot decode a
//! self-describing `serde_json::Value`. This module is not for routing; see
//! the router.

use std::time::SystemTime;

use foundation_error::clock::{Clock, TokioClock};
use foundation_error::{Error, ErrorCode};
use serde::{Deserialize, Serialize};

/// An event in the CloudEvents 1.0 shape (JSON format): id, type, source,
/// time and JSON data.
///
/// It is meant to be stored (journals of workflows): in postcard and other
/// non-human-readable formats `data` travels as JSON text, so the value
/// round-trips exactly; in JSON it is the JSON value itself.
///
/// ```
/// use foundation_core::signal::Signal;
///
/// let signal = Signal::new("agent.task.completed", "/agents/7", serde_json::json!({"task": 42}))
///     .unwrap();
/// let json = serde_json::to_value(&signal).unwrap();
/// assert_eq!(json["specversion"], "1.0");
/// assert_eq!(json["type"], "agent.task.completed");
/// let back: Signal = serde_json::from_value(json).unwrap();
/// assert_eq!(back, signal);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Always "1.0".
    pub specversion: String,
    /// Unique per source (a random UUID unless set).
    pub id: String,
    /// The event type, dot-separated by convention (routing matches on it).
    #[serde(rename = "type")]
    pub signal_type: String,
    /// Where it comes from (a URI reference).
    pub source: String,
    /// When it happened, RFC 3339 on the wire.
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// Always "application/json".
    #[serde(default = "json_content_type")]
    pub datacontenttype: String,
    /// The payload.
    #[serde(default, with = "json_data")]
    pub data: serde_json::Value,
}

fn json_content_type() -> String {
    "application/json".to_owned()
}

impl Signal {
    /// A signal of `signal_type` from `source`, stamped with the system's
    /// wall time, with a fresh id. Fails with `invalid_input` when the type
    /// or source is empty or the type contains `*` (reserved for patterns).
    ///
    /// Services that run on an injected clock use [`Signal::new_at`].
    pub fn new(
        signal_type: impl Into<String>,
        source: impl Into<String>,
        data: serde_json::Value,
    ) -> Result<Signal, Error> {
        Signal::new_at(signal_type, source, data, &TokioClock::new())
    }

    /// [`Signal::new`], stamped with the wall time of `clock`, so one
    /// paused or manual clock drives the stamps of a whole test.
    ///
    /// ```
    /// use foundation_core::clock::{Clock, ManualClock};
    /// use foundation_core::signal::Signal;
    ///
    /// let clock = ManualClock::new();
    /// let signal = Signal::new_at("job.done", "/jobs", serde_json::json!(1), &clock).unwrap();
    /// assert_eq!(signal.time, clock.wall());
    /// ```
    pub fn new_at(
        signal_type: impl Into<String>,
        source: impl Into<String>,
        data: serde_json::Value,
        clock: &dyn Clock,
    ) -> Result<Signal, Error> {
        let signal_type = signal_type.into();
        let source = source.into();
        if signal_type.is_empty() || signal_type.contains('*') {
            return Err(Error::new(
                ErrorCode::INVALID_INPUT,
                "a signal type must be non-empty and must not contain '*'",
            )
            .with_context("type", signal_type));
        }
        if source.is_empty() {
            return Err(Error::new(
                ErrorCode::INVALID_INPUT,
                "a signal source must be non-empty",
            ));
        }
        Ok(Signal {
            specversion: "1.0".to_owned(),
            id: uuid::Uuid::new_v4().to_string(),
            signal_type,
            source,
            time: clock.wall(),
            datacontenttype: json_content_type(),
            data,
        })
    }
}

/// `data` as the JSON value in human-readable formats and as JSON text in
/// the others (postcard cannot decode a self-describing value).
mod json_data {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        value: &serde_json::Value,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            value.serialize(serializer)
        } else {
            serializer.collect_str(value)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<serde_json::Value, D::Error> {
        if deserializer.is_human_readable() {
            serde_json::Value::deserialize(deserializer)
        } else {
            let text = String::deserialize(deserializer)?;
            serde_json::from_str(&text).map_err(D::Error::custom)
        }
    }
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_nanos(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text).map_err(D::Error::custom)
    }
}
