// SPDX-License-Identifier: GPL-2.0

//! Selftests of block mappings under what user space may do to them: races of FREE with
//! mmap, FREE, close and BLOCK_DATA; madvise; mremap; and reads of the mapping from outside
//! (/proc/PID/mem, process_vm_readv). Every test ends with the pool's pages back, no block
//! held and the allocator's invariants intact.

use std::{ffi::CString, io, os::unix::fs::FileExt, sync::Barrier, thread, time::Duration};

use minimm_uapi::{checksum, fill_pattern, page_size, sys, Device};

use crate::{
    common::{
        e, free_pages, in_child, is_mapped, open, validate_ok, vmstat, Area, Child, Exit, Pipe,
        NORMAL,
    },
    ktap::{expect_errno, pass, TestResult},
};

/// The pool as a test found it: every page back and nothing held when the test is done.
struct Baseline {
    watch: Device,
    free: [u64; 3],
    held: u64,
}

impl Baseline {
    fn take() -> Result<Self, String> {
        let watch = open()?;
        let free = free_pages(&watch)?;
        Ok(Self {
            watch,
            free,
            held: vmstat("nr_held_pages")?,
        })
    }

    fn check(&self) -> Result<(), String> {
        check_eq!(free_pages(&self.watch)?, self.free);
        check_eq!(vmstat("nr_held_pages")?, self.held);
        validate_ok()
    }
}

fn rw_shared(dev: &Device, offset: u64, len: usize) -> io::Result<Area> {
    Area::map(
        dev.fd(),
        offset,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )
}

/// A block of 2^`order` pages filled by the kernel with the pattern of `seed`, the bytes it
/// should hold, and a read-write shared mapping of it that already shows them.
fn filled_mapping(
    dev: &Device,
    order: u32,
    seed: u64,
) -> Result<(sys::minimm_alloc, Vec<u8>, Area), String> {
    let a = dev.alloc(order, NORMAL, 0).map_err(e)?;
    dev.fill(a.handle, seed).map_err(e)?;
    let mut want = vec![0u8; page_size() << order];
    fill_pattern(seed, &mut want);
    let m = rw_shared(dev, a.mmap_offset, want.len()).map_err(e)?;
    check!(m.bytes() == &want[..], "mapping differs from the block");
    Ok((a, want, m))
}

fn madvise(addr: usize, len: usize, advice: i32) -> io::Result<()> {
    // SAFETY: madvise only changes how the kernel treats the range; the callers pass their
    // own mappings and do not read a zapped range except where the test expects a fault.
    if unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `want.len()` bytes at `addr` with volatile loads; whether they equal `want`.
/// Fork-safe: no allocation.
fn reads_as(addr: usize, want: &[u8]) -> bool {
    // SAFETY: the callers pass an address that is mapped and readable for `want.len()` bytes,
    // or one where the test expects the load to fault.
    want.iter()
        .enumerate()
        .all(|(i, &w)| unsafe { std::ptr::read_volatile((addr + i) as *const u8) } == w)
}

/// FREE and mmap of the same handle at once: the mmap fails with EINVAL or succeeds with a
/// mapping that stays valid (and its pages out of the pool) until munmap.
pub fn free_races_mmap() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let len = 4 * page;
    let barrier = Barrier::new(2);
    let (mut mapped, mut refused) = (0, 0);
    for i in 0..100u64 {
        let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
        let (freed, map) = thread::scope(|s| {
            let t = s.spawn(|| {
                barrier.wait();
                // A delay that varies, so that FREE lands before, during and after the mmap.
                for _ in 0..(i % 10) * 20_000 {
                    std::hint::spin_loop();
                }
                dev.free(a.handle)
            });
            barrier.wait();
            let map = rw_shared(&dev, a.mmap_offset, len);
            (t.join(), map)
        });
        freed
            .map_err(|_| "free thread panicked")?
            .map_err(|err| format!("iteration {i}: FREE: {err}"))?;
        match map {
            Ok(m) => {
                mapped += 1;
                check!(
                    m.bytes().iter().all(|&b| b == 0),
                    "iteration {i}: mapping not zero"
                );
                let mut want = vec![0u8; len];
                fill_pattern(i, &mut want);
                // SAFETY: `m` maps `len` writable bytes.
                unsafe { std::ptr::copy_nonoverlapping(want.as_ptr(), m.addr as *mut u8, len) };
                // A block allocated now must not be ours: filling it leaves our data alone.
                let b = dev.alloc(2, NORMAL, 0).map_err(e)?;
                dev.fill(b.handle, !i).map_err(e)?;
                check!(m.bytes() == &want[..], "iteration {i}: mapped block reused");
                dev.free(b.handle).map_err(e)?;
            }
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => refused += 1,
            Err(err) => return Err(format!("iteration {i}: mmap: {err}")),
        }
    }
    println!("# free_races_mmap: {mapped} mapped, {refused} refused");
    drop(dev);
    base.check()?;
    pass()
}

/// Two threads free one handle: exactly one succeeds, the other gets EINVAL.
pub fn free_races_free() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let barrier = Barrier::new(2);
    for i in 0..200 {
        let a = dev.alloc(i % 3, NORMAL, 0).map_err(e)?;
        let free = || {
            barrier.wait();
            dev.free(a.handle)
        };
        let (x, y) = thread::scope(|s| {
            let t = s.spawn(free);
            let y = free();
            (t.join(), y)
        });
        let x = x.map_err(|_| "free thread panicked")?;
        let einval = |r: &io::Result<()>| {
            r.as_ref()
                .is_err_and(|err| err.raw_os_error() == Some(libc::EINVAL))
        };
        check!(
            (x.is_ok() && einval(&y)) || (einval(&x) && y.is_ok()),
            "iteration {i}: {x:?} and {y:?}"
        );
    }
    drop(dev);
    base.check()?;
    pass()
}

/// Closing a descriptor while an ioctl runs on a dup of it: the ioctl completes normally,
/// and the file lives on until its last descriptor goes.
pub fn close_races_ioctl() -> TestResult {
    let base = Baseline::take()?;
    let barrier = Barrier::new(2);
    for i in 0..10u64 {
        let dev = open()?;
        let a = dev.alloc(10, NORMAL, 0).map_err(e)?;
        dev.fill(a.handle, i).map_err(e)?;
        let want = dev.checksum(a.handle).map_err(e)?;
        let dup = dev.try_clone().map_err(e)?;
        let sums = thread::scope(|s| {
            let t = s.spawn(|| {
                barrier.wait();
                (0..3).map(|_| dup.checksum(a.handle)).collect::<Vec<_>>()
            });
            barrier.wait();
            drop(dev);
            t.join()
        })
        .map_err(|_| "ioctl thread panicked")?;
        for sum in sums {
            check_eq!(sum.map_err(e)?, want);
        }
        check_eq!(dup.checksum(a.handle).map_err(e)?, want);
    }
    base.check()?;
    pass()
}

/// FREE while another thread checksums or fills the block: each BLOCK_DATA call returns
/// success or EINVAL, nothing else, and the pool is whole afterwards.
pub fn free_races_block_data() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let barrier = Barrier::new(2);
    let mut served = 0;
    for i in 0..10u64 {
        let a = dev.alloc(10, NORMAL, 0).map_err(e)?;
        let results = thread::scope(|s| {
            let t = s.spawn(|| {
                barrier.wait();
                let mut out = Vec::new();
                for k in 0.. {
                    let r = if k % 2 == 0 {
                        dev.checksum(a.handle).map(|_| ())
                    } else {
                        dev.fill(a.handle, k)
                    };
                    let done = r.is_err();
                    out.push(r);
                    if done {
                        break;
                    }
                }
                out
            });
            barrier.wait();
            thread::sleep(Duration::from_millis(5 * i));
            let freed = dev.free(a.handle);
            (freed, t.join())
        });
        results
            .0
            .map_err(|err| format!("iteration {i}: FREE: {err}"))?;
        let calls = results.1.map_err(|_| "BLOCK_DATA thread panicked")?;
        for r in &calls {
            if let Err(err) = r {
                check!(
                    err.raw_os_error() == Some(libc::EINVAL),
                    "iteration {i}: BLOCK_DATA: {err}"
                );
            }
        }
        served += calls.iter().filter(|r| r.is_ok()).count();
    }
    check!(served > 0, "no BLOCK_DATA call ran before a FREE");
    drop(dev);
    base.check()?;
    pass()
}

/// MADV_DONTNEED zaps a block mapping's pages; the next access faults the same pages in
/// again: the data written before is there, and writes after it reach the block. The block
/// keeps its pages throughout.
pub fn madv_dontneed_refaults() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let len = 4 * page;
    let (a, mut want, m) = filled_mapping(&dev, 2, 21)?;
    let z = a.zone_out as usize;
    madvise(m.addr, len, libc::MADV_DONTNEED).map_err(|err| format!("MADV_DONTNEED: {err}"))?;
    check!(
        !resident(m.addr, len)?.iter().any(|&r| r),
        "pages still mapped after DONTNEED"
    );
    check!(
        m.bytes() == &want[..],
        "the refaulted mapping differs from the block"
    );
    // A write after the refault reaches the block.
    // SAFETY: `m` maps `len` writable bytes.
    unsafe { std::ptr::write_volatile((m.addr + page + 5) as *mut u8, !want[page + 5]) };
    want[page + 5] = !want[page + 5];
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    check_eq!(free_pages(&dev)?[z], base.free[z] - 4);
    drop(m);
    dev.free(a.handle).map_err(e)?;
    drop(dev);
    base.check()?;
    pass()
}

/// Which pages of `[addr, addr + len)` are mapped, by mincore(2).
fn resident(addr: usize, len: usize) -> Result<Vec<bool>, String> {
    let mut vec = vec![0u8; len.div_ceil(page_size())];
    // SAFETY: `vec` has one byte per page of the range.
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    check!(r == 0, "mincore: {}", io::Error::last_os_error());
    Ok(vec.iter().map(|&v| v & 1 != 0).collect())
}

/// Pages come in at the first touch, all of the mapping at once: nothing is mapped after
/// mmap, everything after one byte is read.
pub fn first_touch_maps_the_whole_block() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let len = 16 * page_size();
    let a = dev.alloc(4, NORMAL, 0).map_err(e)?;
    let m = rw_shared(&dev, a.mmap_offset, len).map_err(e)?;
    check!(
        !resident(m.addr, len)?.iter().any(|&r| r),
        "pages mapped before any touch"
    );
    check!(
        reads_as(m.addr + 7 * page_size(), &[0]),
        "a fresh block reads zero"
    );
    let r = resident(m.addr, len)?;
    check!(r.iter().all(|&r| r), "after one touch: {r:?}");
    drop(m);
    dev.free(a.handle).map_err(e)?;
    drop(dev);
    base.check()?;
    pass()
}

/// The first fault of a mapping that was split, moved or whose buffer was freed before any
/// touch maps the right pages: the fault handler finds a piece's place in its buffer from the
/// piece's offset.
pub fn faults_in_split_moved_and_freed_mappings() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let len = 4 * page;
    let block = |seed: u64| -> Result<(sys::minimm_alloc, Vec<u8>), String> {
        let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
        dev.fill(a.handle, seed).map_err(e)?;
        let mut want = vec![0u8; len];
        fill_pattern(seed, &mut want);
        Ok((a, want))
    };
    // Page 0 unmapped before any touch: the piece left starts at page 1 of the buffer.
    let (a, want) = block(61)?;
    let mut m = rw_shared(&dev, a.mmap_offset, len).map_err(e)?;
    // SAFETY: unmapping the first page of our own mapping.
    check_eq!(
        unsafe { libc::munmap(m.addr as *mut libc::c_void, page) },
        0
    );
    m.addr += page;
    m.len -= page;
    check!(
        reads_as(m.addr + page, &want[2 * page..2 * page + 8]),
        "split: page 2 differs"
    );
    check!(m.bytes() == &want[page..], "split: pages 1-3 differ");
    drop(m);
    dev.free(a.handle).map_err(e)?;
    // Moved before any touch: the moved mapping keeps its offset.
    let (a, want) = block(62)?;
    let mut m = rw_shared(&dev, a.mmap_offset, len).map_err(e)?;
    let target = Area::reserve(len).map_err(e)?;
    m.move_onto(target)
        .map_err(|err| format!("mremap: {err}"))?;
    check!(m.bytes() == &want[..], "moved: the data differs");
    drop(m);
    dev.free(a.handle).map_err(e)?;
    // Freed while mapped, then DONTNEED: the refault still finds the buffer's pages.
    let (a, want) = block(63)?;
    let m = rw_shared(&dev, a.mmap_offset, len).map_err(e)?;
    dev.free(a.handle).map_err(e)?;
    madvise(m.addr, len, libc::MADV_DONTNEED).map_err(|err| format!("MADV_DONTNEED: {err}"))?;
    check!(m.bytes() == &want[..], "freed: the data differs");
    drop(m);
    drop(dev);
    base.check()?;
    pass()
}

/// mmap offsets name one buffer module-wide: two files' buffers never share a page of offset
/// space, and a file cannot map another file's buffer by its offset (EINVAL), nor its own at
/// an offset inside the buffer.
pub fn offsets_are_unique_module_wide() -> TestResult {
    let base = Baseline::take()?;
    let (x, y) = (open()?, open()?);
    let mut ranges = Vec::new();
    let mut blocks = Vec::new();
    for (i, dev) in [&x, &y, &x, &y].into_iter().enumerate() {
        let order = i as u32 % 3;
        let a = dev.alloc(order, NORMAL, 0).map_err(e)?;
        let len = (page_size() as u64) << order;
        check!(
            a.mmap_offset != 0 && a.mmap_offset % page_size() as u64 == 0,
            "offset {:#x}",
            a.mmap_offset
        );
        ranges.push((a.mmap_offset, a.mmap_offset + len));
        blocks.push((dev, a, len as usize));
    }
    for (i, r) in ranges.iter().enumerate() {
        for q in ranges.iter().skip(i + 1) {
            check!(r.1 <= q.0 || q.1 <= r.0, "ranges {r:x?} and {q:x?} overlap");
        }
    }
    // y cannot map x's first buffer; x can.
    let (_, xa, xlen) = &blocks[0];
    expect_errno(
        rw_shared(&y, xa.mmap_offset, *xlen),
        libc::EINVAL,
        "mmap of another file's buffer",
    )?;
    drop(rw_shared(&x, xa.mmap_offset, *xlen).map_err(e)?);
    // An offset inside a buffer (not its start) names nothing.
    let (_, xb, xblen) = &blocks[2];
    expect_errno(
        rw_shared(&x, xb.mmap_offset + page_size() as u64, xblen - page_size()),
        libc::EINVAL,
        "mmap inside a buffer",
    )?;
    for (dev, a, _) in &blocks {
        dev.free(a.handle).map_err(e)?;
    }
    drop((x, y));
    base.check()?;
    pass()
}

/// MADV_DONTFORK is accepted (and fork does not inherit the mapping either way);
/// MADV_WIPEONFORK is refused with EINVAL (it is for private anonymous memory only).
pub fn madv_fork_flags() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let len = page_size();
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    let m = rw_shared(&dev, a.mmap_offset, len).map_err(e)?;
    madvise(m.addr, len, libc::MADV_DONTFORK).map_err(|err| format!("MADV_DONTFORK: {err}"))?;
    let addr = m.addr;
    let child = in_child(|| i32::from(reads_as(addr, &[0])))?;
    check_eq!(child, Exit::Signal(libc::SIGSEGV));
    expect_errno(
        madvise(m.addr, len, libc::MADV_WIPEONFORK),
        libc::EINVAL,
        "MADV_WIPEONFORK",
    )?;
    check!(is_mapped(m.addr, len), "mapping gone after madvise");
    drop(m);
    drop(dev);
    base.check()?;
    pass()
}

/// MADV_DOFORK cannot make a child inherit a block mapping: Linux 7.3 refuses it with EINVAL
/// on any VM_SPECIAL mapping, and minimm's are VM_DONTEXPAND and VM_MIXEDMAP. The mapping
/// keeps VM_DONTCOPY: a child forked afterwards does not see it, even while the parent frees
/// the block and closes the device, and the pool gets every page back.
pub fn madv_dofork_is_refused() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let len = 4 * page;
    let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
    let z = a.zone_out as usize;
    let m = rw_shared(&dev, a.mmap_offset, len).map_err(e)?;
    let mut want = vec![0u8; len];
    fill_pattern(31, &mut want);
    // SAFETY: `m` maps `len` writable bytes.
    unsafe { std::ptr::copy_nonoverlapping(want.as_ptr(), m.addr as *mut u8, len) };
    expect_errno(
        madvise(m.addr, len, libc::MADV_DOFORK),
        libc::EINVAL,
        "MADV_DOFORK",
    )?;
    let go = Pipe::new()?;
    let (addr, want_ref, r) = (m.addr, &want[..], go.r);
    let child = Child::spawn(|| {
        let mut byte = 0u8;
        // SAFETY: reading one byte into `byte`.
        if unsafe { libc::read(r, (&raw mut byte).cast(), 1) } != 1 {
            return 10;
        }
        if reads_as(addr, want_ref) {
            0
        } else {
            11
        }
    })?;
    // The parent frees the block, unmaps it and closes the device (the child still has the
    // descriptor open, but no mapping): the block goes back at once.
    dev.free(a.handle).map_err(e)?;
    check_eq!(free_pages(&base.watch)?[z], base.free[z] - 4);
    drop(m);
    drop(dev);
    check_eq!(free_pages(&base.watch)?[z], base.free[z]);
    // SAFETY: writing one byte from a valid buffer.
    check_eq!(unsafe { libc::write(go.w, [1u8].as_ptr().cast(), 1) }, 1);
    let exit = child.wait()?;
    check!(
        exit == Exit::Signal(libc::SIGSEGV),
        "child {exit:?} (10: no go, 0: inherited the mapping, 11: inherited other data)"
    );
    base.check()?;
    pass()
}

/// mremap of a block mapping: a move keeps the data and the block; a shrink keeps the first
/// part mapped and unmaps the rest; growing fails (VM_DONTEXPAND: EFAULT). After the last
/// munmap and FREE the pages are back.
pub fn mremap_move_shrink_grow() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let len = 4 * page;
    let (a, mut want, mut m) = filled_mapping(&dev, 2, 41)?;
    let z = a.zone_out as usize;
    let target = Area::reserve(len).map_err(e)?;
    let old = m
        .move_onto(target)
        .map_err(|err| format!("mremap move: {err}"))?;
    check!(!is_mapped(old, page), "old address still mapped");
    check!(m.bytes() == &want[..], "moved mapping lost the data");
    want[0] ^= 0xff;
    // SAFETY: `m` maps `len` writable bytes.
    unsafe { std::ptr::write_volatile(m.addr as *mut u8, want[0]) };
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    // Shrink to two pages: the first two stay, the last two go.
    // SAFETY: shrinking our own mapping in place.
    let p = unsafe { libc::mremap(m.addr as *mut libc::c_void, len, 2 * page, 0) };
    check!(
        p as usize == m.addr,
        "mremap shrink: {}",
        io::Error::last_os_error()
    );
    check!(is_mapped(m.addr, 2 * page), "first part unmapped");
    for k in 2..4 {
        check!(!is_mapped(m.addr + k * page, page), "page {k} still mapped");
    }
    m.len = 2 * page;
    check!(
        m.bytes() == &want[..2 * page],
        "shrunk mapping lost the data"
    );
    // Growing, in place or moving, is refused.
    for flags in [0, libc::MREMAP_MAYMOVE] {
        // SAFETY: asking to grow our own mapping; refused, nothing changes.
        let p = unsafe { libc::mremap(m.addr as *mut libc::c_void, 2 * page, len, flags) };
        check!(p == libc::MAP_FAILED, "grew to {p:?} (flags {flags})");
        expect_errno::<()>(
            Err(io::Error::last_os_error()),
            libc::EFAULT,
            &format!("grow, flags {flags}"),
        )?;
    }
    check!(m.bytes() == &want[..2 * page], "data lost by the refusals");
    dev.free(a.handle).map_err(e)?;
    check_eq!(free_pages(&dev)?[z], base.free[z] - 4);
    drop(m);
    drop(dev);
    base.check()?;
    pass()
}

/// /proc/self/mem, a child's read of /proc/PARENT/mem, and process_vm_readv (from this
/// process and from a child) read a mapping's bytes: the block's data.
pub fn read_from_outside() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let len = 2 * page;
    let (a, want, m) = filled_mapping(&dev, 1, 51)?;
    let mut buf = vec![0u8; len];
    let mem = std::fs::File::open("/proc/self/mem").map_err(e)?;
    mem.read_exact_at(&mut buf, m.addr as u64)
        .map_err(|err| format!("pread /proc/self/mem: {err}"))?;
    check!(buf == want, "/proc/self/mem differs");
    let vm_read = |pid: libc::pid_t, buf: &mut [u8]| -> isize {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: m.addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` is our writable buffer; the kernel checks `remote`.
        unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) }
    };
    buf.fill(0);
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    check_eq!(vm_read(me, &mut buf), len as isize);
    check!(buf == want, "process_vm_readv differs");
    // From a child, which does not map the block itself.
    let path = CString::new(format!("/proc/{me}/mem")).map_err(|err| err.to_string())?;
    let (addr, want_ref) = (m.addr, &want[..]);
    let child = in_child(|| {
        // SAFETY: `path` is a NUL-terminated string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return 10;
        }
        buf.fill(0);
        // SAFETY: reading into the child's copy of `buf`, valid for `len` bytes.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), len, addr as libc::off_t) };
        if n != len as isize {
            return 11;
        }
        if buf != want_ref {
            return 12;
        }
        buf.fill(0);
        if vm_read(me, &mut buf) != len as isize {
            return 13;
        }
        if buf != want_ref {
            return 14;
        }
        0
    })?;
    check!(
        child == Exit::Code(0),
        "child {child:?} (10: open, 11: pread, 12: data, 13: process_vm_readv, 14: its data)"
    );
    drop(m);
    dev.free(a.handle).map_err(e)?;
    drop(dev);
    base.check()?;
    pass()
}
