// SPDX-License-Identifier: GPL-2.0

//! Binary buddy allocator over a compact page table.
//!
//! One [`Buddy`] manages one zone's pages. Pages are named by their *index* in the zone's own
//! table of [`PageMeta`], not by pfn: the borrowed host blocks are laid side by side in index
//! space, each at an index aligned to its own size, so the buddy arithmetic below works on
//! indices exactly as Linux's works on pfns. The table is minimm's own; no field of the host's
//! `struct page` is touched.
//!
//! How it differs from Linux's mm/page_alloc.c: no migrate types, no page blocks, no
//! compaction, no NUMA. A block may never grow past the host block it was carved from (the
//! *chunk*): two chunks adjacent in index space are not buddies, since their pages need not be
//! adjacent in physical memory.
//!
//! # The algorithm
//!
//! Free blocks of 2^O pages sit on free list O (O = 0..=[`MAX_ORDER`]); each list is doubly
//! linked through the `next`/`prev` fields of the blocks' head pages, so removal is O(1).
//!
//! *Allocation* of order O takes the first block of the smallest non-empty list O' >= O. While
//! O' > O it splits: the block's upper half (index `B + (1 << (O' - 1))`) goes back on list
//! O' - 1 and the lower half is kept. Cost: O(MAX_ORDER).
//!
//! *Freeing* block B of order O looks at its buddy, the other half of the block of order O + 1
//! that contains B:
//!
//! ```text
//!     buddy(B, O) = B ^ (1 << O)           e.g. B = 12 = 0b1100, O = 2: buddy = 0b1000 = 8
//!     parent(B, O) = B & !(1 << O)          parent of 12 at order 2: 8, of order 3
//! ```
//!
//! If the buddy is the head of a *free* block of the same order, it is taken off its list, the
//! two merge into the parent, and the step repeats one order up, until the buddy is not free,
//! or the chunk's order is reached. Cost: O(MAX_ORDER).
//!
//! # Invariants
//!
//! Checked by [`Buddy::validate`]:
//! - Every present page belongs to exactly one block: a head (`Free` or `Allocated`) followed
//!   by 2^order - 1 `Tail` pages; a block's head index is aligned to 2^order and the block lies
//!   inside one chunk (`order <= chunk_order`).
//! - List O holds exactly the `Free` heads of order O, linked consistently, `nr_free[O]` long.
//! - No two free buddies of the same order are both free (they would have been merged).
//! - `free_pages` is the sum of 2^O over the free blocks; `managed_pages` the present pages.
//! - The held list (see below) holds exactly the `Held` heads, `nr_held` long, with
//!   `held_pages` pages.
//!
//! # Held blocks
//!
//! A block that its user freed while something outside minimm still referenced its pages
//! (a pipe buffer, O_DIRECT in flight) must not be handed out again yet. [`Buddy::hold`] puts
//! such an allocated block on a FIFO *held* list, linked through the `next` field of its
//! head page like the free lists; [`Buddy::take_held`] takes the oldest back off, allocated
//! again, for the caller to free once its pages are unreferenced, or to hold again (to the
//! back of the list) if not. A held block cannot be freed directly.

/// The largest order: blocks of 2^10 pages.
pub(crate) const MAX_ORDER: u32 = 10;
/// Number of free lists.
pub(crate) const NR_ORDERS: usize = MAX_ORDER as usize + 1;

/// End of a free list.
const NIL: u32 = u32::MAX;

/// What a page of the table currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PageState {
    /// Not part of the pool: a hole in index space.
    Absent,
    /// Inside a block whose head is an earlier page.
    Tail,
    /// Head of a free block of `order`, on free list `order`.
    Free,
    /// Head of an allocated block of `order`.
    Allocated,
    /// Head of an allocated block of `order` on the held list.
    Held,
}

/// minimm's own per-page metadata: 12 bytes a page. Who owns a block is the pool's business
/// (its owner table), not the allocator's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageMeta {
    /// Free list links (heads of free blocks only).
    next: u32,
    prev: u32,
    state: PageState,
    /// Order of the block this page heads (heads only).
    order: u8,
    /// Order of the borrowed host block (chunk) this page is in: blocks never grow past it.
    chunk_order: u8,
    _pad: u8,
}

impl PageMeta {
    /// A page that is not in the pool.
    pub(crate) const ABSENT: Self = Self {
        next: NIL,
        prev: NIL,
        state: PageState::Absent,
        order: 0,
        chunk_order: 0,
        _pad: 0,
    };
}

/// Why a request was refused. None of them changes the allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Error {
    /// Order above [`MAX_ORDER`].
    BadOrder,
    /// Index outside the table, or a chunk not aligned to its size.
    BadIndex,
    /// The index is not the head of an allocated block (double free, foreign or stale index).
    NotAllocated,
    /// A chunk overlaps pages already in the pool.
    Overlap,
}

/// A broken invariant, found by [`Buddy::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corruption {
    /// The page where it was found (for `slab.rs`'s lists, the slab's id).
    pub(crate) index: u32,
    /// What is wrong.
    pub(crate) what: &'static str,
}

/// A buddy allocator over the page table `S` (a `Vec` on the host, a `KVVec` in the kernel).
///
/// # Invariants
///
/// See the module documentation; [`Buddy::validate`] checks them all.
pub(crate) struct Buddy<S> {
    pages: S,
    free_head: [u32; NR_ORDERS],
    nr_free: [usize; NR_ORDERS],
    free_pages: usize,
    managed_pages: usize,
    /// The held list: oldest first, linked through `next`.
    held_head: u32,
    held_tail: u32,
    nr_held: usize,
    held_pages: usize,
}

impl<S> Buddy<S>
where
    S: core::ops::DerefMut<Target = [PageMeta]>,
{
    /// A buddy allocator over `pages`, which must all be [`PageMeta::ABSENT`] (holes); blocks
    /// come in through [`Buddy::add_chunk`]. The table holds at most `u32::MAX - 1` pages.
    pub(crate) fn new(mut pages: S) -> Self {
        for p in pages.iter_mut() {
            *p = PageMeta::ABSENT;
        }
        Self {
            pages,
            free_head: [NIL; NR_ORDERS],
            nr_free: [0; NR_ORDERS],
            free_pages: 0,
            managed_pages: 0,
            held_head: NIL,
            held_tail: NIL,
            nr_held: 0,
            held_pages: 0,
        }
    }

    /// Number of entries of the table (present or not).
    pub(crate) fn capacity(&self) -> usize {
        self.pages.len().min(NIL as usize)
    }

    /// Pages on the free lists.
    pub(crate) fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Pages of the blocks on the held list.
    pub(crate) fn held_pages(&self) -> usize {
        self.held_pages
    }

    /// Blocks on the held list.
    pub(crate) fn nr_held(&self) -> usize {
        self.nr_held
    }

    /// Puts the allocated block at `index` at the back of the held list; it stays allocated
    /// and cannot be freed until [`Buddy::take_held`] gives it back.
    pub(crate) fn hold(&mut self, index: u32) -> Result<(), Error> {
        let m = self.meta_mut(index).ok_or(Error::BadIndex)?;
        if m.state != PageState::Allocated {
            return Err(Error::NotAllocated);
        }
        m.state = PageState::Held;
        m.next = NIL;
        m.prev = NIL;
        let pages = 1usize << m.order;
        match self.meta_mut(self.held_tail) {
            Some(t) => t.next = index,
            None => self.held_head = index,
        }
        self.held_tail = index;
        self.nr_held += 1;
        self.held_pages += pages;
        Ok(())
    }

    /// Takes the oldest block off the held list, allocated again; returns its index and order.
    pub(crate) fn take_held(&mut self) -> Option<(u32, u32)> {
        let index = self.held_head;
        let m = self.meta_mut(index)?;
        let (next, order) = (m.next, u32::from(m.order));
        m.state = PageState::Allocated;
        m.next = NIL;
        self.held_head = next;
        if next == NIL {
            self.held_tail = NIL;
        }
        self.nr_held -= 1;
        self.held_pages -= 1 << order;
        Some((index, order))
    }

    /// Free blocks per order, as /proc/buddyinfo shows them.
    pub(crate) fn nr_free(&self) -> [usize; NR_ORDERS] {
        self.nr_free
    }

    fn meta(&self, index: u32) -> Option<&PageMeta> {
        self.pages.get(usize::try_from(index).ok()?)
    }

    fn meta_mut(&mut self, index: u32) -> Option<&mut PageMeta> {
        self.pages.get_mut(usize::try_from(index).ok()?)
    }

    /// Adds a free chunk of 2^`order` pages at `index` (a block borrowed from the host).
    ///
    /// `index` must be aligned to 2^`order` and the pages must be holes. The chunk is not
    /// merged with neighbours: they belong to other host blocks.
    pub(crate) fn add_chunk(&mut self, index: u32, order: u32) -> Result<(), Error> {
        if order > MAX_ORDER {
            return Err(Error::BadOrder);
        }
        let n = 1u32 << order;
        let end = index.checked_add(n).ok_or(Error::BadIndex)?;
        if index % n != 0 || end as usize > self.capacity() {
            return Err(Error::BadIndex);
        }
        if (index..end).any(|i| self.meta(i).map(|m| m.state) != Some(PageState::Absent)) {
            return Err(Error::Overlap);
        }
        for i in index..end {
            if let Some(m) = self.meta_mut(i) {
                // `order <= MAX_ORDER` fits in u8.
                *m = PageMeta {
                    state: PageState::Tail,
                    chunk_order: order as u8,
                    ..PageMeta::ABSENT
                };
            }
        }
        self.push_free(index, order);
        self.managed_pages += n as usize;
        Ok(())
    }

    /// Allocates a block of 2^`order` pages and returns the index of its first page, or `None`
    /// when no free block is large enough.
    pub(crate) fn alloc(&mut self, order: u32) -> Option<u32> {
        if order > MAX_ORDER {
            return None;
        }
        let mut o = (order..=MAX_ORDER).find(|&o| self.free_head[o as usize] != NIL)?;
        let index = self.free_head[o as usize];
        self.unlink(index, o);
        // Split: keep the lower half, free the upper half, one order down each time.
        while o > order {
            o -= 1;
            self.push_free(index + (1 << o), o);
        }
        if let Some(m) = self.meta_mut(index) {
            m.state = PageState::Allocated;
            m.order = order as u8;
        }
        Some(index)
    }

    /// Frees the allocated block at `index`, merging it with free buddies; returns its order.
    pub(crate) fn free(&mut self, index: u32) -> Result<u32, Error> {
        let m = self.meta(index).ok_or(Error::BadIndex)?;
        if m.state != PageState::Allocated {
            return Err(Error::NotAllocated);
        }
        let order = u32::from(m.order);
        let chunk_order = u32::from(m.chunk_order);
        let (mut index, mut o) = (index, order);
        while o < chunk_order {
            let buddy = index ^ (1 << o);
            match self.meta(buddy) {
                Some(b) if b.state == PageState::Free && u32::from(b.order) == o => {}
                _ => break,
            }
            self.unlink(buddy, o);
            // The higher of the two becomes a tail of the merged block.
            let (low, high) = if buddy < index {
                (buddy, index)
            } else {
                (index, buddy)
            };
            if let Some(h) = self.meta_mut(high) {
                h.state = PageState::Tail;
            }
            index = low;
            o += 1;
        }
        self.push_free(index, o);
        Ok(order)
    }

    /// Puts the block at `index` on free list `order`, as a `Free` head.
    fn push_free(&mut self, index: u32, order: u32) {
        let o = order as usize;
        let old = self.free_head[o];
        if let Some(m) = self.meta_mut(index) {
            m.state = PageState::Free;
            m.order = order as u8;
            m.next = old;
            m.prev = NIL;
        }
        if let Some(m) = self.meta_mut(old) {
            m.prev = index;
        }
        self.free_head[o] = index;
        self.nr_free[o] += 1;
        self.free_pages += 1 << order;
    }

    /// Takes the free block at `index` off free list `order`; it becomes a tail until the
    /// caller says otherwise.
    fn unlink(&mut self, index: u32, order: u32) {
        let o = order as usize;
        let (next, prev) = match self.meta(index) {
            Some(m) => (m.next, m.prev),
            None => return,
        };
        match self.meta_mut(prev) {
            Some(p) => p.next = next,
            None => self.free_head[o] = next,
        }
        if let Some(n) = self.meta_mut(next) {
            n.prev = prev;
        }
        if let Some(m) = self.meta_mut(index) {
            *m = PageMeta {
                state: PageState::Tail,
                chunk_order: m.chunk_order,
                ..PageMeta::ABSENT
            };
        }
        self.nr_free[o] -= 1;
        self.free_pages -= 1 << order;
    }

    /// The order of the allocated (not held) block headed by `index`, if it is one: what the
    /// zone's validator checks blocks on the per-CPU lists against.
    pub(crate) fn allocated_order(&self, index: u32) -> Option<u32> {
        let m = self.meta(index)?;
        (m.state == PageState::Allocated).then_some(u32::from(m.order))
    }

    /// Checks every invariant of the module documentation; returns the number of blocks.
    ///
    /// O(table size): for debugfs `validate` and tests, not for hot paths.
    pub(crate) fn validate(&self) -> Result<usize, Corruption> {
        let bad = |index: u32, what: &'static str| Err(Corruption { index, what });
        // Walk the table block by block.
        let (mut i, mut blocks, mut free, mut managed) = (0u32, 0usize, 0usize, 0usize);
        let (mut held, mut nr_held) = (0usize, 0usize);
        let mut free_count = [0usize; NR_ORDERS];
        let cap = self.capacity() as u32;
        while i < cap {
            let Some(m) = self.meta(i) else { break };
            match m.state {
                PageState::Absent => {
                    i += 1;
                    continue;
                }
                PageState::Tail => return bad(i, "tail page without a head"),
                PageState::Free | PageState::Allocated | PageState::Held => {}
            }
            let o = u32::from(m.order);
            if o > MAX_ORDER || o > u32::from(m.chunk_order) {
                return bad(i, "block larger than its chunk");
            }
            let n = 1u32 << o;
            if i % n != 0 {
                return bad(i, "block head not aligned to its order");
            }
            let end = match i.checked_add(n) {
                Some(e) if e <= cap => e,
                _ => return bad(i, "block runs past the table"),
            };
            for t in i + 1..end {
                match self.meta(t) {
                    Some(tm) if tm.state == PageState::Tail && tm.chunk_order == m.chunk_order => {}
                    _ => return bad(t, "block page is not a tail of the same chunk"),
                }
            }
            if m.state == PageState::Free {
                free += n as usize;
                free_count[o as usize] += 1;
                if o < u32::from(m.chunk_order) {
                    let b = i ^ n;
                    if let Some(bm) = self.meta(b) {
                        if bm.state == PageState::Free && u32::from(bm.order) == o {
                            return bad(i, "two free buddies not merged");
                        }
                    }
                }
            }
            if m.state == PageState::Held {
                held += n as usize;
                nr_held += 1;
            }
            managed += n as usize;
            blocks += 1;
            i = end;
        }
        // Walk the held list.
        let (mut cur, mut last, mut len, mut pages) = (self.held_head, NIL, 0usize, 0usize);
        while cur != NIL {
            let Some(m) = self.meta(cur) else {
                return bad(cur, "held list points outside the table");
            };
            if m.state != PageState::Held {
                return bad(cur, "held list holds a block that is not held");
            }
            len += 1;
            if len > nr_held {
                return bad(cur, "held list longer than its held blocks (cycle?)");
            }
            pages += 1 << m.order;
            last = cur;
            cur = m.next;
        }
        if len != nr_held || len != self.nr_held || last != self.held_tail {
            return bad(
                self.held_head,
                "nr_held or the tail does not match the held list",
            );
        }
        if pages != held || held != self.held_pages {
            return bad(self.held_head, "held_pages does not match the held blocks");
        }
        // Walk the free lists.
        for o in 0..NR_ORDERS {
            let (mut cur, mut prev, mut len) = (self.free_head[o], NIL, 0usize);
            while cur != NIL {
                let Some(m) = self.meta(cur) else {
                    return bad(cur, "free list points outside the table");
                };
                if m.state != PageState::Free || m.order as usize != o {
                    return bad(
                        cur,
                        "free list holds a block that is not free at that order",
                    );
                }
                if m.prev != prev {
                    return bad(cur, "free list back link broken");
                }
                len += 1;
                if len > free_count[o] {
                    return bad(cur, "free list longer than its free blocks (cycle?)");
                }
                prev = cur;
                cur = m.next;
            }
            if len != free_count[o] || len != self.nr_free[o] {
                return bad(self.free_head[o], "nr_free does not match the free list");
            }
        }
        if free != self.free_pages {
            return bad(0, "free_pages does not match the free blocks");
        }
        if managed != self.managed_pages {
            return bad(0, "managed_pages does not match the present pages");
        }
        Ok(blocks)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::{collections::BTreeMap, vec, vec::Vec};

    /// Turns a test step's `Option` or `Result` into an error that `?` carries out of the test,
    /// so the test fails with what went wrong instead of unwinding (the pure files' tests
    /// share it).
    pub(crate) trait Must<T> {
        fn must(self) -> Result<T, String>;
        /// The same, naming the step that failed.
        fn must_be(self, what: &str) -> Result<T, String>;
    }

    impl<T> Must<T> for Option<T> {
        fn must(self) -> Result<T, String> {
            self.ok_or_else(|| "got None".into())
        }
        fn must_be(self, what: &str) -> Result<T, String> {
            self.ok_or_else(|| format!("no {what}"))
        }
    }

    impl<T, E: core::fmt::Debug> Must<T> for Result<T, E> {
        fn must(self) -> Result<T, String> {
            self.map_err(|e| format!("{e:?}"))
        }
        fn must_be(self, what: &str) -> Result<T, String> {
            self.map_err(|e| format!("{what}: {e:?}"))
        }
    }

    fn buddy(pages: usize) -> Buddy<Vec<PageMeta>> {
        Buddy::new(vec![PageMeta::ABSENT; pages])
    }

    /// Free list layout as (order, sorted head indices), for asserting on exact layouts.
    fn layout<S: core::ops::DerefMut<Target = [PageMeta]>>(b: &Buddy<S>) -> Vec<(u32, Vec<u32>)> {
        let mut out = Vec::new();
        for o in 0..NR_ORDERS {
            let mut v = Vec::new();
            let mut cur = b.free_head[o];
            while cur != NIL {
                v.push(cur);
                cur = b.pages[cur as usize].next;
            }
            v.sort();
            if !v.is_empty() {
                out.push((o as u32, v));
            }
        }
        out
    }

    #[test]
    fn split_an_order_3_chunk_down_to_order_0() -> Result<(), String> {
        let mut b = buddy(8);
        b.add_chunk(0, 3).must()?;
        assert_eq!(b.alloc(0), Some(0));
        // 8 pages = [0] allocated + [1] order 0 + [2,3] order 1 + [4..8) order 2.
        assert_eq!(layout(&b), vec![(0, vec![1]), (1, vec![2]), (2, vec![4])]);
        assert_eq!(b.free_pages(), 7);
        b.validate().must()?;
        Ok(())
    }

    #[test]
    fn free_merges_back_across_every_order() -> Result<(), String> {
        let mut b = buddy(8);
        b.add_chunk(0, 3).must()?;
        let x = b.alloc(0).must()?;
        let y = b.alloc(0).must()?;
        assert_eq!((x, y), (0, 1));
        assert_eq!(layout(&b), vec![(1, vec![2]), (2, vec![4])]);
        assert_eq!(b.free(x), Ok(0));
        assert_eq!(layout(&b), vec![(0, vec![0]), (1, vec![2]), (2, vec![4])]);
        assert_eq!(b.free(y), Ok(0));
        assert_eq!(layout(&b), vec![(3, vec![0])]);
        assert_eq!(b.free_pages(), 8);
        b.validate().must()?;
        Ok(())
    }

    #[test]
    fn merge_stops_at_an_allocated_buddy() -> Result<(), String> {
        let mut b = buddy(16);
        b.add_chunk(0, 4).must()?;
        let a = b.alloc(2).must()?; // 0..4
        let c = b.alloc(2).must()?; // 4..8
        assert_eq!((a, c), (0, 4));
        b.free(a).must()?;
        // 0..4 cannot merge: its buddy 4..8 is allocated.
        assert_eq!(layout(&b), vec![(2, vec![0]), (3, vec![8])]);
        b.free(c).must()?;
        assert_eq!(layout(&b), vec![(4, vec![0])]);
        Ok(())
    }

    #[test]
    fn blocks_never_merge_across_chunks() -> Result<(), String> {
        // Two order-1 chunks side by side in index space are not buddies of each other.
        let mut b = buddy(4);
        b.add_chunk(0, 1).must()?;
        b.add_chunk(2, 1).must()?;
        assert_eq!(layout(&b), vec![(1, vec![0, 2])]);
        assert_eq!(b.alloc(2), None, "no order-2 block exists");
        let x = b.alloc(1).must()?;
        b.free(x).must()?;
        assert_eq!(layout(&b), vec![(1, vec![0, 2])]);
        b.validate().must()?;
        Ok(())
    }

    #[test]
    fn double_free_and_foreign_indices_are_refused_without_change() -> Result<(), String> {
        let mut b = buddy(8);
        b.add_chunk(0, 3).must()?;
        let x = b.alloc(1).must()?;
        let before = layout(&b);
        assert_eq!(b.free(x + 1), Err(Error::NotAllocated), "tail page");
        assert_eq!(b.free(4), Err(Error::NotAllocated), "free block");
        assert_eq!(b.free(99), Err(Error::BadIndex));
        assert_eq!(layout(&b), before);
        assert_eq!(b.allocated_order(x), Some(1));
        assert_eq!(b.free(x), Ok(1));
        assert_eq!(b.free(x), Err(Error::NotAllocated), "double free");
        assert_eq!(b.allocated_order(x), None);
        b.validate().must()?;
        Ok(())
    }

    #[test]
    fn chunks_must_be_aligned_and_disjoint() -> Result<(), String> {
        let mut b = buddy(16);
        assert_eq!(b.add_chunk(2, 2), Err(Error::BadIndex));
        assert_eq!(b.add_chunk(16, 0), Err(Error::BadIndex));
        assert_eq!(b.add_chunk(0, 11), Err(Error::BadOrder));
        assert_eq!(b.add_chunk(u32::MAX - 1, 1), Err(Error::BadIndex));
        b.add_chunk(0, 2).must()?;
        assert_eq!(b.add_chunk(0, 3), Err(Error::Overlap));
        assert_eq!(b.managed_pages, 4);
        b.validate().must()?;
        Ok(())
    }

    #[test]
    fn huge_orders_are_refused() -> Result<(), String> {
        let mut b = buddy(1024);
        b.add_chunk(0, 10).must()?;
        assert_eq!(b.alloc(11), None);
        assert_eq!(b.alloc(u32::MAX), None);
        assert_eq!(b.alloc(10), Some(0));
        Ok(())
    }

    #[test]
    fn validate_catches_corruption() -> Result<(), String> {
        let mut b = buddy(8);
        b.add_chunk(0, 3).must()?;
        b.alloc(0).must()?;
        b.validate().must()?;
        b.nr_free[1] += 1;
        assert!(b.validate().is_err());
        b.nr_free[1] -= 1;
        b.pages[3].state = PageState::Free; // a tail claiming to be a head
        assert!(b.validate().is_err());
        Ok(())
    }

    /// A tiny deterministic PRNG, so the property tests need no crate and replay by seed
    /// (`lru.rs`'s too).
    pub(crate) struct XorShift(pub(crate) u64);
    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn held_blocks_stay_allocated_in_fifo_order() -> Result<(), String> {
        let mut b = buddy(16);
        b.add_chunk(0, 4).must()?;
        let x = b.alloc(2).must()?;
        let y = b.alloc(0).must()?;
        b.hold(x).must()?;
        b.hold(y).must()?;
        assert_eq!((b.nr_held(), b.held_pages()), (2, 5));
        assert_eq!(b.hold(x), Err(Error::NotAllocated), "held twice");
        assert_eq!(
            b.free(x),
            Err(Error::NotAllocated),
            "held blocks cannot be freed"
        );
        assert_eq!(b.hold(8), Err(Error::NotAllocated), "a free block");
        b.validate().must()?;
        // Oldest first; a block taken back can be held again, at the back.
        assert_eq!(b.take_held(), Some((x, 2)));
        b.hold(x).must()?;
        assert_eq!(b.take_held(), Some((y, 0)));
        assert_eq!(b.free(y), Ok(0));
        assert_eq!(b.take_held(), Some((x, 2)));
        assert_eq!(b.take_held(), None);
        assert_eq!((b.nr_held(), b.held_pages()), (0, 0));
        assert_eq!(b.free(x), Ok(2));
        assert_eq!(layout(&b), vec![(4, vec![0])]);
        b.validate().must()?;
        Ok(())
    }

    #[derive(Debug)]
    enum Action {
        Alloc(u32),
        Free(usize),
        FreeBogus(u32),
        Hold(usize),
        /// Take the oldest held block back, and free it (true) or hold it again.
        TakeHeld(bool),
    }

    /// Random alloc/free sequences against a plain model (a map of live blocks), with the
    /// invariant checker after every step.
    #[test]
    fn random_sequences_agree_with_a_model() -> Result<(), String> {
        for seed in 1..=200u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            // A few chunks of assorted orders, with holes between them.
            let mut b = buddy(4096);
            let mut chunks = Vec::new();
            let mut at = 0u32;
            for _ in 0..4 {
                let o = rng.below(9) as u32 + 1;
                let n = 1u32 << o;
                at = at.div_ceil(n) * n + if rng.below(2) == 0 { n } else { 0 };
                if at + n > 4096 {
                    break;
                }
                b.add_chunk(at, o).must()?;
                chunks.push((at, n));
                at += n;
            }
            let total: u32 = chunks.iter().map(|c| c.1).sum();
            // Model: live blocks by index -> (pages, the step that allocated it).
            let mut live: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
            // Model of the held list: (index, pages), oldest first; held blocks stay in `live`.
            let mut held: std::collections::VecDeque<(u32, u32)> = Default::default();
            for step in 0..400 {
                let action = match rng.below(13) {
                    0..=5 => Action::Alloc(rng.below(6) as u32),
                    6..=8 => Action::Free(rng.below(live.len().max(1) as u64) as usize),
                    9 => Action::FreeBogus(rng.below(4096) as u32),
                    10 => Action::Hold(rng.below(live.len().max(1) as u64) as usize),
                    _ => Action::TakeHeld(rng.below(2) == 0),
                };
                match action {
                    Action::Alloc(o) => {
                        let model_free = total - live.values().map(|v| v.0).sum::<u32>();
                        match b.alloc(o) {
                            Some(i) => {
                                let n = 1u32 << o;
                                assert_eq!(i % n, 0, "seed {seed}: misaligned");
                                assert!(
                                    chunks.iter().any(|&(s, len)| i >= s && i + n <= s + len),
                                    "seed {seed}: outside chunks"
                                );
                                for (&j, &(m, _)) in &live {
                                    assert!(
                                        i + n <= j || j + m <= i,
                                        "seed {seed}: overlaps live block {j}"
                                    );
                                }
                                live.insert(i, (n, step));
                            }
                            None => {
                                // Refusal is right only if no free block of order >= o exists.
                                assert!(
                                    b.nr_free()[o as usize..].iter().all(|&c| c == 0),
                                    "seed {seed}: refused with space"
                                );
                                assert!(model_free >= b.free_pages() as u32);
                            }
                        }
                    }
                    Action::Free(k) => {
                        if let Some((&i, &(n, _))) = live.iter().nth(k) {
                            if held.iter().any(|h| h.0 == i) {
                                assert!(b.free(i).is_err(), "seed {seed}: freed held {i}");
                            } else {
                                assert_eq!(b.allocated_order(i), Some(n.trailing_zeros()));
                                assert_eq!(b.free(i).map(|o| 1u32 << o), Ok(n), "seed {seed}");
                                live.remove(&i);
                            }
                        }
                    }
                    Action::Hold(k) => {
                        if let Some((&i, &(n, _))) = live.iter().nth(k) {
                            if held.iter().any(|h| h.0 == i) {
                                assert!(b.hold(i).is_err(), "seed {seed}: held {i} twice");
                            } else {
                                b.hold(i).must()?;
                                held.push_back((i, n));
                            }
                        }
                    }
                    Action::TakeHeld(free) => {
                        let got = b.take_held();
                        assert_eq!(got.map(|(i, o)| (i, 1u32 << o)), held.pop_front());
                        if let Some((i, _)) = got {
                            if free {
                                b.free(i).must()?;
                                live.remove(&i);
                            } else {
                                b.hold(i).must()?;
                                held.push_back(live.get(&i).map(|v| (i, v.0)).must()?);
                            }
                        }
                    }
                    Action::FreeBogus(i) => {
                        if !live.contains_key(&i) {
                            assert!(b.free(i).is_err(), "seed {seed}: freed non-block {i}");
                        }
                    }
                }
                let used: u32 = live.values().map(|v| v.0).sum();
                let held_pages: u32 = held.iter().map(|h| h.1).sum();
                assert_eq!(
                    (b.nr_held(), b.held_pages() as u32),
                    (held.len(), held_pages)
                );
                assert_eq!(
                    b.free_pages() as u32,
                    total - used,
                    "seed {seed} step {step}"
                );
                if let Err(c) = b.validate() {
                    return Err(format!("seed {seed} step {step}: {c:?}"));
                }
            }
            // Freeing everything restores every chunk whole.
            while let Some((i, _)) = b.take_held() {
                b.free(i).must()?;
                live.remove(&i);
            }
            for (&i, _) in live.clone().iter() {
                b.free(i).must()?;
            }
            let mut want: Vec<(u32, Vec<u32>)> = Vec::new();
            for &(s, n) in &chunks {
                let o = n.trailing_zeros();
                match want.iter_mut().find(|w| w.0 == o) {
                    Some(w) => w.1.push(s),
                    None => want.push((o, vec![s])),
                }
            }
            want.sort();
            for w in &mut want {
                w.1.sort();
            }
            assert_eq!(layout(&b), want, "seed {seed}");
        }
        Ok(())
    }
}
