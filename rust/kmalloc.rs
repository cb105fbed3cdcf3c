// SPDX-License-Identifier: GPL-2.0

//! The generic caches and the in-module `kmalloc` API: `minimm-kmalloc-8` ..
//! `minimm-kmalloc-8k` with Linux's size classes (`crate::slab::KMALLOC_SIZES`) and their DMA
//! variants (`minimm-kmalloc-dma-*`, slabs from ZONE_DMA, as Linux's `KMALLOC_DMA`), created
//! at load. Requests above 8 KiB go straight to the pool as Linux's `kmalloc_large`: a block
//! of `get_order(size)` whose pages carry the [`LARGE`] tag, so that `kfree` and `ksize` know
//! them.
//!
//! [`Minimm`] implements the kernel crate's `Allocator` trait over these caches, so module
//! code can hold `Box<T, Minimm>` and `Vec<T, Minimm>` in minimm memory.

use core::{alloc::Layout, ptr::NonNull};

use kernel::{
    alloc::{AllocError, Allocator, Flags, NumaNode},
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

use crate::{
    pool::{Pool, RawBlock},
    slab::{kmalloc_class, kmalloc_large_order, KMALLOC_SIZES},
    slab_cache::{tag_cache, Caches, Config, Gfp, SlabCache},
};

/// The cache id in the tag of a `kmalloc_large` block's pages (never a cache's: ids stay
/// below `u32::MAX - 1`).
pub(crate) const LARGE: u32 = u32::MAX;

/// Names of the generic caches, as Linux spells the sizes.
const NAMES: [&str; 13] = [
    "8", "16", "32", "64", "96", "128", "192", "256", "512", "1k", "2k", "4k", "8k",
];

/// The alignment of generic objects of `size` bytes.
fn natural_align(size: usize) -> usize {
    (1usize << size.trailing_zeros()).min(PAGE_SIZE)
}

/// The generic caches.
///
/// # Invariants
///
/// `by_id[i]` is the generic cache with id `first_id + i`, for every generic cache.
pub(crate) struct Kmalloc {
    normal: KVec<Arc<SlabCache>>,
    dma: KVec<Arc<SlabCache>>,
    /// Every generic cache by id, from `first_id`: `kfree` finds an object's in one step.
    by_id: KVec<Option<Arc<SlabCache>>>,
    first_id: u32,
    pool: Arc<Pool>,
}

impl Kmalloc {
    /// Creates the generic caches and lists them in `caches`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(caches: &Caches, pool: &Arc<Pool>) -> Result<Self> {
        let mut normal = KVec::with_capacity(NAMES.len(), GFP_KERNEL)?;
        let mut dma = KVec::with_capacity(NAMES.len(), GFP_KERNEL)?;
        for (size, suffix) in KMALLOC_SIZES.iter().zip(NAMES) {
            for (kind, out, flags) in [
                ("", &mut normal, 0),
                ("dma-", &mut dma, crate::uapi::slab_flags::CACHE_DMA),
            ] {
                let mut name = [0u8; 32];
                let mut len = 0;
                for part in ["minimm-kmalloc-", kind, suffix] {
                    let to = name.get_mut(len..len + part.len()).ok_or(EINVAL)?;
                    to.copy_from_slice(part.as_bytes());
                    len += part.len();
                }
                let cfg = Config {
                    name: name.get(..len).ok_or(EINVAL)?,
                    object_size: *size,
                    // As Linux: power-of-two sizes naturally aligned (up to a page), others to
                    // their largest power-of-two divisor.
                    align: natural_align(*size),
                    flags,
                    ctor_seed: 0,
                    record: false,
                };
                out.push(caches.create(&cfg, pool)?, GFP_KERNEL)?;
            }
        }
        // Ids come in creation order, but another thread's cache may have taken one between
        // two of ours: place each by its id, then check that none is missing.
        let all = || Iterator::chain(normal.iter(), dma.iter());
        let first_id = all().map(|c| c.id()).min().unwrap_or(0);
        let mut by_id: KVec<Option<Arc<SlabCache>>> = KVec::new();
        by_id.resize(2 * NAMES.len(), None, GFP_KERNEL)?;
        for c in all() {
            let at = by_id
                .get_mut(c.id().checked_sub(first_id).ok_or(EINVAL)? as usize)
                .ok_or(EINVAL)?;
            *at = Some(c.clone());
        }
        if by_id.iter().any(Option::is_none) {
            return Err(EINVAL);
        }
        // INVARIANT: `by_id` holds every generic cache, ids consecutive from `first_id`.
        Ok(Self {
            normal,
            dma,
            by_id,
            first_id,
            pool: pool.clone(),
        })
    }

    /// Every generic cache.
    pub(crate) fn caches(&self) -> impl Iterator<Item = &Arc<SlabCache>> {
        Iterator::chain(self.normal.iter(), self.dma.iter())
    }

    /// The generic cache serving `size` bytes.
    pub(crate) fn cache_for(&self, size: usize, dma: bool) -> Option<&Arc<SlabCache>> {
        let k = kmalloc_class(size)?;
        if dma { &self.dma } else { &self.normal }.get(k)
    }

    /// The generic cache with id `id`.
    #[inline]
    fn cache_by_id(&self, id: u32) -> Option<&Arc<SlabCache>> {
        self.by_id
            .get(id.checked_sub(self.first_id)? as usize)?
            .as_ref()
    }

    /// `kmalloc`: `size` bytes (1 or more) from the generic caches, or from the pool above
    /// 8 KiB; `zero` as `__GFP_ZERO`. Returns the address.
    ///
    /// Context: as for [`SlabCache::alloc`].
    #[inline]
    pub(crate) fn kmalloc(&self, size: usize, gfp: Gfp, dma: bool, zero: bool) -> Result<usize> {
        // The common case first and small, the rest out of line (every `kmalloc` runs this).
        match self.cache_for(size, dma) {
            Some(c) if !zero => c.alloc(gfp),
            _ => self.kmalloc_slow(size, gfp, dma, zero),
        }
    }

    /// [`Kmalloc::kmalloc`] of zeroed memory, of 0 bytes or of a large block.
    #[inline(never)]
    fn kmalloc_slow(&self, size: usize, gfp: Gfp, dma: bool, zero: bool) -> Result<usize> {
        let addr = match self.cache_for(size, dma) {
            Some(c) => c.alloc(gfp)?,
            None if size == 0 => return Err(EINVAL),
            None => self.kmalloc_large(size, gfp, dma)?,
        };
        if zero {
            let n = self.ksize(addr).unwrap_or(size);
            // SAFETY: The object (or block) was just allocated for the caller, who has not seen
            // it yet: its `ksize` bytes are ours to write.
            unsafe { crate::slab_mem::bytes_mut(addr, n) }.fill(0);
        }
        Ok(addr)
    }

    /// `kcalloc`: `n * size` bytes, zeroed; `EINVAL` if the product overflows.
    pub(crate) fn kcalloc(&self, n: usize, size: usize, gfp: Gfp) -> Result<usize> {
        let bytes = n.checked_mul(size).ok_or(EINVAL)?;
        self.kmalloc(bytes, gfp, false, true)
    }

    fn kmalloc_large(&self, size: usize, gfp: Gfp, dma: bool) -> Result<usize> {
        let order = kmalloc_large_order(size, PAGE_SIZE);
        let zone = if dma {
            crate::zone::DMA
        } else {
            crate::zone::NORMAL
        };
        let block = self.pool.alloc_raw(order, zone, gfp.class)?;
        let Some(addr) = self.pool.block_addr(&block) else {
            self.pool.free_raw(block);
            return Err(EINVAL);
        };
        self.pool
            .set_tags(&block, (u64::from(LARGE) << 32) | u64::from(order));
        crate::slab_mem::leak_track(addr, PAGE_SIZE << order);
        Ok(addr)
    }

    /// The large block headed at `addr`, if it is one.
    fn large_at(&self, addr: usize) -> Option<(RawBlock, u32)> {
        let (tag, zone, index) = self.pool.tag_of(addr)?;
        if tag_cache(tag) != LARGE || addr % PAGE_SIZE != 0 {
            return None;
        }
        let order = tag as u32;
        // Blocks are aligned to their size in the zone's index space: a head page's index is.
        if index % (1 << order) != 0 {
            return None;
        }
        Some((self.pool.claim(zone, index, order)?, order))
    }

    /// `ksize`: the usable bytes of the object at `addr` (its size class, or the block).
    pub(crate) fn ksize(&self, addr: usize) -> Option<usize> {
        let (tag, zone, index) = self.pool.tag_of(addr)?;
        match tag_cache(tag) {
            LARGE => {
                let order = tag as u32;
                (addr % PAGE_SIZE == 0 && index % (1 << order) == 0 && zone < 3)
                    .then_some(PAGE_SIZE << order)
            }
            id => self.cache_by_id(id).map(|c| c.geometry().object_size),
        }
    }

    /// `kfree`: frees what [`Kmalloc::kmalloc`] returned. Anything else is refused and
    /// reported (`EINVAL`), nothing changed.
    ///
    /// Context: as for [`SlabCache::free`].
    #[inline]
    pub(crate) fn kfree(&self, addr: usize) -> Result {
        // A generic object: its page's tag names its cache (the common case, inline).
        if let Some((tag, _, page)) = self.pool.tag_of(addr) {
            if let Some(c) = self.cache_by_id(tag_cache(tag)) {
                return c.free_tagged(addr, tag, page);
            }
        }
        self.kfree_slow(addr)
    }

    /// [`Kmalloc::kfree`] of a large block, or of something `kmalloc` did not return.
    #[inline(never)]
    fn kfree_slow(&self, addr: usize) -> Result {
        let Some((tag, _, _)) = self.pool.tag_of(addr) else {
            pr_err!("kfree: a pointer outside minimm's pool\n");
            return Err(EINVAL);
        };
        match tag_cache(tag) {
            LARGE => {
                let Some((block, _order)) = self.large_at(addr) else {
                    pr_err!("kfree: a pointer inside a large allocation\n");
                    return Err(EINVAL);
                };
                self.pool.set_tags(&block, 0);
                crate::slab_mem::leak_untrack(addr);
                self.pool.free_raw(block);
                Ok(())
            }
            id => {
                pr_err!("kfree: an object of cache id {id}, not a generic cache\n");
                Err(EINVAL)
            }
        }
    }

    /// `krealloc`: an object of `size` bytes holding the first `min(old, size)` bytes of the
    /// one at `addr` (kept if it is large enough already), the old one freed; `addr` 0 is a
    /// plain `kmalloc`. On failure the old object is untouched.
    pub(crate) fn krealloc(&self, addr: usize, size: usize, gfp: Gfp) -> Result<usize> {
        if addr == 0 {
            return self.kmalloc(size, gfp, false, false);
        }
        let old = self.ksize(addr).ok_or(EINVAL)?;
        if size <= old && size > 0 && kmalloc_class(size) == kmalloc_class(old) {
            return Ok(addr);
        }
        let new = self.kmalloc(size, gfp, false, false)?;
        // SAFETY: Both are live allocations of the caller's, at least `min(old, size)` bytes
        // each, distinct, and nobody else writes them.
        unsafe { crate::slab_mem::copy(addr, new, old.min(size)) };
        self.kfree(addr)?;
        Ok(new)
    }
}

/// The module's generic caches for [`Minimm`], set at load and cleared before they go.
static GENERIC: Atomic<usize> = Atomic::new(0);

/// Publishes `k` as the caches behind [`Minimm`] until the returned guard is dropped, which
/// puts back what was published before (a KUnit test publishes its own for a moment).
///
/// # Safety
///
/// `k` outlives the guard, and guards are dropped in the reverse order of their creation.
pub(crate) unsafe fn publish(k: &Kmalloc) -> Published {
    Published(GENERIC.xchg(core::ptr::from_ref(k) as usize, Relaxed))
}

/// Puts back the caches published before when dropped.
pub(crate) struct Published(usize);

impl Drop for Published {
    fn drop(&mut self) {
        GENERIC.store(self.0, Relaxed);
    }
}

fn generic() -> Option<&'static Kmalloc> {
    let p = GENERIC.load(Relaxed) as *const Kmalloc;
    // SAFETY: Non-null only between `publish` and the guard's drop, while the `Kmalloc` lives
    // (`publish`'s contract); module code using `Minimm` drops its containers before then.
    unsafe { p.as_ref() }
}

/// minimm's generic caches as a `kernel::alloc::Allocator`: `Box<T, Minimm>`,
/// `Vec<T, Minimm>` live in minimm memory. `GFP_ATOMIC`/`GFP_NOWAIT` requests use the atomic
/// reserve and never sleep; `__GFP_ZERO` zeroes.
pub(crate) struct Minimm;

// SAFETY: `realloc` returns memory of at least `layout.size()` bytes aligned to
// `layout.align()` (generic objects are aligned to their size class for powers of two, at
// least 8 bytes, and larger alignments are refused), valid until freed or reallocated, with
// the old contents kept up to the smaller size; `free` accepts what `realloc` returned.
unsafe impl Allocator for Minimm {
    const MIN_ALIGN: usize = 8;

    unsafe fn realloc(
        ptr: Option<NonNull<u8>>,
        layout: Layout,
        old_layout: Layout,
        flags: Flags,
        _nid: NumaNode,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let k = generic().ok_or(AllocError)?;
        if layout.size() == 0 {
            if let Some(p) = ptr {
                if old_layout.size() > 0 {
                    let _ = k.kfree(p.as_ptr() as usize);
                }
            }
            return Ok(NonNull::slice_from_raw_parts(NonNull::dangling(), 0));
        }
        // A size class is aligned to its largest power-of-two divisor (96 and 192: 32 and 64),
        // a large block to a page.
        let size = layout.size().max(layout.align());
        let class_align = |n: usize| match kmalloc_class(n) {
            Some(k) => KMALLOC_SIZES.get(k).map_or(8, |&c| natural_align(c)),
            None => PAGE_SIZE,
        };
        if layout.align() > class_align(size) {
            return Err(AllocError);
        }
        let gfp = if flags.contains(GFP_KERNEL) {
            Gfp::KERNEL
        } else {
            Gfp::ATOMIC
        };
        let zero = flags.contains(__GFP_ZERO);
        let old = ptr.filter(|_| old_layout.size() > 0);
        let addr = match old {
            None => k.kmalloc(size, gfp, false, zero),
            Some(p) => {
                let addr = k.krealloc(p.as_ptr() as usize, size, gfp);
                if let (Ok(a), true) = (addr, zero) {
                    if size > old_layout.size() {
                        // SAFETY: The tail beyond the old contents is the caller's new memory.
                        unsafe {
                            crate::slab_mem::bytes_mut(
                                a + old_layout.size(),
                                size - old_layout.size(),
                            )
                        }
                        .fill(0);
                    }
                }
                addr
            }
        }
        .map_err(|_| AllocError)?;
        let p = NonNull::new(addr as *mut u8).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }
}
