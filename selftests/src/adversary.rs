// SPDX-License-Identifier: GPL-2.0

//! Adversarial selftests: the contract of `include/uapi/linux/minimm.h` and the README pushed
//! at its edges. Struct sizes at every boundary with the struct ending at the end of a mapped
//! page; handles and files shared through fork and unix sockets; mmap with every odd
//! request and madvise; forks and closes racing ioctls; garbage written to every writable
//! debugfs file; fault injection at its extremes; blocks held by pipes while their file, their
//! mapping and the module itself go away; module parameters at odd values; page_owner over
//! many buffers.

use std::{
    io,
    mem::size_of,
    os::unix::fs::FileExt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Barrier,
    },
    thread,
    time::{Duration, Instant},
};

use minimm_uapi::{checksum, debugfs, fill_pattern, page_size, sys, Device};

use crate::{
    common::{
        e, ensure_loaded, free_pages, in_child, info_value, open, reload, sh, stats, validate_ok,
        vmstat, within, Area, Child, Exit, Pipe, DEBUGFS, DMA, DMA32, NORMAL,
    },
    ktap::{expect_errno, pass, skip, TestResult},
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
        drain()?;
        Ok(Self {
            free: free_pages(&watch)?,
            held: vmstat("nr_held_pages")?,
            watch,
        })
    }

    /// Every page back (held blocks come back within seconds), invariants intact.
    fn check(&self) -> Result<(), String> {
        let ok = within(6, || {
            Ok(vmstat("nr_held_pages")? == self.held && free_pages(&self.watch)? == self.free)
        })?;
        check!(
            ok,
            "pool not back: free {:?} (was {:?}), nr_held_pages {} (was {})",
            free_pages(&self.watch)?,
            self.free,
            vmstat("nr_held_pages")?,
            self.held
        );
        validate_ok()
    }
}

fn drain() -> Result<(), String> {
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(|err| format!("drain_pcp: {err}"))
}

fn as_bytes<T>(v: &T) -> Vec<u8> {
    // SAFETY: the uapi structs are plain integers without padding bytes.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn rw_shared(fd: i32, offset: u64, len: usize) -> io::Result<Area> {
    Area::map(
        fd,
        offset,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )
}

/// Two pages, the second PROT_NONE: `bytes` is copied to end exactly at the end of the first,
/// the ioctl is issued on it, and the bytes as the kernel left them are returned.
fn ioctl_at_page_end(
    dev: &Device,
    cmd: u32,
    bytes: &[u8],
) -> Result<(io::Result<i32>, Vec<u8>), String> {
    let page = page_size();
    check!(
        bytes.len() <= page,
        "{} bytes do not fit a page",
        bytes.len()
    );
    let area = Area::map(
        -1,
        0,
        2 * page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .map_err(e)?;
    // SAFETY: changing the protection of our own second page.
    let r = unsafe {
        libc::mprotect(
            (area.addr + page) as *mut libc::c_void,
            page,
            libc::PROT_NONE,
        )
    };
    check!(r == 0, "mprotect: {}", io::Error::last_os_error());
    let at = area.addr + page - bytes.len();
    // SAFETY: `at..at + len` lies in the first, writable page.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
    // SAFETY: the struct is valid where it lies; what is past it is deliberately unmapped.
    let r = unsafe { dev.ioctl_raw(cmd, at) };
    // SAFETY: as above.
    let after = unsafe { std::slice::from_raw_parts(at as *const u8, bytes.len()) }.to_vec();
    Ok((r, after))
}

fn set_size(bytes: &mut [u8], size: u32) {
    bytes[..4].copy_from_slice(&size.to_ne_bytes());
}

fn size_of_bytes(bytes: &[u8]) -> u32 {
    u32::from_ne_bytes(bytes[..4].try_into().unwrap_or([0; 4]))
}

/// What one size case should give.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Ok,
    Errno(i32),
}

/// Every command at every size boundary, its struct ending exactly at the end of a mapped
/// page: below VER0 EINVAL; VER0; ours + 1..7 with a zero tail (an input struct with a
/// non-zero tail is E2BIG, an output struct's tail is left alone); a whole page; a page + 1
/// and 0xffffffff (E2BIG); a size whose tail lies past the mapped page (EFAULT for an input
/// struct, whose tail must be read; an output struct's tail is never touched). A refused
/// call leaves the struct, the pool and the handle sequence as they were.
pub fn sizes_at_every_boundary() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let mut wrong = Vec::new();
    let mut next_handle = {
        let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
        dev.free(a.handle).map_err(e)?;
        a.handle + 1
    };
    let blk = dev.alloc(1, NORMAL, 0).map_err(e)?;
    check_eq!(blk.handle, next_handle);
    next_handle += 1;
    dev.fill(blk.handle, 77).map_err(e)?;
    let sum = dev.checksum(blk.handle).map_err(e)?;

    struct Cmd {
        name: &'static str,
        cmd: u32,
        ver0: u32,
        ours: Vec<u8>,
        input: bool,
    }
    let cmds = [
        Cmd {
            name: "GET_INFO",
            cmd: sys::MINIMM_IOC_GET_INFO,
            ver0: sys::MINIMM_INFO_SIZE_VER0,
            ours: as_bytes(&sys::minimm_info::default()),
            input: false,
        },
        Cmd {
            name: "ZONE_STATS",
            cmd: sys::MINIMM_IOC_ZONE_STATS,
            ver0: sys::MINIMM_ZONE_STATS_SIZE_VER0,
            ours: as_bytes(&sys::minimm_zone_stats {
                zone: NORMAL,
                ..Default::default()
            }),
            input: false,
        },
        Cmd {
            name: "ALLOC",
            cmd: sys::MINIMM_IOC_ALLOC,
            ver0: sys::MINIMM_ALLOC_SIZE_VER0,
            ours: as_bytes(&sys::minimm_alloc {
                zone: NORMAL,
                ..Default::default()
            }),
            input: true,
        },
        Cmd {
            name: "BLOCK_DATA",
            cmd: sys::MINIMM_IOC_BLOCK_DATA,
            ver0: sys::MINIMM_BLOCK_DATA_SIZE_VER0,
            ours: as_bytes(&sys::minimm_block_data {
                op: sys::MINIMM_BLOCK_CHECKSUM,
                handle: blk.handle,
                ..Default::default()
            }),
            input: true,
        },
        Cmd {
            name: "FREE",
            cmd: sys::MINIMM_IOC_FREE,
            ver0: sys::MINIMM_FREE_SIZE_VER0,
            ours: as_bytes(&sys::minimm_free::default()),
            input: true,
        },
    ];
    for c in &cmds {
        let ours = c.ours.len();
        // (what, size field, bytes present, non-zero tail byte, expected)
        let mut cases: Vec<(String, u32, usize, bool, Want)> = vec![
            (
                "VER0-1".into(),
                c.ver0 - 1,
                ours,
                false,
                Want::Errno(libc::EINVAL),
            ),
            ("0".into(), 0, ours, false, Want::Errno(libc::EINVAL)),
            ("VER0".into(), c.ver0, ours, false, Want::Ok),
        ];
        for k in 1..=7u32 {
            cases.push((
                format!("ours+{k}, zero tail"),
                ours as u32 + k,
                ours + k as usize,
                false,
                Want::Ok,
            ));
            let nz = if c.input {
                Want::Errno(libc::E2BIG)
            } else {
                Want::Ok
            };
            cases.push((
                format!("ours+{k}, non-zero tail"),
                ours as u32 + k,
                ours + k as usize,
                true,
                nz,
            ));
        }
        cases.push((
            "PAGE_SIZE, zero tail".into(),
            page as u32,
            page,
            false,
            Want::Ok,
        ));
        let nz = if c.input {
            Want::Errno(libc::E2BIG)
        } else {
            Want::Ok
        };
        cases.push((
            "PAGE_SIZE, last byte set".into(),
            page as u32,
            page,
            true,
            nz,
        ));
        cases.push((
            "PAGE_SIZE+1".into(),
            page as u32 + 1,
            ours,
            false,
            Want::Errno(libc::E2BIG),
        ));
        cases.push((
            "0xffffffff".into(),
            u32::MAX,
            ours,
            false,
            Want::Errno(libc::E2BIG),
        ));
        let past = if c.input {
            Want::Errno(libc::EFAULT)
        } else {
            Want::Ok
        };
        cases.push((
            "ours+8, tail past the page".into(),
            ours as u32 + 8,
            ours,
            false,
            past,
        ));
        cases.push((
            "PAGE_SIZE, tail past the page".into(),
            page as u32,
            ours,
            false,
            past,
        ));
        for (what, size, present, nonzero, want) in cases {
            let ctx = format!("{} size {size} ({what})", c.name);
            // FREE needs a block to free each time it may succeed.
            let mut victim = None;
            let mut bytes = c.ours.clone();
            if c.name == "FREE" {
                let v = dev.alloc(0, NORMAL, 0).map_err(e)?;
                check_eq!(v.handle, next_handle);
                next_handle += 1;
                bytes[8..16].copy_from_slice(&v.handle.to_ne_bytes());
                victim = Some(v.handle);
            }
            bytes.resize(present, 0);
            if nonzero {
                *bytes.last_mut().ok_or("empty")? = 1;
            }
            set_size(&mut bytes, size);
            let (r, after) = ioctl_at_page_end(&dev, c.cmd, &bytes)?;
            let got = match &r {
                Ok(_) => Want::Ok,
                Err(err) => Want::Errno(err.raw_os_error().unwrap_or(0)),
            };
            if got != want {
                wrong.push(format!("{ctx}: want {want:?}, got {r:?}"));
            }
            match got {
                Want::Ok => {
                    // FREE writes nothing back; the others set size to what they wrote.
                    let written = if c.name == "FREE" {
                        size as usize
                    } else {
                        (size as usize).min(ours)
                    };
                    if size_of_bytes(&after) as usize != written {
                        wrong.push(format!("{ctx}: size out {}", size_of_bytes(&after)));
                    }
                    if c.name == "FREE" && after != bytes {
                        wrong.push(format!("{ctx}: FREE wrote its struct"));
                    }
                    if after.len() > ours && after[ours..] != bytes[ours..] {
                        wrong.push(format!("{ctx}: bytes past the struct changed"));
                    }
                    if c.name == "ALLOC" {
                        let handle = u64::from_ne_bytes(after[16..24].try_into().unwrap_or([0; 8]));
                        if handle != next_handle {
                            wrong.push(format!("{ctx}: handle {handle}, want {next_handle}"));
                        }
                        next_handle = handle.max(next_handle) + 1;
                        dev.free(handle)
                            .map_err(|err| format!("{ctx}: FREE: {err}"))?;
                    }
                    if c.name == "BLOCK_DATA" {
                        let result = u64::from_ne_bytes(after[24..32].try_into().unwrap_or([0; 8]));
                        if result != sum {
                            wrong.push(format!("{ctx}: checksum {result:#x}, want {sum:#x}"));
                        }
                    }
                    if let Some(h) = victim {
                        if dev.free(h).is_ok() {
                            wrong.push(format!("{ctx}: succeeded but the block was not freed"));
                        }
                    }
                }
                Want::Errno(_) => {
                    if after != bytes {
                        wrong.push(format!("{ctx}: a refused call wrote the struct"));
                    }
                    if let Some(h) = victim {
                        if let Err(err) = dev.free(h) {
                            wrong.push(format!("{ctx}: refused, yet the block is gone: {err}"));
                        }
                    }
                }
            }
        }
    }
    // Nothing numbered behind our back.
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    if a.handle != next_handle {
        wrong.push(format!(
            "handle after all cases {}, want {next_handle}",
            a.handle
        ));
    }
    dev.free(a.handle).map_err(e)?;
    check_eq!(dev.checksum(blk.handle).map_err(e)?, sum);
    dev.free(blk.handle).map_err(e)?;
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(dev);
    base.check()?;
    pass()
}

/// Limits of ALLOC's fields one by one (order 10 works, 11 does not; every flag combination
/// inside ALLOC_VALID works; zone 2 works, 3 does not) and BLOCK_DATA's op and handle
/// (op 2 and u32::MAX, handle 0, u64::MAX, a freed one: EINVAL).
pub fn field_limits() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let mut wrong = Vec::new();
    for flags in 0..=sys::MINIMM_ALLOC_VALID {
        for zone in [DMA, DMA32, NORMAL] {
            match dev.alloc(0, zone, flags) {
                Ok(a) => {
                    if a.zone_out > zone {
                        wrong.push(format!(
                            "zone {zone} flags {flags}: served from {}",
                            a.zone_out
                        ));
                    }
                    dev.free(a.handle).map_err(e)?;
                }
                Err(err) => wrong.push(format!("zone {zone} flags {flags}: {err}")),
            }
        }
    }
    // Bits 0..3 are ZERO, ATOMIC, NOWAIT and DISCARDABLE.
    for bit in 4..32 {
        if dev.alloc(0, NORMAL, 1 << bit).is_ok() {
            wrong.push(format!("flag bit {bit} accepted"));
        }
    }
    let a = dev
        .alloc(10, NORMAL, 0)
        .map_err(|err| format!("order 10: {err}"))?;
    dev.free(a.handle).map_err(e)?;
    for zone in [3, 4, 255, u32::MAX] {
        expect_errno(dev.alloc(0, zone, 0), libc::EINVAL, &format!("zone {zone}"))?;
    }
    let b = dev.alloc(0, NORMAL, 0).map_err(e)?;
    for op in [2, 3, 0x100, u32::MAX] {
        let mut d = sys::minimm_block_data {
            size: size_of::<sys::minimm_block_data>() as u32,
            op,
            handle: b.handle,
            ..Default::default()
        };
        expect_errno(
            dev.ioctl(sys::MINIMM_IOC_BLOCK_DATA, &mut d),
            libc::EINVAL,
            &format!("op {op}"),
        )?;
        check_eq!(d.result, 0);
    }
    for h in [0, u64::MAX, b.handle + 1, 1 << 40, (1 << 40) - 1] {
        expect_errno(
            dev.checksum(h),
            libc::EINVAL,
            &format!("checksum handle {h:#x}"),
        )?;
        expect_errno(dev.fill(h, 1), libc::EINVAL, &format!("fill handle {h:#x}"))?;
    }
    dev.free(b.handle).map_err(e)?;
    expect_errno(
        dev.checksum(b.handle),
        libc::EINVAL,
        "checksum of a freed handle",
    )?;
    for zone in [3, u32::MAX] {
        expect_errno(
            dev.zone_stats(zone),
            libc::EINVAL,
            &format!("ZONE_STATS zone {zone}"),
        )?;
    }
    // The ioctl-only access mode (3) may only look.
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/minimm".as_ptr(), 3 | libc::O_CLOEXEC) };
    if fd >= 0 {
        let mut info = sys::minimm_info {
            size: size_of::<sys::minimm_info>() as u32,
            ..Default::default()
        };
        // SAFETY: `info` is a valid struct for GET_INFO.
        let r = unsafe { libc::ioctl(fd, sys::MINIMM_IOC_GET_INFO as libc::c_ulong, &mut info) };
        if r != 0 {
            wrong.push(format!("mode 3 GET_INFO: {}", io::Error::last_os_error()));
        }
        let mut a = sys::minimm_alloc {
            size: size_of::<sys::minimm_alloc>() as u32,
            zone: NORMAL,
            ..Default::default()
        };
        // SAFETY: as above.
        let r = unsafe { libc::ioctl(fd, sys::MINIMM_IOC_ALLOC as libc::c_ulong, &mut a) };
        let err = io::Error::last_os_error();
        if r == 0 || err.raw_os_error() != Some(libc::EBADF) {
            wrong.push(format!("mode 3 ALLOC: {r} {err}"));
        }
        // SAFETY: closing our descriptor.
        unsafe { libc::close(fd) };
    }
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(dev);
    base.check()?;
    pass()
}

/// Sends `fd` over a unix socket pair and returns the received descriptor.
fn pass_fd(fd: i32) -> Result<i32, String> {
    let mut sv = [0i32; 2];
    // SAFETY: `sv` has room for two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    if r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // No unix sockets in this kernel: take the descriptor with pidfd_getfd instead, the
        // other way one process gets another's open file.
        // SAFETY: plain system calls on our own process.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) } as i32;
        check!(pidfd >= 0, "pidfd_open: {}", io::Error::last_os_error());
        // SAFETY: as above.
        let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) } as i32;
        let err = io::Error::last_os_error();
        // SAFETY: closing our pidfd.
        unsafe { libc::close(pidfd) };
        check!(got >= 0, "pidfd_getfd: {err}");
        return Ok(got);
    }
    check!(r == 0, "socketpair: {}", io::Error::last_os_error());
    let close = |sv: [i32; 2]| {
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(sv[0]);
            libc::close(sv[1]);
        }
    };
    // SAFETY: building an SCM_RIGHTS message in local buffers of the right sizes.
    let got = unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(size_of::<i32>() as u32) as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<i32>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<i32>().write_unaligned(fd);
        if libc::sendmsg(sv[0], &msg, 0) != 1 {
            let err = io::Error::last_os_error();
            close(sv);
            return Err(format!("sendmsg: {err}"));
        }
        let mut rbuf = vec![0u64; space.div_ceil(8)];
        let mut rmsg: libc::msghdr = std::mem::zeroed();
        let mut rbyte = [0u8; 1];
        let mut riov = libc::iovec {
            iov_base: rbyte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        rmsg.msg_iov = &mut riov;
        rmsg.msg_iovlen = 1;
        rmsg.msg_control = rbuf.as_mut_ptr().cast();
        rmsg.msg_controllen = space;
        if libc::recvmsg(sv[1], &mut rmsg, libc::MSG_CMSG_CLOEXEC) != 1 {
            let err = io::Error::last_os_error();
            close(sv);
            return Err(format!("recvmsg: {err}"));
        }
        let c = libc::CMSG_FIRSTHDR(&rmsg);
        if c.is_null() {
            close(sv);
            return Err("no SCM_RIGHTS".into());
        }
        libc::CMSG_DATA(c).cast::<i32>().read_unaligned()
    };
    close(sv);
    Ok(got)
}

/// A handle and an offset belong to the open file, not to a process or a descriptor: a
/// forked child using the inherited descriptor, a dup and a descriptor passed over a unix
/// socket all reach (and may map) the file's blocks; a child's own open of the device reaches
/// none of them (EINVAL), not even with the same handle number.
pub fn handles_belong_to_the_open_file() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
    dev.fill(a.handle, 91).map_err(e)?;
    let sum = dev.checksum(a.handle).map_err(e)?;
    let (fd, handle, offset) = (dev.fd(), a.handle, a.mmap_offset);
    let mut want = vec![0u8; 4 * page];
    fill_pattern(91, &mut want);
    // The child: the inherited fd works, its own file does not know the handle.
    let child = in_child(|| {
        let mut d = sys::minimm_block_data {
            size: size_of::<sys::minimm_block_data>() as u32,
            op: sys::MINIMM_BLOCK_CHECKSUM,
            handle,
            ..Default::default()
        };
        // SAFETY: `d` is a valid struct.
        if unsafe { libc::ioctl(fd, sys::MINIMM_IOC_BLOCK_DATA as libc::c_ulong, &mut d) } != 0
            || d.result != sum
        {
            return 10;
        }
        let Ok(m) = rw_shared(fd, offset, 4 * page) else {
            return 11;
        };
        // SAFETY: `m` maps 4 pages; page 3 gets a mark the parent looks for.
        unsafe { std::ptr::write_volatile((m.addr + 3 * page) as *mut u64, 0x1122_3344) };
        drop(m);
        // SAFETY: a NUL-terminated path.
        let own = unsafe { libc::open(c"/dev/minimm".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if own < 0 {
            return 12;
        }
        d.result = 0;
        // SAFETY: as above.
        let r = unsafe { libc::ioctl(own, sys::MINIMM_IOC_BLOCK_DATA as libc::c_ulong, &mut d) };
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return 13;
        }
        if rw_shared(own, offset, 4 * page)
            .map_err(|e| e.raw_os_error())
            .err()
            != Some(Some(libc::EINVAL))
        {
            return 14;
        }
        let f = sys::minimm_free {
            size: size_of::<sys::minimm_free>() as u32,
            handle,
            ..Default::default()
        };
        // SAFETY: as above.
        let r = unsafe { libc::ioctl(own, sys::MINIMM_IOC_FREE as libc::c_ulong, &f) };
        if r == 0 {
            return 15;
        }
        // SAFETY: closing our descriptor.
        unsafe { libc::close(own) };
        0
    })?;
    check_eq!(child, Exit::Code(0));
    want[3 * page..3 * page + 8].copy_from_slice(&0x1122_3344u64.to_ne_bytes());
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    // A descriptor passed over a unix socket is the same file.
    let passed = pass_fd(dev.fd())?;
    let m = rw_shared(passed, a.mmap_offset, 4 * page)
        .map_err(|err| format!("mmap via SCM_RIGHTS fd: {err}"))?;
    check!(m.bytes() == &want[..], "mapping via the passed fd differs");
    // Closing the original and the passed descriptor: the mapping keeps the file.
    // SAFETY: closing the descriptor we received.
    unsafe { libc::close(passed) };
    let dup = dev.try_clone().map_err(e)?;
    drop(dev);
    let m2 = rw_shared(dup.fd(), a.mmap_offset, 4 * page)
        .map_err(|err| format!("mmap via dup: {err}"))?;
    drop(dup);
    check!(
        m.bytes() == &want[..],
        "mapping after the last descriptor closed"
    );
    check!(
        m2.bytes() == &want[..],
        "second mapping after the last descriptor closed"
    );
    drop(m);
    drop(m2);
    base.check()?;
    pass()
}

fn madvise(addr: usize, len: usize, advice: i32) -> io::Result<()> {
    // SAFETY: madvise on our own mapping.
    if unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// mmap with every odd request: length 0, one page short or long, offsets inside or past a
/// block, near 2^63 and negative, a freed block's offset, MAP_PRIVATE: all fail (EINVAL or
/// the kernel's own errno), and nothing is mapped; another (O_RDONLY) file cannot map our
/// offset, and O_WRONLY cannot map (EACCES). MAP_POPULATE, MAP_FIXED over our own mapping, mlock, PROT_EXEC
/// and every madvise advice leave the block's data and the pool whole.
pub fn mmap_odd_requests() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let mut wrong = Vec::new();
    let a = dev.alloc(2, NORMAL, 0).map_err(e)?;
    let len = 4 * page;
    let freed = dev.alloc(0, NORMAL, 0).map_err(e)?;
    dev.free(freed.handle).map_err(e)?;
    let o = a.mmap_offset;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let cases: Vec<(&str, u64, usize, i32, i32)> = vec![
        ("len 0", o, 0, rw, libc::MAP_SHARED),
        ("len one page short", o, len - page, rw, libc::MAP_SHARED),
        ("len one page long", o, len + page, rw, libc::MAP_SHARED),
        ("len + 1 byte", o, len + 1, rw, libc::MAP_SHARED),
        (
            "offset + 1 page",
            o + page as u64,
            len - page,
            rw,
            libc::MAP_SHARED,
        ),
        (
            "offset + 3 pages",
            o + 3 * page as u64,
            page,
            rw,
            libc::MAP_SHARED,
        ),
        (
            "offset - 1 page",
            o - page as u64,
            len,
            rw,
            libc::MAP_SHARED,
        ),
        ("freed block", freed.mmap_offset, page, rw, libc::MAP_SHARED),
        (
            "offset 2^40 pages",
            (1u64 << 40) * page as u64,
            page,
            rw,
            libc::MAP_SHARED,
        ),
        ("offset 2^62", 1 << 62, page, rw, libc::MAP_SHARED),
        (
            "offset 2^63 - 1 page",
            (1u64 << 63) - page as u64,
            page,
            rw,
            libc::MAP_SHARED,
        ),
        ("offset 2^63", 1 << 63, page, rw, libc::MAP_SHARED),
        (
            "offset -1 page",
            u64::MAX - page as u64 + 1,
            page,
            rw,
            libc::MAP_SHARED,
        ),
        ("MAP_PRIVATE", o, len, libc::PROT_READ, libc::MAP_PRIVATE),
        (
            "MAP_PRIVATE|MAP_POPULATE",
            o,
            len,
            rw,
            libc::MAP_PRIVATE | libc::MAP_POPULATE,
        ),
    ];
    for (what, off, l, prot, flags) in cases {
        match Area::map(dev.fd(), off, l, prot, flags) {
            Ok(m) => {
                wrong.push(format!("{what}: mapped at {:#x}", m.addr));
            }
            Err(_) => {}
        }
    }
    // The right request still works, in several forms.
    let mut want = vec![0u8; len];
    fill_pattern(5, &mut want);
    dev.fill(a.handle, 5).map_err(e)?;
    let forms: Vec<(&str, i32, i32)> = vec![
        ("MAP_SHARED_VALIDATE", rw, libc::MAP_SHARED_VALIDATE),
        ("MAP_POPULATE", rw, libc::MAP_SHARED | libc::MAP_POPULATE),
        ("PROT_EXEC", rw | libc::PROT_EXEC, libc::MAP_SHARED),
        ("MAP_LOCKED", rw, libc::MAP_SHARED | libc::MAP_LOCKED),
        (
            "MAP_NORESERVE",
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_NORESERVE,
        ),
    ];
    for (what, prot, flags) in forms {
        match Area::map(dev.fd(), o, len, prot, flags) {
            Ok(m) => {
                if m.bytes() != &want[..] {
                    wrong.push(format!("{what}: data differs"));
                }
            }
            // PROT_EXEC may be refused (noexec device nodes); anything else must work.
            Err(err) if what == "PROT_EXEC" && err.raw_os_error() == Some(libc::EPERM) => {}
            Err(err) => wrong.push(format!("{what}: {err}")),
        }
    }
    // MAP_SHARED_VALIDATE with MAP_SYNC, which the device does not support: EOPNOTSUPP.
    if let Ok(m) = Area::map(
        dev.fd(),
        o,
        len,
        rw,
        libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
    ) {
        wrong.push(format!(
            "MAP_SHARED_VALIDATE|MAP_SYNC mapped at {:#x}",
            m.addr
        ));
    }
    // MAP_FIXED over our own mapping of the same block, twice, then over half of it.
    let m = rw_shared(dev.fd(), o, len).map_err(e)?;
    for _ in 0..2 {
        // SAFETY: replacing our own mapping at its own address.
        let p = unsafe {
            libc::mmap(
                m.addr as *mut libc::c_void,
                len,
                rw,
                libc::MAP_SHARED | libc::MAP_FIXED,
                dev.fd(),
                o as libc::off_t,
            )
        };
        if p as usize != m.addr {
            wrong.push(format!(
                "MAP_FIXED over itself: {}",
                io::Error::last_os_error()
            ));
        }
    }
    check!(m.bytes() == &want[..], "after MAP_FIXED over itself");
    // Anonymous memory over the second half: the first half still shows the block.
    // SAFETY: replacing part of our own mapping.
    let p = unsafe {
        libc::mmap(
            (m.addr + 2 * page) as *mut libc::c_void,
            2 * page,
            rw,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    check!(
        p != libc::MAP_FAILED,
        "MAP_FIXED anon: {}",
        io::Error::last_os_error()
    );
    check!(
        m.bytes()[..2 * page] == want[..2 * page],
        "first half after MAP_FIXED"
    );
    check!(
        m.bytes()[2 * page..].iter().all(|&b| b == 0),
        "anonymous half not zero"
    );
    drop(m);
    // mlock and munlock.
    let m = rw_shared(dev.fd(), o, len).map_err(e)?;
    // SAFETY: locking our own mapping.
    if unsafe { libc::mlock(m.addr as *const libc::c_void, len) } != 0 {
        wrong.push(format!("mlock: {}", io::Error::last_os_error()));
    }
    check!(m.bytes() == &want[..], "after mlock");
    // SAFETY: as above.
    unsafe { libc::munlock(m.addr as *const libc::c_void, len) };
    // Every madvise advice: allowed or refused, the data stays and nothing breaks.
    for advice in [
        libc::MADV_NORMAL,
        libc::MADV_RANDOM,
        libc::MADV_SEQUENTIAL,
        libc::MADV_WILLNEED,
        libc::MADV_DONTNEED,
        libc::MADV_FREE,
        libc::MADV_REMOVE,
        libc::MADV_DONTFORK,
        libc::MADV_DOFORK,
        libc::MADV_MERGEABLE,
        libc::MADV_UNMERGEABLE,
        libc::MADV_HUGEPAGE,
        libc::MADV_NOHUGEPAGE,
        libc::MADV_DONTDUMP,
        libc::MADV_DODUMP,
        libc::MADV_WIPEONFORK,
        libc::MADV_KEEPONFORK,
        20,  // MADV_COLD
        21,  // MADV_PAGEOUT
        22,  // MADV_POPULATE_READ
        23,  // MADV_POPULATE_WRITE
        24,  // MADV_DONTNEED_LOCKED
        25,  // MADV_COLLAPSE
        102, // MADV_GUARD_INSTALL
        103, // MADV_GUARD_REMOVE
    ] {
        let _ = madvise(m.addr, len, advice);
        let _ = madvise(m.addr + page, page, advice);
        if m.bytes() != &want[..] {
            wrong.push(format!("madvise {advice}: data differs"));
            break;
        }
    }
    if madvise(m.addr, len, libc::MADV_DOFORK).is_ok() {
        wrong.push("MADV_DOFORK accepted".into());
    }
    // mprotect: PROT_NONE and back, then data and writes still reach the block.
    // SAFETY: our own mapping.
    unsafe {
        libc::mprotect(m.addr as *mut libc::c_void, len, libc::PROT_NONE);
        libc::mprotect(m.addr as *mut libc::c_void, len, rw);
    }
    check!(m.bytes() == &want[..], "after PROT_NONE and back");
    // SAFETY: `m` maps `len` writable bytes.
    unsafe { std::ptr::write_volatile((m.addr + len - 1) as *mut u8, !want[len - 1]) };
    want[len - 1] = !want[len - 1];
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    drop(m);
    // Another file, opened O_RDONLY, cannot map our offset.
    let ro = Device::open_mode(libc::O_RDONLY).map_err(e)?;
    expect_errno(
        Area::map(ro.fd(), o, len, libc::PROT_READ, libc::MAP_SHARED).map(|_| ()),
        libc::EINVAL,
        "another (read-only) file maps our offset",
    )?;
    drop(ro);
    // O_WRONLY cannot map at all (the kernel's rule).
    let wo = Device::open_mode(libc::O_WRONLY).map_err(e)?;
    let b = wo.alloc(0, NORMAL, 0).map_err(e)?;
    expect_errno(
        Area::map(
            wo.fd(),
            b.mmap_offset,
            page,
            libc::PROT_READ,
            libc::MAP_SHARED,
        )
        .map(|_| ()),
        libc::EACCES,
        "O_WRONLY mmap",
    )?;
    drop(wo);
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    dev.free(a.handle).map_err(e)?;
    drop(dev);
    base.check()?;
    pass()
}

/// mprotect of a PROT_READ shared mapping: an O_RDWR file's may become writable (VM_MAYWRITE)
/// and the write reaches the block; a file reopened through /proc/self/fd is another file and
/// cannot map the block at all. (An O_RDONLY file owns no block to map: ALLOC is EBADF there.)
pub fn mprotect_write_follows_open_mode() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
    let m = Area::map(
        dev.fd(),
        a.mmap_offset,
        page,
        libc::PROT_READ,
        libc::MAP_SHARED,
    )
    .map_err(e)?;
    // SAFETY: our own mapping.
    let r = unsafe {
        libc::mprotect(
            m.addr as *mut libc::c_void,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    check!(
        r == 0,
        "mprotect to write on an O_RDWR file: {}",
        io::Error::last_os_error()
    );
    // SAFETY: writable now.
    unsafe { std::ptr::write_volatile(m.addr as *mut u8, 0xab) };
    let mut want = vec![0u8; page];
    want[0] = 0xab;
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    drop(m);
    // Reopen the same device read-only via /proc/self/fd: a new file, which owns no block;
    // its own mapping cannot exist. The O_RDONLY + VM_MAYWRITE rule is then the kernel's.
    let path = format!("/proc/self/fd/{}", dev.fd());
    let cpath = std::ffi::CString::new(path).map_err(|err| err.to_string())?;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    check!(fd >= 0, "reopen: {}", io::Error::last_os_error());
    let r = Area::map(fd, a.mmap_offset, page, libc::PROT_READ, libc::MAP_SHARED);
    // SAFETY: closing our descriptor.
    unsafe { libc::close(fd) };
    expect_errno(
        r.map(|_| ()),
        libc::EINVAL,
        "a reopened (other) file maps the offset",
    )?;
    dev.free(a.handle).map_err(e)?;
    drop(dev);
    base.check()?;
    pass()
}

/// fork while other threads are inside ioctls (checksums of an order-10 block, ALLOC/FREE)
/// and faults: every child sees no mapping (VM_DONTCOPY), can use the inherited file, and
/// exits; the parent's threads finish normally and the pool is whole.
pub fn fork_during_ioctls() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let big = dev.alloc(10, NORMAL, 0).map_err(e)?;
    dev.fill(big.handle, 3).map_err(e)?;
    let sum = dev.checksum(big.handle).map_err(e)?;
    let m = rw_shared(dev.fd(), big.mmap_offset, page << 10).map_err(e)?;
    let stop = AtomicBool::new(false);
    let errors = AtomicU64::new(0);
    let fd = dev.fd();
    let addr = m.addr;
    let result = thread::scope(|s| -> Result<(), String> {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if dev.checksum(big.handle).ok() != Some(sum) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match dev.alloc(3, NORMAL, 0) {
                    Ok(a) => {
                        if let Ok(mm) = rw_shared(dev.fd(), a.mmap_offset, 8 * page) {
                            // SAFETY: touching our mapping.
                            unsafe { std::ptr::read_volatile(mm.addr as *const u8) };
                        }
                        if dev.free(a.handle).is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        for i in 0..30 {
            let child = Child::spawn(|| {
                // The parent's mapping is not here.
                if crate::common::is_mapped(addr, page) {
                    return 20;
                }
                let mut a = sys::minimm_alloc {
                    size: size_of::<sys::minimm_alloc>() as u32,
                    order: 0,
                    zone: NORMAL,
                    ..Default::default()
                };
                // SAFETY: valid struct.
                if unsafe { libc::ioctl(fd, sys::MINIMM_IOC_ALLOC as libc::c_ulong, &mut a) } != 0 {
                    return 21;
                }
                let f = sys::minimm_free {
                    size: size_of::<sys::minimm_free>() as u32,
                    handle: a.handle,
                    ..Default::default()
                };
                // SAFETY: valid struct.
                if unsafe { libc::ioctl(fd, sys::MINIMM_IOC_FREE as libc::c_ulong, &f) } != 0 {
                    return 22;
                }
                0
            })?;
            let exit = child.wait()?;
            if exit != Exit::Code(0) {
                stop.store(true, Ordering::Relaxed);
                return Err(format!("child {i}: {exit:?}"));
            }
        }
        stop.store(true, Ordering::Relaxed);
        Ok(())
    });
    result?;
    check_eq!(errors.load(Ordering::Relaxed), 0);
    check_eq!(checksum(m.bytes()), sum);
    drop(m);
    drop(dev);
    base.check()?;
    pass()
}

/// Many threads ALLOC, map, touch, munmap and FREE on one file while another thread keeps
/// dup'ing its descriptor and closing the dups, another closes the original descriptor
/// half-way, and a reader reads every debugfs file: no error but ENOMEM, the pool whole.
pub fn threads_churn_while_descriptors_close() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let stop = AtomicBool::new(false);
    let bad = std::sync::Mutex::new(Vec::<String>::new());
    let files = [
        "info",
        "buddyinfo",
        "zoneinfo",
        "unusable_index",
        "extfrag_index",
        "vmstat",
        "watermarks",
        "validate",
        "page_owner",
        "page_owner_sort",
        "bench",
        "pcp_lists",
    ];
    let dup = dev.try_clone().map_err(e)?;
    thread::scope(|s| {
        for t in 0..4u64 {
            let dup = &dup;
            let (stop, bad) = (&stop, &bad);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let order = ((t + i) % 4) as u32;
                    i += 1;
                    let a = match dup.alloc(order, NORMAL, 0) {
                        Ok(a) => a,
                        Err(err) if err.raw_os_error() == Some(libc::ENOMEM) => continue,
                        Err(err) => {
                            bad.lock().unwrap().push(format!("ALLOC: {err}"));
                            return;
                        }
                    };
                    let len = page << order;
                    match rw_shared(dup.fd(), a.mmap_offset, len) {
                        Ok(m) => {
                            // SAFETY: `m` maps `len` writable bytes.
                            unsafe { std::ptr::write_volatile((m.addr + len - 8) as *mut u64, i) };
                            if i % 3 == 0 {
                                let _ = dup.free(a.handle);
                                drop(m);
                                continue;
                            }
                            drop(m);
                        }
                        Err(err) => bad.lock().unwrap().push(format!("mmap: {err}")),
                    }
                    if let Err(err) = dup.free(a.handle) {
                        bad.lock().unwrap().push(format!("FREE: {err}"));
                    }
                }
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(d) = dup.try_clone() {
                    let _ = d.zone_stats(NORMAL);
                    drop(d);
                }
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for f in files {
                    if let Err(err) = debugfs(f) {
                        bad.lock().unwrap().push(format!("read {f}: {err}"));
                    }
                }
            }
        });
        thread::sleep(Duration::from_millis(1500));
        drop(dev);
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });
    let bad = bad.into_inner().map_err(|_| "poisoned")?;
    check!(bad.is_empty(), "{}", bad.join("\n"));
    drop(dup);
    base.check()?;
    pass()
}

/// Writes `data` to a debugfs file with one write(2); the errno, or the count written.
fn write_raw(path: &str, data: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write(data)
}

/// Garbage written to every writable debugfs file: each write is refused with EINVAL (or
/// EFAULT from an unreadable buffer), and the file's value, the watermarks and every fail
/// knob are as before; the pool still allocates and validates.
pub fn debugfs_garbage_writes() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let mut wrong = Vec::new();
    let long = vec![b'1'; 200];
    let huge = vec![b'7'; 5000];
    let mut long_line = b"DMA 0 0 0".to_vec();
    long_line.resize(4200, b' ');
    let generic: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n".to_vec(),
        b" ".to_vec(),
        b"\0".to_vec(),
        b"-1x".to_vec(),
        b"18446744073709551616".to_vec(),
        b"-18446744073709551617".to_vec(),
        b"99999999999999999999999999".to_vec(),
        b"1 2".to_vec(),
        b"abc".to_vec(),
        b"1\x001".to_vec(),
        b"\xff\xfe".to_vec(),
        b"0x".to_vec(),
        long.clone(),
        huge.clone(),
        long_line.clone(),
    ];
    let knob_state = || -> Result<Vec<String>, String> {
        let mut v = Vec::new();
        for p in [
            "host_borrow",
            "zone_alloc",
            "pcp_refill",
            "handle_insert",
            "mapping_insert",
        ] {
            for k in ["probability", "interval", "times", "verbose", "nth"] {
                v.push(debugfs(&format!("fail/{p}/{k}")).map_err(e)?);
            }
        }
        Ok(v)
    };
    let wm_before = debugfs("watermarks").map_err(e)?;
    let knobs_before = knob_state()?;
    let mut targets: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    let mut wm: Vec<Vec<u8>> = generic.clone();
    let dma32 = stats(&dev, DMA32)?.managed_pages;
    for line in [
        "DMA".to_string(),
        "DMA 1".into(),
        "DMA 1 2".into(),
        "DMA 3 2 1".into(),
        "DMA 1 2 3 4".into(),
        "Foo 1 2 3".into(),
        "DMA -1 0 0".into(),
        "DMA 0 0 18446744073709551615".into(),
        "DMA 0 0 18446744073709551616".into(),
        format!("DMA32 0 0 {}", dma32 + 1),
        format!("DMA32 {0} {0} {0}", u64::MAX),
        "DMA 1.5 2 3".into(),
        "DMA 0x1 2 3".into(),
        "DMA32\t1\t2".into(),
        "DMA 1 2 3\nDMA32 1 2 3".into(),
        "Movable 0 0 0".into(),
        "HighMem 0 0 0".into(),
        "3 0 0 0".into(),
    ] {
        wm.push(line.into_bytes());
    }
    targets.push(("watermarks".into(), wm));
    targets.push((
        "drain_pcp".into(),
        [
            generic.clone(),
            vec![
                b"0".to_vec(),
                b"2".to_vec(),
                b"11".to_vec(),
                b"1 1".to_vec(),
            ],
        ]
        .concat(),
    ));
    targets.push((
        "reclaim".into(),
        [
            generic.clone(),
            vec![
                b"0".to_vec(),
                b"-5".to_vec(),
                b"0x10".to_vec(),
                b"1 1".to_vec(),
            ],
        ]
        .concat(),
    ));
    targets.push((
        "validate".into(),
        [
            generic.clone(),
            vec![b"0".to_vec(), b"2".to_vec(), b"1 1".to_vec()],
        ]
        .concat(),
    ));
    targets.push((
        "bench".into(),
        [
            generic.clone(),
            vec![
                b"run 0".to_vec(),
                b"run -1".to_vec(),
                b"run 10000001".to_vec(),
                b"run 18446744073709551616".to_vec(),
                b"run 1 2".to_vec(),
                b"walk".to_vec(),
                b"RUN 1".to_vec(),
            ],
        ]
        .concat(),
    ));
    for p in [
        "host_borrow",
        "zone_alloc",
        "pcp_refill",
        "handle_insert",
        "mapping_insert",
    ] {
        for k in ["probability", "interval", "times", "verbose", "nth"] {
            let mut v = generic.clone();
            v.extend([
                b"-2".to_vec(),
                b"4294967296".to_vec(),
                b"1e3".to_vec(),
                b"- 1".to_vec(),
            ]);
            match k {
                "probability" => v.push(b"101".to_vec()),
                "verbose" => v.push(b"3".to_vec()),
                "times" => v.push(b"-9223372036854775809".to_vec()),
                _ => v.push(b"-1".to_vec()),
            }
            targets.push((format!("fail/{p}/{k}"), v));
        }
    }
    for (file, inputs) in &targets {
        let path = format!("{DEBUGFS}/{file}");
        for data in inputs {
            match write_raw(&path, data) {
                Ok(n) if data.is_empty() && n == 0 => {}
                Ok(n) => wrong.push(format!(
                    "{file}: {:?} accepted ({n})",
                    String::from_utf8_lossy(&data[..data.len().min(40)])
                )),
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {}
                Err(err) => wrong.push(format!(
                    "{file}: {:?}: {err}",
                    String::from_utf8_lossy(&data[..data.len().min(40)])
                )),
            }
        }
        // A buffer that is not readable at all, and one that runs into PROT_NONE.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(e)?;
        // SAFETY: a deliberately invalid buffer: the kernel must answer EFAULT.
        let r = unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                8 as *const libc::c_void,
                4,
            )
        };
        let err = io::Error::last_os_error();
        if r >= 0 || !matches!(err.raw_os_error(), Some(libc::EFAULT) | Some(libc::EINVAL)) {
            wrong.push(format!("{file}: write from address 8: {r} {err}"));
        }
    }
    if debugfs("watermarks").map_err(e)? != wm_before {
        wrong.push(format!(
            "watermarks changed: {wm_before:?} -> {:?}",
            debugfs("watermarks")
        ));
    }
    if knob_state()? != knobs_before {
        wrong.push("a fail knob changed".into());
    }
    // Writes split in two: each part alone is refused, nothing half-applied.
    let wpath = format!("{DEBUGFS}/watermarks");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wpath)
        .map_err(e)?;
    let r1 = std::io::Write::write(&mut f, b"DMA 0 0");
    let r2 = std::io::Write::write(&mut f, b" 0\n");
    if r1.is_ok() || r2.is_ok() {
        wrong.push(format!("split watermark write: {r1:?} {r2:?}"));
    }
    if debugfs("watermarks").map_err(e)? != wm_before {
        wrong.push("watermarks changed by a split write".into());
    }
    // The allocator still works.
    let a = dev
        .alloc(0, DMA, 0)
        .map_err(|err| format!("after garbage: {err}"))?;
    dev.free(a.handle).map_err(e)?;
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(dev);
    base.check()?;
    pass()
}

fn knob(point: &str, k: &str, v: &str) -> Result<(), String> {
    std::fs::write(format!("{DEBUGFS}/fail/{point}/{k}"), v)
        .map_err(|err| format!("{point}/{k} = {v}: {err}"))
}

fn disarm_all() {
    for p in [
        "host_borrow",
        "zone_alloc",
        "pcp_refill",
        "handle_insert",
        "mapping_insert",
    ] {
        for (k, v) in [
            ("probability", "0"),
            ("interval", "0"),
            ("times", "0"),
            ("verbose", "0"),
            ("nth", "0"),
        ] {
            let _ = knob(p, k, v);
        }
    }
}

/// Fault injection at its extremes while allocating: zone_alloc and handle_insert at 100%
/// with unlimited times (every ALLOC ENOMEM, the handle sequence unchanged), pcp_refill at
/// 100% (absorbed), interval and nth at 2^32-1 (nothing fails soon), verbose 2 with a
/// limited count; mapping_insert at 100% unlimited: a touching child retries the fault
/// until SIGKILL ends it, and reads through process_vm_readv fail instead of hanging.
/// Everything disarmed afterwards leaves the pool whole.
pub fn fail_knobs_at_extremes() -> TestResult {
    let base = Baseline::take()?;
    let r = (|| -> TestResult {
        let dev = open()?;
        let page = page_size();
        let first = dev.alloc(0, NORMAL, 0).map_err(e)?;
        let mut next = first.handle + 1;
        let mapped = dev.alloc(2, NORMAL, 0).map_err(e)?;
        next += 1;
        dev.fill(mapped.handle, 8).map_err(e)?;
        for point in ["zone_alloc", "handle_insert"] {
            knob(point, "times", "-1")?;
            knob(point, "probability", "100")?;
            for order in [0, 3, 10] {
                for flags in [0, sys::MINIMM_ALLOC_ATOMIC | sys::MINIMM_ALLOC_NOWAIT] {
                    expect_errno(
                        dev.alloc(order, NORMAL, flags),
                        libc::ENOMEM,
                        &format!("{point} at 100%, order {order}"),
                    )?;
                }
            }
            knob(point, "probability", "0")?;
            knob(point, "times", "0")?;
        }
        let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
        check_eq!(a.handle, next);
        next += 1;
        dev.free(a.handle).map_err(e)?;
        // pcp_refill at 100%: absorbed, order-0 allocations still served.
        knob("pcp_refill", "times", "-1")?;
        knob("pcp_refill", "probability", "100")?;
        drain()?;
        for _ in 0..50 {
            let a = dev
                .alloc(0, NORMAL, 0)
                .map_err(|err| format!("pcp_refill at 100%: {err}"))?;
            next += 1;
            dev.free(a.handle).map_err(e)?;
        }
        knob("pcp_refill", "probability", "0")?;
        knob("pcp_refill", "times", "0")?;
        // Largest interval and nth: nothing fails in the next passes.
        knob("zone_alloc", "interval", "4294967295")?;
        knob("zone_alloc", "times", "-1")?;
        knob("zone_alloc", "probability", "100")?;
        knob("handle_insert", "nth", "4294967295")?;
        for _ in 0..20 {
            let a = dev
                .alloc(0, NORMAL, 0)
                .map_err(|err| format!("interval 2^32-1: {err}"))?;
            next += 1;
            dev.free(a.handle).map_err(e)?;
        }
        check_eq!(
            debugfs("fail/handle_insert/nth")
                .map_err(e)?
                .trim()
                .to_string(),
            "4294967275"
        );
        disarm_all();
        // verbose 2 (stack dumps), a few times.
        knob("zone_alloc", "verbose", "2")?;
        knob("zone_alloc", "times", "3")?;
        knob("zone_alloc", "probability", "100")?;
        for _ in 0..5 {
            let _ = dev.alloc(0, NORMAL, 0);
        }
        check_eq!(
            debugfs("fail/zone_alloc/times")
                .map_err(e)?
                .trim()
                .to_string(),
            "0"
        );
        disarm_all();
        let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
        next += 2; // two of the five above succeeded
        check_eq!(a.handle, next);
        dev.free(a.handle).map_err(e)?;
        // mapping_insert at 100%, unlimited: a touching child is killable.
        knob("mapping_insert", "times", "-1")?;
        knob("mapping_insert", "probability", "100")?;
        let (fd, off) = (dev.fd(), mapped.mmap_offset);
        let child = Child::spawn(|| {
            let Ok(m) = rw_shared(fd, off, 4 * page) else {
                return 30;
            };
            // SAFETY: a read of our mapping; the fault keeps being retried.
            unsafe { std::ptr::read_volatile(m.addr as *const u8) };
            31
        })?;
        thread::sleep(Duration::from_millis(700));
        // SAFETY: killing our own child.
        unsafe { libc::kill(child.pid(), libc::SIGKILL) };
        let exit = child.wait()?;
        let r = (|| -> TestResult {
            check_eq!(exit, Exit::Signal(libc::SIGKILL));
            // A read from outside (GUP) fails instead of looping.
            let m = rw_shared(dev.fd(), mapped.mmap_offset, 4 * page).map_err(e)?;
            let mut buf = vec![0u8; page];
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: page,
            };
            let remote = libc::iovec {
                iov_base: m.addr as *mut libc::c_void,
                iov_len: page,
            };
            // SAFETY: reading our own mapping into our own buffer.
            let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
            check!(
                n < 0,
                "process_vm_readv succeeded under mapping_insert at 100%: {n}"
            );
            disarm_all();
            let mut want = vec![0u8; 4 * page];
            fill_pattern(8, &mut want);
            check!(m.bytes() == &want[..], "data after disarming");
            Ok(crate::ktap::Outcome::Pass)
        })();
        disarm_all();
        r?;
        dev.free(mapped.handle).map_err(e)?;
        dev.free(first.handle).map_err(e)?;
        pass()
    })();
    disarm_all();
    r?;
    base.check()?;
    pass()
}

/// Maps `a` (`pages` pages), vmsplices its first page into a new pipe; returns the pipe and
/// the mapping.
fn splice(dev: &Device, a: &sys::minimm_alloc, pages: usize) -> Result<(Pipe, Area), String> {
    let page = page_size();
    let m =
        rw_shared(dev.fd(), a.mmap_offset, pages * page).map_err(|err| format!("mmap: {err}"))?;
    let pipe = Pipe::new()?;
    let iov = libc::iovec {
        iov_base: m.addr as *mut libc::c_void,
        iov_len: page,
    };
    // SAFETY: `iov` describes our live mapping.
    let n = unsafe { libc::vmsplice(pipe.w, &iov, 1, 0) };
    check!(
        n == page as isize,
        "vmsplice: {}",
        io::Error::last_os_error()
    );
    Ok((pipe, m))
}

fn read_pipe(pipe: &Pipe, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(pipe.r, buf[got..].as_mut_ptr().cast(), len - got) };
        check!(n > 0, "read pipe: {}", io::Error::last_os_error());
        got += n as usize;
    }
    Ok(buf)
}

/// A block whose page sits in a pipe (vmsplice) while FREE, munmap, close of the file and
/// close of the pipe come in every order: the pipe always reads the block's data as it was,
/// the pages are held (not reused) while the pipe has them, and every page is back within
/// seconds of the last reference going.
pub fn held_blocks_in_every_order() -> TestResult {
    let base = Baseline::take()?;
    let page = page_size();
    let held0 = vmstat("nr_held_pages")?;
    // Steps: F free, U munmap, C close the file, P read and close the pipe.
    for (n, order) in [
        "FUP", "UFP", "FPU", "PFU", "UCP", "CUP", "CPU", "PUC", "UPF",
    ]
    .iter()
    .enumerate()
    {
        let dev = open()?;
        let a = dev.alloc(1, NORMAL, 0).map_err(e)?;
        dev.fill(a.handle, n as u64).map_err(e)?;
        let mut want = vec![0u8; 2 * page];
        fill_pattern(n as u64, &mut want);
        let (pipe, m) = splice(&dev, &a, 2)?;
        let (mut dev, mut pipe, mut m) = (Some(dev), Some(pipe), Some(m));
        for step in order.chars() {
            match step {
                'F' => dev
                    .as_ref()
                    .ok_or("closed")?
                    .free(a.handle)
                    .map_err(|err| format!("{order}: FREE: {err}"))?,
                'U' => drop(m.take()),
                'C' => drop(dev.take()),
                'P' => {
                    let p = pipe.take().ok_or("pipe")?;
                    let got = read_pipe(&p, page)?;
                    check!(got == want[..page], "{order}: pipe data differs");
                }
                _ => {}
            }
            // A new block of the same size never gets the spliced page while the pipe has it.
            if pipe.is_some() {
                let w = open()?;
                let b = w.alloc(1, NORMAL, 0).map_err(e)?;
                w.fill(b.handle, 0xdead).map_err(e)?;
                drop(w);
            }
        }
        // Whatever is left goes.
        if let Some(p) = pipe.take() {
            let got = read_pipe(&p, page)?;
            check!(got == want[..page], "{order}: pipe data differs at the end");
        }
        drop((m, dev));
        let ok = within(5, || Ok(vmstat("nr_held_pages")? == held0))?;
        check!(
            ok,
            "{order}: nr_held_pages {} after 5 s",
            vmstat("nr_held_pages")?
        );
    }
    base.check()?;
    pass()
}

/// rmmod while a pipe still holds a page of a block (vmsplice, then munmap and close): the
/// unload succeeds and logs every page returned; the pipe still reads the block's data; its
/// close frees the page to the host with no "Bad page" report (the kernel log check).
pub fn rmmod_with_block_in_a_pipe() -> TestResult {
    let page = page_size();
    let result = (|| -> Result<(), String> {
        let dev = open()?;
        let a = dev.alloc(3, NORMAL, 0).map_err(e)?;
        dev.fill(a.handle, 1234).map_err(e)?;
        let mut want = vec![0u8; 8 * page];
        fill_pattern(1234, &mut want);
        let (pipe, m) = splice(&dev, &a, 8)?;
        // And a second pipe with a page from the middle of the block.
        let pipe2 = Pipe::new()?;
        let iov = libc::iovec {
            iov_base: (m.addr + 5 * page) as *mut libc::c_void,
            iov_len: page,
        };
        // SAFETY: `iov` describes our live mapping.
        let n = unsafe { libc::vmsplice(pipe2.w, &iov, 1, 0) };
        check!(
            n == page as isize,
            "vmsplice: {}",
            io::Error::last_os_error()
        );
        drop(m);
        drop(dev);
        check!(vmstat("nr_held_pages")? >= 8, "block not held");
        let out = sh("rmmod minimm")?;
        let _ = out;
        let log = sh("dmesg | grep 'unloaded: borrowed' | tail -1")?;
        let nums: Vec<u64> = log
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        check!(
            nums.len() >= 2 && nums[nums.len() - 1] == nums[nums.len() - 2],
            "unload log: {log}"
        );
        let got = read_pipe(&pipe, page)?;
        check!(got == want[..page], "pipe data after rmmod");
        drop(pipe);
        // Reload while the second pipe still holds a page borrowed by the old module.
        sh(&format!("insmod {}", crate::common::MODULE_PATH))?;
        let dev = open()?;
        for _ in 0..64 {
            let b = dev.alloc(3, NORMAL, 0).map_err(e)?;
            dev.fill(b.handle, 7).map_err(e)?;
        }
        let got = read_pipe(&pipe2, page)?;
        check!(
            got == want[5 * page..6 * page],
            "second pipe data after reload"
        );
        drop(pipe2);
        drop(dev);
        validate_ok()
    })();
    ensure_loaded()?;
    result?;
    pass()
}

/// Odd module parameters: three zones of 0 pages is EINVAL; one page in one zone loads and
/// serves it (or refuses at load with EINVAL, never a broken module); file_quota_pages=1
/// allows exactly one page; a zone asking for more than the host can give is capped;
/// negative and overflowing values are refused by insmod.
pub fn reload_with_odd_parameters() -> TestResult {
    let mut wrong = Vec::new();
    let result = (|| -> Result<(), String> {
        for args in [
            "dma_pages=0 dma32_pages=0 normal_pages=0",
            "dma_pages=-1",
            "normal_pages=18446744073709551616",
            "file_quota_pages=abc",
            "fail_nth_host_borrow=4294967296",
        ] {
            match reload(args) {
                Ok(_) => {
                    wrong.push(format!("{args}: loaded"));
                    reload("")?;
                }
                Err(_) => ensure_loaded()?,
            }
        }
        for args in [
            "dma_pages=0 dma32_pages=0 normal_pages=1",
            "dma_pages=1 dma32_pages=0 normal_pages=0",
            "dma_pages=0 dma32_pages=1 normal_pages=0",
            "dma_pages=1 dma32_pages=1 normal_pages=1",
            "dma_pages=0 dma32_pages=0 normal_pages=1024 min_free_kbytes=1",
            "dma_pages=0 dma32_pages=3 normal_pages=0 watermark_scale_factor=3000",
        ] {
            let r = reload(args);
            match r {
                Err(err) => {
                    if !err.contains("Invalid argument") {
                        wrong.push(format!("{args}: {err}"));
                    }
                    ensure_loaded()?;
                    continue;
                }
                Ok(_) => {}
            }
            let dev = open()?;
            let managed: u64 = [DMA, DMA32, NORMAL]
                .iter()
                .map(|&z| stats(&dev, z).map(|s| s.managed_pages))
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .sum();
            // Whatever the pool holds, allocating until ENOMEM and freeing works, with
            // every errno one of the contract's.
            let mut blocks = Vec::new();
            loop {
                match dev.alloc(0, NORMAL, 0) {
                    Ok(a) => blocks.push(a),
                    Err(err) if err.raw_os_error() == Some(libc::ENOMEM) => break,
                    Err(err) => {
                        wrong.push(format!("{args}: ALLOC: {err}"));
                        break;
                    }
                }
                if blocks.len() as u64 > managed {
                    wrong.push(format!(
                        "{args}: more blocks than the {managed} managed pages"
                    ));
                    break;
                }
            }
            for b in &blocks {
                if let Err(err) = dev.free(b.handle) {
                    wrong.push(format!("{args}: FREE: {err}"));
                }
            }
            // Watermarks at zero: then every page is served.
            for (z, name) in [(DMA, "DMA"), (DMA32, "DMA32"), (NORMAL, "Normal")] {
                if stats(&dev, z)?.managed_pages > 0 {
                    crate::common::write_watermarks(&format!("{name} 0 0 0"))?;
                }
            }
            drain()?;
            let mut n = 0u64;
            let mut held = Vec::new();
            while let Ok(a) = dev.alloc(
                0,
                NORMAL,
                sys::MINIMM_ALLOC_ATOMIC | sys::MINIMM_ALLOC_NOWAIT,
            ) {
                held.push(a);
                n += 1;
                if n > managed {
                    break;
                }
            }
            if n != managed {
                wrong.push(format!(
                    "{args}: {n} pages served with zero watermarks, {managed} managed"
                ));
            }
            drop(held);
            drop(dev);
            validate_ok().map_err(|err| format!("{args}: {err}"))?;
        }
        // file_quota_pages=1: exactly one page.
        reload("file_quota_pages=1")?;
        let dev = open()?;
        let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
        expect_errno(
            dev.alloc(0, NORMAL, 0),
            libc::EDQUOT,
            "second page, quota 1",
        )?;
        dev.free(a.handle).map_err(e)?;
        expect_errno(dev.alloc(1, NORMAL, 0), libc::EDQUOT, "order 1, quota 1")?;
        let a = dev.alloc(0, NORMAL, 0).map_err(e)?;
        let m = rw_shared(dev.fd(), a.mmap_offset, page_size()).map_err(e)?;
        dev.free(a.handle).map_err(e)?;
        expect_errno(
            dev.alloc(0, NORMAL, 0),
            libc::EDQUOT,
            "freed but mapped, quota 1",
        )?;
        drop(m);
        dev.alloc(0, NORMAL, 0)
            .map_err(|err| format!("after munmap, quota 1: {err}"))?;
        drop(dev);
        // A huge request is capped at half the host's free memory.
        let r = reload("normal_pages=1000000000");
        match r {
            Ok(_) => {
                let borrowed = info_value("borrowed_pages")?;
                let total = sh("grep MemTotal /proc/meminfo")?;
                let kb: u64 = total
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if borrowed * 4 > kb / 2 + 1024 {
                    wrong.push(format!(
                        "normal_pages=1e9: borrowed {borrowed} pages of {kb} kB"
                    ));
                }
            }
            Err(err) => wrong.push(format!("normal_pages=1000000000: {err}")),
        }
        Ok(())
    })();
    let restored = reload("").or_else(|_| ensure_loaded().map(|()| String::new()));
    result?;
    restored?;
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    pass()
}

/// page_owner and page_owner_sort with tens of thousands of live buffers (a larger pool and
/// quota): every buffer has its paragraph, the groups add up, and the read raises no kernel
/// warning (the records copied out for formatting must not need one giant allocation).
///
/// (It found that the records were once copied into one kmalloc'ed vector: at 70000 buffers an
/// order-11 request, which warned and left both files empty; they are copied into a KVVec now.)
pub fn page_owner_with_many_buffers() -> TestResult {
    let result = (|| -> Result<Option<String>, String> {
        if reload("normal_pages=131072 file_quota_pages=200000").is_err() {
            ensure_loaded()?;
            return Ok(Some("the host cannot lend 512 MiB".into()));
        }
        let dev = open()?;
        write_watermarks_zero(&dev)?;
        let want = 70_000usize;
        let mut n = 0usize;
        while n < want {
            match dev.alloc(0, NORMAL, 0) {
                Ok(_) => n += 1,
                Err(err) if err.raw_os_error() == Some(libc::ENOMEM) => break,
                Err(err) => return Err(format!("ALLOC {n}: {err}")),
            }
        }
        println!("# page_owner_with_many_buffers: {n} buffers");
        let mut wrong = Vec::new();
        match debugfs("page_owner") {
            Ok(text) => {
                let paragraphs = text
                    .lines()
                    .filter(|l| l.starts_with("Block allocated via"))
                    .count();
                if paragraphs != n {
                    wrong.push(format!(
                        "page_owner: {paragraphs} paragraphs ({} bytes) for {n} buffers",
                        text.len()
                    ));
                }
            }
            Err(err) => wrong.push(format!("read page_owner with {n} buffers: {err}")),
        }
        match debugfs("page_owner_sort") {
            Ok(sorted) => {
                let blocks: usize = sorted
                    .lines()
                    .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
                    .sum();
                if blocks != n {
                    wrong.push(format!("page_owner_sort: {blocks} blocks for {n} buffers"));
                }
            }
            Err(err) => wrong.push(format!("read page_owner_sort: {err}")),
        }
        check!(wrong.is_empty(), "{}", wrong.join("\n"));
        drop(dev);
        Ok(None)
    })();
    let restored = reload("").or_else(|_| ensure_loaded().map(|()| String::new()));
    let r = result?;
    restored?;
    match r {
        Some(why) => skip(why),
        None => pass(),
    }
}

fn write_watermarks_zero(dev: &Device) -> Result<(), String> {
    for (z, name) in [(DMA, "DMA"), (DMA32, "DMA32"), (NORMAL, "Normal")] {
        if stats(dev, z)?.managed_pages > 0 {
            crate::common::write_watermarks(&format!("{name} 0 0 0"))?;
        }
    }
    Ok(())
}

/// munmap, mremap and FREE of a block while BLOCK_DATA runs on it in another thread, and a
/// close of the last descriptor meanwhile: each BLOCK_DATA succeeds or is EINVAL, data done
/// by the kernel is what a mapping sees afterwards, and the pool is whole.
pub fn unmap_and_close_during_block_data() -> TestResult {
    let base = Baseline::take()?;
    let page = page_size();
    let barrier = Barrier::new(2);
    for i in 0..6u64 {
        let dev = open()?;
        let a = dev.alloc(10, NORMAL, 0).map_err(e)?;
        let m = rw_shared(dev.fd(), a.mmap_offset, page << 10).map_err(e)?;
        let dup = dev.try_clone().map_err(e)?;
        let results = thread::scope(|s| {
            let t = s.spawn(|| {
                barrier.wait();
                let mut out = Vec::new();
                for k in 0..4 {
                    let r = if k % 2 == 0 {
                        dup.fill(a.handle, i)
                    } else {
                        dup.checksum(a.handle).map(|_| ())
                    };
                    out.push(r);
                }
                out
            });
            barrier.wait();
            thread::sleep(Duration::from_millis(3 * i));
            drop(m);
            if i % 2 == 0 {
                let _ = dev.free(a.handle);
            }
            drop(dev);
            t.join()
        })
        .map_err(|_| "thread panicked")?;
        for r in results {
            if let Err(err) = r {
                check!(
                    err.raw_os_error() == Some(libc::EINVAL),
                    "iteration {i}: BLOCK_DATA: {err}"
                );
            }
        }
        drop(dup);
    }
    base.check()?;
    pass()
}

/// Reads of every debugfs file (also at odd offsets and sizes, with lseek) while other
/// threads allocate and free: each read succeeds and parses.
pub fn debugfs_reads_while_churning() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let stop = AtomicBool::new(false);
    let files = [
        "info",
        "buddyinfo",
        "zoneinfo",
        "unusable_index",
        "extfrag_index",
        "vmstat",
        "watermarks",
        "validate",
        "page_owner",
        "page_owner_sort",
        "bench",
        "pcp_lists",
    ];
    let mut wrong = Vec::new();
    thread::scope(|s| {
        for t in 0..2u32 {
            let (dev, stop) = (&dev, &stop);
            s.spawn(move || {
                let mut held = Vec::new();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if let Ok(a) = dev.alloc((i + t) % 6, [DMA, DMA32, NORMAL][(i % 3) as usize], 0)
                    {
                        held.push(a.handle);
                    }
                    if held.len() > 20 {
                        for h in held.drain(..10) {
                            let _ = dev.free(h);
                        }
                    }
                }
                for h in held {
                    let _ = dev.free(h);
                }
            });
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            for f in files {
                let path = format!("{DEBUGFS}/{f}");
                match std::fs::File::open(&path) {
                    Ok(file) => {
                        // Small reads at odd offsets, as a pager would.
                        let mut buf = [0u8; 7];
                        for off in [0u64, 3, 100, 1 << 20, 1 << 40] {
                            if let Err(err) = file.read_at(&mut buf, off) {
                                wrong.push(format!("{f} at {off}: {err}"));
                            }
                        }
                    }
                    Err(err) => wrong.push(format!("open {f}: {err}")),
                }
                if let Err(err) = debugfs(f) {
                    wrong.push(format!("read {f}: {err}"));
                }
            }
            if let Err(err) = validate_ok() {
                wrong.push(err);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(dev);
    base.check()?;
    pass()
}

/// The size field flipped by another thread while ALLOC reads its struct (between the read of
/// size and of the rest): every call returns success, EINVAL or E2BIG, a success's handle is
/// valid and freed, and no block is lost.
pub fn size_flipped_during_alloc() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let area = Area::map(
        -1,
        0,
        page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .map_err(e)?;
    let p = area.addr;
    let stop = AtomicBool::new(false);
    let mut wrong = Vec::new();
    let mut ok = 0;
    thread::scope(|s| {
        s.spawn(|| {
            let sizes = [40u32, 39, 4096, 4097, 0, u32::MAX, 48];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the page is ours and writable.
                unsafe { std::ptr::write_volatile(p as *mut u32, sizes[i % sizes.len()]) };
                i += 1;
            }
        });
        for _ in 0..3000 {
            // SAFETY: the page is writable; order, zone and flags at 4..16 stay valid.
            unsafe {
                std::ptr::write_volatile((p + 4) as *mut u32, 0);
                std::ptr::write_volatile((p + 8) as *mut u32, NORMAL);
                std::ptr::write_volatile((p + 12) as *mut u32, 0);
                std::ptr::write_volatile((p + 16) as *mut u64, 0);
            }
            // SAFETY: a page-sized valid buffer.
            match unsafe { dev.ioctl_raw(sys::MINIMM_IOC_ALLOC, p) } {
                Ok(_) => {
                    ok += 1;
                    // SAFETY: reading the handle back.
                    let h = unsafe { std::ptr::read_volatile((p + 16) as *const u64) };
                    if let Err(err) = dev.free(h) {
                        wrong.push(format!("FREE of returned handle {h}: {err}"));
                    }
                }
                Err(err)
                    if matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::E2BIG)) => {}
                Err(err) => wrong.push(format!("ALLOC: {err}")),
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    println!("# size_flipped_during_alloc: {ok} allocations succeeded");
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(dev);
    base.check()?;
    pass()
}

/// Paragraphs in debugfs `page_owner`: one per live buffer, module-wide.
fn owner_paragraphs() -> Result<usize, String> {
    Ok(debugfs("page_owner")
        .map_err(e)?
        .lines()
        .filter(|l| l.starts_with("Block allocated via"))
        .count())
}

/// ALLOC and BLOCK_DATA while another thread flips the struct's page between writable and
/// read-only: each call succeeds (with a usable handle) or is EFAULT; an ALLOC that failed
/// left no block, no owner record and no charge behind (the pool and page_owner count only
/// the successes), and the handle sequence has no hole a later ALLOC could not explain.
pub fn struct_made_readonly_midway() -> TestResult {
    let base = Baseline::take()?;
    let owners = owner_paragraphs()?;
    let dev = open()?;
    let page = page_size();
    let blk = dev.alloc(4, NORMAL, 0).map_err(e)?;
    let area = Area::map(
        -1,
        0,
        page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .map_err(e)?;
    let p = area.addr;
    // 0: the main thread asks for the page writable; 1: it is; 2: flip it at will; 3: stop.
    let state = std::sync::atomic::AtomicU32::new(0);
    let mut wrong = Vec::new();
    let (mut ok, mut efault) = (0, 0);
    let mut live = Vec::new();
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u32;
            loop {
                match state.load(Ordering::SeqCst) {
                    0 => {
                        // SAFETY: changing the protection of our own page.
                        unsafe {
                            libc::mprotect(
                                p as *mut libc::c_void,
                                page,
                                libc::PROT_READ | libc::PROT_WRITE,
                            )
                        };
                        let _ = state.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
                    }
                    1 => std::hint::spin_loop(),
                    2 => {
                        let prot = if i % 2 == 0 {
                            libc::PROT_READ
                        } else {
                            libc::PROT_READ | libc::PROT_WRITE
                        };
                        // SAFETY: as above.
                        unsafe { libc::mprotect(p as *mut libc::c_void, page, prot) };
                        i += 1;
                        for _ in 0..(i % 7) * 300 {
                            std::hint::spin_loop();
                        }
                    }
                    _ => return,
                }
            }
        });
        for i in 0..2000u32 {
            let alloc = i % 3 != 2;
            let mut bytes = if alloc {
                as_bytes(&sys::minimm_alloc {
                    size: size_of::<sys::minimm_alloc>() as u32,
                    order: i % 3,
                    zone: NORMAL,
                    ..Default::default()
                })
            } else {
                as_bytes(&sys::minimm_block_data {
                    size: size_of::<sys::minimm_block_data>() as u32,
                    op: i % 2,
                    handle: blk.handle,
                    seed: u64::from(i),
                    ..Default::default()
                })
            };
            state.store(0, Ordering::SeqCst);
            while state.load(Ordering::SeqCst) != 1 {
                std::hint::spin_loop();
            }
            // SAFETY: the page is writable until we let the other thread flip it.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p as *mut u8, bytes.len()) };
            state.store(2, Ordering::SeqCst);
            let cmd = if alloc {
                sys::MINIMM_IOC_ALLOC
            } else {
                sys::MINIMM_IOC_BLOCK_DATA
            };
            // SAFETY: a page-sized buffer, valid to read, writable or not at any moment.
            let r = unsafe { dev.ioctl_raw(cmd, p) };
            // SAFETY: the page is always readable.
            unsafe {
                std::ptr::copy_nonoverlapping(p as *const u8, bytes.as_mut_ptr(), bytes.len())
            };
            match r {
                Ok(_) => {
                    ok += 1;
                    if alloc {
                        let h = u64::from_ne_bytes(bytes[16..24].try_into().unwrap_or([0; 8]));
                        live.push(h);
                    }
                }
                Err(err) if err.raw_os_error() == Some(libc::EFAULT) => efault += 1,
                Err(err) => wrong.push(format!("call {i}: {err}")),
            }
        }
        state.store(3, Ordering::SeqCst);
    });
    println!("# struct_made_readonly_midway: {ok} succeeded, {efault} EFAULT");
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every success's handle is live; nothing else is.
    check_eq!(owner_paragraphs()?, owners + 1 + live.len());
    for &h in &live {
        dev.checksum(h)
            .map_err(|err| format!("returned handle {h}: {err}"))?;
        dev.free(h).map_err(e)?;
    }
    check_eq!(owner_paragraphs()?, owners + 1);
    dev.free(blk.handle).map_err(e)?;
    drop(dev);
    check_eq!(owner_paragraphs()?, owners);
    base.check()?;
    pass()
}

/// A command's struct placed inside a mapping of a minimm block, before and after its first
/// touch: the copy faults the block's pages in from inside the ioctl. BLOCK_DATA FILL whose
/// struct lies in the very block it fills ends with the pattern there, overwritten by the
/// struct written back. FREE whose struct lies in the block it frees works.
pub fn struct_inside_a_block_mapping() -> TestResult {
    let base = Baseline::take()?;
    let dev = open()?;
    let page = page_size();
    let a = dev.alloc(1, NORMAL, 0).map_err(e)?;
    // Not touched yet: GET_INFO at the end of the mapping faults it in inside the ioctl.
    let m = rw_shared(dev.fd(), a.mmap_offset, 2 * page).map_err(e)?;
    let at = m.addr + 2 * page - size_of::<sys::minimm_info>();
    // SAFETY: `at` lies in our mapping; the write faults its pages in.
    unsafe {
        (at as *mut sys::minimm_info).write_unaligned(sys::minimm_info {
            size: size_of::<sys::minimm_info>() as u32,
            ..Default::default()
        })
    };
    // SAFETY: a valid struct in our mapping.
    unsafe { dev.ioctl_raw(sys::MINIMM_IOC_GET_INFO, at) }
        .map_err(|err| format!("GET_INFO: {err}"))?;
    drop(m);
    // Freshly mapped and untouched: the struct is copied from the fault-in of the ioctl.
    let m = rw_shared(dev.fd(), a.mmap_offset, 2 * page).map_err(e)?;
    let d = sys::minimm_block_data {
        size: size_of::<sys::minimm_block_data>() as u32,
        op: sys::MINIMM_BLOCK_FILL,
        handle: a.handle,
        seed: 42,
        ..Default::default()
    };
    let off = page + 64;
    // Write the struct through a second mapping, so that `m` stays untouched.
    {
        let m2 = rw_shared(dev.fd(), a.mmap_offset, 2 * page).map_err(e)?;
        // SAFETY: in our mapping.
        unsafe { ((m2.addr + off) as *mut sys::minimm_block_data).write_unaligned(d) };
    }
    // SAFETY: a valid struct inside the block it fills.
    unsafe { dev.ioctl_raw(sys::MINIMM_IOC_BLOCK_DATA, m.addr + off) }
        .map_err(|err| format!("FILL from inside the block: {err}"))?;
    let mut want = vec![0u8; 2 * page];
    fill_pattern(42, &mut want);
    want[off..off + size_of::<sys::minimm_block_data>()].copy_from_slice(&as_bytes(&d));
    check!(
        m.bytes() == &want[..],
        "block after a fill whose struct lies in it"
    );
    check_eq!(dev.checksum(a.handle).map_err(e)?, checksum(&want));
    // FREE with its struct in the block being freed.
    let f = sys::minimm_free {
        size: size_of::<sys::minimm_free>() as u32,
        handle: a.handle,
        ..Default::default()
    };
    // SAFETY: in our mapping.
    unsafe { (m.addr as *mut sys::minimm_free).write_unaligned(f) };
    // SAFETY: a valid struct.
    unsafe { dev.ioctl_raw(sys::MINIMM_IOC_FREE, m.addr) }.map_err(|err| format!("FREE: {err}"))?;
    expect_errno(dev.checksum(a.handle), libc::EINVAL, "freed")?;
    // SAFETY: still mapped: the block stays until munmap.
    check_eq!(
        unsafe { (m.addr as *const sys::minimm_free).read_unaligned() }.handle,
        a.handle
    );
    drop(m);
    drop(dev);
    base.check()?;
    pass()
}
