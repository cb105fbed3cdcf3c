// SPDX-License-Identifier: GPL-2.0

//! Page frame reclaim (issue 13) as built so far: debugfs `reclaim`, which gives back, in
//! order, the per-CPU lists, the slab caches' cached objects and empty slabs, and held blocks
//! whose pins dropped.

use minimm_uapi::{fill_pattern, Device};

use crate::{
    common::{e, open, stats, vmstat, CpuPin, Pipe, DEBUGFS, DMA, DMA32, NORMAL},
    ktap::{expect_errno, pass, TestResult},
};

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
    // More than every source has: all of them give what they have, then EAGAIN.
    expect_errno(
        write_reclaim("1000000000"),
        libc::EAGAIN,
        "reclaim 1000000000",
    )?;
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
