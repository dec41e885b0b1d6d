//! Opening [`Flags`]: declarations, store, environment, clock, timeout.
//!
//! Start-up order, each layer overriding the one before:
//! 1. the declared defaults (in code or TOML);
//! 2. the values stored by earlier runs (through the [`FlagStore`]);
//! 3. the environment overrides `FOUNDATION_FLAG_<NAME>=on|off|<0-100>`.
//!
//! Overrides are audited (as [`AuditAction::EnvironmentOverride`](crate::AuditAction::EnvironmentOverride))
//! but not stored as values, so removing the variable restores the stored
//! value at the next start. An override of a flag with a running ramp pauses
//! that ramp (audited), so the schedule does not undo the override; resume
//! it explicitly. After start-up, writes win over everything until the next
//! start. This module is not for reads or writes (`registry.rs`,
//! `writer.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use foundation_error::clock::{self, Clock, SharedClock};
use foundation_error::{Error, ErrorCode, Result};
use tokio::sync::{Mutex, Notify, broadcast};

use crate::declaration::Flag;
use crate::environment::{parse_overrides, process_environment};
use crate::metrics;
use crate::registry::{Flags, Registry, Shared};
use crate::store::{FlagStore, InMemoryFlagStore};
use crate::writer::Writer;

/// How long a write waits for the writer lock and for each store call,
/// unless set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many changes a subscriber may fall behind before losing some.
const CHANGE_CHANNEL_CAPACITY: usize = 256;

/// Configures and opens [`Flags`].
///
/// ```
/// use foundation_flags::{Flag, FlagValue, Flags, InMemoryFlagStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Flags::builder();
/// builder
///     .declare(Flag::new("beta", "Beta features", FlagValue::Off))
///     .store(InMemoryFlagStore::new())
///     .environment([("FOUNDATION_FLAG_BETA", "on")]);
/// let flags = builder.open().await?;
/// assert!(flags.is_enabled("beta"));
/// # Ok(())
/// # }
/// ```
pub struct FlagsBuilder {
    declarations: Vec<Flag>,
    store: Option<Arc<dyn FlagStore>>,
    environment: Vec<(String, String)>,
    environment_error: Option<Error>,
    clock: SharedClock,
    timeout: Duration,
}

impl Flags {
    /// A builder with no flags, an in-memory store, no environment
    /// overrides, the system clock and a 5-second timeout.
    pub fn builder() -> FlagsBuilder {
        FlagsBuilder {
            declarations: Vec::new(),
            store: None,
            environment: Vec::new(),
            environment_error: None,
            clock: clock::system(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl FlagsBuilder {
    /// Declares a flag. Names must be unique and valid; checked by `open`.
    pub fn declare(&mut self, flag: Flag) -> &mut Self {
        self.declarations.push(flag);
        self
    }

    /// Declares several flags, for example those of a TOML file
    /// ([`declarations_from_toml_file`](crate::declarations_from_toml_file)).
    pub fn declare_all(&mut self, flags: impl IntoIterator<Item = Flag>) -> &mut Self {
        self.declarations.extend(flags);
        self
    }

    /// Where values, ramps and the audit log persist. Without one, an
    /// [`InMemoryFlagStore`] is used and nothing outlives the process.
    pub fn store(&mut self, store: impl FlagStore) -> &mut Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Like [`store`](Self::store), for a store already shared.
    pub fn shared_store(&mut self, store: Arc<dyn FlagStore>) -> &mut Self {
        self.store = Some(store);
        self
    }

    /// The environment to read `FOUNDATION_FLAG_*` overrides from, as
    /// `(name, value)` pairs; other variables are ignored. Replaces any
    /// environment set before. Without this (or
    /// [`process_environment`](Self::process_environment)) there are no
    /// overrides.
    pub fn environment<I, K, V>(&mut self, pairs: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.environment = pairs
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        self.environment_error = None;
        self
    }

    /// Reads the overrides from this process's environment (now).
    pub fn process_environment(&mut self) -> &mut Self {
        match process_environment() {
            Ok(pairs) => {
                self.environment = pairs;
                self.environment_error = None;
            }
            Err(error) => self.environment_error = Some(error),
        }
        self
    }

    /// The clock whose wall time stamps audit entries and schedules ramps
    /// (the system clock, [`clock::system`], unless set). Any
    /// [`Clock`] will do, the one [`SharedClock`] of an application
    /// included; tests use [`TokioClock::following`] so paused tokio time
    /// moves the wall time, or a [`ManualClock`].
    ///
    /// [`TokioClock::following`]: foundation_error::clock::TokioClock::following
    /// [`ManualClock`]: foundation_error::clock::ManualClock
    pub fn clock(&mut self, clock: impl Clock) -> &mut Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a write waits for the writer lock and for each store call
    /// (5 seconds unless set; must be positive).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Validates the declarations, loads the store, applies the environment
    /// overrides and opens the flags. Needs a tokio runtime with time
    /// enabled, like every write.
    ///
    /// Errors: an invalid or duplicate declaration
    /// ([`ErrorCode::INVALID_CONFIG_VALUE`], [`ErrorCode::ALREADY_EXISTS`]),
    /// two names with the same environment variable
    /// ([`ErrorCode::CONSTRAINT_VIOLATION`]), an invalid override (see
    /// [`process_environment`](crate::process_environment)), a zero
    /// timeout, and store failures or timeouts.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the flags being opened. The only write is
    /// the audit of environment overrides: dropped during its store commit,
    /// those audit entries may or may not be stored (they are recorded
    /// again at the next open while the variables are set).
    pub async fn open(&self) -> Result<Flags> {
        if self.timeout.is_zero() {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "the flags' timeout must be positive",
            ));
        }
        if let Some(error) = &self.environment_error {
            return Err(error.clone());
        }
        let declarations = self.declarations.clone();
        check_declarations(&declarations)?;
        let overrides = parse_overrides(&declarations, &self.environment)?;

        let store = self
            .store
            .clone()
            .unwrap_or_else(|| Arc::new(InMemoryFlagStore::new()));
        let stored = tokio::time::timeout(self.timeout, store.load())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    format!("the flag store did not load within {:?}", self.timeout),
                )
            })??;

        let positions: HashMap<&str, usize> = declarations
            .iter()
            .enumerate()
            .map(|(position, flag)| (flag.name(), position))
            .collect();
        let mut values: Vec<_> = declarations.iter().map(Flag::default_value).collect();
        for (name, value) in &stored.values {
            // Values of flags no longer declared stay stored and unused.
            if let Some(&position) = positions.get(name.as_str()) {
                values[position] = *value;
            }
        }
        let mut ramps = BTreeMap::new();
        for ramp in &stored.ramps {
            if let Some(&position) = positions.get(ramp.plan.flag()) {
                ramps.insert(position, ramp.clone());
            }
        }

        let registry = Arc::new(Registry::new(declarations, &values));
        let writer = Writer::new(values, ramps, stored.last_sequence);
        let snapshot = writer.snapshot(&registry);
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        let flags = Flags {
            shared: Arc::new(Shared {
                registry,
                snapshot: ArcSwap::from_pointee(snapshot),
                writer: Mutex::new(writer),
                store,
                changes,
                ramp_wakeup: Arc::new(Notify::new()),
                clock: self.clock.clone(),
                timeout: self.timeout,
            }),
        };
        if !overrides.is_empty() {
            flags
                .write(|draft| {
                    for item in &overrides {
                        draft.environment_override(
                            item.position,
                            item.value,
                            &format!("{}={}", item.variable, item.raw),
                        );
                    }
                    Ok(())
                })
                .await?;
            flags.shared.writer.lock().await.overridden =
                overrides.iter().map(|item| item.position).collect();
        }
        metrics::describe();
        for (name, value) in flags.snapshot().iter() {
            metrics::set_percentage(name, value);
        }
        Ok(flags)
    }
}

fn check_declarations(declarations: &[Flag]) -> Result<()> {
    let mut names = HashMap::new();
    let mut variables: HashMap<String, &str> = HashMap::new();
    for flag in declarations {
        flag.validate()?;
        if names.insert(flag.name(), ()).is_some() {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!("flag `{}` is declared twice", flag.name()),
            )
            .with_context("flag", flag.name()));
        }
        if let Some(other) = variables.insert(flag.environment_variable(), flag.name()) {
            return Err(Error::new(
                ErrorCode::CONSTRAINT_VIOLATION,
                format!(
                    "flags `{other}` and `{}` share the environment variable {}; rename one",
                    flag.name(),
                    flag.environment_variable()
                ),
            )
            .with_context("flag", flag.name()));
        }
    }
    Ok(())
}
