// SPDX-License-Identifier: GPL-2.0

//! The module's mirror of `include/uapi/linux/minimm.h`.
//!
//! The C header is the contract; this file restates it for the module, which cannot run
//! bindgen on an out-of-tree header. The host crate (`rust/host`) compiles this very file and
//! checks every size, offset, constant and ioctl number against bindings that bindgen makes
//! from the header, so the two cannot drift apart unnoticed.
//!
//! Pure: no `kernel::` imports, no allocation.

/// `MINIMM_ABI_VERSION`.
pub(crate) const ABI_VERSION: u32 = 1;

/// `MINIMM_ZONE_DMA`: physical memory below 16 MiB.
pub(crate) const ZONE_DMA: u32 = 0;
/// `MINIMM_ZONE_DMA32`: physical memory below 4 GiB.
pub(crate) const ZONE_DMA32: u32 = 1;
/// `MINIMM_ZONE_NORMAL`: the rest.
pub(crate) const ZONE_NORMAL: u32 = 2;
/// `MINIMM_NR_ZONES`.
pub(crate) const NR_ZONES: u32 = 3;

/// `MINIMM_MAX_ORDER`: the largest buddy order.
pub(crate) const MAX_ORDER: u32 = 10;

/// `MINIMM_FEAT_*` bits of [`Info::features`].
pub(crate) mod feat {
    pub(crate) const BUDDY: u64 = 1 << 0;
    pub(crate) const MMAP: u64 = 1 << 1;
    pub(crate) const SLAB: u64 = 1 << 2;
    pub(crate) const VMALLOC: u64 = 1 << 3;
    pub(crate) const RECLAIM: u64 = 1 << 4;
    pub(crate) const VALID: u64 = (1 << 5) - 1;
}

/// `struct minimm_info`: what `MINIMM_IOC_GET_INFO` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Info {
    pub(crate) size: u32,
    pub(crate) abi_version: u32,
    pub(crate) features: u64,
    pub(crate) page_size: u32,
    pub(crate) max_order: u32,
    pub(crate) nr_zones: u32,
    pub(crate) pad: u32,
}

/// `MINIMM_INFO_SIZE_VER0`.
pub(crate) const INFO_SIZE_VER0: u32 = 32;

/// `MINIMM_ALLOC_*` flags of [`Alloc::flags`].
pub(crate) mod alloc_flags {
    pub(crate) const ZERO: u32 = 1 << 0;
    pub(crate) const ATOMIC: u32 = 1 << 1;
    pub(crate) const NOWAIT: u32 = 1 << 2;
    pub(crate) const DISCARDABLE: u32 = 1 << 3;
    pub(crate) const VALID: u32 = (1 << 4) - 1;
}

/// `struct minimm_alloc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Alloc {
    pub(crate) size: u32,
    pub(crate) order: u32,
    pub(crate) zone: u32,
    pub(crate) flags: u32,
    pub(crate) handle: u64,
    pub(crate) mmap_offset: u64,
    pub(crate) zone_out: u32,
    pub(crate) pad: u32,
}

/// `MINIMM_ALLOC_SIZE_VER0`.
pub(crate) const ALLOC_SIZE_VER0: u32 = 40;

/// `struct minimm_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Free {
    pub(crate) size: u32,
    pub(crate) pad: u32,
    pub(crate) handle: u64,
}

/// `MINIMM_FREE_SIZE_VER0`.
pub(crate) const FREE_SIZE_VER0: u32 = 16;

/// `MINIMM_BLOCK_CHECKSUM`.
pub(crate) const BLOCK_CHECKSUM: u32 = 0;
/// `MINIMM_BLOCK_FILL`.
pub(crate) const BLOCK_FILL: u32 = 1;

/// `struct minimm_block_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockData {
    pub(crate) size: u32,
    pub(crate) op: u32,
    pub(crate) handle: u64,
    pub(crate) seed: u64,
    pub(crate) result: u64,
}

/// `MINIMM_BLOCK_DATA_SIZE_VER0`.
pub(crate) const BLOCK_DATA_SIZE_VER0: u32 = 32;

/// `struct minimm_zone_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ZoneStats {
    pub(crate) size: u32,
    pub(crate) zone: u32,
    pub(crate) managed_pages: u64,
    pub(crate) free_pages: u64,
    pub(crate) pcp_pages: u64,
    pub(crate) wmark_min: u64,
    pub(crate) wmark_low: u64,
    pub(crate) wmark_high: u64,
    pub(crate) nr_free: [u64; MAX_ORDER as usize + 1],
    pub(crate) pgalloc: u64,
    pub(crate) pgfree: u64,
    pub(crate) alloc_fail: u64,
    pub(crate) low_wmark_hit: u64,
    pub(crate) min_wmark_hit: u64,
    pub(crate) fallback: u64,
}

/// `MINIMM_ZONE_STATS_SIZE_VER0`.
pub(crate) const ZONE_STATS_SIZE_VER0: u32 = 192;

/// `MINIMM_SLAB_*` flags of [`SlabCreate::flags`].
pub(crate) mod slab_flags {
    pub(crate) const HWCACHE_ALIGN: u32 = 1 << 0;
    pub(crate) const CACHE_DMA: u32 = 1 << 1;
    pub(crate) const CACHE_DMA32: u32 = 1 << 2;
    pub(crate) const RED_ZONE: u32 = 1 << 3;
    pub(crate) const POISON: u32 = 1 << 4;
    pub(crate) const CONSISTENCY_CHECKS: u32 = 1 << 5;
    pub(crate) const STORE_USER: u32 = 1 << 6;
    pub(crate) const CTOR: u32 = 1 << 7;
    pub(crate) const VALID: u32 = (1 << 8) - 1;
}

/// `MINIMM_SLAB_NAME_LEN`.
pub(crate) const SLAB_NAME_LEN: usize = 32;
/// `MINIMM_SLAB_MAX_OBJECT`.
pub(crate) const SLAB_MAX_OBJECT: u32 = 32768;
/// `MINIMM_SLAB_MAX_GENERIC`.
pub(crate) const SLAB_MAX_GENERIC: u32 = 4096 << MAX_ORDER;
/// `MINIMM_SLAB_MAX_CACHES`.
pub(crate) const SLAB_MAX_CACHES: usize = 64;
/// `MINIMM_SLAB_BULK_MAX`.
pub(crate) const SLAB_BULK_MAX: u32 = 64;

/// `struct minimm_slab_create`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabCreate {
    pub(crate) size: u32,
    pub(crate) flags: u32,
    pub(crate) object_size: u32,
    pub(crate) align: u32,
    pub(crate) ctor_seed: u64,
    pub(crate) name: [u8; SLAB_NAME_LEN],
    pub(crate) cache: u64,
}
/// `MINIMM_SLAB_CREATE_SIZE_VER0`.
pub(crate) const SLAB_CREATE_SIZE_VER0: u32 = 64;

/// `struct minimm_slab_cache`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabCache {
    pub(crate) size: u32,
    pub(crate) pad: u32,
    pub(crate) cache: u64,
    pub(crate) pages_freed: u64,
}
/// `MINIMM_SLAB_CACHE_SIZE_VER0`.
pub(crate) const SLAB_CACHE_SIZE_VER0: u32 = 24;

/// `MINIMM_OBJ_*` flags of [`SlabAlloc::flags`] and [`SlabBulk::flags`].
pub(crate) mod obj_flags {
    pub(crate) const ZERO: u32 = 1 << 0;
    pub(crate) const ATOMIC: u32 = 1 << 1;
    pub(crate) const NOWAIT: u32 = 1 << 2;
    pub(crate) const DMA: u32 = 1 << 3;
    pub(crate) const VALID: u32 = (1 << 4) - 1;
}

/// `struct minimm_slab_alloc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabAlloc {
    pub(crate) size: u32,
    pub(crate) flags: u32,
    pub(crate) cache: u64,
    pub(crate) bytes: u32,
    pub(crate) pad: u32,
    pub(crate) object: u64,
    pub(crate) objsize: u32,
    pub(crate) pad2: u32,
}
/// `MINIMM_SLAB_ALLOC_SIZE_VER0`.
pub(crate) const SLAB_ALLOC_SIZE_VER0: u32 = 40;

/// `struct minimm_slab_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabFree {
    pub(crate) size: u32,
    pub(crate) pad: u32,
    pub(crate) object: u64,
}
/// `MINIMM_SLAB_FREE_SIZE_VER0`.
pub(crate) const SLAB_FREE_SIZE_VER0: u32 = 16;

/// `MINIMM_SLAB_BULK_ALLOC`.
pub(crate) const SLAB_BULK_ALLOC: u32 = 0;
/// `MINIMM_SLAB_BULK_FREE`.
pub(crate) const SLAB_BULK_FREE: u32 = 1;

/// `struct minimm_slab_bulk`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabBulk {
    pub(crate) size: u32,
    pub(crate) op: u32,
    pub(crate) cache: u64,
    pub(crate) count: u32,
    pub(crate) flags: u32,
    pub(crate) objects: u64,
}
/// `MINIMM_SLAB_BULK_SIZE_VER0`.
pub(crate) const SLAB_BULK_SIZE_VER0: u32 = 32;

/// `MINIMM_SLAB_READ`.
pub(crate) const SLAB_READ: u32 = 0;
/// `MINIMM_SLAB_WRITE`.
pub(crate) const SLAB_WRITE: u32 = 1;

/// `struct minimm_slab_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabData {
    pub(crate) size: u32,
    pub(crate) op: u32,
    pub(crate) object: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
    pub(crate) buf: u64,
}
/// `MINIMM_SLAB_DATA_SIZE_VER0`.
pub(crate) const SLAB_DATA_SIZE_VER0: u32 = 32;

/// `struct minimm_slab_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlabStats {
    pub(crate) size: u32,
    pub(crate) pad: u32,
    pub(crate) cache: u64,
    pub(crate) object_size: u32,
    pub(crate) slot_size: u32,
    pub(crate) align: u32,
    pub(crate) objs_per_slab: u32,
    pub(crate) order: u32,
    pub(crate) colours: u32,
    pub(crate) flags: u32,
    pub(crate) pad2: u32,
    pub(crate) active_objs: u64,
    pub(crate) num_objs: u64,
    pub(crate) active_slabs: u64,
    pub(crate) num_slabs: u64,
    pub(crate) partial_slabs: u64,
    pub(crate) empty_slabs: u64,
    pub(crate) cpu_objects: u64,
    pub(crate) limit: u64,
    pub(crate) batchcount: u64,
    pub(crate) min_partial: u64,
    pub(crate) alloc_fastpath: u64,
    pub(crate) alloc_slowpath: u64,
    pub(crate) free_fastpath: u64,
    pub(crate) free_slowpath: u64,
    pub(crate) slabs_created: u64,
    pub(crate) slabs_freed: u64,
    pub(crate) debug_errors: u64,
}
/// `MINIMM_SLAB_STATS_SIZE_VER0`.
pub(crate) const SLAB_STATS_SIZE_VER0: u32 = 184;

/// `MINIMM_VM_*` flags of [`VmCreate::flags`].
pub(crate) mod vm_flags {
    pub(crate) const ZERO: u32 = 1 << 0;
    pub(crate) const ATOMIC: u32 = 1 << 1;
    pub(crate) const NOWAIT: u32 = 1 << 2;
    pub(crate) const LARGE: u32 = 1 << 3;
    pub(crate) const DISCARDABLE: u32 = 1 << 4;
    pub(crate) const VALID: u32 = (1 << 5) - 1;
}

/// `MINIMM_VM_MAX_BYTES`.
pub(crate) const VM_MAX_BYTES: u64 = 1 << 32;

/// `struct minimm_vm_create`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VmCreate {
    pub(crate) size: u32,
    pub(crate) zone: u32,
    pub(crate) bytes: u64,
    pub(crate) flags: u32,
    pub(crate) pad: u32,
    pub(crate) handle: u64,
    pub(crate) mmap_offset: u64,
    pub(crate) pages: u64,
}

/// `MINIMM_VM_CREATE_SIZE_VER0`.
pub(crate) const VM_CREATE_SIZE_VER0: u32 = 48;

/// `struct minimm_vm_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VmInfo {
    pub(crate) size: u32,
    pub(crate) flags: u32,
    pub(crate) handle: u64,
    pub(crate) bytes: u64,
    pub(crate) pages: u64,
    pub(crate) zone_pages: [u64; NR_ZONES as usize],
    pub(crate) runs: u64,
    pub(crate) mmap_offset: u64,
}

/// `MINIMM_VM_INFO_SIZE_VER0`.
pub(crate) const VM_INFO_SIZE_VER0: u32 = 72;

/// `struct minimm_vm_resize`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VmResize {
    pub(crate) size: u32,
    pub(crate) pad: u32,
    pub(crate) handle: u64,
    pub(crate) bytes: u64,
    pub(crate) mmap_offset: u64,
    pub(crate) pages: u64,
}

/// `MINIMM_VM_RESIZE_SIZE_VER0`.
pub(crate) const VM_RESIZE_SIZE_VER0: u32 = 40;

/// `MINIMM_PIN_PURGED`: [`Pin::result`] of `PIN` when the buffer was purged meanwhile.
pub(crate) const PIN_PURGED: u64 = 1 << 0;

/// `struct minimm_pin`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pin {
    pub(crate) size: u32,
    pub(crate) flags: u32,
    pub(crate) handle: u64,
    pub(crate) result: u64,
}

/// `MINIMM_PIN_SIZE_VER0`.
pub(crate) const PIN_SIZE_VER0: u32 = 24;

/// `MINIMM_WMARK_*`: the kinds of watermark events.
pub(crate) const WMARK_LOW: u32 = 0;
pub(crate) const WMARK_MIN: u32 = 1;
pub(crate) const WMARK_HIGH: u32 = 2;

/// `struct minimm_wmark_events`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WmarkEvents {
    pub(crate) size: u32,
    pub(crate) last_zone: u32,
    pub(crate) events: u64,
    pub(crate) unread: u64,
    pub(crate) below_low: [u64; NR_ZONES as usize],
    pub(crate) below_min: [u64; NR_ZONES as usize],
    pub(crate) above_high: [u64; NR_ZONES as usize],
    pub(crate) last_kind: u32,
    pub(crate) pad: u32,
}

/// `MINIMM_WMARK_EVENTS_SIZE_VER0`.
pub(crate) const WMARK_EVENTS_SIZE_VER0: u32 = 104;

/// `MINIMM_IOC_MAGIC`.
pub(crate) const IOC_MAGIC: u32 = 0xB9;

/// `MINIMM_IOC_GET_INFO`.
pub(crate) const IOC_GET_INFO: u32 = iowr(0x00, core::mem::size_of::<Info>());
/// `MINIMM_IOC_ALLOC`.
pub(crate) const IOC_ALLOC: u32 = iowr(0x01, core::mem::size_of::<Alloc>());
/// `MINIMM_IOC_FREE`.
pub(crate) const IOC_FREE: u32 = iow(0x02, core::mem::size_of::<Free>());
/// `MINIMM_IOC_BLOCK_DATA`.
pub(crate) const IOC_BLOCK_DATA: u32 = iowr(0x03, core::mem::size_of::<BlockData>());
/// `MINIMM_IOC_ZONE_STATS`.
pub(crate) const IOC_ZONE_STATS: u32 = iowr(0x04, core::mem::size_of::<ZoneStats>());
/// `MINIMM_IOC_SLAB_CREATE`.
pub(crate) const IOC_SLAB_CREATE: u32 = iowr(0x10, core::mem::size_of::<SlabCreate>());
/// `MINIMM_IOC_SLAB_DESTROY`.
pub(crate) const IOC_SLAB_DESTROY: u32 = iow(0x11, core::mem::size_of::<SlabCache>());
/// `MINIMM_IOC_SLAB_ALLOC`.
pub(crate) const IOC_SLAB_ALLOC: u32 = iowr(0x12, core::mem::size_of::<SlabAlloc>());
/// `MINIMM_IOC_SLAB_FREE`.
pub(crate) const IOC_SLAB_FREE: u32 = iow(0x13, core::mem::size_of::<SlabFree>());
/// `MINIMM_IOC_SLAB_BULK`.
pub(crate) const IOC_SLAB_BULK: u32 = iow(0x14, core::mem::size_of::<SlabBulk>());
/// `MINIMM_IOC_SLAB_DATA`.
pub(crate) const IOC_SLAB_DATA: u32 = iow(0x15, core::mem::size_of::<SlabData>());
/// `MINIMM_IOC_SLAB_SHRINK`.
pub(crate) const IOC_SLAB_SHRINK: u32 = iowr(0x16, core::mem::size_of::<SlabCache>());
/// `MINIMM_IOC_SLAB_STATS`.
pub(crate) const IOC_SLAB_STATS: u32 = iowr(0x17, core::mem::size_of::<SlabStats>());
/// `MINIMM_IOC_VM_CREATE`.
pub(crate) const IOC_VM_CREATE: u32 = iowr(0x20, core::mem::size_of::<VmCreate>());
/// `MINIMM_IOC_VM_FREE`.
pub(crate) const IOC_VM_FREE: u32 = iow(0x21, core::mem::size_of::<Free>());
/// `MINIMM_IOC_VM_RESIZE`.
pub(crate) const IOC_VM_RESIZE: u32 = iowr(0x22, core::mem::size_of::<VmResize>());
/// `MINIMM_IOC_VM_INFO`.
pub(crate) const IOC_VM_INFO: u32 = iowr(0x23, core::mem::size_of::<VmInfo>());
/// `MINIMM_IOC_UNPIN`.
pub(crate) const IOC_UNPIN: u32 = iowr(0x30, core::mem::size_of::<Pin>());
/// `MINIMM_IOC_PIN`.
pub(crate) const IOC_PIN: u32 = iowr(0x31, core::mem::size_of::<Pin>());
/// `MINIMM_IOC_WMARK_EVENTS`.
pub(crate) const IOC_WMARK_EVENTS: u32 = iowr(0x32, core::mem::size_of::<WmarkEvents>());

// The generic Linux ioctl encoding (include/uapi/asm-generic/ioctl.h), used by x86_64:
// bits 0..8 number, 8..16 type, 16..30 size, 30..32 direction.
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    // Sizes of uapi structs are tiny; a larger one is a build error, not a silent truncation.
    assert!(size < (1 << 14));
    (dir << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}

const fn iow(nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, nr, size)
}

const fn iowr(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, size)
}

/// The size bits of an ioctl number (bits 16..30).
const IOC_SIZE_MASK: u32 = ((1 << 14) - 1) << 16;

/// The ioctl command `cmd` names, from its type, number and direction only.
///
/// The size bits are left out on purpose: they encode the struct as the caller's header
/// defined it, and a later header with a longer struct must reach the same command. The
/// struct's own `size` field says how long it is (as pidfs does for `PIDFD_GET_INFO`).
pub(crate) fn command(cmd: u32) -> Option<u32> {
    let key = cmd & !IOC_SIZE_MASK;
    [
        IOC_GET_INFO,
        IOC_ALLOC,
        IOC_FREE,
        IOC_BLOCK_DATA,
        IOC_ZONE_STATS,
        IOC_SLAB_CREATE,
        IOC_SLAB_DESTROY,
        IOC_SLAB_ALLOC,
        IOC_SLAB_FREE,
        IOC_SLAB_BULK,
        IOC_SLAB_DATA,
        IOC_SLAB_SHRINK,
        IOC_SLAB_STATS,
        IOC_VM_CREATE,
        IOC_VM_FREE,
        IOC_VM_RESIZE,
        IOC_VM_INFO,
        IOC_UNPIN,
        IOC_PIN,
        IOC_WMARK_EVENTS,
    ]
    .into_iter()
    .find(|&c| c & !IOC_SIZE_MASK == key)
}

/// Why an extensible struct's `size` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SizeError {
    /// Smaller than the struct's first published version: `EINVAL`.
    TooSmall,
}

/// How many bytes of an extensible struct to copy, given the caller's `size`.
///
/// `ver0` is the size of the struct's first published version and `ours` the size this module
/// was built with. A caller with an older struct gets the prefix it knows; a caller with a newer
/// one gets the prefix the module knows (and learns how long it was from `size` on return).
pub(crate) fn ext_copy_len(user_size: u32, ver0: u32, ours: usize) -> Result<usize, SizeError> {
    if user_size < ver0 {
        return Err(SizeError::TooSmall);
    }
    // `u32` always fits in `usize` on the 64-bit targets minimm builds for.
    let user = usize::try_from(user_size).unwrap_or(usize::MAX);
    Ok(user.min(ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_copy_len_takes_the_shorter_struct() {
        assert_eq!(ext_copy_len(31, 32, 32), Err(SizeError::TooSmall));
        assert_eq!(ext_copy_len(0, 32, 32), Err(SizeError::TooSmall));
        assert_eq!(ext_copy_len(32, 32, 32), Ok(32));
        assert_eq!(ext_copy_len(40, 32, 32), Ok(32));
        assert_eq!(ext_copy_len(40, 32, 48), Ok(40));
        assert_eq!(ext_copy_len(u32::MAX, 32, 48), Ok(48));
    }

    #[test]
    fn ioctl_encoding_matches_linux() {
        // _IOWR(0xB9, 0, 32 bytes) = 0xC020B900, as the C macro computes it.
        assert_eq!(IOC_GET_INFO, 0xC020_B900);
    }

    #[test]
    fn commands_ignore_the_size_bits_only() {
        for c in [
            IOC_GET_INFO,
            IOC_ALLOC,
            IOC_FREE,
            IOC_BLOCK_DATA,
            IOC_ZONE_STATS,
            IOC_SLAB_CREATE,
            IOC_SLAB_DESTROY,
            IOC_SLAB_ALLOC,
            IOC_SLAB_FREE,
            IOC_SLAB_BULK,
            IOC_SLAB_DATA,
            IOC_SLAB_SHRINK,
            IOC_SLAB_STATS,
            IOC_VM_CREATE,
            IOC_VM_FREE,
            IOC_VM_RESIZE,
            IOC_VM_INFO,
            IOC_UNPIN,
            IOC_PIN,
            IOC_WMARK_EVENTS,
        ] {
            assert_eq!(command(c), Some(c));
            // A longer struct from a later header, and a shorter one, name the same command.
            for size in [0usize, 8, 48, 4096, (1 << 14) - 1] {
                let other = (c & !IOC_SIZE_MASK) | ((size as u32) << 16);
                assert_eq!(command(other), Some(c), "{c:#x} with size {size}");
            }
            // Another direction, number or type does not.
            assert_eq!(command(c ^ (1 << 30)), None);
            assert_eq!(command(c ^ (1 << 31)), None);
            assert_eq!(command(c | 0x7f), None);
            assert_eq!(command(c ^ (1 << 8)), None);
        }
        // FREE is write-only: its number with the read bit is unknown.
        assert_eq!(command(IOC_FREE | (IOC_READ << 30)), None);
    }
}
