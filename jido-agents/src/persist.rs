//! Agents whose state survives crashes: [`PersistentAgent`] declares the
//! persisted projection of the state, and the runtime loads it on every
//! start and saves it after every action that changed it, before the
//! action's reply is released.
//!
//! The projection is a foundation-persist [`Record`]: its own type tag and
//! schema version, upgraded on load through the record's migrations. It is
//! stored in the keyspace `agents.KIND` under the agent's id. Saves are
//! plain `StateStore::put`s, so concurrent agents share the store's group
//! commit; this module adds no thread and no lock.
//!
//! This module is not the actor glue (see `server`); it does not decide
//! when an action runs.

use std::future::Future;
use std::pin::Pin;

use foundation_error::{Error, ErrorCode};
use foundation_persist::{Record, StateStore, Store};

use crate::agent::Agent;
use crate::metrics;

/// An agent with a persisted projection of its state.
///
/// ```
/// use foundation_persist::Record;
/// use jido_agents::{Agent, AgentEnv, PersistentAgent};
/// use foundation_error::Error;
/// use serde::{Deserialize, Serialize};
///
/// struct Counter { value: u64, cache: Vec<u8> }
///
/// #[derive(Clone, PartialEq, Serialize, Deserialize)]
/// struct CounterState { value: u64 }
///
/// impl Record for CounterState {
///     const TYPE_TAG: &'static str = "counter_state";
///     const SCHEMA_VERSION: u32 = 1;
/// }
///
/// impl Agent for Counter {
///     const KIND: &'static str = "counter";
///     type Args = ();
///     fn init(_: (), _env: &AgentEnv) -> Result<Self, Error> {
///         Ok(Counter { value: 0, cache: Vec::new() })
///     }
/// }
///
/// impl PersistentAgent for Counter {
///     type Snapshot = CounterState;
///     fn snapshot(&self) -> CounterState { CounterState { value: self.value } }
///     fn restore(&mut self, stored: CounterState) { self.value = stored.value; }
/// }
/// ```
pub trait PersistentAgent: Agent {
    /// The persisted projection, with its own schema version.
    type Snapshot: Record + Clone + PartialEq;

    /// The persisted part of the current state.
    fn snapshot(&self) -> Self::Snapshot;

    /// Merges a stored (or last saved) projection over the current state.
    fn restore(&mut self, stored: Self::Snapshot);

    /// Runs after the stored state was merged over the defaults at start.
    fn after_load(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Runs on the projection just before it is saved; it may adjust what
    /// is written (trim a history, for example) or refuse the save.
    fn before_save(&self, snapshot: &mut Self::Snapshot) -> Result<(), Error> {
        let _ = snapshot;
        Ok(())
    }
}

/// What to do when an agent's stored state cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnCorruptState {
    /// Fail the start with `data_corruption` naming the agent (the
    /// default): the supervisor reports it, nothing is overwritten.
    #[default]
    FailStart,
    /// Start from the defaults, which the start saves over the stored
    /// value at once. The stored state is lost; choose this only for state
    /// that can be rebuilt.
    StartFromDefaults,
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Loads and saves one agent's projection; erased so that volatile and
/// persistent agents share one server type.
pub(crate) trait Persister<A>: Send {
    /// Merges the stored state over `agent` (defaults) and runs the
    /// after-load hook.
    fn load<'a>(&'a mut self, agent: &'a mut A) -> BoxFuture<'a, Result<(), Error>>;

    /// Saves the projection if it changed since the last save; true when
    /// it wrote.
    fn save<'a>(&'a mut self, agent: &'a A) -> BoxFuture<'a, Result<bool, Error>>;

    /// Puts the persisted part of `agent` back to the last saved one.
    fn revert(&mut self, agent: &mut A);
}

/// How a persistent agent is stored; made once per start.
pub(crate) struct StorePersister<A: PersistentAgent> {
    id: std::sync::Arc<str>,
    keyspace: StateStore<A::Snapshot>,
    on_corrupt: OnCorruptState,
    /// The projection as it is on disk (or the defaults, when nothing is
    /// stored yet); `None` forces the next save.
    last_saved: Option<A::Snapshot>,
    defaults: Option<A::Snapshot>,
}

/// The keyspace an agent kind is stored in.
pub(crate) fn keyspace_name(kind: &str) -> String {
    format!("agents.{kind}")
}

impl<A: PersistentAgent> StorePersister<A> {
    pub(crate) fn new(
        store: &Store,
        id: std::sync::Arc<str>,
        on_corrupt: OnCorruptState,
    ) -> Result<StorePersister<A>, Error> {
        Ok(StorePersister {
            id,
            keyspace: store.state::<A::Snapshot>(&keyspace_name(A::KIND))?,
            on_corrupt,
            last_saved: None,
            defaults: None,
        })
    }

    fn undecodable(&self, error: Error) -> Error {
        Error::new(
            ErrorCode::DATA_CORRUPTION,
            format!(
                "agent {} ({}) has stored state that cannot be decoded",
                self.id,
                A::KIND
            ),
        )
        .with_context("agent", &*self.id)
        .with_context("kind", A::KIND)
        .with_cause(error)
    }
}

fn is_undecodable(error: &Error) -> bool {
    let code = error.code();
    code == ErrorCode::DATA_CORRUPTION
        || code == ErrorCode::TYPE_MISMATCH
        || code == ErrorCode::DESERIALIZATION_FAILED
}

impl<A: PersistentAgent> Persister<A> for StorePersister<A> {
    fn load<'a>(&'a mut self, agent: &'a mut A) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.defaults = Some(agent.snapshot());
            match self.keyspace.get(&self.id).await {
                Ok(Some(stored)) => {
                    agent.restore(stored.clone());
                    self.last_saved = Some(stored);
                }
                // Nothing stored: the defaults count as saved.
                Ok(None) => self.last_saved = self.defaults.clone(),
                Err(error) if is_undecodable(&error) => {
                    metrics::state_corrupt(A::KIND);
                    match self.on_corrupt {
                        OnCorruptState::FailStart => return Err(self.undecodable(error)),
                        OnCorruptState::StartFromDefaults => {
                            tracing::warn!(
                                agent = %self.id,
                                kind = A::KIND,
                                %error,
                                "stored agent state cannot be decoded; starting from defaults"
                            );
                            self.last_saved = None;
                        }
                    }
                }
                Err(error) => {
                    return Err(error
                        .with_context("agent", &*self.id)
                        .with_context("kind", A::KIND));
                }
            }
            agent.after_load()
        })
    }

    fn save<'a>(&'a mut self, agent: &'a A) -> BoxFuture<'a, Result<bool, Error>> {
        // The agent is read before the future: it need not be `Sync`.
        let snapshot = agent.snapshot();
        if self.last_saved.as_ref() == Some(&snapshot) {
            return Box::pin(std::future::ready(Ok(false)));
        }
        let mut stored = snapshot.clone();
        if let Err(error) = agent.before_save(&mut stored) {
            return Box::pin(std::future::ready(Err(error)));
        }
        Box::pin(async move {
            match self.keyspace.put(&self.id, &stored).await {
                Ok(_) => {
                    metrics::saved(A::KIND);
                    self.last_saved = Some(snapshot);
                    Ok(true)
                }
                Err(error) => {
                    metrics::save_failed(A::KIND);
                    Err(error
                        .with_context("agent", &*self.id)
                        .with_context("kind", A::KIND))
                }
            }
        })
    }

    fn revert(&mut self, agent: &mut A) {
        let target = self.last_saved.as_ref().or(self.defaults.as_ref());
        if let Some(target) = target
            && agent.snapshot() != *target
        {
            agent.restore(target.clone());
        }
    }
}
