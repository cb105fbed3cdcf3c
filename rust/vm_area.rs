// SPDX-License-Identifier: GPL-2.0

//! The pure parts of the vmalloc-like mapper (`vmalloc.rs`): an area's size in pages, where
//! an address falls in an area and its guard page, the scatter of its pages (pages per zone
//! and physically contiguous runs), and the plan of block orders when large blocks go first.
//!
//! No `kernel::` imports: the host crate tests this file as it is.

/// Zones, as `zone.rs` numbers them.
const NR_ZONES: usize = 3;

/// The pages of an area of `bytes` bytes (rounded up to whole pages of `page` bytes), or
/// `None` for 0 bytes, an overflow, or more than `max_pages`.
pub(crate) fn pages_for(bytes: u64, page: usize, max_pages: usize) -> Option<usize> {
    if bytes == 0 || page == 0 {
        return None;
    }
    let pages = bytes.div_ceil(page as u64);
    let pages = usize::try_from(pages).ok()?;
    (pages <= max_pages).then_some(pages)
}

/// Where an address falls relative to one area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In page `index`, `offset` bytes in.
    Page { index: usize, offset: usize },
    /// In the guard page right after the area (mapped by nothing).
    Guard,
    /// Before the area or past its guard page.
    Outside,
}

/// Where `addr` falls relative to the area of `pages` pages of `page` bytes at `start`,
/// which a guard page follows (as `vmap` leaves one).
pub(crate) fn place(addr: usize, start: usize, pages: usize, page: usize) -> Place {
    let Some(off) = addr.checked_sub(start) else {
        return Place::Outside;
    };
    let index = off / page.max(1);
    if index < pages {
        Place::Page {
            index,
            offset: off % page.max(1),
        }
    } else if index == pages {
        Place::Guard
    } else {
        Place::Outside
    }
}

/// The scatter of an area's pages: how many come from each zone and in how many physically
/// contiguous runs (consecutive page frame numbers, in the area's order) they lie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scatter {
    pub(crate) zone_pages: [usize; NR_ZONES],
    pub(crate) runs: usize,
    last: Option<u64>,
}

impl Scatter {
    /// Counts the next page of the area: frame `pfn`, in zone `zone`.
    pub(crate) fn add(&mut self, pfn: u64, zone: usize) {
        if let Some(z) = self.zone_pages.get_mut(zone) {
            *z += 1;
        }
        if self.last.and_then(|l| l.checked_add(1)) != Some(pfn) {
            self.runs += 1;
        }
        self.last = Some(pfn);
    }

    /// Every page counted.
    pub(crate) fn pages(&self) -> usize {
        self.zone_pages.iter().sum()
    }
}

/// The order of the next block when large blocks go first: the largest order, at most
/// `max_order`, whose block does not exceed the `remaining` pages (0 for 0 pages).
pub(crate) fn plan_order(remaining: usize, max_order: u32) -> u32 {
    if remaining == 0 {
        return 0;
    }
    (usize::BITS - 1 - remaining.leading_zeros()).min(max_order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn sizes_round_up_to_pages() {
        assert_eq!(pages_for(0, PAGE, 100), None);
        assert_eq!(pages_for(1, PAGE, 100), Some(1));
        assert_eq!(pages_for(4096, PAGE, 100), Some(1));
        assert_eq!(pages_for(4097, PAGE, 100), Some(2));
        assert_eq!(pages_for((4 << 20) + 1, PAGE, 2000), Some(1025));
        assert_eq!(pages_for(100 * 4096, PAGE, 100), Some(100));
        assert_eq!(pages_for(100 * 4096 + 1, PAGE, 100), None);
        assert_eq!(
            pages_for(u64::MAX, PAGE, usize::MAX),
            Some((u64::MAX / 4096 + 1) as usize)
        );
    }

    #[test]
    fn places_in_area_guard_and_outside() {
        let start = 0xffff_c900_0000_0000usize;
        assert_eq!(place(start - 1, start, 4, PAGE), Place::Outside);
        assert_eq!(
            place(start, start, 4, PAGE),
            Place::Page {
                index: 0,
                offset: 0
            }
        );
        assert_eq!(
            place(start + 2 * PAGE + 17, start, 4, PAGE),
            Place::Page {
                index: 2,
                offset: 17
            }
        );
        assert_eq!(
            place(start + 4 * PAGE - 1, start, 4, PAGE),
            Place::Page {
                index: 3,
                offset: PAGE - 1
            }
        );
        assert_eq!(place(start + 4 * PAGE, start, 4, PAGE), Place::Guard);
        assert_eq!(place(start + 5 * PAGE - 1, start, 4, PAGE), Place::Guard);
        assert_eq!(place(start + 5 * PAGE, start, 4, PAGE), Place::Outside);
        assert_eq!(place(usize::MAX, start, 4, PAGE), Place::Outside);
    }

    /// Against a model: runs are maximal stretches of consecutive frames.
    #[test]
    fn scatter_counts_runs_and_zones() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let n = (next() % 300) as usize;
            let mut pfns = Vec::new();
            let mut pfn = next() % 1_000_000;
            for _ in 0..n {
                // Mostly the next frame, sometimes a jump (backwards too).
                pfn = match next() % 4 {
                    0 => next() % 1_000_000,
                    _ => pfn + 1,
                };
                pfns.push((pfn, (next() % 3) as usize));
            }
            let mut s = Scatter::default();
            for &(p, z) in &pfns {
                s.add(p, z);
            }
            let runs = pfns.windows(2).filter(|w| w[1].0 != w[0].0 + 1).count()
                + usize::from(!pfns.is_empty());
            assert_eq!(s.runs, runs);
            assert_eq!(s.pages(), n);
            for z in 0..3 {
                assert_eq!(s.zone_pages[z], pfns.iter().filter(|p| p.1 == z).count());
            }
        }
        let mut s = Scatter::default();
        s.add(u64::MAX, 0);
        s.add(0, 0);
        assert_eq!(s.runs, 2);
        s.add(7, 5);
        assert_eq!(s.pages(), 2);
    }

    #[test]
    fn large_blocks_first_plan() {
        assert_eq!(plan_order(0, 10), 0);
        assert_eq!(plan_order(1, 10), 0);
        assert_eq!(plan_order(3, 10), 1);
        assert_eq!(plan_order(1024, 10), 10);
        assert_eq!(plan_order(1025, 10), 10);
        assert_eq!(plan_order(5000, 10), 10);
        assert_eq!(plan_order(700, 3), 3);
        // The plan covers any size exactly, largest blocks first.
        for n in 0..3000usize {
            let (mut left, mut last) = (n, u32::MAX);
            while left > 0 {
                let o = plan_order(left, 10);
                assert!(o <= last && (1usize << o) <= left);
                left -= 1 << o;
                last = o;
            }
        }
    }
}
