// SPDX-License-Identifier: GPL-2.0

//! Slab caches, pure part: a cache's geometry, a slab's free list, a cache's slab lists.
//!
//! **Geometry** ([`Geometry::new`]) decides, for objects of one size and alignment, how a slab
//! is laid out, as Linux does:
//!
//! - the alignment as SLUB's `calculate_alignment`: at least 8 bytes; with `HWCACHE_ALIGN`,
//!   the cache line, halved while the object fits in half of it;
//! - the *slot* of an object: its size rounded up to the alignment, plus a red zone of one
//!   alignment unit (at least 8 bytes) on either side when the cache has red zones;
//! - the slab order as SLUB's `calculate_order`: at least `4 * (fls(cpus) + 1)` objects when
//!   an order-3 slab holds that many, then the smallest order from there whose leftover is at
//!   most 1/16 of the slab (then 1/8, 1/4, 1/2), never above order 3 (`slub_max_order`,
//!   `PAGE_ALLOC_COSTLY_ORDER`) unless a single object needs more;
//! - the slab descriptor (in-use count, free-list top and one free-list entry, an object
//!   index, per object) as the classic SLAB (mm/slab.c before 6.8) placed it: on the slab, at
//!   its start, for objects below `PAGE_SIZE / 8`; in a separate allocation for larger ones,
//!   whose slabs then hold objects only;
//! - **colouring** as the classic SLAB: the slab's leftover bytes, in units of the cache line
//!   (or of the alignment, if larger), are spread between the slabs: each new slab starts its
//!   objects one colour further on, wrapping around, so that the same object of consecutive
//!   slabs falls on different cache lines. (The classic SLAB left the last colour that fits
//!   unused; here every offset up to the leftover is a colour.)
//!
//! **Free list** ([`Freelist`]): a slab's free objects as a stack of object indices over
//! caller-provided storage (on the slab itself or beside it), with the checks SLUB's debugging
//! makes on a free (an index outside the slab, a double free) and a validator.
//!
//! **Lists** ([`SlabLists`]): a cache's full, partial and empty slabs, doubly linked through
//! the slabs' records, with a validator that also checks each slab is on the list its objects
//! in use call for.
//!
//! Also: the generic caches' size classes ([`kmalloc_class`], Linux's `kmalloc_index`), SLUB's
//! debugging bytes (red zones, poison) and their checks over one object's slot, and the lines
//! of /proc/slabinfo version 2.1.
//!
//! The kernel side (the cache's slab lists, per-CPU object arrays, locks and pages) is
//! `rust/slab_*.rs`, when it lands; this file has no `kernel::` imports and is tested by the
//! host crate.

use crate::buddy::Corruption;

/// The smallest alignment and object slot (x86_64's `ARCH_SLAB_MINALIGN`, a pointer).
pub(crate) const MIN_ALIGN: usize = 8;

/// The cache line (x86_64's `cache_line_size()`): `HWCACHE_ALIGN` and colouring use it.
pub(crate) const CACHE_LINE: usize = 64;

/// The largest slab order a cache chooses (`slub_max_order`, `PAGE_ALLOC_COSTLY_ORDER`),
/// unless a single object needs a larger one.
pub(crate) const MAX_SLAB_ORDER: u32 = 3;

/// The most objects a slab holds (SLUB's `MAX_OBJS_PER_PAGE`): an index fits in 15 bits.
pub(crate) const MAX_OBJECTS: usize = 32767;

/// Bytes of one free-list entry, an object index.
pub(crate) const FREE_ENTRY_BYTES: usize = 2;

/// Bytes of the descriptor's header (in-use count, free-list top, colour, links), before
/// its free-list entries.
pub(crate) const DESCRIPTOR_HEADER: usize = 16;

/// Linux's generic `kmalloc` size classes (`kmalloc_info`, up to `KMALLOC_MAX_CACHE_SIZE`
/// with 4 KiB pages).
pub(crate) const KMALLOC_SIZES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];

/// What a cache's geometry depends on besides its object size and alignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `SLAB_HWCACHE_ALIGN`: align objects to the cache line (halved for small objects).
    pub(crate) hwcache_align: bool,
    /// `SLAB_RED_ZONE`: a red zone on either side of every object.
    pub(crate) red_zone: bool,
}

/// Why a geometry cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GeometryError {
    /// An object size of 0.
    ZeroSize,
    /// An alignment that is not a power of two, or above a page.
    BadAlign,
    /// An object larger than an order-[`MAX_SLAB_ORDER`] slab, or a page size that is not a
    /// power of two.
    TooLarge,
}

/// How a cache lays out its slabs.
///
/// # Invariants
///
/// `objects >= 1`; `descriptor + objects * slot + leftover == page_size << order`; `slot` and
/// `descriptor` are multiples of `align`, a power of two; `colour_off` is a multiple of
/// `align`; `colours >= 1` and `(colours - 1) * colour_off <= leftover`, so that with any
/// colour every object lies inside the slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// The object size asked for.
    pub(crate) object_size: usize,
    /// The objects' alignment.
    pub(crate) align: usize,
    /// Bytes of each of the two red zones (0 without red zones).
    pub(crate) red_zone: usize,
    /// Bytes from one object's slot to the next: red zones, object, padding.
    pub(crate) slot: usize,
    /// The slab's order: 2^order pages.
    pub(crate) order: u32,
    /// Objects per slab.
    pub(crate) objects: usize,
    /// Whether the descriptor is at the start of the slab (else beside it).
    pub(crate) on_slab: bool,
    /// Bytes the descriptor takes in the slab, aligned (0 when off-slab).
    pub(crate) descriptor: usize,
    /// Bytes of the slab used by nothing (before colouring).
    pub(crate) leftover: usize,
    /// One colour's offset.
    pub(crate) colour_off: usize,
    /// Distinct colours: the offsets `0, colour_off, ..` up to the leftover.
    pub(crate) colours: usize,
    /// `ceil(2^32 / slot)`: an offset into the objects is divided by `slot` with a multiply
    /// and a shift (SLUB's `reciprocal_divide` in `obj_to_index`), exact for every offset in
    /// a slab (`offset * slot < 2^32`).
    pub(crate) reciprocal: u64,
}

const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// The smallest order whose slab holds `bytes` (Linux's `get_order`).
fn get_order(bytes: usize, page_size: usize) -> u32 {
    let mut order = 0;
    while (page_size << order) < bytes && order < usize::BITS - 1 {
        order += 1;
    }
    order
}

/// SLUB's `calc_slab_order`: the smallest order from `min_order` up to `max_order` whose slab
/// leaves at most `1 / fraction` of itself over with objects of `size`; `max_order + 1` if
/// none does.
fn calc_slab_order(size: usize, page_size: usize, min_order: u32, fraction: usize) -> u32 {
    let mut order = min_order;
    while order <= MAX_SLAB_ORDER {
        let slab = page_size << order;
        if slab % size <= slab / fraction {
            break;
        }
        order += 1;
    }
    order
}

/// SLUB's `calculate_order` for slots of `size` bytes on a machine of `cpus` CPUs.
pub(crate) fn calculate_order(size: usize, page_size: usize, cpus: usize) -> u32 {
    let size = size.max(1);
    let fls = usize::BITS - cpus.max(1).leading_zeros();
    let max_objects = ((page_size << MAX_SLAB_ORDER) / size).max(1);
    let min_objects = (4 * (fls as usize + 1)).min(max_objects);
    let min_order = get_order(min_objects.saturating_mul(size), page_size);
    if (page_size << min_order) / size > MAX_OBJECTS {
        return get_order(size.saturating_mul(MAX_OBJECTS), page_size).saturating_sub(1);
    }
    let mut fraction = 16;
    while fraction > 1 {
        let order = calc_slab_order(size, page_size, min_order, fraction);
        if order <= MAX_SLAB_ORDER {
            return order;
        }
        fraction /= 2;
    }
    get_order(size, page_size)
}

/// SLUB's `calculate_alignment`: `align` (at least [`MIN_ALIGN`]), raised to the cache line,
/// halved while the object fits in half of it, for `HWCACHE_ALIGN`.
pub(crate) fn calculate_alignment(hwcache_align: bool, align: usize, size: usize) -> usize {
    let mut align = align.max(MIN_ALIGN);
    if hwcache_align {
        let mut line = CACHE_LINE;
        while size <= line / 2 && line > MIN_ALIGN {
            line /= 2;
        }
        align = align.max(line);
    }
    align
}

impl Geometry {
    /// The geometry of a cache of `object_size`-byte objects aligned to `align` (a power of
    /// two, at most a page; 0 means the minimum), on `page_size`-byte pages and `cpus` CPUs.
    pub(crate) fn new(
        object_size: usize,
        align: usize,
        opts: Options,
        page_size: usize,
        cpus: usize,
    ) -> Result<Self, GeometryError> {
        if !page_size.is_power_of_two() || page_size < 4 * CACHE_LINE {
            return Err(GeometryError::TooLarge);
        }
        if object_size == 0 {
            return Err(GeometryError::ZeroSize);
        }
        if align != 0 && (!align.is_power_of_two() || align > page_size) {
            return Err(GeometryError::BadAlign);
        }
        let max_slab = page_size << MAX_SLAB_ORDER;
        if object_size > max_slab {
            return Err(GeometryError::TooLarge);
        }
        let align = calculate_alignment(opts.hwcache_align, align, object_size);
        let red_zone = if opts.red_zone { align } else { 0 };
        let slot = align_up(object_size, align) + 2 * red_zone;
        if slot > max_slab {
            return Err(GeometryError::TooLarge);
        }
        let on_slab = slot < page_size / 8;
        // On the slab, each object also costs its free-list entry.
        let per_object = slot + if on_slab { FREE_ENTRY_BYTES } else { 0 };
        let order = calculate_order(per_object, page_size, cpus);
        let bytes = page_size << order;
        let descriptor_for = |n: usize| {
            if on_slab {
                align_up(DESCRIPTOR_HEADER + n * FREE_ENTRY_BYTES, align)
            } else {
                0
            }
        };
        // The classic SLAB's `cache_estimate`: as many objects as fit beside their descriptor.
        let mut objects = (bytes / per_object).min(MAX_OBJECTS);
        while objects > 0 && descriptor_for(objects) + objects * slot > bytes {
            objects -= 1;
        }
        if objects == 0 {
            return Err(GeometryError::TooLarge);
        }
        let descriptor = descriptor_for(objects);
        let leftover = bytes - descriptor - objects * slot;
        let colour_off = CACHE_LINE.max(align);
        // INVARIANT: `objects >= 1` fit beside the descriptor; the colours stay within the
        // leftover; slot, descriptor and colour_off are multiples of the power of two `align`.
        Ok(Self {
            object_size,
            align,
            red_zone,
            slot,
            order,
            objects,
            on_slab,
            descriptor,
            leftover,
            colour_off,
            colours: leftover / colour_off + 1,
            // `slot > 0` (checked: no division-by-zero path in the kernel).
            reciprocal: ((1u64 << 32) + slot as u64 - 1)
                .checked_div(slot as u64)
                .unwrap_or(0),
        })
    }

    /// Bytes of a slab.
    pub(crate) fn slab_bytes(&self, page_size: usize) -> usize {
        page_size << self.order
    }

    /// The colour after `colour`, wrapping around (the classic SLAB's `colour_next`).
    pub(crate) fn next_colour(&self, colour: usize) -> usize {
        if colour + 1 >= self.colours {
            0
        } else {
            colour + 1
        }
    }

    /// Offset in the slab of the descriptor, for a slab of `colour` (on-slab only).
    pub(crate) fn descriptor_offset(&self, colour: usize) -> usize {
        colour.checked_rem(self.colours).unwrap_or(0) * self.colour_off
    }

    /// Offset in the slab of object `index`'s first byte, for a slab of `colour`.
    pub(crate) fn object_offset(&self, colour: usize, index: usize) -> Option<usize> {
        (index < self.objects).then(|| {
            self.descriptor_offset(colour) + self.descriptor + index * self.slot + self.red_zone
        })
    }

    /// The object whose first byte is at `offset` in a slab of `colour`; `None` for an offset
    /// that is not an object's start (SLUB's "pointer not at the start of an object").
    #[inline]
    pub(crate) fn object_index(&self, colour: usize, offset: usize) -> Option<usize> {
        // As `object_offset(colour, 0)`, without its division: a colour from a slab's tag is
        // always below `colours`.
        if colour >= self.colours {
            return None;
        }
        let first = colour * self.colour_off + self.descriptor + self.red_zone;
        let from = offset.checked_sub(first)?;
        if from >= self.objects * self.slot {
            return None;
        }
        // `from < objects * slot <= 2^15 * ...`: within a slab of at most 2^15 bytes (order
        // 3), or one object of a larger one, so the reciprocal is exact (see `reciprocal`).
        let index = ((from as u64 * self.reciprocal) >> 32) as usize;
        (index * self.slot == from && index < self.objects).then_some(index)
    }
}

/// Why a free was refused, or what the validator found. None of them changes the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FreeError {
    /// An index outside the slab.
    BadIndex,
    /// The object is free already.
    DoubleFree,
}

/// A slab's free objects: a stack of object indices over caller-provided storage of one
/// entry per object. Allocation pops, free pushes: the object freed last is handed out first.
///
/// # Invariants
///
/// `objects <= entries.len()` and `objects <= MAX_OBJECTS`; `entries[..free]` are the free
/// objects' indices, each below `objects` and each once; `free <= objects`.
pub(crate) struct Freelist<S> {
    entries: S,
    objects: usize,
    free: usize,
}

impl<S> Freelist<S>
where
    S: core::ops::DerefMut<Target = [u16]>,
{
    /// A new slab's list, every one of `objects` objects free, handed out in address order;
    /// `None` if the storage is too small or `objects` above [`MAX_OBJECTS`].
    pub(crate) fn new_full(mut entries: S, objects: usize) -> Option<Self> {
        if objects > MAX_OBJECTS || entries.len() < objects {
            return None;
        }
        for (k, e) in entries.iter_mut().take(objects).enumerate() {
            // Popped from the top: index 0 last in, first out.
            *e = (objects - 1 - k) as u16;
        }
        // INVARIANT: entries[..objects] hold each index below `objects` once.
        Some(Self {
            entries,
            objects,
            free: objects,
        })
    }

    /// A list over storage that already holds one (`entries`, `objects`, `free` as
    /// [`Freelist::into_parts`] gave them), checked as far as is cheap: the kernel side keeps
    /// the entries in the slab's own memory and the count in the slab's record.
    pub(crate) fn from_parts(entries: S, objects: usize, free: usize) -> Option<Self> {
        if objects > MAX_OBJECTS || entries.len() < objects || free > objects {
            return None;
        }
        // INVARIANT: the entries are the caller's, as `into_parts` left them; `validate`
        // checks them.
        Some(Self {
            entries,
            objects,
            free,
        })
    }

    /// The storage, the objects and the free count, for [`Freelist::from_parts`].
    // The kernel keeps the parts in the slab and its record; the host tests take them apart.
    #[cfg_attr(not(test), expect(dead_code))]
    pub(crate) fn into_parts(self) -> (S, usize, usize) {
        (self.entries, self.objects, self.free)
    }

    /// Objects free.
    pub(crate) fn free(&self) -> usize {
        self.free
    }

    /// Objects allocated (SLUB's `inuse`).
    pub(crate) fn inuse(&self) -> usize {
        self.objects - self.free
    }

    /// Takes a free object.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<usize> {
        let k = self.free.checked_sub(1)?;
        let i = *self.entries.get(k)?;
        self.free = k;
        Some(usize::from(i))
    }

    /// Whether object `index` is free: a scan of the free entries (the debug path).
    pub(crate) fn is_free(&self, index: usize) -> bool {
        self.entries
            .get(..self.free)
            .is_some_and(|f| f.iter().any(|&e| usize::from(e) == index))
    }

    /// Gives object `index` back. A double free is caught when every object is already free
    /// or when it is the object freed last (SLUB's cheap check); `checked` also scans the
    /// free entries (SLUB's `on_freelist`, with consistency checks on).
    pub(crate) fn push(&mut self, index: usize, checked: bool) -> Result<(), FreeError> {
        if index >= self.objects {
            return Err(FreeError::BadIndex);
        }
        let top = self.free.checked_sub(1).and_then(|k| self.entries.get(k));
        if self.free >= self.objects
            || top.is_some_and(|&t| usize::from(t) == index)
            || (checked && self.is_free(index))
        {
            return Err(FreeError::DoubleFree);
        }
        let e = self.entries.get_mut(self.free).ok_or(FreeError::BadIndex)?;
        // `index < objects <= MAX_OBJECTS` fits in 16 bits.
        *e = index as u16;
        self.free += 1;
        Ok(())
    }

    /// Checks the invariants with `seen`, a scratch bitmap of at least `objects` bits (the
    /// kernel has no room for one on its stack for large slabs, so the caller provides it).
    pub(crate) fn validate(&self, seen: &mut [u64]) -> Result<(), FreeError> {
        if seen.len() * 64 < self.objects || self.free > self.objects {
            return Err(FreeError::BadIndex);
        }
        seen.iter_mut().for_each(|w| *w = 0);
        for &e in self.entries.get(..self.free).unwrap_or(&[]) {
            let i = usize::from(e);
            if i >= self.objects {
                return Err(FreeError::BadIndex);
            }
            let (w, bit) = (i / 64, 1u64 << (i % 64));
            let word = seen.get_mut(w).ok_or(FreeError::BadIndex)?;
            if *word & bit != 0 {
                return Err(FreeError::DoubleFree);
            }
            *word |= bit;
        }
        Ok(())
    }
}

/// Which of a cache's lists a slab is on (SLUB's `partial` and `full`, the classic SLAB's
/// `slabs_empty` too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Which {
    /// On no list (being set up or torn down).
    None,
    /// Every object allocated.
    Full,
    /// Some objects allocated, some free.
    Partial,
    /// No object allocated.
    Empty,
}

impl Which {
    /// The list a slab with `inuse` of `objects` objects allocated belongs on.
    pub(crate) fn for_inuse(inuse: usize, objects: usize) -> Self {
        if inuse == 0 {
            Which::Empty
        } else if inuse >= objects {
            Which::Full
        } else {
            Which::Partial
        }
    }

    fn list(self) -> Option<usize> {
        match self {
            Which::None => None,
            Which::Full => Some(0),
            Which::Partial => Some(1),
            Which::Empty => Some(2),
        }
    }
}

/// End of a list.
const NIL: u32 = u32::MAX;

/// A slab's links on its cache's lists (a field of the slab's record, wherever the kernel
/// side keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Links {
    next: u32,
    prev: u32,
    which: Which,
}

impl Links {
    /// On no list.
    pub(crate) const NONE: Self = Self {
        next: NIL,
        prev: NIL,
        which: Which::None,
    };
}

/// A cache's full, partial and empty lists of slabs, doubly linked through the [`Links`] of
/// slab records `0..links.len()` (the caller's storage, indexed by slab id). New and freed-to
/// slabs go to the front of their list, so that allocation takes the partial slab used
/// last.
///
/// # Invariants
///
/// Each list is a consistent doubly linked list from `head[l]`, `len[l]` long, of exactly the
/// records whose `which` names it; records on no list have `Which::None` and no links.
pub(crate) struct SlabLists<S> {
    links: S,
    head: [u32; 3],
    len: [usize; 3],
}

impl<S> SlabLists<S>
where
    S: core::ops::DerefMut<Target = [Links]>,
{
    /// Empty lists over `links` (every record set to [`Links::NONE`]).
    pub(crate) fn new(mut links: S) -> Self {
        links.iter_mut().for_each(|l| *l = Links::NONE);
        Self {
            links,
            head: [NIL; 3],
            len: [0; 3],
        }
    }

    /// Moves the lists onto `bigger` storage (at least as long): the records are copied, the
    /// new ones set to [`Links::NONE`]; the old storage is returned, or `bigger` itself if it
    /// is too short. For a caller that allocates storage outside its lock.
    pub(crate) fn replace_storage(&mut self, mut bigger: S) -> Result<S, S> {
        if bigger.len() < self.links.len() {
            return Err(bigger);
        }
        for (i, l) in bigger.iter_mut().enumerate() {
            *l = self.links.get(i).copied().unwrap_or(Links::NONE);
        }
        Ok(core::mem::replace(&mut self.links, bigger))
    }

    /// Records the storage has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.links.len()
    }

    /// Slabs on `which`.
    pub(crate) fn len(&self, which: Which) -> usize {
        which.list().map_or(0, |l| self.len[l])
    }

    /// The slab at the front of `which`.
    pub(crate) fn first(&self, which: Which) -> Option<u32> {
        let h = self.head[which.list()?];
        (h != NIL).then_some(h)
    }

    /// The list slab `id` is on (`None` for an id outside the storage).
    pub(crate) fn which(&self, id: u32) -> Option<Which> {
        self.links.get(id as usize).map(|l| l.which)
    }

    /// Moves slab `id` to the front of `to` (off its list for [`Which::None`]); returns
    /// `false` for an id outside the storage.
    pub(crate) fn move_to(&mut self, id: u32, to: Which) -> bool {
        let Some(&at) = self.links.get(id as usize) else {
            return false;
        };
        if at.which == to {
            return true;
        }
        // Unlink.
        if let Some(l) = at.which.list() {
            match self.links.get_mut(at.prev as usize) {
                Some(p) => p.next = at.next,
                None => self.head[l] = at.next,
            }
            if let Some(n) = self.links.get_mut(at.next as usize) {
                n.prev = at.prev;
            }
            self.len[l] -= 1;
        }
        let mut links = Links::NONE;
        // Link at the front.
        if let Some(l) = to.list() {
            let old = self.head[l];
            if let Some(n) = self.links.get_mut(old as usize) {
                n.prev = id;
            }
            links = Links {
                next: old,
                prev: NIL,
                which: to,
            };
            self.head[l] = id;
            self.len[l] += 1;
        }
        if let Some(me) = self.links.get_mut(id as usize) {
            *me = links;
        }
        true
    }

    /// Checks every invariant, and that each slab is on the list its allocated objects call
    /// for: `inuse(id)` gives a slab's (allocated, objects), `None` for a record in no use.
    pub(crate) fn validate(
        &self,
        inuse: impl Fn(u32) -> Option<(usize, usize)>,
    ) -> Result<(), Corruption> {
        // `index` is the slab's id (`u32::MAX`: a list head or count).
        let bad = |index: u32, what: &'static str| Err(Corruption { index, what });
        for (l, which) in [Which::Full, Which::Partial, Which::Empty]
            .into_iter()
            .enumerate()
        {
            let (mut at, mut prev, mut n) = (self.head[l], NIL, 0usize);
            while at != NIL {
                let Some(me) = self.links.get(at as usize) else {
                    return bad(at, "a list link points outside the records");
                };
                if me.which != which {
                    return bad(at, "a slab on a list it does not name");
                }
                if me.prev != prev {
                    return bad(at, "a back link does not point to the previous slab");
                }
                n += 1;
                if n > self.links.len() {
                    return bad(at, "a list loops");
                }
                (prev, at) = (at, me.next);
            }
            if n != self.len[l] {
                return bad(NIL, "a list's count is not its length");
            }
        }
        let listed: usize = self.len.iter().sum();
        let mut named = 0;
        for (id, me) in self.links.iter().enumerate() {
            let id = id as u32;
            match (me.which, inuse(id)) {
                (Which::None, None) => {}
                (Which::None, Some(_)) => return bad(id, "a slab in use on no list"),
                (_, None) => return bad(id, "a record in no use on a list"),
                (w, Some((used, objects))) => {
                    named += 1;
                    if w != Which::for_inuse(used, objects) {
                        return bad(id, "a slab on the wrong list for its objects in use");
                    }
                }
            }
        }
        if named != listed {
            return bad(NIL, "records naming a list are not the lists' slabs");
        }
        Ok(())
    }
}

/// A slab's record as a cache's [`Node`] keeps it (the kernel side's has the pool block, the
/// colour, the owner records): where its free list's entries are, and its free count.
pub(crate) trait SlabRecord {
    /// The free list's entries (one per object: on the slab itself or beside it) and the
    /// number of free objects, whose entries are the first ones.
    fn freelist(&mut self) -> (&mut [u16], &mut usize);
}

/// A cache's slabs (the classic SLAB's `kmem_cache_node`): records by slab id in `slabs`,
/// their full, partial and empty lists, and the counts. The kernel side holds it under the
/// cache's node lock and grows its storage outside the lock ([`Node::grow`]).
///
/// # Invariants
///
/// The lists' records are exactly the `Some` slots of `slabs`, each on the list its objects
/// in use call for; `nr_slabs` is their number and `inuse` the sum of their objects in use;
/// every record's free list is valid for `objects` objects.
pub(crate) struct Node<R, V, L> {
    lists: SlabLists<L>,
    slabs: V,
    objects: usize,
    nr_slabs: usize,
    inuse: usize,
    _record: core::marker::PhantomData<R>,
}

impl<R, V, L> Node<R, V, L>
where
    R: SlabRecord,
    V: core::ops::DerefMut<Target = [Option<R>]>,
    L: core::ops::DerefMut<Target = [Links]>,
{
    /// A node over storage `slabs` and `links` of the same length (emptied), for slabs of
    /// `objects` objects.
    pub(crate) fn new(mut slabs: V, links: L, objects: usize) -> Self {
        slabs.iter_mut().for_each(|s| *s = None);
        // INVARIANT: no records, empty lists.
        Self {
            lists: SlabLists::new(links),
            slabs,
            objects,
            nr_slabs: 0,
            inuse: 0,
            _record: core::marker::PhantomData,
        }
    }

    /// Slabs.
    pub(crate) fn nr_slabs(&self) -> usize {
        self.nr_slabs
    }

    /// Objects off the slabs' free lists.
    pub(crate) fn inuse(&self) -> usize {
        self.inuse
    }

    /// Slabs on `which`.
    pub(crate) fn len(&self, which: Which) -> usize {
        self.lists.len(which)
    }

    /// The list slab `id` is on.
    pub(crate) fn which(&self, id: usize) -> Option<Which> {
        self.lists.which(u32::try_from(id).ok()?)
    }

    /// Records the storage has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.slabs.len().min(self.lists.capacity())
    }

    /// Slab `id`'s record.
    pub(crate) fn get(&self, id: usize) -> Option<&R> {
        self.slabs.get(id)?.as_ref()
    }

    /// Slab `id`'s record, to change what the node does not look at (its free list and
    /// count stay the node's).
    pub(crate) fn get_mut(&mut self, id: usize) -> Option<&mut R> {
        self.slabs.get_mut(id)?.as_mut()
    }

    /// Every slab, by id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &R)> {
        self.slabs
            .iter()
            .enumerate()
            .filter_map(|(id, s)| Some((id, s.as_ref()?)))
    }

    /// Whether object `index` of slab `id` is free (a scan: the debugging path); `None` for
    /// no slab.
    pub(crate) fn is_free(&mut self, id: usize, index: usize) -> Option<bool> {
        let objects = self.objects;
        let (entries, free) = self.slabs.get_mut(id)?.as_mut()?.freelist();
        Some(Freelist::from_parts(entries, objects, *free)?.is_free(index))
    }

    /// The id a new slab would get: the first free record.
    pub(crate) fn free_id(&self) -> Option<usize> {
        self.slabs.iter().position(Option::is_none)
    }

    /// Adds a slab whose objects are all free, under the first free id, on the empty list;
    /// gives it back when the storage is full (see [`Node::grow`]) or it is not all free.
    pub(crate) fn insert(&mut self, mut rec: R) -> Result<usize, R> {
        {
            let (_, free) = rec.freelist();
            if *free != self.objects {
                return Err(rec);
            }
        }
        let Some(id) = self.free_id().filter(|&id| id < self.lists.capacity()) else {
            return Err(rec);
        };
        let Some(slot) = self.slabs.get_mut(id) else {
            return Err(rec);
        };
        *slot = Some(rec);
        self.lists.move_to(id as u32, Which::Empty);
        // INVARIANT: a new record with no object in use, on the empty list.
        self.nr_slabs += 1;
        Ok(id)
    }

    /// Takes a free object, from the partial slab used last, else an empty one: its slab id
    /// and index.
    pub(crate) fn pop(&mut self) -> Option<(usize, usize)> {
        let id = self
            .lists
            .first(Which::Partial)
            .or_else(|| self.lists.first(Which::Empty))?;
        let objects = self.objects;
        let (entries, free) = self.slabs.get_mut(id as usize)?.as_mut()?.freelist();
        let mut fl = Freelist::from_parts(entries, objects, *free)?;
        let index = fl.pop()?;
        *free = fl.free();
        let now = Which::for_inuse(objects - *free, objects);
        self.inuse += 1;
        self.lists.move_to(id, now);
        Some((id as usize, index))
    }

    /// Gives object `index` of slab `id` back; refused (nothing changed) for no slab, an index
    /// outside it, or a double free where it is caught (`checked`: a scan of the free list).
    pub(crate) fn push(&mut self, id: usize, index: usize, checked: bool) -> Result<(), FreeError> {
        let objects = self.objects;
        let (entries, free) = self
            .slabs
            .get_mut(id)
            .and_then(Option::as_mut)
            .ok_or(FreeError::BadIndex)?
            .freelist();
        let mut fl = Freelist::from_parts(entries, objects, *free).ok_or(FreeError::BadIndex)?;
        fl.push(index, checked)?;
        *free = fl.free();
        let now = Which::for_inuse(objects - *free, objects);
        self.inuse -= 1;
        self.lists.move_to(id as u32, now);
        Ok(())
    }

    /// Takes an empty slab off the node when more than `keep` are empty: its id and record.
    pub(crate) fn take_empty(&mut self, keep: usize) -> Option<(usize, R)> {
        if self.lists.len(Which::Empty) <= keep {
            return None;
        }
        let id = self.lists.first(Which::Empty)? as usize;
        self.take(id)
    }

    /// Takes any slab off the node, objects in use or not (teardown): its id and record.
    pub(crate) fn take_any(&mut self) -> Option<(usize, R)> {
        let id = self.slabs.iter().position(Option::is_some)?;
        self.take(id)
    }

    fn take(&mut self, id: usize) -> Option<(usize, R)> {
        let mut rec = self.slabs.get_mut(id)?.take()?;
        let (_, free) = rec.freelist();
        self.inuse -= self.objects - *free;
        self.nr_slabs -= 1;
        self.lists.move_to(id as u32, Which::None);
        Some((id, rec))
    }

    /// Moves the node onto larger storage (`slabs` and `links` of one length, at least the
    /// present one); returns the old storage, emptied, or the new one if it is too short.
    pub(crate) fn grow(&mut self, mut slabs: V, links: L) -> Result<(V, L), (V, L)> {
        if slabs.len() < self.slabs.len() || links.len() != slabs.len() {
            return Err((slabs, links));
        }
        let old_links = match self.lists.replace_storage(links) {
            Ok(old) => old,
            Err(links) => return Err((slabs, links)),
        };
        slabs.iter_mut().for_each(|s| *s = None);
        for (new, old) in slabs.iter_mut().zip(self.slabs.iter_mut()) {
            *new = old.take();
        }
        let old_slabs = core::mem::replace(&mut self.slabs, slabs);
        Ok((old_slabs, old_links))
    }

    /// Checks every invariant, with `seen` a scratch bitmap of at least `objects` bits.
    pub(crate) fn validate(&mut self, seen: &mut [u64]) -> Result<(), &'static str> {
        let objects = self.objects;
        let (mut count, mut inuse) = (0, 0);
        for (id, s) in self.slabs.iter_mut().enumerate() {
            let listed = self.lists.which(id as u32);
            let Some(s) = s else {
                if listed.is_some_and(|w| w != Which::None) {
                    return Err("a record in no use on a list");
                }
                continue;
            };
            let (entries, free) = s.freelist();
            let fl = Freelist::from_parts(entries, objects, *free)
                .ok_or("a slab's free list is out of range")?;
            fl.validate(seen).map_err(|e| match e {
                FreeError::DoubleFree => "an object is on a free list twice",
                FreeError::BadIndex => "a free list names an object outside its slab",
            })?;
            let used = fl.inuse();
            if listed != Some(Which::for_inuse(used, objects)) {
                return Err("a slab on the wrong list for its objects in use");
            }
            count += 1;
            inuse += used;
        }
        if count != self.nr_slabs {
            return Err("the slab count is not the number of slabs");
        }
        if inuse != self.inuse {
            return Err("the objects in use are not the slabs' sum");
        }
        // The lists' links and counts (membership was checked above): a representative use
        // for each list.
        let lists = &self.lists;
        lists
            .validate(|id| match lists.which(id)? {
                Which::None => None,
                Which::Full => Some((objects, objects)),
                Which::Partial => Some((1, objects)),
                Which::Empty => Some((0, objects)),
            })
            .map_err(|c| c.what)
    }
}

/// The generic cache serving a `kmalloc` of `size` bytes: its index in [`KMALLOC_SIZES`]
/// (Linux's `kmalloc_index`: 72..96 bytes go to the 96-byte cache, 136..192 to the 192-byte
/// one); `None` for 0 bytes or above the largest class, which go to the buddy pool
/// (`kmalloc_large`).
#[inline]
pub(crate) fn kmalloc_class(size: usize) -> Option<usize> {
    // Linux's `size_index` for up to 192 bytes (8-byte steps), then powers of two: a table
    // look-up or a bit scan, not a search (every `kmalloc` asks).
    const SMALL: [u8; 24] = [
        0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6,
    ];
    match size {
        0 => None,
        1..=192 => SMALL.get((size - 1) / 8).map(|&k| usize::from(k)),
        193..=8192 => {
            // 256 is class 7, 512 class 8, ... 8192 class 12.
            let log = usize::BITS - (size - 1).leading_zeros();
            Some(log as usize - 1)
        }
        _ => None,
    }
}

/// The buddy order of a `kmalloc` above the largest class (`kmalloc_large`: `get_order`).
pub(crate) fn kmalloc_large_order(size: usize, page_size: usize) -> u32 {
    get_order(size, page_size)
}

/// SLUB's debugging bytes (include/linux/poison.h).
pub(crate) mod debug_bytes {
    /// A red zone around a free object.
    pub(crate) const RED_INACTIVE: u8 = 0xbb;
    /// A red zone around an allocated object.
    pub(crate) const RED_ACTIVE: u8 = 0xcc;
    /// A free object's bytes.
    pub(crate) const POISON_FREE: u8 = 0x6b;
    /// A free object's last byte.
    pub(crate) const POISON_END: u8 = 0xa5;
}

/// Damage found by a debug check: the first wrong byte's offset in the slot and its value,
/// and what it should have been.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) offset: usize,
    pub(crate) found: u8,
    pub(crate) expected: u8,
}

/// The first byte of `bytes` (at `base` in the slot) that differs from `expected(k)`.
fn first_wrong(bytes: &[u8], base: usize, expected: impl Fn(usize) -> u8) -> Result<(), Damage> {
    match bytes.iter().enumerate().find(|&(k, &b)| b != expected(k)) {
        Some((k, &found)) => Err(Damage {
            offset: base + k,
            found,
            expected: expected(k),
        }),
        None => Ok(()),
    }
}

impl Geometry {
    /// The object's bytes within its slot: `red_zone..red_zone + object_size`.
    fn object_range(&self) -> core::ops::Range<usize> {
        self.red_zone..self.red_zone + self.object_size
    }

    /// Fills the red zones of `slot` (one object's slot, `self.slot` bytes): the bytes before
    /// the object and all after it to the slot's end, [`debug_bytes::RED_ACTIVE`] for an
    /// allocated object, [`debug_bytes::RED_INACTIVE`] for a free one.
    pub(crate) fn fill_red_zones(&self, slot: &mut [u8], active: bool) {
        let v = if active {
            debug_bytes::RED_ACTIVE
        } else {
            debug_bytes::RED_INACTIVE
        };
        let object = self.object_range();
        for (k, b) in slot.iter_mut().enumerate().take(self.slot) {
            if !object.contains(&k) {
                *b = v;
            }
        }
    }

    /// Checks the red zones of `slot` as [`Geometry::fill_red_zones`] left them (a cache
    /// without red zones still has the padding after the object, which it checks alike).
    pub(crate) fn check_red_zones(&self, slot: &[u8], active: bool) -> Result<(), Damage> {
        let v = if active {
            debug_bytes::RED_ACTIVE
        } else {
            debug_bytes::RED_INACTIVE
        };
        let object = self.object_range();
        let before = slot.get(..object.start).unwrap_or(&[]);
        first_wrong(before, 0, |_| v)?;
        let after = slot.get(object.end..self.slot).unwrap_or(&[]);
        first_wrong(after, object.end, |_| v)
    }

    /// Poisons the object in `slot` as SLUB poisons a free object: every byte
    /// [`debug_bytes::POISON_FREE`], the last [`debug_bytes::POISON_END`].
    pub(crate) fn poison(&self, slot: &mut [u8]) {
        let object = self.object_range();
        let last = object.end - 1;
        for (k, b) in slot
            .iter_mut()
            .enumerate()
            .take(object.end)
            .skip(object.start)
        {
            *b = if k == last {
                debug_bytes::POISON_END
            } else {
                debug_bytes::POISON_FREE
            };
        }
    }

    /// Checks a free object's poison (a write after free changes it).
    pub(crate) fn check_poison(&self, slot: &[u8]) -> Result<(), Damage> {
        let object = self.object_range();
        let last = self.object_size - 1;
        let bytes = slot.get(object.clone()).unwrap_or(&[]);
        first_wrong(bytes, object.start, |k| {
            if k == last {
                debug_bytes::POISON_END
            } else {
                debug_bytes::POISON_FREE
            }
        })
    }
}

/// One line of /proc/slabinfo (version 2.1) for a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabInfo<'a> {
    pub(crate) name: &'a str,
    pub(crate) active_objs: usize,
    pub(crate) num_objs: usize,
    /// Bytes an object takes in the slab (SLUB's `s->size`: the slot).
    pub(crate) objsize: usize,
    pub(crate) objperslab: usize,
    pub(crate) pagesperslab: usize,
    /// The per-CPU arrays' `limit` and `batchcount` (SLUB prints 0; the classic SLAB, its
    /// array caches' tunables, as minimm does).
    pub(crate) limit: usize,
    pub(crate) batchcount: usize,
    pub(crate) active_slabs: usize,
    pub(crate) num_slabs: usize,
}

/// /proc/slabinfo's two header lines (mm/slab_common.c `print_slabinfo_header`).
pub(crate) fn write_slabinfo_header(f: &mut impl core::fmt::Write) -> core::fmt::Result {
    f.write_str("slabinfo - version: 2.1\n")?;
    f.write_str(
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>",
    )?;
    f.write_str(" : tunables <limit> <batchcount> <sharedfactor>")?;
    f.write_str(" : slabdata <active_slabs> <num_slabs> <sharedavail>\n")
}

/// A cache's /proc/slabinfo line (mm/slab_common.c `cache_show`); no shared arrays, so
/// `sharedfactor` and `sharedavail` are 0.
pub(crate) fn write_slabinfo_line(
    f: &mut impl core::fmt::Write,
    s: &SlabInfo<'_>,
) -> core::fmt::Result {
    writeln!(
        f,
        "{:<17} {:6} {:6} {:6} {:4} {:4} : tunables {:4} {:4} {:4} : slabdata {:6} {:6} {:6}",
        s.name,
        s.active_objs,
        s.num_objs,
        s.objsize,
        s.objperslab,
        s.pagesperslab,
        s.limit,
        s.batchcount,
        0,
        s.active_slabs,
        s.num_slabs,
        0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buddy::tests::Must;
    use std::{collections::BTreeSet, string::String, vec, vec::Vec};

    const PAGE: usize = 4096;

    fn geometry(size: usize) -> Result<Geometry, String> {
        Geometry::new(size, 0, Options::default(), PAGE, 2).must_be("a generic size's geometry")
    }

    /// Orders as SLUB chooses them for the generic sizes on a 2-CPU machine (what
    /// /proc/slabinfo shows as `pagesperslab`), and objects per slab as SLUB for the sizes
    /// whose descriptor is off the slab (512 bytes up) and as the classic SLAB's
    /// `cache_estimate` for those whose descriptor is on it.
    #[test]
    fn generic_sizes_follow_linux() -> Result<(), String> {
        let slub_order = [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3];
        let slub_objects = [512, 256, 128, 64, 42, 32, 21, 16, 16, 16, 16, 8, 4];
        for (k, &size) in KMALLOC_SIZES.iter().enumerate() {
            let g = geometry(size)?;
            assert_eq!(g.order, slub_order[k], "order of kmalloc-{size}");
            assert_eq!(g.on_slab, size < PAGE / 8, "descriptor of kmalloc-{size}");
            if g.on_slab {
                // (slab - header) / (size + 2), less any that the aligned descriptor crowds out.
                let mut n = (PAGE - DESCRIPTOR_HEADER) / (size + FREE_ENTRY_BYTES);
                while align_up(DESCRIPTOR_HEADER + 2 * n, 8) + n * size > PAGE {
                    n -= 1;
                }
                assert_eq!(g.objects, n, "objects of kmalloc-{size}");
            } else {
                assert_eq!(g.objects, slub_objects[k], "objects of kmalloc-{size}");
            }
        }
        // Worked by hand: 256-byte objects, 15 of them beside a 48-byte descriptor, 208 bytes
        // over: colours at 0, 64, 128 and 192.
        let g = geometry(256)?;
        assert_eq!(
            (g.objects, g.descriptor, g.leftover, g.colours),
            (15, 48, 208, 4)
        );
        // 8-byte objects: 408 and a 832-byte descriptor fill the page exactly.
        let g = geometry(8)?;
        assert_eq!(
            (g.objects, g.descriptor, g.leftover, g.colours),
            (408, 832, 0, 1)
        );
        Ok(())
    }

    #[test]
    fn slub_order_choice() -> Result<(), String> {
        // More CPUs ask for more objects a slab: 64 CPUs, 4 * (7 + 1) = 32 objects.
        assert_eq!(calculate_order(256, PAGE, 64), 1);
        assert_eq!(calculate_order(256, PAGE, 1), 0);
        // 700-byte slots: 12 objects need order 2 (8400 bytes > 8192), whose 16384 % 700 = 284
        // is within 1/16; with 64 CPUs, 32 objects need order 3.
        assert_eq!(calculate_order(700, PAGE, 2), 2);
        assert_eq!(calculate_order(700, PAGE, 64), 3);
        // 3000 bytes: 12 would need order 4; an order-3 slab holds 10, at most 1/16 over.
        assert_eq!(calculate_order(3000, PAGE, 2), 3);
        // An object larger than an order-3 slab takes the order it needs.
        assert_eq!(calculate_order(40000, PAGE, 2), 4);
        Ok(())
    }

    #[test]
    fn alignment_follows_slub() -> Result<(), String> {
        assert_eq!(calculate_alignment(false, 0, 1), 8);
        assert_eq!(calculate_alignment(false, 32, 1), 32);
        // HWCACHE_ALIGN: a 20-byte object gets 32, a 33-byte one the whole line.
        assert_eq!(calculate_alignment(true, 0, 20), 32);
        assert_eq!(calculate_alignment(true, 0, 33), 64);
        assert_eq!(calculate_alignment(true, 0, 4), 8);
        assert_eq!(calculate_alignment(true, 128, 33), 128);
        let g = Geometry::new(
            100,
            0,
            Options {
                hwcache_align: true,
                red_zone: false,
            },
            PAGE,
            2,
        );
        assert_eq!(g.map(|g| (g.align, g.slot)), Ok((64, 128)));
        Ok(())
    }

    #[test]
    fn bad_requests_are_refused() -> Result<(), String> {
        let new = |size, align| Geometry::new(size, align, Options::default(), PAGE, 2);
        assert_eq!(new(0, 0), Err(GeometryError::ZeroSize));
        assert_eq!(new(8, 3), Err(GeometryError::BadAlign));
        assert_eq!(new(8, 2 * PAGE), Err(GeometryError::BadAlign));
        assert_eq!(new(PAGE * 8 + 1, 0), Err(GeometryError::TooLarge));
        assert!(new(PAGE * 8, 0).is_ok(), "one object fills an order-3 slab");
        assert!(new(PAGE, PAGE).is_ok());
        assert_eq!(
            Geometry::new(8, 0, Options::default(), 1000, 2),
            Err(GeometryError::TooLarge)
        );
        Ok(())
    }

    #[test]
    fn red_zones_surround_each_object() -> Result<(), String> {
        let g = Geometry::new(
            24,
            0,
            Options {
                hwcache_align: false,
                red_zone: true,
            },
            PAGE,
            2,
        )
        .must_be("geometry")?;
        assert_eq!((g.red_zone, g.slot), (8, 40));
        let first = g.object_offset(0, 0).must_be("object 0")?;
        assert_eq!(first, g.descriptor + 8);
        assert_eq!(g.object_index(0, first), Some(0));
        assert_eq!(g.object_index(0, first + 40), Some(1));
        assert_eq!(g.object_index(0, first - 8), None, "the left red zone");
        assert_eq!(g.object_index(0, first + 24), None, "the right red zone");
        Ok(())
    }

    #[test]
    fn colours_shift_objects_by_a_cache_line_and_wrap() -> Result<(), String> {
        let g = geometry(256)?;
        assert_eq!(g.colours, 4);
        let mut c = 0;
        let mut offsets = Vec::new();
        for _ in 0..6 {
            offsets.push(g.object_offset(c, 0).must_be("object 0")?);
            c = g.next_colour(c);
        }
        assert_eq!(offsets, [48, 112, 176, 240, 48, 112]);
        assert_eq!(g.object_index(1, 112 + 256), Some(1));
        assert_eq!(
            g.object_index(1, 48),
            None,
            "colour 0's first object is not colour 1's"
        );
        assert_eq!(g.object_offset(0, g.objects), None);
        Ok(())
    }

    /// Every geometry of random sizes, alignments and options keeps its invariants, and with
    /// every colour every object lies inside the slab, aligned, without overlapping the
    /// descriptor or another object.
    #[test]
    fn random_geometries_keep_their_invariants() -> Result<(), String> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = 1 + (x % 20_000) as usize;
            let align = [0, 1, 8, 16, 64, 256, 4096][(x >> 20) as usize % 7];
            let opts = Options {
                hwcache_align: x >> 30 & 1 == 1,
                red_zone: x >> 31 & 1 == 1,
            };
            let cpus = 1 + (x >> 40) as usize % 64;
            let Ok(g) = Geometry::new(size, align, opts, PAGE, cpus) else {
                assert!(size + 2 * align.max(8) > PAGE * 8 || align > PAGE);
                continue;
            };
            let bytes = g.slab_bytes(PAGE);
            assert!(g.objects >= 1 && g.objects <= MAX_OBJECTS);
            assert_eq!(g.descriptor + g.objects * g.slot + g.leftover, bytes);
            assert!(g.align.is_power_of_two() && g.align >= align.max(8));
            assert_eq!(g.slot % g.align, 0);
            assert!(g.slot >= size + 2 * g.red_zone);
            assert!(g.order <= MAX_SLAB_ORDER);
            assert!((g.colours - 1) * g.colour_off <= g.leftover);
            for c in [0, g.colours - 1] {
                let last = g.object_offset(c, g.objects - 1).must_be("last object")?;
                assert!(last + size + g.red_zone <= bytes);
                let first = g.object_offset(c, 0).must_be("first object")?;
                assert_eq!(first % g.align, 0);
                assert!(first >= g.descriptor_offset(c) + g.descriptor + g.red_zone);
                assert_eq!(g.object_index(c, last), Some(g.objects - 1));
            }
        }
        Ok(())
    }

    /// A cache's slabs as the kernel side will run them: each slab a free list, on the list
    /// its objects in use call for; random allocations (from the front partial slab, else an
    /// empty one, else a new slab), frees and shrinks (empty slabs beyond a floor go), against
    /// a model, with both validators after every step.
    #[test]
    fn slab_lists_follow_the_slabs() -> Result<(), String> {
        const SLABS: usize = 16;
        const OBJECTS: usize = 5;
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut lists = SlabLists::new(vec![Links::NONE; SLABS]);
        let mut slabs: Vec<Option<Freelist<Vec<u16>>>> = (0..SLABS).map(|_| None).collect();
        let mut live: Vec<(u32, usize)> = Vec::new();
        let mut seen = [0u64; 1];
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 7 {
                0..=3 => {
                    let id = lists
                        .first(Which::Partial)
                        .or_else(|| lists.first(Which::Empty))
                        .or_else(|| {
                            let id = slabs.iter().position(|s| s.is_none())?;
                            *slabs.get_mut(id)? = Freelist::new_full(vec![0; OBJECTS], OBJECTS);
                            let id = id as u32;
                            assert!(lists.move_to(id, Which::Empty));
                            Some(id)
                        });
                    let Some(id) = id else {
                        assert_eq!(live.len(), SLABS * OBJECTS, "step {step}");
                        continue;
                    };
                    let f = slabs
                        .get_mut(id as usize)
                        .and_then(|s| s.as_mut())
                        .must_be("slab")?;
                    let i = f
                        .pop()
                        .must_be("a free object on a partial or empty slab")?;
                    assert!(lists.move_to(id, Which::for_inuse(f.inuse(), OBJECTS)));
                    live.push((id, i));
                }
                4 | 5 if !live.is_empty() => {
                    let (id, i) = live.swap_remove((x >> 16) as usize % live.len());
                    let f = slabs
                        .get_mut(id as usize)
                        .and_then(|s| s.as_mut())
                        .must_be("slab")?;
                    assert_eq!(f.push(i, true), Ok(()));
                    assert!(lists.move_to(id, Which::for_inuse(f.inuse(), OBJECTS)));
                }
                _ => {
                    // Shrink to a floor of one empty slab.
                    while lists.len(Which::Empty) > 1 {
                        let id = lists.first(Which::Empty).must_be("an empty slab")?;
                        assert!(lists.move_to(id, Which::None));
                        *slabs.get_mut(id as usize).must_be("slab")? = None;
                    }
                }
            }
            let inuse = |id: u32| {
                let f = slabs.get(id as usize)?.as_ref()?;
                Some((f.inuse(), OBJECTS))
            };
            assert_eq!(lists.validate(inuse), Ok(()), "step {step}");
            for f in slabs.iter().flatten() {
                assert_eq!(f.validate(&mut seen), Ok(()));
            }
            let allocated: usize = slabs.iter().flatten().map(|f| f.inuse()).sum();
            assert_eq!(allocated, live.len());
        }
        // A corrupted list is caught.
        let mut broken = SlabLists::new(vec![Links::NONE; 2]);
        broken.move_to(0, Which::Full);
        assert!(
            broken.validate(|_| Some((1, 2))).is_err(),
            "wrong list, and 1 unlisted"
        );
        assert!(!broken.move_to(5, Which::Full));
        Ok(())
    }

    /// A test slab record: its free list beside it.
    struct TestSlab {
        entries: Vec<u16>,
        free: usize,
    }

    impl SlabRecord for TestSlab {
        fn freelist(&mut self) -> (&mut [u16], &mut usize) {
            (&mut self.entries, &mut self.free)
        }
    }

    fn test_slab(objects: usize) -> Result<TestSlab, String> {
        let fl = Freelist::new_full(vec![0u16; objects], objects).must_be("a free list")?;
        let (entries, _, free) = fl.into_parts();
        Ok(TestSlab { entries, free })
    }

    /// The node the kernel side runs, under random allocations (a new slab when none has a
    /// free object, the storage grown when full), frees, double frees, frees of made-up
    /// objects and shrinks to a random floor, against a model of the live objects, with
    /// `validate()` after every step; then teardown takes every slab.
    #[test]
    fn node_agrees_with_a_model() -> Result<(), String> {
        for (seed, objects) in [(1u64, 1usize), (2, 2), (3, 7), (4, 64), (5, 300)] {
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
            let mut rng = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut node: Node<TestSlab, Vec<Option<TestSlab>>, Vec<Links>> =
                Node::new(Vec::new(), Vec::new(), objects);
            let mut live: BTreeSet<(usize, usize)> = BTreeSet::new();
            let mut seen = vec![0u64; objects.div_ceil(64)];
            let (mut made, mut gone) = (0usize, 0usize);
            for step in 0..6000 {
                match rng() % 10 {
                    0..=4 => {
                        if node.pop().map(|at| live.insert(at)) == Some(false) {
                            return Err(format!("step {step}: an object handed out twice"));
                        }
                        if node.len(Which::Partial) + node.len(Which::Empty) == 0
                            && live.len() == node.nr_slabs() * objects
                        {
                            let mut slab = test_slab(objects)?;
                            loop {
                                match node.insert(slab) {
                                    Ok(_) => break,
                                    Err(back) => {
                                        slab = back;
                                        let n = (node.capacity() * 2).max(2);
                                        let slabs = (0..n).map(|_| None).collect();
                                        node.grow(slabs, vec![Links::NONE; n])
                                            .map_err(|_| "grow refused".to_string())?;
                                    }
                                }
                            }
                            made += 1;
                        }
                    }
                    5..=7 if !live.is_empty() => {
                        let k = rng() as usize % live.len();
                        let at = *live.iter().nth(k).must()?;
                        assert_eq!(node.push(at.0, at.1, false), Ok(()));
                        live.remove(&at);
                        // The same object again: refused, nothing changed.
                        assert_eq!(node.push(at.0, at.1, true), Err(FreeError::DoubleFree));
                    }
                    8 => {
                        let id = rng() as usize % (node.capacity() + 2);
                        let r = node.push(id, objects + (rng() as usize % 3), true);
                        assert_eq!(r, Err(FreeError::BadIndex), "step {step}");
                    }
                    _ => {
                        let keep = rng() as usize % 3;
                        while let Some((id, _)) = node.take_empty(keep) {
                            assert!(!live.iter().any(|&(s, _)| s == id));
                            gone += 1;
                        }
                        assert!(node.len(Which::Empty) <= keep);
                    }
                }
                node.validate(&mut seen)
                    .map_err(|e| format!("objects {objects} step {step}: {e}"))?;
                assert_eq!(node.inuse(), live.len());
                assert_eq!(node.nr_slabs(), made - gone);
                for &(id, i) in live.iter().take(4) {
                    assert_eq!(node.is_free(id, i), Some(false));
                }
            }
            while node.take_any().is_some() {
                gone += 1;
            }
            assert_eq!((node.nr_slabs(), node.inuse(), made), (0, 0, gone));
            node.validate(&mut seen).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The reciprocal division finds the object of every offset in a slab exactly, for
    /// every geometry: starts map to their index, anything else to none.
    #[test]
    fn object_index_by_reciprocal_is_division() -> Result<(), String> {
        for size in (1..=4096).chain([5000, 8192, 10000, 16384, 32768]) {
            for (align, red_zone) in [(0, false), (64, false), (8, true)] {
                let opts = Options {
                    hwcache_align: false,
                    red_zone,
                };
                let Ok(g) = Geometry::new(size, align, opts, PAGE, 2) else {
                    continue;
                };
                for colour in [0, g.colours - 1] {
                    let first = g.object_offset(colour, 0).must()?;
                    let step = if g.slab_bytes(PAGE) > 8192 { 7 } else { 1 };
                    for off in (0..g.slab_bytes(PAGE)).step_by(step) {
                        let want = off
                            .checked_sub(first)
                            .filter(|d| d % g.slot == 0 && d / g.slot < g.objects)
                            .map(|d| d / g.slot);
                        assert_eq!(g.object_index(colour, off), want, "size {size} off {off}");
                    }
                }
            }
        }
        Ok(())
    }

    /// Lists moved onto larger storage keep every slab on its list, in order.
    #[test]
    fn lists_move_to_bigger_storage() -> Result<(), String> {
        let mut l = SlabLists::new(vec![Links::NONE; 3]);
        l.move_to(0, Which::Partial);
        l.move_to(2, Which::Partial);
        l.move_to(1, Which::Full);
        let short = l.replace_storage(vec![Links::NONE; 2]);
        assert!(short.is_err(), "shorter storage is refused");
        let old = l
            .replace_storage(vec![Links::NONE; 8])
            .map_err(|_| "refused".to_string())?;
        assert_eq!(old.len(), 3);
        assert_eq!(l.capacity(), 8);
        assert_eq!(l.first(Which::Partial), Some(2));
        assert_eq!(l.len(Which::Partial), 2);
        assert_eq!(l.which(1), Some(Which::Full));
        assert_eq!(l.which(7), Some(Which::None));
        l.move_to(7, Which::Empty);
        l.validate(|id| match id {
            0 | 2 => Some((1, 4)),
            1 => Some((4, 4)),
            7 => Some((0, 4)),
            _ => None,
        })
        .map_err(|c| c.what.to_string())?;
        Ok(())
    }

    /// The table and the bit scan pick the smallest class that holds every size, as a
    /// search of `KMALLOC_SIZES` does.
    #[test]
    fn kmalloc_class_is_the_smallest_that_fits() -> Result<(), String> {
        for size in 0..=9000 {
            let search = (size > 0)
                .then(|| KMALLOC_SIZES.iter().position(|&c| size <= c))
                .flatten();
            assert_eq!(kmalloc_class(size), search, "size {size}");
        }
        assert_eq!(kmalloc_class(usize::MAX), None);
        Ok(())
    }

    #[test]
    fn kmalloc_sizes_map_as_linux() -> Result<(), String> {
        let class = |n| kmalloc_class(n).map(|k| KMALLOC_SIZES[k]);
        assert_eq!(class(0), None);
        assert_eq!(class(1), Some(8));
        assert_eq!(class(24), Some(32));
        assert_eq!(class(65), Some(96), "72..96 bytes share the 96-byte cache");
        assert_eq!(class(97), Some(128));
        assert_eq!(class(136), Some(192));
        assert_eq!(class(193), Some(256));
        assert_eq!(class(8192), Some(8192));
        assert_eq!(class(8193), None, "kmalloc_large");
        assert_eq!(kmalloc_large_order(8193, PAGE), 2);
        assert_eq!(kmalloc_large_order(PAGE << 10, PAGE), 10);
        Ok(())
    }

    /// Red zones and poison catch a write on either side of an object and a write after
    /// free, naming the first damaged byte.
    #[test]
    fn red_zones_and_poison_catch_stray_writes() -> Result<(), String> {
        let opts = Options {
            hwcache_align: false,
            red_zone: true,
        };
        let g = Geometry::new(20, 0, opts, PAGE, 2).must_be("geometry")?;
        // Red zone 8, object 20 padded to 24, red zone 8.
        assert_eq!(g.slot, 40);
        let mut slot = vec![0u8; g.slot];
        g.fill_red_zones(&mut slot, true);
        assert_eq!(g.check_red_zones(&slot, true), Ok(()));
        assert!(
            g.check_red_zones(&slot, false).is_err(),
            "active, not inactive"
        );
        slot[7] = 0;
        assert_eq!(
            g.check_red_zones(&slot, true),
            Err(Damage {
                offset: 7,
                found: 0,
                expected: debug_bytes::RED_ACTIVE
            }),
            "a write just before the object"
        );
        g.fill_red_zones(&mut slot, true);
        slot[8 + 20] = 1;
        assert_eq!(
            g.check_red_zones(&slot, true).map_err(|d| d.offset),
            Err(28),
            "a write just past the object, in its padding"
        );
        g.fill_red_zones(&mut slot, false);
        g.poison(&mut slot);
        assert_eq!(g.check_poison(&slot), Ok(()));
        assert_eq!(
            g.check_red_zones(&slot, false),
            Ok(()),
            "poison stays in the object"
        );
        assert_eq!(slot[8 + 19], debug_bytes::POISON_END);
        slot[8 + 3] = 0x42;
        assert_eq!(
            g.check_poison(&slot),
            Err(Damage {
                offset: 11,
                found: 0x42,
                expected: debug_bytes::POISON_FREE
            }),
            "a write after free"
        );
        Ok(())
    }

    #[test]
    fn slabinfo_lines_are_linux_2_1() -> Result<(), String> {
        let mut out = String::new();
        write_slabinfo_header(&mut out).must_be("header")?;
        write_slabinfo_line(
            &mut out,
            &SlabInfo {
                name: "minimm-kmalloc-64",
                active_objs: 50,
                num_objs: 64,
                objsize: 64,
                objperslab: 60,
                pagesperslab: 1,
                limit: 120,
                batchcount: 60,
                active_slabs: 1,
                num_slabs: 2,
            },
        )
        .must_be("line")?;
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("slabinfo - version: 2.1"));
        assert_eq!(
            lines.next(),
            Some(
                "# name            <active_objs> <num_objs> <objsize> <objperslab> \
                 <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata \
                 <active_slabs> <num_slabs> <sharedavail>"
            )
        );
        // As Linux's "%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu
        // %6lu".
        assert_eq!(
            lines.next(),
            Some(
                "minimm-kmalloc-64     50     64     64   60    1 : tunables  120   60    0 \
                 : slabdata      1      2      0"
            )
        );
        Ok(())
    }

    #[test]
    fn freelist_hands_out_in_address_order_and_catches_double_frees() -> Result<(), String> {
        let mut f = Freelist::new_full(vec![0u16; 4], 4).must_be("list")?;
        assert_eq!((f.pop(), f.pop()), (Some(0), Some(1)));
        assert_eq!(f.inuse(), 2);
        assert_eq!(f.push(1, false), Ok(()));
        assert_eq!(
            f.push(1, false),
            Err(FreeError::DoubleFree),
            "the last freed"
        );
        assert_eq!(
            f.push(2, false),
            Ok(()),
            "2 was never allocated: only a scan sees it"
        );
        let mut f = Freelist::new_full(vec![0u16; 4], 4).must_be("list")?;
        assert_eq!(f.pop(), Some(0));
        assert_eq!(f.push(3, true), Err(FreeError::DoubleFree), "scanned");
        assert_eq!(f.push(4, true), Err(FreeError::BadIndex));
        assert_eq!(f.push(0, true), Ok(()));
        assert_eq!(f.push(0, false), Err(FreeError::DoubleFree), "all free");
        // Kept apart and rebuilt, as the kernel side keeps the entries in the slab's memory.
        let (entries, objects, free) = f.into_parts();
        let mut f = Freelist::from_parts(entries, objects, free).must_be("rebuilt")?;
        assert_eq!((f.free(), f.pop()), (4, Some(0)));
        assert!(Freelist::from_parts(vec![0u16; 4], 4, 5).is_none());
        assert!(Freelist::new_full(vec![0u16; 3], 4).is_none());
        assert!(Freelist::new_full(vec![0u16; MAX_OBJECTS + 1], MAX_OBJECTS + 1).is_none());
        Ok(())
    }

    /// Random allocations and checked frees (some of them bad) against a set, with the
    /// validator after every step.
    #[test]
    fn freelist_agrees_with_a_model() -> Result<(), String> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for objects in [1usize, 2, 7, 64, 65, 408] {
            let mut f = Freelist::new_full(vec![0u16; objects], objects).must_be("list")?;
            let mut allocated: BTreeSet<usize> = BTreeSet::new();
            let mut seen = vec![0u64; objects.div_ceil(64)];
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 2 == 0 {
                    match f.pop() {
                        Some(i) => assert!(allocated.insert(i), "object {i} handed out twice"),
                        None => assert_eq!(allocated.len(), objects),
                    }
                } else {
                    let i = (x >> 8) as usize % (objects + 2);
                    let r = f.push(i, true);
                    if i >= objects {
                        assert_eq!(r, Err(FreeError::BadIndex));
                    } else if allocated.remove(&i) {
                        assert_eq!(r, Ok(()));
                    } else {
                        assert_eq!(r, Err(FreeError::DoubleFree));
                    }
                }
                assert_eq!(f.inuse(), allocated.len());
                assert_eq!(f.validate(&mut seen), Ok(()));
                assert!(allocated.iter().all(|&i| !f.is_free(i)));
            }
        }
        Ok(())
    }
}
