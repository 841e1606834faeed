//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package rasevent

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireBPF skips unless the test runs as root on a kernel with BTF.
func requireBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF (/sys/kernel/btf/vmlinux)")
	}
}

// tracefs returns where tracefs is mounted, mounting it for the test if it
// is not.
func tracefs(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(dir, "events")); err == nil {
			return dir
		}
	}
	const dir = "/sys/kernel/tracing"
	if err := syscall.Mount("nodev", dir, "tracefs", 0, ""); err != nil {
		t.Skipf("tracefs not mounted and cannot be: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	return dir
}

// ourPrograms counts the loaded BPF programs of this package (by name, as
// the kernel keeps it: at most 15 characters).
func ourPrograms(t *testing.T) int {
	t.Helper()
	var names []string
	for _, tp := range tracepoints {
		names = append(names, tp.prog[:min(len(tp.prog), 15)])
	}
	n := 0
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err == nil && slices.Contains(names, info.Name) {
			n++
		}
	}
}

// waitNoPrograms waits for the kernel to free this package's programs
// (freeing a detached program is deferred).
func waitNoPrograms(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for ourPrograms(t) > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d programs of this package still loaded", ourPrograms(t)-base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAttachOnThisKernel loads and attaches for real: every tracepoint the
// running kernel has (in tracefs) is attached, every other one is reported
// absent with the reason, and closing leaves no program behind. On this
// project's machines (Linux 6.18 without EDAC, MCE, AER or memory failure
// support) that is ras:mc_event attached and the other three absent.
func TestAttachOnThisKernel(t *testing.T) {
	requireBPF(t)
	tfs := tracefs(t)
	base := ourPrograms(t)
	l, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if n := ourPrograms(t); n != base+l.attached() {
		t.Errorf("%d programs loaded, want %d (one per attached tracepoint)", n-base, l.attached())
	}
	if len(l.status) != len(tracepoints) {
		t.Fatalf("%d statuses for %d tracepoints", len(l.status), len(tracepoints))
	}
	for i, tp := range tracepoints {
		st := l.status[i]
		where := ""
		for _, sys := range tp.sys {
			if _, err := os.Stat(filepath.Join(tfs, "events", sys, tp.event)); err == nil {
				where = sys + ":" + tp.event
				break
			}
		}
		switch {
		case where != "" && (!st.Attached || st.Name != where):
			t.Errorf("%s is in tracefs but: %s", where, st)
		case where == "" && st.Attached:
			t.Errorf("%s attached but not in tracefs", st.Name)
		case where == "" && (st.Reason == "" || !strings.Contains(st.Reason, tp.config) && !strings.Contains(st.Reason, "no such tracepoint")):
			t.Errorf("%s absent without a reason that says why: %q", st.Name, st.Reason)
		}
		t.Log(st)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitNoPrograms(t, base)
}

// TestRunOnThisKernel runs the source on the real kernel: it says once
// what it attached and what is absent, reads until cancelled, and leaves
// neither a goroutine (TestMain's goleak) nor a program behind.
func TestRunOnThisKernel(t *testing.T) {
	requireBPF(t)
	tfs := tracefs(t)
	if _, err := os.Stat(filepath.Join(tfs, "events/ras/mc_event")); err != nil {
		t.Skip("this kernel has no ras:mc_event")
	}
	base := ourPrograms(t)
	var logs sourcetest.LogBuffer
	src := New(Config{Interval: 5 * time.Millisecond, Logger: sourcetest.NewLogger(&logs)})
	sink := &sourcetest.Sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "RAS tracepoints attached") {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before attaching:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("nothing attached in 5 s:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ourPrograms(t) <= base {
		t.Error("Run says it attached, but no program of this package is loaded")
	}
	time.Sleep(30 * time.Millisecond) // a few flush ticks with nothing to report
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v on cancel", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	out := logs.String()
	if n := strings.Count(out, "RAS tracepoints attached"); n != 1 {
		t.Errorf("status said %d times:\n%s", n, out)
	}
	line := out[strings.Index(out, "RAS tracepoints attached"):]
	line = line[:strings.IndexByte(line, '\n')]
	if !strings.Contains(line, "attached=ras:mc_event") {
		t.Errorf("status line does not name ras:mc_event as attached: %s", line)
	}
	for _, tp := range tracepoints[1:] {
		if _, err := os.Stat(filepath.Join(tfs, "events", tp.sys[0], tp.event)); err != nil && !strings.Contains(line, tp.event+": ") {
			t.Errorf("status line does not say why %s is absent: %s", tp.event, line)
		}
	}
	if strings.Contains(out, "level=ERROR") || strings.Contains(out, "level=WARN") {
		t.Errorf("errors logged:\n%s", out)
	}
	if len(sink.Faults()) != 0 || len(sink.Observations()) != 0 {
		t.Errorf("reported %d faults and %d observations with no hardware error", len(sink.Faults()), len(sink.Observations()))
	}
	if src.Dropped() != 0 || src.Errors() != 0 {
		t.Errorf("Dropped %d, Errors %d", src.Dropped(), src.Errors())
	}
	waitNoPrograms(t, base)
}

// TestProbeOnThisKernel: Probe says what Run would read (the absent
// tracepoints and why) and leaves nothing loaded.
func TestProbeOnThisKernel(t *testing.T) {
	requireBPF(t)
	tfs := tracefs(t)
	base := ourPrograms(t)
	p := New(Config{}).Probe(context.Background())
	if p.Source != Name {
		t.Errorf("Source %q", p.Source)
	}
	var present []string
	for _, tp := range tracepoints {
		found := false
		for _, sys := range tp.sys {
			if _, err := os.Stat(filepath.Join(tfs, "events", sys, tp.event)); err == nil {
				found = true
			}
		}
		if found {
			present = append(present, tp.event)
		}
	}
	if len(present) == 0 {
		if !strings.HasPrefix(p.Unavailable, "no RAS tracepoint on this kernel") {
			t.Errorf("Unavailable %q on a kernel without any RAS tracepoint", p.Unavailable)
		}
	} else if p.Unavailable != "" {
		t.Errorf("Unavailable %q though %q are there", p.Unavailable, present)
	}
	if len(p.Errors) != 0 {
		t.Errorf("Errors %q", p.Errors)
	}
	if len(p.Notes) != len(tracepoints) {
		t.Fatalf("Notes %q, want one per tracepoint", p.Notes)
	}
	for i, tp := range tracepoints {
		note := p.Notes[i]
		if slices.Contains(present, tp.event) {
			if !strings.HasPrefix(note, "attached ") || !strings.HasSuffix(note, ":"+tp.event) {
				t.Errorf("note %q, want %s attached", note, tp.event)
			}
		} else if !strings.HasPrefix(note, "absent ") || !strings.Contains(note, tp.event+": ") || !strings.Contains(note, tp.config) {
			t.Errorf("note %q does not say why %s is absent", note, tp.event)
		}
	}
	if len(p.Observations) != 0 || len(p.Faults) != 0 {
		t.Errorf("Probe reported %d observations, %d faults", len(p.Observations), len(p.Faults))
	}
	t.Logf("%+v", p)
	waitNoPrograms(t, base)
}

// TestProgramsPassTheVerifier loads every program, also those whose
// tracepoint this kernel lacks, through the kernel's verifier: CO-RE
// relocates them against the record layouts of new kernels (as declared in
// bpf/ras.c) and of old ones (without the fields added since 4.x), so the
// field_exists branches are verified both ways.
func TestProgramsPassTheVerifier(t *testing.T) {
	requireBPF(t)
	spec, err := loadRas()
	if err != nil {
		t.Fatal(err)
	}
	events, err := ebpf.NewMap(spec.Maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	drops, err := ebpf.NewMap(spec.Maps["drops"])
	if err != nil {
		t.Fatal(err)
	}
	defer drops.Close()
	layout := func(t *testing.T, drop map[string][]string) *btf.Spec {
		var types []btf.Type
		for _, tp := range tracepoints {
			var s *btf.Struct
			if err := spec.Types.TypeByName(tp.btfType, &s); err != nil {
				t.Fatal(err)
			}
			s = btf.Copy(s).(*btf.Struct)
			s.Members = slices.DeleteFunc(s.Members, func(m btf.Member) bool { return slices.Contains(drop[tp.btfType], m.Name) })
			types = append(types, s)
		}
		b, err := btf.NewBuilder(types, nil)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := b.Spec()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	for _, kernel := range []struct {
		name string
		drop map[string][]string
	}{
		{"new kernel", nil},
		{"old kernel", map[string][]string{
			"trace_event_raw_mce_record": {"synd", "ipid", "ppin", "microcode"},
			"trace_event_raw_aer_event":  {"tlp_header_valid", "tlp_header"},
		}},
	} {
		t.Run(kernel.name, func(t *testing.T) {
			ks := layout(t, kernel.drop)
			for _, tp := range tracepoints {
				prog, err := loadProgram(spec, tp.prog, events, drops, btf.NewCache(), ks)
				if err != nil {
					t.Errorf("%s: %v", tp.prog, err)
					continue
				}
				prog.Close()
			}
		})
	}
}

// TestUnprivileged runs the source as an unprivileged user (the test
// binary again, as nobody): Run says once that eBPF is unavailable and why
// and returns nil; Probe reports it Unavailable.
func TestUnprivileged(t *testing.T) {
	if os.Getenv("RASEVENT_UNPRIVILEGED_CHILD") != "" {
		unprivilegedChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the test binary as another user")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "rasevent.test")
	copyFile(t, self, bin)
	cmd := exec.Command(bin, "-test.run=^TestUnprivileged$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RASEVENT_UNPRIVILEGED_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestUnprivileged") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	t.Logf("as nobody:\n%s", out)
}

func unprivilegedChild(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Fatal("the child runs as root")
	}
	var logs sourcetest.LogBuffer
	src := New(Config{Logger: sourcetest.NewLogger(&logs)})
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), &sourcetest.Sink{}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil when BPF is not permitted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept running without BPF")
	}
	out := logs.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "eBPF unavailable") || !strings.Contains(out, "not permitted") {
		t.Errorf("want one line saying eBPF is not permitted, got:\n%s", out)
	}
	p := src.Probe(context.Background())
	if !strings.HasPrefix(p.Unavailable, "eBPF unavailable: ") || !strings.Contains(p.Unavailable, "not permitted") {
		t.Errorf("Probe Unavailable %q", p.Unavailable)
	}
	t.Logf("log: %s", out)
	t.Logf("probe: %q", p.Unavailable)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoadReleasesKernelBTF: the kernel's BTF, parsed for CO-RE, is not
// kept once the programs are loaded (cilium/ebpf 0.22 has no global
// kernel spec to flush: the cache lives for one load() call).
func TestLoadReleasesKernelBTF(t *testing.T) {
	requireBPF(t)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // the second cycle runs the mmap cleanups queued by the first
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	l, err := load()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	loaded := heap()
	const bound = 1 << 20
	if loaded > before+bound {
		t.Errorf("heap in use grew by %d KiB while loaded, want under %d KiB: is the kernel BTF kept?", (loaded-before)>>10, bound>>10)
	}
	t.Logf("heap in use: %d KiB before, %d KiB while loaded (after GC)", before>>10, loaded>>10)
}

// BenchmarkLoad loads and attaches everything this kernel has and closes
// it: B/op is the transient heap of one load (kernel BTF for CO-RE
// included), retained-KiB what stays in use while loaded, after GC.
func BenchmarkLoad(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading BPF programs needs root")
	}
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapInuse
	var retained uint64
	b.ReportAllocs()
	for b.Loop() {
		l, err := load()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&m)
		retained = max(retained, m.HeapInuse-min(m.HeapInuse, before))
		b.StartTimer()
		l.Close()
	}
	b.ReportMetric(float64(retained)/1024, "retained-KiB")
}

// injector puts records into a running source's ring buffer through a
// BPF program (bpf/inject.c), the way the tracepoint programs do.
type injector struct {
	t    *testing.T
	objs injectObjects
}

func newInjector(t *testing.T, l *loaded) *injector {
	t.Helper()
	spec, err := loadInject()
	if err != nil {
		t.Fatal(err)
	}
	in := &injector{t: t}
	if err := spec.LoadAndAssign(&in.objs, &ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{"events": l.events, "drops": l.drops},
	}); err != nil {
		t.Fatalf("load the injector: %v", err)
	}
	t.Cleanup(func() { in.objs.Close() })
	return in
}

func (in *injector) run(st *injectStage) {
	in.t.Helper()
	if err := in.objs.Staged.Update(uint32(0), st, ebpf.UpdateAny); err != nil {
		in.t.Fatal(err)
	}
	ret, err := in.objs.Inject.Run(&ebpf.RunOptions{})
	if err != nil || ret != 0 {
		in.t.Fatalf("inject: %d, %v", ret, err)
	}
}

func (in *injector) record(b []byte) {
	in.t.Helper()
	st := &injectStage{Len: uint32(len(b))}
	copy(st.Data[:], b)
	in.run(st)
}

func (in *injector) drop(kind recordKind) { in.run(&injectStage{DropKind: uint32(kind)}) }

// TestRunReadsTheRingBuffer drives Run's whole reading path through the
// real BPF ring buffer it created: records put in by a BPF program come
// out as faults and, every interval, as observations; a malformed record
// is counted and logged; drops counted in the BPF map are reported.
func TestRunReadsTheRingBuffer(t *testing.T) {
	requireBPF(t)
	tfs := tracefs(t)
	if _, err := os.Stat(filepath.Join(tfs, "events/ras/mc_event")); err != nil {
		t.Skip("this kernel has no ras:mc_event: Run stops before reading")
	}
	var logs sourcetest.LogBuffer
	src := New(Config{Interval: 200 * time.Millisecond, Logger: sourcetest.NewLogger(&logs)})
	got := make(chan *loaded, 1)
	src.loadedHook = func(l *loaded) { got <- l }
	sink := &sourcetest.Sink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	var l *loaded
	select {
	case l = <-got:
	case err := <-done:
		t.Fatalf("Run returned %v:\n%s", err, logs.String())
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not load in 5 s")
	}
	in := newInjector(t, l)

	const dimm = "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0"
	for range 300 {
		in.record(mcRec(t, mcCorrected, 1, dimm, "memory read error", ""))
	}
	in.record(mcRec(t, mcUncorrected, 1, dimm, "memory read error", ""))
	in.record(mcRec(t, mcCorrected, 1, dimm, "", "", func(r *rasRecMcEvent) { r.ErrorType = 9 }))
	in.record(aerRec(t, "0000:3b:00.0", aerFatal, 1<<18))
	in.record(mfRec(t, 0x1234, 0, 1))
	in.record(mceRec(t, mciVAL|mciEN|0x009f))
	for range 3 {
		in.drop(kindMCEvent)
	}
	in.drop(kindAEREvent)

	want := []string{ClassMemoryCE, ClassMemoryUE, ClassPCIeAERFatal, ClassMemoryFailure, ClassCPUMCECorrected}
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Faults()) < len(want) || len(sink.Observations()) < 3 || !strings.Contains(logs.String(), "RAS records lost") {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: faults %q, %d observations, log:\n%s", classes(sink.Faults()), len(sink.Observations()), logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if c := classes(sink.Faults()); !slices.Equal(c, want) {
		t.Errorf("faults %q, want %q", c, want)
	}
	obs := sourcetest.SamplesByName(sink.Observations())
	if s := obs[dimm]; s[SampleCECount] != 300 || s[SampleUECount] != 1 {
		t.Errorf("DIMM observed %v, want 300 CE and 1 UE", s)
	}
	if s := obs["0000:3b:00.0"]; s[SampleAERFatalCount] != 1 {
		t.Errorf("device observed %v", s)
	}
	if src.Errors() != 1 {
		t.Errorf("Errors() = %d, want the one malformed record", src.Errors())
	}
	if src.Dropped() != 4 {
		t.Errorf("Dropped() = %d after Run, want 4", src.Dropped())
	}
	out := logs.String()
	for _, w := range []string{"malformed RAS record", "error_type 9", "RAS records lost", "lost=4", "RAS faults held back", "suppressed=299"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	for _, f := range sink.Faults() {
		if age := time.Since(f.GetTime().AsTime()); age < 0 || age > 10*time.Second {
			t.Errorf("%s stamped %v ago: the record's monotonic time is not turned into wall time", f.GetFaultClass(), age)
		}
	}
}
