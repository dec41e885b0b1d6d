//! Flag declarations: a name, a description, a default value and the group
//! id that buckets ids.
//!
//! The crate has no built-in flag names; applications declare theirs in code
//! or in TOML (`toml_file.rs`). This module validates names and maps them to
//! their environment variables; it is not for current values (see
//! `registry.rs`).

use foundation_error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

use crate::value::FlagValue;

/// The longest flag name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// The longest group id accepted, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 256;
/// The prefix of the environment variables that override flags at start-up.
pub const ENVIRONMENT_PREFIX: &str = "FOUNDATION_FLAG_";

/// A declared flag.
///
/// Names are 1 to 128 ASCII letters, digits, `_`, `-` and `.`. The group id
/// that buckets ids defaults to the name; two flags that name the same group
/// id enable the same ids at the same percentage.
///
/// ```
/// use foundation_flags::{Flag, FlagValue};
///
/// let flag = Flag::new("new_checkout", "Serve the new checkout page", FlagValue::Off)
///     .with_group_id("checkout");
/// assert_eq!(flag.group_id(), "checkout");
/// assert_eq!(flag.environment_variable(), "FOUNDATION_FLAG_NEW_CHECKOUT");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    name: String,
    description: String,
    default: FlagValue,
    group_id: Option<String>,
}

impl Flag {
    /// Declares a flag; the name is checked when the flags are opened.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        default: FlagValue,
    ) -> Flag {
        Flag {
            name: name.into(),
            description: description.into(),
            default,
            group_id: None,
        }
    }

    /// Buckets ids in `group_id` instead of the flag's name.
    #[must_use]
    pub fn with_group_id(mut self, group_id: impl Into<String>) -> Flag {
        self.group_id = Some(group_id.into());
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the flag is for.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The value before any stored value or override, and after a reset.
    pub fn default_value(&self) -> FlagValue {
        self.default
    }

    /// The group id that buckets ids: the name unless set.
    pub fn group_id(&self) -> &str {
        self.group_id.as_deref().unwrap_or(&self.name)
    }

    /// The environment variable that overrides this flag at start-up:
    /// `FOUNDATION_FLAG_` and the name in upper case with `-` and `.` as `_`.
    pub fn environment_variable(&self) -> String {
        environment_variable(&self.name)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if let Some(group_id) = &self.group_id
            && (group_id.is_empty() || group_id.len() > MAX_GROUP_ID_LEN)
        {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!(
                    "flag `{}`: a group id must be 1 to {MAX_GROUP_ID_LEN} bytes",
                    self.name
                ),
            )
            .with_context("flag", &self.name));
        }
        Ok(())
    }
}

/// Checks a flag name: 1 to 128 ASCII letters, digits, `_`, `-` and `.`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let valid_characters = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_characters {
        return Err(Error::new(
            ErrorCode::INVALID_CONFIG_VALUE,
            format!(
                "`{name}` is not a valid flag name: use 1 to {MAX_NAME_LEN} ASCII letters, digits, `_`, `-` or `.`"
            ),
        )
        .with_context("flag", name));
    }
    Ok(())
}

/// The environment variable of a flag name.
pub(crate) fn environment_variable(name: &str) -> String {
    let mut variable = String::with_capacity(ENVIRONMENT_PREFIX.len() + name.len());
    variable.push_str(ENVIRONMENT_PREFIX);
    variable.extend(name.chars().map(|character| match character {
        '-' | '.' => '_',
        other => other.to_ascii_uppercase(),
    }));
    variable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("use_v2_coordinator").is_ok());
        assert!(validate_name("Feature.flexibleRollout-10").is_ok());
        for bad in ["", "with space", "ünïcode", "a/b", &"x".repeat(129)] {
            assert_eq!(
                validate_name(bad).unwrap_err().code(),
                ErrorCode::INVALID_CONFIG_VALUE,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn environment_variables() {
        assert_eq!(
            environment_variable("Feature.flexible-rollout_10"),
            "FOUNDATION_FLAG_FEATURE_FLEXIBLE_ROLLOUT_10"
        );
    }
}
