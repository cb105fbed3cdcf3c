// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's random numbers: splitmix64, one stream per thread, seeded from the run's seed
//! and the thread's place (process, thread), so that `--seed` replays every stream.

/// splitmix64's finaliser: a well-mixed 64-bit value for each input.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A splitmix64 stream.
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream of thread `thread` of worker process `proc_` in the run of `seed`.
    pub(crate) fn new(seed: u64, proc_: u32, thread: u32) -> Self {
        Self(mix(seed ^ mix((u64::from(proc_) << 32) | u64::from(thread))))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// An index in `0..n`.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An index into `weights`, each as likely as its weight.
    pub(crate) fn weighted(&mut self, weights: impl Iterator<Item = u32> + Clone) -> usize {
        let total: u64 = weights.clone().map(u64::from).sum();
        let mut at = self.below(total);
        for (i, w) in weights.enumerate() {
            if at < u64::from(w) {
                return i;
            }
            at -= u64::from(w);
        }
        0
    }
}
