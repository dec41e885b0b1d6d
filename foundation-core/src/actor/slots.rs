//! A small map from increasing `u64` keys to values, for the per-process
//! collections that usually hold one or two entries: a mailbox's exit
//! hooks (monitors, registry entries, subscriptions) and an instance's
//! timers.
//!
//! Most processes hold one hook (their registry entry or a monitor) and at
//! most one or two timers, so the first few entries live in a vector
//! allocated to fit (a `HashMap`'s or a B-tree's first allocation costs
//! 300 to 500 bytes per process, which is most of what a waiting
//! workflow's process costs beyond a bare actor); past [`INLINE`] entries
//! they move to a B-tree, so a process watched by thousands still finds
//! and removes an entry in logarithmic time. Keys are handed out in
//! increasing order, so key order is insertion order.
//!
//! This module is not for running what it holds (the mailbox runs hooks
//! outside its lock; the run loop fires timers).

use std::collections::BTreeMap;

/// Entries kept in the vector before moving to the tree.
const INLINE: usize = 8;

/// Values by key, in key order.
pub(super) enum Slots<V> {
    /// Few entries, sorted by key.
    Few(Vec<(u64, V)>),
    /// Many entries.
    Many(BTreeMap<u64, V>),
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Slots::Few(Vec::new())
    }
}

impl<V> Slots<V> {
    /// No entries (allocates nothing).
    pub(super) fn new() -> Slots<V> {
        Slots::default()
    }

    /// Adds `value` under `key`, larger than every key inserted before.
    pub(super) fn insert(&mut self, key: u64, value: V) {
        match self {
            Slots::Few(few) if few.len() < INLINE => {
                if few.len() == few.capacity() {
                    // Grow by one, not to four: most processes stop at one.
                    few.reserve_exact(1);
                }
                few.push((key, value));
            }
            Slots::Few(few) => {
                let mut many: BTreeMap<u64, V> = std::mem::take(few).into_iter().collect();
                many.insert(key, value);
                *self = Slots::Many(many);
            }
            Slots::Many(many) => {
                many.insert(key, value);
            }
        }
    }

    /// The value under `key`.
    pub(super) fn get(&self, key: u64) -> Option<&V> {
        match self {
            Slots::Few(few) => few
                .binary_search_by_key(&key, |(key, _)| *key)
                .ok()
                .map(|index| &few[index].1),
            Slots::Many(many) => many.get(&key),
        }
    }

    /// Whether there is a value under `key`.
    pub(super) fn contains_key(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns the value under `key`.
    pub(super) fn remove(&mut self, key: u64) -> Option<V> {
        match self {
            Slots::Few(few) => match few.binary_search_by_key(&key, |(key, _)| *key) {
                Ok(index) => {
                    let (_, value) = few.remove(index);
                    if few.is_empty() {
                        // Give the allocation back: a waiting process
                        // often had one timer and has none now.
                        *few = Vec::new();
                    }
                    Some(value)
                }
                Err(_) => None,
            },
            Slots::Many(many) => many.remove(&key),
        }
    }

    /// How many entries are kept.
    pub(super) fn len(&self) -> usize {
        match self {
            Slots::Few(few) => few.len(),
            Slots::Many(many) => many.len(),
        }
    }

    /// Whether nothing is kept.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every value out, in key order.
    pub(super) fn take(&mut self) -> Vec<V> {
        match std::mem::take(self) {
            Slots::Few(few) => few.into_iter().map(|(_, value)| value).collect(),
            Slots::Many(many) => many.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_key_order_across_the_move_to_the_tree() {
        let mut slots = Slots::new();
        for key in 0..20u64 {
            slots.insert(key, key * 10);
            if key == 3 {
                assert!(matches!(slots, Slots::Few(_)));
            }
        }
        assert!(matches!(slots, Slots::Many(_)));
        assert_eq!(slots.get(7), Some(&70));
        assert_eq!(slots.remove(5), Some(50));
        assert_eq!(slots.remove(5), None);
        assert!(!slots.contains_key(99));
        assert_eq!(slots.len(), 19);
        let expected: Vec<u64> = (0..20)
            .filter(|key| *key != 5)
            .map(|key| key * 10)
            .collect();
        assert_eq!(slots.take(), expected);
        assert!(slots.is_empty());
    }

    #[test]
    fn few_entries_are_found_and_removed_by_key() {
        let mut slots = Slots::new();
        slots.insert(1, "one");
        slots.insert(4, "four");
        assert_eq!(slots.get(4), Some(&"four"));
        assert_eq!(slots.remove(1), Some("one"));
        assert_eq!(slots.remove(2), None);
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.remove(4), Some("four"));
        assert!(matches!(&slots, Slots::Few(few) if few.capacity() == 0));
    }
}
