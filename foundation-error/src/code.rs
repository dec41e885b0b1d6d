//! Stable error codes, their categories, severities and retry strategies.
//!
//! Every [`Error`](crate::Error) carries one [`ErrorCode`]. A code is a stable
//! number in the hierarchy of the original system (1xxx configuration, 2xxx
//! system, 3xxx data, 4xxx external, 5xxx business, 9999 unknown) plus a
//! snake_case name, and it knows its [`Category`], default [`Severity`] and
//! [`RetryStrategy`]. Applications define their own codes in
//! [`APPLICATION_CODES`] with [`ErrorCode::application`], without forking
//! this crate.
//!
//! This module is not for formatting or carrying errors; see `error.rs`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The four error categories of the plan; retry and fallback decisions use them.
///
/// - `Validation`: the input or configuration is wrong; retrying cannot help.
/// - `Infrastructure`: a timeout, a lost connection, an unavailable service;
///   often transient, the only category that is retried.
/// - `Business`: a domain rule said no (insufficient funds, limit exceeded).
/// - `System`: a bug or an internal failure (panic, corruption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Bad input or configuration.
    Validation,
    /// A transient failure of something the operation depends on.
    Infrastructure,
    /// A domain rule refused the operation.
    Business,
    /// An internal failure or a bug.
    System,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 4] = [
        Category::Validation,
        Category::Infrastructure,
        Category::Business,
        Category::System,
    ];

    /// The snake_case name used in metrics labels and the portable form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Validation => "validation",
            Category::Infrastructure => "infrastructure",
            Category::Business => "business",
            Category::System => "system",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad an error is, from `Low` (expected, informational) to `Critical`
/// (data at risk, a person should look now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Expected in normal operation.
    Low,
    /// A failed operation that the caller handles.
    Medium,
    /// A failure that needs attention.
    High,
    /// Data or availability is at risk.
    Critical,
}

impl Severity {
    /// The snake_case name used in metrics labels and the portable form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How [`retry`](crate::retry()) treats an error of a given code.
///
/// Only errors of [`Category::Infrastructure`] are ever retried; the strategy
/// can further forbid retries (for example `circuit_open`, so that retries do
/// not hammer an open breaker) or ask for a fixed delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryStrategy {
    /// Never retry.
    Never,
    /// Retry with the policy's exponential backoff.
    Backoff,
    /// Retry after this fixed delay (external services).
    FixedDelay(Duration),
}

/// The range reserved for application-defined codes.
///
/// Codes in this range are never used by Foundation's crates.
pub const APPLICATION_CODES: RangeInclusive<u32> = 6000..=8999;

/// A stable error code: a number, a name, and the code's defaults.
///
/// Two codes are equal when their numbers are equal. Codes are `Copy` and
/// cost nothing to pass around.
///
/// ```
/// use foundation_error::{Category, ErrorCode, RetryStrategy, Severity};
///
/// // An application's own code, checked at compile time to lie in the
/// // reserved range.
/// const PAYMENT_DECLINED: ErrorCode = ErrorCode::application(
///     6001,
///     "payment_declined",
///     Category::Business,
///     Severity::Medium,
///     RetryStrategy::Never,
/// );
/// assert_eq!(PAYMENT_DECLINED.number(), 6001);
/// assert_eq!(ErrorCode::TIMEOUT.name(), "timeout");
/// assert_eq!(ErrorCode::from_number(4301), Some(ErrorCode::TIMEOUT));
/// ```
#[derive(Clone, Copy)]
pub struct ErrorCode {
    number: u32,
    name: &'static str,
    category: Category,
    severity: Severity,
    retry: RetryStrategy,
}

impl ErrorCode {
    const fn builtin(
        number: u32,
        name: &'static str,
        category: Category,
        severity: Severity,
        retry: RetryStrategy,
    ) -> ErrorCode {
        ErrorCode {
            number,
            name,
            category,
            severity,
            retry,
        }
    }

    /// Defines an application code.
    ///
    /// # Panics
    ///
    /// When `number` lies outside [`APPLICATION_CODES`] or `name` is empty.
    /// Used in a `const` item (as intended) this is a compile-time error, not
    /// a run-time panic.
    pub const fn application(
        number: u32,
        name: &'static str,
        category: Category,
        severity: Severity,
        retry: RetryStrategy,
    ) -> ErrorCode {
        assert!(
            number >= *APPLICATION_CODES.start() && number <= *APPLICATION_CODES.end(),
            "application error codes must lie in 6000..=8999"
        );
        assert!(!name.is_empty(), "an error code needs a name");
        ErrorCode::builtin(number, name, category, severity, retry)
    }

    /// The stable number, for example 4301.
    pub const fn number(self) -> u32 {
        self.number
    }

    /// The stable snake_case name, for example `timeout`.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The category errors of this code belong to.
    pub const fn category(self) -> Category {
        self.category
    }

    /// The severity an error of this code gets unless it is overridden.
    pub const fn default_severity(self) -> Severity {
        self.severity
    }

    /// How retries treat this code.
    pub const fn retry_strategy(self) -> RetryStrategy {
        self.retry
    }

    /// Whether [`retry`](crate::retry()) may retry an error of this code:
    /// infrastructure errors whose strategy is not `Never`.
    pub const fn is_retryable(self) -> bool {
        matches!(self.category, Category::Infrastructure)
            && !matches!(self.retry, RetryStrategy::Never)
    }

    /// Whether this code lies in the application range.
    pub const fn is_application(self) -> bool {
        self.number >= *APPLICATION_CODES.start() && self.number <= *APPLICATION_CODES.end()
    }

    /// The built-in code with this number, if there is one.
    pub fn from_number(number: u32) -> Option<ErrorCode> {
        BUILTIN_CODES
            .binary_search_by_key(&number, |code| code.number)
            .ok()
            .map(|index| BUILTIN_CODES[index])
    }

    /// Every built-in code, sorted by number.
    pub fn builtin_codes() -> &'static [ErrorCode] {
        &BUILTIN_CODES
    }
}

impl PartialEq for ErrorCode {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number
    }
}

impl Eq for ErrorCode {}

impl Hash for ErrorCode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.number.hash(state);
    }
}

impl PartialOrd for ErrorCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ErrorCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.number.cmp(&other.number)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({} {})", self.number, self.name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number, self.name)
    }
}

macro_rules! builtin_codes {
    ($( $(#[$doc:meta])* $konst:ident = $number:literal, $name:literal, $category:ident, $severity:ident, $retry:expr; )*) => {
        impl ErrorCode {
            $(
                $(#[$doc])*
                pub const $konst: ErrorCode = ErrorCode::builtin(
                    $number, $name, Category::$category, Severity::$severity, $retry,
                );
            )*
        }

        /// Sorted by number (checked by a unit test), for binary search.
        static BUILTIN_CODES: [ErrorCode; builtin_codes!(@count $($konst)*)] = [$(ErrorCode::$konst),*];
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + builtin_codes!(@count $($tail)*) };
}

const EXTERNAL_SERVICE_DELAY: Duration = Duration::from_secs(1);

builtin_codes! {
    // 1xxx: configuration.
    /// 1101: a configuration document has the wrong shape.
    INVALID_CONFIG_STRUCTURE = 1101, "invalid_config_structure", Validation, Medium, RetryStrategy::Never;
    /// 1102: a required configuration field is missing.
    MISSING_REQUIRED_FIELD = 1102, "missing_required_field", Validation, Medium, RetryStrategy::Never;
    /// 1201: a configuration value is invalid.
    INVALID_CONFIG_VALUE = 1201, "invalid_config_value", Validation, Medium, RetryStrategy::Never;
    /// 1202: configuration values contradict a constraint.
    CONSTRAINT_VIOLATION = 1202, "constraint_violation", Validation, Medium, RetryStrategy::Never;
    /// 1203: a value lies outside its allowed range.
    RANGE_ERROR = 1203, "range_error", Validation, Medium, RetryStrategy::Never;
    /// 1301: a configuration source does not exist.
    CONFIG_NOT_FOUND = 1301, "config_not_found", Validation, Medium, RetryStrategy::Never;
    /// 1401: this configuration may not be changed at run time.
    CONFIG_UPDATE_FORBIDDEN = 1401, "config_update_forbidden", Validation, High, RetryStrategy::Never;

    // 2xxx: system.
    /// 2101: a component failed to start.
    INITIALIZATION_FAILED = 2101, "initialization_failed", System, High, RetryStrategy::Never;
    /// 2102: a service is not available right now (closed, restarting).
    SERVICE_UNAVAILABLE = 2102, "service_unavailable", Infrastructure, High, RetryStrategy::Backoff;
    /// 2103: a registry was needed but none is configured.
    REGISTRY_NOT_CONFIGURED = 2103, "registry_not_configured", System, High, RetryStrategy::Never;
    /// 2104: a store is held by another process.
    STORE_IN_USE = 2104, "store_in_use", Infrastructure, High, RetryStrategy::Never;
    /// 2105: the component was shut down and accepts no more work.
    SHUT_DOWN = 2105, "shut_down", System, Medium, RetryStrategy::Never;
    /// 2106: the storage device failed an operation (EIO on a write, a
    /// read or an fsync). Infrastructure, but not retried: a store that
    /// saw it refuses writes until it is reopened, and the disk should be
    /// checked.
    STORAGE_FAILURE = 2106, "storage_failure", Infrastructure, Critical, RetryStrategy::Never;
    /// 2201: memory, disk or another resource is exhausted.
    RESOURCE_EXHAUSTED = 2201, "resource_exhausted", Infrastructure, Critical, RetryStrategy::Never;
    /// 2202: a mailbox is full.
    MAILBOX_FULL = 2202, "mailbox_full", Infrastructure, Medium, RetryStrategy::Backoff;
    /// 2203: the operating system refused access.
    PERMISSION_DENIED = 2203, "permission_denied", System, High, RetryStrategy::Never;
    /// 2204: a bounded work queue is full.
    QUEUE_FULL = 2204, "queue_full", Infrastructure, Medium, RetryStrategy::Backoff;
    /// 2301: a dependency of this component failed.
    DEPENDENCY_FAILED = 2301, "dependency_failed", System, High, RetryStrategy::Never;
    /// 2401: an internal error (a bug, or an unclassified foreign error).
    INTERNAL_ERROR = 2401, "internal_error", System, High, RetryStrategy::Never;
    /// 2402: the target process (actor) is not alive; under a supervisor it
    /// may be back shortly, so this is retried.
    PROCESS_NOT_ALIVE = 2402, "process_not_alive", Infrastructure, Medium, RetryStrategy::Backoff;
    /// 2403: an isolated operation crashed.
    ISOLATED_OPERATION_FAILED = 2403, "isolated_operation_failed", System, High, RetryStrategy::Never;
    /// 2404: a process crashed while handling the request.
    PROCESS_CRASHED = 2404, "process_crashed", System, High, RetryStrategy::Never;
    /// 2501: the operation was cancelled.
    CANCELLED = 2501, "cancelled", System, Low, RetryStrategy::Never;

    // 3xxx: data.
    /// 3101: a value could not be serialised.
    SERIALIZATION_FAILED = 3101, "serialization_failed", System, Medium, RetryStrategy::Never;
    /// 3102: a value could not be deserialised.
    DESERIALIZATION_FAILED = 3102, "deserialization_failed", Validation, Medium, RetryStrategy::Never;
    /// 3201: a value has the wrong type.
    TYPE_MISMATCH = 3201, "type_mismatch", Validation, Medium, RetryStrategy::Never;
    /// 3202: a value is malformed.
    FORMAT_ERROR = 3202, "format_error", Validation, Medium, RetryStrategy::Never;
    /// 3203: a value failed validation.
    VALIDATION_FAILED = 3203, "validation_failed", Validation, Medium, RetryStrategy::Never;
    /// 3204: the caller passed invalid input.
    INVALID_INPUT = 3204, "invalid_input", Validation, Low, RetryStrategy::Never;
    /// 3301: stored data is corrupt.
    DATA_CORRUPTION = 3301, "data_corruption", System, Critical, RetryStrategy::Never;
    /// 3302: an optimistic concurrency check failed (compare-and-set).
    VERSION_CONFLICT = 3302, "version_conflict", Validation, Medium, RetryStrategy::Never;
    /// 3303: stored data has a schema version this code does not know.
    UNSUPPORTED_VERSION = 3303, "unsupported_version", System, High, RetryStrategy::Never;
    /// 3401: the requested data does not exist.
    DATA_NOT_FOUND = 3401, "data_not_found", Validation, Low, RetryStrategy::Never;
    /// 3402: the feature flag is not declared.
    FLAG_NOT_FOUND = 3402, "flag_not_found", Validation, Low, RetryStrategy::Never;
    /// 3403: the name or key is already taken.
    ALREADY_EXISTS = 3403, "already_exists", Validation, Low, RetryStrategy::Never;

    // 4xxx: external.
    /// 4101: a network connection failed or was lost.
    NETWORK_ERROR = 4101, "network_error", Infrastructure, Medium, RetryStrategy::Backoff;
    /// 4201: an external service answered with an error.
    EXTERNAL_SERVICE_ERROR = 4201, "external_service_error", Infrastructure, Medium, RetryStrategy::FixedDelay(EXTERNAL_SERVICE_DELAY);
    /// 4301: an operation took longer than its timeout.
    TIMEOUT = 4301, "timeout", Infrastructure, Medium, RetryStrategy::Backoff;
    /// 4302: an overall deadline passed; not retried, the time is up.
    DEADLINE_EXCEEDED = 4302, "deadline_exceeded", Infrastructure, Medium, RetryStrategy::Never;
    /// 4401: an external service rejected our credentials.
    AUTHENTICATION_FAILED = 4401, "authentication_failed", Infrastructure, High, RetryStrategy::Never;
    /// 4501: a circuit breaker is open; not retried, so that retries do not
    /// hammer the failing dependency.
    CIRCUIT_OPEN = 4501, "circuit_open", Infrastructure, Medium, RetryStrategy::Never;
    /// 4502: a rate limit denied the operation.
    RATE_LIMITED = 4502, "rate_limited", Infrastructure, Low, RetryStrategy::Backoff;

    // 5xxx: business.
    /// 5101: a business rule refused the operation.
    BUSINESS_RULE_VIOLATION = 5101, "business_rule_violation", Business, Medium, RetryStrategy::Never;
    /// 5102: not enough funds.
    INSUFFICIENT_FUNDS = 5102, "insufficient_funds", Business, Medium, RetryStrategy::Never;
    /// 5103: a business limit was exceeded.
    LIMIT_EXCEEDED = 5103, "limit_exceeded", Business, Medium, RetryStrategy::Never;
    /// 5201: the operation is not allowed in the current state.
    INVALID_STATE_TRANSITION = 5201, "invalid_state_transition", Business, Medium, RetryStrategy::Never;
    /// 5202: the caller may not perform this operation.
    OPERATION_NOT_PERMITTED = 5202, "operation_not_permitted", Business, Medium, RetryStrategy::Never;

    // 9999: unknown.
    /// 9999: an error nothing else describes.
    UNKNOWN = 9999, "unknown", System, Medium, RetryStrategy::Never;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_codes_are_sorted_unique_and_named() {
        let codes = ErrorCode::builtin_codes();
        for pair in codes.windows(2) {
            assert!(
                pair[0].number() < pair[1].number(),
                "{:?} {:?}",
                pair[0],
                pair[1]
            );
        }
        let mut names: Vec<_> = codes.iter().map(|code| code.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), codes.len(), "names must be unique");
        assert!(codes.iter().all(|code| !code.is_application()));
    }

    #[test]
    fn hierarchy_ranges_hold() {
        for code in ErrorCode::builtin_codes() {
            let range = code.number() / 1000;
            assert!(matches!(range, 1..=5 | 9), "{code:?} outside the hierarchy");
            if range == 5 {
                assert_eq!(code.category(), Category::Business, "{code:?}");
            }
        }
    }

    #[test]
    fn lookup_by_number() {
        assert_eq!(ErrorCode::from_number(4301), Some(ErrorCode::TIMEOUT));
        assert_eq!(ErrorCode::from_number(9999), Some(ErrorCode::UNKNOWN));
        assert_eq!(ErrorCode::from_number(4300), None);
    }

    #[test]
    fn retryability_follows_category_and_strategy() {
        assert!(ErrorCode::TIMEOUT.is_retryable());
        assert!(ErrorCode::NETWORK_ERROR.is_retryable());
        assert!(ErrorCode::EXTERNAL_SERVICE_ERROR.is_retryable());
        assert!(!ErrorCode::CIRCUIT_OPEN.is_retryable());
        assert!(!ErrorCode::INSUFFICIENT_FUNDS.is_retryable());
        assert!(!ErrorCode::INVALID_INPUT.is_retryable());
        assert!(!ErrorCode::DATA_CORRUPTION.is_retryable());
    }

    #[test]
    fn application_codes_live_in_their_range() {
        const MINE: ErrorCode = ErrorCode::application(
            7000,
            "mine",
            Category::Business,
            Severity::Low,
            RetryStrategy::Never,
        );
        assert!(MINE.is_application());
        let outside = std::panic::catch_unwind(|| {
            ErrorCode::application(
                4301,
                "steals_timeout",
                Category::System,
                Severity::Low,
                RetryStrategy::Never,
            )
        });
        assert!(outside.is_err());
    }
}
