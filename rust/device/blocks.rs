// SPDX-License-Identifier: GPL-2.0

//! Buffers: the block ioctls (`ALLOC`, `FREE`, `BLOCK_DATA`) and mmap of a buffer.
//!
//! The blocks a file allocates are named by opaque handles (1, 2, 3, ... per file; never an
//! address) and belong to the file: closing it frees them all. A handle of another file is
//! unknown here, exactly like a made-up one.
//!
//! A block is reference-counted ([`Buffer`] in an `Arc`): the file's table holds one
//! reference and every user mapping of the block another, so a block freed (or whose file was
//! closed) while still mapped goes back to the pool only when its last mapping is gone. No
//! other client can see its contents before then, and every block is zeroed before it is
//! first handed out.
//!
//! Each buffer has its own range of the device's mmap offset space, unique module-wide (see
//! `registry.rs`); `mmap` of that offset by the owning file maps the whole buffer. Pages are
//! not inserted at `mmap` but when first touched: the fault handler inserts every page of the
//! faulting VMA at once (so mmap and touch stays one fault), and after `MADV_DONTNEED` an
//! access faults the same pages in again.
//!
//! # Locks
//!
//! `Table` (a mutex in the [`Client`]) is the file's handle table; no other minimm lock is held
//! when it is taken (but a resize's, below), and nothing is freed, allocated or copied to or
//! from user space under it (tree nodes are reserved before; removed buffers are dropped
//! after). `Buffer::data` (a mutex, one per buffer) serialises the kernel's own reads and
//! writes of a buffer's contents; it is taken with no other lock held, and a resize
//! (`device/vmalloc.rs`) takes the table under it to swap the buffer. The fault handler runs
//! under the mmap read lock; of minimm's locks it takes a discardable block's unit state and
//! then its zone's reclaim lists (`reclaim.rs`), and, inserting, a zone's, freeing nothing.

use core::ffi::c_void;

use kernel::{
    bindings,
    mm::virt::{flags as vm_flags, VmaMixedMap, VmaNew, VmaRef},
    new_mutex,
    page::{BorrowedPage, PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex,
    },
    uaccess::UserPtr,
};

use super::{
    read_ext,
    registry::{OwnerRecord, Registry},
    write_prefix, Client, Tail,
};
use crate::{
    fail::{self, Point},
    pool::PoolBlock,
    reclaim::Unit,
    uapi::{self, alloc_flags},
    vmalloc::Area,
    zone::{Reserve, NR_ZONES},
};

/// Handles stay below this (a file cannot allocate that many blocks in its life).
const HANDLE_LIMIT: u64 = 1 << 40;

/// What a buffer's pages are.
pub(crate) enum Backing {
    /// A block of the buddy pool (`ALLOC`).
    Block(PoolBlock),
    /// A vmalloc-like area (`VM_CREATE`), with the `MINIMM_VM_*` flags and the highest zone
    /// it was made with (a resize makes the new one alike).
    Area(Area, u32, usize),
    /// A discardable block (`ALLOC` with `MINIMM_ALLOC_DISCARDABLE`) or area (`VM_CREATE`
    /// with `MINIMM_VM_DISCARDABLE`), with the request's flags: pinned or not, its pages
    /// purged or not (`reclaim.rs`).
    Discard(Arc<Unit>, u32),
}

impl Backing {
    /// Number of pages.
    pub(crate) fn pages(&self) -> usize {
        match self {
            Self::Block(b) => b.pages(),
            Self::Area(a, ..) => a.nr_pages(),
            Self::Discard(u, _) => u.pages(),
        }
    }

    /// The `i`-th page (a discardable block's are reached through its unit's lock).
    fn page(&self, i: usize) -> Option<BorrowedPage<'_>> {
        match self {
            Self::Block(b) => b.page(i),
            Self::Area(a, ..) => a.page(i),
            Self::Discard(..) => None,
        }
    }

    /// Fills the buffer with the pattern of `seed`: a block page by page, an area through
    /// its kernel mapping (the same words at the same offsets either way).
    ///
    /// # Safety
    ///
    /// The contents are the caller's to change and the kernel touches them nowhere else
    /// meanwhile (see [`PoolBlock::fill`]).
    unsafe fn fill(&self, seed: u64) -> Result {
        match self {
            // SAFETY: By the caller's obligation.
            Self::Block(b) => unsafe { b.fill(seed) },
            Self::Area(a, ..) => {
                let word = |k: usize| {
                    u64::from_ne_bytes(crate::pattern::word(seed, k as u64).to_le_bytes())
                };
                // SAFETY: By the caller's obligation.
                unsafe { a.write_words(word) };
                Ok(())
            }
            // SAFETY: By the caller's obligation.
            Self::Discard(u, _) => unsafe { u.fill(seed) },
        }
    }

    /// The 64-bit FNV-1a checksum of the buffer's bytes (an area's through its kernel
    /// mapping).
    ///
    /// # Safety
    ///
    /// As for [`PoolBlock::checksum`].
    unsafe fn checksum(&self) -> Result<u64> {
        match self {
            // SAFETY: By the caller's obligation.
            Self::Block(b) => unsafe { b.checksum() },
            Self::Area(a, ..) => {
                let mut h = crate::pattern::Fnv1a::new();
                // SAFETY: By the caller's obligation.
                unsafe { a.read_words(|w| h.update(&w.to_ne_bytes())) };
                Ok(h.finish())
            }
            // SAFETY: By the caller's obligation.
            Self::Discard(u, _) => unsafe { u.checksum() },
        }
    }
}

/// A buffer: a [`PoolBlock`] or an [`Area`] owned by an open file and named by a handle
/// there, with the file's quota charge for it and its range of the offset space. Its table
/// entry and each user mapping of it hold a reference.
#[pin_data(PinnedDrop)]
pub(crate) struct Buffer {
    pub(super) backing: Backing,
    /// The owning file's charged bytes; dropping the block uncharges its pages, whenever the last
    /// mapping goes, so freed-but-mapped blocks still count against the file's quota.
    charge: Arc<Atomic<usize>>,
    /// The first page of the buffer's range of the mmap offset space.
    pub(super) pgoff: u64,
    /// Where the buffer's owner record lives (removed when the buffer goes).
    registry: Arc<Registry>,
    /// Held while the kernel reads or writes the block's contents (`BLOCK_DATA`, and a
    /// resize's copy), so that two such accesses never race with each other. User space may
    /// still write through a mapping meanwhile; `PoolBlock::checksum` and `PoolBlock::fill`
    /// are written for that. `true` once a resize copied the buffer and put another in its
    /// place under its handle: a command that finds it so looks the handle up again.
    #[pin]
    pub(super) data: Mutex<bool>,
}

#[pinned_drop]
impl PinnedDrop for Buffer {
    /// Context: process context (the last reference goes with a table entry or a VMA).
    fn drop(self: Pin<&mut Self>) {
        if let Backing::Discard(unit, _) = &self.backing {
            // Off reclaim's lists, whose reference would keep the pages.
            unit.release();
        }
        self.registry.remove(self.pgoff);
        self.charge
            .fetch_sub(self.backing.pages() * PAGE_SIZE, Relaxed);
    }
}

/// A file's buffers.
pub(crate) struct Table {
    next_handle: u64,
    /// By handle.
    by_handle: RBTree<u64, Arc<Buffer>>,
    /// The handle of each buffer, by the first page of its offset range (for `mmap`).
    by_pgoff: RBTree<u64, u64>,
}

impl Table {
    pub(crate) fn new() -> Self {
        Self {
            next_handle: 1,
            by_handle: RBTree::new(),
            by_pgoff: RBTree::new(),
        }
    }
}

/// The nodes one buffer takes in the tables, allocated before any lock is taken.
pub(super) struct Nodes {
    handle: RBTreeNodeReservation<u64, Arc<Buffer>>,
    pgoff: RBTreeNodeReservation<u64, u64>,
    owner: RBTreeNodeReservation<u64, OwnerRecord>,
}

impl Nodes {
    /// Errors: `ENOMEM`, also when fault injection fails `handle_insert`.
    pub(super) fn new() -> Result<Self> {
        if fail::should_fail(Point::HandleInsert) {
            return Err(ENOMEM);
        }
        Ok(Self {
            handle: RBTreeNodeReservation::new(GFP_KERNEL)?,
            pgoff: RBTreeNodeReservation::new(GFP_KERNEL)?,
            owner: RBTreeNodeReservation::new(GFP_KERNEL)?,
        })
    }
}

/// Linux's reserves for a request with the `ATOMIC` and `NOWAIT` flags: `__GFP_HIGH` alone,
/// or with "cannot block" as `GFP_ATOMIC`.
pub(super) fn reserve(atomic: bool, nowait: bool) -> Reserve {
    match (atomic, nowait) {
        (false, _) => Reserve::Normal,
        (true, false) => Reserve::High,
        (true, true) => Reserve::Atomic,
    }
}

impl Client {
    pub(super) fn lookup(&self, handle: u64) -> Option<Arc<Buffer>> {
        self.table.lock().by_handle.get(&handle).cloned()
    }

    /// Runs `f` on the buffer `handle` names with its `data` lock held (`f` gets the buffer
    /// and the lock's flag, `true` once retired); a buffer a resize retired meanwhile is
    /// looked up again (its successor is under the handle by then).
    ///
    /// Errors: `EINVAL` (no such handle), `EAGAIN` (retired again and again by resizes), or
    /// `f`'s.
    pub(super) fn with_data<R>(
        &self,
        handle: u64,
        f: impl FnOnce(&Arc<Buffer>, &mut bool) -> Result<R>,
    ) -> Result<R> {
        let mut f = Some(f);
        for _ in 0..8 {
            let buf = self.lookup(handle).ok_or(EINVAL)?;
            let mut retired = buf.data.lock();
            if *retired {
                continue;
            }
            let f = f.take().ok_or(EINVAL)?;
            return f(&buf, &mut retired);
        }
        Err(EAGAIN)
    }

    /// The buffer of this file whose offset range starts at `pgoff`.
    fn lookup_pgoff(&self, pgoff: u64) -> Option<Arc<Buffer>> {
        let table = self.table.lock();
        let handle = table.by_pgoff.get(&pgoff)?;
        table.by_handle.get(handle).cloned()
    }

    /// `MINIMM_IOC_ALLOC`.
    pub(super) fn alloc(&self, arg: UserPtr) -> Result {
        let (mut req, len) = read_ext::<uapi::Alloc>(arg, uapi::ALLOC_SIZE_VER0, Tail::Input)?;
        let zone = usize::try_from(req.zone).map_err(|_| EINVAL)?;
        if req.order > uapi::MAX_ORDER
            || zone >= NR_ZONES
            || req.flags & !alloc_flags::VALID != 0
            || req.pad != 0
        {
            return Err(EINVAL);
        }
        let class = reserve(
            req.flags & alloc_flags::ATOMIC != 0,
            req.flags & alloc_flags::NOWAIT != 0,
        );
        // Fail on an unwritable struct before anything changes.
        write_prefix(arg, &req, len)?;
        // Everything the tables need, before anything is taken.
        let nodes = Nodes::new()?;
        let pages = 1usize << req.order;
        // Charge the quota first, so that concurrent allocations cannot overshoot it.
        let bytes = pages * PAGE_SIZE;
        self.charge_bytes(bytes)?;
        let may_reclaim = req.flags & (alloc_flags::ATOMIC | alloc_flags::NOWAIT) == 0;
        let block = match crate::reclaim::with_direct_reclaim(
            &self.shared,
            zone,
            pages,
            may_reclaim,
            || self.shared.pool.alloc(req.order, zone, class),
        ) {
            Ok(b) => b,
            Err(e) => {
                self.charge.fetch_sub(bytes, Relaxed);
                return Err(e);
            }
        };
        // Zeroed (pool pages may hold another client's data), located, and given its offsets.
        let prepared = (|| -> Result<(u64, u64)> {
            // SAFETY: The block was just allocated and nothing else can reach it yet.
            unsafe { block.zero()? };
            let page = block.page(0).ok_or(EINVAL)?;
            let pfn = crate::host_pages::page_to_pfn(page.as_ptr());
            Ok((self.shared.registry.take_range(pages as u64)?, pfn))
        })();
        let (pgoff, pfn) = match prepared {
            Ok(v) => v,
            Err(e) => {
                drop(block);
                self.charge.fetch_sub(bytes, Relaxed);
                return Err(e);
            }
        };
        let zone = block.zone();
        let backing = if req.flags & alloc_flags::DISCARDABLE != 0 {
            match Unit::new(
                block,
                pgoff,
                usize::try_from(req.zone).unwrap_or(zone),
                &self.shared.reclaim,
            ) {
                Ok(u) => Backing::Discard(u, req.flags),
                Err(e) => {
                    self.charge.fetch_sub(bytes, Relaxed);
                    return Err(e);
                }
            }
        } else {
            Backing::Block(block)
        };
        let unit = match &backing {
            Backing::Discard(u, _) => Some(u.clone()),
            _ => None,
        };
        let buf = self.new_buffer(backing, pgoff, bytes)?;
        let order = req.order;
        let flags = req.flags;
        self.enter(
            nodes,
            buf,
            |handle| {
                req.handle = handle;
                req.mmap_offset = pgoff << PAGE_SHIFT;
                req.zone_out = zone as u32;
                req.size = u32::try_from(len).unwrap_or(u32::MAX);
                write_prefix(arg, &req, len)
            },
            |id, handle| {
                let record = OwnerRecord::new_by_current(id, handle, order, zone, pfn, flags);
                Some(match unit {
                    Some(u) => record.with_unit(u),
                    None => record,
                })
            },
        )
    }

    /// A buffer of `backing`, at `pgoff` of the offset space, whose `bytes` are charged to the
    /// file already: once the buffer exists the charge is its own and is released when it
    /// drops; a failure to make it (the backing then drops) gives the charge back here.
    pub(super) fn new_buffer(
        &self,
        backing: Backing,
        pgoff: u64,
        bytes: usize,
    ) -> Result<Arc<Buffer>> {
        // In the host's memory, not the pool's: a buffer's bookkeeping must not take pages
        // from the zones whose counters its pages move (see README, "records").
        Arc::pin_init(
            try_pin_init!(Buffer {
                backing,
                charge: self.charge.clone(),
                pgoff,
                registry: self.shared.registry.clone(),
                data <- new_mutex!(false, "minimm_block_data"),
            }),
            GFP_KERNEL,
        )
        .inspect_err(|_| {
            self.charge.fetch_sub(bytes, Relaxed);
        })
    }

    /// Numbers `buf` and enters it in the tables, once `report(handle)` told the caller its
    /// handle (writing the command's struct back): until then no other thread can reach it
    /// (map, fill or free it), so the undo of a failed report is exact (the buffer drops).
    /// `owner` makes its record for `page_owner`, if it has one.
    pub(super) fn enter(
        &self,
        nodes: Nodes,
        buf: Arc<Buffer>,
        report: impl FnOnce(u64) -> Result,
        owner: impl FnOnce(u32, u64) -> Option<OwnerRecord>,
    ) -> Result {
        let pgoff = buf.pgoff;
        let handle = {
            let mut table = self.table.lock();
            let handle = table.next_handle;
            if handle >= HANDLE_LIMIT {
                return Err(ENOSPC);
            }
            table.next_handle += 1;
            handle
        };
        if let Err(e) = report(handle) {
            // The struct was writable a moment ago (another thread changed the mapping): the
            // caller never learns the handle, so undo, and take the handle number back unless
            // a later allocation took the next one meanwhile.
            let mut table = self.table.lock();
            if table.next_handle == handle + 1 {
                table.next_handle = handle;
            }
            drop(table);
            drop(buf);
            return Err(e);
        }
        if let Some(record) = owner(self.id, handle) {
            self.shared
                .registry
                .insert(nodes.owner.into_node(pgoff, record));
        }
        // The nodes were allocated above: entering the buffer cannot fail.
        let mut table = self.table.lock();
        table.by_pgoff.insert(nodes.pgoff.into_node(pgoff, handle));
        table.by_handle.insert(nodes.handle.into_node(handle, buf));
        Ok(())
    }

    /// Puts `new` in the place of `old` under `handle` (a resized area: same handle, new
    /// offsets), if `handle` still names `old`; returns `old`'s table reference. `node` is
    /// `new`'s node of the offset table, reserved before.
    ///
    /// Errors: `EINVAL` (the handle was freed or replaced meanwhile), nothing changed.
    pub(super) fn replace(
        &self,
        handle: u64,
        old: &Arc<Buffer>,
        new: Arc<Buffer>,
        node: RBTreeNodeReservation<u64, u64>,
    ) -> Result<Arc<Buffer>> {
        let (new_pgoff, old_pgoff) = (new.pgoff, old.pgoff);
        let mut table = self.table.lock();
        let slot = table.by_handle.get_mut(&handle).ok_or(EINVAL)?;
        if !Arc::ptr_eq(slot, old) {
            return Err(EINVAL);
        }
        let taken = core::mem::replace(slot, new);
        let stale = table.by_pgoff.remove_node(&old_pgoff);
        table.by_pgoff.insert(node.into_node(new_pgoff, handle));
        drop(table);
        // Freed outside the lock.
        drop(stale);
        Ok(taken)
    }

    /// Removes `handle` from the table; the block goes back when its last mapping goes.
    pub(super) fn take(&self, handle: u64) -> Result<Arc<Buffer>> {
        self.take_if(handle, |_| true)
    }

    /// [`Client::take`] of a buffer that `want` accepts (`EINVAL`, nothing changed, if not).
    pub(super) fn take_if(
        &self,
        handle: u64,
        want: impl Fn(&Buffer) -> bool,
    ) -> Result<Arc<Buffer>> {
        let mut table = self.table.lock();
        let buf = table.by_handle.get(&handle).ok_or(EINVAL)?;
        if !want(buf) {
            return Err(EINVAL);
        }
        let pgoff = buf.pgoff;
        let node = table.by_handle.remove_node(&handle).ok_or(EINVAL)?;
        let pgoff_node = table.by_pgoff.remove_node(&pgoff);
        drop(table);
        // The nodes are freed outside the lock.
        drop(pgoff_node);
        Ok(node.to_key_value().1)
    }

    /// `MINIMM_IOC_FREE`.
    pub(super) fn free(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::Free>(arg, uapi::FREE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        // Dropped outside the table lock.
        drop(self.take(req.handle)?);
        Ok(())
    }

    /// `MINIMM_IOC_BLOCK_DATA`.
    pub(super) fn block_data(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::BlockData>(arg, uapi::BLOCK_DATA_SIZE_VER0, Tail::Input)?;
        if req.op != uapi::BLOCK_CHECKSUM && req.op != uapi::BLOCK_FILL {
            return Err(EINVAL);
        }
        // An unknown handle first, then an unwritable struct, before the block is touched.
        self.lookup(req.handle).ok_or(EINVAL)?;
        write_prefix(arg, &req, len)?;
        let fill = req.op == uapi::BLOCK_FILL;
        let result = self.with_data(req.handle, |buf, _| {
            if fill {
                // SAFETY: The block is this file's, and the kernel touches its contents only
                // here, in `checksum` and in a resize's copy, all under `data`, held.
                unsafe { buf.backing.fill(req.seed) }.map(|()| 0)
            } else {
                // SAFETY: As above.
                unsafe { buf.backing.checksum() }
            }
        })?;
        if !fill {
            req.result = result;
        }
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &req, len)
    }

    /// Sets up a mapping of a whole buffer of this file, named by its mmap offset; its pages
    /// come in at the first fault ([`vma_fault`]).
    ///
    /// Context: process context, mmap lock held for writing.
    pub(super) fn mmap_buffer(&self, vma: &VmaNew) -> Result {
        // SAFETY: `vma` is a valid VMA under construction; reading its offset is allowed.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
        let buf = self.lookup_pgoff(pgoff).ok_or(EINVAL)?;
        let len = vma.end().checked_sub(vma.start()).ok_or(EINVAL)?;
        // VM_MAYSHARE, not VM_SHARED: the kernel clears VM_SHARED for a shared mapping of a
        // file opened read-only, which is still a shared mapping.
        if len != buf.backing.pages() * PAGE_SIZE || vma.flags() & vm_flags::MAYSHARE == 0 {
            return Err(EINVAL);
        }
        if let Backing::Area(area, ..) = &buf.backing {
            // Its pages may be pinned through this mapping from now on.
            area.note_user_mapping();
        }
        if let Backing::Discard(unit, _) = &buf.backing {
            // SAFETY: A VMA under construction has its file set; the file's address space
            // lives as long as the file, which the VMA holds.
            unit.mapped(unsafe { (*(*vma.as_ptr()).vm_file).f_mapping });
        }
        vma.set_dontexpand();
        vma.set_dontcopy();
        // The fault handler inserts struct pages with `vm_insert_page`, which wants this.
        vma.set_mixedmap();
        // SAFETY: During mmap the VMA is ours to set up: it holds one reference to the buffer
        // from here on (released in `vma_close`), and `VM_OPS` is a static.
        unsafe {
            (*vma.as_ptr()).vm_private_data = Arc::into_raw(buf).cast_mut().cast::<c_void>();
            (*vma.as_ptr()).vm_ops = &VM_OPS.0;
        }
        Ok(())
    }
}

struct AssertSync<T>(T);
// SAFETY: The operations table is immutable and only holds function pointers.
unsafe impl<T> Sync for AssertSync<T> {}

static VM_OPS: AssertSync<bindings::vm_operations_struct> =
    AssertSync(bindings::vm_operations_struct {
        open: Some(vma_open),
        close: Some(vma_close),
        fault: Some(vma_fault),
        ..pin_init::zeroed()
    });

/// A VMA of ours was duplicated (split by a partial munmap or mprotect, or moved by mremap):
/// the new one takes its own reference to the buffer.
///
/// # Safety
///
/// `vma` is a VMA set up by [`Client::mmap_buffer`], whose `vm_private_data` holds a
/// reference.
unsafe extern "C" fn vma_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: By the function's safety requirement, `vm_private_data` came from
    // `Arc::into_raw` in `mmap_buffer` and that reference is still held by the original VMA.
    let buf = unsafe { ArcBorrow::<Buffer>::from_raw((*vma).vm_private_data.cast::<Buffer>()) };
    if let Backing::Discard(unit, _) = &buf.backing {
        // SAFETY: The VMA is valid, and a VMA of ours has its file set (see `vma_close`).
        unit.mapped(unsafe { (*(*vma).vm_file).f_mapping });
    }
    // The copy of `vm_private_data` in the new VMA owns this new reference.
    let _ = Arc::into_raw(Arc::<Buffer>::from(buf));
}

/// A VMA of ours is going away (its pages are already unmapped): drop its reference; the
/// last one gives the block back to the pool.
///
/// # Safety
///
/// As for [`vma_open`]; called once per VMA.
unsafe extern "C" fn vma_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: This VMA owns the reference stored in `vm_private_data` (from `mmap_buffer` or
    // `vma_open`), and this is its one release.
    let buf = unsafe { Arc::<Buffer>::from_raw((*vma).vm_private_data.cast::<Buffer>()) };
    if let Backing::Discard(unit, _) = &buf.backing {
        unit.unmapped();
    }
    drop(buf);
}

/// A fault in a VMA of ours: inserts the faulting page, then every other page of the buffer
/// that the VMA covers (already present ones are left as they are), so that the first touch
/// maps the whole VMA.
///
/// Context: the mmap read lock is held (with no `map_pages`, a fault under a per-VMA lock is
/// retried under the mmap lock before it reaches here).
///
/// # Safety
///
/// `vmf` is the fault being handled, on a VMA set up by [`Client::mmap_buffer`] or
/// [`vma_open`].
unsafe extern "C" fn vma_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    const SIGBUS: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    // SAFETY: `vmf` is valid for the fault (the function's safety requirement).
    let (raw, address) = unsafe { ((*vmf).__bindgen_anon_1.vma, (*vmf).__bindgen_anon_1.address) };
    // SAFETY: The faulting VMA is valid and read-locked for the duration of the fault.
    let vma = unsafe { VmaRef::from_raw(raw) };
    // Set at mmap; nothing clears it.
    let Some(map) = vma.as_mixedmap_vma() else {
        return SIGBUS;
    };
    // SAFETY: The VMA holds a reference to its buffer in `vm_private_data` (see `vma_open`)
    // until `vma_close`, which cannot run during a fault on it.
    let buf = unsafe { &*(*raw).vm_private_data.cast::<Buffer>() };
    // SAFETY: The VMA is read-locked: its offset is stable.
    let vma_pgoff = unsafe { (*raw).vm_pgoff } as u64;
    // The VMA maps pages `first..first + pages` of the buffer (a split or moved piece may start
    // further in), and the fault is at page `at` of the VMA.
    let first = vma_pgoff
        .checked_sub(buf.pgoff)
        .and_then(|f| usize::try_from(f).ok());
    let pages = vma
        .end()
        .checked_sub(vma.start())
        .map(|len| len / PAGE_SIZE);
    let at = (address as usize)
        .checked_sub(vma.start())
        .map(|off| off / PAGE_SIZE);
    let (Some(first), Some(pages), Some(at)) = (first, pages, at) else {
        return SIGBUS;
    };
    // The faulting page decides the fault, as if `vmf_insert_page` had been called for it.
    if fail::should_fail(Point::MappingInsert) {
        return bindings::vm_fault_reason_VM_FAULT_OOM;
    }
    if let Backing::Discard(unit, _) = &buf.backing {
        let Some(k) = first.checked_add(at) else {
            return SIGBUS;
        };
        // Under the unit's lock, so that no purge runs meanwhile; a purged page (unpinned
        // and not pinned again since) is gone: SIGBUS, as ashmem's purged ranges.
        return unit.fault(k, |view| match view {
            None => SIGBUS,
            Some(view) => {
                let page_of = |i: usize| first.checked_add(i).and_then(|k| view.page(k));
                match insert_one(map, vma.start(), at, page_of(at)) {
                    Some(fault) => fault,
                    None => {
                        // An unpinned area's pages are units of their own: each must
                        // fault to be seen accessed, so only the faulting one goes in. A
                        // pinned area's go in batches, as any area's.
                        match view.map() {
                            Some(area)
                                if first
                                    .checked_add(pages)
                                    .is_some_and(|end| end <= area.nr_pages()) =>
                            {
                                // SAFETY: As for an area below: the VMA is read-locked,
                                // ours, and covers `pages` pages from `vma.start()`; the
                                // area has pages `first..first + pages` (checked), kept by
                                // the unit's lock, held.
                                unsafe {
                                    insert_batched(raw, vma.start(), area, first, 0..at);
                                    insert_batched(raw, vma.start(), area, first, at + 1..pages);
                                }
                            }
                            _ if view.whole() => {
                                insert_rest(map, vma.start(), pages, at, page_of);
                            }
                            _ => {}
                        }
                        bindings::vm_fault_reason_VM_FAULT_NOPAGE
                    }
                }
            }
        });
    }
    let page_of = |i: usize| first.checked_add(i).and_then(|k| buf.backing.page(k));
    if let Some(fault) = insert_one(map, vma.start(), at, page_of(at)) {
        return fault;
    }
    // The rest of the VMA, so that touching the mapping costs one fault: a page that cannot
    // be inserted now is left to a fault of its own. An area's pages go in batches (one
    // page-table lock per batch), from its array of struct pages.
    if let Backing::Area(area, ..) = &buf.backing {
        if first
            .checked_add(pages)
            .is_some_and(|end| end <= area.nr_pages())
        {
            // SAFETY: The VMA is read-locked, ours (set up by `mmap_buffer`) and covers
            // `pages` pages from `vma.start()`; the area's pages `first..first + pages` exist
            // (checked) and stay while the VMA holds the buffer.
            unsafe {
                insert_batched(raw, vma.start(), area, first, 0..at);
                insert_batched(raw, vma.start(), area, first, at + 1..pages);
            }
            return bindings::vm_fault_reason_VM_FAULT_NOPAGE;
        }
    }
    insert_rest(map, vma.start(), pages, at, page_of);
    bindings::vm_fault_reason_VM_FAULT_NOPAGE
}

/// Inserts `page` as page `i` of the VMA at `start`, a page mapped already (by a racing
/// fault, or left by a partial zap) counting as done. The faulting page decides the fault, as
/// if `vmf_insert_page` had been called for it: `None` when it is in, else the fault's answer.
fn insert_one(
    map: &VmaMixedMap,
    start: usize,
    i: usize,
    page: Option<BorrowedPage<'_>>,
) -> Option<bindings::vm_fault_t> {
    let Some(page) = page else {
        return Some(bindings::vm_fault_reason_VM_FAULT_SIGBUS);
    };
    match map.vm_insert_page(start + i * PAGE_SIZE, &page) {
        Ok(()) => None,
        Err(e) if e.to_errno() == EBUSY.to_errno() => None,
        Err(e) if e.to_errno() == ENOMEM.to_errno() => Some(bindings::vm_fault_reason_VM_FAULT_OOM),
        Err(_) => Some(bindings::vm_fault_reason_VM_FAULT_SIGBUS),
    }
}

/// Inserts the VMA's pages other than the faulting one, one at a time; a page that cannot go
/// in now is left to a fault of its own.
fn insert_rest<'a>(
    map: &VmaMixedMap,
    start: usize,
    pages: usize,
    at: usize,
    page_of: impl Fn(usize) -> Option<BorrowedPage<'a>>,
) {
    for i in (0..pages).filter(|&i| i != at) {
        let _ = insert_one(map, start, i, page_of(i));
    }
}

/// Inserts pages `range` of a VMA (starting at `start`) that maps an area from its page
/// `first`, with `vm_insert_pages`; a page mapped already (after a partial zap) is skipped,
/// and on any other failure (no memory for a page table) the rest is left to later faults.
///
/// # Safety
///
/// `vma` is read-locked, set up by [`Client::mmap_buffer`], starts at `start` and covers
/// `range`; `area` has the pages `first + range.end` needs.
unsafe fn insert_batched(
    vma: *mut bindings::vm_area_struct,
    start: usize,
    area: &Area,
    first: usize,
    range: core::ops::Range<usize>,
) {
    let mut lo = range.start;
    while lo < range.end {
        let mut num: kernel::ffi::c_ulong = range.end - lo;
        // SAFETY: The caller's obligations: `lo..range.end` is inside the VMA and the area
        // has those pages (`first + lo ..`); `vm_insert_pages` only reads the array and takes
        // its own reference to each page it maps.
        let ret = unsafe {
            bindings::vm_insert_pages(
                vma,
                start + lo * PAGE_SIZE,
                area.page_array().add(first + lo).cast_mut(),
                &mut num,
            )
        };
        if ret == 0 || ret != -(bindings::EBUSY as i32) {
            // Done, or out of memory for a page table: the rest is left to later faults.
            return;
        }
        // `num` pages were not inserted, the first of them mapped already: skip it.
        let done = (range.end - lo).saturating_sub(num);
        lo += done + 1;
    }
}
