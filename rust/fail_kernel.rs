// SPDX-License-Identifier: GPL-2.0

//! Fault injection, kernel side: the module's table of failure points and the check each
//! point makes.
//!
//! The rules are in `fail.rs` (pure, tested on the host), this module's `rules`; minimm.rs
//! names this file `fail`, so that a failure point reads `crate::fail::should_fail(Point::X)`.
//! Here are the one table of the module (a `static`: every point disarmed at load, since the
//! module's data is fresh at each load), the random draw (`get_random_u32`) and the log line
//! of `verbose`. debugfs `minimm/fail/` sets the knobs (`debugfs.rs`); the module parameter
//! `fail_nth_host_borrow` arms `host_borrow`'s `nth` for the borrowing at load only.

use kernel::{
    bindings,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

#[path = "fail.rs"]
mod rules;

pub(crate) use rules::{Attr, Knob, Point, NR_POINTS};
use rules::{Cause, Injection, Table};

/// Every failure point's knobs.
static POINTS: Table = Table::new();

/// The state of `point`, for debugfs.
pub(crate) fn attr(point: Point) -> &'static Attr {
    POINTS.attr(point)
}

/// Failures injected so far at the points that fail a command's allocation: a caller that sees it move across a
/// failed call knows the failure may have been injected (as Linux's `should_fail_alloc_page`
/// fails an allocation before its slow path, such a failure must not send the caller into
/// reclaim).
pub(crate) fn injections() -> u64 {
    // The points that fail an allocation of the device's commands outright (another task's
    // injection there between two reads also counts: only under fault injection).
    [
        Point::ZoneAlloc,
        Point::VmPage,
        Point::VmMap,
        Point::VmRecord,
    ]
    .iter()
    .map(|&p| POINTS.attr(p).injected_count())
    .fold(0u64, u64::wrapping_add)
}

/// Whether this pass through `point` is to fail; if so, the caller behaves exactly as if what
/// the point stands for had failed, and changes nothing else. Logs the failure as the point's
/// `verbose` asks.
///
/// Costs one relaxed load when the point is not armed.
///
/// Context: any (hard or soft interrupt, any lock held, interrupts off); never sleeps and never
/// allocates.
#[inline]
pub(crate) fn should_fail(point: Point) -> bool {
    // SAFETY: `get_random_u32` may be called from any context but NMI, which minimm's
    // failure points never run in; it has no other precondition.
    let draw = || unsafe { bindings::get_random_u32() };
    match POINTS.attr(point).should_fail(draw) {
        None => false,
        Some(injection) => {
            report(point, injection);
            true
        }
    }
}

/// Reports logged per window of [`REPORT_WINDOW_MS`] at most, as Linux's `fail_dump`
/// rate-limits (`DEFAULT_RATELIMIT_BURST` in `DEFAULT_RATELIMIT_INTERVAL`): a point armed to
/// fail every pass must not flood the console from under a zone lock.
const REPORT_BURST: u32 = 10;
const REPORT_WINDOW_MS: u32 = 5000;

/// The current window's start (jiffies) and the reports logged in it.
static REPORT_WINDOW: Atomic<usize> = Atomic::new(0);
static REPORTED: Atomic<u32> = Atomic::new(0);

/// Whether a report may be logged now (at most [`REPORT_BURST`] per window).
fn report_allowed() -> bool {
    // SAFETY: `jiffies` is updated by the timer interrupt and read lock-free everywhere in the
    // kernel; one volatile load of the aligned word is what `READ_ONCE(jiffies)` does.
    let now = unsafe { core::ptr::addr_of!(bindings::jiffies).read_volatile() } as usize;
    let start = REPORT_WINDOW.load(Relaxed);
    let window = kernel::time::msecs_to_jiffies(REPORT_WINDOW_MS) as usize;
    if now.wrapping_sub(start) >= window && REPORT_WINDOW.cmpxchg(start, now, Relaxed).is_ok() {
        REPORTED.store(0, Relaxed);
    }
    REPORTED.fetch_add(1, Relaxed) < REPORT_BURST
}

/// Logs an injected failure (`verbose` 1), with a stack dump (`verbose` 2), rate-limited.
/// printk and `dump_stack` may run under a spinlock with interrupts off, and allocate nothing.
#[cold]
fn report(point: Point, injection: Injection) {
    if injection.verbose == 0 || !report_allowed() {
        return;
    }
    let name = point.name();
    match injection.cause {
        Cause::Nth(n) => pr_info!("injecting failure at {name} (nth {n})\n"),
        Cause::Probability {
            probability,
            interval,
            times,
        } => pr_info!(
            "injecting failure at {name} (probability {probability}, interval {interval}, times {times})\n"
        ),
    }
    if injection.verbose > 1 {
        // SAFETY: `dump_stack` may be called from any context and has no precondition.
        unsafe { bindings::dump_stack() };
    }
}

/// Arms `point`'s `nth` from a module parameter until the returned guard drops, which disarms
/// it again (reached or not), so that it cannot fire past the step it was meant for.
pub(crate) fn arm_nth_while(point: Point, nth: u32) -> NthGuard {
    if nth > 0 {
        // `nth` is in the knob's range (any `u32`).
        let _ = POINTS.attr(point).set(Knob::Nth, i64::from(nth));
    }
    NthGuard(point, nth > 0)
}

/// Disarms a point's `nth` on drop (see [`arm_nth_while`]).
pub(crate) struct NthGuard(Point, bool);

impl Drop for NthGuard {
    fn drop(&mut self) {
        if self.1 {
            let _ = POINTS.attr(self.0).set(Knob::Nth, 0);
        }
    }
}
