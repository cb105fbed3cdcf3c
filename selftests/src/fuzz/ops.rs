// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's operations: one entry of [`KINDS`] each, with its weight and its `run`, which
//! makes its calls and checks every result against the contract (README "Using /dev/minimm",
//! include/uapi/linux/minimm.h) and the model of the file it works on.
//!
//! A layer that lands (slab caches, the mapper, reclaim) adds its operations here: a function
//! `fn op_x(ctx: &mut Ctx) -> Step` that describes what it does in `ctx.what`, returns
//! `Err(message)` on a contract violation, and a line in [`KINDS`].

use std::{
    io,
    mem::size_of,
    sync::{
        atomic::Ordering::{Acquire, Relaxed, Release},
        Arc, Barrier,
    },
};

use minimm_uapi::{debugfs, fill_pattern, fill_pattern_at, parse_kv, sys, Device};

use crate::{
    common::{Child, Exit, DEBUGFS},
    discard,
    model::{after_dontneed, lock, AfterDontneed, Block, Data, File, FileModel, Fill, Piece, Proc},
    rng::Rng,
    slab,
    sys::{madvise, mmap, mprotect, mremap, munmap, recv_fd, reserve, send_fd, MSG_WORDS},
    vm, MAIL_BUSY, MAIL_EMPTY, MAIL_FULL, MAIL_TAKEN,
};

/// Files one worker process keeps open at most.
const MAX_FILES: usize = 5;
/// Blocks one file holds at most (live ones).
const MAX_BLOCKS: usize = 16;
/// Pieces (VMAs) one block is mapped by at most.
const MAX_PIECES: usize = 8;

/// What one operation came to.
pub(crate) enum Ran {
    Done,
    /// Its preconditions were not met (no file, no block, no message): nothing was called.
    Skipped,
}

/// An operation's result: `Err` is a contract violation, with what was seen.
pub(crate) type Step = Result<Ran, String>;

/// One kind of operation.
pub(crate) struct Kind {
    pub(crate) name: &'static str,
    pub(crate) weight: u32,
    pub(crate) run: fn(&mut Ctx<'_>) -> Step,
}

/// Whether a kind of operation needs MINIMM_FEAT_SLAB.
pub(crate) fn is_slab(k: &Kind) -> bool {
    k.name.starts_with("slab_")
}

/// Whether a kind of operation needs MINIMM_FEAT_RECLAIM.
pub(crate) fn is_discard(k: &Kind) -> bool {
    k.name.starts_with("discard_")
}

/// Whether a kind of operation needs MINIMM_FEAT_VMALLOC.
pub(crate) fn is_vm(k: &Kind) -> bool {
    k.name.starts_with("vm_")
}

/// Every kind of operation, with its weight.
pub(crate) const KINDS: &[Kind] = &[
    Kind {
        name: "open",
        weight: 3,
        run: op_open,
    },
    Kind {
        name: "close",
        weight: 2,
        run: op_close,
    },
    Kind {
        name: "alloc",
        weight: 16,
        run: op_alloc,
    },
    Kind {
        name: "alloc_invalid",
        weight: 4,
        run: op_alloc_invalid,
    },
    Kind {
        name: "free",
        weight: 10,
        run: op_free,
    },
    Kind {
        name: "bad_handle",
        weight: 4,
        run: op_bad_handle,
    },
    Kind {
        name: "fill",
        weight: 6,
        run: op_fill,
    },
    Kind {
        name: "checksum",
        weight: 6,
        run: op_checksum,
    },
    Kind {
        name: "block_data_invalid",
        weight: 2,
        run: op_block_data_invalid,
    },
    Kind {
        name: "mmap",
        weight: 9,
        run: op_mmap,
    },
    Kind {
        name: "mmap_invalid",
        weight: 3,
        run: op_mmap_invalid,
    },
    Kind {
        name: "verify",
        weight: 6,
        run: op_verify,
    },
    Kind {
        name: "write",
        weight: 5,
        run: op_write,
    },
    Kind {
        name: "munmap",
        weight: 4,
        run: op_munmap,
    },
    Kind {
        name: "munmap_part",
        weight: 3,
        run: op_munmap_part,
    },
    Kind {
        name: "mprotect",
        weight: 3,
        run: op_mprotect,
    },
    Kind {
        name: "mremap",
        weight: 3,
        run: op_mremap,
    },
    Kind {
        name: "madvise",
        weight: 3,
        run: op_madvise,
    },
    Kind {
        name: "fork",
        weight: 1,
        run: op_fork,
    },
    Kind {
        name: "send_file",
        weight: 2,
        run: op_send_file,
    },
    Kind {
        name: "recv_file",
        weight: 3,
        run: op_recv_file,
    },
    Kind {
        name: "race_free",
        weight: 2,
        run: op_race_free,
    },
    Kind {
        name: "zone_stats",
        weight: 3,
        run: op_zone_stats,
    },
    Kind {
        name: "get_info",
        weight: 1,
        run: op_get_info,
    },
    Kind {
        name: "debugfs",
        weight: 3,
        run: op_debugfs,
    },
    Kind {
        name: "drain_pcp",
        weight: 1,
        run: op_drain_pcp,
    },
    // vmalloc-like areas (MINIMM_FEAT_VMALLOC; run only when the module has it): `vm.rs`.
    // Every block operation above works on areas too.
    Kind {
        name: "vm_create",
        weight: 8,
        run: vm::op_vm_create,
    },
    Kind {
        name: "vm_create_invalid",
        weight: 2,
        run: vm::op_vm_create_invalid,
    },
    Kind {
        name: "vm_resize",
        weight: 4,
        run: vm::op_vm_resize,
    },
    Kind {
        name: "vm_free",
        weight: 4,
        run: vm::op_vm_free,
    },
    Kind {
        name: "vm_info",
        weight: 3,
        run: vm::op_vm_info,
    },
    // Discardable blocks (MINIMM_FEAT_RECLAIM; run only when the module has it): `discard.rs`.
    // ALLOC above makes them (its random flags include MINIMM_ALLOC_DISCARDABLE).
    Kind {
        name: "discard_unpin",
        weight: 3,
        run: discard::op_discard_unpin,
    },
    Kind {
        name: "discard_pin",
        weight: 3,
        run: discard::op_discard_pin,
    },
    Kind {
        name: "discard_read",
        weight: 2,
        run: discard::op_discard_read,
    },
    Kind {
        name: "discard_reclaim",
        weight: 1,
        run: discard::op_discard_reclaim,
    },
    // Slab caches (MINIMM_FEAT_SLAB; run only when the module has it): `slab.rs`.
    Kind {
        name: "slab_create",
        weight: 4,
        run: slab::op_slab_create,
    },
    Kind {
        name: "slab_create_invalid",
        weight: 2,
        run: slab::op_slab_create_invalid,
    },
    Kind {
        name: "slab_limit",
        weight: 1,
        run: slab::op_slab_limit,
    },
    Kind {
        name: "slab_alloc",
        weight: 9,
        run: slab::op_slab_alloc,
    },
    Kind {
        name: "slab_alloc_invalid",
        weight: 2,
        run: slab::op_slab_alloc_invalid,
    },
    Kind {
        name: "slab_free",
        weight: 6,
        run: slab::op_slab_free,
    },
    Kind {
        name: "slab_bad_handle",
        weight: 3,
        run: slab::op_slab_bad_handle,
    },
    Kind {
        name: "slab_bulk",
        weight: 4,
        run: slab::op_slab_bulk,
    },
    Kind {
        name: "slab_data",
        weight: 8,
        run: slab::op_slab_data,
    },
    Kind {
        name: "slab_shrink",
        weight: 2,
        run: slab::op_slab_shrink,
    },
    Kind {
        name: "slab_stats",
        weight: 3,
        run: slab::op_slab_stats,
    },
    Kind {
        name: "slab_destroy",
        weight: 3,
        run: slab::op_slab_destroy,
    },
    Kind {
        name: "slab_struct_invalid",
        weight: 2,
        run: slab::op_slab_struct_invalid,
    },
    Kind {
        name: "slab_read_only",
        weight: 1,
        run: slab::op_slab_read_only,
    },
];

/// A worker thread's state while it runs operations.
pub(crate) struct Ctx<'a> {
    pub(crate) p: &'a Proc,
    pub(crate) rng: Rng,
    /// What the current operation is doing, for the report of a violation.
    pub(crate) what: String,
}

/// The name of an errno, for messages and the totals.
pub(crate) fn errno_name(n: i32) -> String {
    match n {
        libc::EINVAL => "EINVAL".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::E2BIG => "E2BIG".into(),
        libc::EBADF => "EBADF".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::EDQUOT => "EDQUOT".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOTTY => "ENOTTY".into(),
        libc::EAGAIN => "EAGAIN".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::EEXIST => "EEXIST".into(),
        libc::ENOSPC => "ENOSPC".into(),
        libc::EBUSY => "EBUSY".into(),
        n => format!("errno {n}"),
    }
}

fn names(allowed: &[i32]) -> String {
    if allowed.is_empty() {
        return "success only".into();
    }
    allowed
        .iter()
        .map(|&n| errno_name(n))
        .collect::<Vec<_>>()
        .join("|")
}

impl Ctx<'_> {
    pub(crate) fn page(&self) -> usize {
        self.p.page
    }

    /// Success, or a failure with an errno of `allowed` (counted): `Err` otherwise.
    pub(crate) fn outcome<T>(
        &self,
        r: io::Result<T>,
        allowed: &[i32],
        what: &str,
    ) -> Result<Result<T, i32>, String> {
        match r {
            Ok(v) => Ok(Ok(v)),
            Err(e) => {
                let n = e.raw_os_error().unwrap_or(0);
                if allowed.contains(&n) {
                    self.p.stats.errno(n);
                    Ok(Err(n))
                } else {
                    Err(format!(
                        "{what}: {e} ({}; allowed: {})",
                        errno_name(n),
                        names(allowed)
                    ))
                }
            }
        }
    }

    /// The call must succeed.
    pub(crate) fn ok<T>(&self, r: io::Result<T>, what: &str) -> Result<T, String> {
        self.outcome(r, &[], what)?
            .map_err(|n| format!("{what}: {}", errno_name(n)))
    }

    /// The call must fail with an errno of `allowed`.
    pub(crate) fn fails<T: std::fmt::Debug>(
        &self,
        r: io::Result<T>,
        allowed: &[i32],
        what: &str,
    ) -> Result<i32, String> {
        match self.outcome(r, allowed, what)? {
            Ok(v) => Err(format!(
                "{what}: succeeded ({v:?}); expected {}",
                names(allowed)
            )),
            Err(n) => Ok(n),
        }
    }

    /// What mmap of a valid block may fail with: nothing, or ENOMEM under fault injection.
    fn mmap_may_fail(&self) -> &'static [i32] {
        if self.p.fail {
            &[libc::ENOMEM]
        } else {
            &[]
        }
    }

    /// A block order, small ones the most likely.
    fn order(&mut self) -> u32 {
        const W: [u32; 11] = [30, 15, 12, 10, 8, 6, 5, 4, 4, 3, 3];
        self.rng.weighted(W.iter().copied()) as u32
    }

    /// A random file of this process for which `f` holds.
    pub(crate) fn pick_file(&mut self, f: impl Fn(&File) -> bool) -> Option<Arc<File>> {
        let files = lock(&self.p.files);
        let c: Vec<&Arc<File>> = files.iter().filter(|x| f(x)).collect();
        if c.is_empty() {
            return None;
        }
        Some(c[self.rng.index(c.len())].clone())
    }

    /// Takes a random block for which `want` holds out of `file`'s model (live ones, and
    /// freed ones still mapped if `freed_too`).
    pub(crate) fn take_block(
        &mut self,
        file: &File,
        freed_too: bool,
        want: impl Fn(&Block) -> bool,
    ) -> Option<Block> {
        let mut m = lock(&file.model);
        let live = m.live.iter().filter(|b| want(b)).count();
        let freed = if freed_too {
            m.freed_mapped.iter().filter(|b| want(b)).count()
        } else {
            0
        };
        if live + freed == 0 {
            return None;
        }
        let n = self.rng.index(live + freed);
        let b = if n < live {
            let i = m.live.iter().enumerate().filter(|(_, b)| want(b)).nth(n)?.0;
            m.live.swap_remove(i)
        } else {
            let i = m
                .freed_mapped
                .iter()
                .enumerate()
                .filter(|(_, b)| want(b))
                .nth(n - live)?
                .0;
            m.freed_mapped.swap_remove(i)
        };
        m.releasing += u64::from(b.pages());
        Some(b)
    }
}

/// Puts a block taken with [`Ctx::take_block`] back into `file`'s model: a freed block whose
/// last piece is gone is no longer charged.
pub(crate) fn put_block(file: &File, b: Block) {
    let mut m = lock(&file.model);
    m.releasing -= u64::from(b.pages());
    if !b.freed {
        m.live.push(b);
    } else if !b.pieces.is_empty() {
        m.freed_mapped.push(b);
    } else {
        m.charged -= u64::from(b.pages());
    }
}

/// Where a mapped block was taken from.
enum Source {
    File(Arc<File>),
    /// The blocks left mapped by files that were closed.
    Orphans,
}

impl Ctx<'_> {
    /// Takes a mapped block with a piece for which `want` holds, from a file or the orphans.
    fn take_mapped(&mut self, want: impl Fn(&Piece) -> bool + Copy) -> Option<(Source, Block)> {
        let has = move |b: &Block| b.pieces.iter().any(want);
        if self.rng.chance(25) {
            let mut o = lock(&self.p.orphans);
            let c: Vec<usize> = (0..o.len()).filter(|&i| has(&o[i])).collect();
            if !c.is_empty() {
                let i = c[self.rng.index(c.len())];
                return Some((Source::Orphans, o.swap_remove(i)));
            }
        }
        let file = self.pick_file(|f| f.readable() && f.writable())?;
        let b = self.take_block(&file, true, has)?;
        Some((Source::File(file), b))
    }

    fn put_mapped(&self, src: Source, b: Block) {
        match src {
            Source::File(f) => put_block(&f, b),
            Source::Orphans => {
                if !b.pieces.is_empty() {
                    lock(&self.p.orphans).push(b);
                }
            }
        }
    }

    /// A random piece index of `b` for which `want` holds.
    fn pick_piece(&mut self, b: &Block, want: impl Fn(&Piece) -> bool) -> Option<usize> {
        let c: Vec<usize> = (0..b.pieces.len())
            .filter(|&i| want(&b.pieces[i]))
            .collect();
        (!c.is_empty()).then(|| c[self.rng.index(c.len())])
    }
}

/// The piece's bytes are the block's expected data.
fn verify_piece(b: &Block, p: &Piece, page: usize, what: &str) -> Result<(), String> {
    let want = b.data.bytes(p.first, p.first + p.pages, page);
    // SAFETY: the piece maps `pages` readable pages at `addr` (the model says so: it is
    // readable, not zapped, and this thread owns the block).
    let got = unsafe { std::slice::from_raw_parts(p.addr as *const u8, want.len()) };
    if got == &want[..] {
        return Ok(());
    }
    let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
    Err(format!(
        "{what}: handle {} ({} pages, zone {}, freed {}) pages {}..{} at {:#x} differ from the model \
         at byte {at}: {:#04x}, expected {:#04x} (model {:?})",
        b.handle,
        b.pages,
        b.zone,
        b.freed,
        p.first,
        p.first + p.pages,
        p.addr,
        got[at],
        want[at],
        b.data
    ))
}

/// Checks the block's checksum from the kernel against the model.
fn check_checksum(ctx: &Ctx<'_>, file: &File, b: &Block, what: &str) -> Result<(), String> {
    let got = ctx.ok(file.dev.checksum(b.handle), what)?;
    let want = b.data.checksum(b.pages(), ctx.page());
    if got != want {
        return Err(format!(
            "{what}: handle {} checksum {got:#x}, model {want:#x} ({:?})",
            b.handle, b.data
        ));
    }
    Ok(())
}

/// An argument buffer of two pages, 8-byte aligned, zeroed.
pub(crate) fn buffer(page: usize) -> Vec<u64> {
    vec![0u64; 2 * page / 8]
}

pub(crate) fn bytes_mut(buf: &mut [u64]) -> &mut [u8] {
    // SAFETY: the words' memory viewed as bytes, borrowed exclusively.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len() * 8) }
}

pub(crate) fn put<T: Copy>(buf: &mut [u64], v: T) {
    assert!(size_of::<T>() <= buf.len() * 8);
    // SAFETY: `buf` holds at least `size_of::<T>()` bytes (checked above).
    unsafe { buf.as_mut_ptr().cast::<T>().write_unaligned(v) }
}

pub(crate) fn get<T: Copy>(buf: &[u64]) -> T {
    assert!(size_of::<T>() <= buf.len() * 8);
    // SAFETY: as in `put`; every uapi struct is valid for any bytes.
    unsafe { buf.as_ptr().cast::<T>().read_unaligned() }
}

/// Where an ioctl's argument struct lives.
pub(crate) enum Place {
    Buffer,
    /// A copy in a read-only page: EFAULT.
    ReadOnly,
    /// NULL or an inaccessible page: EFAULT.
    Nowhere(bool),
}

/// Issues ioctl `cmd` with `buf` as its argument at `place`.
pub(crate) fn ioctl_at(dev: &Device, cmd: u32, buf: &mut [u64], place: &Place) -> io::Result<i32> {
    let len = buf.len() * 8;
    match place {
        // SAFETY: `buf` is valid for two pages, more than any size the fuzzer announces.
        Place::Buffer => unsafe { dev.ioctl_raw(cmd, buf.as_mut_ptr() as usize) },
        Place::ReadOnly => {
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            let at = mmap(-1, 0, len, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS)?;
            // SAFETY: `at` is a fresh writable mapping of `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr().cast::<u8>(), at as *mut u8, len) };
            let r = mprotect(at, len, libc::PROT_READ)
                // SAFETY: the struct is readable, not writable: the kernel answers EFAULT
                // or fails for another reason first.
                .and_then(|()| unsafe { dev.ioctl_raw(cmd, at) });
            munmap(at, len)?;
            r
        }
        // SAFETY: NULL: the kernel answers EFAULT.
        Place::Nowhere(true) => unsafe { dev.ioctl_raw(cmd, 0) },
        Place::Nowhere(false) => {
            let at = reserve(len)?;
            // SAFETY: an inaccessible page: the kernel answers EFAULT.
            let r = unsafe { dev.ioctl_raw(cmd, at) };
            munmap(at, len)?;
            r
        }
    }
}

// ---- files ------------------------------------------------------------------------------

fn op_open(ctx: &mut Ctx<'_>) -> Step {
    if lock(&ctx.p.files).len() >= MAX_FILES {
        return Ok(Ran::Skipped);
    }
    let mode = match ctx.rng.below(10) {
        0 => libc::O_RDONLY,
        1 => libc::O_WRONLY,
        _ => libc::O_RDWR,
    };
    ctx.what = format!("open /dev/minimm mode {mode}");
    let dev = ctx.ok(Device::open_mode(mode), "open")?;
    let f = ctx.p.file(dev, mode);
    ctx.what = format!("open /dev/minimm {}: file {}", f.mode_name(), f.id);
    lock(&ctx.p.files).push(f);
    Ok(Ran::Done)
}

/// Closes a file (the last reference to it, or the one other threads still use goes when
/// they are done), and half the time opens another at once.
fn op_close(ctx: &mut Ctx<'_>) -> Step {
    let f = {
        let mut files = lock(&ctx.p.files);
        if files.is_empty() {
            return Ok(Ran::Skipped);
        }
        let i = ctx.rng.index(files.len());
        files.swap_remove(i)
    };
    ctx.what = format!(
        "close file {} ({} other users)",
        f.id,
        Arc::strong_count(&f) - 1
    );
    drop(f);
    if ctx.rng.chance(50) {
        op_open(ctx)?;
    }
    Ok(Ran::Done)
}

// ---- ALLOC ------------------------------------------------------------------------------

/// ALLOC on `file` with its model locked: checks the errno against the quota and the struct
/// written back against the model; the new block on success.
fn alloc_locked(
    ctx: &mut Ctx<'_>,
    file: &File,
    m: &mut FileModel,
    a: sys::minimm_alloc,
) -> Result<Option<Block>, String> {
    // Blocks handed to another process: freed there yet? (Then no longer charged here.)
    if !m.gifted.is_empty() {
        let (h, pages) = m.gifted.remove(0);
        let r = file.dev.checksum(h);
        if ctx
            .outcome(r, &[libc::EINVAL], "CHECKSUM of a handle given away")?
            .is_ok()
        {
            m.gifted.push((h, pages));
        }
    }
    let page = ctx.page();
    ctx.what = format!(
        "ALLOC file {} ({}) order {} zone {} flags {:#x} size {}",
        file.id,
        file.mode_name(),
        a.order,
        a.zone,
        a.flags,
        a.size
    );
    let mut buf = buffer(page);
    put(&mut buf, a);
    let pages = 1u64 << a.order;
    // The quota in bytes: pages of blocks and the slot sizes of slab objects.
    let (lower, upper) = m.charge_bounds(page);
    let quota = ctx.p.quota * page as u64;
    let bytes = pages * page as u64;
    let r = ioctl_at(&file.dev, sys::MINIMM_IOC_ALLOC, &mut buf, &Place::Buffer);
    if !file.writable() {
        ctx.fails(r, &[libc::EBADF], "ALLOC on a read-only file")?;
        return Ok(None);
    }
    let mut allowed = vec![libc::ENOMEM];
    if upper + bytes > quota {
        allowed.push(libc::EDQUOT);
    }
    if ctx.outcome(r, &allowed, "ALLOC")?.is_err() {
        return Ok(None);
    }
    check!(
        lower + bytes <= quota,
        "ALLOC succeeded beyond the quota: at least {lower} bytes charged + {bytes} > {quota}"
    );
    let out: sys::minimm_alloc = get(&buf);
    let want_handle = m.last_handle + 1;
    check!(
        out.size == sys::MINIMM_ALLOC_SIZE_VER0
            && out.order == a.order
            && out.zone == a.zone
            && out.flags == a.flags
            && out.__pad == 0,
        "ALLOC wrote back {out:?} for {a:?}"
    );
    // Slab handles may come from the same sequence: then block handles only increase.
    check!(
        out.handle == want_handle || (m.slab_handles && out.handle > want_handle),
        "ALLOC returned handle {}, the model expected {want_handle} (handles are 1, 2, 3... \
         per file)",
        out.handle
    );
    // Offsets are opaque but page-aligned, and name one buffer module-wide: no range overlaps
    // another live block's of this file.
    let page = page as u64;
    let len = page << a.order;
    check!(
        out.mmap_offset != 0 && out.mmap_offset % page == 0,
        "ALLOC: mmap_offset {:#x} for handle {}",
        out.mmap_offset,
        out.handle
    );
    for other in m.live.iter().chain(&m.freed_mapped).chain(&m.unpinned) {
        let other_len = page * u64::from(other.pages);
        check!(
            out.mmap_offset + len <= other.offset || other.offset + other_len <= out.mmap_offset,
            "ALLOC: offsets {:#x}+{len:#x} overlap handle {}'s {:#x}+{other_len:#x}",
            out.mmap_offset,
            other.handle,
            other.offset
        );
    }
    check!(
        out.zone_out <= a.zone,
        "ALLOC: zone_out {} above zone {}",
        out.zone_out,
        a.zone
    );
    let tail = &bytes_mut(&mut buf)[size_of::<sys::minimm_alloc>()..];
    check!(tail.iter().all(|&b| b == 0), "ALLOC wrote past its struct");
    m.last_handle = out.handle;
    m.charged += pages;
    ctx.what += &format!(": handle {} from zone {}", out.handle, out.zone_out);
    Ok(Some(Block {
        handle: out.handle,
        pages: 1 << a.order,
        area: None,
        zone: out.zone_out,
        offset: out.mmap_offset,
        data: Data::new(1 << a.order, Fill::Zero),
        pieces: Vec::new(),
        freed: false,
        discardable: a.flags & sys::MINIMM_ALLOC_DISCARDABLE != 0,
    }))
}

/// A valid ALLOC: random order, zone, flags and struct size (the first version's, this
/// header's, or longer with a zero tail).
fn op_alloc(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page() as u64;
    let size = match ctx.rng.below(4) {
        0 => sys::MINIMM_ALLOC_SIZE_VER0,
        1 => size_of::<sys::minimm_alloc>() as u32,
        _ => (8 * (6 + ctx.rng.below(page / 8 - 5))) as u32,
    };
    let a = sys::minimm_alloc {
        size,
        order: ctx.order(),
        zone: ctx.rng.below(3) as u32,
        flags: ctx.rng.below(u64::from(sys::MINIMM_ALLOC_VALID) + 1) as u32,
        ..Default::default()
    };
    let mut m = lock(&file.model);
    if m.live.len() >= MAX_BLOCKS {
        return Ok(Ran::Skipped);
    }
    if let Some(b) = alloc_locked(ctx, &file, &mut m, a)? {
        m.live.push(b);
    }
    Ok(Ran::Done)
}

/// ALLOC with one or two faults: each fault's errno is allowed, success is a violation; the
/// handle sequence must go on as if nothing had been asked (the next valid ALLOC checks it).
fn op_alloc_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page() as u64;
    let mut a = sys::minimm_alloc {
        size: size_of::<sys::minimm_alloc>() as u32,
        order: ctx.order(),
        zone: ctx.rng.below(3) as u32,
        flags: ctx.rng.below(8) as u32,
        ..Default::default()
    };
    let (mut faults, mut allowed) = (Vec::new(), Vec::new());
    let mut tail_at = None;
    let mut place = Place::Buffer;
    for _ in 0..1 + ctx.rng.below(2) {
        let (what, errno) = match ctx.rng.below(9) {
            0 => {
                a.order = 11 + ctx.rng.below(u64::from(u32::MAX) - 11) as u32;
                ("order", libc::EINVAL)
            }
            1 => {
                a.zone = 3 + ctx.rng.below(u64::from(u32::MAX) - 3) as u32;
                ("zone", libc::EINVAL)
            }
            2 => {
                a.flags |= 1 << (4 + ctx.rng.below(28));
                ("flags", libc::EINVAL)
            }
            3 => {
                a.__pad = 1 + ctx.rng.below(u64::from(u32::MAX)) as u32;
                ("padding", libc::EINVAL)
            }
            4 => {
                a.size = ctx.rng.below(u64::from(sys::MINIMM_ALLOC_SIZE_VER0)) as u32;
                ("size below the first version", libc::EINVAL)
            }
            5 => {
                a.size = (page + 1 + ctx.rng.below(page - 1)) as u32;
                ("size above a page", libc::E2BIG)
            }
            6 => {
                a.size = (48 + 8 * ctx.rng.below((page - 48) / 8)) as u32;
                tail_at = Some(40 + ctx.rng.below(u64::from(a.size) - 40) as usize);
                ("non-zero byte past the struct", libc::E2BIG)
            }
            7 => {
                place = Place::ReadOnly;
                ("struct in read-only memory", libc::EFAULT)
            }
            _ => {
                place = Place::Nowhere(ctx.rng.chance(50));
                ("struct at NULL or in an inaccessible page", libc::EFAULT)
            }
        };
        faults.push(what);
        allowed.push(errno);
    }
    if !file.writable() {
        allowed.push(libc::EBADF);
    }
    let mut buf = buffer(page as usize);
    put(&mut buf, a);
    if let Some(at) = tail_at {
        bytes_mut(&mut buf)[at] = 1 + ctx.rng.below(255) as u8;
    }
    ctx.what = format!(
        "ALLOC file {} ({}) with {} ({a:?}, tail byte {tail_at:?})",
        file.id,
        file.mode_name(),
        faults.join(", ")
    );
    let _m = lock(&file.model);
    let r = ioctl_at(&file.dev, sys::MINIMM_IOC_ALLOC, &mut buf, &place);
    ctx.fails(r, &allowed, "invalid ALLOC")?;
    Ok(Ran::Done)
}

// ---- FREE and handles -------------------------------------------------------------------

fn op_free(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    ctx.what = format!(
        "FREE file {} handle {} ({} pieces mapped)",
        file.id,
        b.handle,
        b.pieces.len()
    );
    let r = file.dev.free(b.handle);
    if let Err(e) = ctx.ok(r, "FREE") {
        put_block(&file, b);
        return Err(e);
    }
    b.freed = true;
    lock(&file.model).note_freed(b.handle);
    let again = if ctx.rng.chance(30) {
        ctx.fails(file.dev.free(b.handle), &[libc::EINVAL], "second FREE")
            .map(|_| ())
    } else if ctx.rng.chance(20) {
        ctx.fails(
            file.dev.checksum(b.handle),
            &[libc::EINVAL],
            "CHECKSUM after FREE",
        )
        .map(|_| ())
    } else {
        Ok(())
    };
    put_block(&file, b);
    again?;
    Ok(Ran::Done)
}

/// A command on a handle the file does not have: freed, never issued, 0 or all ones, or one
/// of another file's: EINVAL (EBADF first on a file that may only look; EACCES for mmap of a
/// file opened write-only).
fn op_bad_handle(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    // Another file's handles, read before this file's model is locked (one model at a time).
    let foreign: Vec<u64> = ctx
        .pick_file(|f| f.id != file.id)
        .map(|o| lock(&o.model).live.iter().map(|b| b.handle).collect())
        .unwrap_or_default();
    let m = lock(&file.model);
    let (kind, h) = match ctx.rng.below(4) {
        0 if !m.freed.is_empty() => ("freed", m.freed[ctx.rng.index(m.freed.len())]),
        2 => (
            "zero or all ones",
            if ctx.rng.chance(50) { 0 } else { u64::MAX },
        ),
        3 if foreign.iter().any(|&h| h > m.last_handle) => {
            let c: Vec<u64> = foreign.into_iter().filter(|&h| h > m.last_handle).collect();
            ("another file's", c[ctx.rng.index(c.len())])
        }
        _ => ("never issued", m.last_handle + 1 + ctx.rng.below(1000)),
    };
    let page = ctx.page() as u64;
    let data_errno = if file.writable() {
        libc::EINVAL
    } else {
        libc::EBADF
    };
    let cmd = ctx.rng.below(4);
    let r = match cmd {
        0 => file.dev.free(h).map(|_| 0),
        1 => file.dev.checksum(h),
        2 => file.dev.fill(h, 1).map(|_| 0),
        _ => {
            let Some(offset) = h.checked_mul(page).filter(|&o| o < 1 << 46) else {
                return Ok(Ran::Skipped);
            };
            ctx.what = format!(
                "mmap file {} ({}) {kind} handle {h}",
                file.id,
                file.mode_name()
            );
            let errno = if file.readable() {
                libc::EINVAL
            } else {
                libc::EACCES
            };
            let r = mmap(
                file.dev.fd(),
                offset,
                page as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
            );
            if let Ok(addr) = r {
                let _ = munmap(addr, page as usize);
            }
            ctx.fails(r, &[errno], "mmap of a bad handle")?;
            return Ok(Ran::Done);
        }
    };
    ctx.what = format!(
        "{} file {} ({}) {kind} handle {h}",
        ["FREE", "CHECKSUM", "FILL"][cmd as usize],
        file.id,
        file.mode_name()
    );
    ctx.fails(r, &[data_errno], "command on a bad handle")?;
    drop(m);
    Ok(Ran::Done)
}

// ---- BLOCK_DATA -------------------------------------------------------------------------

fn op_fill(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    let seed = ctx.rng.next();
    ctx.what = format!("FILL file {} handle {} seed {seed:#x}", file.id, b.handle);
    let r = ctx.ok(file.dev.fill(b.handle, seed), "FILL");
    if r.is_ok() {
        b.data = Data::new(b.pages(), Fill::Pattern(seed));
    }
    let r = r.and_then(|()| {
        if ctx.rng.chance(50) {
            check_checksum(ctx, &file, &b, "CHECKSUM after FILL")
        } else {
            Ok(())
        }
    });
    put_block(&file, b);
    r.map(|()| Ran::Done)
}

fn op_checksum(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    ctx.what = format!("CHECKSUM file {} handle {}", file.id, b.handle);
    let r = check_checksum(ctx, &file, &b, "CHECKSUM");
    put_block(&file, b);
    r.map(|()| Ran::Done)
}

/// BLOCK_DATA with a fault (bad op, size, tail, struct in read-only memory or nowhere): each
/// fault's errno, and the block's data unchanged afterwards (a failed command changes
/// nothing). On a file that may only look: EBADF.
fn op_block_data_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page() as u64;
    let b = if file.writable() {
        match ctx.take_block(&file, false, |_| true) {
            Some(b) => Some(b),
            None => return Ok(Ran::Skipped),
        }
    } else {
        None
    };
    let mut d = sys::minimm_block_data {
        size: size_of::<sys::minimm_block_data>() as u32,
        op: ctx.rng.below(2) as u32,
        handle: b.as_ref().map_or(1, |b| b.handle),
        seed: ctx.rng.next(),
        result: 0,
    };
    let mut tail_at = None;
    let mut place = Place::Buffer;
    let (what, errno) = match ctx.rng.below(5) {
        0 => {
            d.op = 2 + ctx.rng.below(u64::from(u32::MAX) - 2) as u32;
            ("op", libc::EINVAL)
        }
        1 => {
            d.size = ctx.rng.below(u64::from(sys::MINIMM_BLOCK_DATA_SIZE_VER0)) as u32;
            ("size below the first version", libc::EINVAL)
        }
        2 => {
            d.size = (page + 1 + ctx.rng.below(page - 1)) as u32;
            ("size above a page", libc::E2BIG)
        }
        3 => {
            d.size = (40 + 8 * ctx.rng.below((page - 40) / 8)) as u32;
            tail_at = Some(32 + ctx.rng.below(u64::from(d.size) - 32) as usize);
            ("non-zero byte past the struct", libc::E2BIG)
        }
        _ => {
            place = if ctx.rng.chance(50) {
                Place::ReadOnly
            } else {
                Place::Nowhere(ctx.rng.chance(50))
            };
            ("struct in read-only memory or nowhere", libc::EFAULT)
        }
    };
    let mut allowed = vec![errno];
    if !file.writable() {
        allowed.push(libc::EBADF);
    }
    let mut buf = buffer(page as usize);
    put(&mut buf, d);
    if let Some(at) = tail_at {
        bytes_mut(&mut buf)[at] = 1 + ctx.rng.below(255) as u8;
    }
    ctx.what = format!(
        "BLOCK_DATA file {} ({}) with {what} ({d:?}, tail byte {tail_at:?})",
        file.id,
        file.mode_name()
    );
    let r = ioctl_at(&file.dev, sys::MINIMM_IOC_BLOCK_DATA, &mut buf, &place);
    let r = ctx
        .fails(r, &allowed, "invalid BLOCK_DATA")
        .and_then(|_| match &b {
            Some(b) => check_checksum(ctx, &file, b, "CHECKSUM after a failed BLOCK_DATA"),
            None => Ok(()),
        });
    if let Some(b) = b {
        put_block(&file, b);
    }
    r.map(|()| Ran::Done)
}

// ---- mappings ---------------------------------------------------------------------------

fn op_mmap(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |b| b.pieces.len() < MAX_PIECES) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let len = page * b.pages() as usize;
    let prot = if ctx.rng.chance(75) {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    ctx.what = format!(
        "mmap file {} ({}) handle {} len {len} prot {prot}",
        file.id,
        file.mode_name(),
        b.handle
    );
    let r = mmap(file.dev.fd(), b.offset, len, prot, libc::MAP_SHARED);
    let r = if !file.readable() {
        ctx.fails(r, &[libc::EACCES], "mmap of a write-only file")
            .map(|_| ())
    } else {
        match ctx.outcome(r, ctx.mmap_may_fail(), "mmap") {
            Ok(Ok(addr)) => {
                let p = Piece {
                    addr,
                    first: 0,
                    pages: b.pages(),
                    prot,
                    zapped: false,
                };
                b.pieces.push(p);
                ctx.what += &format!(" at {addr:#x}");
                if ctx.rng.chance(30) {
                    verify_piece(&b, &p, page, "new mapping")
                } else {
                    Ok(())
                }
            }
            Ok(Err(_)) => Ok(()),
            Err(e) => Err(e),
        }
    };
    put_block(&file, b);
    r.map(|()| Ran::Done)
}

/// mmap of a live block with a wrong length, MAP_PRIVATE or an unaligned offset: EINVAL.
fn op_mmap_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable() && f.readable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let len = page * b.pages() as usize;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let (what, offset, len, flags) = match ctx.rng.below(5) {
        0 if b.pages > 1 => ("shorter", b.offset, len - page, libc::MAP_SHARED),
        1 => ("longer", b.offset, len + page, libc::MAP_SHARED),
        2 => ("zero length", b.offset, 0, libc::MAP_SHARED),
        3 => ("unaligned offset", b.offset + 8, len, libc::MAP_SHARED),
        _ => ("MAP_PRIVATE", b.offset, len, libc::MAP_PRIVATE),
    };
    ctx.what = format!(
        "mmap file {} handle {} {what}: offset {offset:#x} len {len}",
        file.id, b.handle
    );
    let r = mmap(file.dev.fd(), offset, len, rw, flags);
    if let Ok(addr) = r {
        let _ = munmap(addr, len);
    }
    let r = ctx.fails(r, &[libc::EINVAL], "invalid mmap");
    put_block(&file, b);
    r.map(|_| Ran::Done)
}

fn op_verify(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, b)) = ctx.take_mapped(Piece::readable) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    ctx.what = format!(
        "read the mappings of handle {} (freed {}, {} pieces)",
        b.handle,
        b.freed,
        b.pieces.len()
    );
    let r = b
        .pieces
        .iter()
        .filter(|p| p.readable())
        .try_for_each(|p| verify_piece(&b, p, page, "read through a mapping"));
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

/// Writes a new pattern through one piece; the kernel's checksum of a live block must then
/// see it.
fn op_write(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, mut b)) = ctx.take_mapped(Piece::writable) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let r = (|| {
        let i = ctx
            .pick_piece(&b, Piece::writable)
            .ok_or("no writable piece")?;
        let p = b.pieces[i];
        let seed = ctx.rng.next();
        ctx.what = format!(
            "write seed {seed:#x} through handle {} (freed {}) pages {}..{} at {:#x}",
            b.handle,
            b.freed,
            p.first,
            p.first + p.pages,
            p.addr
        );
        // SAFETY: the piece maps `pages` writable pages at `addr`, and this thread owns the
        // block.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(p.addr as *mut u8, p.pages as usize * page) };
        fill_pattern_at(seed, u64::from(p.first) * page as u64, bytes);
        b.data
            .write(p.first, p.first + p.pages, Fill::Pattern(seed));
        match &src {
            Source::File(f) if !b.freed && ctx.rng.chance(40) => {
                check_checksum(ctx, f, &b, "CHECKSUM after a write through a mapping")
            }
            _ => Ok(()),
        }
    })();
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

fn op_munmap(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, mut b)) = ctx.take_mapped(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let i = ctx.rng.index(b.pieces.len());
    let p = b.pieces[i];
    ctx.what = format!(
        "munmap handle {} (freed {}) pages {}..{} at {:#x}",
        b.handle,
        b.freed,
        p.first,
        p.first + p.pages,
        p.addr
    );
    let r = ctx.ok(munmap(p.addr, p.pages as usize * page), "munmap");
    if r.is_ok() {
        b.pieces.swap_remove(i);
    }
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

/// Unmaps part of a piece (its start, end or middle): what is left stays mapped, with the
/// same data.
fn op_munmap_part(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, mut b)) = ctx.take_mapped(|p| p.pages >= 2) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let r = (|| {
        let i = ctx.pick_piece(&b, |p| p.pages >= 2).ok_or("no piece")?;
        let p = b.pieces[i];
        let a = ctx.rng.below(u64::from(p.pages)) as u32;
        let mut e = a + 1 + ctx.rng.below(u64::from(p.pages - a)) as u32;
        if a == 0 && e == p.pages {
            e -= 1;
        }
        ctx.what = format!(
            "munmap pages {a}..{e} of the piece of handle {} (freed {}) pages {}..{} at {:#x}",
            b.handle,
            b.freed,
            p.first,
            p.first + p.pages,
            p.addr
        );
        ctx.ok(
            munmap(p.addr + a as usize * page, (e - a) as usize * page),
            "partial munmap",
        )?;
        b.pieces.swap_remove(i);
        let left = Piece { pages: a, ..p };
        let right = Piece {
            addr: p.addr + e as usize * page,
            first: p.first + e,
            pages: p.pages - e,
            ..p
        };
        let check = ctx.rng.chance(30);
        for q in [left, right] {
            if q.pages > 0 {
                if check && q.readable() {
                    verify_piece(&b, &q, page, "what partial munmap left")?;
                }
                b.pieces.push(q);
            }
        }
        Ok(())
    })();
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

fn op_mprotect(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, mut b)) = ctx.take_mapped(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let r = (|| {
        let i = ctx.rng.index(b.pieces.len());
        let p = b.pieces[i];
        let a = ctx.rng.below(u64::from(p.pages)) as u32;
        let e = a + 1 + ctx.rng.below(u64::from(p.pages - a)) as u32;
        let prot = [
            libc::PROT_NONE,
            libc::PROT_READ,
            libc::PROT_READ | libc::PROT_WRITE,
        ][ctx.rng.index(3)];
        ctx.what = format!(
            "mprotect {prot} pages {a}..{e} of the piece of handle {} (freed {}) pages {}..{} \
             at {:#x}",
            b.handle,
            b.freed,
            p.first,
            p.first + p.pages,
            p.addr
        );
        ctx.ok(
            mprotect(p.addr + a as usize * page, (e - a) as usize * page, prot),
            "mprotect",
        )?;
        b.pieces.swap_remove(i);
        let parts = [
            Piece { pages: a, ..p },
            Piece {
                addr: p.addr + a as usize * page,
                first: p.first + a,
                pages: e - a,
                prot,
                ..p
            },
            Piece {
                addr: p.addr + e as usize * page,
                first: p.first + e,
                pages: p.pages - e,
                ..p
            },
        ];
        b.pieces.extend(parts.into_iter().filter(|q| q.pages > 0));
        Ok(())
    })();
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

/// mremap of a piece: moved (same data at the new address), shrunk (the start stays), or
/// grown (EFAULT: block mappings are VM_DONTEXPAND; nothing changes).
fn op_mremap(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, mut b)) = ctx.take_mapped(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let r = (|| {
        let i = ctx.rng.index(b.pieces.len());
        let p = b.pieces[i];
        let len = p.pages as usize * page;
        let desc = format!(
            "the piece of handle {} (freed {}) pages {}..{} at {:#x}",
            b.handle,
            b.freed,
            p.first,
            p.first + p.pages,
            p.addr
        );
        match ctx.rng.below(3) {
            0 => {
                let target = ctx.ok(reserve(len), "reserve a target")?;
                ctx.what = format!("mremap {desc} to {target:#x}");
                let flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
                let r = mremap(p.addr, len, len, flags, target);
                if r.is_err() {
                    let _ = munmap(target, len);
                }
                let at = ctx.ok(r, "mremap move")?;
                check!(at == target, "mremap moved to {at:#x}, not {target:#x}");
                b.pieces[i].addr = at;
                if b.pieces[i].readable() {
                    verify_piece(&b, &b.pieces[i], page, "moved mapping")?;
                }
            }
            1 if p.pages >= 2 => {
                let k = 1 + ctx.rng.below(u64::from(p.pages - 1)) as u32;
                ctx.what = format!("mremap {desc} shrink to {k} pages");
                let at = ctx.ok(
                    mremap(p.addr, len, k as usize * page, 0, 0),
                    "mremap shrink",
                )?;
                check!(at == p.addr, "shrink moved to {at:#x}");
                b.pieces[i].pages = k;
            }
            _ => {
                let flags = if ctx.rng.chance(50) {
                    0
                } else {
                    libc::MREMAP_MAYMOVE
                };
                ctx.what = format!("mremap {desc} grow by a page, flags {flags}");
                let r = mremap(p.addr, len, len + page, flags, 0);
                if let Ok(at) = r {
                    b.pieces[i].addr = at;
                    b.pieces[i].pages += 1;
                }
                ctx.fails(r, &[libc::EFAULT], "mremap grow")?;
            }
        }
        Ok(())
    })();
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

/// madvise of a piece: MADV_DONTNEED (see `after_dontneed`), MADV_DONTFORK (accepted,
/// changes nothing), MADV_DOFORK and MADV_WIPEONFORK (EINVAL).
fn op_madvise(ctx: &mut Ctx<'_>) -> Step {
    let Some((src, mut b)) = ctx.take_mapped(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page();
    let i = ctx.rng.index(b.pieces.len());
    let p = b.pieces[i];
    let (name, advice, allowed): (&str, i32, &[i32]) = match ctx.rng.below(4) {
        0 | 1 => ("MADV_DONTNEED", libc::MADV_DONTNEED, &[]),
        2 => ("MADV_DONTFORK", libc::MADV_DONTFORK, &[]),
        _ if ctx.rng.chance(50) => ("MADV_DOFORK", libc::MADV_DOFORK, &[libc::EINVAL]),
        _ => ("MADV_WIPEONFORK", libc::MADV_WIPEONFORK, &[libc::EINVAL]),
    };
    ctx.what = format!(
        "{name} on the piece of handle {} (freed {}) pages {}..{} at {:#x}",
        b.handle,
        b.freed,
        p.first,
        p.first + p.pages,
        p.addr
    );
    let r = madvise(p.addr, p.pages as usize * page, advice);
    let r = if allowed.is_empty() {
        ctx.ok(r, name).map(|()| {
            if advice == libc::MADV_DONTNEED {
                b.pieces[i].zapped = true;
            }
        })
    } else {
        ctx.fails(r, allowed, name).map(|_| ())
    };
    ctx.put_mapped(src, b);
    r.map(|()| Ran::Done)
}

// ---- fork -------------------------------------------------------------------------------

/// Forks a child that touches the block: at the parent's mapping address (not inherited:
/// SIGSEGV), through its own mapping of the inherited file (the data, then a new pattern
/// the parent checks), or after MADV_DONTNEED of its own mapping (`after_dontneed`).
fn op_fork(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable() && f.readable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |b| b.pages <= 256) else {
        return Ok(Ran::Skipped);
    };
    let r = fork_child(ctx, &file, &mut b);
    put_block(&file, b);
    r.map(|()| Ran::Done)
}

fn fork_child(ctx: &mut Ctx<'_>, file: &File, b: &mut Block) -> Result<(), String> {
    let page = ctx.page();
    let len = page * b.pages() as usize;
    let want = b.data.bytes(0, b.pages(), page);
    let parent_addr = b.pieces.iter().find(|p| p.readable()).map(|p| p.addr);
    let mut scenario = ctx.rng.below(3);
    if scenario == 0 && parent_addr.is_none() {
        scenario = 1;
    }
    let seed = ctx.rng.next();
    let (fd, offset, want_ref) = (file.dev.fd(), b.offset, &want[..]);
    ctx.what = format!(
        "fork: the child {} handle {} (file {}, {} pages)",
        [
            "reads the parent's mapping of",
            "maps, checks and writes seed {seed:#x} into",
            "maps, MADV_DONTNEEDs and reads"
        ][scenario as usize],
        b.handle,
        file.id,
        b.pages
    );
    // The child makes system calls and reads and writes memory only: no allocation, no lock.
    let child = Child::spawn(|| {
        // The expected faults take the default action, not Rust's stack-overflow handler
        // (which may find a lock that another thread of the parent held at fork).
        // SAFETY: signal() with SIG_DFL is async-signal-safe and has no other precondition.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
        fork_scenario(scenario, parent_addr, fd, offset, len, want_ref, seed)
    })?;
    let exit = child.wait()?;
    fork_check(ctx, file, b, scenario, exit, seed)
}

/// What the forked child does; its exit code.
fn fork_scenario(
    scenario: u64,
    parent_addr: Option<usize>,
    fd: i32,
    offset: u64,
    len: usize,
    want_ref: &[u8],
    seed: u64,
) -> i32 {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    match scenario {
        0 => {
            let addr = parent_addr.unwrap_or(0);
            // SAFETY: the parent's mapping is not inherited: this load must fault (SIGSEGV).
            unsafe { std::ptr::read_volatile(addr as *const u8) };
            20
        }
        1 => {
            let Ok(at) = mmap(fd, offset, len, rw, libc::MAP_SHARED) else {
                return 10;
            };
            // SAFETY: a fresh shared mapping of `len` bytes.
            let bytes = unsafe { std::slice::from_raw_parts_mut(at as *mut u8, len) };
            if bytes != want_ref {
                return 11;
            }
            fill_pattern(seed, bytes);
            0
        }
        _ => {
            let Ok(at) = mmap(fd, offset, len, rw, libc::MAP_SHARED) else {
                return 10;
            };
            if madvise(at, len, libc::MADV_DONTNEED).is_err() {
                return 12;
            }
            // SAFETY: after MADV_DONTNEED: SIGBUS today, the data once pages refault.
            let bytes = unsafe { std::slice::from_raw_parts(at as *const u8, len) };
            let same = (0..len).all(|i| {
                // SAFETY: `i` is inside the mapping.
                unsafe { std::ptr::read_volatile(&bytes[i]) == want_ref[i] }
            });
            if same {
                0
            } else {
                11
            }
        }
    }
}

/// Checks how the child ended, and the block's data after it.
fn fork_check(
    ctx: &mut Ctx<'_>,
    file: &File,
    b: &mut Block,
    scenario: u64,
    exit: Exit,
    seed: u64,
) -> Result<(), String> {
    let expected = match scenario {
        0 => Exit::Signal(libc::SIGSEGV),
        2 if after_dontneed() == AfterDontneed::Sigbus => Exit::Signal(libc::SIGBUS),
        _ => Exit::Code(0),
    };
    if scenario == 1 && ctx.p.fail && exit == Exit::Code(10) {
        // mmap under fault injection: ENOMEM is allowed.
        return Ok(());
    }
    check!(
        exit == expected,
        "the child ended with {exit:?}, expected {expected:?} (10: its mmap failed, 11: data \
         differs from the model, 12: madvise failed, 20: read the parent's mapping)"
    );
    if scenario == 1 {
        b.data = Data::new(b.pages(), Fill::Pattern(seed));
        check_checksum(ctx, file, b, "CHECKSUM after the child wrote")?;
    }
    Ok(())
}

// ---- files passed between processes -----------------------------------------------------

/// Closes the files given away that their receivers took, freeing their mailbox slots.
fn reap_pending(ctx: &Ctx<'_>) {
    lock(&ctx.p.pending).retain(|(to, slot, _)| {
        let m = &ctx.p.stats.mail[*to][*slot];
        if m.state.load(Acquire) == MAIL_TAKEN {
            m.state.store(MAIL_EMPTY, Release);
            false
        } else {
            true
        }
    });
}

/// Allocates and fills a small block, then gives it with the file to a worker process (this
/// one too): the descriptor over the receiver's unix socket (`SCM_RIGHTS`), the message about
/// the block through its mailbox; the receiver checks the block through that file and frees
/// it.
fn op_send_file(ctx: &mut Ctx<'_>) -> Step {
    reap_pending(ctx);
    let Some(file) = ctx.pick_file(|f| f.writable() && f.readable()) else {
        return Ok(Ran::Skipped);
    };
    let to = ctx.rng.index(ctx.p.procs as usize);
    let Some(slot) = (0..crate::SLOTS).find(|&i| {
        ctx.p.stats.mail[to][i]
            .state
            .compare_exchange(MAIL_EMPTY, MAIL_BUSY, Acquire, Relaxed)
            .is_ok()
    }) else {
        return Ok(Ran::Skipped);
    };
    let mail = &ctx.p.stats.mail[to][slot];
    let mut m = lock(&file.model);
    let a = sys::minimm_alloc {
        size: size_of::<sys::minimm_alloc>() as u32,
        order: ctx.rng.below(3) as u32,
        zone: ctx.rng.below(3) as u32,
        ..Default::default()
    };
    let b = match alloc_locked(ctx, &file, &mut m, a) {
        Ok(Some(b)) => b,
        other => {
            mail.state.store(MAIL_EMPTY, Release);
            return other.map(|_| Ran::Done);
        }
    };
    let seed = ctx.rng.next();
    ctx.what = format!(
        "give file {} with handle {} (order {}, seed {seed:#x}) to process {to}",
        file.id, b.handle, a.order
    );
    let r = ctx
        .ok(file.dev.fill(b.handle, seed), "FILL")
        .and_then(|()| ctx.ok(file.dev.try_clone(), "dup"));
    let gift = match r {
        Ok(g) => g,
        Err(e) => {
            mail.state.store(MAIL_EMPTY, Release);
            m.live.push(b);
            return Err(e);
        }
    };
    let msg: [u64; MSG_WORDS] = [
        b.handle,
        u64::from(a.order),
        seed,
        u64::from(ctx.p.id),
        u64::from(file.id),
        b.offset,
    ];
    // SAFETY: getpid has no preconditions.
    mail.pid.store(unsafe { libc::getpid() } as u32, Relaxed);
    mail.fd.store(gift.fd() as u32, Relaxed);
    for (w, v) in mail.msg.iter().zip(msg) {
        w.store(v, Relaxed);
    }
    // The message is complete before the descriptor can arrive; the datagram names its slot.
    mail.state.store(MAIL_FULL, Release);
    let sock = ctx.p.socks.get(to).map(|s| s.1).unwrap_or(-1);
    if let Err(e) = send_fd(sock, gift.fd(), slot as u8) {
        // Nothing was sent: the gift stays this file's.
        mail.state.store(MAIL_EMPTY, Release);
        m.live.push(b);
        return Err(format!("sendmsg of the file to process {to}: {e}"));
    }
    let pages = u64::from(b.pages());
    m.charged -= pages;
    m.gifted.push((b.handle, pages));
    drop(m);
    lock(&ctx.p.pending).push((to, slot, gift));
    Ok(Ran::Done)
}

/// Takes a file given to this process: a descriptor from its unix socket (`SCM_RIGHTS`),
/// the same open file as the sender's, and the message in the mailbox slot it names.
fn take_mail(ctx: &Ctx<'_>) -> Result<Option<(std::os::fd::OwnedFd, [u64; MSG_WORDS])>, String> {
    let me = ctx.p.id as usize;
    let sock = ctx.p.socks.get(me).map(|s| s.0).unwrap_or(-1);
    let Some((fd, slot)) = ctx
        .outcome(recv_fd(sock), &[], "recvmsg of a given file")?
        .ok()
        .flatten()
    else {
        return Ok(None);
    };
    let mail = ctx
        .p
        .stats
        .mail
        .get(me)
        .and_then(|m| m.get(slot as usize))
        .ok_or_else(|| format!("a file for mailbox slot {slot}"))?;
    check!(
        mail.state
            .compare_exchange(MAIL_FULL, MAIL_BUSY, Acquire, Relaxed)
            .is_ok(),
        "a file arrived for mailbox slot {slot}, which holds no message"
    );
    let mut msg = [0u64; MSG_WORDS];
    for (v, w) in msg.iter_mut().zip(&mail.msg) {
        *v = w.load(Relaxed);
    }
    mail.state.store(MAIL_TAKEN, Release);
    Ok(Some((fd, msg)))
}

/// Receives a file and a handle from a worker process: the handle works on that file (the
/// same open file): its data, a mapping of it, FREE; a second FREE is EINVAL, and the handle
/// on one of this process's own files that has not reached it is EINVAL.
fn op_recv_file(ctx: &mut Ctx<'_>) -> Step {
    let Some((fd, msg)) = take_mail(ctx)? else {
        return Ok(Ran::Skipped);
    };
    let [handle, order, seed, from, id, offset] = msg;
    let dev = Device::from_fd(fd);
    let page = ctx.page();
    ctx.what = format!(
        "received file {id} of process {from} with handle {handle} (order {order}, seed \
         {seed:#x})"
    );
    let order = u32::try_from(order).map_err(|_| format!("message {msg:?}"))?;
    let data = Data::new(1 << order, Fill::Pattern(seed));
    let sum = ctx.ok(dev.checksum(handle), "CHECKSUM of the received handle")?;
    let want = data.checksum(1 << order, page);
    check!(
        sum == want,
        "received handle {handle}: checksum {sum:#x}, expected {want:#x}"
    );
    if ctx.rng.chance(50) {
        let len = page << order;
        let r = mmap(dev.fd(), offset, len, libc::PROT_READ, libc::MAP_SHARED);
        if let Ok(addr) = ctx.outcome(r, ctx.mmap_may_fail(), "mmap of the received handle")? {
            let b = Block {
                handle,
                pages: 1 << order,
                area: None,
                zone: 0,
                offset,
                data,
                pieces: Vec::new(),
                freed: false,
                discardable: false,
            };
            let p = Piece {
                addr,
                first: 0,
                pages: 1 << order,
                prot: libc::PROT_READ,
                zapped: false,
            };
            let r = verify_piece(&b, &p, page, "mapping of the received handle");
            ctx.ok(munmap(addr, len), "munmap")?;
            r?;
        }
    }
    ctx.ok(dev.free(handle), "FREE of the received handle")?;
    ctx.fails(
        dev.free(handle),
        &[libc::EINVAL],
        "second FREE of the received handle",
    )?;
    if let Some(own) = ctx.pick_file(|f| f.writable()) {
        let m = lock(&own.model);
        if handle > m.last_handle {
            ctx.what += &format!(", then FREE of it on own file {}", own.id);
            ctx.fails(
                own.dev.free(handle),
                &[libc::EINVAL],
                "FREE of another process's handle",
            )?;
        }
    }
    Ok(Ran::Done)
}

// ---- races ------------------------------------------------------------------------------

/// FREE of a block racing a command on it from another thread: FREE succeeds; the other
/// call succeeds or finds the handle gone (EINVAL); a mapping it made stays valid, with the
/// block's data.
fn op_race_free(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable() && f.readable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(mut b) = ctx.take_block(&file, false, |b| b.pieces.len() < MAX_PIECES) else {
        return Ok(Ran::Skipped);
    };
    let r = race_free(ctx, &file, &mut b);
    put_block(&file, b);
    r.map(|()| Ran::Done)
}

fn race_free(ctx: &mut Ctx<'_>, file: &File, b: &mut Block) -> Result<(), String> {
    let page = ctx.page();
    let len = page * b.pages() as usize;
    let what = ctx.rng.below(3);
    let seed = ctx.rng.next();
    let spin = ctx.rng.below(20_000);
    ctx.what = format!(
        "FREE of handle {} racing {} (file {})",
        b.handle,
        ["CHECKSUM", "FILL", "mmap"][what as usize],
        file.id
    );
    let barrier = Barrier::new(2);
    let (h, offset) = (b.handle, b.offset);
    let (freed, other) = std::thread::scope(|s| {
        let t = s.spawn(|| {
            barrier.wait();
            for _ in 0..spin {
                std::hint::spin_loop();
            }
            file.dev.free(h)
        });
        barrier.wait();
        let other = match what {
            0 => file.dev.checksum(h).map(Some),
            1 => file.dev.fill(h, seed).map(|()| None),
            _ => mmap(
                file.dev.fd(),
                offset,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
            )
            .map(|a| Some(a as u64)),
        };
        (t.join(), other)
    });
    let freed = freed.map_err(|_| "the FREE thread panicked".to_string())?;
    b.freed = freed.is_ok();
    ctx.ok(freed, "FREE")?;
    lock(&file.model).note_freed(h);
    let mut allowed = vec![libc::EINVAL];
    if what == 2 {
        allowed.extend(ctx.mmap_may_fail());
    }
    if let Ok(v) = ctx.outcome(other, &allowed, "the call racing FREE")? {
        match what {
            0 => {
                let want = b.data.checksum(b.pages(), page);
                check!(
                    v == Some(want),
                    "CHECKSUM racing FREE: {v:x?}, model {want:#x}"
                );
            }
            1 => b.data = Data::new(b.pages(), Fill::Pattern(seed)),
            _ => {
                let p = Piece {
                    addr: v.unwrap_or(0) as usize,
                    first: 0,
                    pages: b.pages(),
                    prot: libc::PROT_READ | libc::PROT_WRITE,
                    zapped: false,
                };
                b.pieces.push(p);
                verify_piece(b, &p, page, "mapping made racing FREE")?;
            }
        }
    }
    Ok(())
}

// ---- looking --------------------------------------------------------------------------

/// ZONE_STATS of a zone (its invariants: free pages are the free blocks, watermarks in
/// order), of a zone that does not exist (EINVAL), or with a bad size (EINVAL, E2BIG).
fn op_zone_stats(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let page = ctx.page() as u64;
    let mut s = sys::minimm_zone_stats {
        size: size_of::<sys::minimm_zone_stats>() as u32,
        zone: ctx.rng.below(3) as u32,
        ..Default::default()
    };
    let errno = match ctx.rng.below(8) {
        0 => {
            s.zone = 3 + ctx.rng.below(u64::from(u32::MAX) - 3) as u32;
            Some(libc::EINVAL)
        }
        1 => {
            s.size = ctx.rng.below(u64::from(sys::MINIMM_ZONE_STATS_SIZE_VER0)) as u32;
            Some(libc::EINVAL)
        }
        2 => {
            s.size = (page + 1 + ctx.rng.below(page - 1)) as u32;
            Some(libc::E2BIG)
        }
        _ => None,
    };
    ctx.what = format!(
        "ZONE_STATS file {} zone {} size {}",
        file.id, s.zone, s.size
    );
    let mut buf = buffer(page as usize);
    put(&mut buf, s);
    let r = ioctl_at(
        &file.dev,
        sys::MINIMM_IOC_ZONE_STATS,
        &mut buf,
        &Place::Buffer,
    );
    if let Some(errno) = errno {
        ctx.fails(r, &[errno], "invalid ZONE_STATS")?;
        return Ok(Ran::Done);
    }
    ctx.ok(r, "ZONE_STATS")?;
    let s: sys::minimm_zone_stats = get(&buf);
    check!(
        s.size == sys::MINIMM_ZONE_STATS_SIZE_VER0,
        "ZONE_STATS size {}",
        s.size
    );
    let in_blocks: u64 = s.nr_free.iter().enumerate().map(|(o, n)| n << o).sum();
    check!(
        in_blocks == s.free_pages,
        "ZONE_STATS: free blocks add up to {in_blocks} pages, free_pages is {} ({s:?})",
        s.free_pages
    );
    check!(
        s.free_pages <= s.managed_pages && s.pcp_pages <= s.managed_pages,
        "ZONE_STATS: more free than managed ({s:?})"
    );
    check!(
        s.wmark_min <= s.wmark_low && s.wmark_low <= s.wmark_high,
        "ZONE_STATS: watermarks out of order ({s:?})"
    );
    Ok(Ran::Done)
}

fn op_get_info(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    ctx.what = format!("GET_INFO file {}", file.id);
    let i = ctx.ok(file.dev.info(), "GET_INFO")?;
    check!(
        i.size == sys::MINIMM_INFO_SIZE_VER0
            && i.abi_version == sys::MINIMM_ABI_VERSION
            && i.page_size as usize == ctx.page()
            && i.max_order == sys::MINIMM_MAX_ORDER
            && i.nr_zones == sys::MINIMM_NR_ZONES
            && i.__pad == 0
            && i.features & !sys::MINIMM_FEATURES_VALID == 0,
        "GET_INFO: {i:?}"
    );
    Ok(Ran::Done)
}

/// Every readable file of debugfs `minimm/`.
const DEBUGFS_FILES: &[(&str, u32)] = &[
    ("info", 3),
    ("buddyinfo", 3),
    ("zoneinfo", 2),
    ("unusable_index", 2),
    ("extfrag_index", 2),
    ("vmstat", 4),
    ("watermarks", 2),
    ("validate", 1),
    ("bench", 1),
    ("pcp_lists", 2),
    ("slabinfo", 2),
];

const ZONE_NAMES: [&str; 3] = ["DMA", "DMA32", "Normal"];

/// A `Node 0, zone NAME v v v ...` line with 11 values that `parse` accepts.
fn zone_line(l: &str, parse: fn(&str) -> bool) -> Result<(), String> {
    let rest = l
        .strip_prefix("Node 0, zone ")
        .ok_or(format!("line {l:?}"))?;
    let mut w = rest.split_whitespace();
    let name = w.next().unwrap_or("");
    check!(ZONE_NAMES.contains(&name), "zone {name:?} in {l:?}");
    let vals: Vec<&str> = w.collect();
    check!(
        vals.len() == 11 && vals.iter().all(|v| parse(v)),
        "line {l:?}: want 11 values"
    );
    Ok(())
}

/// Reads a debugfs file and checks it against its format (README "debugfs minimm/").
fn op_debugfs(ctx: &mut Ctx<'_>) -> Step {
    let i = ctx.rng.weighted(DEBUGFS_FILES.iter().map(|f| f.1));
    let name = DEBUGFS_FILES[i].0;
    if name == "slabinfo" && !ctx.p.slab {
        return Ok(Ran::Skipped);
    }
    ctx.what = format!("read debugfs minimm/{name}");
    let text = ctx.ok(debugfs(name), "read")?;
    let uint = |v: &str| v.parse::<u64>().is_ok();
    // Linux's "%2d.%03d" of index / 1000 and index % 1000: a negative fragmentation index
    // above -1000 prints as "0.-500", in Linux as here.
    let milli = |v: &str| {
        v.split_once('.')
            .is_some_and(|(a, b)| a.parse::<i64>().is_ok() && b.parse::<i64>().is_ok())
    };
    match name {
        "info" => {
            let kv = parse_kv(&text);
            let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            check!(get("version").is_some(), "no version in {text:?}");
            check!(
                get("abi_version") == Some(sys::MINIMM_ABI_VERSION.to_string())
                    && get("page_size") == Some(ctx.page().to_string())
                    && get("file_quota_pages") == Some(ctx.p.quota.to_string()),
                "info: {text:?}"
            );
        }
        "buddyinfo" | "unusable_index" | "extfrag_index" => {
            let parse = if name == "buddyinfo" { uint } else { milli };
            let mut n = 0;
            for l in text.lines().filter(|l| !l.trim().is_empty()) {
                zone_line(l, parse)?;
                n += 1;
            }
            check!(n >= 1, "{name}: no zone in {text:?}");
        }
        "zoneinfo" => {
            let free = text
                .lines()
                .filter(|l| l.trim_start().starts_with("pages free"))
                .count();
            check!(free >= 1, "zoneinfo: no 'pages free' line");
            check!(
                text.lines()
                    .filter(|l| l.starts_with("Node 0, zone"))
                    .count()
                    == free,
                "zoneinfo: zones and 'pages free' lines differ"
            );
        }
        "vmstat" => {
            for l in text.lines() {
                let (k, v) = l.split_once(' ').ok_or(format!("vmstat line {l:?}"))?;
                check!(!k.is_empty() && uint(v.trim()), "vmstat line {l:?}");
            }
            for k in [
                "nr_free_pages",
                "nr_held_pages",
                "pgfree",
                "nr_managed_pages",
            ] {
                check!(
                    text.lines().any(|l| l.split(' ').next() == Some(k)),
                    "vmstat has no {k}"
                );
            }
        }
        "watermarks" => {
            for l in text.lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                let v: Vec<u64> = w.iter().skip(1).filter_map(|x| x.parse().ok()).collect();
                check!(
                    w.len() == 4 && ZONE_NAMES.contains(&w[0]) && v.len() == 3,
                    "watermarks line {l:?}"
                );
                check!(v[0] <= v[1] && v[1] <= v[2], "watermarks line {l:?}");
            }
        }
        "validate" => {
            check!(
                text.lines().filter(|l| l.contains(": ok,")).count() == 3,
                "validate: {text:?}"
            );
        }
        "pcp_lists" => {
            // "Node 0, zone NAME cpu C count N blocks B0 B1 B2 B3", each line read under its
            // CPU's lock: the count is the pages of the four orders' blocks.
            for l in text.lines() {
                let (_, rest) = l.split_once(" count ").ok_or(format!("line {l:?}"))?;
                let v: Vec<u64> = rest
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                check!(v.len() == 5, "pcp_lists line {l:?}");
                let pages: u64 = v[1..].iter().enumerate().map(|(o, b)| b << o).sum();
                check!(
                    v[0] == pages,
                    "pcp_lists line {l:?}: count is not the blocks' pages"
                );
            }
            check!(text.lines().count() >= 2, "pcp_lists: {text:?}");
        }
        "slabinfo" => {
            // Every line in the format; the generic caches among them.
            let lines = slab::parse_slabinfo(&text)?;
            check!(
                lines.iter().any(|l| l.name == "minimm-kmalloc-64"),
                "slabinfo has no minimm-kmalloc-64: {text:?}"
            );
        }
        _ => {}
    }
    Ok(Ran::Done)
}

fn op_drain_pcp(ctx: &mut Ctx<'_>) -> Step {
    ctx.what = "write 1 to debugfs minimm/drain_pcp".into();
    ctx.ok(
        std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1"),
        "drain_pcp",
    )?;
    Ok(Ran::Done)
}
