// SPDX-License-Identifier: GPL-2.0

//! minimm-cache: a cache of computed results in discardable buffers.
//!
//! A program that computes expensive results (here: a page of a seeded pattern per key, whose
//! checksum stands for "the result") keeps each in a discardable minimm block. While a result
//! is in use the block is pinned; when the program goes idle it unpins every block, telling
//! minimm the contents may be thrown away under memory pressure (as Android apps do with ashmem,
//! or a browser with `MADV_FREE`d caches). When a result is wanted again, PIN says whether it
//! survived: a hit, or a purge, and then the result is recomputed.
//!
//! The run: fill KEYS results (default 32), then ROUNDS rounds (default 4) of "idle" (unpin
//! all, read the first half once more, then memory pressure: a write to debugfs `reclaim` of
//! PRESSURE pages, default half the cache, as the reclaim thread would apply under a real
//! shortage; the cheap sources, per-CPU lists and empty slabs, give first, then the clock
//! purges cold results before warm ones) and "use" (pin and read every result, recompute the
//! purged ones). Prints hits, purges and recomputes per round and checks every result.
//!
//! Usage: minimm-cache [KEYS [ROUNDS [PRESSURE]]]

use std::process::ExitCode;

use minimm_uapi::{checksum, fill_pattern, page_size, sys, Device, Mapping};

/// One cached result: its block, its mapping and the checksum the computation gives.
struct Entry {
    handle: u64,
    map: Mapping,
    sum: u64,
}

/// The "expensive" computation: a page of the pattern of `key`.
fn compute(key: u64, out: &mut [u8]) {
    fill_pattern(0xC0FFEE ^ key, out);
}

fn arg(n: usize, default: u64) -> Result<u64, String> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(a) => a.parse().map_err(|_| format!("not a number: {a}")),
    }
}

fn run() -> Result<(), String> {
    let keys = arg(1, 32)?;
    let rounds = arg(2, 4)?;
    let pressure = arg(3, keys / 2)?.max(1);
    let e = |what: &str| {
        let what = what.to_string();
        move |err: std::io::Error| format!("{what}: {err}")
    };
    let dev = Device::open().map_err(e("open /dev/minimm"))?;
    let info = dev.info().map_err(e("GET_INFO"))?;
    if info.features & sys::MINIMM_FEAT_RECLAIM == 0 {
        return Err("this minimm has no MINIMM_FEAT_RECLAIM (discardable blocks)".into());
    }
    let page = page_size();
    let mut cache = Vec::new();
    for key in 0..keys {
        let a = dev
            .alloc(0, sys::MINIMM_ZONE_NORMAL, sys::MINIMM_ALLOC_DISCARDABLE)
            .map_err(e("ALLOC"))?;
        let mut map = dev.map(a.mmap_offset, page).map_err(e("mmap"))?;
        compute(key, map.bytes_mut());
        let sum = checksum(map.bytes());
        cache.push(Entry {
            handle: a.handle,
            map,
            sum,
        });
    }
    println!(
        "minimm-cache: {keys} results of one page each, {rounds} rounds, pressure {pressure} pages"
    );
    let (mut hits, mut purges) = (0u64, 0u64);
    for round in 1..=rounds {
        // Idle: everything may go. The first half stays warm (read once more after the
        // unpin), so the clock keeps it over the cold half.
        for c in &cache {
            dev.unpin(c.handle).map_err(e("UNPIN"))?;
        }
        for c in cache.iter().take(cache.len() / 2) {
            // A read through the mapping: the access the clock sees (a purged block would
            // SIGBUS here, but nothing reclaims between the unpin and this read).
            // SAFETY: reading the first byte of a live mapping.
            let _ = unsafe { core::ptr::read_volatile(c.map.bytes().as_ptr()) };
        }
        // Pressure, as the reclaim thread would apply it in a real shortage; the per-CPU
        // lists drained first, so that the pages come from the cache.
        std::fs::write("/sys/kernel/debug/minimm/drain_pcp", "1")
            .map_err(|err| format!("debugfs drain_pcp: {err}"))?;
        match std::fs::write("/sys/kernel/debug/minimm/reclaim", pressure.to_string()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => {}
            Err(err) => return Err(format!("debugfs reclaim: {err}")),
        }
        // Use: every result again.
        let (mut h, mut p) = (0u64, 0u64);
        for (key, c) in cache.iter_mut().enumerate() {
            if dev.pin(c.handle).map_err(e("PIN"))? {
                // Purged: new zeroed pages; recompute.
                if c.map.bytes().iter().any(|&b| b != 0) {
                    return Err(format!("result {key}: a purged block's pages are not zero"));
                }
                compute(key as u64, c.map.bytes_mut());
                p += 1;
            } else {
                h += 1;
            }
            if checksum(c.map.bytes()) != c.sum {
                return Err(format!("result {key}: wrong bytes after PIN"));
            }
        }
        println!("round {round}: {h} hits, {p} purged and recomputed");
        hits += h;
        purges += p;
    }
    println!("total: {hits} hits, {purges} purges, {purges} recomputes");
    for c in cache {
        drop(c.map);
        dev.free(c.handle).map_err(e("FREE"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("minimm-cache: {err}");
            ExitCode::FAILURE
        }
    }
}
