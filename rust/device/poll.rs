// SPDX-License-Identifier: GPL-2.0

//! `poll(2)` on `/dev/minimm`: `POLLPRI` while the file has watermark events it has not read
//! (`MINIMM_IOC_WMARK_EVENTS`), as PSI triggers report pressure events.
//!
//! Rust-for-Linux 7.3's `MiscDevice` has no `poll`, so minimm adds one: at load, once the
//! misc device is registered, its `file_operations` are copied into [`PollFops`] with `poll`
//! set; each `open` then puts the copy in its file (`Client::open`, as `replace_fops` does in
//! `misc_open`), before the file is seen by anyone else. Everything else in the copy is the
//! registration's own, the module owner included, so the file's module reference is the same.
//! A file opened before the copy exists keeps the registration's table, without `poll`.
//!
//! This is one of the unsafe parts.

use core::{
    cell::UnsafeCell,
    mem::MaybeUninit,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
};

use kernel::{
    bindings, fs::File, miscdevice::MiscDeviceRegistration, prelude::*, sync::poll::PollTable,
    types::ForeignOwnable,
};

use super::Client;

/// The registration's operations with `poll` added.
///
/// # Invariants
///
/// Once `ready` is set (with release ordering), `ops` holds a copy of the registration's
/// `file_operations` with `poll` set, and it is never written again.
pub(crate) struct PollFops {
    ops: UnsafeCell<MaybeUninit<bindings::file_operations>>,
    ready: AtomicBool,
}

// SAFETY: `ops` is written once, by `install`, before `ready` is set with release ordering;
// readers look at it only after seeing `ready` with acquire ordering.
unsafe impl Sync for PollFops {}
// SAFETY: As above; the table holds function pointers and the module pointer only.
unsafe impl Send for PollFops {}

impl PollFops {
    pub(crate) const fn new() -> Self {
        Self {
            ops: UnsafeCell::new(MaybeUninit::uninit()),
            ready: AtomicBool::new(false),
        }
    }

    /// Copies `misc`'s operations with `poll` added.
    ///
    /// # Safety
    ///
    /// Runs once, before anything reads `self` (the module's init, once the device is
    /// registered).
    pub(crate) unsafe fn install(&self, misc: &MiscDeviceRegistration<Client>) {
        let raw = misc.as_raw();
        // SAFETY: `raw` is a registered misc device, whose `fops` points to the registration's
        // static operations table, valid for the module's life.
        let mut ops = unsafe { (*raw).fops.read() };
        ops.poll = Some(poll);
        // SAFETY: By the function's safety requirement nothing reads `ops` yet (`ready` is
        // still false); the slot is valid for writes.
        unsafe { (*self.ops.get()).write(ops) };
        // INVARIANT: the copy is written; published with release ordering.
        self.ready.store(true, Ordering::Release);
    }

    /// The copy, once installed.
    fn ops(&self) -> Option<*const bindings::file_operations> {
        self.ready
            .load(Ordering::Acquire)
            .then(|| self.ops.get().cast_const().cast())
    }
}

/// Puts `fops`' copy in `file`, which is being opened, if the copy exists.
///
/// # Safety
///
/// `file` is a file of this misc device being opened (in its `open`, not yet visible to
/// anyone else), and `fops` lives as long as the module, which every open file keeps loaded.
pub(crate) unsafe fn install_in(fops: &'static PollFops, file: &File) {
    if let Some(ops) = fops.ops() {
        // SAFETY: By the function's safety requirement nobody else reaches the file yet; the
        // copy's owner is the registration's, so the module reference `misc_open` took for
        // the old table is the one `fput` gives back for the new one, and every operation in
        // it is the registration's own but `poll`.
        unsafe { (*file.as_ptr()).f_op = ops };
    }
}

/// `poll` of a file of `/dev/minimm`.
///
/// # Safety
///
/// `file` is an open file of this misc device whose operations are a [`PollFops`] copy (so
/// its `private_data` is the `Pin<KBox<Client>>` its `open` returned); `wait` is null or a
/// valid poll table for the call.
unsafe extern "C" fn poll(
    file: *mut bindings::file,
    wait: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: By the function's safety requirement `private_data` came from
    // `Pin<KBox<Client>>::into_foreign`; it is released only by `release`, which `__fput`
    // calls after every poller is gone (the file is referenced for the call, and epoll
    // removes its waiters first).
    let client: Pin<&Client> =
        unsafe { <Pin<KBox<Client>> as ForeignOwnable>::borrow((*file).private_data) };
    // SAFETY: `file` is valid for the call, with no `fdget_pos` region of ours on it.
    let f = unsafe { File::from_raw_file(file) };
    // SAFETY: `wait` is null or valid for the call (the function's safety requirement).
    let table = unsafe { PollTable::from_raw(wait) };
    // Registered before the look, so that an event between the two wakes the poller.
    table.register_wait(f, &client.shared.reclaim.poll);
    if client.events_unread() {
        bindings::POLLPRI as bindings::__poll_t
    } else {
        0
    }
}
