// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's area operations (`MINIMM_FEAT_VMALLOC`): VM_CREATE with random sizes, zones
//! and flags, VM_RESIZE both ways, VM_FREE, VM_INFO, and invalid requests. An area lives in
//! the model as a [`Block`] of any number of pages (`area` set), so that every block
//! operation (FILL and CHECKSUM through the kernel's contiguous mapping, mmap and partial
//! munmap, mprotect, mremap, MADV_DONTNEED, fork, FREE, races with free) runs on areas too,
//! with the data checked through both views.

use std::mem::size_of;

use minimm_uapi::sys;

use crate::{
    model::{lock, Block, Data, Fill},
    ops::{buffer, bytes_mut, get, ioctl_at, put, put_block, Ctx, Place, Ran, Step},
};

/// Areas (and blocks) one file holds at most in the model.
const MAX_LIVE: usize = 16;

impl Ctx<'_> {
    /// An area size in pages: mostly small, sometimes a few hundred.
    fn area_pages(&mut self) -> u32 {
        match self.rng.below(10) {
            0 => 65 + self.rng.below(400) as u32,
            1..=3 => 9 + self.rng.below(56) as u32,
            _ => 1 + self.rng.below(8) as u32,
        }
    }
}

/// VM_CREATE of a random size (not always page-aligned), zone and flags, with a struct size
/// of the first version, this header's or longer with a zero tail; the errno against the
/// quota, the struct and VM_INFO against the model.
pub(crate) fn op_vm_create(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page() as u64;
    let pages = ctx.area_pages();
    let bytes = u64::from(pages) * page - ctx.rng.below(page);
    let size = match ctx.rng.below(3) {
        0 => sys::MINIMM_VM_CREATE_SIZE_VER0,
        1 => size_of::<sys::minimm_vm_create>() as u32,
        _ => (8 * (7 + ctx.rng.below(page / 8 - 6))) as u32,
    };
    let req = sys::minimm_vm_create {
        size,
        zone: ctx.rng.below(3) as u32,
        bytes,
        flags: ctx.rng.below(u64::from(sys::MINIMM_VM_VALID) + 1) as u32,
        ..Default::default()
    };
    let mut m = lock(&file.model);
    if m.live.len() >= MAX_LIVE {
        return Ok(Ran::Skipped);
    }
    ctx.what = format!(
        "VM_CREATE file {} ({}) {bytes} bytes zone {} flags {:#x} size {size}",
        file.id,
        file.mode_name(),
        req.zone,
        req.flags
    );
    let mut buf = buffer(page as usize);
    put(&mut buf, req);
    let r = ioctl_at(
        &file.dev,
        sys::MINIMM_IOC_VM_CREATE,
        &mut buf,
        &Place::Buffer,
    );
    if !file.writable() {
        ctx.fails(r, &[libc::EBADF], "VM_CREATE on a read-only file")?;
        return Ok(Ran::Done);
    }
    let discardable = req.flags & sys::MINIMM_VM_DISCARDABLE != 0;
    if discardable && req.flags & sys::MINIMM_VM_LARGE != 0 {
        ctx.fails(r, &[libc::EINVAL], "VM_CREATE with DISCARDABLE and LARGE")?;
        return Ok(Ran::Done);
    }
    let (lower, upper) = m.charge_bounds(page as usize);
    let quota = ctx.p.quota * page;
    let want = u64::from(pages) * page;
    let mut allowed = vec![libc::ENOMEM];
    if upper + want > quota {
        allowed.push(libc::EDQUOT);
    }
    if ctx.outcome(r, &allowed, "VM_CREATE")?.is_err() {
        return Ok(Ran::Done);
    }
    check!(
        lower + want <= quota,
        "VM_CREATE succeeded beyond the quota: at least {lower} bytes charged + {want} > {quota}"
    );
    let out: sys::minimm_vm_create = get(&buf);
    let want_handle = m.last_handle + 1;
    check!(
        out.size == size.min(size_of::<sys::minimm_vm_create>() as u32)
            && out.pages == u64::from(pages)
            && out.zone == req.zone
            && out.bytes == bytes
            && out.flags == req.flags,
        "VM_CREATE wrote back {out:?} for {req:?}"
    );
    check!(
        out.handle == want_handle || (m.slab_handles && out.handle > want_handle),
        "VM_CREATE returned handle {}, the model expected {want_handle}",
        out.handle
    );
    check!(
        out.mmap_offset != 0 && out.mmap_offset % page == 0,
        "VM_CREATE: mmap_offset {:#x}",
        out.mmap_offset
    );
    for other in m.live.iter().chain(m.freed_mapped.iter()) {
        let other_len = page * u64::from(other.pages);
        check!(
            out.mmap_offset + want <= other.offset || other.offset + other_len <= out.mmap_offset,
            "VM_CREATE: offsets {:#x}+{want:#x} overlap handle {}'s {:#x}+{other_len:#x}",
            out.mmap_offset,
            other.handle,
            other.offset
        );
    }
    let tail = &bytes_mut(&mut buf)[size_of::<sys::minimm_vm_create>()..];
    check!(
        tail.iter().all(|&b| b == 0),
        "VM_CREATE wrote past its struct"
    );
    m.last_handle = out.handle;
    m.charged += u64::from(pages);
    let b = Block {
        handle: out.handle,
        pages,
        area: Some(req.flags),
        zone: req.zone,
        offset: out.mmap_offset,
        data: Data::new(pages, Fill::Zero),
        pieces: Vec::new(),
        freed: false,
        discardable,
    };
    drop(m);
    let r = check_info(ctx, &file.dev, &b);
    lock(&file.model).live.push(b);
    r.map(|()| Ran::Done)
}

/// VM_INFO of `b` against the model: pages, bytes, offset, flags, pages per zone (none above
/// the zone asked for), runs.
fn check_info(ctx: &Ctx<'_>, dev: &minimm_uapi::Device, b: &Block) -> Result<(), String> {
    let i = ctx.ok(dev.vm_info(b.handle), "VM_INFO")?;
    let page = ctx.page() as u64;
    let pages = u64::from(b.pages);
    check!(
        i.pages == pages
            && i.bytes == pages * page
            && i.mmap_offset == b.offset
            && Some(i.flags) == b.area
            && i.zone_pages.iter().sum::<u64>() == pages
            && i.zone_pages[b.zone as usize + 1..].iter().all(|&n| n == 0)
            && (1..=pages).contains(&i.runs),
        "VM_INFO of handle {} ({} pages, zone {}, offset {:#x}, flags {:?}): {i:?}",
        b.handle,
        b.pages,
        b.zone,
        b.offset,
        b.area
    );
    Ok(())
}

/// VM_CREATE that must fail: 0 bytes, above the limit, an unknown zone or flag, padding;
/// EINVAL (EBADF on a read-only file), nothing created.
pub(crate) fn op_vm_create_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let mut req = sys::minimm_vm_create {
        size: size_of::<sys::minimm_vm_create>() as u32,
        zone: 2,
        bytes: 4096,
        ..Default::default()
    };
    let what = match ctx.rng.below(5) {
        0 => {
            req.bytes = 0;
            "0 bytes"
        }
        1 => {
            req.bytes = sys::MINIMM_VM_MAX_BYTES as u64 + 1 + ctx.rng.below(1 << 40);
            "above MINIMM_VM_MAX_BYTES"
        }
        2 => {
            req.zone = 3 + ctx.rng.below(1000) as u32;
            "unknown zone"
        }
        3 => {
            req.flags = sys::MINIMM_VM_VALID + 1 + ctx.rng.below(1 << 20) as u32;
            "unknown flag"
        }
        _ => {
            req.__pad = 1 + ctx.rng.below(100) as u32;
            "padding"
        }
    };
    ctx.what = format!("VM_CREATE file {} with {what}: {req:?}", file.id);
    let mut r = req;
    let res = file.dev.ioctl(sys::MINIMM_IOC_VM_CREATE, &mut r);
    let errno = if file.writable() {
        libc::EINVAL
    } else {
        libc::EBADF
    };
    ctx.fails(res, &[errno], "invalid VM_CREATE")?;
    Ok(Ran::Done)
}

/// VM_RESIZE of an area to a random size: the first pages kept, the rest zero, a new offset;
/// a mapping made before keeps the old pages and data (the old area stays charged until it is
/// unmapped). A block's or a discardable area's handle is EINVAL, the buffer unchanged.
pub(crate) fn op_vm_resize(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page() as u64;
    let pages = ctx.area_pages();
    ctx.what = format!(
        "VM_RESIZE file {} handle {} ({} pages, area {:?}, {} pieces mapped) to {pages} pages",
        file.id,
        b.handle,
        b.pages,
        b.area,
        b.pieces.len()
    );
    let r = file.dev.vm_resize(b.handle, u64::from(pages) * page);
    if b.area.is_none() || b.discardable {
        // A discardable area keeps its size.
        let r = ctx.fails(
            r,
            &[libc::EINVAL],
            "VM_RESIZE of a block or discardable area",
        );
        put_block(&file, b);
        return r.map(|_| Ran::Done);
    }
    let (lower, upper) = {
        let m = lock(&file.model);
        let (lo, hi) = m.charge_bounds(page as usize);
        // This area is taken out ("releasing"), yet charged until the resize lets it go.
        (lo + u64::from(b.pages) * page, hi)
    };
    let quota = ctx.p.quota * page;
    let want = u64::from(pages) * page;
    let mut allowed = vec![libc::ENOMEM];
    if upper + want > quota {
        allowed.push(libc::EDQUOT);
    }
    let out = match ctx.outcome(r, &allowed, "VM_RESIZE") {
        Ok(Ok(out)) => out,
        Ok(Err(_)) => {
            put_block(&file, b);
            return Ok(Ran::Done);
        }
        Err(e) => {
            put_block(&file, b);
            return Err(e);
        }
    };
    let bad = if lower + want > quota {
        Some(format!(
            "VM_RESIZE succeeded beyond the quota: at least {lower} bytes charged + {want} > {quota}"
        ))
    } else if out.pages != u64::from(pages)
        || out.mmap_offset == b.offset
        || out.mmap_offset % page != 0
    {
        Some(format!("VM_RESIZE wrote back {out:?}"))
    } else {
        None
    };
    let new = Block {
        handle: b.handle,
        pages,
        area: b.area,
        zone: b.zone,
        offset: out.mmap_offset,
        data: b.data.resized(pages),
        pieces: Vec::new(),
        freed: false,
        discardable: false,
    };
    // The old area: like a freed one, kept while a piece maps it.
    b.freed = true;
    lock(&file.model).charged += u64::from(pages);
    put_block(&file, b);
    if let Some(e) = bad {
        lock(&file.model).live.push(new);
        return Err(e);
    }
    let r = if ctx.rng.chance(50) {
        let got = ctx.ok(file.dev.checksum(new.handle), "CHECKSUM after VM_RESIZE");
        let sum = new.data.checksum(new.pages, ctx.page());
        got.and_then(|g| {
            if g == sum {
                Ok(())
            } else {
                Err(format!(
                    "CHECKSUM after VM_RESIZE: {g:#x}, model {sum:#x} ({:?})",
                    new.data
                ))
            }
        })
    } else {
        check_info(ctx, &file.dev, &new)
    };
    lock(&file.model).live.push(new);
    r.map(|()| Ran::Done)
}

/// VM_FREE of an area (or, sometimes, of a block: EINVAL, the block unchanged).
pub(crate) fn op_vm_free(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    ctx.what = format!(
        "VM_FREE file {} handle {} (area {:?}, {} pieces mapped)",
        file.id,
        b.handle,
        b.area,
        b.pieces.len()
    );
    let r = file.dev.vm_free(b.handle);
    if b.area.is_none() {
        let r = ctx.fails(r, &[libc::EINVAL], "VM_FREE of a block");
        put_block(&file, b);
        return r.map(|_| Ran::Done);
    }
    if let Err(e) = ctx.ok(r, "VM_FREE") {
        put_block(&file, b);
        return Err(e);
    }
    b.freed = true;
    lock(&file.model).note_freed(b.handle);
    let again = if ctx.rng.chance(30) {
        ctx.fails(
            file.dev.vm_info(b.handle),
            &[libc::EINVAL],
            "VM_INFO after VM_FREE",
        )
        .map(|_| ())
    } else {
        Ok(())
    };
    put_block(&file, b);
    again.map(|()| Ran::Done)
}

/// VM_INFO of an area against the model (of a block: EINVAL).
pub(crate) fn op_vm_info(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    ctx.what = format!(
        "VM_INFO file {} handle {} (area {:?})",
        file.id, b.handle, b.area
    );
    let r = if b.area.is_some() {
        check_info(ctx, &file.dev, &b)
    } else {
        ctx.fails(
            file.dev.vm_info(b.handle),
            &[libc::EINVAL],
            "VM_INFO of a block",
        )
        .map(|_| ())
    };
    put_block(&file, b);
    r.map(|()| Ran::Done)
}
