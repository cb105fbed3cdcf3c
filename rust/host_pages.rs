// SPDX-License-Identifier: GPL-2.0

//! Pages borrowed from the host kernel: the one place that calls the host's page allocator.
//!
//! A [`HostChunk`] is 2^order physically contiguous pages from `alloc_pages`, split with
//! `split_page` into independent order-0 pages, so that each page can be mapped into user
//! space with `vm_insert_page` and keeps its own reference count. Dropping the block gives
//! every page back with `__free_pages(page, 0)`. A page that user space still maps holds an
//! extra reference of its own, so the host frees it only when that mapping is gone too.
//!
//! The physical address comes from the page's place in the `vmemmap` array (x86_64 with
//! SPARSEMEM_VMEMMAP, which the test kernel has); a KUnit test checks it against the kernel's
//! own page-table walk (`slow_virt_to_phys`).

use core::ptr::NonNull;

use kernel::{
    bindings,
    page::{BorrowedPage, PAGE_SIZE},
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::zone;

/// Pages borrowed from the host, and given back, over the module's life.
pub(crate) static BORROWED_PAGES: Atomic<usize> = Atomic::new(0);
pub(crate) static RETURNED_PAGES: Atomic<usize> = Atomic::new(0);

const GFP_DMA: bindings::gfp_t = 1 << bindings::___GFP_DMA_BIT;
const GFP_DMA32: bindings::gfp_t = 1 << bindings::___GFP_DMA32_BIT;
const GFP_NORETRY: bindings::gfp_t = 1 << bindings::___GFP_NORETRY_BIT;

/// The host allocation flags that ask for memory of `zone`: `GFP_DMA`, `GFP_DMA32` or none.
/// The host may still answer from a lower zone, so blocks are classified by address.
fn zone_gfp(zone: usize) -> bindings::gfp_t {
    let modifier = match zone {
        zone::DMA => GFP_DMA,
        zone::DMA32 => GFP_DMA32,
        _ => 0,
    };
    // Large orders are a best effort: no retrying or compaction storms at load.
    bindings::GFP_KERNEL | bindings::__GFP_NOWARN | GFP_NORETRY | modifier
}

/// A chunk: 2^order contiguous pages borrowed from the host in one `alloc_pages`, the unit in
/// which the pool borrows and gives back (a buddy block never grows past its chunk).
///
/// # Invariants
///
/// `first` is the first `struct page` of 2^`order` physically contiguous pages that this
/// block owns, split into order-0 pages (each holds one reference that is this block's).
pub(crate) struct HostChunk {
    first: NonNull<bindings::page>,
    order: u32,
}

// SAFETY: A `HostChunk` only holds pointers to `struct page`s, which are valid on every CPU;
// giving the pages back from another thread is allowed.
unsafe impl Send for HostChunk {}
// SAFETY: `&HostChunk` only gives out `BorrowedPage`s, through which a page's contents are
// only touched in `unsafe` code whose callers serialise the kernel's accesses (`read_words`,
// `write_words`, `PoolBlock::zero`); the chunk itself is never changed through a shared
// reference.
unsafe impl Sync for HostChunk {}

impl HostChunk {
    /// Borrows 2^`order` pages for `zone` (a `zone::*` index).
    ///
    /// Context: process context, may sleep.
    pub(crate) fn alloc(zone: usize, order: u32) -> Option<Self> {
        if order > crate::buddy::MAX_ORDER {
            return None;
        }
        // An injected failure is a NULL from the host: nothing borrowed, nothing counted.
        if crate::fail::should_fail(crate::fail::Point::HostBorrow) {
            return None;
        }
        // SAFETY: `alloc_pages` may be called with any flags and an order below MAX_PAGE_ORDER
        // (10 on x86_64) from process context.
        let first = NonNull::new(unsafe { bindings::alloc_pages(zone_gfp(zone), order) })?;
        if order > 0 {
            // SAFETY: `first` heads a non-compound block of 2^order pages that we own.
            unsafe { bindings::split_page(first.as_ptr(), order) };
        }
        BORROWED_PAGES.add(1usize << order, Relaxed);
        // INVARIANT: we own the 2^order pages at `first`, now split.
        Some(Self { first, order })
    }

    /// The block's order.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Number of pages.
    pub(crate) fn pages(&self) -> usize {
        1 << self.order
    }

    /// The page frame number of the first page.
    pub(crate) fn pfn(&self) -> u64 {
        page_to_pfn(self.first.as_ptr())
    }

    /// The physical address range of the block.
    pub(crate) fn phys(&self) -> (u64, u64) {
        (
            self.pfn() << kernel::page::PAGE_SHIFT,
            (self.pages() * PAGE_SIZE) as u64,
        )
    }

    /// The `i`-th page, or `None` past the end.
    pub(crate) fn page(&self, i: usize) -> Option<BorrowedPage<'_>> {
        if i >= self.pages() {
            return None;
        }
        // SAFETY: By the type invariant the block's `struct page`s are contiguous (one
        // `vmemmap` run) and `i` is inside the block.
        let p = unsafe { self.first.add(i) };
        // SAFETY: `p` is a page this block owns; it stays allocated while `self` is borrowed.
        Some(unsafe { BorrowedPage::from_raw(p) })
    }
}

impl Drop for HostChunk {
    fn drop(&mut self) {
        for i in 0..self.pages() {
            // SAFETY: By the type invariant the split pages `first..first + 2^order` are ours,
            // each with the one reference we give back here. A page still mapped in user space
            // has its own reference and is freed when that mapping goes.
            unsafe { bindings::__free_pages(self.first.as_ptr().add(i), 0) };
        }
        RETURNED_PAGES.add(self.pages(), Relaxed);
    }
}

/// Reads `page` as 512 64-bit words, in order, passing each to `f`.
///
/// User space may be writing the page through a mapping meanwhile, so each word is read with
/// one volatile, aligned 64-bit load, as `READ_ONCE` does: a racing write from user space can
/// change which value is read, not make the read undefined.
///
/// # Safety
///
/// Nothing else in the kernel reads or writes the page's contents while this runs (user space
/// through mappings may); `f` leaves kmap_local mappings balanced (it maps nothing, or unmaps
/// what it maps).
pub(crate) unsafe fn read_words(page: &kernel::page::Page, mut f: impl FnMut(u64)) {
    // SAFETY: `page` is a valid page (no HIGHMEM on x86_64: this is its direct-map address);
    // unmapped below before `page`'s borrow ends.
    let va = unsafe { bindings::kmap_local_page(page.as_ptr()) }.cast::<u64>();
    for k in 0..PAGE_SIZE / 8 {
        // SAFETY: `va` maps the whole page, page-aligned, so `va + k` for `k < PAGE_SIZE / 8`
        // is in bounds and aligned; no other kernel access races with it (the caller's
        // obligation), and user space's through a mapping only changes the value read.
        f(unsafe { core::ptr::read_volatile(va.add(k)) });
    }
    // SAFETY: Unmapping what was mapped above; it is the innermost kmap_local mapping again,
    // as `f` leaves those balanced (the caller's obligation).
    unsafe { bindings::kunmap_local(va.cast()) };
}

/// Writes `page` as 512 64-bit words, the `k`-th being `f(k)`, each with one volatile, aligned
/// 64-bit store (`WRITE_ONCE`), for the same reason as [`read_words`].
///
/// # Safety
///
/// The page's contents are the caller's to change (a page of a block it owns), nothing else in
/// the kernel reads or writes them while this runs (user space through mappings may), and `f`
/// leaves kmap_local mappings balanced.
pub(crate) unsafe fn write_words(page: &kernel::page::Page, mut f: impl FnMut(usize) -> u64) {
    // SAFETY: As in `read_words`.
    let va = unsafe { bindings::kmap_local_page(page.as_ptr()) }.cast::<u64>();
    for k in 0..PAGE_SIZE / 8 {
        // SAFETY: As in `read_words`; the contents are ours to change (the caller's
        // obligation), and user space may read or write the word concurrently.
        unsafe { core::ptr::write_volatile(va.add(k), f(k)) };
    }
    // SAFETY: As in `read_words`.
    unsafe { bindings::kunmap_local(va.cast()) };
}

/// How many references `page` has (`page_ref_count`, an inline without a binding).
pub(crate) fn page_refcount(page: &kernel::page::Page) -> i32 {
    // SAFETY: `page.as_ptr()` is a valid `struct page` for as long as `page` is borrowed;
    // `_refcount` is an `atomic_t`, read here with one aligned volatile load as `atomic_read`
    // does.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*page.as_ptr())._refcount.counter)) }
}

/// The host's free pages now, as `si_meminfo` reports them.
pub(crate) fn host_free_pages() -> usize {
    let mut info = core::mem::MaybeUninit::<bindings::sysinfo>::zeroed();
    // SAFETY: `si_meminfo` fills the struct it is given; `info` is valid for writes.
    unsafe { bindings::si_meminfo(info.as_mut_ptr()) };
    // SAFETY: zeroed, then filled by `si_meminfo`; every bit pattern is a valid `sysinfo`.
    let info = unsafe { info.assume_init() };
    let bytes = (info.freeram as usize).saturating_mul(info.mem_unit.max(1) as usize);
    bytes / PAGE_SIZE
}

/// `page_to_pfn` on x86_64 with SPARSEMEM_VMEMMAP: the page's index in the `vmemmap` array.
pub(crate) fn page_to_pfn(page: *const bindings::page) -> u64 {
    // SAFETY: `vmemmap_base` is written once during early boot and only read afterwards.
    let base = unsafe { core::ptr::addr_of!(bindings::vmemmap_base).read() } as usize;
    ((page as usize).wrapping_sub(base) / core::mem::size_of::<bindings::page>()) as u64
}

/// The direct-map address of page frame `pfn` (`pfn_to_virt`, `page_address` for lowmem:
/// x86_64 has no highmem).
pub(crate) fn pfn_to_virt(pfn: u64) -> usize {
    // SAFETY: `page_offset_base` is written once during early boot and only read afterwards.
    let base = unsafe { core::ptr::addr_of!(bindings::page_offset_base).read() } as usize;
    base.wrapping_add((pfn as usize) << kernel::page::PAGE_SHIFT)
}

/// The page frame of a direct-map address (`virt_to_pfn`), `None` for an address below the
/// direct map.
#[inline]
pub(crate) fn virt_to_pfn(addr: usize) -> Option<u64> {
    // SAFETY: As in `pfn_to_virt`.
    let base = unsafe { core::ptr::addr_of!(bindings::page_offset_base).read() } as usize;
    Some((addr.checked_sub(base)? >> kernel::page::PAGE_SHIFT) as u64)
}

#[kunit_tests(minimm_host_pages)]
mod tests {
    use super::*;

    /// The pfn computed from `vmemmap` agrees with the kernel's page-table walk, for every
    /// page of a borrowed block, and the pages are physically contiguous.
    #[test]
    fn pfn_matches_the_kernels_own() -> Result {
        let b = HostChunk::alloc(zone::NORMAL, 2).ok_or(ENOMEM)?;
        for i in 0..b.pages() {
            let p = b.page(i).ok_or(EINVAL)?;
            // SAFETY: the page is ours and in the direct map (no HIGHMEM on x86_64).
            let va = unsafe { bindings::kmap_local_page(p.as_ptr()) };
            // SAFETY: `va` is a direct-map address.
            let phys = unsafe { bindings::slow_virt_to_phys(va) };
            // The direct map both ways, as the slab caches use it.
            assert_eq!(pfn_to_virt(b.pfn() + i as u64), va as usize);
            assert_eq!(virt_to_pfn(va as usize + 4095), Some(b.pfn() + i as u64));
            // SAFETY: unmapping what was mapped just above.
            unsafe { bindings::kunmap_local(va) };
            assert_eq!(page_to_pfn(p.as_ptr()), phys >> kernel::page::PAGE_SHIFT);
            assert_eq!(page_to_pfn(p.as_ptr()), b.pfn() + i as u64);
        }
        // An order-2 block is aligned to 4 pages.
        assert_eq!(b.pfn() % 4, 0);
        Ok(())
    }

    /// GFP_DMA blocks lie below 16 MiB and GFP_DMA32 blocks below 4 GiB.
    #[test]
    fn zone_flags_give_zone_addresses() -> Result {
        if let Some(b) = HostChunk::alloc(zone::DMA, 0) {
            let (start, len) = b.phys();
            assert_eq!(zone::classify(start, len), Some(zone::DMA));
        }
        let b = HostChunk::alloc(zone::DMA32, 3).ok_or(ENOMEM)?;
        let (start, len) = b.phys();
        assert!(start + len <= 4 << 30);
        assert_ne!(zone::classify(start, len), Some(zone::NORMAL));
        Ok(())
    }

    #[test]
    fn orders_above_max_are_refused() {
        assert!(HostChunk::alloc(zone::NORMAL, crate::buddy::MAX_ORDER + 1).is_none());
    }
}
