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

    /// `MINIMM_IOC_VM_CREATE`: an area of `bytes` (rounded up to pages) from `zone` or below.
    pub fn vm_create(
        &self,
        bytes: u64,
        zone: u32,
        flags: u32,
    ) -> io::Result<sys::minimm_vm_create> {
        let mut a = sys::minimm_vm_create {
            size: size_of::<sys::minimm_vm_create>() as u32,
            zone,
            bytes,
            flags,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_VM_CREATE, &mut a)?;
        Ok(a)
    }

    /// `MINIMM_IOC_VM_FREE`.
    pub fn vm_free(&self, handle: u64) -> io::Result<()> {
        let mut f = sys::minimm_free {
            size: size_of::<sys::minimm_free>() as u32,
            handle,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_VM_FREE, &mut f).map(|_| ())
    }

    /// `MINIMM_IOC_VM_RESIZE`: the area `handle`, `bytes` long from now on.
    pub fn vm_resize(&self, handle: u64, bytes: u64) -> io::Result<sys::minimm_vm_resize> {
        let mut r = sys::minimm_vm_resize {
            size: size_of::<sys::minimm_vm_resize>() as u32,
            handle,
            bytes,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_VM_RESIZE, &mut r)?;
        Ok(r)
    }

    /// `MINIMM_IOC_VM_INFO`.
    pub fn vm_info(&self, handle: u64) -> io::Result<sys::minimm_vm_info> {
        let mut i = sys::minimm_vm_info {
            size: size_of::<sys::minimm_vm_info>() as u32,
            handle,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_VM_INFO, &mut i)?;
        Ok(i)
    }

    /// `MINIMM_IOC_UNPIN`: the discardable block's contents may be purged from now on.
    pub fn unpin(&self, handle: u64) -> io::Result<()> {
        let mut p = sys::minimm_pin {
            size: size_of::<sys::minimm_pin>() as u32,
            handle,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_UNPIN, &mut p)?;
        Ok(())
    }

    /// `MINIMM_IOC_PIN`: in use again; `true` if it was purged meanwhile (new, zeroed pages).
    pub fn pin(&self, handle: u64) -> io::Result<bool> {
        let mut p = sys::minimm_pin {
            size: size_of::<sys::minimm_pin>() as u32,
            handle,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_PIN, &mut p)?;
        Ok(p.result & u64::from(sys::MINIMM_PIN_PURGED) != 0)
    }

    /// `MINIMM_IOC_WMARK_EVENTS`: the watermark events, read (POLLPRI cleared for this file).
    pub fn wmark_events(&self) -> io::Result<sys::minimm_wmark_events> {
        let mut w = sys::minimm_wmark_events {
            size: size_of::<sys::minimm_wmark_events>() as u32,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_WMARK_EVENTS, &mut w)?;
        Ok(w)
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

    /// `MINIMM_IOC_SLAB_CREATE`: a cache named `name` (at most 31 bytes; for odd names fill a
    /// [`sys::minimm_slab_create`] with [`slab_name`] and use [`Device::ioctl`]). Returns the
    /// cache handle.
    pub fn slab_create(
        &self,
        name: &str,
        object_size: u32,
        align: u32,
        flags: u32,
        ctor_seed: u64,
    ) -> io::Result<u64> {
        if name.len() >= sys::MINIMM_SLAB_NAME_LEN as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cache name longer than 31 bytes",
            ));
        }
        let mut c = sys::minimm_slab_create {
            size: size_of::<sys::minimm_slab_create>() as u32,
            flags,
            object_size,
            align,
            ctor_seed,
            name: slab_name(name.as_bytes()),
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_CREATE, &mut c)?;
        Ok(c.cache)
    }

    /// `MINIMM_IOC_SLAB_DESTROY`.
    pub fn slab_destroy(&self, cache: u64) -> io::Result<()> {
        let mut c = sys::minimm_slab_cache {
            size: size_of::<sys::minimm_slab_cache>() as u32,
            cache,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_DESTROY, &mut c).map(|_| ())
    }

    /// `MINIMM_IOC_SLAB_SHRINK`: the pages the cache gave back.
    pub fn slab_shrink(&self, cache: u64) -> io::Result<u64> {
        let mut c = sys::minimm_slab_cache {
            size: size_of::<sys::minimm_slab_cache>() as u32,
            cache,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_SHRINK, &mut c)?;
        Ok(c.pages_freed)
    }

    /// `MINIMM_IOC_SLAB_ALLOC`: an object of `cache`, or with `cache` 0 a generic object of
    /// `bytes` bytes.
    pub fn slab_alloc(
        &self,
        cache: u64,
        bytes: u32,
        flags: u32,
    ) -> io::Result<sys::minimm_slab_alloc> {
        let mut a = sys::minimm_slab_alloc {
            size: size_of::<sys::minimm_slab_alloc>() as u32,
            flags,
            cache,
            bytes,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_ALLOC, &mut a)?;
        Ok(a)
    }

    /// `MINIMM_IOC_SLAB_FREE`.
    pub fn slab_free(&self, object: u64) -> io::Result<()> {
        let mut f = sys::minimm_slab_free {
            size: size_of::<sys::minimm_slab_free>() as u32,
            object,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_FREE, &mut f).map(|_| ())
    }

    /// `MINIMM_IOC_SLAB_BULK` with `op` on `count` handles at `objects`.
    fn slab_bulk(
        &self,
        op: u32,
        cache: u64,
        flags: u32,
        objects: *mut u64,
        count: usize,
    ) -> io::Result<()> {
        let mut b = sys::minimm_slab_bulk {
            size: size_of::<sys::minimm_slab_bulk>() as u32,
            op,
            cache,
            count: u32::try_from(count).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
            flags,
            objects: objects as u64,
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_BULK, &mut b).map(|_| ())
    }

    /// `MINIMM_IOC_SLAB_BULK` with `MINIMM_SLAB_BULK_ALLOC`: `objects.len()` objects of `cache`,
    /// their handles written to `objects`.
    pub fn slab_bulk_alloc(&self, cache: u64, flags: u32, objects: &mut [u64]) -> io::Result<()> {
        let count = objects.len();
        self.slab_bulk(
            sys::MINIMM_SLAB_BULK_ALLOC,
            cache,
            flags,
            objects.as_mut_ptr(),
            count,
        )
    }

    /// `MINIMM_IOC_SLAB_BULK` with `MINIMM_SLAB_BULK_FREE`: frees every object in `objects`.
    pub fn slab_bulk_free(&self, cache: u64, objects: &[u64]) -> io::Result<()> {
        // The kernel only reads the array for a FREE.
        self.slab_bulk(
            sys::MINIMM_SLAB_BULK_FREE,
            cache,
            0,
            objects.as_ptr().cast_mut(),
            objects.len(),
        )
    }

    /// `MINIMM_IOC_SLAB_DATA` with `op` over `len` bytes at `buf` (a user address, which may
    /// be deliberately bad).
    pub fn slab_data_raw(
        &self,
        op: u32,
        object: u64,
        offset: u32,
        len: u32,
        buf: usize,
    ) -> io::Result<()> {
        let mut d = sys::minimm_slab_data {
            size: size_of::<sys::minimm_slab_data>() as u32,
            op,
            object,
            offset,
            len,
            buf: buf as u64,
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_DATA, &mut d).map(|_| ())
    }

    /// `MINIMM_IOC_SLAB_DATA` with `MINIMM_SLAB_READ`: fills `buf` from byte `offset` of
    /// `object`.
    pub fn slab_read(&self, object: u64, offset: u32, buf: &mut [u8]) -> io::Result<()> {
        let len =
            u32::try_from(buf.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.slab_data_raw(
            sys::MINIMM_SLAB_READ,
            object,
            offset,
            len,
            buf.as_mut_ptr() as usize,
        )
    }

    /// `MINIMM_IOC_SLAB_DATA` with `MINIMM_SLAB_WRITE`: copies `buf` to byte `offset` of
    /// `object`.
    pub fn slab_write(&self, object: u64, offset: u32, buf: &[u8]) -> io::Result<()> {
        let len =
            u32::try_from(buf.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.slab_data_raw(
            sys::MINIMM_SLAB_WRITE,
            object,
            offset,
            len,
            buf.as_ptr() as usize,
        )
    }

    /// `MINIMM_IOC_SLAB_STATS`.
    pub fn slab_stats(&self, cache: u64) -> io::Result<sys::minimm_slab_stats> {
        let mut s = sys::minimm_slab_stats {
            size: size_of::<sys::minimm_slab_stats>() as u32,
            cache,
            ..Default::default()
        };
        self.ioctl(sys::MINIMM_IOC_SLAB_STATS, &mut s)?;
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

/// `name` as `minimm_slab_create.name`: its first 32 bytes, the rest zero (no NUL is added:
/// a name of 32 bytes or more has none).
pub fn slab_name(name: &[u8]) -> [core::ffi::c_char; sys::MINIMM_SLAB_NAME_LEN as usize] {
    let mut out = [0; sys::MINIMM_SLAB_NAME_LEN as usize];
    for (o, &b) in out.iter_mut().zip(name) {
        *o = b as core::ffi::c_char;
    }
    out
}

/// One cache's line of a /proc/slabinfo version 2.1 file (debugfs `minimm/slabinfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlabinfoLine {
    pub name: String,
    pub active_objs: u64,
    pub num_objs: u64,
    /// Bytes from one object to the next (SLUB's `s->size`).
    pub objsize: u64,
    pub objperslab: u64,
    pub pagesperslab: u64,
    pub limit: u64,
    pub batchcount: u64,
    pub sharedfactor: u64,
    pub active_slabs: u64,
    pub num_slabs: u64,
    pub sharedavail: u64,
}

/// The header of /proc/slabinfo version 2.1 (mm/slab_common.c `print_slabinfo_header`).
pub const SLABINFO_HEADER: [&str; 2] = [
    "slabinfo - version: 2.1",
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> \
     : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> \
     <sharedavail>",
];

/// One line of /proc/vmallocinfo (or debugfs `minimm/vmallocinfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmallocLine {
    pub start: u64,
    pub end: u64,
    /// Bytes, the guard page included (as Linux counts `vm_struct.size`).
    pub size: u64,
    /// The caller column (`func+0x1a/0x60`, with ` [module]` when there is one).
    pub caller: String,
    /// `pages=N`, when the line has it.
    pub pages: Option<u64>,
    /// Bare words: `vmalloc`, `vmap`, `ioremap`, `user`, `vpages`, minimm's `large`...
    pub flags: Vec<String>,
    /// `key=value` words but `pages=`: `N0=4`, `phys=0x...`, minimm's `DMA=`, `DMA32=`,
    /// `Normal=`.
    pub extra: Vec<(String, String)>,
}

/// Parses /proc/vmallocinfo as `mm/vmalloc.c`'s `vmalloc_info_show` prints it: `0x<start>-
/// 0x<end> <size> <caller> [[module]] [pages=N] [phys=..] <flags and key=value words>`.
pub fn parse_vmallocinfo(text: &str) -> Result<Vec<VmallocLine>, String> {
    let hex = |t: &str| -> Result<u64, String> {
        let h = t.strip_prefix("0x").ok_or(format!("{t:?} lacks 0x"))?;
        u64::from_str_radix(h, 16).map_err(|err| format!("{t:?}: {err}"))
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let range = words.next().ok_or(format!("empty line {line:?}"))?;
        let (a, b) = range
            .split_once('-')
            .ok_or(format!("no range in {line:?}"))?;
        let size = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or(format!("no size in {line:?}"))?;
        let mut caller = words
            .next()
            .ok_or(format!("no caller in {line:?}"))?
            .to_string();
        let mut l = VmallocLine {
            start: hex(a)?,
            end: hex(b)?,
            size,
            ..Default::default()
        };
        for w in words {
            if w.starts_with('[') && l.pages.is_none() && l.flags.is_empty() && l.extra.is_empty() {
                caller.push(' ');
                caller.push_str(w);
            } else if let Some(n) = w.strip_prefix("pages=") {
                l.pages = Some(n.parse().map_err(|_| format!("pages in {line:?}"))?);
            } else if let Some((k, v)) = w.split_once('=') {
                l.extra.push((k.to_string(), v.to_string()));
            } else {
                l.flags.push(w.to_string());
            }
        }
        l.caller = caller;
        out.push(l);
    }
    Ok(out)
}

/// Parses a /proc/slabinfo version 2.1 text as slabtop does, strictly: the two header lines,
/// then per cache its name, five numbers, `: tunables` and three numbers, `: slabdata` and
/// three numbers.
pub fn parse_slabinfo(text: &str) -> Result<Vec<SlabinfoLine>, String> {
    let mut lines = text.lines();
    for want in SLABINFO_HEADER {
        match lines.next() {
            Some(l) if l == want => {}
            other => return Err(format!("slabinfo header: {other:?}, want {want:?}")),
        }
    }
    lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let shape_ok = w.len() == 16
                && w[6] == ":"
                && w[7] == "tunables"
                && w[11] == ":"
                && w[12] == "slabdata";
            if !shape_ok {
                return Err(format!("slabinfo line {l:?}"));
            }
            let n = |i: usize| {
                w[i].parse::<u64>()
                    .map_err(|_| format!("slabinfo line {l:?}: field {} {:?}", i + 1, w[i]))
            };
            Ok(SlabinfoLine {
                name: w[0].to_string(),
                active_objs: n(1)?,
                num_objs: n(2)?,
                objsize: n(3)?,
                objperslab: n(4)?,
                pagesperslab: n(5)?,
                limit: n(8)?,
                batchcount: n(9)?,
                sharedfactor: n(10)?,
                active_slabs: n(13)?,
                num_slabs: n(14)?,
                sharedavail: n(15)?,
            })
        })
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
