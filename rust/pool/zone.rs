// SPDX-License-Identifier: GPL-2.0

//! One zone of the pool, kernel side: its locked buddy allocator and watermarks, its per-CPU
//! lists, its held list, who owns each block, and its counters. The formulas (watermarks,
//! reserves, fragmentation) are the pure `crate::zone`; the pool's walk over the zones is in
//! `pool/mod.rs`.
//!
//! # Locks
//!
//! - `Zone::pcp[cpu]` (spinlock, one per CPU and zone): that CPU's lists. Taken for a moment
//!   by the CPU itself, or by whoever reads or drains the lists.
//! - `Zone::inner` (irq-safe spinlock, one per zone): the zone's buddy allocator, its held
//!   list and watermarks. May be taken under a `pcp` lock of the same zone (refill, give-back,
//!   drain), never the other way round, and never two zones' locks at once.
//!
//! As in Linux 7.3 (`pcp_spin_trylock`), the per-CPU lock does not disable interrupts: the
//! allocation and free paths only *try* it, and go to the zone (whose lock is irq-safe) when it is
//! busy. A block may so be freed from softirq context (an RCU callback, a timer): a free that
//! interrupted a holder of its CPU's list finds the lock taken and frees to the zone instead of
//! deadlocking (KUnit `minimm_pcp_irq` does it from a softirq timer on the CPU whose list the
//! interrupted test holds). Only process context waits for a `pcp` lock (drains, debugfs, ioctls
//! reading statistics); lockdep does not count a trylock in interrupt context as an irq use, so the
//! lock stays irq-unsafe for it, nested outside the irq-safe zone lock as Linux's are. Each zone
//! index has its own lockdep classes for both kinds, so lockdep would see two zones' locks nested.
//!
//! Nothing allocates memory or touches user memory under either. Counters of the per-CPU
//! paths live in the CPU's own list structure (a cache line of its own) and are summed when
//! read; the zone's are atomics, touched only on the zone path. The chunk table (index to
//! host page) and the lowmem reserves never change after load.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kernel::{
    cpu::{nr_cpu_ids, CpuId},
    page::{BorrowedPage, PAGE_SIZE},
    prelude::*,
    static_lock_class,
    sync::{
        atomic::{Atomic, Relaxed},
        LockClassKey, SpinLockIrq,
    },
};

use super::pcp_lock::{PcpGuard, PcpLock};

use crate::{
    buddy::{self, Buddy, PageMeta, NR_ORDERS},
    fail::Point,
    host_pages::HostChunk,
    pcp::{self, Backing, PcpLists, NR_PCP_ORDERS, PCP_PAGES, PCP_SLOTS},
    zone::{self, Reserve, Watermarks, NR_ZONES},
};

/// Pages of a section of the pfn lookup table (`Zone::by_section`): the largest chunk.
const SECTION_ORDER: u32 = crate::buddy::MAX_ORDER;

/// A [`HostChunk`] and the index of its first page in its zone's buddy table: what the pool
/// turns an index back into a host page with.
pub(super) struct PlacedChunk {
    pub(super) index: u32,
    pub(super) block: HostChunk,
}

/// Event counters of a zone (Linux's vmstat items, per zone), as read at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) pgalloc: u64,
    pub(crate) pgfree: u64,
    pub(crate) alloc_fail: u64,
    pub(crate) low_wmark_hit: u64,
    pub(crate) min_wmark_hit: u64,
    pub(crate) fallback: u64,
    /// Pages of held blocks given back to the buddy allocator once unreferenced.
    pub(crate) held_recycled: u64,
}

/// The live counters, updated without locks.
pub(super) struct LiveCounters {
    pub(super) pgalloc: Atomic<u64>,
    pub(super) pgfree: Atomic<u64>,
    pub(super) alloc_fail: Atomic<u64>,
    pub(super) low_wmark_hit: Atomic<u64>,
    pub(super) min_wmark_hit: Atomic<u64>,
    pub(super) fallback: Atomic<u64>,
    pub(super) held_recycled: Atomic<u64>,
}

impl LiveCounters {
    const fn new() -> Self {
        Self {
            pgalloc: Atomic::new(0),
            pgfree: Atomic::new(0),
            alloc_fail: Atomic::new(0),
            low_wmark_hit: Atomic::new(0),
            min_wmark_hit: Atomic::new(0),
            fallback: Atomic::new(0),
            held_recycled: Atomic::new(0),
        }
    }

    fn read(&self) -> Counters {
        Counters {
            pgalloc: self.pgalloc.load(Relaxed),
            pgfree: self.pgfree.load(Relaxed),
            alloc_fail: self.alloc_fail.load(Relaxed),
            low_wmark_hit: self.low_wmark_hit.load(Relaxed),
            min_wmark_hit: self.min_wmark_hit.load(Relaxed),
            fallback: self.fallback.load(Relaxed),
            held_recycled: self.held_recycled.load(Relaxed),
        }
    }
}

/// What the zone lock protects.
pub(crate) struct ZoneInner {
    buddy: Buddy<KVVec<PageMeta>>,
    wmark: Watermarks,
}

/// Pages a bulk call moves to or from the buddy allocator in one zone lock hold: bounds the
/// time with interrupts off whatever the caller's batch.
pub(super) const BULK_PER_TRIP: usize = 256;

/// `high_min` and `high_max` of a zone's per-CPU lists (see `pcp.rs`).
fn pcp_marks(wmark: Watermarks, managed: usize, cpus: usize, batch: usize) -> (usize, usize) {
    (
        pcp::high_mark(wmark.low, cpus, batch, PCP_PAGES),
        pcp::high_mark(managed / 8, cpus, batch, PCP_PAGES),
    )
}

/// One CPU's lists for one zone, and the events counted on them: like Linux's per-CPU vmstat
/// diffs, they cost no atomic operation on the fast path (the list lock is held anyway).
///
/// Aligned to a cache line, so that (boxed, with its lock) it shares no line with another
/// CPU's: two CPUs allocating at once touch disjoint lines.
#[repr(align(64))]
struct PcpCpu {
    lists: PcpLists<KVec<u32>>,
    pgalloc: u64,
    pgfree: u64,
    fallback: u64,
}

type Pcp = PcpLock<PcpCpu>;

/// The zone's buddy allocator as the per-CPU lists' [`Backing`], under the zone lock.
struct Lender<'a>(&'a mut Buddy<KVVec<PageMeta>>);

impl Backing for Lender<'_> {
    #[inline]
    fn take(&mut self, order: u32) -> Option<u32> {
        self.0.alloc(order)
    }

    fn give(&mut self, index: u32, order: u32) {
        // INVARIANT (of `Zone`): blocks on the lists are allocated in the buddy table, at the
        // order of their list. Anything else is a bug of minimm's.
        kernel::warn_on!(self.0.free(index) != Ok(order));
    }
}

/// The lockdep names and classes of zone `id`'s locks (the zone's, then its per-CPU lists'):
/// one class per zone index, so that nesting two zones' locks would not go unseen.
fn lock_classes(
    id: usize,
) -> (
    &'static CStr,
    Pin<&'static LockClassKey>,
    &'static CStr,
    Pin<&'static LockClassKey>,
) {
    match id {
        zone::DMA => (
            c"minimm_zone_dma",
            static_lock_class!(),
            c"minimm_pcp_dma",
            static_lock_class!(),
        ),
        zone::DMA32 => (
            c"minimm_zone_dma32",
            static_lock_class!(),
            c"minimm_pcp_dma32",
            static_lock_class!(),
        ),
        _ => (
            c"minimm_zone_normal",
            static_lock_class!(),
            c"minimm_pcp_normal",
            static_lock_class!(),
        ),
    }
}

/// One CPU's list of a zone, as read at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcpInfo {
    /// Pages on the lists, every order together.
    pub(crate) count: usize,
    /// Blocks on each order's list.
    pub(crate) blocks: [usize; NR_PCP_ORDERS],
    pub(crate) high: usize,
    pub(crate) batch: usize,
    pub(crate) high_min: usize,
    pub(crate) high_max: usize,
}

/// A consistent copy of a zone's state, taken under its lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) managed: usize,
    pub(crate) free: usize,
    pub(crate) pcp_pages: usize,
    pub(crate) nr_free: [usize; NR_ORDERS],
    pub(crate) wmark: Watermarks,
    pub(crate) protection: [usize; NR_ZONES],
    pub(crate) counters: Counters,
    pub(crate) start_pfn: u64,
    pub(crate) spanned: u64,
    /// Pages held back because they were still referenced outside minimm when freed.
    pub(crate) held: usize,
}

/// One zone of the pool.
///
/// # Invariants
///
/// - `chunks` is sorted by `index`, each chunk's pages are indices `index..index + 2^order`
///   of the zone's buddy table, and chunks do not overlap. It does not change after load.
/// - `free` and `low` equal the buddy's free pages and the low watermark whenever the zone
///   lock is released.
/// - Blocks on the `pcp` lists are allocated in the buddy table, at the order of their list.
///   (Who owns a block handed out is recorded by its owner: `device/registry.rs` for user
///   buffers.)
#[pin_data]
pub(crate) struct Zone {
    id: usize,
    #[pin]
    inner: SpinLockIrq<ZoneInner>,
    /// One list per possible CPU, indexed by CPU id.
    pcp: KVec<Pin<KBox<Pcp>>>,
    /// Lock-free copies for the per-CPU fast path. `core`'s atomics, which compile to plain
    /// loads and stores, where the kernel's `Atomic` calls a C helper for each (helpers are
    /// not inlined in a gcc-built kernel): these are read on every allocation.
    free: AtomicUsize,
    low: AtomicUsize,
    /// Lock-free copy of the high watermark, for tuning the lists' `high`.
    high: AtomicUsize,
    /// Lock-free copy of the min watermark, for the watermark events.
    min: AtomicUsize,
    /// `lowmem_reserve[this zone][highest zone of the request]`.
    protection: [usize; NR_ZONES],
    pub(super) counters: LiveCounters,
    /// Lock-free copy of the buddy's held pages, so that frees look at the held list only when
    /// it is not empty.
    pub(super) held: AtomicUsize,
    pub(super) chunks: KVec<PlacedChunk>,
    /// `(first pfn, position in chunks)` of every chunk, by pfn: an address back to an index.
    by_pfn: KVec<(u64, usize)>,
    /// For each 2^[`SECTION_ORDER`] pages of the zone's pfn span from `start_pfn` (aligned
    /// down), the index of its first page plus one when one chunk covers it whole (0
    /// otherwise): an address back to an index in one load, as `pfn_to_page` is arithmetic
    /// for the host. Sections that small chunks share fall back to `by_pfn`.
    by_section: KVec<u32>,
    /// Each page's owner tag (0: none), minimm's own page metadata for whoever owns a block:
    /// the slab caches record there which slab a page is part of, so that an object's
    /// address leads back to its slab without a lock (`Pool::tag_of`). Written by the block's
    /// owner only while it owns the block.
    tags: KVVec<AtomicU64>,
    pub(super) managed: usize,
    start_pfn: u64,
    spanned: u64,
}

impl Zone {
    pub(super) fn new(
        id: usize,
        mut blocks: KVec<HostChunk>,
        wmark: Watermarks,
        protection: [usize; NR_ZONES],
    ) -> Result<impl PinInit<Self, Error>> {
        // Laid out largest first (popped from the back of an ascending order): then every
        // block starts at an index aligned to its size. Insertion sort: a few hundred blocks at
        // most, once, and no panicking comparison path.
        for i in 1..blocks.len() {
            let mut j = i;
            while j > 0
                && matches!((blocks.get(j - 1), blocks.get(j)), (Some(a), Some(b)) if a.order() > b.order())
            {
                blocks.swap(j - 1, j);
                j -= 1;
            }
        }
        let managed: usize = blocks.iter().map(|b| b.pages()).sum();
        let (mut start_pfn, mut end_pfn) = (u64::MAX, 0u64);
        for b in blocks.iter() {
            start_pfn = start_pfn.min(b.pfn());
            end_pfn = end_pfn.max(b.pfn() + b.pages() as u64);
        }
        if u32::try_from(managed).is_err() {
            return Err(EINVAL);
        }
        let table = KVVec::from_elem(PageMeta::ABSENT, managed, GFP_KERNEL)?;
        let mut buddy = Buddy::new(table);
        let mut chunks = KVec::with_capacity(blocks.len(), GFP_KERNEL)?;
        let mut index = 0u32;
        while let Some(block) = blocks.pop() {
            buddy.add_chunk(index, block.order()).map_err(|_| EINVAL)?;
            let n = block.pages() as u32;
            chunks.push(PlacedChunk { index, block }, GFP_KERNEL)?;
            index += n;
        }
        if managed == 0 {
            (start_pfn, end_pfn) = (0, 0);
        }
        let mut by_pfn = KVec::with_capacity(chunks.len(), GFP_KERNEL)?;
        for (k, c) in chunks.iter().enumerate() {
            by_pfn.push((c.block.pfn(), k), GFP_KERNEL)?;
        }
        // Insertion sort, as above: once, at load.
        for i in 1..by_pfn.len() {
            let mut j = i;
            while j > 0
                && matches!((by_pfn.get(j - 1), by_pfn.get(j)), (Some(a), Some(b)) if a.0 > b.0)
            {
                by_pfn.swap(j - 1, j);
                j -= 1;
            }
        }
        let first_section = start_pfn >> SECTION_ORDER;
        let sections = if managed == 0 {
            0
        } else {
            ((end_pfn - 1) >> SECTION_ORDER) - first_section + 1
        };
        let mut by_section = KVec::from_elem(0u32, sections as usize, GFP_KERNEL)?;
        for c in chunks.iter() {
            let order = c.block.order();
            if order < SECTION_ORDER {
                continue;
            }
            // A chunk of at least a section is aligned to its size (the host's buddy blocks
            // are): it covers whole sections.
            for k in 0..1u64 << (order - SECTION_ORDER) {
                let pfn = c.block.pfn() + (k << SECTION_ORDER);
                let at = ((pfn >> SECTION_ORDER) - first_section) as usize;
                let index = c.index + (k << SECTION_ORDER) as u32;
                if let Some(e) = by_section.get_mut(at) {
                    *e = index + 1;
                }
            }
        }
        let mut tags = KVVec::with_capacity(managed, GFP_KERNEL)?;
        for _ in 0..managed {
            tags.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let spanned = end_pfn - start_pfn;
        let (zone_name, zone_class, pcp_name, pcp_class) = lock_classes(id);
        let cpus = nr_cpu_ids() as usize;
        let batch = pcp::batch_size(managed, PAGE_SIZE);
        let (high_min, high_max) = pcp_marks(wmark, managed, cpus, batch);
        let mut lists = KVec::with_capacity(cpus, GFP_KERNEL)?;
        for _ in 0..cpus {
            let slots = KVec::from_elem(0u32, PCP_SLOTS, GFP_KERNEL)?;
            let cpu = PcpCpu {
                lists: PcpLists::new(slots, high_min, high_max, batch),
                pgalloc: 0,
                pgfree: 0,
                fallback: 0,
            };
            lists.push(
                KBox::pin_init(PcpLock::new(cpu, pcp_name, pcp_class), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let free = buddy.free_pages();
        // INVARIANT: chunks were laid out in increasing, disjoint index ranges just above; the
        // lists are empty and `free`, `low` copy the buddy's state.
        Ok(try_pin_init!(Self {
            id,
            inner <- SpinLockIrq::new(ZoneInner { buddy, wmark }, zone_name, zone_class),
            pcp: lists,
            free: AtomicUsize::new(free),
            low: AtomicUsize::new(wmark.low),
            high: AtomicUsize::new(wmark.high),
            min: AtomicUsize::new(wmark.min),
            protection,
            counters: LiveCounters::new(),
            held: AtomicUsize::new(0),
            chunks,
            by_pfn,
            by_section,
            tags,
            managed,
            start_pfn,
            spanned,
        }))
    }

    /// The zone's state, copied under its lock (the per-CPU lists each under their own).
    ///
    /// Context: process context (waits for the per-CPU locks).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut counters = self.counters.read();
        let mut pcp_pages = 0;
        for list in self.pcp.iter() {
            let l = list.lock();
            pcp_pages += l.lists.count();
            counters.pgalloc += l.pgalloc;
            counters.pgfree += l.pgfree;
            counters.fallback += l.fallback;
        }
        let g = self.inner.lock();
        Snapshot {
            managed: self.managed,
            free: g.buddy.free_pages(),
            pcp_pages,
            nr_free: g.buddy.nr_free(),
            wmark: g.wmark,
            protection: self.protection,
            counters,
            start_pfn: self.start_pfn,
            spanned: self.spanned,
            held: g.buddy.held_pages(),
        }
    }

    /// CPU `cpu`'s lists, as Linux's zoneinfo shows a pageset.
    ///
    /// Context: process context.
    pub(crate) fn pcp_info(&self, cpu: usize) -> Option<PcpInfo> {
        let l = self.pcp.get(cpu)?.lock();
        Some(PcpInfo {
            count: l.lists.count(),
            blocks: core::array::from_fn(|o| l.lists.blocks(o as u32)),
            high: l.lists.high,
            batch: l.lists.batch,
            high_min: l.lists.high_min,
            high_max: l.lists.high_max,
        })
    }

    /// Pages the zone manages.
    pub(crate) fn managed(&self) -> usize {
        self.managed
    }

    /// Number of per-CPU lists (possible CPUs).
    pub(crate) fn nr_pcp(&self) -> usize {
        self.pcp.len()
    }

    /// Free pages in the buddy allocator (the fast path's lock-free copy).
    pub(super) fn free_now(&self) -> usize {
        self.free.load(Ordering::Relaxed)
    }

    /// Where the zone's free pages stand against its watermarks (`None` for a zone with no
    /// pages). Lock-free: the marks may be mid-update by a `watermarks` write, which then
    /// looks again.
    pub(super) fn level(&self) -> Option<crate::lru::Level> {
        (self.managed > 0).then(|| {
            crate::lru::Level::of(
                self.free.load(Ordering::Relaxed),
                self.min.load(Ordering::Relaxed),
                self.low.load(Ordering::Relaxed),
                self.high.load(Ordering::Relaxed),
            )
        })
    }

    /// [`Zone::level`] with the marks read under the zone lock, consistent with one another.
    pub(super) fn level_exact(&self) -> Option<crate::lru::Level> {
        if self.managed == 0 {
            return None;
        }
        let g = self.inner.lock();
        let (free, w) = (g.buddy.free_pages(), g.wmark);
        drop(g);
        Some(crate::lru::Level::of(free, w.min, w.low, w.high))
    }

    /// Sets the watermarks after checking `min <= low <= high <= managed`.
    pub(crate) fn set_watermarks(&self, w: Watermarks) -> Result {
        if !w.valid_for(self.managed) {
            return Err(EINVAL);
        }
        let mut g = self.inner.lock();
        g.wmark = w;
        self.low.store(w.low, Ordering::Relaxed);
        self.high.store(w.high, Ordering::Relaxed);
        self.min.store(w.min, Ordering::Relaxed);
        drop(g);
        // The lists' marks follow the low watermark, as Linux recomputes them when
        // `setup_per_zone_wmarks` runs.
        let (high_min, high_max) = pcp_marks(w, self.managed, self.pcp.len(), self.batch());
        for list in self.pcp.iter() {
            let mut l = list.lock();
            let batch = l.lists.batch;
            l.lists.set_marks(high_min, high_max, batch);
        }
        Ok(())
    }

    /// The lists' batch (the same for every CPU).
    pub(super) fn batch(&self) -> usize {
        pcp::batch_size(self.managed, PAGE_SIZE)
    }

    /// Gives every block on every CPU's lists back to the buddy allocator; returns the pages.
    ///
    /// Context: process context; takes each CPU's list lock in turn, then the zone lock.
    pub(crate) fn drain(&self) -> usize {
        self.pcp
            .iter()
            .map(|list| self.drain_one(&mut list.lock()))
            .sum()
    }

    /// [`Zone::drain`] for any context: lists that are busy (their CPU in the middle of an
    /// allocation, or interrupted in one) are left alone.
    pub(super) fn try_drain(&self) -> usize {
        self.pcp
            .iter()
            .filter_map(|list| list.try_lock())
            .map(|mut l| self.drain_one(&mut l))
            .sum()
    }

    fn drain_one(&self, l: &mut PcpCpu) -> usize {
        if l.lists.count() == 0 {
            return 0;
        }
        let mut g = self.inner.lock();
        let n = l.lists.drain(&mut Lender(&mut g.buddy));
        self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
        n
    }

    /// Runs the buddy invariant checker, and checks that every block on a per-CPU list is
    /// allocated in the buddy table at its list's order; returns the number of blocks.
    ///
    /// Context: process context.
    pub(crate) fn validate(&self) -> Result<usize, buddy::Corruption> {
        for list in self.pcp.iter() {
            let l = list.lock();
            let g = self.inner.lock();
            let mut wrong = None;
            l.lists.for_each(|i, o| {
                if g.buddy.allocated_order(i) != Some(o) {
                    wrong.get_or_insert(i);
                }
            });
            if let Some(index) = wrong {
                return Err(buddy::Corruption {
                    index,
                    what: "a block on a per-CPU list is not allocated at its list's order",
                });
            }
        }
        let g = self.inner.lock();
        if self.free.load(Ordering::Relaxed) != g.buddy.free_pages()
            || self.low.load(Ordering::Relaxed) != g.wmark.low
        {
            return Err(buddy::Corruption {
                index: 0,
                what: "lock-free copies of free or low are stale",
            });
        }
        g.buddy.validate()
    }

    /// The host page at `index` of the zone's table.
    pub(super) fn page(&self, index: u32) -> Option<BorrowedPage<'_>> {
        let mut hint = usize::MAX;
        self.page_near(index, &mut hint)
    }

    /// [`Zone::page`], trying the chunk at position `*hint` first (any value will do) and
    /// leaving there the chunk that holds `index`: consecutive lookups that stay in one chunk
    /// (the pages of a bulk allocation, mostly) skip the search.
    #[inline]
    pub(super) fn page_near(&self, index: u32, hint: &mut usize) -> Option<BorrowedPage<'_>> {
        let c = match self.chunks.get(*hint) {
            Some(c) if index.wrapping_sub(c.index) < (c.block.pages() as u32) => c,
            _ => {
                let after = self.chunks.partition_point(|c| c.index <= index);
                *hint = after.checked_sub(1)?;
                self.chunks.get(*hint)?
            }
        };
        c.block.page(usize::try_from(index - c.index).ok()?)
    }

    /// The index of the page with frame number `pfn`, if it is one of the zone's.
    #[inline(always)]
    pub(super) fn index_of_pfn(&self, pfn: u64) -> Option<u32> {
        if pfn.wrapping_sub(self.start_pfn) >= self.spanned {
            return None;
        }
        let section = (pfn >> SECTION_ORDER) - (self.start_pfn >> SECTION_ORDER);
        if let Some(&e) = self.by_section.get(section as usize) {
            if e != 0 {
                return Some(e - 1 + (pfn & ((1 << SECTION_ORDER) - 1)) as u32);
            }
        }
        let after = self.by_pfn.partition_point(|&(first, _)| first <= pfn);
        let &(first, k) = self.by_pfn.get(after.checked_sub(1)?)?;
        let c = self.chunks.get(k)?;
        let off = pfn - first;
        (off < c.block.pages() as u64).then(|| c.index + off as u32)
    }

    /// The order of the allocated block headed by `index`, if it is one.
    pub(super) fn allocated_order(&self, index: u32) -> Option<u32> {
        self.inner.lock().buddy.allocated_order(index)
    }

    /// The owner tag of page `index` (0: none).
    #[inline(always)]
    pub(super) fn tag(&self, index: u32) -> u64 {
        self.tags
            .get(index as usize)
            .map_or(0, |t| t.load(Ordering::Acquire))
    }

    /// Sets the owner tag of the 2^`order` pages from `index`.
    pub(super) fn set_tags(&self, index: u32, order: u32, tag: u64) {
        for i in 0..1u32 << order {
            if let Some(t) = index.checked_add(i).and_then(|i| self.tags.get(i as usize)) {
                t.store(tag, Ordering::Release);
            }
        }
    }

    /// Tries to take a block of `order` for a request whose highest zone is `highest`.
    #[inline]
    pub(super) fn try_alloc(&self, order: u32, highest: usize, class: Reserve) -> Option<u32> {
        let reserve = self.protection.get(highest).copied().unwrap_or(0);
        let fallback = self.id != highest;
        if let Some(i) = self.alloc_pcp(order, reserve, fallback) {
            return Some(i);
        }
        let i = self.alloc_buddy(order, reserve, class)?;
        self.counters.pgalloc.add(1, Relaxed);
        if fallback {
            self.counters.fallback.add(1, Relaxed);
        }
        Some(i)
    }

    /// Whether a page of the block at `index` of `order` is referenced from outside minimm:
    /// more than the one reference `split_page` left us (user mappings of the block are gone
    /// by the time it is freed).
    pub(super) fn referenced(&self, index: u32, order: u32) -> bool {
        (0..1u32 << order).any(|i| {
            index
                .checked_add(i)
                .and_then(|at| self.page(at))
                .is_none_or(|p| crate::host_pages::page_refcount(&p) != 1)
        })
    }

    /// Puts the allocated block at `index` on the held list.
    pub(super) fn hold(&self, index: u32) {
        let mut g = self.inner.lock();
        kernel::warn_on!(g.buddy.hold(index).is_err());
        self.held.store(g.buddy.held_pages(), Ordering::Relaxed);
    }

    /// Looks at up to `limit` held blocks, oldest first: those whose pages nobody else
    /// references any more go back to the buddy allocator, the others to the back of the
    /// list. Returns the pages given back.
    ///
    /// Context: as for `Pool::alloc_raw`; takes the zone lock, once, for at most `limit`
    /// blocks.
    pub(super) fn reap_held(&self, limit: usize) -> usize {
        let mut g = self.inner.lock();
        let mut recycled = 0usize;
        for _ in 0..limit.min(g.buddy.nr_held()) {
            let Some((index, order)) = g.buddy.take_held() else {
                break;
            };
            if self.referenced(index, order) {
                kernel::warn_on!(g.buddy.hold(index).is_err());
            } else {
                kernel::warn_on!(g.buddy.free(index).is_err());
                recycled += 1 << order;
            }
        }
        self.held.store(g.buddy.held_pages(), Ordering::Relaxed);
        self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
        drop(g);
        self.counters.held_recycled.add(recycled as u64, Relaxed);
        recycled
    }

    /// Looks at every held block once, a few at a time so that the lock is dropped between
    /// them; returns the pages given back.
    pub(super) fn reap_all_held(&self) -> usize {
        self.reap_some_held(usize::MAX)
    }

    /// Looks at up to `max` held blocks (each once), a few at a time so that the lock is
    /// dropped between them; returns the pages given back.
    pub(super) fn reap_some_held(&self, max: usize) -> usize {
        /// Blocks looked at per lock hold: up to 16 * 1024 page counts read with irqs off.
        const CHUNK: usize = 16;
        let mut left = self.inner.lock().buddy.nr_held().min(max);
        let mut recycled = 0;
        while left > 0 {
            let n = left.min(CHUNK);
            recycled += self.reap_held(n);
            left -= n;
        }
        recycled
    }

    /// This CPU's lists, if their lock is free (`pcp_spin_trylock`). The CPU id may be stale
    /// by the time the lock is taken (the task moved): the lock keeps another CPU's lists just
    /// as safe, and the next call finds the right ones.
    #[inline]
    fn this_cpu(&self) -> Option<PcpGuard<'_, PcpCpu>> {
        self.pcp.get(super::pcp_lock::current_cpu())?.try_lock()
    }

    /// Times the parts of the order-0 fast path apart, `k` times each, for the benchmark's
    /// profile (`bench.rs`): the loop alone, reading the CPU id, taking and releasing this
    /// CPU's list lock, and that with a pop and a push of a page (when the list has one).
    /// Returns the ns each took.
    ///
    /// Context: process context.
    pub(crate) fn time_fast_path_parts(&self, k: u64) -> [u64; 4] {
        use kernel::time::{Instant, Monotonic};
        let ns = |t: Instant<Monotonic>| u64::try_from(t.elapsed().as_nanos()).unwrap_or(0);
        let t = Instant::<Monotonic>::now();
        for i in 0..k {
            core::hint::black_box(i);
        }
        let empty = ns(t);
        let t = Instant::<Monotonic>::now();
        for _ in 0..k {
            core::hint::black_box(super::pcp_lock::current_cpu());
        }
        let cpu = ns(t);
        let t = Instant::<Monotonic>::now();
        for _ in 0..k {
            // Taken and released within the statement.
            core::hint::black_box(self.this_cpu().is_some());
        }
        let lock = ns(t);
        let t = Instant::<Monotonic>::now();
        for _ in 0..k {
            if let Some(mut l) = self.this_cpu() {
                if let Some(i) = l.lists.pop(0) {
                    let _ = core::hint::black_box(l.lists.push(i, 0));
                }
            }
        }
        [empty, cpu, lock, ns(t)]
    }

    /// The per-CPU fast path for orders 0..3: only when the zone is clearly above its low
    /// watermark plus the reserve (else the buddy path decides, and counts the watermark
    /// hits), and only when this CPU's lists are not busy (an interrupted holder on this CPU,
    /// or a drain from another).
    #[inline]
    fn alloc_pcp(&self, order: u32, reserve: usize, fallback: bool) -> Option<u32> {
        if order as usize >= NR_PCP_ORDERS
            || self.free.load(Ordering::Relaxed)
                <= self.low.load(Ordering::Relaxed).saturating_add(reserve)
        {
            return None;
        }
        let mut l = self.this_cpu()?;
        let i = match l.lists.pop(order) {
            Some(i) => i,
            None => self.refill(&mut l, order)?,
        };
        l.pgalloc += 1;
        l.fallback += u64::from(fallback);
        Some(i)
    }

    /// The list of `order` is empty: one trip to the zone for a batch (`rmqueue_bulk`).
    #[inline(never)]
    fn refill(&self, l: &mut PcpCpu, order: u32) -> Option<u32> {
        // An injected failure is a refill that got nothing (and tuned nothing): the buddy
        // path serves the request, with its watermark checks.
        if crate::fail::should_fail(Point::PcpRefill) {
            return None;
        }
        let above_high = self.free.load(Ordering::Relaxed) > self.high.load(Ordering::Relaxed);
        let mut g = self.inner.lock();
        l.lists.refill(order, above_high, &mut Lender(&mut g.buddy));
        self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
        drop(g);
        l.lists.pop(order)
    }

    /// The buddy path, under the zone lock, with Linux's watermark checks.
    fn alloc_buddy(&self, order: u32, reserve: usize, class: Reserve) -> Option<u32> {
        let mut g = self.inner.lock();
        let (free, nr_free) = (g.buddy.free_pages(), g.buddy.nr_free());
        if !zone::watermark_ok(free, &nr_free, order, g.wmark.low, Reserve::Normal, reserve) {
            // Where Linux wakes kswapd.
            self.counters.low_wmark_hit.add(1, Relaxed);
            if !zone::watermark_ok(free, &nr_free, order, g.wmark.min, class, reserve) {
                // Where Linux would reclaim directly.
                self.counters.min_wmark_hit.add(1, Relaxed);
                return None;
            }
        }
        let index = g.buddy.alloc(order);
        self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
        index
    }

    /// Frees the allocated block at `index` of `order`: orders 0..3 to this CPU's lists, giving
    /// pages back to the buddy allocator once they reach their high mark; other orders, and
    /// any order while this CPU's lists are busy, to the buddy allocator.
    #[inline]
    pub(super) fn free(&self, index: u32, order: u32) -> Result<(), buddy::Error> {
        if (order as usize) < NR_PCP_ORDERS {
            if let Some(mut l) = self.this_cpu() {
                l.pgfree += 1;
                return match l.lists.free(index, order) {
                    Ok(false) => Ok(()),
                    pushed => self.give_back(&mut l, pushed, order),
                };
            }
        }
        self.counters.pgfree.add(1, Relaxed);
        let mut g = self.inner.lock();
        let freed = g.buddy.free(index);
        self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
        match freed {
            Ok(o) if o == order => Ok(()),
            Ok(_) => Err(buddy::Error::NotAllocated),
            Err(e) => Err(e),
        }
    }

    /// The lists reached their high mark (`Ok(true)`), or the block's list is full (`Err`):
    /// one trip to the zone (`free_pcppages_bulk`).
    #[inline(never)]
    fn give_back(
        &self,
        l: &mut PcpCpu,
        pushed: Result<bool, u32>,
        order: u32,
    ) -> Result<(), buddy::Error> {
        let below_high = self.free.load(Ordering::Relaxed) < self.high.load(Ordering::Relaxed);
        let mut g = self.inner.lock();
        let freed = match pushed {
            Err(i) => g.buddy.free(i).and_then(|o| {
                if o == order {
                    Ok(())
                } else {
                    Err(buddy::Error::NotAllocated)
                }
            }),
            Ok(_) => Ok(()),
        };
        l.lists
            .give_back(order, below_high, &mut Lender(&mut g.buddy));
        self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
        freed
    }

    /// Up to `n` order-0 pages for a request whose highest zone is `highest`, each passed to
    /// `put` (at most `n` calls); returns how many (`alloc_pages_bulk`), or `None` when this
    /// CPU's list is busy. The watermark is checked once for the whole batch: the zone must
    /// stay above low plus the reserve with `n` pages fewer, or the batch gets nothing here
    /// (`Some(0)`). This CPU's list serves first, then the buddy allocator, in one trip under
    /// the zone lock for up to [`BULK_PER_TRIP`] pages (interrupts are off meanwhile).
    pub(super) fn alloc_bulk(
        &self,
        n: usize,
        highest: usize,
        mut put: impl FnMut(u32),
    ) -> Option<usize> {
        let reserve = self.protection.get(highest).copied().unwrap_or(0);
        let mark = self
            .low
            .load(Ordering::Relaxed)
            .saturating_add(reserve)
            .saturating_add(n);
        if n == 0 || self.free.load(Ordering::Relaxed) <= mark {
            return Some(0);
        }
        let mut l = self.this_cpu()?;
        let mut got = 0;
        while got < n {
            let Some(i) = l.lists.pop(0) else { break };
            put(i);
            got += 1;
        }
        while got < n {
            let mut g = self.inner.lock();
            let trip = got.saturating_add(BULK_PER_TRIP).min(n);
            while got < trip {
                let Some(i) = g.buddy.alloc(0) else { break };
                put(i);
                got += 1;
            }
            self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
            if got < trip {
                break;
            }
        }
        l.pgalloc += got as u64;
        if self.id != highest {
            l.fallback += got as u64;
        }
        Some(got)
    }

    /// Frees the order-0 pages `next` yields, allocated in this zone: to this CPU's list, one
    /// trip to the zone for each give-back the batch causes (few: each grows with the run of
    /// frees, `nr_pcp_free`); to the buddy allocator, [`BULK_PER_TRIP`] pages a trip, when the
    /// list is busy. A page that is not an allocated order-0 page of the zone is a bug of the
    /// caller's, and WARNs.
    pub(super) fn free_bulk(&self, mut next: impl FnMut() -> Option<u32>) {
        let Some(mut l) = self.this_cpu() else {
            let mut more = true;
            while more {
                let mut g = self.inner.lock();
                let mut n = 0u64;
                more = false;
                while let Some(i) = next() {
                    n += 1;
                    kernel::warn_on!(g.buddy.free(i) != Ok(0));
                    if n as usize >= BULK_PER_TRIP {
                        more = true;
                        break;
                    }
                }
                self.free.store(g.buddy.free_pages(), Ordering::Relaxed);
                drop(g);
                self.counters.pgfree.add(n, Relaxed);
            }
            return;
        };
        while let Some(i) = next() {
            l.pgfree += 1;
            let pushed = l.lists.free(i, 0);
            if pushed != Ok(false) {
                // A free's give-back (`Zone::give_back`), the page itself included when its
                // list was full.
                let freed = self.give_back(&mut l, pushed, 0);
                kernel::warn_on!(freed.is_err());
            }
        }
    }
}

#[kunit_tests(minimm_pcp_irq)]
mod tests {
    use super::*;
    use crate::pool::{Pool, RawBlock};
    use kernel::{
        impl_has_hr_timer, new_spinlock_irq,
        sync::{
            atomic::{Acquire, Release},
            Arc, ArcBorrow,
        },
        time::{
            hrtimer::{
                HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer, HrTimerRestart,
                RelativePinnedSoftMode,
            },
            Delta, Monotonic,
        },
    };

    /// A softirq timer that frees the blocks it is given, then allocates and frees a block of
    /// each order 0..3: what a free from an RCU callback or a timer, or an atomic allocation
    /// in softirq, does.
    #[pin_data]
    struct InIrq {
        #[pin]
        timer: HrTimer<Self>,
        pool: Arc<Pool>,
        #[pin]
        blocks: SpinLockIrq<KVec<RawBlock>>,
        /// Blocks the handler allocated (and freed).
        allocated: Atomic<u32>,
        done: Atomic<u32>,
    }

    impl HrTimerCallback for InIrq {
        type Pointer<'a> = Arc<Self>;

        fn run(
            this: ArcBorrow<'_, Self>,
            _ctx: HrTimerCallbackContext<'_, Self>,
        ) -> HrTimerRestart {
            let mut blocks = this.blocks.lock();
            while let Some(b) = blocks.pop() {
                this.pool.free_raw(b);
            }
            drop(blocks);
            let mut n = 0;
            for order in 0..NR_PCP_ORDERS as u32 {
                if let Ok(b) = this.pool.alloc_raw(order, zone::NORMAL, Reserve::Atomic) {
                    n += 1;
                    this.pool.free_raw(b);
                }
            }
            this.allocated.store(n, Relaxed);
            this.done.store(1, Release);
            HrTimerRestart::NoRestart
        }
    }

    impl_has_hr_timer! {
        impl HasHrTimer<Self> for InIrq {
            mode: RelativePinnedSoftMode<Monotonic>, field: self.timer
        }
    }

    /// Frees and atomic allocations in softirq context (a timer), on the CPU whose per-CPU
    /// list the interrupted task holds (as an allocation interrupted in the middle would; the
    /// softirq runs on the interrupt's exit, since a spinlock does not disable them): the
    /// handler's trylock fails, it goes to the zone instead of deadlocking, and nothing is
    /// lost. Lockdep, on in the test kernel, sees the per-CPU lock only tried in softirq.
    #[test]
    fn frees_from_softirq_while_the_list_is_held() -> Result {
        let pool = crate::pool::tests::pool_of([16, 64, 1024])?;
        let mut blocks = KVec::with_capacity(NR_PCP_ORDERS, GFP_KERNEL)?;
        for order in 0..NR_PCP_ORDERS as u32 {
            blocks.push(
                pool.alloc_raw(order, zone::NORMAL, Reserve::Normal)?,
                GFP_KERNEL,
            )?;
        }
        let z = blocks.first().ok_or(EINVAL)?.zone;
        let zone = pool.zone(z).ok_or(EINVAL)?;
        let for_irq = pool.clone();
        let t = Arc::pin_init(
            pin_init!(InIrq {
                timer <- HrTimer::new(),
                pool: for_irq,
                blocks <- new_spinlock_irq!(blocks),
                allocated: Atomic::new(0),
                done: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        // This CPU's list, taken as process context takes it; holding it keeps the task on
        // this CPU (no preemption), where the pinned timer fires.
        let (guard, cpu) = loop {
            let cpu = CpuId::current().as_u32() as usize;
            let g = zone.pcp.get(cpu).ok_or(EINVAL)?.lock();
            if CpuId::current().as_u32() as usize == cpu {
                break (g, cpu);
            }
        };
        let listed = guard.lists.count();
        let zone_frees = zone.counters.pgfree.load(Relaxed);
        let handle = t.clone().start(Delta::from_micros(100));
        while t.done.load(Acquire) == 0 {
            // SAFETY: `cpu_relax` has no preconditions.
            unsafe { kernel::bindings::cpu_relax() };
        }
        // The handler, on this CPU, could not touch its lists: its frees went to the zone
        // (the zone path's own counter), at least the four blocks it was given.
        assert_eq!(guard.lists.count(), listed);
        assert!(zone.counters.pgfree.load(Relaxed) >= zone_frees + NR_PCP_ORDERS as u64);
        drop(guard);
        drop(handle);
        assert_eq!(t.allocated.load(Relaxed), NR_PCP_ORDERS as u32);
        assert!(t.blocks.lock().is_empty());
        assert!(cpu < zone.nr_pcp());
        assert!(crate::pool::tests::all_back(&pool));
        Ok(())
    }
}
