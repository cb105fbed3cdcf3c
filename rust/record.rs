// SPDX-License-Identifier: GPL-2.0

//! The module's own records in minimm's own slab caches.
//!
//! Linux keeps its bookkeeping in dedicated caches (`vmap_area`, `anon_vma`, `files_cache`),
//! each named in `/proc/slabinfo`. minimm does the same for its records: a [`RecordCache<T>`]
//! is a dedicated cache of the module (`minimm_slab_object` for the objects behind slab
//! handles, `minimm_vm_area` for the areas of the vmalloc-like mapper) and a [`Rec<T>`] is one
//! record in it, reference-counted like the kernel crate's `Arc` (an area is held by its
//! owner and by the mapper's tree).
//!
//! Not every record: the buffers behind block handles stay in the host's memory, so that a
//! block takes exactly its pages from its zone and nothing else (the buddy's accounting, which
//! user space checks page for page, would otherwise move by a record slab now and then).
//!
//! A record cache has no per-CPU arrays and keeps no empty slab (`min_partial` 0): records
//! come and go at ioctl rate under the callers' locks, where arrays gain nothing, and this way
//! its slabs hold pool pages only while records live: once the last record of a slab goes, so
//! does the slab, and a module whose files hold no slab objects and no areas has no page in
//! its record caches.
//!
//! This is one of the unsafe parts: it places values in slab objects.

use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

use kernel::{prelude::*, sync::Arc, sync::Refcount};
use pin_init::PinInit;

use crate::{
    pool::Pool,
    slab_cache::{Caches, Config, Gfp, SlabCache},
};

/// A record's object: its references, its cache, then the value.
struct Inner<T> {
    refs: Refcount,
    /// The cache the object goes back to.
    cache: Arc<SlabCache>,
    data: T,
}

/// A dedicated cache for records of type `T`.
///
/// # Invariants
///
/// `cache`'s objects are at least `size_of::<Inner<T>>()` bytes, aligned to `Inner<T>`.
pub(crate) struct RecordCache<T> {
    cache: Arc<SlabCache>,
    _records: PhantomData<fn() -> T>,
}

impl<T> RecordCache<T> {
    /// Creates and lists the cache `name` (no slab yet).
    ///
    /// Errors: as [`Caches::create`]; `ENOMEM`.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(caches: &Caches, pool: &Arc<Pool>, name: &[u8]) -> Result<Self> {
        let cache = caches.create(
            &Config {
                name,
                object_size: size_of::<Inner<T>>(),
                align: align_of::<Inner<T>>(),
                flags: 0,
                ctor_seed: 0,
                record: true,
            },
            pool,
        )?;
        // INVARIANT: the cache was made for `Inner<T>`.
        Ok(Self {
            cache,
            _records: PhantomData,
        })
    }

    /// Records live now.
    pub(crate) fn live(&self) -> usize {
        self.cache.live_objects()
    }

    /// Reserves an object for a record to come.
    ///
    /// Errors: `ENOMEM`.
    ///
    /// Context: process context, may sleep (a new slab).
    pub(crate) fn reserve(&self) -> Result<Slot<T>> {
        let addr = self.cache.alloc(Gfp::KERNEL)?;
        // INVARIANT: a new object of this cache, made for `Inner<T>` (type invariant).
        Ok(Slot {
            addr,
            cache: self.cache.clone(),
            _record: PhantomData,
        })
    }

    /// A new record, initialised by `init`, with one reference.
    ///
    /// Errors: `ENOMEM`, or `init`'s error (the object goes back).
    ///
    /// Context: process context, may sleep (a new slab).
    pub(crate) fn new_rec<E>(&self, init: impl PinInit<T, E>) -> Result<Rec<T>>
    where
        Error: From<E>,
    {
        let slot = self.reserve()?;
        // SAFETY: The slot's `data` is valid for writes and never moves once initialised
        // (records stay where they are until freed): `init` may pin it. On failure `init`
        // leaves it uninitialised and the slot, dropped, gives the object back.
        unsafe { init.__init(slot.data()) }?;
        // SAFETY: `data` was just initialised.
        Ok(unsafe { slot.finish() })
    }
}

/// An object of a record cache reserved for a record to come ([`RecordCache::reserve`]), so
/// that a command can take every allocation it may fail at before it changes anything; given
/// back when dropped unless [`Slot::fill`] made it a record.
///
/// # Invariants
///
/// `addr` is an object of `cache`, nobody else's, large and aligned enough for an `Inner<T>`.
pub(crate) struct Slot<T> {
    addr: usize,
    cache: Arc<SlabCache>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Slot<T> {
    /// Where the record's value goes.
    fn data(&self) -> *mut T {
        let inner = self.addr as *mut Inner<T>;
        // SAFETY: The object fits an `Inner<T>` (type invariant): `data` is inside it.
        unsafe { &raw mut (*inner).data }
    }

    /// Makes the slot a record holding `value`, with one reference. Cannot fail.
    pub(crate) fn fill(self, value: T) -> Rec<T> {
        // SAFETY: `data` is the slot's, valid for writes and uninitialised; then initialised.
        unsafe {
            self.data().write(value);
            self.finish()
        }
    }

    /// Makes the slot a record around its value, with one reference.
    ///
    /// # Safety
    ///
    /// The slot's `data` is initialised.
    unsafe fn finish(self) -> Rec<T> {
        let this = core::mem::ManuallyDrop::new(self);
        let inner = this.addr as *mut Inner<T>;
        // SAFETY: The slot's object is ours and fits an `Inner<T>` (type invariant); the
        // cache reference moves into the record (the slot is not dropped).
        unsafe {
            (&raw mut (*inner).refs).write(Refcount::new(1));
            (&raw mut (*inner).cache).write(core::ptr::read(&this.cache));
        }
        // INVARIANT: the record is initialised (the caller's obligation for `data`) and this
        // is its one reference.
        Rec {
            // SAFETY: An object's address is not null.
            ptr: unsafe { NonNull::new_unchecked(inner) },
        }
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // The object was this cache's: a refusal is a bug of ours.
        kernel::warn_on!(self.cache.free(self.addr).is_err());
    }
}

/// A reference to a record in a [`RecordCache`]; the last one drops the value and frees
/// the object. The value never moves (it may be pinned).
///
/// # Invariants
///
/// `ptr` is an initialised `Inner<T>` in an object of `(*ptr).cache`, and this `Rec` owns one
/// of its `refs`.
pub(crate) struct Rec<T> {
    ptr: NonNull<Inner<T>>,
}

// SAFETY: As for `Arc<T>`: a `Rec` may drop the value on any thread (`T: Send`) and gives
// shared access to it from any thread (`T: Sync`); the cache it frees into is thread-safe.
unsafe impl<T: Send + Sync> Send for Rec<T> {}
// SAFETY: As above.
unsafe impl<T: Send + Sync> Sync for Rec<T> {}

impl<T> Deref for Rec<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The record lives while this reference does (type invariant).
        unsafe { &(*self.ptr.as_ptr()).data }
    }
}

impl<T> Clone for Rec<T> {
    fn clone(&self) -> Self {
        // SAFETY: The record lives while this reference does (type invariant).
        unsafe { (*self.ptr.as_ptr()).refs.inc() };
        // INVARIANT: the new reference was just counted.
        Self { ptr: self.ptr }
    }
}

impl<T> Drop for Rec<T> {
    /// Context: where `T`'s drop may run, and process or softirq context (a slab free).
    fn drop(&mut self) {
        let p = self.ptr.as_ptr();
        // SAFETY: The record lives while this reference does (type invariant).
        if !unsafe { (*p).refs.dec_and_test() } {
            return;
        }
        // SAFETY: That was the last reference: nobody else reaches the record. The cache is
        // read out once, the value dropped in place once, then the object freed.
        let cache = unsafe { core::ptr::read(&raw const (*p).cache) };
        // SAFETY: As above.
        unsafe { core::ptr::drop_in_place(&raw mut (*p).data) };
        // The object was this cache's: a refusal is a bug of ours.
        kernel::warn_on!(cache.free(p as usize).is_err());
    }
}

#[kunit_tests(minimm_record)]
mod tests {
    use super::*;
    use crate::pool::tests::{all_back, pool_of};
    use kernel::sync::atomic::{Atomic, Relaxed};

    /// A record that counts its drops.
    struct Counted<'a>(usize, &'a Atomic<u32>);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.1.fetch_add(1, Relaxed);
        }
    }

    /// Records over three slabs keep their values; a clone and a failed initialiser leave
    /// exactly one drop per record; the last record takes the last slab with it, and
    /// destroying the cache leaves the pool whole.
    #[test]
    fn records_count_references_and_free_their_slabs() -> Result {
        let pool = pool_of([16, 256, 256])?;
        let caches = KBox::pin_init(Caches::new(0), GFP_KERNEL)?;
        let dropped = Atomic::new(0u32);
        let rc = RecordCache::<Counted<'_>>::new(&caches, &pool, b"kunit-records")?;
        assert_eq!(rc.cache.stats().num_slabs, 0);
        let per_slab = rc.cache.geometry().objects;
        let mut recs = KVec::new();
        for i in 0..per_slab * 3 {
            recs.push(rc.new_rec(Counted(i, &dropped))?, GFP_KERNEL)?;
        }
        assert_eq!(rc.cache.stats().num_slabs, 3);
        assert!(recs.iter().enumerate().all(|(i, r)| r.0 == i));
        let last = recs.pop().ok_or(EINVAL)?;
        let again = last.clone();
        assert_eq!(again.0, per_slab * 3 - 1);
        assert!(core::ptr::eq(&*again, &*last));
        drop(last);
        assert_eq!(dropped.load(Relaxed), 0);
        drop(again);
        assert_eq!(dropped.load(Relaxed), 1);
        let live = rc.cache.live_objects();
        // SAFETY: The closure initialises nothing and fails: `slot` is left as it was.
        let failing = unsafe { pin_init::pin_init_from_closure(|_slot| Err(ENOMEM)) };
        assert!(rc.new_rec(failing).is_err());
        assert_eq!(rc.cache.live_objects(), live);
        drop(recs);
        assert_eq!(dropped.load(Relaxed) as usize, per_slab * 3);
        assert_eq!(rc.cache.live_objects(), 0);
        assert_eq!(rc.cache.stats().num_slabs, 0);
        assert_eq!(rc.cache.shrink(), 0);
        assert_eq!(rc.cache.validate(), Ok(()));
        caches.destroy(&rc.cache)?;
        drop(rc);
        drop(caches);
        assert!(all_back(&pool));
        Ok(())
    }
}
