// SPDX-License-Identifier: GPL-2.0

//! Page frame reclaim's pure part: a zone's inactive and active lists of reclaim units, the
//! clock (second chance) that scans them, the aging ratio, the priority loop, the reclaim
//! thread's sleep decision and direct reclaim's retry bound.
//!
//! As in Linux (`mm/vmscan.c`, `mm/swap.c`), the lists run through the pages themselves: a
//! zone has one [`Link`] per page, as `struct page` holds `folio->lru` and the LRU flags, and a
//! unit (a block of 2^order pages, as a large folio is one unit) is linked through the link of
//! its first page. Adding, removing and moving a unit is O(1) and never allocates, so the
//! kernel side could keep a zone's lists under a spinlock (it uses a mutex: every user sleeps
//! anyway).
//!
//! New units enter the head of the inactive list; scans take units from the tails. The
//! reference bit is [`Link::accessed`]: whatever sees an access (the kernel side's fault
//! handler, a kernel-side access) sets it through [`Lru::mark_accessed`], a scan tests and
//! clears it. Scanning the inactive tail ([`Lru::shrink_inactive`], `shrink_inactive_list`
//! with `folio_check_references`):
//!
//! - accessed, for the first time since it entered the list: a second chance, back to the
//!   inactive head with `referenced` set (Linux's `PG_referenced`; counted as rotated);
//! - accessed again after that second chance: to the active head (activated: the second
//!   access makes a unit active, as `folio_mark_accessed`'s rule has it);
//! - not accessed since the last scan: isolated for eviction (the caller evicts it outside
//!   the lock, or puts it back).
//!
//! The active list is aged into the inactive one ([`Lru::age_active`], `shrink_active_list`
//! for anonymous memory: every scanned unit moves, its second chance used up) whenever the inactive
//! list is low against it ([`Lru::inactive_is_low`], with `inactive_is_low`'s
//! `int_sqrt(10 * GiB)` ratio). How much a pass scans comes from the priority:
//! `size >> priority`, from [`DEF_PRIORITY`] down to 0 ([`priority_loop`]).

use core::ops::DerefMut;

/// No unit: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// The first priority of a reclaim pass: a pass scans `size >> priority` pages of a list
/// (Linux's `DEF_PRIORITY`).
pub(crate) const DEF_PRIORITY: u32 = 12;

/// Direct reclaim gives up after this many passes in a row that reclaimed nothing (Linux's
/// `MAX_RECLAIM_RETRIES`).
pub(crate) const MAX_RECLAIM_RETRIES: u32 = 16;

/// Direct reclaim never retries more often than this, progress or not: an allocation that
/// others keep taking the reclaimed pages from still ends.
pub(crate) const MAX_RECLAIM_ATTEMPTS: u32 = 64;

/// Which list a unit is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Place {
    /// On no list: not a unit's first page, or a pinned unit.
    Off,
    Inactive,
    Active,
    /// Taken off by a scan for eviction; back with [`Lru::putback`], gone with
    /// [`Lru::evicted`].
    Isolated,
}

/// A page's link: its unit's place in the lists, used in a unit's first page only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    prev: u32,
    next: u32,
    place: Place,
    /// The reference bit: accessed since the last scan looked.
    accessed: bool,
    /// Given a second chance already (Linux's `PG_referenced`).
    referenced: bool,
    /// The unit's order: 2^order pages.
    order: u8,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            prev: NIL,
            next: NIL,
            place: Place::Off,
            accessed: false,
            referenced: false,
            order: 0,
        }
    }
}

impl Link {
    /// Where the unit is.
    #[cfg(test)]
    pub(crate) fn place(&self) -> Place {
        self.place
    }

    /// Its reference bit.
    pub(crate) fn accessed(&self) -> bool {
        self.accessed
    }

    /// Whether it had its second chance.
    pub(crate) fn referenced(&self) -> bool {
        self.referenced
    }

    /// Whether a scan set it aside for eviction (and nothing took it back since).
    pub(crate) fn isolated(&self) -> bool {
        self.place == Place::Isolated
    }

    /// Pages in the unit.
    pub(crate) fn pages(&self) -> usize {
        1 << self.order
    }
}

/// What went wrong: a caller's bug, never a state the lists can reach alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Error {
    /// No such page in the zone.
    BadIndex,
    /// The unit is not where the operation needs it (added twice, put back while listed...).
    WrongPlace(Place),
    /// An order whose unit would not fit the zone's table.
    BadOrder,
}

/// The two lists a zone keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Inactive = 0,
    Active = 1,
}

impl Kind {
    fn place(self) -> Place {
        match self {
            Kind::Inactive => Place::Inactive,
            Kind::Active => Place::Active,
        }
    }
}

/// One list's ends and size.
#[derive(Clone, Copy, Debug)]
struct Ends {
    /// Most recently added.
    head: u32,
    /// Scanned first.
    tail: u32,
    units: usize,
    pages: usize,
}

impl Default for Ends {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            units: 0,
            pages: 0,
        }
    }
}

/// What a scan did, in pages (Linux's vmstat items count pages).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Scan {
    /// Pages looked at (`pgscan_*`).
    pub(crate) scanned: usize,
    /// Pages given a second chance on the inactive list (`pgrotated`).
    pub(crate) rotated: usize,
    /// Pages moved to the active list (`pgactivate`).
    pub(crate) activated: usize,
    /// Pages taken off for eviction.
    pub(crate) isolated: usize,
    /// Pages moved from the active list to the inactive one (`pgdeactivate`).
    pub(crate) deactivated: usize,
}

impl Scan {
    /// Adds `o`'s counts.
    pub(crate) fn add(&mut self, o: &Scan) {
        self.scanned += o.scanned;
        self.rotated += o.rotated;
        self.activated += o.activated;
        self.isolated += o.isolated;
        self.deactivated += o.deactivated;
    }
}

/// A zone's inactive and active lists over its link table `S` (a `Vec` on the host, a
/// `KVVec` in the kernel), one [`Link`] per page of the zone.
///
/// # Invariants
///
/// Each list is a well-formed doubly linked list through `links` from `head` to `tail`, its
/// `units` and `pages` the count and total size of its units; a unit is on the list its
/// `place` names, exactly once, and a link on no list has `place` `Off` or `Isolated`.
pub(crate) struct Lru<S> {
    links: S,
    lists: [Ends; 2],
}

impl<S: DerefMut<Target = [Link]>> Lru<S> {
    /// Empty lists over `links` (every link is reset).
    pub(crate) fn new(mut links: S) -> Self {
        links.fill(Link::default());
        Self {
            links,
            lists: [Ends::default(); 2],
        }
    }

    /// The link of page `index`.
    pub(crate) fn link(&self, index: u32) -> Option<&Link> {
        self.links.get(index as usize)
    }

    fn link_mut(&mut self, index: u32) -> Result<&mut Link, Error> {
        self.links.get_mut(index as usize).ok_or(Error::BadIndex)
    }

    /// Units on a list.
    pub(crate) fn units(&self, kind: Kind) -> usize {
        self.lists[kind as usize].units
    }

    /// Pages on a list.
    pub(crate) fn pages(&self, kind: Kind) -> usize {
        self.lists[kind as usize].pages
    }

    /// Puts `index` at the head of `kind`. It must be on no list.
    fn push_head(&mut self, index: u32, kind: Kind) -> Result<(), Error> {
        let old = self.lists[kind as usize].head;
        let l = self.link_mut(index)?;
        l.prev = NIL;
        l.next = old;
        l.place = kind.place();
        let pages = l.pages();
        if old != NIL {
            self.link_mut(old)?.prev = index;
        }
        let e = &mut self.lists[kind as usize];
        e.head = index;
        if e.tail == NIL {
            e.tail = index;
        }
        e.units += 1;
        e.pages += pages;
        Ok(())
    }

    /// Takes `index` off the list it is on, leaving its place to the caller.
    fn unlink(&mut self, index: u32) -> Result<Kind, Error> {
        let l = *self.link(index).ok_or(Error::BadIndex)?;
        let kind = match l.place {
            Place::Inactive => Kind::Inactive,
            Place::Active => Kind::Active,
            p => return Err(Error::WrongPlace(p)),
        };
        if l.prev != NIL {
            self.link_mut(l.prev)?.next = l.next;
        } else {
            self.lists[kind as usize].head = l.next;
        }
        if l.next != NIL {
            self.link_mut(l.next)?.prev = l.prev;
        } else {
            self.lists[kind as usize].tail = l.prev;
        }
        let e = &mut self.lists[kind as usize];
        e.units -= 1;
        e.pages -= l.pages();
        let m = self.link_mut(index)?;
        m.prev = NIL;
        m.next = NIL;
        Ok(kind)
    }

    /// A new unit of 2^`order` pages at `index` enters the inactive list's head, with clear
    /// bits (an unpinned buffer's unit: Linux's `folio_add_lru`).
    pub(crate) fn add(&mut self, index: u32, order: u32) -> Result<(), Error> {
        let end = (index as usize)
            .checked_add(1usize.checked_shl(order).ok_or(Error::BadOrder)?)
            .ok_or(Error::BadOrder)?;
        if order > u32::from(u8::MAX) || end > self.links.len() {
            return Err(if (index as usize) < self.links.len() {
                Error::BadOrder
            } else {
                Error::BadIndex
            });
        }
        let l = self.link_mut(index)?;
        if l.place != Place::Off {
            return Err(Error::WrongPlace(l.place));
        }
        l.order = order as u8;
        l.accessed = false;
        l.referenced = false;
        self.push_head(index, Kind::Inactive)
    }

    /// Takes the unit at `index` off the lists (pinned again, or freed); also an isolated
    /// one, which its evictor then finds `Off`. Returns where it was.
    pub(crate) fn remove(&mut self, index: u32) -> Result<Place, Error> {
        let place = self.link(index).ok_or(Error::BadIndex)?.place;
        match place {
            Place::Inactive | Place::Active => {
                self.unlink(index)?;
            }
            Place::Isolated => {}
            Place::Off => return Err(Error::WrongPlace(Place::Off)),
        }
        let l = self.link_mut(index)?;
        l.place = Place::Off;
        l.accessed = false;
        l.referenced = false;
        Ok(place)
    }

    /// Sets the unit's reference bit (an access was seen). Returns whether the unit is
    /// listed or isolated (an access to anything else is no news to the lists).
    pub(crate) fn mark_accessed(&mut self, index: u32) -> bool {
        match self.links.get_mut(index as usize) {
            Some(l) if l.place != Place::Off => {
                l.accessed = true;
                true
            }
            _ => false,
        }
    }

    /// Scans up to `nr` pages from the inactive tail (at least one unit if there is one): the
    /// clock's decision for each, as the module documentation says. Each unit looked at is
    /// handed to `seen(index, isolated)`: isolated (its link says `Isolated` until
    /// [`Lru::putback`] or [`Lru::evicted`]), or kept after its reference bit was cleared
    /// (rotated or activated: whoever provides the bit re-arms it). A unit is looked at once
    /// per call, however often it rotates, and a call looks at no more than `max(nr, 1)`
    /// units.
    pub(crate) fn shrink_inactive(&mut self, nr: usize, mut seen: impl FnMut(u32, bool)) -> Scan {
        let mut scan = Scan::default();
        let mut budget = self.units(Kind::Inactive);
        while budget > 0 && (scan.scanned < nr || scan.scanned == 0) {
            budget -= 1;
            let index = self.lists[Kind::Inactive as usize].tail;
            if index == NIL || self.unlink(index).is_err() {
                break;
            }
            let Ok(l) = self.link_mut(index) else { break };
            let pages = l.pages();
            scan.scanned += pages;
            let accessed = core::mem::replace(&mut l.accessed, false);
            let to = if !accessed {
                l.place = Place::Isolated;
                scan.isolated += pages;
                seen(index, true);
                continue;
            } else if l.referenced {
                l.referenced = false;
                scan.activated += pages;
                Kind::Active
            } else {
                l.referenced = true;
                scan.rotated += pages;
                Kind::Inactive
            };
            if self.push_head(index, to).is_err() {
                break;
            }
            seen(index, false);
        }
        scan
    }

    /// Moves up to `nr` pages from the active tail to the inactive head (at least one unit if
    /// there is one), as Linux's `shrink_active_list` does anonymous memory: their second
    /// chance is used up, their reference bit kept (a unit accessed since the last scan
    /// rotates once more at its next inactive scan; one not accessed is still armed to see
    /// its next access, so nothing need be re-armed here).
    pub(crate) fn age_active(&mut self, nr: usize) -> Scan {
        let mut scan = Scan::default();
        while scan.scanned < nr || scan.scanned == 0 {
            let index = self.lists[Kind::Active as usize].tail;
            if index == NIL || self.unlink(index).is_err() {
                break;
            }
            let Ok(l) = self.link_mut(index) else { break };
            l.referenced = false;
            let pages = l.pages();
            scan.scanned += pages;
            scan.deactivated += pages;
            if self.push_head(index, Kind::Inactive).is_err() {
                break;
            }
        }
        scan
    }

    /// An isolated unit that could not be evicted goes back to the inactive head, its
    /// second chance kept. A unit removed meanwhile (`Off`) stays off: `Ok(false)`.
    pub(crate) fn putback(&mut self, index: u32) -> Result<bool, Error> {
        match self.link(index).ok_or(Error::BadIndex)?.place {
            Place::Isolated => {
                self.push_head(index, Kind::Inactive)?;
                Ok(true)
            }
            Place::Off => Ok(false),
            p => Err(Error::WrongPlace(p)),
        }
    }

    /// An isolated unit was evicted: off the lists for good. A unit removed meanwhile is
    /// `Ok(false)` (its remover had it first).
    pub(crate) fn evicted(&mut self, index: u32) -> Result<bool, Error> {
        let l = self.link_mut(index)?;
        match l.place {
            Place::Isolated => {
                *l = Link::default();
                Ok(true)
            }
            Place::Off => Ok(false),
            p => Err(Error::WrongPlace(p)),
        }
    }

    /// Linux's `inactive_is_low`: whether the inactive list is short against the active one,
    /// `inactive * int_sqrt(10 * GiB) < active` (ratio 1 below a GiB), for pages of
    /// `page_shift` bits.
    pub(crate) fn inactive_is_low(&self, page_shift: u32) -> bool {
        let (inactive, active) = (self.pages(Kind::Inactive), self.pages(Kind::Active));
        inactive_is_low(inactive, active, page_shift)
    }

    /// The start of one zone's pass at `priority` (`shrink_lruvec` for one kind of memory):
    /// the active list aged by its scan target if the inactive list is low. Returns what the
    /// aging did and how many pages of the inactive list the pass scans next (the caller
    /// scans them with [`Lru::shrink_inactive`], a chunk at a time, so that the lock can be
    /// dropped between chunks to evict what they isolated).
    pub(crate) fn begin_pass(&mut self, priority: u32, page_shift: u32) -> (Scan, usize) {
        let mut scan = Scan::default();
        if self.inactive_is_low(page_shift) {
            let nr = scan_target(self.pages(Kind::Active), priority);
            if nr > 0 {
                scan.add(&self.age_active(nr));
            }
        }
        (scan, scan_target(self.pages(Kind::Inactive), priority))
    }

    /// The units of a list from head to tail: `(first page, link)`.
    pub(crate) fn iter(&self, kind: Kind) -> impl Iterator<Item = (u32, &Link)> + '_ {
        let mut at = self.lists[kind as usize].head;
        let mut left = self.units(kind);
        core::iter::from_fn(move || {
            if at == NIL || left == 0 {
                return None;
            }
            left -= 1;
            let l = self.links.get(at as usize)?;
            let r = (at, l);
            at = l.next;
            Some(r)
        })
    }

    /// Checks the type invariants: both lists well formed, their counts right, every listed
    /// link on its list once and nowhere else.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let mut on_lists = 0usize;
        for kind in [Kind::Inactive, Kind::Active] {
            let e = &self.lists[kind as usize];
            let (mut at, mut prev) = (e.head, NIL);
            let (mut units, mut pages) = (0usize, 0usize);
            while at != NIL {
                let l = self
                    .links
                    .get(at as usize)
                    .ok_or("a link out of the table")?;
                if l.place != kind.place() {
                    return Err("a unit on a list its place does not name");
                }
                if l.prev != prev {
                    return Err("a broken back link");
                }
                units += 1;
                pages += l.pages();
                if units > self.links.len() {
                    return Err("a cycle");
                }
                prev = at;
                at = l.next;
            }
            if prev != e.tail {
                return Err("the tail is not the last unit");
            }
            if units != e.units || pages != e.pages {
                return Err("a list's counts are wrong");
            }
            on_lists += units;
        }
        let listed = self
            .links
            .iter()
            .filter(|l| matches!(l.place, Place::Inactive | Place::Active))
            .count();
        if listed != on_lists {
            return Err("a listed unit on no list");
        }
        Ok(())
    }
}

/// `inactive * int_sqrt(10 * GiB) < active` (ratio 1 below a GiB of both lists).
pub(crate) fn inactive_is_low(inactive: usize, active: usize, page_shift: u32) -> bool {
    let gb = inactive.saturating_add(active) >> 30u32.saturating_sub(page_shift);
    let ratio = if gb > 0 {
        crate::zone::isqrt(gb.saturating_mul(10))
    } else {
        1
    };
    inactive.saturating_mul(ratio) < active
}

/// Pages a pass at `priority` scans of a list of `size` pages (`get_scan_count`'s
/// `size >> priority`).
pub(crate) fn scan_target(size: usize, priority: u32) -> usize {
    size.checked_shr(priority).unwrap_or(0)
}

/// The priority loop of `shrink_node` and `balance_pgdat`: passes at priority
/// [`DEF_PRIORITY`], then one lower each, down to 0, until `pass` (which scans every zone at
/// the priority it is given and returns the pages it freed) has freed `target` pages or
/// `done` says the goal is met. Returns the pages freed and the last priority used.
pub(crate) fn priority_loop(
    target: usize,
    mut pass: impl FnMut(u32) -> usize,
    mut done: impl FnMut() -> bool,
) -> (usize, u32) {
    let mut freed = 0usize;
    let mut priority = DEF_PRIORITY;
    loop {
        freed = freed.saturating_add(pass(priority));
        if freed >= target || done() || priority == 0 {
            return (freed, priority);
        }
        priority -= 1;
    }
}

/// What the reclaim thread does after balancing (Linux's `kswapd_try_to_sleep`): first a
/// short nap if the zones are balanced, then a full sleep if nothing woke it meanwhile and
/// they still are, else back to work, counted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sleep {
    /// Sleep until woken.
    Full,
    /// Back to reclaim; woken during the nap (`kswapd_low_wmark_hit_quickly`: a zone fell
    /// below low again at once).
    LowHitQuickly,
    /// Back to reclaim; the nap ended but the zones are no longer balanced
    /// (`kswapd_high_wmark_hit_quickly`), or were not balanced at all.
    HighHitQuickly,
}

/// The sleep decision: `balanced_before` (every zone above high when the thread stopped),
/// `woken` (an allocation woke it during the nap; only asked if it napped),
/// `balanced_after` (after the nap).
pub(crate) fn try_to_sleep(
    balanced_before: bool,
    woken_in_nap: impl FnOnce() -> bool,
    balanced_after: impl FnOnce() -> bool,
) -> Sleep {
    let woken = balanced_before && woken_in_nap();
    if !woken && balanced_after() {
        Sleep::Full
    } else if woken {
        Sleep::LowHitQuickly
    } else {
        Sleep::HighHitQuickly
    }
}

/// Where a zone's free pages stand against its watermarks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Level {
    /// At or above high.
    High = 0,
    /// Between low and high.
    Mid = 1,
    /// Below low, at or above min.
    Low = 2,
    /// Below min.
    Min = 3,
}

impl Level {
    /// The level of `free` pages against `min <= low <= high`.
    pub(crate) fn of(free: usize, min: usize, low: usize, high: usize) -> Self {
        if free < min {
            Level::Min
        } else if free < low {
            Level::Low
        } else if free < high {
            Level::Mid
        } else {
            Level::High
        }
    }
}

/// Watermark events (`MINIMM_WMARK_*`): a zone crossed below low, below min, or climbed back
/// to high after it had been below low.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Crossing {
    BelowLow = 0,
    BelowMin = 1,
    AboveHigh = 2,
}

/// A zone's watermark state as the events see it: its level when last looked at, and
/// whether it has been below low since it was last at high.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Watch {
    pub(crate) level: Level,
    pub(crate) below_since_high: bool,
}

impl Default for Watch {
    fn default() -> Self {
        Self {
            level: Level::High,
            below_since_high: false,
        }
    }
}

impl Watch {
    /// The zone is now at `level`: the crossings since the last look, in the order they
    /// happened (edges only: staying below low is no new event).
    pub(crate) fn step(&mut self, level: Level) -> impl Iterator<Item = Crossing> {
        let old = self.level;
        let below = |l: Level| matches!(l, Level::Low | Level::Min);
        let low = below(level) && !below(old);
        let min = level == Level::Min && old != Level::Min;
        let high = level == Level::High && (self.below_since_high || below(old));
        if below(level) {
            self.below_since_high = true;
        }
        if level == Level::High {
            self.below_since_high = false;
        }
        self.level = level;
        [
            (low, Crossing::BelowLow),
            (min, Crossing::BelowMin),
            (high, Crossing::AboveHigh),
        ]
        .into_iter()
        .filter_map(|(happened, c)| happened.then_some(c))
    }
}

/// Direct reclaim's retries (`should_reclaim_retry`): a pass that freed something resets
/// the count of passes without progress; [`MAX_RECLAIM_RETRIES`] of those in a row, or
/// [`MAX_RECLAIM_ATTEMPTS`] passes in all, end it.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Retry {
    no_progress: u32,
    attempts: u32,
}

impl Retry {
    /// After a pass that freed `freed` pages: whether to try the allocation and reclaim
    /// again.
    pub(crate) fn again(&mut self, freed: usize) -> bool {
        self.attempts += 1;
        if freed > 0 {
            self.no_progress = 0;
        } else {
            self.no_progress += 1;
        }
        self.no_progress < MAX_RECLAIM_RETRIES && self.attempts < MAX_RECLAIM_ATTEMPTS
    }

    /// Passes so far.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::VecDeque, vec, vec::Vec};

    const SHIFT: u32 = 12;

    fn lru(pages: usize) -> Lru<Vec<Link>> {
        Lru::new(vec![Link::default(); pages])
    }

    fn list(l: &Lru<Vec<Link>>, kind: Kind) -> Vec<u32> {
        l.iter(kind).map(|(i, _)| i).collect()
    }

    use crate::buddy::tests::{Must, XorShift};

    #[test]
    fn new_units_enter_inactive_head_and_leave() -> Result<(), String> {
        let mut l = lru(16);
        l.add(0, 2).must()?;
        l.add(4, 0).must()?;
        l.add(8, 3).must()?;
        assert_eq!(list(&l, Kind::Inactive), [8, 4, 0]);
        assert_eq!((l.units(Kind::Inactive), l.pages(Kind::Inactive)), (3, 13));
        assert_eq!(l.add(4, 0), Err(Error::WrongPlace(Place::Inactive)));
        assert_eq!(l.add(16, 0), Err(Error::BadIndex));
        assert_eq!(l.add(12, 3), Err(Error::BadOrder));
        assert_eq!(l.add(12, 64), Err(Error::BadOrder));
        assert_eq!(l.remove(4), Ok(Place::Inactive));
        assert_eq!(l.remove(4), Err(Error::WrongPlace(Place::Off)));
        assert_eq!(list(&l, Kind::Inactive), [8, 0]);
        assert_eq!(l.pages(Kind::Inactive), 12);
        l.validate().must()?;
        Ok(())
    }

    /// The seed rule: an unaccessed unit is evicted, one accessed once is rotated with its
    /// second chance, one accessed again after that is activated.
    #[test]
    fn clock_rotates_then_activates_and_evicts_the_unreferenced() -> Result<(), String> {
        let mut l = lru(8);
        for i in 0..4 {
            l.add(i, 0).must()?;
        }
        // Tail first: 0, 1, 2, 3.
        assert!(l.mark_accessed(0));
        assert!(l.mark_accessed(2));
        let mut out = Vec::new();
        let s = l.shrink_inactive(4, |i, iso| {
            if iso {
                out.push(i)
            }
        });
        assert_eq!(out, [1, 3]);
        assert_eq!(
            (s.scanned, s.rotated, s.isolated, s.activated),
            (4, 2, 2, 0)
        );
        assert_eq!(list(&l, Kind::Inactive), [2, 0]);
        assert!(l.link(0).must()?.referenced());
        // Accessed again: 0 goes active; 2, not accessed since, is evicted.
        l.mark_accessed(0);
        let mut out = Vec::new();
        let s = l.shrink_inactive(8, |i, iso| {
            if iso {
                out.push(i)
            }
        });
        assert_eq!(out, [2]);
        assert_eq!((s.scanned, s.activated, s.isolated), (2, 1, 1));
        assert_eq!(list(&l, Kind::Active), [0]);
        assert!(list(&l, Kind::Inactive).is_empty());
        // The isolated ones: one back (second chance kept: none), one evicted.
        assert_eq!(l.putback(1), Ok(true));
        assert_eq!(l.evicted(3), Ok(true));
        assert_eq!(l.evicted(3), Ok(false));
        assert_eq!(l.putback(0), Err(Error::WrongPlace(Place::Active)));
        assert_eq!(list(&l, Kind::Inactive), [1]);
        // A unit pinned while isolated stays off.
        let mut out = Vec::new();
        l.shrink_inactive(1, |i, iso| {
            if iso {
                out.push(i)
            }
        });
        assert_eq!(out, [1]);
        assert_eq!(l.remove(1), Ok(Place::Isolated));
        assert_eq!(l.putback(1), Ok(false));
        assert_eq!(l.evicted(1), Ok(false));
        l.validate().must()?;
        Ok(())
    }

    /// A unit set aside by a scan, then pinned (removed) and unpinned (added) again before its
    /// evictor came: listed afresh, no longer set aside, so the evictor must leave it.
    #[test]
    fn a_unit_removed_and_added_while_set_aside_is_listed_afresh() -> Result<(), String> {
        let mut l = lru(8);
        l.add(3, 0).must()?;
        let mut out = Vec::new();
        l.shrink_inactive(1, |i, iso| {
            if iso {
                out.push(i)
            }
        });
        assert_eq!(out, [3]);
        assert!(l.link(3).must()?.isolated());
        assert_eq!(l.remove(3), Ok(Place::Isolated));
        l.add(3, 0).must()?;
        assert!(!l.link(3).must()?.isolated());
        assert_eq!(l.evicted(3), Err(Error::WrongPlace(Place::Inactive)));
        assert_eq!(l.putback(3), Err(Error::WrongPlace(Place::Inactive)));
        assert_eq!(list(&l, Kind::Inactive), [3]);
        l.validate().must()?;
        Ok(())
    }

    #[test]
    fn a_scan_looks_at_each_unit_once_and_at_least_one() -> Result<(), String> {
        let mut l = lru(8);
        for i in 0..4 {
            l.add(i, 0).must()?;
            l.mark_accessed(i);
        }
        // Everything rotates: the scan stops after one round, not forever.
        let mut kept = Vec::new();
        let s = l.shrink_inactive(100, |i, iso| {
            assert!(!iso, "nothing is evicted");
            kept.push(i);
        });
        assert_eq!(kept, [0, 1, 2, 3]);
        assert_eq!((s.scanned, s.rotated), (4, 4));
        // A target of 0 still scans one unit (as a pass at a low priority would).
        let mut n = 0;
        let s = l.shrink_inactive(0, |_, _| n += 1);
        assert_eq!((s.scanned, n), (1, 1));
        let mut empty = lru(4);
        assert_eq!(empty.shrink_inactive(10, |_, _| {}), Scan::default());
        assert_eq!(empty.age_active(10), Scan::default());
        Ok(())
    }

    #[test]
    fn aging_moves_the_active_tail_keeping_the_bit() -> Result<(), String> {
        let mut l = lru(8);
        for i in 0..3 {
            l.add(i, 0).must()?;
            l.mark_accessed(i);
        }
        l.shrink_inactive(3, |_, _| {});
        for i in 0..3 {
            l.mark_accessed(i);
        }
        l.shrink_inactive(3, |_, _| {});
        assert_eq!(list(&l, Kind::Active), [2, 1, 0]);
        l.mark_accessed(0);
        let s = l.age_active(2);
        assert_eq!((s.scanned, s.deactivated), (2, 2));
        assert_eq!(list(&l, Kind::Active), [2]);
        assert_eq!(list(&l, Kind::Inactive), [1, 0]);
        // The second chance is used up, the reference bit kept: 0, accessed while active,
        // rotates once more; 1 goes.
        let z = l.link(0).must()?;
        assert!(z.accessed() && !z.referenced());
        assert!(!l.link(1).must()?.referenced());
        let mut out = Vec::new();
        l.shrink_inactive(2, |i, iso| {
            if iso {
                out.push(i)
            }
        });
        assert_eq!(out, [1]);
        assert_eq!(list(&l, Kind::Inactive), [0]);
        l.validate().must()?;
        Ok(())
    }

    #[test]
    fn inactive_ratio_follows_linux() {
        // Below a GiB: ratio 1.
        assert!(inactive_is_low(10, 11, SHIFT));
        assert!(!inactive_is_low(10, 10, SHIFT));
        // 4 GiB in all: ratio int_sqrt(40) = 6.
        let gib = 1 << 18;
        assert!(inactive_is_low(gib / 2, 7 * gib / 2, SHIFT));
        assert!(!inactive_is_low(gib, 3 * gib, SHIFT));
        assert!(inactive_is_low(0, 1, SHIFT));
        assert!(!inactive_is_low(0, 0, SHIFT));
        assert!(!inactive_is_low(usize::MAX, usize::MAX, SHIFT));
    }

    #[test]
    fn scan_targets_and_the_priority_loop() {
        assert_eq!(scan_target(4096, 12), 1);
        assert_eq!(scan_target(4095, 12), 0);
        assert_eq!(scan_target(100, 0), 100);
        assert_eq!(scan_target(100, 64), 0);
        // Stops once the target is met.
        let mut seen = Vec::new();
        let r = priority_loop(
            5,
            |p| {
                seen.push(p);
                3
            },
            || false,
        );
        assert_eq!((r, seen.as_slice()), ((6, 11), &[12, 11][..]));
        // Or when the goal is met otherwise.
        let mut calls = 0;
        let r = priority_loop(
            100,
            |_| 0,
            || {
                calls += 1;
                calls == 3
            },
        );
        assert_eq!(r, (0, 10));
        // And never goes below 0.
        let mut seen = Vec::new();
        let r = priority_loop(
            1,
            |p| {
                seen.push(p);
                0
            },
            || false,
        );
        assert_eq!(r, (0, 0));
        assert_eq!(seen, (0..=12).rev().collect::<Vec<_>>());
    }

    /// A zone's pass: the active list ages only while the inactive one is low, then the
    /// inactive one is scanned by `size >> priority`.
    #[test]
    fn passes_age_only_when_inactive_is_low() -> Result<(), String> {
        let mut l = lru(64);
        for i in 0..16 {
            l.add(i, 0).must()?;
            l.mark_accessed(i);
        }
        l.shrink_inactive(16, |_, _| {});
        for i in 0..16 {
            l.mark_accessed(i);
        }
        l.shrink_inactive(16, |_, _| {});
        assert_eq!(l.pages(Kind::Active), 16);
        for i in 16..20 {
            l.add(i, 0).must()?;
        }
        // 4 inactive against 16 active: low; priority 2 ages 16 >> 2 = 4, then the pass
        // scans 8 >> 2 = 2 inactive pages (16, 17: not accessed, isolated).
        let (s, nr) = l.begin_pass(2, SHIFT);
        assert_eq!((s.deactivated, nr), (4, 2));
        let mut out = Vec::new();
        l.shrink_inactive(nr, |i, iso| {
            if iso {
                out.push(i)
            }
        });
        assert_eq!(out, [16, 17]);
        assert_eq!((l.pages(Kind::Active), l.pages(Kind::Inactive)), (12, 6));
        // Not low: no aging at all.
        let mut l = lru(8);
        l.add(0, 0).must()?;
        let (s, nr) = l.begin_pass(0, SHIFT);
        assert_eq!((s, nr), (Scan::default(), 1));
        Ok(())
    }

    #[test]
    fn the_thread_sleeps_only_when_balanced_after_its_nap() {
        assert_eq!(try_to_sleep(true, || false, || true), Sleep::Full);
        assert_eq!(try_to_sleep(true, || true, || true), Sleep::LowHitQuickly);
        assert_eq!(
            try_to_sleep(true, || false, || false),
            Sleep::HighHitQuickly
        );
        // Not balanced when it stopped: no nap, and not asked whether woken in one.
        let napped = core::cell::Cell::new(false);
        let nap = || {
            napped.set(true);
            false
        };
        assert_eq!(try_to_sleep(false, nap, || false), Sleep::HighHitQuickly);
        assert_eq!(try_to_sleep(false, nap, || true), Sleep::Full);
        assert!(!napped.get());
    }

    #[test]
    fn direct_reclaim_retries_are_bounded() {
        let mut r = Retry::default();
        let mut n = 1;
        while r.again(0) {
            n += 1;
        }
        assert_eq!(n, MAX_RECLAIM_RETRIES);
        // Progress resets the count of fruitless passes, not the total.
        let mut r = Retry::default();
        let mut n = 0;
        loop {
            n += 1;
            if !r.again(if n % 2 == 0 { 1 } else { 0 }) {
                break;
            }
        }
        assert_eq!(
            (n, r.attempts()),
            (MAX_RECLAIM_ATTEMPTS, MAX_RECLAIM_ATTEMPTS)
        );
    }

    #[test]
    fn levels_follow_the_watermarks() {
        assert_eq!(Level::of(5, 10, 20, 30), Level::Min);
        assert_eq!(Level::of(10, 10, 20, 30), Level::Low);
        assert_eq!(Level::of(19, 10, 20, 30), Level::Low);
        assert_eq!(Level::of(20, 10, 20, 30), Level::Mid);
        assert_eq!(Level::of(29, 10, 20, 30), Level::Mid);
        assert_eq!(Level::of(30, 10, 20, 30), Level::High);
        // Equal marks: no Mid or Low in between.
        assert_eq!(Level::of(9, 10, 10, 10), Level::Min);
        assert_eq!(Level::of(10, 10, 10, 10), Level::High);
    }

    /// Edges only: a zone that goes down through low and min and back up reports each
    /// crossing once; back to high only after it was below low; wobbling above low or
    /// staying below reports nothing new.
    #[test]
    fn crossings_are_edges() {
        use Crossing::*;
        let mut w = Watch::default();
        let mut step = |l| w.step(l).collect::<Vec<_>>();
        assert_eq!(step(Level::Mid), []);
        assert_eq!(step(Level::High), []);
        assert_eq!(step(Level::Low), [BelowLow]);
        assert_eq!(step(Level::Low), []);
        assert_eq!(step(Level::Min), [BelowMin]);
        assert_eq!(step(Level::Low), []);
        assert_eq!(step(Level::Min), [BelowMin]);
        assert_eq!(step(Level::Mid), []);
        assert_eq!(step(Level::High), [AboveHigh]);
        assert_eq!(step(Level::High), []);
        // Straight from high to below min, and straight back.
        assert_eq!(step(Level::Min), [BelowLow, BelowMin]);
        assert_eq!(step(Level::High), [AboveHigh]);
        // Mid and back: never below low, no event.
        assert_eq!(step(Level::Mid), []);
        assert_eq!(step(Level::High), []);
    }

    /// The reference model: two deques (front = head) and a unit table, with the clock's
    /// rules written as plainly as possible.
    #[derive(Default)]
    struct Model {
        inactive: VecDeque<u32>,
        active: VecDeque<u32>,
        /// index -> (order, place, accessed, referenced)
        units: std::collections::BTreeMap<u32, (u32, Place, bool, bool)>,
    }

    impl Model {
        fn pages(&self, q: &VecDeque<u32>) -> usize {
            q.iter().map(|i| 1usize << self.units[i].0).sum()
        }
        fn shrink_inactive(&mut self, nr: usize) -> Result<(Scan, Vec<u32>), String> {
            let mut s = Scan::default();
            let mut out = Vec::new();
            let mut budget = self.inactive.len();
            while budget > 0 && (s.scanned < nr || s.scanned == 0) {
                budget -= 1;
                let i = self.inactive.pop_back().must()?;
                let u = self.units.get_mut(&i).must()?;
                let pages = 1usize << u.0;
                s.scanned += pages;
                if !u.2 {
                    u.1 = Place::Isolated;
                    s.isolated += pages;
                    out.push(i);
                } else if u.3 {
                    *u = (u.0, Place::Active, false, false);
                    s.activated += pages;
                    self.active.push_front(i);
                } else {
                    *u = (u.0, Place::Inactive, false, true);
                    s.rotated += pages;
                    self.inactive.push_front(i);
                }
            }
            Ok((s, out))
        }
        fn age_active(&mut self, nr: usize) -> Result<Scan, String> {
            let mut s = Scan::default();
            while s.scanned < nr || s.scanned == 0 {
                let Some(i) = self.active.pop_back() else {
                    break;
                };
                let u = self.units.get_mut(&i).must()?;
                *u = (u.0, Place::Inactive, u.2, false);
                s.scanned += 1 << u.0;
                s.deactivated += 1 << u.0;
                self.inactive.push_front(i);
            }
            Ok(s)
        }
    }

    /// Random operations on the lists and on the model agree step by step: the same lists
    /// in the same order, the same units evicted in the same order, the same counts; the
    /// invariant checker passes after every step.
    #[test]
    fn random_sequences_agree_with_a_model() -> Result<(), String> {
        const PAGES: u32 = 256;
        for seed in 1..=300u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut l = lru(PAGES as usize);
            let mut m = Model::default();
            for step in 0..400 {
                let ctx = format!("seed {seed} step {step}");
                match rng.below(10) {
                    0..=2 => {
                        // Units at 8-aligned indices, orders 0..3: never overlapping.
                        let i = rng.below(u64::from(PAGES / 8)) as u32 * 8;
                        let order = rng.below(4) as u32;
                        let r = l.add(i, order);
                        match m.units.get(&i) {
                            Some(u) => assert_eq!(r, Err(Error::WrongPlace(u.1)), "{ctx}"),
                            None => {
                                assert_eq!(r, Ok(()), "{ctx}");
                                m.units.insert(i, (order, Place::Inactive, false, false));
                                m.inactive.push_front(i);
                            }
                        }
                    }
                    3 | 4 => {
                        let i = rng.below(u64::from(PAGES / 8)) as u32 * 8;
                        let seen = l.mark_accessed(i);
                        assert_eq!(seen, m.units.contains_key(&i), "{ctx}");
                        if let Some(u) = m.units.get_mut(&i) {
                            u.2 = true;
                        }
                    }
                    5 => {
                        let i = rng.below(u64::from(PAGES / 8)) as u32 * 8;
                        let r = l.remove(i);
                        match m.units.remove(&i) {
                            None => assert_eq!(r, Err(Error::WrongPlace(Place::Off)), "{ctx}"),
                            Some(u) => {
                                assert_eq!(r, Ok(u.1), "{ctx}");
                                m.inactive.retain(|&x| x != i);
                                m.active.retain(|&x| x != i);
                            }
                        }
                    }
                    6 | 7 => {
                        let nr = rng.below(24) as usize;
                        let (mut out, mut kept) = (Vec::new(), Vec::new());
                        let s = l.shrink_inactive(nr, |i, iso| {
                            if iso {
                                out.push(i);
                            } else {
                                kept.push(i);
                            }
                        });
                        let (ms, mout) = m.shrink_inactive(nr)?;
                        assert_eq!((s, &out), (ms, &mout), "{ctx}");
                        let looked = out.len() + kept.len();
                        assert!(looked <= nr.max(1), "{ctx}: {looked} units for {nr} pages");
                        for &i in &kept {
                            // Kept units had their bit cleared and are listed again.
                            let k = l.link(i).must()?;
                            assert!(
                                !k.accessed()
                                    && matches!(k.place(), Place::Inactive | Place::Active),
                                "{ctx}: kept unit {i}: {k:?}"
                            );
                        }
                        // Evict some, put the others back.
                        for i in out {
                            if rng.below(3) == 0 {
                                assert_eq!(l.putback(i), Ok(true), "{ctx}");
                                let u = m.units.get_mut(&i).must()?;
                                u.1 = Place::Inactive;
                                m.inactive.push_front(i);
                            } else {
                                assert_eq!(l.evicted(i), Ok(true), "{ctx}");
                                m.units.remove(&i);
                            }
                        }
                    }
                    8 => {
                        let nr = rng.below(16) as usize;
                        assert_eq!(l.age_active(nr), m.age_active(nr)?, "{ctx}");
                    }
                    _ => {
                        let low = l.inactive_is_low(SHIFT);
                        let (i, a) = (m.pages(&m.inactive), m.pages(&m.active));
                        assert_eq!(low, i < a, "{ctx}");
                    }
                }
                l.validate().map_err(|e| format!("{ctx}: {e}")).must()?;
                assert_eq!(
                    list(&l, Kind::Inactive),
                    Vec::from(m.inactive.clone()),
                    "{ctx}"
                );
                assert_eq!(list(&l, Kind::Active), Vec::from(m.active.clone()), "{ctx}");
                assert_eq!(l.pages(Kind::Inactive), m.pages(&m.inactive), "{ctx}");
                assert_eq!(l.pages(Kind::Active), m.pages(&m.active), "{ctx}");
                for (&i, u) in &m.units {
                    let k = l.link(i).must()?;
                    assert_eq!(
                        (k.place(), k.accessed(), k.referenced(), k.pages()),
                        (u.1, u.2, u.3, 1 << u.0),
                        "{ctx}: unit {i}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_checker_finds_broken_lists() -> Result<(), String> {
        let mut l = lru(8);
        l.add(0, 0).must()?;
        l.add(1, 0).must()?;
        l.validate().must()?;
        l.links[1].prev = 5;
        assert!(l.validate().is_err());
        l.links[1].prev = NIL;
        l.lists[0].pages += 1;
        assert!(l.validate().is_err());
        l.lists[0].pages -= 1;
        l.links[3].place = Place::Active;
        assert!(l.validate().is_err());
        l.links[3].place = Place::Off;
        l.links[0].place = Place::Active;
        assert!(l.validate().is_err());
        Ok(())
    }
}
