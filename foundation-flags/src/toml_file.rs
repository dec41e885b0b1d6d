//! Flag declarations from TOML.
//!
//! ```toml
//! [flags.use_v2_coordinator]
//! description = "Route new workflows to the V2 coordinator"
//! default = 25              # on, off, true, false, 0..=100 or "25%"
//! group_id = "coordinators" # optional; defaults to the flag name
//! ```
//!
//! Each table under `flags` declares one flag; its `default` is the value
//! the flag starts with (before stored values and environment overrides).
//! Any problem is an error naming the file, the flag and the problem, and
//! nothing of the file is declared. Declarations come out sorted by name.
//! This module is not for values changed at run time; those live in the
//! [`FlagStore`](crate::FlagStore).

use std::path::Path;

use foundation_error::{Error, ErrorCode, Result};

use crate::declaration::Flag;
use crate::value::FlagValue;

const FLAG_KEYS: [&str; 3] = ["description", "default", "group_id"];

/// Reads flag declarations from a TOML file.
///
/// Errors: [`ErrorCode::CONFIG_NOT_FOUND`] (and other I/O codes) when the
/// file cannot be read, and the errors of [`declarations_from_toml`].
pub fn declarations_from_toml_file(path: impl AsRef<Path>) -> Result<Vec<Flag>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|io| {
        let code = match io.kind() {
            std::io::ErrorKind::NotFound => ErrorCode::CONFIG_NOT_FOUND,
            kind => foundation_error::io_error_code(kind),
        };
        Error::new(
            code,
            format!("cannot read the flag file {}: {io}", path.display()),
        )
        .with_context("file", path.display())
        .with_cause(io)
    })?;
    declarations_from_toml(&path.display().to_string(), &text)
}

/// Parses flag declarations from TOML text; `source` names the text in
/// errors (usually the file path).
///
/// Errors, each naming `source` and, where there is one, the flag:
/// - [`ErrorCode::INVALID_CONFIG_STRUCTURE`] (1101): invalid TOML, unknown
///   keys, wrong shapes;
/// - [`ErrorCode::MISSING_REQUIRED_FIELD`] (1102): no `flags` table, no
///   `description` or `default`;
/// - [`ErrorCode::INVALID_CONFIG_VALUE`] (1201): a `default` that is not
///   on, off or a percentage (`"sometimes"`, `1.5`), a non-string
///   `description` or `group_id`, an invalid flag name;
/// - [`ErrorCode::RANGE_ERROR`] (1203): a percentage default outside
///   0..=100 (`101`, `-1`, `"130%"`).
///
/// No other code is returned: a bad default is never the generic
/// `format_error` (3202) that parsing a [`FlagValue`] from a string gives.
///
/// ```
/// use foundation_flags::{declarations_from_toml, FlagValue};
/// use foundation_error::ErrorCode;
///
/// let flags = declarations_from_toml("flags.toml", r#"
///     [flags.beta]
///     description = "Beta features"
///     default = "30%"
/// "#).unwrap();
/// assert_eq!(flags[0].default_value(), FlagValue::percentage(30).unwrap());
///
/// let error = declarations_from_toml("flags.toml", r#"
///     [flags.beta]
///     description = "Beta features"
///     default = 130
/// "#).unwrap_err();
/// assert_eq!(error.code(), ErrorCode::RANGE_ERROR);
/// assert_eq!(error.message(), "flags.toml: flag `beta`: default 130 is out of range 0..=100");
/// ```
pub fn declarations_from_toml(source: &str, text: &str) -> Result<Vec<Flag>> {
    let document: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        file_error(
            source,
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            format!("invalid TOML: {}", error.to_string().trim_end()),
        )
    })?;
    if let Some(key) = document.keys().find(|key| *key != "flags") {
        return Err(file_error(
            source,
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            format!("unknown top-level key `{key}` (expected only `flags`)"),
        ));
    }
    let flags = match document.get("flags") {
        None => {
            return Err(file_error(
                source,
                ErrorCode::MISSING_REQUIRED_FIELD,
                "no `flags` table".to_owned(),
            ));
        }
        Some(toml::Value::Table(flags)) => flags,
        Some(_) => {
            return Err(file_error(
                source,
                ErrorCode::INVALID_CONFIG_STRUCTURE,
                "`flags` must be a table of flag tables".to_owned(),
            ));
        }
    };
    flags
        .iter()
        .map(|(name, entry)| parse_flag(source, name, entry))
        .collect()
}

fn parse_flag(source: &str, name: &str, entry: &toml::Value) -> Result<Flag> {
    let problem = |code: ErrorCode, message: String| flag_error(source, name, code, message);
    let toml::Value::Table(table) = entry else {
        return Err(problem(
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            "must be a table with `description` and `default`".to_owned(),
        ));
    };
    if let Some(key) = table.keys().find(|key| !FLAG_KEYS.contains(&key.as_str())) {
        return Err(problem(
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            format!("unknown key `{key}` (expected description, default, group_id)"),
        ));
    }
    let description = match table.get("description") {
        Some(toml::Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(problem(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("description must be a string, not {}", other.type_str()),
            ));
        }
        None => {
            return Err(problem(
                ErrorCode::MISSING_REQUIRED_FIELD,
                "missing `description`".to_owned(),
            ));
        }
    };
    let default = match table.get("default") {
        Some(value) => parse_value(value).map_err(|(code, message)| problem(code, message))?,
        None => {
            return Err(problem(
                ErrorCode::MISSING_REQUIRED_FIELD,
                "missing `default` (on, off or a percentage 0..=100)".to_owned(),
            ));
        }
    };
    let mut flag = Flag::new(name, description, default);
    match table.get("group_id") {
        None => {}
        Some(toml::Value::String(group_id)) => flag = flag.with_group_id(group_id.clone()),
        Some(other) => {
            return Err(problem(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("group_id must be a string, not {}", other.type_str()),
            ));
        }
    }
    flag.validate()
        .map_err(|error| problem(error.code(), strip_flag_prefix(error.message(), name)))?;
    Ok(flag)
}

fn parse_value(value: &toml::Value) -> std::result::Result<FlagValue, (ErrorCode, String)> {
    match value {
        toml::Value::Boolean(true) => Ok(FlagValue::On),
        toml::Value::Boolean(false) => Ok(FlagValue::Off),
        toml::Value::Integer(number) => u32::try_from(*number)
            .ok()
            .and_then(|number| FlagValue::percentage(number).ok())
            .ok_or_else(|| {
                (
                    ErrorCode::RANGE_ERROR,
                    format!("default {number} is out of range 0..=100"),
                )
            }),
        // A string that is no flag value is a bad configuration value here
        // (1201, as for every other bad key), not the parser's generic
        // `format_error`: the file's reader acts on the config category.
        toml::Value::String(text) => text.parse::<FlagValue>().map_err(|error| {
            let code = if error.code() == ErrorCode::RANGE_ERROR {
                ErrorCode::RANGE_ERROR
            } else {
                ErrorCode::INVALID_CONFIG_VALUE
            };
            (
                code,
                format!("default `{text}`: expected on, off or a percentage 0..=100"),
            )
        }),
        other => Err((
            ErrorCode::INVALID_CONFIG_VALUE,
            format!(
                "default must be on, off or a percentage 0..=100, not {}",
                other.type_str()
            ),
        )),
    }
}

/// Flag validation messages start with "flag `name`: "; ours add it again.
fn strip_flag_prefix(message: &str, name: &str) -> String {
    message
        .strip_prefix(&format!("flag `{name}`: "))
        .unwrap_or(message)
        .to_owned()
}

fn file_error(source: &str, code: ErrorCode, problem: String) -> Error {
    Error::new(code, format!("{source}: {problem}")).with_context("file", source)
}

fn flag_error(source: &str, name: &str, code: ErrorCode, problem: String) -> Error {
    Error::new(code, format!("{source}: flag `{name}`: {problem}"))
        .with_context("file", source)
        .with_context("flag", name)
}
