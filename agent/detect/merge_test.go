package detect_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/agent/detect/detecttest"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Real kernel lines of failed requests (examples.yaml): two sectors of sda,
// and two lines of the same rule that are not a failed request with a
// sector.
const (
	kmsgSda4196408 = "I/O error, dev sda, sector 4196408 op 0x0:(READ) flags 0x83700 phys_seg 9 prio class 2"
	kmsgMedium     = "critical medium error, dev nvme0n1, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"
	kmsgBufferIO   = "Buffer I/O error on dev nvme0n1, logical block 0, async page read"
)

// kmsgFault is what the agent makes of a kernel line: the shipped rules'
// fault, stamped at at.
func kmsgFault(t testing.TB, rs *detect.RuleSet, line string, at time.Time) *hwhealv1.Fault {
	t.Helper()
	fs := rs.Match(kernlog.Record{Level: 3, Facility: 0, Seq: 42, Message: line})
	if len(fs) != 1 {
		t.Fatalf("Match(%q) = %s, want one fault", line, describe(fs))
	}
	fs[0].Time = timestamppb.New(at)
	return fs[0]
}

// ebpfFault is a failed request as the eBPF block source raises it (its
// package is written alongside; this is the shape its contract gives:
// rule ebpf-block-rq-error, captures device, sector, op, status, no kernel
// log evidence).
func ebpfFault(device, sector string, at time.Time) *hwhealv1.Fault {
	return &hwhealv1.Fault{
		FaultClass: "disk.io_error",
		Severity:   hwhealv1.Severity_SEVERITY_CRITICAL,
		Part:       &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: device, Serial: "WD-WMC4N0123456"},
		Rule:       "ebpf-block-rq-error",
		Time:       timestamppb.New(at),
		Summary:    "Block request failed on " + device + " at sector " + sector,
		Evidence: &hwhealv1.Evidence{Captures: map[string]string{
			"device": device, "sector": sector, "op": "READ", "status": "10",
		}},
	}
}

type emitted struct {
	at     time.Duration // clock reading when sent, from the start
	rule   string
	sector string
	time   time.Duration // the fault's Time, from the start
}

func (e emitted) String() string {
	return fmt.Sprintf("{%v %s sector=%s time=%v}", e.at, e.rule, e.sector, e.time)
}

// TestMerger plays scripts of faults into a Merger on a manual clock and
// checks what is sent, when, and as what.
func TestMerger(t *testing.T) {
	rs := builtin(t)
	type add struct {
		at time.Duration // clock reading when added (and the fault's time)
		f  func(at time.Time) *hwhealv1.Fault
	}
	// A fault is dated by when its request failed, not when it arrives:
	// kmsg and ebpf date theirs at the start (one request); kmsgReq and
	// ebpfReq at req, for scripts of several requests.
	kmsgReq := func(line string, req time.Duration) func(time.Time) *hwhealv1.Fault {
		return func(time.Time) *hwhealv1.Fault { return kmsgFault(t, rs, line, t0.Add(req)) }
	}
	ebpfReq := func(device, sector string, req time.Duration) func(time.Time) *hwhealv1.Fault {
		return func(time.Time) *hwhealv1.Fault { return ebpfFault(device, sector, t0.Add(req)) }
	}
	kmsg := func(line string) func(time.Time) *hwhealv1.Fault { return kmsgReq(line, 0) }
	ebpf := func(device, sector string) func(time.Time) *hwhealv1.Fault { return ebpfReq(device, sector, 0) }
	const ms = time.Millisecond
	merged := "blk-io-error+ebpf-block-rq-error"
	for _, tc := range []struct {
		name    string
		cfg     detect.MergerConfig
		adds    []add
		closeAt time.Duration // 0: run to 10 s, then Close
		want    []emitted
		stats   detect.MergerStats
	}{
		{
			name:  "kernel log first: sent at once, its eBPF twin within the hold dropped",
			adds:  []add{{0, kmsg(kmsgSda4196408)}, {3 * ms, ebpf("sda", "4196408")}},
			want:  []emitted{{0, "blk-io-error", "4196408", 0}},
			stats: detect.MergerStats{Merged: 1},
		},
		{
			name:  "eBPF first, kernel log within the hold",
			adds:  []add{{0, ebpf("sda", "4196408")}, {40 * ms, kmsg(kmsgSda4196408)}},
			want:  []emitted{{40 * ms, merged, "4196408", 0}},
			stats: detect.MergerStats{Merged: 1},
		},
		{
			name:  "no partner: sent alone when the hold ends",
			adds:  []add{{0, ebpf("sda", "4196408")}},
			want:  []emitted{{250 * ms, "ebpf-block-rq-error", "4196408", 0}},
			stats: detect.MergerStats{Alone: 1},
		},
		{
			name:  "the kernel's line after the eBPF report's hold: dropped as its twin",
			adds:  []add{{0, ebpf("sda", "4196408")}, {300 * ms, kmsg(kmsgSda4196408)}},
			want:  []emitted{{250 * ms, "ebpf-block-rq-error", "4196408", 0}},
			stats: detect.MergerStats{Alone: 1, Merged: 1},
		},
		{
			name:  "partner too late: two faults",
			adds:  []add{{0, ebpf("sda", "4196408")}, {600 * ms, kmsg(kmsgSda4196408)}},
			want:  []emitted{{250 * ms, "ebpf-block-rq-error", "4196408", 0}, {600 * ms, "blk-io-error", "4196408", 0}},
			stats: detect.MergerStats{Alone: 2},
		},
		{
			name:  "custom hold",
			cfg:   detect.MergerConfig{Hold: time.Second},
			adds:  []add{{0, ebpf("sda", "4196408")}, {900 * ms, kmsg(kmsgSda4196408)}},
			want:  []emitted{{900 * ms, merged, "4196408", 0}},
			stats: detect.MergerStats{Merged: 1},
		},
		{
			name: "same source twice is two requests, each paired in turn",
			adds: []add{
				{0, ebpf("sda", "4196408")}, {10 * ms, ebpfReq("sda", "4196408", 10*ms)},
				{20 * ms, kmsg(kmsgSda4196408)},
			},
			want: []emitted{
				{20 * ms, merged, "4196408", 0},
				{260 * ms, "ebpf-block-rq-error", "4196408", 10 * ms},
			},
			stats: detect.MergerStats{Merged: 1, Alone: 1},
		},
		{
			name: "a retry seen by both sources makes two merged faults",
			adds: []add{
				{0, kmsg(kmsgSda4196408)}, {5 * ms, kmsgReq(kmsgSda4196408, 5*ms)},
				{6 * ms, ebpf("sda", "4196408")}, {7 * ms, ebpfReq("sda", "4196408", 5*ms)},
			},
			want:  []emitted{{0, "blk-io-error", "4196408", 0}, {5 * ms, "blk-io-error", "4196408", 5 * ms}},
			stats: detect.MergerStats{Merged: 2},
		},
		{
			name: "another sector or device is not a partner",
			adds: []add{{0, kmsg(kmsgSda4196408)}, {1 * ms, ebpf("sda", "4196409")}, {2 * ms, ebpf("sdb", "4196408")}},
			want: []emitted{
				{0, "blk-io-error", "4196408", 0},
				{251 * ms, "ebpf-block-rq-error", "4196409", 0},
				{252 * ms, "ebpf-block-rq-error", "4196408", 0},
			},
			stats: detect.MergerStats{Alone: 3},
		},
		{
			name: "faults without a sector pass straight through; a medium error is no partner of an I/O error",
			adds: []add{
				{0, ebpf("nvme0n1", "0")},
				{1 * ms, kmsg(kmsgMedium)},   // disk.medium_error
				{2 * ms, kmsg(kmsgBufferIO)}, // disk.io_error, logical block, no sector
			},
			want: []emitted{
				{1 * ms, "blk-medium-error", "0", 0},
				{2 * ms, "buffer-io-error", "", 0},
				{250 * ms, "ebpf-block-rq-error", "0", 0},
			},
			stats: detect.MergerStats{Passed: 1, Alone: 2},
		},
		{
			name: "a medium error seen by both sources is one fault",
			adds: []add{
				{0, func(at time.Time) *hwhealv1.Fault {
					f := ebpfFault("nvme0n1", "0", at)
					f.FaultClass = "disk.medium_error"
					return f
				}},
				{1 * ms, kmsg(kmsgMedium)},
			},
			want:  []emitted{{1 * ms, "blk-medium-error+ebpf-block-rq-error", "0", 0}},
			stats: detect.MergerStats{Merged: 1},
		},
		{
			name:    "close flushes what is held, oldest first",
			adds:    []add{{0, ebpf("sda", "1")}, {1 * ms, kmsg(kmsgSda4196408)}, {2 * ms, ebpf("sdb", "2")}},
			closeAt: 100 * ms,
			want: []emitted{
				{1 * ms, "blk-io-error", "4196408", 0},
				{100 * ms, "ebpf-block-rq-error", "1", 0},
				{100 * ms, "ebpf-block-rq-error", "2", 0},
			},
			stats: detect.MergerStats{Alone: 3},
		},
		{
			name: "a full merger sends its oldest at once",
			cfg:  detect.MergerConfig{MaxHeld: 2},
			adds: []add{
				{0, ebpf("sda", "1")}, {1 * ms, ebpf("sda", "2")}, {2 * ms, ebpf("sda", "3")},
				{3 * ms, ebpf("sda", "4")}, {4 * ms, kmsg(kmsgSda4196408)},
			},
			want: []emitted{
				{2 * ms, "ebpf-block-rq-error", "1", 0},
				{3 * ms, "ebpf-block-rq-error", "2", 0},
				{4 * ms, "ebpf-block-rq-error", "3", 0},
				{4 * ms, "blk-io-error", "4196408", 0},
				{253 * ms, "ebpf-block-rq-error", "4", 0},
			},
			stats: detect.MergerStats{Evicted: 3, Alone: 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := detecttest.NewClock(t0)
			tc.cfg.Clock = clk
			var got []emitted
			m := detect.NewMerger(tc.cfg, func(f *hwhealv1.Fault) {
				got = append(got, emitted{
					at:     clk.Now().Sub(t0),
					rule:   f.GetRule(),
					sector: f.GetEvidence().GetCaptures()["sector"],
					time:   f.GetTime().AsTime().Sub(t0),
				})
			})
			now := time.Duration(0)
			for _, a := range tc.adds {
				clk.Advance(a.at - now)
				now = a.at
				m.Add(a.f(t0.Add(a.at)))
			}
			end := tc.closeAt
			if end == 0 {
				end = 10 * time.Second
			}
			clk.Advance(end - now)
			m.Close()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("sent\n %v\nwant\n %v", got, tc.want)
			}
			if st := m.Stats(); st != tc.stats {
				t.Errorf("Stats() = %+v, want %+v", st, tc.stats)
			}
			if clk.Pending() != 0 {
				t.Errorf("%d timers still pending after Close", clk.Pending())
			}
			m.Add(ebpfFault("sda", "1", t0))
			if len(got) != len(tc.want)+1 {
				t.Error("Add after Close did not pass the fault straight through")
			}
		})
	}
}

// TestMergedFault checks what a merged fault is made of when the eBPF
// report waited for the kernel's line, and that a line that came first is
// sent as it is.
func TestMergedFault(t *testing.T) {
	rs := builtin(t)
	for _, kmsgFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("kernel log first=%v", kmsgFirst), func(t *testing.T) {
			clk := detecttest.NewClock(t0)
			var out []*hwhealv1.Fault
			m := detect.NewMerger(detect.MergerConfig{Clock: clk}, func(f *hwhealv1.Fault) { out = append(out, f) })
			k := kmsgFault(t, rs, kmsgSda4196408, t0.Add(2*time.Millisecond))
			e := ebpfFault("sda", "4196408", t0.Add(1*time.Millisecond))
			e.Severity = hwhealv1.Severity_SEVERITY_WARNING
			e.Evidence.Samples = []*hwhealv1.Sample{{Name: "latency_us", Value: 30e6}}
			if kmsgFirst {
				m.Add(k)
				m.Add(e)
			} else {
				m.Add(e)
				m.Add(k)
			}
			m.Close()
			if len(out) != 1 {
				t.Fatalf("%d faults sent, want 1", len(out))
			}
			f := out[0]
			if kmsgFirst {
				// Sent at once as it came; its eBPF twin was dropped.
				if f != k || f.GetRule() != "blk-io-error" || m.Stats().Merged != 1 {
					t.Fatalf("sent %v (merged %d), want the kernel log fault as it came", f, m.Stats().Merged)
				}
				return
			}
			caps := f.GetEvidence().GetCaptures()
			for _, c := range []struct{ what, got, want string }{
				{"rule", f.GetRule(), "blk-io-error+ebpf-block-rq-error"},
				{"class", f.GetFaultClass(), "disk.io_error"},
				{"severity", f.GetSeverity().String(), "SEVERITY_CRITICAL"},
				{"time", f.GetTime().AsTime().Sub(t0).String(), "1ms"},
				{"summary", f.GetSummary(), "I/O error on sda at sector 4196408"},
				{"part name", f.GetPart().GetName(), "sda"},
				{"part serial (from eBPF)", f.GetPart().GetSerial(), "WD-WMC4N0123456"},
				{"kernel log", f.GetEvidence().GetKernelLog().GetMessage(), kmsgSda4196408},
				{"device", caps["device"], "sda"},
				{"sector", caps["sector"], "4196408"},
				{"op (same in both)", caps["op"], "READ"},
				{"status (kernel log's)", caps["status"], "I/O"},
				{"status (eBPF's)", caps["status@ebpf-block-rq-error"], "10"},
				{"samples", fmt.Sprint(len(f.GetEvidence().GetSamples())), "1"},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if _, ok := caps["op@ebpf-block-rq-error"]; ok {
				t.Error("a capture both sources agree on was kept twice")
			}
		})
	}
}

// TestMergerSystemClock runs the Merger on the real clock: a lone fault
// leaves after the hold, a pair at once, Close flushes a fault whose timer
// is pending, and no goroutine is left behind.
func TestMergerSystemClock(t *testing.T) {
	defer goleak.VerifyNone(t)
	rs := builtin(t)
	sent := make(chan *hwhealv1.Fault, 8)
	m := detect.NewMerger(detect.MergerConfig{Hold: 20 * time.Millisecond}, func(f *hwhealv1.Fault) { sent <- f })

	start := time.Now()
	m.Add(ebpfFault("sda", "1", start))
	select {
	case f := <-sent:
		if f.GetRule() != "ebpf-block-rq-error" || time.Since(start) < 20*time.Millisecond {
			t.Errorf("lone fault %s sent after %v, want after the 20ms hold", f.GetRule(), time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lone fault not sent after its hold")
	}

	m.Add(ebpfFault("sda", "4196408", time.Now()))
	m.Add(kmsgFault(t, rs, kmsgSda4196408, time.Now()))
	select {
	case f := <-sent:
		if !strings.Contains(f.GetRule(), "+") {
			t.Errorf("pair sent as %s, want merged", f.GetRule())
		}
	default:
		t.Fatal("pair not sent at once")
	}

	m2 := detect.NewMerger(detect.MergerConfig{Hold: time.Hour}, func(f *hwhealv1.Fault) { sent <- f })
	m2.Add(ebpfFault("sdb", "7", time.Now()))
	m2.Close()
	select {
	case f := <-sent:
		if f.GetEvidence().GetCaptures()["sector"] != "7" {
			t.Errorf("Close sent %v", f)
		}
	default:
		t.Fatal("Close did not flush the held fault")
	}
	m.Close()
}

// TestMergerConcurrent feeds the two halves of many failed requests from
// two goroutines, as the kmsg reader and the eBPF reader would: each
// request is sent once, merged. Run with -race.
func TestMergerConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	rs := builtin(t)
	const n = 2000
	var mu sync.Mutex
	count := map[string]int{}
	rules := map[string]int{}
	m := detect.NewMerger(detect.MergerConfig{Hold: time.Minute, MaxHeld: 2 * n}, func(f *hwhealv1.Fault) {
		mu.Lock()
		count[f.GetEvidence().GetCaptures()["sector"]]++
		rules[f.GetRule()]++
		mu.Unlock()
	})
	// Kernel log faults for n sectors, made from a real line with the
	// sector changed: the rule's own captures, not a hand-made fault.
	kf := make([]*hwhealv1.Fault, n)
	for i := range kf {
		kf[i] = kmsgFault(t, rs, strings.Replace(kmsgSda4196408, "4196408", strconv.Itoa(i), 1), t0)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, f := range kf {
			m.Add(f)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			m.Add(ebpfFault("sda", strconv.Itoa(i), t0))
		}
	}()
	wg.Wait()
	m.Close()
	// Which source came first is up to the scheduler: a merged fault or
	// the kernel's line alone, never the eBPF report alone.
	if len(count) != n || rules["blk-io-error+ebpf-block-rq-error"]+rules["blk-io-error"] != n || m.Stats().Merged != n {
		t.Errorf("%d sectors sent, rules %v, stats %+v; want %d, each once, all merged", len(count), rules, m.Stats(), n)
	}
	for s, c := range count {
		if c != 1 {
			t.Errorf("sector %s sent %d times", s, c)
		}
	}
}

// BenchmarkMergerPair is the cost of one failed request reported by both
// sources: hold the eBPF fault, pair the kernel log one, send one merged
// fault (on the system clock, so a timer is started and stopped each time).
// The faults are made outside the timed part, in batches.
func BenchmarkMergerPair(b *testing.B) {
	rs := builtin(b)
	m := detect.NewMerger(detect.MergerConfig{}, func(*hwhealv1.Fault) {})
	defer m.Close()
	const batch = 1024
	ks := make([]*hwhealv1.Fault, batch)
	es := make([]*hwhealv1.Fault, batch)
	fill := func() {
		for i := range ks {
			ks[i] = kmsgFault(b, rs, kmsgSda4196408, t0)
			es[i] = ebpfFault("sda", "4196408", t0)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			fill()
			b.StartTimer()
		}
		m.Add(es[i%batch])
		m.Add(ks[i%batch])
	}
}

// BenchmarkMergerPassThrough is the cost for every fault of another class.
func BenchmarkMergerPassThrough(b *testing.B) {
	rs := builtin(b)
	m := detect.NewMerger(detect.MergerConfig{}, func(*hwhealv1.Fault) {})
	defer m.Close()
	f := kmsgFault(b, rs, kmsgMedium, t0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Add(f)
	}
}

// FuzzMerger plays arbitrary interleavings of both sources' faults, other
// faults and clock moves, then closes: every fault added is sent exactly
// once (a merged fault counts for its two) or dropped as the eBPF twin of a
// kernel line sent before it, a merged fault joins one fault of each
// source of the same request, and nothing stays held.
func FuzzMerger(f *testing.F) {
	f.Add([]byte{0, 1, 3, 4, 5, 2, 255, 0, 0, 1, 1})
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 1, 0x7f, 5, 9, 13})
	f.Add([]byte{1, 5, 9, 13, 17, 21, 25, 0, 4, 8})
	f.Fuzz(func(t *testing.T, script []byte) {
		clk := detecttest.NewClock(t0)
		sent := map[*hwhealv1.Fault]bool{}
		parts, mergedSent := 0, 0
		m := detect.NewMerger(detect.MergerConfig{Clock: clk, MaxHeld: 8}, func(f *hwhealv1.Fault) {
			if sent[f] {
				t.Fatalf("fault %v sent twice", f)
			}
			sent[f] = true
			rules := strings.Split(f.GetRule(), "+")
			if len(rules) == 2 && (rules[0] != "blk-io-error" || rules[1] != "ebpf-block-rq-error") {
				t.Fatalf("merged %s", f.GetRule())
			}
			parts += len(rules)
			if len(rules) == 2 {
				mergedSent++
			}
		})
		added := 0
		for _, b := range script {
			sector := strconv.Itoa(int(b>>2) % 3)
			switch b % 4 {
			case 0:
				m.Add(&hwhealv1.Fault{FaultClass: "disk.io_error", Rule: "blk-io-error", Evidence: &hwhealv1.Evidence{
					KernelLog: &hwhealv1.KernelLogRecord{Message: "I/O error, dev sda, sector " + sector},
					Captures:  map[string]string{"device": "sda", "sector": sector},
				}})
				added++
			case 1:
				m.Add(ebpfFault("sda", sector, t0))
				added++
			case 2:
				m.Add(&hwhealv1.Fault{FaultClass: "nic.link_down", Rule: "nic-link-down"})
				added++
			case 3:
				clk.Advance(time.Duration(b>>2) * 10 * time.Millisecond)
			}
		}
		m.Close()
		if twins := int(m.Stats().Merged) - mergedSent; parts+twins != added {
			t.Fatalf("%d faults added, %d sent (counting merged ones twice), %d twins dropped", added, parts, twins)
		}
		if st := m.Stats(); st.Held != 0 || clk.Pending() != 0 {
			t.Fatalf("after Close: %+v, %d timers pending", st, clk.Pending())
		}
	})
}
