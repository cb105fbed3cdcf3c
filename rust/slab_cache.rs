// SPDX-License-Identifier: GPL-2.0

//! Slab caches, kernel side: a cache's slabs from the pool, its per-CPU object arrays, its
//! locks, debugging reports, and the module-wide list of caches. The layout and the lists are
//! the pure `crate::slab`.
//!
//! # A cache
//!
//! - **Slabs** are pool blocks of the cache's order, from the highest zone it allows (NORMAL,
//!   or DMA32/DMA for caches made with `MINIMM_SLAB_CACHE_DMA32`/`_DMA`), zeroed, then each
//!   object constructed (with a constructor) or poisoned (with `POISON`), red zones laid (with
//!   `RED_ZONE`). Each new slab starts its objects one colour further on.
//! - **Object to slab**: each page of a slab carries an owner tag in minimm's page table
//!   (`Pool::set_tags`): the cache's id, the slab's colour and its record's index. A free reads
//!   it without a lock (`Pool::tag_of`), so a pointer of another cache, or outside any slab,
//!   or not at an object's start, is caught before anything changes.
//! - **Per-CPU object arrays** (the classic SLAB's `array_cache`): a stack of free objects per
//!   CPU, `limit` deep, refilled and flushed `batchcount` at a time under the node lock. The
//!   common allocation and free touch only the CPU's own array. As the pool's per-CPU lists,
//!   an array's lock is only *tried* on those paths: an interrupt that finds it taken goes to
//!   the node lock (irq-safe) instead. Caches with debugging bypass the arrays (as SLUB's
//!   debug caches bypass its fast paths), so that every allocation and free is checked.
//! - **Empty slabs** beyond `min_partial` go back to the pool when a free empties them;
//!   [`SlabCache::shrink`] flushes the arrays and gives every empty slab back.
//!
//! # Locks
//!
//! 1. `SlabCache::cpu[cpu]` (a `PcpLock`, one lockdep class for every cache's arrays): tried
//!    on the fast paths, waited for only in process context (shrink, statistics, teardown).
//!    Never two at once.
//! 2. `SlabCache::node` (irq-safe spinlock, one class for every cache): the slab records and
//!    lists. Taken under the same cache's array lock, never two caches' at once.
//!
//! The pool's own locks are taken under neither, except that a flush may give an emptied slab
//! back while holding its array lock (the pool's locks are leaves). Nothing allocates under
//! either: the records' storage grows outside the lock (allocate, relock, move).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use kernel::{
    alloc::Flags,
    cpu::nr_cpu_ids,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    static_lock_class,
    sync::{Arc, Mutex, SpinLockIrq},
};

use crate::{
    debugfs::CacheFiles,
    debugfs_file::Dir,
    device::registry::{current_comm, Comm},
    fail::{self, Point},
    pool::{
        pcp_lock::{current_cpu, PcpGuard, PcpLock},
        Pool, RawBlock,
    },
    slab::{self, Damage, FreeError, Freelist, Geometry, Links, SlabRecord, Which},
    slab_mem, uapi,
    zone::Reserve,
};

/// Cache flags (`MINIMM_SLAB_*`).
pub(crate) use uapi::slab_flags as flags;

/// The debugging flags (SLUB's `slab_debug=FZPU`: consistency checks, red zones, poison,
/// owner tracking), which the `slab_debug` module parameter gives every cache.
pub(crate) const DEBUG_FLAGS: u32 =
    flags::RED_ZONE | flags::POISON | flags::CONSISTENCY_CHECKS | flags::STORE_USER;

/// Longest cache name, in bytes.
pub(crate) const MAX_NAME: usize = 31;

/// Slab ids fit in the tag's low 22 bits.
const SLAB_ID_BITS: u32 = 22;
/// Colours fit in the 10 bits above them.
const COLOUR_BITS: u32 = 10;

/// The owner tag of a slab's pages: cache id, colour, slab id.
fn slab_tag(cache: u32, colour: usize, slab: usize) -> u64 {
    (u64::from(cache) << 32) | ((colour as u64) << SLAB_ID_BITS) | slab as u64
}

/// The cache id of an owner tag (0: not a slab page).
pub(crate) fn tag_cache(tag: u64) -> u32 {
    (tag >> 32) as u32
}

/// How an allocation may get memory: its pool reserve, and the flags for host allocations
/// (the records of a new slab).
#[derive(Clone, Copy)]
pub(crate) struct Gfp {
    pub(crate) class: Reserve,
    pub(crate) host: Flags,
}

impl Gfp {
    /// `GFP_KERNEL`: process context.
    pub(crate) const KERNEL: Self = Self {
        class: Reserve::Normal,
        host: GFP_KERNEL,
    };
    /// `GFP_ATOMIC`: any context, the atomic reserve.
    pub(crate) const ATOMIC: Self = Self {
        class: Reserve::Atomic,
        host: GFP_ATOMIC,
    };

    /// The flags of `MINIMM_OBJ_ATOMIC` / `MINIMM_OBJ_NOWAIT`, as for blocks.
    pub(crate) fn from_user(atomic: bool, nowait: bool) -> Self {
        Self {
            // Linux's reserves: __GFP_HIGH alone, or with "cannot block" as GFP_ATOMIC.
            class: match (atomic, nowait) {
                (false, _) => Reserve::Normal,
                (true, false) => Reserve::High,
                (true, true) => Reserve::Atomic,
            },
            host: if nowait { GFP_NOWAIT } else { GFP_KERNEL },
        }
    }
}

/// What a cache is made of.
#[derive(Clone, Copy)]
pub(crate) struct Config<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) object_size: usize,
    pub(crate) align: usize,
    /// `MINIMM_SLAB_*`.
    pub(crate) flags: u32,
    /// With `MINIMM_SLAB_CTOR`: the pattern's seed.
    pub(crate) ctor_seed: u64,
    /// A cache of the module's own records (`record.rs`): no per-CPU arrays, and no empty
    /// slab kept (`min_partial` 0): its slabs hold pool pages only while records live.
    pub(crate) record: bool,
}

/// Whether `name` is a valid cache name: 1..=31 bytes of `[A-Za-z0-9_.-]`, not `.` or `..`
/// (each cache has a directory of that name in debugfs `slab/`).
pub(crate) fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name != b"."
        && name != b".."
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Who allocated or freed an object last (owner tracking, `STORE_USER`).
#[derive(Clone, Copy, Default)]
struct Who {
    pid: i32,
    comm: [u8; 16],
    ts_ns: i64,
}

impl Who {
    fn current() -> Self {
        Self {
            pid: kernel::current!().pid(),
            comm: current_comm(),
            // SAFETY: `ktime_get` may be called in any context once timekeeping is up.
            ts_ns: unsafe { kernel::bindings::ktime_get() },
        }
    }

    fn comm(&self) -> &[u8] {
        let end = self.comm.iter().position(|&c| c == 0).unwrap_or(16);
        self.comm.get(..end).unwrap_or(&[])
    }
}

/// An object's last allocation and free.
#[derive(Clone, Copy, Default)]
struct Track {
    alloc: Who,
    free: Who,
}

/// A slab: a pool block and its bookkeeping.
///
/// # Invariants
///
/// `block` is owned by the cache and lies in the direct map at `base`; when `off` is `None`
/// the free list's `objects` entries are in the slab at `entries` (after the descriptor
/// header at the colour's offset), else in `off`; `free` is the free list's count.
struct Slab {
    block: RawBlock,
    base: usize,
    colour: usize,
    objects: usize,
    entries: usize,
    free: usize,
    /// The free list, for caches whose descriptor is off the slab.
    off: Option<KVec<u16>>,
    /// Owner tracking, one record per object.
    tracks: Option<KVec<Track>>,
}

impl SlabRecord for Slab {
    fn freelist(&mut self) -> (&mut [u16], &mut usize) {
        let entries: &mut [u16] = match &mut self.off {
            Some(v) => v.as_mut_slice(),
            // SAFETY: By the type invariant the entries are in this slab, which the cache owns
            // while this record exists; a `&mut Slab` comes only from the locked node, so
            // nothing else touches them meanwhile. The offset is a multiple of the cache line
            // (colour) plus the 16-byte header: aligned for `u16`.
            None => unsafe { slab_mem::entries_mut(self.entries, self.objects) },
        };
        (entries, &mut self.free)
    }
}

impl Slab {
    /// The address of object `index`.
    fn object(&self, geo: &Geometry, index: usize) -> Option<usize> {
        Some(self.base + geo.object_offset(self.colour, index)?)
    }
}

/// The cache's slabs, under its node lock: the pure core's [`slab::Node`] and counters.
struct Node {
    slabs: slab::Node<Slab, KVec<Option<Slab>>, KVec<Links>>,
    colour_next: usize,
    /// Objects taken out of service by a debugging check.
    damaged: usize,
    alloc_slow: u64,
    free_slow: u64,
    created: u64,
    freed: u64,
}

impl Node {
    /// Takes a free object: its slab id, index and address.
    fn pop(&mut self, geo: &Geometry) -> Option<(usize, usize, usize)> {
        let (id, index) = self.slabs.pop()?;
        let addr = self.slabs.get(id)?.object(geo, index)?;
        Some((id, index, addr))
    }
}

/// One CPU's array of free objects.
struct CpuArray {
    /// Object addresses, at most `limit` (the capacity, allocated once).
    objs: KVec<usize>,
    alloc_fast: u64,
    free_fast: u64,
}

/// Slabs taken off a cache under its locks, given back to the pool after.
struct Release<'a> {
    cache: &'a SlabCache,
    slabs: [Option<Slab>; 4],
}

impl<'a> Release<'a> {
    fn new(cache: &'a SlabCache) -> Self {
        Self {
            cache,
            slabs: [None, None, None, None],
        }
    }

    /// Room for one more.
    fn room(&self) -> bool {
        self.slabs.iter().any(Option::is_none)
    }

    fn add(&mut self, slab: Slab) {
        match self.slabs.iter_mut().find(|s| s.is_none()) {
            Some(s) => *s = Some(slab),
            // Callers check `room` first; a slab that did not fit is given back at once.
            None => self.cache.release(slab),
        }
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        for s in self.slabs.iter_mut() {
            if let Some(slab) = s.take() {
                self.cache.release(slab);
            }
        }
    }
}

/// A cache's counters, as read at one moment.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Stats {
    /// Objects allocated (not counting per-CPU arrays and objects out of service).
    pub(crate) allocated: usize,
    /// Objects off their slabs' free lists (allocated, in arrays, out of service): slabinfo's
    /// `active_objs`.
    pub(crate) active_objs: usize,
    pub(crate) num_objs: usize,
    pub(crate) active_slabs: usize,
    pub(crate) num_slabs: usize,
    pub(crate) partial: usize,
    pub(crate) empty: usize,
    pub(crate) cpu_objects: usize,
    pub(crate) damaged: usize,
    pub(crate) alloc_fast: u64,
    pub(crate) alloc_slow: u64,
    pub(crate) free_fast: u64,
    pub(crate) free_slow: u64,
    pub(crate) created: u64,
    pub(crate) freed: u64,
    pub(crate) errors: u64,
}

/// Why a pointer given to a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadFree {
    /// Not in any slab.
    NotSlab,
    /// In a slab of the cache with this id.
    WrongCache(u32),
    /// Inside an object, not at its start (or in a slab's descriptor or leftover).
    NotObjectStart,
    /// The object is free already.
    AlreadyFree,
}

/// A slab cache.
///
/// # Invariants
///
/// Every slab on `node` belongs to this cache and its pages carry its tag; `limit` is 0 for
/// caches with debugging or without arrays (record caches) and every array's capacity
/// otherwise.
#[pin_data(PinnedDrop)]
pub(crate) struct SlabCache {
    id: u32,
    name: [u8; MAX_NAME],
    name_len: usize,
    geo: Geometry,
    flags: u32,
    ctor: Option<u64>,
    poison: bool,
    red_zone: bool,
    checks: bool,
    store_user: bool,
    /// The highest zone slabs come from.
    highest: usize,
    pool: Arc<Pool>,
    #[pin]
    node: SpinLockIrq<Node>,
    cpu: KVec<Pin<KBox<PcpLock<CpuArray>>>>,
    limit: usize,
    batchcount: usize,
    min_partial: AtomicUsize,
    errors: AtomicU64,
}

/// Linux's `enable_cpucache` array sizes for an object of `size` bytes: (limit, batchcount).
fn array_size(size: usize) -> (usize, usize) {
    let limit = match size {
        s if s > 131_072 => 1,
        s if s > PAGE_SIZE => 8,
        s if s > 1024 => 24,
        s if s > 256 => 54,
        _ => 120,
    };
    (limit, limit.div_ceil(2))
}

/// SLUB's `min_partial`: `ilog2(size) / 2`, between 5 and 10.
fn min_partial_for(size: usize) -> usize {
    let log = usize::BITS - 1 - size.max(1).leading_zeros();
    (log as usize / 2).clamp(5, 10)
}

impl SlabCache {
    /// A new cache with id `id` (unique module-wide, below `u32::MAX`).
    ///
    /// Errors: `EINVAL` for a name, size, alignment or flags the cache cannot have; `ENOMEM`.
    ///
    /// Context: process context, may sleep.
    fn new(
        id: u32,
        cfg: &Config<'_>,
        pool: Arc<Pool>,
    ) -> Result<impl PinInit<Self, Error> + use<>> {
        if !valid_name(cfg.name) || cfg.flags & !flags::VALID != 0 {
            return Err(EINVAL);
        }
        let (dma, dma32) = (
            cfg.flags & flags::CACHE_DMA != 0,
            cfg.flags & flags::CACHE_DMA32 != 0,
        );
        let highest = match (dma, dma32) {
            (true, true) => return Err(EINVAL),
            (true, false) => crate::zone::DMA,
            (false, true) => crate::zone::DMA32,
            (false, false) => crate::zone::NORMAL,
        };
        let red_zone = cfg.flags & flags::RED_ZONE != 0;
        let geo = Geometry::new(
            cfg.object_size,
            cfg.align,
            slab::Options {
                hwcache_align: cfg.flags & flags::HWCACHE_ALIGN != 0,
                red_zone,
            },
            PAGE_SIZE,
            nr_cpu_ids() as usize,
        )
        .map_err(|_| EINVAL)?;
        if geo.colours >= 1 << COLOUR_BITS {
            return Err(EINVAL);
        }
        let ctor = (cfg.flags & flags::CTOR != 0).then_some(cfg.ctor_seed);
        // As SLUB: no poisoning of objects a constructor keeps in their constructed state.
        let poison = cfg.flags & flags::POISON != 0 && ctor.is_none();
        let checks = cfg.flags & flags::CONSISTENCY_CHECKS != 0;
        let store_user = cfg.flags & flags::STORE_USER != 0;
        let debug = poison || red_zone || checks || store_user;
        let (limit, batchcount) = if debug || cfg.record {
            (0, 0)
        } else {
            array_size(geo.slot)
        };
        let min_partial = if cfg.record {
            0
        } else {
            min_partial_for(geo.slot)
        };
        let mut cpu = KVec::with_capacity(nr_cpu_ids() as usize, GFP_KERNEL)?;
        for _ in 0..nr_cpu_ids() {
            let arr = CpuArray {
                objs: KVec::with_capacity(limit, GFP_KERNEL)?,
                alloc_fast: 0,
                free_fast: 0,
            };
            cpu.push(
                KBox::pin_init(
                    PcpLock::new(arr, c"minimm_slab_array", static_lock_class!()),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        let mut name = [0u8; MAX_NAME];
        let name_len = cfg.name.len();
        name.get_mut(..name_len)
            .ok_or(EINVAL)?
            .copy_from_slice(cfg.name);
        let cache_flags = cfg.flags;
        let node = Node {
            slabs: slab::Node::new(KVec::new(), KVec::new(), geo.objects),
            colour_next: 0,
            damaged: 0,
            alloc_slow: 0,
            free_slow: 0,
            created: 0,
            freed: 0,
        };
        // INVARIANT: no slabs yet; `limit` is 0 with debugging or for records, the arrays'
        // capacity otherwise.
        Ok(try_pin_init!(Self {
            id,
            name,
            name_len,
            geo,
            flags: cache_flags,
            ctor,
            poison,
            red_zone,
            checks,
            store_user,
            highest,
            pool,
            node <- kernel::new_spinlock_irq!(node, "minimm_slab_node"),
            cpu,
            limit,
            batchcount,
            min_partial: AtomicUsize::new(min_partial),
            errors: AtomicU64::new(0),
        }))
    }

    /// The cache's id, module-wide.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// The cache's name.
    pub(crate) fn name(&self) -> &str {
        let bytes = self.name.get(..self.name_len).unwrap_or(&[]);
        // Names are checked ASCII at creation.
        core::str::from_utf8(bytes).unwrap_or("?")
    }

    /// The cache's layout.
    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// `MINIMM_SLAB_*` the cache was created with.
    pub(crate) fn flags(&self) -> u32 {
        self.flags
    }

    /// Per-CPU array capacity and batch (0, 0 with debugging).
    pub(crate) fn tunables(&self) -> (usize, usize) {
        (self.limit, self.batchcount)
    }

    /// Empty slabs kept when a free empties one.
    pub(crate) fn min_partial(&self) -> usize {
        self.min_partial.load(Relaxed)
    }

    /// Sets [`SlabCache::min_partial`] (SLUB's writable sysfs `min_partial`); takes effect at
    /// the next free that empties a slab.
    pub(crate) fn set_min_partial(&self, n: usize) {
        self.min_partial.store(n, Relaxed);
    }

    /// Objects in use on partial slabs (SLUB's `objects_partial`).
    pub(crate) fn partial_objects(&self) -> usize {
        let n = self.node.lock();
        n.slabs
            .iter()
            .filter(|&(id, _)| n.slabs.which(id) == Some(Which::Partial))
            .map(|(_, s)| self.geo.objects - s.free)
            .sum()
    }

    /// One number per possible CPU from its array: `pick` gets (objects cached, fast-path
    /// allocations, fast-path frees).
    ///
    /// Context: process context.
    pub(crate) fn per_cpu(
        &self,
        pick: impl Fn((u64, u64, u64)) -> u64,
    ) -> Result<KVec<u64>, core::fmt::Error> {
        let mut out =
            KVec::with_capacity(self.cpu.len(), GFP_KERNEL).map_err(|_| core::fmt::Error)?;
        for arr in self.cpu.iter() {
            let v = {
                let a = arr.lock();
                pick((a.objs.len() as u64, a.alloc_fast, a.free_fast))
            };
            out.push(v, GFP_KERNEL).map_err(|_| core::fmt::Error)?;
        }
        Ok(out)
    }

    /// This CPU's array, if its lock is free.
    #[inline]
    fn this_cpu(&self) -> Option<PcpGuard<'_, CpuArray>> {
        self.cpu.get(current_cpu())?.try_lock()
    }

    /// Allocates an object; returns its address. With `MINIMM_SLAB_CTOR` it is in its
    /// constructed state (or as its last user left it); without, as its last user left it,
    /// or zero (poisoned with `POISON`) if it was never handed out.
    ///
    /// Context: process or softirq context (`Gfp::ATOMIC` there); never sleeps unless
    /// `gfp.host` may (the records of a new slab).
    #[inline(always)]
    pub(crate) fn alloc(&self, gfp: Gfp) -> Result<usize> {
        if self.limit > 0 {
            if let Some(mut a) = self.this_cpu() {
                if let Some(p) = a.objs.pop() {
                    a.alloc_fast += 1;
                    return Ok(p);
                }
                // Counted as a slow-path allocation, by `refill`, whichever way it goes on.
                self.refill(&mut a);
                if let Some(p) = a.objs.pop() {
                    return Ok(p);
                }
                drop(a);
                return self.alloc_slow(gfp, false);
            }
        }
        self.alloc_slow(gfp, true)
    }

    /// Moves up to `batchcount` free objects from the slabs into an empty array; counts the
    /// allocation that asked as a slow-path one.
    #[inline(never)]
    fn refill(&self, a: &mut CpuArray) {
        let mut n = self.node.lock();
        n.alloc_slow += 1;
        if fail::should_fail(Point::SlabArrayRefill) {
            return;
        }
        while a.objs.len() < self.batchcount {
            let Some((_, _, addr)) = n.pop(&self.geo) else {
                break;
            };
            if a.objs.push_within_capacity(addr).is_err() {
                // Cannot happen (`len < batchcount <= limit`, the capacity): undo.
                let _ = self.locate(addr).map(|(id, i)| n.slabs.push(id, i, false));
                break;
            }
        }
    }

    /// An allocation from the slab lists, growing the cache when they have nothing; `count`
    /// it as a slow-path allocation unless a refill did.
    #[inline(never)]
    fn alloc_slow(&self, gfp: Gfp, count: bool) -> Result<usize> {
        for attempt in 0..3 {
            {
                let mut n = self.node.lock();
                if attempt == 0 && count {
                    n.alloc_slow += 1;
                }
                while let Some((id, index, addr)) = n.pop(&self.geo) {
                    if self.limit == 0 && !self.debug_alloc(&mut n, id, index, addr) {
                        continue;
                    }
                    return Ok(addr);
                }
            }
            self.grow(gfp)?;
        }
        Err(ENOMEM)
    }

    /// The debugging checks of an allocation, under the node lock: poison and red zones
    /// intact (else the object is reported and taken out of service: `false`), then red zones
    /// marked active and the owner recorded.
    fn debug_alloc(&self, n: &mut Node, id: usize, index: usize, addr: usize) -> bool {
        let geo = &self.geo;
        let slot_addr = addr - geo.red_zone;
        // SAFETY: The object was free until `pop` took it under the node lock, which is held:
        // its slot (inside the slab) is nobody else's yet.
        let slot = unsafe { slab_mem::bytes_mut(slot_addr, geo.slot) };
        let damage = if self.poison {
            geo.check_poison(slot)
                .err()
                .map(|d| ("Poison overwritten", d))
        } else {
            None
        }
        .or_else(|| {
            if self.red_zone {
                geo.check_red_zones(slot, false)
                    .err()
                    .map(|d| ("Redzone overwritten", d))
            } else {
                None
            }
        });
        if let Some((what, d)) = damage {
            n.damaged += 1;
            self.report(n, what, id, index, Some(d));
            return false;
        }
        if self.red_zone {
            geo.fill_red_zones(slot, true);
        }
        if self.store_user {
            if let Some(t) = n
                .slabs
                .get_mut(id)
                .and_then(|s| s.tracks.as_mut())
                .and_then(|t| t.get_mut(index))
            {
                t.alloc = Who::current();
            }
        }
        true
    }

    /// Which slab and object `addr` is, from its page's tag: no lock.
    #[inline(always)]
    fn locate(&self, addr: usize) -> Result<(usize, usize), BadFree> {
        let (tag, _zone, index) = self.pool.tag_of(addr).ok_or(BadFree::NotSlab)?;
        self.locate_tagged(addr, tag, index)
    }

    /// [`SlabCache::locate`] with the page's tag and index already read.
    #[inline(always)]
    fn locate_tagged(&self, addr: usize, tag: u64, index: u32) -> Result<(usize, usize), BadFree> {
        match tag_cache(tag) {
            0 => return Err(BadFree::NotSlab),
            c if c != self.id => return Err(BadFree::WrongCache(c)),
            _ => {}
        }
        let id = (tag & ((1 << SLAB_ID_BITS) - 1)) as usize;
        let colour = ((tag >> SLAB_ID_BITS) & ((1 << COLOUR_BITS) - 1)) as usize;
        // The slab's block is aligned to its size in the zone's index space, and its pages
        // are contiguous in the direct map: the slab starts `index % pages` pages before.
        let pages = 1usize << self.geo.order;
        let in_slab = (index as usize & (pages - 1)) * PAGE_SIZE + addr % PAGE_SIZE;
        let i = self
            .geo
            .object_index(colour, in_slab)
            .ok_or(BadFree::NotObjectStart)?;
        Ok((id, i))
    }

    /// Frees the object at `addr`. A pointer that is not an object of this cache is refused
    /// and reported (`EINVAL`), nothing changed; so is a double free where it is caught (with
    /// `CONSISTENCY_CHECKS` always, else when the object is the one freed last). An object
    /// whose red zones were overwritten is reported and taken out of service.
    ///
    /// Context: process or softirq context.
    #[inline]
    pub(crate) fn free(&self, addr: usize) -> Result {
        match self.pool.tag_of(addr) {
            Some((tag, _zone, index)) => self.free_tagged(addr, tag, index),
            None => {
                self.report_bad_free(addr, BadFree::NotSlab);
                Err(EINVAL)
            }
        }
    }

    /// [`SlabCache::free`] with the page's tag and index already read (`kfree` reads them to
    /// find the cache).
    #[inline(always)]
    pub(crate) fn free_tagged(&self, addr: usize, tag: u64, page: u32) -> Result {
        let (id, index) = match self.locate_tagged(addr, tag, page) {
            Ok(at) => at,
            Err(why) => {
                self.report_bad_free(addr, why);
                return Err(EINVAL);
            }
        };
        if self.limit > 0 {
            if let Some(mut a) = self.this_cpu() {
                if a.objs.last() == Some(&addr) {
                    drop(a);
                    self.report_bad_free(addr, BadFree::AlreadyFree);
                    return Err(EINVAL);
                }
                if a.objs.len() < self.limit {
                    if a.objs.push_within_capacity(addr).is_ok() {
                        a.free_fast += 1;
                        return Ok(());
                    }
                } else {
                    // A free that flushes counts as a slow-path one (`flush` counts it).
                    let mut release = Release::new(self);
                    self.flush(&mut a, self.batchcount, &mut release);
                    if a.objs.push_within_capacity(addr).is_ok() {
                        return Ok(());
                    }
                }
            }
        }
        self.free_slow(id, index, addr)
    }

    /// Fills `out` with objects, all or nothing (`kmem_cache_alloc_bulk`): what this CPU's
    /// array holds under one lock, the rest from the slabs under one node lock per slab
    /// grown. On failure every object taken is given back.
    ///
    /// Context: as for [`SlabCache::alloc`].
    pub(crate) fn alloc_bulk(&self, gfp: Gfp, out: &mut [usize]) -> Result {
        let mut got = 0;
        if self.limit > 0 {
            if let Some(mut a) = self.this_cpu() {
                for slot in out.iter_mut() {
                    let Some(p) = a.objs.pop() else {
                        break;
                    };
                    *slot = p;
                    got += 1;
                }
                a.alloc_fast += got as u64;
            }
        }
        while got < out.len() {
            {
                let mut n = self.node.lock();
                while let Some(slot) = out.get_mut(got) {
                    let Some((id, index, addr)) = n.pop(&self.geo) else {
                        break;
                    };
                    if self.limit == 0 && !self.debug_alloc(&mut n, id, index, addr) {
                        continue;
                    }
                    *slot = addr;
                    got += 1;
                    n.alloc_slow += 1;
                }
            }
            if got < out.len() {
                if let Err(e) = self.grow(gfp) {
                    let _ = self.free_bulk(out.get(..got).unwrap_or(&[]));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Frees every object of `objs`, or none (`EINVAL`, reported, when one is not an object of
    /// this cache): into this CPU's array under one lock while it has room, the rest to the
    /// slabs under one node lock (`kmem_cache_free_bulk`). With debugging, one by one.
    ///
    /// Context: as for [`SlabCache::free`].
    pub(crate) fn free_bulk(&self, objs: &[usize]) -> Result {
        for &addr in objs {
            if let Err(why) = self.locate(addr) {
                self.report_bad_free(addr, why);
                return Err(EINVAL);
            }
        }
        if self.limit == 0 {
            let mut r = Ok(());
            for &addr in objs {
                r = r.and(self.free(addr));
            }
            return r;
        }
        let mut done = 0;
        if let Some(mut a) = self.this_cpu() {
            for &addr in objs {
                if a.objs.push_within_capacity(addr).is_err() {
                    break;
                }
                done += 1;
            }
            a.free_fast += done as u64;
        }
        let rest = objs.get(done..).unwrap_or(&[]);
        if rest.is_empty() {
            return Ok(());
        }
        let mut release = Release::new(self);
        let mut n = self.node.lock();
        let mut r = Ok(());
        for &addr in rest {
            n.free_slow += 1;
            let pushed = self
                .locate(addr)
                .map_err(|_| FreeError::BadIndex)
                .and_then(|(id, i)| n.slabs.push(id, i, false));
            if let Err(e) = pushed {
                let why = match e {
                    FreeError::DoubleFree => BadFree::AlreadyFree,
                    FreeError::BadIndex => BadFree::NotObjectStart,
                };
                self.report_locked(&n, addr, why);
                r = Err(EINVAL);
            }
        }
        self.release_empty(&mut n, self.min_partial(), &mut release);
        drop(n);
        r
    }

    /// Gives the first (oldest) `count` objects of an array back to their slabs.
    #[inline(never)]
    fn flush(&self, a: &mut CpuArray, count: usize, release: &mut Release<'_>) {
        let count = count.min(a.objs.len());
        let mut n = self.node.lock();
        n.free_slow += 1;
        for &addr in a.objs.get(..count).unwrap_or(&[]) {
            match self.locate(addr) {
                Ok((id, i)) => {
                    if let Err(e) = n.slabs.push(id, i, false) {
                        let why = match e {
                            FreeError::DoubleFree => BadFree::AlreadyFree,
                            FreeError::BadIndex => BadFree::NotObjectStart,
                        };
                        self.report_locked(&n, addr, why);
                    }
                }
                Err(why) => self.report_locked(&n, addr, why),
            }
        }
        self.release_empty(&mut n, self.min_partial(), release);
        drop(n);
        let slice = a.objs.as_mut_slice();
        slice.copy_within(count.., 0);
        let left = slice.len() - count;
        a.objs.truncate(left);
    }

    /// Takes empty slabs beyond `keep` off the node into `release`.
    fn release_empty(&self, n: &mut Node, keep: usize, release: &mut Release<'_>) {
        while release.room() {
            let Some((_, slab)) = n.slabs.take_empty(keep) else {
                break;
            };
            // Cleared under the lock: a stale pointer into the slab is "not a slab" now.
            self.pool.set_tags(&slab.block, 0);
            n.freed += 1;
            release.add(slab);
        }
    }

    /// A free through the slab lists: with the debugging checks, or when the array is busy.
    #[inline(never)]
    fn free_slow(&self, id: usize, index: usize, addr: usize) -> Result {
        let mut release = Release::new(self);
        let mut n = self.node.lock();
        n.free_slow += 1;
        let debug = self.limit == 0;
        if debug {
            let Some(already) = n.slabs.is_free(id, index) else {
                self.report_locked(&n, addr, BadFree::NotSlab);
                return Err(EINVAL);
            };
            if already {
                self.report_locked(&n, addr, BadFree::AlreadyFree);
                return Err(EINVAL);
            }
            let geo = &self.geo;
            // SAFETY: The object is allocated, and the caller gives it back: its slot is the
            // cache's again, under the node lock, which is held.
            let slot = unsafe { slab_mem::bytes_mut(addr - geo.red_zone, geo.slot) };
            if self.red_zone {
                if let Err(d) = geo.check_red_zones(slot, true) {
                    n.damaged += 1;
                    self.report(&n, "Redzone overwritten", id, index, Some(d));
                    // Out of service: it stays off the free list.
                    return Ok(());
                }
                geo.fill_red_zones(slot, false);
            }
            if self.poison {
                geo.poison(slot);
            }
            let track = n.slabs.get_mut(id).and_then(|s| s.tracks.as_mut());
            if let Some(t) = track.and_then(|t| t.get_mut(index)) {
                t.free = Who::current();
            }
        }
        if let Err(e) = n.slabs.push(id, index, debug) {
            let why = match e {
                FreeError::DoubleFree => BadFree::AlreadyFree,
                FreeError::BadIndex => BadFree::NotObjectStart,
            };
            self.report_locked(&n, addr, why);
            return Err(EINVAL);
        }
        self.release_empty(&mut n, self.min_partial(), &mut release);
        drop(n);
        Ok(())
    }

    /// Adds a slab from the pool.
    #[inline(never)]
    fn grow(&self, gfp: Gfp) -> Result {
        if fail::should_fail(Point::SlabGrow) {
            return Err(ENOMEM);
        }
        let block = self
            .pool
            .alloc_raw(self.geo.order, self.highest, gfp.class)?;
        let slab = match self.prepare(block, gfp) {
            Ok(s) => s,
            Err((block, e)) => {
                self.pool.free_raw(block);
                return Err(e);
            }
        };
        self.insert(slab, gfp)
    }

    /// Lays out a new slab in `block`: zeroed, objects constructed or poisoned, red zones
    /// laid, every object on the free list.
    fn prepare(&self, block: RawBlock, gfp: Gfp) -> Result<Slab, (RawBlock, Error)> {
        let geo = &self.geo;
        let Some(base) = self.pool.block_addr(&block) else {
            return Err((block, EINVAL));
        };
        let off = if geo.on_slab {
            None
        } else {
            match KVec::from_elem(0u16, geo.objects, gfp.host) {
                Ok(v) => Some(v),
                Err(_) => return Err((block, ENOMEM)),
            }
        };
        let tracks = if self.store_user {
            match KVec::from_elem(Track::default(), geo.objects, gfp.host) {
                Ok(v) => Some(v),
                Err(_) => return Err((block, ENOMEM)),
            }
        } else {
            None
        };
        let colour = {
            let mut n = self.node.lock();
            let c = n.colour_next;
            n.colour_next = geo.next_colour(c);
            c
        };
        let bytes = geo.slab_bytes(PAGE_SIZE);
        // SAFETY: The block was just allocated: the cache's alone, known to nobody else.
        let mem = unsafe { slab_mem::bytes_mut(base, bytes) };
        mem.fill(0);
        for i in 0..geo.objects {
            let Some(at) = geo.object_offset(colour, i) else {
                break;
            };
            if let Some(seed) = self.ctor {
                if let Some(obj) = mem.get_mut(at..at + geo.object_size) {
                    crate::pattern::fill(seed, 0, obj);
                }
            }
            if let Some(slot) = mem.get_mut(at - geo.red_zone..at - geo.red_zone + geo.slot) {
                if self.poison {
                    geo.poison(slot);
                }
                if self.red_zone {
                    geo.fill_red_zones(slot, false);
                }
            }
        }
        // INVARIANT: the block is the cache's, in the direct map at `base`; the on-slab entries
        // lie after the descriptor header at this colour's offset.
        let mut slab = Slab {
            block,
            base,
            colour,
            objects: geo.objects,
            entries: base + geo.descriptor_offset(colour) + slab::DESCRIPTOR_HEADER,
            free: 0,
            off,
            tracks,
        };
        let (entries, free) = slab.freelist();
        match Freelist::new_full(entries, geo.objects) {
            Some(fl) => *free = fl.free(),
            None => return Err((slab.block, EINVAL)),
        }
        slab_mem::leak_track(base, bytes);
        Ok(slab)
    }

    /// Puts a prepared slab on the empty list under a free id, growing the records' storage
    /// outside the lock when it is full.
    fn insert(&self, slab: Slab, gfp: Gfp) -> Result {
        let mut slab = slab;
        loop {
            let cap = {
                let mut n = self.node.lock();
                match n.slabs.insert(slab) {
                    Ok(id) => {
                        // Tagged before the lock goes: no object of it is out yet.
                        if let Some(s) = n.slabs.get(id) {
                            self.pool
                                .set_tags(&s.block, slab_tag(self.id, s.colour, id));
                        }
                        n.created += 1;
                        return Ok(());
                    }
                    Err(back) => slab = back,
                }
                n.slabs.capacity()
            };
            let new_cap = (cap * 2).max(8);
            let grown = (new_cap < 1 << SLAB_ID_BITS)
                .then(|| Self::storage(new_cap, gfp.host))
                .and_then(Result::ok);
            let Some((slabs, links)) = grown else {
                self.release(slab);
                return Err(ENOMEM);
            };
            // Moved under the lock unless another CPU grew the storage meanwhile; whichever
            // storage is left over is dropped unlocked.
            let spare = {
                let mut n = self.node.lock();
                if n.slabs.capacity() != cap {
                    (slabs, links)
                } else {
                    n.slabs.grow(slabs, links).unwrap_or_else(|new| new)
                }
            };
            drop(spare);
        }
    }

    /// Empty record storage for `n` slabs.
    fn storage(n: usize, host: Flags) -> Result<(KVec<Option<Slab>>, KVec<Links>)> {
        let mut slabs = KVec::with_capacity(n, host)?;
        for _ in 0..n {
            slabs.push(None, host)?;
        }
        Ok((slabs, KVec::from_elem(Links::NONE, n, host)?))
    }

    /// Gives a slab taken off the node back to the pool.
    fn release(&self, slab: Slab) {
        slab_mem::leak_untrack(slab.base);
        self.pool.free_raw(slab.block);
    }

    /// Flushes every per-CPU array and gives every empty slab back; returns the pages given
    /// back (SLUB's `kmem_cache_shrink`; the reclaim thread will call it).
    ///
    /// Context: process context.
    pub(crate) fn shrink(&self) -> usize {
        self.flush_arrays();
        let mut pages = 0;
        loop {
            let mut release = Release::new(self);
            let mut n = self.node.lock();
            self.release_empty(&mut n, 0, &mut release);
            drop(n);
            let got = release.slabs.iter().filter(|s| s.is_some()).count();
            pages += got << self.geo.order;
            if got == 0 {
                return pages;
            }
        }
    }

    /// Empties every per-CPU array into the slabs (empty slabs stay).
    fn flush_arrays(&self) {
        for arr in self.cpu.iter() {
            let mut a = arr.lock();
            let release = Release::new(self);
            // Keep every empty slab: `shrink` decides.
            let mut n = self.node.lock();
            for &addr in a.objs.iter() {
                if let Ok((id, i)) = self.locate(addr) {
                    if n.slabs.push(id, i, false).is_err() {
                        self.report_locked(&n, addr, BadFree::AlreadyFree);
                    }
                }
            }
            drop(n);
            a.objs.clear();
            drop(a);
            drop(release);
        }
    }

    /// The cache's counters.
    ///
    /// Context: process context (waits for the array locks, one at a time: counts may be a
    /// moment apart while other CPUs use the cache).
    pub(crate) fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for arr in self.cpu.iter() {
            let a = arr.lock();
            s.cpu_objects += a.objs.len();
            s.alloc_fast += a.alloc_fast;
            s.free_fast += a.free_fast;
        }
        let n = self.node.lock();
        s.num_slabs = n.slabs.nr_slabs();
        s.num_objs = s.num_slabs * self.geo.objects;
        s.active_objs = n.slabs.inuse();
        s.damaged = n.damaged;
        s.partial = n.slabs.len(Which::Partial);
        s.empty = n.slabs.len(Which::Empty);
        s.active_slabs = s.num_slabs - s.empty;
        s.alloc_slow = n.alloc_slow;
        s.free_slow = n.free_slow;
        s.created = n.created;
        s.freed = n.freed;
        drop(n);
        s.allocated = s.active_objs.saturating_sub(s.cpu_objects + s.damaged);
        s.errors = self.errors.load(Relaxed);
        s
    }

    /// Writes a debugfs `page_owner` paragraph for each slab of the cache, in the manner of
    /// Linux's `print_page_owner` for a slab page: `Slab allocated via order O, cache C, slab
    /// S, objects U/N`, then `PFN first-last zone Z`.
    ///
    /// Context: process context (the slabs are copied out under the node lock, written after).
    pub(crate) fn write_page_owner(&self, f: &mut impl core::fmt::Write) -> core::fmt::Result {
        let room = self.node.lock().slabs.nr_slabs();
        let Ok(mut slabs) = KVVec::<(usize, usize, usize, usize)>::with_capacity(room, GFP_KERNEL)
        else {
            return writeln!(f, "page_owner: out of memory copying cache {}", self.name());
        };
        {
            let n = self.node.lock();
            for (id, s) in n.slabs.iter() {
                let used = self.geo.objects - s.free;
                if slabs
                    .push_within_capacity((id, s.base, s.block.zone(), used))
                    .is_err()
                {
                    break;
                }
            }
        }
        for &(id, base, zone, used) in slabs.iter() {
            let pfn = crate::host_pages::virt_to_pfn(base).unwrap_or(0);
            writeln!(
                f,
                "Slab allocated via order {}, cache {}, slab {id}, objects {used}/{}",
                self.geo.order,
                self.name(),
                self.geo.objects
            )?;
            writeln!(
                f,
                "PFN {:#x}-{:#x} zone {}",
                pfn,
                pfn + (1u64 << self.geo.order) - 1,
                crate::zone::NAMES.get(zone).copied().unwrap_or("?")
            )?;
            writeln!(f)?;
        }
        Ok(())
    }

    /// Objects allocated and not freed, after flushing the arrays.
    ///
    /// Context: process context.
    pub(crate) fn live_objects(&self) -> usize {
        self.flush_arrays();
        let n = self.node.lock();
        n.slabs.inuse() - n.damaged
    }

    /// Checks every invariant of the cache's slabs (lists, free lists, counts, tags); the
    /// message names the first broken one.
    ///
    /// Context: process context.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let mut seen = KVec::from_elem(0u64, self.geo.objects.div_ceil(64), GFP_KERNEL)
            .map_err(|_| "no memory for the check")?;
        let mut n = self.node.lock();
        n.slabs.validate(&mut seen)?;
        // Every page of every slab carries its slab's tag.
        let pages = 1usize << self.geo.order;
        for (id, s) in n.slabs.iter() {
            let tag = slab_tag(self.id, s.colour, id);
            for p in 0..pages {
                if self.pool.tag_of(s.base + p * PAGE_SIZE).map(|t| t.0) != Some(tag) {
                    return Err("a slab page does not carry its slab's tag");
                }
            }
        }
        if n.damaged > n.slabs.inuse() {
            return Err("more objects out of service than in use");
        }
        Ok(())
    }

    /// Logs a refused free, as SLUB's reports.
    #[cold]
    #[inline(never)]
    fn report_bad_free(&self, addr: usize, why: BadFree) {
        let n = self.node.lock();
        self.report_locked(&n, addr, why);
    }

    /// [`SlabCache::report_bad_free`] with the node lock held.
    fn report_locked(&self, n: &Node, addr: usize, why: BadFree) {
        let what = match why {
            BadFree::NotSlab => "Invalid object pointer",
            BadFree::WrongCache(_) => "Wrong slab cache",
            BadFree::NotObjectStart => "Pointer not at the start of an object",
            BadFree::AlreadyFree => "Object already free",
        };
        match (why, self.locate(addr)) {
            (BadFree::AlreadyFree, Ok((id, index))) => self.report(n, what, id, index, None),
            _ => {
                self.errors.fetch_add(1, Relaxed);
                pr_err!("=============================================================================\n");
                pr_err!("BUG {} (minimm): {}\n", self.name(), what);
                pr_err!("-----------------------------------------------------------------------------\n");
                if let BadFree::WrongCache(other) = why {
                    pr_err!(
                        "INFO: the object is from cache id {other}, not {}\n",
                        self.id
                    );
                }
                pr_err!("FIX {}: the free is refused\n", self.name());
            }
        }
    }

    /// Logs a problem with object `index` of slab `id` as SLUB's `slab_err`/`object_err` do:
    /// the cache, the kind of damage, the bytes around it and the owner; counts it.
    fn report(&self, n: &Node, what: &str, id: usize, index: usize, damage: Option<Damage>) {
        self.errors.fetch_add(1, Relaxed);
        let geo = &self.geo;
        pr_err!("=============================================================================\n");
        pr_err!("BUG {} (minimm): {}\n", self.name(), what);
        pr_err!("-----------------------------------------------------------------------------\n");
        let Some(slab) = n.slabs.get(id) else {
            return;
        };
        pr_err!(
            "INFO: Slab {id} objects={} used={} colour={} order={}\n",
            geo.objects,
            geo.objects - slab.free,
            slab.colour,
            geo.order
        );
        let slot_off = geo.object_offset(slab.colour, index).unwrap_or(0) - geo.red_zone;
        pr_err!(
            "INFO: Object {index} at slab offset {} (slot {} bytes, object {}, red zones {})\n",
            slot_off + geo.red_zone,
            geo.slot,
            geo.object_size,
            geo.red_zone
        );
        if let Some(d) = damage {
            pr_err!(
                "INFO: first wrong byte at slot offset {}: {:#04x}, expected {:#04x}\n",
                d.offset,
                d.found,
                d.expected
            );
            // The 16 bytes around it, inside the slot.
            let from = d.offset.saturating_sub(8).min(geo.slot.saturating_sub(16));
            let len = 16.min(geo.slot - from);
            // SAFETY: Read under the node lock, inside the slab: the object is the cache's
            // (free, or being freed) or out of service; nobody else writes it meanwhile but
            // a buggy owner, whose damage is what is shown.
            let bytes = unsafe { slab_mem::bytes_mut(slab.base + slot_off + from, len) };
            pr_err!("Bytes at slot offset {from}: {:02x?}\n", bytes);
        }
        if let Some(t) = slab.tracks.as_ref().and_then(|t| t.get(index)) {
            for (how, w) in [("Allocated", &t.alloc), ("Freed", &t.free)] {
                if w.ts_ns != 0 {
                    pr_err!(
                        "INFO: {how} by pid {} ({}) at {} ns\n",
                        w.pid,
                        core::str::from_utf8(w.comm()).unwrap_or("?"),
                        w.ts_ns
                    );
                }
            }
        }
        pr_err!("FIX {}: object {index} taken out of service\n", self.name());
    }

    /// Writes the owner tracking view (SLUB's `alloc_traces` and `free_traces`, grouped by
    /// task rather than by call site): `<count> allocated|freed pid=<pid> comm=<comm>` for the
    /// last allocation of each object in use and the last free of each free object.
    ///
    /// Context: process context.
    pub(crate) fn write_traces(&self, f: &mut impl core::fmt::Write) -> Result {
        if !self.store_user {
            return Ok(());
        }
        // Groups, gathered under the lock into room allocated before it.
        const ROWS: usize = 64;
        let mut rows: KVec<(Who, usize, bool)> = KVec::with_capacity(ROWS, GFP_KERNEL)?;
        {
            let mut n = self.node.lock();
            for id in 0..n.slabs.capacity() {
                let Some(tracks) = n.slabs.get_mut(id).and_then(|s| s.tracks.take()) else {
                    continue;
                };
                {
                    for (i, t) in tracks.iter().enumerate() {
                        let alloc = n.slabs.is_free(id, i) == Some(false);
                        let who = if alloc { &t.alloc } else { &t.free };
                        if who.ts_ns == 0 {
                            continue;
                        }
                        let same = |r: &&mut (Who, usize, bool)| {
                            r.0.comm == who.comm && r.0.pid == who.pid && r.2 == alloc
                        };
                        match rows.iter_mut().find(same) {
                            Some(r) => r.1 += 1,
                            None => {
                                // Beyond ROWS groups, the rest is left out.
                                let _ = rows.push_within_capacity((*who, 1, alloc));
                            }
                        }
                    }
                }
                if let Some(s) = n.slabs.get_mut(id) {
                    s.tracks = Some(tracks);
                }
            }
        }
        for alloc in [true, false] {
            for (w, count, _) in rows.iter().filter(|r| r.2 == alloc) {
                writeln!(
                    f,
                    "{:>7} {} pid={} comm={}",
                    count,
                    if alloc { "allocated" } else { "freed" },
                    w.pid,
                    Comm(w.comm())
                )
                .map_err(|_| EINVAL)?;
            }
        }
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for SlabCache {
    /// Gives every slab back. The owner destroys a cache only when [`SlabCache::live_objects`]
    /// is 0 (`Caches::destroy`); objects still allocated now are a bug, reported.
    fn drop(self: Pin<&mut Self>) {
        self.flush_arrays();
        let mut left;
        loop {
            let slab = {
                let mut n = self.node.lock();
                left = n.slabs.inuse().saturating_sub(n.damaged);
                let taken = n.slabs.take_any().map(|(_, s)| s);
                if let Some(s) = &taken {
                    self.pool.set_tags(&s.block, 0);
                }
                taken
            };
            match slab {
                Some(s) => self.release(s),
                None => break,
            }
        }
        if kernel::warn_on!(left > 0) {
            pr_err!(
                "cache {}: {left} objects still allocated at destroy\n",
                self.name()
            );
        }
    }
}

/// Every cache of the module (the generic ones, each file's, the module's own), by creation:
/// names are unique among them, ids never reused.
#[pin_data]
pub(crate) struct Caches {
    #[pin]
    inner: Mutex<CachesInner>,
    /// Debugging flags every cache gets (module parameter `slab_debug`).
    debug: u32,
}

/// A listed cache and its debugfs files (`slab/<name>/`, once debugfs is set up).
struct Listed {
    cache: Arc<SlabCache>,
    files: Option<CacheFiles>,
}

struct CachesInner {
    list: KVec<Listed>,
    next_id: u32,
    /// debugfs `slab/`, where each cache gets its directory.
    dir: Option<Dir>,
}

impl Caches {
    /// The list, empty; every cache created gets the debugging flags `debug` besides its own.
    pub(crate) fn new(debug: u32) -> impl PinInit<Self> {
        pin_init!(Self {
            debug: debug & DEBUG_FLAGS,
            inner <- new_mutex!(
                CachesInner {
                    list: KVec::new(),
                    next_id: 1,
                    dir: None,
                },
                "minimm_caches"
            ),
        })
    }

    /// Creates a cache and lists it.
    ///
    /// Errors: `EINVAL` (see [`SlabCache::new`]), `EEXIST` (the name is taken), `ENOSPC` (ids
    /// used up), `ENOMEM`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn create(&self, cfg: &Config<'_>, pool: &Arc<Pool>) -> Result<Arc<SlabCache>> {
        if !valid_name(cfg.name) {
            return Err(EINVAL);
        }
        let mut g = self.inner.lock();
        if g.list.iter().any(|l| l.cache.name().as_bytes() == cfg.name) {
            return Err(EEXIST);
        }
        let id = g.next_id;
        if id >= u32::MAX - 1 {
            return Err(ENOSPC);
        }
        let cfg = Config {
            flags: cfg.flags | self.debug,
            ..*cfg
        };
        let init = SlabCache::new(id, &cfg, pool.clone())?;
        if fail::should_fail(Point::SlabCreate) {
            return Err(ENOMEM);
        }
        g.list.reserve(1, GFP_KERNEL)?;
        let cache = Arc::pin_init(init, GFP_KERNEL)?;
        let files = match &g.dir {
            Some(dir) => Some(crate::debugfs::cache_files(dir, &cache)?),
            None => None,
        };
        g.list.push(
            Listed {
                cache: cache.clone(),
                files,
            },
            GFP_KERNEL,
        )?;
        g.next_id = id + 1;
        Ok(cache)
    }

    /// Gives every cache, those to come too, its directory in debugfs `dir` (`slab/`).
    ///
    /// Context: process context, may sleep.
    pub(crate) fn set_dir(&self, dir: Dir) -> Result {
        let mut g = self.inner.lock();
        for l in g.list.iter_mut() {
            if l.files.is_none() {
                l.files = Some(crate::debugfs::cache_files(&dir, &l.cache)?);
            }
        }
        g.dir = Some(dir);
        Ok(())
    }

    /// Destroys `cache` if it has no objects allocated (`EBUSY` otherwise, logged with the
    /// count as SLUB's "Objects remaining" report, the cache unchanged and still listed).
    /// The slabs go back to the pool when the last reference goes.
    ///
    /// Context: process context.
    pub(crate) fn destroy(&self, cache: &Arc<SlabCache>) -> Result {
        let live = cache.live_objects();
        if live > 0 {
            pr_warn!(
                "cache {}: {live} objects remaining, destroy refused\n",
                cache.name()
            );
            return Err(EBUSY);
        }
        let mut g = self.inner.lock();
        if let Some(at) = g.list.iter().position(|l| l.cache.id() == cache.id()) {
            let removed = g.list.remove(at).ok();
            drop(g);
            // Its files go first (debugfs waits for reads in flight), then the reference.
            drop(removed);
        }
        Ok(())
    }

    /// Every cache, in creation order.
    ///
    /// Context: process context.
    pub(crate) fn all(&self) -> Result<KVec<Arc<SlabCache>>> {
        let g = self.inner.lock();
        let mut out = KVec::with_capacity(g.list.len(), GFP_KERNEL)?;
        for l in g.list.iter() {
            out.push(l.cache.clone(), GFP_KERNEL)?;
        }
        Ok(out)
    }
}

#[kunit_tests(minimm_slab)]
mod tests {
    use super::*;
    use crate::{
        kmalloc::Kmalloc,
        pool::tests::{all_back, pool_of},
    };
    use kernel::sync::atomic::{Atomic, Relaxed as R};

    fn cache(
        caches: &Caches,
        pool: &Arc<Pool>,
        name: &[u8],
        size: usize,
        flags: u32,
    ) -> Result<Arc<SlabCache>> {
        caches.create(
            &Config {
                name,
                object_size: size,
                align: 0,
                flags,
                ctor_seed: 7,
                record: false,
            },
            pool,
        )
    }

    fn setup() -> Result<(Arc<Pool>, Pin<KBox<Caches>>)> {
        Ok((
            pool_of([16, 256, 256])?,
            KBox::pin_init(Caches::new(0), GFP_KERNEL)?,
        ))
    }

    /// Objects over many slabs come and go through the per-CPU arrays; the cache stays valid,
    /// shrink gives every slab back, and destroy leaves the pool whole.
    #[test]
    fn alloc_free_shrink_destroy() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(&caches, &pool, b"kunit-plain", 72, 0)?;
        let mut objs = KVec::new();
        for _ in 0..300 {
            objs.push(c.alloc(Gfp::KERNEL)?, GFP_KERNEL)?;
        }
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.stats().allocated, 300);
        assert_eq!(caches.destroy(&c), Err(EBUSY));
        for &o in objs.iter() {
            c.free(o)?;
        }
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.live_objects(), 0);
        assert!(c.shrink() > 0);
        assert_eq!(c.stats().num_slabs, 0);
        caches.destroy(&c)?;
        drop(c);
        assert!(all_back(&pool));
        Ok(())
    }

    /// The constructor runs once per object when its slab is made: a fresh object holds the
    /// pattern; one freed after a write comes back as written, not reconstructed.
    #[test]
    fn constructor_runs_at_slab_creation() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(&caches, &pool, b"kunit-ctor", 40, flags::CTOR)?;
        let a = c.alloc(Gfp::KERNEL)?;
        let mut want = [0u8; 40];
        crate::pattern::fill(7, 0, &mut want);
        // SAFETY: `a` is ours, 40 bytes.
        let bytes = unsafe { slab_mem::bytes_mut(a, 40) };
        assert!(bytes == &want[..]);
        bytes.fill(0x5a);
        c.free(a)?;
        let b = c.alloc(Gfp::KERNEL)?;
        assert_eq!(a, b);
        // SAFETY: As above.
        assert!(unsafe { slab_mem::bytes_mut(b, 40) }
            .iter()
            .all(|&x| x == 0x5a));
        c.free(b)?;
        caches.destroy(&c)?;
        Ok(())
    }

    /// Bulk allocation is all or nothing and bulk frees refuse a batch with a foreign
    /// pointer whole.
    #[test]
    fn bulk_all_or_nothing() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(&caches, &pool, b"kunit-bulk", 256, 0)?;
        let mut objs = [0usize; 64];
        for _ in 0..5 {
            c.alloc_bulk(Gfp::KERNEL, &mut objs)?;
            assert!(objs.iter().all(|&o| o != 0));
            assert_eq!(c.stats().allocated, 64);
            c.free_bulk(&objs)?;
            assert_eq!(c.live_objects(), 0);
        }
        c.alloc_bulk(Gfp::KERNEL, &mut objs)?;
        let kept = objs[3];
        objs[3] = 0;
        assert_eq!(c.free_bulk(&objs), Err(EINVAL));
        assert_eq!(c.stats().errors, 1);
        assert_eq!(c.live_objects(), 64);
        objs[3] = kept;
        c.free_bulk(&objs)?;
        // A pool that cannot give the slabs: nothing is kept.
        let _armed = crate::fail::arm_nth_while(crate::fail::Point::SlabGrow, 1);
        assert!(c.shrink() > 0);
        assert_eq!(c.alloc_bulk(Gfp::KERNEL, &mut objs), Err(ENOMEM));
        drop(_armed);
        assert_eq!(c.live_objects(), 0);
        assert_eq!(c.validate(), Ok(()));
        caches.destroy(&c)?;
        drop(c);
        assert!(all_back(&pool));
        Ok(())
    }

    /// Each new slab starts its objects one colour further on.
    #[test]
    fn colours_advance_per_slab() -> Result {
        let (pool, caches) = setup()?;
        // Debugging bypasses the arrays: objects come in address order, slab by slab.
        // An object size whose slabs have at least three colours on this machine's CPUs
        // (the slab order depends on them).
        let colours = |size| {
            let opts = slab::Options::default();
            Geometry::new(size, 0, opts, PAGE_SIZE, nr_cpu_ids() as usize).map_or(0, |g| g.colours)
        };
        let size = (200..2000)
            .step_by(8)
            .find(|&n| colours(n) >= 3)
            .ok_or(EINVAL)?;
        let c = cache(&caches, &pool, b"kunit-colour", size, flags::STORE_USER)?;
        let g = *c.geometry();
        assert!(g.colours >= 3);
        let mut objs = KVec::new();
        for _ in 0..3 * g.objects {
            objs.push(c.alloc(Gfp::KERNEL)?, GFP_KERNEL)?;
        }
        let bytes = g.slab_bytes(PAGE_SIZE);
        for k in 0..3 {
            let first = *objs.get(k * g.objects).ok_or(EINVAL)?;
            assert_eq!(Some(first % bytes), g.object_offset(k, 0));
        }
        for &o in objs.iter() {
            c.free(o)?;
        }
        caches.destroy(&c)?;
        Ok(())
    }

    /// Reports the kunit caches make on purpose are listed in qemu/expected-reports.
    fn errors(c: &SlabCache) -> u64 {
        c.stats().errors
    }

    /// A write past either end of an object is caught at free, reported once, and the object
    /// taken out of service; the cache stays valid and usable.
    #[test]
    fn red_zone_overwrites_are_caught() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(&caches, &pool, b"kunit-redzone", 24, flags::RED_ZONE)?;
        let g = *c.geometry();
        for (k, at) in [(1u64, g.object_size as isize), (2, -1)] {
            let o = c.alloc(Gfp::KERNEL)?;
            // SAFETY: A deliberate stray write into the object's own red zone, inside its
            // slot, which the cache owns and checks.
            unsafe { *((o as isize + at) as *mut u8) = 0x11 };
            assert_eq!(c.free(o), Ok(()));
            assert_eq!(errors(&c), k);
            assert_eq!(c.validate(), Ok(()));
        }
        let s = c.stats();
        assert_eq!(s.damaged, 2);
        assert_eq!(s.allocated, 0);
        let o = c.alloc(Gfp::KERNEL)?;
        c.free(o)?;
        assert_eq!(errors(&c), 2);
        caches.destroy(&c)?;
        drop(c);
        assert!(all_back(&pool));
        Ok(())
    }

    /// A write after free is caught by the poison check at the next allocation.
    #[test]
    fn write_after_free_is_caught() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(&caches, &pool, b"kunit-poison", 32, flags::POISON)?;
        let o = c.alloc(Gfp::KERNEL)?;
        c.free(o)?;
        // SAFETY: A deliberate write after free into a poisoned object of a debug cache.
        unsafe { *((o + 5) as *mut u8) = 0 };
        let p = c.alloc(Gfp::KERNEL)?;
        assert_ne!(p, o);
        assert_eq!(errors(&c), 1);
        assert_eq!(c.stats().damaged, 1);
        assert_eq!(c.validate(), Ok(()));
        c.free(p)?;
        caches.destroy(&c)?;
        Ok(())
    }

    /// Double frees, foreign pointers, pointers inside objects and objects of another cache
    /// are refused and reported; nothing changes.
    #[test]
    fn bad_frees_are_refused() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(
            &caches,
            &pool,
            b"kunit-checks",
            64,
            flags::CONSISTENCY_CHECKS,
        )?;
        let other = cache(&caches, &pool, b"kunit-other", 64, 0)?;
        let o = c.alloc(Gfp::KERNEL)?;
        let p = c.alloc(Gfp::KERNEL)?;
        c.free(o)?;
        assert_eq!(c.free(o), Err(EINVAL));
        assert_eq!(errors(&c), 1);
        let foreign = KBox::new(0u64, GFP_KERNEL)?;
        assert_eq!(c.free(&*foreign as *const u64 as usize), Err(EINVAL));
        assert_eq!(c.free(p + 8), Err(EINVAL));
        let q = other.alloc(Gfp::KERNEL)?;
        assert_eq!(c.free(q), Err(EINVAL));
        assert_eq!(errors(&c), 4);
        assert_eq!(c.stats().allocated, 1);
        assert_eq!(c.validate(), Ok(()));
        c.free(p)?;
        other.free(q)?;
        caches.destroy(&c)?;
        caches.destroy(&other)?;
        Ok(())
    }

    static RCU_CACHE: Atomic<usize> = Atomic::new(0);
    static RCU_FREED: Atomic<usize> = Atomic::new(0);

    unsafe extern "C" fn free_by_rcu(head: *mut kernel::bindings::callback_head) {
        let c = RCU_CACHE.load(R) as *const SlabCache;
        // SAFETY: The test sets `RCU_CACHE` to a cache it keeps alive until `rcu_barrier`.
        if let Some(c) = unsafe { c.as_ref() } {
            if c.free(head as usize).is_ok() {
                RCU_FREED.add(1, R);
            }
        }
    }

    /// Objects freed from RCU callbacks (softirq) and ATOMIC allocations there work.
    #[test]
    fn frees_from_call_rcu() -> Result {
        let (pool, caches) = setup()?;
        let c = cache(&caches, &pool, b"kunit-rcu", 64, 0)?;
        RCU_CACHE.store(&*c as *const SlabCache as usize, R);
        RCU_FREED.store(0, R);
        const N: usize = 200;
        for _ in 0..N {
            let o = c.alloc(Gfp::KERNEL)?;
            // SAFETY: The object is ours and 64 bytes, room for a `callback_head`; it is freed
            // by the callback only.
            unsafe { kernel::bindings::call_rcu(o as *mut _, Some(free_by_rcu)) };
        }
        // SAFETY: Waits for every callback queued above.
        unsafe { kernel::bindings::rcu_barrier() };
        assert_eq!(RCU_FREED.load(R), N);
        assert_eq!(c.live_objects(), 0);
        assert_eq!(c.validate(), Ok(()));
        RCU_CACHE.store(0, R);
        caches.destroy(&c)?;
        Ok(())
    }

    /// `kmalloc` and friends, and a `Vec` in minimm memory that grows through every size
    /// class into a large block.
    #[test]
    fn kmalloc_and_the_allocator() -> Result {
        let (pool, caches) = setup()?;
        let k = Kmalloc::new(&caches, &pool)?;
        let a = k.kmalloc(100, Gfp::KERNEL, false, true)?;
        assert_eq!(k.ksize(a), Some(128));
        let b = k.krealloc(a, 3000, Gfp::KERNEL)?;
        assert_eq!(k.ksize(b), Some(4096));
        assert_eq!(k.kcalloc(usize::MAX, 2, Gfp::KERNEL), Err(EINVAL));
        let big = k.kmalloc(20000, Gfp::KERNEL, false, false)?;
        assert_eq!(k.ksize(big), Some(PAGE_SIZE << 3));
        assert_eq!(k.kfree(big + PAGE_SIZE), Err(EINVAL));
        k.kfree(big)?;
        k.kfree(b)?;
        {
            // SAFETY: `k` outlives the guard, dropped at the end of this block.
            let _g = unsafe { crate::kmalloc::publish(&k) };
            let mut v: kernel::alloc::Vec<u64, crate::kmalloc::Minimm> = kernel::alloc::Vec::new();
            for i in 0..5000u64 {
                v.push(i, GFP_KERNEL)?;
            }
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
            let mut boxed =
                kernel::alloc::Box::<[u8; 96], crate::kmalloc::Minimm>::new([1u8; 96], GFP_KERNEL)?;
            boxed[95] = 2;
            assert_eq!(boxed[0] + boxed[95], 3);
        }
        for c in k.caches() {
            assert_eq!(c.live_objects(), 0);
            assert_eq!(c.validate(), Ok(()));
        }
        Ok(())
    }
}
