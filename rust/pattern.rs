// SPDX-License-Identifier: GPL-2.0

//! Data patterns and checksums for round trips between user space and the kernel.
//!
//! `MINIMM_IOC_BLOCK_DATA` fills a block with [`fill`]'s pattern or returns its [`Fnv1a`]
//! checksum; the selftests compile this same file, so both sides compute the same bytes.
//!
//! Pure: no `kernel::` imports, no allocation.

/// 64-bit FNV-1a over a byte stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> Self {
        Self(Self::OFFSET)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// splitmix64: a well-mixed 64-bit value for each input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf`, which sits at byte `offset` of a block, with the pattern of `seed`: the
/// little-endian 64-bit word at block offset `8k` is `mix(seed + k)`. `offset` must be a
/// multiple of 8; `buf` may end mid-word.
pub(crate) fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let first = offset / 8;
    for (k, chunk) in buf.chunks_mut(8).enumerate() {
        let w = word(seed, first.wrapping_add(k as u64)).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// The pattern's `k`-th 64-bit word (at byte `8k` of the block, little-endian in memory).
pub(crate) fn word(seed: u64, k: u64) -> u64 {
    mix(seed.wrapping_add(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(Fnv1a::new().finish(), 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv1a::new();
        h.update(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv1a::new();
        h.update(b"foo");
        assert_eq!(h.finish(), 0xdcb2_7518_fed9_d577);
    }

    #[test]
    fn fnv1a_is_streaming() {
        let data: std::vec::Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut whole = Fnv1a::new();
        whole.update(&data);
        let mut parts = Fnv1a::new();
        for c in data.chunks(7) {
            parts.update(c);
        }
        assert_eq!(whole.finish(), parts.finish());
    }

    #[test]
    fn fill_in_pieces_equals_fill_at_once() {
        let mut whole = [0u8; 4096];
        fill(42, 0, &mut whole);
        let mut pieces = [0u8; 4096];
        for (i, c) in pieces.chunks_mut(256).enumerate() {
            fill(42, (i * 256) as u64, c);
        }
        assert_eq!(whole, pieces);
        let mut other = [0u8; 4096];
        fill(43, 0, &mut other);
        assert_ne!(whole, other, "seeds give different patterns");
        assert!(whole.iter().any(|&b| b != 0));
    }
}
