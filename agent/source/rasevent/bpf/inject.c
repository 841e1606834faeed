// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Test only (built into inject_bpfel_test.o): puts a record staged by the
// test into the source's ring buffer, its header stamped with the CPU and
// CLOCK_MONOTONIC as ras.c stamps it, or counts a drop, so that the tests
// drive the source's whole reading path through a real BPF ring buffer on
// a machine whose hardware never fires a RAS tracepoint.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>

enum {
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define STAGE_CAP 1024

struct stage {
	__u32 len;       // bytes of data to output
	__u32 drop_kind; // when not 0: count a drop of this kind instead
	__u8 data[STAGE_CAP];
};

// Same definitions as in ras.c: the test passes the source's maps in.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stage);
} staged SEC(".maps");

SEC("syscall")
int inject(void *ctx)
{
	__u32 zero = 0;
	struct stage *s = bpf_map_lookup_elem(&staged, &zero);
	if (!s)
		return 1;
	if (s->drop_kind) {
		__u32 k = s->drop_kind;
		__u64 *n = bpf_map_lookup_elem(&drops, &k);
		if (!n)
			return 2;
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	__u32 len = s->len;
	if (len > STAGE_CAP)
		return 3;
	if (len >= 16) {
		// Stamp the header as ras.c's reserve() does.
		*(__u32 *)(s->data + 4) = bpf_get_smp_processor_id();
		*(__u64 *)(s->data + 8) = bpf_ktime_get_ns();
	}
	return bpf_ringbuf_output(&events, s->data, len, 0) ? 4 : 0;
}
