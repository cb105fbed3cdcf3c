// SPDX-License-Identifier: GPL-2.0

//! Selftests of the zoned buddy pool: allocation ioctls and their errnos, zone placement and
//! fallback, watermarks, mmap, data round trips, ownership, quota and unload.

use std::{io, mem::size_of};

use minimm_uapi::{checksum, debugfs, fill_pattern, page_size, sys, Device};

use crate::{
    common::{
        e, free_pages, in_child, info_value, open, sh, stats, validate_ok, vmstat, CpuPin, Exit,
        Watermarks, DMA, DMA32, NORMAL,
    },
    ktap::{expect_errno, pass, skip, TestResult},
};

/// Every order from 0 to MAX_ORDER comes and goes, and the zone's free count follows.
pub fn alloc_free_every_order() -> TestResult {
    let dev = open()?;
    for order in 0..=sys::MINIMM_MAX_ORDER {
        let before = free_pages(&dev)?;
        let a = dev
            .alloc(order, NORMAL, 0)
            .map_err(|err| format!("order {order}: {err}"))?;
        check!(a.handle != 0, "handle 0");
        check_eq!(a.size, sys::MINIMM_ALLOC_SIZE_VER0);
        check!(
            a.mmap_offset != 0 && a.mmap_offset % page_size() as u64 == 0,
            "mmap offset {:#x}",
            a.mmap_offset
        );
        check!(a.zone_out <= NORMAL, "zone_out {}", a.zone_out);
        let after = free_pages(&dev)?;
        let z = a.zone_out as usize;
        check_eq!(before[z] - after[z], 1u64 << order);
        dev.free(a.handle).map_err(e)?;
        check_eq!(free_pages(&dev)?, before);
    }
    pass()
}

/// Bad requests get EINVAL, EFAULT or E2BIG and change nothing.
pub fn alloc_errnos() -> TestResult {
    let dev = open()?;
    let before = free_pages(&dev)?;
    let base = sys::minimm_alloc {
        size: size_of::<sys::minimm_alloc>() as u32,
        zone: NORMAL,
        ..Default::default()
    };
    let cases: [(&str, sys::minimm_alloc, i32); 6] = [
        (
            "order 11",
            sys::minimm_alloc { order: 11, ..base },
            libc::EINVAL,
        ),
        (
            "order u32::MAX",
            sys::minimm_alloc {
                order: u32::MAX,
                ..base
            },
            libc::EINVAL,
        ),
        (
            "zone 3",
            sys::minimm_alloc { zone: 3, ..base },
            libc::EINVAL,
        ),
        (
            "unknown flag",
            sys::minimm_alloc {
                flags: sys::MINIMM_ALLOC_VALID + 1,
                ..base
            },
            libc::EINVAL,
        ),
        (
            "padding",
            sys::minimm_alloc { __pad: 1, ..base },
            libc::EINVAL,
        ),
        (
            "size 39",
            sys::minimm_alloc {
                size: sys::MINIMM_ALLOC_SIZE_VER0 - 1,
                ..base
            },
            libc::EINVAL,
        ),
    ];
    for (what, mut req, errno) in cases {
        expect_errno(dev.ioctl(sys::MINIMM_IOC_ALLOC, &mut req), errno, what)?;
        check_eq!(req.handle, 0);
    }
    // SAFETY: deliberately invalid pointer; the kernel must answer EFAULT.
    expect_errno(
        unsafe { dev.ioctl_raw(sys::MINIMM_IOC_ALLOC, 8) },
        libc::EFAULT,
        "bad pointer",
    )?;
    // A newer caller's unknown fields must be zero.
    #[repr(C)]
    struct Newer {
        a: sys::minimm_alloc,
        future: u64,
    }
    let mut n = Newer {
        a: sys::minimm_alloc {
            size: size_of::<Newer>() as u32,
            ..base
        },
        future: 1,
    };
    expect_errno(
        dev.ioctl(sys::MINIMM_IOC_ALLOC, &mut n),
        libc::E2BIG,
        "nonzero unknown tail",
    )?;
    // Sizes above a page are refused before anything is scanned.
    let mut big = sys::minimm_alloc {
        size: page_size() as u32 + 1,
        ..base
    };
    expect_errno(
        dev.ioctl(sys::MINIMM_IOC_ALLOC, &mut big),
        libc::E2BIG,
        "size above a page",
    )?;
    n.future = 0;
    dev.ioctl(sys::MINIMM_IOC_ALLOC, &mut n)
        .map_err(|err| format!("zero unknown tail: {err}"))?;
    check_eq!(n.a.size, sys::MINIMM_ALLOC_SIZE_VER0);
    dev.free(n.a.handle).map_err(e)?;
    check_eq!(free_pages(&dev)?, before);
    pass()
}

/// Double frees, made-up handles and another file's handles are EINVAL and change nothing.
pub fn free_errnos_and_foreign_handles() -> TestResult {
    let (a, b) = (open()?, open()?);
    let ha = a.alloc(0, NORMAL, 0).map_err(e)?.handle;
    let hb = b.alloc(0, NORMAL, 0).map_err(e)?.handle;
    let before = free_pages(&a)?;
    expect_errno(a.free(0), libc::EINVAL, "handle 0")?;
    expect_errno(a.free(u64::MAX), libc::EINVAL, "handle u64::MAX")?;
    expect_errno(a.free(ha + 1000), libc::EINVAL, "unknown handle")?;
    // Both files start at handle 1: the numbers match but the blocks are each file's own.
    check_eq!(ha, hb);
    a.free(ha).map_err(e)?;
    expect_errno(a.free(ha), libc::EINVAL, "double free")?;
    // b's block is untouched by a's free of the same number.
    b.checksum(hb)
        .map_err(|err| format!("b's block after a's free: {err}"))?;
    check_eq!(
        free_pages(&a)?.iter().sum::<u64>(),
        before.iter().sum::<u64>() + 1
    );
    let mut f = sys::minimm_free {
        size: 16,
        __pad: 1,
        handle: hb,
    };
    expect_errno(
        b.ioctl(sys::MINIMM_IOC_FREE, &mut f),
        libc::EINVAL,
        "padding",
    )?;
    b.free(hb).map_err(e)?;
    pass()
}

/// Each zone serves requests naming it, and the reported zone is the one that served.
pub fn zone_placement() -> TestResult {
    let dev = open()?;
    for zone in [DMA, DMA32, NORMAL] {
        let s = stats(&dev, zone)?;
        if s.managed_pages == 0 {
            return skip(format!("zone {zone} is empty in this VM"));
        }
        let a = dev.alloc(0, zone, 0).map_err(e)?;
        check_eq!(a.zone_out, zone);
        check_eq!(stats(&dev, zone)?.pgalloc, s.pgalloc + 1);
        dev.free(a.handle).map_err(e)?;
    }
    pass()
}

/// Exhausting DMA32 falls back to DMA, which keeps its lowmem reserve from DMA32 requests,
/// then its min watermark from normal and NOWAIT DMA requests, and gives ATOMIC requests
/// down to m = min - min/2 and ATOMIC|NOWAIT ones (Linux's GFP_ATOMIC) down to m - m/4, as
/// Linux's __zone_watermark_ok.
pub fn fallback_watermarks_and_reserve() -> TestResult {
    let dev = open()?;
    if stats(&dev, DMA)?.managed_pages < 256 {
        return skip("needs 256 pages in DMA");
    }
    // DMA's own min is a few pages, where min/2 and m/4 round to the same level: raise it
    // (the old watermarks come back on return).
    let _wm = Watermarks::set(&dev, DMA, "DMA", (64, 80, 96))?;
    let (dma, dma32, normal) = (stats(&dev, DMA)?, stats(&dev, DMA32)?, stats(&dev, NORMAL)?);
    if dma.managed_pages == 0 || dma32.managed_pages == 0 {
        return skip("needs pages in DMA and DMA32");
    }
    // Several files, so that no file's quota is hit.
    let quota = info_value("file_quota_pages")?;
    let mut files = vec![open()?];
    let mut held = 0u64;
    let mut take = |order: u32,
                    zone: u32,
                    flags: u32,
                    files: &mut Vec<Device>|
     -> io::Result<sys::minimm_alloc> {
        if held + (1 << order) > quota {
            files.push(Device::open()?);
            held = 0;
        }
        let a = files
            .last()
            .expect("one file at least")
            .alloc(order, zone, flags)?;
        held += 1 << order;
        Ok(a)
    };
    // Big blocks first, then pages, until DMA32 stops serving DMA32 requests.
    while take(10, DMA32, 0, &mut files)
        .map(|a| a.zone_out == DMA32)
        .unwrap_or(false)
    {}
    let mut from_dma = 0u64;
    loop {
        match take(0, DMA32, 0, &mut files) {
            Ok(a) if a.zone_out == DMA32 => {}
            Ok(a) => {
                check_eq!(a.zone_out, DMA);
                from_dma += 1;
            }
            Err(err) => {
                check_eq!(err.raw_os_error(), Some(libc::ENOMEM));
                break;
            }
        }
    }
    let (dma_now, dma32_now) = (stats(&dev, DMA)?, stats(&dev, DMA32)?);
    // DMA32 stopped at its min watermark: one more page would have taken it to min.
    check_eq!(dma32_now.free_pages, dma32_now.wmark_min);
    check!(
        dma32_now.min_wmark_hit > dma32.min_wmark_hit,
        "no min watermark hit counted"
    );
    check!(
        dma32_now.low_wmark_hit > dma32.low_wmark_hit,
        "no low watermark hit counted"
    );
    check!(
        dma32_now.alloc_fail > dma32.alloc_fail,
        "no allocation failure counted"
    );
    // DMA served DMA32 requests down to min + lowmem_reserve[DMA][DMA32] = DMA32 pages / 256.
    let reserve = dma32.managed_pages / 256;
    check!(from_dma > 0, "no fallback to DMA");
    check_eq!(dma_now.fallback, dma.fallback + from_dma);
    check_eq!(dma_now.free_pages, dma.wmark_min + reserve);
    // DMA requests see no reserve: they go on down to min.
    while take(0, DMA, 0, &mut files).is_ok() {}
    check_eq!(stats(&dev, DMA)?.free_pages, dma.wmark_min);
    // NOWAIT alone is no reserve (GFP_NOWAIT): nothing more.
    expect_errno(
        take(0, DMA, sys::MINIMM_ALLOC_NOWAIT, &mut files),
        libc::ENOMEM,
        "NOWAIT at min",
    )?;
    check_eq!(stats(&dev, DMA)?.free_pages, dma.wmark_min);
    // ATOMIC requests go on to m = min - min/2.
    let m = dma.wmark_min - dma.wmark_min / 2;
    while take(0, DMA, sys::MINIMM_ALLOC_ATOMIC, &mut files).is_ok() {}
    check_eq!(stats(&dev, DMA)?.free_pages, m);
    // ATOMIC|NOWAIT, which cannot wait, on to m - m/4.
    let atomic_nowait = sys::MINIMM_ALLOC_ATOMIC | sys::MINIMM_ALLOC_NOWAIT;
    while take(0, DMA, atomic_nowait, &mut files).is_ok() {}
    check_eq!(stats(&dev, DMA)?.free_pages, m - m / 4);
    // NORMAL was never touched by requests that did not allow it.
    check_eq!(stats(&dev, NORMAL)?.pgalloc, normal.pgalloc);
    drop(files);
    let avail = |s: sys::minimm_zone_stats| s.free_pages + s.pcp_pages;
    check_eq!(avail(stats(&dev, DMA)?), avail(dma));
    check_eq!(avail(stats(&dev, DMA32)?), avail(dma32));
    pass()
}

/// User writes, kernel checksums; kernel fills, user reads; both agree byte for byte.
pub fn mmap_round_trip() -> TestResult {
    let dev = open()?;
    let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
    let len = 4 * page_size();
    let mut m = dev
        .map(a.mmap_offset, len)
        .map_err(|err| format!("mmap: {err}"))?;
    check!(m.bytes().iter().all(|&b| b == 0), "block not zeroed");
    check_eq!(
        dev.checksum(a.handle).map_err(e)?,
        checksum(&vec![0u8; len])
    );
    fill_pattern(0x1234, m.bytes_mut());
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(m.bytes()));
    dev.fill(a.handle, 0x5678).map_err(e)?;
    let mut want = vec![0u8; len];
    fill_pattern(0x5678, &mut want);
    check!(
        m.bytes() == &want[..],
        "kernel pattern differs in the mapping"
    );
    // A second mapping of the same block sees the same bytes.
    let m2 = dev.map(a.mmap_offset, len).map_err(e)?;
    check!(m2.bytes() == m.bytes(), "two mappings differ");
    pass()
}

/// Wrong length, offset or handle, or a private mapping: EINVAL.
pub fn mmap_errnos() -> TestResult {
    let dev = open()?;
    let a = dev.alloc(1, NORMAL, 0).map_err(e)?;
    let page = page_size();
    expect_errno(
        dev.map(a.mmap_offset, page).map(|_| ()),
        libc::EINVAL,
        "too short",
    )?;
    expect_errno(
        dev.map(a.mmap_offset, 3 * page).map(|_| ()),
        libc::EINVAL,
        "too long",
    )?;
    expect_errno(
        dev.map(a.mmap_offset + page as u64, 2 * page).map(|_| ()),
        libc::EINVAL,
        "unknown handle",
    )?;
    expect_errno(dev.map(0, 2 * page).map(|_| ()), libc::EINVAL, "offset 0")?;
    expect_errno(
        dev.map_with(a.mmap_offset, 2 * page, libc::MAP_PRIVATE)
            .map(|_| ()),
        libc::EINVAL,
        "MAP_PRIVATE",
    )?;
    dev.free(a.handle).map_err(e)?;
    expect_errno(
        dev.map(a.mmap_offset, 2 * page).map(|_| ()),
        libc::EINVAL,
        "freed handle",
    )?;
    pass()
}

/// A block freed while mapped is not reused until the mapping is gone: its data stays put
/// and the pool does not count it free.
pub fn free_while_mapped() -> TestResult {
    // One CPU, so that its per-CPU list (last in, first out) serves every page here.
    let _pin = CpuPin::new(0)?;
    let dev = open()?;
    let before = free_pages(&dev)?;
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    let z = a.zone_out as usize;
    let mut m = dev.map(a.mmap_offset, page_size()).map_err(e)?;
    fill_pattern(7, m.bytes_mut());
    let sum = checksum(m.bytes());
    dev.free(a.handle).map_err(e)?;
    expect_errno(dev.checksum(a.handle), libc::EINVAL, "freed handle")?;
    check_eq!(free_pages(&dev)?[z], before[z] - 1);
    // The per-CPU list hands out the most recently freed page first: had ours gone back, this
    // block would be it, and zeroing it would have wiped what the mapping shows.
    let b = dev.alloc(0, NORMAL, 0).map_err(e)?;
    check_eq!(checksum(m.bytes()), sum);
    drop(m);
    dev.free(b.handle).map_err(e)?;
    check_eq!(free_pages(&dev)?, before);
    pass()
}

/// Splitting a mapping (partial munmap, mprotect of a part) gives each piece its own reference:
/// a freed block returns to the pool only when the last piece is unmapped.
pub fn split_mappings_keep_the_block() -> TestResult {
    let dev = open()?;
    let before = free_pages(&dev)?;
    let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
    let z = a.zone_out as usize;
    let page = page_size();
    let mut m = dev.map(a.mmap_offset, 4 * page).map_err(e)?;
    fill_pattern(11, m.bytes_mut());
    let base = m.bytes().as_ptr() as usize;
    // mprotect of the last page splits off a third piece.
    // SAFETY: the range is part of the mapping `m`.
    let r = unsafe {
        libc::mprotect(
            (base + 3 * page) as *mut libc::c_void,
            page,
            libc::PROT_READ,
        )
    };
    check_eq!(r, 0);
    // munmap of the second page splits the rest in two.
    // SAFETY: as above; `m` no longer touches that page after this.
    let r = unsafe { libc::munmap((base + page) as *mut libc::c_void, page) };
    check_eq!(r, 0);
    dev.free(a.handle).map_err(e)?;
    check_eq!(free_pages(&dev)?[z], before[z] - 4);
    // The pieces left still show the data.
    let mut want = vec![0u8; 4 * page];
    fill_pattern(11, &mut want);
    // SAFETY: the first page and the last two are still mapped and readable.
    let first = unsafe { std::slice::from_raw_parts(base as *const u8, page) };
    check!(first == &want[..page], "first piece lost its data");
    // SAFETY: as above.
    let last = unsafe { std::slice::from_raw_parts((base + 2 * page) as *const u8, 2 * page) };
    check!(last == &want[2 * page..], "last pieces lost their data");
    // SAFETY: unmapping the first page, still mapped.
    let r = unsafe { libc::munmap(base as *mut libc::c_void, page) };
    check_eq!(r, 0);
    check_eq!(free_pages(&dev)?[z], before[z] - 4);
    // Dropping `m` unmaps the remaining pieces (and harmlessly the holes).
    drop(m);
    check_eq!(free_pages(&dev)?, before);
    pass()
}

/// A child of fork does not inherit the mapping (VM_DONTCOPY): touching it faults there,
/// while the parent keeps it.
pub fn fork_does_not_inherit_mappings() -> TestResult {
    let dev = open()?;
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    let mut m = dev.map(a.mmap_offset, page_size()).map_err(e)?;
    m.bytes_mut()[0] = 42;
    let p = m.bytes().as_ptr() as usize;
    // SAFETY: `p` was a valid mapping in the parent; in the child it must fault (SIGSEGV).
    let child = in_child(|| i32::from(unsafe { std::ptr::read_volatile(p as *const u8) }))?;
    check!(
        child == Exit::Signal(libc::SIGSEGV),
        "child {child:?}: the mapping was inherited"
    );
    check_eq!(m.bytes()[0], 42);
    pass()
}

/// A block whose pages something else still references when it is freed (here a pipe, which
/// took references through vmsplice) is never handed out again: new blocks do not reuse (and
/// zero) those pages, and the pipe still reads the data.
pub fn referenced_blocks_are_not_reused() -> TestResult {
    let dev = open()?;
    let held_before = vmstat("nr_held_pages")?;
    let page = page_size();
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    let mut m = dev.map(a.mmap_offset, page).map_err(e)?;
    fill_pattern(77, m.bytes_mut());
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let iov = libc::iovec {
        iov_base: m.bytes_mut().as_mut_ptr().cast(),
        iov_len: page,
    };
    // SAFETY: `iov` describes the live mapping; the pipe takes references to its page.
    let n = unsafe { libc::vmsplice(fds[1], &iov, 1, 0) };
    check_eq!(n, page as isize);
    drop(m);
    dev.free(a.handle).map_err(e)?;
    check_eq!(vmstat("nr_held_pages")?, held_before + 1);
    // Without the hold, the most recently freed page would come back first, zeroed.
    let mut later = Vec::new();
    for _ in 0..64 {
        later.push(dev.alloc(0, NORMAL, 0).map_err(e)?);
    }
    let mut buf = vec![0u8; page];
    // SAFETY: reading into `buf`, valid for `page` bytes.
    let r = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), page) };
    // SAFETY: closing the pipe made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    check_eq!(r, page as isize);
    let mut want = vec![0u8; page];
    fill_pattern(77, &mut want);
    check!(buf == want, "the pipe's page was reused and overwritten");
    pass()
}

/// Blocks reach user space zeroed even when ZERO was not asked for: pages that held data
/// come back zero.
pub fn blocks_are_zeroed() -> TestResult {
    // One CPU: an order-0 page freed to its per-CPU list is the next one handed out.
    let _pin = CpuPin::new(0)?;
    let dev = open()?;
    let page = page_size();
    let a = dev.alloc(0, DMA32, 0).map_err(e)?;
    dev.fill(a.handle, 99).map_err(e)?;
    dev.free(a.handle).map_err(e)?;
    let b = dev.alloc(0, DMA32, 0).map_err(e)?;
    check_eq!(
        dev.checksum(b.handle).map_err(e)?,
        checksum(&vec![0u8; page])
    );
    dev.free(b.handle).map_err(e)?;
    // Larger blocks come from the zone, merged and split again: dirty many, so that the next
    // ones are carved from them.
    let zero = checksum(&vec![0u8; page << 3]);
    let dirty = (0..32)
        .map(|i| {
            let a = dev.alloc(3, DMA32, 0)?;
            dev.fill(a.handle, 100 + i)?;
            Ok(a.handle)
        })
        .collect::<io::Result<Vec<_>>>()
        .map_err(e)?;
    for h in dirty {
        dev.free(h).map_err(e)?;
    }
    for _ in 0..32 {
        let b = dev.alloc(3, DMA32, 0).map_err(e)?;
        check_eq!(dev.checksum(b.handle).map_err(e)?, zero);
    }
    pass()
}

/// Closing a file frees its blocks. A mapping keeps its file open: closing the descriptor
/// of a file with a live mapping frees nothing until the mapping goes, then everything.
pub fn cleanup_on_close() -> TestResult {
    let watch = open()?;
    let before = free_pages(&watch)?;
    let f = open()?;
    for order in [0, 1, 5, 10] {
        f.alloc(order, NORMAL, 0).map_err(e)?;
    }
    check!(free_pages(&watch)? != before, "nothing allocated");
    drop(f);
    check_eq!(free_pages(&watch)?, before);

    let f = open()?;
    for order in [0, 3] {
        f.alloc(order, NORMAL, 0).map_err(e)?;
    }
    let mapped = f.alloc(2, NORMAL, 0).map_err(e)?;
    let m = f.map(mapped.mmap_offset, 4 * page_size()).map_err(e)?;
    let held = free_pages(&watch)?;
    drop(f);
    check_eq!(free_pages(&watch)?, held);
    drop(m);
    check_eq!(free_pages(&watch)?, before);
    pass()
}

/// A file cannot hold more than file_quota_pages: EDQUOT, and freed-but-mapped blocks count.
pub fn quota() -> TestResult {
    let quota = info_value("file_quota_pages")?;
    let dev = open()?;
    let mut held = Vec::new();
    let mut pages = 0u64;
    let order = 6u32;
    while pages + (1 << order) <= quota {
        held.push(
            dev.alloc(order, NORMAL, 0)
                .map_err(|err| format!("within quota at {pages}: {err}"))?,
        );
        pages += 1 << order;
    }
    expect_errno(dev.alloc(order, NORMAL, 0), libc::EDQUOT, "over quota")?;
    // Another file has its own quota.
    let other = open()?;
    other
        .alloc(order, NORMAL, 0)
        .map_err(|err| format!("other file: {err}"))?;
    // Free one mapped block: still charged until unmapped.
    let last = held.pop().ok_or("nothing held")?;
    let m = dev.map(last.mmap_offset, page_size() << order).map_err(e)?;
    dev.free(last.handle).map_err(e)?;
    expect_errno(
        dev.alloc(order, NORMAL, 0),
        libc::EDQUOT,
        "freed but mapped",
    )?;
    drop(m);
    dev.alloc(order, NORMAL, 0)
        .map_err(|err| format!("after unmap: {err}"))?;
    pass()
}

/// ZONE_STATS errnos, and its numbers agree with buddyinfo.
pub fn zone_stats_and_buddyinfo() -> TestResult {
    let dev = open()?;
    let mut s = sys::minimm_zone_stats {
        size: size_of::<sys::minimm_zone_stats>() as u32,
        zone: 3,
        ..Default::default()
    };
    expect_errno(
        dev.ioctl(sys::MINIMM_IOC_ZONE_STATS, &mut s),
        libc::EINVAL,
        "zone 3",
    )?;
    s = sys::minimm_zone_stats {
        size: 8,
        ..Default::default()
    };
    expect_errno(
        dev.ioctl(sys::MINIMM_IOC_ZONE_STATS, &mut s),
        libc::EINVAL,
        "size 8",
    )?;
    let text = debugfs("buddyinfo").map_err(e)?;
    let lines: Vec<&str> = text.lines().collect();
    check_eq!(lines.len(), 3);
    for (zone, (line, name)) in lines.iter().zip(["DMA", "DMA32", "Normal"]).enumerate() {
        let prefix = format!("Node 0, zone {name:>8} ");
        check!(line.starts_with(&prefix), "{line:?}");
        let counts: Vec<u64> = line[prefix.len()..]
            .split_whitespace()
            .map(|w| w.parse().unwrap_or(u64::MAX))
            .collect();
        check_eq!(counts.len(), 11);
        let st = stats(&dev, zone as u32)?;
        check_eq!(counts, st.nr_free.to_vec());
        let free: u64 = counts.iter().enumerate().map(|(o, n)| n << o).sum();
        check_eq!(free, st.free_pages);
        check!(
            st.wmark_min <= st.wmark_low && st.wmark_low <= st.wmark_high,
            "watermarks out of order"
        );
    }
    pass()
}

/// zoneinfo shows min <= low <= high; watermarks accept valid values and refuse the rest.
pub fn watermarks_in_debugfs() -> TestResult {
    let text = debugfs("zoneinfo").map_err(e)?;
    let field = |zone_text: &str, key: &str| -> Option<u64> {
        zone_text
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    let zones: Vec<&str> = text.split("Node 0, zone").skip(1).collect();
    check_eq!(zones.len(), 3);
    for z in &zones {
        let (min, low, high) = (field(z, "min"), field(z, "low"), field(z, "high"));
        check!(min.is_some() && min <= low && low <= high, "{z}");
        check!(
            field(z, "managed").is_some_and(|m| Some(m) >= high),
            "high above managed: {z}"
        );
    }
    let dev = open()?;
    let old = stats(&dev, DMA32)?;
    let write = |s: &str| std::fs::write("/sys/kernel/debug/minimm/watermarks", s);
    for bad in [
        "DMA32 3 2 1",
        "DMA32 1 2",
        "DMA32 1 2 3 4",
        "HIGHMEM 1 2 3",
        "DMA32 -1 2 3",
        "DMA32 1 2 99999999",
    ] {
        expect_errno(write(bad), libc::EINVAL, bad)?;
    }
    check_eq!(
        (
            stats(&dev, DMA32)?.wmark_min,
            stats(&dev, DMA32)?.wmark_high
        ),
        (old.wmark_min, old.wmark_high)
    );
    write("dma32 10 20 30").map_err(e)?;
    let now = stats(&dev, DMA32)?;
    check_eq!((now.wmark_min, now.wmark_low, now.wmark_high), (10, 20, 30));
    write(&format!(
        "DMA32 {} {} {}",
        old.wmark_min, old.wmark_low, old.wmark_high
    ))
    .map_err(e)?;
    pass()
}

/// Order-0 pages come from and go to this CPU's list, refilled and drained a batch at a time;
/// the list's high mark stays between its high_min and high_max, grows while the zone is
/// above its high watermark (Linux 7.3's `nr_pcp_alloc`), and the list never holds more than
/// it; drain_pcp empties the lists.
pub fn pcp_lists() -> TestResult {
    /// CPU 0's pageset in one zone, from zoneinfo.
    #[derive(Debug)]
    struct Pageset {
        count: u64,
        high: u64,
        batch: u64,
        high_min: u64,
        high_max: u64,
    }
    // Stay on CPU 0, so that one list serves this test; the old mask comes back on return.
    let _pin = CpuPin::new(0)?;
    let pagesets = || -> Result<Vec<Pageset>, String> {
        let text = debugfs("zoneinfo").map_err(e)?;
        let mut out = Vec::new();
        for zone in text.split("Node 0, zone").skip(1) {
            let cpu0 = zone.split("cpu: ").nth(1).ok_or("no pagesets")?;
            let num = |k: &str| {
                cpu0.lines()
                    .find_map(|l| l.trim().strip_prefix(k))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or(format!("no {k} in {cpu0:?}"))
            };
            out.push(Pageset {
                count: num("count:")?,
                high: num("high:")?,
                batch: num("batch:")?,
                high_min: num("high_min:")?,
                high_max: num("high_max:")?,
            });
        }
        Ok(out)
    };
    let dev = open()?;
    std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1")
        .map_err(|err| format!("drain: {err}"))?;
    // The highest zone this VM has (a guest with 4 GiB or less has no NORMAL memory).
    let zone = if stats(&dev, NORMAL)?.managed_pages > 0 {
        NORMAL
    } else {
        DMA32
    };
    let z = zone as usize;
    check_eq!(stats(&dev, zone)?.pcp_pages, 0);
    let p = pagesets()?.swap_remove(z);
    check!(
        p.batch >= 1 && p.high_min >= 4 * p.batch && p.high_min <= p.high && p.high <= p.high_max,
        "{p:?}"
    );
    let batch = p.batch;
    let before = stats(&dev, zone)?;
    let a = dev.alloc(0, zone, 0).map_err(e)?;
    // One refill of `batch` pages from the zone, one page handed out.
    let after = stats(&dev, zone)?;
    check_eq!(before.free_pages - after.free_pages, batch);
    check_eq!(pagesets()?[z].count, batch - 1);
    dev.free(a.handle).map_err(e)?;
    check_eq!(pagesets()?[z].count, batch);
    // Enough refills, with the zone far above its high watermark, to take high to high_max.
    let blocks: Vec<_> = (0..2 * p.high_max)
        .map(|_| dev.alloc(0, zone, 0))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    check!(
        stats(&dev, zone)?.free_pages > stats(&dev, zone)?.wmark_high,
        "zone not above high"
    );
    let now = pagesets()?.swap_remove(z);
    check_eq!(now.high, now.high_max);
    // Many frees: the list never holds more than its high mark, which stays in its bounds.
    for b in &blocks {
        dev.free(b.handle).map_err(e)?;
        let p = pagesets()?.swap_remove(z);
        check!(
            p.count <= p.high && p.high_min <= p.high && p.high <= p.high_max,
            "{p:?}"
        );
    }
    check!(pagesets()?[z].count > 0, "list empty after frees");
    std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1").map_err(e)?;
    check_eq!(pagesets()?[z].count, 0);
    check_eq!(stats(&dev, zone)?.free_pages, before.free_pages);
    expect_errno(
        std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "x"),
        libc::EINVAL,
        "write x",
    )?;
    pass()
}

/// Orders 1..3 have per-CPU lists too, counted in pages as Linux does: a block of each order
/// comes from its own list (refilled from the zone) and goes back to it; `pcp_lists` shows
/// the blocks by order and zoneinfo's `count` their pages; after every free the lists hold
/// less than `high` plus a batch; order 4 has no list; drain_pcp empties every order.
pub fn pcp_lists_every_order() -> TestResult {
    /// CPU 0's lists in one zone, from `pcp_lists`: (count, blocks of orders 0..3).
    fn lists(zone: &str) -> Result<(u64, [u64; 4]), String> {
        let text = debugfs("pcp_lists").map_err(e)?;
        let line = text
            .lines()
            .find(|l| l.contains(&format!("zone {zone:>8} cpu   0 ")))
            .ok_or(format!("no cpu 0 line for {zone} in {text:?}"))?;
        // "... count N blocks B0 B1 B2 B3"
        let nums: Vec<u64> = line
            .split(" count ")
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match nums.as_slice() {
            [count, b0, b1, b2, b3] => Ok((*count, [*b0, *b1, *b2, *b3])),
            _ => Err(format!("bad line {line:?}")),
        }
    }
    fn pageset(zone: &str, key: &str) -> Result<u64, String> {
        let text = debugfs("zoneinfo").map_err(e)?;
        let z = text
            .split("Node 0, zone")
            .find(|z| z.trim_start().starts_with(zone))
            .ok_or(format!("no {zone} in zoneinfo"))?;
        let cpu0 = z.split("cpu: ").nth(1).ok_or("no pagesets")?;
        cpu0.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(format!("no {key} in {cpu0:?}"))
    }
    let _pin = CpuPin::new(0)?;
    let dev = open()?;
    let (zone, name) = if stats(&dev, NORMAL)?.managed_pages > 0 {
        (NORMAL, "Normal")
    } else {
        (DMA32, "DMA32")
    };
    std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1").map_err(e)?;
    check_eq!(lists(name)?, (0, [0; 4]));
    let before = stats(&dev, zone)?;
    let batch = pageset(name, "batch:")?;
    let mut handles = Vec::new();
    for order in 1..4u32 {
        let free = stats(&dev, zone)?.free_pages;
        let a = dev.alloc(order, zone, 0).map_err(e)?;
        check_eq!(a.zone_out, zone);
        // `nr_pcp_alloc`: max(batch >> order, 2) blocks (1 with a batch of 1), one handed out.
        let blocks = if batch <= 1 {
            1
        } else {
            (batch >> order).max(2)
        };
        check_eq!(free - stats(&dev, zone)?.free_pages, blocks << order);
        check_eq!(lists(name)?.1[order as usize], blocks - 1);
        handles.push(a.handle);
    }
    for (order, h) in (1..4).zip(handles) {
        let (count_before, before_blocks) = lists(name)?;
        dev.free(h).map_err(e)?;
        let (count, blocks) = lists(name)?;
        let high = pageset(name, "high:")?;
        check!(
            count < high + batch,
            "count {count}, high {high}, batch {batch}"
        );
        if count_before + (1 << order) < high {
            // No give-back: the block went onto its own order's list, nothing else moved.
            check_eq!(count, count_before + (1 << order));
            check_eq!(blocks[order], before_blocks[order] + 1);
        }
        check_eq!(
            count,
            blocks.iter().enumerate().map(|(o, b)| b << o).sum::<u64>()
        );
        check_eq!(pageset(name, "count:")?, count);
        check_eq!(stats(&dev, zone)?.pcp_pages, count);
    }
    // Order 4 has no list: it leaves the lists as they are.
    let lists_before = lists(name)?;
    let a = dev.alloc(4, zone, 0).map_err(e)?;
    dev.free(a.handle).map_err(e)?;
    check_eq!(lists(name)?, lists_before);
    std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1").map_err(e)?;
    check_eq!(lists(name)?, (0, [0; 4]));
    check_eq!(stats(&dev, zone)?.free_pages, before.free_pages);
    validate_ok()?;
    pass()
}

/// `bench` runs every row, on the debug kernel too (few iterations: the figures mean nothing
/// here, only that the pairs, the bulk API and the kthreads of the scaling rows work and
/// leave the pool as it was).
pub fn bench_reports_every_row() -> TestResult {
    let dev = open()?;
    // Nothing reclaimable left behind by earlier tests, which the reclaim rows would take.
    let r = std::fs::write("/sys/kernel/debug/minimm/reclaim", "1000000000");
    check!(
        r.is_ok() || r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EAGAIN),
        "reclaim: {r:?}"
    );
    std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1").map_err(e)?;
    let before: Vec<u64> = (0..3)
        .map(|z| stats(&dev, z).map(|s| s.free_pages))
        .collect::<Result<_, _>>()?;
    std::fs::write("/sys/kernel/debug/minimm/bench", "run 64").map_err(e)?;
    let text = debugfs("bench").map_err(e)?;
    let first: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for row in [
        "order0",
        "order1",
        "order2",
        "order3",
        "order9",
        "bulk64",
        "cache64",
        "cache256",
        "cache1024",
        "kmalloc64",
        "kmalloc256",
        "kmalloc1024",
        "slabbulk16",
        "vm16k",
        "vm1m",
        "vm4m",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .ok_or(format!("no {row} row in {text:?}"))?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        check_eq!(fields.len(), 7);
        // ratio_min <= ratio <= ratio_max
        let r: Vec<f64> = fields[4..].iter().filter_map(|f| f.parse().ok()).collect();
        check!(r.len() == 3 && r[1] <= r[0] && r[0] <= r[2], "{line:?}");
    }
    check!(first.contains(&"1") && first.contains(&"2"), "{text:?}");
    // The reclaim rows, when the module has them (ZONE_DMA big enough), or why not.
    for row in [
        "reclaim_direct",
        "reclaim_kswapd",
        "alloc_latency_idle",
        "alloc_latency_pressure",
    ] {
        check!(
            text.contains("reclaim skipped: ") || text.lines().any(|l| l.starts_with(row)),
            "no {row} row in {text:?}"
        );
    }
    check!(
        text.contains("scaling 2/1 cpus (medians): minimm "),
        "{text:?}"
    );
    // The run's caches are gone with it.
    let slabinfo = debugfs("slabinfo").map_err(e)?;
    check!(!slabinfo.contains("minimm-bench-"), "{slabinfo}");
    std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1").map_err(e)?;
    for (z, free) in before.iter().enumerate() {
        check_eq!(stats(&dev, z as u32)?.free_pages, *free);
    }
    validate_ok()?;
    pass()
}

/// The invariant checker passes after all the above, read or triggered.
pub fn validate_passes() -> TestResult {
    let text = debugfs("validate").map_err(e)?;
    check_eq!(text.lines().filter(|l| l.contains(": ok,")).count(), 3);
    std::fs::write("/sys/kernel/debug/minimm/validate", "1")
        .map_err(|err| format!("trigger: {err}"))?;
    expect_errno(
        std::fs::write("/sys/kernel/debug/minimm/validate", "2"),
        libc::EINVAL,
        "write 2",
    )?;
    pass()
}

/// Threads allocating and freeing on their own files at once leave a consistent pool.
pub fn concurrent_alloc_free() -> TestResult {
    let watch = open()?;
    let before = free_pages(&watch)?;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || -> Result<(), String> {
                let dev = open()?;
                let mut live = Vec::new();
                let mut x = t + 1;
                for _ in 0..300 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x % 3 == 0 && !live.is_empty() {
                        let h = live.swap_remove((x as usize / 3) % live.len());
                        dev.free(h).map_err(e)?;
                    } else {
                        let a = dev.alloc((x % 4) as u32, (x % 3) as u32, 0).map_err(e)?;
                        live.push(a.handle);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "thread panicked".to_string())??;
    }
    check_eq!(free_pages(&watch)?, before);
    validate_ok()?;
    pass()
}

/// Borrowing takes what the host gives: with the host failing every allocation of order 6 or
/// more (fault injection, for insmod only), the pool is built from smaller blocks, and merges
/// never grow past them; asking a zone for more than the host has loads with less, logged.
/// The module is loaded again with its defaults afterwards.
pub fn borrowing_takes_what_the_host_gives() -> TestResult {
    let fa = "/sys/kernel/debug/fail_page_alloc";
    if !std::path::Path::new(fa).exists() {
        return skip("no fail_page_alloc in this kernel");
    }
    let requested =
        info_value("dma_pages")? + info_value("dma32_pages")? + info_value("normal_pages")?;
    sh("rmmod minimm")?;
    let setup = format!(
        "echo 0 > {fa}/verbose && echo Y > {fa}/task-filter && echo N > {fa}/ignore-gfp-wait && \
         echo 6 > {fa}/min-order && echo 1 > {fa}/interval && echo -1 > {fa}/times && echo 100 > {fa}/probability"
    );
    let loaded = sh(&setup)
        .and_then(|_| sh("echo 1 > /proc/self/make-it-fail && exec insmod /lib/modules/minimm.ko"));
    // Whatever happened, stop injecting before checking anything.
    let reset = sh(&format!(
        "echo 0 > {fa}/probability && echo 1 > {fa}/min-order && echo Y > {fa}/ignore-gfp-wait"
    ));
    loaded?;
    reset?;
    let result = (|| -> Result<(), String> {
        check_eq!(info_value("borrowed_pages")?, requested);
        let dev = open()?;
        for zone in [DMA, DMA32, NORMAL] {
            let st = stats(&dev, zone)?;
            check!(
                st.nr_free[6..].iter().all(|&n| n == 0),
                "zone {zone}: blocks above order 5: {:?}",
                st.nr_free
            );
            expect_errno(
                dev.alloc(6, zone, 0),
                libc::ENOMEM,
                "order 6 from order-5 chunks",
            )?;
        }
        // Order-5 blocks still come and go, and merge back to order 5 at most.
        let a = dev.alloc(5, NORMAL, 0).map_err(e)?;
        dev.free(a.handle).map_err(e)?;
        validate_ok()?;
        Ok(())
    })();
    sh("rmmod minimm")?;
    result?;
    // More DMA than the host has: loads with less, and says so.
    sh("insmod /lib/modules/minimm.ko dma_pages=100000")?;
    let result = (|| -> Result<(), String> {
        let dev = open()?;
        let dma = stats(&dev, DMA)?.managed_pages;
        check!(dma > 0 && dma < 100_000, "DMA zone has {dma} pages");
        let log = sh("dmesg")?;
        check!(
            log.contains("DMA: the host gave"),
            "no log line for the short zone"
        );
        let a = dev.alloc(0, DMA, 0).map_err(e)?;
        check_eq!(a.zone_out, DMA);
        Ok(())
    })();
    sh("rmmod minimm")?;
    sh("insmod /lib/modules/minimm.ko")?;
    result?;
    pass()
}

/// After rmmod the host has every borrowed page back: minimm's own count at unload, and the
/// host's free memory. The module is loaded again afterwards.
pub fn rmmod_returns_every_page() -> TestResult {
    let borrowed = info_value("borrowed_pages")?;
    // Free pages of the host: MemFree, plus the pages its per-CPU lists cache (order-0 pages
    // freed by minimm's unload land there first, and MemFree does not count them).
    let memfree = || -> Result<u64, String> {
        let text = std::fs::read_to_string("/proc/meminfo").map_err(e)?;
        let kb = text
            .lines()
            .find_map(|l| l.strip_prefix("MemFree:"))
            .ok_or("no MemFree")?;
        let kb = kb
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .map_err(|err| err.to_string())?;
        let zi = std::fs::read_to_string("/proc/zoneinfo").map_err(e)?;
        let pcp: u64 = zi
            .lines()
            .filter_map(|l| l.trim().strip_prefix("count:"))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum();
        Ok(kb * 1024 / page_size() as u64 + pcp)
    };
    let before = memfree()?;
    sh("rmmod minimm")?;
    let after = memfree()?;
    let log = sh("dmesg");
    sh("insmod /lib/modules/minimm.ko")?;
    let line = log?
        .lines()
        .rev()
        .find(|l| l.contains("minimm: unloaded:"))
        .map(str::to_string);
    let line = line.ok_or("no unload line in the kernel log")?;
    // Over the module's life (the pool's pages, and the KUnit tests' own), every page back.
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (b, r) = match nums[..] {
        [.., b, r] => (b, r),
        _ => return Err(format!("cannot read {line:?}")),
    };
    check!(
        b == r && b >= borrowed,
        "{line} (the pool borrowed {borrowed})"
    );
    // The host's free memory grew by at least what minimm had borrowed (less a little for
    // whatever else the guest did meanwhile; more, as minimm's own tables go too).
    let gained = after.saturating_sub(before);
    check!(
        gained + 256 >= borrowed,
        "host gained {gained} pages, minimm borrowed {borrowed}"
    );
    pass()
}
