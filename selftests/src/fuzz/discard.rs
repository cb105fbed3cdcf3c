// SPDX-License-Identifier: GPL-2.0

//! Discardable blocks and areas in the fuzzer (MINIMM_FEAT_RECLAIM): UNPIN, PIN (which
//! reports purges; an area's are page by page),
//! reads of unpinned blocks (their bytes or the purge's ENODATA/SIGBUS, nothing else), and
//! reclaim asked for through debugfs while every process works, so that purges happen
//! during the fuzz.
//!
//! The model: an unpinned buffer sits in the file's `unpinned` list, out of reach of the
//! other operations, its mappings (pieces) kept; PIN puts it back in `live`, its data zero
//! if PIN reported a purge (an area's, page by page as read back). Reads of an unpinned
//! buffer's own mappings go through `process_vm_readv`, where a page purged meanwhile is
//! `EFAULT` rather than `SIGBUS`: purges race the owner's faults. So no pinned byte may ever change (every other
//! operation checks the live blocks' bytes), and a purge that PIN did not report shows as
//! bytes that are not the model's.

use minimm_uapi::checksum;

use crate::{
    common::{Child, Exit, DEBUGFS},
    model::{lock, Block, Data, Fill},
    ops::{put_block, Ctx, Ran, Step},
    sys::{mmap, munmap},
};

/// UNPIN of a live buffer, mapped or not: a discardable one leaves the model's reach until
/// PIN; any other buffer is EINVAL and stays as it was.
pub(crate) fn op_discard_unpin(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let Some(b) = ctx.take_block(&file, false, |_| true) else {
        return Ok(Ran::Skipped);
    };
    ctx.what = format!(
        "UNPIN file {} handle {} ({})",
        file.id,
        b.handle,
        if b.discardable {
            "discardable"
        } else {
            "not discardable"
        }
    );
    let r = file.dev.unpin(b.handle);
    if !b.discardable {
        let r = ctx.fails(r, &[libc::EINVAL], "UNPIN of a buffer not discardable");
        put_block(&file, b);
        r?;
        return Ok(Ran::Done);
    }
    if let Err(e) = ctx.ok(r, "UNPIN") {
        put_block(&file, b);
        return Err(e);
    }
    let mut m = lock(&file.model);
    m.releasing -= u64::from(b.pages());
    m.unpinned.push(b);
    Ok(Ran::Done)
}

/// PIN of an unpinned buffer (its data zero if it reports a purge, page by page for an area;
/// ENOMEM, when the pool is short, leaves it unpinned), or FREE of it. A purge seen while it
/// was unpinned (ENODATA, SIGBUS, EFAULT) must be reported.
pub(crate) fn op_discard_pin(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable()) else {
        return Ok(Ran::Skipped);
    };
    let (mut b, seen) = {
        let mut m = lock(&file.model);
        if m.unpinned.is_empty() {
            return Ok(Ran::Skipped);
        }
        let i = ctx.rng.index(m.unpinned.len());
        let b = m.unpinned.swap_remove(i);
        // Charged until a FREE goes through: `lower` bounds must not count it meanwhile.
        m.releasing += u64::from(b.pages());
        let seen = m.purge_seen.contains(&b.handle);
        (b, seen)
    };
    if ctx.rng.chance(20) {
        ctx.what = format!("FREE of unpinned file {} handle {}", file.id, b.handle);
        // Its mappings first: once freed it is nobody's to pin, and a purge would leave them
        // faulting.
        let page = ctx.page();
        let mut kept = Vec::new();
        let mut unmapped = Ok(());
        for p in b.pieces.drain(..) {
            match munmap(p.addr, p.pages as usize * page) {
                Ok(()) => {}
                Err(e) => {
                    unmapped = Err(format!("munmap of an unpinned buffer's mapping: {e}"));
                    kept.push(p);
                }
            }
        }
        b.pieces = kept;
        let r =
            unmapped.and_then(|()| ctx.ok(file.dev.free(b.handle), "FREE of an unpinned block"));
        let mut m = lock(&file.model);
        m.releasing -= u64::from(b.pages());
        if r.is_ok() {
            m.note_freed(b.handle);
            m.purge_seen.retain(|&h| h != b.handle);
            m.charged -= u64::from(b.pages());
        } else {
            m.unpinned.push(b);
        }
        return r.map(|()| Ran::Done);
    }
    ctx.what = format!("PIN file {} handle {}", file.id, b.handle);
    let r = ctx.outcome(file.dev.pin(b.handle), &[libc::ENOMEM], "PIN");
    let r = match r {
        Ok(Ok(purged)) => {
            lock(&file.model).purge_seen.retain(|&h| h != b.handle);
            if seen && !purged {
                ctx.what += ": a purge was seen while it was unpinned";
                // Pinned now, its bytes unknown: out of the model.
                return free_unknown(ctx, &file, b).and_then(|_| {
                    Err("PIN reported no purge, but reads saw one while it was unpinned".into())
                });
            }
            if purged {
                ctx.what += ": purged";
                if b.area.is_some() {
                    // An area is purged page by page: each page is now the model's or zero.
                    match learn_purged_pages(&file, &mut b, ctx.page()) {
                        Ok(true) => {}
                        Ok(false) => {
                            // Unreadable from this file: which pages went cannot be told.
                            return free_unknown(ctx, &file, b);
                        }
                        Err(e) => {
                            let _ = free_unknown(ctx, &file, b);
                            return Err(e);
                        }
                    }
                } else {
                    b.data = Data::new(b.pages(), Fill::Zero);
                }
            }
            // Pinned: the block's bytes are the model's again, and every other operation
            // checks them.
            let page = ctx.page();
            let sum = ctx.ok(file.dev.checksum(b.handle), "CHECKSUM after PIN");
            match sum {
                Ok(s) if s == b.data.checksum(b.pages(), page) => Ok(true),
                Ok(s) => Err(format!(
                    "after PIN (purged: {purged}) the checksum is {s:#x}, expected {:#x}",
                    b.data.checksum(b.pages(), page)
                )),
                Err(e) => Err(e),
            }
        }
        Ok(Err(_)) => Ok(false),
        Err(e) => Err(e),
    };
    let mut m = lock(&file.model);
    m.releasing -= u64::from(b.pages());
    match r {
        Ok(true) => m.live.push(b),
        Ok(false) => m.unpinned.push(b),
        Err(e) => {
            m.unpinned.push(b);
            return Err(e);
        }
    }
    Ok(Ran::Done)
}

/// After a PIN that reported a purge of area `b`: reads it through a mapping of `file` and
/// takes each page as the model's bytes or, purged, zero (anything else is an error).
/// `Ok(false)` when the file is not open for reading.
fn learn_purged_pages(
    file: &crate::model::File,
    b: &mut Block,
    page: usize,
) -> Result<bool, String> {
    if !file.readable() {
        return Ok(false);
    }
    let len = b.pages() as usize * page;
    let addr = mmap(
        file.dev.fd(),
        b.offset,
        len,
        libc::PROT_READ,
        libc::MAP_SHARED,
    )
    .map_err(|e| format!("mmap of a pinned area: {e}"))?;
    // SAFETY: our own mapping of `len` readable bytes of a pinned area (no SIGBUS).
    let got = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
    let mut bad = None;
    for i in 0..b.pages() {
        let at = i as usize * page;
        let have = &got[at..at + page];
        if have == b.data.bytes(i, i + 1, page).as_slice() {
            continue;
        }
        if have.iter().all(|&x| x == 0) {
            b.data.write(i, i + 1, Fill::Zero);
        } else {
            bad = Some(i);
            break;
        }
    }
    let _ = munmap(addr, len);
    match bad {
        Some(i) => Err(format!(
            "after PIN of a purged area, page {i} is neither its bytes nor zero"
        )),
        None => Ok(true),
    }
}

/// Frees pinned buffer `b` (taken with its pages counted in `releasing`), whose bytes the
/// model cannot know: its mappings go first (no later check may read them).
fn free_unknown(ctx: &mut Ctx<'_>, file: &crate::model::File, mut b: Block) -> Step {
    ctx.what += ", freed: its bytes cannot be known";
    let page = ctx.page();
    for p in b.pieces.drain(..) {
        let _ = munmap(p.addr, p.pages as usize * page);
    }
    let r = ctx.ok(file.dev.free(b.handle), "FREE of a buffer of unknown bytes");
    let mut m = lock(&file.model);
    m.releasing -= u64::from(b.pages());
    if r.is_ok() {
        m.note_freed(b.handle);
        m.charged -= u64::from(b.pages());
    }
    // On a failed FREE the buffer leaves the model (its bytes are unknown); the run has
    // failed already.
    r.map(|()| Ran::Done)
}

/// Reads an unpinned block: through BLOCK_DATA (its checksum, or ENODATA once purged), or
/// through a mapping made in a child (its bytes, or SIGBUS once purged).
pub(crate) fn op_discard_read(ctx: &mut Ctx<'_>) -> Step {
    let Some(file) = ctx.pick_file(|f| f.writable() && f.readable()) else {
        return Ok(Ran::Skipped);
    };
    let b = {
        let mut m = lock(&file.model);
        if m.unpinned.is_empty() {
            return Ok(Ran::Skipped);
        }
        let i = ctx.rng.index(m.unpinned.len());
        m.unpinned.swap_remove(i)
    };
    let page = ctx.page();
    let want = b.data.bytes(0, b.pages(), page);
    // Whether this read saw a purge: PIN must then report one.
    let mut purge_seen = false;
    let readable: Vec<usize> = (0..b.pieces.len())
        .filter(|&i| b.pieces[i].readable())
        .collect();
    let r = if !readable.is_empty() && ctx.rng.chance(40) {
        let p = &b.pieces[readable[ctx.rng.index(readable.len())]];
        ctx.what = format!(
            "process_vm_readv of unpinned file {} handle {} pages {}..{}",
            file.id,
            b.handle,
            p.first,
            p.first + p.pages
        );
        let want = b.data.bytes(p.first, p.first + p.pages, page);
        let mut got = vec![0u8; want.len()];
        // A fault (EFAULT, or a short read) is a purge, unless fault injection may fail
        // the fault handler's insertion (which process_vm_readv reports the same way).
        let faulted = |purge_seen: &mut bool| *purge_seen |= !ctx.p.fail;
        match read_own(p.addr, &mut got) {
            // Up to the first page purged (EFAULT beyond it), its bytes.
            Ok(n) if got[..n] == want[..n] => {
                if n < got.len() {
                    faulted(&mut purge_seen);
                }
                Ok(())
            }
            Ok(_) => Err("an unpinned buffer's mapping read other bytes than its own".into()),
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                faulted(&mut purge_seen);
                Ok(())
            }
            Err(e) => Err(format!("process_vm_readv of an unpinned buffer: {e}")),
        }
    } else if ctx.rng.chance(50) {
        ctx.what = format!("CHECKSUM of unpinned file {} handle {}", file.id, b.handle);
        match ctx.outcome(file.dev.checksum(b.handle), &[libc::ENODATA], "CHECKSUM") {
            Ok(Ok(s)) if s != checksum(&want) => Err(format!(
                "an unpinned block's checksum {s:#x}, expected {:#x} or ENODATA",
                checksum(&want)
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => {
                purge_seen = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        ctx.what = format!(
            "read in a child of unpinned file {} handle {}",
            file.id, b.handle
        );
        let (fd, offset, len) = (file.dev.fd(), b.offset, want.len());
        let want_ref = &want;
        // The child makes system calls and reads memory only: no allocation, no lock.
        let child = Child::spawn(|| {
            // SAFETY: signal() with SIG_DFL is async-signal-safe and has no other precondition.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            let Ok(addr) = mmap(fd, offset, len, libc::PROT_READ, libc::MAP_SHARED) else {
                return 2;
            };
            // SAFETY: the child's own mapping of `len` readable bytes.
            let got = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
            let same = got == &want_ref[..];
            let _ = munmap(addr, len);
            i32::from(!same)
        })?;
        match child.wait()? {
            Exit::Code(0) => Ok(()),
            Exit::Signal(libc::SIGBUS) => {
                purge_seen = true;
                Ok(())
            }
            Exit::Code(1) => Err("an unpinned block read other bytes than its own".into()),
            other => Err(format!("the reading child ended {other:?}")),
        }
    };
    let mut m = lock(&file.model);
    if purge_seen && !m.purge_seen.contains(&b.handle) {
        m.purge_seen.push(b.handle);
    }
    m.unpinned.push(b);
    r.map(|()| Ran::Done)
}

/// Reads `buf.len()` bytes at `addr` of this process's own memory with `process_vm_readv`:
/// the bytes read (fewer when a page faults), or the error (`EFAULT` at the first page).
fn read_own(addr: usize, buf: &mut [u8]) -> std::io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` is our own buffer of `iov_len` bytes; the remote range is only read
    // by the kernel, which reports a fault as an error rather than a signal.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reclaim of a few pages through debugfs (as `memory.reclaim`): Ok, or EAGAIN when fewer
/// came back; any unpinned block of any process may be purged.
pub(crate) fn op_discard_reclaim(ctx: &mut Ctx<'_>) -> Step {
    let n = 1 + ctx.rng.below(256);
    ctx.what = format!("reclaim {n}");
    let r = std::fs::write(format!("{DEBUGFS}/reclaim"), n.to_string());
    let _ = ctx.outcome(r, &[libc::EAGAIN], "reclaim")?;
    Ok(Ran::Done)
}
