// SPDX-License-Identifier: GPL-2.0

//! The files under debugfs `minimm/`.
//!
//! Every part of minimm (buddy, slab, vmalloc, reclaim) adds its files here, to one shared
//! directory. Each file holds a reference to [`Shared`]; reading one takes a snapshot of each
//! zone under its lock, then formats it. Where Linux has a file for the same state, the format
//! is Linux's, so that existing parsers work:
//!
//! - `info`: module version, ABI version and load parameters, one `key: value` a line.
//! - `buddyinfo`: /proc/buddyinfo.
//! - `zoneinfo`: /proc/zoneinfo's per-zone part (pages free, watermarks, sizes, protection,
//!   per-CPU lists).
//! - `unusable_index`, `extfrag_index`: debugfs `extfrag/` of Linux.
//! - `vmstat`: /proc/vmstat style `name value` counters (`nr_held_pages`: pages of freed
//!   blocks held back because something outside minimm still referenced them).
//! - `watermarks`: `zone min low high` a line; write the same to set a zone's watermarks
//!   (checked: min <= low <= high <= managed pages, else EINVAL).
//! - `bench`: writing `run [ITERATIONS]` times minimm's allocator against the host's (see
//!   `bench.rs`); reading prints the last results.
//! - `drain_pcp`: writing `1` empties every per-CPU page list back into the zones.
//! - `lru`: reclaim's lists per populated zone, `Node 0, zone %8s inactive|active units N
//!   pages N`, then a line per unit from head to tail: `  offset <mmap offset> pages N <A|-><R|->`
//!   (its reference bit, its second chance).
//! - `reclaim`: writing `N` reclaims N pages now, as cgroup v2's `memory.reclaim`: the
//!   per-CPU lists, then the slab caches, then held blocks whose pins dropped, then unpinned
//!   discardable blocks by the clock (see `reclaim.rs`); `EAGAIN` if they gave fewer than N
//!   pages back, `EINVAL` unless N >= 1.
//! - `pcp_lists`: what zoneinfo's `pagesets` sum up, by order (Linux has no such file): a line
//!   per populated zone and possible CPU, `Node 0, zone %8s cpu %3d count %6d blocks` then
//!   the blocks on the lists of orders 0..3, `%6d` each.
//! - `validate`: reading runs the buddy invariant checker over every zone, then every slab
//!   cache's checker and reclaim's lists' (`lru <zone>: ok`), and prints the verdicts; writing `1` runs them and logs the verdicts (a
//!   failure loudly, with a warning).
//! - `slab_traces`: for each cache with `STORE_USER`, its name, then `<count> allocated|freed
//!   pid=<pid> comm=<comm>` lines: who allocated the objects in use and freed the free ones
//!   last (SLUB's `alloc_traces`/`free_traces`, grouped by task).
//! - `slab/<cache>/`: a directory per slab cache with SLUB's sysfs attributes that apply
//!   (`/sys/kernel/slab/<cache>/`): `object_size`, `slab_size`, `align`, `objs_per_slab`,
//!   `order`, `objects`, `objects_partial`, `total_objects`, `partial`, `cpu_slabs` (objects
//!   in the per-CPU arrays, `N C0=n C1=n`), `min_partial` (read-write), `alloc_fastpath`,
//!   `free_fastpath` (`N C0=n C1=n`), `alloc_slowpath`, `free_slowpath`, `sanity_checks`,
//!   `red_zone`, `poison`, `store_user` (0 or 1), `validate` and `shrink` (write `1`),
//!   `alloc_traces` (the owner tracking view). Made with the cache, gone with it.
//! - `slabinfo`: /proc/slabinfo version 2.1, a line per cache (generic ones included).
//!   `active_objs` counts objects off their slabs' free lists, those cached in per-CPU arrays
//!   included, as the classic SLAB's did; `limit` and `batchcount` are the per-CPU arrays'.
//! - `vmallocinfo`: /proc/vmallocinfo's format, a line per live area by address (see
//!   `vmalloc.rs`), root-only as Linux's (it shows kernel addresses).
//! - `fail/<point>/{probability,interval,times,verbose,nth}`: fault injection at each failure
//!   point (see `fail.rs` for their meaning), one number a file, read and written (a value out
//!   of the knob's range or not a number is EINVAL); `fail/<point>/injected`, read-only: the
//!   failures injected there since load.

use core::fmt;

use kernel::{
    new_mutex,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    uaccess::UserSliceReader,
};

use crate::{
    bench,
    buddy::NR_ORDERS,
    debugfs_file::{Dir, File},
    fail::{self, Knob, Point, NR_POINTS},
    pool::{Counters, Snapshot},
    slab_cache::SlabCache,
    uapi,
    zone::{self, Milli, Watermarks, NR_ZONES},
    Shared, VERSION,
};

/// The debugfs directory and its files. Dropping it removes them; the directory goes with its
/// last file.
///
/// Every file pins the module while it is open (see `debugfs_file.rs`), so `rmmod` cannot run
/// this drop while a file is open; it only waits for reads and writes already in flight.
// The files are only held, for their removal on drop.
#[expect(dead_code)]
pub(crate) struct Entries {
    info: File<Arc<Shared>>,
    buddyinfo: File<Arc<Shared>>,
    zoneinfo: File<Arc<Shared>>,
    unusable_index: File<Arc<Shared>>,
    extfrag_index: File<Arc<Shared>>,
    vmstat: File<Arc<Shared>>,
    watermarks: File<Arc<Shared>>,
    validate: File<Arc<Shared>>,
    drain_pcp: File<Arc<Shared>>,
    reclaim: File<Arc<Shared>>,
    lru: File<Arc<Shared>>,
    pcp_lists: File<Arc<Shared>>,
    slabinfo: File<Arc<Shared>>,
    slab_traces: File<Arc<Shared>>,
    page_owner: File<Arc<Shared>>,
    page_owner_sort: File<Arc<Shared>>,
    vmallocinfo: File<Arc<Shared>>,
    bench: File<Bench>,
    slab_dir: Dir,
    fail_knobs: KVec<File<FailKnob>>,
    fail_injected: KVec<File<Point>>,
}

/// The data of `minimm/fail/<point>/<knob>`.
#[derive(Clone, Copy)]
struct FailKnob(Point, Knob);

/// The data of `minimm/bench`: the pool to measure and the last results.
#[pin_data]
struct Bench {
    shared: Arc<Shared>,
    #[pin]
    results: Mutex<Option<bench::Report>>,
}

impl Entries {
    /// Creates `minimm/` and its files. Fails only when out of memory: without debugfs the
    /// files are left out.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Self> {
        let dir = Dir::new(c"minimm")?;
        let s = || shared.clone();
        let (fail_knobs, fail_injected) = fail_files(&dir)?;
        Ok(Self {
            info: dir.read_file(c"info", s(), info)?,
            buddyinfo: dir.read_file(c"buddyinfo", s(), buddyinfo)?,
            zoneinfo: dir.read_file(c"zoneinfo", s(), zoneinfo)?,
            unusable_index: dir.read_file(c"unusable_index", s(), unusable_index)?,
            extfrag_index: dir.read_file(c"extfrag_index", s(), extfrag_index)?,
            vmstat: dir.read_file(c"vmstat", s(), vmstat)?,
            watermarks: dir.read_write_file(c"watermarks", s(), watermarks, set_watermarks)?,
            drain_pcp: dir.write_file(c"drain_pcp", s(), drain_pcp)?,
            reclaim: dir.read_write_file(c"reclaim", s(), reclaim_show, reclaim)?,
            lru: dir.read_file(c"lru", s(), |sh, f| sh.reclaim.write_lru(f))?,
            pcp_lists: dir.read_file(c"pcp_lists", s(), pcp_lists)?,
            slabinfo: dir.read_file(c"slabinfo", s(), slabinfo)?,
            slab_traces: dir.read_file(c"slab_traces", s(), slab_traces)?,
            page_owner: dir.read_file(c"page_owner", s(), page_owner)?,
            page_owner_sort: dir.read_file(c"page_owner_sort", s(), |sh, f| {
                sh.registry.page_owner_sort(f)
            })?,
            vmallocinfo: dir
                .read_file(c"vmallocinfo", s(), |sh, f| sh.vmalloc.write_vmallocinfo(f))?,
            bench: dir.read_write_file(
                c"bench",
                pin_init!(Bench { shared: s(), results <- new_mutex!(None) }),
                bench_show,
                bench_run,
            )?,
            validate: dir.read_write_file(c"validate", s(), validate, validate_write)?,
            slab_dir: {
                let slab = dir.subdir(c"slab")?;
                shared.caches.set_dir(slab.share())?;
                slab
            },
            fail_knobs,
            fail_injected,
        })
    }
}

/// Creates `fail/` in `dir`, with a directory of knobs for every failure point.
fn fail_files(dir: &Dir) -> Result<(KVec<File<FailKnob>>, KVec<File<Point>>)> {
    let fail = dir.subdir(c"fail")?;
    let mut knobs = KVec::with_capacity(NR_POINTS * Knob::ALL.len(), GFP_KERNEL)?;
    let mut injected = KVec::with_capacity(NR_POINTS, GFP_KERNEL)?;
    for point in Point::ALL {
        // Each file keeps its directory, and each directory `fail/`, alive.
        let d = fail.subdir(point.c_name())?;
        for knob in Knob::ALL {
            let file = d.read_write_file(
                knob.c_name(),
                FailKnob(point, knob),
                fail_knob,
                set_fail_knob,
            )?;
            knobs.push(file, GFP_KERNEL)?;
        }
        injected.push(d.read_file(c"injected", point, fail_injected)?, GFP_KERNEL)?;
    }
    Ok((knobs, injected))
}

/// Reading `minimm/fail/<point>/<knob>`: the value.
fn fail_knob(k: &FailKnob, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", fail::attr(k.0).get(k.1))
}

/// Writing `minimm/fail/<point>/<knob>`: a decimal number in the knob's range.
fn set_fail_knob(k: &FailKnob, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    let text = read_text(reader, &mut buf)?;
    let value = k.1.parse(text).map_err(|_| EINVAL)?;
    fail::attr(k.0).set(k.1, value).map_err(|_| EINVAL)
}

/// Reading `minimm/fail/<point>/injected`.
fn fail_injected(point: &Point, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", fail::attr(*point).injected_count())
}

/// Every zone's snapshot, each taken under its own lock.
fn snapshots(shared: &Shared) -> [Option<Snapshot>; NR_ZONES] {
    core::array::from_fn(|z| shared.pool.zone(z).map(|zone| zone.snapshot()))
}

/// The populated zones' snapshots with their indices: the files that Linux prints only for
/// populated zones (buddyinfo, the extfrag files) skip the others.
fn populated(shared: &Shared) -> impl Iterator<Item = (usize, Snapshot)> {
    let snaps = snapshots(shared);
    (0..NR_ZONES).filter_map(move |z| snaps[z].filter(|s| s.managed > 0).map(|s| (z, s)))
}

/// `minimm/info`.
fn info(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let info = shared.info();
    let p = &shared.params;
    writeln!(f, "version: {VERSION}")?;
    writeln!(f, "abi_version: {}", info.abi_version)?;
    writeln!(f, "features: {:#x}", info.features)?;
    writeln!(f, "page_size: {}", info.page_size)?;
    writeln!(f, "max_order: {}", info.max_order)?;
    writeln!(f, "nr_zones: {}", info.nr_zones)?;
    for (name, pages) in ["dma_pages", "dma32_pages", "normal_pages"]
        .iter()
        .zip(p.zone_pages)
    {
        writeln!(f, "{name}: {pages}")?;
    }
    writeln!(f, "file_quota_pages: {}", p.file_quota_pages)?;
    writeln!(f, "min_free_kbytes: {}", p.min_free_kbytes)?;
    writeln!(f, "watermark_scale_factor: {}", p.watermark_scale_factor)?;
    writeln!(f, "fail_nth_host_borrow: {}", p.fail_nth_host_borrow)?;
    writeln!(f, "slab_debug: {:#x}", p.slab_debug)?;
    writeln!(f, "borrowed_pages: {}", shared.pool.borrowed())
}

/// `minimm/buddyinfo`, as mm/vmstat.c `frag_show_print`:
/// `"Node %d, zone %8s "`, then `"%6lu "` per order, then a newline.
fn buddyinfo(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (z, s) in populated(shared) {
        write!(f, "Node 0, zone {:>8} ", zone::NAMES[z])?;
        for n in s.nr_free {
            write!(f, "{n:6} ")?;
        }
        writeln!(f)?;
    }
    Ok(())
}

/// `minimm/pcp_lists`.
fn pcp_lists(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for z in 0..NR_ZONES {
        let Some(zone) = shared.pool.zone(z).filter(|zone| zone.managed() > 0) else {
            continue;
        };
        for cpu in 0..zone.nr_pcp() {
            let Some(p) = zone.pcp_info(cpu) else {
                continue;
            };
            write!(
                f,
                "Node 0, zone {:>8} cpu {cpu:3} count {:6} blocks",
                zone::NAMES[z],
                p.count
            )?;
            for b in p.blocks {
                write!(f, " {b:6}")?;
            }
            writeln!(f)?;
        }
    }
    Ok(())
}

/// `minimm/zoneinfo`, in the layout of Linux 7.3's mm/vmstat.c `zoneinfo_show_print`, with
/// every field that has a meaning here and its true value (LRU counts are 0: minimm keeps no
/// LRU lists yet). Left out, as README lists: the per-node stats, `nr_mlock`, `nr_zspages`,
/// `nr_free_cma`, the NUMA counters, `vm stats threshold` and a fourth `protection` value
/// (minimm has no ZONE_MOVABLE).
fn zoneinfo(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    /// `pageblock_order` on x86_64: `NR_FREE_PAGES_BLOCKS` counts free pages in blocks of at
    /// least this order.
    const PAGEBLOCK_ORDER: usize = 9;
    for (z, s) in snapshots(shared).iter().enumerate() {
        let Some(s) = s else { continue };
        let w = s.wmark;
        write!(f, "Node 0, zone {:>8}", zone::NAMES[z])?;
        write!(f, "\n  pages free     {}", s.free)?;
        write!(f, "\n        boost    0")?;
        write!(f, "\n        min      {}", w.min)?;
        write!(f, "\n        low      {}", w.low)?;
        write!(f, "\n        high     {}", w.high)?;
        // WMARK_PROMO: high plus the same step again (`__setup_per_zone_wmarks`).
        let promo = w.high + (w.high - w.low.min(w.high));
        write!(f, "\n        promo    {promo}")?;
        write!(f, "\n        spanned  {}", s.spanned)?;
        write!(f, "\n        present  {}", s.managed)?;
        write!(f, "\n        managed  {}", s.managed)?;
        write!(f, "\n        cma      0")?;
        write!(f, "\n        protection: (")?;
        for (j, p) in s.protection.iter().enumerate() {
            write!(f, "{}{p}", if j == 0 { "" } else { ", " })?;
        }
        write!(f, ")")?;
        if s.managed == 0 {
            // As Linux: nothing more is useful for an unpopulated zone.
            writeln!(f)?;
            continue;
        }
        let in_blocks: usize = s
            .nr_free
            .iter()
            .enumerate()
            .skip(PAGEBLOCK_ORDER)
            .map(|(o, n)| n << o)
            .sum();
        // Discardable blocks are minimm's anonymous memory: its LRU lists' pages.
        let (inactive, active) = shared.reclaim.sizes(z);
        for (name, value) in [
            ("nr_free_pages", s.free),
            ("nr_free_pages_blocks", in_blocks),
            ("nr_zone_inactive_anon", inactive),
            ("nr_zone_active_anon", active),
            ("nr_zone_inactive_file", 0),
            ("nr_zone_active_file", 0),
            ("nr_zone_unevictable", 0),
            ("nr_zone_write_pending", 0),
        ] {
            write!(f, "\n      {name:<12} {value}")?;
        }
        write!(f, "\n  pagesets")?;
        if let Some(zone) = shared.pool.zone(z) {
            for cpu in 0..zone.nr_pcp() {
                if let Some(p) = zone.pcp_info(cpu) {
                    write!(f, "\n    cpu: {cpu}")?;
                    write!(f, "\n              count:    {}", p.count)?;
                    write!(f, "\n              high:     {}", p.high)?;
                    write!(f, "\n              batch:    {}", p.batch)?;
                    write!(f, "\n              high_min: {}", p.high_min)?;
                    write!(f, "\n              high_max: {}", p.high_max)?;
                }
            }
        }
        write!(f, "\n  node_unreclaimable:  0")?;
        write!(f, "\n  start_pfn:           {}", s.start_pfn)?;
        write!(f, "\n  reserved_highatomic: 0")?;
        writeln!(f, "\n  free_highatomic:     0")?;
    }
    Ok(())
}

/// Shared layout of the two extfrag files: `"Node %d, zone %8s "` then one value per order.
fn extfrag(
    shared: &Shared,
    f: &mut fmt::Formatter<'_>,
    index: fn(&[usize; NR_ORDERS], u32) -> i64,
    width: usize,
) -> fmt::Result {
    for (z, s) in populated(shared) {
        write!(f, "Node 0, zone {:>8} ", zone::NAMES[z])?;
        for order in 0..NR_ORDERS as u32 {
            write!(f, "{} ", Milli(index(&s.nr_free, order), width))?;
        }
        writeln!(f)?;
    }
    Ok(())
}

/// `minimm/unusable_index`, as Linux's debugfs `extfrag/unusable_index` (`"%d.%03d "`).
fn unusable_index(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    extfrag(shared, f, zone::unusable_index, 1)
}

/// `minimm/extfrag_index`, as Linux's debugfs `extfrag/extfrag_index` (`"%2d.%03d "`).
fn extfrag_index(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    extfrag(shared, f, zone::fragmentation_index, 2)
}

/// `minimm/vmstat`.
fn vmstat(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let snaps = snapshots(shared);
    let all = || snaps.iter().flatten();
    writeln!(f, "nr_free_pages {}", all().map(|s| s.free).sum::<usize>())?;
    writeln!(
        f,
        "nr_managed_pages {}",
        all().map(|s| s.managed).sum::<usize>()
    )?;
    writeln!(
        f,
        "nr_pcp_pages {}",
        all().map(|s| s.pcp_pages).sum::<usize>()
    )?;
    for (z, s) in snaps.iter().enumerate() {
        if let Some(s) = s {
            writeln!(f, "pgalloc_{} {}", LOWER[z], s.counters.pgalloc)?;
        }
    }
    writeln!(f, "nr_held_pages {}", all().map(|s| s.held).sum::<usize>())?;
    writeln!(
        f,
        "nr_held_recycled {}",
        all().map(|s| s.counters.held_recycled).sum::<u64>()
    )?;
    for (name, count) in SUMMED {
        writeln!(
            f,
            "{name} {}",
            all().map(|s| count(&s.counters)).sum::<u64>()
        )?;
    }
    // Slab pages as Linux's nr_slab_*_B counters, in pages: empty slabs (what a shrink gives
    // back) count as reclaimable, the rest as unreclaimable.
    let (mut reclaimable, mut unreclaimable, mut objects) = (0, 0, 0);
    for c in shared.caches.all().map_err(|_| fmt::Error)?.iter() {
        let s = c.stats();
        let order = c.geometry().order;
        reclaimable += s.empty << order;
        unreclaimable += (s.num_slabs - s.empty) << order;
        objects += s.allocated;
    }
    writeln!(f, "nr_slab_reclaimable {reclaimable}")?;
    writeln!(f, "nr_slab_unreclaimable {unreclaimable}")?;
    writeln!(f, "nr_slab_objects {objects}")?;
    let vm = &shared.vmalloc.counters;
    writeln!(
        f,
        "nr_vmalloc {}",
        vm.pages.load(kernel::sync::atomic::Relaxed)
    )?;
    writeln!(
        f,
        "nr_vmalloc_areas {}",
        vm.areas.load(kernel::sync::atomic::Relaxed)
    )?;
    writeln!(
        f,
        "vmalloc_created {}",
        vm.created.load(kernel::sync::atomic::Relaxed)
    )?;
    writeln!(
        f,
        "vmalloc_freed {}",
        vm.freed.load(kernel::sync::atomic::Relaxed)
    )?;
    writeln!(
        f,
        "vmalloc_fail {}",
        vm.failed.load(kernel::sync::atomic::Relaxed)
    )?;
    use kernel::sync::atomic::Relaxed;
    let rc = &shared.reclaim.counters;
    let (mut inactive, mut active) = (0, 0);
    for z in 0..zone::NR_ZONES {
        let (i, a) = shared.reclaim.sizes(z);
        inactive += i;
        active += a;
    }
    for (name, value) in [
        ("nr_inactive", inactive as u64),
        ("nr_active", active as u64),
        ("nr_unpinned", rc.unpinned.load(Relaxed) as u64),
        ("nr_purged", rc.purged.load(Relaxed)),
        ("pgscan_kswapd", rc.pgscan_kswapd.load(Relaxed)),
        ("pgscan_direct", rc.pgscan_direct.load(Relaxed)),
        ("pgsteal_kswapd", rc.pgsteal_kswapd.load(Relaxed)),
        ("pgsteal_direct", rc.pgsteal_direct.load(Relaxed)),
        ("pgactivate", rc.pgactivate.load(Relaxed)),
        ("pgdeactivate", rc.pgdeactivate.load(Relaxed)),
        ("pgrotated", rc.pgrotated.load(Relaxed)),
        ("slabs_scanned", rc.slabs_scanned.load(Relaxed)),
        ("allocstall_dma", rc.allocstall[zone::DMA].load(Relaxed)),
        ("allocstall_dma32", rc.allocstall[zone::DMA32].load(Relaxed)),
        (
            "allocstall_normal",
            rc.allocstall[zone::NORMAL].load(Relaxed),
        ),
        (
            "kswapd_low_wmark_hit_quickly",
            rc.low_hit_quickly.load(Relaxed),
        ),
        (
            "kswapd_high_wmark_hit_quickly",
            rc.high_hit_quickly.load(Relaxed),
        ),
    ] {
        writeln!(f, "{name} {value}")?;
    }
    writeln!(f, "borrowed_pages {}", shared.pool.borrowed())
}

/// The `vmstat` lines summed over the zones.
const SUMMED: [(&str, fn(&Counters) -> u64); 5] = [
    ("pgfree", |c| c.pgfree),
    ("pgalloc_fail", |c| c.alloc_fail),
    ("low_wmark_hit", |c| c.low_wmark_hit),
    ("min_wmark_hit", |c| c.min_wmark_hit),
    ("zone_fallback", |c| c.fallback),
];

/// Zone names as /proc/vmstat suffixes them.
const LOWER: [&str; NR_ZONES] = ["dma", "dma32", "normal"];

/// `minimm/watermarks`: `zone min low high`.
fn watermarks(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (z, s) in snapshots(shared).iter().enumerate() {
        if let Some(s) = s {
            writeln!(
                f,
                "{} {} {} {}",
                zone::NAMES[z],
                s.wmark.min,
                s.wmark.low,
                s.wmark.high
            )?;
        }
    }
    Ok(())
}

/// What a trigger file (`drain_pcp`, `validate`, a cache's `shrink`) takes: `1`, else
/// `EINVAL`.
fn read_one(reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    if read_text(reader, &mut buf)? != "1" {
        return Err(EINVAL);
    }
    Ok(())
}

/// Reads a short text write (at most 127 bytes) from debugfs.
fn read_text<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8; 128]) -> Result<&'a str> {
    let n = reader.len();
    if n >= buf.len() {
        return Err(EINVAL);
    }
    let part = buf.get_mut(..n).ok_or(EINVAL)?;
    reader.read_slice(part)?;
    core::str::from_utf8(part)
        .map(str::trim)
        .map_err(|_| EINVAL)
}

/// Writing `minimm/watermarks`: `<zone> <min> <low> <high>`, zone by name (any case).
fn set_watermarks(shared: &Arc<Shared>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    let text = read_text(reader, &mut buf)?;
    let mut words = text.split_whitespace();
    let name = words.next().ok_or(EINVAL)?;
    let z = zone::NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .ok_or(EINVAL)?;
    let mut num = || -> Result<usize> { words.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL) };
    let w = Watermarks {
        min: num()?,
        low: num()?,
        high: num()?,
    };
    if words.next().is_some() {
        return Err(EINVAL);
    }
    shared.pool.zone(z).ok_or(EINVAL)?.set_watermarks(w)?;
    // A zone now below its new low watermark wakes the reclaim thread, as Linux's
    // `setup_per_zone_wmarks` leaves kswapd to the next allocation.
    shared.reclaim.note_levels();
    shared.reclaim.wake_if_low();
    Ok(())
}

/// The checker's verdict on every zone: blocks counted, or the first broken invariant.
fn verdicts(shared: &Shared) -> [Option<Result<usize, crate::buddy::Corruption>>; NR_ZONES] {
    core::array::from_fn(|z| shared.pool.zone(z).map(|zone| zone.validate()))
}

/// `minimm/page_owner`: the blocks' paragraphs, the areas', then every slab's, named by its
/// cache.
fn page_owner(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    shared.registry.page_owner(f)?;
    shared.vmalloc.write_page_owner(f)?;
    let Ok(caches) = shared.caches.all() else {
        return writeln!(f, "page_owner: out of memory listing the slab caches");
    };
    for c in caches.iter() {
        c.write_page_owner(f)?;
    }
    Ok(())
}

/// `minimm/slabinfo`.
fn slabinfo(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    crate::slab::write_slabinfo_header(f)?;
    let caches = shared.caches.all().map_err(|_| fmt::Error)?;
    for c in caches.iter() {
        let g = c.geometry();
        let s = c.stats();
        let (limit, batchcount) = c.tunables();
        crate::slab::write_slabinfo_line(
            f,
            &crate::slab::SlabInfo {
                name: c.name(),
                active_objs: s.active_objs,
                num_objs: s.num_objs,
                objsize: g.slot,
                objperslab: g.objects,
                pagesperslab: 1 << g.order,
                limit,
                batchcount,
                active_slabs: s.active_slabs,
                num_slabs: s.num_slabs,
            },
        )?;
    }
    Ok(())
}

/// `minimm/slab_traces`: each `STORE_USER` cache's owners (SLUB's `alloc_traces` and
/// `free_traces`, by task).
fn slab_traces(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "# <cache>: then <count> allocated|freed pid=<pid> comm=<comm>"
    )?;
    for c in shared.caches.all().map_err(|_| fmt::Error)?.iter() {
        if c.flags() & crate::uapi::slab_flags::STORE_USER != 0 {
            writeln!(f, "{}:", c.name())?;
            c.write_traces(f).map_err(|_| fmt::Error)?;
        }
    }
    Ok(())
}

/// Every slab cache's verdict: its name and the first broken invariant, if any.
fn slab_verdicts(
    shared: &Shared,
) -> KVec<(Arc<crate::slab_cache::SlabCache>, Result<(), &'static str>)> {
    let mut out = KVec::new();
    for c in shared.caches.all().unwrap_or_default().into_iter() {
        let v = c.validate();
        if out.push((c, v), GFP_KERNEL).is_err() {
            break;
        }
    }
    out
}

/// Reading `minimm/validate`: runs the checkers.
fn validate(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (c, v) in slab_verdicts(shared).iter() {
        match v {
            Ok(()) => writeln!(f, "slab {}: ok", c.name())?,
            Err(what) => writeln!(f, "slab {}: CORRUPT: {what}", c.name())?,
        }
    }
    for (z, v) in shared.reclaim.validate().iter().enumerate() {
        match v {
            Ok(()) => writeln!(f, "lru {}: ok", zone::NAMES[z])?,
            Err(what) => writeln!(f, "lru {}: CORRUPT: {what}", zone::NAMES[z])?,
        }
    }
    for (z, v) in verdicts(shared).iter().enumerate() {
        match v {
            Some(Ok(blocks)) => writeln!(f, "{}: ok, {blocks} blocks", zone::NAMES[z])?,
            Some(Err(c)) => writeln!(
                f,
                "{}: CORRUPT at page {}: {}",
                zone::NAMES[z],
                c.index,
                c.what
            )?,
            None => {}
        }
    }
    Ok(())
}

/// Reading `minimm/bench`.
fn bench_show(b: &Bench, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let results = *b.results.lock();
    bench::show(&results, f)
}

/// Writing `run [ITERATIONS]` to `minimm/bench` (default 20000; see `bench.rs`).
fn bench_run(b: &Bench, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    let text = read_text(reader, &mut buf)?;
    let mut words = text.split_whitespace();
    if words.next() != Some("run") {
        return Err(EINVAL);
    }
    let n: u64 = match words.next() {
        Some(w) => w.parse().map_err(|_| EINVAL)?,
        None => 20_000,
    };
    if n == 0 || n > 1_000_000 || words.next().is_some() {
        return Err(EINVAL);
    }
    let report = bench::run(&b.shared, n)?;
    *b.results.lock() = Some(report);
    Ok(())
}

/// Writing `1` to `minimm/drain_pcp`.
fn drain_pcp(shared: &Arc<Shared>, reader: &mut UserSliceReader) -> Result {
    read_one(reader)?;
    shared.pool.drain();
    Ok(())
}

/// Writing `N` to `minimm/reclaim` (as cgroup v2's `memory.reclaim`): reclaims, source by
/// source (`reclaim.rs`), until N pages came back; `EAGAIN` if every source together gave
/// fewer, `EINVAL` for anything but a number from 1 up.
fn reclaim(shared: &Arc<Shared>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 128];
    let target: usize = read_text(reader, &mut buf)?.parse().map_err(|_| EINVAL)?;
    if target == 0 {
        return Err(EINVAL);
    }
    let freed = crate::reclaim::reclaim(
        shared,
        target,
        crate::reclaim::ALL_ZONES,
        crate::reclaim::Who::Direct,
    );
    shared.reclaim.note_levels();
    *shared.reclaim.last.lock() = Some(freed);
    if freed.total() < target {
        return Err(EAGAIN);
    }
    Ok(())
}

/// Reading `minimm/reclaim`: what the last write gave back, by source.
fn reclaim_show(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match *shared.reclaim.last.lock() {
        None => writeln!(f, "no reclaim yet: write N to reclaim N pages"),
        Some(r) => writeln!(
            f,
            "pcp {} slab {} held {} purged {}",
            r.pcp, r.slab, r.held, r.purged
        ),
    }
}

/// Writing `1` to `minimm/validate`.
fn validate_write(shared: &Arc<Shared>, reader: &mut UserSliceReader) -> Result {
    read_one(reader)?;
    let mut ok = true;
    for (z, v) in verdicts(shared).iter().enumerate() {
        match v {
            Some(Ok(blocks)) => pr_info!("validate: {}: ok, {blocks} blocks\n", zone::NAMES[z]),
            Some(Err(c)) => {
                ok = false;
                pr_err!(
                    "validate: {}: CORRUPT at page {}: {}\n",
                    zone::NAMES[z],
                    c.index,
                    c.what
                );
            }
            None => {}
        }
    }
    for (z, v) in shared.reclaim.validate().iter().enumerate() {
        if let Err(what) = v {
            ok = false;
            pr_err!("validate: lru {}: CORRUPT: {what}\n", zone::NAMES[z]);
        }
    }
    // The caches' verdicts are logged only when broken: there are dozens.
    for (c, v) in slab_verdicts(shared).iter() {
        if let Err(what) = v {
            ok = false;
            pr_err!("validate: slab {}: CORRUPT: {what}\n", c.name());
        }
    }
    // A broken allocator invariant is a kernel bug: say so loudly.
    kernel::warn_on!(!ok);
    if ok {
        Ok(())
    } else {
        Err(EUCLEAN)
    }
}

/// The files of `slab/<cache>/`, removed when dropped.
// The files are only held, for their removal on drop.
#[expect(dead_code)]
pub(crate) struct CacheFiles {
    dir: Dir,
    files: KVec<File<Arc<SlabCache>>>,
}

type CacheShow = fn(&Arc<SlabCache>, &mut fmt::Formatter<'_>) -> fmt::Result;

/// A number per CPU, summed first, as SLUB's statistics files print them: `N C0=n C1=n`.
fn per_cpu(f: &mut fmt::Formatter<'_>, values: &[u64]) -> fmt::Result {
    write!(f, "{}", values.iter().sum::<u64>())?;
    for (cpu, v) in values.iter().enumerate() {
        if *v != 0 {
            write!(f, " C{cpu}={v}")?;
        }
    }
    writeln!(f)
}

/// Creates `slab/<cache>/` in `parent` and its files.
///
/// Context: process context, may sleep.
pub(crate) fn cache_files(parent: &Dir, cache: &Arc<SlabCache>) -> Result<CacheFiles> {
    let name = CString::try_from_fmt(fmt!("{}", cache.name()))?;
    let dir = parent.subdir(&name)?;
    let read: [(&CStr, CacheShow); 20] = [
        (c"object_size", |c, f| {
            writeln!(f, "{}", c.geometry().object_size)
        }),
        (c"slab_size", |c, f| writeln!(f, "{}", c.geometry().slot)),
        (c"align", |c, f| writeln!(f, "{}", c.geometry().align)),
        (c"objs_per_slab", |c, f| {
            writeln!(f, "{}", c.geometry().objects)
        }),
        (c"order", |c, f| writeln!(f, "{}", c.geometry().order)),
        (c"objects", |c, f| writeln!(f, "{}", c.stats().allocated)),
        (c"objects_partial", |c, f| {
            writeln!(f, "{}", c.partial_objects())
        }),
        (c"total_objects", |c, f| {
            writeln!(f, "{}", c.stats().num_objs)
        }),
        (c"partial", |c, f| writeln!(f, "{}", c.stats().partial)),
        (c"cpu_slabs", |c, f| per_cpu(f, &c.per_cpu(|a| a.0)?)),
        (c"alloc_fastpath", |c, f| per_cpu(f, &c.per_cpu(|a| a.1)?)),
        (c"free_fastpath", |c, f| per_cpu(f, &c.per_cpu(|a| a.2)?)),
        (c"alloc_slowpath", |c, f| {
            writeln!(f, "{}", c.stats().alloc_slow)
        }),
        (c"free_slowpath", |c, f| {
            writeln!(f, "{}", c.stats().free_slow)
        }),
        (c"sanity_checks", |c, f| {
            flag(f, c, uapi::slab_flags::CONSISTENCY_CHECKS)
        }),
        (c"red_zone", |c, f| flag(f, c, uapi::slab_flags::RED_ZONE)),
        (c"poison", |c, f| flag(f, c, uapi::slab_flags::POISON)),
        (c"store_user", |c, f| {
            flag(f, c, uapi::slab_flags::STORE_USER)
        }),
        (c"alloc_traces", |c, f| {
            if c.flags() & uapi::slab_flags::STORE_USER == 0 {
                return writeln!(f, "# no owner tracking: store_user is 0");
            }
            writeln!(f, "# <count> allocated|freed pid=<pid> comm=<comm>")?;
            c.write_traces(f).map_err(|_| fmt::Error)
        }),
        (c"debug_errors", |c, f| writeln!(f, "{}", c.stats().errors)),
    ];
    let mut files = KVec::with_capacity(read.len() + 3, GFP_KERNEL)?;
    for (file, show) in read {
        files.push(dir.read_file(file, cache.clone(), show)?, GFP_KERNEL)?;
    }
    files.push(
        dir.read_write_file(
            c"min_partial",
            cache.clone(),
            |c, f| writeln!(f, "{}", c.min_partial()),
            |c, reader| {
                let mut buf = [0u8; 128];
                let n: usize = read_text(reader, &mut buf)?.parse().map_err(|_| EINVAL)?;
                c.set_min_partial(n);
                Ok(())
            },
        )?,
        GFP_KERNEL,
    )?;
    files.push(
        dir.write_file(c"validate", cache.clone(), |c, reader| {
            read_one(reader)?;
            // Silent when sound, as SLUB's `validate`: only a broken cache is logged.
            match c.validate() {
                Ok(()) => Ok(()),
                Err(what) => {
                    pr_err!("validate: slab {}: CORRUPT: {what}\n", c.name());
                    kernel::warn_on!(true);
                    Err(EUCLEAN)
                }
            }
        })?,
        GFP_KERNEL,
    )?;
    files.push(
        dir.write_file(c"shrink", cache.clone(), |c, reader| {
            read_one(reader)?;
            c.shrink();
            Ok(())
        })?,
        GFP_KERNEL,
    )?;
    Ok(CacheFiles { dir, files })
}

/// `1` when `cache` has the flag `bit`, as SLUB's boolean attributes.
fn flag(f: &mut fmt::Formatter<'_>, cache: &SlabCache, bit: u32) -> fmt::Result {
    writeln!(f, "{}", u8::from(cache.flags() & bit != 0))
}
