//go:build linux

package blockio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/test/faultinject"
)

// latencySink times each fault about one device from the kernel's
// completion of the request (the fault's time) to its hand-over.
type latencySink struct {
	device string
	ch     chan time.Duration
}

func (s *latencySink) Observe(*hwhealv1.Observation) {}
func (s *latencySink) Log(kernlog.Record)            {}
func (s *latencySink) Raise(f *hwhealv1.Fault) {
	if f.GetPart().GetName() == s.device {
		s.ch <- time.Since(f.GetTime().AsTime())
	}
}

// BenchmarkFaultLatency measures, for each attach strategy, the time from
// the kernel completing a failed request (bpf_ktime_get_ns, turned into the
// fault's wall-clock time) to the source handing the fault to the sink,
// one failed O_DIRECT read at a time. The read itself, from pread to its
// EIO, is the baseline, measured in the same loop. Run it with
// -benchtime=500x for a few hundred failed requests.
func BenchmarkFaultLatency(b *testing.B) {
	requireKernel(b)
	for _, attach := range []string{AttachBTF, AttachTracepoint} {
		b.Run(attach, func(b *testing.B) {
			d := faultinject.NewDisk(b, faultinject.FileConfig{Size: 4 << 20, Bad: []faultinject.Range{faultinject.Sectors(2048, 8)}})
			sink := &latencySink{device: d.Loop.Name, ch: make(chan time.Duration, 1)}
			df, err := faultinject.OpenDirect(d.Loop.Path)
			if err != nil {
				b.Fatal(err)
			}
			defer df.Close()
			stop := benchRun(b, attach, sink)
			defer stop()
			var faults, reads []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := df.ReadAt(2048*512, 4096); err == nil {
					b.Fatal("bad read succeeded")
				}
				reads = append(reads, time.Since(t0))
				select {
				case l := <-sink.ch:
					faults = append(faults, l)
				case <-time.After(2 * time.Second):
					b.Fatal("no fault within 2s of a failed read")
				}
			}
			report(b, "fault", faults)
			report(b, "read", reads)
		})
	}
}

// benchRun runs a source with the latency sink until the returned func.
func benchRun(b *testing.B, attach string, sink *latencySink) func() {
	b.Helper()
	s := New(Config{Attach: attach, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	for s.Attached() == "" {
		select {
		case err := <-done:
			b.Fatalf("Run = %v", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// report adds the p50 and p99 of ds, in µs, to the benchmark's output.
func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / 1e3
	}
	b.ReportMetric(q(0.50), name+"-p50-µs")
	b.ReportMetric(q(0.99), name+"-p99-µs")
}

const memoryEnv = "HWHEAL_BLOCKIO_MEMORY"

// memoryFigures is what the child of BenchmarkLoadMemory measured, in KiB.
type memoryFigures struct {
	RSSBefore, PeakAfterLoad, RSSAfterLoad, RSSSteady int
	HeapAllocatedKiB, HeapInUseSteadyKiB              uint64
}

// BenchmarkLoadMemory measures what loading the programs costs a fresh
// process: the peak RSS while loading (kernel BTF decoded for CO-RE) and
// the RSS once the load's garbage is collected, each against the RSS
// before, and the bytes allocated by the load.
func BenchmarkLoadMemory(b *testing.B) {
	requireKernel(b)
	for _, attach := range []string{AttachBTF, AttachTracepoint} {
		b.Run(attach, func(b *testing.B) {
			var sum memoryFigures
			n := 0
			for b.Loop() {
				cmd := exec.Command(os.Args[0])
				cmd.Env = append(os.Environ(), memoryEnv+"="+attach)
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var m memoryFigures
				if err := json.Unmarshal(lastLine(out), &m); err != nil {
					b.Fatalf("child said %q: %v", out, err)
				}
				sum.RSSBefore += m.RSSBefore
				sum.PeakAfterLoad += m.PeakAfterLoad - m.RSSBefore
				sum.RSSSteady += m.RSSSteady - m.RSSBefore
				sum.RSSAfterLoad += m.RSSAfterLoad - m.RSSBefore
				sum.HeapAllocatedKiB += m.HeapAllocatedKiB
				n++
			}
			f := float64(n) * 1024
			b.ReportMetric(float64(sum.RSSBefore)/f, "base-RSS-MiB")
			b.ReportMetric(float64(sum.PeakAfterLoad)/f, "peak-RSS-delta-MiB")
			b.ReportMetric(float64(sum.RSSSteady)/f, "steady-RSS-delta-MiB")
			b.ReportMetric(float64(sum.HeapAllocatedKiB)/f, "load-alloc-MiB")
		})
	}
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// memoryHelper is the child's whole run: load, measure, print.
func memoryHelper() int {
	attach := os.Getenv(memoryEnv)
	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets the peak RSS (VmHWM).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Println(err)
		return 1
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocBefore := ms.TotalAlloc
	m := memoryFigures{RSSBefore: procStatus("VmRSS")}
	t, err := openTracer(attach, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer t.Close()
	runtime.ReadMemStats(&ms)
	m.HeapAllocatedKiB = (ms.TotalAlloc - allocBefore) >> 10
	m.PeakAfterLoad, m.RSSAfterLoad = procStatus("VmHWM"), procStatus("VmRSS")
	// The kernel BTF's mapping goes with a cleanup that runs after a
	// collection: collect twice.
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	debug.FreeOSMemory()
	runtime.ReadMemStats(&ms)
	m.RSSSteady, m.HeapInUseSteadyKiB = procStatus("VmRSS"), ms.HeapInuse>>10
	j, _ := json.Marshal(m)
	fmt.Println(string(j))
	return 0
}

// procStatus reads a "Key: N kB" line of /proc/self/status.
func procStatus(key string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}
