// SPDX-License-Identifier: GPL-2.0

//! The misc device `/dev/minimm`: open files, the ioctl dispatcher and argument copying.
//!
//! Every open file is a [`Client`]. Each uapi concept has its own file, and a new one is a
//! new file plus a line in [`Client::ioctl`]:
//!
//! - `mod.rs` (this file): open, the dispatcher, extensible-struct copying, and the commands
//!   about the module as a whole (`GET_INFO`, `ZONE_STATS`);
//! - [`blocks`]: buffers of pool pages, their ioctls (`ALLOC`, `FREE`, `BLOCK_DATA`) and mmap;
//! - [`registry`]: the module-wide mmap offset space and who owns each buffer (page_owner);
//! - [`slab`]: the file's slab caches and objects, and their ioctls (`SLAB_*`);
//! - `vmalloc`: the file's vmalloc-like areas, buffers too, and their ioctls (`VM_*`).
//!
//! Commands are told apart by the type, number and direction of the ioctl number, not its size
//! bits: a program built against a later header, whose struct is longer, reaches the same
//! command. Argument structs are extensible (see `include/uapi/linux/minimm.h`): the first
//! `u32` is the caller's `size`, read before anything else; only `min(size, ours)` bytes are
//! copied; an input struct's unknown tail must be zero, an output struct's is left alone. User
//! memory is only copied in these files, outside locks.
//!
//! Open modes: a file opened read-only may only look (`GET_INFO`, `ZONE_STATS`); commands that
//! change or touch blocks need a file opened for writing (`EBADF` otherwise).
//!
//! A failed command changes nothing: the struct a command writes back is first written back
//! unchanged, so an unwritable one fails with `EFAULT` before anything is done, and an
//! allocation whose result still cannot be written is undone, handle number included.
//!
//! # Locks
//!
//! Each file's buffer table (`Client::table`, a mutex), the registry's mutex and each buffer's
//! data mutex are taken with no other minimm lock held, never two at once, but for a resize,
//! which takes the table under the old buffer's data mutex to swap the buffer. The kernel's own
//! locks may be held when they are taken: the mmap lock (a buffer dropped in `vma_close`
//! takes the registry's), a debugfs file's seq_file lock (`page_owner`). Nothing copies to or
//! from user space under them.

pub(crate) mod blocks;
mod discard;
pub(crate) mod poll;
pub(crate) mod registry;
pub(crate) mod slab;
mod vmalloc;

use core::mem::size_of;

use kernel::{
    fs::{file, File},
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::VmaNew,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::{uapi, Minimm, Shared};

macro_rules! uapi_bytes {
    ($($t:ty),*) => {$(
        // SAFETY: The uapi structs are `repr(C)` with integer fields only and explicit padding,
        // so they have no uninitialized bytes and no interior mutability.
        unsafe impl AsBytes for $t {}
        // SAFETY: As above: every bit pattern of the struct is valid.
        unsafe impl FromBytes for $t {}
    )*};
}
uapi_bytes!(
    uapi::Info,
    uapi::Alloc,
    uapi::Free,
    uapi::BlockData,
    uapi::ZoneStats,
    uapi::SlabCreate,
    uapi::SlabCache,
    uapi::SlabAlloc,
    uapi::SlabFree,
    uapi::SlabBulk,
    uapi::SlabData,
    uapi::SlabStats,
    uapi::VmCreate,
    uapi::VmInfo,
    uapi::VmResize,
    uapi::Pin,
    uapi::WmarkEvents
);

// The pure mirror encodes ioctl numbers itself; check it against the kernel's own macros.
const _: () = {
    use kernel::ioctl::{_IOW, _IOWR};
    assert!(uapi::IOC_GET_INFO == _IOWR::<uapi::Info>(uapi::IOC_MAGIC, 0x00));
    assert!(uapi::IOC_VM_CREATE == _IOWR::<uapi::VmCreate>(uapi::IOC_MAGIC, 0x20));
    assert!(uapi::IOC_VM_FREE == _IOW::<uapi::Free>(uapi::IOC_MAGIC, 0x21));
    assert!(uapi::IOC_VM_INFO == _IOWR::<uapi::VmInfo>(uapi::IOC_MAGIC, 0x23));
    assert!(uapi::IOC_VM_RESIZE == _IOWR::<uapi::VmResize>(uapi::IOC_MAGIC, 0x22));
    assert!(uapi::IOC_UNPIN == _IOWR::<uapi::Pin>(uapi::IOC_MAGIC, 0x30));
    assert!(uapi::IOC_PIN == _IOWR::<uapi::Pin>(uapi::IOC_MAGIC, 0x31));
    assert!(uapi::IOC_WMARK_EVENTS == _IOWR::<uapi::WmarkEvents>(uapi::IOC_MAGIC, 0x32));
    assert!(uapi::IOC_ALLOC == _IOWR::<uapi::Alloc>(uapi::IOC_MAGIC, 0x01));
    assert!(uapi::IOC_FREE == _IOW::<uapi::Free>(uapi::IOC_MAGIC, 0x02));
    assert!(uapi::IOC_BLOCK_DATA == _IOWR::<uapi::BlockData>(uapi::IOC_MAGIC, 0x03));
    assert!(uapi::IOC_ZONE_STATS == _IOWR::<uapi::ZoneStats>(uapi::IOC_MAGIC, 0x04));
    assert!(uapi::IOC_SLAB_CREATE == _IOWR::<uapi::SlabCreate>(uapi::IOC_MAGIC, 0x10));
    assert!(uapi::IOC_SLAB_DESTROY == _IOW::<uapi::SlabCache>(uapi::IOC_MAGIC, 0x11));
    assert!(uapi::IOC_SLAB_ALLOC == _IOWR::<uapi::SlabAlloc>(uapi::IOC_MAGIC, 0x12));
    assert!(uapi::IOC_SLAB_FREE == _IOW::<uapi::SlabFree>(uapi::IOC_MAGIC, 0x13));
    assert!(uapi::IOC_SLAB_BULK == _IOW::<uapi::SlabBulk>(uapi::IOC_MAGIC, 0x14));
    assert!(uapi::IOC_SLAB_DATA == _IOW::<uapi::SlabData>(uapi::IOC_MAGIC, 0x15));
    assert!(uapi::IOC_SLAB_SHRINK == _IOWR::<uapi::SlabCache>(uapi::IOC_MAGIC, 0x16));
    assert!(uapi::IOC_SLAB_STATS == _IOWR::<uapi::SlabStats>(uapi::IOC_MAGIC, 0x17));
};

/// One open file of `/dev/minimm`.
#[pin_data]
pub(crate) struct Client {
    shared: Arc<Shared>,
    /// This file's id, module-wide (1, 2, 3... in open order), as page_owner shows it.
    id: u32,
    /// Bytes this file holds against its quota: its blocks' pages (including freed blocks
    /// still mapped) and its objects' slots.
    charge: Arc<Atomic<usize>>,
    #[pin]
    table: Mutex<blocks::Table>,
    /// The file's slab caches and objects.
    #[pin]
    slab: Mutex<slab::SlabTable>,
    /// The watermark events this file has read (`MINIMM_IOC_WMARK_EVENTS`): `poll` reports
    /// `POLLPRI` while the module has counted more.
    events_read: core::sync::atomic::AtomicU64,
}

#[vtable]
impl MiscDevice for Client {
    type Ptr = Pin<KBox<Self>>;

    /// Context: process context, may sleep.
    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let shared = Minimm::shared_of(misc);
        let id = shared.next_file_id.fetch_add(1, Relaxed);
        let charge = Arc::new(Atomic::new(0usize), GFP_KERNEL)?;
        let slab_table = slab::SlabTable::new(shared.clone(), charge.clone());
        // Events before the open are not this file's news.
        let events_read = shared.reclaim.events.lock().seq;
        let client = KBox::try_pin_init(
            try_pin_init!(Client {
                shared,
                id,
                charge,
                table <- new_mutex!(blocks::Table::new(), "minimm_client_table"),
                slab <- new_mutex!(slab_table, "minimm_client_slab"),
                events_read: core::sync::atomic::AtomicU64::new(events_read),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `file` is being opened (this is its `open`, which now succeeds), nobody
        // else reaches it yet; `POLL_FOPS` is a static of the module, which the file keeps
        // loaded.
        unsafe { poll::install_in(&crate::POLL_FOPS, file) };
        Ok(client)
    }

    /// Context: process context, may sleep.
    fn ioctl(me: Pin<&Client>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(arg);
        // Opened for writing: O_WRONLY or O_RDWR (not O_RDONLY, nor the ioctl-only mode 3).
        let writable = matches!(
            file.flags() & file::flags::O_ACCMODE,
            file::flags::O_WRONLY | file::flags::O_RDWR
        );
        let r = match uapi::command(cmd).ok_or(ENOTTY)? {
            uapi::IOC_GET_INFO => me.get_info(arg),
            uapi::IOC_ZONE_STATS => me.zone_stats(arg),
            uapi::IOC_WMARK_EVENTS => me.wmark_events(arg),
            _ if !writable => Err(EBADF),
            uapi::IOC_ALLOC => me.alloc(arg),
            uapi::IOC_FREE => me.free(arg),
            uapi::IOC_BLOCK_DATA => me.block_data(arg),
            uapi::IOC_SLAB_CREATE => me.slab_create(arg),
            uapi::IOC_SLAB_DESTROY => me.slab_destroy(arg),
            uapi::IOC_SLAB_ALLOC => me.slab_alloc(arg),
            uapi::IOC_SLAB_FREE => me.slab_free(arg),
            uapi::IOC_SLAB_BULK => me.slab_bulk(arg),
            uapi::IOC_SLAB_DATA => me.slab_data(arg),
            uapi::IOC_SLAB_SHRINK => me.slab_shrink(arg),
            uapi::IOC_SLAB_STATS => me.slab_stats(arg),
            uapi::IOC_VM_CREATE => me.vm_create(arg),
            uapi::IOC_VM_FREE => me.vm_free(arg),
            uapi::IOC_VM_RESIZE => me.vm_resize(arg),
            uapi::IOC_VM_INFO => me.vm_info(arg),
            uapi::IOC_UNPIN => me.pin(arg, false),
            uapi::IOC_PIN => me.pin(arg, true),
            _ => Err(ENOTTY),
        };
        // A command may have taken a zone across a watermark, failed ones too.
        me.shared.reclaim.note_levels();
        r.map(|()| 0)
    }

    /// Maps a whole buffer of this file, named by its mmap offset (see `blocks.rs`).
    ///
    /// Context: process context, mmap lock held for writing.
    fn mmap(me: Pin<&Client>, _file: &File, vma: &VmaNew) -> Result {
        me.mmap_buffer(vma)
    }
}

impl Client {
    /// Charges `bytes` to the file's quota (`file_quota_pages` pages' worth of bytes), first,
    /// so that concurrent allocations cannot overshoot it.
    ///
    /// Errors: `EDQUOT`, nothing charged.
    pub(super) fn charge_bytes(&self, bytes: usize) -> Result {
        let quota = self
            .shared
            .params
            .file_quota_pages
            .saturating_mul(PAGE_SIZE);
        let before = self.charge.fetch_add(bytes, Relaxed);
        if before.checked_add(bytes).is_none_or(|after| after > quota) {
            self.charge.fetch_sub(bytes, Relaxed);
            return Err(EDQUOT);
        }
        Ok(())
    }

    /// `MINIMM_IOC_GET_INFO`.
    fn get_info(&self, arg: UserPtr) -> Result {
        let (_, len) = read_ext::<uapi::Info>(arg, uapi::INFO_SIZE_VER0, Tail::Output)?;
        let mut info = self.shared.info();
        info.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &info, len)
    }

    /// `MINIMM_IOC_ZONE_STATS`.
    fn zone_stats(&self, arg: UserPtr) -> Result {
        let (req, len) =
            read_ext::<uapi::ZoneStats>(arg, uapi::ZONE_STATS_SIZE_VER0, Tail::Output)?;
        let zone = usize::try_from(req.zone).map_err(|_| EINVAL)?;
        let mut stats = crate::pool::zone_stats(&self.shared.pool, zone).ok_or(EINVAL)?;
        stats.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &stats, len)
    }
}

/// What a longer caller struct's unknown tail means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
    /// Fields the caller sets: they must be zero to mean "not asked for" (`E2BIG` otherwise,
    /// as `copy_struct_from_user`).
    Input,
    /// Fields the module would fill: whatever they hold is ignored and left alone.
    Output,
}

/// Reads an extensible struct: the known prefix into `T` (the rest zero), checking an input
/// struct's unknown tail as `tail` says. A struct larger than a page is `E2BIG` (as
/// `sched_setattr`), which bounds the scan. Returns the struct and the number of bytes to write
/// back.
///
/// Errors: `EFAULT` if it cannot be read, `EINVAL` if `size` is below `ver0`, `E2BIG`.
pub(super) fn read_ext<T: AsBytes + FromBytes + Default>(
    arg: UserPtr,
    ver0: u32,
    tail: Tail,
) -> Result<(T, usize)> {
    // `size` is read here to know how much to copy, and read again with the rest below: a
    // value changed in between only lands in the copy's `size`, which every command overwrites
    // before writing the struct back.
    let user_size = UserSlice::new(arg, size_of::<u32>())
        .reader()
        .read::<u32>()?;
    let len = uapi::ext_copy_len(user_size, ver0, size_of::<T>()).map_err(|_| EINVAL)?;
    let total = usize::try_from(user_size).map_err(|_| EINVAL)?;
    if total > PAGE_SIZE {
        return Err(E2BIG);
    }
    let mut reader = UserSlice::new(arg, total).reader();
    let mut value = T::default();
    reader.read_slice(value.as_bytes_mut().get_mut(..len).ok_or(EINVAL)?)?;
    let mut chunk = [0u8; 64];
    while tail == Tail::Input && !reader.is_empty() {
        let n = reader.len().min(chunk.len());
        let part = chunk.get_mut(..n).ok_or(EINVAL)?;
        reader.read_slice(part)?;
        if part.iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
    }
    Ok((value, len))
}

/// Copies the first `len` bytes of `value` to user space at `arg`.
pub(super) fn write_prefix<T: AsBytes>(arg: UserPtr, value: &T, len: usize) -> Result {
    let bytes = value.as_bytes().get(..len).ok_or(EINVAL)?;
    UserSlice::new(arg, len).writer().write_slice(bytes)
}

#[kunit_tests(minimm_device)]
mod tests {
    use super::*;

    #[test]
    fn info_reports_the_kernel_page_size() {
        let info = crate::info_for(uapi::feat::BUDDY);
        assert_eq!(info.page_size as usize, kernel::page::PAGE_SIZE);
        assert_eq!(info.abi_version, uapi::ABI_VERSION);
        assert_eq!(info.nr_zones, uapi::NR_ZONES);
        assert_eq!(info.max_order, uapi::MAX_ORDER);
        assert_eq!(info.features & !uapi::feat::VALID, 0);
    }

    #[test]
    fn info_bytes_are_the_c_layout() {
        let info = uapi::Info {
            size: 32,
            abi_version: 1,
            features: 0x0102,
            ..Default::default()
        };
        let b = info.as_bytes();
        assert_eq!(b.len(), uapi::INFO_SIZE_VER0 as usize);
        assert_eq!(&b[0..4], &32u32.to_ne_bytes());
        assert_eq!(&b[8..16], &0x0102u64.to_ne_bytes());
    }
}
