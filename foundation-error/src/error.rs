//! The one error type, [`Error`], and its builder methods.
//!
//! An `Error` is one pointer wide (its data is boxed), so `Result<T, Error>`
//! stays small. It is `Clone`, `Send` and `Sync`, so that one failure can be
//! handed to many waiters. Conversions from foreign errors live in
//! `normalize.rs`; the serialisable form lives in `portable.rs`.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::code::{Category, ErrorCode, Severity};
use crate::scope;

/// A shared, type-erased cause.
pub(crate) type Cause = Arc<dyn StdError + Send + Sync + 'static>;

/// The one error type of Foundation.
///
/// It carries a stable [`ErrorCode`] (which gives the [`Category`] and the
/// default [`Severity`]), a message a person can act on, key-value context,
/// an optional correlation id, the time it was created, the scope it was
/// created in (see [`scope`](crate::scope())), and the cause chain through
/// [`std::error::Error::source`].
///
/// ```
/// use foundation_error::{Category, Error, ErrorCode};
///
/// let error = Error::new(ErrorCode::TIMEOUT, "payment service did not answer")
///     .with_context("service", "payments")
///     .with_context("timeout_ms", 5000)
///     .with_correlation_id("req-42");
/// assert_eq!(error.category(), Category::Infrastructure);
/// assert_eq!(
///     error.to_string(),
///     "[4301 timeout] payment service did not answer (service=payments, timeout_ms=5000)"
/// );
/// assert!(error.is_retryable());
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    code: ErrorCode,
    severity: Severity,
    message: Cow<'static, str>,
    context: Vec<(Cow<'static, str>, String)>,
    correlation_id: Option<String>,
    operation_id: Option<String>,
    breadcrumbs: Vec<String>,
    timestamp: SystemTime,
    cause: Option<Cause>,
}

impl Error {
    /// Creates an error of `code` with a message.
    ///
    /// Inside an [`scope`](crate::scope()), the error picks up the scope's
    /// operation id, correlation id and breadcrumbs.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        let mut error = Error::unscoped(code, message);
        scope::with_current(|scope| {
            let inner = &mut error.inner;
            inner.operation_id = scope.operation_id.clone();
            inner.correlation_id = scope.correlation_id.clone();
            inner.breadcrumbs = scope.breadcrumbs.clone();
        });
        error
    }

    /// Creates an error without consulting the current scope.
    pub(crate) fn unscoped(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        let inner = Inner {
            code,
            severity: code.default_severity(),
            message: message.into(),
            context: Vec::new(),
            correlation_id: None,
            operation_id: None,
            breadcrumbs: Vec::new(),
            timestamp: SystemTime::now(),
            cause: None,
        };
        Error {
            inner: Box::new(inner),
        }
    }

    /// A validation error ([`ErrorCode::INVALID_INPUT`]): the caller's input is wrong.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorCode::INVALID_INPUT, message)
    }

    /// An infrastructure error ([`ErrorCode::SERVICE_UNAVAILABLE`]): something
    /// the operation depends on is unavailable; retryable.
    pub fn infrastructure(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorCode::SERVICE_UNAVAILABLE, message)
    }

    /// A business error ([`ErrorCode::BUSINESS_RULE_VIOLATION`]): a domain
    /// rule refused the operation.
    pub fn business(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorCode::BUSINESS_RULE_VIOLATION, message)
    }

    /// A system error ([`ErrorCode::INTERNAL_ERROR`]): an internal failure.
    pub fn system(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorCode::INTERNAL_ERROR, message)
    }

    /// A timeout ([`ErrorCode::TIMEOUT`]).
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorCode::TIMEOUT, message)
    }

    /// Requested data does not exist ([`ErrorCode::DATA_NOT_FOUND`]).
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorCode::DATA_NOT_FOUND, message)
    }

    /// Adds a context entry; an entry with the same key is replaced.
    #[must_use]
    pub fn with_context(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl fmt::Display,
    ) -> Error {
        self.set_context(key, value);
        self
    }

    /// Adds or replaces a context entry in place.
    pub fn set_context(&mut self, key: impl Into<Cow<'static, str>>, value: impl fmt::Display) {
        let key = key.into();
        let value = value.to_string();
        match self
            .inner
            .context
            .iter_mut()
            .find(|(existing, _)| *existing == key)
        {
            Some(entry) => entry.1 = value,
            None => self.inner.context.push((key, value)),
        }
    }

    /// Sets the cause, reachable through [`std::error::Error::source`].
    #[must_use]
    pub fn with_cause(mut self, cause: impl StdError + Send + Sync + 'static) -> Error {
        self.inner.cause = Some(Arc::new(cause));
        self
    }

    /// Sets an already shared cause.
    #[must_use]
    pub(crate) fn with_shared_cause(mut self, cause: Cause) -> Error {
        self.inner.cause = Some(cause);
        self
    }

    /// Sets the correlation id that ties this error to a request.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Error {
        self.inner.correlation_id = Some(id.into());
        self
    }

    /// Overrides the code's default severity.
    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Error {
        self.inner.severity = severity;
        self
    }

    /// Replaces the message, keeping everything else.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Error {
        self.inner.message = message.into();
        self
    }

    pub(crate) fn with_timestamp(mut self, timestamp: SystemTime) -> Error {
        self.inner.timestamp = timestamp;
        self
    }

    pub(crate) fn with_scope_fields(
        mut self,
        operation_id: Option<String>,
        correlation_id: Option<String>,
        breadcrumbs: Vec<String>,
    ) -> Error {
        self.inner.operation_id = operation_id;
        self.inner.correlation_id = correlation_id;
        self.inner.breadcrumbs = breadcrumbs;
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The category, given by the code.
    pub fn category(&self) -> Category {
        self.inner.code.category()
    }

    /// The severity: the code's default unless overridden.
    pub fn severity(&self) -> Severity {
        self.inner.severity
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The context entries, in insertion order.
    pub fn context(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.inner
            .context
            .iter()
            .map(|(key, value)| (key.as_ref(), value.as_str()))
    }

    /// The value of one context entry.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.inner
            .context
            .iter()
            .find(|(existing, _)| existing == key)
            .map(|(_, value)| value.as_str())
    }

    /// The number of attempts [`retry`](crate::retry()) made before giving
    /// up with this error, if it came out of a retry.
    pub fn attempts(&self) -> Option<u32> {
        self.context_value(crate::retry::ATTEMPTS_KEY)?.parse().ok()
    }

    /// The correlation id, set explicitly or taken from the scope.
    pub fn correlation_id(&self) -> Option<&str> {
        self.inner.correlation_id.as_deref()
    }

    /// The operation id of the scope the error was created in.
    pub fn operation_id(&self) -> Option<&str> {
        self.inner.operation_id.as_deref()
    }

    /// The breadcrumbs of the scope the error was created in, oldest first.
    pub fn breadcrumbs(&self) -> &[String] {
        &self.inner.breadcrumbs
    }

    /// When the error was created.
    pub fn timestamp(&self) -> SystemTime {
        self.inner.timestamp
    }

    /// Whether [`retry`](crate::retry()) would retry this error.
    pub fn is_retryable(&self) -> bool {
        self.inner.code.is_retryable()
    }

    /// The messages of the cause chain, outermost first (this error excluded).
    pub fn cause_messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        let mut next = StdError::source(self);
        while let Some(cause) = next {
            messages.push(cause.to_string());
            next = cause.source();
        }
        messages
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.inner.code, self.inner.message)?;
        if !self.inner.context.is_empty() {
            f.write_str(" (")?;
            for (index, (key, value)) in self.inner.context.iter().enumerate() {
                if index > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{key}={value}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let mut debug = f.debug_struct("Error");
        debug
            .field("code", &inner.code)
            .field("category", &inner.code.category())
            .field("severity", &inner.severity)
            .field("message", &inner.message);
        if !inner.context.is_empty() {
            debug.field("context", &inner.context);
        }
        if let Some(id) = &inner.correlation_id {
            debug.field("correlation_id", id);
        }
        if let Some(id) = &inner.operation_id {
            debug.field("operation_id", id);
        }
        if !inner.breadcrumbs.is_empty() {
            debug.field("breadcrumbs", &inner.breadcrumbs);
        }
        if let Some(cause) = &inner.cause {
            debug.field("cause", &cause.to_string());
        }
        debug.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .cause
            .as_deref()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<(), Error>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn display_without_context_has_no_parentheses() {
        let error = Error::new(ErrorCode::TIMEOUT, "slow");
        assert_eq!(error.to_string(), "[4301 timeout] slow");
    }

    #[test]
    fn context_keys_are_unique() {
        let error = Error::validation("bad")
            .with_context("field", "a")
            .with_context("field", "b");
        assert_eq!(error.context().len(), 1);
        assert_eq!(error.context_value("field"), Some("b"));
    }

    #[test]
    fn cause_chain_is_walkable() {
        let root = std::io::Error::other("disk on fire");
        let middle = Error::system("write failed").with_cause(root);
        let top = Error::new(ErrorCode::DEPENDENCY_FAILED, "store down").with_cause(middle);
        assert_eq!(
            top.cause_messages(),
            vec!["[2401 internal_error] write failed", "disk on fire"]
        );
    }

    #[test]
    fn constructors_pick_their_category() {
        assert_eq!(Error::validation("x").category(), Category::Validation);
        assert_eq!(
            Error::infrastructure("x").category(),
            Category::Infrastructure
        );
        assert_eq!(Error::business("x").category(), Category::Business);
        assert_eq!(Error::system("x").category(), Category::System);
        assert_eq!(
            Error::system("x")
                .with_severity(Severity::Critical)
                .severity(),
            Severity::Critical
        );
    }
}
