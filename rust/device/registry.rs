// SPDX-License-Identifier: GPL-2.0

//! The module-wide registry of buffers: their mmap offsets, and who allocated them.
//!
//! Every buffer gets a range of the device's mmap offset space (in pages) that is unique
//! module-wide and never reused, as DRM's vma offset manager hands out ranges of a device's
//! address space. A range names one buffer in every process that maps it, so that
//! `unmap_mapping_range` over it reaches exactly that buffer's mappings (reclaim will). A file
//! may still map only its own buffers: the offset is looked up in the file's own table.
//!
//! The registry also keeps, for every live buffer, who allocated it and when, for debugfs
//! `page_owner` and `page_owner_sort`, as Linux's page_owner records the allocating task and
//! time of every page block.
//!
//! # Locks
//!
//! `Registry::inner` (a mutex) is taken with no other minimm lock held (the kernel's mmap lock
//! may be held: a buffer dropped in `vma_close`). Nothing under it copies to or from user
//! space or allocates: the caller reserves a node before inserting, and debugfs copies the
//! records out before formatting them.

use core::fmt;

use kernel::{
    bindings, new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{Arc, Mutex},
    task::Task,
};

use crate::{reclaim::Unit, zone};

/// Offsets stay below this many pages, so that `offset << PAGE_SHIFT` is a valid, positive
/// `mmap` offset (and far beyond what a module's lifetime can use up).
const OFFSET_LIMIT: u64 = 1 << 40;

/// Who allocated a buffer, and what it is: one block of debugfs `page_owner`.
#[derive(Clone)]
pub(crate) struct OwnerRecord {
    /// The owning open file's id (1, 2, 3... in open order, module-wide).
    file: u32,
    /// The buffer's handle in that file.
    handle: u64,
    /// Block order, zone and first page frame.
    order: u32,
    zone: usize,
    pfn: u64,
    /// `MINIMM_ALLOC_*` flags of the request.
    flags: u32,
    /// The allocating task: thread id, process id and name, as page_owner prints them.
    pid: i32,
    tgid: i32,
    comm: [u8; 16],
    /// When: `ktime_get`, in nanoseconds since boot.
    ts_ns: i64,
    /// A discardable block's unit: its state, and its pages now (a purge takes them, a pin
    /// after one gives new ones).
    unit: Option<Arc<Unit>>,
}

/// The current task's name (`current->comm`), 16 bytes, NUL-padded.
///
/// Context: any (in an interrupt, the interrupted task's, as Linux's own records take it).
pub(crate) fn current_comm() -> [u8; 16] {
    let mut comm = [0u8; 16];
    let raw = Task::current_raw();
    for (i, c) in comm.iter_mut().enumerate() {
        // SAFETY: `raw` is the current task, alive while it runs this. `comm` is a 16-byte
        // array that another thread of the task may rename meanwhile (prctl): each byte is
        // read once, volatile, as `%s` of `current->comm` reads it, and may come out torn
        // but never out of bounds (`i < 16`).
        *c = unsafe { core::ptr::addr_of!((*raw).comm[i]).read_volatile() } as u8;
    }
    comm
}

impl OwnerRecord {
    /// A record of a block allocated now, by the current task.
    pub(crate) fn new_by_current(
        file: u32,
        handle: u64,
        order: u32,
        zone: usize,
        pfn: u64,
        flags: u32,
    ) -> Self {
        let task = kernel::current!();
        let comm = current_comm();
        Self {
            file,
            handle,
            order,
            zone,
            pfn,
            flags,
            pid: task.pid(),
            tgid: task.tgid(),
            comm,
            // SAFETY: `ktime_get` may be called in process context (this is one) once
            // timekeeping is up, which it is long before a module loads.
            ts_ns: unsafe { bindings::ktime_get() },
            unit: None,
        }
    }

    /// The record of a discardable block, `unit`.
    pub(crate) fn with_unit(self, unit: Arc<Unit>) -> Self {
        Self {
            unit: Some(unit),
            ..self
        }
    }

    /// The task name, up to its NUL.
    fn comm(&self) -> &[u8] {
        let end = self
            .comm
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.comm.len());
        self.comm.get(..end).unwrap_or(&[])
    }
}

/// Prints a task name byte by byte, non-ASCII and control bytes as `?`.
pub(crate) struct Comm<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Comm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in self.0 {
            let c = if c.is_ascii_graphic() || c == b' ' {
                c
            } else {
                b'?'
            };
            write!(f, "{}", c as char)?;
        }
        Ok(())
    }
}

struct Inner {
    /// The next free page of offset space.
    next: u64,
    /// Live buffers by their first offset.
    live: RBTree<u64, OwnerRecord>,
}

/// The module's buffers: offset space and owner records.
#[pin_data]
pub(crate) struct Registry {
    #[pin]
    inner: Mutex<Inner>,
}

impl Registry {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // Offset 0 stays unused, so that no buffer is mapped at file offset 0.
            inner <- new_mutex!(Inner { next: 1, live: RBTree::new() }, "minimm_registry"),
        })
    }

    /// Takes the next `pages` pages of offset space and returns the first.
    ///
    /// Errors: `ENOSPC` when the space is used up.
    pub(crate) fn take_range(&self, pages: u64) -> Result<u64> {
        let mut g = self.inner.lock();
        let first = g.next;
        let end = first.checked_add(pages).ok_or(ENOSPC)?;
        if end > OFFSET_LIMIT {
            return Err(ENOSPC);
        }
        g.next = end;
        Ok(first)
    }

    /// Records a live buffer; `node` holds its first offset and its record.
    pub(crate) fn insert(&self, node: RBTreeNode<u64, OwnerRecord>) {
        // Offsets are never handed out twice, so nothing is replaced.
        drop(self.inner.lock().live.insert(node));
    }

    /// Forgets the buffer at `pgoff`; nothing happens for one never recorded.
    pub(crate) fn remove(&self, pgoff: u64) {
        // The record is dropped outside the lock: a discardable block's holds a reference to
        // its unit, whose last one gives the pages back.
        let removed = self.inner.lock().live.remove_node(&pgoff);
        drop(removed);
    }

    /// The live buffers' records, copied out, so that formatting and sorting happen outside
    /// the lock and nothing is allocated under it (a buffer that arrives between sizing the
    /// copy and taking it is left for the next read).
    ///
    /// A `KVVec`: with the largest pools a copy runs to megabytes, which kmalloc would refuse
    /// (and warn about) above `MAX_PAGE_ORDER`.
    fn records(&self) -> Result<KVVec<(u64, OwnerRecord)>> {
        let n = self.inner.lock().live.iter().count();
        let mut out = KVVec::with_capacity(n, GFP_KERNEL)?;
        let g = self.inner.lock();
        for (&pgoff, r) in g.live.iter() {
            // A clone takes a reference to a unit, no memory.
            if out.push_within_capacity((pgoff, r.clone())).is_err() {
                break;
            }
        }
        Ok(out)
    }

    /// debugfs `page_owner`: one paragraph per live buffer, in the manner of Linux's
    /// `print_page_owner`.
    pub(crate) fn page_owner(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(records) = self.records() else {
            // A debugfs show cannot return an errno through `seq_print!`: say so in the file.
            return writeln!(f, "page_owner: out of memory copying the records");
        };
        for (pgoff, r) in records.iter() {
            if let Some(u) = r.unit.as_ref().filter(|u| u.is_area()) {
                write_area(f, r, u, *pgoff)?;
                continue;
            }
            // A discardable block: pinned or unpinned with its pages now, or purged (no
            // pages: no paragraph, as a page_owner lists pages).
            let (state, zone, pfn) = match &r.unit {
                None => ("", r.zone, r.pfn),
                Some(u) => match u.status() {
                    (_, None) => continue,
                    (true, Some((z, pfn))) => (", discardable pinned", z, pfn),
                    (false, Some((z, pfn))) => (", discardable unpinned", z, pfn),
                },
            };
            writeln!(
                f,
                "Block allocated via order {}, flags {:#x}, pid {}, tgid {} ({}), ts {} ns{}",
                r.order,
                r.flags,
                r.pid,
                r.tgid,
                Comm(r.comm()),
                r.ts_ns,
                state
            )?;
            let last = pfn + (1u64 << r.order) - 1;
            writeln!(
                f,
                "PFN {:#x}-{:#x} zone {} file {} handle {} offset {:#x}",
                pfn,
                last,
                zone::NAMES.get(zone).copied().unwrap_or("?"),
                r.file,
                r.handle,
                pgoff << kernel::page::PAGE_SHIFT
            )?;
            writeln!(f)?;
        }
        Ok(())
    }

    /// debugfs `page_owner_sort`: the live buffers grouped by task name, order and zone, the
    /// most pages first, as Linux's tools/mm/page_owner_sort summarises page_owner:
    /// `<blocks> blocks, <pages> pages: comm <name> order <o> zone <zone>`.
    pub(crate) fn page_owner_sort(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(mut records) = self.records() else {
            return writeln!(f, "page_owner_sort: out of memory copying the records");
        };
        let key = |r: &OwnerRecord| (r.comm, r.order, r.zone);
        records.sort_unstable_by(|a, b| key(&a.1).cmp(&key(&b.1)));
        // (comm, order, zone, blocks, pages), one per run of equal keys.
        let mut groups: KVec<([u8; 16], u32, usize, u64, u64)> = KVec::new();
        // Blocks only, as the areas' paragraphs (made by the mapper) are not summarised.
        for (_, r) in records
            .iter()
            .filter(|(_, r)| r.unit.as_ref().is_none_or(|u| !u.is_area()))
        {
            let pages = 1u64 << r.order;
            match groups.last_mut() {
                Some(g) if (g.0, g.1, g.2) == key(r) => {
                    g.3 += 1;
                    g.4 += pages;
                }
                _ => {
                    if groups
                        .push((r.comm, r.order, r.zone, 1, pages), GFP_KERNEL)
                        .is_err()
                    {
                        return writeln!(f, "page_owner_sort: out of memory grouping the records");
                    }
                }
            }
        }
        // Most pages first; equal ones in key order, so the output is stable.
        groups.sort_unstable_by(|a, b| {
            (b.4.cmp(&a.4)).then_with(|| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)))
        });
        for (comm, order, z, blocks, pages) in groups.iter() {
            let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
            writeln!(
                f,
                "{blocks} blocks, {pages} pages: comm {} order {order} zone {}",
                Comm(comm.get(..end).unwrap_or(&[])),
                zone::NAMES.get(*z).copied().unwrap_or("?")
            )?;
        }
        Ok(())
    }
}

/// A discardable area's page_owner paragraph, as the mapper writes an area's (`vmalloc.rs`)
/// with its state: `Area allocated via vmalloc, pages <n>, runs <r>, pid <p>, tgid <t>
/// (<comm>), ts <ns> ns, discardable pinned|unpinned, file <f> handle <h> offset <o>`, then a
/// `PFN <first>-<last> zone <zone>` line per run of its pages not purged. A wholly purged
/// area has no pages, and no paragraph.
fn write_area(f: &mut fmt::Formatter<'_>, r: &OwnerRecord, u: &Unit, pgoff: u64) -> fmt::Result {
    let Ok((pinned, runs)) = u.runs() else {
        return writeln!(f, "page_owner: out of memory listing an area's pages\n");
    };
    if runs.is_empty() {
        return Ok(());
    }
    writeln!(
        f,
        "Area allocated via vmalloc, pages {}, runs {}, pid {}, tgid {} ({}), ts {} ns, discardable {}, file {} handle {} offset {:#x}",
        u.pages(),
        runs.len(),
        r.pid,
        r.tgid,
        Comm(r.comm()),
        r.ts_ns,
        if pinned { "pinned" } else { "unpinned" },
        r.file,
        r.handle,
        pgoff << kernel::page::PAGE_SHIFT
    )?;
    for (first, last, zone) in runs.iter() {
        writeln!(
            f,
            "PFN {first:#x}-{last:#x} zone {}",
            zone::NAMES.get(*zone).copied().unwrap_or("?")
        )?;
    }
    writeln!(f)
}
