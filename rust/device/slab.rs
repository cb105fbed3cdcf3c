// SPDX-License-Identifier: GPL-2.0

//! Slab caches and objects of an open file: the slab ioctls (`SLAB_CREATE`, `SLAB_DESTROY`,
//! `SLAB_ALLOC`, `SLAB_FREE`, `SLAB_BULK`, `SLAB_DATA`, `SLAB_SHRINK`, `SLAB_STATS`).
//!
//! A file's caches and objects are named by opaque handles (one numbering for both, per file)
//! and belong to it: closing the file frees its objects, then destroys its caches. Objects
//! come from the file's own caches or from the module's generic caches (`kmalloc.rs`); each
//! charges its slot (or its size class, or its block) to the file's quota. Objects are never
//! mapped: `SLAB_DATA` copies their bytes through a bounce buffer, so that no user copy
//! happens under a lock.
//!
//! # Locks
//!
//! `Client::slab` (a mutex) is the file's slab table. It is held across a whole command but
//! its user copies, so that a cache is never destroyed while one of its objects is being
//! allocated and an object is never freed while its bytes are being copied; the cache's own
//! locks (`slab_cache.rs`) nest inside it. No other device lock is taken with it.

use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    uaccess::{UserPtr, UserSlice},
};

use super::{read_ext, write_prefix, Client, Tail};
use crate::{
    fail::{self, Point},
    record::{Rec, Slot},
    slab_cache::{Config, Gfp, SlabCache},
    uapi::{self, obj_flags, slab_flags},
    Shared,
};

/// Handles stay below this.
const HANDLE_LIMIT: u64 = 1 << 40;

/// An object of a file: the record behind its handle, in minimm's own cache
/// `minimm_slab_object` (`record.rs`).
pub(crate) struct Object {
    /// Its cache, or `None` for the generic caches.
    cache: Option<Arc<SlabCache>>,
    addr: usize,
    /// Bytes `SLAB_DATA` reaches.
    objsize: usize,
    /// Bytes charged to the file.
    charge: usize,
}

/// A file's caches and objects.
pub(crate) struct SlabTable {
    shared: Arc<Shared>,
    charge: Arc<Atomic<usize>>,
    next_handle: u64,
    caches: RBTree<u64, Arc<SlabCache>>,
    objects: RBTree<u64, Rec<Object>>,
}

impl SlabTable {
    pub(crate) fn new(shared: Arc<Shared>, charge: Arc<Atomic<usize>>) -> Self {
        Self {
            shared,
            charge,
            next_handle: 1,
            caches: RBTree::new(),
            objects: RBTree::new(),
        }
    }

    fn number(&mut self) -> Result<u64> {
        let h = self.next_handle;
        if h >= HANDLE_LIMIT {
            return Err(ENOSPC);
        }
        self.next_handle += 1;
        Ok(h)
    }

    /// Frees an object taken out of the table (its record with it) and uncharges it.
    fn release(&self, obj: Rec<Object>) {
        let freed = match &obj.cache {
            Some(c) => c.free(obj.addr),
            None => self.shared.kmalloc.kfree(obj.addr),
        };
        // The table only holds objects it allocated: a refusal is a bug of ours.
        kernel::warn_on!(freed.is_err());
        self.charge.fetch_sub(obj.charge, Relaxed);
    }
}

impl Drop for SlabTable {
    /// Closing the file: its objects first, then its caches.
    fn drop(&mut self) {
        let handles: KVec<u64> = {
            let mut v = KVec::new();
            for (h, _) in self.objects.iter() {
                if v.push(*h, GFP_KERNEL).is_err() {
                    break;
                }
            }
            v
        };
        for h in handles.iter() {
            if let Some(obj) = self.objects.remove(h) {
                self.release(obj);
            }
        }
        // Anything left (no memory for the list above): one by one.
        while let Some((&h, _)) = self.objects.iter().next() {
            match self.objects.remove(&h) {
                Some(obj) => self.release(obj),
                None => break,
            }
        }
        while let Some((&h, _)) = self.caches.iter().next() {
            let Some(cache) = self.caches.remove(&h) else {
                break;
            };
            kernel::warn_on!(self.shared.caches.destroy(&cache).is_err());
        }
    }
}

impl Client {
    /// `MINIMM_IOC_SLAB_CREATE`.
    pub(super) fn slab_create(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::SlabCreate>(arg, uapi::SLAB_CREATE_SIZE_VER0, Tail::Input)?;
        let name_len = req.name.iter().position(|&c| c == 0).ok_or(EINVAL)?;
        let (name, rest) = req.name.split_at(name_len);
        if rest.iter().any(|&c| c != 0)
            || req.flags & !slab_flags::VALID != 0
            || req.object_size == 0
            || req.object_size > uapi::SLAB_MAX_OBJECT
            || (req.align != 0 && (!req.align.is_power_of_two() || req.align as usize > PAGE_SIZE))
            || (req.flags & slab_flags::CTOR == 0 && req.ctor_seed != 0)
            || !crate::slab_cache::valid_name(name)
        {
            return Err(EINVAL);
        }
        write_prefix(arg, &req, len)?;
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut t = self.slab.lock();
        if t.caches.iter().count() >= uapi::SLAB_MAX_CACHES {
            return Err(ENOSPC);
        }
        let handle = t.number()?;
        let cfg = Config {
            name,
            object_size: req.object_size as usize,
            align: req.align as usize,
            flags: req.flags,
            ctor_seed: req.ctor_seed,
            record: false,
        };
        let cache = match self.shared.caches.create(&cfg, &self.shared.pool) {
            Ok(c) => c,
            Err(e) => {
                t.next_handle = handle;
                return Err(e);
            }
        };
        t.caches.insert(node.into_node(handle, cache));
        drop(t);
        req.cache = handle;
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        if let Err(e) = write_prefix(arg, &req, len) {
            let mut t = self.slab.lock();
            if let Some(c) = t.caches.remove(&handle) {
                let _ = self.shared.caches.destroy(&c);
            }
            if t.next_handle == handle + 1 {
                t.next_handle = handle;
            }
            return Err(e);
        }
        Ok(())
    }

    /// `MINIMM_IOC_SLAB_DESTROY`.
    pub(super) fn slab_destroy(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::SlabCache>(arg, uapi::SLAB_CACHE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        let mut t = self.slab.lock();
        let cache = t.caches.get(&req.cache).cloned().ok_or(EINVAL)?;
        self.shared.caches.destroy(&cache)?;
        let node = t.caches.remove_node(&req.cache);
        drop(t);
        drop(node);
        Ok(())
    }

    /// The cache of this file named by `handle` (`EINVAL` for any other handle).
    fn cache_of(&self, handle: u64) -> Result<Arc<SlabCache>> {
        self.slab.lock().caches.get(&handle).cloned().ok_or(EINVAL)
    }

    /// `MINIMM_IOC_SLAB_SHRINK`.
    pub(super) fn slab_shrink(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::SlabCache>(arg, uapi::SLAB_CACHE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        let cache = self.cache_of(req.cache)?;
        write_prefix(arg, &req, len)?;
        req.pages_freed = cache.shrink() as u64;
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &req, len)
    }

    /// `MINIMM_IOC_SLAB_STATS`.
    pub(super) fn slab_stats(&self, arg: UserPtr) -> Result {
        let (req, len) =
            read_ext::<uapi::SlabStats>(arg, uapi::SLAB_STATS_SIZE_VER0, Tail::Output)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        let cache = self.cache_of(req.cache)?;
        let mut out = stats_of(&cache);
        out.cache = req.cache;
        out.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &out, len)
    }

    /// `MINIMM_IOC_SLAB_ALLOC`.
    pub(super) fn slab_alloc(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::SlabAlloc>(arg, uapi::SLAB_ALLOC_SIZE_VER0, Tail::Input)?;
        let generic = req.cache == 0;
        if req.flags & !obj_flags::VALID != 0
            || req.pad != 0
            || req.pad2 != 0
            || (generic && (req.bytes == 0 || req.bytes > uapi::SLAB_MAX_GENERIC))
            || (!generic && (req.bytes != 0 || req.flags & obj_flags::DMA != 0))
        {
            return Err(EINVAL);
        }
        write_prefix(arg, &req, len)?;
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        if fail::should_fail(Point::HandleInsert) {
            return Err(ENOMEM);
        }
        let mut t = self.slab.lock();
        // An unknown cache is EINVAL whatever memory there is: looked up before the record.
        let cache = if generic {
            None
        } else {
            Some(t.caches.get(&req.cache).cloned().ok_or(EINVAL)?)
        };
        // The record first (under the table, as the lock order allows): once the object is
        // allocated, nothing else may fail.
        let slot = self.shared.slab_objects.reserve()?;
        let obj = self.new_object(slot, cache, req.bytes as usize, req.flags)?;
        let handle = match t.number() {
            Ok(h) => h,
            Err(e) => {
                t.release(obj);
                return Err(e);
            }
        };
        req.object = handle;
        req.objsize = obj.objsize as u32;
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        // Entered only once the caller has the handle: an undo is then exact.
        drop(t);
        if let Err(e) = write_prefix(arg, &req, len) {
            let mut t = self.slab.lock();
            if t.next_handle == handle + 1 {
                t.next_handle = handle;
            }
            t.release(obj);
            return Err(e);
        }
        self.slab.lock().objects.insert(node.into_node(handle, obj));
        Ok(())
    }

    /// Allocates an object of `cache` (or of the generic caches, `bytes` long), charges it and
    /// records it in `slot`.
    fn new_object(
        &self,
        slot: Slot<Object>,
        cache: Option<Arc<SlabCache>>,
        bytes: usize,
        flags: u32,
    ) -> Result<Rec<Object>> {
        let gfp = Gfp::from_user(
            flags & obj_flags::ATOMIC != 0,
            flags & obj_flags::NOWAIT != 0,
        );
        let k = &self.shared.kmalloc;
        let dma = flags & obj_flags::DMA != 0;
        let (charge, objsize) = match &cache {
            Some(c) => (c.geometry().slot, c.geometry().object_size),
            None => (
                k.cache_for(bytes, dma).map_or_else(
                    || PAGE_SIZE << crate::slab::kmalloc_large_order(bytes, PAGE_SIZE),
                    |c| c.geometry().slot,
                ),
                bytes,
            ),
        };
        self.charge_bytes(charge)?;
        let addr = match &cache {
            Some(c) => c.alloc(gfp).inspect(|&a| {
                if flags & obj_flags::ZERO != 0 {
                    // SAFETY: The object was just allocated for this file; nothing else can
                    // reach it yet.
                    unsafe { crate::slab_mem::bytes_mut(a, objsize) }.fill(0);
                }
            }),
            // Generic objects are always zeroed: other files share the caches.
            None => k.kmalloc(bytes, gfp, dma, true),
        };
        let addr = addr.inspect_err(|_| {
            self.charge.fetch_sub(charge, Relaxed);
        })?;
        Ok(slot.fill(Object {
            cache,
            addr,
            objsize,
            charge,
        }))
    }

    /// `MINIMM_IOC_SLAB_FREE`.
    pub(super) fn slab_free(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::SlabFree>(arg, uapi::SLAB_FREE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        let mut t = self.slab.lock();
        let node = t.objects.remove_node(&req.object).ok_or(EINVAL)?;
        let (_, obj) = node.to_key_value();
        t.release(obj);
        Ok(())
    }

    /// `MINIMM_IOC_SLAB_BULK`.
    pub(super) fn slab_bulk(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::SlabBulk>(arg, uapi::SLAB_BULK_SIZE_VER0, Tail::Input)?;
        let count = req.count as usize;
        let bad_flags = match req.op {
            uapi::SLAB_BULK_ALLOC => req.flags & !(obj_flags::VALID & !obj_flags::DMA) != 0,
            uapi::SLAB_BULK_FREE => req.flags != 0,
            _ => true,
        };
        if bad_flags || count == 0 || req.count > uapi::SLAB_BULK_MAX {
            return Err(EINVAL);
        }
        let user = UserSlice::new(UserPtr::from_addr(req.objects as usize), count * 8);
        let mut handles = [0u64; uapi::SLAB_BULK_MAX as usize];
        let handles = handles.get_mut(..count).ok_or(EINVAL)?;
        if req.op == uapi::SLAB_BULK_FREE {
            let mut r = user.reader();
            for h in handles.iter_mut() {
                *h = r.read::<u64>()?;
            }
            return self.bulk_free(req.cache, handles);
        }
        // Allocation: everything reserved and allocated first, then the handles written, then
        // the objects entered: all or nothing.
        let mut nodes = KVec::with_capacity(count, GFP_KERNEL)?;
        for _ in 0..count {
            nodes.push(RBTreeNodeReservation::new(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let mut objs: KVec<(u64, Rec<Object>)> = KVec::with_capacity(count, GFP_KERNEL)?;
        let mut slots = KVec::with_capacity(count, GFP_KERNEL)?;
        let mut t = self.slab.lock();
        // An unknown cache is EINVAL whatever memory there is: looked up before the records.
        let cache = t.caches.get(&req.cache).cloned().ok_or(EINVAL)?;
        // The records first (under the table, as the lock order allows): once the objects
        // are allocated, nothing else may fail.
        for _ in 0..count {
            slots.push(self.shared.slab_objects.reserve()?, GFP_KERNEL)?;
        }
        let first = t.next_handle;
        if first.saturating_add(count as u64) > HANDLE_LIMIT {
            return Err(ENOSPC);
        }
        let (slot, objsize) = (cache.geometry().slot, cache.geometry().object_size);
        // One charge and one bulk allocation (`kmem_cache_alloc_bulk`) for the batch.
        let charge = slot.checked_mul(count).ok_or(EINVAL)?;
        self.charge_bytes(charge)?;
        let mut addrs = [0usize; uapi::SLAB_BULK_MAX as usize];
        let addrs = addrs.get_mut(..count).ok_or(EINVAL)?;
        let gfp = Gfp::from_user(
            req.flags & obj_flags::ATOMIC != 0,
            req.flags & obj_flags::NOWAIT != 0,
        );
        if let Err(e) = cache.alloc_bulk(gfp, addrs) {
            self.charge.fetch_sub(charge, Relaxed);
            return Err(e);
        }
        for (&addr, record) in addrs.iter().zip(slots.drain_all()) {
            if req.flags & obj_flags::ZERO != 0 {
                // SAFETY: The object was just allocated for this file; nothing else can reach
                // it yet.
                unsafe { crate::slab_mem::bytes_mut(addr, objsize) }.fill(0);
            }
            let rec = record.fill(Object {
                cache: Some(cache.clone()),
                addr,
                objsize,
                charge: slot,
            });
            // Cannot fail: `count` handles are below the limit (checked above) and `objs` has
            // room for `count`. Were it to, the object goes back at once.
            match t.number() {
                Ok(h) => {
                    if let Err(e) = objs.push_within_capacity((h, rec)) {
                        t.release(e.0 .1);
                    }
                }
                Err(_) => t.release(rec),
            }
        }
        let undo = |t: &mut SlabTable, objs: &mut KVec<(u64, Rec<Object>)>| {
            while let Some((_, o)) = objs.pop() {
                t.release(o);
            }
            if t.next_handle == first + count as u64 {
                t.next_handle = first;
            }
        };
        if objs.len() != count {
            undo(&mut t, &mut objs);
            return Err(ENOMEM);
        }
        drop(t);
        for (h, (handle, _)) in handles.iter_mut().zip(objs.iter()) {
            *h = *handle;
        }
        let mut w = user.writer();
        let written = handles.iter().try_for_each(|h| w.write(h));
        let mut t = self.slab.lock();
        if let Err(e) = written {
            undo(&mut t, &mut objs);
            return Err(e);
        }
        for (node, (handle, obj)) in nodes.into_iter().zip(objs.into_iter()) {
            t.objects.insert(node.into_node(handle, obj));
        }
        Ok(())
    }

    /// Frees every object of `handles` (of cache `cache`), or none.
    fn bulk_free(&self, cache: u64, handles: &[u64]) -> Result {
        let mut t = self.slab.lock();
        let c = t.caches.get(&cache).ok_or(EINVAL)?;
        for (i, h) in handles.iter().enumerate() {
            let o = t.objects.get(h).ok_or(EINVAL)?;
            let same = o.cache.as_ref().is_some_and(|oc| oc.id() == c.id());
            let twice = handles.get(..i).is_some_and(|before| before.contains(h));
            if !same || twice {
                return Err(EINVAL);
            }
        }
        for h in handles {
            if let Some(obj) = t.objects.remove(h) {
                t.release(obj);
            }
        }
        Ok(())
    }

    /// `MINIMM_IOC_SLAB_DATA`.
    pub(super) fn slab_data(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::SlabData>(arg, uapi::SLAB_DATA_SIZE_VER0, Tail::Input)?;
        if req.op != uapi::SLAB_READ && req.op != uapi::SLAB_WRITE {
            return Err(EINVAL);
        }
        let (offset, len) = (req.offset as usize, req.len as usize);
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        // Checked against the object before anything is allocated or copied.
        {
            let t = self.slab.lock();
            let o = t.objects.get(&req.object).ok_or(EINVAL)?;
            if end > o.objsize {
                return Err(EINVAL);
            }
        }
        if len == 0 {
            return Ok(());
        }
        let mut bounce = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
        let user = || UserSlice::new(UserPtr::from_addr(req.buf as usize), len);
        if req.op == uapi::SLAB_WRITE {
            user().reader().read_slice(&mut bounce)?;
        }
        {
            let t = self.slab.lock();
            // Looked up again: another thread may have freed it meanwhile.
            let o = t.objects.get(&req.object).ok_or(EINVAL)?;
            if end > o.objsize {
                return Err(EINVAL);
            }
            let at = o.addr + offset;
            let b = bounce.as_mut_ptr() as usize;
            // SAFETY: `at..at + len` lies inside the object (`end <= objsize`), which this file
            // owns and cannot free while the table lock is held; the kernel touches an
            // object's bytes only under that lock. The bounce buffer is ours.
            unsafe {
                if req.op == uapi::SLAB_WRITE {
                    crate::slab_mem::copy(b, at, len);
                } else {
                    crate::slab_mem::copy(at, b, len);
                }
            }
        }
        if req.op == uapi::SLAB_READ {
            user().writer().write_slice(&bounce)?;
        }
        Ok(())
    }
}

/// A cache's `MINIMM_IOC_SLAB_STATS` answer (without `size` and `cache`).
pub(crate) fn stats_of(cache: &SlabCache) -> uapi::SlabStats {
    let g = cache.geometry();
    let s = cache.stats();
    let (limit, batch) = cache.tunables();
    uapi::SlabStats {
        object_size: g.object_size as u32,
        slot_size: g.slot as u32,
        align: g.align as u32,
        objs_per_slab: g.objects as u32,
        order: g.order,
        colours: g.colours as u32,
        flags: cache.flags(),
        active_objs: s.allocated as u64,
        num_objs: s.num_objs as u64,
        active_slabs: s.active_slabs as u64,
        num_slabs: s.num_slabs as u64,
        partial_slabs: s.partial as u64,
        empty_slabs: s.empty as u64,
        cpu_objects: s.cpu_objects as u64,
        limit: limit as u64,
        batchcount: batch as u64,
        min_partial: cache.min_partial() as u64,
        alloc_fastpath: s.alloc_fast,
        alloc_slowpath: s.alloc_slow,
        free_fastpath: s.free_fast,
        free_slowpath: s.free_slow,
        slabs_created: s.created,
        slabs_freed: s.freed,
        debug_errors: s.errors,
        ..Default::default()
    }
}
