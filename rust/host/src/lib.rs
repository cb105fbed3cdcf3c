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

#[path = "../../uapi.rs"]
pub mod uapi;

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
    }

    #[test]
    fn info_layout_matches_the_header() {
        assert_eq!(size_of::<uapi::Info>(), size_of::<sys::minimm_info>());
        assert_eq!(size_of::<uapi::Info>(), uapi::INFO_SIZE_VER0 as usize);
        assert_eq!(offset_of!(uapi::Info, size), offset_of!(sys::minimm_info, size));
        assert_eq!(offset_of!(uapi::Info, abi_version), offset_of!(sys::minimm_info, abi_version));
        assert_eq!(offset_of!(uapi::Info, features), offset_of!(sys::minimm_info, features));
        assert_eq!(offset_of!(uapi::Info, page_size), offset_of!(sys::minimm_info, page_size));
        assert_eq!(offset_of!(uapi::Info, max_order), offset_of!(sys::minimm_info, max_order));
        assert_eq!(offset_of!(uapi::Info, nr_zones), offset_of!(sys::minimm_info, nr_zones));
        assert_eq!(offset_of!(uapi::Info, pad), offset_of!(sys::minimm_info, __pad));
    }
}
