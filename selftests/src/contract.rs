// SPDX-License-Identifier: GPL-2.0

//! Selftests of the contracts of issue 8: ioctl dispatch by type, number and direction only;
//! output structs that take any tail; open modes; failed commands that change nothing;
//! per-CPU lists drained before ENOMEM; held blocks that come back; module parameters checked
//! at load.

use std::{io, mem::size_of};

use minimm_uapi::{checksum, fill_pattern, page_size, sys, Device};

use crate::{
    common::{
        e, ensure_loaded, free_pages, in_child, info_value, open, reload, stats, validate_ok,
        vmstat, vmstat_all, within, write_watermarks, Area, CpuPin, Exit, Pipe, DEBUGFS, DMA,
        DMA32, NORMAL,
    },
    ktap::{expect_errno, pass, skip, TestResult},
};

/// An ioctl number: direction (0 none, 1 write, 2 read, 3 both), minimm's type, `nr`, `size`.
fn ioc(dir: u32, nr: u32, size: u32) -> u32 {
    (dir << 30) | (size << 16) | (sys::MINIMM_IOC_MAGIC << 8) | nr
}

/// The module matches type, number and direction only; the struct's own size field decides
/// how much it reads. A direction other than the command's is ENOTTY.
pub fn ioctl_ignores_size_bits() -> TestResult {
    #[repr(C)]
    struct Longer {
        a: sys::minimm_alloc,
        tail: [u8; 8],
    }
    let dev = open()?;
    let alloc = |size| sys::minimm_alloc {
        size,
        zone: NORMAL,
        ..Default::default()
    };
    // ALLOC encoded with 48 bytes, a 48-byte struct whose tail is zero.
    let mut n = Longer {
        a: alloc(48),
        tail: [0; 8],
    };
    dev.ioctl(ioc(3, 1, 48), &mut n)
        .map_err(|err| format!("_IOWR(0xB9, 1, 48): {err}"))?;
    check_eq!(n.a.size, sys::MINIMM_ALLOC_SIZE_VER0);
    check!(n.a.handle != 0, "no handle");
    dev.free(n.a.handle).map_err(e)?;
    // A non-zero byte in the tail is E2BIG, whatever the command number says.
    n = Longer {
        a: alloc(48),
        tail: [0, 0, 0, 0, 0, 0, 0, 1],
    };
    expect_errno(
        dev.ioctl(ioc(3, 1, 48), &mut n),
        libc::E2BIG,
        "non-zero tail",
    )?;
    // A smaller size in the number, the full struct in memory: the size field decides.
    let mut a = alloc(sys::MINIMM_ALLOC_SIZE_VER0);
    dev.ioctl(ioc(3, 1, 8), &mut a)
        .map_err(|err| format!("_IOWR(0xB9, 1, 8): {err}"))?;
    dev.free(a.handle).map_err(e)?;
    let mut info = sys::minimm_info {
        size: sys::MINIMM_INFO_SIZE_VER0,
        ..Default::default()
    };
    dev.ioctl(ioc(3, 0, 100), &mut info)
        .map_err(|err| format!("_IOWR(0xB9, 0, 100): {err}"))?;
    check_eq!(info.abi_version, sys::MINIMM_ABI_VERSION);
    // Another direction is another command.
    let size = sys::MINIMM_ALLOC_SIZE_VER0;
    for (dir, what) in [(2, "_IOR"), (1, "_IOW"), (0, "_IO")] {
        let mut a = alloc(size);
        expect_errno(
            dev.ioctl(ioc(dir, 1, size), &mut a),
            libc::ENOTTY,
            &format!("ALLOC as {what}"),
        )?;
        check_eq!(a.handle, 0);
    }
    let mut f = sys::minimm_free {
        size: sys::MINIMM_FREE_SIZE_VER0,
        ..Default::default()
    };
    expect_errno(
        dev.ioctl(ioc(3, 2, sys::MINIMM_FREE_SIZE_VER0), &mut f),
        libc::ENOTTY,
        "FREE as _IOWR",
    )?;
    pass()
}

/// GET_INFO and ZONE_STATS are output structs: a larger caller struct may hold anything past
/// the known fields (no E2BIG); size comes back as the module's, the bytes past it untouched.
/// Above a page, every command is E2BIG, GET_INFO too.
pub fn output_structs_take_any_tail() -> TestResult {
    let dev = open()?;
    let page = page_size();
    let mut buf = vec![0x5au8; 2 * page];
    let set_size = |buf: &mut [u8], size: u32| buf[..4].copy_from_slice(&size.to_ne_bytes());
    // GET_INFO with a page-sized struct of garbage.
    buf[..sys::MINIMM_INFO_SIZE_VER0 as usize].fill(0);
    set_size(&mut buf, page as u32);
    // SAFETY: `buf` holds two pages, more than the size announced.
    unsafe { dev.ioctl_raw(sys::MINIMM_IOC_GET_INFO, buf.as_mut_ptr() as usize) }
        .map_err(|err| format!("GET_INFO, garbage tail: {err}"))?;
    let known = sys::MINIMM_INFO_SIZE_VER0 as usize;
    check_eq!(buf[..4], sys::MINIMM_INFO_SIZE_VER0.to_ne_bytes());
    check!(
        buf[known..].iter().all(|&b| b == 0x5a),
        "GET_INFO wrote past its struct"
    );
    // Above a page: E2BIG, and untouched.
    buf.fill(0);
    set_size(&mut buf, page as u32 + 1);
    // SAFETY: as above.
    let r = unsafe { dev.ioctl_raw(sys::MINIMM_IOC_GET_INFO, buf.as_mut_ptr() as usize) };
    expect_errno(r, libc::E2BIG, "GET_INFO size above a page")?;
    check!(buf[4..].iter().all(|&b| b == 0), "refused GET_INFO wrote");
    // SAFETY: as above.
    let r = unsafe { dev.ioctl_raw(sys::MINIMM_IOC_ZONE_STATS, buf.as_mut_ptr() as usize) };
    expect_errno(r, libc::E2BIG, "ZONE_STATS size above a page")?;
    // ZONE_STATS with a tail of garbage.
    #[repr(C)]
    struct Longer {
        s: sys::minimm_zone_stats,
        tail: [u8; 64],
    }
    let mut n = Longer {
        s: sys::minimm_zone_stats {
            size: size_of::<Longer>() as u32,
            zone: NORMAL,
            ..Default::default()
        },
        tail: [0xa5; 64],
    };
    dev.ioctl(sys::MINIMM_IOC_ZONE_STATS, &mut n)
        .map_err(|err| format!("ZONE_STATS, garbage tail: {err}"))?;
    check_eq!(n.s.size, sys::MINIMM_ZONE_STATS_SIZE_VER0);
    check_eq!(n.s.managed_pages, stats(&dev, NORMAL)?.managed_pages);
    check_eq!(n.tail, [0xa5; 64]);
    pass()
}

/// A file opened O_RDONLY may only look (GET_INFO, ZONE_STATS): ALLOC, FREE and BLOCK_DATA
/// are EBADF. O_WRONLY and O_RDWR may do everything. mmap needs MAP_SHARED; a read-only
/// shared mapping works, and a write through it is SIGSEGV.
pub fn open_modes() -> TestResult {
    for (mode, name) in [
        (libc::O_RDONLY, "O_RDONLY"),
        (libc::O_WRONLY, "O_WRONLY"),
        (libc::O_RDWR, "O_RDWR"),
    ] {
        let dev = Device::open_mode(mode).map_err(|err| format!("open {name}: {err}"))?;
        let ctx = |what: &str| format!("{name}: {what}");
        dev.info()
            .map_err(|err| format!("{}: {err}", ctx("GET_INFO")))?;
        dev.zone_stats(NORMAL)
            .map_err(|err| format!("{}: {err}", ctx("ZONE_STATS")))?;
        if mode == libc::O_RDONLY {
            expect_errno(dev.alloc(0, NORMAL, 0), libc::EBADF, &ctx("ALLOC"))?;
            // Handle 1 would be the file's first block: the mode is checked, not the handle.
            expect_errno(dev.fill(1, 0), libc::EBADF, &ctx("BLOCK_DATA fill"))?;
            expect_errno(dev.checksum(1), libc::EBADF, &ctx("BLOCK_DATA checksum"))?;
            expect_errno(dev.free(1), libc::EBADF, &ctx("FREE"))?;
        } else {
            let a = dev
                .alloc(0, NORMAL, 0)
                .map_err(|err| format!("{}: {err}", ctx("ALLOC")))?;
            dev.fill(a.handle, 3)
                .map_err(|err| format!("{}: {err}", ctx("BLOCK_DATA fill")))?;
            let mut want = vec![0u8; page_size()];
            fill_pattern(3, &mut want);
            check_eq!(
                dev.checksum(a.handle)
                    .map_err(|err| format!("{}: {err}", ctx("BLOCK_DATA checksum")))?,
                checksum(&want)
            );
            dev.free(a.handle)
                .map_err(|err| format!("{}: {err}", ctx("FREE")))?;
        }
    }
    let dev = open()?;
    let len = page_size();
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    dev.fill(a.handle, 4).map_err(e)?;
    let mut want = vec![0u8; len];
    fill_pattern(4, &mut want);
    for prot in [libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE] {
        expect_errno(
            Area::map(dev.fd(), a.mmap_offset, len, prot, libc::MAP_PRIVATE).map(|_| ()),
            libc::EINVAL,
            &format!("MAP_PRIVATE, prot {prot}"),
        )?;
    }
    let ro = Area::map(
        dev.fd(),
        a.mmap_offset,
        len,
        libc::PROT_READ,
        libc::MAP_SHARED,
    )
    .map_err(|err| format!("PROT_READ MAP_SHARED: {err}"))?;
    check!(ro.bytes() == &want[..], "read-only mapping differs");
    // The write, in a child with its own read-only mapping (mappings are not inherited).
    let (fd, offset) = (dev.fd(), a.mmap_offset);
    let child = in_child(|| {
        let Ok(c) = Area::map(fd, offset, len, libc::PROT_READ, libc::MAP_SHARED) else {
            return 10;
        };
        // SAFETY: a write to a read-only mapping: the test expects SIGSEGV here.
        unsafe { std::ptr::write_volatile(c.addr as *mut u8, 1) };
        0
    })?;
    check_eq!(child, Exit::Signal(libc::SIGSEGV));
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    pass()
}

/// An anonymous page holding `value` at its start, then made `prot`.
fn struct_in_page<T>(value: T, prot: i32) -> Result<Area, String> {
    let page = page_size();
    let area = Area::map(
        -1,
        0,
        page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .map_err(e)?;
    // SAFETY: the page is writable and page-aligned, room for any argument struct.
    unsafe { (area.addr as *mut T).write(value) };
    // SAFETY: changing the protection of our own page.
    let r = unsafe { libc::mprotect(area.addr as *mut libc::c_void, page, prot) };
    check!(r == 0, "mprotect: {}", io::Error::last_os_error());
    Ok(area)
}

/// A command that fails changes nothing: each command with its struct in read-only memory is
/// EFAULT (the module writes the struct back before acting; FREE, which writes nothing back,
/// only from unreadable memory), and afterwards every
/// vmstat line, the zones' free pages, the block's data and the handle sequence are exactly
/// as before.
pub fn failed_commands_change_nothing() -> TestResult {
    let dev = open()?;
    let probe = dev.alloc(0, NORMAL, 0).map_err(e)?.handle;
    dev.free(probe).map_err(e)?;
    let blk = dev.alloc(2, NORMAL, 0).map_err(e)?;
    check_eq!(blk.handle, probe + 1);
    dev.fill(blk.handle, 5).map_err(e)?;
    let sum = dev.checksum(blk.handle).map_err(e)?;
    let vm = vmstat_all()?;
    let free = free_pages(&dev)?;
    let ro = libc::PROT_READ;
    let data = |op, seed| sys::minimm_block_data {
        size: size_of::<sys::minimm_block_data>() as u32,
        op,
        handle: blk.handle,
        seed,
        ..Default::default()
    };
    let alloc = |order| sys::minimm_alloc {
        size: size_of::<sys::minimm_alloc>() as u32,
        order,
        zone: NORMAL,
        ..Default::default()
    };
    let cases: Vec<(&str, u32, Area)> = vec![
        (
            "GET_INFO",
            sys::MINIMM_IOC_GET_INFO,
            struct_in_page(
                sys::minimm_info {
                    size: size_of::<sys::minimm_info>() as u32,
                    ..Default::default()
                },
                ro,
            )?,
        ),
        (
            "ALLOC order 0",
            sys::MINIMM_IOC_ALLOC,
            struct_in_page(alloc(0), ro)?,
        ),
        (
            "ALLOC order 3",
            sys::MINIMM_IOC_ALLOC,
            struct_in_page(alloc(3), ro)?,
        ),
        (
            "BLOCK_DATA checksum",
            sys::MINIMM_IOC_BLOCK_DATA,
            struct_in_page(data(sys::MINIMM_BLOCK_CHECKSUM, 0), ro)?,
        ),
        (
            "BLOCK_DATA fill",
            sys::MINIMM_IOC_BLOCK_DATA,
            struct_in_page(data(sys::MINIMM_BLOCK_FILL, 6), ro)?,
        ),
        (
            "ZONE_STATS",
            sys::MINIMM_IOC_ZONE_STATS,
            struct_in_page(
                sys::minimm_zone_stats {
                    size: size_of::<sys::minimm_zone_stats>() as u32,
                    zone: NORMAL,
                    ..Default::default()
                },
                ro,
            )?,
        ),
        (
            "FREE from PROT_NONE",
            sys::MINIMM_IOC_FREE,
            struct_in_page(
                sys::minimm_free {
                    size: size_of::<sys::minimm_free>() as u32,
                    handle: blk.handle,
                    ..Default::default()
                },
                libc::PROT_NONE,
            )?,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, cmd, area) in &cases {
        // SAFETY: the struct is readable (or deliberately not), never writable: EFAULT.
        if let Err(err) = expect_errno(
            unsafe { dev.ioctl_raw(*cmd, area.addr) },
            libc::EFAULT,
            what,
        ) {
            wrong.push(err);
        }
        let now = match dev.checksum(blk.handle) {
            Ok(now) => now,
            Err(err) => {
                wrong.push(format!("{what}: the block is gone: {err}"));
                break;
            }
        };
        if now != sum {
            wrong.push(format!("{what}: the block changed"));
        }
        let now = vmstat_all()?;
        if now != vm {
            let diff: Vec<String> = now
                .iter()
                .zip(&vm)
                .filter(|(a, b)| a != b)
                .map(|((k, a), (_, b))| format!("{k} {b} -> {a}"))
                .collect();
            wrong.push(format!("{what}: vmstat changed: {}", diff.join(", ")));
        }
    }
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    check_eq!(free_pages(&dev)?, free);
    // The handle sequence went on as if nothing had been asked.
    let next = dev.alloc(0, NORMAL, 0).map_err(e)?;
    check_eq!(next.handle, blk.handle + 1);
    dev.free(next.handle).map_err(e)?;
    // FREE only reads its struct (nothing is written back): read-only memory is fine for it.
    let free_ro = struct_in_page(
        sys::minimm_free {
            size: size_of::<sys::minimm_free>() as u32,
            handle: blk.handle,
            ..Default::default()
        },
        ro,
    )?;
    // SAFETY: the struct is readable.
    let r = unsafe { dev.ioctl_raw(sys::MINIMM_IOC_FREE, free_ro.addr) };
    check!(r.is_ok(), "FREE from read-only memory: {r:?}");
    expect_errno(dev.free(blk.handle).map(|_| 0), libc::EINVAL, "FREE again")?;
    pass()
}

/// Maps `a`, puts its first page into a new pipe with vmsplice, unmaps it and frees the
/// block: the pipe holds the only reference to the block's pages from outside minimm.
fn splice_and_free(dev: &Device, a: &sys::minimm_alloc, pages: usize) -> Result<Pipe, String> {
    let page = page_size();
    let m = Area::map(
        dev.fd(),
        a.mmap_offset,
        pages * page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )
    .map_err(|err| format!("mmap: {err}"))?;
    let pipe = Pipe::new()?;
    let iov = libc::iovec {
        iov_base: m.addr as *mut libc::c_void,
        iov_len: page,
    };
    // SAFETY: `iov` describes our live mapping; the pipe takes references to its page.
    let n = unsafe { libc::vmsplice(pipe.w, &iov, 1, 0) };
    check!(
        n == page as isize,
        "vmsplice: {}",
        io::Error::last_os_error()
    );
    drop(m);
    dev.free(a.handle).map_err(|err| format!("FREE: {err}"))?;
    Ok(pipe)
}

/// A block still referenced from outside when freed (a pipe, through vmsplice) is held; once
/// the pipe is closed it comes back to the pool within seconds (nr_held_pages back down,
/// nr_held_recycled up by its pages). The loop of such order-6 blocks, more than
/// the zones hold together, never runs out of memory.
pub fn held_blocks_come_back() -> TestResult {
    let watch = open()?;
    let before = free_pages(&watch)?;
    let held = vmstat("nr_held_pages")?;
    let recycled = vmstat("nr_held_recycled");
    let dev = open()?;
    let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
    let z = a.zone_out as usize;
    let pipe = splice_and_free(&dev, &a, 4)?;
    check_eq!(vmstat("nr_held_pages")?, held + 4);
    check_eq!(free_pages(&watch)?[z], before[z] - 4);
    drop(pipe);
    let back = within(5, || Ok(vmstat("nr_held_pages")? == held))?;
    check!(
        back,
        "nr_held_pages still {} after 5 s",
        vmstat("nr_held_pages")?
    );
    check_eq!(vmstat("nr_held_recycled")?, recycled? + 4);
    check_eq!(free_pages(&watch)?, before);
    // More blocks than every zone a NORMAL request may fall back to holds together: without
    // recycling, the loop itself would run out of memory.
    let mut managed = 0;
    for zone in [NORMAL, DMA32, DMA] {
        managed += stats(&watch, zone)?.managed_pages;
    }
    let rounds = managed / 64 + 16;
    for i in 0..rounds {
        let a = dev
            .alloc(6, NORMAL, 0)
            .map_err(|err| format!("iteration {i}: ALLOC: {err}"))?;
        drop(splice_and_free(&dev, &a, 64).map_err(|err| format!("iteration {i}: {err}"))?);
    }
    let back = within(5, || Ok(vmstat("nr_held_pages")? == held))?;
    check!(
        back,
        "nr_held_pages {} after the loop and 5 s",
        vmstat("nr_held_pages")?
    );
    check_eq!(free_pages(&watch)?, before);
    validate_ok()?;
    pass()
}

/// With one page in DMA and its watermarks at zero: a page freed on CPU 0 sits on CPU 0's
/// per-CPU list; CPU 1 asking for a DMA page gets it anyway (the allocator drains the
/// per-CPU lists and retries once before ENOMEM).
pub fn pcp_drained_before_enomem() -> TestResult {
    // SAFETY: sysconf has no preconditions.
    if unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } < 2 {
        return skip("needs two CPUs");
    }
    let result = (|| -> Result<Option<String>, String> {
        reload("dma_pages=1")?;
        let dev = open()?;
        if stats(&dev, DMA)?.managed_pages == 0 {
            return Ok(Some("the host gave the DMA zone no page".into()));
        }
        write_watermarks("DMA 0 0 0")?;
        std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(e)?;
        let _pin = CpuPin::new(0)?;
        let a = dev
            .alloc(0, DMA, 0)
            .map_err(|err| format!("CPU 0: {err}"))?;
        check_eq!(a.zone_out, DMA);
        dev.free(a.handle).map_err(e)?;
        check_eq!(stats(&dev, DMA)?.free_pages, 0);
        CpuPin::set(1)?;
        let b = dev
            .alloc(0, DMA, 0)
            .map_err(|err| format!("CPU 1, the page on CPU 0's list: {err}"))?;
        check_eq!(b.zone_out, DMA);
        dev.free(b.handle).map_err(e)?;
        Ok(None)
    })();
    // Whatever happened, the module with its defaults again.
    let restored = reload("").or_else(|_| ensure_loaded().map(|()| String::new()));
    let result = result?;
    restored?;
    match result {
        Some(why) => skip(why),
        None => pass(),
    }
}

/// Module parameters are checked at load: watermark_scale_factor outside 1..=3000,
/// file_quota_pages=0 and a min_free_kbytes beyond any pool fail insmod with EINVAL; the
/// bounds themselves load. After each, the module loads again with its defaults.
pub fn parameters_checked_at_load() -> TestResult {
    let mut wrong = Vec::new();
    let cases = [
        ("watermark_scale_factor=0", false),
        ("watermark_scale_factor=3001", false),
        ("file_quota_pages=0", false),
        ("min_free_kbytes=100000000", false),
        ("watermark_scale_factor=1", true),
        ("watermark_scale_factor=3000", true),
    ];
    for (args, loads) in cases {
        let r = reload(args);
        match (&r, loads) {
            (Ok(_), true) => {
                let name = args.split('=').next().unwrap_or(args);
                let want: u64 = args[name.len() + 1..].parse().unwrap_or(0);
                if info_value(name).ok() != Some(want) {
                    wrong.push(format!("{args}: debugfs info shows {:?}", info_value(name)));
                }
            }
            (Err(err), false) if err.contains("Invalid argument") => {}
            (Ok(_), false) => wrong.push(format!("{args}: loaded")),
            (Err(err), _) => wrong.push(format!("{args}: {err}")),
        }
        // Back to the defaults, from whatever state that left.
        if r.is_ok() {
            reload("")?;
        } else {
            ensure_loaded()?;
        }
        open()?
            .info()
            .map_err(|err| format!("after {args}: {err}"))?;
    }
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The defaults really are back.
    check_eq!(info_value("watermark_scale_factor")?, 10);
    pass()
}
