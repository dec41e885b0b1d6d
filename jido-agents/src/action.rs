//! Running actions without knowing their types: the erased action the
//! mailbox carries, the by-name table of JSON-callable actions
//! ([`ActionSet`]), and the validation error every action reports.
//!
//! This module is not where actions are declared (see `agent`).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use foundation_error::{Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent::{Action, ActionContext, Agent, PendingAction};

/// The reply of an erased action: the typed action's output, boxed.
pub(crate) type AnyOutput = Box<dyn Any + Send>;

/// An action whose type the mailbox does not know.
pub(crate) trait ErasedAction<A: Agent>: Send {
    fn name(&self) -> &'static str;
    fn validate(&self) -> Result<(), Error>;
    fn run(self: Box<Self>, agent: &mut A, ctx: &mut ActionContext<A>) -> Result<AnyOutput, Error>;
}

/// A typed action; its output is boxed as is.
pub(crate) struct Typed<Act>(pub(crate) Act);

impl<A: Agent, Act: Action<A>> ErasedAction<A> for Typed<Act> {
    fn name(&self) -> &'static str {
        Act::NAME
    }

    fn validate(&self) -> Result<(), Error> {
        self.0.validate()
    }

    fn run(self: Box<Self>, agent: &mut A, ctx: &mut ActionContext<A>) -> Result<AnyOutput, Error> {
        let output = self.0.run(agent, ctx)?;
        Ok(Box::new(output))
    }
}

/// A typed action called by name; its output becomes JSON.
struct Json<Act>(Act);

impl<A: Agent, Act> ErasedAction<A> for Json<Act>
where
    Act: Action<A>,
    Act::Output: Serialize,
{
    fn name(&self) -> &'static str {
        Act::NAME
    }

    fn validate(&self) -> Result<(), Error> {
        self.0.validate()
    }

    fn run(self: Box<Self>, agent: &mut A, ctx: &mut ActionContext<A>) -> Result<AnyOutput, Error> {
        let output = self.0.run(agent, ctx)?;
        let json = serde_json::to_value(&output).map_err(|error| {
            Error::new(
                ErrorCode::SERIALIZATION_FAILED,
                format!("the output of action {} is not JSON", Act::NAME),
            )
            .with_cause(error)
        })?;
        Ok(Box::new(json))
    }
}

type Decoder<A> =
    Arc<dyn Fn(serde_json::Value) -> Result<PendingAction<A>, Error> + Send + Sync + 'static>;

/// The actions of one agent type that can be called by name with JSON
/// parameters (see [`Agent::actions`](crate::Agent::actions)).
pub struct ActionSet<A: Agent> {
    decoders: HashMap<&'static str, Decoder<A>>,
}

impl<A: Agent> Default for ActionSet<A> {
    fn default() -> Self {
        ActionSet {
            decoders: HashMap::new(),
        }
    }
}

impl<A: Agent> std::fmt::Debug for ActionSet<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.decoders.keys().collect();
        names.sort();
        f.debug_struct("ActionSet")
            .field("actions", &names)
            .finish()
    }
}

impl<A: Agent> ActionSet<A> {
    /// The actions `A` registered.
    pub(crate) fn of() -> ActionSet<A> {
        let mut actions = ActionSet::default();
        A::actions(&mut actions);
        actions
    }

    /// Makes `Act` callable by its name; its parameters are deserialised
    /// from a JSON object (absent parameters: `{}` or `null`).
    pub fn add<Act>(&mut self) -> &mut Self
    where
        Act: Action<A> + DeserializeOwned,
        Act::Output: Serialize,
    {
        let decoder: Decoder<A> = Arc::new(|params| {
            let action: Act = decode_params(Act::NAME, params)?;
            Ok(PendingAction {
                inner: Box::new(Json(action)),
            })
        });
        self.decoders.insert(Act::NAME, decoder);
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.decoders.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Builds the named action from its JSON parameters.
    pub(crate) fn decode(
        &self,
        name: &str,
        params: serde_json::Value,
    ) -> Result<PendingAction<A>, Error> {
        let decoder = self.decoders.get(name).ok_or_else(|| {
            Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!("agent kind {} has no action named {name}", A::KIND),
            )
            .with_context("action", name)
        })?;
        decoder(params)
    }
}

/// A validation error (`validation_failed`) naming the parameter at fault,
/// in the context key `parameter`.
pub fn validation_error(parameter: &str, problem: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::VALIDATION_FAILED,
        format!("parameter {parameter} {problem}"),
    )
    .with_context("parameter", parameter)
}

/// Deserialises an action's parameters, naming the parameter at fault.
fn decode_params<T: DeserializeOwned>(action: &str, params: serde_json::Value) -> Result<T, Error> {
    let params = match params {
        serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        serde_json::Value::Object(map) => serde_json::Value::Object(map),
        other => {
            return Err(Error::new(
                ErrorCode::VALIDATION_FAILED,
                format!("the parameters of action {action} must be a JSON object, not {other}"),
            )
            .with_context("action", action));
        }
    };
    // Decoding from pretty-printed text puts each top-level parameter on
    // its own lines, so the error's line names the parameter at fault.
    let text = serde_json::to_string_pretty(&params).map_err(|error| {
        Error::new(ErrorCode::SERIALIZATION_FAILED, "parameters are not JSON").with_cause(error)
    })?;
    serde_json::from_str(&text).map_err(|error| {
        let parameter = quoted_field(&error.to_string())
            .or_else(|| parameter_at_line(&text, error.line()))
            .unwrap_or_else(|| "(parameters)".to_owned());
        validation_error(&parameter, format!("is invalid: {error}")).with_context("action", action)
    })
}

/// The field a serde message names in backticks ("missing field `x`").
fn quoted_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let length = message[start..].find('`')?;
    let field = &message[start..start + length];
    (message.contains("field") && !field.is_empty()).then(|| field.to_owned())
}

/// The top-level key whose value spans `line` (1-based) of pretty JSON.
fn parameter_at_line(text: &str, line: usize) -> Option<String> {
    let mut current = None;
    for (index, row) in text.lines().enumerate() {
        if index + 1 > line {
            break;
        }
        if let Some(rest) = row.strip_prefix("  \"")
            && let Some(end) = rest.find("\": ")
        {
            current = Some(rest[..end].to_owned());
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        name: String,
        count: u32,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn parameter(value: serde_json::Value) -> String {
        let error = decode_params::<Params>("test", value).unwrap_err();
        assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED);
        error
            .context_value("parameter")
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn errors_name_the_parameter() {
        assert_eq!(parameter(serde_json::json!({"name": "a"})), "count");
        assert_eq!(
            parameter(serde_json::json!({"name": "a", "count": "many"})),
            "count"
        );
        assert_eq!(
            parameter(serde_json::json!({"count": 1, "name": 7})),
            "name"
        );
        assert_eq!(
            parameter(serde_json::json!({"count": 1, "name": "a", "tags": [1]})),
            "tags"
        );
        assert_eq!(
            parameter(serde_json::json!({"count": 1, "name": "a", "extra": 1})),
            "extra"
        );
    }

    #[test]
    fn null_means_no_parameters_and_non_objects_fail() {
        #[derive(Debug, serde::Deserialize)]
        struct Empty {}
        assert!(decode_params::<Empty>("test", serde_json::Value::Null).is_ok());
        let error = decode_params::<Empty>("test", serde_json::json!([1])).unwrap_err();
        assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED);
    }
}
