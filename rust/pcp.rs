// SPDX-License-Identifier: GPL-2.0

//! Per-CPU page lists, Linux's `struct per_cpu_pages` (mm/page_alloc.c), pure part.
//!
//! Each CPU keeps, per zone, one short list of free blocks per order up to
//! `PAGE_ALLOC_COSTLY_ORDER` (3), as Linux has since 5.14. The common allocation of order 0..3
//! pops its order's list and the common free pushes it, touching nothing but this CPU's
//! lists. An empty list refills from the zone in one trip under the zone lock; once the lists
//! together reach `high` pages, a free gives pages back the same way.
//!
//! Linux's accounting: `count`, `high` and `batch` are pages, not blocks. An order-3 block on a
//! list counts 8 pages towards `high`, and a refill of order `o > 0` takes `max(batch >> o, 2)`
//! blocks (`nr_pcp_alloc`), so that a refill of any order moves about a batch of pages.
//!
//! Each list is a ring over its share of caller-provided slots: pushes and pops at the hot end
//! (the block freed last is handed out first, its cache lines likely still warm), give-backs
//! from the cold end. The shares are 8:4:2:1 for orders 0..3, so each order's ring holds the
//! same number of pages: with [`PCP_SLOTS`] slots, 512 pages an order.
//!
//! Give-backs follow Linux's `free_pcppages_bulk` and `nr_pcp_free`: the list just freed to
//! goes first, then the others round-robin, coldest blocks first; and the amount grows with a
//! run of frees: `free_count` counts the pages freed (up to `batch << 5`, as Linux's
//! `CONFIG_PCP_BATCH_SCALE_MAX` default) and each allocation halves it, and a give-back
//! returns `clamp(free_count, batch, high - batch)` pages. A burst of frees (a bulk
//! free, a process exiting) so gives back in a few large trips rather than many small ones.
//!
//! Sizing follows Linux 7.3 (mm/page_alloc.c): `batch` is `zone_batchsize` (~0.025% of the
//! zone or 256 KiB, whichever is smaller, clamped to 2^n - 1). `high` moves between two marks
//! from `zone_highsize`: `high_min`, the zone's low watermark shared among the CPUs (so that
//! full lists do not wake reclaim early), and `high_max`, an eighth of the zone shared the same
//! way (`MIN_PERCPU_PAGELIST_HIGH_FRACTION`); each is at least `4 * batch`. `high` is tuned in
//! a simplified form of Linux's `nr_pcp_alloc` and `nr_pcp_high`: a refill raises it by a batch
//! while the zone is above its high watermark, and a give-back while the zone is below it
//! lowers it by a batch, so that a zone under pressure keeps fewer pages on the lists.
//! (Linux also scales order-0 refills by an allocation factor.)

/// Orders with a per-CPU list: 0..=`PAGE_ALLOC_COSTLY_ORDER`.
pub(crate) const NR_PCP_ORDERS: usize = 4;

/// Slots one CPU's lists need together: 512, 256, 128 and 64 blocks of orders 0..3, 512 pages
/// each.
pub(crate) const PCP_SLOTS: usize = 960;

/// Pages one order's ring holds with [`PCP_SLOTS`] slots: the ceiling of the high marks.
pub(crate) const PCP_PAGES: usize = 512;

/// Linux's `CONFIG_PCP_BATCH_SCALE_MAX` default: `free_count` counts up to `batch` times 2^5.
const PCP_BATCH_SCALE_MAX: u32 = 5;

/// Where the lists' blocks come from and go back to: the zone's buddy allocator, under the
/// zone lock.
pub(crate) trait Backing {
    /// Takes a free block of `order`, or `None` if there is none.
    fn take(&mut self, order: u32) -> Option<u32>;
    /// Gives back the block at `index` of `order`, which `take` gave.
    fn give(&mut self, index: u32, order: u32);
}

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
/// `cap - batch` so that full lists still have room to push. `total` is the zone's low
/// watermark for `high_min` and an eighth of its pages for `high_max`.
pub(crate) fn high_mark(total: usize, cpus: usize, batch: usize, cap: usize) -> usize {
    (total / cpus.max(1))
        .max(4 * batch)
        .min(cap.saturating_sub(batch))
        .max(1)
}

/// One order's ring: `len` blocks at `slots[base + (start + k) % cap]`, the coldest first.
#[derive(Clone, Copy, Debug, Default)]
struct Ring {
    base: usize,
    cap: usize,
    start: usize,
    len: usize,
}

impl Ring {
    /// The slot of the `k`-th coldest block, for `k <= len <= cap`. With `start < cap` the sum
    /// is below `2 * cap`: one compare instead of a division (hot path).
    #[inline]
    fn at(&self, k: usize) -> usize {
        let s = self.start + k;
        self.base + if s >= self.cap { s - self.cap } else { s }
    }
}

/// One CPU's lists of free blocks of orders 0..3 (zone table indices), for one zone.
///
/// # Invariants
///
/// - The rings' slot ranges `base..base + cap` are disjoint and inside `slots`; for each ring
///   `len <= cap` and `start < cap` (when `cap > 0`).
/// - `count` is the pages on all lists: the sum of `len << order`.
pub(crate) struct PcpLists<S> {
    slots: S,
    rings: [Ring; NR_PCP_ORDERS],
    count: usize,
    /// Pages freed since allocations last halved it (Linux's `free_count`), counted while
    /// below `free_count_max`, `batch << PCP_BATCH_SCALE_MAX`, kept rather than recomputed
    /// because every free reads it (computing it there measured 4% slower on the host
    /// benchmark's churn); `new` and `set_marks`, the only writers of `batch`, set both.
    free_count: usize,
    free_count_max: usize,
    pub(crate) high: usize,
    pub(crate) high_min: usize,
    pub(crate) high_max: usize,
    pub(crate) batch: usize,
}

impl<S> PcpLists<S>
where
    S: core::ops::DerefMut<Target = [u32]>,
{
    /// Empty lists over `slots`, shared 8:4:2:1 among orders 0..3, with `high` starting at
    /// `high_min`.
    pub(crate) fn new(slots: S, high_min: usize, high_max: usize, batch: usize) -> Self {
        let n = slots.len();
        let mut base = 0;
        let rings = core::array::from_fn(|order| {
            let cap = n.saturating_mul(8 >> order) / 15;
            let r = Ring {
                base,
                cap,
                start: 0,
                len: 0,
            };
            base += cap;
            r
        });
        // INVARIANT: the shares add up to at most n * 15 / 15 slots, back to back; all empty.
        Self {
            slots,
            rings,
            count: 0,
            free_count: 0,
            free_count_max: batch.saturating_mul(1 << PCP_BATCH_SCALE_MAX),
            high: high_min,
            high_min,
            high_max: high_max.max(high_min),
            batch,
        }
    }

    /// New marks (the zone's watermarks changed): `high` is clamped into them.
    pub(crate) fn set_marks(&mut self, high_min: usize, high_max: usize, batch: usize) {
        self.high_min = high_min;
        self.high_max = high_max.max(high_min);
        self.batch = batch;
        self.free_count_max = batch.saturating_mul(1 << PCP_BATCH_SCALE_MAX);
        self.high = self.high.clamp(self.high_min, self.high_max);
    }

    /// A refill: while the zone is above its high watermark, `high` grows by a batch, up to
    /// `high_max` (`nr_pcp_alloc`).
    pub(crate) fn tune_on_refill(&mut self, zone_above_high: bool) {
        if zone_above_high {
            self.high = self.high.saturating_add(self.batch).min(self.high_max);
        }
    }

    /// A give-back: with the zone below its high watermark, `high` shrinks by a batch, down
    /// to `high_min` (`nr_pcp_high`).
    pub(crate) fn tune_on_overflow(&mut self, zone_below_high: bool) {
        if zone_below_high {
            self.high = self.high.saturating_sub(self.batch).max(self.high_min);
        }
    }

    /// Pages on the lists, every order together.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Blocks on the list of `order`.
    pub(crate) fn blocks(&self, order: u32) -> usize {
        self.rings.get(order as usize).map_or(0, |r| r.len)
    }

    /// Blocks of `order` the list can hold at most.
    #[cfg(test)]
    pub(crate) fn capacity(&self, order: u32) -> usize {
        self.rings.get(order as usize).map_or(0, |r| r.cap)
    }

    /// Adds a block at the hot end of its order's list; gives it back if the list is full or
    /// the order has no list.
    #[inline]
    pub(crate) fn push(&mut self, index: u32, order: u32) -> Result<(), u32> {
        let Some(r) = self.rings.get_mut(order as usize) else {
            return Err(index);
        };
        if r.len >= r.cap {
            return Err(index);
        }
        match self.slots.get_mut(r.at(r.len)) {
            Some(s) => *s = index,
            None => return Err(index),
        }
        r.len += 1;
        self.count += 1 << order;
        Ok(())
    }

    /// A free: pushes the block and counts it towards the next give-back. `Ok(true)` when the
    /// lists reached `high` and should give pages back ([`PcpLists::give_back`]); `Err` gives
    /// the block back when its list is full.
    #[inline]
    pub(crate) fn free(&mut self, index: u32, order: u32) -> Result<bool, u32> {
        self.push(index, order)?;
        // Linux stops counting at `batch << CONFIG_PCP_BATCH_SCALE_MAX` (5 by default), so
        // that a few allocations undo a long run of frees. (`push` took only orders 0..3.)
        if self.free_count < self.free_count_max {
            self.free_count += 1 << order;
        }
        Ok(self.count >= self.high)
    }

    /// Takes the hottest block of `order`; an allocation, so it halves `free_count`.
    #[inline]
    pub(crate) fn pop(&mut self, order: u32) -> Option<u32> {
        let r = self.rings.get_mut(order as usize)?;
        let k = r.len.checked_sub(1)?;
        let v = *self.slots.get(r.at(k))?;
        r.len = k;
        self.count -= 1 << order;
        self.free_count >>= 1;
        Some(v)
    }

    /// Takes the coldest block of `order`.
    pub(crate) fn pop_cold(&mut self, order: u32) -> Option<u32> {
        let r = self.rings.get_mut(order as usize)?;
        if r.len == 0 {
            return None;
        }
        let v = *self.slots.get(r.base + r.start)?;
        r.start = r.at(1) - r.base;
        r.len -= 1;
        self.count -= 1 << order;
        Some(v)
    }

    /// Blocks of `order` a refill takes (`nr_pcp_alloc`): a batch of pages' worth, at least
    /// two blocks, for orders above 0; one block when the batch is 1 (a tiny zone).
    pub(crate) fn refill_blocks(&self, order: u32) -> usize {
        if self.batch <= 1 {
            1
        } else {
            self.batch.checked_shr(order).unwrap_or(0).max(2)
        }
    }

    /// Refills the list of `order` from `zone` (tuning `high` first); returns the blocks
    /// added. The caller holds the zone lock.
    pub(crate) fn refill(
        &mut self,
        order: u32,
        zone_above_high: bool,
        zone: &mut impl Backing,
    ) -> usize {
        self.tune_on_refill(zone_above_high);
        let mut added = 0;
        for _ in 0..self.refill_blocks(order) {
            let Some(i) = zone.take(order) else { break };
            if let Err(i) = self.push(i, order) {
                zone.give(i, order);
                break;
            }
            added += 1;
        }
        added
    }

    /// Pages a give-back returns (`nr_pcp_free`): the run of frees, at least a batch and at
    /// most `high - batch`.
    pub(crate) fn give_back_pages(&self) -> usize {
        let most = self.high.saturating_sub(self.batch).max(self.batch);
        self.free_count.clamp(self.batch, most)
    }

    /// The lists reached `high` on a free to the list of `order`: gives
    /// [`PcpLists::give_back_pages`] pages back to `zone`, that list's coldest blocks first,
    /// then the other orders' round-robin (`free_pcppages_bulk`). Tunes `high` first. Returns
    /// the pages given back. The caller holds the zone lock.
    pub(crate) fn give_back(
        &mut self,
        order: u32,
        zone_below_high: bool,
        zone: &mut impl Backing,
    ) -> usize {
        self.tune_on_overflow(zone_below_high);
        let mut left = self.give_back_pages();
        let mut given = 0;
        let mut o = order as usize % NR_PCP_ORDERS;
        // Each empty list moves `o` on; four in a row means nothing is left.
        let mut empty = 0;
        while left > 0 && empty < NR_PCP_ORDERS {
            match self.pop_cold(o as u32) {
                Some(i) => {
                    zone.give(i, o as u32);
                    left = left.saturating_sub(1 << o);
                    given += 1 << o;
                    empty = 0;
                }
                None => {
                    o = (o + 1) % NR_PCP_ORDERS;
                    empty += 1;
                }
            }
        }
        given
    }

    /// Gives every block back to `zone`; returns the pages. The caller holds the zone lock.
    pub(crate) fn drain(&mut self, zone: &mut impl Backing) -> usize {
        let mut n = 0;
        for o in 0..NR_PCP_ORDERS as u32 {
            while let Some(i) = self.pop_cold(o) {
                zone.give(i, o);
                n += 1 << o;
            }
        }
        self.free_count = 0;
        n
    }

    /// Calls `f(index, order)` for every block on the lists.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u32, u32)) {
        for (o, r) in self.rings.iter().enumerate() {
            for k in 0..r.len {
                if let Some(&i) = self.slots.get(r.at(k)) {
                    f(i, o as u32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buddy::{Buddy, PageMeta, MAX_ORDER};
    use std::{collections::BTreeMap, collections::VecDeque, vec, vec::Vec};

    /// A buddy allocator as the lists' zone, checking every give-back.
    struct Zone(Buddy<Vec<PageMeta>>);

    impl Backing for Zone {
        fn take(&mut self, order: u32) -> Option<u32> {
            self.0.alloc(order)
        }
        fn give(&mut self, index: u32, order: u32) {
            assert_eq!(
                self.0.free(index),
                Ok(order),
                "block {index} of order {order}"
            );
        }
    }

    fn zone(pages: usize) -> Zone {
        let mut b = Buddy::new(vec![PageMeta::ABSENT; pages]);
        for c in 0..(pages >> MAX_ORDER) as u32 {
            assert_eq!(b.add_chunk(c << MAX_ORDER, MAX_ORDER), Ok(()));
        }
        Zone(b)
    }

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
        assert_eq!(high_mark(223, 2, 3, PCP_PAGES), 111);
        assert_eq!(high_mark(6, 2, 1, PCP_PAGES), 4);
        assert_eq!(high_mark(100_000, 1, 63, PCP_PAGES), 512 - 63);
        assert_eq!(high_mark(0, 0, 0, 0), 1);
    }

    #[test]
    fn slots_are_shared_eight_four_two_one() {
        let l = PcpLists::new(vec![0u32; PCP_SLOTS], 8, 8, 1);
        let caps: Vec<usize> = (0..4).map(|o| l.capacity(o)).collect();
        assert_eq!(caps, [512, 256, 128, 64]);
        assert!((0..4).all(|o| l.capacity(o) << o == PCP_PAGES));
        assert_eq!(l.capacity(4), 0);
        let l = PcpLists::new(vec![0u32; 15], 8, 8, 1);
        assert_eq!((0..4).map(|o| l.capacity(o)).sum::<usize>(), 15);
        let l = PcpLists::new(Vec::<u32>::new(), 8, 8, 1);
        assert_eq!(l.capacity(0), 0);
    }

    #[test]
    fn high_moves_between_its_marks() {
        let mut l = PcpLists::new(vec![0u32; 64], 8, 14, 3);
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
    fn count_is_pages_and_high_counts_pages() -> Result<(), String> {
        // 30 slots: 16, 8, 4, 2 blocks.
        let mut l = PcpLists::new(vec![0u32; 30], 20, 20, 3);
        assert_eq!(l.free(0, 0), Ok(false));
        assert_eq!(l.free(8, 3), Ok(false));
        assert_eq!((l.count(), l.blocks(0), l.blocks(3)), (9, 1, 1));
        assert_eq!(l.free(16, 3), Ok(false), "17 pages, high is 20");
        assert_eq!(l.free(24, 2), Ok(true), "21 pages reach high");
        assert_eq!(l.free(32, 3), Err(32), "the order-3 ring holds two blocks");
        assert_eq!(l.free(40, 4), Err(40), "no list above order 3");
        assert_eq!(l.pop(3), Some(16), "hot end");
        assert_eq!(l.pop_cold(3), Some(8), "cold end");
        assert_eq!(l.pop(1), None);
        assert_eq!(l.count(), 5);
        Ok(())
    }

    #[test]
    fn refills_take_a_batch_of_pages() {
        let mut z = zone(4096);
        let mut l = PcpLists::new(vec![0u32; PCP_SLOTS], 100, 200, 15);
        assert_eq!(l.refill(0, false, &mut z), 15);
        assert_eq!(l.refill(1, false, &mut z), 7);
        assert_eq!(l.refill(2, false, &mut z), 3);
        assert_eq!(l.refill(3, false, &mut z), 2, "at least two blocks");
        assert_eq!(l.count(), 15 + 14 + 12 + 16);
        assert_eq!(z.0.free_pages(), 4096 - l.count());
        assert_eq!(l.high, 100);
        l.refill(0, true, &mut z);
        assert_eq!(l.high, 115, "a refill above the high watermark raises high");
        let mut tiny = PcpLists::new(vec![0u32; PCP_SLOTS], 4, 4, 1);
        assert_eq!(tiny.refill(3, false, &mut z), 1, "batch 1: one block");
        assert_eq!(l.drain(&mut z) + tiny.drain(&mut z), 57 + 15 + 8);
        assert_eq!(z.0.free_pages(), 4096);
        assert_eq!(z.0.validate(), Ok(4));
    }

    #[test]
    fn give_backs_start_with_the_order_freed_and_grow_with_a_run_of_frees() {
        let mut z = zone(4096);
        let mut l = PcpLists::new(vec![0u32; PCP_SLOTS], 40, 40, 4);
        let mut blocks = Vec::new();
        for o in 0..4 {
            for _ in 0..4 {
                blocks.push((z.0.alloc(o).unwrap_or(u32::MAX), o));
            }
        }
        // Order 3 freed last: 4 + 8 + 16 + 32 = 60 pages.
        let mut needs = false;
        for &(i, o) in &blocks {
            needs = l.free(i, o) == Ok(true);
        }
        assert!(needs);
        assert_eq!(
            l.give_back_pages(),
            36,
            "free_count 60, clamped to high - batch"
        );
        let given = l.give_back(3, false, &mut z);
        // Order 3 first (32 pages), then round-robin to order 0: one page more reaches 36,
        // but order 0's blocks go one by one: 32 + 4 = 36.
        assert_eq!(given, 36);
        assert_eq!((l.blocks(3), l.blocks(0), l.blocks(1)), (0, 0, 4));
        assert_eq!(l.count(), 60 - 36);
        // Allocations halve the run, down to a batch.
        let mut out = Vec::new();
        for o in [1, 1] {
            out.push((l.pop(o).unwrap_or(u32::MAX), o));
        }
        assert_eq!(l.give_back_pages(), 15, "60 halved twice");
        for o in [2, 2, 2] {
            out.push((l.pop(o).unwrap_or(u32::MAX), o));
        }
        assert_eq!(l.give_back_pages(), 4, "at least a batch");
        assert_eq!(l.drain(&mut z), 2 * 2 + 4);
        assert_eq!(l.count(), 0);
        for (i, o) in out {
            z.give(i, o);
        }
        assert_eq!(z.0.free_pages(), 4096);
        assert_eq!(z.0.validate(), Ok(4));
    }

    #[test]
    fn free_count_stops_at_batch_times_32() {
        let mut l = PcpLists::new(vec![0u32; PCP_SLOTS], 400, 400, 2);
        for i in 0..200 {
            assert_eq!(l.free(i, 0), Ok(false));
        }
        // Counted while below 2 << 5 = 64, as Linux checks before adding.
        assert_eq!(l.give_back_pages(), 64);
        assert!(l.pop(0).is_some());
        assert_eq!(l.give_back_pages(), 32, "one allocation halves the run");
        assert_eq!(l.free(1000, 4), Err(1000), "no list above order 3");
    }

    #[test]
    fn hot_end_is_lifo_cold_end_is_fifo() -> Result<(), String> {
        // 8 slots for order 0.
        let mut l = PcpLists::new(vec![0u32; 15], 3, 3, 1);
        for i in 1..=8 {
            l.push(i, 0).map_err(|i| format!("push of {i} refused"))?;
        }
        assert_eq!(l.push(9, 0), Err(9), "full");
        assert_eq!(l.pop(0), Some(8));
        assert_eq!(l.pop_cold(0), Some(1));
        l.push(10, 0).map_err(|i| format!("push of {i} refused"))?;
        l.push(11, 0).map_err(|i| format!("push of {i} refused"))?; // wraps around the ring
        let mut all = Vec::new();
        l.for_each(|i, o| all.push((i, o)));
        assert_eq!(all.len(), 8);
        let mut cold = Vec::new();
        while let Some(i) = l.pop_cold(0) {
            cold.push(i);
        }
        assert_eq!(cold, [2, 3, 4, 5, 6, 7, 10, 11]);
        assert_eq!(l.pop(0), None);
        Ok(())
    }

    /// Random pushes and pops from both ends of every order against one VecDeque an order.
    #[test]
    fn random_operations_agree_with_deques() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut l = PcpLists::new(vec![0u32; 30], 20, 20, 2);
        let mut model: [VecDeque<u32>; 4] = Default::default();
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let o = (x >> 8) as u32 % 4;
            let m = &mut model[o as usize];
            match x % 3 {
                0 => {
                    let r = l.push(step, o);
                    if m.len() < l.capacity(o) {
                        assert_eq!(r, Ok(()));
                        m.push_back(step);
                    } else {
                        assert_eq!(r, Err(step));
                    }
                }
                1 => assert_eq!(l.pop(o), m.pop_back()),
                _ => assert_eq!(l.pop_cold(o), m.pop_front()),
            }
            let pages: usize = model.iter().enumerate().map(|(o, m)| m.len() << o).sum();
            assert_eq!(l.count(), pages);
            assert!((0..4).all(|o| l.blocks(o) == model[o as usize].len()));
        }
    }

    /// The page path's model: random allocations and frees of orders 0..4 through the lists
    /// in front of a buddy allocator, as the module's zone runs them. After every step, every
    /// page is accounted for (free in the buddy, on a list, or held by the test) and no block
    /// is on two lists or both on a list and held; drains leave nothing behind.
    #[test]
    fn lists_in_front_of_a_buddy_lose_nothing() {
        const PAGES: usize = 4096;
        for seed in 1..=8u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut z = zone(PAGES);
            let mut l = PcpLists::new(vec![0u32; 60], 24, 48, 3);
            let mut held: BTreeMap<u32, u32> = BTreeMap::new();
            for step in 0..4000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let order = (x >> 16) as u32 % 5;
                let above = z.0.free_pages() > PAGES / 2;
                if x % 100 < 55 || held.is_empty() {
                    // The zone's alloc: the list, refilled when empty; above order 3 the
                    // buddy; when the buddy refuses, drain and retry once.
                    let got = if (order as usize) < NR_PCP_ORDERS {
                        l.pop(order).or_else(|| {
                            l.refill(order, above, &mut z);
                            l.pop(order)
                        })
                    } else {
                        z.0.alloc(order)
                    };
                    let got = got.or_else(|| {
                        l.drain(&mut z);
                        z.0.alloc(order)
                    });
                    if let Some(i) = got {
                        assert!(
                            held.insert(i, order).is_none(),
                            "block {i} handed out twice"
                        );
                    }
                } else {
                    let k = (x >> 24) as usize % held.len();
                    let Some((&i, &o)) = held.iter().nth(k) else {
                        continue;
                    };
                    held.remove(&i);
                    match l.free(i, o) {
                        Ok(false) => {}
                        Ok(true) => {
                            l.give_back(o, !above, &mut z);
                        }
                        Err(i) => z.give(i, o),
                    }
                }
                if step % 500 == 499 {
                    l.drain(&mut z);
                    assert_eq!(l.count(), 0, "a drain leaves nothing behind");
                }
                // Accounting and disjointness.
                let mut on_lists: BTreeMap<u32, u32> = BTreeMap::new();
                l.for_each(|i, o| {
                    assert!(on_lists.insert(i, o).is_none(), "block {i} on two lists");
                    assert!(!held.contains_key(&i), "block {i} both on a list and held");
                });
                let listed: usize = on_lists.iter().map(|(_, &o)| 1usize << o).sum();
                let out: usize = held.iter().map(|(_, &o)| 1usize << o).sum();
                assert_eq!(listed, l.count());
                assert_eq!(
                    z.0.free_pages() + listed + out,
                    PAGES,
                    "seed {seed} step {step}"
                );
                assert!(z.0.validate().is_ok());
            }
            for (i, o) in core::mem::take(&mut held) {
                z.give(i, o);
            }
            l.drain(&mut z);
            assert_eq!(z.0.free_pages(), PAGES);
        }
    }
}
