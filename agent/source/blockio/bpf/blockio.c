// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Block I/O latency and failed requests, for hwheal's blockio source.
 *
 * Two ways in, one output:
 *  - tp_btf programs (btf_*): typed struct request * arguments; the
 *    in-flight key is the request's address, the error a blk_status_t.
 *  - classic tracepoint programs (tp_*): the trace record; the in-flight
 *    key is device + sector, the error a negative errno, the operation the
 *    rwbs string.
 * The Go side loads one set, never both, and normalises what differs.
 *
 * Per device, a log2 histogram of issue-to-complete latency in
 * microseconds, with counts of completions and failed completions, in
 * `hists`. Every failed request goes to user space as one `struct event`
 * through the `events` ring buffer; an event that finds the ring full is
 * counted in `dropped`, never lost silently.
 */
#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define NSLOTS 27 /* slot 0: [0,2) us; slot i: [2^i, 2^(i+1)) us; the last is open */

enum event_kind {
	EVENT_BTF = 1,        /* error is a blk_status_t, op the request's op */
	EVENT_TRACEPOINT = 2, /* error is -errno, rwbs the trace record's */
};

/* One failed request; the Go decoder reads this layout (48 bytes). */
struct event {
	__u64 ts_ns;     /* bpf_ktime_get_ns() at completion (CLOCK_MONOTONIC) */
	__u64 sector;    /* first 512-byte sector of the (remaining) request */
	__u32 dev;       /* kernel dev_t: major << 20 | minor */
	__u32 nr_sector; /* sectors completed by this call */
	__s32 error;
	__u32 op;        /* cmd_flags & REQ_OP_MASK (EVENT_BTF) */
	__u8 kind;
	__u8 _pad[3];
	char rwbs[8];    /* NUL-terminated unless 8 long (EVENT_TRACEPOINT) */
	__u32 _pad2;
};

struct hist {
	__u64 slots[NSLOTS];
	__u64 count;  /* completions timed from their issue */
	__u64 errors; /* failed completions, timed or not */
	__u64 sum_ns; /* total latency of the timed completions */
};

/* In flight: a = request address (tp_btf) or dev (tracepoint), b = 0 or
 * sector. LRU, so requests whose completion is never seen cost nothing
 * for long. */
struct start_key {
	__u64 a;
	__u64 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct start_key);
	__type(value, __u64);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

/* Set by the loader: the kernel has no block_rq_error tracepoint, so
 * failed requests are taken from block_rq_complete. */
const volatile bool errors_from_complete = false;

/* Puts struct event in the object's BTF, for bpf2go's -type event. */
const struct event *unused_event __attribute__((unused));


static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, s;

	s = (v > 0xFFFFFFFFULL) << 5; v >>= s; r |= s;
	s = (v > 0xFFFF) << 4; v >>= s; r |= s;
	s = (v > 0xFF) << 3; v >>= s; r |= s;
	s = (v > 0xF) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (v >> 1);
	return r;
}

static __always_inline void account(__u32 dev, struct start_key *key, bool failed)
{
	__u64 *start = bpf_map_lookup_elem(&starts, key);
	__u64 delta = 0;
	bool timed = false;

	if (start) {
		__u64 now = bpf_ktime_get_ns();
		if (now > *start)
			delta = now - *start;
		timed = true;
		bpf_map_delete_elem(&starts, key);
	}
	if (!timed && !failed)
		return;

	struct hist *h = bpf_map_lookup_elem(&hists, &dev);
	if (!h) {
		static const struct hist zero;
		bpf_map_update_elem(&hists, &dev, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &dev);
		if (!h)
			return;
	}
	if (timed) {
		__u64 us = delta / 1000;
		__u32 slot = us ? log2_u64(us) : 0;
		if (slot >= NSLOTS)
			slot = NSLOTS - 1;
		__sync_fetch_and_add(&h->slots[slot], 1);
		__sync_fetch_and_add(&h->count, 1);
		__sync_fetch_and_add(&h->sum_ns, delta);
	}
	if (failed)
		__sync_fetch_and_add(&h->errors, 1);
}

static __always_inline struct event *reserve(void)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&dropped, &zero);
		if (n)
			*n += 1;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

/* ---------------------------------------------------------------- tp_btf */

static __always_inline __u32 rq_dev(struct request *rq)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(rq->q->disk))
		disk = rq->q->disk;
	else
		disk = BPF_CORE_READ((struct request___rq_disk *)rq, rq_disk);
	if (!disk)
		return 0;
	return ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
}

static __always_inline void emit_btf(struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	struct event *e = reserve();
	if (!e)
		return;
	e->kind = EVENT_BTF;
	e->dev = rq_dev(rq);
	e->sector = BPF_CORE_READ(rq, __sector);
	/* As blk_rq_trace_sector: passthrough requests have no sector. */
	if (e->sector == (sector_t)-1)
		e->sector = 0;
	e->nr_sector = nr_bytes >> 9;
	e->error = error;
	e->op = BPF_CORE_READ(rq, cmd_flags) & 0xff; /* REQ_OP_MASK */
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(btf_issue, struct request *rq)
{
	struct start_key key = { .a = (__u64)rq };
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&starts, &key, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(btf_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	struct start_key key = { .a = (__u64)rq };

	account(rq_dev(rq), &key, error != 0);
	if (error && errors_from_complete)
		emit_btf(rq, error, nr_bytes);
	return 0;
}

SEC("tp_btf/block_rq_error")
int BPF_PROG(btf_error, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	emit_btf(rq, error, nr_bytes);
	return 0;
}

/* ---------------------------------------------------------- tracepoints */

static __always_inline void emit_tp(struct trace_event_raw_block_rq_completion *ctx)
{
	struct event *e = reserve();
	if (!e)
		return;
	e->kind = EVENT_TRACEPOINT;
	e->dev = ctx->dev;
	e->sector = ctx->sector;
	e->nr_sector = ctx->nr_sector;
	e->error = ctx->error;
	bpf_core_read(&e->rwbs, sizeof(e->rwbs), &ctx->rwbs);
	bpf_ringbuf_submit(e, 0);
}

SEC("tracepoint/block/block_rq_issue")
int tp_issue(struct trace_event_raw_block_rq *ctx)
{
	struct start_key key = { .a = ctx->dev, .b = ctx->sector };
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&starts, &key, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int tp_complete(struct trace_event_raw_block_rq_completion *ctx)
{
	struct start_key key = { .a = ctx->dev, .b = ctx->sector };
	int error = ctx->error;

	account(ctx->dev, &key, error != 0);
	if (error && errors_from_complete)
		emit_tp(ctx);
	return 0;
}

SEC("tracepoint/block/block_rq_error")
int tp_error(struct trace_event_raw_block_rq_completion *ctx)
{
	emit_tp(ctx);
	return 0;
}
