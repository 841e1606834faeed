//go:build linux

package blockio

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestRecordLayout holds the decoder to the struct bpf2go generated from
// the C program's struct event.
func TestRecordLayout(t *testing.T) {
	var e blockioEvent
	if got := unsafe.Sizeof(e); got != recordSize {
		t.Fatalf("struct event is %d bytes, decoder reads %d", got, recordSize)
	}
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"ts_ns", unsafe.Offsetof(e.TsNs), 0},
		{"sector", unsafe.Offsetof(e.Sector), 8},
		{"dev", unsafe.Offsetof(e.Dev), 16},
		{"nr_sector", unsafe.Offsetof(e.NrSector), 20},
		{"error", unsafe.Offsetof(e.Error), 24},
		{"op", unsafe.Offsetof(e.Op), 28},
		{"kind", unsafe.Offsetof(e.Kind), 32},
		{"rwbs", unsafe.Offsetof(e.Rwbs), 36},
	} {
		if f.got != f.want {
			t.Errorf("offset of %s = %d, decoder reads %d", f.name, f.got, f.want)
		}
	}
	var h blockioHist
	if len(h.Slots) != nslots {
		t.Errorf("NSLOTS = %d in C, %d in Go", len(h.Slots), nslots)
	}
}

func TestDecodeRecord(t *testing.T) {
	btfRec := record{KtimeNs: 123456789, Sector: 2048, Dev: 7<<20 | 3, NrSectors: 8, Error: 10, Op: 1, Kind: kindBTF}
	tpRec := record{KtimeNs: 1, Sector: 1 << 40, Dev: 259<<20 | 1, NrSectors: 256, Error: -5, Kind: kindTracepoint, RWBS: "WFS"}
	full := record{Kind: kindTracepoint, RWBS: "FWFSMAUX"} // 8 bytes, no NUL
	for _, tc := range []struct {
		name    string
		in      []byte
		want    record
		wantErr string
	}{
		{"tp_btf", encodeRecord(btfRec), btfRec, ""},
		{"tracepoint", encodeRecord(tpRec), tpRec, ""},
		{"rwbs without NUL", encodeRecord(full), full, ""},
		{"longer sample", append(encodeRecord(btfRec), 0, 0, 0, 0, 0, 0, 0, 0), btfRec, ""},
		{"short", encodeRecord(btfRec)[:recordSize-1], record{}, "47 bytes"},
		{"empty", nil, record{}, "0 bytes"},
		{"block status over a byte", func() []byte { b := encodeRecord(btfRec); b[25] = 1; return b }(), record{}, "block status 266"},
		{"unknown kind", func() []byte { b := encodeRecord(btfRec); b[32] = 9; return b }(), record{}, "kind 9"},
		{"zero kind", make([]byte, recordSize), record{}, "kind 0"},
		{"rwbs not text", func() []byte { b := encodeRecord(tpRec); b[37] = 0x80; return b }(), record{}, "rwbs"},
		{"rwbs space", func() []byte { b := encodeRecord(tpRec); b[36] = ' '; return b }(), record{}, "rwbs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeRecord(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodeRecord = %+v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("decodeRecord = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if r := (record{Dev: 259<<20 | 65537}); r.Major() != 259 || r.Minor() != 65537 || devName(r) != "259:65537" {
		t.Errorf("dev split = %d:%d (%s)", r.Major(), r.Minor(), devName(r))
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(record{KtimeNs: 1, Sector: 2048, Dev: 7 << 20, NrSectors: 8, Error: 10, Kind: kindBTF}))
	f.Add(encodeRecord(record{Sector: 2048, Dev: 8 << 20, NrSectors: 8, Error: -5, Kind: kindTracepoint, RWBS: "RS"}))
	f.Add(encodeRecord(record{Kind: kindTracepoint, RWBS: "FWFSMAUX"}))
	f.Add([]byte{})
	f.Add(make([]byte, recordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the bytes that carry it.
		enc := encodeRecord(r)
		if !bytes.Equal(enc[:33], b[:33]) {
			t.Fatalf("round trip of the fixed fields differs:\n%x\n%x", enc[:33], b[:33])
		}
		again, err := decodeRecord(enc)
		if err != nil || again != r {
			t.Fatalf("re-decode = %+v, %v; want %+v", again, err, r)
		}
		// Whatever it decodes to can be normalised and named.
		v := parseKernelRelease("6.18.0")
		if st := statusName(r.Kind, r.Error, v); (r.Error != 0) != (st != "") {
			t.Fatalf("error %d of %v has no status name", r.Error, r.Kind)
		}
		if op := recordOp(r, defaultReqOps); op == "" {
			t.Fatal("empty op name")
		}
	})
}

func TestParseKernelRelease(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want kernelVersion
	}{
		{"6.18.44-fc-v669", kernelVersion{6, 18}},
		{"5.15.0-105-generic", kernelVersion{5, 15}},
		{"6.1", kernelVersion{6, 1}},
		{"4.19.0+", kernelVersion{4, 19}},
		{"7.0-rc1", kernelVersion{7, 0}},
		{"", kernelVersion{1 << 30, 0}},
		{"linux", kernelVersion{1 << 30, 0}},
	} {
		if got := parseKernelRelease(tc.in); got != tc.want {
			t.Errorf("parseKernelRelease(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// blkErrors is block/blk-core.c's blk_errors table of the kernels from
// 6.11: the blk_status_t code, the errno it maps to and its name.
var blkErrors = []struct {
	code  uint8
	errno int32
	name  string
}{
	{1, -95, "operation not supported"},
	{2, -110, "timeout"},
	{3, -28, "critical space allocation"},
	{4, -67, "recoverable transport"},
	{5, -121, "critical target"},
	{6, -52, "reservation conflict"},
	{7, -61, "critical medium"},
	{8, -84, "protection"},
	{9, -12, "kernel resource"},
	{10, -5, "I/O"},
	{11, -78, "dm internal retry"},
	{12, -11, "nonblocking retry"},
	{13, -16, "device resource"},
	{14, -109, "open zones exceeded"},
	{15, -75, "active zones exceeded"},
	{16, -19, "device offline"},
	{17, -62, "duration limit exceeded"},
	{19, -22, "invalid"},
}

// TestStatusNamesAgree: for every status the kernel has, the tp_btf path
// (the code) and the tracepoint path (its errno) give the kernel's name.
func TestStatusNamesAgree(t *testing.T) {
	v := kernelVersion{6, 18}
	for _, e := range blkErrors {
		t.Run(e.name, func(t *testing.T) {
			if got := blkStatusName(e.code, v); got != e.name {
				t.Errorf("blk_status_t %d = %q, want %q", e.code, got, e.name)
			}
			if got := errnoStatusName(e.errno, v); got != e.name {
				t.Errorf("errno %d = %q, want %q", e.errno, got, e.name)
			}
			if statusName(kindBTF, int32(e.code), v) != statusName(kindTracepoint, e.errno, v) {
				t.Error("the two paths disagree")
			}
		})
	}
	if blkStatusName(0, v) != "" || errnoStatusName(0, v) != "" {
		t.Error("success has a status name")
	}
}

func TestBlkStatusNameEras(t *testing.T) {
	for _, tc := range []struct {
		v    kernelVersion
		code uint8
		want string
	}{
		{kernelVersion{5, 4}, 6, StatusNexus},
		{kernelVersion{6, 5}, 6, StatusReservationConflict},
		{kernelVersion{5, 15}, 10, StatusIO},
		{kernelVersion{6, 1}, 17, StatusOffline},
		{kernelVersion{6, 6}, 18, StatusDurationLimit},
		{kernelVersion{6, 6}, 15, StatusZoneOpen},
		{kernelVersion{6, 10}, 16, StatusOffline},
		{kernelVersion{6, 10}, 14, StatusZoneOpen},
		{kernelVersion{7, 1}, 18, StatusInvalid},
		{kernelVersion{6, 18}, 200, StatusIO}, // unknown: what blk_status_to_errno makes of it
		{kernelVersion{4, 19}, 14, StatusIO},
	} {
		if got := blkStatusName(tc.code, tc.v); got != tc.want {
			t.Errorf("%d.%d: blk_status_t %d = %q, want %q", tc.v.major, tc.v.minor, tc.code, got, tc.want)
		}
	}
	if got := errnoStatusName(-52, kernelVersion{5, 10}); got != StatusNexus {
		t.Errorf("EBADE on 5.10 = %q", got)
	}
	if got := errnoStatusName(-1, kernelVersion{6, 18}); got != StatusIO {
		t.Errorf("EPERM = %q, want I/O", got)
	}
}

func FuzzStatusName(f *testing.F) {
	f.Add(uint8(1), int32(10), "6.18.0")
	f.Add(uint8(2), int32(-5), "5.4.0")
	f.Add(uint8(2), int32(-61), "")
	f.Add(uint8(1), int32(255), "6.9")
	f.Fuzz(func(t *testing.T, k uint8, code int32, rel string) {
		v := parseKernelRelease(rel)
		name := statusName(kind(k), code, v)
		if name == "" && code != 0 && (kind(k) != kindBTF || uint8(code) != 0) {
			t.Fatalf("error %d (kind %d) has no name", code, k)
		}
		class, raise := faultClass(name)
		if raise != (class != "") {
			t.Fatalf("status %q: class %q, raised %v", name, class, raise)
		}
		if raise && class != ClassIOError && class != ClassMediumError {
			t.Fatalf("status %q raised as %q", name, class)
		}
	})
}

func TestFaultClass(t *testing.T) {
	for _, tc := range []struct {
		status string
		class  string
	}{
		{StatusIO, ClassIOError},
		{StatusMedium, ClassMediumError},
		{StatusTimeout, ClassIOError},
		{StatusTarget, ClassIOError},
		{StatusNexus, ClassIOError},
		{StatusReservationConflict, ClassIOError},
		{StatusProtection, ClassIOError},
		{StatusTransport, ClassIOError},
		{StatusOffline, ClassIOError},
		{StatusNotSupported, ""},
		{StatusResource, ""},
		{StatusDevResource, ""},
		{StatusAgain, ""},
		{StatusNoSpace, ""},
		{StatusDurationLimit, ""},
		{StatusInvalid, ""},
		{StatusZoneOpen, ""},
		{"", ""},
	} {
		class, raise := faultClass(tc.status)
		if class != tc.class || raise != (tc.class != "") {
			t.Errorf("faultClass(%q) = %q, %v; want %q", tc.status, class, raise, tc.class)
		}
	}
}

func TestOpFromRWBS(t *testing.T) {
	for _, tc := range []struct{ rwbs, want string }{
		{"R", OpRead},
		{"RS", OpRead},
		{"RA", OpRead}, // readahead
		{"RM", OpRead},
		{"W", OpWrite},
		{"WS", OpWrite},
		{"WFS", OpWrite}, // FUA
		{"FWS", OpWrite}, // preflush
		{"FWFSM", OpWrite},
		{"F", OpFlush},
		{"FS", OpFlush},
		{"FF", OpFlush}, // the flush machinery's own request
		{"FN", OpUnknown},
		{"D", OpDiscard},
		{"DE", OpSecureErase},
		{"WZ", OpWriteZeroes},
		{"ZA", "ZONE_APPEND"},
		{"ZR", "ZONE_RESET"},
		{"ZRA", "ZONE_RESET_ALL"},
		{"ZF", "ZONE_FINISH"},
		{"ZO", "ZONE_OPEN"},
		{"ZC", "ZONE_CLOSE"},
		{"N", OpUnknown},
		{"", OpUnknown},
		{"X", OpUnknown},
	} {
		if got := opFromRWBS(tc.rwbs); got != tc.want {
			t.Errorf("opFromRWBS(%q) = %q, want %q", tc.rwbs, got, tc.want)
		}
	}
	// The tp_btf path names the same operations from their numbers.
	for num, name := range map[uint32]string{0: OpRead, 1: OpWrite, 2: OpFlush, 3: OpDiscard, 5: OpSecureErase, 9: OpWriteZeroes, 77: OpUnknown} {
		if got := opName(num, defaultReqOps); got != name {
			t.Errorf("opName(%d) = %q, want %q", num, got, name)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	h.Slots[0] = 1   // [0,2)
	h.Slots[3] = 50  // [8,16)
	h.Slots[10] = 49 // [1024,2048)
	h.Count, h.Errors, h.SumNs = 100, 2, 100*500_000
	if got := h.quantile(0.5); got < 8 || got >= 16 {
		t.Errorf("p50 = %v, want in [8,16)", got)
	}
	if got := h.quantile(0.99); got < 1024 || got >= 2048 {
		t.Errorf("p99 = %v, want in [1024,2048)", got)
	}
	if got := h.quantile(0.01); got < 0 || got > 2 {
		t.Errorf("p1 = %v, want in [0,2]", got)
	}
	var open histogram
	open.Slots[nslots-1] = 3
	if got := open.quantile(0.99); got != math.Ldexp(1, nslots-1) {
		t.Errorf("p99 in the open bucket = %v", got)
	}
	if !math.IsNaN((histogram{}).quantile(0.5)) {
		t.Error("quantile of nothing is a number")
	}

	s := sampleMap(h.samples(30 * time.Second))
	want := map[string]float64{
		SampleRequests: 100, SampleErrors: 2, SampleInterval: 30, SampleLatencyMean: 500,
		"latency_us_0_2": 1, "latency_us_8_16": 50, "latency_us_1024_2048": 49,
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("sample %s = %v, want %v", k, s[k], v)
		}
	}
	if len(s) != len(want)+2 {
		t.Errorf("samples = %v; want %d (the non-empty buckets only)", s, len(want)+2)
	}
	if bucketName(nslots-1) != "latency_us_67108864_inf" || bucketName(1) != "latency_us_2_4" {
		t.Errorf("bucket names %q, %q", bucketName(nslots-1), bucketName(1))
	}

	// An idle interval says so and carries no latency.
	idle := sampleMap((histogram{Errors: 1}).samples(time.Second))
	if len(idle) != 3 || idle[SampleRequests] != 0 || idle[SampleErrors] != 1 {
		t.Errorf("idle samples = %v", idle)
	}

	// Intervals are differences; a counter that went down starts over.
	later := h
	later.Slots[3] += 7
	later.Count += 7
	d := later.sub(h)
	if d.total() != 7 || d.Count != 7 || d.Errors != 0 {
		t.Errorf("difference = %+v", d)
	}
	reset := histogram{Count: 3, Errors: 5}
	reset.Slots[0] = 3
	if d := reset.sub(h); d != reset {
		t.Errorf("after a reset = %+v", d)
	}
}

func sampleMap(s []*hwhealv1.Sample) map[string]float64 {
	return sourcetest.SampleMap(&hwhealv1.Observation{Samples: s})
}

// TestFault checks the fault made of a record against a fixture sysfs,
// without BPF.
func TestFault(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys", "dev", "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../devices/virtual/block/loop0", filepath.Join(root, "sys", "dev", "block", "7:0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sr0", filepath.Join(root, "sys", "dev", "block", "11:0")); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Root: root})
	tr := &tracer{kernel: kernelVersion{6, 18}, ops: defaultReqOps}
	base := record{KtimeNs: 1, Sector: 2048, Dev: 7 << 20, NrSectors: 8}
	for _, tc := range []struct {
		name          string
		r             func(record) record
		class, status string
		op, device    string
		summary       string
	}{
		{"tp_btf EIO", func(r record) record { r.Kind, r.Error, r.Op = kindBTF, 10, 0; return r },
			ClassIOError, "I/O", "READ", "loop0", "I/O error on loop0 at sector 2048 (READ)"},
		{"tracepoint EIO", func(r record) record { r.Kind, r.Error, r.RWBS = kindTracepoint, -5, "RS"; return r },
			ClassIOError, "I/O", "READ", "loop0", "I/O error on loop0 at sector 2048 (READ)"},
		{"medium write", func(r record) record { r.Kind, r.Error, r.Op = kindBTF, 7, 1; return r },
			ClassMediumError, "critical medium", "WRITE", "loop0", "critical medium error on loop0 at sector 2048 (WRITE)"},
		{"disk gone", func(r record) record {
			r.Kind, r.Error, r.RWBS, r.Dev = kindTracepoint, -110, "FWS", 8<<20|16
			return r
		},
			ClassIOError, "timeout", "WRITE", "8:16", "timeout error on 8:16 at sector 2048 (WRITE)"},
		{"not supported", func(r record) record { r.Kind, r.Error = kindBTF, 1; return r }, "", "", "", "", ""},
		{"empty optical drive", func(r record) record { r.Kind, r.Error, r.Op, r.Dev = kindBTF, 10, 0, 11<<20; return r }, "", "", "", "", ""},
		{"tp_btf passthrough", func(r record) record { r.Kind, r.Error, r.Op = kindBTF, 10, 34; return r }, "", "", "", "", ""},
		{"tracepoint passthrough", func(r record) record {
			r.Kind, r.Error, r.RWBS, r.Sector, r.NrSectors = kindTracepoint, -5, "N", 0, 0
			return r
		}, "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := s.fault(tr, tc.r(base))
			if tc.class == "" {
				if f != nil {
					t.Fatalf("raised %v", f)
				}
				return
			}
			if f == nil {
				t.Fatal("not raised")
			}
			c := f.GetEvidence().GetCaptures()
			if f.GetFaultClass() != tc.class || f.GetSeverity() != hwhealv1.Severity_SEVERITY_CRITICAL || f.GetRule() != Rule ||
				f.GetPart().GetKind() != hwhealv1.PartKind_PART_KIND_DISK || f.GetPart().GetName() != tc.device ||
				f.GetSummary() != tc.summary {
				t.Errorf("fault = %v", f)
			}
			want := map[string]string{CaptureDevice: tc.device, CaptureSector: "2048", CaptureOp: tc.op,
				CaptureStatus: tc.status, CaptureNrSectors: "8", CaptureDev: devName(tc.r(base))}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("capture %s = %q, want %q", k, c[k], v)
				}
			}
			if len(c) != len(want) {
				t.Errorf("captures = %v", c)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero", Config{}, ""},
		{"tracepoint", Config{Attach: AttachTracepoint}, ""},
		{"negative interval", Config{Interval: -time.Second}, "Interval"},
		{"negative window", Config{ProbeWindow: -time.Second}, "ProbeWindow"},
		{"unknown attach", Config{Attach: "kprobe"}, "Attach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
			if tc.want == "" {
				return
			}
			// Run and Probe refuse it the same way.
			s := New(tc.cfg)
			if err := s.Run(context.Background(), &sourcetest.Sink{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v", err)
			}
			if p := s.Probe(context.Background()); !strings.Contains(p.Unavailable, tc.want) {
				t.Errorf("Probe.Unavailable = %q", p.Unavailable)
			}
		})
	}
}

func TestSortedDevs(t *testing.T) {
	got := sortedDevs(map[uint32]histogram{8 << 20: {}, 7<<20 | 1: {}, 7 << 20: {}})
	if !slices.Equal(got, []uint32{7 << 20, 7<<20 | 1, 8 << 20}) {
		t.Errorf("sortedDevs = %v", got)
	}
}
