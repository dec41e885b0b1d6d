//! Reading a definition from a JSON value: shape, limits and defaults,
//! with the path and field of the first problem.
//!
//! Every descent checks the depth first, and parameter values are measured
//! with an explicit stack, so no input can overflow the stack. This module
//! is not for work names (checked against a registry by
//! `WorkflowDefinition::check_works`).

use std::collections::HashSet;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use serde_json::{Map, Value, json};

use super::{Compensation, Delivery, RetrySpec, Step, TaskSpec, invalid};
use crate::work::{AWAIT_SIGNAL, DELAY};

/// The limits a definition must keep. The defaults are the issue's: depth
/// 32, 10,000 steps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How deeply groups may nest (top-level steps are at depth 1).
    pub max_depth: usize,
    /// Steps in all, groups included.
    pub max_steps: usize,
    /// The size of a definition's text.
    pub max_text_bytes: usize,
    /// The length of a name, id or work name.
    pub max_name_bytes: usize,
    /// The size of one task's parameters as JSON text.
    pub max_params_bytes: usize,
    /// How deeply parameter values may nest.
    pub max_params_depth: usize,
    /// The longest timeout (and durable delay) a task may ask for.
    pub max_timeout: Duration,
    /// The most attempts a retry policy may ask for.
    pub max_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 32,
            max_steps: 10_000,
            max_text_bytes: 8 * 1024 * 1024,
            max_name_bytes: 256,
            max_params_bytes: 64 * 1024,
            max_params_depth: 32,
            max_timeout: Duration::from_secs(365 * 24 * 3600),
            max_attempts: 100,
        }
    }
}

/// The default timeout of one attempt: 30 s.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Parsed {
    pub(super) name: String,
    pub(super) steps: Vec<Step>,
    pub(super) tasks: Vec<TaskSpec>,
}

struct Walk<'a> {
    limits: &'a Limits,
    tasks: Vec<TaskSpec>,
    ids: HashSet<String>,
    steps: usize,
}

/// Checks the size of a definition's text, and for TOML-like text the
/// nesting of brackets, before any parser sees it.
pub(super) fn check_text(text: &str, limits: &Limits) -> Result<(), Error> {
    if text.len() > limits.max_text_bytes {
        return Err(invalid(
            format!(
                "the definition is {} bytes, more than the limit of {}",
                text.len(),
                limits.max_text_bytes
            ),
            "",
            "",
        ));
    }
    let nesting = bracket_nesting(text);
    // Each level of steps is two or three levels of brackets, plus the
    // parameters' own.
    let allowed = 3 * limits.max_depth + limits.max_params_depth + 8;
    if nesting > allowed {
        return Err(invalid(
            format!("brackets nest {nesting} deep, more than the limit of {allowed}"),
            "",
            "",
        ));
    }
    Ok(())
}

/// The deepest nesting of `[`/`{` outside strings and comments (JSON and
/// TOML quoting rules, approximately: enough to bound a parser's
/// recursion).
fn bracket_nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut index) = (0usize, 0usize, 0usize);
    while index < bytes.len() {
        match bytes[index] {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            quote @ (b'"' | b'\'') => {
                let triple =
                    bytes.get(index + 1) == Some(&quote) && bytes.get(index + 2) == Some(&quote);
                index += if triple { 3 } else { 1 };
                while index < bytes.len() {
                    let byte = bytes[index];
                    if byte == b'\\' && quote == b'"' {
                        index += 2;
                        continue;
                    }
                    if byte == quote {
                        if !triple {
                            break;
                        }
                        if bytes.get(index + 1) == Some(&quote)
                            && bytes.get(index + 2) == Some(&quote)
                        {
                            index += 2;
                            break;
                        }
                    }
                    if byte == b'\n' && !triple {
                        break;
                    }
                    index += 1;
                }
            }
            _ => {}
        }
        index += 1;
    }
    deepest
}

/// Parses TOML into a JSON value (datetimes become strings).
pub(super) fn toml_to_json(text: &str, limits: &Limits) -> Result<Value, Error> {
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        Error::new(ErrorCode::FORMAT_ERROR, "the definition is not valid TOML")
            .with_context("detail", error.message())
            .with_cause(error)
    })?;
    let mut object = Map::new();
    for (key, value) in table {
        object.insert(key, toml_value(value, 0, limits)?);
    }
    Ok(Value::Object(object))
}

fn toml_value(value: toml::Value, depth: usize, limits: &Limits) -> Result<Value, Error> {
    // `check_text` bounded the nesting already; this is the second guard.
    if depth > 3 * limits.max_depth + limits.max_params_depth + 8 {
        return Err(invalid("values nest too deeply", "", ""));
    }
    Ok(match value {
        toml::Value::String(text) => Value::String(text),
        toml::Value::Integer(number) => Value::from(number),
        toml::Value::Float(number) => serde_json::Number::from_f64(number)
            .map(Value::Number)
            .ok_or_else(|| invalid("NaN and infinite numbers are not allowed", "", ""))?,
        toml::Value::Boolean(flag) => Value::Bool(flag),
        toml::Value::Datetime(datetime) => Value::String(datetime.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| toml_value(item, depth + 1, limits))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut object = Map::new();
            for (key, value) in table {
                object.insert(key, toml_value(value, depth + 1, limits)?);
            }
            Value::Object(object)
        }
    })
}

pub(super) fn parse_definition(value: &Value, limits: &Limits) -> Result<Parsed, Error> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("a definition must be an object", "", ""))?;
    check_keys(object, &["name", "steps"], "")?;
    let name = name_field(object, "name", "", limits)?.to_owned();
    let steps = object
        .get("steps")
        .ok_or_else(|| invalid("missing", "", "steps"))?;
    let mut walk = Walk {
        limits,
        tasks: Vec::new(),
        ids: HashSet::new(),
        steps: 0,
    };
    let steps = walk.list(steps, "steps", 1)?;
    Ok(Parsed {
        name,
        steps,
        tasks: walk.tasks,
    })
}

impl Walk<'_> {
    fn list(&mut self, value: &Value, path: &str, depth: usize) -> Result<Vec<Step>, Error> {
        let (parent, field) = split(path);
        let items = value
            .as_array()
            .ok_or_else(|| invalid("must be a list of steps", parent, field))?;
        if items.is_empty() {
            return Err(invalid("a group needs at least one step", parent, field));
        }
        if depth > self.limits.max_depth {
            return Err(invalid(
                format!(
                    "groups nest deeper than the limit of {}",
                    self.limits.max_depth
                ),
                parent,
                field,
            ));
        }
        let mut steps = Vec::with_capacity(items.len().min(self.limits.max_steps));
        for (index, item) in items.iter().enumerate() {
            steps.push(self.step(item, &format!("{path}[{index}]"), depth)?);
        }
        Ok(steps)
    }

    fn step(&mut self, value: &Value, path: &str, depth: usize) -> Result<Step, Error> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(invalid(
                format!("more than {} steps", self.limits.max_steps),
                path,
                "",
            ));
        }
        let object = value.as_object().ok_or_else(|| {
            invalid(
                "a step must be an object with one key: task, parallel or sequential",
                path,
                "",
            )
        })?;
        if object.len() != 1 {
            return Err(invalid(
                "a step must have exactly one key: task, parallel or sequential",
                path,
                "",
            ));
        }
        let Some((kind, body)) = object.iter().next() else {
            return Err(invalid("a step must not be empty", path, ""));
        };
        match kind.as_str() {
            "task" => self.task(body, path).map(Step::Task),
            "parallel" => self
                .list(body, &format!("{path}.parallel"), depth + 1)
                .map(Step::Parallel),
            "sequential" => self
                .list(body, &format!("{path}.sequential"), depth + 1)
                .map(Step::Sequential),
            other => Err(invalid(
                format!(
                    "unknown step kind {:?} (task, parallel or sequential)",
                    truncate(other)
                ),
                path,
                "",
            )),
        }
    }

    fn task(&mut self, value: &Value, path: &str) -> Result<usize, Error> {
        let limits = self.limits;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("a task must be an object", path, "task"))?;
        check_keys(
            object,
            &[
                "id",
                "work",
                "params",
                "timeout_ms",
                "retry",
                "compensation",
                "at_most_once",
            ],
            path,
        )?;
        let id = name_field(object, "id", path, limits)?.to_owned();
        if !self.ids.insert(id.clone()) {
            return Err(invalid(format!("the id {id:?} is used twice"), path, "id"));
        }
        let work = name_field(object, "work", path, limits)?.to_owned();
        let params = params(object.get("params"), path, "params", limits)?;
        let timeout = match object.get("timeout_ms") {
            None => DEFAULT_TIMEOUT,
            Some(value) => duration(value, path, "timeout_ms", limits)?,
        };
        if work == DELAY {
            match params.get("duration_ms") {
                Some(value) => {
                    duration(value, path, "params.duration_ms", limits)?;
                }
                None => {
                    return Err(invalid(
                        "a delay needs duration_ms",
                        path,
                        "params.duration_ms",
                    ));
                }
            }
        }
        if work == AWAIT_SIGNAL {
            match params.get("signal") {
                Some(Value::String(name))
                    if !name.is_empty() && name.len() <= limits.max_name_bytes => {}
                _ => {
                    return Err(invalid(
                        "await_signal needs a signal name (a non-empty string)",
                        path,
                        "params.signal",
                    ));
                }
            }
        }
        let retry = match object.get("retry") {
            None => RetrySpec::default(),
            Some(value) => retry(value, path, limits)?,
        };
        let compensation = match object.get("compensation") {
            None | Some(Value::Null) => None,
            Some(value) => Some(compensation(value, path, limits)?),
        };
        let delivery = match object.get("at_most_once") {
            None | Some(Value::Bool(false)) => Delivery::AtLeastOnce,
            Some(Value::Bool(true)) => Delivery::AtMostOnce,
            Some(_) => return Err(invalid("must be true or false", path, "at_most_once")),
        };
        self.tasks.push(TaskSpec {
            id,
            work,
            params,
            timeout,
            retry,
            compensation,
            delivery,
            path: path.to_owned(),
        });
        Ok(self.tasks.len() - 1)
    }
}

fn retry(value: &Value, path: &str, limits: &Limits) -> Result<RetrySpec, Error> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("must be an object", path, "retry"))?;
    check_keys(object, &["attempts", "backoff_ms", "max_backoff_ms"], path)?;
    let mut spec = RetrySpec::default();
    if let Some(attempts) = object.get("attempts") {
        let attempts = attempts
            .as_u64()
            .filter(|attempts| (1..=u64::from(limits.max_attempts)).contains(attempts))
            .ok_or_else(|| {
                invalid(
                    format!("must be an integer from 1 to {}", limits.max_attempts),
                    path,
                    "retry.attempts",
                )
            })?;
        spec.attempts = u32::try_from(attempts).unwrap_or(limits.max_attempts);
    }
    if let Some(backoff) = object.get("backoff_ms") {
        spec.backoff = duration(backoff, path, "retry.backoff_ms", limits)?;
    }
    if let Some(max) = object.get("max_backoff_ms") {
        spec.max_backoff = duration(max, path, "retry.max_backoff_ms", limits)?;
    }
    if spec.max_backoff < spec.backoff {
        return Err(invalid(
            "max_backoff_ms must not be below backoff_ms",
            path,
            "retry.max_backoff_ms",
        ));
    }
    Ok(spec)
}

fn compensation(value: &Value, path: &str, limits: &Limits) -> Result<Compensation, Error> {
    match value {
        Value::String(work) => {
            check_name(work, path, "compensation", limits)?;
            Ok(Compensation {
                work: work.clone(),
                params: Value::Null,
            })
        }
        Value::Object(object) => {
            check_keys(object, &["work", "params"], path)?;
            let work = match object.get("work") {
                Some(Value::String(work)) => {
                    check_name(work, path, "compensation.work", limits)?;
                    work.clone()
                }
                _ => return Err(invalid("must be a work name", path, "compensation.work")),
            };
            Ok(Compensation {
                work,
                params: params(object.get("params"), path, "compensation.params", limits)?,
            })
        }
        _ => Err(invalid(
            "must be a work name or {work, params}",
            path,
            "compensation",
        )),
    }
}

fn params(value: Option<&Value>, path: &str, field: &str, limits: &Limits) -> Result<Value, Error> {
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    // Measure depth with an explicit stack before anything recurses.
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth > limits.max_params_depth {
            return Err(invalid(
                format!("parameters nest deeper than {}", limits.max_params_depth),
                path,
                field,
            ));
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(object) => stack.extend(object.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    let size = serde_json::to_vec(value)
        .map_err(|error| invalid(format!("cannot be encoded: {error}"), path, field))?
        .len();
    if size > limits.max_params_bytes {
        return Err(invalid(
            format!(
                "{size} bytes, more than the limit of {}",
                limits.max_params_bytes
            ),
            path,
            field,
        ));
    }
    Ok(value.clone())
}

fn duration(value: &Value, path: &str, field: &str, limits: &Limits) -> Result<Duration, Error> {
    let max = u64::try_from(limits.max_timeout.as_millis()).unwrap_or(u64::MAX);
    value
        .as_u64()
        .filter(|millis| (1..=max).contains(millis))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            invalid(
                format!("must be a whole number of milliseconds from 1 to {max}"),
                path,
                field,
            )
        })
}

fn name_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    path: &str,
    limits: &Limits,
) -> Result<&'a str, Error> {
    match object.get(field) {
        Some(Value::String(name)) => {
            check_name(name, path, field, limits)?;
            Ok(name)
        }
        Some(_) => Err(invalid("must be a string", path, field)),
        None => Err(invalid("missing", path, field)),
    }
}

fn check_name(name: &str, path: &str, field: &str, limits: &Limits) -> Result<(), Error> {
    if name.is_empty() || name.len() > limits.max_name_bytes {
        return Err(invalid(
            format!("must be 1 to {} bytes long", limits.max_name_bytes),
            path,
            field,
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' '))
    {
        return Err(invalid(
            "may hold only ASCII letters, digits, spaces and _ - . :",
            path,
            field,
        ));
    }
    Ok(())
}

fn check_keys(object: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), Error> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(invalid(
            format!("unknown field (expected one of {})", allowed.join(", ")),
            path,
            &truncate(key),
        )),
        None => Ok(()),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('.') {
        Some(dot) => (&path[..dot], &path[dot + 1..]),
        None => ("", path),
    }
}

/// The canonical form: sorted keys (serde_json's map is ordered), every
/// default filled in.
pub(super) fn canonical(name: &str, steps: &[Step], tasks: &[TaskSpec]) -> Value {
    json!({"name": name, "steps": canonical_steps(steps, tasks)})
}

fn canonical_steps(steps: &[Step], tasks: &[TaskSpec]) -> Value {
    Value::Array(
        steps
            .iter()
            .map(|step| match step {
                Step::Task(index) => {
                    let task = &tasks[*index];
                    json!({"task": {
                        "id": task.id,
                        "work": task.work,
                        "params": task.params,
                        "timeout_ms": millis(task.timeout),
                        "retry": {
                            "attempts": task.retry.attempts,
                            "backoff_ms": millis(task.retry.backoff),
                            "max_backoff_ms": millis(task.retry.max_backoff),
                        },
                        "compensation": task.compensation.as_ref().map(|compensation| json!({
                            "work": compensation.work,
                            "params": compensation.params,
                        })),
                        "at_most_once": task.delivery == Delivery::AtMostOnce,
                    }})
                }
                Step::Parallel(children) => json!({"parallel": canonical_steps(children, tasks)}),
                Step::Sequential(children) => {
                    json!({"sequential": canonical_steps(children, tasks)})
                }
            })
            .collect(),
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_ignores_brackets_in_strings_and_comments() {
        assert_eq!(bracket_nesting(r#"{"a": "[[[[", "b": [1]} # [[[["#), 2);
        assert_eq!(bracket_nesting("a = '''[[[\n'''\n[[steps]]"), 2);
        assert_eq!(bracket_nesting(&"[".repeat(1000)), 1000);
    }

    #[test]
    fn split_path() {
        assert_eq!(split("steps"), ("", "steps"));
        assert_eq!(split("steps[0].parallel"), ("steps[0]", "parallel"));
    }
}
