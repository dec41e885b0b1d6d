//! The breaker's state machine: admission, outcomes, transitions.
//!
//! Closed --(failure_threshold consecutive failures)--> Open
//! --(reset_timeout passed, seen at the next call or state read)--> HalfOpen
//! --(success_threshold successful probes)--> Closed, or
//! HalfOpen --(one probe failure)--> Open.
//!
//! Counting is lock-free: compare-and-swap on the packed state word (see
//! `state.rs`). Transitions take a mutex, so that side data (the time the
//! breaker may half-open, the probe word) is written before the new word is
//! published, and so that events leave in order. The closed-state fast
//! path is two atomic loads and no write: one to admit, one to see that the
//! failure count is already zero after a success.
//!
//! This module is not for running the operation (see `guard.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::sync::broadcast;

use super::builder::BreakerConfig;
use super::events::{BreakerMetrics, StateChange, TransitionReason};
use super::state::{CircuitState, Word, pack_probes, unpack_probes};
use crate::clock::SharedClock;

/// Admission loops retry at most this often (each retry follows a
/// transition another thread made); then the call is rejected.
const MAX_ADMISSION_ATTEMPTS: usize = 8;

pub(crate) struct Machine {
    pub(crate) id: Arc<str>,
    pub(crate) config: BreakerConfig,
    pub(crate) clock: SharedClock,
    word: AtomicU64,
    /// (half-open generation, probes in flight).
    probes: AtomicU64,
    /// Clock nanoseconds from which an open breaker admits probes.
    half_open_at: AtomicU64,
    transitions: Mutex<()>,
    events: broadcast::Sender<StateChange>,
    metrics: BreakerMetrics,
}

/// What an outcome means for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    /// Says nothing about the dependency's health (a business or validation
    /// error, a call abandoned by its caller).
    Neutral,
}

/// A call let through, and the period it was let through in.
pub(crate) struct Admission<'a> {
    generation: u64,
    /// Held by probes; released on drop, even if the caller's future is
    /// dropped mid-call.
    _probe: Option<ProbePermit<'a>>,
}

pub(crate) struct ProbePermit<'a> {
    machine: &'a Machine,
    generation: u64,
}

impl Drop for ProbePermit<'_> {
    fn drop(&mut self) {
        let probes = &self.machine.probes;
        let mut current = probes.load(Ordering::Acquire);
        loop {
            let (generation, in_flight) = unpack_probes(current);
            // A permit of an earlier half-open period has nothing to release.
            if generation != self.generation || in_flight == 0 {
                return;
            }
            let next = pack_probes(generation, in_flight - 1);
            match probes.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

impl Machine {
    pub(crate) fn new(id: Arc<str>, config: BreakerConfig, clock: SharedClock) -> Machine {
        let (events, _) = broadcast::channel(super::events::EVENT_CAPACITY);
        let metrics = BreakerMetrics::register(&id);
        Machine {
            id,
            config,
            clock,
            word: AtomicU64::new(Word::initial().pack()),
            probes: AtomicU64::new(pack_probes(0, 0)),
            half_open_at: AtomicU64::new(0),
            transitions: Mutex::new(()),
            events,
            metrics,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.events.subscribe()
    }

    /// The current word, without any lazy transition.
    #[inline]
    pub(crate) fn peek(&self) -> Word {
        Word::unpack(self.word.load(Ordering::Acquire))
    }

    /// Lets a call through, or rejects it with `circuit_open`.
    ///
    /// Inlined into the caller's `call`: the closed-state check is one load
    /// and the admission stays in registers.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Admission<'_>, Error> {
        let word = self.peek();
        if word.state == CircuitState::Closed {
            return Ok(Admission {
                generation: word.generation,
                _probe: None,
            });
        }
        self.admit_slow()
    }

    #[cold]
    fn admit_slow(&self) -> Result<Admission<'_>, Error> {
        for _ in 0..MAX_ADMISSION_ATTEMPTS {
            let word = self.peek();
            match word.state {
                CircuitState::Closed => {
                    return Ok(Admission {
                        generation: word.generation,
                        _probe: None,
                    });
                }
                CircuitState::HalfOpen => {
                    return match self.acquire_probe(word.generation) {
                        Some(permit) => Ok(Admission {
                            generation: word.generation,
                            _probe: Some(permit),
                        }),
                        None => Err(self.reject_half_open()),
                    };
                }
                CircuitState::Open => {
                    let now = self.clock.elapsed_nanos();
                    let half_open_at = self.half_open_at.load(Ordering::Acquire);
                    if now < half_open_at {
                        return Err(self.reject_open(half_open_at - now));
                    }
                    self.transition(
                        word,
                        CircuitState::HalfOpen,
                        TransitionReason::ResetTimeoutElapsed,
                    );
                }
            }
        }
        Err(self.reject_half_open())
    }

    fn acquire_probe(&self, generation: u64) -> Option<ProbePermit<'_>> {
        let mut current = self.probes.load(Ordering::Acquire);
        loop {
            let (probe_generation, in_flight) = unpack_probes(current);
            if probe_generation != generation || in_flight >= self.config.half_open_probes {
                return None;
            }
            let next = pack_probes(probe_generation, in_flight + 1);
            match self.probes.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(ProbePermit {
                        machine: self,
                        generation,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Records a call's outcome; it counts only if the breaker is still in
    /// the period the call was admitted in.
    #[inline]
    pub(crate) fn record(&self, admission: &Admission<'_>, verdict: Verdict) {
        match verdict {
            Verdict::Success => {
                // The fast path: closed, same period, no failures to clear.
                let word = self.peek();
                if word.generation == admission.generation
                    && word.state == CircuitState::Closed
                    && word.count == 0
                {
                    return;
                }
                self.on_success(admission.generation);
            }
            Verdict::Failure => self.on_failure(admission.generation),
            Verdict::Neutral => {}
        }
    }

    pub(crate) fn on_success(&self, generation: u64) {
        self.update(generation, |word| match word.state {
            // The fast path: nothing to write.
            CircuitState::Closed if word.count == 0 => None,
            CircuitState::Closed => Some(word.with_count(0)),
            CircuitState::HalfOpen => {
                if word.count + 1 >= self.config.success_threshold {
                    self.transition(
                        word,
                        CircuitState::Closed,
                        TransitionReason::ProbesSucceeded,
                    );
                    return None;
                }
                Some(word.with_count(word.count + 1))
            }
            CircuitState::Open => None,
        });
    }

    pub(crate) fn on_failure(&self, generation: u64) {
        self.update(generation, |word| match word.state {
            CircuitState::Closed => {
                if word.count + 1 >= self.config.failure_threshold {
                    self.transition(word, CircuitState::Open, TransitionReason::FailureThreshold);
                    return None;
                }
                Some(word.with_count(word.count + 1))
            }
            CircuitState::HalfOpen => {
                self.transition(word, CircuitState::Open, TransitionReason::ProbeFailed);
                None
            }
            CircuitState::Open => None,
        });
    }

    /// Applies `decide` to the word of `generation` until its result is
    /// stored: `decide` returns the next word, or `None` when there is
    /// nothing to store (it may have made a transition itself). An outcome
    /// from another generation (state period) is ignored.
    fn update(&self, generation: u64, decide: impl Fn(Word) -> Option<Word>) {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word::unpack(current);
            if word.generation != generation {
                return;
            }
            let Some(next) = decide(word) else {
                return;
            };
            match self.word.compare_exchange_weak(
                current,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The current word, after moving an open breaker whose reset timeout
    /// has passed to half-open.
    pub(crate) fn current(&self) -> Word {
        let word = self.peek();
        if word.state == CircuitState::Open
            && self.clock.elapsed_nanos() >= self.half_open_at.load(Ordering::Acquire)
        {
            self.transition(
                word,
                CircuitState::HalfOpen,
                TransitionReason::ResetTimeoutElapsed,
            );
            return self.peek();
        }
        word
    }

    /// Forces the breaker into `to` from any state, always starting a new
    /// period, so outcomes of calls admitted before are ignored. Forcing
    /// open an open breaker restarts its reset timeout; forcing closed a
    /// closed one clears its failure count. Neither of those two is a
    /// transition (no event).
    pub(crate) fn force(&self, to: CircuitState, reason: TransitionReason) {
        let _transitions = self.lock();
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word::unpack(current);
            if word.state != to {
                self.transition_locked(word, to, reason);
                return;
            }
            if to == CircuitState::Open {
                self.half_open_at
                    .store(self.reopen_deadline(), Ordering::Release);
            }
            // Count changes are lock-free, so this may race with one; the
            // new generation makes every later outcome of the old period
            // a no-op (`update` compares generations).
            match self.word.compare_exchange_weak(
                current,
                word.next(to).pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Moves from the period of `from` to `to`, unless another thread has
    /// already left that period. Returns whether this call made the move.
    fn transition(&self, from: Word, to: CircuitState, reason: TransitionReason) -> bool {
        let _transitions = self.lock();
        self.transition_locked(from, to, reason)
    }

    fn transition_locked(&self, from: Word, to: CircuitState, reason: TransitionReason) -> bool {
        // Only transitions change the period, and they hold the lock: if
        // the period is still `from`'s now, it stays so until we move it.
        if !self.peek().same_period(from) {
            return false;
        }
        let next = from.next(to);
        match to {
            CircuitState::Open => self
                .half_open_at
                .store(self.reopen_deadline(), Ordering::Release),
            CircuitState::HalfOpen => self
                .probes
                .store(pack_probes(next.generation, 0), Ordering::Release),
            CircuitState::Closed => {}
        }
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            // A concurrent change here can only be a count change.
            debug_assert!(Word::unpack(current).same_period(from));
            match self.word.compare_exchange_weak(
                current,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.metrics.transition(from.state, to);
        // No subscriber is not an error: the change is simply unseen.
        let _unseen = self.events.send(StateChange {
            breaker: Arc::clone(&self.id),
            from: from.state,
            to,
            reason,
        });
        true
    }

    fn reopen_deadline(&self) -> u64 {
        let timeout = u64::try_from(self.config.reset_timeout.as_nanos()).unwrap_or(u64::MAX);
        self.clock.elapsed_nanos().saturating_add(timeout)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reject_open(&self, remaining_nanos: u64) -> Error {
        self.metrics.rejected();
        Error::new(
            ErrorCode::CIRCUIT_OPEN,
            format!("circuit breaker '{}' is open", self.id),
        )
        .with_context("breaker", &*self.id)
        .with_context("state", CircuitState::Open)
        .with_context(
            "retry_after_ms",
            Duration::from_nanos(remaining_nanos).as_millis(),
        )
    }

    fn reject_half_open(&self) -> Error {
        self.metrics.rejected();
        Error::new(
            ErrorCode::CIRCUIT_OPEN,
            format!(
                "circuit breaker '{}' is half-open and its {} probe call(s) are in flight",
                self.id, self.config.half_open_probes
            ),
        )
        .with_context("breaker", &*self.id)
        .with_context("state", CircuitState::HalfOpen)
    }
}
