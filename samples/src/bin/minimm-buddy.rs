// SPDX-License-Identifier: GPL-2.0

//! minimm-buddy: watch the buddy allocator split and merge.
//!
//! Allocates an order-3 block from the DMA32 zone, shows how buddyinfo changed (a larger block
//! split into buddies), maps the block, writes a pattern through the mapping, has the kernel
//! checksum it, then frees the block and shows the buddies merged back.
//!
//! Usage: minimm-buddy [ORDER [ZONE]]   (ZONE: 0 DMA, 1 DMA32, 2 NORMAL)

use std::process::ExitCode;

use minimm_uapi::{checksum, debugfs, fill_pattern, page_size, sys, Device};

const ZONES: [&str; 3] = ["DMA", "DMA32", "Normal"];

fn buddyinfo_line(zone: u32) -> String {
    debugfs("buddyinfo")
        .ok()
        .and_then(|t| t.lines().nth(zone as usize).map(str::to_string))
        .unwrap_or_default()
}

fn run(order: u32, zone: u32) -> std::io::Result<()> {
    let dev = Device::open()?;
    println!("buddyinfo before:  {}", buddyinfo_line(zone));
    let a = dev.alloc(order, zone, 0)?;
    let z = a.zone_out;
    println!(
        "allocated order {order} ({} KiB) from zone {} as handle {} (mmap offset {:#x})",
        (page_size() << order) >> 10,
        ZONES.get(z as usize).unwrap_or(&"?"),
        a.handle,
        a.mmap_offset
    );
    println!("buddyinfo after:   {}", buddyinfo_line(z));

    let mut map = dev.map(a.mmap_offset, page_size() << order)?;
    println!(
        "mapped; first bytes are zero: {}",
        map.bytes().iter().take(64).all(|&b| b == 0)
    );
    fill_pattern(2026, map.bytes_mut());
    let ours = checksum(map.bytes());
    let kernels = dev.checksum(a.handle)?;
    println!(
        "wrote a pattern: checksum here {ours:#018x}, in the kernel {kernels:#018x}: {}",
        if ours == kernels { "same" } else { "DIFFERENT" }
    );
    drop(map);

    dev.free(a.handle)?;
    // Order-0 pages go to a per-CPU list first; drain it so the merge shows.
    let _ = std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1");
    println!("freed; buddyinfo:  {}", buddyinfo_line(z));
    let s = dev.zone_stats(z)?;
    println!(
        "zone {}: {} of {} pages free, watermarks min {} low {} high {}, {} allocations, {} frees",
        ZONES.get(z as usize).unwrap_or(&"?"),
        s.free_pages,
        s.managed_pages,
        s.wmark_min,
        s.wmark_low,
        s.wmark_high,
        s.pgalloc,
        s.pgfree
    );
    if ours != kernels {
        return Err(std::io::Error::other("checksums differ"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let order = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let zone = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(sys::MINIMM_ZONE_DMA32);
    match run(order, zone) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimm-buddy: {e}");
            ExitCode::FAILURE
        }
    }
}
