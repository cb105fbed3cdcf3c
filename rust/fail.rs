// SPDX-License-Identifier: GPL-2.0

//! Deterministic fault injection at minimm's failure points, pure part: the decision of Linux's
//! `should_fail_ex` (lib/fault-inject.c) for one point, and minimm's own `nth`.
//!
//! Each failure point ([`Point`]: borrowing from the host, a zone allocation, a per-CPU refill,
//! a handle or mapping insertion, and later layers' own) has an [`Attr`] with Linux's
//! `fault_attr` knobs and one of minimm's, set through debugfs `minimm/fail/<point>/`:
//!
//! - `probability`: percent, 0 to 100. 0 turns the probability rules below off.
//! - `interval`: when above 1, only every `interval`-th pass that is eligible (probability not
//!   0, `times` not used up) may fail, the others pass before the random draw. Writing it
//!   restarts its count (Linux keeps counting).
//! - `times`: how many failures are left: -1 is no limit, 0 stops injecting (by probability).
//!   Every injected failure takes one off a positive value.
//! - `verbose`: 0 silent, 1 a log line per injected failure, 2 a stack dump too.
//! - `nth`: minimm's form of Linux's per-task `fail-nth`, here per point: when not 0, each
//!   pass through the point counts it down and the pass that brings it to 0 fails: writing N
//!   fails exactly the Nth pass from then on, once. Read, it is the passes left until that
//!   failure (1: the next one fails), 0 once it was injected. While it counts, it alone
//!   decides: probability, interval and times are not looked at (as in Linux, where
//!   `fail-nth` takes precedence over the debugfs knobs); the failure still takes one off a
//!   positive `times`, as Linux's does.
//!
//! A pass with probability 0 and nth 0 never fails, whatever the other knobs say. Everything
//! is 0 at load (Linux's own `fault_attr` defaults to interval 1, times 1, verbose 2; minimm's
//! points start disarmed instead), so nothing is injected until someone asks.
//!
//! Left out from Linux: `space` (a budget consumed by the size of each call), `task-filter` and
//! `make-it-fail` (minimm's `nth` is per point and counts every task's passes, so a test that
//! walks it runs alone), the stack-trace filters and rate limiting of the log line.
//!
//! Every knob is an atomic, so they are read and written without locks from any context (the
//! zone allocation point runs under an irq-safe spinlock). `nth` and `probability` share one
//! word, so the common pass with nothing armed costs one relaxed load ([`Attr::armed`]), and
//! counting `nth` down is one compare-and-exchange on it. `times` is taken one off before a
//! probability failure is injected, so `times` N gives exactly N failures even when passes
//! race (Linux checks, then decrements: racing passes may exceed it). The random draw comes
//! from the caller (the kernel's `get_random_u32`; a fixed sequence in tests), and is only
//! asked for when a probability between 1 and 99 decides. Nothing here logs: the caller
//! prints the [`Injection`] it gets back.

use core::ffi::CStr;
use core::sync::atomic::{
    AtomicI32, AtomicU32, AtomicU64,
    Ordering::{AcqRel, Relaxed},
};

/// A NUL-terminated copy of a point's name, checked when the table is built (at compile time:
/// the tables below are constants).
const fn c_name(bytes: &'static [u8]) -> &'static CStr {
    match CStr::from_bytes_with_nul(bytes) {
        Ok(name) => name,
        // Evaluated in a constant: a bad name fails the build, never a run.
        Err(_) => panic!("a point's name must end in one NUL"), // CANNOT PANIC: const
    }
}

/// Declares the failure points: one line per point, its variant and its debugfs name.
macro_rules! points {
    ($($(#[$doc:meta])* $point:ident => $name:literal,)*) => {
        /// A failure point: a place where minimm can fail as if a resource had run out.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Point {
            $($(#[$doc])* $point,)*
        }

        impl Point {
            /// Every point, in table order.
            pub(crate) const ALL: [Point; NR_POINTS] = [$(Point::$point,)*];

            /// The point's name, as debugfs `minimm/fail/` and the log spell it.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Point::$point => $name,)*
                }
            }

            /// [`Point::name`], NUL-terminated.
            pub(crate) const fn c_name(self) -> &'static CStr {
                match self {
                    $(Point::$point => const { c_name(concat!($name, "\0").as_bytes()) },)*
                }
            }
        }

        /// Number of failure points.
        pub(crate) const NR_POINTS: usize = [$($name,)*].len();
    };
}

points! {
    /// Borrowing a chunk from the host (`HostChunk::alloc`): as if `alloc_pages` returned
    /// NULL; the pool's borrowing goes on with smaller orders, or the zone gets fewer pages.
    HostBorrow => "host_borrow",
    /// The start of a pool allocation (`Pool::alloc_raw`), as Linux's `should_fail_alloc_page`:
    /// the whole allocation is ENOMEM before it touches anything.
    ZoneAlloc => "zone_alloc",
    /// Refilling an empty per-CPU list from its zone: the refill gets nothing, and the
    /// allocation goes on through the buddy path.
    PcpRefill => "pcp_refill",
    /// Reserving a handle in an open file's table (`ALLOC`): ENOMEM, nothing changed.
    HandleInsert => "handle_insert",
    /// Inserting a buffer's pages into a user mapping, at the first touch (the fault
    /// handler): as if `vm_insert_page` ran out of memory, the fault returns `VM_FAULT_OOM`
    /// and the kernel retries it, as for any page fault that could not allocate.
    MappingInsert => "mapping_insert",
    /// Growing a slab cache by a slab from the pool (`SlabCache::grow`): as if the pool had
    /// no block; the allocation fails with ENOMEM when no slab has a free object.
    SlabGrow => "slab_grow",
    /// Refilling an empty per-CPU object array from the cache's slabs: the refill gets
    /// nothing, and the allocation goes on through the slab lists.
    SlabArrayRefill => "slab_array_refill",
    /// Creating a slab cache (`SLAB_CREATE`): ENOMEM, nothing created.
    SlabCreate => "slab_create",
    /// Each page of a vmalloc-like area (each block, with large blocks first) as the area
    /// takes it (`Vmalloc::create`): as if the pool had none left; the area fails with ENOMEM
    /// and every page it took goes back.
    VmPage => "vm_page",
    /// Mapping an area's pages in the kernel (`vmap`): as if the host had no address space
    /// left; ENOMEM, the pages go back.
    VmMap => "vm_map",
    /// An area's record from the cache `minimm_vm_area`: ENOMEM, the mapping and the pages
    /// go back.
    VmRecord => "vm_record",
    /// Purging an unpinned discardable block the clock chose (`Reclaim::evict`): as if it
    /// could not be purged now; it goes back to the inactive list with its second chance and
    /// nothing is freed.
    ReclaimPurge => "reclaim_purge",
}

impl Point {
    /// The point's index in [`Point::ALL`] and in a table of [`Attr`]s.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// One knob of a point's [`Attr`]: a file under debugfs `minimm/fail/<point>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Knob {
    Probability,
    Interval,
    Times,
    Verbose,
    Nth,
}

impl Knob {
    /// Every knob, in the order debugfs lists them.
    pub(crate) const ALL: [Knob; 5] = [
        Knob::Probability,
        Knob::Interval,
        Knob::Times,
        Knob::Verbose,
        Knob::Nth,
    ];

    /// The knob's file name.
    pub(crate) const fn c_name(self) -> &'static CStr {
        match self {
            Knob::Probability => c"probability",
            Knob::Interval => c"interval",
            Knob::Times => c"times",
            Knob::Verbose => c"verbose",
            Knob::Nth => c"nth",
        }
    }

    /// The values the knob takes.
    const fn range(self) -> (i64, i64) {
        match self {
            Knob::Probability => (0, 100),
            Knob::Interval | Knob::Nth => (0, u32::MAX as i64),
            Knob::Times => (-1, i32::MAX as i64),
            Knob::Verbose => (0, 2),
        }
    }

    /// Parses what user space wrote to the knob's file: one decimal integer in the knob's
    /// range, surrounded by white space at most.
    pub(crate) fn parse(self, text: &str) -> Result<i64, Invalid> {
        let v: i64 = text.trim().parse().map_err(|_| Invalid)?;
        let (lo, hi) = self.range();
        if v < lo || v > hi {
            return Err(Invalid);
        }
        Ok(v)
    }
}

/// A value outside a knob's range, or not a number: EINVAL for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

/// Bits of [`Attr::armed`] that hold `nth`; `probability` sits above them.
const NTH_MASK: u64 = u32::MAX as u64;
const PROBABILITY_SHIFT: u32 = 32;

/// Why a pass failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The nth pass since `nth` was written with this value.
    Nth(u32),
    /// The probability rules, with the knobs as they were (`times` as left after this one).
    Probability {
        probability: u32,
        interval: u32,
        times: i32,
    },
}

/// An injected failure, for the caller to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Injection {
    pub(crate) cause: Cause,
    /// The point's `verbose` when it failed: 0 silent, 1 a log line, 2 a stack dump too.
    pub(crate) verbose: u32,
}

/// One failure point's state, Linux's `struct fault_attr` (minus what is left out, see the
/// file's documentation) plus `nth`.
///
/// # Invariants
///
/// `armed` holds `nth` in its low 32 bits and `probability` (at most 100) above them, nothing
/// else; `times` is -1 or more; `verbose` is at most 2.
pub(crate) struct Attr {
    armed: AtomicU64,
    interval: AtomicU32,
    times: AtomicI32,
    verbose: AtomicU32,
    /// Eligible passes since `interval` was last written (wraps).
    count: AtomicU32,
    /// The value `nth` was last set to, for reports.
    nth_set: AtomicU32,
    /// Failures injected at this point since load.
    injected: AtomicU64,
}

impl Default for Attr {
    fn default() -> Self {
        Self::new()
    }
}

impl Attr {
    /// A point with nothing armed.
    pub(crate) const fn new() -> Self {
        // INVARIANT: everything 0.
        Self {
            armed: AtomicU64::new(0),
            interval: AtomicU32::new(0),
            times: AtomicI32::new(0),
            verbose: AtomicU32::new(0),
            count: AtomicU32::new(0),
            nth_set: AtomicU32::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// Whether a pass could fail at all: `nth` or `probability` is not 0. The fast path, one
    /// relaxed load.
    #[inline]
    pub(crate) fn armed(&self) -> bool {
        self.armed.load(Relaxed) != 0
    }

    /// Decides one pass through the point: `Some` when it is to fail. `draw` gives a random
    /// number, asked for only when a probability between 1 and 99 decides.
    #[inline]
    pub(crate) fn should_fail(&self, draw: impl FnOnce() -> u32) -> Option<Injection> {
        if !self.armed() {
            return None;
        }
        self.decide(draw)
    }

    /// The slow path of [`Attr::should_fail`], Linux's `should_fail_ex` in order: `nth` first,
    /// then probability 0, times 0, the interval and the random draw.
    fn decide(&self, draw: impl FnOnce() -> u32) -> Option<Injection> {
        let mut word = self.armed.load(Relaxed);
        let probability = loop {
            let nth = word & NTH_MASK;
            if nth == 0 {
                break (word >> PROBABILITY_SHIFT) as u32;
            }
            // Count this pass; the one that takes `nth` to 0 fails. A writer or another pass
            // in between makes the exchange fail, and the pass is decided again on the new
            // word.
            match self
                .armed
                .compare_exchange_weak(word, word - 1, AcqRel, Relaxed)
            {
                Ok(_) if nth == 1 => {
                    let _ = self
                        .times
                        .fetch_update(AcqRel, Relaxed, |t| (t > 0).then(|| t - 1));
                    return Some(self.injected(Cause::Nth(self.nth_set.load(Relaxed))));
                }
                Ok(_) => return None,
                Err(now) => word = now,
            }
        };
        if probability == 0 || self.times.load(Relaxed) == 0 {
            return None;
        }
        let interval = self.interval.load(Relaxed);
        if interval > 1 {
            let count = self.count.fetch_add(1, Relaxed).wrapping_add(1);
            if count % interval != 0 {
                return None;
            }
        }
        // Linux: `probability <= prandom_u32() % 100` passes.
        if probability < 100 && probability <= draw() % 100 {
            return None;
        }
        // Claim one of the failures left (none left: pass), so that racing passes never
        // inject more than `times`.
        let before = self
            .times
            .fetch_update(AcqRel, Relaxed, |t| match t {
                0 => None,
                t if t < 0 => Some(t),
                t => Some(t - 1),
            })
            .ok()?;
        Some(self.injected(Cause::Probability {
            probability,
            interval,
            times: if before < 0 { before } else { before - 1 },
        }))
    }

    /// Counts an injected failure and describes it.
    fn injected(&self, cause: Cause) -> Injection {
        self.injected.fetch_add(1, Relaxed);
        Injection {
            cause,
            verbose: self.verbose.load(Relaxed),
        }
    }

    /// A knob's value as its file shows it.
    pub(crate) fn get(&self, knob: Knob) -> i64 {
        match knob {
            Knob::Probability => (self.armed.load(Relaxed) >> PROBABILITY_SHIFT) as i64,
            Knob::Nth => (self.armed.load(Relaxed) & NTH_MASK) as i64,
            Knob::Interval => i64::from(self.interval.load(Relaxed)),
            Knob::Times => i64::from(self.times.load(Relaxed)),
            Knob::Verbose => i64::from(self.verbose.load(Relaxed)),
        }
    }

    /// Sets a knob; a value outside its range (see [`Knob::parse`]) is refused and changes
    /// nothing.
    pub(crate) fn set(&self, knob: Knob, value: i64) -> Result<(), Invalid> {
        let (lo, hi) = knob.range();
        if value < lo || value > hi {
            return Err(Invalid);
        }
        // In range, so each cast below is lossless.
        match knob {
            Knob::Probability => {
                self.update_armed(!(NTH_MASK), (value as u64) << PROBABILITY_SHIFT);
            }
            Knob::Nth => {
                // Recorded first: a pass that fails right after the word changes reports it.
                self.nth_set.store(value as u32, Relaxed);
                self.update_armed(NTH_MASK, value as u64);
            }
            Knob::Interval => {
                self.interval.store(value as u32, Relaxed);
                self.count.store(0, Relaxed);
            }
            Knob::Times => self.times.store(value as i32, Relaxed),
            Knob::Verbose => self.verbose.store(value as u32, Relaxed),
        }
        Ok(())
    }

    /// Replaces the bits `mask` of `armed` with `bits`, leaving the others as they are.
    fn update_armed(&self, mask: u64, bits: u64) {
        // INVARIANT: `bits` lie within `mask`, which is `nth`'s field or `probability`'s, and
        // the callers keep each field in its range.
        let _ = self
            .armed
            .fetch_update(AcqRel, Relaxed, |w| Some((w & !mask) | bits));
    }

    /// Failures injected at this point since load.
    pub(crate) fn injected_count(&self) -> u64 {
        self.injected.load(Relaxed)
    }
}

/// The table of every point's state: the module's one instance is a `static`, all zero at load.
pub(crate) struct Table([Attr; NR_POINTS]);

impl Table {
    /// A table with nothing armed.
    pub(crate) const fn new() -> Self {
        Self([const { Attr::new() }; NR_POINTS])
    }

    /// The state of `point`.
    #[inline]
    pub(crate) fn attr(&self, point: Point) -> &Attr {
        // `index` is below `NR_POINTS` by construction of `Point`.
        match self.0.get(point.index()) {
            Some(a) => a,
            None => &DISARMED,
        }
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

/// What a point outside the table would see (none is): never armed.
static DISARMED: Attr = Attr::new();

#[cfg(test)]
mod tests {
    use super::*;

    /// A draw that must not be made.
    fn no_draw() -> u32 {
        // A draw where none may happen fails the test.
        panic!("drew a number where no probability decides") // PANIC: host test only
    }

    /// Which of `passes` passes fail, 1-based, drawing from `draws` in turn.
    fn failing(a: &Attr, passes: u32, draws: &[u32]) -> Vec<u32> {
        let mut next = draws.iter().cycle();
        (1..=passes)
            .filter(|_| a.should_fail(|| *next.next().unwrap_or(&0)).is_some())
            .collect()
    }

    #[test]
    fn nothing_is_armed_at_load() {
        let t = Table::new();
        for p in Point::ALL {
            let a = t.attr(p);
            assert!(!a.armed());
            for k in Knob::ALL {
                assert_eq!(a.get(k), 0, "{} {:?}", p.name(), k);
            }
            for _ in 0..100 {
                assert_eq!(a.should_fail(no_draw), None);
            }
            assert_eq!(a.injected_count(), 0);
        }
    }

    #[test]
    fn point_names_and_indices() {
        let names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "host_borrow",
                "zone_alloc",
                "pcp_refill",
                "handle_insert",
                "mapping_insert",
                "slab_grow",
                "slab_array_refill",
                "slab_create",
                "vm_page",
                "vm_map",
                "vm_record",
                "reclaim_purge"
            ]
        );
        for (i, p) in Point::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(p.c_name().to_str(), Ok(p.name()));
        }
        assert_eq!(Knob::Nth.c_name().to_str(), Ok("nth"));
    }

    /// nth N fails exactly the Nth pass, once, then reads 0; before that it reads the passes
    /// left.
    #[test]
    fn nth_fails_exactly_the_nth_pass() {
        for n in 1..=5u32 {
            let a = Attr::new();
            assert_eq!(a.set(Knob::Nth, n.into()), Ok(()));
            let mut failed = Vec::new();
            for pass in 1..=10 {
                assert_eq!(a.get(Knob::Nth), i64::from(n.saturating_sub(pass - 1)));
                if let Some(inj) = a.should_fail(no_draw) {
                    assert_eq!(inj.cause, Cause::Nth(n));
                    failed.push(pass);
                }
            }
            assert_eq!(failed, [n]);
            assert_eq!(a.get(Knob::Nth), 0);
            assert!(!a.armed());
            assert_eq!(a.injected_count(), 1);
        }
    }

    /// While nth counts, probability does not decide; once nth is spent, it does again.
    #[test]
    fn nth_takes_precedence_over_probability() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Probability, 100), Ok(()));
        assert_eq!(a.set(Knob::Times, -1), Ok(()));
        assert_eq!(a.set(Knob::Nth, 3), Ok(()));
        assert_eq!(failing(&a, 3, &[]), [3]);
        assert_eq!(failing(&a, 2, &[]), [1, 2]);
        // The knobs live side by side in one word: setting one leaves the other.
        assert_eq!(a.set(Knob::Nth, 7), Ok(()));
        assert_eq!((a.get(Knob::Nth), a.get(Knob::Probability)), (7, 100));
        assert_eq!(a.set(Knob::Probability, 0), Ok(()));
        assert_eq!((a.get(Knob::Nth), a.get(Knob::Probability)), (7, 0));
    }

    /// An nth failure takes one off a positive `times`, as Linux's fail-nth does.
    #[test]
    fn nth_failure_uses_up_times() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Times, 2), Ok(()));
        assert_eq!(a.set(Knob::Nth, 1), Ok(()));
        assert!(a.should_fail(no_draw).is_some());
        assert_eq!(a.get(Knob::Times), 1);
        assert_eq!(a.set(Knob::Times, -1), Ok(()));
        assert_eq!(a.set(Knob::Nth, 1), Ok(()));
        assert!(a.should_fail(no_draw).is_some());
        assert_eq!(a.get(Knob::Times), -1);
    }

    #[test]
    fn probability_100_with_times_fails_exactly_times() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Probability, 100), Ok(()));
        assert_eq!(a.set(Knob::Times, 3), Ok(()));
        let mut v = Vec::new();
        for _ in 0..10 {
            v.push(a.should_fail(no_draw));
        }
        let failed: Vec<usize> = (0..10).filter(|&i| v[i].is_some()).collect();
        assert_eq!(failed, [0, 1, 2]);
        let times: Vec<Cause> = v.iter().flatten().map(|i| i.cause).collect();
        for (i, c) in times.iter().enumerate() {
            assert_eq!(
                *c,
                Cause::Probability {
                    probability: 100,
                    interval: 0,
                    times: 2 - i as i32
                }
            );
        }
        assert_eq!(a.get(Knob::Times), 0);
        assert_eq!(a.injected_count(), 3);
    }

    #[test]
    fn times_0_stops_and_minus_1_is_unlimited() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Probability, 100), Ok(()));
        assert_eq!(failing(&a, 5, &[]), Vec::<u32>::new(), "times 0");
        assert_eq!(a.set(Knob::Times, -1), Ok(()));
        assert_eq!(failing(&a, 5, &[]), [1, 2, 3, 4, 5]);
        assert_eq!(a.get(Knob::Times), -1);
    }

    #[test]
    fn interval_fails_every_nth_eligible_pass() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Probability, 100), Ok(()));
        assert_eq!(a.set(Knob::Times, -1), Ok(()));
        assert_eq!(a.set(Knob::Interval, 3), Ok(()));
        assert_eq!(failing(&a, 10, &[]), [3, 6, 9]);
        // Writing it restarts the count.
        assert_eq!(a.set(Knob::Interval, 4), Ok(()));
        assert_eq!(failing(&a, 9, &[]), [4, 8]);
        // 0 and 1 both mean every pass.
        for i in [0, 1] {
            assert_eq!(a.set(Knob::Interval, i), Ok(()));
            assert_eq!(failing(&a, 3, &[]), [1, 2, 3]);
        }
        // Ineligible passes (times used up) do not count towards the interval.
        assert_eq!(a.set(Knob::Interval, 2), Ok(()));
        assert_eq!(a.set(Knob::Times, 0), Ok(()));
        assert_eq!(failing(&a, 5, &[]), Vec::<u32>::new());
        assert_eq!(a.set(Knob::Times, -1), Ok(()));
        assert_eq!(failing(&a, 4, &[]), [2, 4]);
    }

    /// Linux's rule: a pass fails when `draw % 100 < probability`.
    #[test]
    fn probability_compares_the_draw_modulo_100() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Probability, 30), Ok(()));
        assert_eq!(a.set(Knob::Times, -1), Ok(()));
        let draws = [0, 29, 30, 99, 100, 129, 130, 1_000_029];
        assert_eq!(failing(&a, 8, &draws), [1, 2, 5, 6, 8]);
        // Over many uniform draws, about 30 percent fail.
        let mut x = 0x9e37_79b9u32;
        let mut n = 0;
        for _ in 0..10_000 {
            if a.should_fail(|| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            })
            .is_some()
            {
                n += 1;
            }
        }
        assert!((2_700..3_300).contains(&n), "{n} of 10000");
    }

    #[test]
    fn verbose_is_reported() {
        let a = Attr::new();
        assert_eq!(a.set(Knob::Verbose, 2), Ok(()));
        assert_eq!(a.set(Knob::Nth, 1), Ok(()));
        assert_eq!(
            a.should_fail(no_draw),
            Some(Injection {
                cause: Cause::Nth(1),
                verbose: 2
            })
        );
    }

    #[test]
    fn values_outside_a_knobs_range_are_refused() {
        let a = Attr::new();
        for (k, bad) in [
            (Knob::Probability, "101"),
            (Knob::Probability, "-1"),
            (Knob::Interval, "-1"),
            (Knob::Interval, "4294967296"),
            (Knob::Times, "-2"),
            (Knob::Times, "2147483648"),
            (Knob::Verbose, "3"),
            (Knob::Nth, "-1"),
            (Knob::Nth, "1x"),
            (Knob::Nth, ""),
            (Knob::Nth, "0x10"),
            (Knob::Nth, "1 2"),
        ] {
            assert_eq!(k.parse(bad), Err(Invalid), "{k:?} {bad:?}");
        }
        for (k, good, v) in [
            (Knob::Probability, "100\n", 100),
            (Knob::Times, " -1 ", -1),
            (Knob::Interval, "4294967295", 4_294_967_295),
            (Knob::Nth, "+3", 3),
            (Knob::Verbose, "2", 2),
        ] {
            assert_eq!(k.parse(good), Ok(v), "{k:?} {good:?}");
            assert_eq!(a.set(k, v), Ok(()));
            assert_eq!(a.get(k), v);
        }
        assert_eq!(a.set(Knob::Probability, 101), Err(Invalid));
        assert_eq!(a.get(Knob::Probability), 100);
    }

    /// Racing passes never inject more failures than `times`, nor more than one for `nth`.
    #[test]
    fn racing_passes_respect_times_and_nth() {
        use std::sync::atomic::AtomicUsize;
        let a = Attr::new();
        assert_eq!(a.set(Knob::Probability, 100), Ok(()));
        assert_eq!(a.set(Knob::Times, 50), Ok(()));
        let failed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if a.should_fail(no_draw).is_some() {
                            failed.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(failed.load(Relaxed), 50);
        assert_eq!(a.set(Knob::Probability, 0), Ok(()));
        assert_eq!(a.set(Knob::Nth, 1000), Ok(()));
        let failed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        if a.should_fail(no_draw).is_some() {
                            failed.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(failed.load(Relaxed), 1);
        assert_eq!(a.get(Knob::Nth), 0);
    }
}
