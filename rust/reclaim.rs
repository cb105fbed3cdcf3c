// SPDX-License-Identifier: GPL-2.0

//! Page frame reclaim, the kernel side: what gives pool pages back on demand, cheapest first,
//! in the order of Linux's `drain_all_pages`, `shrink_slab` and the LRU:
//!
//! 1. the per-CPU page lists, drained into the zones;
//! 2. the slab caches: their per-CPU object arrays flushed and their empty slabs given back
//!    (`kmem_cache_shrink` on every cache, the generic ones included);
//! 3. held blocks (pages once referenced from outside, as by a GUP pin) whose references have
//!    dropped: recycled now rather than by the next round of the reaper;
//! 4. unpinned discardable memory ([`Unit`]s: a block is one unit on the lists, an area's
//!    pages are one each), chosen by the clock over each zone's inactive and active lists
//!    (`lru.rs`), from the highest zone down, in passes of falling priority.
//!
//! A discardable area is mapped into the kernel only while pinned: its pages can be purged
//! one by one only if no kernel mapping holds them, and 7.3 exports no call that unmaps one
//! page from a vmap range or maps one back into it (`vunmap_range`, `vmap_pages_range`), so
//! `UNPIN` drops the whole mapping and `PIN` makes it again over the pages, the purged ones
//! replaced.
//!
//! A purge takes the unit's pages back into the pool and zaps every user mapping of them in
//! every process with `unmap_mapping_range` over the buffer's range of the device's offset
//! space (unique module-wide, so it names this buffer's mappings and nothing else); a later
//! access faults into the buffer's fault handler, which answers SIGBUS until the buffer is
//! pinned again.
//!
//! # Reference bits
//!
//! A module cannot read or clear the accessed bits of user page table entries (no exported
//! `folio_referenced`), so the clock learns of accesses the way clock implementations on
//! hardware without reference bits did: by unmapping. A unit's mappings are zapped when it is
//! unpinned and again each time a scan clears its bit; the next access through them faults,
//! and the fault handler maps the pages back and sets the bit. A kernel-side access
//! (`BLOCK_DATA`) sets it too.
//!
//! # Locks
//!
//! A unit's `state` (a mutex) above a zone's `ZoneLru` (a mutex): a unit that changes its place
//! on the lists (unpin, pin, purge, free) takes its state, then its zone's lists. A scan takes
//! the lists alone, isolates units with references to them, drops the lists, and then takes
//! each unit's state in turn (and the lists again under it). Never two units' states, never
//! two zones' lists at once. `unmap_mapping_range` runs under a unit's state (so that no fault
//! maps the pages between the zap and the purge): the state lock is below the mmap lock (the
//! fault handler takes it under the mmap read lock) and above the file's `i_mmap` lock and
//! the page table locks the zap takes, as the kernel orders those.

use core::ptr::null_mut;

use kernel::{
    bindings, new_mutex, new_poll_condvar,
    page::{BorrowedPage, PAGE_SHIFT},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        poll::PollCondVar,
        Arc, Mutex,
    },
};

use crate::{
    lru::{self, Kind, Link, Lru, Scan},
    pool::{Pool, PoolBlock},
    reclaimd::Kswapd,
    vmalloc::Area,
    zone::{Reserve, NR_ZONES},
    Shared,
};

/// Pages a scan looks at per hold of a zone's lists (Linux's `SWAP_CLUSTER_MAX`).
const CLUSTER: usize = 32;

/// Which zones a reclaim is for: those at or below the highest zone of a request (direct
/// reclaim, as `shrink_zones` walks `highest_zoneidx` down), those below their high
/// watermark (the thread), or all (debugfs `reclaim`).
pub(crate) type Zones = [bool; NR_ZONES];

/// Every zone.
pub(crate) const ALL_ZONES: Zones = [true; NR_ZONES];

/// The zones a request of zone `highest` may take pages from.
pub(crate) fn up_to(highest: usize) -> Zones {
    core::array::from_fn(|z| z <= highest)
}

/// The pages each source gave back.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Freed {
    /// From the per-CPU lists.
    pub(crate) pcp: usize,
    /// Empty slabs.
    pub(crate) slab: usize,
    /// Held blocks recycled.
    pub(crate) held: usize,
    /// Discardable blocks purged.
    pub(crate) purged: usize,
}

impl Freed {
    /// All pages given back.
    pub(crate) fn total(&self) -> usize {
        self.pcp
            .saturating_add(self.slab)
            .saturating_add(self.held)
            .saturating_add(self.purged)
    }
}

/// Who reclaims: the reclaim thread, or an allocation or a debugfs write in its own context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Kswapd,
    Direct,
}

/// Reclaim's event counters (debugfs `vmstat`), in pages, by Linux's names.
pub(crate) struct Counters {
    /// Pages the clock looked at: by the thread (`pgscan_kswapd`), in an allocation's or a
    /// debugfs write's own context (`pgscan_direct`).
    pub(crate) pgscan_kswapd: Atomic<u64>,
    pub(crate) pgscan_direct: Atomic<u64>,
    /// Pages purged by each (`pgsteal_kswapd`, `pgsteal_direct`).
    pub(crate) pgsteal_kswapd: Atomic<u64>,
    pub(crate) pgsteal_direct: Atomic<u64>,
    /// Times the thread, about to sleep, was woken again during its short nap
    /// (`kswapd_low_wmark_hit_quickly`) or found a zone below high after it
    /// (`kswapd_high_wmark_hit_quickly`).
    pub(crate) low_hit_quickly: Atomic<u64>,
    pub(crate) high_hit_quickly: Atomic<u64>,
    pub(crate) pgactivate: Atomic<u64>,
    pub(crate) pgdeactivate: Atomic<u64>,
    pub(crate) pgrotated: Atomic<u64>,
    /// Slabs the caches had when reclaim shrank them (Linux's `slabs_scanned` counts the
    /// objects its shrinkers scan; a minimm cache's shrink looks at its slabs).
    pub(crate) slabs_scanned: Atomic<u64>,
    /// Pages purged since load.
    pub(crate) purged: Atomic<u64>,
    /// Pages of unpinned discardable blocks that still have them (a gauge).
    pub(crate) unpinned: Atomic<usize>,
    /// Allocations that reclaimed before they could go on, by the highest zone they asked for
    /// (`allocstall_dma`, `allocstall_dma32`, `allocstall_normal`).
    pub(crate) allocstall: [Atomic<u64>; NR_ZONES],
}

impl Counters {
    fn new() -> Self {
        Self {
            pgscan_kswapd: Atomic::new(0),
            pgscan_direct: Atomic::new(0),
            pgsteal_kswapd: Atomic::new(0),
            pgsteal_direct: Atomic::new(0),
            low_hit_quickly: Atomic::new(0),
            high_hit_quickly: Atomic::new(0),
            pgactivate: Atomic::new(0),
            pgdeactivate: Atomic::new(0),
            pgrotated: Atomic::new(0),
            slabs_scanned: Atomic::new(0),
            purged: Atomic::new(0),
            unpinned: Atomic::new(0),
            allocstall: [const { Atomic::new(0) }; NR_ZONES],
        }
    }

    fn count(&self, s: &Scan, who: Who) {
        match who {
            Who::Kswapd => &self.pgscan_kswapd,
            Who::Direct => &self.pgscan_direct,
        }
        .fetch_add(s.scanned as u64, Relaxed);
        self.pgactivate.fetch_add(s.activated as u64, Relaxed);
        self.pgdeactivate.fetch_add(s.deactivated as u64, Relaxed);
        self.pgrotated.fetch_add(s.rotated as u64, Relaxed);
    }
}

/// One zone's lists and, for each unit on them, the unit (indexed like the links).
///
/// # Invariants
///
/// `owners[i]` is `Some` exactly when link `i` heads a unit on a list or isolated: the
/// [`Unit`] and which of its slots the link is.
struct ZoneLru {
    lru: Lru<KVVec<Link>>,
    owners: KVVec<Option<(Arc<Unit>, u32)>>,
}

/// The watermark events (`MINIMM_IOC_WMARK_EVENTS`, `POLLPRI`): every zone's state as last
/// seen and the crossings counted since load.
#[derive(Default)]
pub(crate) struct Events {
    watch: [lru::Watch; NR_ZONES],
    /// Events since load, all zones and kinds: the sequence each file's cursor follows.
    pub(crate) seq: u64,
    /// Per kind (`lru::Crossing` order: below low, below min, above high), per zone.
    pub(crate) counts: [[u64; NR_ZONES]; 3],
    /// The latest event's zone and kind.
    pub(crate) last: (usize, u32),
}

/// Reclaim's lists, one set per zone, its counters, the reclaim thread's wait and the
/// watermark events.
#[pin_data]
pub(crate) struct Reclaim {
    pool: Arc<Pool>,
    zones: KVec<Pin<KBox<Mutex<ZoneLru>>>>,
    pub(crate) counters: Counters,
    #[pin]
    pub(crate) kswapd: Kswapd,
    /// Each zone's level as `events` last saw it (`lru::Level` as a number): a look that
    /// finds every zone where it was takes no lock.
    seen_levels: [Atomic<u32>; NR_ZONES],
    #[pin]
    pub(crate) events: Mutex<Events>,
    /// Where `poll` waits for the next event.
    #[pin]
    pub(crate) poll: PollCondVar,
    /// What the last debugfs `reclaim` write gave back, by source (reading the file).
    #[pin]
    pub(crate) last: Mutex<Option<Freed>>,
}

impl Reclaim {
    /// Empty lists for every zone of `pool` (a link and an owner slot per page).
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(pool: &Arc<Pool>) -> Result<Arc<Self>> {
        let mut zones = KVec::with_capacity(NR_ZONES, GFP_KERNEL)?;
        for z in 0..NR_ZONES {
            let pages = pool.zone(z).map_or(0, |zone| zone.managed());
            let links = KVVec::from_elem(Link::default(), pages, GFP_KERNEL)?;
            let mut owners = KVVec::with_capacity(pages, GFP_KERNEL)?;
            for _ in 0..pages {
                owners.push_within_capacity(None).map_err(|_| ENOMEM)?;
            }
            // INVARIANT: no unit yet, no owner.
            let lists = ZoneLru {
                lru: Lru::new(links),
                owners,
            };
            zones.push(
                KBox::pin_init(new_mutex!(lists, "minimm_zone_lru"), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        Arc::pin_init(
            pin_init!(Self {
                pool: pool.clone(),
                zones,
                counters: Counters::new(),
                kswapd <- Kswapd::new(),
                seen_levels: [const { Atomic::new(lru::Level::High as u32) }; NR_ZONES],
                events <- new_mutex!(Events::default(), "minimm_wmark_events"),
                poll <- new_poll_condvar!("minimm_wmark_poll"),
                last <- new_mutex!(None, "minimm_reclaim_last"),
            }),
            GFP_KERNEL,
        )
    }

    fn lists(&self, zone: usize) -> Option<&Mutex<ZoneLru>> {
        self.zones.get(zone).map(|z| &**z)
    }

    /// Each zone's lists through their checker (`Lru::validate`), and every listed unit's
    /// owner slot filled (the type invariant).
    ///
    /// Context: process context.
    pub(crate) fn validate(&self) -> [Result<(), &'static str>; NR_ZONES] {
        core::array::from_fn(|z| {
            let Some(lists) = self.lists(z) else {
                return Ok(());
            };
            let g = lists.lock();
            g.lru.validate()?;
            for kind in [Kind::Inactive, Kind::Active] {
                for (i, _) in g.lru.iter(kind) {
                    if g.owners.get(i as usize).is_none_or(Option::is_none) {
                        return Err("a listed unit without its owner");
                    }
                }
            }
            Ok(())
        })
    }

    /// Whether reclaim could find `pages` pages for a request of zone `highest`: the zones it
    /// may use have that many free, held for recycling or on the reclaim lists (the slab
    /// caches aside), watermarks aside. Linux's `should_reclaim_retry` likewise stops when
    /// free and reclaimable pages together could not serve the request. Lock-free but for
    /// each zone's lists.
    pub(crate) fn could_satisfy(&self, highest: usize, pages: usize) -> bool {
        let mut have = 0usize;
        for z in 0..=highest.min(NR_ZONES - 1) {
            let (inactive, active) = self.sizes(z);
            have = have
                .saturating_add(self.pool.free_or_held(z))
                .saturating_add(inactive)
                .saturating_add(active);
        }
        have >= pages
    }

    /// Wakes the reclaim thread if a zone is below its low watermark (after an allocation, as
    /// the page allocator calls `wakeup_kswapd`). The watermark events are the caller's to
    /// note ([`Reclaim::note_levels`]: the device does after every command).
    ///
    /// Context: process context.
    pub(crate) fn wake_if_low(&self) {
        if self.pool.below_low() {
            self.kswapd.wake();
        }
    }

    /// Counts the watermark crossings since the last look (see [`Events`]).
    ///
    /// Context: process context.
    pub(crate) fn note_levels(&self) {
        let levels = self.pool.levels();
        let changed = levels
            .iter()
            .zip(&self.seen_levels)
            .any(|(l, seen)| l.is_some_and(|l| l as u32 != seen.load(Relaxed)));
        if !changed {
            return;
        }
        let mut g = self.events.lock();
        let mut new = 0u64;
        // Read again under the lock, so that two lookers count each crossing once, and with
        // each zone's marks read whole under its lock (a `watermarks` write in between must
        // not look like a crossing).
        for (z, level) in self.pool.levels_exact().into_iter().enumerate() {
            let (Some(level), Some(seen)) = (level, self.seen_levels.get(z)) else {
                continue;
            };
            let Some(watch) = g.watch.get_mut(z) else {
                continue;
            };
            let mut last = None;
            let mut counted = [0u64; 3];
            for c in watch.step(level) {
                counted[c as usize] += 1;
                last = Some(c as u32);
            }
            seen.store(level as u32, Relaxed);
            for (kind, n) in counted.iter().enumerate() {
                if let Some(slot) = g.counts.get_mut(kind).and_then(|k| k.get_mut(z)) {
                    *slot += n;
                }
                new += n;
            }
            if let Some(kind) = last {
                g.last = (z, kind);
            }
        }
        g.seq += new;
        drop(g);
        if new > 0 {
            self.poll.notify_all();
            if self.pool.balanced() {
                // Back above high everywhere: a thread that gave up listens again.
                self.kswapd.reset_failures();
            }
        }
    }

    /// Pages on a zone's inactive and active lists.
    ///
    /// Context: process context.
    pub(crate) fn sizes(&self, zone: usize) -> (usize, usize) {
        self.lists(zone).map_or((0, 0), |l| {
            let g = l.lock();
            (g.lru.pages(Kind::Inactive), g.lru.pages(Kind::Active))
        })
    }

    /// Takes unit `index` off `zone`'s lists (wherever it is, isolated too); returns its
    /// owner reference.
    fn unlist(&self, zone: usize, index: u32) -> Option<Arc<Unit>> {
        let mut g = self.lists(zone)?.lock();
        // Listed (or set aside by a scan): the unit's state said so, under its lock.
        kernel::warn_on!(g.lru.remove(index).is_err());
        g.owners.get_mut(index as usize)?.take().map(|(u, _)| u)
    }

    /// Scans the lists of the zones `zones` names, highest first, in passes of falling
    /// priority, purging unreferenced unpinned units until `target` pages are purged or a
    /// pass at priority 0 is done; returns the pages purged.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn shrink_lists(&self, target: usize, zones: Zones, who: Who) -> usize {
        let mut freed = 0usize;
        lru::priority_loop(
            target,
            |priority| {
                let before = freed;
                for z in (0..NR_ZONES).rev().filter(|&z| zones[z]) {
                    if freed >= target {
                        break;
                    }
                    freed =
                        freed.saturating_add(self.shrink_zone(z, priority, target - freed, who));
                }
                freed - before
            },
            || false,
        );
        freed
    }

    /// One zone's pass at `priority`: the active list aged if the inactive one is low, then
    /// `inactive >> priority` pages of the inactive list scanned, [`CLUSTER`] at a time,
    /// until `want` pages are purged.
    fn shrink_zone(&self, zone: usize, priority: u32, want: usize, who: Who) -> usize {
        let Some(lists) = self.lists(zone) else {
            return 0;
        };
        let (aged, mut left) = lists.lock().lru.begin_pass(priority, PAGE_SHIFT as u32);
        self.counters.count(&aged, who);
        let mut freed = 0;
        while left > 0 && freed < want {
            let nr = left.min(CLUSTER).min(want - freed);
            // The units a chunk looked at: at most `nr` (`Lru::shrink_inactive`).
            let mut seen: [Option<(u32, bool, Arc<Unit>, u32)>; CLUSTER] =
                [const { None }; CLUSTER];
            let mut n = 0;
            let s = {
                let mut g = lists.lock();
                let g = &mut *g;
                let owners = &g.owners;
                g.lru.shrink_inactive(nr, |index, isolated| {
                    let owner = owners.get(index as usize).cloned().flatten();
                    if let (Some(slot), Some((unit, at))) = (seen.get_mut(n), owner) {
                        *slot = Some((index, isolated, unit, at));
                        n += 1;
                    }
                })
            };
            self.counters.count(&s, who);
            if s.scanned == 0 {
                break;
            }
            left = left.saturating_sub(s.scanned);
            for (index, isolated, unit, at) in seen.iter_mut().filter_map(Option::take) {
                if isolated {
                    freed += self.evict(zone, index, &unit, at as usize, who);
                } else {
                    // Kept with its bit cleared: the next access must fault to set it again.
                    unit.rearm(at as usize);
                }
            }
        }
        freed
    }

    /// Purges isolated unit `index` of `zone`, slot `at` of `unit`, if it is still unpinned
    /// with its pages, else puts it back; returns the pages purged.
    fn evict(&self, zone: usize, index: u32, unit: &Arc<Unit>, at: usize, who: Who) -> usize {
        let Some(lists) = self.lists(zone) else {
            return 0;
        };
        let mut st = unit.state.lock();
        let here = st
            .slots
            .get(at)
            .and_then(Option::as_ref)
            .is_some_and(|b| b.zone() == zone && b.index() == index);
        if st.pinned || !here {
            // Pinned or freed since the scan (its remover took the link off), maybe with
            // the block's index given to another unit since: nothing here is ours to touch.
            return 0;
        }
        let owner = {
            let mut g = lists.lock();
            let still = g.lru.link(index).is_some_and(|l| l.isolated());
            let ours = g
                .owners
                .get(index as usize)
                .and_then(Option::as_ref)
                .is_some_and(|(o, slot)| Arc::ptr_eq(o, unit) && *slot as usize == at);
            if !still || !ours {
                // Pinned and unpinned again since the scan: listed afresh, not ours to
                // purge.
                return 0;
            }
            if g.lru.link(index).is_some_and(|l| l.accessed())
                || st.pinning > 0
                || crate::fail::should_fail(crate::fail::Point::ReclaimPurge)
            {
                // Accessed since the scan looked, being pinned (new pages for its purged
                // ones are on their way), or fault injection says it cannot go now: a
                // second chance after all.
                kernel::warn_on!(g.lru.putback(index).is_err());
                return 0;
            }
            kernel::warn_on!(g.lru.evicted(index) != Ok(true));
            g.owners.get_mut(index as usize).and_then(Option::take)
        };
        // Under the state lock: no fault can map the pages again between the zap and the
        // purge (the fault handler takes it), and no PIN or free can run.
        unit.zap(&st, at..at + 1);
        // INVARIANT: purged, so not listed (an unpinned unit has no kernel mapping).
        let block = st.slots.get_mut(at).and_then(Option::take);
        st.purged = true;
        drop(st);
        let pages = unit.slot_pages();
        match who {
            Who::Kswapd => &self.counters.pgsteal_kswapd,
            Who::Direct => &self.counters.pgsteal_direct,
        }
        .fetch_add(pages as u64, Relaxed);
        self.counters.purged.fetch_add(pages as u64, Relaxed);
        self.counters.unpinned.fetch_sub(pages, Relaxed);
        // Back to the pool (or held, if something outside minimm still references a page),
        // with no lock of ours held.
        drop(block);
        drop(owner);
        pages
    }

    /// debugfs `lru`: per zone, each list from head to tail, a line per unit with the buffer's
    /// mmap offset, its pages and its bits (`A` accessed since the last scan, `R` given its
    /// second chance).
    ///
    /// Context: process context.
    pub(crate) fn write_lru(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for z in 0..NR_ZONES {
            let Some(lists) = self.lists(z) else { continue };
            if self.pool.zone(z).is_none_or(|zone| zone.managed() == 0) {
                continue;
            }
            // Copied out under the lock, printed after it (no allocation under the lock).
            let units = {
                let g = lists.lock();
                g.lru.units(Kind::Inactive) + g.lru.units(Kind::Active)
            };
            let Ok(mut rows) =
                KVVec::<(Kind, u64, usize, bool, bool)>::with_capacity(units, GFP_KERNEL)
            else {
                return writeln!(f, "lru: out of memory copying the lists");
            };
            let sizes = {
                let g = lists.lock();
                for kind in [Kind::Inactive, Kind::Active] {
                    for (i, l) in g.lru.iter(kind) {
                        let off = g.owners.get(i as usize).and_then(|o| o.as_ref()).map_or(
                            0,
                            |(u, at)| {
                                u.pgoff.saturating_add(u64::from(*at) << u.order) << PAGE_SHIFT
                            },
                        );
                        if rows
                            .push_within_capacity((
                                kind,
                                off,
                                l.pages(),
                                l.accessed(),
                                l.referenced(),
                            ))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
                [Kind::Inactive, Kind::Active].map(|k| (g.lru.units(k), g.lru.pages(k)))
            };
            for (kind, (units, pages)) in [Kind::Inactive, Kind::Active].into_iter().zip(sizes) {
                writeln!(
                    f,
                    "Node 0, zone {:>8} {} units {} pages {}",
                    crate::zone::NAMES.get(z).copied().unwrap_or("?"),
                    if kind == Kind::Inactive {
                        "inactive"
                    } else {
                        "active"
                    },
                    units,
                    pages
                )?;
                for r in rows.iter().filter(|r| r.0 == kind) {
                    writeln!(
                        f,
                        "  offset {:#x} pages {} {}{}",
                        r.1,
                        r.2,
                        if r.3 { 'A' } else { '-' },
                        if r.4 { 'R' } else { '-' }
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Discardable memory, shared by its buffer and, while it is unpinned, its zones' lists: a
/// block, which is one unit on its zone's lists (as a large folio is one LRU entry), or an
/// area, each of whose pages is a unit of its own (an order-0 block, purged alone).
#[pin_data]
pub(crate) struct Unit {
    #[pin]
    state: Mutex<UnitState>,
    reclaim: Arc<Reclaim>,
    /// The first page of the buffer's range of the offset space, and its pages.
    pgoff: u64,
    pages: usize,
    /// Each slot's order: the block's, or 0 for an area's pages.
    order: u32,
    /// The highest zone the pages may come from (purged ones get new pages from there).
    highest: usize,
    /// An area (a slot per page, mapped into the kernel while pinned), not a block.
    area: bool,
}

/// What a unit's lock guards.
///
/// # Invariants
///
/// While `pinned`, every slot is filled and none is on the lists; an area's `map` maps the
/// slots' pages (in order) exactly while it is pinned. While not `pinned`, every filled slot
/// `i` heads a unit of its zone's lists whose owner is `(this unit, i)`; an empty slot was
/// purged. `mapping` is the address space of the buffer's file while `mapped > 0` (every
/// mapping of a buffer is made through the file that owns it).
struct UnitState {
    /// A pinned area's kernel mapping of the slots' pages; declared before `slots`, so that
    /// it goes first (the area does not own the pages it maps).
    map: Option<Area>,
    /// The pages: the block, or the area's pages in order; `None` where purged.
    slots: KVVec<Option<PoolBlock>>,
    pinned: bool,
    /// PINs making new pages for it, the lock dropped meanwhile: the clock leaves its pages
    /// alone (a direct reclaim of the pin's own must not purge more of the unit it serves).
    pinning: u32,
    /// Purged since it was last pinned.
    purged: bool,
    /// User mappings (VMAs) of the buffer.
    mapped: usize,
    mapping: *mut bindings::address_space,
}

// SAFETY: `mapping` is only used under the unit's lock while a VMA keeps it alive (see the
// invariant); nothing else in the state is tied to a thread.
unsafe impl Send for UnitState {}

/// A unit's pages as the fault handler sees them, under the unit's lock.
pub(crate) struct Pages<'a> {
    slots: &'a [Option<PoolBlock>],
    area: bool,
    whole: bool,
    map: Option<&'a Area>,
}

impl<'a> Pages<'a> {
    /// Page `k` of the buffer, `None` if it was purged (or beyond the buffer).
    pub(crate) fn page(&self, k: usize) -> Option<BorrowedPage<'a>> {
        if self.area {
            self.slots.get(k)?.as_ref()?.page(0)
        } else {
            self.slots.first()?.as_ref()?.page(k)
        }
    }

    /// Whether a fault may map every page of its VMA: not while an area is unpinned, whose
    /// pages are units of their own (each must fault to be seen accessed).
    pub(crate) fn whole(&self) -> bool {
        self.whole
    }

    /// A pinned area's kernel mapping, whose page array the fault handler inserts in
    /// batches.
    pub(crate) fn map(&self) -> Option<&'a Area> {
        self.map
    }
}

impl Unit {
    /// A pinned unit of `block`, a buffer at `pgoff` that asked for zone `highest`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(
        block: PoolBlock,
        pgoff: u64,
        highest: usize,
        reclaim: &Arc<Reclaim>,
    ) -> Result<Arc<Self>> {
        let (pages, order) = (block.pages(), block.order());
        let mut slots = KVVec::with_capacity(1, GFP_KERNEL)?;
        slots
            .push_within_capacity(Some(block))
            .map_err(|_| ENOMEM)?;
        Self::make(None, slots, pgoff, pages, order, highest, reclaim)
    }

    /// A pinned discardable area: its pages `slots` (order-0 blocks, all filled), mapped by
    /// `map`, a buffer at `pgoff` that asked for zone `highest`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new_area(
        map: Area,
        slots: KVVec<Option<PoolBlock>>,
        pgoff: u64,
        highest: usize,
        reclaim: &Arc<Reclaim>,
    ) -> Result<Arc<Self>> {
        if slots
            .iter()
            .any(|s| s.as_ref().is_none_or(|b| b.order() != 0))
            || map.nr_pages() != slots.len()
        {
            // The mapping goes before the pages it maps.
            drop(map);
            drop(slots);
            return Err(EINVAL);
        }
        let pages = slots.len();
        Self::make(Some(map), slots, pgoff, pages, 0, highest, reclaim)
    }

    fn make(
        map: Option<Area>,
        slots: KVVec<Option<PoolBlock>>,
        pgoff: u64,
        pages: usize,
        order: u32,
        highest: usize,
        reclaim: &Arc<Reclaim>,
    ) -> Result<Arc<Self>> {
        let area = map.is_some();
        // INVARIANT: pinned, every slot filled (the callers' checks), an area mapped.
        let state = UnitState {
            map,
            slots,
            pinned: true,
            pinning: 0,
            purged: false,
            mapped: 0,
            mapping: null_mut(),
        };
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(state, "minimm_unit"),
                reclaim: reclaim.clone(),
                pgoff,
                pages,
                order,
                highest,
                area,
            }),
            GFP_KERNEL,
        )
    }

    /// Pages in all.
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Whether this is an area's (a page per slot), not a block's.
    pub(crate) fn is_area(&self) -> bool {
        self.area
    }

    /// Pages in one slot.
    fn slot_pages(&self) -> usize {
        1 << self.order
    }

    /// The slot holding page `k` of the buffer.
    fn slot_of(&self, k: usize) -> usize {
        if self.area {
            k
        } else {
            0
        }
    }

    /// Zaps every user mapping of the slots `slots` (their pages fault in again at the next
    /// access).
    fn zap(&self, st: &UnitState, slots: core::ops::Range<usize>) {
        if st.mapped == 0 || st.mapping.is_null() || slots.is_empty() {
            return;
        }
        let first = self
            .pgoff
            .checked_add((slots.start * self.slot_pages()) as u64);
        let (Some(Ok(begin)), Ok(len)) = (
            first.map(|p| i64::try_from(p << PAGE_SHIFT)),
            i64::try_from(slots.len() * (self.slot_pages() << PAGE_SHIFT)),
        ) else {
            return;
        };
        // SAFETY: While `mapped > 0` a VMA of the buffer holds its file, whose address space
        // `mapping` is (type invariant of `UnitState`); zapping a range of it is always
        // allowed, and the lock order above permits it under the unit's state.
        unsafe { bindings::unmap_mapping_range(st.mapping, begin, len, 1) };
    }

    /// After a scan cleared slot `slot`'s bit: zaps its mappings, so that the next access is
    /// seen.
    fn rearm(&self, slot: usize) {
        let st = self.state.lock();
        if !st.pinned && st.slots.get(slot).is_some_and(Option::is_some) {
            self.zap(&st, slot..slot + 1);
        }
    }

    /// Sets slot `slot`'s reference bit if it is on the lists.
    fn accessed(&self, st: &UnitState, slot: usize) {
        if st.pinned {
            return;
        }
        if let Some(b) = st.slots.get(slot).and_then(Option::as_ref) {
            if let Some(lists) = self.reclaim.lists(b.zone()) {
                lists.lock().lru.mark_accessed(b.index());
            }
        }
    }

    /// Puts every filled slot on its zone's lists; on a failure (a bug: the indexes are live
    /// blocks' own) takes the ones it put back off. Returns the pages listed.
    fn list_all(self: &Arc<Self>, st: &UnitState) -> Result<usize> {
        let mut listed = 0usize;
        for (i, b) in st.slots.iter().enumerate() {
            let Some(b) = b else { continue };
            let added = (|| -> Result {
                let lists = self.reclaim.lists(b.zone()).ok_or(EINVAL)?;
                let mut guard = lists.lock();
                let g = &mut *guard;
                let slot = g.owners.get_mut(b.index() as usize).ok_or(EINVAL)?;
                if slot.is_some() || g.lru.add(b.index(), b.order()).is_err() {
                    return Err(EINVAL);
                }
                *slot = Some((self.clone(), i as u32));
                Ok(())
            })();
            if let Err(e) = added {
                kernel::warn_on!(true);
                for b in st.slots.iter().take(i).flatten() {
                    drop(self.reclaim.unlist(b.zone(), b.index()));
                }
                return Err(e);
            }
            listed += b.pages();
        }
        Ok(listed)
    }

    /// `MINIMM_IOC_UNPIN`: the contents may be purged from now on (an area's kernel mapping
    /// goes: it is made again at the next pin).
    ///
    /// Context: process context, may sleep.
    pub(crate) fn unpin(self: &Arc<Self>) -> Result {
        let mut st = self.state.lock();
        if !st.pinned {
            return Ok(());
        }
        let listed = self.list_all(&st)?;
        // INVARIANT: unpinned, every slot (all filled while pinned) listed, no mapping. The
        // area's mapping goes under the lock, before any purge can free a page it maps.
        st.pinned = false;
        let map = st.map.take();
        drop(map);
        self.reclaim.counters.unpinned.fetch_add(listed, Relaxed);
        // Accesses from now on must fault to be seen.
        self.zap(&st, 0..st.slots.len());
        drop(st);
        // Something new to reclaim: the thread, if it gave up, listens again.
        self.reclaim.kswapd.reset_failures();
        Ok(())
    }

    /// Takes every filled slot but those of `skip` (sorted; slots filled since, not listed)
    /// off its zone's lists: they stop counting as unpinned.
    fn take_off_lists(&self, st: &UnitState, skip: &[usize]) {
        let mut pages = 0usize;
        for (i, b) in st.slots.iter().enumerate() {
            let Some(b) = b else { continue };
            if skip.binary_search(&i).is_ok() {
                continue;
            }
            // `self` is borrowed from a live reference: the lists' is never the last one.
            if self.reclaim.unlist(b.zone(), b.index()).is_some() {
                pages += b.pages();
            }
        }
        self.reclaim.counters.unpinned.fetch_sub(pages, Relaxed);
    }

    /// PIN reported a purge that could not reach user space (its struct became unwritable):
    /// the next PIN reports it again.
    pub(crate) fn unreport_purge(&self) {
        self.state.lock().purged = true;
    }

    /// `MINIMM_IOC_PIN`: in use again, never purged until unpinned; returns whether it was
    /// purged meanwhile (then its purged pages are new and zeroed). An area is mapped into
    /// the kernel again.
    ///
    /// Errors: `ENOMEM` (purged, and no zone could give new pages, even after direct reclaim;
    /// or no kernel mapping for an area): it stays unpinned, as it was.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn pin(self: &Arc<Self>, shared: &Shared) -> Result<bool> {
        let mut fresh: KVVec<PoolBlock> = KVVec::new();
        // Whether this call counts in `pinning` (while it makes pages with the lock dropped).
        let mut counted = false;
        loop {
            let mut st = self.state.lock();
            if core::mem::take(&mut counted) {
                st.pinning = st.pinning.saturating_sub(1);
            }
            if st.pinned {
                // A purge an earlier PIN could not report (its struct became unwritable).
                return Ok(core::mem::replace(&mut st.purged, false));
            }
            let holes = st.slots.iter().filter(|s| s.is_none()).count();
            if holes <= fresh.len() {
                let r = self.pin_locked(&mut st, shared, &mut fresh);
                drop(st);
                // Pages made for purges that a concurrent pin served first go back.
                drop(fresh);
                return r;
            }
            st.pinning = st.pinning.saturating_add(1);
            counted = true;
            drop(st);
            // Purged: new pages, made outside the lock (the allocation may reclaim).
            if let Err(e) = self.make_pages(shared, holes - fresh.len(), &mut fresh) {
                let mut st = self.state.lock();
                st.pinning = st.pinning.saturating_sub(1);
                return Err(e);
            }
        }
    }

    /// Adds `need` new zeroed slots' worth of pages to `fresh`, with direct reclaim.
    ///
    /// Context: process context, may sleep; no lock of minimm's held.
    fn make_pages(&self, shared: &Shared, need: usize, fresh: &mut KVVec<PoolBlock>) -> Result {
        let opts = crate::vmalloc::Options {
            highest: self.highest,
            class: Reserve::Normal,
            large: false,
            zero: true,
        };
        let pages = need.checked_mul(self.slot_pages()).ok_or(ENOMEM)?;
        let made = with_direct_reclaim(
            shared,
            self.highest,
            pages,
            true,
            || -> Result<KVVec<Option<PoolBlock>>> {
                if self.area {
                    shared.vmalloc.take_loose(need, opts)
                } else {
                    let b = self
                        .reclaim
                        .pool
                        .alloc(self.order, self.highest, Reserve::Normal)?;
                    // SAFETY: The block was just allocated; nothing else can reach it.
                    unsafe { b.zero()? };
                    let mut v = KVVec::with_capacity(1, GFP_KERNEL)?;
                    v.push_within_capacity(Some(b)).map_err(|_| ENOMEM)?;
                    Ok(v)
                }
            },
        )?;
        fresh.reserve(made.len(), GFP_KERNEL)?;
        for b in made.into_iter().flatten() {
            // Within the capacity just reserved.
            fresh.push_within_capacity(b).map_err(|_| ENOMEM)?;
        }
        Ok(())
    }

    /// The pin itself, under the lock, with `fresh` holding a new page for every hole: the
    /// holes filled, an area mapped, then (nothing can fail any more) every other slot taken
    /// off the lists. On a failure the unit is as it was, the new pages back in `fresh`.
    fn pin_locked(
        self: &Arc<Self>,
        st: &mut UnitState,
        shared: &Shared,
        fresh: &mut KVVec<PoolBlock>,
    ) -> Result<bool> {
        // Where the holes were (allocated before anything changes).
        let mut holes = KVVec::<usize>::with_capacity(fresh.len(), GFP_KERNEL)?;
        for (i, slot) in st.slots.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = fresh.pop();
                // Within the capacity: no more holes than new pages.
                let _ = holes.push_within_capacity(i);
            }
        }
        if self.area {
            match shared
                .vmalloc
                .map_borrowed(&st.slots, self.highest, "vm_pin")
            {
                Ok(map) => st.map = Some(map),
                Err(e) => {
                    for &i in holes.iter() {
                        if let Some(b) = st.slots.get_mut(i).and_then(Option::take) {
                            // Within the capacity `fresh` had.
                            drop(fresh.push_within_capacity(b));
                        }
                    }
                    return Err(e);
                }
            }
        }
        // The slots that were not holes are the listed ones.
        self.take_off_lists(st, &holes);
        // INVARIANT: pinned: every slot filled, none listed, an area mapped.
        st.pinned = true;
        Ok(core::mem::replace(&mut st.purged, false))
    }

    /// Fills the buffer with the pattern of `seed` (`BLOCK_DATA`), counting an access to
    /// every page; `ENODATA` once purged. A pinned area is written through its kernel
    /// mapping, an unpinned one page by page (the same words at the same offsets).
    ///
    /// # Safety
    ///
    /// As for [`PoolBlock::fill`]: the contents are the caller's to change, and the kernel
    /// touches them nowhere else meanwhile.
    ///
    /// Context: process context, may sleep.
    pub(crate) unsafe fn fill(&self, seed: u64) -> Result {
        let st = self.whole_data()?;
        if let Some(map) = &st.map {
            let word =
                |k: usize| u64::from_ne_bytes(crate::pattern::word(seed, k as u64).to_le_bytes());
            // SAFETY: By the caller's obligation; the map is live while the lock is held.
            unsafe { map.write_words(word) };
            return Ok(());
        }
        let words = (self.slot_pages() << PAGE_SHIFT) / 8;
        for (i, b) in st.slots.iter().enumerate() {
            let b = b.as_ref().ok_or(ENODATA)?;
            // SAFETY: By the caller's obligation; the lock keeps the pages.
            unsafe { b.fill_at(seed, (i * words) as u64)? };
        }
        Ok(())
    }

    /// The 64-bit FNV-1a checksum of the buffer's bytes, counting an access to every page;
    /// `ENODATA` once purged.
    ///
    /// # Safety
    ///
    /// As for [`PoolBlock::checksum`].
    ///
    /// Context: process context, may sleep.
    pub(crate) unsafe fn checksum(&self) -> Result<u64> {
        let st = self.whole_data()?;
        let mut h = crate::pattern::Fnv1a::new();
        if let Some(map) = &st.map {
            // SAFETY: By the caller's obligation; the map is live while the lock is held.
            unsafe { map.read_words(|w| h.update(&w.to_ne_bytes())) };
            return Ok(h.finish());
        }
        for b in st.slots.iter() {
            // SAFETY: By the caller's obligation; the lock keeps the pages.
            unsafe { b.as_ref().ok_or(ENODATA)?.checksum_into(&mut h)? };
        }
        Ok(h.finish())
    }

    /// The state, locked, if no page was purged (`ENODATA`), every page counted accessed.
    fn whole_data(&self) -> Result<kernel::sync::MutexGuard<'_, UnitState>> {
        let st = self.state.lock();
        if st.slots.iter().any(Option::is_none) {
            return Err(ENODATA);
        }
        for slot in 0..st.slots.len() {
            self.accessed(&st, slot);
        }
        Ok(st)
    }

    /// The fault handler's view of page `k`'s fault: runs `f` with the unit's pages (`None`
    /// if page `k` was purged), the state locked so that no purge runs meanwhile, counting
    /// the access to page `k`'s slot.
    ///
    /// Context: process context, under the mmap read lock.
    pub(crate) fn fault<R>(&self, k: usize, f: impl FnOnce(Option<&Pages<'_>>) -> R) -> R {
        let st = self.state.lock();
        let slot = self.slot_of(k);
        if st.slots.get(slot).is_none_or(Option::is_none) {
            return f(None);
        }
        self.accessed(&st, slot);
        f(Some(&Pages {
            slots: &st.slots,
            area: self.area,
            whole: !self.area || st.pinned,
            map: st.map.as_ref(),
        }))
    }

    /// A VMA of the buffer now exists (`mapping`: its file's address space).
    pub(crate) fn mapped(&self, mapping: *mut bindings::address_space) {
        let mut st = self.state.lock();
        st.mapped += 1;
        // INVARIANT: every VMA of a buffer maps it through the one file that owns it.
        st.mapping = mapping;
    }

    /// A VMA of the buffer is gone.
    pub(crate) fn unmapped(&self) {
        let mut st = self.state.lock();
        st.mapped = st.mapped.saturating_sub(1);
        if st.mapped == 0 {
            st.mapping = null_mut();
        }
    }

    /// Whether the unit is pinned, and a block's zone and first frame unless purged
    /// (page_owner).
    ///
    /// Context: process context.
    pub(crate) fn status(&self) -> (bool, Option<(usize, u64)>) {
        let st = self.state.lock();
        let at = st.slots.first().and_then(Option::as_ref).and_then(|b| {
            let first = b.page(0)?;
            Some((b.zone(), crate::host_pages::page_to_pfn(first.as_ptr())))
        });
        (st.pinned, at)
    }

    /// An area's pages now, for page_owner: whether it is pinned, and `(first pfn, last pfn,
    /// zone)` per physically contiguous run of its pages not purged, in order.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn runs(&self) -> Result<(bool, KVec<(u64, u64, usize)>)> {
        let st = self.state.lock();
        let mut runs: KVec<(u64, u64, usize)> = KVec::new();
        for b in st.slots.iter().flatten() {
            let Some(p) = b.page(0) else { continue };
            let first = crate::host_pages::page_to_pfn(p.as_ptr());
            let last = first + b.pages() as u64 - 1;
            match runs.last_mut() {
                Some(r) if r.1 + 1 == first && r.2 == b.zone() => r.1 = last,
                _ => runs.push((first, last, b.zone()), GFP_KERNEL)?,
            }
        }
        Ok((st.pinned, runs))
    }

    /// An area's pages per zone and runs now (`VM_INFO`), purged pages not counted.
    ///
    /// Context: process context.
    pub(crate) fn scatter(&self) -> crate::vm_area::Scatter {
        let st = self.state.lock();
        if let Some(map) = &st.map {
            return *map.scatter();
        }
        let mut s = crate::vm_area::Scatter::default();
        for b in st.slots.iter().flatten() {
            if let Some(p) = b.page(0) {
                s.add(crate::host_pages::page_to_pfn(p.as_ptr()), b.zone());
            }
        }
        s
    }

    /// The buffer goes: off the lists, if it was on them.
    ///
    /// Context: process context.
    pub(crate) fn release(&self) {
        let mut st = self.state.lock();
        if !st.pinned {
            self.take_off_lists(&st, &[]);
        }
        // INVARIANT: none listed; the slots may have holes, but nothing pins a unit whose
        // buffer is gone.
        st.pinned = true;
    }
}

/// Gives pages back to the zones' free lists, source by source as above, until `target` pages
/// came back or every source was tried (the cheap sources are always tried whole: the counts
/// say what came back). The reclaim thread starts with the slab caches.
///
/// Context: process context, may sleep.
pub(crate) fn reclaim(shared: &Shared, target: usize, zones: Zones, who: Who) -> Freed {
    // The thread does not drain the per-CPU lists first: Linux's kswapd leaves them to
    // direct reclaim (`drain_all_pages` when an allocation still fails).
    let mut f = Freed {
        pcp: if who == Who::Direct {
            shared.pool.drain()
        } else {
            0
        },
        ..Freed::default()
    };
    if f.total() < target {
        // A cache list that cannot be copied (no memory) leaves the slabs alone.
        if let Ok(caches) = shared.caches.all() {
            for c in caches.iter() {
                let slabs = c.stats().num_slabs;
                shared
                    .reclaim
                    .counters
                    .slabs_scanned
                    .fetch_add(slabs as u64, Relaxed);
                f.slab = f.slab.saturating_add(c.shrink());
            }
        }
    }
    if f.total() < target {
        f.held = shared.pool.reap_held();
    }
    if f.total() < target {
        f.purged = shared.reclaim.shrink_lists(target - f.total(), zones, who);
    }
    if f.slab > 0 || f.held > 0 || f.purged > 0 {
        // What the caches, the quarantine and the purges gave back went through the per-CPU
        // lists (a free of order 0 to 3 does); drained again, it reaches the zones' free
        // lists, where the watermarks count it. Counted once, above.
        shared.pool.drain();
    }
    f
}

/// Runs the allocation `alloc`, and when it fails for want of memory, reclaims and runs it
/// again: Linux's direct reclaim, for a request that may sleep (`may_reclaim`: not
/// `MINIMM_ALLOC_ATOMIC`, which only digs into the reserves, nor `MINIMM_ALLOC_NOWAIT`, which
/// never waits) of `pages` pages from zone `highest` down. Each round reclaims at least
/// [`CLUSTER`] pages' worth (as `SWAP_CLUSTER_MAX`), counted in `allocstall_<zone>`; the
/// rounds end as [`lru::Retry`] says (16 in a row without progress, 64 in all), with the
/// last `ENOMEM`.
///
/// Context: process context, may sleep; no lock of minimm's held.
pub(crate) fn with_direct_reclaim<T>(
    shared: &Shared,
    highest: usize,
    pages: usize,
    may_reclaim: bool,
    mut alloc: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut retry = lru::Retry::default();
    loop {
        let injections = crate::fail::injections();
        match alloc() {
            Err(e)
                if may_reclaim
                    && e == ENOMEM
                    && crate::fail::injections() == injections
                    && shared.reclaim.could_satisfy(highest, pages) =>
            {
                if let Some(c) = shared.reclaim.counters.allocstall.get(highest) {
                    c.fetch_add(1, Relaxed);
                }
                let f = reclaim(shared, pages.max(CLUSTER), up_to(highest), Who::Direct);
                // Progress is what reclaim proper gave back: pages drained from the per-CPU
                // lists (a failed attempt's own, often) are not.
                let freed = f.slab.saturating_add(f.held).saturating_add(f.purged);
                if freed > 0 && shared.pool.balanced() {
                    // Balanced again: the thread listens again (`kswapd_try_clear_hopeless`).
                    shared.reclaim.kswapd.reset_failures();
                }
                if !retry.again(freed) {
                    return Err(e);
                }
            }
            Err(e) if e == ENOMEM => {
                // `NOWAIT` and `ATOMIC` do not reclaim; the thread may (`wakeup_kswapd`), if a
                // zone is below low (an injected failure, or a request larger than reclaim
                // could ever serve, says nothing about the zones).
                shared.reclaim.wake_if_low();
                return Err(e);
            }
            r => {
                shared.reclaim.wake_if_low();
                return r;
            }
        }
    }
}

/// The reclaim thread's pass: reclaims [`CLUSTER`] pages at a time until every zone is at or
/// above its high watermark, nothing more comes back or the thread is to stop; returns
/// whether anything came back.
///
/// Context: process context (the reclaim thread), may sleep.
pub(crate) fn balance(shared: &Shared) -> bool {
    let mut progress = false;
    while !shared.pool.balanced() && !shared.reclaim.kswapd.stopping() {
        // Only the zones short of their high watermark: pages purged elsewhere would not
        // bring them back.
        let short = shared.pool.unbalanced();
        if reclaim(shared, CLUSTER, short, Who::Kswapd).total() == 0 {
            break;
        }
        progress = true;
    }
    progress
}

#[kunit_tests(minimm_reclaim)]
mod tests {
    //! A failed KUnit assertion ends the case's thread without running destructors: each
    //! case gathers what it checks, puts everything back (the thread stopped, the units
    //! released, the shared state dropped), and only then asserts.

    use super::*;
    use crate::{
        pool::tests::all_back,
        slab_cache::{Config, Gfp},
    };

    /// The module's shared state over a pool of its own, of `zone_pages` pages per zone (or
    /// what the host gives: the module itself may hold every DMA page the host has).
    fn shared_of(zone_pages: [usize; NR_ZONES]) -> Result<Arc<Shared>> {
        let params = crate::Params {
            zone_pages,
            file_quota_pages: 1 << 20,
            min_free_kbytes: 0,
            watermark_scale_factor: 10,
            fail_nth_host_borrow: 0,
            slab_debug: 0,
        };
        Shared::new(params, crate::pool::tests::pool_of(zone_pages)?)
    }

    /// The lowest zone of the test's pool with 64 pages: the zone the test fills (DMA32, at
    /// the latest, has them whatever the module holds).
    fn test_zone(sh: &Shared) -> Option<usize> {
        (0..NR_ZONES).find(|&z| sh.pool.zone(z).is_some_and(|zone| zone.managed() >= 64))
    }

    /// A shared state over a pool of 64 pages per zone, and its [`test_zone`]; `ENOSPC`
    /// (the case fails) if none has 64 pages, everything given back.
    fn shared_with_zone() -> Result<(Arc<Shared>, usize)> {
        let sh = shared_of([64, 64, 64])?;
        match test_zone(&sh) {
            Some(z) => Ok((sh, z)),
            None => {
                finish(sh, KVec::new());
                Err(ENOSPC)
            }
        }
    }

    /// Fills zone `z` (and the lower ones, which requests of zone `z` may use) with unpinned
    /// discardable single pages, down to their last reserve page (even an atomic request then
    /// finds nothing); on a failure, releases what it made.
    fn fill(sh: &Shared, z: usize) -> Result<KVec<Arc<Unit>>> {
        let mut units = KVec::new();
        let r = (|| -> Result {
            while let Ok(b) = sh.pool.alloc(0, z, Reserve::Atomic) {
                units.push(Unit::new(b, 0, z, &sh.reclaim)?, GFP_KERNEL)?;
            }
            for u in units.iter() {
                u.unpin()?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => Ok(units),
            Err(e) => {
                for u in units.iter() {
                    u.release();
                }
                Err(e)
            }
        }
    }

    /// Every unit off the lists, the shared state gone; returns whether the lists were
    /// consistent and empty and the pool whole again.
    fn finish(sh: Arc<Shared>, units: KVec<Arc<Unit>>) -> bool {
        for u in units.iter() {
            u.release();
        }
        drop(units);
        let clean = sh.reclaim.counters.unpinned.load(Relaxed) == 0
            && sh.reclaim.validate().iter().all(Result::is_ok);
        let pool = sh.pool.clone();
        drop(sh);
        pool.stop_reaper();
        clean && all_back(&pool)
    }

    /// With a zone full of unpinned pages, an atomic request fails without reclaiming, while
    /// a request that may sleep reclaims directly (`allocstall_<zone>`, `pgsteal_direct`) and
    /// gets its page.
    #[test]
    fn direct_reclaim_serves_what_atomic_cannot() -> Result {
        let (sh, z) = shared_with_zone()?;
        let units = fill(&sh, z)?;
        let c = &sh.reclaim.counters;
        let stalls = c.allocstall[z].load(Relaxed);
        let atomic = with_direct_reclaim(&sh, z, 1, false, || sh.pool.alloc(0, z, Reserve::Atomic));
        let atomic_failed = matches!(atomic, Err(e) if e == ENOMEM);
        let atomic_stalls = c.allocstall[z].load(Relaxed) - stalls;
        let atomic_steal = c.pgsteal_direct.load(Relaxed);
        drop(atomic);
        let sleeping =
            with_direct_reclaim(&sh, z, 1, true, || sh.pool.alloc(0, z, Reserve::Normal));
        let got = sleeping.as_ref().is_ok_and(|b| b.zone() <= z);
        drop(sleeping);
        let stalled = c.allocstall[z].load(Relaxed) > stalls;
        let stolen = c.pgsteal_direct.load(Relaxed);
        let kswapd = c.pgsteal_kswapd.load(Relaxed);
        let filled = units.len();
        let clean = finish(sh, units);
        assert!(filled >= CLUSTER);
        assert!(atomic_failed);
        assert_eq!((atomic_stalls, atomic_steal), (0, 0));
        assert!(got);
        assert!(stalled);
        assert!(stolen > 0);
        assert_eq!(kswapd, 0);
        assert!(clean);
        Ok(())
    }

    /// Reclaim calls every cache's shrink (counted in `slabs_scanned`) before it purges: a
    /// cache whose objects were all freed gives its slabs back, and a small target is met by
    /// them, the unpinned units beside them keeping their pages.
    #[test]
    fn reclaim_shrinks_the_slab_caches_first() -> Result {
        let sh = shared_of([16, 256, 16])?;
        let z = test_zone(&sh).unwrap_or(NR_ZONES - 1);
        let c = sh.caches.create(
            &Config {
                name: b"kunit-reclaim-shrink",
                object_size: 256,
                align: 0,
                flags: 0,
                ctor_seed: 0,
                record: false,
            },
            &sh.pool,
        )?;
        let mut objs = KVec::new();
        let mut units = KVec::new();
        let made = (|| -> Result {
            for _ in 0..200 {
                objs.push(c.alloc(Gfp::KERNEL)?, GFP_KERNEL)?;
            }
            for &o in objs.iter() {
                c.free(o)?;
            }
            for _ in 0..8 {
                let b = sh.pool.alloc(0, z, Reserve::Normal)?;
                units.push(Unit::new(b, 0, z, &sh.reclaim)?, GFP_KERNEL)?;
            }
            for u in units.iter() {
                u.unpin()?;
            }
            Ok(())
        })();
        let slabs = c.stats().num_slabs;
        // The thread's order (no per-CPU drain first): the slab caches, then held blocks,
        // then the clock, each only while the target is not met.
        let f = reclaim(&sh, 1, ALL_ZONES, Who::Kswapd);
        let scanned = sh.reclaim.counters.slabs_scanned.load(Relaxed);
        let kept = units.iter().all(|u| u.status().1.is_some());
        let left = c.stats().num_slabs;
        let destroyed = sh.caches.destroy(&c);
        drop(c);
        let clean = finish(sh, units);
        made?;
        assert!(slabs > 0);
        assert!(f.slab > 0);
        assert!(scanned >= slabs as u64);
        assert_eq!(f.purged, 0);
        assert!(kept);
        assert_eq!(left, 0);
        assert!(destroyed.is_ok());
        assert!(clean);
        Ok(())
    }

    /// The reclaim thread, woken with a zone below its low watermark, purges until every zone
    /// is at or above its high watermark (`pgsteal_kswapd`), and the lists pass their
    /// checker; stopping it (the `Reclaimd` dropped) waits for it.
    #[test]
    fn thread_brings_a_zone_back_to_high() -> Result {
        let (sh, z) = shared_with_zone()?;
        let thread = crate::reclaimd::Reclaimd::start(&sh)?;
        let units = match fill(&sh, z) {
            Ok(u) => u,
            Err(e) => {
                drop(thread);
                assert!(finish(sh, KVec::new()));
                return Err(e);
            }
        };
        let was_low = sh.pool.below_low();
        sh.reclaim.wake_if_low();
        // A bounded wait for the condition, not a timing: up to 3000 naps under emulation.
        for _ in 0..3000 {
            if sh.pool.balanced() {
                break;
            }
            // SAFETY: `msleep` may be called in process context, which a KUnit case is.
            unsafe { bindings::msleep(10) };
        }
        let balanced = sh.pool.balanced();
        let stolen = sh.reclaim.counters.pgsteal_kswapd.load(Relaxed);
        let valid = sh.reclaim.validate().iter().all(Result::is_ok);
        drop(thread);
        let clean = finish(sh, units);
        assert!(was_low);
        assert!(balanced);
        assert!(stolen > 0);
        assert!(valid);
        assert!(clean);
        Ok(())
    }
}
