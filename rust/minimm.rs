// SPDX-License-Identifier: GPL-2.0

//! minimm: Linux's memory manager in miniature.
//!
//! The module borrows pages from the host kernel and manages them itself, so that its
//! mechanisms (zones, buddy allocator, slab caches, vmalloc-like mapping, reclaim) can be
//! driven from user space through `/dev/minimm` and watched through debugfs `minimm/`.
//!
//! # Structure
//!
//! One file per concept. Pure algorithms live in files with no `kernel::` imports so that the
//! host crate in `rust/host` compiles and tests the very same files with `cargo test`:
//!
//! - [`uapi`]: the module's mirror of `include/uapi/linux/minimm.h` (pure).
//! - [`device`]: the misc device, per-open-file state and the ioctl dispatcher.
//! - [`debugfs`]: the files under debugfs `minimm/`.
//!
//! # Lock order
//!
//! No lock is taken yet outside the kernel's own (misc device registration, debugfs).
//! Parts that add locks list them here, outermost first, with what each protects.
//!
//! # Teardown
//!
//! [`Minimm`] owns everything; its fields drop in declaration order: the misc device first (no
//! new opens; an open file holds a module reference, so unload cannot race with one), then the
//! debugfs files, then the shared state.

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
};

mod debugfs;
mod device;
mod uapi;

/// The module's version, shown in debugfs `minimm/info`.
const VERSION: &str = "0.1.0";

module! {
    type: Minimm,
    name: "minimm",
    authors: ["minimm developers"],
    description: "Linux's memory manager in miniature",
    license: "GPL",
    params: {
        dma_pages: usize {
            default: 512,
            description: "Pages to borrow for the DMA zone (below 16 MiB)",
        },
        dma32_pages: usize {
            default: 16384,
            description: "Pages to borrow for the DMA32 zone (below 4 GiB)",
        },
        normal_pages: usize {
            default: 16384,
            description: "Pages to borrow for the NORMAL zone (above 4 GiB)",
        },
    },
}

/// Load-time parameters, read once at init.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    /// Pages requested per zone, indexed by `uapi::ZONE_*`.
    pub(crate) zone_pages: [usize; uapi::NR_ZONES as usize],
}

impl Params {
    fn from_module() -> Self {
        Self {
            zone_pages: [
                module_parameters::dma_pages.value(),
                module_parameters::dma32_pages.value(),
                module_parameters::normal_pages.value(),
            ],
        }
    }
}

/// State shared by every open file and every debugfs file.
pub(crate) struct Shared {
    pub(crate) params: Params,
}

impl Shared {
    /// The answer to `MINIMM_IOC_GET_INFO`, with `size` left for the caller to set.
    pub(crate) fn info(&self) -> uapi::Info {
        uapi::Info {
            size: 0,
            abi_version: uapi::ABI_VERSION,
            features: 0,
            // PAGE_SIZE is 4096 on x86_64: it fits.
            page_size: u32::try_from(kernel::page::PAGE_SIZE).unwrap_or(u32::MAX),
            max_order: uapi::MAX_ORDER,
            nr_zones: uapi::NR_ZONES,
            pad: 0,
        }
    }
}

/// The module: owns the device, the debugfs entries and the shared state.
///
/// # Invariants
///
/// `misc` is only ever embedded in a `Minimm`, which [`device::Client::open`] relies on to
/// reach `shared` from the registration.
#[pin_data(PinnedDrop)]
pub(crate) struct Minimm {
    #[pin]
    misc: MiscDeviceRegistration<device::Client>,
    #[pin]
    debugfs: debugfs::Entries,
    shared: Arc<Shared>,
}

impl Minimm {
    /// The shared state of the module that owns `misc`.
    pub(crate) fn shared_of(misc: &MiscDeviceRegistration<device::Client>) -> Arc<Shared> {
        let misc = core::ptr::from_ref(misc);
        // SAFETY: By the type invariant, every `MiscDeviceRegistration<Client>` is the `misc`
        // field of a live `Minimm`, so the containing struct is valid for as long as `misc` is.
        let this = unsafe { &*kernel::container_of!(misc, Minimm, misc) };
        this.shared.clone()
    }
}

impl kernel::InPlaceModule for Minimm {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            let params = Params::from_module();
            let shared = Arc::new(Shared { params }, GFP_KERNEL)?;
            pr_info!(
                "minimm {VERSION}: abi {}, zone pages requested {:?}\n",
                uapi::ABI_VERSION,
                params.zone_pages
            );
            Ok(try_pin_init!(Self {
                debugfs <- debugfs::Entries::new(shared.clone()),
                // INVARIANT: the registration is created in place inside this `Minimm`.
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"minimm" }),
                shared,
            }))
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Minimm {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("minimm unloaded\n");
    }
}
