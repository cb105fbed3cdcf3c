// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers of the system calls the fuzzer makes on mappings and sockets, each returning
//! `io::Result` with the errno.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

fn check(r: i32) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mmap(NULL, len, prot, flags, fd, offset)`: the address.
pub(crate) fn mmap(fd: i32, offset: u64, len: usize, prot: i32, flags: i32) -> io::Result<usize> {
    // SAFETY: a new mapping where the kernel chooses; nothing of ours is replaced.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            prot,
            flags,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as usize)
    }
}

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

/// A duplicate of descriptor `fd` of process `pid`, with `pidfd_open` and `pidfd_getfd`: the
/// same open file. (The test kernel has no unix sockets, so no SCM_RIGHTS.)
pub(crate) fn pidfd_getfd(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pidfd` was just opened for us alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel installed descriptor `r` in this process for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}
