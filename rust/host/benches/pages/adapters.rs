// SPDX-License-Identifier: GPL-2.0

//! The allocators the traces are replayed against, behind one trait.

use crate::{
    buddy::{Buddy, PageMeta},
    pcp::{self, Backing, PcpLists},
    trace::{Trace, CHUNK_ORDER, MAX_TRACE_ORDER, PAGES},
    zone,
};
use bitmap_allocator::BitAlloc;
use core::hint::black_box;

/// A page-frame allocator: blocks of 2^order pages named by the index of their first page.
pub trait Adapter {
    /// Allocates a block of 2^`order` pages.
    fn alloc(&mut self, order: u32) -> Option<u32>;
    /// Frees the block at `index`, of `order`, that `alloc` gave.
    fn free(&mut self, index: u32, order: u32);
}

/// minimm's buddy allocator alone (rust/buddy.rs), over the arena as 16 chunks of order 10:
/// the page path's [`Lender`] called directly.
pub struct MinimmBuddy(Lender);

fn arena_buddy() -> Buddy<Vec<PageMeta>> {
    let mut b = Buddy::new(vec![PageMeta::ABSENT; PAGES]);
    for c in 0..(PAGES >> CHUNK_ORDER) as u32 {
        b.add_chunk(c << CHUNK_ORDER, CHUNK_ORDER)
            .expect("the arena's chunks are aligned and disjoint");
    }
    b
}

impl MinimmBuddy {
    pub fn new(_: &Trace) -> Self {
        Self(Lender(arena_buddy()))
    }

    pub fn buddy(&self) -> &Buddy<Vec<PageMeta>> {
        &self.0 .0
    }
}

impl Adapter for MinimmBuddy {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u32> {
        self.0.take(order)
    }

    #[inline]
    fn free(&mut self, index: u32, order: u32) {
        self.0.give(index, order)
    }
}

/// CPUs of the VM the module runs in (`make run`: 2 vCPUs).
const CPUS: usize = 2;
/// The module's default zone sizes (DMA, DMA32, NORMAL), for its default watermarks.
const ZONE_PAGES: [usize; zone::NR_ZONES] = [512, 16384, 16384];

/// The buddy allocator as the lists' zone (the module's `Lender`, without its warning).
struct Lender(Buddy<Vec<PageMeta>>);

impl Backing for Lender {
    #[inline]
    fn take(&mut self, order: u32) -> Option<u32> {
        self.0.alloc(order)
    }

    #[inline]
    fn give(&mut self, index: u32, order: u32) {
        let freed = self.0.free(index);
        debug_assert_eq!(freed, Ok(order));
    }
}

/// The page path as the module's `Zone` runs it (rust/pool/zone.rs `alloc_pcp`, `free`,
/// `drain`; rust/pool/mod.rs `alloc_raw`), on one CPU, without its locks, counters,
/// watermark checks and fault injection: orders 0..3 through per-CPU lists in front of the
/// buddy allocator, with the module's batch and high for a 16384-page zone; order 4 straight
/// to the buddy allocator; when the buddy allocator refuses, the lists are drained into it and
/// the request tried once more.
pub struct PagePath {
    zone: Lender,
    lists: PcpLists<Vec<u32>>,
    /// The zone's high watermark, which tunes the lists' `high`.
    wmark_high: usize,
}

impl PagePath {
    pub fn new(_: &Trace) -> Self {
        let kib = 4;
        let total: usize = ZONE_PAGES.iter().sum();
        let w =
            zone::watermarks(ZONE_PAGES, zone::min_free_kbytes(total, kib) / kib, 10)[zone::NORMAL];
        let batch = pcp::batch_size(PAGES, 4096);
        let high_min = pcp::high_mark(w.low, CPUS, batch, pcp::PCP_PAGES);
        let high_max = pcp::high_mark(PAGES / 8, CPUS, batch, pcp::PCP_PAGES);
        Self {
            zone: Lender(arena_buddy()),
            lists: PcpLists::new(vec![0; pcp::PCP_SLOTS], high_min, high_max, batch),
            wmark_high: w.high,
        }
    }

    /// (batch, high_min, high_max) of the lists.
    pub fn marks(&self) -> (usize, usize, usize) {
        (self.lists.batch, self.lists.high_min, self.lists.high_max)
    }

    pub fn buddy(&self) -> &Buddy<Vec<PageMeta>> {
        &self.zone.0
    }

    pub fn pcp_pages(&self) -> usize {
        self.lists.count()
    }

    /// The empty-list half of `Zone::alloc_pcp`.
    #[inline(never)]
    fn refill(&mut self, order: u32) -> Option<u32> {
        let above = self.zone.0.free_pages() > self.wmark_high;
        self.lists.refill(order, above, &mut self.zone);
        self.lists.pop(order)
    }

    #[inline]
    fn try_alloc(&mut self, order: u32) -> Option<u32> {
        if (order as usize) < pcp::NR_PCP_ORDERS {
            if let Some(i) = self.lists.pop(order) {
                return Some(i);
            }
            if let Some(i) = self.refill(order) {
                return Some(i);
            }
        }
        self.zone.0.alloc(order)
    }

    /// `Zone::drain`: every block on the lists back to the buddy allocator.
    #[inline(never)]
    fn drain(&mut self) -> usize {
        self.lists.drain(&mut self.zone)
    }

    /// The give-back half of `Zone::free`: the lists reached high, or the block's list is full.
    #[inline(never)]
    fn overflow(&mut self, pushed: Result<bool, u32>, order: u32) {
        if let Err(i) = pushed {
            self.zone.give(i, order);
        }
        let below = self.zone.0.free_pages() < self.wmark_high;
        self.lists.give_back(order, below, &mut self.zone);
    }
}

impl Adapter for PagePath {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u32> {
        match self.try_alloc(order) {
            Some(i) => Some(i),
            None if self.drain() > 0 => self.try_alloc(order),
            None => None,
        }
    }

    #[inline]
    fn free(&mut self, index: u32, order: u32) {
        if (order as usize) < pcp::NR_PCP_ORDERS {
            match self.lists.free(index, order) {
                Ok(false) => {}
                r => self.overflow(r, order),
            }
            return;
        }
        self.zone.give(index, order);
    }
}

/// `buddy_system_allocator::FrameAllocator` (rCore): a free set per order, as BTreeSets.
/// Order 10 is its largest, so blocks merge up to the arena's chunks, as minimm's do.
pub struct BuddySystem(buddy_system_allocator::FrameAllocator<{ CHUNK_ORDER as usize + 1 }>);

impl BuddySystem {
    pub fn new(_: &Trace) -> Self {
        let mut f = buddy_system_allocator::FrameAllocator::new();
        f.add_frame(0, PAGES);
        Self(f)
    }
}

impl Adapter for BuddySystem {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u32> {
        self.0.alloc(1 << order).map(|i| i as u32)
    }

    #[inline]
    fn free(&mut self, index: u32, order: u32) {
        self.0.dealloc(index as usize, 1 << order)
    }
}

/// `bitmap_allocator::BitAlloc64K` (rCore, ArceOS's bitmap page allocator): a 16-ary tree of
/// bitmaps; one page by `alloc`, 2^order aligned pages by `alloc_contiguous`, which scans.
pub struct Bitmap(Box<bitmap_allocator::BitAlloc64K>);

impl Bitmap {
    pub fn new(_: &Trace) -> Self {
        let mut b = Box::<bitmap_allocator::BitAlloc64K>::default();
        b.insert(0..PAGES);
        Self(b)
    }
}

impl Adapter for Bitmap {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u32> {
        let i = if order == 0 {
            self.0.alloc()
        } else {
            self.0.alloc_contiguous(None, 1 << order, order as usize)
        };
        i.map(|i| i as u32)
    }

    #[inline]
    fn free(&mut self, index: u32, order: u32) {
        let freed = if order == 0 {
            self.0.dealloc(index as usize)
        } else {
            self.0.dealloc_contiguous(index as usize, 1 << order)
        };
        debug_assert!(freed);
    }
}

/// One LIFO stack of blocks per order, never split or merged, each seeded with as many blocks
/// as the trace ever has live at once (in an index space of its own): the floor that a buddy
/// allocator with per-order per-CPU lists can approach.
pub struct Stacks([Vec<u32>; MAX_TRACE_ORDER as usize + 1]);

impl Stacks {
    pub fn new(t: &Trace) -> Self {
        let mut base = 0u32;
        Self(core::array::from_fn(|o| {
            let n = t.max_live[o];
            // Blocks of this order, aligned to it, above the previous orders'.
            base = base.next_multiple_of(1 << o);
            let v: Vec<u32> = (0..n as u32).rev().map(|k| base + (k << o)).collect();
            base += (n as u32) << o;
            v
        }))
    }
}

impl Adapter for Stacks {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u32> {
        self.0.get_mut(order as usize)?.pop()
    }

    #[inline]
    fn free(&mut self, index: u32, order: u32) {
        if let Some(s) = self.0.get_mut(order as usize) {
            s.push(index);
        }
    }
}

/// No allocator: every request gets page 0 and frees do nothing; what is left is the replay
/// loop's own cost (decoding an operation, the slot table, the call).
pub struct Null;

impl Null {
    pub fn new(_: &Trace) -> Self {
        Self
    }
}

impl Adapter for Null {
    #[inline]
    fn alloc(&mut self, order: u32) -> Option<u32> {
        Some(black_box(order) & 0)
    }

    #[inline]
    fn free(&mut self, index: u32, order: u32) {
        black_box((index, order));
    }
}

/// Block index a refused allocation leaves in its slot.
pub const NONE: u32 = u32::MAX;

/// Replays `t` on `a` with `slots` as the slot table (all [`NONE`]); returns the refusals.
#[inline(never)]
pub fn replay<A: Adapter>(a: &mut A, t: &Trace, slots: &mut [u32]) -> usize {
    let mut refused = 0;
    for &op in &t.ops {
        let slot = &mut slots[op.slot()];
        if op.is_free() {
            if *slot != NONE {
                a.free(*slot, op.order());
            }
        } else {
            match a.alloc(op.order()) {
                Some(i) => *slot = i,
                None => {
                    *slot = NONE;
                    refused += 1;
                }
            }
        }
    }
    refused
}
