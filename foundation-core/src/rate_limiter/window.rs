//! The fixed-window arithmetic: one key's bucket packed in one `AtomicU64`,
//! and the exact check-and-increment on it.
//!
//! A bucket word holds `(window index, count)`: the index of the window the
//! count belongs to in the high bits (window index = clock nanoseconds /
//! window nanoseconds, so window start = now - now mod window), the count in
//! the low bits. Because both live in one word, rolling to a new window and
//! counting are a single compare-and-swap: concurrent checks can never admit
//! more than the limit in one window, nor lose a reset. The layout is chosen
//! per limiter so that the index never overflows its bits for the clock's
//! whole range; a limit too large for that is a configuration error.
//!
//! This module is not for storing buckets or sweeping them (see
//! `limiter.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};

use super::decision::{Decision, Status};

/// A validated limit and window, and the bit layout of their bucket words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowLayout {
    limit: u64,
    window_nanos: u64,
    count_bits: u32,
}

impl WindowLayout {
    /// Validates `limit` per `window`.
    ///
    /// Fails with `invalid_config_value` on a zero limit, a zero window, a
    /// window longer than the clock's range (584 years), or a limit so large
    /// that the window index and the count do not fit one word together
    /// (more than about one admission per nanosecond of window).
    pub(crate) fn new(limit: u64, window: Duration) -> Result<WindowLayout, Error> {
        if limit == 0 {
            return Err(invalid("limit", "the limit must be at least 1"));
        }
        if window.is_zero() {
            return Err(invalid("window", "the window must be longer than zero"));
        }
        let window_nanos = u64::try_from(window.as_nanos())
            .map_err(|_| invalid("window", "the window may not exceed 584 years"))?;
        let largest_index = u64::MAX / window_nanos;
        let index_bits = u64::BITS - largest_index.leading_zeros();
        let count_bits = u64::BITS - limit.leading_zeros();
        if index_bits + count_bits > u64::BITS {
            let largest_limit = (1u64 << (u64::BITS - index_bits)) - 1;
            return Err(invalid(
                "limit",
                format!(
                    "a limit of {limit} is too large for a window of {window:?}; \
                     at most {largest_limit} fit"
                ),
            ));
        }
        Ok(WindowLayout {
            limit,
            window_nanos,
            count_bits,
        })
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn window(&self) -> Duration {
        Duration::from_nanos(self.window_nanos)
    }

    /// The index of the window containing `now_nanos`.
    pub(crate) fn window_index(&self, now_nanos: u64) -> u64 {
        now_nanos / self.window_nanos
    }

    /// An empty bucket word for window `index`.
    pub(crate) fn empty(&self, index: u64) -> u64 {
        self.pack(index, 0)
    }

    /// The window index a bucket word belongs to.
    pub(crate) fn index_of(&self, word: u64) -> u64 {
        self.unpack(word).0
    }

    /// Counts one check against `bucket` at `now_nanos`, exactly: admitted
    /// when fewer than the limit were admitted in its window.
    ///
    /// While the bucket's window has not ended, the check counts in it; that
    /// includes a bucket already in a later window than the reading
    /// (another thread read the clock later and rolled it). Once the window
    /// has ended, the bucket rolls to the reading's window, or to
    /// `floor_index` (the oldest window still counted; earlier ones have
    /// been swept) if that is later. New buckets start in `floor_index`'s
    /// window ([`WindowLayout::empty`]), so a check whose clock reading
    /// predates a sweep never recreates a swept window with a fresh count.
    #[inline]
    pub(crate) fn admit(&self, bucket: &AtomicU64, now_nanos: u64, floor_index: u64) -> Decision {
        let mut current = bucket.load(Ordering::Acquire);
        loop {
            let (stored_index, stored_count) = self.unpack(current);
            // The common case costs a multiplication, not a division.
            let (index, count) = if now_nanos < self.window_end(stored_index) {
                (stored_index, stored_count)
            } else {
                (self.window_index(now_nanos).max(floor_index), 0)
            };
            if count >= self.limit {
                return Decision::Denied {
                    retry_after: self.until_window_end(index, now_nanos),
                };
            }
            let next = self.pack(index, count + 1);
            match bucket.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Decision::Allowed {
                        remaining: self.limit - count - 1,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// The status of a bucket word (or of no bucket) at `now_nanos`,
    /// without counting anything.
    pub(crate) fn status(&self, word: Option<u64>, now_nanos: u64, floor_index: u64) -> Status {
        let now_index = self.window_index(now_nanos).max(floor_index);
        let (index, used) = match word.map(|word| self.unpack(word)) {
            Some((index, count)) if index >= now_index => (index, count),
            _ => (now_index, 0),
        };
        Status {
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            resets_in: self.until_window_end(index, now_nanos),
            window: self.window(),
        }
    }

    /// The clock nanoseconds at which window `index` ends.
    fn window_end(&self, index: u64) -> u64 {
        index.saturating_add(1).saturating_mul(self.window_nanos)
    }

    fn until_window_end(&self, index: u64, now_nanos: u64) -> Duration {
        Duration::from_nanos(self.window_end(index).saturating_sub(now_nanos))
    }

    fn pack(&self, index: u64, count: u64) -> u64 {
        (index << self.count_bits) | count
    }

    fn unpack(&self, word: u64) -> (u64, u64) {
        let count_mask = (1u64 << self.count_bits) - 1;
        (word >> self.count_bits, word & count_mask)
    }
}

fn invalid(field: &'static str, message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorCode::INVALID_CONFIG_VALUE, message).with_context("field", field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(limit: u64, window_ms: u64) -> WindowLayout {
        WindowLayout::new(limit, Duration::from_millis(window_ms)).expect("valid in these tests")
    }

    #[test]
    fn zero_limit_and_zero_window_are_rejected() {
        let error = WindowLayout::new(0, Duration::from_secs(1)).unwrap_err();
        assert_eq!(error.code(), ErrorCode::INVALID_CONFIG_VALUE);
        assert_eq!(error.context_value("field"), Some("limit"));
        let error = WindowLayout::new(1, Duration::ZERO).unwrap_err();
        assert_eq!(error.context_value("field"), Some("window"));
        let error = WindowLayout::new(1, Duration::MAX).unwrap_err();
        assert_eq!(error.context_value("field"), Some("window"));
    }

    #[test]
    fn the_largest_limit_fits_and_one_more_does_not() {
        let window = Duration::from_secs(1);
        let error = WindowLayout::new(u64::MAX, window).unwrap_err();
        assert_eq!(error.context_value("field"), Some("limit"));
        // 2^64 / 10^9 needs 35 index bits, which leaves 29 for the count.
        let largest = (1u64 << 29) - 1;
        let fits = WindowLayout::new(largest, window).expect("fits");
        assert!(WindowLayout::new(largest + 1, window).is_err());
        // The largest count in the last window of the clock's range packs
        // and unpacks without loss.
        let last_index = fits.window_index(u64::MAX);
        let word = fits.pack(last_index, largest);
        assert_eq!(fits.unpack(word), (last_index, largest));
    }

    #[test]
    fn a_window_admits_exactly_the_limit_then_rolls() {
        let layout = layout(3, 100);
        let bucket = AtomicU64::new(layout.empty(0));
        let at = |ms: u64| ms * 1_000_000;
        assert_eq!(
            layout.admit(&bucket, at(10), 0),
            Decision::Allowed { remaining: 2 }
        );
        assert_eq!(
            layout.admit(&bucket, at(20), 0),
            Decision::Allowed { remaining: 1 }
        );
        assert_eq!(
            layout.admit(&bucket, at(30), 0),
            Decision::Allowed { remaining: 0 }
        );
        assert_eq!(
            layout.admit(&bucket, at(40), 0),
            Decision::Denied {
                retry_after: Duration::from_millis(60)
            }
        );
        assert_eq!(
            layout.admit(&bucket, at(100), 0),
            Decision::Allowed { remaining: 2 }
        );
    }

    #[test]
    fn a_late_clock_reading_counts_in_the_later_window() {
        let layout = layout(2, 100);
        let bucket = AtomicU64::new(layout.empty(0));
        let at = |ms: u64| ms * 1_000_000;
        assert!(layout.admit(&bucket, at(150), 0).is_allowed());
        // A thread that read the clock at 90 ms arrives after the roll: it
        // counts in window 1, never in a window 0 that was already reset.
        assert!(layout.admit(&bucket, at(90), 0).is_allowed());
        assert_eq!(
            layout.admit(&bucket, at(95), 0),
            Decision::Denied {
                retry_after: Duration::from_millis(105)
            }
        );
        // A reading older than a sweep counts in the swept-to window: new
        // buckets start at the floor.
        let fresh = AtomicU64::new(layout.empty(5));
        assert_eq!(
            layout.admit(&fresh, at(90), 5),
            Decision::Allowed { remaining: 1 }
        );
        assert_eq!(layout.index_of(fresh.load(Ordering::Relaxed)), 5);
    }

    #[test]
    fn status_reads_without_counting() {
        let layout = layout(5, 1000);
        let bucket = AtomicU64::new(layout.empty(0));
        layout.admit(&bucket, 0, 0);
        layout.admit(&bucket, 0, 0);
        let word = bucket.load(Ordering::Relaxed);
        let status = layout.status(Some(word), 400_000_000, 0);
        assert_eq!(status.remaining, 3);
        assert_eq!(status.resets_in, Duration::from_millis(600));
        assert_eq!(bucket.load(Ordering::Relaxed), word);
        let rolled = layout.status(Some(word), 1_500_000_000, 0);
        assert_eq!(rolled.remaining, 5);
        assert_eq!(layout.status(None, 0, 0).remaining, 5);
    }
}
