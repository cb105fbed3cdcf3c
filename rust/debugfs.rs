// SPDX-License-Identifier: GPL-2.0

//! The files under debugfs `minimm/`.
//!
//! Every part of minimm (buddy, slab, vmalloc, reclaim) adds its files here, to one shared
//! directory. Each file holds a reference to [`Shared`]; reading it formats a snapshot.
//! Where Linux has a /proc file for the same state, the format is Linux's, so that existing
//! parsers work.
//!
//! - `info`: module version, ABI version and load parameters, one `key: value` a line.

use core::fmt;

use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    sync::Arc,
};

use crate::{Shared, VERSION};

/// The debugfs directory and its files. Dropping it removes them.
#[pin_data]
pub(crate) struct Entries {
    #[pin]
    info: File<Arc<Shared>>,
    dir: Dir,
}

impl Entries {
    /// Creates `minimm/` and its files.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(shared: Arc<Shared>) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"minimm");
        try_pin_init!(Self {
            info <- dir.read_callback_file(c"info", shared, &info),
            dir,
        })
    }
}

/// `minimm/info`.
fn info(shared: &Arc<Shared>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let info = shared.info();
    let p = &shared.params;
    writeln!(f, "version: {VERSION}")?;
    writeln!(f, "abi_version: {}", info.abi_version)?;
    writeln!(f, "features: {:#x}", info.features)?;
    writeln!(f, "page_size: {}", info.page_size)?;
    writeln!(f, "max_order: {}", info.max_order)?;
    writeln!(f, "nr_zones: {}", info.nr_zones)?;
    for (name, pages) in ["dma_pages", "dma32_pages", "normal_pages"].iter().zip(p.zone_pages) {
        writeln!(f, "{name}: {pages}")?;
    }
    Ok(())
}
