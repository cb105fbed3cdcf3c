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
 * Open modes: a file opened O_RDONLY may only look (GET_INFO, ZONE_STATS,
 * WMARK_EVENTS, poll); every other command needs a file opened O_WRONLY or O_RDWR (EBADF
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
#define MINIMM_ALLOC_DISCARDABLE (1U << 3)	/* may be unpinned and purged (FEAT_RECLAIM) */
#define MINIMM_ALLOC_VALID	((1U << 4) - 1)

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
 * per-CPU lists were emptied into the zones and, without ATOMIC or NOWAIT, after direct
 * reclaim: see MINIMM_FEAT_RECLAIM), EBADF (file not open for writing),
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
 * handle or op), EBADF (file not open for writing), EFAULT, ENODATA (a discardable block
 * purged while unpinned: see MINIMM_IOC_PIN).
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

/*
 * Slab caches (MINIMM_FEAT_SLAB). A file creates named caches of objects of one size and
 * allocates objects from them, or from the generic caches (minimm-kmalloc-8 ..
 * minimm-kmalloc-8k and their DMA variants, shared module-wide) by size. Caches and objects
 * are named by opaque handles valid for the creating file only; closing the file frees its
 * objects, then destroys its caches. Objects are never mapped into user space: their bytes
 * are read and written with MINIMM_IOC_SLAB_DATA, bounded to the object. Every object
 * counts against the file's quota (file_quota_pages, in bytes: pages of blocks times the
 * page size plus the slot size of every object) and every cache is one of at most
 * MINIMM_SLAB_MAX_CACHES per file.
 *
 * What an object holds when handed out: an object of the generic caches is always zeroed
 * (other files share them). An object of the file's own cache is zeroed with
 * MINIMM_OBJ_ZERO; otherwise it holds what its last user left in it, or, if it was never
 * allocated, zeroes, or with MINIMM_SLAB_CTOR the constructor's pattern (the classic slab
 * contract: the constructor runs once per object, when its slab is created, and objects are
 * freed back in their constructed state). With MINIMM_SLAB_POISON (and no constructor: as
 * SLUB, a cache with one is not poisoned) every free object, a never-allocated one
 * included, is poisoned (0x6b, last byte 0xa5), which the next user then sees instead.
 *
 * Debugging (RED_ZONE, POISON, CONSISTENCY_CHECKS, STORE_USER) bypasses the per-CPU object
 * arrays (limit and batchcount are 0), so that every allocation and free is checked. User
 * space cannot damage an object's surroundings (SLAB_DATA is bounded), so the checks find
 * nothing through these ioctls; they are for the module's own callers (see README).
 *
 * All slab commands need a file opened for writing (EBADF otherwise); SLAB_STATS's struct
 * is output past @cache, the others' are input (a non-zero unknown tail is E2BIG).
 */

/* Flags of minimm_slab_create.flags, as Linux's SLAB_* cache flags. */
#define MINIMM_SLAB_HWCACHE_ALIGN	(1U << 0)	/* align objects to the cache line */
#define MINIMM_SLAB_CACHE_DMA		(1U << 1)	/* slabs from ZONE_DMA */
#define MINIMM_SLAB_CACHE_DMA32		(1U << 2)	/* slabs from ZONE_DMA32 (and below) */
#define MINIMM_SLAB_RED_ZONE		(1U << 3)	/* red zones around each object */
#define MINIMM_SLAB_POISON		(1U << 4)	/* poison free objects, check at alloc */
#define MINIMM_SLAB_CONSISTENCY_CHECKS	(1U << 5)	/* full checks on every free */
#define MINIMM_SLAB_STORE_USER		(1U << 6)	/* record who allocated and freed */
#define MINIMM_SLAB_CTOR		(1U << 7)	/* constructor: pattern of ctor_seed */
#define MINIMM_SLAB_VALID		((1U << 8) - 1)

/* Bytes of minimm_slab_create.name, its terminating NUL included. */
#define MINIMM_SLAB_NAME_LEN		32
/* The largest object: one that fills an order-3 slab (with 4 KiB pages). */
#define MINIMM_SLAB_MAX_OBJECT		32768
/* The largest generic allocation (above 8 KiB it is pages from the pool: kmalloc_large). */
#define MINIMM_SLAB_MAX_GENERIC		(4096U << MINIMM_MAX_ORDER)
/* Caches one file may have. */
#define MINIMM_SLAB_MAX_CACHES		64
/* Objects one MINIMM_IOC_SLAB_BULK moves. */
#define MINIMM_SLAB_BULK_MAX		64

/**
 * struct minimm_slab_create - MINIMM_IOC_SLAB_CREATE: create a cache
 * @size:        sizeof(struct minimm_slab_create), at least MINIMM_SLAB_CREATE_SIZE_VER0
 * @flags:       in: MINIMM_SLAB_*
 * @object_size: in: 1..MINIMM_SLAB_MAX_OBJECT bytes (less with red zones: the object and
 *               its red zones must fit an order-3 slab)
 * @align:       in: 0 (the minimum, 8) or a power of two up to the page size
 * @ctor_seed:   in, with MINIMM_SLAB_CTOR: each object of a new slab is filled with the
 *               pattern of this seed (as MINIMM_BLOCK_FILL: the little-endian 64-bit word at
 *               byte 8k is splitmix64(seed + k), a partial last word cut short); else zero
 * @name:        in: 1..31 bytes of [A-Za-z0-9_.-], not "." or "..", NUL-terminated, the
 *               rest zero; unique module-wide (the generic caches' names included)
 * @cache:       out: the cache's opaque, non-zero handle, valid for this file only
 *
 * Errors: EINVAL (flags, size, alignment, name, padding; DMA with DMA32), EEXIST (the name
 * is taken), ENOSPC (MINIMM_SLAB_MAX_CACHES reached), ENOMEM, EBADF, EFAULT.
 */
struct minimm_slab_create {
	__u32 size;
	__u32 flags;
	__u32 object_size;
	__u32 align;
	__u64 ctor_seed;
	char name[MINIMM_SLAB_NAME_LEN];
	__u64 cache;
};
#define MINIMM_SLAB_CREATE_SIZE_VER0	64

/**
 * struct minimm_slab_cache - MINIMM_IOC_SLAB_DESTROY and MINIMM_IOC_SLAB_SHRINK
 * @size:        sizeof(struct minimm_slab_cache), at least MINIMM_SLAB_CACHE_SIZE_VER0
 * @__pad:       zero
 * @cache:       in: a cache handle of this file
 * @pages_freed: out (SHRINK): pages the cache gave back to the pool
 *
 * DESTROY refuses a cache that still has objects allocated with EBUSY (and logs how many,
 * as SLUB's "Objects remaining" report); the cache stays usable. SHRINK flushes the per-CPU
 * object arrays and gives back every empty slab (a shrink ignores min_partial). Errors:
 * EINVAL (unknown handle, padding), EBUSY, EBADF, EFAULT.
 */
struct minimm_slab_cache {
	__u32 size;
	__u32 __pad;
	__u64 cache;
	__u64 pages_freed;
};
#define MINIMM_SLAB_CACHE_SIZE_VER0	24

/* Flags of minimm_slab_alloc.flags and minimm_slab_bulk.flags. */
#define MINIMM_OBJ_ZERO		(1U << 0)	/* zeroed object (kzalloc) */
#define MINIMM_OBJ_ATOMIC	(1U << 1)	/* as MINIMM_ALLOC_ATOMIC */
#define MINIMM_OBJ_NOWAIT	(1U << 2)	/* as MINIMM_ALLOC_NOWAIT */
#define MINIMM_OBJ_DMA		(1U << 3)	/* generic only: the minimm-kmalloc-dma-* caches */
#define MINIMM_OBJ_VALID	((1U << 4) - 1)

/**
 * struct minimm_slab_alloc - MINIMM_IOC_SLAB_ALLOC: allocate one object
 * @size:    sizeof(struct minimm_slab_alloc), at least MINIMM_SLAB_ALLOC_SIZE_VER0
 * @flags:   in: MINIMM_OBJ_*
 * @cache:   in: a cache handle of this file, or 0 for the generic caches
 * @bytes:   in: for the generic caches, 1..MINIMM_SLAB_MAX_GENERIC; for a cache, zero
 * @__pad:   zero
 * @object:  out: the object's opaque, non-zero handle, valid for this file only
 * @objsize: out: bytes of the object that SLAB_DATA reaches: the cache's object_size, or
 *           @bytes (the generic cache's size class is in the slab counters and slabinfo)
 * @__pad2:  zero
 *
 * Errors: EINVAL (flags, handle, bytes, padding; DMA with a cache), EDQUOT, ENOMEM, ENOSPC
 * (the file's handles used up), EBADF, EFAULT.
 */
struct minimm_slab_alloc {
	__u32 size;
	__u32 flags;
	__u64 cache;
	__u32 bytes;
	__u32 __pad;
	__u64 object;
	__u32 objsize;
	__u32 __pad2;
};
#define MINIMM_SLAB_ALLOC_SIZE_VER0	40

/**
 * struct minimm_slab_free - MINIMM_IOC_SLAB_FREE: free one object by handle
 * @size:   sizeof(struct minimm_slab_free), at least MINIMM_SLAB_FREE_SIZE_VER0
 * @__pad:  zero
 * @object: an object handle of this file
 *
 * Errors: EINVAL (unknown handle, one already freed, another file's; padding), EBADF.
 */
struct minimm_slab_free {
	__u32 size;
	__u32 __pad;
	__u64 object;
};
#define MINIMM_SLAB_FREE_SIZE_VER0	16

/* Operations of minimm_slab_bulk.op. */
#define MINIMM_SLAB_BULK_ALLOC	0	/* kmem_cache_alloc_bulk: count objects, or none */
#define MINIMM_SLAB_BULK_FREE	1	/* kmem_cache_free_bulk: count objects, or none */

/**
 * struct minimm_slab_bulk - MINIMM_IOC_SLAB_BULK: allocate or free objects of one cache
 * @size:    sizeof(struct minimm_slab_bulk), at least MINIMM_SLAB_BULK_SIZE_VER0
 * @op:      in: MINIMM_SLAB_BULK_ALLOC or MINIMM_SLAB_BULK_FREE
 * @cache:   in: a cache handle of this file
 * @count:   in: 1..MINIMM_SLAB_BULK_MAX
 * @flags:   in, ALLOC: MINIMM_OBJ_* but DMA; FREE: zero
 * @objects: in: user address of an array of @count __u64 object handles: written with the
 *           new handles (ALLOC), read (FREE)
 *
 * All or nothing: ALLOC either allocates @count objects and writes all their handles, or
 * allocates none (EDQUOT, ENOMEM, EFAULT); FREE either frees all @count objects or none
 * (EINVAL if any handle is unknown, of another cache, or named twice). Errors also: EINVAL
 * (op, count, flags, padding), EBADF, EFAULT.
 */
struct minimm_slab_bulk {
	__u32 size;
	__u32 op;
	__u64 cache;
	__u32 count;
	__u32 flags;
	__u64 objects;
};
#define MINIMM_SLAB_BULK_SIZE_VER0	32

/* Operations of minimm_slab_data.op. */
#define MINIMM_SLAB_READ	0	/* copy object bytes to user space */
#define MINIMM_SLAB_WRITE	1	/* copy user bytes into the object */

/**
 * struct minimm_slab_data - MINIMM_IOC_SLAB_DATA: read or write an object's bytes
 * @size:   sizeof(struct minimm_slab_data), at least MINIMM_SLAB_DATA_SIZE_VER0
 * @op:     in: MINIMM_SLAB_READ or MINIMM_SLAB_WRITE
 * @object: in: an object handle of this file
 * @offset: in: the first byte
 * @len:    in: bytes; offset + len must not exceed the object's objsize (EINVAL), so that
 *          red zones and neighbours stay out of reach; 0 is allowed
 * @buf:    in: user address of len bytes
 *
 * Errors: EINVAL (op, handle, range, padding), EBADF, EFAULT (nothing is written to the
 * object if @buf cannot be read whole).
 */
struct minimm_slab_data {
	__u32 size;
	__u32 op;
	__u64 object;
	__u32 offset;
	__u32 len;
	__u64 buf;
};
#define MINIMM_SLAB_DATA_SIZE_VER0	32

/**
 * struct minimm_slab_stats - MINIMM_IOC_SLAB_STATS: a cache's geometry and counters
 * @size:           sizeof(struct minimm_slab_stats), at least MINIMM_SLAB_STATS_SIZE_VER0;
 *                  out: bytes written
 * @__pad:          zero
 * @cache:          in: a cache handle of this file
 * @object_size:    bytes asked for at creation
 * @slot_size:      bytes from one object to the next (SLUB's slab_size: red zones, padding)
 * @align:          the objects' alignment
 * @objs_per_slab:  objects in one slab
 * @order:          pages per slab, as an order
 * @colours:        distinct colour offsets of its slabs
 * @flags:          MINIMM_SLAB_* it was created with
 * @__pad2:         zero
 * @active_objs:    objects allocated (not counting those in the per-CPU arrays)
 * @num_objs:       objects in all its slabs
 * @active_slabs:   slabs with an object allocated or cached
 * @num_slabs:      slabs
 * @partial_slabs:  slabs partly allocated
 * @empty_slabs:    slabs with no object allocated
 * @cpu_objects:    free objects in the per-CPU arrays
 * @limit:          per-CPU array capacity (0: debugging bypasses the arrays)
 * @batchcount:     objects moved between an array and the slabs at once
 * @min_partial:    empty slabs kept on free
 * @alloc_fastpath: allocations served by a per-CPU array
 * @alloc_slowpath: allocations that went to the slab lists
 * @free_fastpath:  frees into a per-CPU array
 * @free_slowpath:  frees that went to the slab lists
 * @slabs_created:  slabs taken from the pool
 * @slabs_freed:    slabs given back to the pool
 * @debug_errors:   problems found by the debugging checks (each also logged)
 */
struct minimm_slab_stats {
	__u32 size;
	__u32 __pad;
	__u64 cache;
	__u32 object_size;
	__u32 slot_size;
	__u32 align;
	__u32 objs_per_slab;
	__u32 order;
	__u32 colours;
	__u32 flags;
	__u32 __pad2;
	__u64 active_objs;
	__u64 num_objs;
	__u64 active_slabs;
	__u64 num_slabs;
	__u64 partial_slabs;
	__u64 empty_slabs;
	__u64 cpu_objects;
	__u64 limit;
	__u64 batchcount;
	__u64 min_partial;
	__u64 alloc_fastpath;
	__u64 alloc_slowpath;
	__u64 free_fastpath;
	__u64 free_slowpath;
	__u64 slabs_created;
	__u64 slabs_freed;
	__u64 debug_errors;
};
#define MINIMM_SLAB_STATS_SIZE_VER0	184

/*
 * vmalloc-like areas (MINIMM_FEAT_VMALLOC). An area is memory contiguous in the kernel's
 * virtual addresses only, as Linux's vmalloc gives: pages from the pool wherever they are
 * (order-0 pages by default, in batches; with MINIMM_VM_LARGE the largest blocks the zones
 * have first), taken from the highest zone the request allows and falling back zone by zone
 * under the watermark rules, then mapped contiguously in the kernel with a guard page after
 * them. An area is a buffer of the file, like a block: its handle comes from the same
 * numbering as MINIMM_IOC_ALLOC's, MINIMM_IOC_FREE and MINIMM_IOC_VM_FREE free it,
 * MINIMM_IOC_BLOCK_DATA checksums and fills it (through the kernel's contiguous mapping), and
 * mmap(2) of its mmap_offset maps it under the block rules (below). Its pages count against
 * the file's quota. An area is always zeroed before user space can see it.
 */
#define MINIMM_VM_ZERO		(1U << 0)	/* accepted; areas are always zeroed */
#define MINIMM_VM_ATOMIC	(1U << 1)	/* the reserves of MINIMM_ALLOC_ATOMIC */
#define MINIMM_VM_NOWAIT	(1U << 2)	/* as MINIMM_ALLOC_NOWAIT */
#define MINIMM_VM_LARGE		(1U << 3)	/* largest blocks first, fewer runs */
#define MINIMM_VM_DISCARDABLE	(1U << 4)	/* may be unpinned and purged page by page
						 * (MINIMM_FEAT_RECLAIM; not with LARGE) */
#define MINIMM_VM_VALID		((1U << 5) - 1)

/* The largest area, in bytes (4 GiB). */
#define MINIMM_VM_MAX_BYTES	(1ULL << 32)

/**
 * struct minimm_vm_create - MINIMM_IOC_VM_CREATE: create an area
 * @size:        sizeof(struct minimm_vm_create), at least MINIMM_VM_CREATE_SIZE_VER0;
 *               out: bytes written
 * @zone:        the highest zone the pages may come from (MINIMM_ZONE_*; NORMAL is the
 *               usual choice, as vmalloc prefers the highest zone)
 * @bytes:       1..MINIMM_VM_MAX_BYTES, rounded up to whole pages
 * @flags:       MINIMM_VM_*
 * @__pad:       zero
 * @handle:      out: the area's handle
 * @mmap_offset: out: the offset to mmap the whole area at
 * @pages:       out: pages in the area
 *
 * Errors: EINVAL (bytes 0 or above MINIMM_VM_MAX_BYTES, unknown zone or flags,
 * MINIMM_VM_DISCARDABLE with MINIMM_VM_LARGE, padding), ENOMEM (the zones cannot give every page, or the kernel has no mapping for them: every
 * page already taken goes back, nothing is left), EDQUOT (beyond the file's quota), ENOSPC
 * (the file's handles or the module's offset space used up), EBADF (file not open for
 * writing), EFAULT.
 */
struct minimm_vm_create {
	__u32 size;
	__u32 zone;
	__u64 bytes;
	__u32 flags;
	__u32 __pad;
	__u64 handle;
	__u64 mmap_offset;
	__u64 pages;
};
#define MINIMM_VM_CREATE_SIZE_VER0	48

/**
 * struct minimm_vm_info - MINIMM_IOC_VM_INFO: what an area is made of
 * @size:        sizeof(struct minimm_vm_info), at least MINIMM_VM_INFO_SIZE_VER0;
 *               out: bytes written
 * @flags:       out: the MINIMM_VM_* flags it was created with
 * @handle:      in: the area
 * @bytes:       out: pages times the page size
 * @pages:       out: pages in the area
 * @zone_pages:  out: its pages per zone
 * @runs:        out: physically contiguous runs its pages lie in, in mapping order (1 for
 *               an area that happens to be contiguous; up to @pages when scattered)
 * @mmap_offset: out: the offset to mmap it at
 *
 * For a discardable area, @zone_pages and @runs count the pages it has now: those purged
 * while it is unpinned are left out (so their sum may be below @pages, and @runs 0).
 *
 * Errors: EINVAL (not an area of this file: a block's handle too), EBADF, EFAULT.
 */
struct minimm_vm_info {
	__u32 size;
	__u32 flags;
	__u64 handle;
	__u64 bytes;
	__u64 pages;
	__u64 zone_pages[MINIMM_NR_ZONES];
	__u64 runs;
	__u64 mmap_offset;
};
#define MINIMM_VM_INFO_SIZE_VER0	72

/**
 * struct minimm_vm_resize - MINIMM_IOC_VM_RESIZE: grow or shrink an area (as vrealloc)
 * @size:        sizeof(struct minimm_vm_resize), at least MINIMM_VM_RESIZE_SIZE_VER0;
 *               out: bytes written
 * @__pad:       zero
 * @handle:      in: the area (its handle stays the same)
 * @bytes:       in: the new size, 1..MINIMM_VM_MAX_BYTES, rounded up to whole pages
 * @mmap_offset: out: the area's new mmap offset
 * @pages:       out: its pages now
 *
 * The area keeps its first min(old, new) bytes; bytes it grows by are zero. It gets new
 * pages (same zone and flags as at creation) and a new kernel mapping and mmap offset: the
 * bytes are copied, then the old pages go back to the pool, so shrinking gives the tail
 * back. A user mapping of the area made before the resize keeps the pages it had (the old
 * contents, no longer the area's) until it is unmapped; only then do those pages go back.
 * The new pages count against the quota before the old ones are released. A resize and a
 * MINIMM_IOC_BLOCK_DATA of the same area are serialised: a fill is never lost between the
 * copy and the switch. The struct is written back before the switch: should the command
 * still fail after that (the area freed meanwhile), its fields mean nothing. Errors: EINVAL
 * (not an area of this file, freed meanwhile, bytes, padding), EDQUOT, ENOMEM (the area as
 * it was), ENOSPC (the module's offset space used up), EAGAIN (resized by other threads
 * again and again meanwhile), EBADF, EFAULT.
 */
struct minimm_vm_resize {
	__u32 size;
	__u32 __pad;
	__u64 handle;
	__u64 bytes;
	__u64 mmap_offset;
	__u64 pages;
};
#define MINIMM_VM_RESIZE_SIZE_VER0	40

/*
 * Discardable buffers (MINIMM_FEAT_RECLAIM), as Android's ashmem pin and unpin: a block
 * allocated with MINIMM_ALLOC_DISCARDABLE starts pinned, like any other. UNPIN says its
 * contents may be discarded under memory pressure: reclaim may then purge it, taking its
 * pages back into the pool and unmapping them from every process; an access to a purged,
 * unpinned buffer's mapping gets SIGBUS, and BLOCK_DATA on it ENODATA. PIN says it is in
 * use again: it will not be purged, and @result says whether it was purged meanwhile
 * (MINIMM_PIN_PURGED), in which case it has new pages, zeroed (mappings fault them in).
 * An unpinned buffer that is not purged keeps its bytes and can be read and written as
 * ever. UNPIN of an unpinned buffer and PIN of a pinned one change nothing (PIN then
 * reports 0, unless an earlier PIN found a purge but could not write its report back).
 * Freeing and closing work as for any buffer, pinned or not; a purged buffer keeps its
 * handle, its mmap offset and its quota charge.
 *
 * An area created with MINIMM_VM_DISCARDABLE is discardable too, page by page: each of its
 * pages is purged on its own (PIN reports MINIMM_PIN_PURGED if any was, and gives new zeroed
 * pages for those only; the others keep their bytes), and an access gets SIGBUS only on a
 * purged page. Its kernel mapping exists while it is pinned: UNPIN removes it and PIN maps
 * the pages again (elsewhere in the kernel's address space; debugfs vmallocinfo lists the
 * area while it is pinned). BLOCK_DATA on an unpinned area works while none of its pages is
 * purged, else ENODATA. MINIMM_IOC_VM_RESIZE of a discardable area is EINVAL.
 */
#define MINIMM_PIN_PURGED	(1U << 0)	/* @result of PIN: purged while unpinned */

/**
 * struct minimm_pin - MINIMM_IOC_UNPIN and MINIMM_IOC_PIN: unpin or pin a discardable buffer
 * @size:   sizeof(struct minimm_pin), at least MINIMM_PIN_SIZE_VER0
 * @flags:  zero
 * @handle: a discardable block or area of this file
 * @result: out (PIN): MINIMM_PIN_PURGED if a page was purged since it was unpinned;
 *          UNPIN writes 0
 *
 * Errors: EINVAL (unknown handle, one of another file, a buffer not allocated with
 * MINIMM_ALLOC_DISCARDABLE or MINIMM_VM_DISCARDABLE, flags), ENOMEM (PIN of a purged buffer
 * when no zone could give it new pages, or of an area the kernel has no mapping for: it
 * stays unpinned, as it was), EBADF, EFAULT.
 */
struct minimm_pin {
	__u32 size;
	__u32 flags;
	__u64 handle;
	__u64 result;
};
#define MINIMM_PIN_SIZE_VER0	24

/*
 * Watermark events (MINIMM_FEAT_RECLAIM): a zone crossing below its low watermark, below its
 * min watermark, or climbing back to its high watermark after it had been below low. Each
 * crossing is one event, module-wide; poll(2) on /dev/minimm reports POLLPRI to a file that
 * has events it has not read yet (edge-triggered: one crossing, one event, however long the
 * zone stays there), and MINIMM_IOC_WMARK_EVENTS reads them, which clears POLLPRI for that
 * file until the next crossing. Crossings are seen when minimm looks at its zones: after
 * every command on this device (failed ones too), after each of the reclaim thread's
 * passes, and when the watermarks are written or debugfs reclaim runs: frees that happen
 * otherwise (a file closed, a mapping gone) are seen at the next look. A zone that crosses
 * and crosses back between two looks makes no event.
 */
#define MINIMM_WMARK_LOW	0	/* crossed below low */
#define MINIMM_WMARK_MIN	1	/* crossed below min */
#define MINIMM_WMARK_HIGH	2	/* climbed back to high */

/**
 * struct minimm_wmark_events - MINIMM_IOC_WMARK_EVENTS: read the watermark events
 * @size:       sizeof(struct minimm_wmark_events), at least MINIMM_WMARK_EVENTS_SIZE_VER0
 * @last_zone:  out: the zone of the latest event (MINIMM_ZONE_*; 0 before any)
 * @events:     out: events since the module was loaded, all zones and kinds
 * @unread:     out: events this file had not read before this call (all of them are read now)
 * @below_low:  out: per zone, crossings below low since load
 * @below_min:  out: per zone, crossings below min
 * @above_high: out: per zone, climbs back to high
 * @last_kind:  out: the kind of the latest event (MINIMM_WMARK_*; 0 before any)
 * @__pad:      ignored
 *
 * Errors: EINVAL (size), EFAULT.
 */
struct minimm_wmark_events {
	__u32 size;
	__u32 last_zone;
	__u64 events;
	__u64 unread;
	__u64 below_low[MINIMM_NR_ZONES];
	__u64 below_min[MINIMM_NR_ZONES];
	__u64 above_high[MINIMM_NR_ZONES];
	__u32 last_kind;
	__u32 __pad;
};
#define MINIMM_WMARK_EVENTS_SIZE_VER0	104

#define MINIMM_IOC_MAGIC	0xB9

#define MINIMM_IOC_GET_INFO	_IOWR(MINIMM_IOC_MAGIC, 0x00, struct minimm_info)
#define MINIMM_IOC_ALLOC	_IOWR(MINIMM_IOC_MAGIC, 0x01, struct minimm_alloc)
#define MINIMM_IOC_FREE		_IOW(MINIMM_IOC_MAGIC, 0x02, struct minimm_free)
#define MINIMM_IOC_BLOCK_DATA	_IOWR(MINIMM_IOC_MAGIC, 0x03, struct minimm_block_data)
#define MINIMM_IOC_ZONE_STATS	_IOWR(MINIMM_IOC_MAGIC, 0x04, struct minimm_zone_stats)
#define MINIMM_IOC_SLAB_CREATE	_IOWR(MINIMM_IOC_MAGIC, 0x10, struct minimm_slab_create)
#define MINIMM_IOC_SLAB_DESTROY	_IOW(MINIMM_IOC_MAGIC, 0x11, struct minimm_slab_cache)
#define MINIMM_IOC_SLAB_ALLOC	_IOWR(MINIMM_IOC_MAGIC, 0x12, struct minimm_slab_alloc)
#define MINIMM_IOC_SLAB_FREE	_IOW(MINIMM_IOC_MAGIC, 0x13, struct minimm_slab_free)
#define MINIMM_IOC_SLAB_BULK	_IOW(MINIMM_IOC_MAGIC, 0x14, struct minimm_slab_bulk)
#define MINIMM_IOC_SLAB_DATA	_IOW(MINIMM_IOC_MAGIC, 0x15, struct minimm_slab_data)
#define MINIMM_IOC_SLAB_SHRINK	_IOWR(MINIMM_IOC_MAGIC, 0x16, struct minimm_slab_cache)
#define MINIMM_IOC_SLAB_STATS	_IOWR(MINIMM_IOC_MAGIC, 0x17, struct minimm_slab_stats)
#define MINIMM_IOC_VM_CREATE	_IOWR(MINIMM_IOC_MAGIC, 0x20, struct minimm_vm_create)
#define MINIMM_IOC_VM_FREE	_IOW(MINIMM_IOC_MAGIC, 0x21, struct minimm_free)
#define MINIMM_IOC_VM_RESIZE	_IOWR(MINIMM_IOC_MAGIC, 0x22, struct minimm_vm_resize)
#define MINIMM_IOC_VM_INFO	_IOWR(MINIMM_IOC_MAGIC, 0x23, struct minimm_vm_info)
#define MINIMM_IOC_UNPIN	_IOWR(MINIMM_IOC_MAGIC, 0x30, struct minimm_pin)
#define MINIMM_IOC_PIN		_IOWR(MINIMM_IOC_MAGIC, 0x31, struct minimm_pin)
#define MINIMM_IOC_WMARK_EVENTS	_IOWR(MINIMM_IOC_MAGIC, 0x32, struct minimm_wmark_events)

/*
 * MINIMM_IOC_VM_FREE takes a struct minimm_free naming an area (EINVAL for a block's handle;
 * MINIMM_IOC_FREE frees either).
 *
 * mmap(2): map a whole block or area with the mmap_offset MINIMM_IOC_ALLOC or
 * MINIMM_IOC_VM_CREATE returned (opaque: a
 * range of offsets unique module-wide, mappable only through the file that owns the block),
 * MAP_SHARED (PROT_READ alone is fine), length exactly the block's size. A wrong length,
 * offset or handle, another file's offset, or MAP_PRIVATE, gives EINVAL. Pages are mapped at
 * the first touch, the whole mapping at once. Mappings are not inherited by fork
 * (MADV_DOFORK is EINVAL on them); they cannot grow with mremap (EFAULT); after
 * MADV_DONTNEED the next access faults the same pages back in.
 */

#endif /* _UAPI_LINUX_MINIMM_H */
