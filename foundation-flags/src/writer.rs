//! The write side: every change goes through one serialised path that
//! validates it, stores it, publishes it, broadcasts it and counts it.
//!
//! A write runs under the writer lock (acquired with a timeout):
//! 1. it settles a previous write whose store commit had an unknown outcome
//!    (timed out, or its caller stopped waiting), by asking the store for
//!    its last audit sequence and, when that moved, for the entries after
//!    the write's base: if that write's entries are stored it is published
//!    now, otherwise it is dropped; what other writers stored meanwhile is
//!    then reloaded;
//! 2. it builds a [`Draft`] from the current state; an invalid request
//!    fails here and changes nothing;
//! 3. it commits the draft's effects to the store (with a timeout),
//!    conditional on the store's last audit sequence being the one the
//!    draft was decided on; a store error changes nothing;
//! 4. when the store refuses the commit as stale (another `Flags` sharing
//!    the store wrote first), it waits a little (2 ms doubling up to
//!    64 ms, plus as much again chosen per instance, so that two writers
//!    that collided do not collide again in step), reloads what the store
//!    holds and goes back to 2, at most [`WRITE_ATTEMPTS`] times: the
//!    draft is decided again on the fresh state, so a ramp step the other
//!    writer already took is not due any more and nothing is written;
//! 5. it publishes: a new snapshot, then the per-flag cells, then the
//!    broadcast and the metrics.
//!
//! The audit sequence is therefore allocated by the store (a
//! compare-and-set on its last sequence): one total order per store, with
//! no duplicate, whichever process wrote.
//!
//! Publishing only after the store has the change means a reader never
//! sees a value that a restart would lose. This module is not for reads
//! (`registry.rs`).
//!
//! # Cancel safety of every write
//!
//! Dropping a write's future (set, apply, reset, the ramp controls,
//! `advance_ramps`) before it reaches the store changes nothing. Dropped
//! while the store commit is in flight, the change's outcome is unknown,
//! exactly as after a store timeout: it is not visible now, and the next
//! write settles it first (published if the store has it, forgotten if
//! not). To find out, read the stored
//! [`audit_log`](crate::Flags::audit_log), or call
//! [`advance_ramps`](crate::Flags::advance_ramps), which settles an
//! unknown outcome before its own work. No write is ever half applied: a
//! snapshot shows all of a change or none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foundation_error::{Error, ErrorCode, Result};

use crate::audit::{Attribution, AuditAction, AuditEntry, AuditQuery, FlagChange};
use crate::metrics;
use crate::ramp::{RampPlan, RampState};
use crate::registry::{FlagSnapshot, Flags, Registry};
use crate::store::{FlagCommit, RampUpdate, StoredFlags};
use crate::value::FlagValue;

/// How many times a write is decided and committed when the store refuses
/// it as stale (another writer sharing the store wrote first).
pub const WRITE_ATTEMPTS: u32 = 16;

/// The most audit entries read to find out whether a commit with an
/// unknown outcome was stored (see [`Flags::write`]'s settling).
const SETTLE_AUDIT_WINDOW: u64 = 10_000;

/// The authoritative state behind the writer lock.
pub(crate) struct Writer {
    values: Vec<FlagValue>,
    ramps: BTreeMap<usize, RampState>,
    next_sequence: u64,
    version: u64,
    /// A write whose store commit may or may not have happened.
    pending: Option<Arc<Pending>>,
    /// Flags set by an environment override at open: a reload keeps their
    /// value (the environment wins over the store, as at open).
    pub(crate) overridden: Vec<usize>,
}

#[derive(Clone)]
struct Pending {
    commit: FlagCommit,
    values: Vec<FlagValue>,
    ramps: BTreeMap<usize, RampState>,
    changed: Vec<usize>,
}

impl Writer {
    pub(crate) fn new(
        values: Vec<FlagValue>,
        ramps: BTreeMap<usize, RampState>,
        last_sequence: u64,
    ) -> Writer {
        Writer {
            values,
            ramps,
            next_sequence: last_sequence + 1,
            version: 0,
            pending: None,
            overridden: Vec::new(),
        }
    }

    pub(crate) fn snapshot(&self, registry: &Arc<Registry>) -> FlagSnapshot {
        FlagSnapshot {
            version: self.version,
            values: self.values.clone().into_boxed_slice(),
            ramps: self.ramps.values().cloned().collect(),
            registry: Arc::clone(registry),
        }
    }
}

/// A write being prepared: a copy of the state plus what to store.
pub(crate) struct Draft<'a> {
    registry: &'a Registry,
    now: SystemTime,
    values: Vec<FlagValue>,
    ramps: BTreeMap<usize, RampState>,
    entries: Vec<AuditEntry>,
    value_updates: Vec<(String, Option<FlagValue>)>,
    ramp_updates: Vec<RampUpdate>,
    changed: Vec<usize>,
    next_sequence: u64,
}

impl<'a> Draft<'a> {
    fn new(registry: &'a Registry, writer: &Writer, now: SystemTime) -> Draft<'a> {
        Draft {
            registry,
            now,
            values: writer.values.clone(),
            ramps: writer.ramps.clone(),
            entries: Vec::new(),
            value_updates: Vec::new(),
            ramp_updates: Vec::new(),
            changed: Vec::new(),
            next_sequence: writer.next_sequence,
        }
    }

    fn name(&self, position: usize) -> &'a str {
        self.registry.flags[position].name()
    }

    fn record(
        &mut self,
        position: usize,
        action: AuditAction,
        new_value: FlagValue,
        who: &str,
        reason: &str,
    ) {
        let old_value = self.values[position];
        if old_value != new_value {
            self.values[position] = new_value;
            if !self.changed.contains(&position) {
                self.changed.push(position);
            }
        }
        self.entries.push(AuditEntry {
            sequence: self.next_sequence,
            flag: self.name(position).to_owned(),
            action,
            old_value,
            new_value,
            who: who.to_owned(),
            reason: reason.to_owned(),
            at: self.now,
        });
        self.next_sequence += 1;
    }

    /// A write that takes the flag over: cancels its ramp, sets and stores
    /// the value (`stored: None` forgets the stored value).
    fn take_over(
        &mut self,
        position: usize,
        value: FlagValue,
        stored: Option<FlagValue>,
        action: AuditAction,
        by: &Attribution,
    ) {
        if self.ramps.remove(&position).is_some() {
            let reason = format!("superseded by a {} write: {}", action.as_str(), by.reason());
            let current = self.values[position];
            self.record(
                position,
                AuditAction::RampCancelled,
                current,
                by.who(),
                &reason,
            );
            self.ramp_updates
                .push(RampUpdate::Remove(self.name(position).to_owned()));
        }
        self.record(position, action, value, by.who(), by.reason());
        self.value_updates
            .push((self.name(position).to_owned(), stored));
    }

    /// An environment override at start-up: sets the value without storing
    /// it, and pauses the flag's ramp so the schedule does not undo it.
    /// `assignment` is the variable as set, `NAME=value`.
    pub(crate) fn environment_override(
        &mut self,
        position: usize,
        value: FlagValue,
        assignment: &str,
    ) {
        let reason = assignment;
        if let Some(ramp) = self.ramps.get_mut(&position)
            && !ramp.paused
        {
            ramp.paused = true;
            let update = RampUpdate::Upsert(ramp.clone());
            let current = self.values[position];
            self.record(
                position,
                AuditAction::RampPaused,
                current,
                "environment",
                &format!("paused by the environment override {reason}"),
            );
            self.ramp_updates.push(update);
        }
        if self.values[position] != value {
            self.record(
                position,
                AuditAction::EnvironmentOverride,
                value,
                "environment",
                reason,
            );
        }
    }

    fn into_pending(self) -> Pending {
        let base_sequence = self.entries.first().map_or(0, |entry| entry.sequence - 1);
        Pending {
            commit: FlagCommit {
                base_sequence,
                entries: self.entries,
                values: self.value_updates,
                ramps: self.ramp_updates,
            },
            values: self.values,
            ramps: self.ramps,
            changed: self.changed,
        }
    }
}

impl Flags {
    /// Sets one flag, cancelling its ramp if one is running.
    ///
    /// Errors, each changing nothing: [`ErrorCode::FLAG_NOT_FOUND`] for an
    /// undeclared flag, [`ErrorCode::INVALID_INPUT`] for a missing `who` or
    /// reason, [`ErrorCode::TIMEOUT`] or the store's error when the change
    /// could not be stored. (An out-of-range percentage cannot reach here:
    /// [`FlagValue::percentage`] refuses it.)
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn set(&self, name: &str, value: FlagValue, by: Attribution) -> Result<FlagChange> {
        self.apply_with_action([(name, value)], by, AuditAction::Set)
            .await
    }

    /// Sets several flags as one change: one store commit, one snapshot,
    /// one broadcast. A reader taking a snapshot sees all of it or none of
    /// it. Running ramps of those flags are cancelled.
    ///
    /// Errors as [`set`](Self::set), plus [`ErrorCode::INVALID_INPUT`] when
    /// a flag appears twice; any error changes nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn apply<I, N>(&self, changes: I, by: Attribution) -> Result<FlagChange>
    where
        I: IntoIterator<Item = (N, FlagValue)>,
        N: AsRef<str>,
    {
        self.apply_with_action(changes, by, AuditAction::BulkApply)
            .await
    }

    async fn apply_with_action<I, N>(
        &self,
        changes: I,
        by: Attribution,
        action: AuditAction,
    ) -> Result<FlagChange>
    where
        I: IntoIterator<Item = (N, FlagValue)>,
        N: AsRef<str>,
    {
        by.validate()?;
        let registry = &self.shared.registry;
        let mut resolved: Vec<(usize, FlagValue)> = Vec::new();
        for (name, value) in changes {
            let name = name.as_ref();
            let position = registry.position_or_error(name)?;
            if resolved.iter().any(|(seen, _)| *seen == position) {
                return Err(Error::new(
                    ErrorCode::INVALID_INPUT,
                    format!("flag `{name}` appears twice in one change"),
                )
                .with_context("flag", name));
            }
            resolved.push((position, value));
        }
        self.write(|draft| {
            for &(position, value) in &resolved {
                draft.take_over(position, value, Some(value), action, &by);
            }
            Ok(())
        })
        .await
    }

    /// Resets a flag to its declared default and forgets its stored value
    /// (so a new default in a later release applies); cancels its ramp.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn reset(&self, name: &str, by: Attribution) -> Result<FlagChange> {
        by.validate()?;
        let registry = &self.shared.registry;
        let position = registry.position_or_error(name)?;
        let default = registry.flags[position].default_value();
        self.write(|draft| {
            draft.take_over(position, default, None, AuditAction::Reset, &by);
            Ok(())
        })
        .await
    }

    /// Starts a ramp: sets the flag to the plan's `from` now, then steps it
    /// towards `to` every interval, driven by [`Flags::advance_ramps`] (which
    /// a [`RampDriver`](crate::RampDriver) calls when steps fall due).
    ///
    /// Errors: [`ErrorCode::FLAG_NOT_FOUND`], [`ErrorCode::ALREADY_EXISTS`]
    /// when the flag already has a ramp, and the errors of [`set`](Self::set).
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn start_ramp(&self, plan: RampPlan, by: Attribution) -> Result<FlagChange> {
        by.validate()?;
        let position = self.shared.registry.position_or_error(plan.flag())?;
        self.write(|draft| {
            if draft.ramps.contains_key(&position) {
                return Err(Error::new(
                    ErrorCode::ALREADY_EXISTS,
                    format!("flag `{}` already has a ramp; cancel it first", plan.flag()),
                )
                .with_context("flag", plan.flag()));
            }
            let from = FlagValue::Percentage(plan.from());
            let state = RampState::start(
                plan.clone(),
                draft.now,
                by.who().to_owned(),
                by.reason().to_owned(),
            );
            draft.record(
                position,
                AuditAction::RampStarted,
                from,
                by.who(),
                by.reason(),
            );
            draft
                .value_updates
                .push((draft.name(position).to_owned(), Some(from)));
            draft.ramp_updates.push(RampUpdate::Upsert(state.clone()));
            draft.ramps.insert(position, state);
            Ok(())
        })
        .await
    }

    /// Pauses a flag's ramp; pausing a paused ramp changes nothing.
    ///
    /// Errors: [`ErrorCode::DATA_NOT_FOUND`] when the flag has no ramp.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn pause_ramp(&self, name: &str, by: Attribution) -> Result<FlagChange> {
        self.control_ramp(name, by, AuditAction::RampPaused).await
    }

    /// Resumes a paused ramp; its next step falls due one interval from
    /// now. Resuming a running ramp changes nothing.
    ///
    /// Errors: [`ErrorCode::DATA_NOT_FOUND`] when the flag has no ramp.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn resume_ramp(&self, name: &str, by: Attribution) -> Result<FlagChange> {
        self.control_ramp(name, by, AuditAction::RampResumed).await
    }

    /// Cancels a flag's ramp; the flag keeps its current value.
    ///
    /// Errors: [`ErrorCode::DATA_NOT_FOUND`] when the flag has no ramp.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn cancel_ramp(&self, name: &str, by: Attribution) -> Result<FlagChange> {
        self.control_ramp(name, by, AuditAction::RampCancelled)
            .await
    }

    async fn control_ramp(
        &self,
        name: &str,
        by: Attribution,
        action: AuditAction,
    ) -> Result<FlagChange> {
        by.validate()?;
        let position = self.shared.registry.position_or_error(name)?;
        self.write(|draft| {
            let now = draft.now;
            let Some(ramp) = draft.ramps.get_mut(&position) else {
                return Err(Error::new(
                    ErrorCode::DATA_NOT_FOUND,
                    format!("flag `{name}` has no ramp"),
                )
                .with_context("flag", name));
            };
            let update = match action {
                AuditAction::RampPaused if !ramp.paused => {
                    ramp.paused = true;
                    RampUpdate::Upsert(ramp.clone())
                }
                AuditAction::RampResumed if ramp.paused => {
                    ramp.paused = false;
                    ramp.next_step_at = now + ramp.plan.interval();
                    RampUpdate::Upsert(ramp.clone())
                }
                AuditAction::RampCancelled => {
                    draft.ramps.remove(&position);
                    RampUpdate::Remove(name.to_owned())
                }
                // Already in the requested state.
                _ => return Ok(()),
            };
            let current = draft.values[position];
            draft.record(position, action, current, by.who(), by.reason());
            draft.ramp_updates.push(update);
            Ok(())
        })
        .await
    }

    /// Runs every ramp step that is due now (by the flags' clock) as one
    /// change, and returns it (empty when nothing was due). Each step is an
    /// audited change attributed to whoever started the ramp.
    ///
    /// A [`RampDriver`](crate::RampDriver) calls this when steps fall due;
    /// call it yourself to drive ramps from your own timer.
    ///
    /// # Cancel safety
    ///
    /// Dropped before its store commit, nothing changed; dropped during it,
    /// the outcome is unknown until the next write settles it (see the
    /// writer's module docs). Never half applied.
    pub async fn advance_ramps(&self) -> Result<FlagChange> {
        self.write(|draft| {
            let now = draft.now;
            let due: Vec<usize> = draft
                .ramps
                .iter()
                .filter(|(_, ramp)| ramp.is_due(now))
                .map(|(position, _)| *position)
                .collect();
            for position in due {
                let Some(mut ramp) = draft.ramps.remove(&position) else {
                    continue;
                };
                let (current, complete) = ramp.step(now);
                let reason = format!(
                    "ramp to {} by {} points every {:?}{}: {}",
                    ramp.plan.to(),
                    ramp.plan.step(),
                    ramp.plan.interval(),
                    if complete { " (complete)" } else { "" },
                    ramp.reason
                );
                let value = FlagValue::Percentage(current);
                draft.record(
                    position,
                    AuditAction::RampStep,
                    value,
                    &ramp.started_by,
                    &reason,
                );
                let name = draft.name(position).to_owned();
                draft.value_updates.push((name.clone(), Some(value)));
                if complete {
                    draft.ramp_updates.push(RampUpdate::Remove(name));
                } else {
                    draft.ramp_updates.push(RampUpdate::Upsert(ramp.clone()));
                    draft.ramps.insert(position, ramp);
                }
            }
            Ok(())
        })
        .await
    }

    /// Reads the values and ramps from the store again and publishes what
    /// differs from this instance's state, without storing anything: for
    /// several processes sharing one store (each holds its own `Flags`),
    /// a process calls this when the store tells it another one changed the
    /// flags. Stored values win over this instance's, as at open, except
    /// for flags an environment override set at open, which keep their
    /// value; a flag without a stored value returns to its default.
    ///
    /// The returned change carries the new version and no audit entries
    /// (the process that made the change recorded them); it is empty, with
    /// the version unchanged, when nothing differed. Subscribers get it
    /// like any other change.
    ///
    /// # Errors
    ///
    /// `timeout` when the writer or the store does not answer within the
    /// flags' timeout; the store's load errors. Nothing changes then.
    ///
    /// # Cancel safety
    ///
    /// Dropped before the load completes, nothing changed; after, the
    /// publication is synchronous, so it happened entirely or not at all.
    pub async fn reload(&self) -> Result<FlagChange> {
        let shared = &*self.shared;
        let mut writer = tokio::time::timeout(shared.timeout, shared.writer.lock())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    format!(
                        "a flag change held the writer for {:?}; the flags were not reloaded",
                        shared.timeout
                    ),
                )
            })?;
        self.settle_pending(&mut writer).await?;
        let stored = self.load_stored("reloading the flags").await?;
        Ok(self.adopt(&mut writer, &stored))
    }

    /// What the store holds, read within the flags' timeout; `doing` names
    /// the read in the timeout's message.
    async fn load_stored(&self, doing: &str) -> Result<StoredFlags> {
        let shared = &*self.shared;
        tokio::time::timeout(shared.timeout, shared.store.load())
            .await
            .map_err(|_| store_timeout(doing, shared.timeout))?
    }

    /// Publishes `stored` (as [`reload`](Self::reload) describes) as this
    /// instance's state; `writer` is the locked writer.
    fn adopt(&self, writer: &mut Writer, stored: &StoredFlags) -> FlagChange {
        let shared = &*self.shared;
        let registry = &shared.registry;
        let mut values: Vec<FlagValue> = registry
            .flags
            .iter()
            .map(crate::Flag::default_value)
            .collect();
        for (name, value) in &stored.values {
            if let Some(position) = registry.position(name) {
                values[position] = *value;
            }
        }
        for &position in &writer.overridden {
            values[position] = writer.values[position];
        }
        let mut ramps = BTreeMap::new();
        for ramp in &stored.ramps {
            if let Some(position) = registry.position(ramp.plan.flag()) {
                ramps.insert(position, ramp.clone());
            }
        }
        let changed: Vec<usize> = (0..values.len())
            .filter(|&position| values[position] != writer.values[position])
            .collect();
        let ramps_changed = ramps != writer.ramps;
        // The store allocates the sequence: the next write continues it.
        writer.next_sequence = stored.last_sequence + 1;
        if changed.is_empty() && !ramps_changed {
            return FlagChange::new(writer.version, Arc::from([]));
        }
        writer.version += 1;
        writer.values = values;
        writer.ramps = ramps;
        // Snapshot first, then cells: see registry.rs for the guarantee.
        shared
            .snapshot
            .store(Arc::new(writer.snapshot(&shared.registry)));
        for &position in &changed {
            registry.store_value(position, writer.values[position]);
            metrics::set_percentage(registry.flags[position].name(), writer.values[position]);
        }
        let change = FlagChange::new(writer.version, Arc::from([]));
        // No subscribers is not an error.
        let _ = shared.changes.send(change.clone());
        if ramps_changed {
            shared.ramp_wakeup.notify_waiters();
        }
        change
    }

    /// Reads the audit log from the store: the most recent entries matching
    /// `query`, oldest first. Waits at most the flags' timeout.
    ///
    /// # Cancel safety
    ///
    /// A read: dropping the future changes nothing.
    pub async fn audit_log(&self, query: AuditQuery) -> Result<Vec<AuditEntry>> {
        let shared = &self.shared;
        tokio::time::timeout(shared.timeout, shared.store.audit_log(&query))
            .await
            .map_err(|_| store_timeout("reading the audit log", shared.timeout))?
    }

    /// The one write path; see the module documentation. `edit` may run
    /// more than once: again on the fresh state after the store refused a
    /// commit as stale.
    pub(crate) async fn write<F>(&self, mut edit: F) -> Result<FlagChange>
    where
        F: FnMut(&mut Draft<'_>) -> Result<()>,
    {
        let shared = &*self.shared;
        let mut writer = tokio::time::timeout(shared.timeout, shared.writer.lock())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    format!(
                        "another flag change held the writer for {:?}; nothing was changed",
                        shared.timeout
                    ),
                )
            })?;
        let mut attempt = 1;
        loop {
            self.settle_pending(&mut writer).await?;
            let mut draft = Draft::new(&shared.registry, &writer, shared.clock.wall());
            edit(&mut draft)?;
            if draft.entries.is_empty() {
                return Ok(FlagChange::new(writer.version, Arc::from([])));
            }
            let pending = Arc::new(draft.into_pending());
            // Recorded before awaiting the store, so that a caller that stops
            // waiting leaves the outcome to be settled by the next write.
            writer.pending = Some(Arc::clone(&pending));
            let outcome =
                tokio::time::timeout(shared.timeout, shared.store.commit(&pending.commit)).await;
            match outcome {
                Ok(Ok(())) => {
                    writer.pending = None;
                    return Ok(self.publish(&mut writer, pending));
                }
                Ok(Err(error))
                    if error.code() == ErrorCode::VERSION_CONFLICT && attempt < WRITE_ATTEMPTS =>
                {
                    // Stale: another writer stored first. Nothing of this
                    // one was stored; decide again on what the store holds.
                    writer.pending = None;
                    tokio::time::sleep(self.stale_backoff(attempt)).await;
                    attempt += 1;
                    let stored = self.load_stored("reloading the flags").await?;
                    self.adopt(&mut writer, &stored);
                }
                Ok(Err(error)) => {
                    // The store's contract: an error means nothing was stored.
                    writer.pending = None;
                    return Err(error.with_context("attempts", attempt));
                }
                Err(_) => {
                    return Err(store_timeout("storing a flag change", shared.timeout)
                        .with_message(format!(
                            "the flag store did not confirm a change within {:?}; it is not applied now and will be applied before the next write if the store has it",
                            shared.timeout
                        )));
                }
            }
        }
    }

    /// The wait before deciding a write again after its `attempt`-th
    /// commit was refused as stale: 2 ms doubling up to 64 ms, plus up to
    /// as much again, chosen by this instance and the attempt.
    fn stale_backoff(&self, attempt: u32) -> Duration {
        let base = 1u32 << attempt.clamp(1, 6);
        let seed = (Arc::as_ptr(&self.shared) as usize as u64) ^ u64::from(attempt);
        let jitter = crate::bucket::murmur3_x86_32(&seed.to_le_bytes(), 0) % (base + 1);
        Duration::from_millis(u64::from(base + jitter))
    }

    /// Settles a write whose store outcome is unknown (see the module
    /// docs): publishes it if the store holds its entries, drops it
    /// otherwise, then adopts what other writers stored meanwhile.
    async fn settle_pending(&self, writer: &mut Writer) -> Result<()> {
        let Some(pending) = writer.pending.clone() else {
            return Ok(());
        };
        let stored = self.load_stored("checking an unconfirmed change").await?;
        let stored_ours = stored.last_sequence >= pending.commit.last_sequence()
            && self
                .holds_entries(&pending.commit, stored.last_sequence)
                .await?;
        writer.pending = None;
        if stored_ours {
            self.publish(writer, pending);
        }
        if stored.last_sequence + 1 != writer.next_sequence {
            self.adopt(writer, &stored);
        }
        Ok(())
    }

    /// Whether the store's audit log holds `commit`'s entries (the same
    /// entries at the same sequence numbers: who, why, what and the wall
    /// time to the nanosecond), given its last sequence `last_sequence`.
    /// A commit more than 10,000 entries back counts as not stored; its
    /// effects, if stored, are then adopted as another writer's.
    async fn holds_entries(&self, commit: &FlagCommit, last_sequence: u64) -> Result<bool> {
        let since_base = last_sequence.saturating_sub(commit.base_sequence);
        if since_base > SETTLE_AUDIT_WINDOW {
            return Ok(false);
        }
        let shared = &*self.shared;
        let limit = usize::try_from(since_base).unwrap_or(usize::MAX);
        let recent = tokio::time::timeout(
            shared.timeout,
            shared.store.audit_log(&AuditQuery::recent(limit)),
        )
        .await
        .map_err(|_| store_timeout("checking an unconfirmed change", shared.timeout))??;
        let stored: Vec<&AuditEntry> = recent
            .iter()
            .filter(|entry| {
                entry.sequence > commit.base_sequence && entry.sequence <= commit.last_sequence()
            })
            .collect();
        Ok(stored.len() == commit.entries.len()
            && stored
                .iter()
                .zip(&commit.entries)
                .all(|(stored, ours)| *stored == ours))
    }

    fn publish(&self, writer: &mut Writer, pending: Arc<Pending>) -> FlagChange {
        let shared = &*self.shared;
        let pending = Arc::unwrap_or_clone(pending);
        writer.version += 1;
        writer.next_sequence = pending.commit.last_sequence() + 1;
        writer.values = pending.values;
        let ramps_changed = !pending.commit.ramps.is_empty();
        writer.ramps = pending.ramps;

        // Snapshot first, then cells: see registry.rs for the guarantee.
        shared
            .snapshot
            .store(Arc::new(writer.snapshot(&shared.registry)));
        for &position in &pending.changed {
            shared
                .registry
                .store_value(position, writer.values[position]);
        }
        for entry in &pending.commit.entries {
            if entry.changed_value() {
                metrics::record_change(entry);
            }
        }
        let change = FlagChange::new(writer.version, Arc::from(pending.commit.entries));
        // No subscribers is not an error.
        let _ = shared.changes.send(change.clone());
        if ramps_changed {
            shared.ramp_wakeup.notify_waiters();
        }
        change
    }
}

fn store_timeout(what: &str, timeout: std::time::Duration) -> Error {
    Error::new(
        ErrorCode::TIMEOUT,
        format!("the flag store did not answer {what} within {timeout:?}"),
    )
}
