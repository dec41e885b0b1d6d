//! The portable, serialisable form of an [`Error`], for the HTTP API and for
//! persistence.
//!
//! [`PortableError`] holds plain data (the code as number and name, category,
//! severity, message, context, ids, breadcrumbs, timestamp and the cause
//! chain as text), so it round-trips through any serde format, postcard (the
//! workspace's storage format) included: every field is always written
//! (absent ids are `null` in JSON, empty lists `[]`), because a field
//! skipped on writing cannot be read back by a format that does not name
//! its fields. Turning it back into an [`Error`] resolves the code number
//! against the built-in codes and the application codes the caller passes.
//!
//! JSON readers stay lenient: a document without the optional fields (ids,
//! breadcrumbs, causes, context) is accepted. This module is not for the
//! HTTP mapping of errors (status codes); that belongs to the HTTP edge.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::code::{Category, ErrorCode, Severity};
use crate::error::{Cause, Error};

/// The serialisable form of an [`Error`], meant to be stored (postcard) and
/// sent (JSON).
///
/// ```
/// use foundation_error::{Error, ErrorCode, PortableError};
///
/// let error = Error::new(ErrorCode::TIMEOUT, "slow").with_context("ms", 5000);
/// let portable = error.to_portable();
/// assert_eq!(portable.code, 4301);
/// assert_eq!(portable.name, "timeout");
/// let back = portable.clone().into_error(&[]);
/// assert_eq!(back.to_portable(), portable);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableError {
    /// The code number, for example 4301.
    pub code: u32,
    /// The code name, for example `timeout`.
    pub name: String,
    /// The category.
    pub category: Category,
    /// The severity.
    pub severity: Severity,
    /// The message.
    pub message: String,
    /// Context entries, in order; serialised as a map.
    #[serde(with = "ordered_map", default)]
    pub context: Vec<(String, String)>,
    /// The correlation id.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The operation id of the error's scope.
    #[serde(default)]
    pub operation_id: Option<String>,
    /// The breadcrumbs of the error's scope.
    #[serde(default)]
    pub breadcrumbs: Vec<String>,
    /// Creation time, in microseconds since the Unix epoch.
    pub timestamp_unix_micros: u64,
    /// The cause chain as text, outermost first.
    #[serde(default)]
    pub causes: Vec<String>,
}

impl Error {
    /// The portable form of this error.
    pub fn to_portable(&self) -> PortableError {
        let micros = self
            .timestamp()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        PortableError {
            code: self.code().number(),
            name: self.code().name().to_owned(),
            category: self.category(),
            severity: self.severity(),
            message: self.message().to_owned(),
            context: self
                .context()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            correlation_id: self.correlation_id().map(str::to_owned),
            operation_id: self.operation_id().map(str::to_owned),
            breadcrumbs: self.breadcrumbs().to_vec(),
            timestamp_unix_micros: u64::try_from(micros).unwrap_or(u64::MAX),
            causes: self.cause_messages(),
        }
    }
}

impl From<&Error> for PortableError {
    fn from(error: &Error) -> PortableError {
        error.to_portable()
    }
}

impl PortableError {
    /// Rebuilds an [`Error`].
    ///
    /// The code is looked up among the built-in codes and `application_codes`.
    /// A number neither knows becomes [`ErrorCode::UNKNOWN`], with the
    /// original number and name kept as the context entries
    /// `original_code` and `original_name`. The cause chain comes back as
    /// text-only causes.
    pub fn into_error(self, application_codes: &[ErrorCode]) -> Error {
        let known = ErrorCode::from_number(self.code).or_else(|| {
            application_codes
                .iter()
                .copied()
                .find(|code| code.number() == self.code)
        });
        let code = known.unwrap_or(ErrorCode::UNKNOWN);
        let mut error = Error::unscoped(code, self.message)
            .with_severity(self.severity)
            .with_timestamp(UNIX_EPOCH + Duration::from_micros(self.timestamp_unix_micros))
            .with_scope_fields(self.operation_id, self.correlation_id, self.breadcrumbs);
        for (key, value) in self.context {
            error.set_context(key, value);
        }
        if known.is_none() {
            error.set_context("original_code", self.code);
            error.set_context("original_name", self.name);
        }
        match text_cause_chain(self.causes) {
            Some(cause) => error.with_shared_cause(cause),
            None => error,
        }
    }
}

/// A cause known only by its text (a cause chain that crossed a wire).
#[derive(Debug)]
struct TextCause {
    message: String,
    source: Option<Box<TextCause>>,
}

impl fmt::Display for TextCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for TextCause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

fn text_cause_chain(causes: Vec<String>) -> Option<Cause> {
    let mut chain: Option<Box<TextCause>> = None;
    for message in causes.into_iter().rev() {
        chain = Some(Box::new(TextCause {
            message,
            source: chain,
        }));
    }
    chain.map(|cause| Arc::new(*cause) as Cause)
}

/// Serialises `Vec<(String, String)>` as a map, keeping order both ways.
mod ordered_map {
    use std::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        entries: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Vec<(String, String)>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map of context entries")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(entries)
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_kept_as_context() {
        let portable = PortableError {
            code: 6123,
            name: "their_code".into(),
            category: Category::Business,
            severity: Severity::Low,
            message: "from elsewhere".into(),
            context: vec![],
            correlation_id: None,
            operation_id: None,
            breadcrumbs: vec![],
            timestamp_unix_micros: 1,
            causes: vec!["outer".into(), "inner".into()],
        };
        let error = portable.into_error(&[]);
        assert_eq!(error.code(), ErrorCode::UNKNOWN);
        assert_eq!(error.context_value("original_code"), Some("6123"));
        assert_eq!(error.context_value("original_name"), Some("their_code"));
        assert_eq!(error.cause_messages(), vec!["outer", "inner"]);
    }

    #[test]
    fn application_codes_resolve() {
        const MINE: ErrorCode = ErrorCode::application(
            6123,
            "their_code",
            Category::Business,
            Severity::Low,
            crate::RetryStrategy::Never,
        );
        let error = Error::new(MINE, "mine");
        let back = error.to_portable().into_error(&[MINE]);
        assert_eq!(back.code(), MINE);
        assert_eq!(back.to_portable(), error.to_portable());
    }
}
