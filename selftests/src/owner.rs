// SPDX-License-Identifier: GPL-2.0

//! Selftests of debugfs `page_owner` and `page_owner_sort`: who holds every buffer.

use std::os::unix::fs::PermissionsExt;

use minimm_uapi::{debugfs, page_size};

use crate::{
    common::{e, open, DEBUGFS, DMA32, NORMAL},
    ktap::{pass, TestResult},
};

/// The paragraph of `page_owner` that describes the buffer mapped at `offset`, if any.
fn paragraph(text: &str, offset: u64) -> Option<String> {
    let tag = format!("offset {offset:#x}");
    text.split("\n\n")
        .find(|p| p.lines().nth(1).is_some_and(|l| l.ends_with(&tag)))
        .map(str::to_string)
}

/// Every buffer handed out is listed with its order, zone, handle, page frames, flags and the
/// allocating task; a freed one is gone; the grouped view counts them; both files are
/// root-only, as Linux's page_owner.
pub fn page_owner_lists_every_buffer() -> TestResult {
    for f in ["page_owner", "page_owner_sort"] {
        let mode = std::fs::metadata(format!("{DEBUGFS}/{f}"))
            .map_err(e)?
            .permissions()
            .mode();
        check_eq!(mode & 0o777, 0o400);
    }
    let dev = open()?;
    // An order-0 block comes from a per-CPU list: it carries its real owner too.
    let small = dev.alloc(0, NORMAL, 0).map_err(e)?;
    let big = dev.alloc(3, DMA32, 1).map_err(e)?;
    let text = debugfs("page_owner").map_err(e)?;
    let comm = std::fs::read_to_string("/proc/self/comm").map_err(e)?;
    let pid = std::process::id();
    for (a, order, flags) in [(&small, 0u32, 0u32), (&big, 3, 1)] {
        let p = paragraph(&text, a.mmap_offset)
            .ok_or_else(|| format!("no paragraph for offset {:#x} in:\n{text}", a.mmap_offset))?;
        let mut lines = p.lines();
        let first = lines.next().unwrap_or("");
        let want = format!("Block allocated via order {order}, flags {flags:#x}, pid ");
        check!(first.starts_with(&want), "{first:?}, wanted {want:?}...");
        check!(
            first.contains(&format!("tgid {pid} ({})", comm.trim())),
            "{first:?}"
        );
        check!(first.ends_with(" ns"), "{first:?}");
        let second = lines.next().unwrap_or("");
        let zone = ["DMA", "DMA32", "Normal"][a.zone_out as usize];
        check!(
            second.contains(&format!(" zone {zone} "))
                && second.contains(&format!(" handle {} ", a.handle)),
            "{second:?}"
        );
        // `PFN first-last`: 2^order frames.
        let range = second
            .strip_prefix("PFN ")
            .and_then(|r| r.split(' ').next())
            .and_then(|r| r.split_once('-'))
            .ok_or_else(|| format!("no PFN range in {second:?}"))?;
        let hex = |v: &str| {
            u64::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|err| err.to_string())
        };
        let (lo, hi) = (hex(range.0)?, hex(range.1)?);
        check_eq!(hi - lo + 1, 1u64 << order);
        // A DMA32 (or lower) block lies below 4 GiB.
        if a.zone_out != NORMAL {
            check!((hi + 1) * page_size() as u64 <= 4 << 30, "{second:?}");
        }
    }
    let sorted = debugfs("page_owner_sort").map_err(e)?;
    let name = |z: u32| ["DMA", "DMA32", "Normal"][z as usize];
    for (order, zone) in [(0, name(small.zone_out)), (3, name(big.zone_out))] {
        let pages = 1u64 << order;
        check!(
            sorted.lines().any(|l| l
                .contains(&format!("comm {} order {order} zone {zone}", comm.trim()))
                && l.split(' ')
                    .nth(2)
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= pages)),
            "no group for order {order} in {zone}:\n{sorted}"
        );
    }
    dev.free(big.handle).map_err(e)?;
    let text = debugfs("page_owner").map_err(e)?;
    check!(
        paragraph(&text, big.mmap_offset).is_none(),
        "a freed buffer is still listed"
    );
    check!(
        paragraph(&text, small.mmap_offset).is_some(),
        "a live buffer is gone"
    );
    drop(dev);
    let text = debugfs("page_owner").map_err(e)?;
    check!(
        paragraph(&text, small.mmap_offset).is_none(),
        "a closed file's buffer is still listed"
    );
    pass()
}
