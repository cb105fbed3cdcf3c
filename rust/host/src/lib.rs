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

#[path = "../../pattern.rs"]
pub mod pattern;

#[path = "../../slab.rs"]
pub mod slab;

#[path = "../../uapi.rs"]
pub mod uapi;

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
        assert_eq!(uapi::alloc_flags::VALID, sys::MINIMM_ALLOC_VALID);
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
}
