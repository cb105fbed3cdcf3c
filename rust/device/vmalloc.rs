// SPDX-License-Identifier: GPL-2.0

//! vmalloc-like areas of an open file: `VM_CREATE`, `VM_FREE`, `VM_RESIZE`, `VM_INFO`.
//!
//! An area is a buffer of the file (`blocks.rs`) whose pages are a [`crate::vmalloc::Area`]:
//! it shares the blocks' handles, table, quota, offset space and mmap rules, and
//! `BLOCK_DATA` reaches it through its kernel mapping.
//!
//! # Locks
//!
//! As for blocks: the file's table lock is taken alone but in a resize, which takes it under
//! the old buffer's `data` to swap the buffer under its handle; an area is made (pages,
//! mapping, record, the mapper's tree lock) with no device lock held.

use kernel::{
    page::PAGE_SHIFT,
    page::PAGE_SIZE,
    prelude::*,
    rbtree::RBTreeNodeReservation,
    sync::{atomic::Relaxed, Arc},
    uaccess::UserPtr,
};

use super::{
    blocks::{reserve, Backing, Nodes},
    read_ext,
    registry::OwnerRecord,
    write_prefix, Client, Tail,
};
use crate::{
    reclaim::Unit,
    uapi::{self, vm_flags},
    vm_area,
    vmalloc::{Options, MAX_AREA_PAGES},
    zone::NR_ZONES,
};

/// How an area of user space is made: from `zone` down, with the `MINIMM_VM_*` `flags`,
/// always zeroed (user space sees it).
fn options(zone: usize, flags: u32) -> Options {
    Options {
        highest: zone,
        class: reserve(flags & vm_flags::ATOMIC != 0, flags & vm_flags::NOWAIT != 0),
        large: flags & vm_flags::LARGE != 0,
        zero: true,
    }
}

impl Client {
    /// `MINIMM_IOC_VM_CREATE`.
    pub(super) fn vm_create(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::VmCreate>(arg, uapi::VM_CREATE_SIZE_VER0, Tail::Input)?;
        let zone = usize::try_from(req.zone).map_err(|_| EINVAL)?;
        let discardable = req.flags & vm_flags::DISCARDABLE != 0;
        if zone >= NR_ZONES
            || req.flags & !vm_flags::VALID != 0
            || (discardable && req.flags & vm_flags::LARGE != 0)
            || req.pad != 0
            || req.bytes > uapi::VM_MAX_BYTES
        {
            return Err(EINVAL);
        }
        let pages = vm_area::pages_for(req.bytes, PAGE_SIZE, MAX_AREA_PAGES).ok_or(EINVAL)?;
        // Fail on an unwritable struct before anything changes.
        write_prefix(arg, &req, len)?;
        let nodes = Nodes::new()?;
        let bytes = pages * PAGE_SIZE;
        self.charge_bytes(bytes)?;
        let opts = options(zone, req.flags);
        let may_reclaim = req.flags & (vm_flags::ATOMIC | vm_flags::NOWAIT) == 0;
        let backing = if discardable {
            self.discard_area(pages, opts, may_reclaim)
                .map(|(pgoff, u)| (pgoff, Backing::Discard(u, req.flags)))
        } else {
            crate::reclaim::with_direct_reclaim(&self.shared, zone, pages, may_reclaim, || {
                self.shared.vmalloc.create(pages, opts, "vm_create")
            })
            .and_then(|area| Ok((self.shared.registry.take_range(pages as u64)?, area)))
            .map(|(pgoff, area)| (pgoff, Backing::Area(area, req.flags, zone)))
        };
        let (pgoff, backing) = backing.inspect_err(|_| {
            self.charge.fetch_sub(bytes, Relaxed);
        })?;
        let unit = match &backing {
            Backing::Discard(u, _) => Some(u.clone()),
            _ => None,
        };
        let flags = req.flags;
        let buf = self.new_buffer(backing, pgoff, bytes)?;
        self.enter(
            nodes,
            buf,
            |handle| {
                req.handle = handle;
                req.mmap_offset = pgoff << PAGE_SHIFT;
                req.pages = pages as u64;
                req.size = u32::try_from(len).unwrap_or(u32::MAX);
                write_prefix(arg, &req, len)
            },
            |id, handle| {
                // A discardable area's page_owner paragraph comes from its record (with its
                // state); other areas' from the mapper's tree.
                let u = unit?;
                Some(OwnerRecord::new_by_current(id, handle, 0, zone, 0, flags).with_unit(u))
            },
        )
    }

    /// A discardable area of `pages` pages: order-0 pages (each its own unit for reclaim),
    /// mapped into the kernel while pinned, and its range of the offset space.
    fn discard_area(
        &self,
        pages: usize,
        opts: Options,
        may_reclaim: bool,
    ) -> Result<(u64, Arc<Unit>)> {
        let sh = &self.shared;
        let slots =
            crate::reclaim::with_direct_reclaim(sh, opts.highest, pages, may_reclaim, || {
                sh.vmalloc.take_loose(pages, opts)
            })?;
        let map = sh.vmalloc.map_borrowed(&slots, opts.highest, "vm_create")?;
        let pgoff = sh.registry.take_range(pages as u64)?;
        let unit = Unit::new_area(map, slots, pgoff, opts.highest, &sh.reclaim)?;
        Ok((pgoff, unit))
    }

    /// `MINIMM_IOC_VM_FREE`.
    pub(super) fn vm_free(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::Free>(arg, uapi::FREE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        let buf = self.take_if(req.handle, |b| match &b.backing {
            Backing::Area(..) => true,
            Backing::Discard(u, _) => u.is_area(),
            Backing::Block(_) => false,
        })?;
        // Dropped outside the table lock.
        drop(buf);
        Ok(())
    }

    /// `MINIMM_IOC_VM_RESIZE`: a new area of the new size with the old one's first bytes,
    /// in the old one's place under its handle; the old one goes when its last reference
    /// (a user mapping made before) does.
    ///
    /// The old buffer's `data` lock is held from the copy until the new buffer is in its
    /// place, and the old one is then marked retired: a `BLOCK_DATA` or another resize that
    /// waited for the lock looks the handle up again and finds the new buffer, so no fill is
    /// lost between the copy and the swap.
    pub(super) fn vm_resize(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::VmResize>(arg, uapi::VM_RESIZE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 || req.bytes > uapi::VM_MAX_BYTES {
            return Err(EINVAL);
        }
        let pages = vm_area::pages_for(req.bytes, PAGE_SIZE, MAX_AREA_PAGES).ok_or(EINVAL)?;
        // A discardable area keeps its size (its pages are units of reclaim): EINVAL, as for
        // a block.
        let (flags, zone) = match self.lookup(req.handle).as_deref().map(|b| &b.backing) {
            Some(Backing::Area(_, flags, zone)) => (*flags, *zone),
            _ => return Err(EINVAL),
        };
        // Fail on an unwritable struct before anything changes.
        write_prefix(arg, &req, len)?;
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let bytes = pages * PAGE_SIZE;
        self.charge_bytes(bytes)?;
        let made = self
            .shared
            .vmalloc
            .create(pages, options(zone, flags), "vm_resize")
            .and_then(|area| Ok((self.shared.registry.take_range(pages as u64)?, area)));
        let (pgoff, area) = made.inspect_err(|_| {
            self.charge.fetch_sub(bytes, Relaxed);
        })?;
        let new = self.new_buffer(Backing::Area(area, flags, zone), pgoff, bytes)?;
        // Report first, as `enter` does: until the swap nobody can reach the new area, so a
        // failed write back drops it and changes nothing.
        req.mmap_offset = pgoff << PAGE_SHIFT;
        req.pages = pages as u64;
        req.size = u32::try_from(len).unwrap_or(u32::MAX);
        write_prefix(arg, &req, len)?;
        let old = self.with_data(req.handle, |old, retired| {
            let Backing::Area(old_area, ..) = &old.backing else {
                // A block now under the handle? Handles are never reused: cannot happen.
                return Err(EINVAL);
            };
            let Backing::Area(new_area, ..) = &new.backing else {
                return Err(EINVAL);
            };
            // SAFETY: The new area is nobody else's yet; the kernel touches the old area's
            // bytes nowhere else while its `data` lock is held. User space may write the old
            // area through a mapping meanwhile, which only mixes old and new bytes.
            unsafe { new_area.copy_from(old_area) };
            let old = self.replace(req.handle, old, new.clone(), node)?;
            *retired = true;
            Ok(old)
        })?;
        // The old area goes with its last reference: now, unless a mapping holds it.
        drop(old);
        Ok(())
    }

    /// `MINIMM_IOC_VM_INFO`.
    pub(super) fn vm_info(&self, arg: UserPtr) -> Result {
        let (mut req, len) = read_ext::<uapi::VmInfo>(arg, uapi::VM_INFO_SIZE_VER0, Tail::Output)?;
        let buf = self.lookup(req.handle).ok_or(EINVAL)?;
        // A discardable area's pages now: purged ones not counted.
        let (s, flags) = match &buf.backing {
            Backing::Area(area, flags, _) => (*area.scatter(), *flags),
            Backing::Discard(u, flags) if u.is_area() => (u.scatter(), *flags),
            _ => return Err(EINVAL),
        };
        req.flags = flags;
        req.pages = buf.backing.pages() as u64;
        req.bytes = (buf.backing.pages() * PAGE_SIZE) as u64;
        for (out, &n) in req.zone_pages.iter_mut().zip(s.zone_pages.iter()) {
            *out = n as u64;
        }
        req.runs = s.runs as u64;
        req.mmap_offset = buf.pgoff << PAGE_SHIFT;
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &req, len)
    }
}
