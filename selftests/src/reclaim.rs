// SPDX-License-Identifier: GPL-2.0

//! Page frame reclaim (issue 13) as built so far: debugfs `reclaim`, which gives back, in
//! order, the per-CPU lists, the slab caches' cached objects and empty slabs, held blocks
//! whose pins dropped and unpinned discardable blocks chosen by the clock; and the
//! discardable blocks themselves (`UNPIN`, `PIN`, purges, SIGBUS, zeroed pages).

use minimm_uapi::{checksum, debugfs, fill_pattern, sys, Device, Mapping};

use crate::{
    common::{
        e, ensure_loaded, free_pages, in_child, open, reload, sh, stats, validate_ok, vmstat,
        within, write_watermarks, Area, Child, CpuPin, Exit, Pipe, Watermarks, DEBUGFS, DMA, DMA32,
        NORMAL,
    },
    ktap::{expect_errno, pass, TestResult},
};

const DISCARDABLE: u32 = sys::MINIMM_ALLOC_DISCARDABLE;

/// The highest zone this VM has (a guest with 4 GiB or less has no NORMAL memory).
fn top_zone(dev: &Device) -> Result<u32, String> {
    Ok(if stats(dev, NORMAL)?.managed_pages > 0 {
        NORMAL
    } else {
        DMA32
    })
}

/// `PIN`/`UNPIN` with a raw struct (to send flags).
fn pin_raw(dev: &Device, cmd: u32, handle: u64, flags: u32) -> std::io::Result<sys::minimm_pin> {
    let mut p = sys::minimm_pin {
        size: std::mem::size_of::<sys::minimm_pin>() as u32,
        flags,
        handle,
        result: 0,
    };
    dev.ioctl(cmd, &mut p)?;
    Ok(p)
}

/// Reclaims everything reclaim can find (EAGAIN: fewer pages than asked for).
fn reclaim_all() -> Result<(), String> {
    expect_errno(
        write_reclaim("1000000000"),
        libc::EAGAIN,
        "reclaim 1000000000",
    )
}

/// Reads the first byte of a mapping of `len` bytes at `offset` of `dev` in a child: how the
/// child ended (a read byte as its exit code, or the signal that killed it).
fn read_in_child(dev: &Device, offset: u64, len: usize) -> Result<Exit, String> {
    in_child(|| match dev.map(offset, len) {
        // SAFETY: reading the first byte of the child's own live mapping.
        Ok(m) => i32::from(unsafe { core::ptr::read_volatile(m.bytes().as_ptr()) }),
        Err(_) => 200,
    })
}

const PAGE: usize = 4096;

fn write_reclaim(what: &str) -> std::io::Result<()> {
    std::fs::write(format!("{DEBUGFS}/reclaim"), what)
}

/// Pages on the per-CPU lists of every zone.
fn pcp_pages(dev: &Device) -> Result<u64, String> {
    let mut n = 0;
    for z in [DMA, DMA32, NORMAL] {
        n += stats(dev, z)?.pcp_pages;
    }
    Ok(n)
}

/// Writing N reclaims from every source until N pages came back: a page on a per-CPU list, a
/// cache's cached objects and empty slabs and a held block whose pin dropped all come back
/// from a write of more than there is (EAGAIN, having tried everything); a write of 1 is met
/// by the per-CPU lists alone; anything but a number from 1 up is EINVAL.
pub fn gives_back_every_source() -> TestResult {
    let dev = open()?;
    // One CPU's lists serve the test's allocations.
    let _pin = CpuPin::new(0)?;
    let zone = if stats(&dev, NORMAL)?.managed_pages > 0 {
        NORMAL
    } else {
        DMA32
    };
    // 1: a page on this CPU's list.
    let a = dev.alloc(0, zone, 0).map_err(e)?;
    dev.free(a.handle).map_err(e)?;
    check!(
        pcp_pages(&dev)? > 0,
        "no page on a per-CPU list after a free"
    );
    // 2: a cache with objects in its per-CPU arrays and empty slabs.
    let cache = dev.slab_create("reclaim", 256, 0, 0, 0).map_err(e)?;
    let per_slab = dev.slab_stats(cache).map_err(e)?.objs_per_slab as usize;
    let mut objs = Vec::new();
    for _ in 0..3 * per_slab {
        objs.push(dev.slab_alloc(cache, 0, 0).map_err(e)?.object);
    }
    for o in objs {
        dev.slab_free(o).map_err(e)?;
    }
    let s = dev.slab_stats(cache).map_err(e)?;
    check!(s.num_slabs > 0, "the cache kept no slab: {s:?}");
    // 3: a held block: a page of it spliced into a pipe when it was freed.
    let held0 = vmstat("nr_held_pages")?;
    let b = dev.alloc(1, zone, 0).map_err(e)?;
    let mut m = dev.map(b.mmap_offset, 2 * PAGE).map_err(e)?;
    fill_pattern(13, m.bytes_mut());
    let pipe = Pipe::new()?;
    let iov = libc::iovec {
        iov_base: m.bytes_mut().as_mut_ptr().cast(),
        iov_len: PAGE,
    };
    // SAFETY: `iov` describes the first page of the live mapping; the pipe takes a reference.
    let n = unsafe { libc::vmsplice(pipe.w, &iov, 1, 0) };
    check_eq!(n, PAGE as isize);
    drop(m);
    dev.free(b.handle).map_err(e)?;
    check_eq!(vmstat("nr_held_pages")?, held0 + 2);
    drop(pipe);
    let kept = dev.slab_stats(cache).map_err(e)?.num_slabs;
    let scanned = vmstat("slabs_scanned")?;
    // More than every source has: all of them give what they have, then EAGAIN.
    expect_errno(
        write_reclaim("1000000000"),
        libc::EAGAIN,
        "reclaim 1000000000",
    )?;
    check!(
        vmstat("slabs_scanned")? >= scanned + kept,
        "slabs_scanned did not count the cache's {kept} slabs"
    );
    check_eq!(pcp_pages(&dev)?, 0);
    let s = dev.slab_stats(cache).map_err(e)?;
    check_eq!((s.num_slabs, s.cpu_objects), (0, 0));
    check_eq!(vmstat("nr_held_pages")?, held0);
    // A page on a list again: reclaiming 1 page is met.
    let a = dev.alloc(0, zone, 0).map_err(e)?;
    dev.free(a.handle).map_err(e)?;
    write_reclaim("1").map_err(|err| format!("reclaim 1: {err}"))?;
    check_eq!(pcp_pages(&dev)?, 0);
    for bad in ["0", "-1", "x", "1 1", "0x10", "18446744073709551616"] {
        expect_errno(
            write_reclaim(bad),
            libc::EINVAL,
            &format!("reclaim {bad:?}"),
        )?;
    }
    dev.slab_destroy(cache).map_err(e)?;
    pass()
}

/// UNPIN and PIN: their errnos, and a round trip without pressure that keeps every byte.
pub fn unpin_pin_round_trip() -> TestResult {
    let dev = open()?;
    let info = dev.info().map_err(e)?;
    check!(
        info.features & sys::MINIMM_FEAT_RECLAIM != 0,
        "MINIMM_FEAT_RECLAIM not set: {:#x}",
        info.features
    );
    let zone = top_zone(&dev)?;
    // Not discardable, unknown, flags, an unknown ALLOC flag, a read-only file.
    let plain = dev.alloc(0, zone, 0).map_err(e)?;
    expect_errno(
        dev.unpin(plain.handle),
        libc::EINVAL,
        "UNPIN of a plain block",
    )?;
    expect_errno(dev.pin(plain.handle), libc::EINVAL, "PIN of a plain block")?;
    expect_errno(
        dev.unpin(1 << 40),
        libc::EINVAL,
        "UNPIN of an unknown handle",
    )?;
    let d = dev.alloc(1, zone, DISCARDABLE).map_err(e)?;
    for cmd in [sys::MINIMM_IOC_UNPIN, sys::MINIMM_IOC_PIN] {
        expect_errno(pin_raw(&dev, cmd, d.handle, 1), libc::EINVAL, "flags 1")?;
        expect_errno(
            pin_raw(&dev, cmd, d.handle, 1 << 31),
            libc::EINVAL,
            "flags 1<<31",
        )?;
    }
    expect_errno(
        dev.alloc(0, zone, sys::MINIMM_ALLOC_VALID + 1),
        libc::EINVAL,
        "ALLOC with an unknown flag",
    )?;
    let ro = Device::open_mode(libc::O_RDONLY).map_err(e)?;
    expect_errno(ro.unpin(d.handle), libc::EBADF, "UNPIN on O_RDONLY")?;
    // Another file's handle is unknown here.
    let other = open()?;
    expect_errno(
        other.unpin(d.handle),
        libc::EINVAL,
        "UNPIN of another file's block",
    )?;
    // Starts pinned: PIN reports nothing.
    check_eq!(dev.pin(d.handle).map_err(e)?, false);
    let mut m = dev.map(d.mmap_offset, 8192).map_err(e)?;
    fill_pattern(41, m.bytes_mut());
    let sum = checksum(m.bytes());
    let unpinned = vmstat("nr_unpinned")?;
    let inactive = vmstat("nr_inactive")?;
    dev.unpin(d.handle).map_err(e)?;
    dev.unpin(d.handle).map_err(e)?;
    check_eq!(vmstat("nr_unpinned")?, unpinned + 2);
    check_eq!(vmstat("nr_inactive")?, inactive + 2);
    let lru = debugfs("lru").map_err(e)?;
    check!(
        lru.contains(&format!("offset {:#x} pages 2 ", d.mmap_offset)),
        "the unpinned block is not in lru: {lru}"
    );
    let owner = debugfs("page_owner").map_err(e)?;
    check!(
        owner.contains("discardable unpinned"),
        "page_owner shows no unpinned block"
    );
    // Unpinned, not purged: still readable and writable, both ways.
    check_eq!(checksum(m.bytes()), sum);
    check_eq!(dev.checksum(d.handle).map_err(e)?, sum);
    check_eq!(dev.pin(d.handle).map_err(e)?, false);
    check_eq!(dev.pin(d.handle).map_err(e)?, false);
    check_eq!(vmstat("nr_unpinned")?, unpinned);
    check_eq!(vmstat("nr_inactive")?, inactive);
    check_eq!(checksum(m.bytes()), sum);
    // Freed while unpinned: off the lists.
    dev.unpin(d.handle).map_err(e)?;
    drop(m);
    dev.free(d.handle).map_err(e)?;
    check_eq!(vmstat("nr_unpinned")?, unpinned);
    check_eq!(vmstat("nr_inactive")?, inactive);
    dev.free(plain.handle).map_err(e)?;
    pass()
}

/// Reclaim purges unpinned blocks only: pinned discardable and plain blocks keep every byte;
/// the purged block's mappings give SIGBUS (an existing one and a new one), BLOCK_DATA
/// ENODATA; PIN reports the purge once and gives zeroed pages, which the old mapping then
/// shows.
pub fn purges_unpinned_only() -> TestResult {
    let dev = open()?;
    let zone = top_zone(&dev)?;
    let pinned = dev.alloc(2, zone, DISCARDABLE).map_err(e)?;
    let plain = dev.alloc(2, zone, 0).map_err(e)?;
    let u = dev.alloc(2, zone, DISCARDABLE).map_err(e)?;
    let len = 4 * 4096;
    let mut sums = Vec::new();
    for (seed, b) in [(1u64, &pinned), (2, &plain), (3, &u)] {
        dev.fill(b.handle, seed).map_err(e)?;
        sums.push(dev.checksum(b.handle).map_err(e)?);
    }
    let m = dev.map(u.mmap_offset, len).map_err(e)?;
    check_eq!(checksum(m.bytes()), sums[2]);
    // A process that maps the block and reads it before the purge, and again after.
    let (ready, go) = (Pipe::new()?, Pipe::new()?);
    let child = Child::spawn(|| {
        let Ok(m) = dev.map(u.mmap_offset, len) else {
            return 201;
        };
        // SAFETY: reading a byte of the child's own live mapping.
        let first = unsafe { core::ptr::read_volatile(m.bytes().as_ptr()) };
        let mut byte = [first];
        // SAFETY: `byte` is valid for one byte; the pipes are the parent's, inherited.
        unsafe {
            libc::write(ready.w, byte.as_ptr().cast(), 1);
            libc::read(go.r, byte.as_mut_ptr().cast(), 1);
        }
        // SAFETY: as above; after the purge this is SIGBUS.
        i32::from(unsafe { core::ptr::read_volatile(m.bytes().as_ptr()) })
    })?;
    let mut byte = [0u8];
    // SAFETY: `byte` is valid for one byte.
    let n = unsafe { libc::read(ready.r, byte.as_mut_ptr().cast(), 1) };
    check_eq!(n, 1);
    let purged = vmstat("nr_purged")?;
    let steal = vmstat("pgsteal_direct")?;
    dev.unpin(u.handle).map_err(e)?;
    reclaim_all()?;
    // SAFETY: `byte` is valid for one byte.
    unsafe { libc::write(go.w, byte.as_ptr().cast(), 1) };
    let ended = child.wait()?;
    check!(
        ended == Exit::Signal(libc::SIGBUS),
        "a mapping made before the purge, read after it: {ended:?}"
    );
    check_eq!(vmstat("nr_purged")?, purged + 4);
    check!(
        vmstat("pgsteal_direct")? >= steal + 4,
        "pgsteal_direct did not count the purge"
    );
    check_eq!(dev.checksum(pinned.handle).map_err(e)?, sums[0]);
    check_eq!(dev.checksum(plain.handle).map_err(e)?, sums[1]);
    expect_errno(
        dev.checksum(u.handle),
        libc::ENODATA,
        "BLOCK_DATA of a purged block",
    )?;
    expect_errno(
        dev.fill(u.handle, 9),
        libc::ENODATA,
        "fill of a purged block",
    )?;
    let child = read_in_child(&dev, u.mmap_offset, len)?;
    check!(
        child == Exit::Signal(libc::SIGBUS),
        "reading a purged block's new mapping: {child:?}"
    );
    let owner = debugfs("page_owner").map_err(e)?;
    check!(
        !owner.contains(&format!("offset {:#x}\n", u.mmap_offset)),
        "page_owner still lists the purged block's pages"
    );
    // Pinned again: the purge is reported once, the pages are new and zero.
    check_eq!(dev.pin(u.handle).map_err(e)?, true);
    check_eq!(dev.pin(u.handle).map_err(e)?, false);
    let zero = checksum(&vec![0u8; len]);
    check_eq!(dev.checksum(u.handle).map_err(e)?, zero);
    // The mapping made before the purge faults the new pages in.
    check_eq!(checksum(m.bytes()), zero);
    let child = read_in_child(&dev, u.mmap_offset, len)?;
    check_eq!(child, Exit::Code(0));
    let owner = debugfs("page_owner").map_err(e)?;
    check!(
        owner.contains("discardable pinned"),
        "page_owner shows no pinned discardable block"
    );
    drop(m);
    for b in [pinned, plain, u] {
        dev.free(b.handle).map_err(e)?;
    }
    pass()
}

/// The clock prefers units not accessed since they were unpinned: of eight unpinned blocks,
/// four read through their mappings afterwards, reclaiming four pages purges the other four.
pub fn evicts_unaccessed_first() -> TestResult {
    let dev = open()?;
    let zone = top_zone(&dev)?;
    // Nothing else reclaimable first, so that the clock is what gives the four pages.
    reclaim_all()?;
    let mut blocks = Vec::new();
    let mut maps = Vec::new();
    for i in 0..8u64 {
        let b = dev.alloc(0, zone, DISCARDABLE).map_err(e)?;
        let mut m = dev.map(b.mmap_offset, 4096).map_err(e)?;
        fill_pattern(100 + i, m.bytes_mut());
        blocks.push(b);
        maps.push(m);
    }
    for b in &blocks {
        dev.unpin(b.handle).map_err(e)?;
    }
    // Accesses after the unpin fault (the unpin unmapped the pages) and set the bit.
    for m in &maps[..4] {
        // SAFETY: reading a byte of a live mapping of a block not purged.
        let _ = unsafe { core::ptr::read_volatile(m.bytes().as_ptr()) };
    }
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let purged = vmstat("nr_purged")?;
    write_reclaim("4").map_err(|err| format!("reclaim 4: {err}"))?;
    check_eq!(vmstat("nr_purged")?, purged + 4);
    let mut was = Vec::new();
    for b in &blocks {
        was.push(dev.pin(b.handle).map_err(e)?);
    }
    check_eq!(was, [false, false, false, false, true, true, true, true]);
    for (i, m) in maps.iter().enumerate().take(4) {
        let mut want = vec![0u8; 4096];
        fill_pattern(100 + i as u64, &mut want);
        check!(
            m.bytes() == want.as_slice(),
            "accessed block {i} lost its bytes"
        );
    }
    drop(maps);
    for b in blocks {
        dev.free(b.handle).map_err(e)?;
    }
    pass()
}

/// Whether a task named `minimm_reclaimd` runs (as `ps` would list it).
fn reclaimd_runs() -> Result<bool, String> {
    let dir = std::fs::read_dir("/proc").map_err(e)?;
    for entry in dir.flatten() {
        let comm = entry.path().join("comm");
        if std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "minimm_reclaimd") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The reclaim thread runs (visible in `ps`) and, woken by a zone below its low watermark,
/// purges unpinned blocks until the zone is at its high watermark again; then an allocation
/// that would fail the min watermark reclaims directly (`allocstall_dma`) where a NOWAIT one
/// fails without reclaiming. Everything happens in ZONE_DMA, which has no zone to fall back
/// to; every condition is waited for with a bounded poll.
pub fn thread_and_direct_reclaim() -> TestResult {
    check!(reclaimd_runs()?, "no minimm_reclaimd task in /proc");
    let dev = open()?;
    let z = stats(&dev, DMA)?;
    if z.managed_pages < 256 {
        return crate::ktap::skip("ZONE_DMA has fewer than 256 pages");
    }
    let mut units = Vec::new();
    for _ in 0..24 {
        let b = dev.alloc(2, DMA, DISCARDABLE).map_err(e)?;
        dev.unpin(b.handle).map_err(e)?;
        units.push(b);
    }
    let (steal, purged) = (vmstat("pgsteal_kswapd")?, vmstat("nr_purged")?);
    let free = stats(&dev, DMA)?.free_pages;
    let high = free + 40;
    check!(
        high <= z.managed_pages,
        "ZONE_DMA: {free} free of {}",
        z.managed_pages
    );
    // Below low now: the write wakes the thread.
    let guard = Watermarks::set(&dev, DMA, "DMA", (high, high, high))?;
    let back = within(20, || Ok(stats(&dev, DMA)?.free_pages >= high))?;
    check!(
        back,
        "ZONE_DMA {} free pages after 20 s, high {high}",
        stats(&dev, DMA)?.free_pages
    );
    check!(
        vmstat("pgsteal_kswapd")? > steal,
        "the thread purged nothing"
    );
    check!(
        vmstat("nr_purged")? >= purged + 40,
        "fewer than 40 pages purged"
    );
    check!(vmstat("pgscan_kswapd")? > 0, "pgscan_kswapd 0");
    // The thread's last pass may still be giving pages back: wait until the zone is still.
    let still = within(10, || {
        let a = stats(&dev, DMA)?.free_pages;
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(stats(&dev, DMA)?.free_pages == a)
    })?;
    check!(still, "ZONE_DMA's free pages still changing after 10 s");
    // Exactly at min: an order-2 request would take the zone below it.
    let now = stats(&dev, DMA)?.free_pages;
    drop(guard);
    let guard = Watermarks::set(&dev, DMA, "DMA", (now, now, now))?;
    let stalls = vmstat("allocstall_dma")?;
    expect_errno(
        dev.alloc(2, DMA, sys::MINIMM_ALLOC_NOWAIT),
        libc::ENOMEM,
        "a NOWAIT ALLOC below min",
    )?;
    check_eq!(vmstat("allocstall_dma")?, stalls);
    let b = dev
        .alloc(2, DMA, 0)
        .map_err(|err| format!("ALLOC with direct reclaim: {err}"))?;
    check!(
        vmstat("allocstall_dma")? > stalls,
        "no direct reclaim counted"
    );
    drop(guard);
    dev.free(b.handle).map_err(e)?;
    for u in units {
        dev.free(u.handle).map_err(e)?;
    }
    pass()
}

/// The sample `minimm-cache` runs to the end: every result it reads back is its own (it
/// checks), each round's hits and purges add up to its keys, and a purged result's pages were
/// zero.
pub fn cache_sample() -> TestResult {
    let out = std::process::Command::new("minimm-cache")
        .args(["16", "3", "8"])
        .output()
        .map_err(|err| format!("run minimm-cache: {err}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    check!(
        out.status.success(),
        "minimm-cache failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rounds: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("round ")?;
            let (_, rest) = rest.split_once(": ")?;
            let (h, rest) = rest.split_once(" hits, ")?;
            let (p, _) = rest.split_once(' ')?;
            Some((h.parse().ok()?, p.parse().ok()?))
        })
        .collect();
    check_eq!(rounds.len(), 3);
    // The warm half always survives; something cold was purged.
    check!(
        rounds.iter().all(|&(h, p)| h + p == 16 && h >= 8),
        "rounds {rounds:?} in {text}"
    );
    check!(
        rounds.iter().map(|r| r.1).sum::<u64>() > 0,
        "nothing was purged: {text}"
    );
    pass()
}

/// One stress worker's run: until `secs` have passed, allocate discardable blocks (order 0-2,
/// mapped, a pattern written), unpin, pin (a purged block must read zero, any other its
/// pattern), read unpinned ones through BLOCK_DATA (their checksum or ENODATA) and free, at
/// random. Returns 0, or 1 + the step that found wrong bytes.
fn stress_worker(id: u64, zone: u32, secs: u64) -> i32 {
    struct B {
        handle: u64,
        map: Mapping,
        seed: u64,
        pinned: bool,
    }
    let Ok(dev) = Device::open() else {
        return 100;
    };
    let mut rng = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<B> = Vec::new();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut step = 0i32;
    let want = |seed: u64, len: usize| {
        let mut v = vec![0u8; len];
        fill_pattern(seed, &mut v);
        v
    };
    while std::time::Instant::now() < end {
        step = step.wrapping_add(1);
        let r = next();
        match r % 8 {
            0..=2 if live.len() < 48 => {
                let order = (r >> 8) % 3;
                let Ok(a) = dev.alloc(order as u32, zone, DISCARDABLE) else {
                    continue;
                };
                let len = 4096usize << order;
                let Ok(mut map) = dev.map(a.mmap_offset, len) else {
                    return 101;
                };
                let seed = next();
                fill_pattern(seed, map.bytes_mut());
                live.push(B {
                    handle: a.handle,
                    map,
                    seed,
                    pinned: true,
                });
            }
            3 | 4 if !live.is_empty() => {
                let i = (r >> 8) as usize % live.len();
                if live[i].pinned && dev.unpin(live[i].handle).is_ok() {
                    live[i].pinned = false;
                }
            }
            5 if !live.is_empty() => {
                let i = (r >> 8) as usize % live.len();
                let b = &mut live[i];
                if b.pinned {
                    continue;
                }
                let len = b.map.bytes().len();
                match dev.pin(b.handle) {
                    Ok(true) => {
                        if b.map.bytes().iter().any(|&x| x != 0) {
                            return 1 + (step & 0xff);
                        }
                        fill_pattern(b.seed, b.map.bytes_mut());
                    }
                    Ok(false) => {
                        if b.map.bytes() != want(b.seed, len).as_slice() {
                            return 1 + (step & 0xff);
                        }
                    }
                    Err(err) if err.raw_os_error() == Some(libc::ENOMEM) => continue,
                    Err(_) => return 102,
                }
                b.pinned = true;
            }
            6 if !live.is_empty() => {
                let i = (r >> 8) as usize % live.len();
                let b = &live[i];
                let sum = checksum(&want(b.seed, b.map.bytes().len()));
                match dev.checksum(b.handle) {
                    Ok(s) if s == sum => {}
                    Err(err) if !b.pinned && err.raw_os_error() == Some(libc::ENODATA) => {}
                    _ => return 103,
                }
            }
            _ if !live.is_empty() => {
                let i = (r >> 8) as usize % live.len();
                let b = live.swap_remove(i);
                drop(b.map);
                if dev.free(b.handle).is_err() {
                    return 104;
                }
            }
            _ => {}
        }
    }
    // The rest goes with the file, pinned or not, mapped or not.
    0
}

/// A 30-second stress: four processes on two vCPUs allocating, writing, unpinning, pinning,
/// reading and freeing discardable blocks in a zone whose watermarks are raised to just
/// below its free pages, so that the reclaim thread and direct reclaim run throughout. No
/// pinned byte changes and every purge is reported (the workers check), the kernel log stays
/// clean (the harness checks), and afterwards the lists are empty, the counters consistent,
/// every page back and the checkers pass.
pub fn stress() -> TestResult {
    let dev = open()?;
    let zone = top_zone(&dev)?;
    let name = if zone == NORMAL { "Normal" } else { "DMA32" };
    reclaim_all()?;
    let before = free_pages(&dev)?;
    let s0 = stats(&dev, zone)?;
    let free = s0.free_pages;
    let (steal, purged) = (
        vmstat("pgsteal_kswapd")? + vmstat("pgsteal_direct")?,
        vmstat("nr_purged")?,
    );
    // The workers hold up to 4 x 48 blocks of up to 4 pages: the zone goes below high,
    // then low and min.
    let guard = Watermarks::set(
        &dev,
        zone,
        name,
        (
            free.saturating_sub(400),
            free.saturating_sub(300),
            free.saturating_sub(200),
        ),
    )?;
    let workers: Vec<Child> = (0..4u64)
        .map(|id| Child::spawn(move || stress_worker(id, zone, 30)))
        .collect::<Result<_, _>>()?;
    let mut exits = Vec::new();
    for w in workers {
        exits.push(w.wait()?);
    }
    drop(guard);
    check!(
        exits.iter().all(|x| *x == Exit::Code(0)),
        "workers ended {exits:?} (1+: wrong bytes at a step; 100+: a call failed)"
    );
    check!(
        vmstat("nr_purged")? > purged,
        "nothing was purged under the raised watermarks"
    );
    check!(
        vmstat("pgsteal_kswapd")? + vmstat("pgsteal_direct")? > steal,
        "no pgsteal counted"
    );
    for name in ["nr_unpinned", "nr_inactive", "nr_active"] {
        check_eq!(vmstat(name)?, 0);
    }
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let back = within(10, || {
        std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
        Ok(free_pages(&dev)? == before)
    })?;
    check!(back, "pool {:?}, was {before:?}", free_pages(&dev)?);
    validate_ok()?;
    pass()
}

/// rmmod while the reclaim thread is busy: 512 unpinned blocks, a zone put below low so the
/// thread purges them, then the file closed (the blocks going while the thread works on them)
/// and the module unloaded at once, three times over. Unload stops the thread and gives every
/// page back (the module logs the count; a missing page is a kernel warning, which fails the
/// run), and the module loads again.
pub fn rmmod_while_thread_busy() -> TestResult {
    // Reloaded with the parameters it was loaded with.
    let params = crate::unload::load_params()?;
    for round in 0..3 {
        ensure_loaded()?;
        let dev = open()?;
        let zone = top_zone(&dev)?;
        let name = if zone == NORMAL { "Normal" } else { "DMA32" };
        for _ in 0..512 {
            let b = dev.alloc(0, zone, DISCARDABLE).map_err(e)?;
            dev.unpin(b.handle).map_err(e)?;
        }
        let free = stats(&dev, zone)?.free_pages;
        let purged = vmstat("nr_purged")?;
        let high = free + 400;
        write_watermarks(&format!("{name} {high} {high} {high}"))?;
        // Let the thread start on them (or finish, on a fast machine): both are fine.
        let busy = within(5, || Ok(vmstat("nr_purged")? > purged))?;
        drop(dev);
        let out = reload(&params).map_err(|err| format!("round {round}: {err}"))?;
        check!(
            busy,
            "round {round}: the thread purged nothing in 5 s ({out})"
        );
    }
    let log = sh("dmesg | grep 'unloaded: borrowed' | tail -n 3")?;
    check_eq!(log.lines().count(), 3);
    check!(
        log.lines().all(|l| {
            let n: Vec<&str> = l
                .split_whitespace()
                .filter(|w| w.parse::<u64>().is_ok())
                .collect();
            n.len() >= 2 && n[n.len() - 2] == n[n.len() - 1]
        }),
        "unload logs: {log}"
    );
    pass()
}

/// Whether `fd` reports POLLPRI within `ms` milliseconds.
fn pollpri(fd: i32, ms: i32) -> Result<bool, String> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    check!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    Ok(n == 1 && p.revents & libc::POLLPRI != 0)
}

/// poll() reports POLLPRI once per watermark crossing, to every file open at the time and
/// until it reads the events: ZONE_DMA put below low, then below min, then back above high
/// (its watermarks restored), each seen by poll and counted by WMARK_EVENTS (zone, kind,
/// counts, unread), a file opened after a crossing not told of it, and a read-only file
/// reading them too.
pub fn poll_sees_crossings() -> TestResult {
    let dev = open()?;
    let ro = Device::open_mode(libc::O_RDONLY).map_err(e)?;
    // Room above the free pages for the marks: 64 of ZONE_DMA's pages taken.
    let held = dev.alloc(6, DMA, 0).map_err(e)?;
    // Nothing of ZONE_DMA's on a per-CPU list, so that nothing but the watermarks moves it.
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    // From high: marks of 0 put the zone there whatever it was (an event, maybe, read now).
    let zero = Watermarks::set(&dev, DMA, "DMA", (0, 0, 0))?;
    let w0 = dev.wmark_events().map_err(e)?;
    ro.wmark_events().map_err(e)?;
    check!(!pollpri(dev.fd(), 0)?, "POLLPRI with every event read");
    let s = stats(&dev, DMA)?;
    let free = s.free_pages;
    check!(
        free + 20 <= s.managed_pages,
        "ZONE_DMA: {free} free of {}",
        s.managed_pages
    );
    write_watermarks(&format!("DMA 1 {} {}", free + 10, free + 20))?;
    check!(
        pollpri(dev.fd(), 5000)?,
        "no POLLPRI after ZONE_DMA went below low"
    );
    let late = open()?;
    let w1 = dev.wmark_events().map_err(e)?;
    let d = DMA as usize;
    check_eq!(w1.below_low[d], w0.below_low[d] + 1);
    check_eq!((w1.last_zone, w1.last_kind), (DMA, sys::MINIMM_WMARK_LOW));
    check!(
        w1.unread >= 1 && w1.events > w0.events,
        "{w1:?} after {w0:?}"
    );
    check!(!pollpri(dev.fd(), 0)?, "POLLPRI after the events were read");
    check!(pollpri(ro.fd(), 0)?, "the read-only file was not told");
    check!(
        !pollpri(late.fd(), 0)?,
        "a file opened after the crossing was told of it"
    );
    // Below min.
    write_watermarks(&format!("DMA {} {} {}", free + 5, free + 10, free + 20))?;
    check!(
        pollpri(dev.fd(), 5000)?,
        "no POLLPRI after ZONE_DMA went below min"
    );
    let w2 = dev.wmark_events().map_err(e)?;
    check_eq!(w2.below_min[d], w1.below_min[d] + 1);
    check_eq!(w2.below_low[d], w1.below_low[d]);
    check_eq!((w2.last_zone, w2.last_kind), (DMA, sys::MINIMM_WMARK_MIN));
    // Back above high.
    write_watermarks("DMA 0 0 0")?;
    check!(
        pollpri(dev.fd(), 5000)?,
        "no POLLPRI after ZONE_DMA climbed back"
    );
    let w3 = dev.wmark_events().map_err(e)?;
    check_eq!(w3.above_high[d], w2.above_high[d] + 1);
    check_eq!((w3.last_zone, w3.last_kind), (DMA, sys::MINIMM_WMARK_HIGH));
    check!(
        pollpri(late.fd(), 0)?,
        "the later file was not told of later crossings"
    );
    let r = ro.wmark_events().map_err(e)?;
    check_eq!(r.events, w3.events);
    check!(r.unread >= 3, "the read-only file's unread {}", r.unread);
    drop(zero);
    dev.free(held.handle).map_err(e)?;
    pass()
}

/// The failure point `reclaim_purge`: an unpinned block the clock chose is kept (put back with
/// its second chance) while the point fails, counted in `injected`, and purged once it no
/// longer does.
pub fn purge_failure_point() -> TestResult {
    let knob = |k: &str| format!("{DEBUGFS}/fail/reclaim_purge/{k}");
    let dev = open()?;
    let zone = top_zone(&dev)?;
    reclaim_all()?;
    let b = dev.alloc(0, zone, DISCARDABLE).map_err(e)?;
    dev.fill(b.handle, 77).map_err(e)?;
    let sum = dev.checksum(b.handle).map_err(e)?;
    dev.unpin(b.handle).map_err(e)?;
    let injected = std::fs::read_to_string(knob("injected")).map_err(e)?;
    let injected: u64 = injected
        .trim()
        .parse()
        .map_err(|_| format!("injected {injected:?}"))?;
    let purged = vmstat("nr_purged")?;
    std::fs::write(knob("probability"), "100").map_err(e)?;
    std::fs::write(knob("times"), "-1").map_err(e)?;
    let r = reclaim_all();
    std::fs::write(knob("probability"), "0").map_err(e)?;
    std::fs::write(knob("times"), "0").map_err(e)?;
    r?;
    let now: u64 = std::fs::read_to_string(knob("injected"))
        .map_err(e)?
        .trim()
        .parse()
        .map_err(|_| "injected".to_string())?;
    check!(now > injected, "nothing injected at reclaim_purge");
    check_eq!(vmstat("nr_purged")?, purged);
    // A kernel-side read: an access, so the next scan gives it a second chance; the one after
    // purges it.
    check_eq!(dev.checksum(b.handle).map_err(e)?, sum);
    reclaim_all()?;
    check_eq!(vmstat("nr_purged")?, purged);
    reclaim_all()?;
    check_eq!(vmstat("nr_purged")?, purged + 1);
    check_eq!(dev.pin(b.handle).map_err(e)?, true);
    dev.free(b.handle).map_err(e)?;
    pass()
}

/// Reads `len` bytes at `addr` of this process through `process_vm_readv` (which faults the
/// pages in like any access, but reports a fault's SIGBUS as EFAULT instead of raising it).
fn read_self(addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes `buf`; the kernel checks `remote`.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Purges at the contract's edges: a block freed while still mapped (purged through the
/// mapping that keeps it, which then faults with SIGBUS, seen as EFAULT; the counters go back
/// with the munmap); a page of an unpinned block spliced into a pipe (the pipe keeps its
/// bytes, the page is held until the pipe closes); a mapping moved by mremap (zapped at its
/// new address too).
pub fn purge_edges() -> TestResult {
    let dev = open()?;
    let zone = top_zone(&dev)?;
    reclaim_all()?;
    let unpinned = vmstat("nr_unpinned")?;
    // Freed while mapped.
    let a = dev.alloc(1, zone, DISCARDABLE).map_err(e)?;
    let mut m = dev.map(a.mmap_offset, 8192).map_err(e)?;
    fill_pattern(5, m.bytes_mut());
    dev.unpin(a.handle).map_err(e)?;
    dev.free(a.handle).map_err(e)?;
    check_eq!(vmstat("nr_unpinned")?, unpinned + 2);
    let addr = m.bytes().as_ptr() as usize;
    check!(
        read_self(addr, 8192).is_ok(),
        "the freed block's mapping before the purge"
    );
    // That read was an access: the first scan gives a second chance, the next purges.
    reclaim_all()?;
    reclaim_all()?;
    let r = read_self(addr, 8192);
    check!(
        r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EFAULT),
        "a purged block's mapping read: {:?}",
        r.map(|v| v.len())
    );
    check_eq!(vmstat("nr_unpinned")?, unpinned);
    drop(m);
    check_eq!(vmstat("nr_inactive")? + vmstat("nr_active")?, 0);
    // Spliced into a pipe, then purged.
    let held = vmstat("nr_held_pages")?;
    let b = dev.alloc(0, zone, DISCARDABLE).map_err(e)?;
    let mut m = dev.map(b.mmap_offset, 4096).map_err(e)?;
    fill_pattern(6, m.bytes_mut());
    let want = m.bytes().to_vec();
    let pipe = Pipe::new()?;
    let iov = libc::iovec {
        iov_base: m.bytes_mut().as_mut_ptr().cast(),
        iov_len: 4096,
    };
    // SAFETY: `iov` describes the live mapping; the pipe takes a reference to the page.
    let n = unsafe { libc::vmsplice(pipe.w, &iov, 1, 0) };
    check_eq!(n, 4096);
    dev.unpin(b.handle).map_err(e)?;
    reclaim_all()?;
    check_eq!(vmstat("nr_held_pages")?, held + 1);
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is valid for 4096 bytes.
    let r = unsafe { libc::read(pipe.r, buf.as_mut_ptr().cast(), 4096) };
    check_eq!(r, 4096);
    check!(buf == want, "the pipe's page changed after the purge");
    drop(pipe);
    check_eq!(dev.pin(b.handle).map_err(e)?, true);
    check!(
        m.bytes().iter().all(|&x| x == 0),
        "the re-pinned block is not zero"
    );
    drop(m);
    dev.free(b.handle).map_err(e)?;
    let back = within(5, || {
        let a = dev.alloc(0, zone, 0).map_err(e)?;
        dev.free(a.handle).map_err(e)?;
        Ok(vmstat("nr_held_pages")? == held)
    })?;
    check!(
        back,
        "the spliced page was not recycled after the pipe closed"
    );
    // A mapping moved by mremap.
    let c = dev.alloc(0, zone, DISCARDABLE).map_err(e)?;
    let mut m = Area::map(
        dev.fd(),
        c.mmap_offset,
        4096,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )
    .map_err(e)?;
    let target = Area::reserve(4096).map_err(e)?;
    m.move_onto(target)
        .map_err(|err| format!("mremap: {err}"))?;
    check!(
        read_self(m.addr, 4096).is_ok(),
        "the moved mapping before the purge"
    );
    dev.unpin(c.handle).map_err(e)?;
    reclaim_all()?;
    reclaim_all()?;
    let r = read_self(m.addr, 4096);
    check!(
        r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EFAULT),
        "a purged block's moved mapping read: {:?}",
        r.map(|v| v.len())
    );
    drop(m);
    dev.free(c.handle).map_err(e)?;
    pass()
}

/// Reads the byte at `at` of a mapping of `len` bytes at `offset` of `dev` in a child: its
/// value as the child's exit code, or the signal that killed it.
fn read_at_in_child(dev: &Device, offset: u64, len: usize, at: usize) -> Result<Exit, String> {
    in_child(|| match dev.map(offset, len) {
        // SAFETY: reading a byte inside the child's own live mapping (`at < len`).
        Ok(m) => i32::from(unsafe { core::ptr::read_volatile(m.bytes().as_ptr().add(at)) }),
        Err(_) => 200,
    })
}

/// Lines of debugfs `vmallocinfo` that show a discardable area.
fn discardable_areas() -> Result<usize, String> {
    Ok(debugfs("vmallocinfo")
        .map_err(e)?
        .lines()
        .filter(|l| l.ends_with(" discardable"))
        .count())
}

/// A discardable area: flag rules (not with LARGE, no resize); mapped into the kernel while
/// pinned only (vmallocinfo), its state in page_owner; BLOCK_DATA while unpinned; each page
/// a unit of its own: of eight unpinned pages, the four read afterwards survive while
/// reclaim purges the other four, one page at a time; only the purged pages give SIGBUS; PIN
/// reports the purge and gives zeroes for those pages alone; a whole purge leaves no pages
/// (VM_INFO, page_owner); VM_FREE frees it.
pub fn discardable_areas_page_by_page() -> TestResult {
    const AREA: u32 = sys::MINIMM_VM_DISCARDABLE;
    let dev = open()?;
    let zone = top_zone(&dev)?;
    expect_errno(
        dev.vm_create(PAGE as u64, zone, AREA | sys::MINIMM_VM_LARGE),
        libc::EINVAL,
        "VM_CREATE with DISCARDABLE and LARGE",
    )?;
    reclaim_all()?;
    let listed = discardable_areas()?;
    let a = dev.vm_create(8 * PAGE as u64, zone, AREA).map_err(e)?;
    let len = 8 * PAGE;
    check_eq!(a.pages, 8);
    check_eq!(discardable_areas()?, listed + 1);
    expect_errno(
        dev.vm_resize(a.handle, 16 * PAGE as u64),
        libc::EINVAL,
        "VM_RESIZE of a discardable area",
    )?;
    let info = dev.vm_info(a.handle).map_err(e)?;
    check_eq!((info.flags, info.pages), (AREA, 8));
    check_eq!(info.zone_pages.iter().sum::<u64>(), 8);
    let marker = format!("offset {:#x}\n", a.mmap_offset);
    let owner = debugfs("page_owner").map_err(e)?;
    check!(
        owner.contains(&format!("discardable pinned, file")) && owner.contains(&marker),
        "page_owner shows no pinned discardable area"
    );
    dev.fill(a.handle, 77).map_err(e)?;
    let mut want = vec![0u8; len];
    fill_pattern(77, &mut want);
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    let m = dev.map(a.mmap_offset, len).map_err(e)?;
    check!(
        m.bytes() == want.as_slice(),
        "the mapping shows other bytes"
    );
    let unpinned = vmstat("nr_unpinned")?;
    dev.unpin(a.handle).map_err(e)?;
    check_eq!(vmstat("nr_unpinned")?, unpinned + 8);
    // No kernel mapping while unpinned.
    check_eq!(discardable_areas()?, listed);
    let owner = debugfs("page_owner").map_err(e)?;
    check!(
        owner.contains("discardable unpinned, file") && owner.contains(&marker),
        "page_owner shows no unpinned discardable area"
    );
    check!(
        debugfs("lru").map_err(e)?.contains(&format!(
            "offset {:#x} pages 1",
            a.mmap_offset + 7 * PAGE as u64
        )),
        "debugfs lru does not list the area's last page"
    );
    // Pages 0..4 read after the unpin (each fault maps its own page and sets its bit)
    // survive; reclaim taking one page at a time purges the four others.
    for i in 0..4 {
        // SAFETY: reading a byte of a live mapping of a page not purged.
        let _ = unsafe { core::ptr::read_volatile(m.bytes().as_ptr().add(i * PAGE)) };
    }
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
    let purged = vmstat("nr_purged")?;
    for _ in 0..64 {
        if vmstat("nr_purged")? >= purged + 4 {
            break;
        }
        write_reclaim("1").map_err(|err| format!("reclaim 1: {err}"))?;
    }
    check_eq!(vmstat("nr_purged")?, purged + 4);
    check_eq!(vmstat("nr_unpinned")?, unpinned + 4);
    let info = dev.vm_info(a.handle).map_err(e)?;
    check_eq!(info.zone_pages.iter().sum::<u64>(), 4);
    expect_errno(
        dev.checksum(a.handle),
        libc::ENODATA,
        "BLOCK_DATA of a partly purged area",
    )?;
    for i in 0..8 {
        let got = read_at_in_child(&dev, a.mmap_offset, len, i * PAGE)?;
        let expect = if i < 4 {
            Exit::Code(i32::from(want[i * PAGE]))
        } else {
            Exit::Signal(libc::SIGBUS)
        };
        check!(got == expect, "page {i} after the purge: {got:?}");
    }
    // Pinned: the purge reported once, zeroes in the purged pages only, mapped again.
    check_eq!(dev.pin(a.handle).map_err(e)?, true);
    check_eq!(dev.pin(a.handle).map_err(e)?, false);
    check_eq!(vmstat("nr_unpinned")?, unpinned);
    check_eq!(discardable_areas()?, listed + 1);
    want[4 * PAGE..].fill(0);
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    check!(
        m.bytes() == want.as_slice(),
        "the old mapping shows other bytes"
    );
    // Unpinned, not purged: BLOCK_DATA reaches the pages without the kernel mapping (and
    // counts as an access to every page). Then purged whole: no pages, no page_owner
    // paragraph; pinned again, zeroes.
    dev.unpin(a.handle).map_err(e)?;
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    dev.fill(a.handle, 78).map_err(e)?;
    fill_pattern(78, &mut want);
    check!(
        m.bytes() == want.as_slice(),
        "an unpinned fill shows other bytes"
    );
    // Every page was accessed: the first passes give them their second chance (one pass
    // down the priorities scans 15 pages of 8, so a second write is needed for the last).
    for _ in 0..4 {
        reclaim_all()?;
        if vmstat("nr_purged")? >= purged + 12 {
            break;
        }
    }
    check_eq!(vmstat("nr_purged")?, purged + 12);
    check_eq!(
        dev.vm_info(a.handle)
            .map_err(e)?
            .zone_pages
            .iter()
            .sum::<u64>(),
        0
    );
    check!(
        !debugfs("page_owner").map_err(e)?.contains(&marker),
        "page_owner lists a purged area"
    );
    let child = read_at_in_child(&dev, a.mmap_offset, len, 0)?;
    check!(
        child == Exit::Signal(libc::SIGBUS),
        "reading a purged area: {child:?}"
    );
    check_eq!(dev.pin(a.handle).map_err(e)?, true);
    check_eq!(
        dev.checksum(a.handle).map_err(e)?,
        checksum(&vec![0u8; len])
    );
    drop(m);
    dev.vm_free(a.handle).map_err(e)?;
    // A block's handle is not an area's, for VM_FREE.
    let b = dev.alloc(0, zone, DISCARDABLE).map_err(e)?;
    expect_errno(dev.vm_free(b.handle), libc::EINVAL, "VM_FREE of a block")?;
    dev.free(b.handle).map_err(e)?;
    check_eq!(discardable_areas()?, listed);
    validate_ok()?;
    pass()
}
