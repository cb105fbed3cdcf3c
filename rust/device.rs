// SPDX-License-Identifier: GPL-2.0

//! The misc device `/dev/minimm`: per-open-file state, the ioctl dispatcher and mmap.
//!
//! Every open file is a [`Client`]. The blocks it allocates are named by opaque handles (1, 2,
//! 3, ... per file; never an address) and belong to the file: closing it frees them all.
//! A handle of another file is unknown here, exactly like a made-up one.
//!
//! A block is reference-counted ([`Buffer`] in an `Arc`): the file's table holds one
//! reference and every user mapping of the block another, so a block freed (or whose file was
//! closed) while still mapped goes back to the pool only when its last mapping is gone. No
//! other client can see its contents before then, and every block is zeroed before it is
//! first handed out.
//!
//! Commands are told apart by the type, number and direction of the ioctl number, not its size
//! bits: a program built against a later header, whose struct is longer, reaches the same
//! command. Argument structs are extensible (see `include/uapi/linux/minimm.h`): the first
//! `u32` is the caller's `size`, read before anything else; only `min(size, ours)` bytes are
//! copied; an input struct's unknown tail must be zero, an output struct's is left alone. User
//! memory is only copied here, outside locks.
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
//! `Client::blocks` (a mutex) protects the file's handle table. It is taken without any other
//! minimm lock held, and a zone lock may be taken under it (freeing a block); nothing copies
//! to or from user space under it. `Buffer::data` (a mutex, one per block) serialises the
//! kernel's own reads and writes of a block's contents; it is taken with no other lock held.

use core::{ffi::c_void, mem::size_of};

use kernel::{
    bindings,
    fs::{file, File},
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::{flags as vm_flags, VmaNew},
    new_mutex,
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex,
    },
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    pool::PoolBlock,
    uapi::{self, alloc_flags},
    zone::{Reserve, NR_ZONES},
    Minimm, Shared,
};

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
    uapi::ZoneStats
);

// The pure mirror encodes ioctl numbers itself; check it against the kernel's own macros.
const _: () = {
    use kernel::ioctl::{_IOW, _IOWR};
    assert!(uapi::IOC_GET_INFO == _IOWR::<uapi::Info>(uapi::IOC_MAGIC, 0x00));
    assert!(uapi::IOC_ALLOC == _IOWR::<uapi::Alloc>(uapi::IOC_MAGIC, 0x01));
    assert!(uapi::IOC_FREE == _IOW::<uapi::Free>(uapi::IOC_MAGIC, 0x02));
    assert!(uapi::IOC_BLOCK_DATA == _IOWR::<uapi::BlockData>(uapi::IOC_MAGIC, 0x03));
    assert!(uapi::IOC_ZONE_STATS == _IOWR::<uapi::ZoneStats>(uapi::IOC_MAGIC, 0x04));
};

/// Handles stay below this so that `handle << PAGE_SHIFT` is a valid, positive mmap offset.
const HANDLE_LIMIT: u64 = 1 << 40;

/// A buffer: a [`PoolBlock`] owned by an open file and named by a handle there, with the
/// file's quota charge for it. Its table entry and each user mapping of it hold a reference.
#[pin_data(PinnedDrop)]
pub(crate) struct Buffer {
    block: PoolBlock,
    /// The owning file's charged pages; dropping the block uncharges them, whenever the last
    /// mapping goes, so freed-but-mapped blocks still count against the file's quota.
    charge: Arc<Atomic<usize>>,
    /// Held while the kernel reads or writes the block's contents (`BLOCK_DATA`), so that two
    /// such accesses never race with each other. User space may still write through a
    /// mapping meanwhile; `PoolBlock::checksum` and `PoolBlock::fill` are written for that.
    #[pin]
    data: Mutex<()>,
}

#[pinned_drop]
impl PinnedDrop for Buffer {
    fn drop(self: Pin<&mut Self>) {
        self.charge.fetch_sub(self.block.pages(), Relaxed);
    }
}

/// The file's handle table.
struct Blocks {
    next_handle: u64,
    /// Allocations that have their handle but are not entered yet (their caller is being told
    /// the handle): `list` always has room for them.
    pending: usize,
    /// Sorted by handle.
    list: KVec<(u64, Arc<Buffer>)>,
}

impl Blocks {
    fn position(&self, handle: u64) -> Option<usize> {
        self.list.binary_search_by_key(&handle, |e| e.0).ok()
    }
}

/// One open file of `/dev/minimm`.
#[pin_data]
pub(crate) struct Client {
    shared: Arc<Shared>,
    /// Owner tag recorded in the pool's page table for this file's blocks.
    owner: u32,
    /// Pages this file holds (including freed blocks still mapped).
    charge: Arc<Atomic<usize>>,
    #[pin]
    blocks: Mutex<Blocks>,
}

#[vtable]
impl MiscDevice for Client {
    type Ptr = Pin<KBox<Self>>;

    /// Context: process context, may sleep.
    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let shared = Minimm::shared_of(misc);
        let owner = shared.next_owner.fetch_add(1, Relaxed);
        let charge = Arc::new(Atomic::new(0usize), GFP_KERNEL)?;
        KBox::try_pin_init(
            try_pin_init!(Client {
                shared,
                owner,
                charge,
                blocks <- new_mutex!(Blocks { next_handle: 1, pending: 0, list: KVec::new() }, "minimm_client_blocks"),
            }),
            GFP_KERNEL,
        )
    }

    /// Context: process context, may sleep.
    fn ioctl(me: Pin<&Client>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(arg);
        // Opened for writing: O_WRONLY or O_RDWR (not O_RDONLY, nor the ioctl-only mode 3).
        let writable = matches!(
            file.flags() & file::flags::O_ACCMODE,
            file::flags::O_WRONLY | file::flags::O_RDWR
        );
        match uapi::command(cmd).ok_or(ENOTTY)? {
            uapi::IOC_GET_INFO => me.get_info(arg),
            uapi::IOC_ZONE_STATS => me.zone_stats(arg),
            _ if !writable => Err(EBADF),
            uapi::IOC_ALLOC => me.alloc(arg),
            uapi::IOC_FREE => me.free(arg),
            uapi::IOC_BLOCK_DATA => me.block_data(arg),
            _ => Err(ENOTTY),
        }
        .map(|()| 0)
    }

    /// Maps a whole block, named by the mmap offset (handle << PAGE_SHIFT).
    ///
    /// Context: process context, mmap lock held for writing.
    fn mmap(me: Pin<&Client>, _file: &File, vma: &VmaNew) -> Result {
        // SAFETY: `vma` is a valid VMA under construction; reading its offset is allowed.
        let handle = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
        let buf = me.lookup(handle).ok_or(EINVAL)?;
        let len = vma.end().checked_sub(vma.start()).ok_or(EINVAL)?;
        // VM_MAYSHARE, not VM_SHARED: the kernel clears VM_SHARED for a shared mapping of a
        // file opened read-only, which is still a shared mapping.
        if len != buf.block.pages() * PAGE_SIZE || vma.flags() & vm_flags::MAYSHARE == 0 {
            return Err(EINVAL);
        }
        vma.set_dontexpand();
        vma.set_dontcopy();
        let map = vma.set_mixedmap();
        for i in 0..buf.block.pages() {
            let page = buf.block.page(i).ok_or(EINVAL)?;
            // A failure here fails the mmap, whose error path unmaps what was inserted.
            map.vm_insert_page(vma.start() + i * PAGE_SIZE, &page)?;
        }
        // SAFETY: During mmap the VMA is ours to set up: it holds one reference to the block
        // from here on (released in `vma_close`), and `VM_OPS` is a static.
        unsafe {
            (*vma.as_ptr()).vm_private_data = Arc::into_raw(buf).cast_mut().cast::<c_void>();
            (*vma.as_ptr()).vm_ops = &VM_OPS.0;
        }
        Ok(())
    }
}

struct AssertSync<T>(T);
// SAFETY: The operations table is immutable and only holds function pointers.
unsafe impl<T> Sync for AssertSync<T> {}

static VM_OPS: AssertSync<bindings::vm_operations_struct> =
    AssertSync(bindings::vm_operations_struct {
        open: Some(vma_open),
        close: Some(vma_close),
        ..pin_init::zeroed()
    });

/// A VMA of ours was duplicated (split by a partial munmap or mprotect): the new one takes its
/// own reference to the block.
///
/// # Safety
///
/// `vma` is a VMA set up by [`Client::mmap`], whose `vm_private_data` holds a reference.
unsafe extern "C" fn vma_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: By the function's safety requirement, `vm_private_data` came from
    // `Arc::into_raw` in `mmap` and that reference is still held by the original VMA.
    let buf = unsafe { ArcBorrow::<Buffer>::from_raw((*vma).vm_private_data.cast::<Buffer>()) };
    // The copy of `vm_private_data` in the new VMA owns this new reference.
    let _ = Arc::into_raw(Arc::<Buffer>::from(buf));
}

/// A VMA of ours is going away (its pages are already unmapped): drop its reference; the
/// last one gives the block back to the pool.
///
/// # Safety
///
/// As for [`vma_open`]; called once per VMA.
unsafe extern "C" fn vma_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: This VMA owns the reference stored in `vm_private_data` (from `mmap` or
    // `vma_open`), and this is its one release.
    drop(unsafe { Arc::<Buffer>::from_raw((*vma).vm_private_data.cast::<Buffer>()) });
}

impl Client {
    fn lookup(&self, handle: u64) -> Option<Arc<Buffer>> {
        let table = self.blocks.lock();
        table
            .position(handle)
            .and_then(|i| table.list.get(i))
            .map(|e| e.1.clone())
    }

    /// `MINIMM_IOC_GET_INFO`.
    fn get_info(&self, arg: UserPtr) -> Result {
        let (_, len) = read_ext::<uapi::Info>(arg, uapi::INFO_SIZE_VER0, Tail::Output)?;
        let mut info = self.shared.info();
        info.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &info, len)
    }

    /// `MINIMM_IOC_ALLOC`.
    fn alloc(&self, arg: UserPtr) -> Result {
        let (mut req, len) = read_ext::<uapi::Alloc>(arg, uapi::ALLOC_SIZE_VER0, Tail::Input)?;
        let zone = usize::try_from(req.zone).map_err(|_| EINVAL)?;
        if req.order > uapi::MAX_ORDER
            || zone >= NR_ZONES
            || req.flags & !alloc_flags::VALID != 0
            || req.pad != 0
        {
            return Err(EINVAL);
        }
        // Linux's reserves: __GFP_HIGH alone, or with "cannot block" as GFP_ATOMIC.
        let class = match (
            req.flags & alloc_flags::ATOMIC != 0,
            req.flags & alloc_flags::NOWAIT != 0,
        ) {
            (false, _) => Reserve::Normal,
            (true, false) => Reserve::High,
            (true, true) => Reserve::Atomic,
        };
        // Fail on an unwritable struct before anything changes.
        write_prefix(arg, &req, len)?;
        let pages = 1usize << req.order;
        // Charge the quota first, so that concurrent allocations cannot overshoot it.
        let quota = self.shared.params.file_quota_pages;
        let before = self.charge.fetch_add(pages, Relaxed);
        if before.checked_add(pages).is_none_or(|after| after > quota) {
            self.charge.fetch_sub(pages, Relaxed);
            return Err(EDQUOT);
        }
        let block = match self.shared.pool.alloc(req.order, zone, class, self.owner) {
            Ok(b) => b,
            Err(e) => {
                self.charge.fetch_sub(pages, Relaxed);
                return Err(e);
            }
        };
        // Pool pages may hold another client's data: zero them before user space can see them.
        // SAFETY: The block was just allocated and nothing else can reach it yet.
        if let Err(e) = unsafe { block.zero() } {
            drop(block);
            self.charge.fetch_sub(pages, Relaxed);
            return Err(e);
        }
        req.zone_out = block.zone() as u32;
        // Once the `Buffer` exists, the charge is its own and is released when it drops; until
        // then (a failure to allocate it drops the block) it is ours to give back.
        let buf = Arc::pin_init(
            try_pin_init!(Buffer {
                block,
                charge: self.charge.clone(),
                data <- new_mutex!((), "minimm_block_data"),
            }),
            GFP_KERNEL,
        )
        .inspect_err(|_| {
            self.charge.fetch_sub(pages, Relaxed);
        })?;
        // Number the buffer and make room for it, but enter it only once the caller has its
        // handle: until then no other thread can reach it (map, fill or free it), so an undo
        // is exact.
        let handle = {
            let mut table = self.blocks.lock();
            let handle = table.next_handle;
            if handle >= HANDLE_LIMIT {
                return Err(ENOSPC);
            }
            let room = table.pending + 1;
            table.list.reserve(room, GFP_KERNEL)?;
            table.pending = room;
            table.next_handle += 1;
            handle
        };
        req.handle = handle;
        req.mmap_offset = handle << PAGE_SHIFT;
        req.size = u32::try_from(len).unwrap_or(u32::MAX);
        let written = write_prefix(arg, &req, len);
        let mut table = self.blocks.lock();
        table.pending -= 1;
        if let Err(e) = written {
            // The struct was writable a moment ago (another thread changed the mapping): the
            // caller never learns the handle, so undo, and take the handle number back unless
            // a later allocation took the next one meanwhile.
            if table.next_handle == handle + 1 {
                table.next_handle = handle;
            }
            drop(table);
            drop(buf);
            return Err(e);
        }
        // Handles are numbered in order but entered as their callers learn them.
        let at = table.list.partition_point(|e| e.0 < handle);
        // Room was reserved above for every numbered allocation not yet entered.
        if kernel::warn_on!(table
            .list
            .insert_within_capacity(at, (handle, buf))
            .is_err())
        {
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Removes `handle` from the table; the block goes back when its last mapping goes.
    fn take(&self, handle: u64) -> Result<Arc<Buffer>> {
        let mut table = self.blocks.lock();
        let i = table.position(handle).ok_or(EINVAL)?;
        table.list.remove(i).map(|e| e.1).map_err(|_| EINVAL)
    }

    /// `MINIMM_IOC_FREE`.
    fn free(&self, arg: UserPtr) -> Result {
        let (req, _) = read_ext::<uapi::Free>(arg, uapi::FREE_SIZE_VER0, Tail::Input)?;
        if req.pad != 0 {
            return Err(EINVAL);
        }
        // Dropped outside the table lock.
        drop(self.take(req.handle)?);
        Ok(())
    }

    /// `MINIMM_IOC_BLOCK_DATA`.
    fn block_data(&self, arg: UserPtr) -> Result {
        let (mut req, len) =
            read_ext::<uapi::BlockData>(arg, uapi::BLOCK_DATA_SIZE_VER0, Tail::Input)?;
        if req.op != uapi::BLOCK_CHECKSUM && req.op != uapi::BLOCK_FILL {
            return Err(EINVAL);
        }
        let buf = self.lookup(req.handle).ok_or(EINVAL)?;
        // Fail on an unwritable struct before the block is touched.
        write_prefix(arg, &req, len)?;
        {
            let _data = buf.data.lock();
            if req.op == uapi::BLOCK_FILL {
                // SAFETY: The block is this file's, and the kernel touches its contents only
                // here and in `checksum`, both under `data`, held.
                unsafe { buf.block.fill(req.seed)? };
            } else {
                // SAFETY: As above.
                req.result = unsafe { buf.block.checksum()? };
            }
        }
        req.size = u32::try_from(len).map_err(|_| EINVAL)?;
        write_prefix(arg, &req, len)
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
enum Tail {
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
fn read_ext<T: AsBytes + FromBytes + Default>(
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
fn write_prefix<T: AsBytes>(arg: UserPtr, value: &T, len: usize) -> Result {
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
