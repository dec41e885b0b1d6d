//! Evaluation with details, in OpenFeature's terms: the value, the reason
//! and, on failure, an error code.
//!
//! [`resolve`] is the one place that decides what a flag value means for a
//! context; `Flags::evaluate`, snapshots and the OpenFeature provider all
//! use it. This module is not for the fast boolean checks; those are
//! `is_enabled`/`is_enabled_for` on handles and `Flags`.

use crate::bucket::BucketPrefix;
use crate::value::FlagValue;

/// What an evaluation is about: the targeting key (a user, tenant or
/// service id) that percentage flags bucket.
///
/// ```
/// use foundation_flags::EvaluationContext;
///
/// let context = EvaluationContext::for_key("user-42");
/// assert_eq!(context.targeting_key(), Some("user-42"));
/// assert_eq!(EvaluationContext::default().targeting_key(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvaluationContext<'a> {
    targeting_key: Option<&'a str>,
}

impl<'a> EvaluationContext<'a> {
    /// A context with a targeting key.
    pub const fn for_key(targeting_key: &'a str) -> EvaluationContext<'a> {
        EvaluationContext {
            targeting_key: Some(targeting_key),
        }
    }

    /// The targeting key, if any.
    pub const fn targeting_key(&self) -> Option<&'a str> {
        self.targeting_key
    }
}

/// Why an evaluation produced its value (OpenFeature's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The flag is `On`: the same for everyone.
    Static,
    /// A percentage flag evaluated without a targeting key: no bucketing
    /// could happen, so the value is the flag's keyless answer (enabled
    /// only at 100%).
    Default,
    /// A percentage flag bucketed the targeting key.
    Split,
    /// The flag is `Off`.
    Disabled,
    /// The evaluation failed; the value is the caller's default.
    Error,
}

impl Reason {
    /// The OpenFeature name, for example `SPLIT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::Default => "DEFAULT",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Error => "ERROR",
        }
    }
}

/// Why an evaluation failed (OpenFeature's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvaluationErrorCode {
    /// No flag of that name is declared.
    FlagNotFound,
}

impl EvaluationErrorCode {
    /// The OpenFeature name, for example `FLAG_NOT_FOUND`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EvaluationErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
        }
    }
}

/// The result of [`Flags::evaluate`](crate::Flags::evaluate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvaluationDetails {
    /// Whether the feature is on for this context.
    pub value: bool,
    /// Why.
    pub reason: Reason,
    /// What went wrong, when `reason` is [`Reason::Error`].
    pub error_code: Option<EvaluationErrorCode>,
    /// The flag's value, when the flag exists.
    pub flag_value: Option<FlagValue>,
    /// The bucket of the targeting key (1..=100), when one was computed.
    pub bucket: Option<u32>,
}

impl EvaluationDetails {
    /// The OpenFeature variant name of the value: `on` or `off`; `None` on error.
    pub fn variant(&self) -> Option<&'static str> {
        match (self.reason, self.value) {
            (Reason::Error, _) => None,
            (_, true) => Some("on"),
            (_, false) => Some("off"),
        }
    }

    pub(crate) fn not_found(default: bool) -> EvaluationDetails {
        EvaluationDetails {
            value: default,
            reason: Reason::Error,
            error_code: Some(EvaluationErrorCode::FlagNotFound),
            flag_value: None,
            bucket: None,
        }
    }
}

/// What `value` means for `context`.
pub(crate) fn resolve(
    value: FlagValue,
    prefix: &BucketPrefix,
    context: EvaluationContext<'_>,
) -> EvaluationDetails {
    let (enabled, reason, bucket) = match (value, context.targeting_key()) {
        (FlagValue::On, _) => (true, Reason::Static, None),
        (FlagValue::Off, _) => (false, Reason::Disabled, None),
        (FlagValue::Percentage(_), Some(key)) => {
            let bucket = prefix.bucket(key);
            (
                value.is_enabled_in_bucket(bucket),
                Reason::Split,
                Some(bucket),
            )
        }
        (FlagValue::Percentage(_), None) => (value.is_enabled(), Reason::Default, None),
    };
    EvaluationDetails {
        value: enabled,
        reason,
        error_code: None,
        flag_value: Some(value),
        bucket,
    }
}
