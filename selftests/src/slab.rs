// SPDX-License-Identifier: GPL-2.0

//! Selftests of the slab caches (`MINIMM_FEAT_SLAB`): creating and destroying caches, objects
//! allocated one by one, in bulk and from the generic caches, their bytes through
//! `MINIMM_IOC_SLAB_DATA`, constructors, zeroing and poison, shrinking, zone placement, the
//! quota, handles that belong to one file, cleanup on close, concurrency on one file, the
//! extensible-struct rules, and debugfs `minimm/slabinfo` read as `/proc/slabinfo` 2.1.
//!
//! Every test fails, not skips, when the module does not report `MINIMM_FEAT_SLAB`.

use std::{
    cell::Cell,
    io,
    mem::size_of,
    sync::atomic::{AtomicU32, Ordering},
};

use minimm_uapi::{
    debugfs, fill_pattern, page_size, parse_slabinfo, slab_name, sys, Device, SlabinfoLine,
};

use crate::{
    common::{
        e, ensure_loaded, free_pages, open, reload, stats, within, Area, CpuPin, DEBUGFS, DMA,
        DMA32, NORMAL,
    },
    ktap::{expect_errno, pass, skip, TestResult},
};

const PAGE: u64 = 4096;
const BULK_MAX: usize = sys::MINIMM_SLAB_BULK_MAX as usize;

/// Linux's generic size classes, as the generic caches' names spell them.
const GENERIC: [&str; 13] = [
    "8", "16", "32", "64", "96", "128", "192", "256", "512", "1k", "2k", "4k", "8k",
];
const GENERIC_BYTES: [u64; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];

/// Every generic cache's name, the DMA ones included.
fn generic_names() -> Vec<String> {
    GENERIC
        .iter()
        .map(|s| format!("minimm-kmalloc-{s}"))
        .chain(GENERIC.iter().map(|s| format!("minimm-kmalloc-dma-{s}")))
        .collect()
}

/// Fails the test when the module has no slab caches.
fn require_slab(dev: &Device) -> Result<(), String> {
    let info = dev.info().map_err(|err| format!("GET_INFO: {err}"))?;
    check!(
        info.features & sys::MINIMM_FEAT_SLAB != 0,
        "the module does not report MINIMM_FEAT_SLAB (features {:#x})",
        info.features
    );
    Ok(())
}

/// Opens the device and requires slab support.
fn open_slab() -> Result<Device, String> {
    let dev = open()?;
    require_slab(&dev)?;
    Ok(dev)
}

/// A cache name no other test (or earlier run in this boot) uses: `tag`, the pid, a counter.
fn unique(tag: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{tag}.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    debug_assert!(name.len() < sys::MINIMM_SLAB_NAME_LEN as usize);
    name
}

/// Creates a cache with a fresh name: its handle and name.
fn create(
    dev: &Device,
    tag: &str,
    object_size: u32,
    align: u32,
    flags: u32,
    seed: u64,
) -> Result<(u64, String), String> {
    let name = unique(tag);
    let cache = dev
        .slab_create(&name, object_size, align, flags, seed)
        .map_err(|err| {
            format!("SLAB_CREATE {name} size {object_size} align {align} flags {flags:#x}: {err}")
        })?;
    check!(cache != 0, "SLAB_CREATE {name}: handle 0");
    Ok((cache, name))
}

fn slab_stats(dev: &Device, cache: u64) -> Result<sys::minimm_slab_stats, String> {
    dev.slab_stats(cache)
        .map_err(|err| format!("SLAB_STATS {cache}: {err}"))
}

/// One object of `cache` (0: a generic one of `bytes`).
fn alloc(
    dev: &Device,
    cache: u64,
    bytes: u32,
    flags: u32,
) -> Result<sys::minimm_slab_alloc, String> {
    let a = dev
        .slab_alloc(cache, bytes, flags)
        .map_err(|err| format!("SLAB_ALLOC cache {cache} bytes {bytes} flags {flags:#x}: {err}"))?;
    check!(a.object != 0, "SLAB_ALLOC: handle 0");
    Ok(a)
}

fn free(dev: &Device, object: u64) -> Result<(), String> {
    dev.slab_free(object)
        .map_err(|err| format!("SLAB_FREE {object}: {err}"))
}

/// The first `len` bytes of `object`.
fn read(dev: &Device, object: u64, len: u32) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len as usize];
    dev.slab_read(object, 0, &mut buf)
        .map_err(|err| format!("SLAB_DATA read {object} len {len}: {err}"))?;
    Ok(buf)
}

fn write(dev: &Device, object: u64, offset: u32, bytes: &[u8]) -> Result<(), String> {
    dev.slab_write(object, offset, bytes).map_err(|err| {
        format!(
            "SLAB_DATA write {object} at {offset} len {}: {err}",
            bytes.len()
        )
    })
}

/// The pattern of `seed` over `len` bytes, as a constructor or `MINIMM_BLOCK_FILL` writes it.
fn pattern(seed: u64, len: u32) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    fill_pattern(seed, &mut buf);
    buf
}

/// The poison of a freed object: 0x6b, the last byte 0xa5.
fn poison(len: u32) -> Vec<u8> {
    let mut buf = vec![0x6bu8; len as usize];
    if let Some(last) = buf.last_mut() {
        *last = 0xa5;
    }
    buf
}

/// Pages the pool can hand out, all zones together.
fn pool(dev: &Device) -> Result<u64, String> {
    Ok(free_pages(dev)?.iter().sum())
}

/// Every line of debugfs `minimm/slabinfo`.
fn slabinfo() -> Result<Vec<SlabinfoLine>, String> {
    let text = debugfs("slabinfo").map_err(|err| format!("read {DEBUGFS}/slabinfo: {err}"))?;
    parse_slabinfo(&text)
}

/// The slabinfo line of the cache `name`, if there is one (more than one fails).
fn slabinfo_line(name: &str) -> Result<Option<SlabinfoLine>, String> {
    let mut found: Vec<SlabinfoLine> = slabinfo()?.into_iter().filter(|l| l.name == name).collect();
    check!(
        found.len() <= 1,
        "{} slabinfo lines for {name}",
        found.len()
    );
    Ok(found.pop())
}

/// Pages the object records' cache `minimm_slab_object` holds in slabs.
fn record_slab_pages() -> Result<u64, String> {
    let l = slabinfo_line("minimm_slab_object")?.ok_or("no minimm_slab_object in slabinfo")?;
    Ok(l.num_slabs * l.pagesperslab)
}

/// What any cache's counters must satisfy at rest.
fn consistent(s: &sys::minimm_slab_stats) -> Result<(), String> {
    let ctx = format!("stats of cache {}: {s:?}", s.cache);
    check!(
        s.num_objs == s.num_slabs * u64::from(s.objs_per_slab),
        "num_objs != num_slabs * objs_per_slab; {ctx}"
    );
    check!(
        s.active_objs + s.cpu_objects <= s.num_objs,
        "more objects allocated and cached than exist; {ctx}"
    );
    check!(s.active_slabs <= s.num_slabs, "active_slabs; {ctx}");
    check!(
        s.partial_slabs + s.empty_slabs <= s.num_slabs,
        "partial + empty slabs; {ctx}"
    );
    check!(
        s.slabs_created - s.slabs_freed == s.num_slabs,
        "slabs created - freed != num_slabs; {ctx}"
    );
    check!(s.debug_errors == 0, "debugging checks found errors; {ctx}");
    check!(
        s.limit != 0 || s.cpu_objects == 0,
        "objects cached without per-CPU arrays; {ctx}"
    );
    Ok(())
}

/// A struct's bytes.
fn as_bytes<T>(v: &T) -> Vec<u8> {
    // SAFETY: the uapi structs are plain integers without padding bytes.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// Issues `cmd` on the struct held in `bytes`, which the kernel may read and write.
fn ioctl_bytes(dev: &Device, cmd: u32, bytes: &mut [u8]) -> io::Result<i32> {
    // SAFETY: `bytes` is valid for its length; the struct's size field never announces more
    // than that, except where a test expects a refusal before anything is read past it.
    unsafe { dev.ioctl_raw(cmd, bytes.as_mut_ptr() as usize) }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
}

/// Frees `objects` of `cache` in bulk, as many at once as a call allows.
fn bulk_free_all(dev: &Device, cache: u64, objects: &[u64]) -> Result<(), String> {
    for chunk in objects.chunks(BULK_MAX) {
        dev.slab_bulk_free(cache, chunk)
            .map_err(|err| format!("SLAB_BULK free of {}: {err}", chunk.len()))?;
    }
    Ok(())
}

/// GET_INFO reports slab caches, and debugfs slabinfo is /proc/slabinfo 2.1 with every
/// generic cache once; no cache may be created under a generic cache's name.
pub fn feature_and_generic_caches() -> TestResult {
    let dev = open_slab()?;
    let lines = slabinfo()?;
    let mut names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    check_eq!(names.len(), n);
    for (k, name) in generic_names().iter().enumerate() {
        let l = lines
            .iter()
            .find(|l| &l.name == name)
            .ok_or(format!("no slabinfo line for {name}"))?;
        let class = GENERIC_BYTES[k % GENERIC.len()];
        check!(l.objsize >= class, "{name}: objsize {}", l.objsize);
        check!(
            l.pagesperslab.is_power_of_two() && l.pagesperslab <= 8,
            "{name}: pagesperslab {}",
            l.pagesperslab
        );
        check!(
            l.objperslab >= 1 && l.objperslab * l.objsize <= l.pagesperslab * PAGE,
            "{name}: {} objects of {} in {} pages",
            l.objperslab,
            l.objsize,
            l.pagesperslab
        );
        check_eq!(l.num_objs, l.num_slabs * l.objperslab);
        check!(l.active_objs <= l.num_objs, "{name}: {l:?}");
        check!(l.active_slabs <= l.num_slabs, "{name}: {l:?}");
        expect_errno(
            dev.slab_create(name, 64, 0, 0, 0),
            libc::EEXIST,
            &format!("SLAB_CREATE {name}"),
        )?;
    }
    pass()
}

/// A created cache's geometry in SLAB_STATS, and its slabinfo line agreeing with it, from
/// creation until it is destroyed.
pub fn geometry_and_slabinfo() -> TestResult {
    let dev = open_slab()?;
    let hw = sys::MINIMM_SLAB_HWCACHE_ALIGN;
    let rz = sys::MINIMM_SLAB_RED_ZONE;
    // (object_size, align, flags)
    let cases = [
        (1, 0, 0),
        (8, 0, 0),
        (100, 0, 0),
        (100, 0, hw),
        (100, 1, 0),
        (100, 256, 0),
        (700, 0, rz),
        (4000, 4096, 0),
        (5000, 0, 0),
        (sys::MINIMM_SLAB_MAX_OBJECT, 0, 0),
    ];
    for (object_size, align, flags) in cases {
        let ctx = format!("size {object_size} align {align} flags {flags:#x}");
        let (cache, name) = create(&dev, "geo", object_size, align, flags, 0)?;
        let s = slab_stats(&dev, cache)?;
        check_eq!(s.size, sys::MINIMM_SLAB_STATS_SIZE_VER0);
        check_eq!(s.cache, cache);
        check_eq!((s.object_size, s.flags), (object_size, flags));
        check_eq!((s.__pad, s.__pad2), (0, 0));
        check!(
            s.align.is_power_of_two() && s.align >= align.max(8),
            "{ctx}: align {}",
            s.align
        );
        if flags & hw != 0 && align == 0 && object_size > 32 {
            check_eq!(s.align, 64);
        }
        check!(s.slot_size >= object_size, "{ctx}: slot {}", s.slot_size);
        if flags & rz != 0 {
            check!(
                s.slot_size >= object_size + 16,
                "{ctx}: slot {} leaves no red zones",
                s.slot_size
            );
        } else {
            check!(
                s.slot_size % s.align == 0,
                "{ctx}: slot {} not aligned to {}",
                s.slot_size,
                s.align
            );
        }
        check!(s.order <= 3, "{ctx}: order {}", s.order);
        check!(
            s.objs_per_slab >= 1
                && u64::from(s.objs_per_slab) * u64::from(s.slot_size) <= PAGE << s.order,
            "{ctx}: {} objects of {} in order {}",
            s.objs_per_slab,
            s.slot_size,
            s.order
        );
        check!(s.colours >= 1, "{ctx}: colours {}", s.colours);
        check_eq!((s.active_objs, s.num_objs, s.num_slabs), (0, 0, 0));
        consistent(&s)?;
        if object_size == sys::MINIMM_SLAB_MAX_OBJECT {
            check_eq!((s.objs_per_slab, s.order), (1, 3));
        }
        let l = slabinfo_line(&name)?.ok_or(format!("{ctx}: no slabinfo line for {name}"))?;
        check_eq!(l.objsize, u64::from(s.slot_size));
        check_eq!(l.objperslab, u64::from(s.objs_per_slab));
        check_eq!(l.pagesperslab, 1u64 << s.order);
        check_eq!((l.limit, l.batchcount), (s.limit, s.batchcount));
        check_eq!((l.num_objs, l.num_slabs), (0, 0));
        // Two slabs' worth and one more: slabinfo follows.
        let n = 2 * s.objs_per_slab as usize + 1;
        let mut objs = Vec::new();
        for _ in 0..n {
            let a = alloc(&dev, cache, 0, 0)?;
            check_eq!(a.objsize, object_size);
            objs.push(a.object);
        }
        let s = slab_stats(&dev, cache)?;
        consistent(&s)?;
        check_eq!(s.active_objs, n as u64);
        check!(
            s.num_slabs >= 3,
            "{ctx}: {} slabs for {n} objects",
            s.num_slabs
        );
        let l = slabinfo_line(&name)?.ok_or(format!("{ctx}: slabinfo line gone"))?;
        check_eq!((l.num_objs, l.num_slabs), (s.num_objs, s.num_slabs));
        check!(
            l.active_objs >= s.active_objs && l.active_objs <= s.active_objs + s.cpu_objects,
            "{ctx}: slabinfo active_objs {} for {} allocated, {} cached",
            l.active_objs,
            s.active_objs,
            s.cpu_objects
        );
        check!(l.active_slabs <= l.num_slabs, "{ctx}: {l:?}");
        for o in objs {
            free(&dev, o)?;
        }
        dev.slab_destroy(cache)
            .map_err(|err| format!("{ctx}: SLAB_DESTROY: {err}"))?;
        check!(
            slabinfo_line(&name)?.is_none(),
            "{ctx}: {name} still in slabinfo after SLAB_DESTROY"
        );
    }
    pass()
}

/// SLAB_CREATE refuses bad sizes, alignments, flags, seeds and names with EINVAL and taken
/// names with EEXIST, and a refused call leaves its struct alone.
pub fn create_errnos() -> TestResult {
    let dev = open_slab()?;
    let max = sys::MINIMM_SLAB_MAX_OBJECT;
    let (dma, dma32) = (sys::MINIMM_SLAB_CACHE_DMA, sys::MINIMM_SLAB_CACHE_DMA32);
    // (what, object_size, align, flags, ctor_seed)
    let bad = [
        ("object_size 0", 0, 0, 0, 0),
        ("object_size MAX + 1", max + 1, 0, 0, 0),
        ("object_size u32::MAX", u32::MAX, 0, 0, 0),
        ("MAX with red zones", max, 0, sys::MINIMM_SLAB_RED_ZONE, 0),
        ("align 3", 64, 3, 0, 0),
        ("align 24", 64, 24, 0, 0),
        ("align 8192", 64, 8192, 0, 0),
        ("align 1 << 31", 64, 1 << 31, 0, 0),
        ("flags past VALID", 64, 0, sys::MINIMM_SLAB_VALID + 1, 0),
        ("flags bit 31", 64, 0, 1 << 31, 0),
        ("DMA with DMA32", 64, 0, dma | dma32, 0),
        ("ctor_seed without CTOR", 64, 0, 0, 5),
    ];
    for (what, object_size, align, flags, ctor_seed) in bad {
        let mut c = sys::minimm_slab_create {
            size: size_of::<sys::minimm_slab_create>() as u32,
            flags,
            object_size,
            align,
            ctor_seed,
            name: slab_name(unique("bad").as_bytes()),
            ..Default::default()
        };
        let before = c;
        expect_errno(
            dev.ioctl(sys::MINIMM_IOC_SLAB_CREATE, &mut c),
            libc::EINVAL,
            what,
        )?;
        check_eq!(c, before);
    }
    let ok_name = unique("nm");
    let mut after_nul = ok_name.clone().into_bytes();
    after_nul.extend_from_slice(b"\0x");
    let bad_names: [(&str, Vec<u8>); 11] = [
        ("empty", Vec::new()),
        ("a dot (debugfs' own directory)", b".".to_vec()),
        ("two dots", b"..".to_vec()),
        ("32 bytes, no NUL", vec![b'a'; 32]),
        ("space", b"a b".to_vec()),
        ("slash", b"a/b".to_vec()),
        ("colon", b"a:b".to_vec()),
        ("newline", b"ab\n".to_vec()),
        ("byte 0xff", b"a\xffb".to_vec()),
        ("byte after NUL", after_nul),
        ("last byte after NUL", {
            let mut v = b"abc".to_vec();
            v.resize(32, 0);
            v[31] = b'z';
            v
        }),
    ];
    for (what, name) in bad_names {
        let mut c = sys::minimm_slab_create {
            size: size_of::<sys::minimm_slab_create>() as u32,
            object_size: 64,
            name: slab_name(&name),
            ..Default::default()
        };
        expect_errno(
            dev.ioctl(sys::MINIMM_IOC_SLAB_CREATE, &mut c),
            libc::EINVAL,
            &format!("name {what}"),
        )?;
        check_eq!(c.cache, 0);
    }
    // Every allowed character, and the longest name.
    let long = format!("{}.{}", "x".repeat(20), std::process::id() % 1_000_000_000);
    let long = format!("{long:-<31}");
    check_eq!(long.len(), 31);
    for name in [long.clone(), format!("AZaz09_.-{}", std::process::id())] {
        let cache = dev
            .slab_create(&name, 64, 0, 0, 0)
            .map_err(|err| format!("name {name:?}: {err}"))?;
        dev.slab_destroy(cache).map_err(e)?;
    }
    // Taken names: in this file, in another, until destroyed.
    let (cache, name) = create(&dev, "dup", 64, 0, 0, 0)?;
    expect_errno(
        dev.slab_create(&name, 64, 0, 0, 0),
        libc::EEXIST,
        "same name, same file",
    )?;
    let other = open_slab()?;
    expect_errno(
        other.slab_create(&name, 128, 0, 0, 0),
        libc::EEXIST,
        "same name, another file",
    )?;
    dev.slab_destroy(cache).map_err(e)?;
    let again = other
        .slab_create(&name, 128, 0, 0, 0)
        .map_err(|err| format!("name after destroy: {err}"))?;
    other.slab_destroy(again).map_err(e)?;
    // Alignments that are powers of two up to the page.
    for align in [1, 2, 4, 8, 16, 4096] {
        let (c, _) = create(&dev, "al", 64, align, 0, 0)?;
        check!(slab_stats(&dev, c)?.align >= align.max(8), "align {align}");
        dev.slab_destroy(c).map_err(e)?;
    }
    pass()
}

/// A file has at most MINIMM_SLAB_MAX_CACHES caches (ENOSPC); another file has its own.
pub fn cache_limit() -> TestResult {
    let dev = open_slab()?;
    let mut caches = Vec::new();
    for k in 0..sys::MINIMM_SLAB_MAX_CACHES {
        caches.push(
            create(&dev, "lim", 32, 0, 0, 0)
                .map_err(|err| format!("cache {k} of {}: {err}", sys::MINIMM_SLAB_MAX_CACHES))?,
        );
    }
    expect_errno(
        dev.slab_create(&unique("lim"), 32, 0, 0, 0),
        libc::ENOSPC,
        "one cache too many",
    )?;
    let other = open_slab()?;
    let (c, _) = create(&other, "lim", 32, 0, 0, 0)?;
    other.slab_destroy(c).map_err(e)?;
    let (first, _) = caches.remove(0);
    dev.slab_destroy(first).map_err(e)?;
    caches.push(create(&dev, "lim", 32, 0, 0, 0)?);
    drop(dev);
    // Closing destroyed them all.
    let lines = slabinfo()?;
    for (_, name) in &caches {
        check!(
            !lines.iter().any(|l| &l.name == name),
            "{name} in slabinfo after close"
        );
    }
    pass()
}

/// SLAB_ALLOC and SLAB_FREE refuse what the header says, and a refused ALLOC leaves its
/// struct alone.
pub fn alloc_free_errnos() -> TestResult {
    let dev = open_slab()?;
    let (cache, _) = create(&dev, "aerr", 64, 0, 0, 0)?;
    let max = sys::MINIMM_SLAB_MAX_GENERIC;
    let base = sys::minimm_slab_alloc {
        size: size_of::<sys::minimm_slab_alloc>() as u32,
        cache,
        ..Default::default()
    };
    let generic = sys::minimm_slab_alloc {
        cache: 0,
        bytes: 64,
        ..base
    };
    let bad = [
        (
            "flags past VALID",
            sys::minimm_slab_alloc {
                flags: sys::MINIMM_OBJ_VALID + 1,
                ..base
            },
        ),
        (
            "generic flags past VALID",
            sys::minimm_slab_alloc {
                flags: sys::MINIMM_OBJ_VALID + 1,
                ..generic
            },
        ),
        (
            "DMA with a cache",
            sys::minimm_slab_alloc {
                flags: sys::MINIMM_OBJ_DMA,
                ..base
            },
        ),
        (
            "bytes with a cache",
            sys::minimm_slab_alloc { bytes: 64, ..base },
        ),
        (
            "generic bytes 0",
            sys::minimm_slab_alloc {
                bytes: 0,
                ..generic
            },
        ),
        (
            "generic bytes MAX + 1",
            sys::minimm_slab_alloc {
                bytes: max + 1,
                ..generic
            },
        ),
        (
            "generic bytes u32::MAX",
            sys::minimm_slab_alloc {
                bytes: u32::MAX,
                ..generic
            },
        ),
        (
            "unknown cache",
            sys::minimm_slab_alloc {
                cache: cache + 1000,
                ..base
            },
        ),
        (
            "cache u64::MAX",
            sys::minimm_slab_alloc {
                cache: u64::MAX,
                ..base
            },
        ),
        ("__pad", sys::minimm_slab_alloc { __pad: 1, ..base }),
        ("__pad2", sys::minimm_slab_alloc { __pad2: 1, ..base }),
        (
            "generic __pad",
            sys::minimm_slab_alloc {
                __pad: 1,
                ..generic
            },
        ),
    ];
    for (what, a) in bad {
        let mut a = a;
        let before = a;
        expect_errno(
            dev.ioctl(sys::MINIMM_IOC_SLAB_ALLOC, &mut a),
            libc::EINVAL,
            what,
        )?;
        check_eq!(a, before);
    }
    check_eq!(slab_stats(&dev, cache)?.active_objs, 0);
    // Generic sizes at the edges.
    for bytes in [1, 8, 8192, 8193, max] {
        let a = alloc(&dev, 0, bytes, 0)?;
        check_eq!(a.objsize, bytes);
        check_eq!(a.size, sys::MINIMM_SLAB_ALLOC_SIZE_VER0);
        free(&dev, a.object)?;
    }
    // SLAB_FREE.
    let a = alloc(&dev, cache, 0, 0)?;
    for (what, object) in [
        ("0", 0),
        ("unknown", a.object + 1000),
        ("u64::MAX", u64::MAX),
    ] {
        expect_errno(
            dev.slab_free(object),
            libc::EINVAL,
            &format!("SLAB_FREE {what}"),
        )?;
    }
    let mut f = sys::minimm_slab_free {
        size: size_of::<sys::minimm_slab_free>() as u32,
        __pad: 1,
        object: a.object,
    };
    expect_errno(
        dev.ioctl(sys::MINIMM_IOC_SLAB_FREE, &mut f),
        libc::EINVAL,
        "SLAB_FREE __pad",
    )?;
    check_eq!(slab_stats(&dev, cache)?.active_objs, 1);
    free(&dev, a.object)?;
    expect_errno(dev.slab_free(a.object), libc::EINVAL, "double SLAB_FREE")?;
    expect_errno(
        dev.slab_read(a.object, 0, &mut [0u8; 8]),
        libc::EINVAL,
        "SLAB_DATA on a freed object",
    )?;
    check_eq!(slab_stats(&dev, cache)?.active_objs, 0);
    // Cache handles are not objects and object handles are not caches.
    let b = alloc(&dev, cache, 0, 0)?;
    if b.object != cache {
        expect_errno(
            dev.slab_stats(b.object),
            libc::EINVAL,
            "SLAB_STATS of an object",
        )?;
    }
    free(&dev, b.object)?;
    dev.slab_destroy(cache).map_err(e)?;
    pass()
}

/// Generic objects have exactly the bytes asked for, always read zero (also after another
/// user's data), and DMA ones come from the DMA caches.
pub fn generic_objects() -> TestResult {
    let dev = open_slab()?;
    for bytes in [1u32, 8, 9, 100, 192, 4095, 4096, 8192, 8193, 65536, 1 << 22] {
        for flags in [0, sys::MINIMM_OBJ_ZERO] {
            let ctx = format!("generic {bytes} bytes, flags {flags:#x}");
            let a = alloc(&dev, 0, bytes, flags)?;
            check_eq!(a.objsize, bytes);
            check!(
                read(&dev, a.object, bytes)?.iter().all(|&b| b == 0),
                "{ctx}: not zeroed"
            );
            let data = pattern(u64::from(bytes) + 7, bytes);
            write(&dev, a.object, 0, &data)?;
            check!(read(&dev, a.object, bytes)? == data, "{ctx}: round trip");
            expect_errno(
                dev.slab_read(a.object, bytes, &mut [0u8; 1]),
                libc::EINVAL,
                &format!("{ctx}: a byte past the object"),
            )?;
            free(&dev, a.object)?;
            // The next one (likely the same slot) is zeroed again.
            let b = alloc(&dev, 0, bytes, flags)?;
            check!(
                read(&dev, b.object, bytes)?.iter().all(|&x| x == 0),
                "{ctx}: reused object not zeroed"
            );
            free(&dev, b.object)?;
        }
    }
    // DMA: the minimm-kmalloc-dma-* caches, zeroed too.
    let mut held = Vec::new();
    for _ in 0..4 {
        let a = alloc(&dev, 0, 64, sys::MINIMM_OBJ_DMA)?;
        check!(
            read(&dev, a.object, 64)?.iter().all(|&b| b == 0),
            "DMA object not zeroed"
        );
        held.push(a.object);
    }
    let l = slabinfo_line("minimm-kmalloc-dma-64")?.ok_or("no minimm-kmalloc-dma-64")?;
    check!(
        l.num_objs >= 4 && l.active_objs >= 4,
        "minimm-kmalloc-dma-64 while 4 objects are held: {l:?}"
    );
    for o in held {
        free(&dev, o)?;
    }
    pass()
}

/// SLAB_DATA reaches exactly the object: ranges past objsize are EINVAL, empty ranges are
/// fine, bad buffers are EFAULT, and a write from a buffer that cannot be read whole writes
/// nothing.
pub fn data_bounds() -> TestResult {
    let dev = open_slab()?;
    for flags in [0, sys::MINIMM_SLAB_RED_ZONE] {
        let size = 100u32;
        let (cache, _) = create(&dev, "data", size, 0, flags, 0)?;
        let a = alloc(&dev, cache, 0, 0)?;
        let o = a.object;
        let data = pattern(11, size);
        write(&dev, o, 0, &data)?;
        check!(read(&dev, o, size)? == data, "round trip");
        // Pieces at odd offsets.
        write(&dev, o, 13, &[0xee; 50])?;
        let mut want = data.clone();
        want[13..63].fill(0xee);
        check!(read(&dev, o, size)? == want, "write at offset 13");
        let mut piece = [0u8; 37];
        dev.slab_read(o, 63, &mut piece).map_err(e)?;
        check!(piece[..] == want[63..], "read at offset 63");
        write(&dev, o, size - 1, &[0x11])?;
        want[size as usize - 1] = 0x11;
        check!(read(&dev, o, size)? == want, "last byte");
        // Empty ranges, anywhere up to the end.
        for offset in [0, 50, size] {
            dev.slab_read(o, offset, &mut [])
                .map_err(|err| format!("read len 0 at {offset}: {err}"))?;
            dev.slab_write(o, offset, &[])
                .map_err(|err| format!("write len 0 at {offset}: {err}"))?;
        }
        let mut big = vec![0u8; size as usize + 1];
        let buf = big.as_mut_ptr() as usize;
        // (offset, len)
        for (offset, len) in [
            (0, size + 1),
            (size, 1),
            (size + 1, 0),
            (size - 1, 2),
            (u32::MAX, 2),
            (2, u32::MAX),
            (u32::MAX, 0),
        ] {
            // A length past our buffer is refused for its range, before any copy.
            for op in [sys::MINIMM_SLAB_READ, sys::MINIMM_SLAB_WRITE] {
                expect_errno(
                    dev.slab_data_raw(op, o, offset, len, buf),
                    libc::EINVAL,
                    &format!("flags {flags:#x} op {op} offset {offset} len {len}"),
                )?;
            }
        }
        check!(
            read(&dev, o, size)? == want,
            "refused ranges changed the object"
        );
        // Bad op, object, padding.
        expect_errno(dev.slab_data_raw(2, o, 0, 8, buf), libc::EINVAL, "op 2")?;
        expect_errno(
            dev.slab_data_raw(sys::MINIMM_SLAB_READ, 0, 0, 8, buf),
            libc::EINVAL,
            "object 0",
        )?;
        expect_errno(
            dev.slab_data_raw(sys::MINIMM_SLAB_READ, cache + o + 1000, 0, 8, buf),
            libc::EINVAL,
            "unknown object",
        )?;
        // Bad buffers.
        for op in [sys::MINIMM_SLAB_READ, sys::MINIMM_SLAB_WRITE] {
            for addr in [0usize, 1, 0xffff_ffff_ffff_f000] {
                expect_errno(
                    dev.slab_data_raw(op, o, 0, 8, addr),
                    libc::EFAULT,
                    &format!("op {op} buf {addr:#x}"),
                )?;
            }
        }
        // A buffer running into an inaccessible page.
        let page = page_size();
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
        let at = area.addr + page - 40;
        // SAFETY: the 40 bytes before the protected page are ours and writable.
        unsafe { std::ptr::write_bytes(at as *mut u8, 0x77, 40) };
        expect_errno(
            dev.slab_data_raw(sys::MINIMM_SLAB_WRITE, o, 0, size, at),
            libc::EFAULT,
            "write from a buffer crossing into PROT_NONE",
        )?;
        check!(
            read(&dev, o, size)? == want,
            "a write whose buffer could not be read whole changed the object"
        );
        expect_errno(
            dev.slab_data_raw(sys::MINIMM_SLAB_READ, o, 0, size, at),
            libc::EFAULT,
            "read into a buffer crossing into PROT_NONE",
        )?;
        drop(area);
        let s = slab_stats(&dev, cache)?;
        consistent(&s)?;
        free(&dev, o)?;
        dev.slab_destroy(cache).map_err(e)?;
    }
    pass()
}

/// What objects hold when handed out: fresh ones zero or the constructor's pattern; reused
/// ones what their last user left (or poison), unless MINIMM_OBJ_ZERO.
pub fn object_contents() -> TestResult {
    let dev = open_slab()?;
    let _pin = CpuPin::new(0)?;
    let seed = 0x5eed_0123_4567_89ab;
    // (what, object_size, flags, ctor_seed)
    let cases = [
        ("plain", 100u32, 0u32, 0u64),
        ("ctor", 100, sys::MINIMM_SLAB_CTOR, seed),
        ("ctor, whole words", 256, sys::MINIMM_SLAB_CTOR, seed + 1),
        ("ctor, large", 3000, sys::MINIMM_SLAB_CTOR, seed + 2),
        ("poison", 100, sys::MINIMM_SLAB_POISON, 0),
    ];
    for (what, size, flags, ctor_seed) in cases {
        let (cache, _) = create(&dev, "obj", size, 0, flags, ctor_seed)?;
        // Never-allocated objects: the constructor's pattern, or the poison (the header:
        // every free object of a POISON cache is poisoned), or zeroes.
        let fresh = if flags & sys::MINIMM_SLAB_CTOR != 0 {
            pattern(ctor_seed, size)
        } else if flags & sys::MINIMM_SLAB_POISON != 0 {
            poison(size)
        } else {
            vec![0u8; size as usize]
        };
        let freed = |data: &[u8]| -> Vec<u8> {
            if flags & sys::MINIMM_SLAB_POISON != 0 {
                poison(size)
            } else {
                data.to_vec()
            }
        };
        let per_slab = slab_stats(&dev, cache)?.objs_per_slab;
        // Fresh objects, over more than one slab, and some in bulk.
        let n = 2 * per_slab as usize + 1;
        let mut objs = Vec::new();
        for k in 0..n {
            let a = alloc(&dev, cache, 0, 0)?;
            check!(
                read(&dev, a.object, size)? == fresh,
                "{what}: fresh object {k} reads wrong"
            );
            objs.push(a.object);
        }
        let mut bulk = [0u64; 8];
        dev.slab_bulk_alloc(cache, 0, &mut bulk)
            .map_err(|err| format!("{what}: bulk: {err}"))?;
        for &o in &bulk {
            check!(
                read(&dev, o, size)? == fresh,
                "{what}: fresh bulk object reads wrong"
            );
        }
        objs.extend_from_slice(&bulk);
        // Each gets its own data; all are freed; as many come back without ZERO.
        let data: Vec<Vec<u8>> = (0..objs.len())
            .map(|k| pattern(1000 + k as u64, size))
            .collect();
        for (o, d) in objs.iter().zip(&data) {
            write(&dev, *o, 0, d)?;
        }
        for &o in objs.iter().rev() {
            free(&dev, o)?;
        }
        let mut reused = 0;
        let mut again = Vec::new();
        for k in 0..objs.len() {
            let a = alloc(&dev, cache, 0, 0)?;
            let got = read(&dev, a.object, size)?;
            let left = data.iter().any(|d| got == freed(d));
            check!(
                left || got == fresh,
                "{what}: reused object {k} holds neither what a user left nor a fresh \
                 object's bytes: {:02x?}",
                &got[..16.min(got.len())]
            );
            if left {
                reused += 1;
            }
            again.push(a.object);
        }
        check!(
            reused > 0,
            "{what}: every object came back as new, none with its last user's bytes"
        );
        for &o in &again {
            free(&dev, o)?;
        }
        // With ZERO: zeroed, reused or not.
        let mut zeroed = Vec::new();
        for k in 0..objs.len() {
            let a = alloc(&dev, cache, 0, sys::MINIMM_OBJ_ZERO)?;
            check!(
                read(&dev, a.object, size)?.iter().all(|&b| b == 0),
                "{what}: ZERO object {k} not zeroed"
            );
            zeroed.push(a.object);
        }
        let mut zbulk = [0u64; 8];
        dev.slab_bulk_alloc(cache, sys::MINIMM_OBJ_ZERO, &mut zbulk)
            .map_err(|err| format!("{what}: bulk ZERO: {err}"))?;
        for &o in &zbulk {
            check!(
                read(&dev, o, size)?.iter().all(|&b| b == 0),
                "{what}: bulk ZERO object not zeroed"
            );
        }
        zeroed.extend_from_slice(&zbulk);
        bulk_free_all(&dev, cache, &zeroed)?;
        let s = slab_stats(&dev, cache)?;
        consistent(&s)?;
        check_eq!(s.active_objs, 0);
        dev.slab_destroy(cache)
            .map_err(|err| format!("{what}: SLAB_DESTROY: {err}"))?;
    }
    pass()
}

/// Debugging caches (red zones, poison, consistency checks, owner records) work, and user
/// data that fills the object exactly trips none of their checks.
pub fn debug_flags() -> TestResult {
    let dev = open_slab()?;
    let all = sys::MINIMM_SLAB_RED_ZONE
        | sys::MINIMM_SLAB_POISON
        | sys::MINIMM_SLAB_CONSISTENCY_CHECKS
        | sys::MINIMM_SLAB_STORE_USER;
    for flags in [
        sys::MINIMM_SLAB_RED_ZONE,
        sys::MINIMM_SLAB_CONSISTENCY_CHECKS,
        sys::MINIMM_SLAB_STORE_USER,
        all,
        all | sys::MINIMM_SLAB_HWCACHE_ALIGN,
    ] {
        for size in [1u32, 24, 1000] {
            let ctx = format!("flags {flags:#x} size {size}");
            let (cache, _) = create(&dev, "dbg", size, 0, flags, 0)?;
            let s = slab_stats(&dev, cache)?;
            check_eq!(s.flags, flags);
            let mut objs = vec![0u64; 40];
            dev.slab_bulk_alloc(cache, 0, &mut objs)
                .map_err(|err| format!("{ctx}: bulk: {err}"))?;
            for (k, &o) in objs.iter().enumerate() {
                write(&dev, o, 0, &pattern(k as u64, size))?;
            }
            for (k, &o) in objs.iter().enumerate() {
                check!(
                    read(&dev, o, size)? == pattern(k as u64, size),
                    "{ctx}: object {k}"
                );
                free(&dev, o)?;
            }
            let s = slab_stats(&dev, cache)?;
            consistent(&s).map_err(|err| format!("{ctx}: {err}"))?;
            dev.slab_destroy(cache)
                .map_err(|err| format!("{ctx}: SLAB_DESTROY: {err}"))?;
        }
    }
    pass()
}

/// SLAB_BULK: argument errnos, all-or-nothing frees (duplicates, unknown handles, another
/// cache's objects) and allocations (bad array), and the objects it moves.
pub fn bulk() -> TestResult {
    let dev = open_slab()?;
    let (cache, _) = create(&dev, "bulk", 48, 0, 0, 0)?;
    let (other_cache, _) = create(&dev, "bulk2", 48, 0, 0, 0)?;
    let active = |c| slab_stats(&dev, c).map(|s| s.active_objs);
    let mut arr = [0u64; BULK_MAX + 1];
    let raw = |op, cache, count, flags, objects: usize| {
        let mut b = sys::minimm_slab_bulk {
            size: size_of::<sys::minimm_slab_bulk>() as u32,
            op,
            cache,
            count,
            flags,
            objects: objects as u64,
        };
        dev.ioctl(sys::MINIMM_IOC_SLAB_BULK, &mut b)
    };
    let p = arr.as_mut_ptr() as usize;
    let (a_op, f_op) = (sys::MINIMM_SLAB_BULK_ALLOC, sys::MINIMM_SLAB_BULK_FREE);
    let bad = [
        ("ALLOC count 0", a_op, cache, 0, 0),
        ("ALLOC count MAX + 1", a_op, cache, BULK_MAX as u32 + 1, 0),
        ("ALLOC count u32::MAX", a_op, cache, u32::MAX, 0),
        ("FREE count 0", f_op, cache, 0, 0),
        ("FREE count MAX + 1", f_op, cache, BULK_MAX as u32 + 1, 0),
        ("op 2", 2, cache, 1, 0),
        ("ALLOC flags DMA", a_op, cache, 1, sys::MINIMM_OBJ_DMA),
        (
            "ALLOC flags past VALID",
            a_op,
            cache,
            1,
            sys::MINIMM_OBJ_VALID + 1,
        ),
        ("FREE flags ZERO", f_op, cache, 1, sys::MINIMM_OBJ_ZERO),
        ("ALLOC generic (cache 0)", a_op, 0, 1, 0),
        (
            "ALLOC unknown cache",
            a_op,
            cache + other_cache + 1000,
            1,
            0,
        ),
    ];
    for (what, op, c, count, flags) in bad {
        arr.fill(0);
        expect_errno(raw(op, c, count, flags, p), libc::EINVAL, what)?;
        check!(arr.iter().all(|&h| h == 0), "{what}: handles written");
    }
    check_eq!(active(cache)?, 0);
    // The largest bulk allocation: distinct handles, each a live object.
    let mut objs = [0u64; BULK_MAX];
    dev.slab_bulk_alloc(cache, 0, &mut objs)
        .map_err(|err| format!("bulk ALLOC of {BULK_MAX}: {err}"))?;
    let mut sorted = objs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    check_eq!(sorted.len(), BULK_MAX);
    check!(!objs.contains(&0), "handle 0 in {objs:?}");
    check_eq!(active(cache)?, BULK_MAX as u64);
    for (k, &o) in objs.iter().enumerate() {
        write(&dev, o, 0, &pattern(k as u64, 48))?;
    }
    let still_all = |what: &str| -> Result<(), String> {
        check_eq!(active(cache)?, BULK_MAX as u64);
        for (k, &o) in objs.iter().enumerate() {
            let got = read(&dev, o, 48).map_err(|err| format!("{what}: {err}"))?;
            check!(got == pattern(k as u64, 48), "{what}: object {k} changed");
        }
        Ok(())
    };
    // All-or-nothing frees.
    let one_other = alloc(&dev, other_cache, 0, 0)?;
    let lists: [(&str, Vec<u64>); 6] = [
        ("a duplicate", vec![objs[0], objs[1], objs[0]]),
        ("a duplicate at the end", {
            let mut v = objs[..BULK_MAX - 1].to_vec();
            v.push(objs[5]);
            v
        }),
        ("an unknown handle", vec![objs[2], objs[3], u64::MAX - 1]),
        ("handle 0", vec![objs[4], 0]),
        ("another cache's object", vec![objs[6], one_other.object]),
        ("the cache handle", vec![objs[7], cache]),
    ];
    for (what, list) in &lists {
        if what == &"the cache handle" && objs.contains(&cache) {
            continue;
        }
        expect_errno(
            dev.slab_bulk_free(cache, list),
            libc::EINVAL,
            &format!("bulk FREE with {what}"),
        )?;
        still_all(&format!("after bulk FREE with {what}"))?;
    }
    expect_errno(
        dev.slab_bulk_free(other_cache, &objs[..2]),
        libc::EINVAL,
        "bulk FREE naming the wrong cache",
    )?;
    still_all("after bulk FREE naming the wrong cache")?;
    // A freed handle in the list.
    free(&dev, objs[10])?;
    expect_errno(
        dev.slab_bulk_free(cache, &[objs[11], objs[10]]),
        libc::EINVAL,
        "bulk FREE with a freed handle",
    )?;
    read(&dev, objs[11], 48).map_err(|err| format!("objs[11] after refused free: {err}"))?;
    let o10 = alloc(&dev, cache, 0, 0)?;
    let mut live: Vec<u64> = objs.iter().copied().filter(|&o| o != objs[10]).collect();
    live.push(o10.object);
    // A bad array: EFAULT and nothing allocated or freed.
    for addr in [0usize, 1, 0xffff_ffff_ffff_f000] {
        expect_errno(
            raw(a_op, cache, 4, 0, addr),
            libc::EFAULT,
            "bulk ALLOC to a bad array",
        )?;
        expect_errno(
            raw(f_op, cache, 4, 0, addr),
            libc::EFAULT,
            "bulk FREE from a bad array",
        )?;
    }
    let ro = Area::map(
        -1,
        0,
        page_size(),
        libc::PROT_READ,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .map_err(e)?;
    expect_errno(
        raw(a_op, cache, 4, 0, ro.addr),
        libc::EFAULT,
        "bulk ALLOC into a read-only array",
    )?;
    drop(ro);
    check_eq!(active(cache)?, live.len() as u64);
    for &o in &live {
        read(&dev, o, 48).map_err(|err| format!("after refused bulk calls: {err}"))?;
    }
    // Free them all, in bulks of every size; then the handles are gone.
    let (head, tail) = live.split_at(1);
    dev.slab_bulk_free(cache, head).map_err(e)?;
    bulk_free_all(&dev, cache, tail)?;
    check_eq!(active(cache)?, 0);
    for &o in &live {
        expect_errno(
            dev.slab_read(o, 0, &mut [0u8; 1]),
            libc::EINVAL,
            "SLAB_DATA after bulk FREE",
        )?;
    }
    free(&dev, one_other.object)?;
    consistent(&slab_stats(&dev, cache)?)?;
    dev.slab_destroy(cache).map_err(e)?;
    dev.slab_destroy(other_cache).map_err(e)?;
    pass()
}

/// SLAB_DESTROY refuses a cache with objects (EBUSY; still usable), then destroys it once
/// they are freed, its slabs back in the pool and its handle gone.
pub fn destroy_busy_then_gone() -> TestResult {
    let dev = open_slab()?;
    let before = pool(&dev)?;
    let (cache, name) = create(&dev, "busy", 200, 0, 0, 0)?;
    let mut objs = Vec::new();
    for _ in 0..3 {
        objs.push(alloc(&dev, cache, 0, 0)?.object);
    }
    expect_errno(
        dev.slab_destroy(cache),
        libc::EBUSY,
        "DESTROY with 3 objects",
    )?;
    let a = alloc(&dev, cache, 0, 0).map_err(|err| format!("after EBUSY: {err}"))?;
    write(&dev, a.object, 0, &[1, 2, 3])?;
    check_eq!(read(&dev, a.object, 3)?, vec![1, 2, 3]);
    objs.push(a.object);
    check_eq!(slab_stats(&dev, cache)?.active_objs, 4);
    check!(slabinfo_line(&name)?.is_some(), "busy cache left slabinfo");
    let last = objs.pop().ok_or("no object")?;
    for o in objs {
        free(&dev, o)?;
    }
    expect_errno(
        dev.slab_destroy(cache),
        libc::EBUSY,
        "DESTROY with 1 object",
    )?;
    free(&dev, last)?;
    // Bad DESTROY and SHRINK structs.
    for cmd in [sys::MINIMM_IOC_SLAB_DESTROY, sys::MINIMM_IOC_SLAB_SHRINK] {
        let mut c = sys::minimm_slab_cache {
            size: size_of::<sys::minimm_slab_cache>() as u32,
            __pad: 1,
            cache,
            ..Default::default()
        };
        expect_errno(
            dev.ioctl(cmd, &mut c),
            libc::EINVAL,
            &format!("{cmd:#x} __pad"),
        )?;
        for bad in [0, cache + 1000, u64::MAX] {
            let mut c = sys::minimm_slab_cache {
                size: size_of::<sys::minimm_slab_cache>() as u32,
                cache: bad,
                ..Default::default()
            };
            expect_errno(
                dev.ioctl(cmd, &mut c),
                libc::EINVAL,
                &format!("{cmd:#x} cache {bad:#x}"),
            )?;
        }
    }
    expect_errno(dev.slab_stats(0), libc::EINVAL, "SLAB_STATS cache 0")?;
    dev.slab_destroy(cache)
        .map_err(|err| format!("DESTROY after freeing all: {err}"))?;
    expect_errno(dev.slab_destroy(cache), libc::EINVAL, "DESTROY twice")?;
    expect_errno(dev.slab_stats(cache), libc::EINVAL, "STATS after DESTROY")?;
    expect_errno(dev.slab_shrink(cache), libc::EINVAL, "SHRINK after DESTROY")?;
    expect_errno(
        dev.slab_alloc(cache, 0, 0),
        libc::EINVAL,
        "ALLOC after DESTROY",
    )?;
    expect_errno(
        dev.slab_bulk_alloc(cache, 0, &mut [0u64; 2]),
        libc::EINVAL,
        "bulk ALLOC after DESTROY",
    )?;
    expect_errno(
        dev.slab_free(last),
        libc::EINVAL,
        "FREE of an object after DESTROY",
    )?;
    check!(
        slabinfo_line(&name)?.is_none(),
        "{name} in slabinfo after DESTROY"
    );
    check_eq!(pool(&dev)?, before);
    pass()
}

/// SLAB_SHRINK gives every empty slab back and says how many pages; the pool gets them.
pub fn shrink_returns_pages() -> TestResult {
    let dev = open_slab()?;
    let before = pool(&dev)?;
    let (cache, _) = create(&dev, "shrink", 256, 0, 0, 0)?;
    let s0 = slab_stats(&dev, cache)?;
    let n = 4 * s0.objs_per_slab as usize + 3;
    let mut objs = Vec::new();
    for _ in 0..n {
        objs.push(alloc(&dev, cache, 0, 0)?.object);
    }
    let s = slab_stats(&dev, cache)?;
    consistent(&s)?;
    check!(s.num_slabs >= 5, "{} slabs for {n} objects", s.num_slabs);
    check!(
        pool(&dev)? <= before - (s.num_slabs << s.order),
        "pool {} after taking {} slabs of order {} (was {before})",
        pool(&dev)?,
        s.num_slabs,
        s.order
    );
    check_eq!(s.alloc_fastpath + s.alloc_slowpath, n as u64);
    // With objects in every slab but one kept, shrinking frees only empty slabs.
    let keep = objs.pop().ok_or("no object")?;
    for &o in &objs {
        free(&dev, o)?;
    }
    let s = slab_stats(&dev, cache)?;
    consistent(&s)?;
    check_eq!(s.active_objs, 1);
    check_eq!(s.free_fastpath + s.free_slowpath, objs.len() as u64);
    let slabs = s.num_slabs;
    let freed = dev
        .slab_shrink(cache)
        .map_err(|err| format!("SHRINK: {err}"))?;
    let s = slab_stats(&dev, cache)?;
    consistent(&s)?;
    check_eq!((s.cpu_objects, s.empty_slabs), (0, 0));
    check_eq!(s.num_slabs, 1);
    check!(freed > 0, "SHRINK freed nothing of {slabs} slabs");
    check_eq!(freed, (slabs - 1) << s.order);
    check_eq!(s.active_objs, 1);
    read(&dev, keep, 256).map_err(|err| format!("kept object after SHRINK: {err}"))?;
    // The last one: shrinking then frees the last slab, and the pool is whole again.
    free(&dev, keep)?;
    let freed = dev
        .slab_shrink(cache)
        .map_err(|err| format!("SHRINK: {err}"))?;
    check_eq!(freed, 1u64 << s.order);
    let s = slab_stats(&dev, cache)?;
    consistent(&s)?;
    check_eq!((s.num_slabs, s.num_objs, s.cpu_objects), (0, 0, 0));
    check_eq!(
        dev.slab_shrink(cache)
            .map_err(|err| format!("SHRINK again: {err}"))?,
        0
    );
    check_eq!(pool(&dev)?, before);
    dev.slab_destroy(cache).map_err(e)?;
    pass()
}

/// Caches created with MINIMM_SLAB_CACHE_DMA take their slabs from ZONE_DMA, DMA32 ones from
/// ZONE_DMA32 or below; shrinking gives them back there.
pub fn zone_placement() -> TestResult {
    let dev = open_slab()?;
    if stats(&dev, DMA)?.managed_pages == 0 || stats(&dev, DMA32)?.managed_pages == 0 {
        return skip("the host gave the DMA or DMA32 zone no page");
    }
    let avail = |z| stats(&dev, z).map(|s| s.free_pages + s.pcp_pages);
    for (flags, zones, what) in [
        (sys::MINIMM_SLAB_CACHE_DMA, &[DMA][..], "DMA"),
        (sys::MINIMM_SLAB_CACHE_DMA32, &[DMA, DMA32][..], "DMA32"),
    ] {
        let low = || -> Result<u64, String> {
            let mut sum = 0;
            for &z in zones {
                sum += avail(z)?;
            }
            Ok(sum)
        };
        let total = pool(&dev)?;
        let records = record_slab_pages()?;
        let before = low()?;
        let (cache, _) = create(&dev, "zone", 64, 0, flags, 0)?;
        let a = alloc(&dev, cache, 0, 0)?;
        let s = slab_stats(&dev, cache)?;
        check_eq!(s.num_slabs, 1);
        let pages = 1u64 << s.order;
        check_eq!(low()?, before - pages);
        // The pool gave the slab, and a slab of the object records if they needed one (from
        // NORMAL, with fallback).
        check_eq!(
            pool(&dev)?,
            total - pages - (record_slab_pages()? - records)
        );
        free(&dev, a.object)?;
        check_eq!(
            dev.slab_shrink(cache)
                .map_err(|err| format!("{what}: SHRINK: {err}"))?,
            pages
        );
        check_eq!(low()?, before);
        dev.slab_destroy(cache).map_err(e)?;
    }
    pass()
}

/// Handles belong to the file that made them: another file gets EINVAL for every slab
/// command, also when it holds a block whose handle has the same number.
pub fn handles_belong_to_the_file() -> TestResult {
    let a = open_slab()?;
    let (cache, _) = create(&a, "own", 64, 0, 0, 0)?;
    let obj = alloc(&a, cache, 0, 0)?;
    write(&a, obj.object, 0, b"mine")?;
    let b = open_slab()?;
    let blk = b.alloc(0, NORMAL, 0).map_err(e)?;
    let mut buf = [0u8; 4];
    for (what, handle) in [("A's", None), ("B's block", Some(blk.handle))] {
        let (c, o) = handle.map_or((cache, obj.object), |h| (h, h));
        let ctx = |cmd: &str| format!("{what} handle: {cmd}");
        expect_errno(b.slab_alloc(c, 0, 0), libc::EINVAL, &ctx("ALLOC"))?;
        expect_errno(b.slab_stats(c), libc::EINVAL, &ctx("STATS"))?;
        expect_errno(b.slab_shrink(c), libc::EINVAL, &ctx("SHRINK"))?;
        expect_errno(b.slab_destroy(c), libc::EINVAL, &ctx("DESTROY"))?;
        expect_errno(
            b.slab_bulk_alloc(c, 0, &mut [0u64; 2]),
            libc::EINVAL,
            &ctx("bulk ALLOC"),
        )?;
        expect_errno(b.slab_read(o, 0, &mut buf), libc::EINVAL, &ctx("DATA read"))?;
        expect_errno(
            b.slab_write(o, 0, b"evil"),
            libc::EINVAL,
            &ctx("DATA write"),
        )?;
        expect_errno(b.slab_free(o), libc::EINVAL, &ctx("FREE"))?;
    }
    // B's own cache cannot free A's objects in bulk.
    let (bc, _) = create(&b, "own", 64, 0, 0, 0)?;
    expect_errno(
        b.slab_bulk_free(bc, &[obj.object]),
        libc::EINVAL,
        "bulk FREE of A's object",
    )?;
    // Block commands do not take object handles (when the numbers differ).
    if obj.object != blk.handle {
        expect_errno(b.free(obj.object), libc::EINVAL, "FREE of A's object")?;
    }
    // A duplicate descriptor is the same file.
    let dup = a.try_clone().map_err(e)?;
    check_eq!(read(&dup, obj.object, 4)?, b"mine".to_vec());
    check_eq!(slab_stats(&dup, cache)?.active_objs, 1);
    drop(b);
    free(&dup, obj.object)?;
    a.slab_destroy(cache).map_err(e)?;
    pass()
}

/// A file opened read-only (or ioctl-only) gets EBADF for every slab command; a write-only
/// one may use them all.
pub fn open_modes() -> TestResult {
    // Handle 1 would be the file's first cache or object: the mode is checked, not handles.
    let cmds = |dev: &Device| -> Vec<(&'static str, io::Result<()>)> {
        let mut c = sys::minimm_slab_create {
            size: size_of::<sys::minimm_slab_create>() as u32,
            object_size: 64,
            name: slab_name(unique("ro").as_bytes()),
            ..Default::default()
        };
        vec![
            (
                "CREATE",
                dev.ioctl(sys::MINIMM_IOC_SLAB_CREATE, &mut c).map(|_| ()),
            ),
            ("DESTROY", dev.slab_destroy(1)),
            ("SHRINK", dev.slab_shrink(1).map(|_| ())),
            ("STATS", dev.slab_stats(1).map(|_| ())),
            ("ALLOC", dev.slab_alloc(1, 0, 0).map(|_| ())),
            ("ALLOC generic", dev.slab_alloc(0, 8, 0).map(|_| ())),
            ("FREE", dev.slab_free(1)),
            ("bulk ALLOC", dev.slab_bulk_alloc(1, 0, &mut [0u64; 1])),
            ("bulk FREE", dev.slab_bulk_free(1, &[1])),
            ("DATA read", dev.slab_read(1, 0, &mut [0u8; 8])),
            ("DATA write", dev.slab_write(1, 0, &[])),
        ]
    };
    for (mode, name) in [(libc::O_RDONLY, "O_RDONLY"), (3, "mode 3")] {
        let dev = match Device::open_mode(mode) {
            Ok(dev) => dev,
            Err(_) if mode == 3 => continue,
            Err(err) => return Err(format!("open {name}: {err}")),
        };
        require_slab(&dev)?;
        for (what, r) in cmds(&dev) {
            expect_errno(r, libc::EBADF, &format!("{name}: {what}"))?;
        }
    }
    let dev = Device::open_mode(libc::O_WRONLY).map_err(|err| format!("O_WRONLY: {err}"))?;
    let (cache, _) = create(&dev, "wo", 64, 0, 0, 0)?;
    let a = alloc(&dev, cache, 0, 0)?;
    write(&dev, a.object, 0, b"wo")?;
    check_eq!(read(&dev, a.object, 2)?, b"wo".to_vec());
    let g = alloc(&dev, 0, 8, 0)?;
    free(&dev, g.object)?;
    free(&dev, a.object)?;
    dev.slab_shrink(cache).map_err(e)?;
    slab_stats(&dev, cache)?;
    dev.slab_destroy(cache).map_err(e)?;
    pass()
}

/// Closing a file frees its objects and destroys its caches: every slab back in its zone,
/// the slabinfo lines gone, the names free again.
pub fn close_frees_everything() -> TestResult {
    let watch = open_slab()?;
    let before = free_pages(&watch)?;
    let dev = open_slab()?;
    let (plain, plain_name) = create(&dev, "close", 200, 0, 0, 0)?;
    let (ctor, ctor_name) = create(
        &dev,
        "closec",
        400,
        0,
        sys::MINIMM_SLAB_CTOR | sys::MINIMM_SLAB_CACHE_DMA32,
        9,
    )?;
    let (_empty, empty_name) = create(&dev, "closee", 64, 0, 0, 0)?;
    for _ in 0..100 {
        alloc(&dev, plain, 0, 0)?;
    }
    let mut objs = [0u64; BULK_MAX];
    for _ in 0..2 {
        dev.slab_bulk_alloc(ctor, 0, &mut objs).map_err(e)?;
    }
    // Some freed, so that the per-CPU arrays hold objects too.
    bulk_free_all(&dev, ctor, &objs[..20])?;
    let taken: u64 = before.iter().sum::<u64>() - pool(&watch)?;
    let s = slab_stats(&dev, plain)?;
    let c = slab_stats(&dev, ctor)?;
    check!(
        taken >= (s.num_slabs << s.order) + (c.num_slabs << c.order),
        "pool gave {taken} pages for {} + {} slabs",
        s.num_slabs,
        c.num_slabs
    );
    drop(dev);
    let back = within(5, || Ok(free_pages(&watch)? == before))?;
    check!(
        back,
        "pool after close {:?}, before {before:?}",
        free_pages(&watch)?
    );
    let lines = slabinfo()?;
    for name in [&plain_name, &ctor_name, &empty_name] {
        check!(
            !lines.iter().any(|l| &l.name == name),
            "{name} in slabinfo after close"
        );
        let c = watch
            .slab_create(name, 64, 0, 0, 0)
            .map_err(|err| format!("{name} after close: {err}"))?;
        watch.slab_destroy(c).map_err(e)?;
    }
    pass()
}

/// The module's own records come from its own caches: `minimm_slab_object` counts the live
/// object handles, generic and bulk ones included, and `minimm_vm_area` the live areas (one
/// freed while mapped keeps its record until the munmap); both are in slabinfo without
/// per-CPU arrays. A block's buffer is no record of the pool's: the block takes exactly its
/// pages from its zone. Closing the file gives every record back, and with the records the
/// pages of their slabs.
pub fn records_in_own_caches() -> TestResult {
    let watch = open_slab()?;
    let line = |name: &str| -> Result<SlabinfoLine, String> {
        slabinfo_line(name)?.ok_or(format!("no {name} in slabinfo"))
    };
    let (objects0, areas0) = (line("minimm_slab_object")?, line("minimm_vm_area")?);
    for l in [&objects0, &areas0] {
        check_eq!((l.limit, l.batchcount), (0, 0));
    }
    check!(
        slabinfo_line("minimm_buffer")?.is_none(),
        "block buffers are not pool records"
    );
    let active = |name: &str| line(name).map(|l| l.active_objs);
    let zone = if stats(&watch, NORMAL)?.managed_pages > 0 {
        NORMAL
    } else {
        DMA32
    } as usize;
    let f = open_slab()?;
    let before = free_pages(&watch)?;
    for _ in 0..40 {
        f.alloc(0, zone as u32, 0).map_err(e)?;
    }
    check_eq!(free_pages(&watch)?[zone], before[zone] - 40);
    let (cache, _) = create(&f, "rec", 100, 0, 0, 0)?;
    let mut generic = Vec::new();
    for _ in 0..5 {
        generic.push(alloc(&f, 0, 24, 0)?.object);
    }
    let mut objs = [0u64; 16];
    f.slab_bulk_alloc(cache, 0, &mut objs).map_err(e)?;
    check_eq!(active("minimm_slab_object")?, objects0.active_objs + 21);
    free(&f, generic[0])?;
    bulk_free_all(&f, cache, &objs[..8])?;
    check_eq!(active("minimm_slab_object")?, objects0.active_objs + 12);
    let areas: Vec<_> = (0..3)
        .map(|_| f.vm_create(2 * PAGE, NORMAL, 0))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    check_eq!(active("minimm_vm_area")?, areas0.active_objs + 3);
    // An area freed while mapped keeps its record until the munmap.
    let mut m = f.map(areas[0].mmap_offset, 2 * PAGE as usize).map_err(e)?;
    m.bytes_mut()[0] = 0x5a;
    f.vm_free(areas[0].handle).map_err(e)?;
    check_eq!(active("minimm_vm_area")?, areas0.active_objs + 3);
    drop(m);
    check_eq!(active("minimm_vm_area")?, areas0.active_objs + 2);
    drop(f);
    // (The pool's pages are not compared: the generic cache keeps its slab.)
    let back = within(5, || {
        Ok(active("minimm_slab_object")? == objects0.active_objs
            && active("minimm_vm_area")? == areas0.active_objs)
    })?;
    check!(
        back,
        "after close: {:?} {:?}",
        line("minimm_slab_object")?,
        line("minimm_vm_area")?
    );
    // No records left of any file: no slab left either.
    if objects0.active_objs == 0 && areas0.active_objs == 0 {
        check_eq!(line("minimm_slab_object")?.num_slabs, 0);
        check_eq!(line("minimm_vm_area")?.num_slabs, 0);
    }
    pass()
}

/// Threads allocating, writing, reading and freeing objects of one cache through one file:
/// every object keeps its own bytes and the counters add up at the end.
pub fn concurrent_one_file() -> TestResult {
    let dev = open_slab()?;
    let size = 72u32;
    let (cache, _) = create(&dev, "conc", size, 0, 0, 0)?;
    let threads = 4u64;
    let ops = 400;
    let results: Vec<Result<Vec<(u64, u64)>, String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let dev = &dev;
                sc.spawn(move || -> Result<Vec<(u64, u64)>, String> {
                    let mut live: Vec<(u64, u64)> = Vec::new();
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                    let mut tag = t << 32;
                    for _ in 0..ops {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        match x % 6 {
                            0 | 1 => {
                                let a = alloc(dev, cache, 0, 0)?;
                                tag += 1;
                                write(dev, a.object, 0, &pattern(tag, size))?;
                                live.push((a.object, tag));
                            }
                            2 => {
                                let k = (x >> 8) as usize % 8 + 1;
                                let mut objs = vec![0u64; k];
                                dev.slab_bulk_alloc(cache, 0, &mut objs)
                                    .map_err(|err| format!("bulk {k}: {err}"))?;
                                for o in objs {
                                    tag += 1;
                                    write(dev, o, 0, &pattern(tag, size))?;
                                    live.push((o, tag));
                                }
                            }
                            3 if !live.is_empty() => {
                                let (o, tg) = live[(x >> 8) as usize % live.len()];
                                check!(
                                    read(dev, o, size)? == pattern(tg, size),
                                    "thread {t}: object {o} lost its bytes"
                                );
                            }
                            4 if !live.is_empty() => {
                                let (o, tg) = live.swap_remove((x >> 8) as usize % live.len());
                                check!(
                                    read(dev, o, size)? == pattern(tg, size),
                                    "thread {t}: object {o} lost its bytes"
                                );
                                free(dev, o)?;
                            }
                            5 if live.len() >= 2 => {
                                let k = ((x >> 8) as usize % live.len()).clamp(1, 8);
                                let gone: Vec<u64> =
                                    live.drain(live.len() - k..).map(|(o, _)| o).collect();
                                dev.slab_bulk_free(cache, &gone)
                                    .map_err(|err| format!("bulk free {k}: {err}"))?;
                            }
                            _ => {}
                        }
                    }
                    Ok(live)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let mut live = Vec::new();
    for r in results {
        live.extend(r?);
    }
    let s = slab_stats(&dev, cache)?;
    consistent(&s)?;
    check_eq!(s.active_objs, live.len() as u64);
    let mut handles: Vec<u64> = live.iter().map(|&(o, _)| o).collect();
    handles.sort_unstable();
    handles.dedup();
    check_eq!(handles.len(), live.len());
    for &(o, tg) in &live {
        check!(
            read(&dev, o, size)? == pattern(tg, size),
            "object {o} lost its bytes"
        );
    }
    let objs: Vec<u64> = live.iter().map(|&(o, _)| o).collect();
    bulk_free_all(&dev, cache, &objs)?;
    let s = slab_stats(&dev, cache)?;
    consistent(&s)?;
    check_eq!(s.active_objs, 0);
    check!(
        s.alloc_fastpath + s.alloc_slowpath >= s.free_fastpath + s.free_slowpath,
        "more frees than allocations counted: {s:?}"
    );
    dev.slab_destroy(cache).map_err(e)?;
    pass()
}

/// The extensible-struct rules for every slab command: a size below the first version is
/// EINVAL, above a page E2BIG, a longer struct works when its tail is zero and is E2BIG
/// otherwise (but SLAB_STATS, an output struct past @cache); refused structs are untouched,
/// and the commands that write back set size to what they wrote.
pub fn struct_sizes() -> TestResult {
    let dev = open_slab()?;
    let (cache, _) = create(&dev, "sz", 64, 0, 0, 0)?;
    let page = page_size();
    // Where SLAB_BULK writes its one handle and SLAB_DATA its bytes (the kernel writes them
    // behind the compiler's back, hence the cells).
    let handle = Cell::new(0u64);
    let data_buf = Cell::new([0u8; 8]);
    /// A command: its number, first version, whether it writes its struct back and whether
    /// the module reads its struct as input (E2BIG for an unknown non-zero tail).
    struct Cmd {
        name: &'static str,
        cmd: u32,
        ver0: u32,
        writes: bool,
        input: bool,
    }
    let cmds = [
        Cmd {
            name: "SLAB_CREATE",
            cmd: sys::MINIMM_IOC_SLAB_CREATE,
            ver0: sys::MINIMM_SLAB_CREATE_SIZE_VER0,
            writes: true,
            input: true,
        },
        Cmd {
            name: "SLAB_DESTROY",
            cmd: sys::MINIMM_IOC_SLAB_DESTROY,
            ver0: sys::MINIMM_SLAB_CACHE_SIZE_VER0,
            writes: false,
            input: true,
        },
        Cmd {
            name: "SLAB_ALLOC",
            cmd: sys::MINIMM_IOC_SLAB_ALLOC,
            ver0: sys::MINIMM_SLAB_ALLOC_SIZE_VER0,
            writes: true,
            input: true,
        },
        Cmd {
            name: "SLAB_FREE",
            cmd: sys::MINIMM_IOC_SLAB_FREE,
            ver0: sys::MINIMM_SLAB_FREE_SIZE_VER0,
            writes: false,
            input: true,
        },
        Cmd {
            name: "SLAB_BULK",
            cmd: sys::MINIMM_IOC_SLAB_BULK,
            ver0: sys::MINIMM_SLAB_BULK_SIZE_VER0,
            writes: false,
            input: true,
        },
        Cmd {
            name: "SLAB_DATA",
            cmd: sys::MINIMM_IOC_SLAB_DATA,
            ver0: sys::MINIMM_SLAB_DATA_SIZE_VER0,
            writes: false,
            input: true,
        },
        Cmd {
            name: "SLAB_SHRINK",
            cmd: sys::MINIMM_IOC_SLAB_SHRINK,
            ver0: sys::MINIMM_SLAB_CACHE_SIZE_VER0,
            writes: true,
            input: true,
        },
        Cmd {
            name: "SLAB_STATS",
            cmd: sys::MINIMM_IOC_SLAB_STATS,
            ver0: sys::MINIMM_SLAB_STATS_SIZE_VER0,
            writes: true,
            input: false,
        },
    ];
    let mut wrong = Vec::new();
    for c in &cmds {
        // A struct of our size for one call that would succeed, made afresh for each case.
        let fresh = || -> Result<Vec<u8>, String> {
            Ok(match c.cmd {
                sys::MINIMM_IOC_SLAB_CREATE => as_bytes(&sys::minimm_slab_create {
                    object_size: 32,
                    name: slab_name(unique("sz").as_bytes()),
                    ..Default::default()
                }),
                sys::MINIMM_IOC_SLAB_DESTROY => as_bytes(&sys::minimm_slab_cache {
                    cache: create(&dev, "szd", 32, 0, 0, 0)?.0,
                    ..Default::default()
                }),
                sys::MINIMM_IOC_SLAB_ALLOC => as_bytes(&sys::minimm_slab_alloc {
                    cache,
                    ..Default::default()
                }),
                sys::MINIMM_IOC_SLAB_FREE => as_bytes(&sys::minimm_slab_free {
                    object: alloc(&dev, cache, 0, 0)?.object,
                    ..Default::default()
                }),
                sys::MINIMM_IOC_SLAB_BULK => {
                    handle.set(0);
                    as_bytes(&sys::minimm_slab_bulk {
                        op: sys::MINIMM_SLAB_BULK_ALLOC,
                        cache,
                        count: 1,
                        objects: handle.as_ptr() as u64,
                        ..Default::default()
                    })
                }
                sys::MINIMM_IOC_SLAB_DATA => as_bytes(&sys::minimm_slab_data {
                    op: sys::MINIMM_SLAB_READ,
                    object: alloc(&dev, cache, 0, 0)?.object,
                    len: 8,
                    buf: data_buf.as_ptr() as u64,
                    ..Default::default()
                }),
                sys::MINIMM_IOC_SLAB_SHRINK => as_bytes(&sys::minimm_slab_cache {
                    cache,
                    ..Default::default()
                }),
                _ => as_bytes(&sys::minimm_slab_stats {
                    cache,
                    ..Default::default()
                }),
            })
        };
        let ours = fresh()?.len();
        // (what, size field, bytes present, non-zero tail byte, expected errno or 0)
        let mut cases: Vec<(String, u32, usize, bool, i32)> = vec![
            ("0".into(), 0, ours, false, libc::EINVAL),
            ("4".into(), 4, ours, false, libc::EINVAL),
            ("VER0-1".into(), c.ver0 - 1, ours, false, libc::EINVAL),
            ("VER0".into(), c.ver0, ours, false, 0),
            (
                "PAGE_SIZE+1".into(),
                page as u32 + 1,
                ours,
                false,
                libc::E2BIG,
            ),
            ("u32::MAX".into(), u32::MAX, ours, false, libc::E2BIG),
            ("PAGE_SIZE, zero tail".into(), page as u32, page, false, 0),
        ];
        for k in [1u32, 8, 64] {
            cases.push((
                format!("ours+{k}, zero tail"),
                ours as u32 + k,
                ours + k as usize,
                false,
                0,
            ));
            if c.input {
                cases.push((
                    format!("ours+{k}, non-zero tail"),
                    ours as u32 + k,
                    ours + k as usize,
                    true,
                    libc::E2BIG,
                ));
            }
        }
        if c.input {
            cases.push((
                "PAGE_SIZE, last byte set".into(),
                page as u32,
                page,
                true,
                libc::E2BIG,
            ));
        }
        for (what, size, present, nonzero, want) in cases {
            let ctx = format!("{} size {size} ({what})", c.name);
            let mut bytes = fresh()?;
            bytes.resize(present, 0);
            if nonzero {
                *bytes.last_mut().ok_or("empty")? = 1;
            }
            bytes[..4].copy_from_slice(&size.to_ne_bytes());
            let before = bytes.clone();
            let r = ioctl_bytes(&dev, c.cmd, &mut bytes);
            let got = match &r {
                Ok(_) => 0,
                Err(err) => err.raw_os_error().unwrap_or(-1),
            };
            if got != want {
                wrong.push(format!("{ctx}: want errno {want}, got {r:?}"));
                continue;
            }
            if want != 0 {
                if bytes != before {
                    wrong.push(format!("{ctx}: a refused call wrote its struct"));
                }
                continue;
            }
            if c.writes && u32_at(&bytes, 0) != c.ver0 {
                wrong.push(format!("{ctx}: size out {}", u32_at(&bytes, 0)));
            }
            if bytes.len() > ours && bytes[ours..] != before[ours..] {
                wrong.push(format!("{ctx}: bytes past the struct changed"));
            }
            match c.cmd {
                sys::MINIMM_IOC_SLAB_CREATE => {
                    let made = u64_at(&bytes, 56);
                    if made == 0 {
                        wrong.push(format!("{ctx}: no cache handle"));
                    } else {
                        dev.slab_destroy(made).map_err(e)?;
                    }
                }
                sys::MINIMM_IOC_SLAB_DESTROY if dev.slab_stats(u64_at(&bytes, 8)).is_ok() => {
                    wrong.push(format!("{ctx}: succeeded, the cache is still there"));
                }
                sys::MINIMM_IOC_SLAB_ALLOC => {
                    let made = u64_at(&bytes, 24);
                    if made == 0 || u32_at(&bytes, 32) != 64 {
                        wrong.push(format!(
                            "{ctx}: object {made}, objsize {}",
                            u32_at(&bytes, 32)
                        ));
                    } else {
                        free(&dev, made)?;
                    }
                }
                sys::MINIMM_IOC_SLAB_FREE if dev.slab_free(u64_at(&bytes, 8)).is_ok() => {
                    wrong.push(format!("{ctx}: succeeded, the object is still there"));
                }
                sys::MINIMM_IOC_SLAB_BULK => {
                    if handle.get() == 0 {
                        wrong.push(format!("{ctx}: no handle written"));
                    } else {
                        free(&dev, handle.get())?;
                    }
                }
                sys::MINIMM_IOC_SLAB_STATS
                    if u64_at(&bytes, 8) != cache || u32_at(&bytes, 16) != 64 =>
                {
                    wrong.push(format!("{ctx}: stats of the wrong cache"));
                }
                _ => {}
            }
        }
    }
    // Refused calls moved nothing: no object is left but those prepared for DATA and FREE
    // cases that were refused, all freed by closing.
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    consistent(&slab_stats(&dev, cache)?)?;
    pass()
}

/// The file's quota counts objects by their slot size, next to blocks by their pages:
/// EDQUOT beyond it, for single and bulk allocations (which then allocate nothing), per file.
/// Reloads the module with a quota of 4 pages, then with its defaults again.
pub fn quota() -> TestResult {
    let result = (|| -> Result<(), String> {
        reload("file_quota_pages=4")?;
        let limit = 4 * PAGE;
        let dev = open_slab()?;
        let (cache, _) = create(&dev, "quota", 1000, 0, 0, 0)?;
        let slot = u64::from(slab_stats(&dev, cache)?.slot_size);
        let n = (limit / slot) as usize;
        check!(n >= 2, "slot {slot}: fewer than two objects fit");
        let mut objs = Vec::new();
        for k in 0..n {
            objs.push(
                alloc(&dev, cache, 0, 0)
                    .map_err(|err| format!("object {k} of {n}, slot {slot}: {err}"))?
                    .object,
            );
        }
        expect_errno(dev.slab_alloc(cache, 0, 0), libc::EDQUOT, "one object over")?;
        expect_errno(
            dev.slab_bulk_alloc(cache, 0, &mut [0u64; 1]),
            libc::EDQUOT,
            "bulk of one over",
        )?;
        expect_errno(dev.alloc(0, NORMAL, 0), libc::EDQUOT, "a page over")?;
        check_eq!(slab_stats(&dev, cache)?.active_objs, n as u64);
        // Another file has its own quota.
        let other = open_slab()?;
        let g = alloc(&other, 0, 64, 0).map_err(|err| format!("other file: {err}"))?;
        free(&other, g.object)?;
        // Bulk: all or nothing.
        bulk_free_all(&dev, cache, &objs)?;
        let mut big = vec![0u64; n + 1];
        expect_errno(
            dev.slab_bulk_alloc(cache, 0, &mut big),
            libc::EDQUOT,
            "bulk of n + 1",
        )?;
        check_eq!(slab_stats(&dev, cache)?.active_objs, 0);
        big.truncate(n);
        dev.slab_bulk_alloc(cache, 0, &mut big)
            .map_err(|err| format!("bulk of {n}: {err}"))?;
        bulk_free_all(&dev, cache, &big)?;
        // A page block and objects share the quota.
        let blk = dev.alloc(0, NORMAL, 0).map_err(e)?;
        let m = ((limit - PAGE) / slot) as usize;
        let mut objs = Vec::new();
        for k in 0..m {
            objs.push(
                alloc(&dev, cache, 0, 0)
                    .map_err(|err| format!("object {k} of {m} beside a page: {err}"))?
                    .object,
            );
        }
        expect_errno(dev.slab_alloc(cache, 0, 0), libc::EDQUOT, "beside a page")?;
        dev.free(blk.handle).map_err(e)?;
        let more =
            alloc(&dev, cache, 0, 0).map_err(|err| format!("after freeing the page: {err}"))?;
        objs.push(more.object);
        bulk_free_all(&dev, cache, &objs)?;
        // Generic objects count their size class's slot.
        let class = slabinfo_line("minimm-kmalloc-128")?.ok_or("no minimm-kmalloc-128")?;
        let g = (limit / class.objsize) as usize;
        let mut objs = Vec::new();
        for k in 0..g {
            objs.push(
                alloc(&dev, 0, 100, 0)
                    .map_err(|err| format!("generic {k} of {g}: {err}"))?
                    .object,
            );
        }
        expect_errno(dev.slab_alloc(0, 100, 0), libc::EDQUOT, "generic over")?;
        for o in objs {
            free(&dev, o)?;
        }
        // Freed objects are uncharged: the whole quota is there again.
        let mut big = vec![0u64; n];
        dev.slab_bulk_alloc(cache, 0, &mut big)
            .map_err(|err| format!("bulk of {n} at the end: {err}"))?;
        Ok(())
    })();
    let restored = reload("").or_else(|_| ensure_loaded().map(|()| String::new()));
    result?;
    restored?;
    pass()
}

/// A cache's `slab/<name>/` directory: SLUB's attributes, agreeing with SLAB_STATS;
/// `min_partial` written, `shrink` and `validate` written `1`; gone with the cache.
pub fn cache_directory() -> TestResult {
    let dev = open_slab()?;
    let (cache, name) = create(&dev, "dir", 200, 0, sys::MINIMM_SLAB_STORE_USER, 0)?;
    let dir = format!("{DEBUGFS}/slab/{name}");
    let read = |file: &str| -> Result<String, String> {
        std::fs::read_to_string(format!("{dir}/{file}"))
            .map(|s| s.trim_end().to_string())
            .map_err(|err| format!("read {dir}/{file}: {err}"))
    };
    let num = |file: &str| -> Result<u64, String> {
        let text = read(file)?;
        let first = text.split_whitespace().next().unwrap_or("");
        first
            .parse()
            .map_err(|_| format!("{dir}/{file}: not a number: {text:?}"))
    };
    let write = |file: &str, value: &str| {
        std::fs::write(format!("{dir}/{file}"), value)
            .map_err(|err| format!("write {value:?} to {dir}/{file}: {err}"))
    };
    let mut objs = Vec::new();
    let s0 = slab_stats(&dev, cache)?;
    for _ in 0..2 * s0.objs_per_slab + 1 {
        objs.push(alloc(&dev, cache, 0, 0)?.object);
    }
    let s = slab_stats(&dev, cache)?;
    check_eq!(num("object_size")?, u64::from(s.object_size));
    check_eq!(num("slab_size")?, u64::from(s.slot_size));
    check_eq!(num("align")?, u64::from(s.align));
    check_eq!(num("objs_per_slab")?, u64::from(s.objs_per_slab));
    check_eq!(num("order")?, u64::from(s.order));
    check_eq!(num("objects")?, s.active_objs);
    check_eq!(num("total_objects")?, s.num_objs);
    check_eq!(num("partial")?, s.partial_slabs);
    check_eq!(num("objects_partial")?, 1);
    check_eq!(num("min_partial")?, s.min_partial);
    check_eq!(num("store_user")?, 1);
    check_eq!(
        (num("red_zone")?, num("poison")?, num("sanity_checks")?),
        (0, 0, 0)
    );
    check_eq!(num("debug_errors")?, 0);
    // Debugging bypasses the arrays: every allocation took the slow path.
    check_eq!(num("alloc_slowpath")?, objs.len() as u64);
    check_eq!(num("alloc_fastpath")?, 0);
    check_eq!(num("cpu_slabs")?, 0);
    // Owner tracking: every object in use was allocated by this task.
    let traces = read("alloc_traces")?;
    let comm = std::fs::read_to_string("/proc/self/comm").map_err(e)?;
    let want = format!(
        "{} allocated pid={} comm={}",
        objs.len(),
        std::process::id(),
        comm.trim_end()
    );
    check!(
        traces.lines().any(|l| l.trim_start() == want),
        "alloc_traces {traces:?} lacks {want:?}"
    );
    // min_partial 0: the first slab emptied goes back to the pool at once.
    write("min_partial", "0")?;
    check_eq!(num("min_partial")?, 0);
    expect_errno(
        std::fs::write(format!("{dir}/min_partial"), "x"),
        libc::EINVAL,
        "min_partial x",
    )?;
    let per = s0.objs_per_slab as usize;
    for &o in objs.iter().take(per) {
        free(&dev, o)?;
    }
    let s = slab_stats(&dev, cache)?;
    check_eq!((s.num_slabs, s.empty_slabs), (2, 0));
    write("validate", "1")?;
    expect_errno(
        std::fs::write(format!("{dir}/shrink"), "2"),
        libc::EINVAL,
        "shrink 2",
    )?;
    for &o in objs.iter().skip(per) {
        free(&dev, o)?;
    }
    write("shrink", "1")?;
    check_eq!(slab_stats(&dev, cache)?.num_slabs, 0);
    dev.slab_destroy(cache).map_err(e)?;
    check!(
        !std::path::Path::new(&dir).exists(),
        "{dir} still there after SLAB_DESTROY"
    );
    // Every generic cache has its directory.
    for g in generic_names() {
        let p = format!("{DEBUGFS}/slab/{g}/object_size");
        check!(std::path::Path::new(&p).exists(), "no {p}");
    }
    pass()
}

/// `slab_debug` (as Linux's `slab_debug=FZPU`) gives every cache, the generic ones and new
/// ones, the debugging flags; a value with other bits fails the load.
pub fn debug_parameter() -> TestResult {
    let result = (|| -> Result<(), String> {
        let bad = reload("slab_debug=0x1");
        check!(bad.is_err(), "slab_debug=0x1 loaded");
        ensure_loaded()?;
        reload("slab_debug=0x78")?;
        let flag = |cache: &str, file: &str| -> Result<String, String> {
            std::fs::read_to_string(format!("{DEBUGFS}/slab/{cache}/{file}"))
                .map(|s| s.trim().to_string())
                .map_err(e)
        };
        for file in ["red_zone", "poison", "sanity_checks", "store_user"] {
            check_eq!(flag("minimm-kmalloc-64", file)?, "1");
        }
        let dev = open_slab()?;
        let (cache, _) = create(&dev, "dbg", 40, 0, 0, 0)?;
        let s = slab_stats(&dev, cache)?;
        check_eq!(s.flags & 0x78, 0x78);
        check_eq!(s.limit, 0);
        // Objects still work, poisoned when fresh, and nothing is reported.
        let a = alloc(&dev, cache, 0, 0)?;
        check!(
            read(&dev, a.object, 40)? == poison(40),
            "fresh object not poisoned"
        );
        write(&dev, a.object, 0, &[7u8; 40])?;
        check!(
            read(&dev, a.object, 40)? == vec![7u8; 40],
            "object lost its bytes"
        );
        free(&dev, a.object)?;
        let g = alloc(&dev, 0, 100, 0)?;
        check!(
            read(&dev, g.object, 100)?.iter().all(|&b| b == 0),
            "generic not zeroed"
        );
        free(&dev, g.object)?;
        check_eq!(slab_stats(&dev, cache)?.debug_errors, 0);
        dev.slab_destroy(cache).map_err(e)?;
        Ok(())
    })();
    // Back to the defaults whatever happened.
    let back = reload("").map(|_| ());
    result?;
    back?;
    pass()
}

/// debugfs `page_owner` shows each slab of a cache with the cache's name, its order and its
/// zone; the paragraphs go with the slabs.
pub fn page_owner_names_the_cache() -> TestResult {
    let dev = open_slab()?;
    let (cache, name) = create(&dev, "owner", 512, 0, sys::MINIMM_SLAB_CACHE_DMA32, 0)?;
    let s0 = slab_stats(&dev, cache)?;
    let mut objs = Vec::new();
    for _ in 0..s0.objs_per_slab + 1 {
        objs.push(alloc(&dev, cache, 0, 0)?.object);
    }
    let s = slab_stats(&dev, cache)?;
    let text = debugfs("page_owner").map_err(e)?;
    let head = format!("Slab allocated via order {}, cache {name}, slab ", s.order);
    let paragraphs: Vec<&str> = text
        .split("\n\n")
        .filter(|p| p.starts_with(&head))
        .collect();
    check_eq!(paragraphs.len() as u64, s.num_slabs);
    let mut used = 0;
    for p in &paragraphs {
        let mut lines = p.lines();
        let first = lines.next().unwrap_or("");
        let counts = first.rsplit("objects ").next().unwrap_or("");
        let (u, n) = counts.split_once('/').ok_or(format!("{first:?}"))?;
        check_eq!(n.parse::<u32>().map_err(e_parse)?, s.objs_per_slab);
        used += u.parse::<u64>().map_err(e_parse)?;
        let pfn = lines.next().unwrap_or("");
        check!(
            pfn.starts_with("PFN 0x") && (pfn.ends_with("zone DMA32") || pfn.ends_with("zone DMA")),
            "{pfn:?}"
        );
        let range = pfn.split_whitespace().nth(1).unwrap_or("");
        let (a, b) = range.split_once('-').ok_or(format!("{pfn:?}"))?;
        let hex = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).map_err(e_parse);
        check_eq!(hex(b)? - hex(a)? + 1, 1u64 << s.order);
    }
    // Objects in the per-CPU arrays count as used on their slabs.
    check_eq!(used, s.active_objs + s.cpu_objects);
    for &o in &objs {
        free(&dev, o)?;
    }
    dev.slab_shrink(cache).map_err(e)?;
    let text = debugfs("page_owner").map_err(e)?;
    check!(!text.contains(&head), "slab paragraphs left after SHRINK");
    dev.slab_destroy(cache).map_err(e)?;
    pass()
}

fn e_parse(err: impl std::fmt::Display) -> String {
    err.to_string()
}
