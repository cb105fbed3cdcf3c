// SPDX-License-Identifier: GPL-2.0

//! The vmalloc-like mapper: pool pages, wherever they are, behind one contiguous kernel
//! mapping.
//!
//! As Linux's `__vmalloc_node_range`: an area of N pages takes them from the highest zone the
//! request allows (NORMAL by default), falling back zone by zone under the buddy's watermark
//! rules, order-0 pages in batches through the per-CPU lists (`Pool::alloc_bulk`, one list
//! lock round trip per batch of 64, as `vm_area_alloc_pages` calls `alloc_pages_bulk`), or,
//! with large blocks first, the largest blocks the zones have (each order tried down to 0),
//! which cuts the runs a mapping crosses. The pages are then mapped contiguously with the
//! host's `vmap` (a module cannot build kernel page tables itself in 7.3: `init_mm` and
//! `get_vm_area` are not exported), which leaves an unmapped guard page after the area; the
//! virtual range is the host's, everything else (the pages, their zones, the area records in
//! minimm's cache `minimm_vm_area`, their address-ordered tree, accounting, teardown) is
//! minimm's.
//!
//! Failure is clean: an area that cannot get all its pages (or its mapping, or its record)
//! gives back every page it took and leaves no record.
//!
//! # Locks
//!
//! `Vmalloc::tree` (a mutex) orders the live areas by address; nothing is allocated under it
//! (tree nodes are reserved before) and no other minimm lock is taken with it. An area's pages
//! come and go with no lock of this file held.

use core::{
    ffi::{c_uint, c_ulong, c_void},
    fmt,
};

use core::sync::atomic::AtomicBool;
use kernel::{
    bindings, new_mutex,
    page::{BorrowedPage, PAGE_SIZE},
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

use crate::{
    fail::{self, Point},
    pool::{Pool, PoolBlock, RawBlock},
    record::{Rec, RecordCache},
    slab_cache::Caches,
    vm_area::{self, Place, Scatter},
    zone::{Reserve, NR_ZONES},
};

/// The most pages one area may have (4 GiB): bounds the page arrays before any allocation.
pub(crate) const MAX_AREA_PAGES: usize = 1 << 20;

/// Order-0 pages taken per trip to the per-CPU lists.
const BATCH: usize = 64;

extern "C" {
    // `struct page **pages`, spelled with `void` (bindgen's `page` trips the FFI lint).
    fn vmap(
        pages: *mut *mut c_void,
        count: c_uint,
        flags: c_ulong,
        prot: bindings::pgprot_t,
    ) -> *mut c_void;
    fn vunmap(addr: *const c_void);
}

/// `VM_MAP` (include/linux/vmalloc.h): what `vmap` callers pass.
const VM_MAP: c_ulong = 0x4;

/// x86_64's `PAGE_KERNEL`: present, writable, accessed, dirty, global, not executable, with
/// the memory-encryption bit where there is one, masked as `__pgprot_mask` does. (minimm
/// builds for x86_64 only: its zones are x86_64's.)
#[cfg(CONFIG_X86_64)]
fn page_kernel() -> bindings::pgprot_t {
    let bits: bindings::pteval_t = (1 << bindings::_PAGE_BIT_PRESENT)
        | (1 << bindings::_PAGE_BIT_RW)
        | (1 << bindings::_PAGE_BIT_ACCESSED)
        | (1 << bindings::_PAGE_BIT_DIRTY)
        | (1 << bindings::_PAGE_BIT_GLOBAL)
        | (1 << bindings::_PAGE_BIT_NX);
    #[cfg(CONFIG_AMD_MEM_ENCRYPT)]
    // SAFETY: Set once at boot, read-only afterwards.
    let bits = bits | unsafe { bindings::sme_me_mask } as bindings::pteval_t;
    // SAFETY: Set once at boot, read-only afterwards.
    let mask = unsafe { core::ptr::addr_of!(bindings::__default_kernel_pte_mask).read() };
    bindings::pgprot_t {
        pgprot: (bits & mask) as _,
    }
}

/// How an area is allocated.
#[derive(Clone, Copy)]
pub(crate) struct Options {
    /// The highest zone its pages may come from.
    pub(crate) highest: usize,
    /// The watermark reserve it may dig into (`ATOMIC`, `NOWAIT` as for blocks).
    pub(crate) class: Reserve,
    /// The largest blocks first, rather than order-0 pages.
    pub(crate) large: bool,
    /// Zero the pages (always for anything user space can see).
    pub(crate) zero: bool,
}

/// The mapper's counters (debugfs `vmstat`).
pub(crate) struct Counters {
    /// Pages in live areas (Linux's `nr_vmalloc`).
    pub(crate) pages: Atomic<usize>,
    /// Live areas.
    pub(crate) areas: Atomic<usize>,
    /// Areas handed out and freed since load.
    pub(crate) created: Atomic<u64>,
    pub(crate) freed: Atomic<u64>,
    /// Creations that failed (no pages, no mapping, no record).
    pub(crate) failed: Atomic<u64>,
}

/// An area's blocks, given back to the pool when dropped: in bulk, and, if the area was ever
/// mapped to user space, with the rule of blocks for pages still referenced from outside
/// (held, not reused).
pub(crate) struct Taken {
    pool: Arc<Pool>,
    blocks: KVVec<Option<RawBlock>>,
}

impl Taken {
    /// Gives every block back; `mapped`: whether the pages were ever mapped to user space.
    fn give_back(&mut self, mapped: bool) {
        self.pool.give_back(&mut self.blocks, mapped);
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // Blocks still here were never mapped to user space: a failed area's, or ones an
        // area's drop did not give back yet (it does, with `mapped` known).
        self.give_back(false);
    }
}

/// A struct page of an area.
#[repr(transparent)]
struct PagePtr(*mut bindings::page);

/// An area: its pages and their kernel mapping. The record lives in `minimm_vm_area`.
///
/// # Invariants
///
/// `addr` is the start of a `vmap` mapping of `pages` (in order, then a guard page) that this
/// area made and only its drop removes. `blocks` own every page of `pages`, given back only
/// by the drop, or none: a borrowed area ([`VmArea::borrowed`], a discardable area's mapping
/// while it is pinned, `reclaim.rs`), whose pages' owner drops the area before any of them.
pub(crate) struct VmArea {
    addr: usize,
    pages: KVVec<PagePtr>,
    blocks: Taken,
    scatter: Scatter,
    /// Whether a user mapping of the area was ever made (then its pages may be pinned when
    /// it goes: see [`Taken`]).
    user_mapped: AtomicBool,
    large: bool,
    /// What made it (vmallocinfo's caller column).
    caller: &'static str,
    /// The task that made it and when (page_owner).
    pid: i32,
    tgid: i32,
    comm: [u8; 16],
    ts_ns: i64,
    counters: Arc<Counters>,
}

// SAFETY: The page pointers name pool pages that stay the area's for its whole life (owned
// through `blocks`, or, borrowed, by the owner, which drops the area first: type invariant);
// nothing in the area is tied to a thread.
unsafe impl Send for VmArea {}
// SAFETY: As above; shared access only reads.
unsafe impl Sync for VmArea {}

impl VmArea {
    /// Whether the area maps pages it does not own (a discardable area's): an area has at
    /// least one page, so one that owns them has a block.
    fn borrowed(&self) -> bool {
        self.blocks.blocks.is_empty()
    }

    /// The start of the kernel mapping.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    /// Pages (the guard page not counted).
    pub(crate) fn nr_pages(&self) -> usize {
        self.pages.len()
    }

    /// Bytes mapped (the guard page not counted).
    pub(crate) fn size(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Pages per zone and physically contiguous runs.
    pub(crate) fn scatter(&self) -> &Scatter {
        &self.scatter
    }

    /// Notes that user space maps the area (its pages may be pinned when it goes).
    pub(crate) fn note_user_mapping(&self) {
        self.user_mapped
            .store(true, core::sync::atomic::Ordering::Relaxed);
    }

    /// The `i`-th page, as `vmalloc_to_page` would give it for an address in it.
    pub(crate) fn page(&self, i: usize) -> Option<BorrowedPage<'_>> {
        let p = self.pages.get(i)?;
        // SAFETY: `p` is a page of this area's (type invariant: owned by it or by the owner
        // that drops the area first), valid while `self` is
        // borrowed.
        Some(unsafe { BorrowedPage::from_raw(core::ptr::NonNull::new(p.0)?) })
    }

    /// The page holding kernel address `addr`, `None` outside the area (its guard page too):
    /// `vmalloc_to_page` over minimm's own records.
    pub(crate) fn page_at(&self, addr: usize) -> Option<BorrowedPage<'_>> {
        match vm_area::place(addr, self.addr, self.pages.len(), PAGE_SIZE) {
            Place::Page { index, .. } => self.page(index),
            Place::Guard | Place::Outside => None,
        }
    }

    /// The struct page pointers, for `vm_insert_pages`.
    ///
    /// # Safety
    ///
    /// The caller only reads through the pointers (and hands them to the kernel's page
    /// insertion, which takes its own references).
    pub(crate) unsafe fn page_array(&self) -> *const *mut bindings::page {
        self.pages.as_ptr().cast()
    }

    /// Copies the first `min(self.size(), src.size())` bytes of `src` into `self` through the
    /// two kernel mappings, a 64-bit word at a time with volatile loads and stores (user space
    /// may write `src` through a mapping meanwhile, as in [`VmArea::read_words`]).
    ///
    /// # Safety
    ///
    /// `self`'s bytes are the caller's to change and nothing else in the kernel touches either
    /// area's bytes while this runs.
    pub(crate) unsafe fn copy_from(&self, src: &VmArea) {
        let (from, to) = (src.addr as *const u64, self.addr as *mut u64);
        for k in 0..self.size().min(src.size()) / 8 {
            // SAFETY: Both ranges are mapped (type invariant) for at least `k + 1` words,
            // aligned; `self` is the caller's to change.
            unsafe { core::ptr::write_volatile(to.add(k), core::ptr::read_volatile(from.add(k))) };
        }
    }

    /// The area's bytes through its kernel mapping: 64-bit words, each read with one volatile
    /// load (user space may write them through a mapping meanwhile, as in
    /// `host_pages::read_words`).
    ///
    /// # Safety
    ///
    /// Nothing else in the kernel writes the area's bytes while this runs.
    pub(crate) unsafe fn read_words(&self, mut f: impl FnMut(u64)) {
        let va = self.addr as *const u64;
        for k in 0..self.size() / 8 {
            // SAFETY: `va..va + size` is mapped (type invariant), page-aligned; user space's
            // writes only change the value read.
            f(unsafe { core::ptr::read_volatile(va.add(k)) });
        }
    }

    /// Writes the area's bytes through its kernel mapping, the `k`-th 64-bit word being
    /// `f(k)`, each with one volatile store.
    ///
    /// # Safety
    ///
    /// The area's contents are the caller's to change, and nothing else in the kernel reads
    /// or writes them while this runs (user space through mappings may).
    pub(crate) unsafe fn write_words(&self, mut f: impl FnMut(usize) -> u64) {
        let va = self.addr as *mut u64;
        for k in 0..self.size() / 8 {
            // SAFETY: As in `read_words`; the bytes are ours to change.
            unsafe { core::ptr::write_volatile(va.add(k), f(k)) };
        }
    }
}

impl Drop for VmArea {
    /// The mapping goes first, then the pages (held while something outside minimm still
    /// references one, as for blocks).
    ///
    /// Context: process context (`vunmap` may sleep).
    fn drop(&mut self) {
        // SAFETY: `addr` is this area's own live `vmap` mapping (type invariant), unmapped
        // once, here.
        unsafe { vunmap(self.addr as *const c_void) };
        self.counters.pages.fetch_sub(self.pages.len(), Relaxed);
        self.counters.areas.fetch_sub(1, Relaxed);
        // Ordered before this drop by the last reference's release (the refcount).
        let mapped = self.user_mapped.load(core::sync::atomic::Ordering::Relaxed);
        self.blocks.give_back(mapped);
    }
}

/// The module's areas, by address.
#[pin_data]
pub(crate) struct Vmalloc {
    pool: Arc<Pool>,
    records: RecordCache<VmArea>,
    #[pin]
    tree: Mutex<RBTree<usize, Rec<VmArea>>>,
    pub(crate) counters: Arc<Counters>,
}

/// An area handed out: dropping it takes the area out of the tree and, with the last
/// reference to its record, unmaps it and gives its pages back.
pub(crate) struct Area {
    rec: Rec<VmArea>,
    vm: Arc<Vmalloc>,
}

impl core::ops::Deref for Area {
    type Target = VmArea;

    fn deref(&self) -> &VmArea {
        &self.rec
    }
}

impl Drop for Area {
    /// Context: process context.
    fn drop(&mut self) {
        let node = self.vm.tree.lock().remove_node(&self.rec.addr);
        // The tree's reference goes outside the lock.
        drop(node);
        self.vm.counters.freed.fetch_add(1, Relaxed);
    }
}

impl Vmalloc {
    /// The mapper, with its record cache `minimm_vm_area` in `caches`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(
        caches: &Caches,
        pool: &Arc<Pool>,
    ) -> Result<impl PinInit<Self, Error> + use<>> {
        let records = RecordCache::new(caches, pool, b"minimm_vm_area")?;
        let counters = Arc::new(
            Counters {
                pages: Atomic::new(0),
                areas: Atomic::new(0),
                created: Atomic::new(0),
                freed: Atomic::new(0),
                failed: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let pool = pool.clone();
        Ok(try_pin_init!(Self {
            pool,
            records,
            tree <- new_mutex!(RBTree::new(), "minimm_vmalloc_tree"),
            counters,
        }))
    }

    /// Creates an area of `pages` pages (1..=[`MAX_AREA_PAGES`]): the pages from the pool,
    /// the mapping from the host, the record from `minimm_vm_area`.
    ///
    /// Errors: `EINVAL` (0 pages, too many, a zone that does not exist); `ENOMEM` (the pool
    /// cannot give every page, the host no mapping, no record), with everything taken given
    /// back.
    ///
    /// Context: process context, may sleep (the page arrays, the mapping), also with
    /// `Reserve::Atomic` (which only chooses the reserve the pages may use).
    pub(crate) fn create(
        self: &Arc<Self>,
        pages: usize,
        opts: Options,
        caller: &'static str,
    ) -> Result<Area> {
        if pages == 0 || pages > MAX_AREA_PAGES || opts.highest >= NR_ZONES {
            return Err(EINVAL);
        }
        self.count_failure(self.try_create(pages, opts, caller))
    }

    /// `r`, counted in `vmalloc_fail` if it is an error.
    fn count_failure<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.counters.failed.fetch_add(1, Relaxed);
        }
        r
    }

    fn try_create(
        self: &Arc<Self>,
        pages: usize,
        opts: Options,
        caller: &'static str,
    ) -> Result<Area> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let (blocks, ptrs, scatter) = self.take_pages(pages, opts)?;
        self.map(node, blocks, ptrs, scatter, opts, caller)
    }

    /// Takes `pages` order-0 pages for a discardable area, zeroed, each its own block (so that
    /// reclaim can purge them one by one), from zone `opts.highest` down; `opts.large` is
    /// ignored. Nothing is mapped: see [`Vmalloc::map_borrowed`].
    ///
    /// Errors: as for [`Vmalloc::create`], with every page taken given back.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn take_loose(
        &self,
        pages: usize,
        opts: Options,
    ) -> Result<KVVec<Option<PoolBlock>>> {
        if pages == 0 || pages > MAX_AREA_PAGES || opts.highest >= NR_ZONES {
            return Err(EINVAL);
        }
        let opts = Options {
            large: false,
            ..opts
        };
        let r = (|| {
            let (mut taken, _, _) = self.take_pages(pages, opts)?;
            let mut loose = KVVec::with_capacity(pages, GFP_KERNEL)?;
            for slot in taken.blocks.iter_mut() {
                if let Some(raw) = slot.take() {
                    let block = self.pool.own(raw);
                    if opts.zero {
                        // SAFETY: The block was just taken; nobody else reaches it.
                        unsafe { block.zero()? };
                    }
                    // Within the capacity: one slot per page taken.
                    loose
                        .push_within_capacity(Some(block))
                        .map_err(|_| EINVAL)?;
                }
            }
            Ok(loose)
        })();
        self.count_failure(r)
    }

    /// Maps the pages of a discardable area (`loose`, every slot filled, each an order-0
    /// block) as an area that does not own them: the caller keeps them, and drops the area
    /// before any of them.
    ///
    /// Errors: `EINVAL` (a slot empty or not order 0), `ENOMEM` (no mapping, no record).
    ///
    /// Context: process context, may sleep.
    pub(crate) fn map_borrowed(
        self: &Arc<Self>,
        loose: &[Option<PoolBlock>],
        highest: usize,
        caller: &'static str,
    ) -> Result<Area> {
        let r = (|| {
            let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
            let mut ptrs = KVVec::with_capacity(loose.len(), GFP_KERNEL)?;
            let mut scatter = Scatter::default();
            for b in loose {
                let b = b.as_ref().filter(|b| b.order() == 0).ok_or(EINVAL)?;
                let page = b.page(0).ok_or(EINVAL)?;
                scatter.add(crate::host_pages::page_to_pfn(page.as_ptr()), b.zone());
                ptrs.push_within_capacity(PagePtr(page.as_ptr()))
                    .map_err(|_| EINVAL)?;
            }
            let blocks = Taken {
                pool: self.pool.clone(),
                blocks: KVVec::new(),
            };
            let opts = Options {
                highest,
                class: Reserve::Normal,
                large: false,
                zero: false,
            };
            self.map(node, blocks, ptrs, scatter, opts, caller)
        })();
        self.count_failure(r)
    }

    /// Maps `ptrs` (whose pages `blocks` own, or, `blocks` empty, the caller keeps) and makes
    /// the area's record and tree entry.
    fn map(
        self: &Arc<Self>,
        node: RBTreeNodeReservation<usize, Rec<VmArea>>,
        blocks: Taken,
        ptrs: KVVec<PagePtr>,
        scatter: Scatter,
        opts: Options,
        caller: &'static str,
    ) -> Result<Area> {
        let pages = ptrs.len();
        if fail::should_fail(Point::VmMap) {
            return Err(ENOMEM);
        }
        let count = c_uint::try_from(pages).map_err(|_| EINVAL)?;
        let mut ptrs = ptrs;
        // SAFETY: `ptrs` holds `count` valid struct pages, owned by `blocks` or (none there)
        // by the caller, which drops the area before them; `vmap`
        // maps them in order with `PAGE_KERNEL` after an unmapped guard page's worth of
        // address space is reserved after them, and takes no ownership of the array.
        let va = unsafe { vmap(ptrs.as_mut_ptr().cast(), count, VM_MAP, page_kernel()) };
        if va.is_null() {
            return Err(ENOMEM);
        }
        // Counted with the mapping, uncounted when the area drops (with its record, or here
        // without one); `created` and `freed` count the areas handed out.
        self.counters.pages.fetch_add(pages, Relaxed);
        self.counters.areas.fetch_add(1, Relaxed);
        // INVARIANT: `va` maps `ptrs` (from here on, dropping the area unmaps it), whose pages
        // `blocks` own, or, none there, the caller keeps for as long as the area lives.
        let task = kernel::current!();
        let area = VmArea {
            addr: va as usize,
            pages: ptrs,
            blocks,
            scatter,
            user_mapped: AtomicBool::new(false),
            large: opts.large,
            caller,
            pid: task.pid(),
            tgid: task.tgid(),
            comm: crate::device::registry::current_comm(),
            // SAFETY: `ktime_get` may be called in process context once timekeeping is up.
            ts_ns: unsafe { bindings::ktime_get() },
            counters: self.counters.clone(),
        };
        if opts.zero {
            // SAFETY: The area is new: nobody else reaches its bytes.
            unsafe { area.write_words(|_| 0) };
        }
        // Without a record the area drops here: unmapped, pages back.
        let rec = if fail::should_fail(Point::VmRecord) {
            Err(ENOMEM)
        } else {
            self.records.new_rec(area)
        }?;
        let addr = rec.addr;
        self.tree.lock().insert(node.into_node(addr, rec.clone()));
        self.counters.created.fetch_add(1, Relaxed);
        Ok(Area {
            rec,
            vm: self.clone(),
        })
    }

    /// Takes `pages` pages: blocks, the struct page of each page in order, their scatter.
    /// On failure every page taken goes back (the [`Taken`] guard drops).
    fn take_pages(&self, pages: usize, opts: Options) -> Result<(Taken, KVVec<PagePtr>, Scatter)> {
        let mut taken = Taken {
            pool: self.pool.clone(),
            blocks: KVVec::with_capacity(if opts.large { 0 } else { pages }, GFP_KERNEL)?,
        };
        let mut ptrs = KVVec::with_capacity(pages, GFP_KERNEL)?;
        let mut scatter = Scatter::default();
        // Keeps `raw` (in `taken` first, so that it goes back on any failure below) and
        // notes its pages.
        let mut hint = usize::MAX;
        let mut keep = |taken: &mut Taken, raw: RawBlock| -> Result {
            let first = self.pool.first_page(&raw, &mut hint).ok_or(EINVAL);
            let (zone, n) = (raw.zone(), 1usize << raw.order());
            taken.blocks.push(Some(raw), GFP_KERNEL)?;
            let first = first?;
            let pfn = crate::host_pages::page_to_pfn(first);
            for i in 0..n {
                scatter.add(pfn + i as u64, zone);
                // The block's struct pages are consecutive (see `Pool::first_page`).
                ptrs.push_within_capacity(PagePtr(first.wrapping_add(i)))
                    .map_err(|_| EINVAL)?;
            }
            Ok(())
        };
        let mut left = pages;
        if opts.large {
            while left > 0 {
                let mut order = vm_area::plan_order(left, crate::uapi::MAX_ORDER);
                let raw = loop {
                    match self.pool.alloc_raw(order, opts.highest, opts.class) {
                        Ok(r) => break r,
                        Err(e) if order == 0 => return Err(e),
                        Err(_) => order -= 1,
                    }
                };
                keep(&mut taken, raw)?;
                if fail::should_fail(Point::VmPage) {
                    return Err(ENOMEM);
                }
                left -= 1 << order;
            }
        } else {
            let mut batch: [Option<RawBlock>; BATCH] = [const { None }; BATCH];
            while left > 0 {
                let want = left.min(BATCH);
                let slots = batch.get_mut(..want).ok_or(EINVAL)?;
                let got = self.pool.alloc_bulk(opts.highest, opts.class, slots);
                // Whatever was taken is kept (and given back with the rest on failure); each
                // page counts once for fault injection, as it is kept.
                let mut failed = false;
                for slot in slots.iter_mut() {
                    if let Some(raw) = slot.take() {
                        keep(&mut taken, raw)?;
                        failed |= !failed && fail::should_fail(Point::VmPage);
                    }
                }
                if got == 0 || failed {
                    return Err(ENOMEM);
                }
                left -= got;
            }
        }
        Ok((taken, ptrs, scatter))
    }

    /// The live area whose mapped range holds `addr` (not its guard page): Linux's
    /// `find_vmap_area`, O(log n) in the address-ordered tree.
    ///
    /// Context: process context.
    pub(crate) fn find_area(&self, addr: usize) -> Option<Rec<VmArea>> {
        let tree = self.tree.lock();
        // The last area starting at or below `addr`.
        let found = match tree.cursor_lower_bound(&addr) {
            Some(c) if *c.current().0 == addr => Some((addr, c.current().1.clone())),
            Some(c) => c.peek_prev().map(|(&s, a)| (s, a.clone())),
            None => tree
                .cursor_back()
                .map(|c| (*c.current().0, c.current().1.clone())),
        };
        drop(tree);
        let (start, area) = found?;
        (addr - start < area.size()).then_some(area)
    }

    /// debugfs `vmallocinfo`: a line per live area in address order, in
    /// `/proc/vmallocinfo`'s format (`0x<start>-0x<end> <bytes> <caller> pages=<n> vmalloc
    /// N0=<n>`, the size and end counting the guard page, as Linux's do), then the pages per
    /// zone minimm adds: `DMA=<n> DMA32=<n> Normal=<n>`, `large` for an area made with
    /// large blocks first, and `discardable` for a discardable area (listed while pinned: an
    /// unpinned one has no kernel mapping).
    ///
    /// Context: process context.
    pub(crate) fn write_vmallocinfo(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tree = self.tree.lock();
        for (_, a) in tree.iter() {
            let size = a.size() + PAGE_SIZE;
            let z = &a.scatter.zone_pages;
            writeln!(
                f,
                "0x{:016x}-0x{:016x} {:7} {} pages={} vmalloc N0={} DMA={} DMA32={} Normal={}{}{}",
                a.addr,
                a.addr + size,
                size,
                a.caller,
                a.nr_pages(),
                a.nr_pages(),
                z[crate::zone::DMA],
                z[crate::zone::DMA32],
                z[crate::zone::NORMAL],
                if a.large { " large" } else { "" },
                if a.borrowed() { " discardable" } else { "" }
            )?;
        }
        Ok(())
    }

    /// debugfs `page_owner`'s paragraphs for the areas: `Area allocated via vmalloc, pages
    /// <n>, runs <r>, pid <p>, tgid <t> (<comm>), ts <ns> ns` (as Linux's `print_page_owner`
    /// heads a record), then a `PFN <first>-<last> zone <zone>` line per physically
    /// contiguous run of its blocks.
    ///
    /// Context: process context.
    pub(crate) fn write_page_owner(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tree = self.tree.lock();
        // A discardable area's paragraph comes with its state from the buffer records
        // (`registry.rs`): pinned, unpinned, its purged pages left out.
        for (_, a) in tree.iter().filter(|(_, a)| !a.borrowed()) {
            let end = a.comm.iter().position(|&c| c == 0).unwrap_or(a.comm.len());
            writeln!(
                f,
                "Area allocated via vmalloc, pages {}, runs {}, pid {}, tgid {} ({}), ts {} ns",
                a.nr_pages(),
                a.scatter.runs,
                a.pid,
                a.tgid,
                crate::device::registry::Comm(a.comm.get(..end).unwrap_or(&[])),
                a.ts_ns
            )?;
            // (first pfn, last pfn, zone) of the run being printed.
            let mut run: Option<(u64, u64, usize)> = None;
            let mut hint = usize::MAX;
            for b in a.blocks.blocks.iter().flatten() {
                let Some(p) = self.pool.first_page(b, &mut hint) else {
                    continue;
                };
                let first = crate::host_pages::page_to_pfn(p);
                let last = first + (1u64 << b.order()) - 1;
                run = match run {
                    Some((s, e, z)) if e + 1 == first && z == b.zone() => Some((s, last, z)),
                    Some((s, e, z)) => {
                        write_run(f, s, e, z)?;
                        Some((first, last, b.zone()))
                    }
                    None => Some((first, last, b.zone())),
                };
            }
            if let Some((s, e, z)) = run {
                write_run(f, s, e, z)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn write_run(f: &mut fmt::Formatter<'_>, first: u64, last: u64, zone: usize) -> fmt::Result {
    writeln!(
        f,
        "PFN {first:#x}-{last:#x} zone {}",
        crate::zone::NAMES.get(zone).copied().unwrap_or("?")
    )
}

#[kunit_tests(minimm_vmalloc)]
mod tests {
    use super::*;
    use crate::pool::tests::{all_back, pool_of};

    fn setup() -> Result<(Arc<Pool>, Pin<KBox<Caches>>, Arc<Vmalloc>)> {
        let pool = pool_of([16, 256, 256])?;
        let caches = KBox::pin_init(Caches::new(0), GFP_KERNEL)?;
        let vm = Arc::pin_init(Vmalloc::new(&caches, &pool)?, GFP_KERNEL)?;
        Ok((pool, caches, vm))
    }

    fn opts(highest: usize, large: bool) -> Options {
        Options {
            highest,
            class: Reserve::Normal,
            large,
            zero: true,
        }
    }

    /// Free pages of every zone, the per-CPU lists drained.
    fn free_pages(pool: &Pool) -> [usize; NR_ZONES] {
        pool.drain();
        core::array::from_fn(|z| pool.zone(z).map_or(0, |zone| zone.snapshot().free))
    }

    /// `find_area` and `page_at` at an area's first byte, middle, last byte and guard page;
    /// the bytes written through the mapping are the pages' bytes; freeing leaves the pool
    /// whole and the tree empty.
    #[test]
    fn lookups_and_bytes() -> Result {
        let (pool, caches, vm) = setup()?;
        let a = vm.create(5, opts(crate::zone::NORMAL, false), "kunit")?;
        let b = vm.create(2, opts(crate::zone::DMA32, false), "kunit")?;
        let start = a.addr();
        assert_eq!(a.nr_pages(), 5);
        assert_eq!(a.scatter().pages(), 5);
        assert!(a.scatter().runs >= 1 && a.scatter().runs <= 5);
        assert_eq!(vm.counters.pages.load(Relaxed), 7);
        assert_eq!(vm.counters.areas.load(Relaxed), 2);
        let last = start + 5 * PAGE_SIZE - 1;
        for (addr, page) in [(start, 0), (start + 2 * PAGE_SIZE + 100, 2), (last, 4)] {
            let found = vm.find_area(addr).ok_or(EINVAL)?;
            assert_eq!(found.addr(), start);
            let p = a.page_at(addr).ok_or(EINVAL)?;
            assert!(core::ptr::eq(
                p.as_ptr(),
                a.page(page).ok_or(EINVAL)?.as_ptr()
            ));
        }
        let guard = start + 5 * PAGE_SIZE;
        assert!(a.page_at(guard).is_none());
        assert!(vm.find_area(guard).is_none_or(|f| f.addr() != start));
        assert!(vm.find_area(start - 1).is_none_or(|f| f.addr() != start));
        assert_eq!(vm.find_area(b.addr()).map(|f| f.addr()), Some(b.addr()));
        // Zeroed, then written through the kernel mapping and read back page by page.
        let mut zero = true;
        // SAFETY: The area is this test's; nothing else touches it.
        unsafe { a.read_words(|w| zero &= w == 0) };
        assert!(zero);
        // SAFETY: As above.
        unsafe { a.write_words(|k| crate::pattern::word(9, k as u64)) };
        for i in 0..5 {
            let p = a.page(i).ok_or(EINVAL)?;
            let mut k = i * PAGE_SIZE / 8;
            let mut same = true;
            // SAFETY: A page of the area, which nothing else accesses now.
            unsafe {
                crate::host_pages::read_words(&p, |w| {
                    same &= w == crate::pattern::word(9, k as u64);
                    k += 1;
                })
            };
            assert!(same);
        }
        drop(a);
        assert!(vm.find_area(start).is_none());
        drop(b);
        assert_eq!(vm.counters.pages.load(Relaxed), 0);
        assert_eq!(vm.counters.areas.load(Relaxed), 0);
        assert_eq!(vm.counters.freed.load(Relaxed), 2);
        drop(vm);
        drop(caches);
        assert!(all_back(&pool));
        Ok(())
    }

    /// Large blocks first: an area of 100 pages from a fresh zone of 256 is three blocks (64,
    /// 32 and 4 pages), so at most three runs, where order-0 pages would be a hundred.
    #[test]
    fn large_blocks_first() -> Result {
        let (pool, caches, vm) = setup()?;
        let a = vm.create(100, opts(crate::zone::NORMAL, true), "kunit")?;
        assert_eq!(a.nr_pages(), 100);
        assert_eq!(a.blocks.blocks.len(), 3);
        assert!(a.scatter().runs <= 3);
        assert_eq!(a.scatter().zone_pages, [0, 0, 100]);
        drop(a);
        drop(vm);
        drop(caches);
        assert!(all_back(&pool));
        Ok(())
    }

    /// A failure at any page, at the mapping or at the record leaves the pool's free pages,
    /// the tree and the counters as they were (but the failure count).
    #[test]
    fn failures_leave_nothing_behind() -> Result {
        let (pool, caches, vm) = setup()?;
        let before = free_pages(&pool);
        for (point, nth) in [
            (Point::VmPage, 1),
            (Point::VmPage, 70),
            (Point::VmPage, 100),
            (Point::VmMap, 1),
            (Point::VmRecord, 1),
        ] {
            let failed = vm.counters.failed.load(Relaxed);
            let armed = fail::arm_nth_while(point, nth);
            let r = vm.create(100, opts(crate::zone::NORMAL, false), "kunit");
            drop(armed);
            assert!(matches!(r, Err(e) if e == ENOMEM));
            assert_eq!(free_pages(&pool), before);
            assert_eq!(vm.counters.failed.load(Relaxed), failed + 1);
            assert_eq!(vm.counters.areas.load(Relaxed), 0);
            assert_eq!(vm.counters.pages.load(Relaxed), 0);
            assert_eq!(vm.records.live(), 0);
        }
        // More than the pool has.
        assert!(vm
            .create(600, opts(crate::zone::NORMAL, false), "kunit")
            .is_err());
        assert_eq!(free_pages(&pool), before);
        assert!(vm
            .create(0, opts(crate::zone::NORMAL, false), "kunit")
            .is_err());
        assert!(vm.create(1, opts(NR_ZONES, false), "kunit").is_err());
        drop(vm);
        drop(caches);
        assert!(all_back(&pool));
        Ok(())
    }
}
