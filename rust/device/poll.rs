// SPDX-License-Identifier: GPL-2.0

//! `poll(2)` on `/dev/minimm`: `POLLPRI` while the file has watermark events it has not read
//! (`MINIMM_IOC_WMARK_EVENTS`), as PSI triggers report pressure events.
//!
//! Rust-for-Linux 7.3's `MiscDevice` has no `poll`, so minimm adds one to the operations its
//! registration made: at load, the registration's `file_operations` are copied into
//! [`PollFops`] with `poll` set, and the misc device is pointed at the copy, which `misc_open`
//! installs in every file it opens from then on (a file opened in the moment between the
//! registration and the switch has no `poll`: the kernel then reports it always readable and
//! writable, never `POLLPRI`). Everything else in the copy is the registration's own.
//!
//! This is one of the unsafe parts.

use core::{cell::UnsafeCell, mem::MaybeUninit, pin::Pin};

use kernel::{
    bindings, fs::File, miscdevice::MiscDeviceRegistration, prelude::*, sync::poll::PollTable,
    types::ForeignOwnable,
};

use super::Client;

/// The registration's operations with `poll` added.
///
/// # Invariants
///
/// Once [`PollFops::install`] has run, `ops` holds a copy of a registration's
/// `file_operations` that stays valid, unchanged, for as long as the value lives; it is never
/// written again.
pub(crate) struct PollFops {
    ops: UnsafeCell<MaybeUninit<bindings::file_operations>>,
}

// SAFETY: `ops` is written once, by `install`, before any file can use it (the misc device
// points at it only after the write), and only read afterwards.
unsafe impl Sync for PollFops {}
// SAFETY: As above; the table holds function pointers and the module pointer only.
unsafe impl Send for PollFops {}

impl PollFops {
    pub(crate) const fn new() -> Self {
        Self {
            ops: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Copies `misc`'s operations with `poll` added and points `misc` at the copy.
    ///
    /// # Safety
    ///
    /// `self` outlives every file opened through `misc` (a field of the module's state, which
    /// an open file keeps alive through its module reference), is pinned, and this runs once,
    /// before `self` is used otherwise.
    pub(crate) unsafe fn install(&self, misc: &MiscDeviceRegistration<Client>) {
        let raw = misc.as_raw();
        // SAFETY: `raw` is a registered misc device, whose `fops` points to the registration's
        // static operations table, valid for the module's life.
        let mut ops = unsafe { (*raw).fops.read() };
        ops.poll = Some(poll);
        let slot = self.ops.get();
        // SAFETY: By the function's safety requirement nothing reads `ops` yet; the slot is
        // valid for writes.
        unsafe { (*slot).write(ops) };
        // SAFETY: `misc_open` reads `fops` under `misc_mtx`, which a module cannot take; a
        // pointer-sized volatile store is what `WRITE_ONCE` does, cannot tear on x86_64, and a
        // concurrent open sees either table, both valid for the module's life (the copy by
        // the function's safety requirement).
        unsafe {
            core::ptr::addr_of_mut!((*raw).fops)
                .write_volatile((*slot).as_ptr().cast::<bindings::file_operations>())
        };
    }
}

/// `poll` of a file of `/dev/minimm`.
///
/// # Safety
///
/// `file` is an open file of this misc device (its operations are a [`PollFops`] copy, so
/// `misc_open` and the registration's `open` made it, and its `private_data` is the
/// `Pin<KBox<Client>>` that `open` returned); `wait` is null or a valid poll table for the
/// call.
unsafe extern "C" fn poll(
    file: *mut bindings::file,
    wait: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: By the function's safety requirement `private_data` came from
    // `Pin<KBox<Client>>::into_foreign` and is released only when the file is, after every
    // `poll` on it has returned.
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
