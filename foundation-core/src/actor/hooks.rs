//! The exit hooks of one mailbox (monitors, registry entries,
//! subscriptions), kept in registration order and cheap for the usual
//! process that has one or two.
//!
//! Most processes carry one hook (their registry entry or a monitor), so
//! the first few live inline in a short vector (a B-tree's first node
//! costs about 300 bytes per process); past [`INLINE`] hooks they move to
//! a B-tree so that a process watched by thousands still removes a hook in
//! logarithmic time. This module is not for running hooks (the mailbox
//! does, outside its lock).

use std::collections::BTreeMap;

use crate::process::ExitHook;

/// Hooks kept in the vector before moving to the tree.
const INLINE: usize = 8;

/// Exit hooks by key; keys grow with every registration, so key order is
/// registration order.
pub(super) enum ExitHooks {
    /// Few hooks, sorted by key.
    Few(Vec<(u64, ExitHook)>),
    /// Many hooks.
    Many(BTreeMap<u64, ExitHook>),
}

impl ExitHooks {
    /// No hooks (allocates nothing).
    pub(super) fn new() -> ExitHooks {
        ExitHooks::Few(Vec::new())
    }

    /// Adds `hook` under `key`, larger than every key added before.
    pub(super) fn insert(&mut self, key: u64, hook: ExitHook) {
        match self {
            ExitHooks::Few(few) if few.len() < INLINE => {
                if few.capacity() == 0 {
                    few.reserve_exact(1);
                }
                few.push((key, hook));
            }
            ExitHooks::Few(few) => {
                let mut many: BTreeMap<u64, ExitHook> = std::mem::take(few).into_iter().collect();
                many.insert(key, hook);
                *self = ExitHooks::Many(many);
            }
            ExitHooks::Many(many) => {
                many.insert(key, hook);
            }
        }
    }

    /// Removes the hook under `key`; false when there is none.
    pub(super) fn remove(&mut self, key: u64) -> bool {
        match self {
            ExitHooks::Few(few) => match few.binary_search_by_key(&key, |(key, _)| *key) {
                Ok(index) => {
                    drop(few.remove(index));
                    true
                }
                Err(_) => false,
            },
            ExitHooks::Many(many) => many.remove(&key).is_some(),
        }
    }

    /// How many hooks are kept.
    pub(super) fn len(&self) -> usize {
        match self {
            ExitHooks::Few(few) => few.len(),
            ExitHooks::Many(many) => many.len(),
        }
    }

    /// Takes every hook out, in registration order.
    pub(super) fn take(&mut self) -> Vec<ExitHook> {
        match std::mem::replace(self, ExitHooks::new()) {
            ExitHooks::Few(few) => few.into_iter().map(|(_, hook)| hook).collect(),
            ExitHooks::Many(many) => many.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::process::{Down, ExitReason, ProcessId};

    fn recording(order: &Arc<Mutex<Vec<u64>>>, key: u64) -> ExitHook {
        let order = Arc::clone(order);
        Box::new(move |_: &Down| order.lock().unwrap_or_else(|e| e.into_inner()).push(key))
    }

    #[test]
    fn hooks_keep_registration_order_across_the_move_to_the_tree() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = ExitHooks::new();
        for key in 0..20 {
            hooks.insert(key, recording(&order, key));
            if key == 3 {
                assert!(matches!(hooks, ExitHooks::Few(_)));
            }
        }
        assert!(matches!(hooks, ExitHooks::Many(_)));
        assert!(hooks.remove(5));
        assert!(!hooks.remove(5));
        assert!(!hooks.remove(99));
        assert_eq!(hooks.len(), 19);
        let down = Down {
            process: ProcessId::next(),
            reason: ExitReason::Normal,
        };
        for hook in hooks.take() {
            hook(&down);
        }
        assert_eq!(hooks.len(), 0);
        let ran = order.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let expected: Vec<u64> = (0..20).filter(|key| *key != 5).collect();
        assert_eq!(ran, expected);
    }

    #[test]
    fn few_hooks_remove_by_key() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = ExitHooks::new();
        hooks.insert(1, recording(&order, 1));
        hooks.insert(4, recording(&order, 4));
        assert!(hooks.remove(1));
        assert!(!hooks.remove(2));
        assert_eq!(hooks.len(), 1);
    }
}
