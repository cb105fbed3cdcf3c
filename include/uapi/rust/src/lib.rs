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

/// The device node.
pub const PATH: &CStr = c"/dev/minimm";

/// An open file of `/dev/minimm`.
pub struct Device {
    fd: OwnedFd,
}

impl Device {
    /// Opens `/dev/minimm` read-write.
    pub fn open() -> io::Result<Self> {
        // SAFETY: `PATH` is a NUL-terminated string; open has no other preconditions.
        let fd = unsafe { libc::open(PATH.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
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
        let mut info = sys::minimm_info { size: size_of::<sys::minimm_info>() as u32, ..Default::default() };
        self.ioctl(sys::MINIMM_IOC_GET_INFO, &mut info)?;
        Ok(info)
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
