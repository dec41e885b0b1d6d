//! The breaker's states and the packed words its state machine runs on.
//!
//! The whole observable state of a breaker is one `AtomicU64`: a generation
//! (40 bits, bumped by every transition), the state (2 bits) and a count
//! (22 bits: consecutive failures while closed, successful probes while
//! half-open). A call remembers the generation it was admitted in, and its
//! outcome counts only if the breaker is still in that generation, so a
//! slow call started before a transition never counts in the next state.
//! Probe permits use a second word of the same shape: (generation, probes
//! in flight).
//!
//! This module is not for the transitions themselves (see `machine.rs`).

use std::fmt;

/// A circuit breaker's state.
///
/// The `foundation_circuit_breaker_state` gauge reports it as a number:
/// 0 closed, 1 half-open, 2 open ([`CircuitState::gauge_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls pass; consecutive failures are counted.
    Closed,
    /// The reset timeout has passed: a bounded number of probe calls pass,
    /// the rest are rejected; probes decide whether to close or reopen.
    HalfOpen,
    /// Calls are rejected with `circuit_open` until the reset timeout passes.
    Open,
}

impl CircuitState {
    /// The snake_case name used in metric labels: `closed`, `half_open`, `open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }

    /// The value of the `foundation_circuit_breaker_state` gauge: 0 closed,
    /// 1 half-open, 2 open (higher is worse).
    pub const fn gauge_value(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    /// Every state, in gauge order.
    pub const ALL: [CircuitState; 3] = [
        CircuitState::Closed,
        CircuitState::HalfOpen,
        CircuitState::Open,
    ];

    #[inline]
    const fn from_bits(bits: u64) -> CircuitState {
        match bits {
            0 => CircuitState::Closed,
            1 => CircuitState::HalfOpen,
            _ => CircuitState::Open,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const COUNT_BITS: u32 = 22;
const STATE_BITS: u32 = 2;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const GENERATION_SHIFT: u32 = COUNT_BITS + STATE_BITS;
const GENERATION_MASK: u64 = (1 << (u64::BITS - GENERATION_SHIFT)) - 1;

/// The largest threshold or probe count a breaker accepts (4,194,303).
pub const MAX_COUNT: u32 = (1 << COUNT_BITS) - 1;

/// The unpacked state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) generation: u64,
    pub(crate) state: CircuitState,
    pub(crate) count: u32,
}

impl Word {
    pub(crate) fn initial() -> Word {
        Word {
            generation: 0,
            state: CircuitState::Closed,
            count: 0,
        }
    }

    pub(crate) fn pack(self) -> u64 {
        ((self.generation & GENERATION_MASK) << GENERATION_SHIFT)
            | ((self.state.gauge_value() as u64) << COUNT_BITS)
            | (u64::from(self.count) & COUNT_MASK)
    }

    #[inline]
    pub(crate) fn unpack(word: u64) -> Word {
        Word {
            generation: word >> GENERATION_SHIFT,
            state: CircuitState::from_bits((word >> COUNT_BITS) & STATE_MASK),
            // The mask keeps the value within 22 bits.
            count: (word & COUNT_MASK) as u32,
        }
    }

    /// The same period (generation and state).
    pub(crate) fn same_period(self, other: Word) -> bool {
        self.generation == other.generation && self.state == other.state
    }

    pub(crate) fn with_count(self, count: u32) -> Word {
        Word { count, ..self }
    }

    /// The first word of the next period.
    pub(crate) fn next(self, state: CircuitState) -> Word {
        Word {
            generation: self.generation.wrapping_add(1) & GENERATION_MASK,
            state,
            count: 0,
        }
    }
}

/// Packs a probe word: the half-open generation and the probes in flight.
pub(crate) fn pack_probes(generation: u64, in_flight: u32) -> u64 {
    ((generation & GENERATION_MASK) << GENERATION_SHIFT) | (u64::from(in_flight) & COUNT_MASK)
}

/// Unpacks a probe word.
pub(crate) fn unpack_probes(word: u64) -> (u64, u32) {
    (word >> GENERATION_SHIFT, (word & COUNT_MASK) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for state in CircuitState::ALL {
            for generation in [0, 1, 12345, GENERATION_MASK] {
                for count in [0, 1, MAX_COUNT] {
                    let word = Word {
                        generation,
                        state,
                        count,
                    };
                    assert_eq!(Word::unpack(word.pack()), word);
                }
            }
        }
        assert_eq!(unpack_probes(pack_probes(77, 3)), (77, 3));
    }

    #[test]
    fn the_generation_wraps_within_its_bits() {
        let last = Word {
            generation: GENERATION_MASK,
            state: CircuitState::Open,
            count: 9,
        };
        let next = last.next(CircuitState::HalfOpen);
        assert_eq!(next.generation, 0);
        assert_eq!(next.count, 0);
        assert!(!next.same_period(last));
        assert_eq!(Word::unpack(next.pack()), next);
    }
}
