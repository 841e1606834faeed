// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The RAS tracepoints rasdaemon listens to, read with eBPF: each program
// copies its tracepoint's record into a fixed layout (struct rec_*) on one
// ring buffer. The Go side (decode.go) reads exactly these layouts; the
// _Static_asserts pin the offsets both sides rely on.
//
// No vmlinux.h: the few trace_event_raw_* structs are declared here with
// preserve_access_index, so field offsets are relocated against the running
// kernel's BTF (CO-RE). A program whose struct the kernel lacks fails to
// load on its own; the loader loads each program separately.

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

typedef __u8 u8;
typedef __s8 s8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum {
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};


char LICENSE[] SEC("license") = "Dual BSD/GPL";

// ---------------------------------------------------------------- records

enum rec_kind {
	REC_MC_EVENT = 1,
	REC_MCE_RECORD = 2,
	REC_AER_EVENT = 3,
	REC_MEMORY_FAILURE = 4,
	REC_KIND_MAX = 8, // size of the drops map
};

// Every record starts with this header.
struct rec_hdr {
	u32 kind; // enum rec_kind
	u32 cpu;  // CPU the tracepoint fired on
	u64 ktime_ns; // CLOCK_MONOTONIC when it fired
};

// String capacities. A longer kernel string is cut; its kernel length is
// kept so that the reader can tell.
#define MC_MSG_LEN 128
#define MC_LABEL_LEN 320 // EDAC joins up to 8 labels of 31 chars with " or "
#define MC_DETAIL_LEN 256
#define AER_DEV_LEN 64

struct rec_mc_event {
	struct rec_hdr hdr;
	u32 error_type;
	u16 error_count;
	u8 mc_index;
	s8 top_layer;
	s8 middle_layer;
	s8 lower_layer;
	u8 grain_bits;
	u8 _pad0;
	u16 msg_len; // kernel string lengths, terminating NUL included
	u16 label_len;
	u16 detail_len;
	u16 _pad1;
	u64 address;
	u64 syndrome;
	char msg[MC_MSG_LEN];
	char label[MC_LABEL_LEN];
	char driver_detail[MC_DETAIL_LEN];
};

// Flags of rec_mce_record: which fields the running kernel has.
#define MCE_HAS_SYND_IPID 1
#define MCE_HAS_PPIN 2
#define MCE_HAS_MICROCODE 4

struct rec_mce_record {
	struct rec_hdr hdr;
	u64 mcgcap;
	u64 mcgstatus;
	u64 status;
	u64 addr;
	u64 misc;
	u64 synd;
	u64 ipid;
	u64 ip;
	u64 tsc;
	u64 walltime;
	u64 ppin;
	u32 cpu;
	u32 cpuid;
	u32 apicid;
	u32 socketid;
	u32 microcode;
	u8 cs;
	u8 bank;
	u8 cpuvendor;
	u8 flags;
};

struct rec_aer_event {
	struct rec_hdr hdr;
	u32 status;
	u8 severity;
	u8 tlp_header_valid;
	u16 dev_name_len;
	u32 tlp_header[4];
	char dev_name[AER_DEV_LEN];
};

struct rec_memory_failure {
	struct rec_hdr hdr;
	u64 pfn;
	s32 type;
	s32 result;
};

_Static_assert(sizeof(struct rec_hdr) == 16, "rec_hdr");
_Static_assert(__builtin_offsetof(struct rec_mc_event, error_type) == 16, "mc error_type");
_Static_assert(__builtin_offsetof(struct rec_mc_event, msg_len) == 28, "mc msg_len");
_Static_assert(__builtin_offsetof(struct rec_mc_event, address) == 40, "mc address");
_Static_assert(__builtin_offsetof(struct rec_mc_event, msg) == 56, "mc msg");
_Static_assert(__builtin_offsetof(struct rec_mc_event, label) == 184, "mc label");
_Static_assert(__builtin_offsetof(struct rec_mc_event, driver_detail) == 504, "mc driver_detail");
_Static_assert(sizeof(struct rec_mc_event) == 760, "rec_mc_event");
_Static_assert(__builtin_offsetof(struct rec_mce_record, cpu) == 104, "mce cpu");
_Static_assert(__builtin_offsetof(struct rec_mce_record, cs) == 124, "mce cs");
_Static_assert(sizeof(struct rec_mce_record) == 128, "rec_mce_record");
_Static_assert(__builtin_offsetof(struct rec_aer_event, tlp_header) == 24, "aer tlp_header");
_Static_assert(__builtin_offsetof(struct rec_aer_event, dev_name) == 40, "aer dev_name");
_Static_assert(sizeof(struct rec_aer_event) == 104, "rec_aer_event");
_Static_assert(sizeof(struct rec_memory_failure) == 32, "rec_memory_failure");

// Anchor the record types in the object's BTF so that bpf2go generates Go
// types for them (the Go tests check decode.go's offsets against those).
const struct rec_mc_event *unused_rec_mc_event __attribute__((unused));
const struct rec_mce_record *unused_rec_mce_record __attribute__((unused));
const struct rec_aer_event *unused_rec_aer_event __attribute__((unused));
const struct rec_memory_failure *unused_rec_memory_failure __attribute__((unused));

// ------------------------------------------------------------------- maps

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// Records lost because the ring buffer was full, per record kind and CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REC_KIND_MAX);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

static __always_inline void *reserve(u32 kind, u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);
	if (!rec) {
		u64 *n = bpf_map_lookup_elem(&drops, &kind);
		if (n)
			__sync_fetch_and_add(n, 1);
		return 0;
	}
	struct rec_hdr *h = rec;
	h->kind = kind;
	h->cpu = bpf_get_smp_processor_id();
	h->ktime_ns = bpf_ktime_get_ns();
	return rec;
}

// A __data_loc field: offset of the data from the start of the record in the
// low 16 bits, its length in the high 16.
static __always_inline u16 read_data_loc(void *ctx, u32 loc, char *dst, u32 size)
{
	bpf_probe_read_kernel_str(dst, size, (char *)ctx + (loc & 0xffff));
	return loc >> 16;
}

// ------------------------------------------------------------ tracepoints

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
} __attribute__((preserve_access_index));

// include/ras/ras_event.h
struct trace_event_raw_mc_event {
	struct trace_entry ent;
	unsigned int error_type;
	u32 __data_loc_msg;
	u32 __data_loc_label;
	u16 error_count;
	u8 mc_index;
	s8 top_layer;
	s8 middle_layer;
	s8 lower_layer;
	long address;
	u8 grain_bits;
	long syndrome;
	u32 __data_loc_driver_detail;
} __attribute__((preserve_access_index));

SEC("tracepoint/ras/mc_event")
int mc_event(struct trace_event_raw_mc_event *ctx)
{
	struct rec_mc_event *r = reserve(REC_MC_EVENT, sizeof(*r));
	if (!r)
		return 0;
	r->error_type = ctx->error_type;
	r->error_count = ctx->error_count;
	r->mc_index = ctx->mc_index;
	r->top_layer = ctx->top_layer;
	r->middle_layer = ctx->middle_layer;
	r->lower_layer = ctx->lower_layer;
	r->grain_bits = ctx->grain_bits;
	r->_pad0 = 0;
	r->_pad1 = 0;
	r->address = ctx->address;
	r->syndrome = ctx->syndrome;
	r->msg_len = read_data_loc(ctx, ctx->__data_loc_msg, r->msg, sizeof(r->msg));
	r->label_len = read_data_loc(ctx, ctx->__data_loc_label, r->label, sizeof(r->label));
	r->detail_len = read_data_loc(ctx, ctx->__data_loc_driver_detail, r->driver_detail,
				      sizeof(r->driver_detail));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

// include/trace/events/mce.h (x86 only). synd/ipid came in 4.18, ppin and
// microcode in 6.x: read them only where the kernel has them.
struct trace_event_raw_mce_record {
	struct trace_entry ent;
	u64 mcgcap;
	u64 mcgstatus;
	u64 status;
	u64 addr;
	u64 misc;
	u64 synd;
	u64 ipid;
	u64 ip;
	u64 tsc;
	u64 ppin;
	u64 walltime;
	u32 cpu;
	u32 cpuid;
	u32 apicid;
	u32 socketid;
	u8 cs;
	u8 bank;
	u8 cpuvendor;
	u32 microcode;
} __attribute__((preserve_access_index));

SEC("tracepoint/mce/mce_record")
int mce_record(struct trace_event_raw_mce_record *ctx)
{
	struct rec_mce_record *r = reserve(REC_MCE_RECORD, sizeof(*r));
	if (!r)
		return 0;
	r->mcgcap = ctx->mcgcap;
	r->mcgstatus = ctx->mcgstatus;
	r->status = ctx->status;
	r->addr = ctx->addr;
	r->misc = ctx->misc;
	r->ip = ctx->ip;
	r->tsc = ctx->tsc;
	r->walltime = ctx->walltime;
	r->cpu = ctx->cpu;
	r->cpuid = ctx->cpuid;
	r->apicid = ctx->apicid;
	r->socketid = ctx->socketid;
	r->cs = ctx->cs;
	r->bank = ctx->bank;
	r->cpuvendor = ctx->cpuvendor;
	u8 flags = 0;
	r->synd = 0;
	r->ipid = 0;
	if (bpf_core_field_exists(ctx->synd) && bpf_core_field_exists(ctx->ipid)) {
		r->synd = ctx->synd;
		r->ipid = ctx->ipid;
		flags |= MCE_HAS_SYND_IPID;
	}
	r->ppin = 0;
	if (bpf_core_field_exists(ctx->ppin)) {
		r->ppin = ctx->ppin;
		flags |= MCE_HAS_PPIN;
	}
	r->microcode = 0;
	if (bpf_core_field_exists(ctx->microcode)) {
		r->microcode = ctx->microcode;
		flags |= MCE_HAS_MICROCODE;
	}
	r->flags = flags;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

// include/ras/ras_event.h; the TLP header fields came in 4.16.
struct trace_event_raw_aer_event {
	struct trace_entry ent;
	u32 __data_loc_dev_name;
	u32 status;
	u8 severity;
	u8 tlp_header_valid;
	u32 tlp_header[4];
} __attribute__((preserve_access_index));

SEC("tracepoint/ras/aer_event")
int aer_event(struct trace_event_raw_aer_event *ctx)
{
	struct rec_aer_event *r = reserve(REC_AER_EVENT, sizeof(*r));
	if (!r)
		return 0;
	r->status = ctx->status;
	r->severity = ctx->severity;
	r->tlp_header_valid = 0;
	__builtin_memset(r->tlp_header, 0, sizeof(r->tlp_header));
	if (bpf_core_field_exists(ctx->tlp_header_valid) && bpf_core_field_exists(ctx->tlp_header)) {
		r->tlp_header_valid = ctx->tlp_header_valid;
		bpf_core_read(&r->tlp_header, sizeof(r->tlp_header), &ctx->tlp_header);
	}
	r->dev_name_len = read_data_loc(ctx, ctx->__data_loc_dev_name, r->dev_name, sizeof(r->dev_name));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

// include/ras/ras_event.h until 6.18, include/trace/events/memory-failure.h
// (system memory_failure) after: the loader attaches to either.
struct trace_event_raw_memory_failure_event {
	struct trace_entry ent;
	unsigned long pfn;
	int type;
	int result;
} __attribute__((preserve_access_index));

SEC("tracepoint/ras/memory_failure_event")
int memory_failure_event(struct trace_event_raw_memory_failure_event *ctx)
{
	struct rec_memory_failure *r = reserve(REC_MEMORY_FAILURE, sizeof(*r));
	if (!r)
		return 0;
	r->pfn = ctx->pfn;
	r->type = ctx->type;
	r->result = ctx->result;
	bpf_ringbuf_submit(r, 0);
	return 0;
}
