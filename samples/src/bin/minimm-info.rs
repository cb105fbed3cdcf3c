// SPDX-License-Identifier: GPL-2.0

//! minimm-info: what the loaded minimm module is and offers.
//!
//! The smallest use of `/dev/minimm`: open it, ask `MINIMM_IOC_GET_INFO`, print the answer,
//! and show the module's debugfs `info` file next to it.

use std::process::ExitCode;

use minimm_uapi::{debugfs, sys, Device};

fn main() -> ExitCode {
    let dev = match Device::open() {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "minimm-info: cannot open /dev/minimm: {e} (is minimm.ko loaded? are you root?)"
            );
            return ExitCode::FAILURE;
        }
    };
    let info = match dev.info() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("minimm-info: MINIMM_IOC_GET_INFO: {e}");
            return ExitCode::FAILURE;
        }
    };
    let feats: Vec<&str> = [
        (sys::MINIMM_FEAT_BUDDY, "buddy"),
        (sys::MINIMM_FEAT_MMAP, "mmap"),
        (sys::MINIMM_FEAT_SLAB, "slab"),
        (sys::MINIMM_FEAT_VMALLOC, "vmalloc"),
        (sys::MINIMM_FEAT_RECLAIM, "reclaim"),
    ]
    .iter()
    .filter(|(bit, _)| info.features & *bit != 0)
    .map(|(_, name)| *name)
    .collect();
    println!("minimm ABI version {}", info.abi_version);
    println!("  page size   {} bytes", info.page_size);
    println!(
        "  max order   {} (blocks up to {} KiB)",
        info.max_order,
        (info.page_size as u64 >> 10) << info.max_order
    );
    println!("  zones       {}", info.nr_zones);
    println!(
        "  features    {}",
        if feats.is_empty() {
            "none yet".to_string()
        } else {
            feats.join(" ")
        }
    );
    match debugfs("info") {
        Ok(text) => {
            println!("debugfs minimm/info:");
            for line in text.lines() {
                println!("  {line}");
            }
        }
        Err(e) => println!("debugfs minimm/info: {e} (is debugfs mounted?)"),
    }
    ExitCode::SUCCESS
}
