// SPDX-License-Identifier: GPL-2.0

//! User-space side of `/dev/minimm`.
//!
//! [`sys`] holds the bindings generated at build time from `include/uapi/linux/minimm.h`
//! (structs and constants by bindgen, ioctl numbers by the C compiler). [`Device`] is a thin
//! wrapper that the selftests and samples share: it opens the device and issues ioctls,
//! turning failures into `std::io::Error` with the errno.

use std::{
    ffi::CStr,
    io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// Bindings generated from the uapi header.
#[allow(non_camel_case_types, non_upper_case_globals, dead_code)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
    include!(concat!(env!("OUT_DIR"), "/ioctls.rs"));
}

/// The module's data patterns and checksum, the very file the module compiles.
#[path = "../../../../rust/pattern.rs"]
#[allow(dead_code)]
mod pattern;

/// 64-bit FNV-1a of `bytes`, as `MINIMM_BLOCK_CHECKSUM` computes it.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = pattern::Fnv1a::new();
    h.update(bytes);
    h.finish()
}

/// Fills `buf` (at byte 0 of a block) with the pattern of `seed`, as `MINIMM_BLOCK_FILL` does.
pub fn fill_pattern(seed: u64, buf: &mut [u8]) {
    pattern::fill(seed, 0, buf);
}

/// Fills `buf`, which sits at byte `offset` of a block (a multiple of 8), with the pattern of
/// `seed` as it is at that offset: what `MINIMM_BLOCK_FILL` writes there.
pub fn fill_pattern_at(seed: u64, offset: u64, buf: &mut [u8]) {
    pattern::fill(seed, offset, buf);
}

/// The device node.
pub const PATH: &CStr = c"/dev/minimm";

/// An open file of `/dev/minimm`.
pub struct Device {
    fd: OwnedFd,
}

impl Device {
    /// Opens `/dev/minimm` read-write.
    pub fn open() -> io::Result<Self> {
        Self::open_mode(libc::O_RDWR)
    }

    /// Opens `/dev/minimm` with `mode`: `O_RDONLY`, `O_WRONLY` or `O_RDWR` (close-on-exec).
    pub fn open_mode(mode: i32) -> io::Result<Self> {
        // SAFETY: `PATH` is a NUL-terminated string; open has no other preconditions.
        let fd = unsafe { libc::open(PATH.as_ptr(), mode | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Issues ioctl `cmd` with `arg` as its argument, as the raw system call does.
    ///
    /// # Safety
    ///
    /// `arg` must be what the kernel expects for `cmd`: for a pointer argument, either valid
    /// for the access `cmd` makes or deliberately invalid (the kernel then returns `EFAULT`).
    pub unsafe fn ioctl_raw(&self, cmd: u32, arg: usize) -> io::Result<i32> {
        // SAFETY: the caller vouches for `arg`; the fd is open.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), cmd as libc::c_ulong, arg) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    /// Issues ioctl `cmd` on `arg`, which the kernel reads and/or writes.
    pub fn ioctl<T>(&self, cmd: u32, arg: &mut T) -> io::Result<i32> {
        // SAFETY: `arg` is a valid, exclusive pointer to a `T`, the struct `cmd` encodes.
        unsafe { self.ioctl_raw(cmd, arg as *mut T as usize) }
    }

    /// `MINIMM_IOC_GET_INFO`.
    pub fn info(&self) -> io::Result<sys::minimm_info> {
        let mut info = sys::minimm_info {
            size: size_of::<sys::minimm_info>() as u32,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_GET_INFO, &mut info)?;
        Ok(info)
    }

    /// `MINIMM_IOC_ALLOC`: a block of 2^`order` pages from `zone` or below.
    pub fn alloc(&self, order: u32, zone: u32, flags: u32) -> io::Result<sys::minimm_alloc> {
        let mut a = sys::minimm_alloc {
            size: size_of::<sys::minimm_alloc>() as u32,
            order,
            zone,
            flags,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_ALLOC, &mut a)?;
        Ok(a)
    }

    /// `MINIMM_IOC_FREE`.
    pub fn free(&self, handle: u64) -> io::Result<()> {
        let mut f = sys::minimm_free {
            size: size_of::<sys::minimm_free>() as u32,
            handle,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_FREE, &mut f).map(|_| ())
    }

    /// `MINIMM_IOC_BLOCK_DATA` with `MINIMM_BLOCK_CHECKSUM`.
    pub fn checksum(&self, handle: u64) -> io::Result<u64> {
        let mut d = sys::minimm_block_data {
            size: size_of::<sys::minimm_block_data>() as u32,
            op: sys::MINIMM_BLOCK_CHECKSUM,
            handle,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_BLOCK_DATA, &mut d)?;
        Ok(d.result)
    }

    /// `MINIMM_IOC_BLOCK_DATA` with `MINIMM_BLOCK_FILL`.
    pub fn fill(&self, handle: u64, seed: u64) -> io::Result<()> {
        let mut d = sys::minimm_block_data {
            size: size_of::<sys::minimm_block_data>() as u32,
            op: sys::MINIMM_BLOCK_FILL,
            handle,
            seed,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_BLOCK_DATA, &mut d).map(|_| ())
    }

    /// `MINIMM_IOC_ZONE_STATS`.
    pub fn zone_stats(&self, zone: u32) -> io::Result<sys::minimm_zone_stats> {
        let mut s = sys::minimm_zone_stats {
            size: size_of::<sys::minimm_zone_stats>() as u32,
            zone,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_ZONE_STATS, &mut s)?;
        Ok(s)
    }

    /// Maps `len` bytes at `offset` of the device, shared and read-write.
    pub fn map(&self, offset: u64, len: usize) -> io::Result<Mapping> {
        self.map_with(offset, len, libc::MAP_SHARED)
    }

    /// Maps with explicit `mmap(2)` flags.
    pub fn map_with(&self, offset: u64, len: usize, flags: i32) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel; nothing else is at that address.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                self.fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    /// A second descriptor of the same open file (`dup`).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            fd: self.fd.try_clone()?,
        })
    }

    /// An open file of `/dev/minimm` received from elsewhere (inherited, or passed over a unix
    /// socket with `SCM_RIGHTS`).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// The raw file descriptor, for mmap and poll.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Reads a debugfs file of minimm, e.g. `debugfs("info")`.
pub fn debugfs(name: &str) -> io::Result<String> {
    std::fs::read_to_string(format!("/sys/kernel/debug/minimm/{name}"))
}

/// Parses `key: value` lines, as in debugfs `minimm/info`.
pub fn parse_kv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A user mapping of a block; unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for the mapping's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` writable bytes, exclusively borrowed here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
