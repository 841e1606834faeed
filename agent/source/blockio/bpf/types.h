/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The few kernel types blockio.c needs, in place of a generated vmlinux.h.
 * Kernel structs are declared with only the fields read and marked
 * preserve_access_index: CO-RE finds each field in the running kernel's
 * BTF by name, so their layout here does not matter.
 */
#ifndef BLOCKIO_TYPES_H
#define BLOCKIO_TYPES_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

typedef _Bool bool;
#define true 1
#define false 0

/* UAPI constants (linux/bpf.h), stable ABI. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

/* Kernel types, relocated by CO-RE. */
typedef __u64 sector_t;
typedef __u32 dev_t;
typedef __u8 blk_status_t;

struct gendisk {
	int major;
	int first_minor;
} __attribute__((preserve_access_index));

struct request_queue {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request {
	struct request_queue *q;
	unsigned int cmd_flags;
	unsigned int __data_len;
	sector_t __sector;
} __attribute__((preserve_access_index));

/* Before 5.15 (disk on the request rather than the queue). */
struct request___rq_disk {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

struct trace_entry {
	unsigned short type;
} __attribute__((preserve_access_index));

/* Classic tracepoint records (block:block_rq_issue, block:block_rq_complete
 * and block:block_rq_error). rwbs grew from 8 to 10 bytes over the years:
 * only its first 8 are read, where the operation is spelled. */
struct trace_event_raw_block_rq {
	struct trace_entry ent;
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
	char rwbs[8];
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_completion {
	struct trace_entry ent;
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
	int error;
	char rwbs[8];
} __attribute__((preserve_access_index));

#endif
