//! Start-up overrides from environment variables:
//! `FOUNDATION_FLAG_<NAME>=on|off|<0-100>`.
//!
//! The variables are read from an injected list of `(key, value)` pairs, so
//! tests never touch the process environment; [`process_environment`]
//! collects the real one. Variables without the prefix are ignored; a
//! variable with the prefix that names no declared flag, or whose value
//! does not parse, is an error at start-up rather than a silent no-op.
//! This module is not for applying overrides; `builder.rs` does that.

use std::collections::HashMap;

use foundation_error::{Error, ErrorCode, Result};

use crate::declaration::{ENVIRONMENT_PREFIX, Flag};
use crate::value::FlagValue;

/// One override: the flag's position, its value and the variable it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvironmentOverride {
    pub(crate) position: usize,
    pub(crate) value: FlagValue,
    pub(crate) variable: String,
    /// The variable's value as written.
    pub(crate) raw: String,
}

/// The `FOUNDATION_FLAG_*` variables of the process environment.
///
/// Errors with [`ErrorCode::INVALID_CONFIG_VALUE`] when such a variable's
/// name or value is not UTF-8.
pub fn process_environment() -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key_text) = key.to_str() else {
            if key
                .as_encoded_bytes()
                .starts_with(ENVIRONMENT_PREFIX.as_bytes())
            {
                return Err(Error::new(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    format!(
                        "the environment variable {} has a name that is not UTF-8",
                        key.display()
                    ),
                ));
            }
            continue;
        };
        if !key_text.starts_with(ENVIRONMENT_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|value| {
            Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!(
                    "{key_text}={} is not UTF-8; expected on, off or a percentage 0..=100",
                    value.display()
                ),
            )
            .with_context("variable", key_text)
        })?;
        pairs.push((key_text.to_owned(), value));
    }
    Ok(pairs)
}

/// The overrides among `pairs` for the declared `flags`, in `pairs` order;
/// a later variable for the same flag wins.
pub(crate) fn parse_overrides(
    flags: &[Flag],
    pairs: &[(String, String)],
) -> Result<Vec<EnvironmentOverride>> {
    let variables: HashMap<String, usize> = flags
        .iter()
        .enumerate()
        .map(|(position, flag)| (flag.environment_variable(), position))
        .collect();
    let mut overrides: Vec<EnvironmentOverride> = Vec::new();
    for (key, value) in pairs {
        if !key.starts_with(ENVIRONMENT_PREFIX) {
            continue;
        }
        let Some(&position) = variables.get(key) else {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("the environment variable {key} names no declared flag"),
            )
            .with_context("variable", key));
        };
        let parsed = value.parse::<FlagValue>().map_err(|error| {
            Error::new(
                error.code(),
                format!(
                    "{key}={value}: expected on, off or a percentage 0..=100 for flag `{}`",
                    flags[position].name()
                ),
            )
            .with_context("variable", key)
            .with_context("flag", flags[position].name())
            .with_cause(error)
        })?;
        overrides.retain(|existing| existing.position != position);
        overrides.push(EnvironmentOverride {
            position,
            value: parsed,
            variable: key.clone(),
            raw: value.clone(),
        });
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Vec<Flag> {
        vec![
            Flag::new("use-v2.coordinator", "d", FlagValue::Off),
            Flag::new("beta", "d", FlagValue::Off),
        ]
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_ignores_other_variables() {
        let parsed = parse_overrides(
            &flags(),
            &pairs(&[
                ("PATH", "/bin"),
                ("FOUNDATION_FLAG_USE_V2_COORDINATOR", "25"),
                ("FOUNDATION_FLAG_BETA", "off"),
                ("FOUNDATION_FLAG_BETA", "On"),
            ]),
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].value, FlagValue::percentage(25).unwrap());
        assert_eq!((parsed[1].position, parsed[1].value), (1, FlagValue::On));
    }

    #[test]
    fn rejects_unknown_flags_and_bad_values() {
        let unknown =
            parse_overrides(&flags(), &pairs(&[("FOUNDATION_FLAG_GAMMA", "on")])).unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::INVALID_CONFIG_VALUE);
        assert!(unknown.message().contains("FOUNDATION_FLAG_GAMMA"));

        let range =
            parse_overrides(&flags(), &pairs(&[("FOUNDATION_FLAG_BETA", "150")])).unwrap_err();
        assert_eq!(range.code(), ErrorCode::RANGE_ERROR);
        assert!(range.message().contains("FOUNDATION_FLAG_BETA=150"));

        let garbage =
            parse_overrides(&flags(), &pairs(&[("FOUNDATION_FLAG_BETA", "maybe")])).unwrap_err();
        assert_eq!(garbage.code(), ErrorCode::FORMAT_ERROR);
    }
}
