/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * minimm: Linux's memory manager in miniature, as a loadable module.
 *
 * This header is the user-space contract of /dev/minimm: ioctl numbers and
 * argument structs. It is the single source of truth: the selftests and
 * samples get their Rust bindings from it with bindgen, and the module's
 * mirror (rust/uapi.rs) is checked against it by a host test.
 *
 * Extensible structs: every argument struct starts with __u32 size, which the
 * caller sets to sizeof(the struct it was built with). The module rejects a
 * size smaller than the struct's first published version (the _VER0 size)
 * with EINVAL and a size above the page size with E2BIG, reads and writes only
 * min(size, its own size) bytes, and sets size to the number of bytes it
 * wrote. Fields are only ever appended, so older and newer programs keep
 * working. Commands whose struct carries input (ALLOC, FREE, BLOCK_DATA):
 * fields the module does not know must be zero (E2BIG otherwise). Output-only
 * structs (GET_INFO; ZONE_STATS past @zone): bytes past what the module
 * writes are ignored and left as they were.
 *
 * Command numbers: the module tells commands apart by the type, number and
 * direction of the ioctl number only. Its size bits (sizeof the struct as the
 * caller's header defined it) are ignored, so a program built against a later
 * header with a longer struct reaches the same command; @size is what counts.
 *
 * Open modes: a file opened O_RDONLY may only look (GET_INFO, ZONE_STATS);
 * ALLOC, FREE and BLOCK_DATA need a file opened O_WRONLY or O_RDWR (EBADF
 * otherwise, also for the ioctl-only access mode 3).
 *
 * A failed command changes nothing: the module writes a command's struct back
 * unchanged before acting, so a struct in read-only memory fails with EFAULT
 * before anything is allocated, filled or numbered. (FREE writes nothing back:
 * its struct may be read-only.) Only if another thread makes the struct
 * unwritable between that check and the final write does the final write fail:
 * an allocation is then undone, a fill has happened.
 *
 * Reserved and padding fields must be zero; flags outside a _VALID mask are
 * rejected with EINVAL.
 */
#ifndef _UAPI_LINUX_MINIMM_H
#define _UAPI_LINUX_MINIMM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define MINIMM_ABI_VERSION	1

/* Zones, as Linux classifies physical memory on x86_64. */
#define MINIMM_ZONE_DMA		0	/* below 16 MiB */
#define MINIMM_ZONE_DMA32	1	/* below 4 GiB */
#define MINIMM_ZONE_NORMAL	2	/* the rest */
#define MINIMM_NR_ZONES		3

/* Largest buddy order: blocks of 2^10 pages (4 MiB with 4 KiB pages). */
#define MINIMM_MAX_ORDER	10

/* Feature bits in minimm_info.features: what this module build provides. */
#define MINIMM_FEAT_BUDDY	(1ULL << 0)	/* MINIMM_IOC_ALLOC/FREE/ZONE_STATS */
#define MINIMM_FEAT_MMAP	(1ULL << 1)	/* mmap of buffers by their mmap_offset */
#define MINIMM_FEAT_SLAB	(1ULL << 2)
#define MINIMM_FEAT_VMALLOC	(1ULL << 3)
#define MINIMM_FEAT_RECLAIM	(1ULL << 4)
#define MINIMM_FEATURES_VALID	((1ULL << 5) - 1)

/**
 * struct minimm_info - what MINIMM_IOC_GET_INFO reports
 * @size:        in: sizeof(struct minimm_info) as the caller knows it
 *               (at least MINIMM_INFO_SIZE_VER0); out: bytes written
 * @abi_version: MINIMM_ABI_VERSION of the module
 * @features:    MINIMM_FEAT_* bits
 * @page_size:   bytes per page
 * @max_order:   largest buddy order (MINIMM_MAX_ORDER)
 * @nr_zones:    number of zones (MINIMM_NR_ZONES)
 * @__pad:       zero
 */
struct minimm_info {
	__u32 size;
	__u32 abi_version;
	__u64 features;
	__u32 page_size;
	__u32 max_order;
	__u32 nr_zones;
	__u32 __pad;
};
#define MINIMM_INFO_SIZE_VER0	32

/*
 * Flags of minimm_alloc.flags. The reserves follow Linux's __zone_watermark_ok:
 * ATOMIC alone is __GFP_HIGH (may dig down to min - min/2); ATOMIC | NOWAIT is
 * GFP_ATOMIC (from there a quarter further: m = min - min/2, then m - m/4);
 * NOWAIT alone, like GFP_NOWAIT, gets no reserve. NOWAIT means the allocation
 * never waits for memory to be reclaimed; the ioctl itself may still sleep
 * briefly for its own bookkeeping (copying the struct, the file's table lock,
 * zeroing the block).
 */
#define MINIMM_ALLOC_ZERO	(1U << 0)	/* zeroed block (always so: see below) */
#define MINIMM_ALLOC_ATOMIC	(1U << 1)	/* high priority: half the min reserve */
#define MINIMM_ALLOC_NOWAIT	(1U << 2)	/* never wait for reclaim */
#define MINIMM_ALLOC_VALID	((1U << 3) - 1)

/**
 * struct minimm_alloc - MINIMM_IOC_ALLOC: allocate a block of 2^order pages
 * @size:        sizeof(struct minimm_alloc), at least MINIMM_ALLOC_SIZE_VER0
 * @order:       in: 0..MINIMM_MAX_ORDER
 * @zone:        in: the highest zone the block may come from (MINIMM_ZONE_*); the
 *               allocator tries that zone, then the lower ones
 * @flags:       in: MINIMM_ALLOC_*
 * @handle:      out: the block's opaque, non-zero handle, valid for this open file only
 * @mmap_offset: out: the offset to pass to mmap(2) to map the whole block (opaque, unique
 *               module-wide)
 * @zone_out:    out: the zone the block came from
 * @__pad:       zero
 *
 * Every block is zeroed before user space can see it, ZERO or not: pool pages may hold
 * another client's data. Errors: EINVAL (bad order, zone, flags or padding), EDQUOT
 * (the file's quota of pages, module parameter file_quota_pages, would be exceeded),
 * ENOMEM (no zone allowed could give the block above its watermark, even after the
 * per-CPU lists were emptied into the zones), EBADF (file not open for writing),
 * EFAULT, ENOSPC (the file's handles or the module's offset space used up). The handle
 * is valid once the ioctl has returned: another thread that reads it from @handle
 * before then may find it unknown.
 */
struct minimm_alloc {
	__u32 size;
	__u32 order;
	__u32 zone;
	__u32 flags;
	__u64 handle;
	__u64 mmap_offset;
	__u32 zone_out;
	__u32 __pad;
};
#define MINIMM_ALLOC_SIZE_VER0	40

/**
 * struct minimm_free - MINIMM_IOC_FREE: free a block by handle
 * @size:   sizeof(struct minimm_free), at least MINIMM_FREE_SIZE_VER0
 * @__pad:  zero
 * @handle: a handle from MINIMM_IOC_ALLOC on this file
 *
 * A block still mapped is freed for this file at once, but its pages go back to the pool
 * only when the last mapping of it is gone; a block whose pages are still referenced
 * from outside (a pipe buffer from vmsplice, O_DIRECT in flight) is held until they are
 * not. Errors: EINVAL (unknown handle, a handle of another file or one already freed;
 * padding not zero), EBADF (file not open for writing).
 */
struct minimm_free {
	__u32 size;
	__u32 __pad;
	__u64 handle;
};
#define MINIMM_FREE_SIZE_VER0	16

/* Operations of minimm_block_data.op. */
#define MINIMM_BLOCK_CHECKSUM	0	/* result = 64-bit FNV-1a of the block's bytes */
#define MINIMM_BLOCK_FILL	1	/* fill with the pattern of seed (see samples) */

/**
 * struct minimm_block_data - MINIMM_IOC_BLOCK_DATA: the kernel reads or writes a block
 * @size:   sizeof(struct minimm_block_data), at least MINIMM_BLOCK_DATA_SIZE_VER0
 * @op:     MINIMM_BLOCK_CHECKSUM or MINIMM_BLOCK_FILL
 * @handle: the block
 * @seed:   in, for FILL: the little-endian 64-bit word at byte 8k of the block becomes
 *          splitmix64(seed + k)
 * @result: out, for CHECKSUM: 64-bit FNV-1a over the block's bytes
 *
 * For data round trips through mmap: user space writes, the kernel checksums, and the
 * reverse. The kernel's own accesses to one block are serialised; user space writing
 * through a mapping meanwhile only mixes old and new bytes. Errors: EINVAL (unknown
 * handle or op), EBADF (file not open for writing), EFAULT.
 */
struct minimm_block_data {
	__u32 size;
	__u32 op;
	__u64 handle;
	__u64 seed;
	__u64 result;
};
#define MINIMM_BLOCK_DATA_SIZE_VER0	32

/**
 * struct minimm_zone_stats - MINIMM_IOC_ZONE_STATS: one zone's state
 * @size:          sizeof(struct minimm_zone_stats), at least MINIMM_ZONE_STATS_SIZE_VER0;
 *                 out: bytes written
 * @zone:          in: MINIMM_ZONE_*
 * @managed_pages: pages minimm borrowed from the host for this zone
 * @free_pages:    pages on the zone's free lists
 * @pcp_pages:     free pages cached on per-CPU lists
 * @wmark_min:     watermarks, in pages
 * @wmark_low:
 * @wmark_high:
 * @nr_free:       free blocks per order, as /proc/buddyinfo
 * @pgalloc:       blocks allocated from this zone
 * @pgfree:        blocks freed to this zone
 * @alloc_fail:    requests whose highest zone was this one and that no zone could serve
 * @low_wmark_hit: allocations that found the zone below its low watermark (where Linux
 *                 wakes kswapd)
 * @min_wmark_hit: allocations refused by this zone's min watermark (where Linux reclaims
 *                 directly)
 * @fallback:      allocations served here for a request whose highest zone was higher
 */
struct minimm_zone_stats {
	__u32 size;
	__u32 zone;
	__u64 managed_pages;
	__u64 free_pages;
	__u64 pcp_pages;
	__u64 wmark_min;
	__u64 wmark_low;
	__u64 wmark_high;
	__u64 nr_free[MINIMM_MAX_ORDER + 1];
	__u64 pgalloc;
	__u64 pgfree;
	__u64 alloc_fail;
	__u64 low_wmark_hit;
	__u64 min_wmark_hit;
	__u64 fallback;
};
#define MINIMM_ZONE_STATS_SIZE_VER0	192

#define MINIMM_IOC_MAGIC	0xB9

#define MINIMM_IOC_GET_INFO	_IOWR(MINIMM_IOC_MAGIC, 0x00, struct minimm_info)
#define MINIMM_IOC_ALLOC	_IOWR(MINIMM_IOC_MAGIC, 0x01, struct minimm_alloc)
#define MINIMM_IOC_FREE		_IOW(MINIMM_IOC_MAGIC, 0x02, struct minimm_free)
#define MINIMM_IOC_BLOCK_DATA	_IOWR(MINIMM_IOC_MAGIC, 0x03, struct minimm_block_data)
#define MINIMM_IOC_ZONE_STATS	_IOWR(MINIMM_IOC_MAGIC, 0x04, struct minimm_zone_stats)

/*
 * mmap(2): map a whole block with the mmap_offset MINIMM_IOC_ALLOC returned (opaque: a
 * range of offsets unique module-wide, mappable only through the file that owns the block),
 * MAP_SHARED (PROT_READ alone is fine), length exactly the block's size. A wrong length,
 * offset or handle, another file's offset, or MAP_PRIVATE, gives EINVAL. Pages are mapped at
 * the first touch, the whole mapping at once. Mappings are not inherited by fork
 * (MADV_DOFORK is EINVAL on them); they cannot grow with mremap (EFAULT); after
 * MADV_DONTNEED the next access faults the same pages back in.
 */

#endif /* _UAPI_LINUX_MINIMM_H */
