// SPDX-License-Identifier: GPL-2.0

//! Selftests of the user-visible contract of `/dev/minimm`, in the manner of
//! tools/testing/selftests/mm: each test opens what it needs, asserts preconditions, checks
//! results and errnos, and cleans up even after a partial set-up (file descriptors close on
//! drop). Output is KTAP v1; the exit code is kselftest's (4: skipped, when the device is
//! missing or we are not root).
//!
//! Usage: `minimm-selftests [FILTER]` runs the tests whose name contains FILTER.

#[macro_use]
mod ktap;
mod adversary;
mod buddy;
mod common;
mod contract;
mod fail;
mod mapping;
mod owner;
mod reclaim;
mod slab;
mod unload;
mod vmalloc;

use std::{io, mem::size_of, os::unix::fs::PermissionsExt};

use ktap::{expect_errno, pass, Test, TestResult, KSFT_SKIP};
use minimm_uapi::{debugfs, parse_kv, sys, Device};

fn open_close() -> TestResult {
    let avail = |dev: &Device| -> Result<u64, String> {
        let s = dev
            .zone_stats(sys::MINIMM_ZONE_DMA32)
            .map_err(|e| e.to_string())?;
        Ok(s.free_pages + s.pcp_pages)
    };
    let dev = Device::open().map_err(|e| format!("open /dev/minimm: {e}"))?;
    let before = avail(&dev)?;
    dev.alloc(3, sys::MINIMM_ZONE_DMA32, 0)
        .map_err(|e| e.to_string())?;
    check_eq!(avail(&dev)?, before - 8);
    drop(dev);
    // Closing released everything: the device opens again, with the block back in the pool.
    let dev = Device::open().map_err(|e| format!("reopen: {e}"))?;
    check_eq!(avail(&dev)?, before);
    pass()
}

fn device_mode_is_0600() -> TestResult {
    let meta = std::fs::metadata("/dev/minimm").map_err(|e| e.to_string())?;
    check_eq!(meta.permissions().mode() & 0o777, 0o600);
    pass()
}

fn get_info_fields() -> TestResult {
    let dev = Device::open().map_err(|e| e.to_string())?;
    let info = dev.info().map_err(|e| format!("GET_INFO: {e}"))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    check_eq!(info.size, sys::MINIMM_INFO_SIZE_VER0);
    check_eq!(info.abi_version, sys::MINIMM_ABI_VERSION);
    check_eq!(i64::from(info.page_size), page as i64);
    check_eq!(info.max_order, sys::MINIMM_MAX_ORDER);
    check_eq!(info.nr_zones, sys::MINIMM_NR_ZONES);
    check_eq!(info.__pad, 0);
    check_eq!(
        info.features & (sys::MINIMM_FEAT_BUDDY | sys::MINIMM_FEAT_MMAP),
        sys::MINIMM_FEAT_BUDDY | sys::MINIMM_FEAT_MMAP
    );
    check!(
        info.features & !sys::MINIMM_FEATURES_VALID == 0,
        "unknown feature bits {:#x}",
        info.features
    );
    pass()
}

fn unknown_ioctl_is_enotty() -> TestResult {
    let dev = Device::open().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let p = buf.as_mut_ptr() as usize;
    // An unused number with minimm's magic, then GET_INFO's number under another magic.
    let unused = (3 << 30) | (32 << 16) | (sys::MINIMM_IOC_MAGIC << 8) | 0x7f;
    let other_magic = sys::MINIMM_IOC_GET_INFO ^ (0x01 << 8);
    // SAFETY: `p` points to 64 writable bytes, more than any minimm struct.
    expect_errno(
        unsafe { dev.ioctl_raw(unused, p) },
        libc::ENOTTY,
        "unused nr",
    )?;
    // SAFETY: as above.
    expect_errno(
        unsafe { dev.ioctl_raw(other_magic, p) },
        libc::ENOTTY,
        "other magic",
    )?;
    // GET_INFO's number in another direction is another command.
    let other_dir = (sys::MINIMM_IOC_GET_INFO & !(3 << 30)) | (2 << 30);
    // SAFETY: as above.
    expect_errno(
        unsafe { dev.ioctl_raw(other_dir, p) },
        libc::ENOTTY,
        "other direction",
    )?;
    // The size encoded in the number does not matter: the struct's own size field decides.
    let other_size = (sys::MINIMM_IOC_GET_INFO & !(0x3fff << 16)) | (40 << 16);
    buf[..4].copy_from_slice(&sys::MINIMM_INFO_SIZE_VER0.to_ne_bytes());
    // SAFETY: as above.
    unsafe { dev.ioctl_raw(other_size, buf.as_mut_ptr() as usize) }
        .map_err(|e| format!("other size: {e}"))?;
    check_eq!(buf[..4], sys::MINIMM_INFO_SIZE_VER0.to_ne_bytes());
    pass()
}

fn bad_pointer_is_efault() -> TestResult {
    let dev = Device::open().map_err(|e| e.to_string())?;
    for addr in [0usize, 1, 0xffff_ffff_ffff_f000] {
        // SAFETY: deliberately invalid pointers; the kernel must answer EFAULT.
        let r = unsafe { dev.ioctl_raw(sys::MINIMM_IOC_GET_INFO, addr) };
        expect_errno(r, libc::EFAULT, &format!("GET_INFO at {addr:#x}"))?;
    }
    // A pointer whose size field is readable but whose struct runs into an unmapped page.
    let page = 4096;
    // SAFETY: anonymous mapping of two pages, the second made inaccessible below.
    let m = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            2 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check!(
        m != libc::MAP_FAILED,
        "mmap: {}",
        io::Error::last_os_error()
    );
    // SAFETY: `m` is the two-page mapping made above.
    let r = unsafe { libc::mprotect(m.cast::<u8>().add(page).cast(), page, libc::PROT_NONE) };
    check_eq!(r, 0);
    // SAFETY: 8 bytes before the end of the first page are writable.
    let at = unsafe { m.cast::<u8>().add(page - 8) };
    // SAFETY: `at` is valid for 4 bytes.
    unsafe { at.cast::<u32>().write_unaligned(sys::MINIMM_INFO_SIZE_VER0) };
    // SAFETY: the kernel reads 4 valid bytes, then faults on the protected page.
    let r = unsafe { dev.ioctl_raw(sys::MINIMM_IOC_GET_INFO, at as usize) };
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(m, 2 * page) };
    expect_errno(r, libc::EFAULT, "struct crossing into PROT_NONE")?;
    pass()
}

fn too_small_size_is_einval() -> TestResult {
    let dev = Device::open().map_err(|e| e.to_string())?;
    for size in [0, 4, sys::MINIMM_INFO_SIZE_VER0 - 1] {
        let mut info = sys::minimm_info {
            size,
            abi_version: 0xdead,
            ..Default::default()
        };
        expect_errno(
            dev.ioctl(sys::MINIMM_IOC_GET_INFO, &mut info),
            libc::EINVAL,
            &format!("size {size}"),
        )?;
        // Refused means untouched.
        check_eq!(info.size, size);
        check_eq!(info.abi_version, 0xdead);
    }
    pass()
}

fn larger_size_gets_known_prefix() -> TestResult {
    // A newer program with a longer struct: the module fills what it knows and says how much.
    #[repr(C)]
    struct Newer {
        info: sys::minimm_info,
        future: [u64; 4],
    }
    let dev = Device::open().map_err(|e| e.to_string())?;
    let mut n = Newer {
        info: sys::minimm_info {
            size: size_of::<Newer>() as u32,
            ..Default::default()
        },
        future: [0x5a5a_5a5a_5a5a_5a5a; 4],
    };
    dev.ioctl(sys::MINIMM_IOC_GET_INFO, &mut n)
        .map_err(|e| e.to_string())?;
    check_eq!(n.info.size, sys::MINIMM_INFO_SIZE_VER0);
    check_eq!(n.info.abi_version, sys::MINIMM_ABI_VERSION);
    check_eq!(n.future, [0x5a5a_5a5a_5a5a_5a5a; 4]);
    pass()
}

fn two_opens_at_once() -> TestResult {
    let a = Device::open().map_err(|e| e.to_string())?;
    let b = Device::open().map_err(|e| e.to_string())?;
    // Each file has its own handles: both get handle 1, and each frees only its own.
    let ha = a
        .alloc(0, sys::MINIMM_ZONE_NORMAL, 0)
        .map_err(|e| e.to_string())?;
    let hb = b
        .alloc(1, sys::MINIMM_ZONE_NORMAL, 0)
        .map_err(|e| e.to_string())?;
    check_eq!((ha.handle, hb.handle), (1, 1));
    b.fill(hb.handle, 3).map_err(|e| e.to_string())?;
    let sum = b.checksum(hb.handle).map_err(|e| e.to_string())?;
    let (ia, ib) = (
        a.info().map_err(|e| e.to_string())?,
        b.info().map_err(|e| e.to_string())?,
    );
    check_eq!(ia, ib);
    drop(a);
    // Closing one leaves the other and its block as they were.
    check_eq!(
        b.checksum(hb.handle)
            .map_err(|e| format!("after closing the other: {e}"))?,
        sum
    );
    pass()
}

fn debugfs_info_parses() -> TestResult {
    let text = debugfs("info").map_err(|e| format!("read debugfs minimm/info: {e}"))?;
    let kv = parse_kv(&text);
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let version = get("version").ok_or("no version")?;
    check!(version.split('.').count() == 3, "version {version:?}");
    check_eq!(
        get("abi_version"),
        Some(sys::MINIMM_ABI_VERSION.to_string())
    );
    check_eq!(get("max_order"), Some(sys::MINIMM_MAX_ORDER.to_string()));
    check_eq!(get("nr_zones"), Some(sys::MINIMM_NR_ZONES.to_string()));
    for k in ["dma_pages", "dma32_pages", "normal_pages", "page_size"] {
        let v = get(k).ok_or(format!("no {k}"))?;
        v.parse::<u64>().map_err(|e| format!("{k}: {v:?}: {e}"))?;
    }
    // The file agrees with the ioctl.
    let info = Device::open()
        .and_then(|d| d.info())
        .map_err(|e| e.to_string())?;
    check_eq!(get("page_size"), Some(info.page_size.to_string()));
    check_eq!(get("features"), Some(format!("{:#x}", info.features)));
    pass()
}

const TESTS: &[Test] = &[
    Test {
        name: "open_close",
        run: open_close,
    },
    Test {
        name: "device_mode_is_0600",
        run: device_mode_is_0600,
    },
    Test {
        name: "get_info_fields",
        run: get_info_fields,
    },
    Test {
        name: "unknown_ioctl_is_enotty",
        run: unknown_ioctl_is_enotty,
    },
    Test {
        name: "bad_pointer_is_efault",
        run: bad_pointer_is_efault,
    },
    Test {
        name: "too_small_size_is_einval",
        run: too_small_size_is_einval,
    },
    Test {
        name: "larger_size_gets_known_prefix",
        run: larger_size_gets_known_prefix,
    },
    Test {
        name: "two_opens_at_once",
        run: two_opens_at_once,
    },
    Test {
        name: "debugfs_info_parses",
        run: debugfs_info_parses,
    },
    Test {
        name: "buddy_alloc_free_every_order",
        run: buddy::alloc_free_every_order,
    },
    Test {
        name: "buddy_alloc_errnos",
        run: buddy::alloc_errnos,
    },
    Test {
        name: "buddy_free_errnos_and_foreign_handles",
        run: buddy::free_errnos_and_foreign_handles,
    },
    Test {
        name: "buddy_zone_placement",
        run: buddy::zone_placement,
    },
    Test {
        name: "buddy_fallback_watermarks_and_reserve",
        run: buddy::fallback_watermarks_and_reserve,
    },
    Test {
        name: "buddy_mmap_round_trip",
        run: buddy::mmap_round_trip,
    },
    Test {
        name: "buddy_mmap_errnos",
        run: buddy::mmap_errnos,
    },
    Test {
        name: "buddy_free_while_mapped",
        run: buddy::free_while_mapped,
    },
    Test {
        name: "buddy_split_mappings_keep_the_block",
        run: buddy::split_mappings_keep_the_block,
    },
    Test {
        name: "buddy_fork_does_not_inherit_mappings",
        run: buddy::fork_does_not_inherit_mappings,
    },
    Test {
        name: "buddy_referenced_blocks_are_not_reused",
        run: buddy::referenced_blocks_are_not_reused,
    },
    Test {
        name: "buddy_blocks_are_zeroed",
        run: buddy::blocks_are_zeroed,
    },
    Test {
        name: "buddy_cleanup_on_close",
        run: buddy::cleanup_on_close,
    },
    Test {
        name: "buddy_quota",
        run: buddy::quota,
    },
    Test {
        name: "buddy_zone_stats_and_buddyinfo",
        run: buddy::zone_stats_and_buddyinfo,
    },
    Test {
        name: "buddy_watermarks_in_debugfs",
        run: buddy::watermarks_in_debugfs,
    },
    Test {
        name: "buddy_pcp_lists",
        run: buddy::pcp_lists,
    },
    Test {
        name: "buddy_pcp_lists_every_order",
        run: buddy::pcp_lists_every_order,
    },
    Test {
        name: "buddy_bench_reports_every_row",
        run: buddy::bench_reports_every_row,
    },
    Test {
        name: "buddy_concurrent_alloc_free",
        run: buddy::concurrent_alloc_free,
    },
    Test {
        name: "buddy_validate_passes",
        run: buddy::validate_passes,
    },
    Test {
        name: "mapping_free_races_mmap",
        run: mapping::free_races_mmap,
    },
    Test {
        name: "mapping_free_races_free",
        run: mapping::free_races_free,
    },
    Test {
        name: "mapping_close_races_ioctl",
        run: mapping::close_races_ioctl,
    },
    Test {
        name: "mapping_free_races_block_data",
        run: mapping::free_races_block_data,
    },
    Test {
        name: "mapping_madv_dontneed_refaults",
        run: mapping::madv_dontneed_refaults,
    },
    Test {
        name: "mapping_first_touch_maps_the_whole_block",
        run: mapping::first_touch_maps_the_whole_block,
    },
    Test {
        name: "mapping_offsets_are_unique_module_wide",
        run: mapping::offsets_are_unique_module_wide,
    },
    Test {
        name: "mapping_faults_in_split_moved_and_freed_mappings",
        run: mapping::faults_in_split_moved_and_freed_mappings,
    },
    Test {
        name: "owner_page_owner_lists_every_buffer",
        run: owner::page_owner_lists_every_buffer,
    },
    Test {
        name: "mapping_madv_fork_flags",
        run: mapping::madv_fork_flags,
    },
    Test {
        name: "mapping_madv_dofork_is_refused",
        run: mapping::madv_dofork_is_refused,
    },
    Test {
        name: "mapping_mremap_move_shrink_grow",
        run: mapping::mremap_move_shrink_grow,
    },
    Test {
        name: "mapping_read_from_outside",
        run: mapping::read_from_outside,
    },
    Test {
        name: "contract_ioctl_ignores_size_bits",
        run: contract::ioctl_ignores_size_bits,
    },
    Test {
        name: "contract_output_structs_take_any_tail",
        run: contract::output_structs_take_any_tail,
    },
    Test {
        name: "contract_open_modes",
        run: contract::open_modes,
    },
    Test {
        name: "contract_failed_commands_change_nothing",
        run: contract::failed_commands_change_nothing,
    },
    Test {
        name: "contract_held_blocks_come_back",
        run: contract::held_blocks_come_back,
    },
    Test {
        name: "fail_knobs_follow_linux_rules",
        run: fail::knobs_follow_linux_rules,
    },
    Test {
        name: "fail_nth_walks_every_point",
        run: fail::nth_walks_every_point,
    },
    Test {
        name: "adversary_sizes_at_every_boundary",
        run: adversary::sizes_at_every_boundary,
    },
    Test {
        name: "adversary_field_limits",
        run: adversary::field_limits,
    },
    Test {
        name: "adversary_handles_belong_to_the_open_file",
        run: adversary::handles_belong_to_the_open_file,
    },
    Test {
        name: "adversary_mmap_odd_requests",
        run: adversary::mmap_odd_requests,
    },
    Test {
        name: "adversary_mprotect_write_follows_open_mode",
        run: adversary::mprotect_write_follows_open_mode,
    },
    Test {
        name: "adversary_fork_during_ioctls",
        run: adversary::fork_during_ioctls,
    },
    Test {
        name: "adversary_threads_churn_while_descriptors_close",
        run: adversary::threads_churn_while_descriptors_close,
    },
    Test {
        name: "adversary_debugfs_garbage_writes",
        run: adversary::debugfs_garbage_writes,
    },
    Test {
        name: "adversary_fail_knobs_at_extremes",
        run: adversary::fail_knobs_at_extremes,
    },
    Test {
        name: "adversary_held_blocks_in_every_order",
        run: adversary::held_blocks_in_every_order,
    },
    Test {
        name: "adversary_unmap_and_close_during_block_data",
        run: adversary::unmap_and_close_during_block_data,
    },
    Test {
        name: "adversary_debugfs_reads_while_churning",
        run: adversary::debugfs_reads_while_churning,
    },
    Test {
        name: "adversary_size_flipped_during_alloc",
        run: adversary::size_flipped_during_alloc,
    },
    Test {
        name: "adversary_struct_made_readonly_midway",
        run: adversary::struct_made_readonly_midway,
    },
    Test {
        name: "adversary_struct_inside_a_block_mapping",
        run: adversary::struct_inside_a_block_mapping,
    },
    Test {
        name: "slab_feature_and_generic_caches",
        run: slab::feature_and_generic_caches,
    },
    Test {
        name: "slab_geometry_and_slabinfo",
        run: slab::geometry_and_slabinfo,
    },
    Test {
        name: "slab_create_errnos",
        run: slab::create_errnos,
    },
    Test {
        name: "slab_cache_limit",
        run: slab::cache_limit,
    },
    Test {
        name: "slab_alloc_free_errnos",
        run: slab::alloc_free_errnos,
    },
    Test {
        name: "slab_generic_objects",
        run: slab::generic_objects,
    },
    Test {
        name: "slab_data_bounds",
        run: slab::data_bounds,
    },
    Test {
        name: "slab_object_contents",
        run: slab::object_contents,
    },
    Test {
        name: "slab_debug_flags",
        run: slab::debug_flags,
    },
    Test {
        name: "slab_bulk",
        run: slab::bulk,
    },
    Test {
        name: "slab_destroy_busy_then_gone",
        run: slab::destroy_busy_then_gone,
    },
    Test {
        name: "slab_shrink_returns_pages",
        run: slab::shrink_returns_pages,
    },
    Test {
        name: "slab_cache_directory",
        run: slab::cache_directory,
    },
    Test {
        name: "slab_page_owner_names_the_cache",
        run: slab::page_owner_names_the_cache,
    },
    Test {
        name: "slab_zone_placement",
        run: slab::zone_placement,
    },
    Test {
        name: "slab_handles_belong_to_the_file",
        run: slab::handles_belong_to_the_file,
    },
    Test {
        name: "slab_open_modes",
        run: slab::open_modes,
    },
    Test {
        name: "slab_close_frees_everything",
        run: slab::close_frees_everything,
    },
    Test {
        name: "slab_records_in_own_caches",
        run: slab::records_in_own_caches,
    },
    Test {
        name: "slab_concurrent_one_file",
        run: slab::concurrent_one_file,
    },
    Test {
        name: "slab_struct_sizes",
        run: slab::struct_sizes,
    },
    Test {
        name: "reclaim_gives_back_every_source",
        run: reclaim::gives_back_every_source,
    },
    Test {
        name: "reclaim_unpin_pin_round_trip",
        run: reclaim::unpin_pin_round_trip,
    },
    Test {
        name: "reclaim_purges_unpinned_only",
        run: reclaim::purges_unpinned_only,
    },
    Test {
        name: "reclaim_evicts_unaccessed_first",
        run: reclaim::evicts_unaccessed_first,
    },
    Test {
        name: "reclaim_thread_and_direct_reclaim",
        run: reclaim::thread_and_direct_reclaim,
    },
    Test {
        name: "reclaim_cache_sample",
        run: reclaim::cache_sample,
    },
    Test {
        name: "reclaim_poll_sees_crossings",
        run: reclaim::poll_sees_crossings,
    },
    Test {
        name: "reclaim_purge_failure_point",
        run: reclaim::purge_failure_point,
    },
    Test {
        name: "reclaim_purge_edges",
        run: reclaim::purge_edges,
    },
    Test {
        name: "reclaim_discardable_areas_page_by_page",
        run: reclaim::discardable_areas_page_by_page,
    },
    Test {
        name: "reclaim_stress",
        run: reclaim::stress,
    },
    Test {
        name: "vm_errnos",
        run: vmalloc::errnos,
    },
    Test {
        name: "vm_sizes",
        run: vmalloc::sizes,
    },
    Test {
        name: "vm_scattered_and_too_large",
        run: vmalloc::scattered_and_too_large,
    },
    Test {
        name: "vm_create_free_loop",
        run: vmalloc::create_free_loop,
    },
    Test {
        name: "vm_data_both_ways",
        run: vmalloc::data_both_ways,
    },
    Test {
        name: "vm_free_close_fork_while_mapped",
        run: vmalloc::free_close_fork_while_mapped,
    },
    Test {
        name: "vm_concurrent",
        run: vmalloc::concurrent,
    },
    Test {
        name: "vm_resize",
        run: vmalloc::resize,
    },
    Test {
        name: "vm_pinned_pages_held",
        run: vmalloc::pinned_pages_held,
    },
    Test {
        name: "vm_vmallocinfo_and_page_owner",
        run: vmalloc::vmallocinfo_and_page_owner,
    },
    // Last: these unload and reload the module.
    Test {
        name: "reclaim_rmmod_while_thread_busy",
        run: reclaim::rmmod_while_thread_busy,
    },
    Test {
        name: "contract_pcp_drained_before_enomem",
        run: contract::pcp_drained_before_enomem,
    },
    Test {
        name: "contract_parameters_checked_at_load",
        run: contract::parameters_checked_at_load,
    },
    Test {
        name: "fail_nth_walks_host_borrow_at_load",
        run: fail::nth_walks_host_borrow_at_load,
    },
    Test {
        name: "buddy_borrowing_takes_what_the_host_gives",
        run: buddy::borrowing_takes_what_the_host_gives,
    },
    Test {
        name: "buddy_rmmod_returns_every_page",
        run: buddy::rmmod_returns_every_page,
    },
    Test {
        name: "unload_open_debugfs_file_pins_module",
        run: unload::open_debugfs_file_pins_module,
    },
    Test {
        name: "unload_reads_race_unload",
        run: unload::reads_race_unload,
    },
    Test {
        name: "adversary_reload_with_odd_parameters",
        run: adversary::reload_with_odd_parameters,
    },
    Test {
        name: "adversary_page_owner_with_many_buffers",
        run: adversary::page_owner_with_many_buffers,
    },
    Test {
        name: "adversary_rmmod_with_block_in_a_pipe",
        run: adversary::rmmod_with_block_in_a_pipe,
    },
    Test {
        name: "slab_quota",
        run: slab::quota,
    },
    Test {
        name: "slab_debug_parameter",
        run: slab::debug_parameter,
    },
];

fn main() {
    let filter = std::env::args().nth(1);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        Some("not root".to_string())
    } else {
        Device::open()
            .err()
            .map(|e| format!("cannot open /dev/minimm ({e}): is minimm.ko loaded?"))
    };
    if let Some(why) = why {
        println!("KTAP version 1");
        println!("1..0 # SKIP {why}");
        std::process::exit(KSFT_SKIP);
    }
    std::process::exit(ktap::run("minimm", TESTS, filter.as_deref()));
}
