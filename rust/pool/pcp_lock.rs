// SPDX-License-Identifier: GPL-2.0

//! The per-CPU lists' lock (and the slab caches' per-CPU object arrays'): a `spinlock_t`.
//!
//! On a kernel without lock debugging (the `bench` flavour: no lockdep, no
//! `DEBUG_SPINLOCK`, no preemption tracing, no paravirt spinlocks), the fast paths are what C
//! inlines for `spin_trylock` and `spin_unlock` there: an increment of this CPU's preemption
//! count and one compare-and-exchange of the queued spinlock's word, then a release store of
//! its locked byte and the decrement (calling `preempt_schedule` when a reschedule is due), a
//! few `%gs`-relative instructions in [`raw_trylock`] and [`raw_unlock`]. The blocking
//! [`PcpLock::lock`] calls `_raw_spin_lock`, which works on the same word. On any other
//! kernel (the `debug` flavour, with lockdep), every operation calls C's exported
//! `_raw_spin_trylock`, `_raw_spin_lock` and `_raw_spin_unlock`, so lockdep and the spinlock
//! debugging see every acquisition.
//!
//! Why not `kernel::sync::SpinLock`: on a gcc-built kernel the Rust helpers are not inlined,
//! and its lock and unlock cost six calls together (two helpers, each wrapping the exported
//! function, three `Opaque::get` and a lockdep assertion helper) where C makes two, or none
//! inline. The per-CPU lists and object arrays are the allocators' hottest paths, taken on
//! every allocation and free, and under TCG every call and return costs a translation-block
//! lookup: the exported calls took an order-0 pair from 548 ns to ~205 ns, the inline fast
//! paths to ~160 ns, and a slab object pair from ~190 ns to ~95 ns (see README, Benchmark).
//! [`current_cpu`] reads the CPU number the same way, inline.
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
        if unsafe { raw_trylock(self.raw()) } {
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
        unsafe { raw_unlock(self.lock.raw()) };
    }
}

/// Whether the lock's fast paths are inlined here (see [`raw_trylock`]): x86_64, preemptible,
/// queued spinlocks, and none of the debugging or tracing that C's own calls would do.
macro_rules! inline_lock {
    ($($item:item)*) => {$(
        #[cfg(all(
            CONFIG_X86_64,
            CONFIG_PREEMPTION,
            CONFIG_QUEUED_SPINLOCKS,
            not(CONFIG_DEBUG_SPINLOCK),
            not(CONFIG_DEBUG_LOCK_ALLOC),
            not(CONFIG_PARAVIRT_SPINLOCKS),
            not(CONFIG_DEBUG_PREEMPT),
            not(CONFIG_TRACE_PREEMPT_TOGGLE),
            not(CONFIG_QUEUED_SPINLOCKS_TRACE_CONTENDED_RELEASE)
        ))]
        $item
    )*};
}

/// Everywhere else: C's exported calls.
macro_rules! called_lock {
    ($($item:item)*) => {$(
        #[cfg(not(all(
            CONFIG_X86_64,
            CONFIG_PREEMPTION,
            CONFIG_QUEUED_SPINLOCKS,
            not(CONFIG_DEBUG_SPINLOCK),
            not(CONFIG_DEBUG_LOCK_ALLOC),
            not(CONFIG_PARAVIRT_SPINLOCKS),
            not(CONFIG_DEBUG_PREEMPT),
            not(CONFIG_TRACE_PREEMPT_TOGGLE),
            not(CONFIG_QUEUED_SPINLOCKS_TRACE_CONTENDED_RELEASE)
        )))]
        $item
    )*};
}

inline_lock! {
    /// With neither lock debugging nor lockdep, `spinlock_t` is the queued spinlock's one
    /// `atomic_t` (its low byte the "locked" byte), which the inline paths below rely on.
    const _: () = assert!(core::mem::size_of::<bindings::spinlock_t>() == 4);

    extern "C" {
        /// x86's per-CPU preemption count (`__preempt_count`, `EXPORT_PER_CPU_SYMBOL`).
        static __preempt_count: u64;
    }

    /// `preempt_disable()`: one increment of this CPU's preemption count, a compiler barrier.
    #[inline(always)]
    fn preempt_disable() {
        // SAFETY: An increment of this CPU's `__preempt_count` through `%gs`, as C's inline
        // `__preempt_count_add(1)` emits it (8 bytes with separate resched bits, else 4).
        // Without `nomem`, the asm is a compiler barrier, as C's `barrier()` after it.
        #[cfg(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS)]
        unsafe {
            core::arch::asm!("inc qword ptr gs:[rip + {v}]", v = sym __preempt_count, options(nostack))
        };
        #[cfg(not(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS))]
        unsafe {
            core::arch::asm!("inc dword ptr gs:[rip + {v}]", v = sym __preempt_count, options(nostack))
        };
    }

    /// `preempt_enable()`: a decrement; when it reaches zero (nothing else holds preemption
    /// off and a reschedule is due: x86 keeps the resched bit inverted in the count),
    /// `preempt_schedule()`, as C's `__preempt_schedule` does.
    #[inline(always)]
    fn preempt_enable() {
        let zero: u8;
        // SAFETY: The decrement matching `preempt_disable`'s increment, as C's
        // `__preempt_count_dec_and_test` emits it; a compiler barrier before it.
        #[cfg(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS)]
        unsafe {
            core::arch::asm!(
                "dec qword ptr gs:[rip + {v}]",
                "sete {z}",
                v = sym __preempt_count,
                z = out(reg_byte) zero,
                options(nostack)
            )
        };
        #[cfg(not(CONFIG_HAS_SEPARATE_PREEMPT_RESCHED_BITS))]
        unsafe {
            core::arch::asm!(
                "dec dword ptr gs:[rip + {v}]",
                "sete {z}",
                v = sym __preempt_count,
                z = out(reg_byte) zero,
                options(nostack)
            )
        };
        if zero != 0 {
            // SAFETY: Preemption was just enabled again, a reschedule is due: what C calls
            // here (exported with CONFIG_PREEMPTION).
            unsafe { bindings::preempt_schedule() };
        }
    }

    /// `spin_trylock` as C inlines it on such a kernel (`__raw_spin_trylock`): preemption
    /// off, then one compare-and-exchange of the lock word from 0 to locked
    /// (`queued_spin_trylock`), preemption back on if it fails. Two exported calls fewer per
    /// lock and unlock, which TCG charges dearly (see README, Benchmark).
    ///
    /// # Safety
    ///
    /// `lock` is an initialised `spinlock_t`.
    #[inline(always)]
    unsafe fn raw_trylock(lock: *mut bindings::raw_spinlock_t) -> bool {
        preempt_disable();
        // SAFETY: The lock word is the first 4 bytes of the lock (asserted above), aligned,
        // and only ever accessed atomically.
        let word = unsafe { core::sync::atomic::AtomicU32::from_ptr(lock.cast::<u32>()) };
        if word.load(core::sync::atomic::Ordering::Relaxed) == 0
            && word
                .compare_exchange(
                    0,
                    1,
                    core::sync::atomic::Ordering::Acquire,
                    core::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            return true;
        }
        preempt_enable();
        false
    }

    /// `spin_unlock` as C inlines it (`queued_spin_unlock`): a release store of 0 to the
    /// locked byte, then preemption back on. Also right for a lock taken by `_raw_spin_lock`.
    ///
    /// # Safety
    ///
    /// `lock` is an initialised `spinlock_t` this thread holds.
    #[inline(always)]
    unsafe fn raw_unlock(lock: *mut bindings::raw_spinlock_t) {
        // SAFETY: The locked byte is the lock word's low byte (x86 is little-endian), only
        // ever accessed atomically; the holder releases it.
        let locked = unsafe { core::sync::atomic::AtomicU8::from_ptr(lock.cast::<u8>()) };
        locked.store(0, core::sync::atomic::Ordering::Release);
        preempt_enable();
    }
}

called_lock! {
    /// `_raw_spin_trylock`.
    ///
    /// # Safety
    ///
    /// `lock` is an initialised `spinlock_t`.
    #[inline(always)]
    unsafe fn raw_trylock(lock: *mut bindings::raw_spinlock_t) -> bool {
        // SAFETY: The caller's guarantee.
        unsafe { bindings::_raw_spin_trylock(lock) != 0 }
    }

    /// `_raw_spin_unlock`.
    ///
    /// # Safety
    ///
    /// `lock` is an initialised `spinlock_t` this thread holds.
    #[inline(always)]
    unsafe fn raw_unlock(lock: *mut bindings::raw_spinlock_t) {
        // SAFETY: The caller's guarantee.
        unsafe { bindings::_raw_spin_unlock(lock) };
    }
}

/// The CPU this code runs on (`raw_smp_processor_id()`): one load of this CPU's copy of the
/// per-CPU `cpu_number` through the `%gs` base, the instruction C's inline function compiles
/// to (the kernel crate's `CpuId::current` calls a C helper for it, which a gcc-built kernel
/// does not inline). As with `raw_smp_processor_id`, the answer may be stale as soon as it is
/// read unless preemption is off: callers use it to pick a per-CPU lock, whose holder is then
/// the only one touching that CPU's data wherever it runs.
#[cfg(CONFIG_X86_64)]
#[inline]
pub(crate) fn current_cpu() -> usize {
    extern "C" {
        /// x86's per-CPU CPU number (`DEFINE_PER_CPU_CACHE_HOT(int, cpu_number)`, exported
        /// with `EXPORT_PER_CPU_SYMBOL`): its address is the template copy's, which `%gs`
        /// relocates to this CPU's.
        static cpu_number: i32;
    }
    let id: u32;
    // SAFETY: A 4-byte load from this CPU's copy of `cpu_number`, `%gs`-relative as the
    // kernel's own `this_cpu_read` emits it (`mov %gs:cpu_number(%rip), %eax`): the per-CPU
    // area is mapped for as long as the CPU is online, which the running CPU is. No memory
    // is written, no flags or stack are touched.
    unsafe {
        core::arch::asm!(
            "mov {id:e}, dword ptr gs:[rip + {var}]",
            id = out(reg) id,
            var = sym cpu_number,
            options(nostack, readonly, preserves_flags)
        )
    };
    id as usize
}

/// Elsewhere: the kernel crate's (a C helper call).
#[cfg(not(CONFIG_X86_64))]
#[inline]
pub(crate) fn current_cpu() -> usize {
    kernel::cpu::CpuId::current().as_u32() as usize
}

#[kunit_tests(minimm_pcp_lock)]
mod tests {
    use super::*;

    /// The inline CPU number agrees with the kernel's, with preemption off (a spinlock held)
    /// so that neither can change between the two reads.
    #[test]
    fn current_cpu_is_the_kernels() -> Result {
        let lock = KBox::pin_init(
            PcpLock::new(0u32, c"minimm_test_pcp", kernel::static_lock_class!()),
            GFP_KERNEL,
        )?;
        for _ in 0..100 {
            let g = lock.lock();
            assert_eq!(
                current_cpu(),
                kernel::cpu::CpuId::current().as_u32() as usize
            );
            drop(g);
        }
        Ok(())
    }
}
