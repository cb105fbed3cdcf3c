// SPDX-License-Identifier: GPL-2.0

//! Zones: classification by physical address, watermarks, lowmem reserves and the
//! fragmentation indices, as Linux computes them.
//!
//! Pure: integers in, integers out; the kernel side (`pool/zone.rs`) applies them under the zone
//! locks. The formulas follow mm/page_alloc.c (`__setup_per_zone_wmarks`,
//! `setup_per_zone_lowmem_reserve`, `__zone_watermark_ok`, `calculate_min_free_kbytes`) and
//! mm/vmstat.c (`unusable_free_index`, `__fragmentation_index`), applied to minimm's pool
//! instead of the whole machine.

use crate::buddy::NR_ORDERS;

/// Zone indices, as in the uapi (`MINIMM_ZONE_*`).
pub(crate) const DMA: usize = 0;
pub(crate) const DMA32: usize = 1;
pub(crate) const NORMAL: usize = 2;
pub(crate) const NR_ZONES: usize = 3;

/// Zone names as /proc/buddyinfo and /proc/zoneinfo print them.
pub(crate) const NAMES: [&str; NR_ZONES] = ["DMA", "DMA32", "Normal"];

/// The end (exclusive) of each zone's physical address range on x86_64.
const ZONE_END: [u64; NR_ZONES] = [16 << 20, 4 << 30, u64::MAX];

/// The zone of a physical range `[start, start + len)`, by the address of its last byte: the
/// whole range must be usable by that zone's users. `None` for an empty or wrapping range.
pub(crate) fn classify(start: u64, len: u64) -> Option<usize> {
    let last = start.checked_add(len.checked_sub(1)?)?;
    ZONE_END.iter().position(|&end| last < end)
}

/// Linux's default `lowmem_reserve_ratio` for DMA, DMA32 and Normal.
pub(crate) const LOWMEM_RESERVE_RATIO: [usize; NR_ZONES] = [256, 256, 32];

/// A zone's free-page watermarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Watermarks {
    pub(crate) min: usize,
    pub(crate) low: usize,
    pub(crate) high: usize,
}

impl Watermarks {
    /// Checks `min <= low <= high <= managed`, as a debugfs write must satisfy.
    pub(crate) fn valid_for(&self, managed: usize) -> bool {
        self.min <= self.low && self.low <= self.high && self.high <= managed
    }
}

/// `calculate_min_free_kbytes`: `sqrt(lowmem_kbytes * 16)`, clamped to [128, 262144] KiB,
/// here for the pool's pages instead of the machine's.
pub(crate) fn min_free_kbytes(pool_pages: usize, page_kib: usize) -> usize {
    let kib = pool_pages.saturating_mul(page_kib);
    isqrt(kib.saturating_mul(16)).clamp(128, 262_144)
}

/// `int_sqrt`: floor(sqrt(n)).
pub(crate) fn isqrt(n: usize) -> usize {
    // Newton's method on integers; exact floor(sqrt(n)).
    if n < 2 {
        return n;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        // `x >= 1` here; `checked_div` keeps a panic path out of the kernel build.
        y = (x + n.checked_div(x).unwrap_or(0)) / 2;
    }
    x
}

/// `__setup_per_zone_wmarks`: each zone's share of `min_free_pages` in proportion to its size,
/// then `low = min + step`, `high = low + step` with
/// `step = max(min / 4, managed * scale_factor / 10000)`.
pub(crate) fn watermarks(
    managed: [usize; NR_ZONES],
    min_free_pages: usize,
    scale_factor: usize,
) -> [Watermarks; NR_ZONES] {
    let total: usize = managed.iter().sum();
    let mut w = [Watermarks::default(); NR_ZONES];
    if total == 0 {
        return w;
    }
    for (z, &m) in managed.iter().enumerate() {
        let min = mult_frac(min_free_pages, m, total);
        let step = (min / 4).max(mult_frac(m, scale_factor, 10_000));
        let low = min.saturating_add(step);
        w[z] = Watermarks {
            min,
            low,
            high: low.saturating_add(step),
        };
    }
    w
}

/// Linux's `mult_frac(x, n, d)`: `x * n / d` without overflowing in `x * n` (no 128-bit
/// division, which the kernel has no helper for). Saturates instead of wrapping.
fn mult_frac(x: usize, n: usize, d: usize) -> usize {
    if d == 0 {
        return 0;
    }
    let (q, r) = (x / d, x % d);
    q.saturating_mul(n).saturating_add(r.saturating_mul(n) / d)
}

/// `setup_per_zone_lowmem_reserve`: `reserve[z][j]` is what zone `z` keeps back from a request
/// whose highest zone is `j > z`: the managed pages of zones `z+1..=j` divided by `z`'s ratio.
/// Requests that may use zone `z` itself (`j == z`) see no reserve.
pub(crate) fn lowmem_reserve(
    managed: [usize; NR_ZONES],
    ratio: [usize; NR_ZONES],
) -> [[usize; NR_ZONES]; NR_ZONES] {
    let mut r = [[0; NR_ZONES]; NR_ZONES];
    for z in 0..NR_ZONES {
        let mut above = 0usize;
        for j in z + 1..NR_ZONES {
            above = above.saturating_add(managed[j]);
            r[z][j] = if ratio[z] == 0 { 0 } else { above / ratio[z] };
        }
    }
    r
}

/// How far below the min watermark a request may dig, as Linux's `ALLOC_MIN_RESERVE` and
/// `ALLOC_NON_BLOCK` in `__zone_watermark_ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// An ordinary request (also `GFP_NOWAIT`-like: not blocking alone buys no reserve):
    /// stops at `min`.
    Normal,
    /// A high-priority request (`__GFP_HIGH`, `MINIMM_ALLOC_ATOMIC`): may use half of the
    /// reserve, down to `min - min / 2`.
    High,
    /// A high-priority request that cannot block either (`GFP_ATOMIC`,
    /// `MINIMM_ALLOC_ATOMIC | MINIMM_ALLOC_NOWAIT`): from there, a quarter more.
    Atomic,
}

impl Reserve {
    /// The mark such a request must stay above, from the zone's `mark`: Linux's
    /// `min -= min / 2`, then `min -= min / 4` for non-blocking requests.
    pub(crate) fn mark(self, mark: i64) -> i64 {
        let mut min = mark;
        if self != Reserve::Normal {
            min -= min / 2;
            if self == Reserve::Atomic {
                min -= min / 4;
            }
        }
        min
    }
}

/// `__zone_watermark_ok`: may a zone with `free` pages and `nr_free` blocks per order give a
/// block of `order`, keeping `mark` (reduced for atomic requests) plus `reserve` free?
pub(crate) fn watermark_ok(
    free: usize,
    nr_free: &[usize; NR_ORDERS],
    order: u32,
    mark: usize,
    class: Reserve,
    reserve: usize,
) -> bool {
    let Some(&_) = nr_free.get(order as usize) else {
        return false;
    };
    // Signed, as Linux's `long`: the free count after the request may go negative.
    let wide = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let free = wide(free) - ((1i64 << order) - 1);
    let min = class.mark(wide(mark));
    if free <= min.saturating_add(wide(reserve)) {
        return false;
    }
    // For a high-order request, a large enough block must exist.
    order == 0 || nr_free[order as usize..].iter().any(|&n| n > 0)
}

/// The part of `fragmentation_index` and `unusable_free_index` inputs: Linux's
/// `struct contig_page_info` for a request of `order`.
struct ContigInfo {
    free_pages: u64,
    free_blocks_total: u64,
    free_blocks_suitable: u64,
}

fn contig_info(nr_free: &[usize; NR_ORDERS], order: u32) -> ContigInfo {
    let mut info = ContigInfo {
        free_pages: 0,
        free_blocks_total: 0,
        free_blocks_suitable: 0,
    };
    for (o, &n) in nr_free.iter().enumerate() {
        let n = n as u64;
        info.free_blocks_total += n;
        info.free_pages += n << o;
        if o as u32 >= order {
            info.free_blocks_suitable += n << (o as u32 - order);
        }
    }
    info
}

/// `unusable_free_index` in thousandths: the share of free memory that cannot serve a request
/// of `order` (0 = all usable, 1000 = none). No free memory at all counts as unusable.
pub(crate) fn unusable_index(nr_free: &[usize; NR_ORDERS], order: u32) -> i64 {
    let info = contig_info(nr_free, order);
    if info.free_pages == 0 {
        return 1000;
    }
    (((info.free_pages - (info.free_blocks_suitable << order)) * 1000) / info.free_pages) as i64
}

/// `__fragmentation_index` in thousandths: for a request of `order` that would fail, near 0
/// means it fails for lack of memory, near 1000 for fragmentation; -1000 when it would
/// succeed; 0 with no free blocks.
pub(crate) fn fragmentation_index(nr_free: &[usize; NR_ORDERS], order: u32) -> i64 {
    let info = contig_info(nr_free, order);
    if info.free_blocks_total == 0 {
        return 0;
    }
    if info.free_blocks_suitable > 0 {
        return -1000;
    }
    let requested = 1u64 << order;
    1000 - ((1000 + info.free_pages * 1000 / requested) / info.free_blocks_total) as i64
}

/// Formats a thousandths value as Linux's debugfs extfrag files do: `"%d.%03d"` of
/// `(v / 1000, v % 1000)`, the integer part at least `.1` wide (`unusable_index` uses 1,
/// `extfrag_index` 2). C's `/` and `%` truncate toward zero as Rust's do, so -1000 prints
/// "-1.000" and -62 prints Linux's own "0.-62".
pub(crate) struct Milli(pub(crate) i64, pub(crate) usize);

impl core::fmt::Display for Milli {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:w$}.{:03}", self.0 / 1000, self.0 % 1000, w = self.1)
    }
}

/// The zones a request whose highest zone is `highest` may use, best first: that zone, then
/// the lower ones (Linux's zonelist order).
pub(crate) fn fallback(highest: usize) -> impl Iterator<Item = usize> {
    (0..=highest.min(NR_ZONES - 1)).rev()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_x86_64_limits() {
        assert_eq!(classify(0, 4096), Some(DMA));
        assert_eq!(classify((16 << 20) - 4096, 4096), Some(DMA));
        assert_eq!(classify(16 << 20, 4096), Some(DMA32));
        // A block straddling 16 MiB is not usable as DMA.
        assert_eq!(classify((16 << 20) - 4096, 8192), Some(DMA32));
        assert_eq!(classify((4 << 30) - (4 << 20), 4 << 20), Some(DMA32));
        assert_eq!(classify(4 << 30, 4096), Some(NORMAL));
        assert_eq!(classify(0, 0), None);
        assert_eq!(classify(u64::MAX, 2), None);
    }

    #[test]
    fn min_free_kbytes_is_linux_sqrt_rule() {
        // 128 MiB pool: sqrt(131072 * 16) = 1448.15.. -> 1448 KiB.
        assert_eq!(min_free_kbytes(32768, 4), 1448);
        // Tiny pools clamp to 128 KiB, huge ones to 256 MiB.
        assert_eq!(min_free_kbytes(16, 4), 128);
        assert_eq!(min_free_kbytes(usize::MAX / 8, 4), 262_144);
        for n in [0usize, 1, 2, 3, 4, 15, 16, 17, 1 << 40] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "isqrt({n}) = {r}");
        }
    }

    #[test]
    fn watermark_values_follow_linux() {
        // 512 + 16384 + 16384 pages, min_free 1448 KiB = 362 pages, scale factor 10.
        let w = watermarks([512, 16384, 16384], 362, 10);
        // DMA: min = 362 * 512 / 33280 = 5; step = max(1, 0) = 1.
        assert_eq!(
            w[DMA],
            Watermarks {
                min: 5,
                low: 6,
                high: 7
            }
        );
        // DMA32: min = 362 * 16384 / 33280 = 178; step = max(44, 16) = 44.
        assert_eq!(
            w[DMA32],
            Watermarks {
                min: 178,
                low: 222,
                high: 266
            }
        );
        assert_eq!(w[NORMAL], w[DMA32]);
        // A large scale factor takes over from min / 4: step = 16384 * 1000 / 10000 = 1638.
        let w = watermarks([0, 16384, 0], 100, 1000);
        assert_eq!(
            w[DMA32],
            Watermarks {
                min: 100,
                low: 1738,
                high: 3376
            }
        );
        assert_eq!(w[DMA], Watermarks::default());
        // Every zone's watermarks fit its own size, the empty zones' too.
        for (z, managed) in [0, 16384, 0].into_iter().enumerate() {
            assert!(w[z].valid_for(managed), "zone {z}: {:?}", w[z]);
        }
        assert_eq!(watermarks([0; 3], 100, 10), [Watermarks::default(); 3]);
    }

    #[test]
    fn watermark_validation() {
        assert!(Watermarks {
            min: 1,
            low: 2,
            high: 3
        }
        .valid_for(3));
        assert!(Watermarks {
            min: 2,
            low: 2,
            high: 2
        }
        .valid_for(2));
        assert!(!Watermarks {
            min: 3,
            low: 2,
            high: 3
        }
        .valid_for(10));
        assert!(!Watermarks {
            min: 1,
            low: 4,
            high: 3
        }
        .valid_for(10));
        assert!(!Watermarks {
            min: 1,
            low: 2,
            high: 11
        }
        .valid_for(10));
    }

    #[test]
    fn mult_frac_does_not_overflow() {
        assert_eq!(mult_frac(10, 3, 4), 7);
        assert_eq!(mult_frac(usize::MAX, 3, 4), usize::MAX / 4 * 3 + 2);
        assert_eq!(mult_frac(5, 5, 0), 0);
    }

    #[test]
    fn lowmem_reserve_follows_linux() {
        let r = lowmem_reserve([512, 16384, 16384], LOWMEM_RESERVE_RATIO);
        assert_eq!(r[DMA], [0, 16384 / 256, 32768 / 256]);
        assert_eq!(r[DMA32], [0, 0, 16384 / 256]);
        assert_eq!(r[NORMAL], [0, 0, 0]);
        assert_eq!(lowmem_reserve([1, 2, 3], [0, 0, 0]), [[0; 3]; 3]);
    }

    #[test]
    fn watermark_check_by_request_class() {
        let mut nr_free = [0usize; NR_ORDERS];
        nr_free[0] = 100; // 100 free pages, all order 0
        assert!(watermark_ok(100, &nr_free, 0, 99, Reserve::Normal, 0));
        assert!(!watermark_ok(100, &nr_free, 0, 100, Reserve::Normal, 0));
        // High priority digs to min - min / 2 (198 -> 99 < 100, 199 -> 100).
        assert!(watermark_ok(100, &nr_free, 0, 198, Reserve::High, 0));
        assert!(!watermark_ok(100, &nr_free, 0, 199, Reserve::High, 0));
        // Atomic a quarter further: 266 -> 133 -> 100, 265 -> 133 -> 100, 264 -> 132 -> 99.
        assert!(!watermark_ok(100, &nr_free, 0, 266, Reserve::Atomic, 0));
        assert!(watermark_ok(100, &nr_free, 0, 264, Reserve::Atomic, 0));
        assert!(!watermark_ok(100, &nr_free, 0, 264, Reserve::High, 0));
        // The lowmem reserve adds to the mark.
        assert!(!watermark_ok(100, &nr_free, 0, 50, Reserve::Normal, 50));
        // Enough pages but no block of order 2.
        assert!(!watermark_ok(100, &nr_free, 2, 10, Reserve::Normal, 0));
        nr_free[3] = 1;
        assert!(watermark_ok(108, &nr_free, 2, 10, Reserve::Normal, 0));
        assert!(!watermark_ok(108, &nr_free, 11, 0, Reserve::Normal, 0));
    }

    /// Linux's arithmetic on `long`, rounding towards zero at each step.
    #[test]
    fn reserve_marks_follow_linux() {
        for (mark, high, atomic) in [
            (0, 0, 0),
            (1, 1, 1),
            (7, 4, 3),
            (100, 50, 38),
            (101, 51, 39),
        ] {
            assert_eq!(Reserve::Normal.mark(mark), mark);
            assert_eq!(Reserve::High.mark(mark), high, "high of {mark}");
            assert_eq!(Reserve::Atomic.mark(mark), atomic, "atomic of {mark}");
        }
    }

    #[test]
    fn fragmentation_indices_on_crafted_layouts() {
        let mut nr_free = [0usize; NR_ORDERS];
        // Nothing free: unusable 1.000, fragmentation 0.
        assert_eq!(unusable_index(&nr_free, 0), 1000);
        assert_eq!(fragmentation_index(&nr_free, 3), 0);
        // 64 free order-0 pages: order 0 fully usable, order 3 fully unusable.
        nr_free[0] = 64;
        assert_eq!(unusable_index(&nr_free, 0), 0);
        assert_eq!(unusable_index(&nr_free, 3), 1000);
        // order 3 (8 pages) would fail for fragmentation: 1000 - (1000 + 64000/8) / 64 = 860.
        assert_eq!(fragmentation_index(&nr_free, 3), 860);
        assert_eq!(fragmentation_index(&nr_free, 0), -1000);
        // One order-3 block and 8 order-0 pages: half the 16 free pages serve order 3.
        nr_free[0] = 8;
        nr_free[3] = 1;
        assert_eq!(unusable_index(&nr_free, 3), 500);
        assert_eq!(fragmentation_index(&nr_free, 3), -1000);
        // A single order-0 page asked for order 4: 1000 - (1000 + 62) / 1 = -62 (Linux prints
        // it as " 0.-62"): lack of memory shows as <= 0.
        let mut one = [0usize; NR_ORDERS];
        one[0] = 1;
        assert_eq!(fragmentation_index(&one, 4), -62);
    }

    #[test]
    fn milli_prints_like_linux() {
        assert_eq!(format!("{}", Milli(0, 1)), "0.000");
        assert_eq!(format!("{}", Milli(860, 1)), "0.860");
        assert_eq!(format!("{}", Milli(1000, 1)), "1.000");
        assert_eq!(format!("{}", Milli(-1000, 2)), "-1.000");
        assert_eq!(format!("{}", Milli(860, 2)), " 0.860");
        assert_eq!(format!("{}", Milli(-62, 2)), " 0.-62");
    }

    #[test]
    fn fallback_goes_down_the_zones() {
        assert_eq!(fallback(NORMAL).collect::<Vec<_>>(), [NORMAL, DMA32, DMA]);
        assert_eq!(fallback(DMA32).collect::<Vec<_>>(), [DMA32, DMA]);
        assert_eq!(fallback(DMA).collect::<Vec<_>>(), [DMA]);
    }
}
