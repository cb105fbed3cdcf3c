// SPDX-License-Identifier: GPL-2.0

//! Page frame reclaim, the kernel side: what gives pool pages back on demand, cheapest first,
//! in the order of issue 13's list (Linux's `drain_all_pages`, `shrink_slab`, then the LRU):
//!
//! 1. the per-CPU page lists, drained into the zones;
//! 2. the slab caches: their per-CPU object arrays flushed and their empty slabs given back
//!    (`kmem_cache_shrink` on every cache, the generic ones included);
//! 3. held blocks (pages once referenced from outside, as by a GUP pin) whose references have
//!    dropped: recycled now rather than by the next round of the reaper.
//!
//! The clock over the inactive and active lists of discardable buffers (`lru.rs`, its pure
//! part), the reclaim thread and direct reclaim are not built yet; debugfs `reclaim` runs
//! these steps when written.

use crate::Shared;

/// The pages each source gave back.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Freed {
    /// From the per-CPU lists.
    pub(crate) pcp: usize,
    /// Empty slabs.
    pub(crate) slab: usize,
    /// Held blocks recycled.
    pub(crate) held: usize,
}

impl Freed {
    /// All pages given back.
    pub(crate) fn total(&self) -> usize {
        self.pcp.saturating_add(self.slab).saturating_add(self.held)
    }
}

/// Gives pages back to the zones' free lists, source by source as above, until `target` pages
/// came back or every source was tried (a source is always tried whole: the counts say what
/// came back).
///
/// Context: process context, may sleep.
pub(crate) fn reclaim(shared: &Shared, target: usize) -> Freed {
    let mut f = Freed {
        pcp: shared.pool.drain(),
        ..Freed::default()
    };
    if f.total() < target {
        // A cache list that cannot be copied (no memory) leaves the slabs alone.
        if let Ok(caches) = shared.caches.all() {
            for c in caches.iter() {
                f.slab = f.slab.saturating_add(c.shrink());
            }
        }
    }
    if f.total() < target {
        f.held = shared.pool.reap_held();
    }
    if f.slab > 0 || f.held > 0 {
        // What the caches and the quarantine gave back went through the per-CPU lists (a
        // free of order 0 to 3 does); drained again, it reaches the zones' free lists, where
        // the watermarks count it. Counted once, above.
        shared.pool.drain();
    }
    f
}
