//! The read side: [`Flags`], [`FlagHandle`] and [`FlagSnapshot`].
//!
//! Two read paths, both lock-free:
//! - Per flag, an `AtomicU8` cell holds the encoded value. A [`FlagHandle`]
//!   (looked up once by name) reads it with one atomic load, and buckets an
//!   id with a murmur3 state precomputed over `"{group_id}:"`. This is the
//!   hot path: `is_enabled` and `is_enabled_for`.
//! - A [`FlagSnapshot`] is an immutable copy of every value (and running
//!   ramp), swapped in whole with `ArcSwap` by each write. Reading several
//!   flags from one snapshot sees a bulk change entirely or not at all.
//!
//! A write publishes the new snapshot first and then updates the cells.
//! Hence: once a reader has seen a write's value through a cell (a handle or
//! `Flags::is_enabled`), every snapshot it takes afterwards contains the
//! whole write. Two separate cell reads, however, may straddle a bulk
//! change (the first old, the second new); read several flags from one
//! snapshot when they must agree.
//!
//! The set of flags is fixed when [`Flags`] open. This module is not for
//! writes (`writer.rs`) or start-up (`builder.rs`).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode, Result};
use tokio::sync::{Mutex, Notify, broadcast};

use crate::audit::FlagChange;
use crate::bucket::BucketPrefix;
use crate::declaration::Flag;
use crate::evaluation::{EvaluationContext, EvaluationDetails, resolve};
use crate::ramp::RampState;
use crate::store::FlagStore;
use crate::value::{FlagValue, encoded_is_enabled, encoded_without_bucket};
use crate::writer::Writer;

/// The runtime feature flags of an application. Cheap to clone; clones
/// share state.
///
/// Reads are lock-free and safe from any thread at any rate; writes are
/// serialised, validated, stored, audited, broadcast and counted. Open with
/// [`Flags::builder`].
///
/// ```
/// use foundation_flags::{Attribution, EvaluationContext, Flag, FlagValue, Flags, Reason};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Flags::builder();
/// builder.declare(Flag::new("new_checkout", "Serve the new checkout", FlagValue::Off));
/// let flags = builder.open().await?;
///
/// // The hot path: a handle, looked up once.
/// let new_checkout = flags.handle("new_checkout")?;
/// assert!(!new_checkout.is_enabled_for("user-42"));
///
/// flags
///     .set("new_checkout", FlagValue::percentage(100)?, Attribution::new("alice", "launch"))
///     .await?;
/// assert!(new_checkout.is_enabled_for("user-42"));
///
/// let details = flags.evaluate("no_such_flag", EvaluationContext::for_key("user-42"), false);
/// assert_eq!((details.value, details.reason), (false, Reason::Error));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Flags {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) registry: Arc<Registry>,
    pub(crate) snapshot: ArcSwap<FlagSnapshot>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) store: Arc<dyn FlagStore>,
    pub(crate) changes: broadcast::Sender<FlagChange>,
    pub(crate) ramp_wakeup: Arc<Notify>,
    pub(crate) clock: SharedClock,
    pub(crate) timeout: Duration,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Wakes a ramp driver so that it sees the flags are gone and returns.
        self.ramp_wakeup.notify_waiters();
    }
}

/// The declared flags and their cells; fixed when the flags open.
pub(crate) struct Registry {
    pub(crate) flags: Box<[Flag]>,
    pub(crate) cells: Box<[FlagCell]>,
    index: HashMap<Box<str>, usize, BuildHasherDefault<NameHasher>>,
}

pub(crate) struct FlagCell {
    encoded: AtomicU8,
    pub(crate) prefix: BucketPrefix,
}

impl Registry {
    pub(crate) fn new(flags: Vec<Flag>, values: &[FlagValue]) -> Registry {
        let cells = flags
            .iter()
            .zip(values)
            .map(|(flag, value)| FlagCell {
                encoded: AtomicU8::new(value.encode()),
                prefix: BucketPrefix::new(flag.group_id()),
            })
            .collect();
        let index = flags
            .iter()
            .enumerate()
            .map(|(position, flag)| (Box::from(flag.name()), position))
            .collect();
        Registry {
            flags: flags.into_boxed_slice(),
            cells,
            index,
        }
    }

    #[inline]
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(crate) fn position_or_error(&self, name: &str) -> Result<usize> {
        self.position(name).ok_or_else(|| not_found(name))
    }

    pub(crate) fn store_value(&self, position: usize, value: FlagValue) {
        self.cells[position]
            .encoded
            .store(value.encode(), Ordering::Release);
    }
}

pub(crate) fn not_found(name: &str) -> Error {
    Error::new(
        ErrorCode::FLAG_NOT_FOUND,
        format!("no flag named `{name}` is declared"),
    )
    .with_context("flag", name)
}

impl FlagCell {
    #[inline]
    fn load(&self) -> u8 {
        self.encoded.load(Ordering::Acquire)
    }

    #[inline]
    fn is_enabled(&self) -> bool {
        encoded_is_enabled(self.load())
    }

    #[inline]
    fn is_enabled_for(&self, id: &str) -> bool {
        let encoded = self.load();
        match encoded_without_bucket(encoded) {
            Some(answer) => answer,
            None => self.prefix.bucket(id) <= u32::from(encoded),
        }
    }

    fn value(&self) -> FlagValue {
        FlagValue::decode(self.load())
    }
}

/// The name index's hasher. Flag names are short and declared by the
/// application (not attacker-chosen keys), and every by-name read hashes
/// one, where SipHash costs more than the rest of the read. This hashes up
/// to 32 bytes of a name (its first, last and two middle words, which for
/// names up to 32 bytes is all of them) with independent folded multiplies,
/// in the manner of foldhash; longer names that agree on those words
/// collide, which the map resolves by comparing names.
#[derive(Default)]
pub(crate) struct NameHasher(u64);

const NAME_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

#[inline]
fn folded_multiply(left: u64, right: u64) -> u64 {
    let product = u128::from(left) * u128::from(right);
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline]
fn read_word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let (first, last, middle) = if len >= 8 {
            let middle = if len > 16 {
                Some((read_word(bytes, 8), read_word(bytes, len - 16)))
            } else {
                None
            };
            (read_word(bytes, 0), read_word(bytes, len - 8), middle)
        } else {
            let mut word = [0u8; 8];
            word[..len].copy_from_slice(bytes);
            (u64::from_le_bytes(word), 0, None)
        };
        let mut hash = folded_multiply(first ^ NAME_SEEDS[0], last ^ NAME_SEEDS[1] ^ len as u64);
        if let Some((second, third)) = middle {
            hash ^= folded_multiply(second ^ NAME_SEEDS[2], third ^ NAME_SEEDS[3]);
        }
        self.0 = self.0.rotate_left(23) ^ hash;
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.0 ^= u64::from(byte);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.0 ^ NAME_SEEDS[2], NAME_SEEDS[0])
    }
}

impl Flags {
    /// A handle to one flag, for the hot path: its reads are one atomic load
    /// (and one murmur3 of the id for [`FlagHandle::is_enabled_for`]).
    ///
    /// Errors with [`ErrorCode::FLAG_NOT_FOUND`] for an undeclared name.
    pub fn handle(&self, name: &str) -> Result<FlagHandle> {
        let position = self.shared.registry.position_or_error(name)?;
        Ok(FlagHandle {
            registry: Arc::clone(&self.shared.registry),
            position,
        })
    }

    /// Whether `name` is enabled without an id (`On` or `Percentage(100)`);
    /// `false` for an undeclared name. One hash-map lookup and an atomic load.
    #[inline]
    pub fn is_enabled(&self, name: &str) -> bool {
        let registry = &self.shared.registry;
        registry
            .position(name)
            .is_some_and(|position| registry.cells[position].is_enabled())
    }

    /// Whether `name` is enabled for `id`: On true, Off false,
    /// `Percentage(p)` when [`normalized_bucket`](crate::normalized_bucket)`(group_id, id) <= p`;
    /// `false` for an undeclared name.
    #[inline]
    pub fn is_enabled_for(&self, name: &str, id: &str) -> bool {
        let registry = &self.shared.registry;
        registry
            .position(name)
            .is_some_and(|position| registry.cells[position].is_enabled_for(id))
    }

    /// The current value of `name`, or [`ErrorCode::FLAG_NOT_FOUND`].
    pub fn value(&self, name: &str) -> Result<FlagValue> {
        let registry = &self.shared.registry;
        let position = registry.position_or_error(name)?;
        Ok(registry.cells[position].value())
    }

    /// Evaluates `name` for `context` with details in OpenFeature's terms.
    /// An undeclared flag evaluates to `default` with [`Reason::Error`](crate::Reason::Error)
    /// and [`EvaluationErrorCode::FlagNotFound`](crate::EvaluationErrorCode::FlagNotFound);
    /// this never panics.
    pub fn evaluate(
        &self,
        name: &str,
        context: EvaluationContext<'_>,
        default: bool,
    ) -> EvaluationDetails {
        let registry = &self.shared.registry;
        match registry.position(name) {
            Some(position) => {
                let cell = &registry.cells[position];
                resolve(cell.value(), &cell.prefix, context)
            }
            None => EvaluationDetails::not_found(default),
        }
    }

    /// A consistent copy of every flag's value and running ramp. All flags
    /// read from one snapshot reflect the same set of writes: a bulk change
    /// is in it entirely or not at all.
    pub fn snapshot(&self) -> Arc<FlagSnapshot> {
        self.shared.snapshot.load_full()
    }

    /// The declared flags, in declaration order.
    pub fn declarations(&self) -> &[Flag] {
        &self.shared.registry.flags
    }

    /// The declaration of `name`.
    pub fn declaration(&self, name: &str) -> Option<&Flag> {
        let registry = &self.shared.registry;
        registry
            .position(name)
            .map(|position| &registry.flags[position])
    }

    /// Receives every change from now on, one [`FlagChange`] per write. A
    /// subscriber that falls more than 256 changes behind loses the oldest
    /// (`RecvError::Lagged`); take a snapshot to resynchronise.
    pub fn subscribe(&self) -> broadcast::Receiver<FlagChange> {
        self.shared.changes.subscribe()
    }

    /// The clock whose wall time stamps audit entries and schedules ramps.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("Flags")
            .field("version", &snapshot.version())
            .field("flags", &snapshot.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// A handle to one declared flag: the fast path for hot code.
///
/// A handle reads the flag's current value on every call (it never caches
/// a stale one). It stays valid as long as it lives; after every `Flags`
/// clone is dropped it keeps returning the last value.
///
/// ```
/// use foundation_flags::{Flag, FlagValue, Flags};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Flags::builder();
/// builder.declare(Flag::new("beta", "Beta features", FlagValue::percentage(30)?));
/// let flags = builder.open().await?;
/// let beta = flags.handle("beta")?;
/// let enabled = (0..1000).filter(|n| beta.is_enabled_for(&format!("user-{n}"))).count();
/// assert!((250..350).contains(&enabled));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FlagHandle {
    registry: Arc<Registry>,
    position: usize,
}

impl FlagHandle {
    #[inline]
    fn cell(&self) -> &FlagCell {
        &self.registry.cells[self.position]
    }

    /// Whether the flag is enabled without an id: `On` or `Percentage(100)`.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.cell().is_enabled()
    }

    /// Whether the flag is enabled for `id`.
    #[inline]
    pub fn is_enabled_for(&self, id: &str) -> bool {
        self.cell().is_enabled_for(id)
    }

    /// The current value.
    pub fn value(&self) -> FlagValue {
        self.cell().value()
    }

    /// Evaluates the flag for `context` with details.
    pub fn evaluate(&self, context: EvaluationContext<'_>) -> EvaluationDetails {
        let cell = self.cell();
        resolve(cell.value(), &cell.prefix, context)
    }

    /// The bucket (1..=100) of `id` in this flag's group.
    pub fn bucket(&self, id: &str) -> u32 {
        self.cell().prefix.bucket(id)
    }

    /// The flag's declaration.
    pub fn declaration(&self) -> &Flag {
        &self.registry.flags[self.position]
    }

    /// The flag's name.
    pub fn name(&self) -> &str {
        self.declaration().name()
    }
}

impl fmt::Debug for FlagHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagHandle")
            .field("name", &self.name())
            .field("value", &self.value())
            .finish()
    }
}

/// An immutable, consistent view of every flag: each write replaces the
/// whole snapshot, so a bulk change is in a snapshot entirely or not at all.
///
/// ```
/// use foundation_flags::{Attribution, Flag, FlagValue, Flags};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Flags::builder();
/// builder
///     .declare(Flag::new("a", "first half", FlagValue::Off))
///     .declare(Flag::new("b", "second half", FlagValue::Off));
/// let flags = builder.open().await?;
/// let before = flags.snapshot();
/// flags
///     .apply([("a", FlagValue::On), ("b", FlagValue::On)], Attribution::new("plan", "phase 2"))
///     .await?;
/// let after = flags.snapshot();
/// assert_eq!((before.is_enabled("a"), before.is_enabled("b")), (false, false));
/// assert_eq!((after.is_enabled("a"), after.is_enabled("b")), (true, true));
/// assert_eq!(after.version(), before.version() + 1);
/// # Ok(())
/// # }
/// ```
pub struct FlagSnapshot {
    pub(crate) version: u64,
    pub(crate) values: Box<[FlagValue]>,
    pub(crate) ramps: Box<[RampState]>,
    pub(crate) registry: Arc<Registry>,
}

impl FlagSnapshot {
    /// Increases by one with every write.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value of `name`, if declared.
    pub fn value(&self, name: &str) -> Option<FlagValue> {
        self.registry
            .position(name)
            .map(|position| self.values[position])
    }

    /// The value of the handle's flag, as of this snapshot.
    pub fn value_of(&self, handle: &FlagHandle) -> Option<FlagValue> {
        if Arc::ptr_eq(&self.registry, &handle.registry) {
            Some(self.values[handle.position])
        } else {
            // A handle of other flags: fall back on its name.
            self.value(handle.name())
        }
    }

    /// Whether `name` is enabled without an id; `false` if undeclared.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.value(name).is_some_and(FlagValue::is_enabled)
    }

    /// Whether `name` is enabled for `id`; `false` if undeclared.
    pub fn is_enabled_for(&self, name: &str, id: &str) -> bool {
        self.evaluate(name, EvaluationContext::for_key(id), false)
            .value
    }

    /// Evaluates `name` for `context` with details, as of this snapshot.
    pub fn evaluate(
        &self,
        name: &str,
        context: EvaluationContext<'_>,
        default: bool,
    ) -> EvaluationDetails {
        match self.registry.position(name) {
            Some(position) => resolve(
                self.values[position],
                &self.registry.cells[position].prefix,
                context,
            ),
            None => EvaluationDetails::not_found(default),
        }
    }

    /// Every flag's name and value, in declaration order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, FlagValue)> + '_ {
        self.registry
            .flags
            .iter()
            .zip(self.values.iter())
            .map(|(flag, value)| (flag.name(), *value))
    }

    /// The running ramps (paused ones included).
    pub fn ramps(&self) -> &[RampState] {
        &self.ramps
    }

    /// The ramp of `name`, if one is running.
    pub fn ramp(&self, name: &str) -> Option<&RampState> {
        self.ramps.iter().find(|ramp| ramp.plan.flag() == name)
    }

    /// When the earliest unpaused ramp step is due.
    pub fn next_ramp_step_at(&self) -> Option<SystemTime> {
        self.ramps
            .iter()
            .filter(|ramp| !ramp.paused)
            .map(|ramp| ramp.next_step_at)
            .min()
    }
}

impl fmt::Debug for FlagSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagSnapshot")
            .field("version", &self.version)
            .field("flags", &self.iter().collect::<Vec<_>>())
            .field("ramps", &self.ramps)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn name_hasher_separates_similar_names() {
        let build = BuildHasherDefault::<NameHasher>::default();
        let names = [
            "",
            "a",
            "a\0",
            "b",
            "use_v2",
            "use_v3",
            "use_v2_coordinator",
            "use_v2_coordinatos",
            "12345678",
            "123456789",
            "1234567\0",
        ];
        let mut hashes: Vec<u64> = names.iter().map(|name| build.hash_one(name)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), names.len());
    }
}
