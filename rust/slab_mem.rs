// SPDX-License-Identifier: GPL-2.0

//! Slab memory: the views of pool pages that hold objects (the unsafe part of the slab
//! caches).
//!
//! A slab is a pool block in the kernel's direct map (`Pool::block_addr`). The cache that owns
//! it reads and writes its bytes through these functions: the on-slab free list, free objects
//! (constructor, poison, red zones) under the cache's node lock, and objects its caller owns.
//! Nothing here checks ownership: each function's caller says why the bytes are its own.

/// The bytes `addr..addr + len` as a mutable slice.
///
/// # Safety
///
/// The range lies inside one slab of the caller's cache, which stays allocated for `'a`, and
/// nothing else reads or writes it during `'a` (a free object under the node lock, or an
/// object the caller owns and whose accesses it serialises).
pub(crate) unsafe fn bytes_mut<'a>(addr: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: Valid, exclusive memory of `len` bytes for `'a`, by the caller's obligation;
    // any byte pattern is a valid `u8`.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

/// The `n` free-list entries at `addr` (a slab's on-slab descriptor, after its header).
///
/// # Safety
///
/// As for [`bytes_mut`], for `2 * n` bytes; `addr` is 2-byte aligned.
pub(crate) unsafe fn entries_mut<'a>(addr: usize, n: usize) -> &'a mut [u16] {
    // SAFETY: As above: valid, exclusive and aligned, by the caller's obligation; any bit
    // pattern is a valid `u16`.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u16, n) }
}

/// Copies `len` bytes from `src` to `dst` (kernel memory only: user copies go through a
/// bounce buffer, outside locks).
///
/// # Safety
///
/// `src..src + len` is readable and `dst..dst + len` writable, they do not overlap, and
/// nothing else writes either meanwhile.
pub(crate) unsafe fn copy(src: usize, dst: usize, len: usize) {
    // SAFETY: By the caller's obligation.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) }
}

#[cfg(CONFIG_DEBUG_KMEMLEAK)]
mod leak {
    use core::ffi::{c_int, c_void};
    use kernel::bindings;

    extern "C" {
        fn kmemleak_alloc(ptr: *const c_void, size: usize, min_count: c_int, gfp: bindings::gfp_t);
        fn kmemleak_free(ptr: *const c_void);
    }

    pub(super) fn alloc(addr: usize, len: usize) {
        // SAFETY: `kmemleak_alloc` records a range for scanning; min_count 0 means it is
        // scanned for pointers but never reported itself. GFP_ATOMIC: callers may hold locks.
        unsafe { kmemleak_alloc(addr as *const c_void, len, 0, bindings::GFP_ATOMIC) }
    }

    pub(super) fn free(addr: usize) {
        // SAFETY: `addr` was recorded by `alloc` above and is forgotten once.
        unsafe { kmemleak_free(addr as *const c_void) }
    }
}

/// Tells kmemleak a slab exists, so that pointers kept in its objects count as references
/// (it does not scan pages from the page allocator otherwise).
pub(crate) fn leak_track(addr: usize, len: usize) {
    #[cfg(CONFIG_DEBUG_KMEMLEAK)]
    leak::alloc(addr, len);
    #[cfg(not(CONFIG_DEBUG_KMEMLEAK))]
    let _ = (addr, len);
}

/// Undoes [`leak_track`] before the slab goes back to the pool.
pub(crate) fn leak_untrack(addr: usize) {
    #[cfg(CONFIG_DEBUG_KMEMLEAK)]
    leak::free(addr);
    #[cfg(not(CONFIG_DEBUG_KMEMLEAK))]
    let _ = addr;
}
