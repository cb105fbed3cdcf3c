// SPDX-License-Identifier: GPL-2.0

//! Helpers the test files share: opening the device, zone statistics, debugfs counters, a
//! CPU-affinity guard, forked children, shell commands and module reloads.

use std::{io, mem::size_of, process::Command};

use minimm_uapi::{debugfs, parse_kv, sys, Device};

pub(crate) const DMA: u32 = sys::MINIMM_ZONE_DMA;
pub(crate) const DMA32: u32 = sys::MINIMM_ZONE_DMA32;
pub(crate) const NORMAL: u32 = sys::MINIMM_ZONE_NORMAL;

/// debugfs directory of minimm.
pub(crate) const DEBUGFS: &str = "/sys/kernel/debug/minimm";

/// Where the VM's initramfs keeps the module.
pub(crate) const MODULE_PATH: &str = "/lib/modules/minimm.ko";

pub(crate) fn open() -> Result<Device, String> {
    Device::open().map_err(|e| format!("open: {e}"))
}

pub(crate) fn stats(dev: &Device, zone: u32) -> Result<sys::minimm_zone_stats, String> {
    dev.zone_stats(zone)
        .map_err(|e| format!("ZONE_STATS {zone}: {e}"))
}

/// Free pages per zone that the pool can hand out: on the free lists or on per-CPU lists.
pub(crate) fn free_pages(dev: &Device) -> Result<[u64; 3], String> {
    let avail = |z| stats(dev, z).map(|s| s.free_pages + s.pcp_pages);
    Ok([avail(DMA)?, avail(DMA32)?, avail(NORMAL)?])
}

pub(crate) fn e(err: io::Error) -> String {
    err.to_string()
}

/// A numeric `key: value` line of debugfs `minimm/info`.
pub(crate) fn info_value(key: &str) -> Result<u64, String> {
    let text = debugfs("info").map_err(e)?;
    parse_kv(&text)
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or(format!("no {key} in debugfs info"))
}

/// Every `name value` line of debugfs `minimm/vmstat`, in order.
pub(crate) fn vmstat_all() -> Result<Vec<(String, u64)>, String> {
    let text = debugfs("vmstat").map_err(e)?;
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').ok_or(format!("vmstat line {l:?}"))?;
            let v = v.trim().parse().map_err(|_| format!("vmstat line {l:?}"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

/// One counter of debugfs `minimm/vmstat`.
pub(crate) fn vmstat(name: &str) -> Result<u64, String> {
    vmstat_all()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or(format!("no {name} in vmstat"))
}

/// The allocator's invariant checker passes in every zone.
pub(crate) fn validate_ok() -> Result<(), String> {
    let text = debugfs("validate").map_err(e)?;
    check_eq!(text.lines().filter(|l| l.contains(": ok,")).count(), 3);
    Ok(())
}

/// Runs `cmd` with `sh -c`: whether it succeeded, and its output.
pub(crate) fn sh_status(cmd: &str) -> Result<(bool, String), String> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map_err(|err| format!("sh: {err}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// Runs `cmd` with `sh -c`; fails with its output unless it succeeds.
pub(crate) fn sh(cmd: &str) -> Result<String, String> {
    match sh_status(cmd)? {
        (true, text) => Ok(text),
        (false, text) => Err(format!("{cmd}: failed: {text}")),
    }
}

/// Unloads minimm and loads it with `args`; Err with the output when either step fails.
pub(crate) fn reload(args: &str) -> Result<String, String> {
    sh("rmmod minimm")?;
    sh(&format!("insmod {MODULE_PATH} {args}"))
}

/// Loads minimm with its defaults when it is not loaded (after a test that unloaded it).
pub(crate) fn ensure_loaded() -> Result<(), String> {
    let modules = std::fs::read_to_string("/proc/modules").map_err(e)?;
    if !modules.lines().any(|l| l.starts_with("minimm ")) {
        sh(&format!("insmod {MODULE_PATH}"))?;
    }
    Ok(())
}

/// Pins the calling thread to one CPU; the thread's previous mask comes back on drop, on
/// every path out of the test.
pub(crate) struct CpuPin {
    old: libc::cpu_set_t,
}

impl CpuPin {
    pub(crate) fn new(cpu: usize) -> Result<Self, String> {
        // SAFETY: a zeroed cpu_set_t is a valid (empty) set.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `old` is valid for its size; 0 means the calling thread.
        let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old) };
        check!(r == 0, "sched_getaffinity: {}", io::Error::last_os_error());
        Self::set(cpu)?;
        Ok(Self { old })
    }

    /// Moves the pinned thread to `cpu`; the mask from before [`CpuPin::new`] still comes
    /// back on drop.
    pub(crate) fn set(cpu: usize) -> Result<(), String> {
        // SAFETY: as above.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t; CPU_SET ignores CPUs beyond its size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is valid for its size.
        let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        check!(
            r == 0,
            "sched_setaffinity to CPU {cpu}: {}",
            io::Error::last_os_error()
        );
        Ok(())
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        // SAFETY: `old` is the valid mask read in `new`.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.old) };
    }
}

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

/// A forked child running a closure; [`Child::wait`] reaps it.
pub(crate) struct Child {
    pid: libc::pid_t,
}

impl Child {
    /// Runs `child` in a forked child, which exits with the code it returns.
    ///
    /// `child` must only do what is safe after fork in a multithreaded program (system calls,
    /// reads and writes of memory; no allocation, no locks taken by other threads).
    pub(crate) fn spawn(child: impl FnOnce() -> i32) -> Result<Self, String> {
        // SAFETY: the child runs `child`, which the caller keeps to fork-safe operations, and
        // leaves with _exit without returning into the test.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = child();
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(code) };
        }
        check!(pid > 0, "fork: {}", io::Error::last_os_error());
        Ok(Self { pid })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    pub(crate) fn wait(self) -> Result<Exit, String> {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        check!(r == self.pid, "waitpid: {}", io::Error::last_os_error());
        if libc::WIFSIGNALED(status) {
            Ok(Exit::Signal(libc::WTERMSIG(status)))
        } else {
            Ok(Exit::Code(libc::WEXITSTATUS(status)))
        }
    }
}

/// Runs `child` in a forked child (see [`Child::spawn`]) and waits for it.
pub(crate) fn in_child(child: impl FnOnce() -> i32) -> Result<Exit, String> {
    Child::spawn(child)?.wait()
}

/// A pipe; both ends close on drop.
pub(crate) struct Pipe {
    pub(crate) r: i32,
    pub(crate) w: i32,
}

impl Pipe {
    pub(crate) fn new() -> Result<Self, String> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        check!(r == 0, "pipe: {}", io::Error::last_os_error());
        Ok(Self {
            r: fds[0],
            w: fds[1],
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: closing the two descriptors this pipe owns.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

/// `mmap(NULL, len, prot, flags, fd, offset)`: the address of the new mapping.
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

/// A mapping made with raw `mmap(2)`, whose address the test may move (mremap) or shrink;
/// whatever `len` bytes are at `addr` at drop are unmapped then.
#[derive(Debug)]
pub(crate) struct Area {
    pub(crate) addr: usize,
    pub(crate) len: usize,
}

impl Area {
    /// Maps `len` bytes of `fd` at `offset` with `prot` and `flags`.
    pub(crate) fn map(fd: i32, offset: u64, len: usize, prot: i32, flags: i32) -> io::Result<Self> {
        Ok(Self {
            addr: mmap(fd, offset, len, prot, flags)?,
            len,
        })
    }

    /// An inaccessible anonymous reservation of `len` bytes, a target for `MREMAP_FIXED`.
    pub(crate) fn reserve(len: usize) -> io::Result<Self> {
        Self::map(
            -1,
            0,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )
    }

    /// Moves this mapping onto `target`'s range with `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`,
    /// which replaces the reservation; returns the old address, now unmapped.
    pub(crate) fn move_onto(&mut self, target: Area) -> io::Result<usize> {
        // SAFETY: moving our own mapping onto our own reservation, which it replaces.
        let p = unsafe {
            libc::mremap(
                self.addr as *mut libc::c_void,
                self.len,
                self.len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                target.addr as *mut libc::c_void,
            )
        };
        if p == libc::MAP_FAILED || p as usize != target.addr {
            return Err(io::Error::last_os_error());
        }
        let old = self.addr;
        self.addr = target.addr;
        // The reservation's range is this mapping's now: its guard must not unmap it.
        std::mem::forget(target);
        Ok(old)
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `addr` maps `len` readable bytes while `self` lives (tests that map
        // without PROT_READ never call this).
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: unmapping the range this guard stands for.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Whether any page of `[addr, addr + len)` is mapped in this process.
pub(crate) fn is_mapped(addr: usize, len: usize) -> bool {
    // msync fails with ENOMEM on an unmapped range, and succeeds on any mapped one.
    // SAFETY: msync only inspects the range; MS_ASYNC writes nothing back here.
    unsafe { libc::msync(addr as *mut libc::c_void, len, libc::MS_ASYNC) == 0 }
}

/// Sets a zone's watermarks through debugfs `watermarks`; the old ones come back on drop.
pub(crate) struct Watermarks {
    line: String,
}

impl Watermarks {
    /// `name` as debugfs spells it (`DMA`, `DMA32`, `Normal`).
    pub(crate) fn set(
        dev: &Device,
        zone: u32,
        name: &str,
        (min, low, high): (u64, u64, u64),
    ) -> Result<Self, String> {
        let old = stats(dev, zone)?;
        let line = format!(
            "{name} {} {} {}",
            old.wmark_min, old.wmark_low, old.wmark_high
        );
        write_watermarks(&format!("{name} {min} {low} {high}"))?;
        Ok(Self { line })
    }
}

impl Drop for Watermarks {
    fn drop(&mut self) {
        let _ = write_watermarks(&self.line);
    }
}

pub(crate) fn write_watermarks(line: &str) -> Result<(), String> {
    std::fs::write(format!("{DEBUGFS}/watermarks"), line)
        .map_err(|err| format!("watermarks {line:?}: {err}"))
}

/// Polls `cond` every 50 ms for up to `secs` seconds; whether it came true.
pub(crate) fn within(
    secs: u64,
    mut cond: impl FnMut() -> Result<bool, String>,
) -> Result<bool, String> {
    let start = std::time::Instant::now();
    loop {
        if cond()? {
            return Ok(true);
        }
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
