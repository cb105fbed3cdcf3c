// SPDX-License-Identifier: GPL-2.0

//! Discardable blocks of an open file: `UNPIN` and `PIN`.
//!
//! A block allocated with `MINIMM_ALLOC_DISCARDABLE` is a buffer whose pages are a
//! [`crate::reclaim::Unit`]: pinned at first; unpinned, it joins its zone's inactive list and
//! reclaim may purge it (`reclaim.rs`); pinned again, it leaves the lists and, if it was
//! purged, gets new zeroed pages.
//!
//! # Locks
//!
//! The file's table lock only to look the handle up; then the unit's own (see `reclaim.rs`).

use kernel::{prelude::*, uaccess::UserPtr};

use super::{blocks::Backing, read_ext, write_prefix, Client, Tail};
use crate::uapi;

impl Client {
    /// `MINIMM_IOC_UNPIN` (`pin` false) and `MINIMM_IOC_PIN` (`pin` true).
    pub(super) fn pin(&self, arg: UserPtr, pin: bool) -> Result {
        let (mut req, len) = read_ext::<uapi::Pin>(arg, uapi::PIN_SIZE_VER0, Tail::Input)?;
        if req.flags != 0 {
            return Err(EINVAL);
        }
        let buf = self.lookup(req.handle).ok_or(EINVAL)?;
        let Backing::Discard(unit) = &buf.backing else {
            return Err(EINVAL);
        };
        // Fail on an unwritable struct before anything changes.
        write_prefix(arg, &req, len)?;
        req.result = if pin {
            if unit.pin(&self.shared)? {
                uapi::PIN_PURGED
            } else {
                0
            }
        } else {
            unit.unpin()?;
            0
        };
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        // Done either way: a struct made unwritable meanwhile loses only the report.
        write_prefix(arg, &req, len)
    }
}
