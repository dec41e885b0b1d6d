//! Workflow definitions: the tree of steps, read from JSON or TOML,
//! validated, and versioned by content hash.
//!
//! A workflow has a name and steps; a step is a task, a parallel group or
//! a sequential group, nested within [`Limits`]:
//!
//! ```json
//! {"name": "etl", "steps": [
//!   {"parallel": [{"task": {"id": "task1", "work": "process_data", "params": {"n": 1}}}]},
//!   {"sequential": [{"task": {"id": "task4", "work": "aggregate_results", "timeout_ms": 5000,
//!                             "retry": {"attempts": 3, "backoff_ms": 100},
//!                             "compensation": {"work": "undo_aggregate"}}}]}
//! ]}
//! ```
//!
//! Parsing checks the shape and the limits and reports the first problem
//! with the step's path (`steps[1].sequential[0].task`) and the field;
//! whether each work name is known is checked against a
//! [`WorkRegistry`] by [`WorkflowDefinition::check_works`].
//! Hostile input (deep nesting, huge strings, wrong types) is a
//! `validation_failed` error, never a panic or a stack overflow: the
//! depth is checked before each descent.
//!
//! This module is not for running definitions (see `process`).

mod parse;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::work::{AWAIT_SIGNAL, DELAY, WorkRegistry};

pub use parse::Limits;

/// The id of a definition version: the first 16 bytes of the SHA-256 of
/// its canonical JSON, in hex. Two definitions with the same content have
/// the same hash, whatever their key order or format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefinitionHash(pub(crate) String);

impl DefinitionHash {
    /// The hash as 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DefinitionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated workflow definition. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkflowDefinition {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    steps: Vec<Step>,
    tasks: Vec<TaskSpec>,
    canonical: String,
    hash: DefinitionHash,
}

/// One step of a definition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// A task, by its index in [`WorkflowDefinition::tasks`].
    Task(usize),
    /// Steps that run concurrently (within the engine's bound).
    Parallel(Vec<Step>),
    /// Steps that run one after the other.
    Sequential(Vec<Step>),
}

/// Whether a step that was running when its workflow crashed runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Run again with the same idempotency key (the default).
    AtLeastOnce,
    /// Reported interrupted instead, and the workflow fails (compensating).
    AtMostOnce,
}

/// How often a failing task is tried. Only infrastructure errors (those
/// whose code is retryable: timeouts, unavailable services) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySpec {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The delay before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// The cap on any one delay.
    pub max_backoff: Duration,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts: 1,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetrySpec {
    /// The delay before retry number `retry` (1 for the first).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A compensation: the work run, in reverse order of completion, for a
/// completed task when its workflow fails or is cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Compensation {
    /// The work's name.
    pub work: String,
    /// Its parameters.
    pub params: Value,
}

/// A task: one call of a registered work.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// The id, unique in the definition.
    pub id: String,
    /// The work's name (see [`WorkRegistry`]), or a built-in: [`DELAY`],
    /// [`AWAIT_SIGNAL`].
    pub work: String,
    /// Parameters passed to the work.
    pub params: Value,
    /// How long one attempt may take (for `await_signal`: how long to wait
    /// for the signal).
    pub timeout: Duration,
    /// Retries.
    pub retry: RetrySpec,
    /// The compensation, if any.
    pub compensation: Option<Compensation>,
    /// What happens to the task if it was running during a crash.
    pub delivery: Delivery,
    /// Where it is in the definition, for example `steps[0].parallel[2]`.
    pub path: String,
}

impl WorkflowDefinition {
    /// Parses and validates a JSON definition with the default [`Limits`].
    ///
    /// ```
    /// use jido_workflow::WorkflowDefinition;
    ///
    /// let definition = WorkflowDefinition::from_json(r#"{"name": "one", "steps": [
    ///     {"task": {"id": "a", "work": "echo"}}]}"#)?;
    /// assert_eq!(definition.tasks()[0].path, "steps[0]");
    ///
    /// let error = WorkflowDefinition::from_json(r#"{"name": "bad", "steps": [{"parallel": []}]}"#)
    ///     .unwrap_err();
    /// assert_eq!(error.context_value("path"), Some("steps[0]"));
    /// assert_eq!(error.context_value("field"), Some("parallel"));
    /// # Ok::<(), foundation_error::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `validation_failed` with the `path` and `field` of the first problem;
    /// `format_error` for text that is not JSON.
    pub fn from_json(text: &str) -> Result<WorkflowDefinition, Error> {
        WorkflowDefinition::from_json_with(text, &Limits::default())
    }

    /// As [`from_json`](Self::from_json), with other limits.
    ///
    /// # Errors
    ///
    /// As for [`from_json`](Self::from_json).
    pub fn from_json_with(text: &str, limits: &Limits) -> Result<WorkflowDefinition, Error> {
        parse::check_text(text, limits)?;
        let value: Value = serde_json::from_str(text).map_err(|error| {
            Error::new(ErrorCode::FORMAT_ERROR, "the definition is not valid JSON")
                .with_context("line", error.line())
                .with_context("column", error.column())
                .with_cause(error)
        })?;
        WorkflowDefinition::from_value_with(&value, limits)
    }

    /// Parses and validates a TOML definition (the same shape as JSON:
    /// `name = "..."` and `[[steps]]` tables) with the default [`Limits`].
    ///
    /// # Errors
    ///
    /// As for [`from_json`](Self::from_json).
    pub fn from_toml(text: &str) -> Result<WorkflowDefinition, Error> {
        WorkflowDefinition::from_toml_with(text, &Limits::default())
    }

    /// As [`from_toml`](Self::from_toml), with other limits.
    ///
    /// # Errors
    ///
    /// As for [`from_json`](Self::from_json).
    pub fn from_toml_with(text: &str, limits: &Limits) -> Result<WorkflowDefinition, Error> {
        parse::check_text(text, limits)?;
        let value = parse::toml_to_json(text, limits)?;
        WorkflowDefinition::from_value_with(&value, limits)
    }

    /// Validates a definition given as a JSON value, with the default
    /// [`Limits`].
    ///
    /// # Errors
    ///
    /// As for [`from_json`](Self::from_json).
    pub fn from_value(value: &Value) -> Result<WorkflowDefinition, Error> {
        WorkflowDefinition::from_value_with(value, &Limits::default())
    }

    /// As [`from_value`](Self::from_value), with other limits.
    ///
    /// # Errors
    ///
    /// As for [`from_json`](Self::from_json).
    pub fn from_value_with(value: &Value, limits: &Limits) -> Result<WorkflowDefinition, Error> {
        let parsed = parse::parse_definition(value, limits)?;
        let canonical = parse::canonical(&parsed.name, &parsed.steps, &parsed.tasks).to_string();
        let digest = Sha256::digest(canonical.as_bytes());
        let hash = digest[..16]
            .iter()
            .fold(String::with_capacity(32), |mut hex, byte| {
                hex.push_str(&format!("{byte:02x}"));
                hex
            });
        Ok(WorkflowDefinition {
            inner: Arc::new(Inner {
                name: parsed.name,
                steps: parsed.steps,
                tasks: parsed.tasks,
                canonical,
                hash: DefinitionHash(hash),
            }),
        })
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The top-level steps (run in sequence).
    pub fn steps(&self) -> &[Step] {
        &self.inner.steps
    }

    /// Every task, in definition order (depth first).
    pub fn tasks(&self) -> &[TaskSpec] {
        &self.inner.tasks
    }

    /// The version: the hash of the canonical content.
    pub fn hash(&self) -> &DefinitionHash {
        &self.inner.hash
    }

    /// The canonical JSON (sorted keys, defaults filled in) the hash is
    /// computed from; what the engine stores.
    pub fn canonical_json(&self) -> &str {
        &self.inner.canonical
    }

    /// Checks that every work and compensation names a registered work or
    /// a built-in.
    ///
    /// # Errors
    ///
    /// `validation_failed` naming the task's path and the field.
    pub fn check_works(&self, works: &WorkRegistry) -> Result<(), Error> {
        for task in self.tasks() {
            if task.work != DELAY && task.work != AWAIT_SIGNAL && !works.contains(&task.work) {
                return Err(invalid(
                    format!("unknown work {:?}", task.work),
                    &task.path,
                    "work",
                ));
            }
            if let Some(compensation) = &task.compensation
                && !works.contains(&compensation.work)
            {
                return Err(invalid(
                    format!("unknown compensation work {:?}", compensation.work),
                    &task.path,
                    "compensation.work",
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn invalid(message: impl Into<String>, path: &str, field: &str) -> Error {
    let message = message.into();
    let location = if field.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    };
    Error::new(
        ErrorCode::VALIDATION_FAILED,
        format!("invalid workflow definition at {location}: {message}"),
    )
    .with_context("path", path)
    .with_context("field", field)
}
