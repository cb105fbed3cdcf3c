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
//! - [`buddy`] (pure): the buddy allocator over a compact page table.
//! - [`zone`] (pure): zone classification, watermarks, lowmem reserve, fragmentation indices.
//! - [`pcp`] (pure): per-CPU page lists.
//! - [`pattern`] (pure): data patterns and checksums for user/kernel round trips.
//! - [`uapi`] (pure): the module's mirror of `include/uapi/linux/minimm.h`.
//! - `fail.rs` (pure): fault injection's rules (Linux's `should_fail_ex` and minimm's `nth`)
//!   and the table of failure points; [`fail`] (`fail_kernel.rs`) is its kernel side, the
//!   module's one table and `should_fail(Point)`, which every failure point calls.
//! - [`host_pages`]: pages borrowed from the host kernel (the unsafe part).
//! - [`pool`]: the pool: borrowing at load, the walk down the zones, the held-block reaper
//!   (`pool/mod.rs`); one zone's locked state, per-CPU lists, held list and counters
//!   (`pool/zone.rs`); blocks handed out (`pool/block.rs`); the per-CPU lists' thin lock
//!   over C's spinlock calls (`pool/pcp_lock.rs`, an unsafe part).
//! - [`slab`] (pure): slab geometry (order, colouring, descriptor placement), a slab's free
//!   list, a cache's full/partial/empty lists, size classes, debugging bytes, slabinfo lines.
//! - [`slab_cache`]: a cache's kernel side (slabs from the pool, per-CPU object arrays, node
//!   lock, debugging reports) and the module's list of caches; [`slab_mem`]: the views of slab
//!   memory (the unsafe part); [`kmalloc`]: the generic caches, `kmalloc` and friends, and the
//!   `Allocator` over them; [`record`]: the module's own records (slab object handles, area
//!   descriptors) as reference-counted values in dedicated caches (an unsafe part).
//! - [`vm_area`] (pure): an area's size, where an address falls in it (or its guard page),
//!   the scatter of its pages, the large-blocks-first plan; [`vmalloc`]: the vmalloc-like
//!   mapper (pages from the pool, `vmap`, area records, the address-ordered tree).
//! - [`lru`] (pure): page frame reclaim's lists: a zone's inactive and active lists linked
//!   through a table of one link per page, the clock (second chance) that scans them, the
//!   aging ratio, the priority loop, the reclaim thread's sleep decision and direct reclaim's
//!   retry bound; [`reclaim`]: reclaim's kernel side: discardable blocks and areas (`Unit`:
//!   pages, pin state, an area's kernel mapping while pinned, mappings to zap), each zone's
//!   lists of them (a block one unit, an area's pages one each), reclaim from the per-CPU
//!   lists, the slab caches, held blocks and the clock's choice of unpinned units (debugfs
//!   `reclaim`, direct reclaim, the thread's passes); [`reclaimd`]: the reclaim thread.
//! - [`device`]: the misc device: open files, the ioctl dispatcher and struct copying
//!   (`device/mod.rs`); buffers, their ioctls and mmap with faults (`device/blocks.rs`); the
//!   module-wide mmap offset space and buffer owners (`device/registry.rs`); a file's slab
//!   caches and objects and their ioctls (`device/slab.rs`); a file's vmalloc-like areas, which
//!   are buffers too, and their ioctls (`device/vmalloc.rs`); a file's discardable buffers'
//!   `UNPIN` and `PIN`, and the watermark events (`device/discard.rs`, `device/poll.rs`).
//! - [`debugfs`]: the files under debugfs `minimm/`.
//! - [`debugfs_file`]: debugfs directories and files that pin the module while open (the
//!   unsafe part of debugfs).
//! - [`bench`]: the in-kernel benchmark against the host's allocator.
//!
//! # Lock order
//!
//! Outermost first; a lock may be taken while holding only locks above it:
//!
//! 1. `device::blocks::Buffer::data` (mutex, one per buffer): the kernel's own accesses to a
//!    buffer's contents; above `device::Client::table` (mutex): one open file's buffer table
//!    (only a resize takes the table under `data`, to swap the buffer under its handle); or
//!    `device::registry::Registry::inner` (mutex): the module's offset space and owner
//!    records. Never two `data` locks at once, never the registry's with another of these. The kernel's mmap lock may be held
//!    above the registry's (a buffer dropped in `vma_close`), and a seq_file's lock (reading
//!    `page_owner`).
//!
//!    `reclaim::Unit::state` (mutex, one per discardable block or area, one class): a
//!    discardable buffer's pages, pin state and (an area's, while pinned) kernel mapping; it
//!    makes and drops that mapping (`vmap`, a record from `minimm_vm_area`, the tree lock
//!    below) under itself; taken alone (`page_owner` copies the registry's records out
//!    first), under the block's `Buffer::data` (`BLOCK_DATA`), or by the fault handler and
//!    `vma_open`/`vma_close` under the mmap lock. Above
//!    `reclaim::Reclaim::zones[z]` (mutex, one class): a zone's inactive and active lists and
//!    their units, never two zones' at once. A scan takes the lists alone and then each unit's
//!    state in turn, never two units' states at once. `unmap_mapping_range` runs under a
//!    unit's state (the file's `i_mmap` lock and the page table locks below it, as the kernel
//!    orders them after the mmap lock). A unit frees its block (the pool's locks, 4 and 5)
//!    after dropping both.
//!
//!    `vmalloc::Vmalloc::tree` (mutex): the areas by address; taken alone (an area's pages,
//!    mapping and record are made and given back outside it), or under a discardable area's
//!    unit state (above), which maps and unmaps the area at `PIN` and `UNPIN`. Nothing takes
//!    a unit's state under it (`vmallocinfo` and `page_owner` leave discardable areas to the
//!    registry's records).
//!
//!    `reclaim::Reclaim::events` (mutex): the watermark events; taken with no other minimm
//!    lock held, and above a zone's lock (5), which it takes to read the zone's marks whole.
//!    `reclaimd::Kswapd::state` (mutex, with its condition variable): the reclaim thread's
//!    wake, stop and failure state; taken alone. `reclaim::Reclaim::last` (mutex): the last
//!    debugfs `reclaim` result; taken alone.
//!
//!    `device::Client::slab` (mutex): one open file's slab table, held across a slab command
//!    but its user copies; above `slab_cache::Caches::inner` (mutex): the module's list of
//!    caches. Never with one of the locks above.
//! 2. `slab_cache::SlabCache::cpu[cpu]` (a `PcpLock`, one lockdep class for every cache): a
//!    CPU's object array. Only tried outside process context, as the per-CPU page lists.
//! 3. `slab_cache::SlabCache::node` (irq-safe spinlock, one class for every cache): a cache's
//!    slabs. Never two caches' at once. A record (`record.rs`) is allocated and freed through
//!    its cache with none of minimm's locks held, under the file's slab table (1) or under a
//!    discardable area's unit state (1: its mapping's record, at `PIN` and `UNPIN`), and freed
//!    under the mmap lock when an area's last mapping goes. The pool's locks below may be taken under 2 (a flush
//!    giving an emptied slab back), not under 3.
//! 4. `pool::Zone::pcp[cpu]` (spinlock, `pool/pcp_lock.rs`, one per CPU and zone, one lockdep
//!    class per zone): a CPU's per-CPU page lists. Never two at once. Outside process context
//!    only ever *tried* (Linux's `pcp_spin_trylock`): a busy list sends the request to the zone.
//! 5. `pool::Zone::inner` (irq-safe spinlock, one per zone and lockdep class per zone): the
//!    zone's buddy allocator, held list and watermarks. Never two at once.
//!
//! A block may be freed from softirq context (an RCU callback, a timer) as into Linux's
//! allocator (not from a hard interrupt handler: the locks are `spinlock_t`, which lockdep's
//! raw-lock nesting check forbids there, as for the host's zone lock): the zone lock disables
//! interrupts, and the per-CPU lock need not, since an interrupt that finds it taken (by the
//! task it interrupted) frees to the zone instead of waiting. No allocation and no user copy
//! happens under a spinlock.
//!
//! Fault injection takes no lock: its knobs are atomics, and `fail::should_fail` may run under
//! any of the locks above (`pcp_refill` runs under a per-CPU list lock) and only logs
//! (printk, and `dump_stack` for `verbose` 2) when it injects.
//!
//! The kernel's own locks around our callbacks (the mmap lock in `mmap` and in the VMA
//! `open`/`close` operations, debugfs file locks) are taken before ours.
//!
//! # Teardown
//!
//! [`Minimm`] owns everything; its fields drop in declaration order: the misc device first (no
//! new opens; an open file holds a module reference, so unload cannot race with one, and a
//! user mapping holds its file), then the debugfs files (an open debugfs file holds a module
//! reference too; removal waits for reads and writes in flight), then the reclaim thread is
//! stopped (`kthread_stop` waits until it has returned, mid-pass or asleep), then the pool's reaper is
//! stopped (a queued one holds a reference to the pool), then `kmalloc::Minimm`'s caches are
//! unpublished, then the shared state: the caches (their slabs back to the pool; every file's
//! are gone with its file, and so are its records in `minimm_slab_object` and
//! `minimm_vm_area`, an area's last one with its last mapping), reclaim's lists (empty by then:
//! a discardable block leaves them when its buffer goes), then the pool, which gives every
//! borrowed page
//! back to the host. `report` comes last and logs the count; a page minimm cannot account for
//! is a kernel warning.

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

mod bench;
mod buddy;
mod debugfs;
mod debugfs_file;
mod device;
// The kernel side of fault injection, around the pure rules of `fail.rs` (its submodule):
// one module `fail`, so that failure points read `crate::fail::should_fail(Point::X)`.
#[path = "fail_kernel.rs"]
mod fail;
mod host_pages;
mod kmalloc;
mod lru;
mod pattern;
mod pcp;
mod pool;
mod reclaim;
mod reclaimd;
mod record;
mod slab;
mod slab_cache;
mod slab_mem;
// The mirror restates the whole header; not every constant has a use in the module.
#[allow(dead_code)]
mod uapi;
mod vm_area;
mod vmalloc;
mod zone;

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
        file_quota_pages: usize {
            default: 16384,
            description: "Pages one open file may hold (EDQUOT beyond)",
        },
        min_free_kbytes: usize {
            default: 0,
            description: "Pool-wide min_free_kbytes for the watermarks (0: Linux's sqrt rule)",
        },
        watermark_scale_factor: usize {
            default: 10,
            description: "Distance between watermarks, in 1/10000 of a zone (Linux's default 10)",
        },
        fail_nth_host_borrow: u32 {
            default: 0,
            description: "Fail the Nth borrow from the host at load (fault injection; 0: none)",
        },
        slab_debug: u32 {
            default: 0,
            description: "Slab debugging for every cache, as slab_debug=FZPU: MINIMM_SLAB_* bits RED_ZONE 0x8, POISON 0x10, CONSISTENCY_CHECKS 0x20, STORE_USER 0x40",
        },
    },
}

/// Load-time parameters, read once at init.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    /// Pages requested per zone, indexed by `uapi::ZONE_*`.
    pub(crate) zone_pages: [usize; uapi::NR_ZONES as usize],
    pub(crate) file_quota_pages: usize,
    pub(crate) min_free_kbytes: usize,
    pub(crate) watermark_scale_factor: usize,
    /// debugfs `fail/host_borrow/nth` for the borrowing at load (0: nothing injected).
    pub(crate) fail_nth_host_borrow: u32,
    /// Debugging flags (`MINIMM_SLAB_*`) every cache gets.
    pub(crate) slab_debug: u32,
}

impl Params {
    /// The parameters, checked: values that could only make every allocation fail, or that
    /// Linux itself refuses, fail the load with a message that names them.
    fn from_module() -> Result<Self> {
        let p = Self {
            zone_pages: [
                module_parameters::dma_pages.value(),
                module_parameters::dma32_pages.value(),
                module_parameters::normal_pages.value(),
            ],
            file_quota_pages: module_parameters::file_quota_pages.value(),
            min_free_kbytes: module_parameters::min_free_kbytes.value(),
            watermark_scale_factor: module_parameters::watermark_scale_factor.value(),
            fail_nth_host_borrow: module_parameters::fail_nth_host_borrow.value(),
            slab_debug: module_parameters::slab_debug.value(),
        };
        if p.slab_debug & !slab_cache::DEBUG_FLAGS != 0 {
            pr_err!(
                "slab_debug={:#x} has bits other than the debugging flags {:#x}\n",
                p.slab_debug,
                slab_cache::DEBUG_FLAGS
            );
            return Err(EINVAL);
        }
        // Linux's sysctl range for vm.watermark_scale_factor.
        if !(1..=3000).contains(&p.watermark_scale_factor) {
            pr_err!(
                "watermark_scale_factor={} is outside 1..3000\n",
                p.watermark_scale_factor
            );
            return Err(EINVAL);
        }
        if p.file_quota_pages == 0 {
            pr_err!("file_quota_pages=0 would refuse every allocation\n");
            return Err(EINVAL);
        }
        if p.zone_pages.iter().all(|&n| n == 0) {
            pr_err!("dma_pages, dma32_pages and normal_pages are all 0: nothing to manage\n");
            return Err(EINVAL);
        }
        // `min_free_kbytes` is checked against the zones once they are borrowed (`Pool::new`).
        Ok(p)
    }
}

/// Feature bits this build provides.
const FEATURES: u64 = uapi::feat::BUDDY
    | uapi::feat::MMAP
    | uapi::feat::SLAB
    | uapi::feat::VMALLOC
    | uapi::feat::RECLAIM;

/// State shared by every open file and every debugfs file.
pub(crate) struct Shared {
    pub(crate) params: Params,
    pub(crate) pool: Arc<pool::Pool>,
    /// Every buffer's mmap offsets and owner (debugfs `page_owner`).
    pub(crate) registry: Arc<device::registry::Registry>,
    /// The next open file's id (1, 2, 3...), as page_owner names the file owning a buffer.
    pub(crate) next_file_id: Atomic<u32>,
    /// Every slab cache, by name (slabinfo).
    pub(crate) caches: Arc<slab_cache::Caches>,
    /// The generic caches (`kmalloc`).
    pub(crate) kmalloc: kmalloc::Kmalloc,
    /// The records behind slab object handles (`minimm_slab_object`).
    pub(crate) slab_objects: record::RecordCache<device::slab::Object>,
    /// The vmalloc-like areas (`vmallocinfo`).
    pub(crate) vmalloc: Arc<vmalloc::Vmalloc>,
    /// Reclaim's lists and counters (discardable blocks).
    pub(crate) reclaim: Arc<reclaim::Reclaim>,
}

impl Shared {
    /// The state over `pool`: the registry, the slab caches (generic ones and records), the
    /// mapper and reclaim's lists.
    ///
    /// Context: process context, may sleep.
    pub(crate) fn new(params: Params, pool: Arc<pool::Pool>) -> Result<Arc<Self>> {
        let registry = Arc::pin_init(device::registry::Registry::new(), GFP_KERNEL)?;
        let caches = Arc::pin_init(slab_cache::Caches::new(params.slab_debug), GFP_KERNEL)?;
        let kmalloc = kmalloc::Kmalloc::new(&caches, &pool)?;
        let slab_objects = record::RecordCache::new(&caches, &pool, b"minimm_slab_object")?;
        let vmalloc = Arc::pin_init(vmalloc::Vmalloc::new(&caches, &pool)?, GFP_KERNEL)?;
        let reclaim = reclaim::Reclaim::new(&pool)?;
        Ok(Arc::new(
            Shared {
                params,
                pool,
                registry,
                next_file_id: Atomic::new(1),
                caches,
                kmalloc,
                slab_objects,
                vmalloc,
                reclaim,
            },
            GFP_KERNEL,
        )?)
    }

    /// The answer to `MINIMM_IOC_GET_INFO`, with `size` left for the caller to set.
    pub(crate) fn info(&self) -> uapi::Info {
        info_for(FEATURES)
    }
}

/// `MINIMM_IOC_GET_INFO`'s answer for a build with `features`.
pub(crate) fn info_for(features: u64) -> uapi::Info {
    uapi::Info {
        size: 0,
        abi_version: uapi::ABI_VERSION,
        features,
        // PAGE_SIZE is 4096 on x86_64: it fits.
        page_size: u32::try_from(kernel::page::PAGE_SIZE).unwrap_or(u32::MAX),
        max_order: uapi::MAX_ORDER,
        nr_zones: uapi::NR_ZONES,
        pad: 0,
    }
}

/// Logs, once everything else is gone, that every page borrowed over the module's life (by
/// the pool, and by the KUnit tests) went back to the host.
struct UnloadReport;

impl Drop for UnloadReport {
    fn drop(&mut self) {
        let borrowed = host_pages::BORROWED_PAGES.load(Relaxed);
        let returned = host_pages::RETURNED_PAGES.load(Relaxed);
        if kernel::warn_on!(returned != borrowed) {
            pr_err!("unloaded: borrowed {borrowed} pages, returned only {returned}\n");
        } else {
            pr_info!("unloaded: borrowed {borrowed} pages, returned {returned}\n");
        }
    }
}

/// The module: owns the device, the debugfs entries and the shared state.
///
/// # Invariants
///
/// `misc` is only ever embedded in a `Minimm`, which [`device::Client::open`] relies on to
/// reach `shared` from the registration.
#[pin_data]
pub(crate) struct Minimm {
    #[pin]
    misc: MiscDeviceRegistration<device::Client>,
    debugfs: debugfs::Entries,
    /// `minimm_reclaimd`, stopped before anything it uses goes.
    reclaimd: reclaimd::Reclaimd,
    reaper: ReaperStop,
    /// `kmalloc::Minimm`'s caches, cleared before `shared` goes.
    published: kmalloc::Published,
    shared: Arc<Shared>,
    report: UnloadReport,
}

/// Stops the pool's reaper before the last reference to the pool goes (see
/// [`pool::Pool::stop_reaper`]).
struct ReaperStop(Arc<pool::Pool>);

impl Drop for ReaperStop {
    fn drop(&mut self) {
        self.0.stop_reaper();
    }
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
            let params = Params::from_module()?;
            pr_info!(
                "minimm {VERSION}: abi {}, zone pages requested {:?}\n",
                uapi::ABI_VERSION,
                params.zone_pages
            );
            // Armed for the borrowing only: the KUnit suites run after `init` and borrow too.
            let armed = fail::arm_nth_while(fail::Point::HostBorrow, params.fail_nth_host_borrow);
            let pool = Arc::pin_init(
                pool::Pool::new(pool::Config {
                    zone_pages: params.zone_pages,
                    min_free_kbytes: params.min_free_kbytes,
                    watermark_scale_factor: params.watermark_scale_factor,
                }),
                GFP_KERNEL,
            );
            drop(armed);
            let shared = Shared::new(params, pool?)?;
            // SAFETY: `shared` (and so its `kmalloc`) outlives the guard, a field of `Minimm`
            // dropped before `shared`.
            let published = unsafe { kmalloc::publish(&shared.kmalloc) };
            Ok(try_pin_init!(Self {
                debugfs <- debugfs::Entries::new(shared.clone()),
                // INVARIANT: the registration is created in place inside this `Minimm`.
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"minimm" }),
                reclaimd: reclaimd::Reclaimd::start(&shared)?,
                reaper: ReaperStop(shared.pool.clone()),
                published,
                shared,
                // Last, so that it only exists (and reports) once the rest was set up.
                report: UnloadReport,
            })
            .pin_chain(|m| {
                // SAFETY: Once, here, before anything reads `POLL_FOPS` (opens check that it
                // is installed).
                unsafe { POLL_FOPS.install(&m.misc) };
                Ok(())
            }))
        })
    }
}

/// The device's operations with `poll` added (see `device/poll.rs`).
pub(crate) static POLL_FOPS: device::poll::PollFops = device::poll::PollFops::new();
