// SPDX-License-Identifier: GPL-2.0

//! Discardable blocks and areas of an open file, `UNPIN` and `PIN`, and the watermark events it reads
//! (`WMARK_EVENTS`; `POLLPRI` from `poll`, in `poll.rs`).
//!
//! A block allocated with `MINIMM_ALLOC_DISCARDABLE` (or an area created with
//! `MINIMM_VM_DISCARDABLE`) is a buffer whose pages are a [`crate::reclaim::Unit`]: pinned at
//! first; unpinned, it joins its zone's inactive list (an area's pages each theirs) and
//! reclaim may purge it (`reclaim.rs`); pinned again, it leaves the lists and its purged
//! pages are new and zeroed.
//!
//! # Locks
//!
//! The file's table lock only to look the handle up; then the unit's own (see `reclaim.rs`).

use core::sync::atomic::Ordering::{Acquire, Release};

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
        let Backing::Discard(unit, _) = &buf.backing else {
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
        let r = write_prefix(arg, &req, len);
        if r.is_err() && req.result & uapi::PIN_PURGED != 0 {
            // The struct became unwritable meanwhile: the block is pinned, and the next PIN
            // reports the purge this one could not.
            unit.unreport_purge();
        }
        r
    }
}

impl Client {
    /// `MINIMM_IOC_WMARK_EVENTS`: the module's watermark event counts and the latest event;
    /// this file has read every event counted so far (`poll` stops reporting `POLLPRI`).
    pub(super) fn wmark_events(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::WmarkEvents>(arg, uapi::WMARK_EVENTS_SIZE_VER0, Tail::Output)?;
        let g = self.shared.reclaim.events.lock();
        let (seq, counts, last) = (g.seq, g.counts, g.last);
        drop(g);
        req.events = seq;
        req.unread = seq.saturating_sub(self.events_read.load(Acquire));
        let [low, min, high] = counts;
        req.below_low = low;
        req.below_min = min;
        req.above_high = high;
        req.last_zone = u32::try_from(last.0).unwrap_or(0);
        req.last_kind = last.1;
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &req, len)?;
        // Read only once the report reached user space.
        self.events_read.fetch_max(seq, Release);
        Ok(())
    }

    /// Whether this file has watermark events it has not read (`POLLPRI`).
    pub(super) fn events_unread(&self) -> bool {
        self.shared.reclaim.events.lock().seq > self.events_read.load(Acquire)
    }
}
