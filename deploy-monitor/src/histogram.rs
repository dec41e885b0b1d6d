//! The log-linear latency histogram's bucket arithmetic.
//!
//! Latencies are recorded in whole microseconds into 240 buckets: values
//! below 8 µs exactly, then eight buckets per power of two up to 2^32 µs
//! (about 71 minutes), so a bucket is at most 12.5% wide relative to its
//! lower bound. Larger values land in the last bucket. Recording is one
//! index computation (a leading-zeros count and two shifts) and one atomic
//! add, done by the window (`window.rs`); this module only maps values to
//! buckets and counts back to quantiles.
//!
//! This module is not for storing counts; `window.rs` holds the atomics.

use std::time::Duration;

/// Sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 3;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// The number of buckets.
pub(crate) const BUCKETS: usize = 240;
/// The first power of two that no longer has buckets of its own.
const MAX_EXPONENT: u32 = 32;

/// The bucket of a latency of `micros` microseconds.
#[inline]
pub(crate) fn bucket_of(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros();
    if exponent >= MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let mantissa = (micros >> (exponent - SUB_BITS)) & (SUB - 1);
    ((exponent - SUB_BITS + 1) as usize) * SUB as usize + mantissa as usize
}

/// The half-open range `[low, high)` of microseconds bucket `bucket` holds
/// (the last bucket also holds everything above it).
pub(crate) fn bounds(bucket: usize) -> (u64, u64) {
    let bucket = bucket.min(BUCKETS - 1) as u64;
    if bucket < SUB {
        return (bucket, bucket + 1);
    }
    let exponent = bucket / SUB + u64::from(SUB_BITS) - 1;
    let mantissa = bucket % SUB;
    let shift = exponent - u64::from(SUB_BITS);
    ((SUB + mantissa) << shift, (SUB + mantissa + 1) << shift)
}

/// The value reported for a bucket: exact below 8 µs, the midpoint above.
fn representative(bucket: usize) -> u64 {
    let (low, high) = bounds(bucket);
    if high - low == 1 {
        low
    } else {
        low + (high - low) / 2
    }
}

/// The `quantile` (0 to 1) of the counts, or `None` when they are all zero.
///
/// The rank is `ceil(quantile * total)` (at least 1), the nearest-rank
/// definition, so p99 of 100 samples is the 99th smallest.
pub(crate) fn quantile(counts: &[u64], quantile: f64) -> Option<Duration> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (bucket, &count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(Duration::from_micros(representative(bucket)));
        }
    }
    Some(Duration::from_micros(representative(BUCKETS - 1)))
}

/// The values at each of `quantiles` (ascending, 0 to 1) and the mean, in
/// one pass over the counts; all `None` when the counts are all zero.
pub(crate) fn summary<const N: usize>(
    counts: &[u64],
    quantiles: [f64; N],
) -> ([Option<Duration>; N], Option<Duration>) {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return ([None; N], None);
    }
    let ranks = quantiles
        .map(|quantile| ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total));
    let mut values = [None; N];
    let mut next = 0;
    let mut seen = 0u64;
    let mut sum = 0u128;
    for (bucket, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        seen += count;
        sum += u128::from(representative(bucket)) * u128::from(count);
        while next < N && seen >= ranks[next] {
            values[next] = Some(Duration::from_micros(representative(bucket)));
            next += 1;
        }
    }
    let mean = u64::try_from(sum / u128::from(total)).unwrap_or(u64::MAX);
    (values, Some(Duration::from_micros(mean)))
}

/// The mean of the counts (from bucket representatives), or `None`.
#[cfg(test)]
fn mean(counts: &[u64]) -> Option<Duration> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let sum: u128 = counts
        .iter()
        .enumerate()
        .map(|(bucket, &count)| u128::from(representative(bucket)) * u128::from(count))
        .sum();
    let micros = u64::try_from(sum / u128::from(total)).unwrap_or(u64::MAX);
    Some(Duration::from_micros(micros))
}

/// A duration in whole microseconds, saturating.
#[inline]
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_are_exact_and_buckets_are_contiguous() {
        for value in 0..SUB {
            assert_eq!(bucket_of(value), value as usize);
        }
        for bucket in 1..BUCKETS {
            assert_eq!(bounds(bucket - 1).1, bounds(bucket).0, "bucket {bucket}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bounds(BUCKETS - 1).1, 1 << MAX_EXPONENT);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut counts = vec![0u64; BUCKETS];
        counts[bucket_of(1_000)] = 99;
        counts[bucket_of(100_000)] = 1;
        let p50 = quantile(&counts, 0.50).unwrap_or_default();
        let p99 = quantile(&counts, 0.99).unwrap_or_default();
        let p100 = quantile(&counts, 1.0).unwrap_or_default();
        assert!(p50.as_micros().abs_diff(1_000) <= 125, "{p50:?}");
        assert_eq!(p99, p50);
        assert!(p100.as_micros().abs_diff(100_000) <= 12_500, "{p100:?}");
        assert_eq!(quantile(&[0; BUCKETS], 0.5), None);
        let (values, average) = summary(&counts, [0.5, 0.99, 1.0]);
        assert_eq!(values, [Some(p50), Some(p99), Some(p100)]);
        assert_eq!(average, mean(&counts));
    }

    proptest! {
        #[test]
        fn every_value_lies_in_its_bucket(value in 0u64..(1 << MAX_EXPONENT)) {
            let (low, high) = bounds(bucket_of(value));
            prop_assert!(low <= value && value < high);
            // Relative width at most 1/8 of the lower bound above 8 µs.
            if value >= SUB {
                prop_assert!((high - low) * SUB <= low);
            }
        }
    }
}
