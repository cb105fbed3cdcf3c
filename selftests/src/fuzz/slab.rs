// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's slab operations (MINIMM_FEAT_SLAB; include/uapi/linux/minimm.h, "Slab
//! caches"): CREATE with valid and invalid names, sizes, alignments and flags, name
//! collisions; ALLOC from a cache or the generic caches, FREE, BULK, DATA, SHRINK, STATS,
//! DESTROY; handles freed, destroyed, made up or another file's; the structs' faults.
//!
//! Every slab operation keeps its file's model locked for its whole time: the file's caches
//! and objects are used by no other thread meanwhile, so the model knows each cache's live
//! objects (STATS' `active_objs` exactly), what each object holds where known, and the bytes
//! charged to the quota within bounds (an object of the generic caches counts its size
//! class's slot, which the model bounds from both sides).

use std::{io, mem::size_of, sync::atomic::Ordering::Relaxed};

use minimm_uapi::{debugfs, fill_pattern, sys, Device};

use crate::{
    model::{lock, Bytes, Cache, File, FileModel, Obj, ObjData},
    ops::{buffer, bytes_mut, get, ioctl_at, put, Ctx, Place, Ran, Step},
    sys::{mmap, mprotect, munmap, slab_alloc, slab_bulk, slab_cache, slab_data, slab_free},
};

/// Caches one file gets from the ordinary CREATEs (the limit operation goes to
/// `MINIMM_SLAB_MAX_CACHES`).
const MAX_CACHES: usize = 8;
/// Live objects one file holds at most before an allocation.
const MAX_OBJECTS: usize = 128;
/// Bytes one SLAB_DATA here moves at most.
const DATA_MAX: u32 = 64 << 10;
/// The generic caches' size classes (Linux's kmalloc_info up to 8 KiB).
const GENERIC_SIZES: [u32; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/// Bytes a cache name may be made of.
const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
/// Bytes a cache name may not hold (the NUL aside).
const BAD_NAME_CHARS: &[u8] = b" /:*!@#$%^&()[]{}<>,;'\"\\|?~`+=\t\n\x01\x7f\x80\xc3\xff";

/// Whether `name` is a fuzzer's cache name: this process's own (`fz<pid>-<n>_...`), the
/// shared ones of deliberate collisions (`fzs<k>` and names of one byte).
pub(crate) fn fuzzer_name(name: &str) -> bool {
    name.starts_with("fz") || name.len() == 1
}

// ---- slabinfo ---------------------------------------------------------------------------

/// One line of debugfs `minimm/slabinfo` (/proc/slabinfo 2.1).
#[derive(Clone, Debug)]
pub(crate) struct SlabLine {
    pub(crate) name: String,
    pub(crate) active_objs: u64,
    pub(crate) num_objs: u64,
    pub(crate) objsize: u64,
    pub(crate) objperslab: u64,
    pub(crate) pagesperslab: u64,
    pub(crate) num_slabs: u64,
}

/// Parses slabinfo 2.1: the two header lines, then per cache `name active num objsize
/// objperslab pagesperslab : tunables limit batchcount sharedfactor : slabdata active_slabs
/// num_slabs sharedavail`.
pub(crate) fn parse_slabinfo(text: &str) -> Result<Vec<SlabLine>, String> {
    let mut lines = text.lines();
    check!(
        lines.next() == Some("slabinfo - version: 2.1"),
        "slabinfo: first line of {text:?}"
    );
    check!(
        lines.next().is_some_and(|l| l.starts_with("# name")),
        "slabinfo: second line of {text:?}"
    );
    let mut out = Vec::new();
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        let n = |i: usize| w.get(i).and_then(|v| v.parse::<u64>().ok());
        let nums = [1, 2, 3, 4, 5, 8, 9, 10, 13, 14, 15];
        check!(
            w.len() == 16
                && w[6] == ":"
                && w[7] == "tunables"
                && w[11] == ":"
                && w[12] == "slabdata"
                && nums.iter().all(|&i| n(i).is_some()),
            "slabinfo line {l:?}"
        );
        let v = |i: usize| n(i).unwrap_or(0);
        let line = SlabLine {
            name: w[0].to_string(),
            active_objs: v(1),
            num_objs: v(2),
            objsize: v(3),
            objperslab: v(4),
            pagesperslab: v(5),
            num_slabs: v(14),
        };
        check!(
            line.active_objs <= line.num_objs
                && v(13) <= line.num_slabs
                && line.num_objs == line.num_slabs * line.objperslab
                && line.pagesperslab.is_power_of_two(),
            "slabinfo line {l:?}: counters disagree"
        );
        check!(
            !line.name.is_empty()
                && line.name.len() < sys::MINIMM_SLAB_NAME_LEN as usize
                && line.name.bytes().all(|b| NAME_CHARS.contains(&b)),
            "slabinfo line {l:?}: name"
        );
        out.push(line);
    }
    Ok(out)
}

/// Reads and parses debugfs `minimm/slabinfo`.
pub(crate) fn slabinfo() -> Result<Vec<SlabLine>, String> {
    let text = debugfs("slabinfo").map_err(|e| format!("read debugfs minimm/slabinfo: {e}"))?;
    parse_slabinfo(&text)
}

// ---- helpers ----------------------------------------------------------------------------

const fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// The order of the smallest buddy block of at least `bytes`.
fn get_order(bytes: u64, page: u64) -> u32 {
    let mut o = 0;
    while (page << o) < bytes {
        o += 1;
    }
    o
}

/// The least and the most bytes a generic object of `bytes` may count against the quota:
/// at least what was asked for, at most its size class with generous debugging room, or the
/// pages of a large allocation.
fn generic_charge(bytes: u32, page: usize) -> (u64, u64) {
    let b = u64::from(bytes);
    match GENERIC_SIZES.iter().find(|&&c| bytes <= c) {
        Some(&c) => (b, 2 * u64::from(c) + 256),
        None => (b, (page as u64) << get_order(b, page as u64)),
    }
}

/// What SLAB_ALLOC may fail with besides, under fault injection, before it looks its cache
/// up: the handle slot's reservation (`handle_insert`).
fn enomem_injected(ctx: &Ctx<'_>) -> Vec<i32> {
    if ctx.p.fail {
        vec![libc::ENOMEM]
    } else {
        Vec::new()
    }
}

/// A cache name as CREATE takes it.
fn name_bytes(name: &[u8]) -> [u8; 32] {
    let mut n = [0u8; 32];
    let len = name.len().min(32);
    n[..len].copy_from_slice(&name[..len]);
    n
}

fn set_name(c: &mut sys::minimm_slab_create, n: &[u8; 32]) {
    for (d, s) in c.name.iter_mut().zip(n) {
        *d = *s as _;
    }
}

fn get_name(c: &sys::minimm_slab_create) -> [u8; 32] {
    let mut n = [0u8; 32];
    for (d, s) in n.iter_mut().zip(&c.name) {
        *d = *s as u8;
    }
    n
}

/// The name's text up to its NUL, for messages and the model.
fn name_text(n: &[u8; 32]) -> String {
    let len = n.iter().position(|&b| b == 0).unwrap_or(32);
    String::from_utf8_lossy(&n[..len]).into_owned()
}

/// 1..31 bytes of `[A-Za-z0-9_.-]`, NUL-terminated, the rest zero.
fn name_ok(n: &[u8; 32]) -> bool {
    let Some(len) = n.iter().position(|&b| b == 0) else {
        return false;
    };
    len >= 1 && n[..len].iter().all(|b| NAME_CHARS.contains(b)) && n[len..].iter().all(|&b| b == 0)
}

/// How a name stands to the names taken module-wide.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Taken {
    /// Only this process uses it, never before: CREATE must not find it taken.
    Free,
    /// Maybe taken by another fuzz process (or another file of this one): 0 or EEXIST.
    Maybe,
    /// Taken (a cache of this file, or a generic cache): EEXIST.
    Yes,
}

impl Ctx<'_> {
    fn name_char(&mut self) -> u8 {
        NAME_CHARS[self.rng.index(NAME_CHARS.len())]
    }

    /// A name no other process uses and this one never used: `fz<pid>-<n>_` and random valid
    /// bytes, 31 at most.
    fn own_name(&mut self) -> Vec<u8> {
        let n = self.p.next_name.fetch_add(1, Relaxed);
        let mut s = format!("fz{:x}-{n:x}_", self.p.pid).into_bytes();
        let room = 31usize.saturating_sub(s.len()) as u64;
        let len = s.len() + self.rng.below(room + 1) as usize;
        while s.len() < len {
            let c = self.name_char();
            s.push(c);
        }
        s
    }

    /// A name every fuzz process may pick: a deliberate collision.
    fn shared_name(&mut self) -> Vec<u8> {
        if self.rng.chance(30) {
            // "." and ".." are refused (debugfs' own directory names).
            match self.name_char() {
                b'.' => vec![b'_'],
                c => vec![c],
            }
        } else {
            format!("fzs{}", self.rng.below(6)).into_bytes()
        }
    }

    /// A generic cache's name.
    fn generic_name(&mut self) -> Vec<u8> {
        let c = GENERIC_SIZES[self.rng.index(GENERIC_SIZES.len())];
        let size = if c >= 1024 {
            format!("{}k", c / 1024)
        } else {
            c.to_string()
        };
        let dma = if self.rng.chance(30) { "dma-" } else { "" };
        format!("minimm-kmalloc-{dma}{size}").into_bytes()
    }

    /// Valid CREATE flags, none a third of the time.
    fn create_flags(&mut self) -> u32 {
        if self.rng.chance(30) {
            return 0;
        }
        let mut f = self.rng.below(u64::from(sys::MINIMM_SLAB_VALID) + 1) as u32;
        let both = sys::MINIMM_SLAB_CACHE_DMA | sys::MINIMM_SLAB_CACHE_DMA32;
        if f & both == both {
            f &= !if self.rng.chance(50) {
                sys::MINIMM_SLAB_CACHE_DMA
            } else {
                sys::MINIMM_SLAB_CACHE_DMA32
            };
        }
        f
    }

    /// A valid object size: 1, small and odd ones, up to MINIMM_SLAB_MAX_OBJECT.
    fn object_size(&mut self) -> u32 {
        let max = u64::from(sys::MINIMM_SLAB_MAX_OBJECT);
        match self.rng.below(10) {
            0 => 1 + self.rng.below(8) as u32,
            1..=3 => 1 + self.rng.below(256) as u32,
            4 | 5 => 1 + self.rng.below(4096) as u32,
            6 => 4097 + self.rng.below(max - 4096) as u32,
            7 => [max, max - 1, 16384, 8192, 4096, 4095, 4097][self.rng.index(7)] as u32,
            _ => 8 * (1 + self.rng.below(64)) as u32,
        }
    }

    /// A valid alignment: 0, or a power of two up to the page size.
    fn align(&mut self) -> u32 {
        if self.rng.chance(40) {
            0
        } else {
            let top = self.page().trailing_zeros() as u64;
            1 << self.rng.below(top + 1)
        }
    }

    /// A struct size: this header's, or longer with a zero tail.
    fn struct_size<T>(&mut self) -> u32 {
        let own = size_of::<T>() as u64;
        if self.rng.chance(70) {
            own as u32
        } else {
            let page = self.page() as u64;
            (own + 8 * self.rng.below((page - own) / 8 + 1)) as u32
        }
    }

    /// Bytes of a generic allocation: small ones the most likely, up to
    /// MINIMM_SLAB_MAX_GENERIC.
    fn generic_bytes(&mut self) -> u32 {
        match self.rng.below(40) {
            0..=3 => 1 + self.rng.below(8) as u32,
            4..=17 => 1 + self.rng.below(256) as u32,
            18..=29 => 1 + self.rng.below(8192) as u32,
            30..=34 => GENERIC_SIZES[self.rng.index(GENERIC_SIZES.len())],
            35..=37 => 8193 + self.rng.below(56 << 10) as u32,
            38 => sys::MINIMM_SLAB_MAX_GENERIC,
            _ => 1 + self.rng.below(u64::from(sys::MINIMM_SLAB_MAX_GENERIC)) as u32,
        }
    }
}

/// Whether CREATE of `c` must fail with EINVAL, and whether it may (an object near the
/// order-3 limit with debugging bytes, or a ctor seed without MINIMM_SLAB_CTOR, which the
/// header says is zero but not that it is refused).
fn create_einval(c: &sys::minimm_slab_create, page: usize) -> (bool, bool) {
    let f = c.flags;
    let both = sys::MINIMM_SLAB_CACHE_DMA | sys::MINIMM_SLAB_CACHE_DMA32;
    let page = page as u64;
    let must = f & !sys::MINIMM_SLAB_VALID != 0
        || f & both == both
        || c.object_size == 0
        || c.object_size > sys::MINIMM_SLAB_MAX_OBJECT
        || (c.align != 0 && (!c.align.is_power_of_two() || u64::from(c.align) > page))
        || !name_ok(&get_name(c));
    if must {
        return (true, true);
    }
    // rust/slab.rs's geometry: the alignment (at least 8, a cache line halved while the
    // object fits in half of it for HWCACHE_ALIGN), red zones of the alignment on either
    // side; the slot must fit an order-3 slab.
    let size = u64::from(c.object_size);
    let mut a = u64::from(c.align).max(8);
    if f & sys::MINIMM_SLAB_HWCACHE_ALIGN != 0 {
        let mut line = 64;
        while size <= line / 2 && line > 8 {
            line /= 2;
        }
        a = a.max(line);
    }
    let red = if f & sys::MINIMM_SLAB_RED_ZONE != 0 {
        a
    } else {
        0
    };
    let slot = align_up(size, a) + 2 * red;
    let max_slab = page << 3;
    if slot > max_slab {
        return (true, true);
    }
    let debug = sys::MINIMM_SLAB_RED_ZONE | sys::MINIMM_SLAB_POISON | sys::MINIMM_SLAB_STORE_USER;
    let near = f & debug != 0 && align_up(size, a) + 2 * a.max(64) + 512 > max_slab;
    let seed = c.ctor_seed != 0 && f & sys::MINIMM_SLAB_CTOR == 0;
    (false, near || seed)
}

/// STATS of a cache of the file, checked against its creation and the model: the cache's
/// geometry, `active_objs` the objects the model holds, the counters' invariants.
fn check_stats(ctx: &Ctx<'_>, file: &File, c: &Cache) -> Result<sys::minimm_slab_stats, String> {
    let page = ctx.page() as u64;
    let s = ctx.ok(
        crate::sys::slab_stats(&file.dev, c.handle),
        "SLAB_STATS of a cache of the file",
    )?;
    let what = format!("SLAB_STATS of cache {} ({:?}): {s:?}", c.handle, c.name);
    check!(
        s.size == sys::MINIMM_SLAB_STATS_SIZE_VER0
            && s.__pad == 0
            && s.__pad2 == 0
            && s.cache == c.handle,
        "{what}: size, padding or handle"
    );
    check!(
        s.object_size == c.object_size && s.flags == c.flags,
        "{what}: object_size or flags differ from CREATE's {} {:#x}",
        c.object_size,
        c.flags
    );
    check!(
        s.align.is_power_of_two() && s.align >= c.align.max(8) && u64::from(s.align) <= page,
        "{what}: alignment for {} asked",
        c.align
    );
    check!(
        s.slot_size >= c.object_size
            && s.slot_size % s.align == 0
            && (c.flags & sys::MINIMM_SLAB_RED_ZONE == 0 || s.slot_size > c.object_size),
        "{what}: slot size"
    );
    check!(
        s.order <= 3
            && s.objs_per_slab >= 1
            && u64::from(s.objs_per_slab) * u64::from(s.slot_size) <= page << s.order
            && s.colours >= 1,
        "{what}: slab geometry"
    );
    check!(
        s.active_objs == c.live,
        "{what}: active_objs {}, the model holds {} objects of it",
        s.active_objs,
        c.live
    );
    check!(
        s.num_objs == s.num_slabs * u64::from(s.objs_per_slab)
            && s.active_objs + s.cpu_objects <= s.num_objs
            && s.active_slabs <= s.num_slabs
            && s.partial_slabs + s.empty_slabs <= s.num_slabs
            && s.slabs_created >= s.slabs_freed
            && s.slabs_created - s.slabs_freed == s.num_slabs,
        "{what}: counters disagree"
    );
    check!(s.debug_errors == 0, "{what}: debugging checks found errors");
    Ok(s)
}

/// Reads `len` bytes at `offset` of object `h`.
fn read_obj(dev: &Device, h: u64, offset: u32, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    // SAFETY: `buf` has room for `len` bytes.
    unsafe {
        slab_data(
            dev,
            sys::MINIMM_SLAB_READ,
            h,
            offset,
            len,
            buf.as_mut_ptr() as usize,
        )
    }?;
    Ok(buf)
}

/// Checks bytes read at `offset` of `o` against what the model knows of them.
fn compare(o: &Obj, offset: u32, got: &[u8], what: &str) -> Result<(), String> {
    let want = o.data.expected(offset, offset + got.len() as u32);
    let bad = got
        .iter()
        .zip(&want)
        .position(|(g, w)| w.is_some_and(|w| w != *g));
    match bad {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: object {} (cache {}, objsize {}) byte {} is {:#04x}, the model expects \
             {:#04x} ({:?})",
            o.handle,
            o.cache,
            o.objsize,
            offset as usize + i,
            got[i],
            want[i].unwrap_or(0),
            o.data
        )),
    }
}

/// Reads a random window of `o` (at most [`DATA_MAX`] bytes) and checks it.
fn verify_window(ctx: &mut Ctx<'_>, file: &File, o: &Obj, what: &str) -> Result<(), String> {
    let len = o.objsize.min(DATA_MAX);
    let off = ctx.rng.below(u64::from(o.objsize - len) + 1) as u32;
    let got = ctx.ok(read_obj(&file.dev, o.handle, off, len), what)?;
    compare(o, off, &got, what)
}

/// What a new object holds: known bytes, or one of several (read at once to know which).
enum Init {
    Known(Bytes),
    OneOf(Vec<Bytes>),
}

/// What an object of cache `c` (None: generic) allocated with `flags` holds (header: an
/// object of the generic caches is zeroed; of the file's own caches, zeroed with
/// MINIMM_OBJ_ZERO; a never-allocated one holds zeroes or the constructor's pattern; with
/// POISON a freed one holds the poison). Only a cache whose objects were never freed hands
/// out never-allocated objects for sure; whether a new slab's objects are poisoned, as SLUB
/// does, is left open.
fn initial(c: Option<&Cache>, flags: u32, objsize: u32) -> Init {
    let Some(c) = c else {
        return Init::Known(Bytes::Zero);
    };
    if flags & sys::MINIMM_OBJ_ZERO != 0 {
        return Init::Known(Bytes::Zero);
    }
    let ctor = c.flags & sys::MINIMM_SLAB_CTOR != 0;
    let poison = c.flags & sys::MINIMM_SLAB_POISON != 0;
    let constructed = if ctor {
        Bytes::Pattern {
            seed: c.ctor_seed,
            origin: 0,
        }
    } else {
        Bytes::Zero
    };
    let poisoned = Bytes::Poison { len: objsize };
    match (c.fresh, poison, ctor) {
        (true, false, _) => Init::Known(constructed),
        (true, true, _) => Init::OneOf(vec![constructed, poisoned]),
        (false, true, false) => Init::OneOf(vec![Bytes::Zero, poisoned]),
        _ => Init::Known(Bytes::Unknown),
    }
}

/// The model of a new object; with several possible contents, the one it reads as.
fn new_object(
    ctx: &mut Ctx<'_>,
    file: &File,
    init: Init,
    mut o: Obj,
    verify: bool,
) -> Result<Obj, String> {
    match init {
        Init::Known(b) => {
            o.data = ObjData::new(o.objsize, b);
            if verify && o.objsize > 0 {
                verify_window(ctx, file, &o, "SLAB_DATA read of a new object")?;
            }
        }
        Init::OneOf(_) if !verify => o.data = ObjData::new(o.objsize, Bytes::Unknown),
        Init::OneOf(cands) => {
            let got = ctx.ok(
                read_obj(&file.dev, o.handle, 0, o.objsize),
                "SLAB_DATA read of a new object",
            )?;
            let mut found = None;
            for b in &cands {
                let d = ObjData::new(o.objsize, *b);
                let want = d.expected(0, o.objsize);
                if want.iter().zip(&got).all(|(w, g)| *w == Some(*g)) {
                    found = Some(d);
                    break;
                }
            }
            o.data = found.ok_or_else(|| {
                format!(
                    "new object {} of cache {} reads {:02x?}..., neither of {cands:?}",
                    o.handle,
                    o.cache,
                    &got[..got.len().min(32)]
                )
            })?;
        }
    }
    Ok(o)
}

/// Anonymous memory for user buffers: `len` bytes, then an inaccessible page.
struct Area {
    at: usize,
    len: usize,
    page: usize,
}

impl Area {
    fn new(len: usize, page: usize) -> Result<Self, String> {
        let len = align_up(len.max(1) as u64, page as u64) as usize;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let at = mmap(
            -1,
            0,
            len + page,
            rw,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )
        .map_err(|e| format!("mmap of a buffer: {e}"))?;
        let a = Self { at, len, page };
        mprotect(at + len, page, libc::PROT_NONE).map_err(|e| format!("mprotect: {e}"))?;
        Ok(a)
    }

    /// The address where `n` bytes end `into` bytes past the accessible part.
    fn ending(&self, n: usize, into: usize) -> usize {
        self.at + self.len + into - n
    }

    /// Makes the accessible part read-only.
    fn read_only(&self) -> Result<(), String> {
        mprotect(self.at, self.len, libc::PROT_READ).map_err(|e| format!("mprotect: {e}"))
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let _ = munmap(self.at, self.len + self.page);
    }
}

// ---- CREATE -----------------------------------------------------------------------------

/// CREATE with `c` (at `place`, a non-zero tail byte at `tail_at`) on `file` with its model
/// locked: checks the outcome against `must_fail` (errnos one of which must come; empty: a
/// valid request) and the name's standing, the struct written back, STATS of the new cache;
/// records it.
#[allow(clippy::too_many_arguments)]
fn create_locked(
    ctx: &mut Ctx<'_>,
    file: &File,
    m: &mut FileModel,
    c: sys::minimm_slab_create,
    taken: Taken,
    mut must_fail: Vec<i32>,
    place: &Place,
    tail_at: Option<usize>,
) -> Result<Option<u64>, String> {
    let page = ctx.page();
    let name = get_name(&c);
    let (einval, maybe_einval) = create_einval(&c, page);
    ctx.what = format!(
        "SLAB_CREATE file {} ({}) name {:?} ({taken:?}) object_size {} align {} flags {:#x} \
         ctor_seed {:#x} size {} at {} (tail byte {tail_at:?}; {} caches)",
        file.id,
        file.mode_name(),
        name_text(&name),
        c.object_size,
        c.align,
        c.flags,
        c.ctor_seed,
        c.size,
        match place {
            Place::Buffer => "a buffer",
            Place::ReadOnly => "read-only memory",
            Place::Nowhere(_) => "NULL or an inaccessible page",
        },
        m.caches.len()
    );
    if einval {
        must_fail.push(libc::EINVAL);
    }
    let full = m.caches.len() >= sys::MINIMM_SLAB_MAX_CACHES as usize;
    // Which errno of several wins is the module's choice.
    let mut allowed = must_fail.clone();
    if !file.writable() {
        must_fail.push(libc::EBADF);
        allowed.push(libc::EBADF);
    }
    if full {
        allowed.push(libc::ENOSPC);
    }
    if taken != Taken::Free {
        allowed.push(libc::EEXIST);
    }
    if maybe_einval {
        allowed.push(libc::EINVAL);
    }
    let may_succeed = must_fail.is_empty() && !full && taken != Taken::Yes;
    if must_fail.is_empty() {
        allowed.push(libc::ENOMEM);
        if full {
            must_fail.push(libc::ENOSPC);
        }
        if taken == Taken::Yes {
            must_fail.push(libc::EEXIST);
        }
    }
    let mut buf = buffer(page);
    put(&mut buf, c);
    if let Some(at) = tail_at {
        bytes_mut(&mut buf)[at] = 1 + ctx.rng.below(255) as u8;
    }
    let r = ioctl_at(&file.dev, sys::MINIMM_IOC_SLAB_CREATE, &mut buf, place);
    if !may_succeed {
        ctx.fails(r, &allowed, "SLAB_CREATE")?;
        return Ok(None);
    }
    if ctx.outcome(r, &allowed, "SLAB_CREATE")?.is_err() {
        return Ok(None);
    }
    let out: sys::minimm_slab_create = get(&buf);
    check!(
        out.size == sys::MINIMM_SLAB_CREATE_SIZE_VER0
            && out.flags == c.flags
            && out.object_size == c.object_size
            && out.align == c.align
            && out.ctor_seed == c.ctor_seed
            && out.name == c.name,
        "SLAB_CREATE wrote back {out:?} for {c:?}"
    );
    check!(
        out.cache != 0 && !m.is_cache(out.cache),
        "SLAB_CREATE returned cache handle {}, zero or a live cache's",
        out.cache
    );
    let tail = &bytes_mut(&mut buf)[size_of::<sys::minimm_slab_create>()..];
    check!(
        tail.iter().all(|&b| b == 0),
        "SLAB_CREATE wrote past its struct"
    );
    m.slab_handles = true;
    let mut cache = Cache {
        handle: out.cache,
        name: name_text(&name),
        flags: c.flags,
        object_size: c.object_size,
        align: c.align,
        ctor_seed: c.ctor_seed,
        slot: 0,
        live: 0,
        fresh: true,
    };
    ctx.what += &format!(": cache {}", out.cache);
    // Recorded first: the file owns the cache whatever STATS says.
    m.caches.push(cache.clone());
    let s = check_stats(ctx, file, &cache)?;
    cache.slot = u64::from(s.slot_size);
    if let Some(mc) = m.cache_mut(out.cache) {
        mc.slot = cache.slot;
    }
    Ok(Some(out.cache))
}

/// A valid CREATE struct with `name`.
fn create_struct(ctx: &mut Ctx<'_>, name: &[u8]) -> sys::minimm_slab_create {
    let flags = ctx.create_flags();
    let mut c = sys::minimm_slab_create {
        size: ctx.struct_size::<sys::minimm_slab_create>(),
        flags,
        object_size: ctx.object_size(),
        align: ctx.align(),
        ctor_seed: if flags & sys::MINIMM_SLAB_CTOR != 0 {
            ctx.rng.next()
        } else {
            0
        },
        ..Default::default()
    };
    set_name(&mut c, &name_bytes(name));
    c
}

/// CREATE with a valid struct: a new name of this process's, or a deliberate collision (a
/// name of this file's caches or of a generic cache: EEXIST; a shared name: 0 or EEXIST).
pub(crate) fn op_slab_create(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.caches.len() >= MAX_CACHES {
        return Ok(Ran::Skipped);
    }
    let (name, taken) = match ctx.rng.below(20) {
        0..=2 => (ctx.shared_name(), Taken::Maybe),
        3 if !m.caches.is_empty() => {
            let i = ctx.rng.index(m.caches.len());
            (m.caches[i].name.clone().into_bytes(), Taken::Yes)
        }
        4 => (ctx.generic_name(), Taken::Yes),
        _ => (ctx.own_name(), Taken::Free),
    };
    // A shared name this file holds is taken for sure.
    let taken = if m.caches.iter().any(|c| c.name.as_bytes() == name) {
        Taken::Yes
    } else {
        taken
    };
    let c = create_struct(ctx, &name);
    create_locked(
        ctx,
        &file,
        &mut m,
        c,
        taken,
        Vec::new(),
        &Place::Buffer,
        None,
    )?;
    Ok(Ran::Done)
}

/// CREATE with one fault (name: a bad byte, 32 bytes without a NUL, empty, a byte after
/// the NUL; object size 0 or too large; alignment not a power of two or above a page; an
/// unknown flag, DMA with DMA32; the struct's size, tail or place; a ctor seed without
/// CTOR, which may be refused or not): its errno; nothing created, so that CREATE of the
/// same valid struct then succeeds.
pub(crate) fn op_slab_create_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.caches.len() >= MAX_CACHES {
        return Ok(Ran::Skipped);
    }
    let page = ctx.page() as u64;
    let own = ctx.own_name();
    let good = create_struct(ctx, &own);
    let mut c = good;
    let mut name = name_bytes(&own);
    let (mut tail_at, mut place) = (None, Place::Buffer);
    let max = u64::from(sys::MINIMM_SLAB_MAX_OBJECT);
    let (what, errno) = match ctx.rng.below(15) {
        0 => {
            let len = own.len();
            name[ctx.rng.index(len)] = BAD_NAME_CHARS[ctx.rng.index(BAD_NAME_CHARS.len())];
            ("a bad byte in the name", libc::EINVAL)
        }
        1 => {
            for b in name.iter_mut().skip(own.len()) {
                *b = ctx.name_char();
            }
            ("32 name bytes, no NUL", libc::EINVAL)
        }
        2 => {
            name = [0; 32];
            ("an empty name", libc::EINVAL)
        }
        3 => {
            let at = own.len() + 1 + ctx.rng.index(31 - own.len().min(30));
            name[at.min(31)] = ctx.name_char();
            ("a byte after the name's NUL", libc::EINVAL)
        }
        4 => {
            c.object_size = if ctx.rng.chance(50) {
                0
            } else {
                (max + 1 + ctx.rng.below(u64::from(u32::MAX) - max)) as u32
            };
            ("object size", libc::EINVAL)
        }
        5 => {
            c.align = match ctx.rng.below(3) {
                0 => 2 * page as u32,
                1 => [3, 12, 24, 100, 1000, 4095][ctx.rng.index(6)],
                _ => (page + 1 + ctx.rng.below(u64::from(u32::MAX) - page)) as u32,
            };
            if c.align.is_power_of_two() && u64::from(c.align) <= page {
                c.align = 3;
            }
            ("alignment", libc::EINVAL)
        }
        6 => {
            c.flags |= 1 << (8 + ctx.rng.below(24));
            ("an unknown flag", libc::EINVAL)
        }
        7 => {
            c.flags |= sys::MINIMM_SLAB_CACHE_DMA | sys::MINIMM_SLAB_CACHE_DMA32;
            ("CACHE_DMA with CACHE_DMA32", libc::EINVAL)
        }
        8 => {
            c.size = ctx.rng.below(u64::from(sys::MINIMM_SLAB_CREATE_SIZE_VER0)) as u32;
            ("size below the first version", libc::EINVAL)
        }
        9 => {
            c.size = (page + 1 + ctx.rng.below(page - 1)) as u32;
            ("size above a page", libc::E2BIG)
        }
        10 => {
            c.size = (72 + 8 * ctx.rng.below((page - 72) / 8)) as u32;
            tail_at = Some(64 + ctx.rng.below(u64::from(c.size) - 64) as usize);
            ("a non-zero byte past the struct", libc::E2BIG)
        }
        11 => {
            place = Place::ReadOnly;
            ("the struct in read-only memory", libc::EFAULT)
        }
        12 => {
            place = Place::Nowhere(ctx.rng.chance(50));
            (
                "the struct at NULL or in an inaccessible page",
                libc::EFAULT,
            )
        }
        13 => {
            c.flags &= !sys::MINIMM_SLAB_CTOR;
            c.ctor_seed = 1 + ctx.rng.below(u64::MAX - 1);
            // Refused or ignored: create_einval allows both.
            ("a ctor seed without CTOR", 0)
        }
        _ => {
            c.object_size = (max - ctx.rng.below(64)) as u32;
            c.flags |= sys::MINIMM_SLAB_RED_ZONE;
            c.align = 8 << ctx.rng.below(10);
            (
                "red zones that do not fit an order-3 slab (or barely do)",
                0,
            )
        }
    };
    set_name(&mut c, &name);
    let must = if errno == 0 { Vec::new() } else { vec![errno] };
    let made = create_locked(ctx, &file, &mut m, c, Taken::Free, must, &place, tail_at)
        .map_err(|e| format!("{what}: {e}"))?;
    // Nothing was created: the same name is free for a valid CREATE.
    if made.is_none() && file.writable() && ctx.rng.chance(50) {
        let what = ctx.what.clone();
        create_locked(
            ctx,
            &file,
            &mut m,
            good,
            Taken::Free,
            Vec::new(),
            &Place::Buffer,
            None,
        )
        .map_err(|e| format!("after {what}: {e}"))?;
    }
    Ok(Ran::Done)
}

/// Fills a file to MINIMM_SLAB_MAX_CACHES caches: one more is ENOSPC; then destroys those
/// it made.
pub(crate) fn op_slab_limit(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    let max = sys::MINIMM_SLAB_MAX_CACHES as usize;
    if m.caches.len() > MAX_CACHES {
        return Ok(Ran::Skipped);
    }
    let mut made = Vec::new();
    let r = (|| {
        while m.caches.len() < max {
            let name = ctx.own_name();
            let mut c = sys::minimm_slab_create {
                size: size_of::<sys::minimm_slab_create>() as u32,
                object_size: 8 * (1 + ctx.rng.below(16)) as u32,
                ..Default::default()
            };
            set_name(&mut c, &name_bytes(&name));
            match create_locked(
                ctx,
                &file,
                &mut m,
                c,
                Taken::Free,
                Vec::new(),
                &Place::Buffer,
                None,
            )? {
                Some(h) => made.push(h),
                // ENOMEM: the limit is not reached this time.
                None => return Ok(()),
            }
        }
        let name = ctx.own_name();
        let mut c = sys::minimm_slab_create {
            size: size_of::<sys::minimm_slab_create>() as u32,
            object_size: 64,
            ..Default::default()
        };
        set_name(&mut c, &name_bytes(&name));
        ctx.what = format!(
            "SLAB_CREATE {:?} on file {} with {} caches",
            name_text(&name_bytes(&name)),
            file.id,
            m.caches.len()
        );
        let mut buf = buffer(ctx.page());
        put(&mut buf, c);
        let r = ioctl_at(
            &file.dev,
            sys::MINIMM_IOC_SLAB_CREATE,
            &mut buf,
            &Place::Buffer,
        );
        if r.is_ok() {
            let out: sys::minimm_slab_create = get(&buf);
            made.push(out.cache);
            m.slab_handles = true;
        }
        ctx.fails(
            r,
            &[libc::ENOSPC],
            "SLAB_CREATE beyond MINIMM_SLAB_MAX_CACHES",
        )
        .map(|_| ())
    })();
    // Destroys what it made, whatever happened.
    let mut done = Ok(());
    for h in made {
        let d = ctx.ok(
            slab_cache(&file.dev, sys::MINIMM_IOC_SLAB_DESTROY, h),
            "SLAB_DESTROY of an empty cache",
        );
        if let Some(i) = m.caches.iter().position(|c| c.handle == h) {
            let c = m.caches.swap_remove(i);
            m.note_dead_cache(h, c.name);
        }
        if done.is_ok() {
            done = d.map(|_| ());
        }
    }
    r?;
    done?;
    Ok(Ran::Done)
}

// ---- ALLOC, FREE ------------------------------------------------------------------------

/// ALLOC of `a` on `file` with its model locked: checks the outcome against the quota, the
/// struct written back, and records the object (its content as the header says: checked
/// when `verify`, or when only a read can tell which of several it is).
fn alloc_locked(
    ctx: &mut Ctx<'_>,
    file: &File,
    m: &mut FileModel,
    a: sys::minimm_slab_alloc,
    verify: bool,
) -> Result<Option<u64>, String> {
    let page = ctx.page();
    let cache = m.cache(a.cache).cloned();
    let (objsize, charge) = match &cache {
        Some(c) => (c.object_size, (c.slot, c.slot)),
        None => (a.bytes, generic_charge(a.bytes, page)),
    };
    let (lo, hi) = m.charge_bounds(page);
    let quota = ctx.p.quota * page as u64;
    ctx.what = format!(
        "SLAB_ALLOC file {} ({}) cache {} bytes {} flags {:#x} size {} ({} bytes of {quota} \
         charged at least, {hi} at most)",
        file.id,
        file.mode_name(),
        a.cache,
        a.bytes,
        a.flags,
        a.size,
        lo
    );
    let mut buf = buffer(page);
    put(&mut buf, a);
    let r = ioctl_at(
        &file.dev,
        sys::MINIMM_IOC_SLAB_ALLOC,
        &mut buf,
        &Place::Buffer,
    );
    if !file.writable() {
        ctx.fails(r, &[libc::EBADF], "SLAB_ALLOC on a read-only file")?;
        return Ok(None);
    }
    let mut allowed = vec![libc::ENOMEM];
    if hi + charge.1 > quota {
        allowed.push(libc::EDQUOT);
    }
    if ctx.outcome(r, &allowed, "SLAB_ALLOC")?.is_err() {
        if let Some(c) = m.cache_mut(a.cache) {
            c.fresh = false;
        }
        return Ok(None);
    }
    check!(
        lo + charge.0 <= quota,
        "SLAB_ALLOC succeeded beyond the quota: at least {lo} bytes charged + {} > {quota}",
        charge.0
    );
    let out: sys::minimm_slab_alloc = get(&buf);
    check!(
        out.size == sys::MINIMM_SLAB_ALLOC_SIZE_VER0
            && out.flags == a.flags
            && out.cache == a.cache
            && out.bytes == a.bytes
            && out.__pad == 0
            && out.__pad2 == 0
            && out.objsize == objsize,
        "SLAB_ALLOC wrote back {out:?} for {a:?} (objsize {objsize} expected)"
    );
    check!(
        out.object != 0 && !m.is_object(out.object),
        "SLAB_ALLOC returned object handle {}, zero or a live object's",
        out.object
    );
    let tail = &bytes_mut(&mut buf)[size_of::<sys::minimm_slab_alloc>()..];
    check!(
        tail.iter().all(|&b| b == 0),
        "SLAB_ALLOC wrote past its struct"
    );
    m.slab_handles = true;
    ctx.what += &format!(": object {}", out.object);
    let init = initial(cache.as_ref(), a.flags, objsize);
    // Which of several contents it holds, only a read tells.
    let verify = verify || matches!(init, Init::OneOf(_));
    let o = Obj {
        handle: out.object,
        cache: a.cache,
        objsize,
        charge,
        data: ObjData::new(objsize, Bytes::Unknown),
    };
    // Recorded before the check, so that a failed check leaves the model right.
    m.objects.push(o.clone());
    if let Some(c) = m.cache_mut(a.cache) {
        c.live += 1;
    }
    let o = new_object(ctx, file, init, o, verify)?;
    if let Some(x) = m.objects.iter_mut().find(|x| x.handle == o.handle) {
        *x = o;
    }
    Ok(Some(out.object))
}

/// ALLOC from a cache of the file or from the generic caches (random sizes, flags, the
/// DMA caches, struct sizes); the new object's content checked as the header allows.
pub(crate) fn op_slab_alloc(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.objects.len() >= MAX_OBJECTS {
        return Ok(Ran::Skipped);
    }
    let generic = m.caches.is_empty() || ctx.rng.chance(30);
    let mut a = sys::minimm_slab_alloc {
        size: ctx.struct_size::<sys::minimm_slab_alloc>(),
        flags: ctx.rng.below(8) as u32,
        ..Default::default()
    };
    if generic {
        a.bytes = ctx.generic_bytes();
        if ctx.rng.chance(15) {
            a.flags |= sys::MINIMM_OBJ_DMA;
        }
    } else {
        a.cache = m.caches[ctx.rng.index(m.caches.len())].handle;
    }
    let verify = ctx.rng.chance(40);
    alloc_locked(ctx, &file, &mut m, a, verify)?;
    Ok(Ran::Done)
}

/// ALLOC with one or two faults (flags, DMA with a cache, bytes 0 or above
/// MINIMM_SLAB_MAX_GENERIC, bytes with a cache, padding, a destroyed or unknown cache, the
/// struct's size, tail or place): EINVAL, E2BIG or EFAULT; nothing allocated (STATS).
pub(crate) fn op_slab_alloc_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let m = lock(&file.model);
    let page = ctx.page() as u64;
    let cache = (!m.caches.is_empty()).then(|| m.caches[ctx.rng.index(m.caches.len())].clone());
    let mut a = sys::minimm_slab_alloc {
        size: size_of::<sys::minimm_slab_alloc>() as u32,
        flags: ctx.rng.below(8) as u32,
        ..Default::default()
    };
    match &cache {
        Some(c) if ctx.rng.chance(60) => a.cache = c.handle,
        _ => a.bytes = 1 + ctx.rng.below(4096) as u32,
    }
    let max = u64::from(sys::MINIMM_SLAB_MAX_GENERIC);
    let (mut faults, mut allowed) = (Vec::new(), Vec::new());
    let (mut tail_at, mut place) = (None, Place::Buffer);
    for _ in 0..1 + ctx.rng.below(2) {
        let (what, errno) = match ctx.rng.below(10) {
            0 => {
                a.flags |= 1 << (4 + ctx.rng.below(28));
                ("an unknown flag", libc::EINVAL)
            }
            1 if a.cache != 0 => {
                a.flags |= sys::MINIMM_OBJ_DMA;
                ("DMA with a cache", libc::EINVAL)
            }
            2 if a.cache == 0 => {
                a.bytes = if ctx.rng.chance(50) {
                    0
                } else {
                    (max + 1 + ctx.rng.below(u64::from(u32::MAX) - max)) as u32
                };
                ("generic bytes", libc::EINVAL)
            }
            3 if a.cache != 0 => {
                a.bytes = 1 + ctx.rng.below(4096) as u32;
                ("bytes with a cache", libc::EINVAL)
            }
            4 => {
                if ctx.rng.chance(50) {
                    a.__pad = 1 + ctx.rng.below(u64::from(u32::MAX)) as u32;
                } else {
                    a.__pad2 = 1 + ctx.rng.below(u64::from(u32::MAX)) as u32;
                }
                ("padding", libc::EINVAL)
            }
            5 => {
                let dead = m.dead_caches.iter().map(|d| d.0).find(|&h| !m.is_cache(h));
                a.cache = match dead {
                    Some(h) if ctx.rng.chance(50) => h,
                    _ => loop {
                        let h = ctx.rng.next();
                        if h != 0 && !m.is_cache(h) {
                            break h;
                        }
                    },
                };
                a.bytes = 0;
                a.flags &= !sys::MINIMM_OBJ_DMA;
                ("a destroyed or made-up cache", libc::EINVAL)
            }
            6 => {
                a.size = ctx.rng.below(u64::from(sys::MINIMM_SLAB_ALLOC_SIZE_VER0)) as u32;
                ("size below the first version", libc::EINVAL)
            }
            7 => {
                a.size = (page + 1 + ctx.rng.below(page - 1)) as u32;
                ("size above a page", libc::E2BIG)
            }
            8 => {
                a.size = (48 + 8 * ctx.rng.below((page - 48) / 8)) as u32;
                tail_at = Some(40 + ctx.rng.below(u64::from(a.size) - 40) as usize);
                ("a non-zero byte past the struct", libc::E2BIG)
            }
            _ => {
                place = if ctx.rng.chance(50) {
                    Place::ReadOnly
                } else {
                    Place::Nowhere(ctx.rng.chance(50))
                };
                (
                    "the struct in read-only memory, at NULL or nowhere",
                    libc::EFAULT,
                )
            }
        };
        faults.push(what);
        allowed.push(errno);
    }
    if !file.writable() {
        allowed.push(libc::EBADF);
    }
    if a.cache != 0 && !m.is_cache(a.cache) {
        // An unknown cache is found only after the handle slot is reserved.
        allowed.extend(enomem_injected(ctx));
    }
    let mut buf = buffer(page as usize);
    put(&mut buf, a);
    if let Some(at) = tail_at {
        bytes_mut(&mut buf)[at] = 1 + ctx.rng.below(255) as u8;
    }
    ctx.what = format!(
        "SLAB_ALLOC file {} ({}) with {} ({a:?}, tail byte {tail_at:?})",
        file.id,
        file.mode_name(),
        faults.join(", ")
    );
    let r = ioctl_at(&file.dev, sys::MINIMM_IOC_SLAB_ALLOC, &mut buf, &place);
    ctx.fails(r, &allowed, "invalid SLAB_ALLOC")?;
    if let Some(c) = m.cache(a.cache) {
        check_stats(ctx, &file, c)?;
    }
    Ok(Ran::Done)
}

/// FREE of an object; then maybe FREE again or DATA on it (EINVAL).
pub(crate) fn op_slab_free(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.objects.is_empty() {
        return Ok(Ran::Skipped);
    }
    let o = m.objects[ctx.rng.index(m.objects.len())].clone();
    ctx.what = format!(
        "SLAB_FREE file {} object {} (cache {}, objsize {})",
        file.id, o.handle, o.cache, o.objsize
    );
    ctx.ok(slab_free(&file.dev, o.handle), "SLAB_FREE")?;
    m.object_freed(o.handle);
    match ctx.rng.below(10) {
        0..=2 => {
            ctx.fails(
                slab_free(&file.dev, o.handle),
                &[libc::EINVAL],
                "second SLAB_FREE",
            )?;
        }
        3 | 4 => {
            ctx.fails(
                read_obj(&file.dev, o.handle, 0, 0),
                &[libc::EINVAL],
                "SLAB_DATA after SLAB_FREE",
            )?;
        }
        5 => {
            if let Some(c) = m.cache(o.cache) {
                check_stats(ctx, &file, c)?;
            }
        }
        _ => {}
    }
    Ok(Ran::Done)
}

/// A slab command on a handle this file does not have (of the kind the command takes): an
/// object freed or a cache destroyed here, 0 or all ones, a made-up value, a block handle
/// or a handle of the other kind, or another file's (of this process, or the file's own
/// handles on a second descriptor of /dev/minimm opened for it): EINVAL (EBADF first on a
/// file that may only look).
pub(crate) fn op_slab_bad_handle(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    // Another file's handles, read before this file's model is locked.
    let other = ctx.pick_file(|f| f.id != file.id);
    let (f_objs, f_caches): (Vec<u64>, Vec<u64>) = other
        .map(|o| {
            let om = lock(&o.model);
            (
                om.objects.iter().map(|x| x.handle).collect(),
                om.caches.iter().map(|x| x.handle).collect(),
            )
        })
        .unwrap_or_default();
    let m = lock(&file.model);
    let on_object = ctx.rng.chance(55);
    let mine = |h: u64| {
        if on_object {
            m.is_object(h)
        } else {
            h == 0 || m.is_cache(h)
        }
    };
    // Handles are numbers per file: another file's often name one of this file's too.
    let f_objs: Vec<u64> = f_objs.into_iter().filter(|&h| !mine(h)).collect();
    let f_caches: Vec<u64> = f_caches.into_iter().filter(|&h| !mine(h)).collect();
    let mut second = None;
    let (kind, h) = match ctx.rng.below(7) {
        0 if on_object && !m.dead_objects.is_empty() => {
            ("freed", m.dead_objects[ctx.rng.index(m.dead_objects.len())])
        }
        0 if !on_object && !m.dead_caches.is_empty() => (
            "destroyed",
            m.dead_caches[ctx.rng.index(m.dead_caches.len())].0,
        ),
        1 => ("all ones", u64::MAX),
        2 if !m.live.is_empty() => ("a block's", m.live[ctx.rng.index(m.live.len())].handle),
        3 if on_object && !m.caches.is_empty() => (
            "a cache's, as an object",
            m.caches[ctx.rng.index(m.caches.len())].handle,
        ),
        3 if !on_object && !m.objects.is_empty() => (
            "an object's, as a cache",
            m.objects[ctx.rng.index(m.objects.len())].handle,
        ),
        4 if on_object && !f_objs.is_empty() => {
            ("another file's object", f_objs[ctx.rng.index(f_objs.len())])
        }
        4 if !on_object && !f_caches.is_empty() => (
            "another file's cache",
            f_caches[ctx.rng.index(f_caches.len())],
        ),
        5 if file.writable() => {
            let own: Vec<u64> = if on_object {
                m.objects.iter().map(|o| o.handle).collect()
            } else {
                m.caches.iter().map(|c| c.handle).collect()
            };
            if own.is_empty() {
                ("made up", ctx.rng.next())
            } else {
                let dev = ctx.ok(Device::open(), "open a second file")?;
                second = Some(dev);
                (
                    "this file's, on a second file",
                    own[ctx.rng.index(own.len())],
                )
            }
        }
        6 if on_object => ("zero", 0),
        _ => ("made up", ctx.rng.next()),
    };
    // The value may name one of this file's own handles of that kind: then it is not bad.
    if second.is_none() && mine(h) {
        return Ok(Ran::Skipped);
    }
    let dev = second.as_ref().unwrap_or(&file.dev);
    let writable = second.is_some() || file.writable();
    let (name, r) = if on_object {
        match ctx.rng.below(3) {
            0 => ("SLAB_FREE", slab_free(dev, h)),
            1 => ("SLAB_DATA read", read_obj(dev, h, 0, 1).map(|_| ())),
            _ => {
                let c = m
                    .caches
                    .get(ctx.rng.index(m.caches.len().max(1)))
                    .map_or(1, |c| c.handle);
                let objs = [h];
                // SAFETY: `objs` holds the one handle the kernel reads.
                let r = unsafe {
                    slab_bulk(
                        dev,
                        sys::MINIMM_SLAB_BULK_FREE,
                        c,
                        1,
                        0,
                        objs.as_ptr() as usize,
                    )
                };
                ("SLAB_BULK free", r)
            }
        }
    } else {
        match ctx.rng.below(5) {
            0 => (
                "SLAB_ALLOC from",
                slab_alloc(dev, h, 0, ctx.rng.below(8) as u32).map(|_| ()),
            ),
            1 => ("SLAB_STATS", crate::sys::slab_stats(dev, h).map(|_| ())),
            2 => (
                "SLAB_SHRINK",
                slab_cache(dev, sys::MINIMM_IOC_SLAB_SHRINK, h).map(|_| ()),
            ),
            3 => (
                "SLAB_DESTROY",
                slab_cache(dev, sys::MINIMM_IOC_SLAB_DESTROY, h).map(|_| ()),
            ),
            _ => {
                let mut objs = [0u64; 2];
                // SAFETY: `objs` has room for the two handles the kernel writes.
                let r = unsafe {
                    slab_bulk(
                        dev,
                        sys::MINIMM_SLAB_BULK_ALLOC,
                        h,
                        2,
                        0,
                        objs.as_mut_ptr() as usize,
                    )
                };
                ("SLAB_BULK alloc from", r)
            }
        }
    };
    ctx.what = format!(
        "{name} file {} ({}){} {kind} {} handle {h:#x}",
        file.id,
        file.mode_name(),
        if second.is_some() {
            " on a second file"
        } else {
            ""
        },
        if on_object { "object" } else { "cache" }
    );
    let mut allowed = if writable {
        vec![libc::EINVAL]
    } else {
        // A file that may only look: EBADF, or EINVAL (STATS may be allowed to look).
        vec![libc::EBADF, libc::EINVAL]
    };
    if name == "SLAB_ALLOC from" {
        allowed.extend(enomem_injected(ctx));
    }
    ctx.fails(r, &allowed, "slab command on a bad handle")?;
    Ok(Ran::Done)
}

// ---- BULK -------------------------------------------------------------------------------

/// BULK alloc or free on a cache of the file: counts 0, 1..64 and 65; DMA; a duplicate, a
/// foreign, a freed or made-up handle in a free; the array in read-only or inaccessible
/// memory. All or nothing: after a failure STATS still counts the objects the model holds,
/// and the objects of a refused free still work.
pub(crate) fn op_slab_bulk(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.caches.is_empty() {
        return Ok(Ran::Skipped);
    }
    let c = m.caches[ctx.rng.index(m.caches.len())].clone();
    if c.live == 0 || (ctx.rng.chance(50) && m.objects.len() < MAX_OBJECTS) {
        bulk_alloc(ctx, &file, &mut m, &c)?;
    } else {
        bulk_free(ctx, &file, &mut m, &c)?;
    }
    Ok(Ran::Done)
}

fn bulk_alloc(ctx: &mut Ctx<'_>, file: &File, m: &mut FileModel, c: &Cache) -> Result<(), String> {
    let page = ctx.page();
    let max = sys::MINIMM_SLAB_BULK_MAX;
    let count = match ctx.rng.below(20) {
        0 => 0,
        1 => max + 1,
        2 => max,
        _ => 1 + ctx.rng.below(16) as u32,
    };
    let mut flags = ctx.rng.below(8) as u32;
    let mut must = Vec::new();
    if count == 0 || count > max {
        must.push(libc::EINVAL);
    }
    if ctx.rng.chance(8) {
        flags |= sys::MINIMM_OBJ_DMA;
        must.push(libc::EINVAL);
    }
    // Where the array is: a buffer with a guard word after it, read-only memory, or ending
    // in an inaccessible page.
    let n = count as usize;
    let area = Area::new(8 * (n + 1), page)?;
    let where_ = ctx.rng.below(20);
    let at = match where_ {
        0 if n > 0 => {
            area.read_only()?;
            must.push(libc::EFAULT);
            area.ending(8 * n, 0)
        }
        1 if n > 0 => {
            must.push(libc::EFAULT);
            area.ending(8 * n, 8 * (1 + ctx.rng.index(n.min(page / 8))).min(8 * n))
        }
        _ => {
            let at = area.ending(8 * (n + 1), 0);
            // SAFETY: `n + 1` words of the accessible part.
            unsafe { std::slice::from_raw_parts_mut(at as *mut u64, n + 1) }.fill(u64::MAX);
            at
        }
    };
    let guarded = where_ > 1 || n == 0;
    let (lo, hi) = m.charge_bounds(page);
    let quota = ctx.p.quota * page as u64;
    let need = u64::from(count) * c.slot;
    ctx.what = format!(
        "SLAB_BULK alloc file {} cache {} count {count} flags {flags:#x} array at {at:#x} \
         (expected {:?}; {lo}..{hi} bytes of {quota} charged)",
        file.id, c.handle, must
    );
    // SAFETY: `at` has room for `count` handles, or is deliberately read-only or runs into
    // an inaccessible page.
    let r = unsafe {
        slab_bulk(
            &file.dev,
            sys::MINIMM_SLAB_BULK_ALLOC,
            c.handle,
            count,
            flags,
            at,
        )
    };
    let mut allowed = must.clone();
    allowed.extend([libc::ENOMEM, libc::EDQUOT]);
    if must.is_empty() && hi + need <= quota {
        allowed.retain(|&e| e != libc::EDQUOT);
    }
    let failed = if must.is_empty() {
        ctx.outcome(r, &allowed, "SLAB_BULK alloc")?.is_err()
    } else {
        ctx.fails(r, &allowed, "invalid SLAB_BULK alloc")?;
        true
    };
    if failed {
        if let Some(mc) = m.cache_mut(c.handle) {
            mc.fresh = false;
        }
        // Nothing allocated.
        if let Some(mc) = m.cache(c.handle) {
            check_stats(ctx, file, mc)?;
        }
        return Ok(());
    }
    check!(
        lo + need <= quota,
        "SLAB_BULK alloc succeeded beyond the quota: at least {lo} bytes charged + {need} > \
         {quota}"
    );
    // SAFETY: the accessible array of `n + 1` words the kernel wrote the first `n` of.
    let got = unsafe { std::slice::from_raw_parts(at as *const u64, n + 1) }.to_vec();
    check!(
        !guarded || got[n] == u64::MAX,
        "SLAB_BULK alloc wrote past its {count} handles"
    );
    let hs = &got[..n];
    for (i, &h) in hs.iter().enumerate() {
        check!(
            h != 0 && !m.is_object(h) && !hs[..i].contains(&h),
            "SLAB_BULK alloc returned handle {h} (zero, twice or a live object's) in {hs:?}"
        );
    }
    m.slab_handles = true;
    let mut made = Vec::new();
    for &h in hs {
        let o = Obj {
            handle: h,
            cache: c.handle,
            objsize: c.object_size,
            charge: (c.slot, c.slot),
            data: ObjData::new(c.object_size, Bytes::Unknown),
        };
        m.objects.push(o.clone());
        made.push(o);
    }
    if let Some(mc) = m.cache_mut(c.handle) {
        mc.live += u64::from(count);
    }
    ctx.what += &format!(": {hs:?}");
    // Their contents: a few read at once.
    for (i, o) in made.into_iter().enumerate() {
        // The cache as it was before: fresh or not.
        let init = initial(Some(c), flags, o.objsize);
        let verify = i < 4 && ctx.rng.chance(50);
        let o = new_object(ctx, file, init, o, verify)?;
        if let Some(x) = m.objects.iter_mut().find(|x| x.handle == o.handle) {
            *x = o;
        }
    }
    if ctx.rng.chance(30) {
        if let Some(mc) = m.cache(c.handle) {
            check_stats(ctx, file, mc)?;
        }
    }
    Ok(())
}

fn bulk_free(ctx: &mut Ctx<'_>, file: &File, m: &mut FileModel, c: &Cache) -> Result<(), String> {
    let page = ctx.page();
    let max = sys::MINIMM_SLAB_BULK_MAX as usize;
    let mut mine: Vec<u64> = m
        .objects
        .iter()
        .filter(|o| o.cache == c.handle)
        .map(|o| o.handle)
        .collect();
    // A random subset, in random order.
    for i in (1..mine.len()).rev() {
        let j = ctx.rng.index(i + 1);
        mine.swap(i, j);
    }
    let k = 1 + ctx.rng.index(mine.len().min(max));
    let mut hs: Vec<u64> = mine[..k].to_vec();
    let mut flags = 0;
    let mut count = k as u32;
    let mut fault = "none";
    let mut errno = 0;
    let mut into = None;
    match ctx.rng.below(12) {
        0 if k < max || k >= 2 => {
            let d = hs[ctx.rng.index(k)];
            if k < max {
                hs.insert(ctx.rng.index(k + 1), d);
            } else {
                let at = (hs.iter().position(|&x| x == d).unwrap_or(0) + 1) % k;
                hs[at] = d;
            }
            (fault, errno) = ("a handle twice", libc::EINVAL);
        }
        1 => {
            let other: Vec<u64> = m
                .objects
                .iter()
                .filter(|o| o.cache != c.handle)
                .map(|o| o.handle)
                .collect();
            let h = if other.is_empty() {
                fault = "a made-up handle";
                loop {
                    let h = ctx.rng.next();
                    if !m.is_object(h) {
                        break h;
                    }
                }
            } else {
                fault = "another cache's (or a generic) object";
                other[ctx.rng.index(other.len())]
            };
            if k < max {
                hs.insert(ctx.rng.index(k + 1), h);
            } else {
                hs[ctx.rng.index(k)] = h;
            }
            errno = libc::EINVAL;
        }
        2 => {
            let dead: Vec<u64> = m
                .dead_objects
                .iter()
                .copied()
                .filter(|&h| !m.is_object(h))
                .collect();
            if let Some(&h) = dead.get(ctx.rng.index(dead.len().max(1))) {
                let at = ctx.rng.index(hs.len());
                hs[at] = h;
                (fault, errno) = ("a freed handle", libc::EINVAL);
            }
        }
        3 => {
            count = if ctx.rng.chance(50) {
                0
            } else {
                max as u32 + 1
            };
            while hs.len() < count as usize {
                hs.push(hs[0]);
            }
            (fault, errno) = ("count", libc::EINVAL);
        }
        4 => {
            flags = 1 << ctx.rng.below(32);
            (fault, errno) = ("flags", libc::EINVAL);
        }
        5 => {
            into = Some(8 * (1 + ctx.rng.index(k)));
            (fault, errno) = ("the array running into an inaccessible page", libc::EFAULT);
        }
        _ => {}
    }
    if fault != "count" {
        count = hs.len() as u32;
    }
    let n = count as usize;
    let area = Area::new(8 * n.max(1), page)?;
    let at = area.ending(8 * n, into.unwrap_or(0));
    let readable = n - into.unwrap_or(0) / 8;
    // SAFETY: the first `readable` words at `at` are in the accessible part.
    unsafe { std::slice::from_raw_parts_mut(at as *mut u64, readable) }
        .copy_from_slice(&hs[..readable]);
    ctx.what = format!(
        "SLAB_BULK free file {} cache {} count {count} flags {flags:#x} with {fault}: {:?}",
        file.id,
        c.handle,
        &hs[..n.min(hs.len())]
    );
    // SAFETY: `count` handles at `at`, or an array that deliberately runs into an
    // inaccessible page.
    let r = unsafe {
        slab_bulk(
            &file.dev,
            sys::MINIMM_SLAB_BULK_FREE,
            c.handle,
            count,
            flags,
            at,
        )
    };
    if errno == 0 {
        ctx.ok(r, "SLAB_BULK free")?;
        for h in &hs[..n] {
            m.object_freed(*h);
        }
        if ctx.rng.chance(30) {
            if let Some(mc) = m.cache(c.handle) {
                check_stats(ctx, file, mc)?;
            }
        }
        return Ok(());
    }
    ctx.fails(r, &[errno], "invalid SLAB_BULK free")?;
    // Nothing freed: STATS counts them all, and one of them still reads as the model says.
    if let Some(mc) = m.cache(c.handle) {
        check_stats(ctx, file, mc)?;
    }
    if let Some(o) = m.objects.iter().find(|o| o.handle == hs[0]).cloned() {
        if o.objsize > 0 {
            verify_window(
                ctx,
                file,
                &o,
                "SLAB_DATA read after a refused SLAB_BULK free",
            )?;
        }
    }
    Ok(())
}

// ---- DATA -------------------------------------------------------------------------------

/// An offset and length within `objsize` (at most [`DATA_MAX`] bytes): often the whole
/// object, often short, 0 at times.
fn range(ctx: &mut Ctx<'_>, objsize: u32) -> (u32, u32) {
    match ctx.rng.below(8) {
        0 if objsize <= DATA_MAX => (0, objsize),
        1 => (ctx.rng.below(u64::from(objsize) + 1) as u32, 0),
        2 | 3 => {
            let off = ctx.rng.below(u64::from(objsize) + 1) as u32;
            let len = ctx.rng.below(u64::from((objsize - off).min(16)) + 1) as u32;
            (off, len)
        }
        _ => {
            let off = ctx.rng.below(u64::from(objsize) + 1) as u32;
            let len = ctx.rng.below(u64::from((objsize - off).min(DATA_MAX)) + 1) as u32;
            (off, len)
        }
    }
}

/// DATA write or read at a random range of an object: a write is then read back exactly,
/// a read matches what the model knows; a range past objsize (offset + len overflowing
/// too), an unknown op, a buffer that cannot be read whole (EFAULT, nothing written) or
/// written: errors, and the object unchanged.
pub(crate) fn op_slab_data(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.objects.is_empty() {
        return Ok(Ran::Skipped);
    }
    let page = ctx.page();
    let i = ctx.rng.index(m.objects.len());
    let mut o = m.objects[i].clone();
    let r = data_on(ctx, &file, &mut o, page);
    // What it wrote stays written, whatever a check found.
    m.objects[i] = o;
    r?;
    Ok(Ran::Done)
}

fn data_on(ctx: &mut Ctx<'_>, file: &File, o: &mut Obj, page: usize) -> Result<(), String> {
    let objsize = o.objsize;
    let write = ctx.rng.chance(50);
    let op = if write {
        sys::MINIMM_SLAB_WRITE
    } else {
        sys::MINIMM_SLAB_READ
    };
    let opname = if write { "write" } else { "read" };
    let desc = |off: u32, len: u32| {
        format!(
            "SLAB_DATA {opname} file {} object {} (cache {}, objsize {objsize}) offset {off} \
             len {len}",
            file.id, o.handle, o.cache
        )
    };
    match ctx.rng.below(20) {
        // Out of range: EINVAL.
        0..=2 => {
            let (off, len) = match ctx.rng.below(4) {
                0 => (
                    objsize
                        .saturating_add(1)
                        .saturating_add(ctx.rng.below(100) as u32),
                    0,
                ),
                1 => {
                    let off = ctx.rng.below(u64::from(objsize) + 1) as u32;
                    let over = 1 + ctx.rng.below(64) as u32;
                    (off, objsize - off + over)
                }
                2 => (
                    u32::MAX - ctx.rng.below(8) as u32,
                    2 + ctx.rng.below(64) as u32,
                ),
                _ => (ctx.rng.below(u64::from(objsize) + 1) as u32, u32::MAX),
            };
            if u64::from(off) + u64::from(len) <= u64::from(objsize) {
                return Ok(());
            }
            ctx.what = desc(off, len) + ": past the object";
            let n = (len as usize).min(DATA_MAX as usize);
            let area = Area::new(n.max(1), page)?;
            // SAFETY: `n` accessible bytes at the area's start, more than the kernel may
            // touch before it refuses the range (it must touch none).
            let r = unsafe { slab_data(&file.dev, op, o.handle, off, len, area.at) };
            ctx.fails(r, &[libc::EINVAL], "SLAB_DATA past the object")?;
        }
        // An unknown op.
        3 => {
            let bad = 2 + ctx.rng.below(u64::from(u32::MAX) - 2) as u32;
            ctx.what = desc(0, 0) + &format!(": op {bad}");
            let mut b = [0u8; 8];
            let len = objsize.min(8);
            // SAFETY: `b` has room for the `len` bytes.
            let r = unsafe { slab_data(&file.dev, bad, o.handle, 0, len, b.as_mut_ptr() as usize) };
            ctx.fails(r, &[libc::EINVAL], "SLAB_DATA with an unknown op")?;
        }
        // A buffer the kernel cannot use whole: EFAULT.
        4 | 5 if objsize >= 1 => {
            let (off, len) = range(ctx, objsize);
            let len = len.max(1);
            let off = off.min(objsize - len);
            let area = Area::new(len as usize, page)?;
            let (at, how) = match ctx.rng.below(3) {
                0 => (0, "at NULL"),
                1 if write => {
                    let into = 1 + ctx.rng.below(u64::from(len).min(page as u64)) as usize;
                    (
                        area.ending(len as usize, into),
                        "running into an inaccessible page",
                    )
                }
                _ if !write => {
                    area.read_only()?;
                    (area.ending(len as usize, 0), "in read-only memory")
                }
                _ => (
                    area.ending(len as usize, len as usize),
                    "in an inaccessible page",
                ),
            };
            if at != 0 && write {
                // Whatever part of it is accessible holds a pattern.
                let n = (area.at + area.len).saturating_sub(at).min(len as usize);
                // SAFETY: `n` accessible bytes at `at`.
                fill_pattern(ctx.rng.next(), unsafe {
                    std::slice::from_raw_parts_mut(at as *mut u8, n)
                });
            }
            ctx.what = desc(off, len) + &format!(": the buffer {how}");
            // SAFETY: a buffer deliberately not usable whole: the kernel answers EFAULT.
            let r = unsafe { slab_data(&file.dev, op, o.handle, off, len, at) };
            ctx.fails(r, &[libc::EFAULT], "SLAB_DATA with a bad buffer")?;
            // Nothing written.
            let got = ctx.ok(
                read_obj(&file.dev, o.handle, off, len),
                "SLAB_DATA read after a failed one",
            )?;
            compare(o, off, &got, "the object after a failed SLAB_DATA")?;
        }
        _ => {
            let (off, len) = range(ctx, objsize);
            if write {
                let seed = ctx.rng.next();
                let mut buf = vec![0u8; len as usize];
                fill_pattern(seed, &mut buf);
                ctx.what = desc(off, len) + &format!(": seed {seed:#x}");
                // SAFETY: `buf` holds `len` bytes.
                let r =
                    unsafe { slab_data(&file.dev, op, o.handle, off, len, buf.as_ptr() as usize) };
                ctx.ok(r, "SLAB_DATA write")?;
                o.data
                    .write(off, off + len, Bytes::Pattern { seed, origin: off });
                if ctx.rng.chance(50) {
                    let got = ctx.ok(
                        read_obj(&file.dev, o.handle, off, len),
                        "SLAB_DATA read back",
                    )?;
                    check!(
                        got == buf,
                        "{}: read back differs from what was written",
                        ctx.what
                    );
                }
            } else {
                ctx.what = desc(off, len);
                let got = ctx.ok(read_obj(&file.dev, o.handle, off, len), "SLAB_DATA read")?;
                compare(o, off, &got, "SLAB_DATA read")?;
            }
        }
    }
    Ok(())
}

// ---- SHRINK, STATS, DESTROY -------------------------------------------------------------

/// SHRINK of a cache: it gives back every empty slab and empties the per-CPU arrays
/// (STATS before and after: `pages_freed` is the slabs gone, none empty, no object cached),
/// its objects untouched.
pub(crate) fn op_slab_shrink(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let m = lock(&file.model);
    if m.caches.is_empty() {
        return Ok(Ran::Skipped);
    }
    let c = m.caches[ctx.rng.index(m.caches.len())].clone();
    ctx.what = format!(
        "SLAB_SHRINK file {} cache {} ({:?})",
        file.id, c.handle, c.name
    );
    let s0 = check_stats(ctx, &file, &c)?;
    let mut buf = buffer(ctx.page());
    put(
        &mut buf,
        sys::minimm_slab_cache {
            size: size_of::<sys::minimm_slab_cache>() as u32,
            cache: c.handle,
            ..Default::default()
        },
    );
    let r = ioctl_at(
        &file.dev,
        sys::MINIMM_IOC_SLAB_SHRINK,
        &mut buf,
        &Place::Buffer,
    );
    ctx.ok(r, "SLAB_SHRINK")?;
    let out: sys::minimm_slab_cache = get(&buf);
    let s1 = check_stats(ctx, &file, &c)?;
    let gone = s0.num_slabs.saturating_sub(s1.num_slabs);
    check!(
        out.size == sys::MINIMM_SLAB_CACHE_SIZE_VER0
            && out.cache == c.handle
            && out.__pad == 0
            // Reclaim (debugfs `reclaim`, from any process) may shrink the cache too,
            // between the two reads: then SHRINK itself gave back only part of what went.
            && (out.pages_freed == gone << s0.order
                || (ctx.p.reclaim && out.pages_freed <= gone << s0.order))
            && s1.num_slabs <= s0.num_slabs
            && s1.slabs_freed.wrapping_sub(s0.slabs_freed) == gone,
        "SLAB_SHRINK wrote back {out:?}: {} slabs of order {} before, {} after",
        s0.num_slabs,
        s0.order,
        s1.num_slabs
    );
    check!(
        s1.empty_slabs == 0 && s1.cpu_objects == 0,
        "after SLAB_SHRINK: {} empty slabs, {} objects in per-CPU arrays ({s1:?})",
        s1.empty_slabs,
        s1.cpu_objects
    );
    if !m.objects.is_empty() && ctx.rng.chance(30) {
        let o = m.objects[ctx.rng.index(m.objects.len())].clone();
        if o.objsize > 0 {
            verify_window(ctx, &file, &o, "SLAB_DATA read after SLAB_SHRINK")?;
        }
    }
    Ok(Ran::Done)
}

/// STATS of a cache against the model; at times the file's caches against debugfs
/// slabinfo (each listed with its geometry, those it destroyed gone).
pub(crate) fn op_slab_stats(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let m = lock(&file.model);
    if m.caches.is_empty() {
        return Ok(Ran::Skipped);
    }
    let c = m.caches[ctx.rng.index(m.caches.len())].clone();
    ctx.what = format!(
        "SLAB_STATS file {} cache {} ({:?})",
        file.id, c.handle, c.name
    );
    check_stats(ctx, &file, &c)?;
    if ctx.rng.chance(25) {
        ctx.what = format!("slabinfo against file {}'s caches", file.id);
        let lines = slabinfo()?;
        for c in &m.caches {
            let s = check_stats(ctx, &file, c)?;
            let l = lines.iter().find(|l| l.name == c.name);
            check!(
                l.is_some_and(|l| l.objsize == u64::from(s.slot_size)
                    && l.objperslab == u64::from(s.objs_per_slab)
                    && l.pagesperslab == 1 << s.order),
                "slabinfo: cache {:?} {l:?}, STATS {s:?}",
                c.name
            );
        }
        // Names of this process's are never used again.
        let own = format!("fz{:x}-", ctx.p.pid);
        for (h, name) in &m.dead_caches {
            // A destroyed cache's name may have been created again (SLAB_DESTROY's op does
            // so at times): then it is listed for the new cache.
            let again = m.caches.iter().any(|c| &c.name == name);
            check!(
                again || !name.starts_with(&own) || !lines.iter().any(|l| &l.name == name),
                "slabinfo still lists cache {name:?} (handle {h}), destroyed"
            );
        }
    }
    Ok(Ran::Done)
}

/// DESTROY of a cache: with objects, EBUSY and the cache still works; without (at times
/// after freeing them), gone: its handle EINVAL, its name free again.
pub(crate) fn op_slab_destroy(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let mut m = lock(&file.model);
    if m.caches.is_empty() {
        return Ok(Ran::Skipped);
    }
    let c = m.caches[ctx.rng.index(m.caches.len())].clone();
    ctx.what = format!(
        "SLAB_DESTROY file {} cache {} ({:?}, {} objects)",
        file.id, c.handle, c.name, c.live
    );
    if c.live > 0 && ctx.rng.chance(40) {
        let hs: Vec<u64> = m
            .objects
            .iter()
            .filter(|o| o.cache == c.handle)
            .map(|o| o.handle)
            .collect();
        for h in hs {
            ctx.ok(slab_free(&file.dev, h), "SLAB_FREE before SLAB_DESTROY")?;
            m.object_freed(h);
        }
    }
    let live = m.live_of(c.handle);
    let r = slab_cache(&file.dev, sys::MINIMM_IOC_SLAB_DESTROY, c.handle);
    if live > 0 {
        ctx.fails(r, &[libc::EBUSY], "SLAB_DESTROY of a cache with objects")?;
        if let Some(mc) = m.cache(c.handle) {
            check_stats(ctx, &file, mc)?;
        }
        if let Some(o) = m.objects.iter().find(|o| o.cache == c.handle).cloned() {
            if o.objsize > 0 {
                verify_window(
                    ctx,
                    &file,
                    &o,
                    "SLAB_DATA read after a refused SLAB_DESTROY",
                )?;
            }
        }
        return Ok(Ran::Done);
    }
    ctx.ok(r, "SLAB_DESTROY of an empty cache")?;
    if let Some(i) = m.caches.iter().position(|x| x.handle == c.handle) {
        m.caches.swap_remove(i);
    }
    m.note_dead_cache(c.handle, c.name.clone());
    match ctx.rng.below(4) {
        0 => {
            ctx.fails(
                crate::sys::slab_stats(&file.dev, c.handle),
                &[libc::EINVAL],
                "SLAB_STATS of a destroyed cache",
            )?;
        }
        1 => {
            let mut allowed = vec![libc::EINVAL];
            allowed.extend(enomem_injected(ctx));
            ctx.fails(
                slab_alloc(&file.dev, c.handle, 0, 0),
                &allowed,
                "SLAB_ALLOC from a destroyed cache",
            )?;
        }
        2 => {
            ctx.fails(
                slab_cache(&file.dev, sys::MINIMM_IOC_SLAB_DESTROY, c.handle),
                &[libc::EINVAL],
                "second SLAB_DESTROY",
            )?;
        }
        _ if c.name.starts_with(&format!("fz{:x}-", ctx.p.pid)) => {
            // The name is free again.
            let mut s = create_struct(ctx, c.name.as_bytes());
            s.size = size_of::<sys::minimm_slab_create>() as u32;
            create_locked(
                ctx,
                &file,
                &mut m,
                s,
                Taken::Free,
                Vec::new(),
                &Place::Buffer,
                None,
            )?;
        }
        _ => {}
    }
    Ok(Ran::Done)
}

/// A slab command with a fault in its struct (size below the first version or above a
/// page, a non-zero tail, padding, the struct in read-only memory where the command writes
/// it back, at NULL or in an inaccessible page), or any command on a file that may only
/// look (EBADF): its errno, and nothing changed (STATS).
pub(crate) fn op_slab_struct_invalid(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|_| true) else {
        return Ok(Ran::Skipped);
    };
    let m = lock(&file.model);
    let page = ctx.page() as u64;
    let cache = m
        .caches
        .get(ctx.rng.index(m.caches.len().max(1)))
        .map_or(1, |c| c.handle);
    let object = m
        .objects
        .get(ctx.rng.index(m.objects.len().max(1)))
        .map_or(1, |o| o.handle);
    let mut sink = [0u64; 4];
    let sink_at = sink.as_mut_ptr() as usize;
    // (name, command, struct bytes, VER0 size, written back, offset of a padding word)
    let (name, cmd, mut buf, ver0, iowr, pad): (&str, u32, Vec<u64>, u32, bool, Option<usize>) =
        match ctx.rng.below(6) {
            0 => {
                let mut b = buffer(page as usize);
                put(
                    &mut b,
                    sys::minimm_slab_alloc {
                        size: size_of::<sys::minimm_slab_alloc>() as u32,
                        cache,
                        ..Default::default()
                    },
                );
                let p = if ctx.rng.chance(50) { 20 } else { 36 };
                let v0 = sys::MINIMM_SLAB_ALLOC_SIZE_VER0;
                (
                    "SLAB_ALLOC",
                    sys::MINIMM_IOC_SLAB_ALLOC,
                    b,
                    v0,
                    true,
                    Some(p),
                )
            }
            1 => {
                let mut b = buffer(page as usize);
                put(
                    &mut b,
                    sys::minimm_slab_free {
                        size: size_of::<sys::minimm_slab_free>() as u32,
                        object,
                        ..Default::default()
                    },
                );
                let v0 = sys::MINIMM_SLAB_FREE_SIZE_VER0;
                (
                    "SLAB_FREE",
                    sys::MINIMM_IOC_SLAB_FREE,
                    b,
                    v0,
                    false,
                    Some(4),
                )
            }
            2 | 3 => {
                let mut b = buffer(page as usize);
                put(
                    &mut b,
                    sys::minimm_slab_cache {
                        size: size_of::<sys::minimm_slab_cache>() as u32,
                        cache,
                        ..Default::default()
                    },
                );
                let v0 = sys::MINIMM_SLAB_CACHE_SIZE_VER0;
                if ctx.rng.chance(50) {
                    (
                        "SLAB_SHRINK",
                        sys::MINIMM_IOC_SLAB_SHRINK,
                        b,
                        v0,
                        true,
                        Some(4),
                    )
                } else {
                    (
                        "SLAB_DESTROY",
                        sys::MINIMM_IOC_SLAB_DESTROY,
                        b,
                        v0,
                        false,
                        Some(4),
                    )
                }
            }
            4 => {
                let mut b = buffer(page as usize);
                put(
                    &mut b,
                    sys::minimm_slab_data {
                        size: size_of::<sys::minimm_slab_data>() as u32,
                        op: sys::MINIMM_SLAB_READ,
                        object,
                        offset: 0,
                        len: 0,
                        buf: sink_at as u64,
                    },
                );
                let v0 = sys::MINIMM_SLAB_DATA_SIZE_VER0;
                ("SLAB_DATA", sys::MINIMM_IOC_SLAB_DATA, b, v0, false, None)
            }
            _ => {
                let mut b = buffer(page as usize);
                put(
                    &mut b,
                    sys::minimm_slab_stats {
                        size: size_of::<sys::minimm_slab_stats>() as u32,
                        cache,
                        ..Default::default()
                    },
                );
                let v0 = sys::MINIMM_SLAB_STATS_SIZE_VER0;
                (
                    "SLAB_STATS",
                    sys::MINIMM_IOC_SLAB_STATS,
                    b,
                    v0,
                    true,
                    Some(4),
                )
            }
        };
    let own = {
        let b = bytes_mut(&mut buf);
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    };
    let mut place = Place::Buffer;
    let set_size =
        |buf: &mut Vec<u64>, v: u32| bytes_mut(buf)[..4].copy_from_slice(&v.to_ne_bytes());
    let (what, errno) = match ctx.rng.below(6) {
        0 => {
            set_size(&mut buf, ctx.rng.below(u64::from(ver0)) as u32);
            ("size below the first version", libc::EINVAL)
        }
        1 => {
            set_size(&mut buf, (page + 1 + ctx.rng.below(page - 1)) as u32);
            ("size above a page", libc::E2BIG)
        }
        // STATS is output-only past @cache: its tail is not looked at.
        2 if name != "SLAB_STATS" => {
            let size = u64::from(own) + 8 + 8 * ctx.rng.below((page - u64::from(own) - 8) / 8);
            set_size(&mut buf, size as u32);
            let at = u64::from(own) + ctx.rng.below(size - u64::from(own));
            bytes_mut(&mut buf)[at as usize] = 1 + ctx.rng.below(255) as u8;
            ("a non-zero byte past the struct", libc::E2BIG)
        }
        3 if pad.is_some() => {
            let at = pad.unwrap_or(4);
            let v = 1 + ctx.rng.below(u64::from(u32::MAX)) as u32;
            bytes_mut(&mut buf)[at..at + 4].copy_from_slice(&v.to_ne_bytes());
            ("padding", libc::EINVAL)
        }
        4 if iowr => {
            place = Place::ReadOnly;
            ("the struct in read-only memory", libc::EFAULT)
        }
        _ => {
            place = Place::Nowhere(ctx.rng.chance(50));
            (
                "the struct at NULL or in an inaccessible page",
                libc::EFAULT,
            )
        }
    };
    let mut allowed = vec![errno];
    if !file.writable() {
        allowed.extend([libc::EBADF, libc::EINVAL]);
    }
    // With no cache or object to name, the command names handle 1, which the module finds
    // unknown (EINVAL) before it writes the struct back.
    if m.caches.is_empty() || m.objects.is_empty() {
        allowed.push(libc::EINVAL);
    }
    ctx.what = format!(
        "{name} file {} ({}) with {what} (cache {cache}, object {object})",
        file.id,
        file.mode_name()
    );
    let r = ioctl_at(&file.dev, cmd, &mut buf, &place);
    ctx.fails(r, &allowed, "slab command with a bad struct")?;
    if let Some(c) = m.cache(cache) {
        check_stats(ctx, &file, c)?;
    }
    Ok(Ran::Done)
}

/// Every slab command on a file that may only look: EBADF (STATS: EBADF or EINVAL, as it
/// has no cache to look at).
pub(crate) fn op_slab_read_only(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| !f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let h = ctx.rng.below(64);
    let (name, r): (&str, io::Result<()>) = match ctx.rng.below(6) {
        0 => {
            let mut c = sys::minimm_slab_create {
                size: size_of::<sys::minimm_slab_create>() as u32,
                object_size: 64,
                ..Default::default()
            };
            let n = ctx.own_name();
            set_name(&mut c, &name_bytes(&n));
            (
                "SLAB_CREATE",
                file.dev
                    .ioctl(sys::MINIMM_IOC_SLAB_CREATE, &mut c)
                    .map(|_| ()),
            )
        }
        1 => ("SLAB_ALLOC", slab_alloc(&file.dev, 0, 64, 0).map(|_| ())),
        2 => ("SLAB_FREE", slab_free(&file.dev, h)),
        3 => (
            "SLAB_DESTROY",
            slab_cache(&file.dev, sys::MINIMM_IOC_SLAB_DESTROY, h).map(|_| ()),
        ),
        4 => ("SLAB_DATA", read_obj(&file.dev, h, 0, 0).map(|_| ())),
        _ => (
            "SLAB_STATS",
            crate::sys::slab_stats(&file.dev, h).map(|_| ()),
        ),
    };
    ctx.what = format!("{name} on file {} ({})", file.id, file.mode_name());
    let allowed: &[i32] = if name == "SLAB_STATS" {
        &[libc::EBADF, libc::EINVAL]
    } else {
        &[libc::EBADF]
    };
    ctx.fails(r, allowed, "slab command on a file that may only look")?;
    Ok(Ran::Done)
}
