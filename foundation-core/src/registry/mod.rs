//! The registry: unique names for processes, with metadata and indexed
//! queries.
//!
//! Reads (lookups, queries, counts) take a shared lock and never go
//! through an actor; writes take the exclusive lock for their whole
//! change, so an entry and its index entries change together. Each entry
//! is an exit hook on its process: when the process ends, the entry
//! disappears on its own, and unregistering removes the hook, so entries
//! cannot leak. Entries follow the process, not the instance: an actor
//! restarted by its supervisor keeps its name.
//!
//! This module is not a service directory across machines.

mod query;
mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use foundation_error::{Error, ErrorCode};

pub use query::{Condition, Query};
pub use value::{Metadata, Value};

use crate::process::{Down, ProcessRef};
use crate::{Actor, ActorRef};

/// A registered name, its process and its metadata.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The name.
    pub name: String,
    /// The process.
    pub process: ProcessRef,
    /// The metadata.
    pub metadata: Metadata,
}

/// Names processes; cheap to clone (clones share the entries).
///
/// ```
/// use foundation_core::registry::{Query, Registry};
/// use foundation_core::{Actor, Context, ExitReason, spawn};
/// use foundation_error::Error;
///
/// struct Agent;
/// impl Actor for Agent {
///     type Args = ();
///     type Call = ();
///     type Reply = ();
///     type Cast = ();
///     type Info = ();
///     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Agent) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let registry = Registry::builder().index("capability").build();
/// let agent = spawn::<Agent>(()).await?;
/// registry.register(
///     "planner-1",
///     &agent,
///     [("capability".into(), vec!["planning", "coding"].into()), ("load".into(), 2.into())].into(),
/// )?;
/// let found = registry.query(&Query::new().eq("capability", "coding").lt("load", 5));
/// assert_eq!(found[0].name, "planner-1");
///
/// let gone = agent.monitor();
/// agent.stop(ExitReason::Normal);
/// gone.await;
/// assert!(registry.lookup("planner-1").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    indexed: Vec<String>,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// attribute -> value -> names; only for indexed attributes.
    indexes: HashMap<String, BTreeMap<Value, BTreeSet<String>>>,
    next_registration: u64,
}

struct Entry {
    process: ProcessRef,
    metadata: Metadata,
    registration: u64,
    hook: u64,
}

/// Configures a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct RegistryBuilder {
    indexed: Vec<String>,
}

impl RegistryBuilder {
    /// Indexes an attribute, so that `eq`, `in` and range conditions on it
    /// do not scan every entry.
    pub fn index(&mut self, attribute: impl Into<String>) -> &mut Self {
        let attribute = attribute.into();
        if !self.indexed.contains(&attribute) {
            self.indexed.push(attribute);
        }
        self
    }

    /// Builds the registry.
    pub fn build(&self) -> Registry {
        let indexes = self
            .indexed
            .iter()
            .map(|attribute| (attribute.clone(), BTreeMap::new()))
            .collect();
        Registry {
            inner: Arc::new(Inner {
                indexed: self.indexed.clone(),
                state: RwLock::new(State {
                    indexes,
                    ..State::default()
                }),
            }),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("indexed", &self.inner.indexed)
            .field("entries", &self.count())
            .finish()
    }
}

impl Registry {
    /// A registry without indexes.
    pub fn new() -> Registry {
        RegistryBuilder::default().build()
    }

    /// A builder, to declare indexed attributes.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Critical sections never run user code: a poisoned lock still
        // guards consistent data.
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `name` for `process`. Fails with `already_exists` when the
    /// name is taken and with `process_not_alive` when the process has
    /// ended.
    pub fn register(
        &self,
        name: impl Into<String>,
        process: impl Into<ProcessRef>,
        metadata: Metadata,
    ) -> Result<(), Error> {
        let name = name.into();
        let process = process.into();
        let mut state = self.write();
        if let Some(existing) = state.entries.get(&name) {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!("the name {name} is already registered"),
            )
            .with_context("name", &name)
            .with_context("process", existing.process.id()));
        }
        let registration = state.next_registration;
        state.next_registration += 1;
        let registry = Arc::downgrade(&self.inner);
        let hook_name = name.clone();
        let hook = Box::new(move |_: &Down| remove_on_exit(&registry, &hook_name, registration));
        let hook = process.inner.add_exit_hook(hook).map_err(|(_, reason)| {
            Error::new(
                ErrorCode::PROCESS_NOT_ALIVE,
                format!(
                    "cannot register {name}: process {} has ended ({reason})",
                    process.id()
                ),
            )
        })?;
        index(&mut state, &self.inner.indexed, &name, &metadata);
        state.entries.insert(
            name,
            Entry {
                process,
                metadata,
                registration,
                hook,
            },
        );
        Ok(())
    }

    /// Removes `name`; false when it was not registered.
    pub fn unregister(&self, name: &str) -> bool {
        let mut state = self.write();
        match state.entries.remove(name) {
            Some(entry) => {
                deindex(&mut state, name, &entry.metadata);
                drop(state);
                entry.process.inner.remove_exit_hook(entry.hook);
                true
            }
            None => false,
        }
    }

    /// The registration of `name`.
    pub fn lookup(&self, name: &str) -> Option<Registration> {
        self.read().entries.get(name).map(|entry| Registration {
            name: name.to_owned(),
            process: entry.process.clone(),
            metadata: entry.metadata.clone(),
        })
    }

    /// The process of `name`, without copying the metadata.
    pub fn whereis(&self, name: &str) -> Option<ProcessRef> {
        self.read()
            .entries
            .get(name)
            .map(|entry| entry.process.clone())
    }

    /// The typed handle of `name`, when it is an actor of type `A`.
    pub fn lookup_actor<A: Actor>(&self, name: &str) -> Option<ActorRef<A>> {
        self.whereis(name)?.downcast::<A>()
    }

    /// Replaces the metadata of `name`.
    pub fn update_metadata(&self, name: &str, metadata: Metadata) -> Result<(), Error> {
        self.update_metadata_with(name, |current| *current = metadata)
    }

    /// Changes the metadata of `name` in place, atomically with its index
    /// entries.
    pub fn update_metadata_with(
        &self,
        name: &str,
        change: impl FnOnce(&mut Metadata),
    ) -> Result<(), Error> {
        let mut state = self.write();
        let Some(entry) = state.entries.get(name) else {
            return Err(Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!("the name {name} is not registered"),
            ));
        };
        let mut metadata = entry.metadata.clone();
        let old = metadata.clone();
        change(&mut metadata);
        deindex(&mut state, name, &old);
        index(&mut state, &self.inner.indexed, name, &metadata);
        if let Some(entry) = state.entries.get_mut(name) {
            entry.metadata = metadata;
        }
        Ok(())
    }

    /// Every registration matching `query`, sorted by name.
    pub fn query(&self, query: &Query) -> Vec<Registration> {
        let state = self.read();
        let mut names: Vec<&String> = match candidates(&state, query) {
            Some(names) => names
                .into_iter()
                .filter(|name| {
                    state
                        .entries
                        .get(*name)
                        .is_some_and(|entry| query.matches(&entry.metadata))
                })
                .collect(),
            None => state
                .entries
                .iter()
                .filter(|(_, entry)| query.matches(&entry.metadata))
                .map(|(name, _)| name)
                .collect(),
        };
        names.sort();
        names
            .into_iter()
            .filter_map(|name| {
                state.entries.get(name).map(|entry| Registration {
                    name: name.clone(),
                    process: entry.process.clone(),
                    metadata: entry.metadata.clone(),
                })
            })
            .collect()
    }

    /// The number of registrations matching `query`.
    pub fn count_matching(&self, query: &Query) -> usize {
        let state = self.read();
        state
            .entries
            .values()
            .filter(|entry| query.matches(&entry.metadata))
            .count()
    }

    /// The number of registrations.
    pub fn count(&self) -> usize {
        self.read().entries.len()
    }

    /// Every registration, sorted by name.
    pub fn list(&self) -> Vec<Registration> {
        self.query(&Query::new())
    }
}

fn remove_on_exit(registry: &Weak<Inner>, name: &str, registration: u64) {
    let Some(inner) = registry.upgrade() else {
        return;
    };
    let mut state = inner.state.write().unwrap_or_else(PoisonError::into_inner);
    // Only this registration: the name may have been taken again since.
    if state
        .entries
        .get(name)
        .is_some_and(|entry| entry.registration == registration)
        && let Some(entry) = state.entries.remove(name)
    {
        deindex(&mut state, name, &entry.metadata);
    }
}

fn index(state: &mut State, indexed: &[String], name: &str, metadata: &Metadata) {
    for attribute in indexed {
        let Some(value) = metadata.get(attribute) else {
            continue;
        };
        let index = state.indexes.entry(attribute.clone()).or_default();
        for element in value.elements() {
            index
                .entry(element.clone())
                .or_default()
                .insert(name.to_owned());
        }
    }
}

fn deindex(state: &mut State, name: &str, metadata: &Metadata) {
    for (attribute, index) in &mut state.indexes {
        let Some(value) = metadata.get(attribute) else {
            continue;
        };
        for element in value.elements() {
            if let Some(names) = index.get_mut(element) {
                names.remove(name);
                if names.is_empty() {
                    index.remove(element);
                }
            }
        }
    }
}

/// The names an index can narrow `query` to, or `None` to scan.
fn candidates<'a>(state: &'a State, query: &Query) -> Option<BTreeSet<&'a String>> {
    let mut best: Option<BTreeSet<&String>> = None;
    for condition in query.conditions() {
        let Some(index) = state.indexes.get(condition.attribute()) else {
            continue;
        };
        let found: BTreeSet<&String> = match condition {
            Condition::Eq(_, value) => index.get(value).into_iter().flatten().collect(),
            Condition::In(_, values) => values
                .iter()
                .filter_map(|value| index.get(value))
                .flatten()
                .collect(),
            Condition::Gt(_, bound) => range(index, Bound::Excluded(bound), Bound::Unbounded),
            Condition::Gte(_, bound) => range(index, Bound::Included(bound), Bound::Unbounded),
            Condition::Lt(_, bound) => range(index, Bound::Unbounded, Bound::Excluded(bound)),
            Condition::Lte(_, bound) => range(index, Bound::Unbounded, Bound::Included(bound)),
            _ => continue,
        };
        if best.as_ref().is_none_or(|best| found.len() < best.len()) {
            best = Some(found);
        }
    }
    best
}

fn range<'a>(
    index: &'a BTreeMap<Value, BTreeSet<String>>,
    low: Bound<&Value>,
    high: Bound<&Value>,
) -> BTreeSet<&'a String> {
    index
        .range::<Value, _>((low, high))
        .flat_map(|(_, names)| names)
        .collect()
}
