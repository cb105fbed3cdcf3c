// SPDX-License-Identifier: GPL-2.0

//! The zoned page pool: pages borrowed from the host, one buddy allocator per zone.
//!
//! Three files, one concept each:
//!
//! - `pool/mod.rs` (this file): the pool as a whole: borrowing at load, the walk down the
//!   zones, the held-block reaper, teardown;
//! - [`zone`]: one zone's state and its locks: the buddy allocator, watermarks, per-CPU
//!   lists, the held list and counters (the formulas are the pure `crate::zone`);
//! - [`block`]: blocks handed out ([`RawBlock`], [`PoolBlock`]) and what they give back.
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
//! Requests of orders 0..3 go through per-CPU lists first (see `pcp.rs`), one list per order
//! as in Linux: when the zone is clearly above its low watermark (checked against lock-free
//! copies of its free count and low watermark), the block comes from this CPU's list of its
//! order, refilled from the zone about a batch of pages at a time; frees go to the list, and
//! pages go back to the zone once the lists together reach their high mark. Pages on the
//! lists count as allocated for the buddy allocator and its watermarks, as in Linux.
//!
//! [`Pool::alloc_bulk`] and [`Pool::free_bulk`] move many order-0 pages at once, as Linux's
//! `alloc_pages_bulk` and `free_pages_bulk`: one per-CPU lock and at most one zone lock round
//! trip a batch, the watermark checked once for the whole batch, partial success reported as
//! a count.
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
//! See [`zone`]: a per-CPU list lock (tried, never waited for, outside process context), then
//! a zone lock (irq-safe); the pool itself adds none (the reaper is a work item).

mod block;
pub(crate) mod pcp_lock;
mod zone;

use crate::lru::Level;

pub(crate) use block::{PoolBlock, RawBlock};
pub(crate) use zone::{Counters, Snapshot, Zone};

use kernel::{
    bindings, impl_has_delayed_work, new_delayed_work,
    prelude::*,
    sync::{atomic::Relaxed, Arc},
    workqueue::{self, DelayedWork, WorkItem},
};

use crate::{
    buddy::MAX_ORDER,
    fail::Point,
    host_pages::HostChunk,
    uapi,
    zone::{Reserve, NR_ZONES},
};

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
                        crate::zone::NAMES[z]
                    );
                }
                let got = borrow(z, want, &mut blocks)?;
                borrowed += got;
                budget -= got.min(budget);
                if got < want {
                    pr_info!(
                        "{}: the host gave {got} of {want} pages\n",
                        crate::zone::NAMES[z]
                    );
                }
            }
            let managed: [usize; NR_ZONES] =
                core::array::from_fn(|z| blocks[z].iter().map(HostChunk::pages).sum());
            let kib = kernel::page::PAGE_SIZE / 1024;
            let min_free_kbytes = match cfg.min_free_kbytes {
                0 => crate::zone::min_free_kbytes(borrowed, kib),
                n => n,
            };
            let wmarks =
                crate::zone::watermarks(managed, min_free_kbytes / kib, cfg.watermark_scale_factor);
            let reserve = crate::zone::lowmem_reserve(managed, crate::zone::LOWMEM_RESERVE_RATIO);
            for z in 0..NR_ZONES {
                pr_info!(
                    "zone {:>6}: {} pages, watermarks min {} low {} high {}\n",
                    crate::zone::NAMES[z],
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
                        crate::zone::NAMES[z],
                        managed[z],
                        wmarks[z].high
                    );
                    return Err(EINVAL);
                }
            }
            let [dma, dma32, normal] = blocks;
            Ok(try_pin_init!(Self {
                dma <- Zone::new(crate::zone::DMA, dma, wmarks[0], reserve[0])?,
                dma32 <- Zone::new(crate::zone::DMA32, dma32, wmarks[1], reserve[1])?,
                normal <- Zone::new(crate::zone::NORMAL, normal, wmarks[2], reserve[2])?,
                reaper <- new_delayed_work!("minimm_reaper"),
            }? Error))
        })
    }

    /// Zone `z`, if it is one.
    pub(crate) fn zone(&self, z: usize) -> Option<&Zone> {
        match z {
            crate::zone::DMA => Some(&self.dma),
            crate::zone::DMA32 => Some(&self.dma32),
            crate::zone::NORMAL => Some(&self.normal),
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
    /// Context: as for [`Pool::alloc_raw`]; never sleeps.
    pub(crate) fn alloc(
        self: &Arc<Self>,
        order: u32,
        highest: usize,
        class: Reserve,
    ) -> Result<PoolBlock> {
        Ok(PoolBlock {
            raw: self.alloc_raw(order, highest, class)?,
            pool: self.clone(),
        })
    }

    /// `raw` as an owned [`PoolBlock`], given back (or held) when dropped.
    pub(crate) fn own(self: &Arc<Self>, raw: RawBlock) -> PoolBlock {
        PoolBlock {
            raw,
            pool: self.clone(),
        }
    }

    /// Gives back every block of `blocks` (emptying their slots) as dropping a [`PoolBlock`]
    /// of each would, in bulk: a block with a page still referenced from outside minimm (a
    /// `get_user_pages` pin taken through a user mapping) is held, the rest go back through
    /// [`Pool::free_bulk`]. `checked`: whether the blocks may have been mapped to user space
    /// at all; if not, none can be referenced and none is looked at.
    ///
    /// Context: as for [`Pool::alloc_raw`]; never sleeps.
    pub(crate) fn give_back(self: &Arc<Self>, blocks: &mut [Option<RawBlock>], checked: bool) {
        if checked {
            let mut held = false;
            for slot in blocks.iter_mut() {
                let Some(b) = slot else { continue };
                let Some(zone) = self.zone(b.zone) else {
                    continue;
                };
                if zone.referenced(b.index, b.order) {
                    zone.hold(b.index);
                    *slot = None;
                    held = true;
                }
            }
            if held {
                self.schedule_reaper();
            }
        }
        self.free_bulk(blocks);
    }

    /// The struct page of the first page of `block` (the rest follow it: a block's pages are
    /// physically contiguous, and x86_64's `vmemmap` is one array). For a run of lookups,
    /// `hint` (start it at anything) remembers where the last page was found, so that blocks
    /// that follow it in one host chunk are found at once.
    #[inline]
    pub(crate) fn first_page(
        &self,
        block: &RawBlock,
        hint: &mut usize,
    ) -> Option<*mut kernel::bindings::page> {
        Some(
            self.zone(block.zone)?
                .page_near(block.index, hint)?
                .as_ptr(),
        )
    }

    /// Allocates a block of 2^`order` pages from `highest` or a lower zone; the caller gives it
    /// back with [`Pool::free_raw`]. The in-kernel API, without reference counting.
    ///
    /// When no zone can give the block, the per-CPU lists are emptied into the zones and up to
    /// 64 held blocks a zone looked at, and the zones are tried once more.
    ///
    /// Context: any that may take a `spinlock_t`, as for the host's `alloc_pages` (process,
    /// softirq; not a hard interrupt handler, where lockdep's raw-lock nesting check, on in
    /// the test kernel, forbids it as it would the host's zone lock); takes a per-CPU list
    /// lock or one zone lock at a time; never sleeps.
    #[inline]
    pub(crate) fn alloc_raw(&self, order: u32, highest: usize, class: Reserve) -> Result<RawBlock> {
        if order > MAX_ORDER || highest >= NR_ZONES {
            return Err(EINVAL);
        }
        // As Linux's `should_fail_alloc_page` (after the order check, in
        // `prepare_alloc_pages`): the whole allocation fails before it drains, reaps or counts.
        if crate::fail::should_fail(Point::ZoneAlloc) {
            return Err(ENOMEM);
        }
        if let Some(r) = self.try_zones(order, highest, class) {
            return Ok(r);
        }
        self.alloc_slow(order, highest, class)
    }

    /// [`Pool::alloc_raw`] when no zone gave the block at once: drain, reap, retry.
    #[inline(never)]
    fn alloc_slow(&self, order: u32, highest: usize, class: Reserve) -> Result<RawBlock> {
        // Bounded, since an allocation never sleeps: the delayed work looks at the rest.
        const REAP_ON_FAILURE: usize = 64;
        let zones = crate::zone::fallback(highest).filter_map(|z| self.zone(z));
        let given_back: usize = zones
            .map(|z| z.try_drain() + z.reap_some_held(REAP_ON_FAILURE))
            .sum();
        if given_back > 0 {
            if let Some(r) = self.try_zones(order, highest, class) {
                return Ok(r);
            }
        }
        if let Some(zone) = self.zone(highest) {
            zone.counters.alloc_fail.add(1, Relaxed);
        }
        Err(ENOMEM)
    }

    /// Fills the empty (`None`) slots of `out` with order-0 pages from `highest` or a lower
    /// zone, as Linux's `alloc_pages_bulk`; returns how many slots are filled now (those
    /// filled before included), which is fewer than `out.len()` on partial success. The
    /// caller gives each page back with [`Pool::free_raw`] or [`Pool::free_bulk`].
    ///
    /// The batch comes from the first zone whose low watermark (plus the reserve it is owed)
    /// stays met with the whole batch taken, through this CPU's list and one trip to the zone.
    /// When no zone qualifies, or this CPU's list is busy, one page is allocated the usual way
    /// (with its min-watermark checks, drain and retry), as Linux falls back to a single
    /// `__alloc_pages`.
    ///
    /// Context: as for [`Pool::alloc_raw`]; never sleeps.
    pub(crate) fn alloc_bulk(
        &self,
        highest: usize,
        class: Reserve,
        out: &mut [Option<RawBlock>],
    ) -> usize {
        let filled = |out: &[Option<RawBlock>]| out.iter().filter(|b| b.is_some()).count();
        let want = out.len() - filled(out);
        if want == 0 || highest >= NR_ZONES {
            return filled(out);
        }
        if crate::fail::should_fail(Point::ZoneAlloc) {
            return filled(out);
        }
        let mut empty = out.iter_mut().filter(|b| b.is_none());
        let mut got = 0;
        for z in crate::zone::fallback(highest) {
            let Some(zone) = self.zone(z) else { continue };
            // `put` is called at most `want` times, the empty slots there are.
            let served = zone.alloc_bulk(want, highest, |index| match empty.next() {
                // INVARIANT: `index` heads an order-0 block just allocated in zone `z`.
                Some(slot) => {
                    *slot = Some(RawBlock {
                        zone: z,
                        index,
                        order: 0,
                    })
                }
                None => {
                    kernel::warn_on!(true);
                }
            });
            match served {
                Some(0) => continue,
                Some(n) => got = n,
                // This CPU's list is busy (an interrupted holder): one page the usual way.
                None => {}
            }
            break;
        }
        if got == 0 {
            if let (Some(slot), Ok(b)) = (empty.next(), self.alloc_raw(0, highest, class)) {
                *slot = Some(b);
            }
        }
        filled(out)
    }

    /// Gives back every block in `blocks` (emptying their slots), as Linux's
    /// `free_pages_bulk`: order-0 pages a zone at a time through this CPU's list, a trip to
    /// the zone only for the give-backs the batch causes; other orders one by one, as
    /// [`Pool::free_raw`].
    ///
    /// Context: as for [`Pool::alloc_raw`]; never sleeps.
    pub(crate) fn free_bulk(&self, blocks: &mut [Option<RawBlock>]) {
        let order0_of =
            |z: usize, b: &Option<RawBlock>| matches!(b, Some(r) if r.zone == z && r.order == 0);
        for z in 0..NR_ZONES {
            let Some(zone) = self.zone(z) else { continue };
            if !blocks.iter().any(|b| order0_of(z, b)) {
                continue;
            }
            let mut mine = blocks.iter_mut().filter(|b| order0_of(z, b));
            zone.free_bulk(|| Some(mine.next()?.take()?.index));
        }
        for b in blocks.iter_mut() {
            if let Some(raw) = b.take() {
                self.free_raw(raw);
            }
        }
    }

    /// One walk down the zones a request may use (`crate::zone::fallback`, written out as a
    /// loop: this is the fast path, and the iterator adapters are not all inlined).
    #[inline]
    fn try_zones(&self, order: u32, highest: usize, class: Reserve) -> Option<RawBlock> {
        let mut z = highest.min(NR_ZONES - 1);
        loop {
            if let Some(index) = self
                .zone(z)
                .and_then(|zone| zone.try_alloc(order, highest, class))
            {
                // INVARIANT: `index` heads a block of `order` just allocated in zone `z`.
                return Some(RawBlock {
                    zone: z,
                    index,
                    order,
                });
            }
            z = z.checked_sub(1)?;
        }
    }

    /// Queues the reaper if any zone holds blocks. Once [`Pool::stop_reaper`] disabled it,
    /// queueing fails and gives the reference back.
    ///
    /// Context: as for [`Pool::alloc_raw`].
    fn schedule_reaper(self: &Arc<Self>) {
        let held = (0..NR_ZONES)
            .filter_map(|z| self.zone(z))
            .any(|z| z.held.load(core::sync::atomic::Ordering::Relaxed) > 0);
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
    /// Context: as for [`Pool::alloc_raw`]; never sleeps.
    #[inline]
    pub(crate) fn free_raw(&self, raw: RawBlock) {
        let freed = self.zone(raw.zone).map(|z| z.free(raw.index, raw.order));
        // By `RawBlock`'s invariant the block is allocated and ours: anything else is a bug.
        kernel::warn_on!(!matches!(freed, Some(Ok(()))));
    }

    /// The kernel virtual address of `block`'s first byte (pool pages are in the direct map,
    /// and a block's pages are physically contiguous: it never spans two chunks).
    pub(crate) fn block_addr(&self, block: &RawBlock) -> Option<usize> {
        let page = self.zone(block.zone)?.page(block.index)?;
        Some(crate::host_pages::pfn_to_virt(
            crate::host_pages::page_to_pfn(page.as_ptr()),
        ))
    }

    /// Records `tag` (0 clears it) as the owner tag of every page of `block`: see
    /// [`Pool::tag_of`]. The owner clears its tags before it frees the block.
    pub(crate) fn set_tags(&self, block: &RawBlock, tag: u64) {
        if let Some(z) = self.zone(block.zone) {
            z.set_tags(block.index, block.order, tag);
        }
    }

    /// The owner tag of the pool page holding kernel address `addr`, with the zone and page
    /// index; `None` for an address outside the pool. Takes no lock.
    #[inline(always)]
    pub(crate) fn tag_of(&self, addr: usize) -> Option<(u64, usize, u32)> {
        let pfn = crate::host_pages::virt_to_pfn(addr)?;
        // Spelled out rather than an iterator over the zones: this is every free's path, and
        // the kernel's build does not inline the iterator's `next`.
        let (z, zone, index) = if let Some(i) = self.normal.index_of_pfn(pfn) {
            (crate::zone::NORMAL, &self.normal, i)
        } else if let Some(i) = self.dma32.index_of_pfn(pfn) {
            (crate::zone::DMA32, &self.dma32, i)
        } else {
            (crate::zone::DMA, &self.dma, self.dma.index_of_pfn(pfn)?)
        };
        Some((zone.tag(index), z, index))
    }

    /// The allocated block of `order` headed by page `index` of zone `zone`, for an owner that
    /// kept only its address (`kmalloc_large`); `None` if no such block is allocated. The
    /// caller must own it: the pool cannot tell owners apart.
    pub(crate) fn claim(&self, zone: usize, index: u32, order: u32) -> Option<RawBlock> {
        let z = self.zone(zone)?;
        (z.allocated_order(index)? == order).then_some(RawBlock { zone, index, order })
    }

    /// Whether a zone is below its low watermark (the reclaim thread should run).
    pub(crate) fn below_low(&self) -> bool {
        self.levels()
            .into_iter()
            .any(|l| matches!(l, Some(Level::Low | Level::Min)))
    }

    /// Pages of zone `z` that are free in the buddy allocator or held for recycling (lock-free
    /// copies; the per-CPU lists aside).
    pub(crate) fn free_or_held(&self, z: usize) -> usize {
        self.zone(z).map_or(0, |zone| {
            zone.free_now()
                .saturating_add(zone.held.load(core::sync::atomic::Ordering::Relaxed))
        })
    }

    /// The zones below their high watermark.
    pub(crate) fn unbalanced(&self) -> [bool; NR_ZONES] {
        self.levels().map(|l| l.is_some_and(|l| l != Level::High))
    }

    /// [`Pool::levels`] with each zone's marks read under its lock (consistent with one
    /// another).
    pub(crate) fn levels_exact(&self) -> [Option<Level>; NR_ZONES] {
        core::array::from_fn(|z| self.zone(z).and_then(Zone::level_exact))
    }

    /// Each zone's level against its watermarks (`None`: no such zone, or no pages).
    pub(crate) fn levels(&self) -> [Option<Level>; NR_ZONES] {
        core::array::from_fn(|z| self.zone(z).and_then(Zone::level))
    }

    /// Whether every zone is at or above its high watermark (the reclaim thread's goal:
    /// Linux's `pgdat_balanced`).
    pub(crate) fn balanced(&self) -> bool {
        self.levels()
            .into_iter()
            .all(|l| l.is_none_or(|l| l == Level::High))
    }

    /// Recycles every held block whose pages are no longer referenced from outside; returns
    /// the pages given back (what the reaper does, at once).
    ///
    /// Context: process context.
    pub(crate) fn reap_held(&self) -> usize {
        (0..NR_ZONES)
            .filter_map(|z| self.zone(z))
            .map(Zone::reap_all_held)
            .sum()
    }

    /// Empties every per-CPU list of every zone; returns the pages given back.
    ///
    /// Context: process context.
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
                        crate::zone::NAMES[z],
                        s.held
                    );
                }
                // Anything else missing is a bug of minimm's: say so loudly.
                if kernel::warn_on!(s.free + s.held != s.managed) {
                    pr_err!(
                        "{}: {} of {} pages not back in the pool at unload\n",
                        crate::zone::NAMES[z],
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
        let actual = crate::zone::classify(start, len).ok_or(EINVAL)?;
        got += block.pages();
        out[actual].push(block, GFP_KERNEL)?;
    }
    Ok(got)
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
pub(crate) mod tests {
    use super::*;
    use kernel::sync::atomic::Atomic;

    /// A pool of its own for a test, of `zone_pages` (the pool's tests and `zone.rs`'s).
    pub(crate) fn pool_of(zone_pages: [usize; NR_ZONES]) -> Result<Arc<Pool>> {
        Arc::pin_init(
            Pool::new(Config {
                zone_pages,
                min_free_kbytes: 0,
                watermark_scale_factor: 10,
            }),
            GFP_KERNEL,
        )
    }

    fn small_pool() -> Result<Arc<Pool>> {
        pool_of([16, 64, 64])
    }

    /// Whether, once the per-CPU lists are drained, every zone has all its pages free and
    /// passes the checker: a test gave everything back.
    pub(crate) fn all_back(pool: &Pool) -> bool {
        pool.drain();
        (0..NR_ZONES).filter_map(|z| pool.zone(z)).all(|zone| {
            let s = zone.snapshot();
            s.free == s.managed && s.pcp_pages == 0 && zone.validate().is_ok()
        })
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
                assert_eq!(crate::zone::classify(start, len), Some(z));
                if z == crate::zone::DMA {
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

    /// A page found from any hint is the page found without one, and the hint left behind
    /// names the chunk that holds it.
    #[test]
    fn page_near_matches_page_from_any_hint() -> Result {
        let pool = small_pool()?;
        for z in 0..NR_ZONES {
            let zone = pool.zone(z).ok_or(EINVAL)?;
            let n = zone.chunks.len();
            for index in 0..zone.managed as u32 {
                let want = zone.page(index).ok_or(EINVAL)?.as_ptr();
                for start in [0, n / 2, n.saturating_sub(1), n, usize::MAX] {
                    let mut hint = start;
                    let got = zone.page_near(index, &mut hint).ok_or(EINVAL)?.as_ptr();
                    assert_eq!(got, want);
                    let c = zone.chunks.get(hint).ok_or(EINVAL)?;
                    assert!(c.index <= index && index - c.index < c.block.pages() as u32);
                }
            }
            let mut hint = 0;
            assert!(zone.page_near(zone.managed as u32, &mut hint).is_none());
        }
        Ok(())
    }

    /// A block's pages are the host pages of its chunk, in order.
    #[test]
    fn block_pages_are_contiguous_host_pages() -> Result {
        let pool = small_pool()?;
        let block = pool.alloc(3, crate::zone::NORMAL, Reserve::Normal)?;
        let first = crate::host_pages::page_to_pfn(block.page(0).ok_or(EINVAL)?.as_ptr());
        for i in 0..block.pages() {
            let p = block.page(i).ok_or(EINVAL)?;
            assert_eq!(crate::host_pages::page_to_pfn(p.as_ptr()), first + i as u64);
        }
        assert!(block.page(block.pages()).is_none());
        Ok(())
    }

    /// A block whose page is still referenced from outside when freed is held, not reused,
    /// and goes back to the buddy allocator once the reference is gone.
    #[test]
    fn referenced_blocks_are_held_then_recycled() -> Result {
        let pool = small_pool()?;
        let block = pool.alloc(1, crate::zone::NORMAL, Reserve::Normal)?;
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

    /// Orders 0..3 go through the per-CPU lists, counted in pages; every order comes back to
    /// its own list; draining restores the zone; order 4 bypasses the lists.
    #[test]
    fn pcp_lists_for_orders_one_to_three() -> Result {
        // Large enough for a batch of 3 and a high mark far above what the test frees.
        let pool = pool_of([16, 64, 16384])?;
        // The host may have answered with DMA32 memory: the zone is the one that serves.
        let mut held = KVec::new();
        for order in 0..4 {
            held.push(
                pool.alloc_raw(order, crate::zone::NORMAL, Reserve::Normal)?,
                GFP_KERNEL,
            )?;
        }
        let z = held.first().ok_or(EINVAL)?.zone;
        assert!(held.iter().all(|b| b.zone == z));
        let zone = pool.zone(z).ok_or(EINVAL)?;
        let s = zone.snapshot();
        // Each order's list refilled (`nr_pcp_alloc`: 3, 2, 2 and 2 blocks with the batch of
        // 3 of a 16384-page zone; the host may give fewer NORMAL pages), one block handed out.
        let batch = zone.batch();
        let refill = |o: usize| if batch <= 1 { 1 } else { (batch >> o).max(2) };
        let refilled: usize = (0..4).map(|o| (refill(o) - 1) << o).sum();
        assert_eq!(s.pcp_pages, refilled);
        let out: usize = 1 + 2 + 4 + 8;
        assert_eq!(s.free + s.pcp_pages + out, s.managed);
        assert!(zone.validate().is_ok());
        for b in held.drain_all() {
            pool.free_raw(b);
        }
        let s = zone.snapshot();
        // Each block went back to its order's list, unless that reached the lists' high mark
        // (not with a 16384-page zone's).
        let high = (0..zone.nr_pcp())
            .filter_map(|cpu| zone.pcp_info(cpu))
            .map(|p| p.high)
            .min()
            .unwrap_or(0);
        if refilled + out < high {
            assert_eq!(s.pcp_pages, refilled + out);
        }
        assert_eq!(s.free + s.pcp_pages, s.managed);
        let blocks: usize = (0..zone.nr_pcp())
            .filter_map(|cpu| zone.pcp_info(cpu))
            .map(|p| {
                p.blocks
                    .iter()
                    .enumerate()
                    .map(|(o, n)| n << o)
                    .sum::<usize>()
            })
            .sum();
        // count is the pages of every order's blocks
        assert_eq!(blocks, s.pcp_pages);
        assert!(zone.validate().is_ok());
        let big = pool.alloc_raw(4, crate::zone::NORMAL, Reserve::Normal)?;
        // order 4 has no list
        assert_eq!(zone.snapshot().pcp_pages, s.pcp_pages);
        pool.free_raw(big);
        assert_eq!(pool.drain(), s.pcp_pages);
        let s = zone.snapshot();
        assert_eq!((s.free, s.pcp_pages), (s.managed, 0));
        Ok(())
    }

    fn empty_slots(n: usize) -> Result<KVec<Option<RawBlock>>> {
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            v.push(None, GFP_KERNEL)?;
        }
        Ok(v)
    }

    /// The bulk API checks the watermark once for the whole batch: a batch that would take the
    /// zone down to its low watermark goes to the next zone; one that no zone can give gets
    /// one page, reported as a count; slots filled before are kept.
    #[test]
    fn bulk_honours_the_watermark_once_and_reports_partial_success() -> Result {
        use crate::zone::{Watermarks, NORMAL};
        let pool = small_pool()?;
        // The two highest zones with pages (the host may have answered NORMAL requests with
        // DMA32 memory): `top` serves NORMAL requests first, `next` after it.
        let mut populated = (0..NR_ZONES)
            .rev()
            .filter(|&z| pool.zone(z).is_some_and(|zone| zone.managed() > 0));
        let (t, n) = (
            populated.next().ok_or(EINVAL)?,
            populated.next().ok_or(EINVAL)?,
        );
        let top = pool.zone(t).ok_or(EINVAL)?;
        // A batch of 8 leaves `top` just above low; 9 would not.
        let fits = 8;
        let low = top.managed() - fits - 1;
        top.set_watermarks(Watermarks {
            min: low - 1,
            low,
            high: low + 1,
        })?;
        pool.drain();
        let free = top.snapshot().free;
        assert_eq!(free, top.managed());
        let mut out = empty_slots(fits)?;
        assert_eq!(pool.alloc_bulk(NORMAL, Reserve::Normal, &mut out), fits);
        assert!(out
            .iter()
            .all(|b| matches!(b, Some(b) if b.zone == t && b.order == 0)));
        let s = top.snapshot();
        assert_eq!(s.free + s.pcp_pages + fits, s.managed);
        assert!(top.validate().is_ok());
        pool.free_bulk(&mut out);
        assert!(out.iter().all(|b| b.is_none()));
        pool.drain();
        assert_eq!(top.snapshot().free, free);
        // One page more and `top` refuses the batch: `next` gives it, `top` nothing.
        let mut out = empty_slots(fits + 1)?;
        assert_eq!(pool.alloc_bulk(NORMAL, Reserve::Normal, &mut out), fits + 1);
        assert!(out.iter().all(|b| matches!(b, Some(b) if b.zone == n)));
        assert_eq!(top.snapshot().free, free);
        pool.free_bulk(&mut out);
        // More than any zone can give: one page, the usual way.
        let mut out = empty_slots(200)?;
        assert_eq!(pool.alloc_bulk(NORMAL, Reserve::Normal, &mut out), 1);
        // Slots filled before are kept and counted; only the empty ones are filled.
        let mut small = empty_slots(4)?;
        if let (Some(a), Some(b)) = (small.get_mut(1), out.iter_mut().find(|b| b.is_some())) {
            *a = b.take();
        }
        assert_eq!(pool.alloc_bulk(NORMAL, Reserve::Normal, &mut small), 4);
        pool.free_bulk(&mut small);
        pool.free_bulk(&mut out);
        assert!(all_back(&pool));
        Ok(())
    }

    /// Order 0 goes through the per-CPU list and comes back to it; draining restores the zone.
    #[test]
    fn pcp_refill_and_drain() -> Result {
        let pool = small_pool()?;
        let z = pool.alloc(0, crate::zone::NORMAL, Reserve::Normal)?.zone();
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
