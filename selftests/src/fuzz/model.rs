// SPDX-License-Identifier: GPL-2.0

//! What the fuzzer believes each open file of `/dev/minimm` holds: its blocks (handle, order,
//! zone, the data last written), their mappings piece by piece, the handles it freed, the
//! pages its quota is charged with. Every file's model sits behind its own mutex; a thread
//! that works on a block takes it out of the model for the time of the operation, so that no
//! other thread touches it meanwhile and the expected outcome of every call on it is exact.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64},
        Arc, Mutex, MutexGuard,
    },
    time::Instant,
};

use minimm_uapi::{checksum, fill_pattern_at, Device};

use crate::Stats;

/// What an access to a block mapping after `MADV_DONTNEED` does: the fault handler maps the
/// block's pages again, so the access reads the same data (before the fault handler, it was
/// `SIGBUS`).
pub(crate) const fn after_dontneed() -> AfterDontneed {
    AfterDontneed::Refault
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AfterDontneed {
    /// The access raises SIGBUS; the block and its data are unchanged.
    Sigbus,
    /// The access maps the block's page again: the data reads as before.
    Refault,
}

/// What a run of pages of a block holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fill {
    Zero,
    /// The pattern of the seed at the pages' own offsets in the block (what
    /// `MINIMM_BLOCK_FILL` writes there).
    Pattern(u64),
}

/// A block's expected contents: runs of pages, in order, covering the whole block.
#[derive(Clone, Debug)]
pub(crate) struct Data {
    runs: Vec<(u32, u32, Fill)>,
}

impl Data {
    pub(crate) fn new(pages: u32, fill: Fill) -> Self {
        Self {
            runs: vec![(0, pages, fill)],
        }
    }

    /// Pages `start..end` now hold `fill`.
    pub(crate) fn write(&mut self, start: u32, end: u32, fill: Fill) {
        let mut out = Vec::with_capacity(self.runs.len() + 2);
        for &(s, e, f) in &self.runs {
            if e <= start || s >= end {
                out.push((s, e, f));
                continue;
            }
            if s < start {
                out.push((s, start, f));
            }
            if e > end {
                out.push((end, e, f));
            }
        }
        out.push((start, end, fill));
        out.sort_by_key(|r| r.0);
        let mut merged: Vec<(u32, u32, Fill)> = Vec::with_capacity(out.len());
        for r in out {
            match merged.last_mut() {
                Some(last) if last.2 == r.2 && last.1 == r.0 => last.1 = r.1,
                _ => merged.push(r),
            }
        }
        self.runs = merged;
    }

    /// The expected bytes of pages `start..end`.
    pub(crate) fn bytes(&self, start: u32, end: u32, page: usize) -> Vec<u8> {
        let mut buf = vec![0u8; (end - start) as usize * page];
        for &(s, e, f) in &self.runs {
            let (a, b) = (s.max(start), e.min(end));
            if a >= b {
                continue;
            }
            if let Fill::Pattern(seed) = f {
                let at = (a - start) as usize * page..(b - start) as usize * page;
                fill_pattern_at(seed, u64::from(a) * page as u64, &mut buf[at]);
            }
        }
        buf
    }

    /// The data of an area resized to `pages` pages: its first pages as they were (at the
    /// same offsets), the rest zero.
    pub(crate) fn resized(&self, pages: u32) -> Self {
        let mut d = Self::new(pages, Fill::Zero);
        for &(s, e, f) in &self.runs {
            let e = e.min(pages);
            if s < e {
                d.write(s, e, f);
            }
        }
        d
    }

    /// What `MINIMM_BLOCK_CHECKSUM` must return for a block of `pages` pages.
    pub(crate) fn checksum(&self, pages: u32, page: usize) -> u64 {
        checksum(&self.bytes(0, pages, page))
    }
}

/// One VMA of a block mapping: `pages` pages of the block from page `first`, at `addr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    pub(crate) addr: usize,
    pub(crate) first: u32,
    pub(crate) pages: u32,
    pub(crate) prot: i32,
    /// `MADV_DONTNEED` was applied to it (see [`after_dontneed`]).
    pub(crate) zapped: bool,
}

impl Piece {
    /// Whether the fuzzer may read the piece's bytes.
    pub(crate) fn readable(&self) -> bool {
        self.prot & libc::PROT_READ != 0
            && (!self.zapped || after_dontneed() == AfterDontneed::Refault)
    }

    /// Whether the fuzzer may write the piece's bytes.
    pub(crate) fn writable(&self) -> bool {
        self.readable() && self.prot & libc::PROT_WRITE != 0
    }
}

/// A block of a file: live, or freed while mapped (valid until its last piece goes), or left
/// mapped by a file that was closed.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) handle: u64,
    /// Pages: 2^order for a block, any number for an area.
    pub(crate) pages: u32,
    /// A vmalloc-like area (`VM_CREATE`), with these `MINIMM_VM_*` flags, or a block.
    pub(crate) area: Option<u32>,
    pub(crate) zone: u32,
    pub(crate) offset: u64,
    pub(crate) data: Data,
    pub(crate) pieces: Vec<Piece>,
    pub(crate) freed: bool,
    /// Allocated with `MINIMM_ALLOC_DISCARDABLE` (pinned while in `live`).
    pub(crate) discardable: bool,
}

impl Block {
    pub(crate) fn pages(&self) -> u32 {
        self.pages
    }
}

/// The model of one open file.
#[derive(Default)]
pub(crate) struct FileModel {
    /// Live blocks not taken by a thread.
    pub(crate) live: Vec<Block>,
    /// Live discardable blocks that are unpinned, not taken by a thread: their bytes are the
    /// model's until a purge, which only PIN reports. Their pieces stay mapped, read only
    /// through `process_vm_readv` (a purged page is `EFAULT` there, not `SIGBUS`).
    pub(crate) unpinned: Vec<Block>,
    /// Handles of unpinned buffers whose reads saw a purge (ENODATA, SIGBUS, or EFAULT
    /// without fault injection): their next successful PIN must report one.
    pub(crate) purge_seen: Vec<u64>,
    /// Freed blocks still mapped, not taken by a thread.
    pub(crate) freed_mapped: Vec<Block>,
    /// The last handle ALLOC returned (handles are 1, 2, 3... and never reused).
    pub(crate) last_handle: u64,
    /// Handles freed on this file, the latest few.
    pub(crate) freed: Vec<u64>,
    /// Pages charged to the file's quota: its blocks, freed ones still mapped too.
    pub(crate) charged: u64,
    /// Pages of blocks taken by threads whose operation may give them back (FREE, munmap).
    pub(crate) releasing: u64,
    /// Blocks handed to another process with the file (handle, pages): charged until it frees
    /// them.
    pub(crate) gifted: Vec<(u64, u64)>,
    /// Slab caches of the file (MINIMM_FEAT_SLAB), all of them: slab operations keep the
    /// model locked for their whole time.
    pub(crate) caches: Vec<Cache>,
    /// Live slab objects of the file, of its caches and of the generic caches.
    pub(crate) objects: Vec<Obj>,
    /// Object handles freed on this file, the latest few.
    pub(crate) dead_objects: Vec<u64>,
    /// Cache handles destroyed on this file, and the names they had, the latest few.
    pub(crate) dead_caches: Vec<(u64, String)>,
    /// A slab command has issued a handle on this file: if slab and block handles come from
    /// one sequence, block handles are no longer consecutive (only increasing).
    pub(crate) slab_handles: bool,
}

impl FileModel {
    pub(crate) fn note_freed(&mut self, handle: u64) {
        if self.freed.len() >= 32 {
            self.freed.remove(0);
        }
        self.freed.push(handle);
    }

    /// The least and the most bytes the module may count against the quota now: pages of
    /// blocks times the page size, plus the slot size of every object.
    pub(crate) fn charge_bounds(&self, page: usize) -> (u64, u64) {
        let gifted: u64 = self.gifted.iter().map(|g| g.1).sum();
        let page = page as u64;
        let lo: u64 = self.objects.iter().map(|o| o.charge.0).sum();
        let hi: u64 = self.objects.iter().map(|o| o.charge.1).sum();
        (
            self.charged.saturating_sub(self.releasing) * page + lo,
            (self.charged + gifted) * page + hi,
        )
    }

    pub(crate) fn note_dead_object(&mut self, handle: u64) {
        if self.dead_objects.len() >= 32 {
            self.dead_objects.remove(0);
        }
        self.dead_objects.push(handle);
    }

    pub(crate) fn note_dead_cache(&mut self, handle: u64, name: String) {
        if self.dead_caches.len() >= 16 {
            self.dead_caches.remove(0);
        }
        self.dead_caches.push((handle, name));
    }

    /// The cache of handle `h`, if the file has it.
    pub(crate) fn cache(&self, h: u64) -> Option<&Cache> {
        self.caches.iter().find(|c| c.handle == h)
    }

    pub(crate) fn cache_mut(&mut self, h: u64) -> Option<&mut Cache> {
        self.caches.iter_mut().find(|c| c.handle == h)
    }

    /// Whether `h` names a live object of the file.
    pub(crate) fn is_object(&self, h: u64) -> bool {
        self.objects.iter().any(|o| o.handle == h)
    }

    /// Whether `h` names a cache of the file.
    pub(crate) fn is_cache(&self, h: u64) -> bool {
        self.caches.iter().any(|c| c.handle == h)
    }

    /// Removes object `h` from the model after the module freed it.
    pub(crate) fn object_freed(&mut self, h: u64) -> Option<Obj> {
        let i = self.objects.iter().position(|o| o.handle == h)?;
        let o = self.objects.swap_remove(i);
        if let Some(c) = self.cache_mut(o.cache) {
            c.live -= 1;
            c.fresh = false;
        }
        self.note_dead_object(h);
        Some(o)
    }

    /// Live objects of cache `h` (0: the generic caches).
    pub(crate) fn live_of(&self, h: u64) -> u64 {
        self.objects.iter().filter(|o| o.cache == h).count() as u64
    }
}

/// A slab cache of a file.
#[derive(Clone, Debug)]
pub(crate) struct Cache {
    pub(crate) handle: u64,
    pub(crate) name: String,
    pub(crate) flags: u32,
    pub(crate) object_size: u32,
    /// The alignment asked for (0: the minimum).
    pub(crate) align: u32,
    pub(crate) ctor_seed: u64,
    /// Bytes each object counts against the quota (STATS' slot_size).
    pub(crate) slot: u64,
    /// Objects allocated from it and not freed.
    pub(crate) live: u64,
    /// No object of it was ever freed, nor an allocation from it failed: every object it
    /// hands out was never allocated before.
    pub(crate) fresh: bool,
}

/// A slab object of a file.
#[derive(Clone, Debug)]
pub(crate) struct Obj {
    pub(crate) handle: u64,
    /// Its cache's handle; 0 for the generic caches.
    pub(crate) cache: u64,
    /// Bytes SLAB_DATA reaches.
    pub(crate) objsize: u32,
    /// The least and the most bytes it may count against the quota.
    pub(crate) charge: (u64, u64),
    pub(crate) data: ObjData,
}

/// What a run of an object's bytes holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Bytes {
    /// Not known (what a former user left, a constructor's pattern or poison).
    Unknown,
    Zero,
    /// Byte `x` of the object is byte `x - origin` of the pattern of `seed`.
    Pattern {
        seed: u64,
        origin: u32,
    },
    /// SLUB's poison of an object of `len` bytes: 0x6b, the last byte 0xa5.
    Poison {
        len: u32,
    },
}

/// SLUB's poison bytes (include/linux/poison.h).
pub(crate) const POISON_FREE: u8 = 0x6b;
pub(crate) const POISON_END: u8 = 0xa5;

/// An object's expected bytes: runs, in order, covering the whole object.
#[derive(Clone, Debug)]
pub(crate) struct ObjData {
    runs: Vec<(u32, u32, Bytes)>,
}

impl ObjData {
    pub(crate) fn new(len: u32, b: Bytes) -> Self {
        Self {
            runs: if len == 0 {
                Vec::new()
            } else {
                vec![(0, len, b)]
            },
        }
    }

    /// Bytes `start..end` now hold `b`.
    pub(crate) fn write(&mut self, start: u32, end: u32, b: Bytes) {
        if start >= end {
            return;
        }
        let mut out = Vec::with_capacity(self.runs.len() + 2);
        for &(s, e, f) in &self.runs {
            if e <= start || s >= end {
                out.push((s, e, f));
                continue;
            }
            if s < start {
                out.push((s, start, f));
            }
            if e > end {
                out.push((end, e, f));
            }
        }
        out.push((start, end, b));
        out.sort_by_key(|r| r.0);
        let mut merged: Vec<(u32, u32, Bytes)> = Vec::with_capacity(out.len());
        for r in out {
            match merged.last_mut() {
                Some(last) if last.2 == r.2 && last.1 == r.0 => last.1 = r.1,
                _ => merged.push(r),
            }
        }
        self.runs = merged;
    }

    /// The expected bytes of `start..end`, `None` where unknown.
    pub(crate) fn expected(&self, start: u32, end: u32) -> Vec<Option<u8>> {
        let mut out = vec![None; (end - start) as usize];
        for &(s, e, f) in &self.runs {
            let (a, b) = (s.max(start), e.min(end));
            if a >= b {
                continue;
            }
            let dst = &mut out[(a - start) as usize..(b - start) as usize];
            match f {
                Bytes::Unknown => {}
                Bytes::Zero => dst.fill(Some(0)),
                Bytes::Poison { len } => {
                    for (k, d) in dst.iter_mut().enumerate() {
                        let x = a + k as u32;
                        *d = Some(if x + 1 == len {
                            POISON_END
                        } else {
                            POISON_FREE
                        });
                    }
                }
                Bytes::Pattern { seed, origin } => {
                    let rel = u64::from(a - origin);
                    let base = rel & !7;
                    let mut buf = vec![0u8; (u64::from(b - origin) - base) as usize];
                    fill_pattern_at(seed, base, &mut buf);
                    for (d, v) in dst.iter_mut().zip(&buf[(rel - base) as usize..]) {
                        *d = Some(*v);
                    }
                }
            }
        }
        out
    }
}

/// An open file of `/dev/minimm` and its model. Dropping the last reference closes it; its
/// blocks still mapped become the process's orphans, valid until their last piece goes.
pub(crate) struct File {
    pub(crate) id: u32,
    pub(crate) dev: Device,
    pub(crate) mode: i32,
    pub(crate) model: Mutex<FileModel>,
    orphans: Arc<Mutex<Vec<Block>>>,
}

impl File {
    pub(crate) fn writable(&self) -> bool {
        self.mode != libc::O_RDONLY
    }

    pub(crate) fn readable(&self) -> bool {
        self.mode != libc::O_WRONLY
    }

    pub(crate) fn mode_name(&self) -> &'static str {
        match self.mode {
            libc::O_RDONLY => "O_RDONLY",
            libc::O_WRONLY => "O_WRONLY",
            _ => "O_RDWR",
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let m = self.model.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut keep: Vec<Block> = m
            .live
            .drain(..)
            .chain(m.freed_mapped.drain(..))
            .filter(|b| !b.pieces.is_empty())
            .collect();
        for b in &mut keep {
            b.freed = true;
        }
        lock(&self.orphans).extend(keep);
        // An unpinned block's mappings go: a purge would make them fault (SIGBUS) for
        // whoever read them as an orphan's.
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        for b in m.unpinned.drain(..) {
            for p in &b.pieces {
                let _ = crate::sys::munmap(p.addr, p.pages as usize * page);
            }
        }
        // `dev` closes after this: the mappings keep the file open in the kernel.
    }
}

/// One worker process: its files, orphaned mappings, sockets and shared counters.
pub(crate) struct Proc {
    pub(crate) id: u32,
    pub(crate) files: Mutex<Vec<Arc<File>>>,
    pub(crate) orphans: Arc<Mutex<Vec<Block>>>,
    pub(crate) next_file: AtomicU32,
    /// Worker processes in the run.
    pub(crate) procs: u32,
    /// Files given away through a mailbox slot (process, slot), kept open until taken.
    pub(crate) pending: Mutex<Vec<(usize, usize, Device)>>,
    /// Each worker's unix socket pair (receive end, send end), shared by every worker: a file
    /// for worker `w` travels, with `SCM_RIGHTS`, on `socks[w]`.
    pub(crate) socks: Vec<(i32, i32)>,
    pub(crate) quota: u64,
    pub(crate) page: usize,
    pub(crate) fail: bool,
    pub(crate) stats: &'static Stats,
    pub(crate) deadline: Option<Instant>,
    pub(crate) verbose: bool,
    /// GET_INFO's features have MINIMM_FEAT_SLAB: the slab operations run.
    pub(crate) slab: bool,
    /// GET_INFO's features have MINIMM_FEAT_VMALLOC: the area operations run.
    pub(crate) vm: bool,
    /// GET_INFO's features have MINIMM_FEAT_RECLAIM: the discardable-block operations run.
    pub(crate) reclaim: bool,
    /// The process id, in the names of its caches.
    pub(crate) pid: u32,
    /// The next number in the names of this process's caches.
    pub(crate) next_name: AtomicU64,
}

impl Proc {
    /// A new model for `dev`, opened with `mode`.
    pub(crate) fn file(&self, dev: Device, mode: i32) -> Arc<File> {
        Arc::new(File {
            id: self
                .next_file
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            dev,
            mode,
            model: Mutex::new(FileModel::default()),
            orphans: self.orphans.clone(),
        })
    }
}

/// Locks `m`. Workers abort on panic (the release profile), so no lock is ever poisoned.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
