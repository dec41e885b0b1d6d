//! What the engine stores, declared once, next to the keyspace that holds
//! it: the journal of events per workflow, the summaries that status and
//! list read, and the definitions by hash.
//!
//! Records are postcard envelopes (foundation-persist's codec), which
//! cannot hold `serde_json::Value`: JSON parameters, outputs, payloads and
//! metadata are stored as JSON text. The events a process journals
//! together (a start with its first launch, a step's result with the next
//! steps' starts) are one journal record, an [`Event::Batch`], so a
//! workflow costs the store one append per durable write rather than one
//! per event. This module is not for replaying the journal (see `state`).

use foundation_error::{Error, ErrorCode};
use foundation_persist::{Journal, Record, StateStore, Store};
use serde::{Deserialize, Serialize};

use crate::status::WorkflowStatus;

/// The journal keyspace: one stream of [`Event`]s per workflow id.
pub(crate) const JOURNAL: &str = "jido_workflow_journal";
/// The state keyspace of [`Summary`] by workflow id.
pub(crate) const SUMMARIES: &str = "jido_workflow_summaries";
/// The state keyspace of [`DefinitionRecord`] by definition hash.
pub(crate) const DEFINITIONS: &str = "jido_workflow_definitions";

/// An error as stored: its code number and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredError {
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl StoredError {
    pub(crate) fn from_error(error: &Error) -> StoredError {
        StoredError {
            code: error.code().number(),
            message: error.message().to_owned(),
        }
    }

    pub(crate) fn to_error(&self) -> Error {
        let code = ErrorCode::from_number(self.code).unwrap_or(ErrorCode::UNKNOWN);
        Error::new(code, self.message.clone())
    }
}

/// One journal event. A step counts as done once its `StepSucceeded` is
/// durable; replaying the events in order rebuilds the workflow's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Event {
    /// The first event: which definition version, with what metadata.
    Started {
        definition: String,
        name: String,
        metadata: String,
        started_at_ms: u64,
    },
    /// A task's attempt began (recorded before the work runs).
    StepStarted { task: u32, attempt: u32 },
    /// A task finished; its output as JSON text.
    StepSucceeded { task: u32, output: String },
    /// An attempt failed with a retryable error; the next starts at
    /// `retry_at_ms` (wall clock, milliseconds since the Unix epoch).
    AttemptFailed {
        task: u32,
        error: StoredError,
        retry_at_ms: u64,
    },
    /// A task failed for good.
    StepFailed { task: u32, error: StoredError },
    /// An at-most-once task was running during a crash.
    StepInterrupted { task: u32 },
    /// A durable timer (a delay's end, a signal wait's timeout).
    TimerSet { task: u32, due_ms: u64 },
    /// An external signal; its payload as JSON text.
    SignalReceived { name: String, payload: String },
    /// Cancellation was asked for.
    CancelRequested { reason: String },
    /// A compensation began.
    CompensationStarted { task: u32 },
    /// A compensation ended (with its error, if it failed).
    CompensationFinished {
        task: u32,
        error: Option<StoredError>,
    },
    /// The workflow ended with this status.
    Finished { status: u8 },
    /// Events journaled together as one record (one store operation
    /// instead of one per event), applied in order. Never nested.
    Batch(Vec<Event>),
}

impl Event {
    /// The event's kind and task, for [`HistoryEntry`](crate::HistoryEntry).
    pub(crate) fn describe(&self) -> (&'static str, Option<u32>, Option<u32>) {
        match self {
            Event::Started { .. } => ("started", None, None),
            Event::StepStarted { task, attempt } => ("step_started", Some(*task), Some(*attempt)),
            Event::StepSucceeded { task, .. } => ("step_succeeded", Some(*task), None),
            Event::AttemptFailed { task, .. } => ("attempt_failed", Some(*task), None),
            Event::StepFailed { task, .. } => ("step_failed", Some(*task), None),
            Event::StepInterrupted { task } => ("step_interrupted", Some(*task), None),
            Event::TimerSet { task, .. } => ("timer_set", Some(*task), None),
            Event::SignalReceived { .. } => ("signal_received", None, None),
            Event::CancelRequested { .. } => ("cancel_requested", None, None),
            Event::CompensationStarted { task } => ("compensation_started", Some(*task), None),
            Event::CompensationFinished { task, .. } => {
                ("compensation_finished", Some(*task), None)
            }
            Event::Finished { .. } => ("finished", None, None),
            Event::Batch(_) => ("batch", None, None),
        }
    }

    /// The events of one journal record: a batch's, or the record itself.
    pub(crate) fn events(&self) -> &[Event] {
        match self {
            Event::Batch(events) => events,
            other => std::slice::from_ref(other),
        }
    }

    /// One record holding `events` (the event itself when there is one).
    pub(crate) fn record(mut events: Vec<Event>) -> Event {
        if events.len() == 1
            && let Some(event) = events.pop()
        {
            return event;
        }
        Event::Batch(events)
    }
}

impl Record for Event {
    const TYPE_TAG: &'static str = "jido_workflow_event";
    const SCHEMA_VERSION: u32 = 1;
}

/// What status and list read without replaying a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) name: String,
    pub(crate) definition: String,
    pub(crate) status: u8,
    pub(crate) metadata: String,
    pub(crate) started_at_ms: u64,
    pub(crate) updated_at_ms: u64,
}

impl Summary {
    pub(crate) fn status(&self) -> WorkflowStatus {
        WorkflowStatus::from_code(self.status).unwrap_or(WorkflowStatus::Failed)
    }
}

impl Record for Summary {
    const TYPE_TAG: &'static str = "jido_workflow_summary";
    const SCHEMA_VERSION: u32 = 1;
}

/// A definition version: its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DefinitionRecord {
    pub(crate) canonical: String,
}

impl Record for DefinitionRecord {
    const TYPE_TAG: &'static str = "jido_workflow_definition";
    const SCHEMA_VERSION: u32 = 1;
}

/// The engine's three keyspaces on one store.
#[derive(Debug, Clone)]
pub(crate) struct Keyspaces {
    pub(crate) store: Store,
    pub(crate) journal: Journal<Event>,
    pub(crate) summaries: StateStore<Summary>,
    pub(crate) definitions: StateStore<DefinitionRecord>,
}

impl Keyspaces {
    pub(crate) fn open(store: &Store) -> Result<Keyspaces, Error> {
        Ok(Keyspaces {
            store: store.clone(),
            journal: store.journal(JOURNAL)?,
            summaries: store.state(SUMMARIES)?,
            definitions: store.state(DEFINITIONS)?,
        })
    }
}

pub(crate) fn to_json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

pub(crate) fn from_json_text(text: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(text).map_err(|error| {
        Error::new(
            ErrorCode::DATA_CORRUPTION,
            "stored JSON text does not parse",
        )
        .with_cause(error)
    })
}

pub(crate) fn wall_millis(clock: &dyn foundation_error::clock::Clock) -> u64 {
    clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
