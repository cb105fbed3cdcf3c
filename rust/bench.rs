// SPDX-License-Identifier: GPL-2.0

//! In-kernel benchmark: minimm's allocator against the host's, in the same kernel and run.
//!
//! Writing `run [ITERATIONS]` to debugfs `minimm/bench` measures, with the monotonic clock:
//!
//! - **pairs**: a loop of allocate-then-free pairs of orders 0, 1, 2, 3 and 9 through minimm's
//!   in-kernel API (`Pool::alloc_raw` / `free_raw`, NORMAL zone, falling back as usual)
//!   against the same loop through the host's `alloc_pages` / `__free_pages`;
//! - **bulk64**: 64 order-0 pages at once, `Pool::alloc_bulk` / `free_bulk` against the host's
//!   `alloc_pages_bulk` and 64 `__free_pages` (the host exports no bulk free to modules);
//! - **scaling**: the order-0 pair loop in kthreads bound to CPU 0 alone, then to CPUs 0 and 1
//!   at once, started together; the aggregate pairs per second, for minimm and for the host;
//! - **cache64/256/1024**: allocate-then-free pairs of objects from a dedicated cache of that
//!   size (`SlabCache::alloc` / `free`) against the host's `kmem_cache_alloc` /
//!   `kmem_cache_free` on a cache of the same size made for the run;
//! - **kmalloc64/256/1024**: the same through the generic caches (`Kmalloc::kmalloc` /
//!   `kfree`) against the host's `__kmalloc` (the out-of-line path a size unknown at compile
//!   time takes) and `kfree`;
//! - **slabbulk16**: 16 objects of 256 bytes at once, `SlabCache::alloc_bulk` / `free_bulk`
//!   against `kmem_cache_alloc_bulk` / `kmem_cache_free_bulk`;
//! - **vm16k/vm1m/vm4m**: create+free of an area of 16 KiB, 1 MiB and 4 MiB
//!   (`Vmalloc::create`, order-0 pages from NORMAL, not zeroed, then dropped) against the
//!   host's `vmalloc` / `vfree` (through the kernel crate's `Vmalloc` allocator);
//! - **reclaim** (no host side: Linux's reclaim cannot be driven from a module): pages purged
//!   per second by direct reclaim (`Reclaim::shrink_lists` over [`RECLAIM_UNITS`] unpinned
//!   order-0 blocks) and by the reclaim thread (woken by ZONE_DMA's watermarks raised above
//!   its free pages, timed until the zone is back at high), and the latency of order-0
//!   allocations from ZONE_DMA, p50 and p99 of [`LATENCY_ALLOCS`], without pressure and with
//!   the zone held at its min watermark over unpinned blocks, so that allocations reclaim
//!   directly. All in ZONE_DMA, which has nothing below it to fall back to; the purges count
//!   in vmstat like any others.
//!
//! Every row runs [`ROUNDS`] rounds after a warm-up; a round times minimm and the host once
//! each, minimm first in even rounds and the host first in odd ones, so that a busy moment of
//! the machine falls on both sides alike. A row reports the median of the rounds (ns per pair
//! or per batch, and the ratio minimm / host of each round) and the spread of the ratio.
//! Reading the file prints the last report. Nothing asserts on time.
//!
//! Numbers are only comparable within one run: run it on the non-debug `bench` kernel flavour
//! (`make bench`), since DEBUG_PAGEALLOC, lockdep and friends slow the two sides unevenly.

use core::{ffi::c_void, fmt, ptr::NonNull};

use kernel::{
    bindings,
    error::from_err_ptr,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc, Completion,
    },
    time::{Instant, Monotonic},
};

use crate::{
    pool::{Pool, RawBlock},
    slab_cache::{Config, Gfp, SlabCache},
    zone::{self, Reserve},
    Shared,
};

/// Orders of the pair rows.
pub(crate) const ORDERS: [u32; 5] = [0, 1, 2, 3, 9];
/// Pages a bulk call moves.
pub(crate) const BULK: usize = 64;
/// Rounds a row is measured in.
pub(crate) const ROUNDS: usize = 5;
/// Object sizes of the slab rows.
pub(crate) const SLAB_SIZES: [usize; 3] = [64, 256, 1024];
/// Objects a slab bulk call moves.
pub(crate) const SLAB_BULK: usize = 16;
/// Area sizes of the vmalloc rows, in pages (16 KiB, 1 MiB, 4 MiB).
pub(crate) const VM_PAGES: [usize; 3] = [4, 256, 1024];
/// Rows: the pair orders, bulk, the dedicated-cache and generic pairs, slab bulk, vmalloc.
const NR_ROWS: usize = ORDERS.len() + 1 + 2 * SLAB_SIZES.len() + 1 + VM_PAGES.len();
/// CPUs the scaling rows run on: 1, then 2.
const SCALING_CPUS: [u32; 2] = [1, 2];
/// Unpinned blocks a reclaim round works on.
pub(crate) const RECLAIM_UNITS: usize = 128;
/// Allocations a latency row times.
pub(crate) const LATENCY_ALLOCS: usize = 64;

/// The reclaim rows (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReclaimRows {
    /// Pages purged per second, median, lowest and highest of the rounds: by direct reclaim,
    /// by the thread.
    pub(crate) direct_per_s: [u64; 3],
    pub(crate) kswapd_per_s: [u64; 3],
    /// Order-0 allocation latency in ns, p50 and p99: without pressure, with it.
    pub(crate) idle: [u64; 2],
    pub(crate) pressure: [u64; 2],
}

/// What a row measures.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Case {
    /// Allocate+free pairs of one order.
    Pair(u32),
    /// Allocating [`BULK`] order-0 pages at once, then freeing them at once.
    Bulk,
    /// Allocate+free pairs of objects of a dedicated cache of this size.
    Cache(usize),
    /// Allocate+free pairs of `kmalloc` objects of this size.
    Kmalloc(usize),
    /// [`SLAB_BULK`] objects of 256 bytes at once, then freed at once.
    SlabBulk,
    /// Create+free of an area of this many pages.
    Vmalloc(usize),
}

/// One row: medians over the rounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row {
    pub(crate) case: Case,
    /// Pairs (or batches) per round and side.
    pub(crate) iterations: u64,
    /// Median ns per pair (or batch).
    pub(crate) minimm_ns: u64,
    pub(crate) host_ns: u64,
    /// The rounds' ratios minimm / host, in thousandths: median, lowest, highest.
    pub(crate) ratio: [u64; 3],
}

/// One scaling row: aggregate order-0 pairs per second on `cpus` CPUs at once: the median,
/// lowest and highest of the rounds, for minimm and for the host.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scaling {
    pub(crate) cpus: u32,
    pub(crate) iterations: u64,
    pub(crate) minimm_per_s: [u64; 3],
    pub(crate) host_per_s: [u64; 3],
}

/// The last run's report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Report {
    pub(crate) rows: [Option<Row>; NR_ROWS],
    pub(crate) scaling: [Option<Scaling>; SCALING_CPUS.len()],
    /// Why the scaling rows are missing, if they are.
    pub(crate) scaling_skipped: Option<&'static str>,
    /// The order-0 fast path's parts, ns each (medians): see [`Profile`].
    pub(crate) profile: Profile,
    /// The reclaim rows, or why they are missing.
    pub(crate) reclaim: core::result::Result<ReclaimRows, &'static str>,
}

/// Where an order-0 pair's time goes, measured apart in the same run (medians of
/// [`ROUNDS`]): TCG has no performance counters for `perf`, so the parts are timed alone.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Profile {
    /// The timing loop itself, per iteration.
    pub(crate) loop_ns: u64,
    /// Reading the CPU id (`raw_smp_processor_id`: one `%gs`-relative load, inline).
    pub(crate) cpu_id_ns: u64,
    /// Taking and releasing this CPU's list lock (inline on the bench kernel: see
    /// `pool/pcp_lock.rs`), the CPU id apart.
    pub(crate) lock_ns: u64,
    /// That with a pop and a push of a page on the list, the CPU id apart.
    pub(crate) lock_pop_push_ns: u64,
}

/// Runs every row with `iterations` pairs a round (order 9 a tenth, bulk a sixteenth).
///
/// Context: process context, may sleep; starts and stops kthreads.
pub(crate) fn run(shared: &Shared, iterations: u64) -> Result<Report> {
    let pool = &*shared.pool;
    let n = iterations.max(1);
    let mut rows = [None; NR_ROWS];
    for (slot, &order) in rows.iter_mut().zip(ORDERS.iter()) {
        let k = if order >= 9 { (n / 10).max(1) } else { n };
        *slot = Some(measure(
            Case::Pair(order),
            k,
            |k| minimm_pairs(pool, order, k),
            |k| host_pairs(order, k),
        )?);
    }
    let k = (n / 16).max(1);
    rows[ORDERS.len()] = Some(measure(Case::Bulk, k, |k| minimm_bulk(pool, k), host_bulk)?);
    let mut next = ORDERS.len() + 1;
    for size in SLAB_SIZES {
        let (mine, host) = (BenchCache::new(shared, size)?, HostCache::new(size)?);
        if let Some(slot) = rows.get_mut(next) {
            *slot = Some(measure(
                Case::Cache(size),
                n,
                |k| cache_pairs(&mine.0, k),
                |k| host_cache_pairs(&host, k),
            )?);
        }
        if let Some(slot) = rows.get_mut(next + 1) {
            *slot = Some(measure(
                Case::Kmalloc(size),
                n,
                |k| kmalloc_pairs(shared, size, k),
                |k| host_kmalloc_pairs(size, k),
            )?);
        }
        next += 2;
        // What the run took into the generic cache goes back (empty slabs only).
        if let Some(c) = shared.kmalloc.cache_for(size, false) {
            c.shrink();
        }
        if size == 256 {
            if let Some(slot) = rows.get_mut(ORDERS.len() + 1 + 2 * SLAB_SIZES.len()) {
                *slot = Some(measure(
                    Case::SlabBulk,
                    k,
                    |k| cache_bulk(&mine.0, k),
                    |k| host_cache_bulk(&host, k),
                )?);
            }
        }
    }
    let first_vm = ORDERS.len() + 1 + 2 * SLAB_SIZES.len() + 1;
    for (i, &pages) in VM_PAGES.iter().enumerate() {
        // A 4 MiB pair costs about what a thousand page pairs do.
        let k = (n / (pages as u64 * 4)).max(1);
        if let Some(slot) = rows.get_mut(first_vm + i) {
            *slot = Some(measure(
                Case::Vmalloc(pages),
                k,
                |k| vm_pairs(shared, pages, k),
                |k| host_vm_pairs(pages, k),
            )?);
        }
    }
    let mut scaling = [None; SCALING_CPUS.len()];
    let online = |cpu: u32| {
        // SAFETY: `__cpu_online_mask` is a valid cpumask for the kernel's lifetime; reading a
        // bit of it is what `cpu_online` does.
        unsafe { bindings::cpumask_test_cpu(cpu as i32, &raw mut bindings::__cpu_online_mask) }
    };
    let scaling_skipped = if (0..2).all(online) {
        for (slot, &cpus) in scaling.iter_mut().zip(SCALING_CPUS.iter()) {
            *slot = Some(scale(pool, cpus, n)?);
        }
        None
    } else {
        Some("CPUs 0 and 1 are not both online")
    };
    Ok(Report {
        rows,
        scaling,
        scaling_skipped,
        profile: profile(pool, n)?,
        reclaim: reclaim_rows(shared),
    })
}

/// Discardable blocks made in the kernel for the reclaim rows (no buffer, no mapping: offset 0,
/// never zapped); dropping the value takes them off the lists, and their pages, if not
/// purged, go back to the pool.
struct Units(KVec<Arc<crate::reclaim::Unit>>);

impl Drop for Units {
    fn drop(&mut self) {
        for u in self.0.iter() {
            u.release();
        }
    }
}

/// [`RECLAIM_UNITS`] unpinned order-0 discardable blocks of ZONE_DMA.
fn unpinned_units(shared: &Shared) -> Result<Units> {
    let mut units = Units(KVec::with_capacity(RECLAIM_UNITS, GFP_KERNEL)?);
    for _ in 0..RECLAIM_UNITS {
        let b = shared.pool.alloc(0, zone::DMA, Reserve::Normal)?;
        let u = crate::reclaim::Unit::new(b, 0, zone::DMA, &shared.reclaim)?;
        units.0.push(u.clone(), GFP_KERNEL)?;
        u.unpin()?;
    }
    Ok(units)
}

/// A zone's watermarks, put back when dropped.
struct Marks<'a> {
    zone: &'a crate::pool::Zone,
    old: zone::Watermarks,
}

impl<'a> Marks<'a> {
    /// Sets `zone`'s marks to `new` until the value drops.
    fn set(zone: &'a crate::pool::Zone, new: zone::Watermarks) -> Result<Self> {
        let old = zone.snapshot().wmark;
        zone.set_watermarks(new)?;
        Ok(Self { zone, old })
    }
}

impl Drop for Marks<'_> {
    fn drop(&mut self) {
        // The marks were valid when read, and the zone's size does not change.
        let _ = self.zone.set_watermarks(self.old);
    }
}

/// Pages per second from `pages` in `ns`.
fn per_s(pages: u64, ns: u64) -> u64 {
    pages.saturating_mul(1_000_000_000) / ns.max(1)
}

/// Waits (bounded, 5 s) until the reclaim thread sleeps again: it may still hold a unit it set
/// aside, and with it the unit's pages, so that the run leaves the pool as it found it.
fn wait_kswapd_asleep(shared: &Shared) {
    let t = Instant::<Monotonic>::now();
    while !shared.reclaim.kswapd.asleep() && t.elapsed().as_millis() < 5000 {
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1));
    }
}

/// The reclaim rows (see the module documentation), or why not: a failure here (no memory for
/// the blocks, say) leaves the other rows' report.
fn reclaim_rows(shared: &Shared) -> core::result::Result<ReclaimRows, &'static str> {
    let Some(dma) = shared.pool.zone(zone::DMA) else {
        return Err("no ZONE_DMA");
    };
    if dma.managed() < 4 * RECLAIM_UNITS {
        return Err("ZONE_DMA too small");
    }
    let rows = reclaim_rows_in(shared, dma);
    wait_kswapd_asleep(shared);
    rows.map_err(|_| "a reclaim row failed (ENOMEM or a bad watermark)")
}

fn reclaim_rows_in(shared: &Shared, dma: &crate::pool::Zone) -> Result<ReclaimRows> {
    let mut direct = [0u64; ROUNDS];
    let mut kswapd = [0u64; ROUNDS];
    for round in 0..ROUNDS {
        let units = unpinned_units(shared)?;
        let t = Instant::<Monotonic>::now();
        let purged = shared.reclaim.shrink_lists(
            RECLAIM_UNITS,
            crate::reclaim::up_to(zone::DMA),
            crate::reclaim::Who::Direct,
        );
        direct[round] = per_s(purged as u64, since(t));
        drop(units);
        let units = unpinned_units(shared)?;
        shared.pool.drain();
        let s = dma.snapshot();
        let high = (s.free + RECLAIM_UNITS / 2).min(dma.managed());
        let stolen = shared.reclaim.counters.pgsteal_kswapd.load(Relaxed);
        let t = Instant::<Monotonic>::now();
        let marks = Marks::set(
            dma,
            zone::Watermarks {
                min: s.wmark.min.min(high),
                low: high,
                high,
            },
        )?;
        shared.reclaim.wake_if_low();
        // Until the zone is back at high (bounded: 5 s).
        while !shared.pool.balanced() && t.elapsed().as_millis() < 5000 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_micros(200));
        }
        let ns = since(t);
        let got = shared.reclaim.counters.pgsteal_kswapd.load(Relaxed) - stolen;
        kswapd[round] = per_s(got, ns);
        drop(marks);
        drop(units);
        wait_kswapd_asleep(shared);
    }
    let idle = latency(shared, false)?;
    let pressure = latency(shared, true)?;
    let spread = |v: &mut [u64; ROUNDS]| {
        let m = median(v);
        [m, v[0], v[ROUNDS - 1]]
    };
    Ok(ReclaimRows {
        direct_per_s: spread(&mut direct),
        kswapd_per_s: spread(&mut kswapd),
        idle,
        pressure,
    })
}

/// p50 and p99 ns of [`LATENCY_ALLOCS`] order-0 allocations from ZONE_DMA, kept until all are
/// done; under `pressure`, with the zone's watermarks all at its free pages and unpinned
/// blocks to reclaim, through direct reclaim as an `ALLOC` would.
fn latency(shared: &Shared, pressure: bool) -> Result<[u64; 2]> {
    let dma = shared.pool.zone(zone::DMA).ok_or(EINVAL)?;
    let units = if pressure {
        Some(unpinned_units(shared)?)
    } else {
        None
    };
    shared.pool.drain();
    let marks = if pressure {
        let free = dma.snapshot().free;
        Some(Marks::set(
            dma,
            zone::Watermarks {
                min: free,
                low: free,
                high: free,
            },
        )?)
    } else {
        None
    };
    let mut ns = KVec::with_capacity(LATENCY_ALLOCS, GFP_KERNEL)?;
    let mut blocks = KVec::with_capacity(LATENCY_ALLOCS, GFP_KERNEL)?;
    let mut failed = None;
    for _ in 0..LATENCY_ALLOCS {
        let t = Instant::<Monotonic>::now();
        let r = crate::reclaim::with_direct_reclaim(shared, zone::DMA, 1, true, || {
            shared.pool.alloc_raw(0, zone::DMA, Reserve::Normal)
        });
        let took = since(t);
        match r {
            Ok(b) => {
                let _ = ns.push(took, GFP_KERNEL);
                if let Err(e) = blocks.push_within_capacity(b) {
                    shared.pool.free_raw(e.0);
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    for b in blocks.drain_all() {
        shared.pool.free_raw(b);
    }
    drop(marks);
    drop(units);
    if let Some(e) = failed {
        return Err(e);
    }
    ns.sort_unstable();
    let at = |q: usize| {
        ns.get((ns.len() * q / 100).min(ns.len().saturating_sub(1)))
            .copied()
    };
    Ok([at(50).unwrap_or(0), at(99).unwrap_or(0)])
}

/// The order-0 fast path's parts (see [`Profile`]), on the lists of the zone that serves the
/// pair rows, with one page on this CPU's list (a pair leaves it there; should the thread move
/// to another CPU meanwhile, `lock+pop+push` finds that CPU's list and may time the lock
/// alone).
fn profile(pool: &Pool, k: u64) -> Result<Profile> {
    let block = pool.alloc_raw(0, zone::NORMAL, Reserve::Normal)?;
    let zone = pool.zone(block.zone()).ok_or(EINVAL)?;
    pool.free_raw(block);
    let mut parts = [[0u64; ROUNDS]; 4];
    for round in 0..ROUNDS {
        let t = zone.time_fast_path_parts(k);
        for (p, ns) in parts.iter_mut().zip(t) {
            p[round] = ns;
        }
    }
    let [a, b, c, d] = parts.map(|mut p| median(&mut p).checked_div(k).unwrap_or(0));
    // Each part after the first includes the ones before it: the loop, then the CPU id, which
    // the lock's part reads to find this CPU's lists.
    Ok(Profile {
        loop_ns: a,
        cpu_id_ns: b.saturating_sub(a),
        lock_ns: c.saturating_sub(b),
        lock_pop_push_ns: d.saturating_sub(b),
    })
}

/// The median of `v`, sorting it.
fn median(v: &mut [u64; ROUNDS]) -> u64 {
    v.sort_unstable();
    v[ROUNDS / 2]
}

/// Measures one row: `minimm(k)` and `host(k)` give the ns `k` pairs (or batches) took.
fn measure(
    case: Case,
    k: u64,
    mut minimm: impl FnMut(u64) -> Result<u64>,
    mut host: impl FnMut(u64) -> Result<u64>,
) -> Result<Row> {
    // Warm both paths (per-CPU lists, caches) before timing.
    minimm(k.min(64))?;
    host(k.min(64))?;
    let (mut m, mut h, mut r) = ([0u64; ROUNDS], [0u64; ROUNDS], [0u64; ROUNDS]);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            m[round] = minimm(k)?;
            h[round] = host(k)?;
        } else {
            h[round] = host(k)?;
            m[round] = minimm(k)?;
        }
        r[round] = m[round].saturating_mul(1000) / h[round].max(1);
    }
    let ratio_median = median(&mut r);
    Ok(Row {
        case,
        iterations: k,
        minimm_ns: median(&mut m).checked_div(k).unwrap_or(0),
        host_ns: median(&mut h).checked_div(k).unwrap_or(0),
        ratio: [ratio_median, r[0], r[ROUNDS - 1]],
    })
}

/// Nanoseconds since `t`.
fn since(t: Instant<Monotonic>) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `k` allocate+free pairs of `order` through minimm; the ns they took.
fn minimm_pairs(pool: &Pool, order: u32, k: u64) -> Result<u64> {
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        pool.free_raw(pool.alloc_raw(order, zone::NORMAL, Reserve::Normal)?);
    }
    Ok(since(t))
}

/// `k` `alloc_pages` + `__free_pages` pairs of `order` on the host; the ns they took.
fn host_pairs(order: u32, k: u64) -> Result<u64> {
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        // SAFETY: `alloc_pages` may be called with GFP_KERNEL from process context.
        let p =
            unsafe { bindings::alloc_pages(bindings::GFP_KERNEL | bindings::__GFP_NOWARN, order) };
        if p.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `p` heads the 2^order pages just allocated, which nobody else has seen.
        unsafe { bindings::__free_pages(p, order) };
    }
    Ok(since(t))
}

/// `k` batches of [`BULK`] pages through minimm's bulk API; the ns they took.
fn minimm_bulk(pool: &Pool, k: u64) -> Result<u64> {
    let mut blocks: [Option<RawBlock>; BULK] = core::array::from_fn(|_| None);
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        let got = pool.alloc_bulk(zone::NORMAL, Reserve::Normal, &mut blocks);
        pool.free_bulk(&mut blocks);
        if got < BULK {
            return Err(ENOMEM);
        }
    }
    Ok(since(t))
}

/// `k` batches of [`BULK`] pages through the host's `alloc_pages_bulk`, each page freed with
/// `__free_pages`; the ns they took.
fn host_bulk(k: u64) -> Result<u64> {
    let mut pages = [core::ptr::null_mut::<bindings::page>(); BULK];
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        // SAFETY: `pages` holds `BULK` null entries for the call to fill; GFP_KERNEL from
        // process context. Node 0 is the preferred node (`numa_mem_id()` on a kernel without
        // NUMA; node 0 exists on every kernel).
        let got = unsafe {
            bindings::alloc_pages_bulk_noprof(
                bindings::GFP_KERNEL,
                0,
                core::ptr::null_mut(),
                BULK as _,
                pages.as_mut_ptr(),
            )
        };
        for p in pages.iter_mut() {
            if !p.is_null() {
                // SAFETY: `*p` is an order-0 page the bulk call just allocated for us.
                unsafe { bindings::__free_pages(*p, 0) };
                *p = core::ptr::null_mut();
            }
        }
        if got < BULK as _ {
            return Err(ENOMEM);
        }
    }
    Ok(since(t))
}

/// A dedicated minimm cache for the run, destroyed after it.
struct BenchCache<'a>(Arc<SlabCache>, &'a Shared);

impl<'a> BenchCache<'a> {
    fn new(shared: &'a Shared, size: usize) -> Result<Self> {
        let mut name = [0u8; 24];
        let mut w = NameWriter(&mut name, 0);
        fmt::write(&mut w, format_args!("minimm-bench-{size}")).map_err(|_| EINVAL)?;
        let len = w.1;
        let cfg = Config {
            name: name.get(..len).ok_or(EINVAL)?,
            object_size: size,
            align: 0,
            flags: 0,
            ctor_seed: 0,
            record: false,
        };
        Ok(Self(shared.caches.create(&cfg, &shared.pool)?, shared))
    }
}

impl Drop for BenchCache<'_> {
    fn drop(&mut self) {
        self.0.shrink();
        kernel::warn_on!(self.1.caches.destroy(&self.0).is_err());
    }
}

/// Formats into a byte array (a cache name).
struct NameWriter<'a>(&'a mut [u8], usize);

impl fmt::Write for NameWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let to = self.0.get_mut(self.1..self.1 + s.len()).ok_or(fmt::Error)?;
        to.copy_from_slice(s.as_bytes());
        self.1 += s.len();
        Ok(())
    }
}

/// A host cache for the run (`kmem_cache_create`), destroyed after it.
///
/// # Invariants
///
/// `self.0` is a live cache made by `__kmem_cache_create_args`, destroyed only on drop.
struct HostCache(NonNull<bindings::kmem_cache>);

impl HostCache {
    fn new(size: usize) -> Result<Self> {
        let name: &'static CStr = match size {
            64 => c"minimm_bench_host_64",
            256 => c"minimm_bench_host_256",
            _ => c"minimm_bench_host_1024",
        };
        let mut args: bindings::kmem_cache_args = Default::default();
        // SAFETY: `name` is a static NUL-terminated string (the kernel copies it), `args` a
        // valid, zeroed argument block; process context.
        let s = unsafe {
            bindings::__kmem_cache_create_args(
                name.as_char_ptr(),
                u32::try_from(size).map_err(|_| EINVAL)?,
                &mut args,
                0,
            )
        };
        // INVARIANT: a cache just made, ours.
        Ok(Self(NonNull::new(s).ok_or(ENOMEM)?))
    }
}

impl Drop for HostCache {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the cache is live and ours; every object of the run
        // was freed.
        unsafe { bindings::kmem_cache_destroy(self.0.as_ptr()) };
    }
}

/// `k` allocate+free pairs from a minimm cache; the ns they took.
fn cache_pairs(c: &SlabCache, k: u64) -> Result<u64> {
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        c.free(c.alloc(Gfp::KERNEL)?)?;
    }
    Ok(since(t))
}

/// `k` `kmem_cache_alloc` + `kmem_cache_free` pairs on the host; the ns they took.
fn host_cache_pairs(c: &HostCache, k: u64) -> Result<u64> {
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        // SAFETY: A live cache (`HostCache`'s invariant); GFP_KERNEL from process context.
        let p = unsafe { bindings::kmem_cache_alloc_noprof(c.0.as_ptr(), bindings::GFP_KERNEL) };
        if p.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `p` was just allocated from this cache.
        unsafe { bindings::kmem_cache_free(c.0.as_ptr(), p) };
    }
    Ok(since(t))
}

/// `k` `kmalloc` + `kfree` pairs of `size` bytes through minimm's generic caches.
fn kmalloc_pairs(shared: &Shared, size: usize, k: u64) -> Result<u64> {
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        let p = shared.kmalloc.kmalloc(size, Gfp::KERNEL, false, false)?;
        shared.kmalloc.kfree(p)?;
    }
    Ok(since(t))
}

/// `k` `__kmalloc` + `kfree` pairs of `size` bytes on the host.
fn host_kmalloc_pairs(size: usize, k: u64) -> Result<u64> {
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        // SAFETY: GFP_KERNEL from process context.
        let p = unsafe { bindings::__kmalloc_noprof(size, bindings::GFP_KERNEL) };
        if p.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `p` was just allocated by `__kmalloc`.
        unsafe { bindings::kfree(p) };
    }
    Ok(since(t))
}

/// `k` create+free pairs of a `pages`-page area through minimm's mapper.
fn vm_pairs(shared: &Shared, pages: usize, k: u64) -> Result<u64> {
    let opts = crate::vmalloc::Options {
        highest: zone::NORMAL,
        class: Reserve::Normal,
        large: false,
        zero: false,
    };
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        drop(shared.vmalloc.create(pages, opts, "bench")?);
    }
    Ok(since(t))
}

/// `k` `vmalloc` + `vfree` pairs of `pages` pages on the host.
fn host_vm_pairs(pages: usize, k: u64) -> Result<u64> {
    use kernel::alloc::{allocator::Vmalloc, Allocator, NumaNode};
    let layout =
        core::alloc::Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).map_err(|_| EINVAL)?;
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        let p = Vmalloc::alloc(layout, GFP_KERNEL, NumaNode::NO_NODE)?;
        // SAFETY: `p` was just allocated by `Vmalloc` with `layout`.
        unsafe { Vmalloc::free(p.cast(), layout) };
    }
    Ok(since(t))
}

/// `k` batches of [`SLAB_BULK`] objects through a minimm cache's bulk calls.
fn cache_bulk(c: &SlabCache, k: u64) -> Result<u64> {
    let mut objs = [0usize; SLAB_BULK];
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        c.alloc_bulk(Gfp::KERNEL, &mut objs)?;
        c.free_bulk(&objs)?;
    }
    Ok(since(t))
}

/// `k` batches of [`SLAB_BULK`] objects through the host's `kmem_cache_alloc_bulk` /
/// `kmem_cache_free_bulk`.
fn host_cache_bulk(c: &HostCache, k: u64) -> Result<u64> {
    let mut objs = [core::ptr::null_mut::<c_void>(); SLAB_BULK];
    let t = Instant::<Monotonic>::now();
    for _ in 0..k {
        // SAFETY: A live cache; `objs` has room for `SLAB_BULK` pointers; GFP_KERNEL from
        // process context.
        let ok = unsafe {
            bindings::kmem_cache_alloc_bulk_noprof(
                c.0.as_ptr(),
                bindings::GFP_KERNEL,
                SLAB_BULK,
                objs.as_mut_ptr(),
            )
        };
        if !ok {
            return Err(ENOMEM);
        }
        // SAFETY: The `SLAB_BULK` objects were just allocated from this cache.
        unsafe { bindings::kmem_cache_free_bulk(c.0.as_ptr(), SLAB_BULK, objs.as_mut_ptr()) };
    }
    Ok(since(t))
}

/// What the lanes of one scaling measurement share.
struct Race<'a> {
    pool: &'a Pool,
    host: bool,
    iterations: u64,
    /// Lanes about to wait for `go`.
    ready: Atomic<u32>,
    /// Completed once every lane waits: they start together.
    go: &'a Completion,
    /// Lanes done.
    finished: Atomic<u32>,
}

/// One kthread's part: its time, or 0 if its loop failed.
struct Lane<'a> {
    race: &'a Race<'a>,
    ns: Atomic<u64>,
}

/// A lane kthread: waits for the start (sleeping, so that the CPU stays free for the
/// controller and the other lane's start), runs the order-0 pair loop, reports.
///
/// # Safety
///
/// `data` points to a [`Lane`] that stays valid until this function has counted itself in
/// `finished`.
unsafe extern "C" fn lane_main(data: *mut c_void) -> i32 {
    // SAFETY: The caller's guarantee: `race_on` keeps the lane alive until `finished` counts it.
    let lane = unsafe { &*data.cast::<Lane<'_>>() };
    let race = lane.race;
    race.ready.fetch_add(1, Release);
    race.go.wait_for_completion();
    let r = if race.host {
        host_pairs(0, race.iterations)
    } else {
        minimm_pairs(race.pool, 0, race.iterations)
    };
    lane.ns.store(r.unwrap_or(0), Relaxed);
    race.finished.fetch_add(1, Release);
    0
}

/// Runs the order-0 loop in kthreads bound to CPUs `0..cpus`, started together; returns the
/// aggregate pairs per second (all lanes' pairs over the slowest lane's time).
fn race_on(pool: &Pool, host: bool, cpus: u32, iterations: u64) -> Result<u64> {
    pin_init::stack_pin_init!(let go = Completion::new());
    let race = Race {
        pool,
        host,
        iterations,
        ready: Atomic::new(0),
        go: &go,
        finished: Atomic::new(0),
    };
    let lanes: [Lane<'_>; SCALING_CPUS.len()] = core::array::from_fn(|_| Lane {
        race: &race,
        ns: Atomic::new(0),
    });
    let mut tasks = [core::ptr::null_mut::<bindings::task_struct>(); SCALING_CPUS.len()];
    let mut started = 0u32;
    let mut failed = None;
    for (cpu, lane) in (0..cpus).zip(lanes.iter()) {
        // SAFETY: `lane_main` matches the thread function type; `lane` outlives the thread's
        // use of it (we wait for `finished` below before returning); the name is a valid C
        // format string taking the CPU number, as `kthread_create_on_cpu` passes it.
        let task = unsafe {
            bindings::kthread_create_on_cpu(
                Some(lane_main),
                core::ptr::from_ref(lane).cast_mut().cast(),
                cpu,
                c"minimm_bench/%u".as_char_ptr(),
            )
        };
        match from_err_ptr(task) {
            Ok(task) => {
                // SAFETY: `task` is a new kthread, not yet woken: our reference keeps its
                // task_struct for `kthread_stop_put` even after the thread function returned.
                unsafe {
                    bindings::get_task_struct(task);
                    bindings::wake_up_process(task);
                }
                if let Some(slot) = tasks.get_mut(started as usize) {
                    *slot = task;
                }
                started += 1;
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let wait_for = |count: &Atomic<u32>| {
        while count.load(Acquire) < started {
            // SAFETY: `msleep` may be called from process context.
            unsafe { bindings::msleep(1) };
        }
    };
    // Every lane counted itself in `ready` just before waiting: a lane woken by
    // `complete_all` before it slept does not wait at all.
    wait_for(&race.ready);
    race.go.complete_all();
    wait_for(&race.finished);
    for task in tasks.iter().take(started as usize) {
        // SAFETY: `task` is a kthread we hold a reference to; its thread function has run to
        // the end (it counted itself in `finished`), so stopping it does not wait for long.
        unsafe { bindings::kthread_stop_put(*task) };
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut slowest = 0u64;
    for lane in lanes.iter().take(started as usize) {
        match lane.ns.load(Relaxed) {
            0 => return Err(ENOMEM),
            ns => slowest = slowest.max(ns),
        }
    }
    let pairs = iterations.saturating_mul(u64::from(started));
    Ok(pairs.saturating_mul(1_000_000_000) / slowest.max(1))
}

/// One scaling row: minimm and the host on `cpus` CPUs, [`ROUNDS`] rounds interleaved.
fn scale(pool: &Pool, cpus: u32, iterations: u64) -> Result<Scaling> {
    race_on(pool, false, cpus, iterations.min(64))?;
    race_on(pool, true, cpus, iterations.min(64))?;
    let (mut m, mut h) = ([0u64; ROUNDS], [0u64; ROUNDS]);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            m[round] = race_on(pool, false, cpus, iterations)?;
            h[round] = race_on(pool, true, cpus, iterations)?;
        } else {
            h[round] = race_on(pool, true, cpus, iterations)?;
            m[round] = race_on(pool, false, cpus, iterations)?;
        }
    }
    let spread = |v: &mut [u64; ROUNDS]| [median(v), v[0], v[ROUNDS - 1]];
    Ok(Scaling {
        cpus,
        iterations,
        minimm_per_s: spread(&mut m),
        host_per_s: spread(&mut h),
    })
}

/// `x` thousandths as `x.xx`.
struct Thousandths(u64);

impl fmt::Display for Thousandths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hundredths = self.0.saturating_add(5) / 10;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

/// Prints `report` as two tables.
pub(crate) fn show(report: &Option<Report>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(report) = report else {
        return writeln!(
            f,
            "no report yet: write `run [ITERATIONS]` to run the benchmark"
        );
    };
    writeln!(
        f,
        "case   iterations minimm_ns host_ns ratio ratio_min ratio_max  ({ROUNDS} rounds, medians)"
    )?;
    for r in report.rows.iter().flatten() {
        match r.case {
            Case::Pair(order) => write!(f, "order{order:<2}")?,
            Case::Bulk => write!(f, "bulk{BULK}")?,
            Case::Cache(size) => write!(f, "cache{size}")?,
            Case::Kmalloc(size) => write!(f, "kmalloc{size}")?,
            Case::SlabBulk => write!(f, "slabbulk{SLAB_BULK}")?,
            Case::Vmalloc(pages) if pages >= 256 => write!(f, "vm{}m", pages / 256)?,
            Case::Vmalloc(pages) => write!(f, "vm{}k", pages * 4)?,
        }
        writeln!(
            f,
            " {:10} {:9} {:7} {:5} {:9} {:9}",
            r.iterations,
            r.minimm_ns,
            r.host_ns,
            Thousandths(r.ratio[0]),
            Thousandths(r.ratio[1]),
            Thousandths(r.ratio[2]),
        )?;
    }
    let p = report.profile;
    writeln!(
        f,
        "order0 fast path parts, ns: loop {} cpu_id {} lock+unlock {} lock+pop+push+unlock {}",
        p.loop_ns, p.cpu_id_ns, p.lock_ns, p.lock_pop_push_ns
    )?;
    match &report.reclaim {
        Err(why) => writeln!(f, "reclaim skipped: {why}")?,
        Ok(r) => {
            let [d, d0, d1] = r.direct_per_s;
            let [k, k0, k1] = r.kswapd_per_s;
            writeln!(
                f,
                "reclaim_direct pages_per_s {d} ({d0} {d1}), {RECLAIM_UNITS} unpinned blocks"
            )?;
            writeln!(f, "reclaim_kswapd pages_per_s {k} ({k0} {k1})")?;
            writeln!(
                f,
                "alloc_latency_idle p50_ns {} p99_ns {} ({LATENCY_ALLOCS} order-0 allocations)",
                r.idle[0], r.idle[1]
            )?;
            writeln!(
                f,
                "alloc_latency_pressure p50_ns {} p99_ns {}",
                r.pressure[0], r.pressure[1]
            )?;
        }
    }
    if let Some(why) = report.scaling_skipped {
        return writeln!(f, "scaling skipped: {why}");
    }
    writeln!(
        f,
        "cpus iterations minimm_pairs_per_s (min max) host_pairs_per_s (min max)"
    )?;
    for s in report.scaling.iter().flatten() {
        let [m, m0, m1] = s.minimm_per_s;
        let [h, h0, h1] = s.host_per_s;
        writeln!(
            f,
            "{:4} {:10} {m:9} ({m0} {m1}) {h:9} ({h0} {h1})",
            s.cpus, s.iterations
        )?;
    }
    if let [Some(one), Some(two)] = report.scaling {
        let x = |a: u64, b: u64| Thousandths(b.saturating_mul(1000) / a.max(1));
        writeln!(
            f,
            "scaling 2/1 cpus (medians): minimm {} host {}",
            x(one.minimm_per_s[0], two.minimm_per_s[0]),
            x(one.host_per_s[0], two.host_per_s[0])
        )?;
    }
    Ok(())
}
