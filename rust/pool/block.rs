// SPDX-License-Identifier: GPL-2.0

//! Blocks handed out by the pool: a [`RawBlock`] names one (the in-kernel API, given back by
//! hand), a [`PoolBlock`] owns one and gives it back when dropped, or puts it on its zone's
//! held list while its pages are still referenced from outside minimm.

use core::ops::Range;

use kernel::{page::BorrowedPage, prelude::*, sync::Arc};

use super::Pool;
use crate::pattern;

/// A block out of the pool, from [`Pool::alloc_raw`]: neither `Clone` nor `Copy`, so that it
/// can be given back only once.
///
/// # Invariants
///
/// `index` heads an allocated block of `order` in zone `zone` of the pool that made it, and
/// this value is its only owner.
pub(crate) struct RawBlock {
    pub(super) zone: usize,
    pub(super) index: u32,
    pub(super) order: u32,
}

impl RawBlock {
    /// The zone the block came from.
    pub(crate) fn zone(&self) -> usize {
        self.zone
    }

    /// The block's order.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }
}

/// A [`RawBlock`] that keeps the pool alive and gives the block back when dropped (or holds it,
/// while its pages are referenced from outside): what a file's [`crate::device::blocks::Buffer`] owns.
pub(crate) struct PoolBlock {
    pub(super) raw: RawBlock,
    pub(super) pool: Arc<Pool>,
}

impl PoolBlock {
    /// The zone the block came from.
    pub(crate) fn zone(&self) -> usize {
        self.raw.zone
    }

    /// Number of pages.
    pub(crate) fn pages(&self) -> usize {
        1 << self.raw.order
    }

    /// The block's order.
    pub(crate) fn order(&self) -> u32 {
        self.raw.order
    }

    /// The index of its first page in its zone's page table.
    pub(crate) fn index(&self) -> u32 {
        self.raw.index
    }

    /// The `i`-th page of the block.
    pub(crate) fn page(&self, i: usize) -> Option<BorrowedPage<'_>> {
        if i >= self.pages() {
            return None;
        }
        self.pool
            .zone(self.raw.zone)?
            .page(self.raw.index + i as u32)
    }

    fn pages_range(&self) -> Range<usize> {
        0..self.pages()
    }

    /// Zeroes the whole block.
    ///
    /// Context: process context.
    ///
    /// # Safety
    ///
    /// Nothing else may read or write the block's pages meanwhile: a block that nobody else
    /// can reach yet (not mapped, not in any table).
    pub(crate) unsafe fn zero(&self) -> Result {
        for i in self.pages_range() {
            let p = self.page(i).ok_or(EINVAL)?;
            // SAFETY: Nobody else reads or writes the block's pages (the caller's obligation).
            unsafe { p.fill_zero_raw(0, kernel::page::PAGE_SIZE)? };
        }
        Ok(())
    }

    /// The 64-bit FNV-1a checksum of the block's bytes.
    ///
    /// User space may write the block through a mapping meanwhile: it then sums some mix of
    /// old and new bytes, as a `copy_from_user` of the same bytes would read.
    ///
    /// # Safety
    ///
    /// As for [`crate::host_pages::read_words`]: the kernel accesses the block's contents
    /// nowhere else meanwhile (its owner serialises them; see `device/blocks.rs`).
    pub(crate) unsafe fn checksum(&self) -> Result<u64> {
        let mut h = pattern::Fnv1a::new();
        // SAFETY: By the caller's obligation.
        unsafe { self.checksum_into(&mut h)? };
        Ok(h.finish())
    }

    /// Feeds the block's bytes to `h` (a buffer of several blocks sums them in order).
    ///
    /// # Safety
    ///
    /// As for [`PoolBlock::checksum`].
    pub(crate) unsafe fn checksum_into(&self, h: &mut pattern::Fnv1a) -> Result {
        for i in self.pages_range() {
            let p = self.page(i).ok_or(EINVAL)?;
            // SAFETY: A page of this block, whose kernel-side accesses the caller serialises.
            unsafe { crate::host_pages::read_words(&p, |w| h.update(&w.to_ne_bytes())) };
        }
        Ok(())
    }

    /// Fills the block with the pattern of `seed` (see `pattern::fill`); racing user writes
    /// through a mapping only mix bytes, as with `copy_to_user`.
    ///
    /// # Safety
    ///
    /// As for [`crate::host_pages::write_words`]: the block is the caller's to change, and the
    /// kernel accesses its contents nowhere else meanwhile.
    pub(crate) unsafe fn fill(&self, seed: u64) -> Result {
        // SAFETY: By the caller's obligation.
        unsafe { self.fill_at(seed, 0) }
    }

    /// [`PoolBlock::fill`] for a block that starts at 64-bit word `start` of a buffer of
    /// several blocks: its words are the pattern's from there.
    ///
    /// # Safety
    ///
    /// As for [`PoolBlock::fill`].
    pub(crate) unsafe fn fill_at(&self, seed: u64, start: u64) -> Result {
        const WORDS: usize = kernel::page::PAGE_SIZE / 8;
        for i in self.pages_range() {
            let p = self.page(i).ok_or(EINVAL)?;
            let first = start + (i * WORDS) as u64;
            // Little-endian in memory, as the pattern is defined.
            let word =
                |k: usize| u64::from_ne_bytes(pattern::word(seed, first + k as u64).to_le_bytes());
            // SAFETY: A page of this block, which the caller may change and whose kernel-side
            // accesses it serialises.
            unsafe { crate::host_pages::write_words(&p, word) };
        }
        Ok(())
    }
}

impl Drop for PoolBlock {
    /// Context: as for [`Pool::alloc_raw`].
    fn drop(&mut self) {
        let Some(zone) = self.pool.zone(self.raw.zone) else {
            return;
        };
        if zone.referenced(self.raw.index, self.raw.order) {
            // Handing the block out again would let its next owner share pages with whoever
            // still holds them: hold it until they let go (see the module documentation).
            zone.hold(self.raw.index);
            self.pool.schedule_reaper();
            return;
        }
        self.pool.free_raw(RawBlock {
            zone: self.raw.zone,
            index: self.raw.index,
            order: self.raw.order,
        });
        // A free is a good moment to look at the oldest held block.
        if zone.held.load(core::sync::atomic::Ordering::Relaxed) > 0 {
            zone.reap_held(1);
        }
    }
}
