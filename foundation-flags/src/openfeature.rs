//! An OpenFeature provider (cargo feature `openfeature`), so that code
//! written against the `open-feature` crate evaluates these flags through
//! the standard API.
//!
//! Flags are boolean: `resolve_bool_value` evaluates with the context's
//! targeting key (percentage flags bucket it exactly as
//! [`Flags::evaluate`] does); the other types answer `TYPE_MISMATCH`. An
//! undeclared flag answers `FLAG_NOT_FOUND`, so the client returns the
//! caller's default with reason `ERROR`. The flag's current rollout
//! percentage and, when computed, the key's bucket travel as flag metadata
//! (`rollout_percentage`, `bucket`). This module is not for anything the
//! OpenFeature API does not ask for; use [`Flags`] directly for that.

use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContext as OpenFeatureContext, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
};

use crate::evaluation::{self, EvaluationContext, Reason};
use crate::registry::Flags;

/// The provider's name in OpenFeature metadata.
pub const PROVIDER_NAME: &str = "foundation-flags";

/// An OpenFeature provider over [`Flags`].
///
/// ```
/// use foundation_flags::{Flag, FlagValue, Flags, FlagsProvider};
/// use open_feature::{EvaluationContext, OpenFeature};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Flags::builder();
/// builder.declare(Flag::new("beta", "Beta features", FlagValue::On));
/// let flags = builder.open().await?;
///
/// // A private API instance; applications usually use `OpenFeature::singleton_mut()`.
/// let mut api = OpenFeature::default();
/// api.set_provider(FlagsProvider::new(flags)).await;
/// let client = api.create_client();
/// let context = EvaluationContext::default().with_targeting_key("user-42");
/// assert_eq!(client.get_bool_value("beta", Some(&context), None).await, Ok(true));
/// assert!(client.get_bool_value("missing", Some(&context), None).await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FlagsProvider {
    flags: Flags,
    metadata: ProviderMetadata,
}

impl FlagsProvider {
    /// A provider evaluating `flags`.
    pub fn new(flags: Flags) -> FlagsProvider {
        FlagsProvider {
            flags,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        }
    }

    /// The flags this provider evaluates.
    pub fn flags(&self) -> &Flags {
        &self.flags
    }
}

fn reason(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::Default => EvaluationReason::Default,
        Reason::Split => EvaluationReason::Split,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Error => EvaluationReason::Error,
    }
}

fn error_code(code: evaluation::EvaluationErrorCode) -> EvaluationErrorCode {
    match code {
        evaluation::EvaluationErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
    }
}

fn not_found(flag_key: &str) -> EvaluationError {
    EvaluationError::builder()
        .code(EvaluationErrorCode::FlagNotFound)
        .message(format!("no flag named `{flag_key}` is declared"))
        .build()
}

impl FlagsProvider {
    /// The answer to a non-boolean resolution: not found, or a type mismatch.
    fn not_boolean<T>(
        &self,
        flag_key: &str,
        requested: &str,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        if self.flags.declaration(flag_key).is_none() {
            return Err(not_found(flag_key));
        }
        Err(EvaluationError::builder()
            .code(EvaluationErrorCode::TypeMismatch)
            .message(format!(
                "flag `{flag_key}` is boolean; it cannot be resolved as {requested}"
            ))
            .build())
    }
}

#[open_feature::async_trait]
impl FeatureProvider for FlagsProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &OpenFeatureContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let context = match evaluation_context.targeting_key.as_deref() {
            Some(key) => EvaluationContext::for_key(key),
            None => EvaluationContext::default(),
        };
        let details = self.flags.evaluate(flag_key, context, false);
        if let Some(code) = details.error_code {
            return Err(match error_code(code) {
                EvaluationErrorCode::FlagNotFound => not_found(flag_key),
                other => EvaluationError::builder().code(other).build(),
            });
        }
        let mut metadata = FlagMetadata::default();
        if let Some(value) = details.flag_value {
            metadata.add_value("rollout_percentage", i64::from(value.rollout_percentage()));
        }
        if let Some(bucket) = details.bucket {
            metadata.add_value("bucket", i64::from(bucket));
        }
        let mut resolution = ResolutionDetails::new(details.value);
        resolution.reason = Some(reason(details.reason));
        resolution.variant = details.variant().map(str::to_owned);
        resolution.flag_metadata = Some(metadata);
        Ok(resolution)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        _evaluation_context: &OpenFeatureContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.not_boolean(flag_key, "an integer")
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        _evaluation_context: &OpenFeatureContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.not_boolean(flag_key, "a float")
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        _evaluation_context: &OpenFeatureContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.not_boolean(flag_key, "a string")
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        _evaluation_context: &OpenFeatureContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.not_boolean(flag_key, "a struct")
    }
}
