// SPDX-License-Identifier: GPL-2.0

//! The reclaim thread, `minimm_reclaimd` (Linux's kswapd): a kernel thread, visible in `ps`,
//! that sleeps until an allocation finds a zone below its low watermark and wakes it (as
//! `wakeup_kswapd`), then reclaims (`reclaim.rs`) until every zone is at or above its high
//! watermark or nothing more comes back, and sleeps again (`kswapd_try_to_sleep`'s short nap
//! first: see `lru::try_to_sleep`).
//!
//! This is one of the unsafe parts: the thread is made and stopped with the kernel's raw
//! `kthread` calls (Rust-for-Linux 7.3 has no kthread abstraction).
//!
//! # Locks
//!
//! `Kswapd::state` (a mutex) is taken alone, to wake or stop the thread and by the thread to
//! sleep (with the condition variable). The thread reclaims with no lock of its own held.

use core::ffi::{c_int, c_void};

use kernel::{
    bindings,
    error::from_err_ptr,
    new_condvar, new_mutex,
    prelude::*,
    sync::{atomic::Relaxed, Arc, CondVar, Mutex},
    time::msecs_to_jiffies,
};

use crate::{
    lru::{self, Sleep},
    Shared,
};

/// kswapd's short nap before it sleeps for good (`HZ/10`).
const NAP_MS: u32 = 100;

/// What wakes and stops the thread.
struct State {
    /// An allocation found a zone below low since the thread last looked.
    woken: bool,
    /// The module is going: the thread returns.
    stop: bool,
    /// Passes in a row that left a zone short and reclaimed nothing (Linux's
    /// `kswapd_failures`): from [`lru::MAX_RECLAIM_RETRIES`] on, wakes are ignored until
    /// something new may be reclaimable (a block unpinned, a direct reclaim that made
    /// progress) or every zone is balanced again.
    failures: u32,
    /// The thread waits in [`Kswapd::sleep`] (not napping, not reclaiming).
    asleep: bool,
}

/// The thread's wait: a flag and a condition variable.
#[pin_data]
pub(crate) struct Kswapd {
    #[pin]
    state: Mutex<State>,
    #[pin]
    wait: CondVar,
}

impl Kswapd {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_mutex!(
                State { woken: false, stop: false, failures: 0, asleep: false },
                "minimm_reclaimd_state"
            ),
            wait <- new_condvar!("minimm_reclaimd_wait"),
        })
    }

    /// Wakes the thread (`wakeup_kswapd`); a thread that is awake looks again after its pass.
    ///
    /// Context: process context.
    pub(crate) fn wake(&self) {
        let mut g = self.state.lock();
        if g.failures >= lru::MAX_RECLAIM_RETRIES || g.woken {
            return;
        }
        g.woken = true;
        drop(g);
        self.wait.notify_all();
    }

    /// Something may be reclaimable again: wakes are heard again.
    ///
    /// Context: process context.
    pub(crate) fn reset_failures(&self) {
        self.state.lock().failures = 0;
    }

    /// A pass left a zone short and reclaimed nothing.
    fn failed(&self) {
        let mut g = self.state.lock();
        g.failures = g.failures.saturating_add(1);
    }

    /// Tells the thread to return, and wakes it.
    fn stop(&self) {
        self.state.lock().stop = true;
        self.wait.notify_all();
    }

    /// Whether the thread sleeps until woken (done with its last pass).
    pub(crate) fn asleep(&self) -> bool {
        self.state.lock().asleep
    }

    /// Whether the thread is to return.
    pub(crate) fn stopping(&self) -> bool {
        self.state.lock().stop
    }

    /// Sleeps until woken; `false` when the thread is to return instead. Interruptible (a
    /// kernel thread gets no signals), so that a long sleep is not a hung task.
    fn sleep(&self) -> bool {
        let mut g = self.state.lock();
        g.asleep = true;
        while !g.woken && !g.stop {
            let _ = self.wait.wait_interruptible(&mut g);
        }
        g.asleep = false;
        g.woken = false;
        !g.stop
    }

    /// kswapd's short nap: sleeps up to [`NAP_MS`] unless woken; returns whether it was woken
    /// (or told to stop) meanwhile.
    fn nap(&self) -> bool {
        let mut g = self.state.lock();
        if !g.woken && !g.stop {
            let _ = self
                .wait
                .wait_interruptible_timeout(&mut g, msecs_to_jiffies(NAP_MS));
        }
        let woken = g.woken || g.stop;
        g.woken = false;
        woken
    }
}

/// The thread's life: sleep, wake, balance, nap, sleep.
fn run(shared: &Shared) {
    let k = &shared.reclaim.kswapd;
    let counters = &shared.reclaim.counters;
    while k.sleep() {
        loop {
            let progress = crate::reclaim::balance(shared);
            if k.stopping() {
                return;
            }
            shared.reclaim.note_levels();
            let balanced = shared.pool.balanced();
            if balanced {
                k.reset_failures();
            }
            if !balanced && !progress {
                // Nothing more to reclaim: sleep until an allocation wakes it again, and after
                // `MAX_RECLAIM_RETRIES` such passes not even then (`kswapd_failures`).
                k.failed();
                break;
            }
            match lru::try_to_sleep(balanced, || k.nap(), || shared.pool.balanced()) {
                Sleep::Full => break,
                Sleep::LowHitQuickly => counters.low_hit_quickly.fetch_add(1, Relaxed),
                Sleep::HighHitQuickly => counters.high_hit_quickly.fetch_add(1, Relaxed),
            };
            if k.stopping() {
                return;
            }
        }
    }
}

/// The thread's function.
///
/// # Safety
///
/// `data` comes from `Arc::into_raw` of an `Arc<Shared>` in [`Reclaimd::start`], whose
/// reference the thread now owns.
unsafe extern "C" fn thread_fn(data: *mut c_void) -> c_int {
    // SAFETY: By the function's safety requirement.
    let shared = unsafe { Arc::<Shared>::from_raw(data.cast()) };
    run(&shared);
    // `Reclaimd`'s drop waits in `kthread_stop` until this returns: the module stays.
    drop(shared);
    0
}

/// The running thread; dropping it stops the thread and waits until it has returned.
///
/// # Invariants
///
/// `task` is the thread's `task_struct`, of which this value holds a reference; `data` is
/// the `Arc<Shared>` reference handed to the thread (the thread's to drop once it runs).
pub(crate) struct Reclaimd {
    task: *mut bindings::task_struct,
    data: *const Shared,
    shared: Arc<Shared>,
}

// SAFETY: The task pointer is only used to stop the thread, from whichever thread drops this.
unsafe impl Send for Reclaimd {}
// SAFETY: As above; shared access uses nothing.
unsafe impl Sync for Reclaimd {}

impl Reclaimd {
    /// Starts `minimm_reclaimd`.
    ///
    /// Errors: as `kthread_create_on_node` (`ENOMEM`, `EINTR`).
    ///
    /// Context: process context, may sleep.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<Self> {
        let data = Arc::into_raw(shared.clone());
        // SAFETY: `thread_fn` has the signature kthreads want and takes over `data` (an
        // `Arc::into_raw` reference) when it runs; the name is a NUL-terminated string with
        // no format specifier, so no variadic argument is read.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(thread_fn),
                data.cast_mut().cast(),
                bindings::NUMA_NO_NODE,
                c"minimm_reclaimd".as_ptr().cast(),
            )
        };
        let task = match from_err_ptr(task) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: No thread was made: the reference is still ours.
                drop(unsafe { Arc::from_raw(data) });
                return Err(e);
            }
        };
        // SAFETY: `task` is the new thread, not yet running; the extra reference keeps its
        // `task_struct` for `kthread_stop_put` even once it has returned.
        unsafe {
            bindings::get_task_struct(task);
            bindings::wake_up_process(task);
        }
        // INVARIANT: a reference to `task` taken above; `data` handed to it.
        Ok(Self {
            task,
            data,
            shared: shared.clone(),
        })
    }
}

impl Drop for Reclaimd {
    /// Context: process context, may sleep (until the thread has returned).
    fn drop(&mut self) {
        self.shared.reclaim.kswapd.stop();
        // SAFETY: `task` is the thread made in `start`, with the reference taken there, put
        // here once.
        let r = unsafe { bindings::kthread_stop_put(self.task) };
        if r == -(bindings::EINTR as c_int) {
            // The thread never ran (stopped before it was first scheduled): its reference
            // to the shared state is still ours to drop.
            // SAFETY: From `Arc::into_raw` in `start`, never taken by the thread.
            drop(unsafe { Arc::from_raw(self.data) });
        }
    }
}
