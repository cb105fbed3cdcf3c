// SPDX-License-Identifier: GPL-2.0

//! Selftests of the vmalloc-like areas (`MINIMM_FEAT_VMALLOC`): errnos, sizes (1 byte, a
//! page, 4 MiB + 1), an area larger than any free block of a fragmented zone, one larger than
//! its zones (nothing leaked), a 10 000-iteration create/free loop, data both ways between the
//! kernel's contiguous mapping and user space's, frees and closes with live mappings, fork,
//! threads, `vmallocinfo` read by a /proc/vmallocinfo parser, and `page_owner`.
//!
//! Every test fails, not skips, when the module does not report `MINIMM_FEAT_VMALLOC`.

use std::{
    mem::size_of,
    os::unix::fs::PermissionsExt,
    sync::atomic::{AtomicU32, Ordering},
};

use minimm_uapi::{checksum, debugfs, fill_pattern, parse_vmallocinfo, sys, Device, VmallocLine};

use crate::{
    common::{
        e, free_pages, in_child, open, stats, vmstat, within, Exit, Pipe, DEBUGFS, DMA, DMA32,
        NORMAL,
    },
    ktap::{expect_errno, pass, TestResult},
};

const PAGE: u64 = 4096;

fn open_vm() -> Result<Device, String> {
    let dev = open()?;
    let info = dev.info().map_err(e)?;
    check!(
        info.features & sys::MINIMM_FEAT_VMALLOC != 0,
        "MINIMM_FEAT_VMALLOC not set: features {:#x}",
        info.features
    );
    Ok(dev)
}

/// Every line of debugfs `minimm/vmallocinfo`.
fn vmallocinfo() -> Result<Vec<VmallocLine>, String> {
    let text = debugfs("vmallocinfo").map_err(|err| format!("read vmallocinfo: {err}"))?;
    parse_vmallocinfo(&text)
}

/// The pool's free pages come back to `before` within 5 s (the per-CPU lists drained).
fn pool_back(dev: &Device, before: &[u64; 3]) -> Result<(), String> {
    let back = within(5, || {
        std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
        Ok(free_pages(dev)? == *before)
    })?;
    check!(back, "pool {:?}, before {before:?}", free_pages(dev)?);
    Ok(())
}

/// Counters that must come back after areas are gone.
fn counters() -> Result<(u64, u64), String> {
    Ok((vmstat("nr_vmalloc")?, vmstat("nr_vmalloc_areas")?))
}

/// The zone NORMAL if the pool has one, else DMA32.
fn top_zone(dev: &Device) -> Result<u32, String> {
    Ok(if stats(dev, NORMAL)?.managed_pages > 0 {
        NORMAL
    } else {
        DMA32
    })
}

/// `MINIMM_FEAT_VMALLOC`, and every errno of the three commands.
pub fn errnos() -> TestResult {
    let dev = open_vm()?;
    let before = free_pages(&dev)?;
    expect_errno(dev.vm_create(0, NORMAL, 0), libc::EINVAL, "0 bytes")?;
    expect_errno(
        dev.vm_create(sys::MINIMM_VM_MAX_BYTES as u64 + 1, NORMAL, 0),
        libc::EINVAL,
        "above MINIMM_VM_MAX_BYTES",
    )?;
    expect_errno(dev.vm_create(PAGE, 3, 0), libc::EINVAL, "zone 3")?;
    expect_errno(
        dev.vm_create(PAGE, NORMAL, sys::MINIMM_VM_VALID + 1),
        libc::EINVAL,
        "unknown flag",
    )?;
    let mut raw = sys::minimm_vm_create {
        size: size_of::<sys::minimm_vm_create>() as u32,
        zone: NORMAL,
        bytes: PAGE,
        __pad: 1,
        ..Default::default()
    };
    expect_errno(
        dev.ioctl(sys::MINIMM_IOC_VM_CREATE, &mut raw),
        libc::EINVAL,
        "padding",
    )?;
    // Beyond the file's quota (64 MiB by default): EDQUOT, nothing taken.
    expect_errno(
        dev.vm_create(1 << 31, NORMAL, 0),
        libc::EDQUOT,
        "2 GiB, beyond the quota",
    )?;
    check_eq!(free_pages(&dev)?, before);
    let block = dev.alloc(0, NORMAL, 0).map_err(e)?;
    expect_errno(
        dev.vm_info(block.handle),
        libc::EINVAL,
        "VM_INFO of a block",
    )?;
    expect_errno(
        dev.vm_free(block.handle),
        libc::EINVAL,
        "VM_FREE of a block",
    )?;
    // The block is still there.
    dev.fill(block.handle, 1).map_err(e)?;
    dev.free(block.handle).map_err(e)?;
    expect_errno(
        dev.vm_free(12345),
        libc::EINVAL,
        "VM_FREE of an unknown handle",
    )?;
    expect_errno(
        dev.vm_info(12345),
        libc::EINVAL,
        "VM_INFO of an unknown handle",
    )?;
    let a = dev.vm_create(PAGE, NORMAL, 0).map_err(e)?;
    let other = open_vm()?;
    expect_errno(other.vm_free(a.handle), libc::EINVAL, "another file's area")?;
    expect_errno(other.vm_info(a.handle), libc::EINVAL, "another file's area")?;
    dev.vm_free(a.handle).map_err(e)?;
    expect_errno(dev.vm_free(a.handle), libc::EINVAL, "VM_FREE twice")?;
    // MINIMM_IOC_FREE frees an area too.
    let b = dev.vm_create(PAGE, NORMAL, 0).map_err(e)?;
    dev.free(b.handle).map_err(e)?;
    expect_errno(dev.vm_info(b.handle), libc::EINVAL, "VM_INFO after FREE")?;
    let ro = Device::open_mode(libc::O_RDONLY).map_err(e)?;
    expect_errno(ro.vm_create(PAGE, NORMAL, 0), libc::EBADF, "O_RDONLY")?;
    drop((dev, other));
    pass()
}

/// 1 byte, one page and 4 MiB + 1 (more than the largest buddy block, 4 MiB): the pages,
/// the zones and the counters add up, and freeing gives everything back.
pub fn sizes() -> TestResult {
    let dev = open_vm()?;
    let zone = top_zone(&dev)?;
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let before = free_pages(&dev)?;
    let c0 = counters()?;
    let records0 = vm_record_pages()?;
    let mut areas = Vec::new();
    for (bytes, pages) in [(1u64, 1u64), (PAGE, 1), ((4 << 20) + 1, 1025)] {
        let a = dev.vm_create(bytes, zone, 0).map_err(e)?;
        check_eq!(a.pages, pages);
        check_eq!(a.mmap_offset % PAGE, 0);
        let i = dev.vm_info(a.handle).map_err(e)?;
        check_eq!(i.pages, pages);
        check_eq!(i.bytes, pages * PAGE);
        check_eq!(i.zone_pages.iter().sum::<u64>(), pages);
        check!(
            i.runs >= 1 && i.runs <= pages,
            "runs {} of {pages} pages",
            i.runs
        );
        check_eq!(i.mmap_offset, a.mmap_offset);
        check_eq!(i.flags, 0);
        // Zeroed.
        let sum = dev.checksum(a.handle).map_err(e)?;
        check_eq!(sum, checksum(&vec![0u8; (pages * PAGE) as usize]));
        areas.push(a);
    }
    check_eq!(counters()?, (c0.0 + 1027, c0.1 + 3));
    // The areas' pages, and the record cache's slab if the first record needed one.
    let now = free_pages(&dev)?;
    let record_pages = vm_record_pages()? - records0;
    check!(
        before.iter().sum::<u64>() - now.iter().sum::<u64>() == 1027 + record_pages,
        "pool {before:?} -> {now:?}, {record_pages} record slab pages"
    );
    for a in areas {
        dev.vm_free(a.handle).map_err(e)?;
    }
    check_eq!(counters()?, c0);
    pool_back(&dev, &before)?;
    pass()
}

/// With a zone fragmented by order-0 allocations (the pages at odd frames kept), buddyinfo
/// shows no free block there of even 64 pages, yet an area of 64 pages from that zone
/// succeeds, its pages scattered over many runs. An area larger than what its zones have fails with ENOMEM and leaves
/// the pool, the counters and the record cache as they were.
pub fn scattered_and_too_large() -> TestResult {
    let dev = open_vm()?;
    let filler = open_vm()?;
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let mut blocks = Vec::new();
    while let Ok(b) = filler.alloc(0, DMA, 0) {
        if b.zone_out != DMA {
            filler.free(b.handle).map_err(e)?;
            break;
        }
        blocks.push(b.handle);
    }
    check!(blocks.len() > 200, "only {} DMA pages", blocks.len());
    // Free the pages at even frames: each one's buddy (the odd frame) stays allocated, so
    // nothing merges. The frames come from page_owner, by handle, for this process.
    for h in even_frames(&blocks)? {
        filler.free(h).map_err(e)?;
    }
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    // No free block in DMA as large as the area: the largest is a few pages (those the
    // watermark kept free may have merged), buddyinfo says the same.
    let dma = stats(&dev, DMA)?;
    let largest = dma.nr_free.iter().rposition(|&n| n > 0).unwrap_or(0);
    check!(
        largest < 6,
        "DMA still has a block of order {largest}: {:?}",
        dma.nr_free
    );
    let buddy = debugfs("buddyinfo").map_err(e)?;
    let line = buddy
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some("DMA"))
        .ok_or(format!("no DMA in buddyinfo {buddy:?}"))?;
    let counts: Vec<u64> = line
        .split_whitespace()
        .skip(4)
        .filter_map(|n| n.parse().ok())
        .collect();
    check!(
        counts.len() == 11 && counts[largest + 1..].iter().all(|&n| n == 0),
        "buddyinfo {line:?}"
    );
    let a = dev.vm_create(64 * PAGE, DMA, 0).map_err(e)?;
    let i = dev.vm_info(a.handle).map_err(e)?;
    check_eq!(i.zone_pages, [64, 0, 0]);
    // Mostly single pages at even frames: far more runs than a contiguous block's one.
    check!(i.runs > 32, "{} runs", i.runs);
    dev.vm_free(a.handle).map_err(e)?;
    // More than DMA has: ENOMEM, nothing left behind.
    let before = free_pages(&dev)?;
    let (c0, fails) = (counters()?, vmstat("vmalloc_fail")?);
    let records = vm_records()?;
    let want = (before[0] + 64) * PAGE;
    expect_errno(dev.vm_create(want, DMA, 0), libc::ENOMEM, "more than DMA")?;
    check_eq!(free_pages(&dev)?, before);
    check_eq!(counters()?, c0);
    check_eq!(vmstat("vmalloc_fail")?, fails + 1);
    check_eq!(vm_records()?, records);
    drop(filler);
    pass()
}

/// Of `handles` (this process's DMA blocks), those whose page frame is even, from
/// page_owner's paragraphs.
fn even_frames(handles: &[u64]) -> Result<Vec<u64>, String> {
    let text = debugfs("page_owner").map_err(e)?;
    let me = format!("pid {}, ", std::process::id());
    let mut out = Vec::new();
    let mut mine = false;
    for l in text.lines() {
        if l.starts_with("Block allocated via ") {
            mine = l.contains(&me);
        } else if let Some(rest) = l.strip_prefix("PFN ").filter(|_| mine) {
            let w: Vec<&str> = rest.split_whitespace().collect();
            // `<first>-<last> zone DMA file F handle H offset X`
            let first = w
                .first()
                .and_then(|r| r.split('-').next())
                .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
            let handle = w
                .iter()
                .position(|&x| x == "handle")
                .and_then(|i| w.get(i + 1))
                .and_then(|h| h.parse::<u64>().ok());
            if let (Some(pfn), Some(h), Some(&"DMA")) = (first, handle, w.get(2)) {
                if pfn % 2 == 0 && handles.contains(&h) {
                    out.push(h);
                }
            }
        }
    }
    check!(
        out.len() > 64,
        "only {} even DMA frames of {}",
        out.len(),
        handles.len()
    );
    Ok(out)
}

/// Pages the record cache `minimm_vm_area` holds in slabs.
fn vm_record_pages() -> Result<u64, String> {
    let text = debugfs("slabinfo").map_err(e)?;
    minimm_uapi::parse_slabinfo(&text)?
        .into_iter()
        .find(|l| l.name == "minimm_vm_area")
        .map(|l| l.num_slabs * l.pagesperslab)
        .ok_or("no minimm_vm_area in slabinfo".into())
}

/// Active objects of the record cache `minimm_vm_area`.
fn vm_records() -> Result<u64, String> {
    let text = debugfs("slabinfo").map_err(e)?;
    minimm_uapi::parse_slabinfo(&text)?
        .into_iter()
        .find(|l| l.name == "minimm_vm_area")
        .map(|l| l.active_objs)
        .ok_or("no minimm_vm_area in slabinfo".into())
}

/// 10 000 creates and frees of one page, then of 5 pages with large blocks first: no
/// counter grows, no record is left, the pool is whole.
pub fn create_free_loop() -> TestResult {
    let dev = open_vm()?;
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let before = free_pages(&dev)?;
    let (c0, records) = (counters()?, vm_records()?);
    let created = vmstat("vmalloc_created")?;
    for i in 0..10_000u64 {
        let flags = if i % 2 == 0 { 0 } else { sys::MINIMM_VM_LARGE };
        let a = dev
            .vm_create(if i % 2 == 0 { 1 } else { 5 * PAGE }, NORMAL, flags)
            .map_err(|err| format!("create {i}: {err}"))?;
        dev.vm_free(a.handle)
            .map_err(|err| format!("free {i}: {err}"))?;
    }
    check_eq!(counters()?, c0);
    check_eq!(vm_records()?, records);
    check_eq!(vmstat("vmalloc_created")?, created + 10_000);
    pool_back(&dev, &before)?;
    pass()
}

/// Bytes written by user space through a mapping are what the kernel's contiguous mapping
/// checksums, and a kernel fill is what the mapping reads; a partial munmap keeps the rest.
pub fn data_both_ways() -> TestResult {
    let dev = open_vm()?;
    let pages = 37u64;
    let a = dev.vm_create(pages * PAGE, NORMAL, 0).map_err(e)?;
    let mut m = dev.map(a.mmap_offset, (pages * PAGE) as usize).map_err(e)?;
    check!(m.bytes().iter().all(|&b| b == 0), "fresh area not zero");
    fill_pattern(77, m.bytes_mut());
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(m.bytes()));
    dev.fill(a.handle, 5).map_err(e)?;
    let mut want = vec![0u8; (pages * PAGE) as usize];
    fill_pattern(5, &mut want);
    check!(
        m.bytes() == &want[..],
        "the mapping does not read the kernel's fill"
    );
    // The same area through a second mapping: the same bytes.
    let m2 = dev.map(a.mmap_offset, (pages * PAGE) as usize).map_err(e)?;
    check!(m2.bytes() == &want[..], "a second mapping differs");
    // A wrong length or a private mapping is refused.
    expect_errno(
        dev.map(a.mmap_offset, PAGE as usize).map(|_| ()),
        libc::EINVAL,
        "mmap of part of an area",
    )?;
    expect_errno(
        dev.map_with(a.mmap_offset, (pages * PAGE) as usize, libc::MAP_PRIVATE)
            .map(|_| ()),
        libc::EINVAL,
        "MAP_PRIVATE",
    )?;
    drop((m, m2));
    dev.vm_free(a.handle).map_err(e)?;
    pass()
}

/// An area freed, or its file closed, while mapped keeps its pages (and bytes) until the
/// munmap; then the pool has them back. A forked child does not inherit the mapping.
pub fn free_close_fork_while_mapped() -> TestResult {
    let watch = open_vm()?;
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let before = free_pages(&watch)?;
    let c0 = counters()?;
    let dev = open_vm()?;
    let a = dev.vm_create(8 * PAGE, NORMAL, 0).map_err(e)?;
    let mut m = dev.map(a.mmap_offset, 8 * PAGE as usize).map_err(e)?;
    fill_pattern(3, m.bytes_mut());
    let sum = checksum(m.bytes());
    let addr = m.bytes().as_ptr() as usize;
    let child = in_child(|| {
        // SAFETY: probing the address: the child either faults (not inherited) or reads.
        let v = unsafe { core::ptr::read_volatile(addr as *const u8) };
        i32::from(v)
    })?;
    check!(
        matches!(child, Exit::Signal(libc::SIGSEGV)),
        "a forked child read the mapping: {child:?}"
    );
    dev.vm_free(a.handle).map_err(e)?;
    check_eq!(checksum(m.bytes()), sum);
    check_eq!(counters()?.0, c0.0 + 8);
    let b = dev.vm_create(4 * PAGE, NORMAL, 0).map_err(e)?;
    let mut m2 = dev.map(b.mmap_offset, 4 * PAGE as usize).map_err(e)?;
    fill_pattern(4, m2.bytes_mut());
    let sum2 = checksum(m2.bytes());
    drop(dev);
    check_eq!(checksum(m2.bytes()), sum2);
    m2.bytes_mut()[0] ^= 1;
    drop(m);
    drop(m2);
    check_eq!(counters()?, c0);
    pool_back(&watch, &before)?;
    pass()
}

/// Four threads create, fill, checksum and free areas on one file at once.
pub fn concurrent() -> TestResult {
    let dev = open_vm()?;
    let c0 = counters()?;
    let errors = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (dev, errors) = (&dev, &errors);
            s.spawn(move || {
                for i in 0..100u64 {
                    let pages = 1 + (t * 7 + i) % 9;
                    let ok = (|| -> std::io::Result<bool> {
                        let a = dev.vm_create(pages * PAGE, NORMAL, 0)?;
                        dev.fill(a.handle, t * 1000 + i)?;
                        let mut want = vec![0u8; (pages * PAGE) as usize];
                        fill_pattern(t * 1000 + i, &mut want);
                        let same = dev.checksum(a.handle)? == checksum(&want);
                        dev.vm_free(a.handle)?;
                        Ok(same)
                    })();
                    if !matches!(ok, Ok(true)) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    check_eq!(errors.load(Ordering::Relaxed), 0);
    check_eq!(counters()?, c0);
    pass()
}

/// `vmallocinfo` parses as /proc/vmallocinfo (the host's own file too), is root-only, lists
/// every live area by address with its guard page counted, and its zone counts are
/// VM_INFO's; `page_owner` has a paragraph per area.
pub fn vmallocinfo_and_page_owner() -> TestResult {
    if let Ok(host) = std::fs::read_to_string("/proc/vmallocinfo") {
        let lines = parse_vmallocinfo(&host).map_err(|err| format!("/proc/vmallocinfo: {err}"))?;
        check!(
            !lines.is_empty(),
            "the host's vmallocinfo parsed to nothing"
        );
    }
    let mode = std::fs::metadata(format!("{DEBUGFS}/vmallocinfo"))
        .map_err(e)?
        .permissions()
        .mode();
    check_eq!(mode & 0o777, 0o400);
    let dev = open_vm()?;
    let small = dev.vm_create(3 * PAGE, DMA32, 0).map_err(e)?;
    let large = dev
        .vm_create(300 * PAGE, NORMAL, sys::MINIMM_VM_LARGE)
        .map_err(e)?;
    let lines = vmallocinfo()?;
    check!(
        lines.windows(2).all(|w| w[0].start < w[1].start),
        "not sorted by address"
    );
    for (a, pages) in [(&small, 3u64), (&large, 300)] {
        let i = dev.vm_info(a.handle).map_err(e)?;
        let zones = |l: &VmallocLine| -> Vec<u64> {
            ["DMA", "DMA32", "Normal"]
                .iter()
                .map(|z| {
                    l.extra
                        .iter()
                        .find(|(k, _)| k == z)
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(u64::MAX)
                })
                .collect()
        };
        let line = lines
            .iter()
            .find(|l| l.pages == Some(pages) && zones(l) == i.zone_pages.to_vec())
            .ok_or(format!(
                "no line for {pages} pages {:?}: {lines:?}",
                i.zone_pages
            ))?;
        check_eq!(line.size, (pages + 1) * PAGE);
        check_eq!(line.end - line.start, line.size);
        check!(line.flags.iter().any(|f| f == "vmalloc"), "{line:?}");
        check_eq!(line.flags.iter().any(|f| f == "large"), pages == 300);
    }
    let po = debugfs("page_owner").map_err(e)?;
    for pages in [3, 300] {
        check!(
            po.contains(&format!("Area allocated via vmalloc, pages {pages}, ")),
            "no page_owner paragraph for {pages} pages"
        );
    }
    drop(dev);
    let after = vmallocinfo()?;
    check_eq!(after.len() + 2, lines.len());
    pass()
}

/// Resizing keeps the first bytes both ways (grown bytes zero), gives a new mmap offset,
/// keeps the handle, and gives the old pages back: at once when unmapped, at the munmap when
/// a mapping made before the resize still shows the old bytes. Errnos change nothing.
pub fn resize() -> TestResult {
    let dev = open_vm()?;
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let before = free_pages(&dev)?;
    let c0 = counters()?;
    let a = dev.vm_create(10 * PAGE, NORMAL, 0).map_err(e)?;
    dev.fill(a.handle, 21).map_err(e)?;
    let mut old = vec![0u8; (10 * PAGE) as usize];
    fill_pattern(21, &mut old);
    // Grow to 25 pages: the 10 pages kept, the rest zero.
    let g = dev.vm_resize(a.handle, 25 * PAGE).map_err(e)?;
    check_eq!(g.pages, 25);
    check!(
        g.mmap_offset != a.mmap_offset,
        "same mmap offset after a resize"
    );
    let mut want = old.clone();
    want.resize((25 * PAGE) as usize, 0);
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    let i = dev.vm_info(a.handle).map_err(e)?;
    check_eq!((i.pages, i.mmap_offset), (25, g.mmap_offset));
    check_eq!(counters()?, (c0.0 + 25, c0.1 + 1));
    // Mapped at the new offset; the old offset is gone.
    let m = dev.map(g.mmap_offset, (25 * PAGE) as usize).map_err(e)?;
    check!(m.bytes() == &want[..], "the grown area's mapping differs");
    expect_errno(
        dev.map(a.mmap_offset, (10 * PAGE) as usize).map(|_| ()),
        libc::EINVAL,
        "mmap of the old offset",
    )?;
    // Shrink to 3 pages while mapped: the mapping keeps the 25 pages it had.
    let s3 = dev.vm_resize(a.handle, 3 * PAGE).map_err(e)?;
    check_eq!(s3.pages, 3);
    check_eq!(
        dev.checksum(a.handle).map_err(e)?,
        checksum(&want[..(3 * PAGE) as usize])
    );
    check!(m.bytes() == &want[..], "the old mapping changed");
    check_eq!(counters()?, (c0.0 + 28, c0.1 + 2));
    drop(m);
    check_eq!(counters()?, (c0.0 + 3, c0.1 + 1));
    // Errnos change nothing.
    expect_errno(dev.vm_resize(a.handle, 0), libc::EINVAL, "resize to 0")?;
    expect_errno(dev.vm_resize(999_999, PAGE), libc::EINVAL, "unknown handle")?;
    expect_errno(
        dev.vm_resize(a.handle, 1 << 31),
        libc::EDQUOT,
        "beyond the quota",
    )?;
    let b = dev.alloc(0, NORMAL, 0).map_err(e)?;
    expect_errno(dev.vm_resize(b.handle, PAGE), libc::EINVAL, "a block")?;
    dev.free(b.handle).map_err(e)?;
    check_eq!(dev.vm_info(a.handle).map_err(e)?.pages, 3);
    dev.vm_free(a.handle).map_err(e)?;
    check_eq!(counters()?, c0);
    pool_back(&dev, &before)?;
    pass()
}

/// An area's pages still referenced from outside when it goes (a pipe holding pages
/// vmspliced from its mapping) are held, not reused: the pipe reads the bytes written, and
/// the held pages come back to the pool once the pipe lets go.
pub fn pinned_pages_held() -> TestResult {
    let dev = open_vm()?;
    let held_before = vmstat("nr_held_pages")?;
    let page = PAGE as usize;
    let a = dev.vm_create(3 * PAGE, NORMAL, 0).map_err(e)?;
    let mut m = dev.map(a.mmap_offset, 3 * page).map_err(e)?;
    fill_pattern(78, m.bytes_mut());
    let pipe = Pipe::new()?;
    let iov = libc::iovec {
        iov_base: m.bytes_mut()[page..].as_mut_ptr().cast(),
        iov_len: page,
    };
    // SAFETY: `iov` describes a page of the live mapping; the pipe takes a reference to it.
    let n = unsafe { libc::vmsplice(pipe.w, &iov, 1, 0) };
    check_eq!(n, page as isize);
    drop(m);
    dev.vm_free(a.handle).map_err(e)?;
    // The area went as a whole: its one referenced page is held, the others went back.
    check_eq!(vmstat("nr_held_pages")?, held_before + 1);
    check_eq!(vmstat("nr_vmalloc")?, counters()?.0);
    let mut later = Vec::new();
    for _ in 0..16 {
        later.push(dev.vm_create(4 * PAGE, NORMAL, 0).map_err(e)?);
    }
    let mut buf = vec![0u8; page];
    // SAFETY: reading into `buf`, valid for `page` bytes.
    let r = unsafe { libc::read(pipe.r, buf.as_mut_ptr().cast(), page) };
    drop(pipe);
    check_eq!(r, page as isize);
    let mut want = vec![0u8; 3 * page];
    fill_pattern(78, &mut want);
    check!(
        buf == want[page..2 * page],
        "the pipe's page was reused and overwritten"
    );
    for b in later {
        dev.vm_free(b.handle).map_err(e)?;
    }
    // Recycled by the reaper (every second) or the next free, once only minimm holds it.
    let back = within(5, || {
        let a = dev.vm_create(PAGE, NORMAL, 0).map_err(e)?;
        dev.vm_free(a.handle).map_err(e)?;
        Ok(vmstat("nr_held_pages")? == held_before)
    })?;
    check!(
        back,
        "held pages {} after the pipe closed",
        vmstat("nr_held_pages")?
    );
    pass()
}
