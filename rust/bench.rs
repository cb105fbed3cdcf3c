// SPDX-License-Identifier: GPL-2.0

//! In-kernel benchmark: minimm's allocator against the host's, in the same kernel and run.
//!
//! Writing `run [ITERATIONS]` to debugfs `minimm/bench` times, for orders 0, 3 and 9, a loop of
//! allocate-then-free pairs through minimm's in-kernel API (`Pool::alloc_raw` / `free_raw`,
//! NORMAL zone, falling back as usual) and the same loop through the host's `alloc_pages` /
//! `__free_pages`, with the monotonic clock.
//! Reading the file prints the last results as a table with the ratio minimm / host.
//!
//! Numbers are only comparable within one run: run it on the non-debug `bench` kernel flavour
//! (`make bench`), since DEBUG_PAGEALLOC, lockdep and friends slow the two sides unevenly.

use core::fmt;

use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
};

use crate::{pool::Pool, zone};

/// Orders the benchmark runs.
pub(crate) const ORDERS: [u32; 3] = [0, 3, 9];

/// One order's result, in nanoseconds per allocate+free pair.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OrderResult {
    pub(crate) order: u32,
    pub(crate) iterations: u64,
    pub(crate) minimm_ns: u64,
    pub(crate) host_ns: u64,
}

/// The last run's results.
pub(crate) type Results = [Option<OrderResult>; ORDERS.len()];

/// Times `iterations` allocate+free pairs of `order` on both allocators.
///
/// Context: process context, may sleep; takes zone and per-CPU locks for each pair.
pub(crate) fn run(pool: &Arc<Pool>, order: u32, iterations: u64) -> Result<OrderResult> {
    let n = iterations.max(1);
    // Warm both paths (per-CPU lists, caches) before timing.
    for _ in 0..64 {
        pool.free_raw(pool.alloc_raw(order, zone::NORMAL, zone::Reserve::Normal)?);
        host_pair(order)?;
    }
    let t = Instant::<Monotonic>::now();
    for _ in 0..n {
        pool.free_raw(pool.alloc_raw(order, zone::NORMAL, zone::Reserve::Normal)?);
    }
    let minimm = t.elapsed().as_nanos() as u64;
    let t = Instant::<Monotonic>::now();
    for _ in 0..n {
        host_pair(order)?;
    }
    let host = t.elapsed().as_nanos() as u64;
    Ok(OrderResult {
        order,
        iterations: n,
        minimm_ns: minimm / n,
        host_ns: host / n,
    })
}

/// One `alloc_pages` + `__free_pages` pair on the host.
fn host_pair(order: u32) -> Result {
    // SAFETY: `alloc_pages` may be called with GFP_KERNEL from process context.
    let p = unsafe { bindings::alloc_pages(bindings::GFP_KERNEL | bindings::__GFP_NOWARN, order) };
    if p.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `p` heads the 2^order pages just allocated, which nobody else has seen.
    unsafe { bindings::__free_pages(p, order) };
    Ok(())
}

/// Prints `results` as a table.
pub(crate) fn show(results: &Results, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "order iterations minimm_ns host_ns ratio")?;
    for r in results.iter().flatten() {
        // The ratio with two decimals, in integers.
        let hundredths = (r.minimm_ns * 100).checked_div(r.host_ns).unwrap_or(0);
        writeln!(
            f,
            "{:5} {:10} {:9} {:7} {}.{:02}",
            r.order,
            r.iterations,
            r.minimm_ns,
            r.host_ns,
            hundredths / 100,
            hundredths % 100
        )?;
    }
    Ok(())
}
