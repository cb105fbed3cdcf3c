// SPDX-License-Identifier: GPL-2.0

//! The per-CPU lists' lock: a `spinlock_t` taken and released with the very calls C's
//! `spin_trylock`, `spin_lock` and `spin_unlock` compile to (`_raw_spin_trylock`,
//! `_raw_spin_lock`, `_raw_spin_unlock`, exported functions on kernels that do not inline
//! them: every x86_64 kernel with preemption, which 7.3 always has there; other
//! configurations are refused at build time below).
//!
//! Why not `kernel::sync::SpinLock`: on a gcc-built kernel the Rust helpers are not inlined,
//! and its lock and unlock cost six calls together (two helpers, each wrapping the exported
//! function, three `Opaque::get` and a lockdep assertion helper) where C makes two. The
//! per-CPU lists are the allocator's hottest path, taken twice per allocate+free pair, and
//! under TCG every call and return costs a translation-block lookup: with the zone's
//! lock-free copies read as plain loads (`pool/zone.rs`), the thin lock took an order-0 pair
//! from 548 ns to 224 ns in the benchmark VM (see README). Lockdep sees the lock as
//! it sees any spinlock: initialised with its class by `__spin_lock_init`, acquired and
//! released by the `_raw_spin_*` functions.
//!
//! Only for non-RT kernels: with PREEMPT_RT, `spinlock_t` is a sleeping lock with other
//! functions.

use core::{
    cell::UnsafeCell,
    ops::{Deref, DerefMut},
};

use kernel::{
    bindings,
    prelude::*,
    sync::LockClassKey,
    types::{NotThreadSafe, Opaque},
};

#[cfg(CONFIG_PREEMPT_RT)]
compile_error!("minimm's per-CPU list lock (pool/pcp_lock.rs) supports non-RT kernels only");
#[cfg(any(
    CONFIG_INLINE_SPIN_TRYLOCK,
    CONFIG_INLINE_SPIN_LOCK,
    not(CONFIG_UNINLINE_SPIN_UNLOCK)
))]
compile_error!(
    "minimm's per-CPU list lock (pool/pcp_lock.rs) needs _raw_spin_trylock, _raw_spin_lock and \
     _raw_spin_unlock as functions (CONFIG_UNINLINE_SPIN_UNLOCK, no CONFIG_INLINE_SPIN_*)"
);

/// A spinlock protecting a `T`, with C's calls (see the module documentation).
///
/// # Invariants
///
/// `lock` was initialised by `__spin_lock_init`; `data` is only accessed through a
/// [`PcpGuard`], which exists only while `lock` is held by its creator.
#[pin_data]
pub(crate) struct PcpLock<T> {
    #[pin]
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: The lock hands `T` from one thread to another, so `T: Send` suffices to send the
// lock, as for `kernel::sync::SpinLock`.
unsafe impl<T: Send> Send for PcpLock<T> {}
// SAFETY: `&PcpLock` only gives access to `T` under the lock, one thread at a time: `T: Send`
// suffices, as for `kernel::sync::SpinLock`.
unsafe impl<T: Send> Sync for PcpLock<T> {}

impl<T> PcpLock<T> {
    /// A new, unlocked lock of lockdep class `key`, named `name`, protecting `data`.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            data: UnsafeCell::new(data),
            // SAFETY: `slot` is valid for writes for the call; `name` and `key` are static,
            // as lockdep keeps them.
            lock <- Opaque::ffi_init(|slot: *mut bindings::spinlock_t| unsafe {
                bindings::__spin_lock_init(slot, name.as_char_ptr(), key.as_ptr())
            }),
        })
    }

    /// The `raw_spinlock_t` inside the `spinlock_t`, as C's `&lock->rlock`.
    #[inline]
    fn raw(&self) -> *mut bindings::raw_spinlock_t {
        // `Opaque<T>` is `repr(transparent)` over `UnsafeCell<MaybeUninit<T>>`: a pointer to
        // it is a pointer to the `T` inside, which may be written through (`UnsafeCell`); a
        // cast rather than `Opaque::get`, which is not inlined across crates. Without
        // PREEMPT_RT, `spinlock_t` is a struct whose first member is a union whose member
        // `rlock`, the `raw_spinlock_t`, sits at offset 0, with lockdep or without (the
        // kernel's bindgen keeps `spinlock_t` opaque, so the cast is the only way to name it).
        core::ptr::from_ref(&self.lock)
            .cast::<bindings::raw_spinlock_t>()
            .cast_mut()
    }

    /// Takes the lock if it is free (`spin_trylock`): never waits, so usable in any context.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<PcpGuard<'_, T>> {
        // SAFETY: `self.raw()` is the initialised lock of the type invariant.
        if unsafe { bindings::_raw_spin_trylock(self.raw()) } != 0 {
            // INVARIANT: the lock is held by this thread.
            Some(PcpGuard {
                lock: self,
                _not_send: NotThreadSafe,
            })
        } else {
            None
        }
    }

    /// Takes the lock, waiting for it (`spin_lock`).
    ///
    /// Context: process context (the lock does not disable interrupts, and only process
    /// context may wait for it: see `pool/zone.rs`).
    pub(crate) fn lock(&self) -> PcpGuard<'_, T> {
        // SAFETY: `self.raw()` is the initialised lock of the type invariant.
        unsafe { bindings::_raw_spin_lock(self.raw()) };
        // INVARIANT: the lock is held by this thread.
        PcpGuard {
            lock: self,
            _not_send: NotThreadSafe,
        }
    }
}

/// The lock held: access to the data; releases the lock when dropped.
///
/// # Invariants
///
/// `lock` is held by the thread that created this guard.
pub(crate) struct PcpGuard<'a, T> {
    lock: &'a PcpLock<T>,
    /// Released on the CPU and thread that took it.
    _not_send: NotThreadSafe,
}

impl<T> Deref for PcpGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: The lock is held (type invariant), so nobody else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for PcpGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The lock is held (type invariant), so nobody else accesses the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for PcpGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: The lock is held by this thread (type invariant) and released once, here.
        unsafe { bindings::_raw_spin_unlock(self.lock.raw()) };
    }
}
