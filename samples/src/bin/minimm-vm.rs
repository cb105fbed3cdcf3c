// SPDX-License-Identifier: GPL-2.0

//! minimm-vm: a vmalloc-like area from user space, and what it costs.
//!
//! Creates an area of MIB MiB (default 64) from the NORMAL zone, shows how scattered its
//! pages are (pages per zone, physically contiguous runs, with and without large blocks
//! first), maps it, writes a pattern through the mapping and has the kernel checksum it
//! through its own contiguous mapping. Then times, over 5 rounds (medians), creating the
//! area, mapping it and touching every page, unmapping and freeing it, against an anonymous
//! `mmap` with `MAP_POPULATE` of the same size whose pages are touched the same way, and
//! prints the ratio as a benchmark row: `vm_mmap<MIB>m iterations minimm_ns host_ns ratio`.
//!
//! Usage: minimm-vm [MIB]   (at most the file's quota: 64 MiB by default)

use std::{process::ExitCode, time::Instant};

use minimm_uapi::{checksum, fill_pattern, page_size, sys, Device};

const ROUNDS: usize = 5;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Writes one byte in every page of `bytes`.
fn touch(bytes: &mut [u8], page: usize) {
    for i in (0..bytes.len()).step_by(page) {
        // SAFETY: `i` is inside `bytes`; a volatile write so the touch is not optimised out.
        unsafe { core::ptr::write_volatile(bytes.as_mut_ptr().add(i), 1) };
    }
}

/// One minimm round: VM_CREATE, mmap, touch every page, munmap, VM_FREE; ns.
fn minimm_round(dev: &Device, len: usize, page: usize) -> std::io::Result<u64> {
    let t = Instant::now();
    let a = dev.vm_create(len as u64, sys::MINIMM_ZONE_NORMAL, 0)?;
    let mut m = dev.map(a.mmap_offset, len)?;
    touch(m.bytes_mut(), page);
    drop(m);
    dev.vm_free(a.handle)?;
    Ok(t.elapsed().as_nanos() as u64)
}

/// One host round: anonymous mmap with MAP_POPULATE, touch every page, munmap; ns.
fn host_round(len: usize, page: usize) -> std::io::Result<u64> {
    let t = Instant::now();
    // SAFETY: a new private anonymous mapping where the kernel chooses.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `p` maps `len` writable bytes until the munmap below.
    touch(
        unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) },
        page,
    );
    // SAFETY: unmapping exactly what was mapped.
    unsafe { libc::munmap(p, len) };
    Ok(t.elapsed().as_nanos() as u64)
}

fn run(mib: usize) -> std::io::Result<()> {
    let dev = Device::open()?;
    let page = page_size();
    let len = mib << 20;
    for (what, flags) in [
        ("order-0 pages", 0),
        ("large blocks first", sys::MINIMM_VM_LARGE),
    ] {
        let a = dev.vm_create(len as u64, sys::MINIMM_ZONE_NORMAL, flags)?;
        let i = dev.vm_info(a.handle)?;
        println!(
            "{mib} MiB area ({what}): {} pages, DMA {} DMA32 {} Normal {}, {} physically contiguous runs",
            i.pages, i.zone_pages[0], i.zone_pages[1], i.zone_pages[2], i.runs
        );
        if flags == 0 {
            let mut m = dev.map(a.mmap_offset, len)?;
            fill_pattern(7, m.bytes_mut());
            let same = dev.checksum(a.handle)? == checksum(m.bytes());
            println!(
                "written through the user mapping, checksummed through the kernel's: {}",
                if same { "same bytes" } else { "DIFFERENT" }
            );
        }
        dev.vm_free(a.handle)?;
    }
    // Warm both paths, then time them in alternating order.
    minimm_round(&dev, len, page)?;
    host_round(len, page)?;
    let (mut m, mut h) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            m.push(minimm_round(&dev, len, page)?);
            h.push(host_round(len, page)?);
        } else {
            h.push(host_round(len, page)?);
            m.push(minimm_round(&dev, len, page)?);
        }
    }
    let (mm, hm) = (median(m), median(h));
    println!("case   iterations minimm_ns host_ns ratio  ({ROUNDS} rounds, medians)");
    println!(
        "vm_mmap{mib}m {:10} {mm:9} {hm:7} {:.2}",
        1,
        mm as f64 / hm.max(1) as f64
    );
    Ok(())
}

fn main() -> ExitCode {
    let mib = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64usize);
    match run(mib) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimm-vm: {e}");
            ExitCode::FAILURE
        }
    }
}
