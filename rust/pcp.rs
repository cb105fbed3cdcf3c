// SPDX-License-Identifier: GPL-2.0

//! Per-CPU page lists, Linux's `struct per_cpu_pages` (mm/page_alloc.c), pure part.
//!
//! Each CPU keeps, per zone, a short list of free order-0 pages. The common order-0
//! allocation pops the list and the common free pushes it, without the zone lock. An empty
//! list refills `batch` pages from the zone in one trip under the zone lock; a list that
//! reaches `high` gives its `batch` coldest pages back the same way.
//!
//! The list is a ring over caller-provided storage: pushes and pops at the hot end (the page
//! freed last is handed out first, its cache lines likely still warm), batches leave from the
//! cold end.
//!
//! Sizing follows Linux 7.3 (mm/page_alloc.c): `batch` is `zone_batchsize` (~0.025% of the
//! zone or 256 KiB, whichever is smaller, clamped to 2^n - 1). `high` moves between two marks
//! from `zone_highsize`: `high_min`, the zone's low watermark shared among the CPUs (so that
//! full lists do not wake reclaim early), and `high_max`, an eighth of the zone shared the same
//! way (`MIN_PERCPU_PAGELIST_HIGH_FRACTION`); each is at least `4 * batch`. `high` is tuned in
//! a simplified form of Linux's `nr_pcp_alloc` and `nr_pcp_high`: a refill raises it by a batch
//! while the zone is above its high watermark, and a list that overflows while the zone is
//! below it lowers it by a batch, so that a zone under pressure keeps fewer pages on the lists.
//! (Linux also tunes on every free, by the recent free count, and scales refills by an
//! allocation factor.)

/// `zone_batchsize` for a zone of `managed` pages of `page_size` bytes.
pub(crate) fn batch_size(managed: usize, page_size: usize) -> usize {
    let batch = (managed >> 12).min((256 << 10) / page_size.max(1));
    if batch <= 1 {
        return 1;
    }
    // rounddown_pow_of_two(batch + batch / 2) - 1.
    let x = batch + batch / 2;
    (1usize << (usize::BITS - 1 - x.leading_zeros())) - 1
}

/// `zone_highsize`: `total` pages split among `cpus`, at least `4 * batch`, and at most
/// `cap - batch` so that a full list still has room to push. `total` is the zone's low
/// watermark for `high_min` and an eighth of its pages for `high_max`.
pub(crate) fn high_mark(total: usize, cpus: usize, batch: usize, cap: usize) -> usize {
    (total / cpus.max(1))
        .max(4 * batch)
        .min(cap.saturating_sub(batch))
        .max(1)
}

/// One CPU's list of free order-0 pages (zone table indices).
///
/// # Invariants
///
/// `count <= slots.len()` and `start < slots.len()` (when there are slots); the pages are
/// `slots[(start + k) % len]` for `k` in `0..count`, the coldest first.
pub(crate) struct PcpList<S> {
    slots: S,
    start: usize,
    count: usize,
    pub(crate) high: usize,
    pub(crate) high_min: usize,
    pub(crate) high_max: usize,
    pub(crate) batch: usize,
}

impl<S> PcpList<S>
where
    S: core::ops::DerefMut<Target = [u32]>,
{
    /// An empty list over `slots`, which bounds how many pages it can hold, with `high`
    /// starting at `high_min`.
    pub(crate) fn new(slots: S, high_min: usize, high_max: usize, batch: usize) -> Self {
        let high_max = high_max.max(high_min);
        Self {
            slots,
            start: 0,
            count: 0,
            high: high_min,
            high_min,
            high_max,
            batch,
        }
    }

    /// New marks (the zone's watermarks changed): `high` is clamped into them.
    pub(crate) fn set_marks(&mut self, high_min: usize, high_max: usize, batch: usize) {
        self.high_min = high_min;
        self.high_max = high_max.max(high_min);
        self.batch = batch;
        self.high = self.high.clamp(self.high_min, self.high_max);
    }

    /// A refill: while the zone is above its high watermark, `high` grows by a batch, up to
    /// `high_max` (`nr_pcp_alloc`).
    pub(crate) fn tune_on_refill(&mut self, zone_above_high: bool) {
        if zone_above_high {
            self.high = self.high.saturating_add(self.batch).min(self.high_max);
        }
    }

    /// The list reached `high` on a free: with the zone below its high watermark, `high`
    /// shrinks by a batch, down to `high_min` (`nr_pcp_high`).
    pub(crate) fn tune_on_overflow(&mut self, zone_below_high: bool) {
        if zone_below_high {
            self.high = self.high.saturating_sub(self.batch).max(self.high_min);
        }
    }

    /// Pages on the list.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The slot of the `k`-th coldest page, for `k <= count`. With `start < len` and
    /// `k <= len` the sum is below `2 * len`: one compare instead of a division (hot path).
    fn slot(&self, k: usize) -> usize {
        let s = self.start + k;
        if s >= self.slots.len() {
            s - self.slots.len()
        } else {
            s
        }
    }

    /// Adds a page at the hot end; gives it back if the list is full.
    pub(crate) fn push(&mut self, index: u32) -> Result<(), u32> {
        if self.count >= self.slots.len() {
            return Err(index);
        }
        let at = self.slot(self.count);
        match self.slots.get_mut(at) {
            Some(s) => *s = index,
            None => return Err(index),
        }
        self.count += 1;
        Ok(())
    }

    /// Takes the hottest page.
    pub(crate) fn pop(&mut self) -> Option<u32> {
        let k = self.count.checked_sub(1)?;
        let v = *self.slots.get(self.slot(k))?;
        self.count = k;
        Some(v)
    }

    /// Takes the coldest page.
    pub(crate) fn pop_cold(&mut self) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        let v = *self.slots.get(self.start)?;
        self.start = self.slot(1);
        self.count -= 1;
        Some(v)
    }

    /// Whether the list has reached its high mark and should give a batch back.
    pub(crate) fn over_high(&self) -> bool {
        self.count >= self.high
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::VecDeque, vec, vec::Vec};

    #[test]
    fn batch_follows_zone_batchsize() {
        // 16384 pages: min(16384 >> 12, 64) = 4; rounddown_pow_of_two(6) - 1 = 3.
        assert_eq!(batch_size(16384, 4096), 3);
        // 4 GiB of pages: min(256, 64) = 64; rounddown_pow_of_two(96) - 1 = 63 (Linux).
        assert_eq!(batch_size(1 << 20, 4096), 63);
        // 8192 pages: 2; rounddown_pow_of_two(3) - 1 = 1. 12288: 3 -> rounddown(4) - 1 = 3.
        assert_eq!(batch_size(8191, 4096), 1);
        assert_eq!(batch_size(8192, 4096), 1);
        assert_eq!(batch_size(12288, 4096), 3);
        // Tiny zones still batch one page.
        assert_eq!(batch_size(512, 4096), 1);
        assert_eq!(batch_size(0, 4096), 1);
    }

    #[test]
    fn high_is_a_share_of_low_but_at_least_four_batches() {
        assert_eq!(high_mark(223, 2, 3, 512), 111);
        assert_eq!(high_mark(6, 2, 1, 512), 4);
        assert_eq!(high_mark(100_000, 1, 63, 512), 512 - 63);
        assert_eq!(high_mark(0, 0, 0, 0), 1);
    }

    #[test]
    fn high_moves_between_its_marks() {
        let mut l = PcpList::new(vec![0u32; 64], 8, 14, 3);
        assert_eq!(l.high, 8);
        l.tune_on_refill(false);
        assert_eq!(l.high, 8, "a zone below high does not grow the lists");
        l.tune_on_refill(true);
        l.tune_on_refill(true);
        assert_eq!(l.high, 14, "8 + 3 + 3, capped at high_max");
        l.tune_on_overflow(false);
        assert_eq!(l.high, 14);
        l.tune_on_overflow(true);
        assert_eq!(l.high, 11);
        l.tune_on_overflow(true);
        l.tune_on_overflow(true);
        assert_eq!(l.high, 8, "down to high_min");
        l.set_marks(10, 12, 1);
        assert_eq!((l.high, l.high_min, l.high_max, l.batch), (10, 10, 12, 1));
        l.set_marks(2, 1, 1);
        assert_eq!(
            (l.high, l.high_max),
            (2, 2),
            "high_max is at least high_min"
        );
    }

    #[test]
    fn hot_end_is_lifo_cold_end_is_fifo() -> Result<(), String> {
        let mut l = PcpList::new(vec![0u32; 4], 3, 3, 1);
        for i in 1..=4 {
            l.push(i).map_err(|i| format!("push of {i} refused"))?;
        }
        assert_eq!(l.push(5), Err(5), "full");
        assert!(l.over_high());
        assert_eq!(l.pop(), Some(4));
        assert_eq!(l.pop_cold(), Some(1));
        l.push(6).map_err(|i| format!("push of {i} refused"))?;
        l.push(7).map_err(|i| format!("push of {i} refused"))?; // wraps around the ring
        assert_eq!(l.count(), 4);
        let mut cold = Vec::new();
        while let Some(i) = l.pop_cold() {
            cold.push(i);
        }
        assert_eq!(cold, [2, 3, 6, 7]);
        assert_eq!(l.pop(), None);
        Ok(())
    }

    /// Random pushes and pops from both ends against a VecDeque.
    #[test]
    fn random_operations_agree_with_a_deque() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut l = PcpList::new(vec![0u32; 7], 5, 5, 2);
        let mut model: VecDeque<u32> = VecDeque::new();
        for step in 0..10_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 3 {
                0 => {
                    let r = l.push(step);
                    if model.len() < 7 {
                        assert_eq!(r, Ok(()));
                        model.push_back(step);
                    } else {
                        assert_eq!(r, Err(step));
                    }
                }
                1 => assert_eq!(l.pop(), model.pop_back()),
                _ => assert_eq!(l.pop_cold(), model.pop_front()),
            }
            assert_eq!(l.count(), model.len());
            assert_eq!(l.over_high(), model.len() >= 5);
        }
    }
}
