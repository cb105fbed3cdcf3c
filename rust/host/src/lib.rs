// SPDX-License-Identifier: GPL-2.0

//! Host build of minimm's pure files.
//!
//! The module keeps its algorithms in files with no `kernel::` imports; this crate compiles
//! the very same files (by `#[path]`) so that `cargo test` exercises them in seconds, as Linux
//! does with tools/testing/{vma,memblock,radix-tree}. Each file carries its own unit tests at
//! its bottom; cross-file checks live in `tests` below.

// The module uses these items; the host build only tests them.
#![allow(dead_code)]

#[path = "../../buddy.rs"]
pub mod buddy;

#[path = "../../fail.rs"]
pub mod fail;

#[path = "../../pcp.rs"]
pub mod pcp;

#[path = "../../lru.rs"]
pub mod lru;

#[path = "../../pattern.rs"]
pub mod pattern;

#[path = "../../slab.rs"]
pub mod slab;

#[path = "../../uapi.rs"]
pub mod uapi;

#[path = "../../vm_area.rs"]
pub mod vm_area;

#[path = "../../zone.rs"]
pub mod zone;

#[cfg(test)]
mod tests {
    //! The module's uapi mirror against bindings that bindgen made from the C header.
    use super::uapi;
    use core::mem::{offset_of, size_of};
    use minimm_uapi::sys;

    #[test]
    fn constants_match_the_header() {
        assert_eq!(uapi::ABI_VERSION, sys::MINIMM_ABI_VERSION);
        assert_eq!(uapi::ZONE_DMA, sys::MINIMM_ZONE_DMA);
        assert_eq!(uapi::ZONE_DMA32, sys::MINIMM_ZONE_DMA32);
        assert_eq!(uapi::ZONE_NORMAL, sys::MINIMM_ZONE_NORMAL);
        assert_eq!(uapi::NR_ZONES, sys::MINIMM_NR_ZONES);
        assert_eq!(uapi::MAX_ORDER, sys::MINIMM_MAX_ORDER);
        assert_eq!(uapi::IOC_MAGIC, sys::MINIMM_IOC_MAGIC);
        assert_eq!(uapi::INFO_SIZE_VER0, sys::MINIMM_INFO_SIZE_VER0);
        assert_eq!(uapi::ALLOC_SIZE_VER0, sys::MINIMM_ALLOC_SIZE_VER0);
        assert_eq!(uapi::FREE_SIZE_VER0, sys::MINIMM_FREE_SIZE_VER0);
        assert_eq!(uapi::BLOCK_DATA_SIZE_VER0, sys::MINIMM_BLOCK_DATA_SIZE_VER0);
        assert_eq!(uapi::ZONE_STATS_SIZE_VER0, sys::MINIMM_ZONE_STATS_SIZE_VER0);
        assert_eq!(uapi::BLOCK_CHECKSUM, sys::MINIMM_BLOCK_CHECKSUM);
        assert_eq!(uapi::BLOCK_FILL, sys::MINIMM_BLOCK_FILL);
        assert_eq!(uapi::alloc_flags::ZERO, sys::MINIMM_ALLOC_ZERO);
        assert_eq!(uapi::alloc_flags::ATOMIC, sys::MINIMM_ALLOC_ATOMIC);
        assert_eq!(uapi::alloc_flags::NOWAIT, sys::MINIMM_ALLOC_NOWAIT);
        assert_eq!(
            uapi::alloc_flags::DISCARDABLE,
            sys::MINIMM_ALLOC_DISCARDABLE
        );
        assert_eq!(uapi::alloc_flags::VALID, sys::MINIMM_ALLOC_VALID);
        assert_eq!(uapi::PIN_PURGED, u64::from(sys::MINIMM_PIN_PURGED));
    }

    #[test]
    fn feature_bits_match_the_header() {
        assert_eq!(uapi::feat::BUDDY, sys::MINIMM_FEAT_BUDDY);
        assert_eq!(uapi::feat::MMAP, sys::MINIMM_FEAT_MMAP);
        assert_eq!(uapi::feat::SLAB, sys::MINIMM_FEAT_SLAB);
        assert_eq!(uapi::feat::VMALLOC, sys::MINIMM_FEAT_VMALLOC);
        assert_eq!(uapi::feat::RECLAIM, sys::MINIMM_FEAT_RECLAIM);
        assert_eq!(uapi::feat::VALID, sys::MINIMM_FEATURES_VALID);
    }

    #[test]
    fn ioctl_numbers_match_the_header() {
        assert_eq!(uapi::IOC_GET_INFO, sys::MINIMM_IOC_GET_INFO);
        assert_eq!(uapi::IOC_ALLOC, sys::MINIMM_IOC_ALLOC);
        assert_eq!(uapi::IOC_FREE, sys::MINIMM_IOC_FREE);
        assert_eq!(uapi::IOC_BLOCK_DATA, sys::MINIMM_IOC_BLOCK_DATA);
        assert_eq!(uapi::IOC_ZONE_STATS, sys::MINIMM_IOC_ZONE_STATS);
        assert_eq!(uapi::IOC_SLAB_CREATE, sys::MINIMM_IOC_SLAB_CREATE);
        assert_eq!(uapi::IOC_SLAB_DESTROY, sys::MINIMM_IOC_SLAB_DESTROY);
        assert_eq!(uapi::IOC_SLAB_ALLOC, sys::MINIMM_IOC_SLAB_ALLOC);
        assert_eq!(uapi::IOC_SLAB_FREE, sys::MINIMM_IOC_SLAB_FREE);
        assert_eq!(uapi::IOC_SLAB_BULK, sys::MINIMM_IOC_SLAB_BULK);
        assert_eq!(uapi::IOC_SLAB_DATA, sys::MINIMM_IOC_SLAB_DATA);
        assert_eq!(uapi::IOC_SLAB_SHRINK, sys::MINIMM_IOC_SLAB_SHRINK);
        assert_eq!(uapi::IOC_SLAB_STATS, sys::MINIMM_IOC_SLAB_STATS);
        assert_eq!(uapi::IOC_VM_CREATE, sys::MINIMM_IOC_VM_CREATE);
        assert_eq!(uapi::IOC_VM_FREE, sys::MINIMM_IOC_VM_FREE);
        assert_eq!(uapi::IOC_VM_INFO, sys::MINIMM_IOC_VM_INFO);
        assert_eq!(uapi::IOC_VM_RESIZE, sys::MINIMM_IOC_VM_RESIZE);
        assert_eq!(uapi::VM_RESIZE_SIZE_VER0, sys::MINIMM_VM_RESIZE_SIZE_VER0);
        assert_eq!(uapi::IOC_UNPIN, sys::MINIMM_IOC_UNPIN);
        assert_eq!(uapi::IOC_PIN, sys::MINIMM_IOC_PIN);
        assert_eq!(uapi::IOC_WMARK_EVENTS, sys::MINIMM_IOC_WMARK_EVENTS);
        assert_eq!(uapi::WMARK_LOW, sys::MINIMM_WMARK_LOW);
        assert_eq!(uapi::WMARK_MIN, sys::MINIMM_WMARK_MIN);
        assert_eq!(uapi::WMARK_HIGH, sys::MINIMM_WMARK_HIGH);
    }

    #[test]
    fn slab_constants_match_the_header() {
        use uapi::{obj_flags as o, slab_flags as f};
        assert_eq!(f::HWCACHE_ALIGN, sys::MINIMM_SLAB_HWCACHE_ALIGN);
        assert_eq!(f::CACHE_DMA, sys::MINIMM_SLAB_CACHE_DMA);
        assert_eq!(f::CACHE_DMA32, sys::MINIMM_SLAB_CACHE_DMA32);
        assert_eq!(f::RED_ZONE, sys::MINIMM_SLAB_RED_ZONE);
        assert_eq!(f::POISON, sys::MINIMM_SLAB_POISON);
        assert_eq!(f::CONSISTENCY_CHECKS, sys::MINIMM_SLAB_CONSISTENCY_CHECKS);
        assert_eq!(f::STORE_USER, sys::MINIMM_SLAB_STORE_USER);
        assert_eq!(f::CTOR, sys::MINIMM_SLAB_CTOR);
        assert_eq!(f::VALID, sys::MINIMM_SLAB_VALID);
        assert_eq!(o::ZERO, sys::MINIMM_OBJ_ZERO);
        assert_eq!(o::ATOMIC, sys::MINIMM_OBJ_ATOMIC);
        assert_eq!(o::NOWAIT, sys::MINIMM_OBJ_NOWAIT);
        assert_eq!(o::DMA, sys::MINIMM_OBJ_DMA);
        assert_eq!(o::VALID, sys::MINIMM_OBJ_VALID);
        assert_eq!(uapi::SLAB_NAME_LEN, sys::MINIMM_SLAB_NAME_LEN as usize);
        assert_eq!(uapi::SLAB_MAX_OBJECT, sys::MINIMM_SLAB_MAX_OBJECT);
        assert_eq!(uapi::SLAB_MAX_GENERIC, sys::MINIMM_SLAB_MAX_GENERIC);
        assert_eq!(uapi::SLAB_MAX_CACHES, sys::MINIMM_SLAB_MAX_CACHES as usize);
        assert_eq!(uapi::SLAB_BULK_MAX, sys::MINIMM_SLAB_BULK_MAX);
        assert_eq!(uapi::vm_flags::ZERO, sys::MINIMM_VM_ZERO);
        assert_eq!(uapi::vm_flags::ATOMIC, sys::MINIMM_VM_ATOMIC);
        assert_eq!(uapi::vm_flags::NOWAIT, sys::MINIMM_VM_NOWAIT);
        assert_eq!(uapi::vm_flags::LARGE, sys::MINIMM_VM_LARGE);
        assert_eq!(uapi::vm_flags::DISCARDABLE, sys::MINIMM_VM_DISCARDABLE);
        assert_eq!(uapi::vm_flags::VALID, sys::MINIMM_VM_VALID);
        assert_eq!(uapi::VM_MAX_BYTES, sys::MINIMM_VM_MAX_BYTES as u64);
        assert_eq!(uapi::VM_CREATE_SIZE_VER0, sys::MINIMM_VM_CREATE_SIZE_VER0);
        assert_eq!(uapi::VM_INFO_SIZE_VER0, sys::MINIMM_VM_INFO_SIZE_VER0);
        assert_eq!(uapi::SLAB_BULK_ALLOC, sys::MINIMM_SLAB_BULK_ALLOC);
        assert_eq!(uapi::SLAB_BULK_FREE, sys::MINIMM_SLAB_BULK_FREE);
        assert_eq!(uapi::SLAB_READ, sys::MINIMM_SLAB_READ);
        assert_eq!(uapi::SLAB_WRITE, sys::MINIMM_SLAB_WRITE);
        // The largest object fills an order-3 slab; the largest generic one an order-10 block.
        assert_eq!(
            uapi::SLAB_MAX_OBJECT as usize,
            4096 << crate::slab::MAX_SLAB_ORDER
        );
    }

    #[test]
    fn info_layout_matches_the_header() {
        assert_eq!(size_of::<uapi::Info>(), size_of::<sys::minimm_info>());
        assert_eq!(size_of::<uapi::Info>(), uapi::INFO_SIZE_VER0 as usize);
        assert_eq!(
            offset_of!(uapi::Info, size),
            offset_of!(sys::minimm_info, size)
        );
        assert_eq!(
            offset_of!(uapi::Info, abi_version),
            offset_of!(sys::minimm_info, abi_version)
        );
        assert_eq!(
            offset_of!(uapi::Info, features),
            offset_of!(sys::minimm_info, features)
        );
        assert_eq!(
            offset_of!(uapi::Info, page_size),
            offset_of!(sys::minimm_info, page_size)
        );
        assert_eq!(
            offset_of!(uapi::Info, max_order),
            offset_of!(sys::minimm_info, max_order)
        );
        assert_eq!(
            offset_of!(uapi::Info, nr_zones),
            offset_of!(sys::minimm_info, nr_zones)
        );
        assert_eq!(
            offset_of!(uapi::Info, pad),
            offset_of!(sys::minimm_info, __pad)
        );
    }

    /// Size and every field offset of a mirrored struct against the bindgen struct.
    macro_rules! same_layout {
        ($ours:ty, $theirs:ty, $ver0:expr, [$($a:ident = $b:ident),* $(,)?]) => {{
            assert_eq!(size_of::<$ours>(), size_of::<$theirs>(), "size of {}", stringify!($ours));
            assert_eq!(size_of::<$ours>(), $ver0 as usize, "VER0 size of {}", stringify!($ours));
            $(assert_eq!(offset_of!($ours, $a), offset_of!($theirs, $b), "{}.{}", stringify!($ours), stringify!($a));)*
        }};
    }

    #[test]
    fn buddy_structs_match_the_header() {
        same_layout!(
            uapi::Alloc,
            sys::minimm_alloc,
            uapi::ALLOC_SIZE_VER0,
            [
                size = size,
                order = order,
                zone = zone,
                flags = flags,
                handle = handle,
                mmap_offset = mmap_offset,
                zone_out = zone_out,
                pad = __pad,
            ]
        );
        same_layout!(
            uapi::Free,
            sys::minimm_free,
            uapi::FREE_SIZE_VER0,
            [size = size, pad = __pad, handle = handle,]
        );
        same_layout!(
            uapi::BlockData,
            sys::minimm_block_data,
            uapi::BLOCK_DATA_SIZE_VER0,
            [
                size = size,
                op = op,
                handle = handle,
                seed = seed,
                result = result,
            ]
        );
        same_layout!(
            uapi::ZoneStats,
            sys::minimm_zone_stats,
            uapi::ZONE_STATS_SIZE_VER0,
            [
                size = size,
                zone = zone,
                managed_pages = managed_pages,
                free_pages = free_pages,
                pcp_pages = pcp_pages,
                wmark_min = wmark_min,
                wmark_low = wmark_low,
                wmark_high = wmark_high,
                nr_free = nr_free,
                pgalloc = pgalloc,
                pgfree = pgfree,
                alloc_fail = alloc_fail,
                low_wmark_hit = low_wmark_hit,
                min_wmark_hit = min_wmark_hit,
                fallback = fallback,
            ]
        );
    }

    /// Lines as Linux 7.3's `vmalloc_info_show` prints them, and minimm's.
    #[test]
    fn vmallocinfo_lines() {
        let text = "\
0xffffc90000000000-0xffffc90000005000   20480 irq_init_percpu_irqstack+0x176/0x1c0 vmap
0xffffc9000000d000-0xffffc9000000f000    8192 hpet_enable+0x3a/0x2e0 phys=0x00000000fed00000 ioremap
0xffffc90000100000-0xffffc90000102000    8192 mod_fn+0x10/0x40 [some_mod] pages=1 vmalloc N0=1
0xffffc90000200000-0xffffc90000202000    8192 unpurged vm_area
0xffffc90000300000-0xffffc90000305000   20480 vm_create pages=4 vmalloc N0=4 DMA=0 DMA32=1 Normal=3 large
";
        let l = minimm_uapi::parse_vmallocinfo(text).unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].start, 0xffffc90000000000);
        assert_eq!(l[0].end - l[0].start, l[0].size);
        assert_eq!(l[0].caller, "irq_init_percpu_irqstack+0x176/0x1c0");
        assert_eq!(l[0].flags, ["vmap"]);
        assert_eq!(
            l[1].extra,
            [("phys".to_string(), "0x00000000fed00000".to_string())]
        );
        assert_eq!(l[2].caller, "mod_fn+0x10/0x40 [some_mod]");
        assert_eq!(l[2].pages, Some(1));
        assert_eq!(l[3].caller, "unpurged");
        assert_eq!(l[3].flags, ["vm_area"]);
        assert_eq!(l[4].pages, Some(4));
        assert_eq!(l[4].flags, ["vmalloc", "large"]);
        assert_eq!(l[4].extra.len(), 4);
        assert!(minimm_uapi::parse_vmallocinfo("ffff-0x1 10 x").is_err());
        assert!(minimm_uapi::parse_vmallocinfo("0x1-0x2 ten x").is_err());
        assert!(minimm_uapi::parse_vmallocinfo("0x1-0x2 10").is_err());
    }

    #[test]
    fn vm_structs_match_the_header() {
        same_layout!(
            uapi::VmCreate,
            sys::minimm_vm_create,
            uapi::VM_CREATE_SIZE_VER0,
            [
                size = size,
                zone = zone,
                bytes = bytes,
                flags = flags,
                pad = __pad,
                handle = handle,
                mmap_offset = mmap_offset,
                pages = pages,
            ]
        );
        same_layout!(
            uapi::VmInfo,
            sys::minimm_vm_info,
            uapi::VM_INFO_SIZE_VER0,
            [
                size = size,
                flags = flags,
                handle = handle,
                bytes = bytes,
                pages = pages,
                zone_pages = zone_pages,
                runs = runs,
                mmap_offset = mmap_offset,
            ]
        );
        same_layout!(
            uapi::VmResize,
            sys::minimm_vm_resize,
            uapi::VM_RESIZE_SIZE_VER0,
            [
                size = size,
                pad = __pad,
                handle = handle,
                bytes = bytes,
                mmap_offset = mmap_offset,
                pages = pages,
            ]
        );
        same_layout!(
            uapi::WmarkEvents,
            sys::minimm_wmark_events,
            uapi::WMARK_EVENTS_SIZE_VER0,
            [
                size = size,
                last_zone = last_zone,
                events = events,
                unread = unread,
                below_low = below_low,
                below_min = below_min,
                above_high = above_high,
                last_kind = last_kind,
                pad = __pad,
            ]
        );
        same_layout!(
            uapi::Pin,
            sys::minimm_pin,
            uapi::PIN_SIZE_VER0,
            [size = size, flags = flags, handle = handle, result = result,]
        );
    }

    #[test]
    fn slab_structs_match_the_header() {
        same_layout!(
            uapi::SlabCreate,
            sys::minimm_slab_create,
            uapi::SLAB_CREATE_SIZE_VER0,
            [
                size = size,
                flags = flags,
                object_size = object_size,
                align = align,
                ctor_seed = ctor_seed,
                name = name,
                cache = cache,
            ]
        );
        same_layout!(
            uapi::SlabCache,
            sys::minimm_slab_cache,
            uapi::SLAB_CACHE_SIZE_VER0,
            [
                size = size,
                pad = __pad,
                cache = cache,
                pages_freed = pages_freed,
            ]
        );
        same_layout!(
            uapi::SlabAlloc,
            sys::minimm_slab_alloc,
            uapi::SLAB_ALLOC_SIZE_VER0,
            [
                size = size,
                flags = flags,
                cache = cache,
                bytes = bytes,
                pad = __pad,
                object = object,
                objsize = objsize,
                pad2 = __pad2,
            ]
        );
        same_layout!(
            uapi::SlabFree,
            sys::minimm_slab_free,
            uapi::SLAB_FREE_SIZE_VER0,
            [size = size, pad = __pad, object = object,]
        );
        same_layout!(
            uapi::SlabBulk,
            sys::minimm_slab_bulk,
            uapi::SLAB_BULK_SIZE_VER0,
            [
                size = size,
                op = op,
                cache = cache,
                count = count,
                flags = flags,
                objects = objects,
            ]
        );
        same_layout!(
            uapi::SlabData,
            sys::minimm_slab_data,
            uapi::SLAB_DATA_SIZE_VER0,
            [
                size = size,
                op = op,
                object = object,
                offset = offset,
                len = len,
                buf = buf,
            ]
        );
        same_layout!(
            uapi::SlabStats,
            sys::minimm_slab_stats,
            uapi::SLAB_STATS_SIZE_VER0,
            [
                size = size,
                pad = __pad,
                cache = cache,
                object_size = object_size,
                slot_size = slot_size,
                align = align,
                objs_per_slab = objs_per_slab,
                order = order,
                colours = colours,
                flags = flags,
                pad2 = __pad2,
                active_objs = active_objs,
                num_objs = num_objs,
                active_slabs = active_slabs,
                num_slabs = num_slabs,
                partial_slabs = partial_slabs,
                empty_slabs = empty_slabs,
                cpu_objects = cpu_objects,
                limit = limit,
                batchcount = batchcount,
                min_partial = min_partial,
                alloc_fastpath = alloc_fastpath,
                alloc_slowpath = alloc_slowpath,
                free_fastpath = free_fastpath,
                free_slowpath = free_slowpath,
                slabs_created = slabs_created,
                slabs_freed = slabs_freed,
                debug_errors = debug_errors,
            ]
        );
    }
}
