// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers of the system calls the fuzzer makes on mappings and sockets, and of the
//! slab ioctls (raw, from the generated structs), each returning `io::Result` with the errno.

use std::{
    io,
    mem::size_of,
    os::fd::{FromRawFd, OwnedFd},
};

use minimm_uapi::{sys as uapi, Device};

fn check(r: i32) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) use crate::common::mmap;

/// An inaccessible anonymous reservation of `len` bytes, a target for `MREMAP_FIXED`.
pub(crate) fn reserve(len: usize) -> io::Result<usize> {
    mmap(
        -1,
        0,
        len,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
}

/// `munmap`. The callers pass ranges of their own mappings only.
pub(crate) fn munmap(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller's own mapping (or a range the test expects the kernel to refuse).
    check(unsafe { libc::munmap(addr as *mut libc::c_void, len) })
}

/// `mprotect` of part of one of the caller's mappings.
pub(crate) fn mprotect(addr: usize, len: usize, prot: i32) -> io::Result<()> {
    // SAFETY: changes the protection of the caller's own mapping; the model stops touching
    // pages it made inaccessible.
    check(unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) })
}

/// `madvise` of part of one of the caller's mappings.
pub(crate) fn madvise(addr: usize, len: usize, advice: i32) -> io::Result<()> {
    // SAFETY: changes how the kernel treats the caller's own mapping; after MADV_DONTNEED the
    // model touches the range only as `model::after_dontneed` says it may.
    check(unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) })
}

/// `mremap`: the new address.
pub(crate) fn mremap(
    addr: usize,
    old: usize,
    new: usize,
    flags: i32,
    target: usize,
) -> io::Result<usize> {
    // SAFETY: moves or resizes the caller's own mapping, onto the caller's own reservation
    // when MREMAP_FIXED is given.
    let p = unsafe {
        libc::mremap(
            addr as *mut libc::c_void,
            old,
            new,
            flags,
            target as *mut libc::c_void,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as usize)
    }
}

/// Words of a message that passes a file between worker processes.
pub(crate) const MSG_WORDS: usize = 6;

/// A connected pair of unix datagram sockets, made before the workers fork: every worker
/// keeps both ends of every worker's pair, and sends a file to worker `w` on `w`'s pair.
pub(crate) fn socketpair_dgram() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair just installed both descriptors for us alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for one descriptor in a control message.
const CMSG_ROOM: usize = 64;

/// Sends descriptor `fd` over unix socket `sock` with `SCM_RIGHTS`, and `tag` as the data.
pub(crate) fn send_fd(sock: i32, fd: i32, tag: u8) -> io::Result<()> {
    let mut data = [tag];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; CMSG_ROOM / 8];
    // SAFETY: a zeroed msghdr is valid; its pointers are set below to live buffers.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE computes a size; no memory is touched.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<i32>() as u32) } as usize;
    // SAFETY: `msg` has a control buffer of at least one CMSG_SPACE(int), so CMSG_FIRSTHDR is
    // a valid header inside it, and CMSG_DATA has room for one int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<i32>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<i32>().write_unaligned(fd);
    }
    // SAFETY: `msg` points to live buffers of the lengths it states.
    if unsafe { libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one descriptor and its tag from unix socket `sock`, if one is queued.
pub(crate) fn recv_fd(sock: i32) -> io::Result<Option<(OwnedFd, u8)>> {
    let mut data = [0u8];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; CMSG_ROOM / 8];
    // SAFETY: a zeroed msghdr is valid; its pointers are set below to live buffers.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_ROOM;
    // SAFETY: `msg` points to live buffers of the lengths it states.
    let r = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: recvmsg filled the control buffer and set `msg_controllen`: CMSG_FIRSTHDR is
    // NULL or a header inside it.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: a non-NULL header from CMSG_FIRSTHDR is inside the control buffer.
    let ok = !cmsg.is_null()
        && unsafe {
            (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        };
    if !ok {
        return Err(io::Error::other("a message without SCM_RIGHTS"));
    }
    // SAFETY: an SCM_RIGHTS message carries at least one int in its data.
    let fd = unsafe { libc::CMSG_DATA(cmsg).cast::<i32>().read_unaligned() };
    // SAFETY: the kernel installed `fd` in this process for us alone.
    Ok(Some((unsafe { OwnedFd::from_raw_fd(fd) }, data[0])))
}

// ---- slab ioctls (MINIMM_FEAT_SLAB) ----------------------------------------------------

/// `MINIMM_IOC_SLAB_STATS` of cache `cache`.
pub(crate) fn slab_stats(dev: &Device, cache: u64) -> io::Result<uapi::minimm_slab_stats> {
    let mut s = uapi::minimm_slab_stats {
        size: size_of::<uapi::minimm_slab_stats>() as u32,
        cache,
        ..Default::default()
    };
    dev.ioctl(uapi::MINIMM_IOC_SLAB_STATS, &mut s)?;
    Ok(s)
}

/// `MINIMM_IOC_SLAB_FREE` of object `object`.
pub(crate) fn slab_free(dev: &Device, object: u64) -> io::Result<()> {
    let mut f = uapi::minimm_slab_free {
        size: size_of::<uapi::minimm_slab_free>() as u32,
        object,
        ..Default::default()
    };
    dev.ioctl(uapi::MINIMM_IOC_SLAB_FREE, &mut f).map(|_| ())
}

/// `MINIMM_IOC_SLAB_DESTROY` or `MINIMM_IOC_SLAB_SHRINK` (`cmd`) of cache `cache`: the
/// pages freed (SHRINK).
pub(crate) fn slab_cache(dev: &Device, cmd: u32, cache: u64) -> io::Result<u64> {
    let mut c = uapi::minimm_slab_cache {
        size: size_of::<uapi::minimm_slab_cache>() as u32,
        cache,
        ..Default::default()
    };
    dev.ioctl(cmd, &mut c)?;
    Ok(c.pages_freed)
}

/// `MINIMM_IOC_SLAB_ALLOC`: the struct written back.
pub(crate) fn slab_alloc(
    dev: &Device,
    cache: u64,
    bytes: u32,
    flags: u32,
) -> io::Result<uapi::minimm_slab_alloc> {
    let mut a = uapi::minimm_slab_alloc {
        size: size_of::<uapi::minimm_slab_alloc>() as u32,
        flags,
        cache,
        bytes,
        ..Default::default()
    };
    dev.ioctl(uapi::MINIMM_IOC_SLAB_ALLOC, &mut a)?;
    Ok(a)
}

/// `MINIMM_IOC_SLAB_DATA` of `len` bytes at `offset` of `object`, to or from `buf`.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes for the access `op` makes (written for
/// `MINIMM_SLAB_READ`, read for `MINIMM_SLAB_WRITE`), or deliberately invalid (the kernel then
/// answers `EFAULT`).
pub(crate) unsafe fn slab_data(
    dev: &Device,
    op: u32,
    object: u64,
    offset: u32,
    len: u32,
    buf: usize,
) -> io::Result<()> {
    let mut d = uapi::minimm_slab_data {
        size: size_of::<uapi::minimm_slab_data>() as u32,
        op,
        object,
        offset,
        len,
        buf: buf as u64,
    };
    dev.ioctl(uapi::MINIMM_IOC_SLAB_DATA, &mut d).map(|_| ())
}

/// `MINIMM_IOC_SLAB_BULK` of `count` objects of `cache`, their handles at `objects`.
///
/// # Safety
///
/// `objects` must be valid for `count` handles for the access `op` makes (written for
/// `MINIMM_SLAB_BULK_ALLOC`, read for `MINIMM_SLAB_BULK_FREE`), or deliberately invalid.
pub(crate) unsafe fn slab_bulk(
    dev: &Device,
    op: u32,
    cache: u64,
    count: u32,
    flags: u32,
    objects: usize,
) -> io::Result<()> {
    let mut b = uapi::minimm_slab_bulk {
        size: size_of::<uapi::minimm_slab_bulk>() as u32,
        op,
        cache,
        count,
        flags,
        objects: objects as u64,
    };
    dev.ioctl(uapi::MINIMM_IOC_SLAB_BULK, &mut b).map(|_| ())
}
