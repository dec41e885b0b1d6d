//! Reading a plan from TOML, with errors that name the phase and the key.
//!
//! The text is parsed as a plain TOML table and walked by hand (not through
//! serde derive), so every error can say where it is: `phase 3 ("Staging"):
//! key \`minDuration\`: ...`. This module is not for the plan's types.

use std::time::Duration;

use foundation_error::{Error, ErrorCode, Result};
use foundation_flags::FlagValue;
use toml::{Table, Value};

use super::{AnalysisSettings, Phase, RolloutPlan};
use crate::analysis::{Check, Thresholds};

/// Where a key is, for error messages.
#[derive(Clone, Copy)]
enum Place<'a> {
    Top,
    Section(&'a str),
    Phase(usize, &'a str),
    PhaseSection(usize, &'a str, &'a str),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Top => f.write_str("plan"),
            Place::Section(section) => write!(f, "[{section}]"),
            Place::Phase(number, name) => write!(f, "phase {number} ({name:?})"),
            Place::PhaseSection(number, name, section) => {
                write!(f, "phase {number} ({name:?}), [{section}]")
            }
        }
    }
}

fn error(code: ErrorCode, place: Place<'_>, key: &str, problem: impl std::fmt::Display) -> Error {
    Error::new(
        code,
        format!("rollout plan: {place}: key `{key}`: {problem}"),
    )
    .with_context("key", key)
    .with_context("place", place)
}

fn wrong_type(place: Place<'_>, key: &str, expected: &str, found: &Value) -> Error {
    error(
        ErrorCode::INVALID_CONFIG_STRUCTURE,
        place,
        key,
        format!("expected {expected}, found {}", found.type_str()),
    )
}

fn check_keys(table: &Table, allowed: &[&str], place: Place<'_>) -> Result<()> {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(error(
                ErrorCode::INVALID_CONFIG_STRUCTURE,
                place,
                key,
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn duration(table: &Table, key: &str, place: Place<'_>) -> Result<Option<Duration>> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => humantime::parse_duration(text).map(Some).map_err(|cause| {
            error(
                ErrorCode::INVALID_CONFIG_VALUE,
                place,
                key,
                format!("expected a duration like \"90s\", \"5m\" or \"2days\", found {text:?} ({cause})"),
            )
        }),
        Some(other) => Err(wrong_type(place, key, "a duration string like \"5m\"", other)),
    }
}

fn count(table: &Table, key: &str, place: Place<'_>, min: u32) -> Result<Option<u32>> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::Integer(number)) => u32::try_from(*number)
            .ok()
            .filter(|number| *number >= min)
            .map(Some)
            .ok_or_else(|| {
                error(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    place,
                    key,
                    format!("expected a whole number of at least {min}, found {number}"),
                )
            }),
        Some(other) => Err(wrong_type(place, key, "a whole number", other)),
    }
}

fn boolean(table: &Table, key: &str, place: Place<'_>) -> Result<Option<bool>> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::Boolean(value)) => Ok(Some(*value)),
        Some(other) => Err(wrong_type(place, key, "true or false", other)),
    }
}

fn number(table: &Table, key: &str, place: Place<'_>, range: (f64, f64)) -> Result<Option<f64>> {
    let value = match table.get(key) {
        None => return Ok(None),
        Some(Value::Float(value)) => *value,
        Some(Value::Integer(value)) => *value as f64,
        Some(other) => return Err(wrong_type(place, key, "a number", other)),
    };
    if value.is_finite() && value >= range.0 && value <= range.1 {
        Ok(Some(value))
    } else {
        Err(error(
            ErrorCode::INVALID_CONFIG_VALUE,
            place,
            key,
            format!(
                "expected a number from {} to {}, found {value}",
                range.0, range.1
            ),
        ))
    }
}

fn string<'t>(table: &'t Table, key: &str, place: Place<'_>) -> Result<Option<&'t str>> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(place, key, "a string", other)),
    }
}

fn section<'t>(table: &'t Table, key: &str, place: Place<'_>) -> Result<Option<&'t Table>> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::Table(section)) => Ok(Some(section)),
        Some(other) => Err(wrong_type(place, key, "a table", other)),
    }
}

const ANALYSIS_KEYS: &[&str] = &[
    "interval",
    "window",
    "count",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "initialDelay",
    "dryRun",
    "autoAdvance",
    "cooldown",
    "advanceQuietPeriod",
];

fn analysis(table: &Table) -> Result<AnalysisSettings> {
    let place = Place::Section("analysis");
    check_keys(table, ANALYSIS_KEYS, place)?;
    let mut settings = AnalysisSettings::default();
    let positive = |key: &str, value: Option<Duration>| -> Result<Option<Duration>> {
        match value {
            Some(duration) if duration.is_zero() => Err(error(
                ErrorCode::INVALID_CONFIG_VALUE,
                place,
                key,
                "must be longer than zero",
            )),
            other => Ok(other),
        }
    };
    if let Some(interval) = positive("interval", duration(table, "interval", place)?)? {
        settings.interval = interval;
    }
    if let Some(window) = positive("window", duration(table, "window", place)?)? {
        settings.window = window;
    }
    if let Some(count) = count(table, "count", place, 1)? {
        settings.count = count;
    }
    if let Some(limit) = count(table, "failureLimit", place, 1)? {
        settings.failure_limit = limit;
    }
    if let Some(limit) = count(table, "inconclusiveLimit", place, 1)? {
        settings.inconclusive_limit = limit;
    }
    if let Some(limit) = count(table, "consecutiveErrorLimit", place, 1)? {
        settings.consecutive_error_limit = limit;
    }
    if let Some(delay) = duration(table, "initialDelay", place)? {
        settings.initial_delay = delay;
    }
    if let Some(dry_run) = boolean(table, "dryRun", place)? {
        settings.dry_run = dry_run;
    }
    if let Some(auto_advance) = boolean(table, "autoAdvance", place)? {
        settings.auto_advance = auto_advance;
    }
    if let Some(cooldown) = duration(table, "cooldown", place)? {
        settings.cooldown = cooldown;
    }
    if let Some(quiet) = duration(table, "advanceQuietPeriod", place)? {
        settings.advance_quiet_period = quiet;
    }
    Ok(settings)
}

const THRESHOLD_KEYS: &[&str] = &[
    "maxErrorRate",
    "maxRestartsPerMinute",
    "minDeliverySuccess",
    "minRecoverySuccess",
    "maxP99Ratio",
    "baselineP99",
    "maxCohortErrorMargin",
    "minRequests",
    "minCohortRequests",
    "minDeliveries",
    "minRestores",
    "required",
];

fn thresholds(table: &Table, base: &Thresholds, place: Place<'_>) -> Result<Thresholds> {
    check_keys(table, THRESHOLD_KEYS, place)?;
    let mut thresholds = base.clone();
    let ratio = (0.0, 1.0);
    if let Some(value) = number(table, "maxErrorRate", place, ratio)? {
        thresholds.max_error_rate = value;
    }
    if let Some(value) = number(table, "maxRestartsPerMinute", place, (0.0, f64::MAX))? {
        thresholds.max_restarts_per_minute = value;
    }
    if let Some(value) = number(table, "minDeliverySuccess", place, ratio)? {
        thresholds.min_delivery_success = value;
    }
    if let Some(value) = number(table, "minRecoverySuccess", place, ratio)? {
        thresholds.min_recovery_success = value;
    }
    if let Some(value) = number(table, "maxP99Ratio", place, (1.0, f64::MAX))? {
        thresholds.max_p99_ratio = value;
    }
    if let Some(value) = duration(table, "baselineP99", place)? {
        thresholds.baseline_p99 = Some(value);
    }
    if let Some(value) = number(table, "maxCohortErrorMargin", place, ratio)? {
        thresholds.max_cohort_error_margin = value;
    }
    if let Some(value) = count(table, "minRequests", place, 1)? {
        thresholds.min_requests = u64::from(value);
    }
    if let Some(value) = count(table, "minCohortRequests", place, 1)? {
        thresholds.min_cohort_requests = u64::from(value);
    }
    if let Some(value) = count(table, "minDeliveries", place, 1)? {
        thresholds.min_deliveries = u64::from(value);
    }
    if let Some(value) = count(table, "minRestores", place, 1)? {
        thresholds.min_restores = u64::from(value);
    }
    match table.get("required") {
        None => {}
        Some(Value::Array(names)) => {
            let mut required = Vec::with_capacity(names.len());
            for name in names {
                let check = name.as_str().and_then(Check::from_name).ok_or_else(|| {
                    let names: Vec<&str> = Check::ALL.iter().map(|check| check.as_str()).collect();
                    error(
                        ErrorCode::INVALID_CONFIG_VALUE,
                        place,
                        "required",
                        format!(
                            "{name:?} is not a check (expected some of: {})",
                            names.join(", ")
                        ),
                    )
                })?;
                required.push(check);
            }
            thresholds.required = required;
        }
        Some(other) => {
            return Err(wrong_type(
                place,
                "required",
                "an array of check names",
                other,
            ));
        }
    }
    Ok(thresholds)
}

fn flag_value(value: &Value, place: Place<'_>, flag: &str) -> Result<FlagValue> {
    let parsed = match value {
        Value::String(text) => text.parse::<FlagValue>(),
        Value::Boolean(true) => Ok(FlagValue::On),
        Value::Boolean(false) => Ok(FlagValue::Off),
        Value::Integer(number) => u32::try_from(*number)
            .map_err(|_| Error::validation("a percentage is 0 to 100"))
            .and_then(FlagValue::percentage),
        other => {
            return Err(wrong_type(
                place,
                flag,
                "\"on\", \"off\" or a percentage 0 to 100",
                other,
            ));
        }
    };
    parsed.map_err(|cause| {
        error(
            ErrorCode::INVALID_CONFIG_VALUE,
            place,
            flag,
            format!(
                "expected \"on\", \"off\" or a percentage 0 to 100 ({})",
                cause.message()
            ),
        )
    })
}

const PHASE_KEYS: &[&str] = &["name", "flags", "validation", "minDuration", "thresholds"];

pub(super) fn plan(text: &str) -> Result<RolloutPlan> {
    let table: Table = text.parse().map_err(|cause: toml::de::Error| {
        Error::new(
            ErrorCode::FORMAT_ERROR,
            format!("rollout plan: not valid TOML: {}", cause.message()),
        )
        .with_cause(cause)
    })?;
    check_keys(&table, &["analysis", "thresholds", "phase"], Place::Top)?;
    let analysis = match section(&table, "analysis", Place::Top)? {
        Some(section) => analysis(section)?,
        None => AnalysisSettings::default(),
    };
    let base = match section(&table, "thresholds", Place::Top)? {
        Some(section) => thresholds(
            section,
            &Thresholds::default(),
            Place::Section("thresholds"),
        )?,
        None => Thresholds::default(),
    };
    let phase_tables = match table.get("phase") {
        Some(Value::Array(phases)) if !phases.is_empty() => phases,
        Some(Value::Array(_)) | None => {
            return Err(error(
                ErrorCode::MISSING_REQUIRED_FIELD,
                Place::Top,
                "phase",
                "a plan needs at least one [[phase]]",
            ));
        }
        Some(other) => {
            return Err(wrong_type(
                Place::Top,
                "phase",
                "an array of tables ([[phase]])",
                other,
            ));
        }
    };

    // First pass: names, flags as written, and the set of rollout flags.
    let mut flags: Vec<String> = Vec::new();
    let mut phases = Vec::with_capacity(phase_tables.len());
    for (index, value) in phase_tables.iter().enumerate() {
        let number = index + 1;
        let unnamed = Place::Phase(number, "");
        let Value::Table(phase) = value else {
            return Err(wrong_type(unnamed, "phase", "a table", value));
        };
        let name = match string(phase, "name", unnamed)? {
            Some(name) if !name.trim().is_empty() => name.to_owned(),
            Some(_) => {
                return Err(error(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    unnamed,
                    "name",
                    "must not be empty",
                ));
            }
            None => {
                return Err(error(
                    ErrorCode::MISSING_REQUIRED_FIELD,
                    unnamed,
                    "name",
                    "every phase needs a name",
                ));
            }
        };
        let place = Place::Phase(number, &name);
        check_keys(phase, PHASE_KEYS, place)?;
        let min_duration = duration(phase, "minDuration", place)?.ok_or_else(|| {
            error(
                ErrorCode::MISSING_REQUIRED_FIELD,
                place,
                "minDuration",
                "every phase needs a minimum duration",
            )
        })?;
        let validation = string(phase, "validation", place)?
            .unwrap_or_default()
            .to_owned();
        let thresholds = match section(phase, "thresholds", place)? {
            Some(section) => thresholds(
                section,
                &base,
                Place::PhaseSection(number, &name, "thresholds"),
            )?,
            None => base.clone(),
        };
        let mut values = Vec::new();
        if let Some(section) = section(phase, "flags", place)? {
            let flags_place = Place::PhaseSection(number, &name, "flags");
            for (flag, value) in section {
                if flag.trim().is_empty() {
                    return Err(error(
                        ErrorCode::INVALID_CONFIG_VALUE,
                        flags_place,
                        flag,
                        "a flag needs a name",
                    ));
                }
                values.push((flag.clone(), flag_value(value, flags_place, flag)?));
                if !flags.contains(flag) {
                    flags.push(flag.clone());
                }
            }
        }
        phases.push(Phase {
            name,
            flags: values,
            validation,
            min_duration,
            thresholds,
        });
    }
    if flags.is_empty() {
        return Err(error(
            ErrorCode::MISSING_REQUIRED_FIELD,
            Place::Top,
            "flags",
            "no phase sets any flag; a rollout needs at least one",
        ));
    }
    // Second pass: every phase assigns every rollout flag (off unless named).
    for phase in &mut phases {
        let named = std::mem::take(&mut phase.flags);
        phase.flags = flags
            .iter()
            .map(|flag| {
                let value = named
                    .iter()
                    .find(|(name, _)| name == flag)
                    .map_or(FlagValue::Off, |(_, value)| *value);
                (flag.clone(), value)
            })
            .collect();
    }
    Ok(RolloutPlan {
        analysis,
        thresholds: base,
        flags,
        phases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_parses() {
        let plan = plan(super::super::DEFAULT_PLAN_TOML).expect("valid");
        assert_eq!(plan.phases.len(), 5);
        assert_eq!(plan.flags.len(), 6);
        assert_eq!(plan.analysis, AnalysisSettings::default());
        assert_eq!(plan.phases[0].min_duration, Duration::from_secs(2 * 86_400));
    }
}
