// SPDX-License-Identifier: GPL-2.0

//! One zone of the pool, kernel side: its locked buddy allocator and watermarks, its per-CPU
//! lists, its held list, who owns each block, and its counters. The formulas (watermarks,
//! reserves, fragmentation) are the pure `crate::zone`; the pool's walk over the zones is in
//! `pool/mod.rs`.
//!
//! # Locks
//!
//! - `Zone::pcp[cpu]` (irq-safe spinlock, one per CPU and zone): that CPU's list. Taken for a
//!   moment by the CPU itself, or by whoever reads or drains the lists.
//! - `Zone::inner` (irq-safe spinlock, one per zone): the zone's buddy allocator, its held
//!   list and watermarks. May be taken under a `pcp` lock of the same zone (refill, drain),
//!   never the other way round, and never two zones' locks at once.
//!
//! Both kinds disable interrupts: as with Linux's allocator, a block may be freed from any
//! context (an RCU callback in softirq, later), and a free that interrupted a holder of the
//! same lock on its CPU would deadlock. Each zone index has its own lockdep classes for both
//! kinds, so lockdep would see two zones' locks nested.
//!
//! Nothing allocates memory or touches user memory under either. Counters are atomics. The
//! chunk table (index to host page) and the lowmem reserves never change after load.

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

use crate::{
    buddy::{self, Buddy, PageMeta, NR_ORDERS},
    fail::Point,
    host_pages::HostChunk,
    pcp::{self, PcpList},
    zone::{self, Reserve, Watermarks, NR_ZONES},
};

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

/// Pages one per-CPU list can hold at most.
const PCP_SLOTS: usize = 512;

/// `high_min` and `high_max` of a zone's per-CPU lists (see `pcp.rs`).
fn pcp_marks(wmark: Watermarks, managed: usize, cpus: usize, batch: usize) -> (usize, usize) {
    (
        pcp::high_mark(wmark.low, cpus, batch, PCP_SLOTS),
        pcp::high_mark(managed / 8, cpus, batch, PCP_SLOTS),
    )
}

/// One CPU's list for one zone, and the events counted on it: like Linux's per-CPU vmstat
/// diffs, they cost no atomic operation on the fast path (the list lock is held anyway).
struct PcpCpu {
    list: PcpList<KVec<u32>>,
    pgalloc: u64,
    pgfree: u64,
    fallback: u64,
}

type Pcp = SpinLockIrq<PcpCpu>;

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
    pub(crate) count: usize,
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
/// - Pages on the `pcp` lists are allocated in the buddy table. (Who owns a block handed out
///   is recorded by its owner: `device/registry.rs` for user buffers.)
#[pin_data]
pub(crate) struct Zone {
    id: usize,
    #[pin]
    inner: SpinLockIrq<ZoneInner>,
    /// One list per possible CPU, indexed by CPU id.
    pcp: KVec<Pin<KBox<Pcp>>>,
    /// Lock-free copies for the per-CPU fast path.
    free: Atomic<usize>,
    low: Atomic<usize>,
    /// Lock-free copy of the high watermark, for tuning the lists' `high`.
    high: Atomic<usize>,
    /// `lowmem_reserve[this zone][highest zone of the request]`.
    protection: [usize; NR_ZONES],
    pub(super) counters: LiveCounters,
    /// Lock-free copy of the buddy's held pages, so that frees look at the held list only when
    /// it is not empty.
    pub(super) held: Atomic<usize>,
    pub(super) chunks: KVec<PlacedChunk>,
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
        let spanned = end_pfn - start_pfn;
        let (zone_name, zone_class, pcp_name, pcp_class) = lock_classes(id);
        let cpus = nr_cpu_ids() as usize;
        let batch = pcp::batch_size(managed, PAGE_SIZE);
        let (high_min, high_max) = pcp_marks(wmark, managed, cpus, batch);
        let mut lists = KVec::with_capacity(cpus, GFP_KERNEL)?;
        for _ in 0..cpus {
            let slots = KVec::from_elem(0u32, PCP_SLOTS, GFP_KERNEL)?;
            let cpu = PcpCpu {
                list: PcpList::new(slots, high_min, high_max, batch),
                pgalloc: 0,
                pgfree: 0,
                fallback: 0,
            };
            lists.push(
                KBox::pin_init(SpinLockIrq::new(cpu, pcp_name, pcp_class), GFP_KERNEL)?,
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
            free: Atomic::new(free),
            low: Atomic::new(wmark.low),
            high: Atomic::new(wmark.high),
            protection,
            counters: LiveCounters::new(),
            held: Atomic::new(0),
            chunks,
            managed,
            start_pfn,
            spanned,
        }))
    }

    /// The zone's state, copied under its lock (the per-CPU lists each under their own).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut counters = self.counters.read();
        let mut pcp_pages = 0;
        for list in self.pcp.iter() {
            let l = list.lock();
            pcp_pages += l.list.count();
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

    /// CPU `cpu`'s list, as Linux's zoneinfo shows a pageset.
    pub(crate) fn pcp_info(&self, cpu: usize) -> Option<PcpInfo> {
        let l = self.pcp.get(cpu)?.lock();
        Some(PcpInfo {
            count: l.list.count(),
            high: l.list.high,
            batch: l.list.batch,
            high_min: l.list.high_min,
            high_max: l.list.high_max,
        })
    }

    /// Number of per-CPU lists (possible CPUs).
    pub(crate) fn nr_pcp(&self) -> usize {
        self.pcp.len()
    }

    /// Sets the watermarks after checking `min <= low <= high <= managed`.
    pub(crate) fn set_watermarks(&self, w: Watermarks) -> Result {
        if !w.valid_for(self.managed) {
            return Err(EINVAL);
        }
        let mut g = self.inner.lock();
        g.wmark = w;
        self.low.store(w.low, Relaxed);
        self.high.store(w.high, Relaxed);
        drop(g);
        // The lists' marks follow the low watermark, as Linux recomputes them when
        // `setup_per_zone_wmarks` runs.
        let (high_min, high_max) = pcp_marks(w, self.managed, self.pcp.len(), self.batch());
        for list in self.pcp.iter() {
            let mut l = list.lock();
            let batch = l.list.batch;
            l.list.set_marks(high_min, high_max, batch);
        }
        Ok(())
    }

    /// The lists' batch (the same for every CPU).
    pub(super) fn batch(&self) -> usize {
        pcp::batch_size(self.managed, PAGE_SIZE)
    }

    /// Gives every page on every CPU's list back to the buddy allocator; returns how many.
    ///
    /// Context: any; takes each CPU's list lock in turn, then the zone lock.
    pub(crate) fn drain(&self) -> usize {
        let mut n = 0;
        for list in self.pcp.iter() {
            let mut l = list.lock();
            let mut g = self.inner.lock();
            while let Some(i) = l.list.pop_cold() {
                // INVARIANT: pages on the list are allocated in the buddy table.
                kernel::warn_on!(g.buddy.free(i).is_err());
                n += 1;
            }
            self.free.store(g.buddy.free_pages(), Relaxed);
        }
        n
    }

    /// Runs the buddy invariant checker; returns the number of blocks.
    pub(crate) fn validate(&self) -> Result<usize, buddy::Corruption> {
        let g = self.inner.lock();
        if self.free.load(Relaxed) != g.buddy.free_pages() || self.low.load(Relaxed) != g.wmark.low
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
        let after = self.chunks.partition_point(|c| c.index <= index);
        let c = self.chunks.get(after.checked_sub(1)?)?;
        c.block.page(usize::try_from(index - c.index).ok()?)
    }

    /// Tries to take a block of `order` for a request whose highest zone is `highest`.
    pub(super) fn try_alloc(&self, order: u32, highest: usize, class: Reserve) -> Option<u32> {
        let reserve = self.protection.get(highest).copied().unwrap_or(0);
        let fallback = self.id != highest;
        let index = match (order == 0)
            .then(|| self.alloc_pcp(reserve, fallback))
            .flatten()
        {
            Some(i) => i,
            None => {
                let i = self.alloc_buddy(order, reserve, class)?;
                self.counters.pgalloc.add(1, Relaxed);
                if fallback {
                    self.counters.fallback.add(1, Relaxed);
                }
                i
            }
        };
        Some(index)
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
        self.held.store(g.buddy.held_pages(), Relaxed);
    }

    /// Looks at up to `limit` held blocks, oldest first: those whose pages nobody else
    /// references any more go back to the buddy allocator, the others to the back of the
    /// list. Returns the pages given back.
    ///
    /// Context: any; takes the zone lock, once, for at most `limit` blocks.
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
        self.held.store(g.buddy.held_pages(), Relaxed);
        self.free.store(g.buddy.free_pages(), Relaxed);
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

    /// The per-CPU fast path for order 0: only when the zone is above its low watermark plus
    /// the reserve (else the buddy path decides, and counts the watermark hits).
    fn alloc_pcp(&self, reserve: usize, fallback: bool) -> Option<u32> {
        if self.free.load(Relaxed) <= self.low.load(Relaxed).saturating_add(reserve) {
            return None;
        }
        // Any CPU's list will do: the id may be stale once read, the list lock keeps it safe.
        let mut l = self.pcp.get(CpuId::current().as_u32() as usize)?.lock();
        if l.list.count() == 0 {
            // An injected failure is a refill that got nothing (and tuned nothing): the buddy
            // path serves the request, with its watermark checks.
            if crate::fail::should_fail(Point::PcpRefill) {
                return None;
            }
            l.list
                .tune_on_refill(self.free.load(Relaxed) > self.high.load(Relaxed));
            let mut g = self.inner.lock();
            for _ in 0..l.list.batch {
                let Some(i) = g.buddy.alloc(0) else {
                    break;
                };
                if let Err(i) = l.list.push(i) {
                    kernel::warn_on!(g.buddy.free(i).is_err());
                    break;
                }
            }
            self.free.store(g.buddy.free_pages(), Relaxed);
        }
        let i = l.list.pop()?;
        l.pgalloc += 1;
        l.fallback += u64::from(fallback);
        Some(i)
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
        self.free.store(g.buddy.free_pages(), Relaxed);
        index
    }

    /// Frees the allocated block at `index` of `order`: order 0 to this CPU's list, draining
    /// a batch to the buddy allocator when the list reaches its high mark.
    pub(super) fn free(&self, index: u32, order: u32) -> Result<(), buddy::Error> {
        if order == 0 {
            if let Some(list) = self.pcp.get(CpuId::current().as_u32() as usize) {
                let mut l = list.lock();
                l.pgfree += 1;
                let pushed = l.list.push(index);
                if pushed.is_err() || l.list.over_high() {
                    l.list
                        .tune_on_overflow(self.free.load(Relaxed) < self.high.load(Relaxed));
                    let mut g = self.inner.lock();
                    let mut freed = pushed.or_else(|i| g.buddy.free(i).map(|_| ()));
                    for _ in 0..l.list.batch {
                        let Some(i) = l.list.pop_cold() else { break };
                        freed = freed.and(g.buddy.free(i).map(|_| ()));
                    }
                    self.free.store(g.buddy.free_pages(), Relaxed);
                    return freed;
                }
                return Ok(());
            }
        }
        self.counters.pgfree.add(1, Relaxed);
        let mut g = self.inner.lock();
        let freed = g.buddy.free(index);
        self.free.store(g.buddy.free_pages(), Relaxed);
        match freed {
            Ok(o) if o == order => Ok(()),
            Ok(_) => Err(buddy::Error::NotAllocated),
            Err(e) => Err(e),
        }
    }
}
