// SPDX-License-Identifier: GPL-2.0

//! The zoned page pool: pages borrowed from the host, one buddy allocator per zone.
//!
//! At load, [`Pool::new`] borrows each zone's share from the host in the largest blocks it
//! gives (order 10 first, then smaller), classifies every block into minimm's own zone by its
//! physical address (the host may answer a NORMAL request from DMA32 when it has no NORMAL
//! memory: trust the address, not the flag), lays each zone's blocks out in index space (the
//! largest first, so every block sits at an index aligned to its size) and hands them to that
//! zone's [`Buddy`]. Watermarks and lowmem reserves follow from the zones' sizes.
//!
//! Allocation walks the zones a request may use, highest first, as Linux's
//! `get_page_from_freelist` walks a zonelist: a zone above its low watermark (plus the lowmem
//! reserve the request's highest zone owes it) serves at once; below low the allocation counts
//! a *low watermark hit* (where Linux wakes kswapd) and retries against min (min/2 for atomic
//! requests); below that it counts a *min watermark hit* (where Linux reclaims directly) and
//! moves on to the next zone. Until the reclaim thread exists, nothing is reclaimed.
//!
//! Order-0 requests go through per-CPU lists first (see `pcp.rs`): when the zone is clearly
//! above its low watermark (checked against lock-free copies of its free count and low
//! watermark), the page comes from this CPU's list, refilled from the zone a batch at a time;
//! frees go to the list and drain a batch back once it reaches its high mark. Pages on the
//! lists count as allocated for the buddy allocator and its watermarks, as in Linux.
//!
//! Blocks that leave the pool are [`PoolBlock`]s: they own their pages and give them back to their
//! zone when dropped, unless a page is still referenced from outside minimm (a get_user_pages
//! pin taken through a user mapping: O_DIRECT in flight, a pipe buffer from vmsplice...). Such
//! a block must not be handed out yet: it goes on its zone's *held* list (the buddy's
//! quarantine, still allocated), and is looked at again on later frees (the oldest one), when
//! an allocation is about to fail (all of them), and from delayed work every second while any
//! is held. Once nothing but minimm references its pages it goes back to the buddy allocator
//! (`nr_held_recycled` in vmstat). At unload every page goes back to the host, which frees a
//! page still referenced only once its last user is done.
//!
//! Before an allocation fails, minimm also empties every CPU's list into the zones and tries
//! once more, as Linux's slow path does with `drain_all_pages`: a zone's last free pages may
//! sit on another CPU's list.
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

use core::ops::Range;

use kernel::{
    bindings,
    cpu::{nr_cpu_ids, CpuId},
    impl_has_delayed_work, new_delayed_work,
    page::{BorrowedPage, PAGE_SIZE},
    prelude::*,
    static_lock_class,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, LockClassKey, SpinLockIrq,
    },
    workqueue::{self, DelayedWork, WorkItem},
};

use crate::{
    buddy::{self, Buddy, PageMeta, MAX_ORDER, NR_ORDERS},
    fail::Point,
    host_pages::HostChunk,
    pattern,
    pcp::{self, PcpList},
    uapi,
    zone::{self, Reserve, Watermarks, NR_ZONES},
};

/// A [`HostChunk`] and the index of its first page in its zone's buddy table: what the pool
/// turns an index back into a host page with.
struct PlacedChunk {
    index: u32,
    block: HostChunk,
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
struct LiveCounters {
    pgalloc: Atomic<u64>,
    pgfree: Atomic<u64>,
    alloc_fail: Atomic<u64>,
    low_wmark_hit: Atomic<u64>,
    min_wmark_hit: Atomic<u64>,
    fallback: Atomic<u64>,
    held_recycled: Atomic<u64>,
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
/// - Pages on the `pcp` lists are allocated in the buddy table; `owners` names the owner of
///   every block handed out (0 for free pages and pages on the lists).
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
    counters: LiveCounters,
    /// Lock-free copy of the buddy's held pages, so that frees look at the held list only when
    /// it is not empty.
    held: Atomic<usize>,
    /// The owner tag of each block handed out, by head index, whichever path served it: the
    /// one record of who owns what (the buddy table knows allocated from free only).
    owners: KVVec<Atomic<u32>>,
    chunks: KVec<PlacedChunk>,
    managed: usize,
    start_pfn: u64,
    spanned: u64,
}

impl Zone {
    fn new(
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
        let mut owners = KVVec::with_capacity(managed, GFP_KERNEL)?;
        for _ in 0..managed {
            owners.push(Atomic::new(0u32), GFP_KERNEL)?;
        }
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
            owners,
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
    fn batch(&self) -> usize {
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
    fn page(&self, index: u32) -> Option<BorrowedPage<'_>> {
        let after = self.chunks.partition_point(|c| c.index <= index);
        let c = self.chunks.get(after.checked_sub(1)?)?;
        c.block.page(usize::try_from(index - c.index).ok()?)
    }

    /// Tries to take a block of `order` for a request whose highest zone is `highest`.
    fn try_alloc(&self, order: u32, highest: usize, class: Reserve, owner: u32) -> Option<u32> {
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
        self.set_owner(index, owner);
        Some(index)
    }

    /// Records `owner` for the block at `index` (0: none).
    fn set_owner(&self, index: u32, owner: u32) {
        if let Some(o) = self.owners.get(index as usize) {
            o.store(owner, Relaxed);
        }
    }

    /// The owner tag of the allocated block at `index`.
    pub(crate) fn owner(&self, index: u32) -> Option<u32> {
        self.owners.get(index as usize).map(|o| o.load(Relaxed))
    }

    /// Whether a page of the block at `index` of `order` is referenced from outside minimm:
    /// more than the one reference `split_page` left us (user mappings of the block are gone
    /// by the time it is freed).
    fn referenced(&self, index: u32, order: u32) -> bool {
        (0..1u32 << order).any(|i| {
            index
                .checked_add(i)
                .and_then(|at| self.page(at))
                .is_none_or(|p| crate::host_pages::page_refcount(&p) != 1)
        })
    }

    /// Puts the allocated block at `index` on the held list.
    fn hold(&self, index: u32) {
        let mut g = self.inner.lock();
        kernel::warn_on!(g.buddy.hold(index).is_err());
        self.held.store(g.buddy.held_pages(), Relaxed);
    }

    /// Looks at up to `limit` held blocks, oldest first: those whose pages nobody else
    /// references any more go back to the buddy allocator, the others to the back of the
    /// list. Returns the pages given back.
    ///
    /// Context: any; takes the zone lock, once, for at most `limit` blocks.
    fn reap_held(&self, limit: usize) -> usize {
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
    fn reap_all_held(&self) -> usize {
        self.reap_some_held(usize::MAX)
    }

    /// Looks at up to `max` held blocks (each once), a few at a time so that the lock is
    /// dropped between them; returns the pages given back.
    fn reap_some_held(&self, max: usize) -> usize {
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
    fn free(&self, index: u32, order: u32) -> Result<(), buddy::Error> {
        self.set_owner(index, 0);
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

/// The pool: three zones, and the delayed work that looks at their held blocks.
#[pin_data(PinnedDrop)]
pub(crate) struct Pool {
    #[pin]
    dma: Zone,
    #[pin]
    dma32: Zone,
    #[pin]
    normal: Zone,
    /// Queued (holding a reference to the pool) while any zone holds blocks; disabled for
    /// good by [`Pool::stop_reaper`].
    #[pin]
    reaper: DelayedWork<Pool>,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Pool { self.reaper }
}

impl WorkItem for Pool {
    type Pointer = Arc<Pool>;

    /// Gives every zone's unreferenced held blocks back; comes back later while any is left.
    fn run(this: Arc<Pool>) {
        let zones = (0..NR_ZONES).filter_map(|z| this.zone(z));
        zones.for_each(|z| {
            z.reap_all_held();
        });
        this.schedule_reaper();
    }
}

/// How often the reaper looks at held blocks, in milliseconds.
const REAP_INTERVAL_MS: u32 = 1000;

/// Parameters of [`Pool::new`].
pub(crate) struct Config {
    /// Pages to borrow per zone.
    pub(crate) zone_pages: [usize; NR_ZONES],
    /// `min_free_kbytes` for the pool; 0 computes it as Linux does.
    pub(crate) min_free_kbytes: usize,
    /// `watermark_scale_factor`, in 1/10000 of a zone.
    pub(crate) watermark_scale_factor: usize,
}

impl Pool {
    /// Borrows the pool's pages from the host and sets up the zones.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(cfg: Config) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            let mut blocks = [KVec::new(), KVec::new(), KVec::new()];
            let mut borrowed = 0usize;
            // Never take more than half of what the host has free: a pool is for watching the
            // mechanisms, not for starving the host.
            let mut budget = crate::host_pages::host_free_pages() / 2;
            for (z, &asked) in cfg.zone_pages.iter().enumerate() {
                let want = asked.min(budget);
                if want < asked {
                    pr_info!(
                        "{}: asking for {want} of {asked} pages, half the host's free memory\n",
                        zone::NAMES[z]
                    );
                }
                let got = borrow(z, want, &mut blocks)?;
                borrowed += got;
                budget -= got.min(budget);
                if got < want {
                    pr_info!("{}: the host gave {got} of {want} pages\n", zone::NAMES[z]);
                }
            }
            let managed: [usize; NR_ZONES] =
                core::array::from_fn(|z| blocks[z].iter().map(HostChunk::pages).sum());
            let kib = kernel::page::PAGE_SIZE / 1024;
            let min_free_kbytes = match cfg.min_free_kbytes {
                0 => zone::min_free_kbytes(borrowed, kib),
                n => n,
            };
            let wmarks =
                zone::watermarks(managed, min_free_kbytes / kib, cfg.watermark_scale_factor);
            let reserve = zone::lowmem_reserve(managed, zone::LOWMEM_RESERVE_RATIO);
            for z in 0..NR_ZONES {
                pr_info!(
                    "zone {:>6}: {} pages, watermarks min {} low {} high {}\n",
                    zone::NAMES[z],
                    managed[z],
                    wmarks[z].min,
                    wmarks[z].low,
                    wmarks[z].high
                );
            }
            // A reserve that leaves a zone nothing to give fails every allocation silently:
            // refuse it at load instead.
            for z in 0..NR_ZONES {
                if managed[z] > 0 && wmarks[z].high >= managed[z] {
                    pr_err!(
                        "min_free_kbytes {min_free_kbytes} leaves zone {} ({} pages) nothing above its high watermark {}\n",
                        zone::NAMES[z],
                        managed[z],
                        wmarks[z].high
                    );
                    return Err(EINVAL);
                }
            }
            let [dma, dma32, normal] = blocks;
            Ok(try_pin_init!(Self {
                dma <- Zone::new(zone::DMA, dma, wmarks[0], reserve[0])?,
                dma32 <- Zone::new(zone::DMA32, dma32, wmarks[1], reserve[1])?,
                normal <- Zone::new(zone::NORMAL, normal, wmarks[2], reserve[2])?,
                reaper <- new_delayed_work!("minimm_reaper"),
            }? Error))
        })
    }

    /// Zone `z`, if it is one.
    pub(crate) fn zone(&self, z: usize) -> Option<&Zone> {
        match z {
            zone::DMA => Some(&self.dma),
            zone::DMA32 => Some(&self.dma32),
            zone::NORMAL => Some(&self.normal),
            _ => None,
        }
    }

    /// Pages borrowed from the host at load: the zones' pages together.
    pub(crate) fn borrowed(&self) -> usize {
        (0..NR_ZONES)
            .filter_map(|z| self.zone(z))
            .map(|z| z.managed)
            .sum()
    }

    /// Allocates a block of 2^`order` pages from `highest` or a lower zone, as an owned
    /// [`PoolBlock`] that gives it back when dropped.
    ///
    /// Context: any; never sleeps.
    pub(crate) fn alloc(
        self: &Arc<Self>,
        order: u32,
        highest: usize,
        class: Reserve,
        owner: u32,
    ) -> Result<PoolBlock> {
        Ok(PoolBlock {
            raw: self.alloc_raw(order, highest, class, owner)?,
            pool: self.clone(),
        })
    }

    /// Allocates a block of 2^`order` pages from `highest` or a lower zone; the caller gives it
    /// back with [`Pool::free_raw`]. The in-kernel API, without reference counting.
    ///
    /// When no zone can give the block, the per-CPU lists are emptied into the zones and up to
    /// 64 held blocks a zone looked at, and the zones are tried once more.
    ///
    /// Context: any; takes a per-CPU list lock or one zone lock at a time; never sleeps.
    pub(crate) fn alloc_raw(
        &self,
        order: u32,
        highest: usize,
        class: Reserve,
        owner: u32,
    ) -> Result<RawBlock> {
        if order > MAX_ORDER || highest >= NR_ZONES {
            return Err(EINVAL);
        }
        // As Linux's `should_fail_alloc_page` (after the order check, in
        // `prepare_alloc_pages`): the whole allocation fails before it drains, reaps or counts.
        if crate::fail::should_fail(Point::ZoneAlloc) {
            return Err(ENOMEM);
        }
        if let Some(r) = self.try_zones(order, highest, class, owner) {
            return Ok(r);
        }
        // Bounded, since an allocation never sleeps: the delayed work looks at the rest.
        const REAP_ON_FAILURE: usize = 64;
        let zones = zone::fallback(highest).filter_map(|z| self.zone(z));
        let given_back: usize = zones
            .map(|z| z.drain() + z.reap_some_held(REAP_ON_FAILURE))
            .sum();
        if given_back > 0 {
            if let Some(r) = self.try_zones(order, highest, class, owner) {
                return Ok(r);
            }
        }
        if let Some(zone) = self.zone(highest) {
            zone.counters.alloc_fail.add(1, Relaxed);
        }
        Err(ENOMEM)
    }

    /// One walk down the zones a request may use.
    fn try_zones(
        &self,
        order: u32,
        highest: usize,
        class: Reserve,
        owner: u32,
    ) -> Option<RawBlock> {
        zone::fallback(highest).find_map(|z| {
            let index = self.zone(z)?.try_alloc(order, highest, class, owner)?;
            // INVARIANT: `index` heads a block of `order` just allocated in zone `z`.
            Some(RawBlock {
                zone: z,
                index,
                order,
            })
        })
    }

    /// Queues the reaper if any zone holds blocks. Once [`Pool::stop_reaper`] disabled it,
    /// queueing fails and gives the reference back.
    ///
    /// Context: any.
    fn schedule_reaper(self: &Arc<Self>) {
        let held = (0..NR_ZONES)
            .filter_map(|z| self.zone(z))
            .any(|z| z.held.load(Relaxed) > 0);
        if held {
            let delay = kernel::time::msecs_to_jiffies(REAP_INTERVAL_MS);
            // Already queued, or disabled: `Err` gives our reference back (and a queued reaper
            // will look at this block too).
            let _ = workqueue::system().enqueue_delayed(self.clone(), delay);
        }
    }

    /// Stops the reaper for good: a queued one is taken off the queue (its reference to the
    /// pool dropped), a running one waited for, and any later queueing refused. The owner of
    /// the pool calls it before dropping its own reference, or a queued reaper would keep the
    /// pool alive.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn stop_reaper(self: &Arc<Self>) {
        // SAFETY: `self.reaper` is a valid, initialised `DelayedWork`. The `work_struct` the
        // call returns is the first field of its `delayed_work`, so the cast gives that
        // `delayed_work`, which lives as long as the pool, past this call. The work stays
        // disabled (`disable_delayed_work_sync`, unlike `cancel_...`, does not re-enable it),
        // so `queue_delayed_work` refuses it from now on.
        let was_queued = unsafe {
            let work = DelayedWork::<Pool>::raw_as_work(&self.reaper);
            bindings::disable_delayed_work_sync(work.cast())
        };
        if was_queued {
            // SAFETY: A queued reaper owns one reference to this pool, made by `Arc::into_raw`
            // of a clone of an `Arc<Pool>` when it was queued (`schedule_reaper`); it was taken
            // off the queue, so it will never run to give it back: it is ours to drop. The
            // pointer is the one `Arc::into_raw` returned, as `self` is an `Arc` of the pool.
            drop(unsafe { Arc::from_raw(Arc::as_ptr(self)) });
        }
    }

    /// Gives a block from [`Pool::alloc_raw`] back.
    ///
    /// Context: any; never sleeps.
    pub(crate) fn free_raw(&self, raw: RawBlock) {
        let freed = self.zone(raw.zone).map(|z| z.free(raw.index, raw.order));
        // By `RawBlock`'s invariant the block is allocated and ours: anything else is a bug.
        kernel::warn_on!(!matches!(freed, Some(Ok(()))));
    }

    /// Empties every per-CPU list of every zone; returns the pages given back.
    pub(crate) fn drain(&self) -> usize {
        (0..NR_ZONES)
            .filter_map(|z| self.zone(z))
            .map(Zone::drain)
            .sum()
    }
}

#[pinned_drop]
impl PinnedDrop for Pool {
    fn drop(self: Pin<&mut Self>) {
        // Every `PoolBlock` holds a reference to the pool, so all blocks are back by now, some of
        // them on per-CPU lists, some held. Held blocks go back to the host with the rest: it
        // frees a page still referenced once its last user lets go.
        self.drain();
        for z in 0..NR_ZONES {
            if let Some(zone) = self.zone(z) {
                zone.reap_all_held();
                let s = zone.snapshot();
                if s.held > 0 {
                    pr_info!(
                        "{}: {} pages still referenced outside minimm at unload\n",
                        zone::NAMES[z],
                        s.held
                    );
                }
                // Anything else missing is a bug of minimm's: say so loudly.
                if kernel::warn_on!(s.free + s.held != s.managed) {
                    pr_err!(
                        "{}: {} of {} pages not back in the pool at unload\n",
                        zone::NAMES[z],
                        s.managed - s.free.min(s.managed),
                        s.managed
                    );
                }
            }
        }
    }
}

/// Borrows up to `want` pages for zone `z` into `out`, classified by address; returns how
/// many pages were borrowed.
fn borrow(z: usize, want: usize, out: &mut [KVec<HostChunk>; NR_ZONES]) -> Result<usize> {
    let mut got = 0usize;
    let mut order = MAX_ORDER;
    while got < want {
        // The largest order that neither exceeds what is left nor failed before.
        let left = want - got;
        let o = order.min(usize::BITS - 1 - left.leading_zeros());
        let Some(block) = HostChunk::alloc(z, o) else {
            if o == 0 {
                break;
            }
            order = o - 1;
            continue;
        };
        let (start, len) = block.phys();
        let actual = zone::classify(start, len).ok_or(EINVAL)?;
        got += block.pages();
        out[actual].push(block, GFP_KERNEL)?;
    }
    Ok(got)
}

/// A block out of the pool, from [`Pool::alloc_raw`]: neither `Clone` nor `Copy`, so that it
/// can be given back only once.
///
/// # Invariants
///
/// `index` heads an allocated block of `order` in zone `zone` of the pool that made it, and
/// this value is its only owner.
pub(crate) struct RawBlock {
    zone: usize,
    index: u32,
    order: u32,
}

/// A [`RawBlock`] that keeps the pool alive and gives the block back when dropped (or holds it,
/// while its pages are referenced from outside): what a file's [`crate::device::Buffer`] owns.
pub(crate) struct PoolBlock {
    raw: RawBlock,
    pool: Arc<Pool>,
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
    /// nowhere else meanwhile (its owner serialises them; see `device.rs`).
    pub(crate) unsafe fn checksum(&self) -> Result<u64> {
        let mut h = pattern::Fnv1a::new();
        for i in self.pages_range() {
            let p = self.page(i).ok_or(EINVAL)?;
            // SAFETY: A page of this block, whose kernel-side accesses the caller serialises.
            unsafe { crate::host_pages::read_words(&p, |w| h.update(&w.to_ne_bytes())) };
        }
        Ok(h.finish())
    }

    /// Fills the block with the pattern of `seed` (see `pattern::fill`); racing user writes
    /// through a mapping only mix bytes, as with `copy_to_user`.
    ///
    /// # Safety
    ///
    /// As for [`crate::host_pages::write_words`]: the block is the caller's to change, and the
    /// kernel accesses its contents nowhere else meanwhile.
    pub(crate) unsafe fn fill(&self, seed: u64) -> Result {
        const WORDS: usize = kernel::page::PAGE_SIZE / 8;
        for i in self.pages_range() {
            let p = self.page(i).ok_or(EINVAL)?;
            let first = (i * WORDS) as u64;
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
    /// Context: any.
    fn drop(&mut self) {
        let Some(zone) = self.pool.zone(self.raw.zone) else {
            return;
        };
        if zone.referenced(self.raw.index, self.raw.order) {
            // Handing the block out again would let its next owner share pages with whoever
            // still holds them: hold it until they let go (see the module documentation).
            zone.set_owner(self.raw.index, 0);
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
        if zone.held.load(Relaxed) > 0 {
            zone.reap_held(1);
        }
    }
}

/// The answer to `MINIMM_IOC_ZONE_STATS` for zone `z`.
pub(crate) fn zone_stats(pool: &Pool, z: usize) -> Option<uapi::ZoneStats> {
    let s = pool.zone(z)?.snapshot();
    let c = s.counters;
    Some(uapi::ZoneStats {
        size: 0,
        zone: z as u32,
        managed_pages: s.managed as u64,
        free_pages: s.free as u64,
        pcp_pages: s.pcp_pages as u64,
        wmark_min: s.wmark.min as u64,
        wmark_low: s.wmark.low as u64,
        wmark_high: s.wmark.high as u64,
        nr_free: s.nr_free.map(|n| n as u64),
        pgalloc: c.pgalloc,
        pgfree: c.pgfree,
        alloc_fail: c.alloc_fail,
        low_wmark_hit: c.low_wmark_hit,
        min_wmark_hit: c.min_wmark_hit,
        fallback: c.fallback,
    })
}

#[kunit_tests(minimm_pool)]
mod tests {
    use super::*;

    fn small_pool() -> Result<Arc<Pool>> {
        Arc::pin_init(
            Pool::new(Config {
                zone_pages: [16, 64, 64],
                min_free_kbytes: 0,
                watermark_scale_factor: 10,
            }),
            GFP_KERNEL,
        )
    }

    /// Every borrowed page lies in the zone it was filed under, and the page table's layout
    /// matches the chunks.
    #[test]
    fn borrowed_blocks_are_classified_by_address() -> Result {
        let counted = crate::host_pages::BORROWED_PAGES.load(Relaxed);
        let pool = small_pool()?;
        // Every page the host gave ended up in a zone (KUnit runs one test at a time, in the
        // loading thread, so nothing else borrows meanwhile).
        let counted = crate::host_pages::BORROWED_PAGES.load(Relaxed) - counted;
        let mut total = 0;
        for z in 0..NR_ZONES {
            let zone = pool.zone(z).ok_or(EINVAL)?;
            let mut next = 0u32;
            for c in zone.chunks.iter() {
                let (start, len) = c.block.phys();
                assert_eq!(zone::classify(start, len), Some(z));
                if z == zone::DMA {
                    assert!(start + len <= 16 << 20);
                }
                // Laid out back to back, each at an index aligned to its size.
                assert_eq!(c.index, next);
                assert_eq!(c.index % (1 << c.block.order()), 0);
                next += c.block.pages() as u32;
            }
            assert_eq!(next as usize, zone.managed);
            assert!(zone.validate().is_ok());
            total += zone.managed;
        }
        assert_eq!(total, pool.borrowed());
        assert_eq!(counted, total);
        assert!(total > 0);
        Ok(())
    }

    /// A block's pages are the host pages of its chunk, in order.
    #[test]
    fn block_pages_are_contiguous_host_pages() -> Result {
        let pool = small_pool()?;
        let block = pool.alloc(3, zone::NORMAL, Reserve::Normal, 1)?;
        let first = crate::host_pages::page_to_pfn(block.page(0).ok_or(EINVAL)?.as_ptr());
        for i in 0..block.pages() {
            let p = block.page(i).ok_or(EINVAL)?;
            assert_eq!(crate::host_pages::page_to_pfn(p.as_ptr()), first + i as u64);
        }
        assert!(block.page(block.pages()).is_none());
        Ok(())
    }

    /// A block served from a per-CPU list carries its real owner, as one from the buddy path.
    #[test]
    fn owners_are_recorded_on_both_paths() -> Result {
        let pool = small_pool()?;
        // Freed, an order-0 block waits on this CPU's list; the next one comes from there.
        let z = pool.alloc(0, zone::NORMAL, Reserve::Normal, 6)?.zone();
        let zone = pool.zone(z).ok_or(EINVAL)?;
        let on_lists = zone.snapshot().pcp_pages;
        assert!(on_lists > 0);
        let single = pool.alloc(0, zone::NORMAL, Reserve::Normal, 7)?;
        assert_eq!(zone.snapshot().pcp_pages, on_lists - 1);
        let pair = pool.alloc(1, zone::NORMAL, Reserve::Normal, 8)?;
        for (b, owner) in [(&single, 7), (&pair, 8)] {
            let zone = pool.zone(b.zone()).ok_or(EINVAL)?;
            assert_eq!(zone.owner(b.raw.index), Some(owner));
        }
        let index = single.raw.index;
        drop(single);
        assert_eq!(pool.zone(z).ok_or(EINVAL)?.owner(index), Some(0));
        Ok(())
    }

    /// A block whose page is still referenced from outside when freed is held, not reused,
    /// and goes back to the buddy allocator once the reference is gone.
    #[test]
    fn referenced_blocks_are_held_then_recycled() -> Result {
        let pool = small_pool()?;
        let block = pool.alloc(1, zone::NORMAL, Reserve::Normal, 1)?;
        let zone = pool.zone(block.zone()).ok_or(EINVAL)?;
        let free_before = zone.snapshot().free;
        let page = block.page(1).ok_or(EINVAL)?.as_ptr();
        // SAFETY: `page` is a valid `struct page` of the pool's, alive as long as `pool`; its
        // `_refcount` is only ever accessed atomically. The extra reference taken here is
        // dropped below and the count never reaches zero, so the page is never freed by it.
        let count =
            unsafe { Atomic::<i32>::from_ptr(core::ptr::addr_of_mut!((*page)._refcount.counter)) };
        count.add(1, Relaxed);
        drop(block);
        assert_eq!(zone.snapshot().held, 2);
        assert_eq!(zone.reap_all_held(), 0);
        assert_eq!(zone.snapshot().held, 2);
        assert!(zone.validate().is_ok());
        count.add(-1, Relaxed);
        assert_eq!(zone.reap_all_held(), 2);
        let s = zone.snapshot();
        assert_eq!(
            (s.held, s.counters.held_recycled, s.free),
            (0, 2, free_before + 2)
        );
        assert!(zone.validate().is_ok());
        // The hold queued the reaper, which holds a reference to the pool.
        pool.stop_reaper();
        Ok(())
    }

    /// Order 0 goes through the per-CPU list and comes back to it; draining restores the zone.
    #[test]
    fn pcp_refill_and_drain() -> Result {
        let pool = small_pool()?;
        let z = pool.alloc(0, zone::NORMAL, Reserve::Normal, 1)?.zone();
        let zone = pool.zone(z).ok_or(EINVAL)?;
        let s = zone.snapshot();
        assert!(s.pcp_pages >= 1);
        assert_eq!(s.free + s.pcp_pages, s.managed);
        assert_eq!(pool.drain(), s.pcp_pages);
        let s = zone.snapshot();
        assert_eq!((s.free, s.pcp_pages), (s.managed, 0));
        Ok(())
    }
}
