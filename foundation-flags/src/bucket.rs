//! Stable bucketing of ids, exactly as Unleash does it.
//!
//! An id falls into a bucket from 1 to 100: murmur3 x86 32-bit, seed 0, of
//! the UTF-8 bytes of `"{group_id}:{id}"`, then `% 100 + 1`. An id is
//! enabled at percentage `p` when its bucket is `<= p`, so raising `p` keeps
//! every id that was already enabled, and a team moving from Unleash keeps
//! its users in the same buckets.
//!
//! The hash is written here rather than taken from the `murmur3` crate
//! because that crate hashes from a `std::io::Read` and would make us build
//! the `"{group_id}:{id}"` string for every evaluation. [`Murmur3`] hashes
//! byte slices as one stream, so the group id and the colon are hashed once
//! per flag ([`BucketPrefix`]) and each evaluation only hashes the id. The
//! tests check it against the published vectors and against the `murmur3`
//! crate.
//!
//! This module is not for choosing what a bucket means; see
//! [`FlagValue`](crate::FlagValue).

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// murmur3 x86 32-bit of `bytes` with `seed`.
///
/// ```
/// use foundation_flags::murmur3_x86_32;
///
/// assert_eq!(murmur3_x86_32(b"", 0), 0);
/// assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
/// ```
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::with_seed(seed);
    hasher.write(bytes);
    hasher.finish()
}

/// The Unleash bucket of `id` in `group_id`: a number from 1 to 100.
///
/// murmur3 x86 32-bit, seed 0, of `"{group_id}:{id}"`, then `% 100 + 1`,
/// computed without building that string.
///
/// ```
/// use foundation_flags::normalized_bucket;
///
/// // The vectors the Unleash clients share (unleash-client-node,
/// // src/test/strategy/util.test.ts).
/// assert_eq!(normalized_bucket("gr1", "123"), 73);
/// assert_eq!(normalized_bucket("groupX", "999"), 25);
/// ```
pub fn normalized_bucket(group_id: &str, id: &str) -> u32 {
    BucketPrefix::new(group_id).bucket(id)
}

/// The hash state after `"{group_id}:"`, computed once per flag, so that
/// bucketing an id hashes only the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketPrefix {
    state: Murmur3,
}

impl BucketPrefix {
    pub(crate) fn new(group_id: &str) -> BucketPrefix {
        let mut state = Murmur3::with_seed(0);
        state.write(group_id.as_bytes());
        state.write(b":");
        BucketPrefix { state }
    }

    /// The bucket of `id`, from 1 to 100.
    #[inline]
    pub(crate) fn bucket(&self, id: &str) -> u32 {
        let mut state = self.state;
        state.write(id.as_bytes());
        state.finish() % 100 + 1
    }
}

/// Streaming murmur3 x86 32-bit: the same result as hashing the
/// concatenation of everything written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Murmur3 {
    hash: u32,
    /// Bytes not yet forming a whole 4-byte block, little-endian.
    pending: u32,
    pending_len: u32,
    /// The total length modulo 2^32, as the reference implementation uses it.
    total_len: u32,
}

impl Murmur3 {
    pub(crate) const fn with_seed(seed: u32) -> Murmur3 {
        Murmur3 {
            hash: seed,
            pending: 0,
            pending_len: 0,
            total_len: 0,
        }
    }

    #[inline]
    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        // Truncation is the reference behaviour: the length enters the hash
        // as a 32-bit number.
        self.total_len = self.total_len.wrapping_add(bytes.len() as u32);
        if self.pending_len > 0 {
            while self.pending_len < 4 {
                let Some((&byte, rest)) = bytes.split_first() else {
                    return;
                };
                self.pending |= u32::from(byte) << (8 * self.pending_len);
                self.pending_len += 1;
                bytes = rest;
            }
            self.hash = mix_block(self.hash, self.pending);
            self.pending = 0;
            self.pending_len = 0;
        }
        let (blocks, tail) = bytes.as_chunks::<4>();
        for block in blocks {
            self.hash = mix_block(self.hash, u32::from_le_bytes(*block));
        }
        for (position, &byte) in tail.iter().enumerate() {
            self.pending |= u32::from(byte) << (8 * position);
        }
        self.pending_len = tail.len() as u32;
    }

    #[inline]
    pub(crate) fn finish(self) -> u32 {
        let mut hash = self.hash;
        if self.pending_len > 0 {
            hash ^= scramble(self.pending);
        }
        hash ^= self.total_len;
        final_mix(hash)
    }
}

#[inline]
fn scramble(block: u32) -> u32 {
    block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline]
fn mix_block(hash: u32, block: u32) -> u32 {
    (hash ^ scramble(block))
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline]
fn final_mix(mut hash: u32) -> u32 {
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_vectors() {
        assert_eq!(murmur3_x86_32(b"", 0), 0x0000_0000);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        // Seeded vectors of the reference implementation's test suite.
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
    }

    #[test]
    fn streaming_equals_one_shot_for_every_split() {
        let text = b"The quick brown fox jumps over the lazy dog";
        let whole = murmur3_x86_32(text, 0);
        for first in 0..=text.len() {
            for second in first..=text.len() {
                let mut hasher = Murmur3::with_seed(0);
                hasher.write(&text[..first]);
                hasher.write(&text[first..second]);
                hasher.write(&text[second..]);
                assert_eq!(hasher.finish(), whole, "split at {first} and {second}");
            }
        }
    }

    #[test]
    fn prefix_bucket_equals_concatenation() {
        for group in ["", "a", "ab", "abc", "abcd", "use_v2_coordinator"] {
            for id in ["", "1", "12", "123", "user-00000000000001"] {
                let key = format!("{group}:{id}");
                let expected = murmur3_x86_32(key.as_bytes(), 0) % 100 + 1;
                assert_eq!(normalized_bucket(group, id), expected, "{key}");
            }
        }
    }
}
