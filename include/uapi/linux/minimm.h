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
 * with EINVAL, reads and writes only min(size, its own size) bytes, and for
 * output structs sets size to the number of bytes it wrote. Fields are only
 * ever appended, so older and newer programs keep working.
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
#define MINIMM_FEAT_MMAP	(1ULL << 1)	/* mmap of buffers by handle */
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

#define MINIMM_IOC_MAGIC	0xB9

#define MINIMM_IOC_GET_INFO	_IOWR(MINIMM_IOC_MAGIC, 0x00, struct minimm_info)

#endif /* _UAPI_LINUX_MINIMM_H */
