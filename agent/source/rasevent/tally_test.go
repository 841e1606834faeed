//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package rasevent

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// clock is the injectable clock of these tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time             { return c.t }
func (c *clock) advance(d time.Duration)    { c.t = c.t.Add(d) }
func newClock() *clock                      { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func classes(fs []*hwhealv1.Fault) []string { return faultField(fs, (*hwhealv1.Fault).GetFaultClass) }

func faultField(fs []*hwhealv1.Fault, get func(*hwhealv1.Fault) string) []string {
	var out []string
	for _, f := range fs {
		out = append(out, get(f))
	}
	return out
}

// feeder decodes records and runs them through a source's handle with a
// tally, as Run does, collecting the faults.
type feeder struct {
	t     *testing.T
	src   *Source
	tally *tally
	l     *loaded
	clk   *clock
	fault []*hwhealv1.Fault
}

func newFeeder(t *testing.T, interval time.Duration) *feeder {
	clk := newClock()
	src := New(Config{Interval: interval})
	src.now = clk.now
	l := &loaded{names: defaultNames(), rules: map[recordKind]string{kindMCEvent: "ras:mc_event", kindMCERecord: "mce:mce_record", kindAEREvent: "ras:aer_event", kindMemoryFailure: "ras:memory_failure_event"}}
	return &feeder{t: t, src: src, tally: newTally(src.interval), l: l, clk: clk}
}

func (f *feeder) feed(recs ...[]byte) {
	f.t.Helper()
	for _, r := range recs {
		ev, err := decode(r)
		if err != nil {
			f.t.Fatal(err)
		}
		if fault := f.src.handle(f.tally, f.l, ev); fault != nil {
			f.fault = append(f.fault, fault)
		}
	}
}

func (f *feeder) flush() ([]*hwhealv1.Observation, uint64) { return f.tally.flush(f.clk.now()) }

func TestCorrectedErrorsCountedNotRaised(t *testing.T) {
	const (
		a = "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0"
		b = "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0"
	)
	f := newFeeder(t, time.Minute)
	ce := func(label string, n uint16) []byte { return mcRec(t, mcCorrected, n, label, "memory read error", "") }

	// A storm: 5000 records on DIMM a within one interval.
	for i := range 5000 {
		f.feed(ce(a, 1))
		if i%100 == 0 {
			f.clk.advance(time.Second / 2)
		}
	}
	if got := classes(f.fault); !slices.Equal(got, []string{ClassMemoryCE}) {
		t.Fatalf("a storm of 5000 CEs raised %q, want one memory.ce", got)
	}
	if s := f.fault[0].GetSeverity(); s != info {
		t.Errorf("memory.ce severity %s", s)
	}
	f.feed(ce(b, 3))
	if len(f.fault) != 2 || f.fault[1].GetPart().GetName() != b {
		t.Fatalf("the first CE on another DIMM did not raise at once: %v", f.fault)
	}
	if ev := sourcetest.SampleMap(&hwhealv1.Observation{Samples: f.fault[1].GetEvidence().GetSamples()}); ev[SampleCECount] != 3 {
		t.Errorf("fault evidence %v, want ce_count 3", ev)
	}

	f.clk.advance(30 * time.Second) // 55 s after the storm began
	obs, suppressed := f.flush()
	if suppressed != 4999 {
		t.Errorf("flush says %d held back, want 4999", suppressed)
	}
	got := sourcetest.SamplesByName(obs)
	want := map[string]map[string]float64{
		a: {SampleCECount: 5000, SampleUECount: 0, SampleDeferredCount: 0, SampleInfoCount: 0},
		b: {SampleCECount: 3, SampleUECount: 0, SampleDeferredCount: 0, SampleInfoCount: 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observations %v, want %v", got, want)
	}
	if names := sourcetest.Names(obs); !slices.Equal(names, []string{a, b}) {
		t.Errorf("observed %q, want [a b] in order", names)
	}
	for _, o := range obs {
		if o.GetSource() != Name || o.GetPart().GetKind() != memory || !o.GetTime().AsTime().Equal(f.clk.now()) {
			t.Errorf("observation %v", o)
		}
	}

	// Still inside a's interval: nothing; after it: one more fault.
	f.feed(ce(a, 1))
	if len(f.fault) != 2 {
		t.Fatalf("raised again inside the interval: %v", classes(f.fault))
	}
	f.clk.advance(5 * time.Second)
	f.feed(ce(a, 1))
	if len(f.fault) != 3 || f.fault[2].GetPart().GetName() != a {
		t.Fatalf("no fault once the interval was over: %v", f.fault)
	}

	// Totals are since the start, not since the last flush; a DIMM with no
	// new error is still observed, so the collector sees its rate drop.
	f.clk.advance(time.Minute)
	obs, _ = f.flush()
	got = sourcetest.SamplesByName(obs)
	if got[a][SampleCECount] != 5002 || got[b][SampleCECount] != 3 {
		t.Errorf("second flush %v", got)
	}
}

func TestUncorrectedErrorsRaiseEach(t *testing.T) {
	const label = "DIMM_B1"
	f := newFeeder(t, time.Minute)
	for range maxSevereFaultsDefault {
		f.feed(mcRec(t, mcUncorrected, 1, label, "", ""))
	}
	if len(f.fault) != maxSevereFaultsDefault {
		t.Fatalf("%d UEs raised %d faults", maxSevereFaultsDefault, len(f.fault))
	}
	for _, x := range f.fault {
		if x.GetFaultClass() != ClassMemoryUE || x.GetSeverity() != critical || x.GetPart().GetName() != label {
			t.Fatalf("fault %v", x)
		}
	}
	// Past the limit of the part in one interval: counted, not raised; a
	// deferred error is a class of its own (warning) and still raises.
	f.feed(mcRec(t, mcFatal, 1, label, "", ""), mcRec(t, mcDeferred, 1, label, "", ""))
	if got := len(f.fault); got != maxSevereFaultsDefault+1 || f.fault[got-1].GetSeverity() != warning {
		t.Fatalf("after the limit: %d faults, last %v", got, f.fault[got-1])
	}
	f.clk.advance(time.Minute)
	f.feed(mcRec(t, mcUncorrected, 1, label, "", ""))
	if len(f.fault) != maxSevereFaultsDefault+2 {
		t.Errorf("the limit did not reopen after the interval")
	}
	obs, suppressed := f.flush()
	if suppressed != 1 {
		t.Errorf("suppressed %d, want 1", suppressed)
	}
	if s := sourcetest.SamplesByName(obs)[label]; s[SampleUECount] != maxSevereFaultsDefault+2 || s[SampleDeferredCount] != 1 {
		t.Errorf("samples %v", s)
	}
}

func TestMachineChecksAndAERCounted(t *testing.T) {
	f := newFeeder(t, time.Minute)
	var corrected uint64 = mciVAL | mciEN | 0x009f
	f.feed(
		mceRec(t, corrected), mceRec(t, corrected), // CPU 3 bank 7: one fault
		mceRec(t, corrected, func(r *rasRecMceRecord) { r.Bank = 8 }), // another bank: its own
		mceRec(t, mciVAL|mciUC|mciPCC|mciEN),
		aerRec(t, "0000:3b:00.0", aerCorrectable, 1), aerRec(t, "0000:3b:00.0", aerCorrectable, 1),
		aerRec(t, "0000:3b:00.0", aerNonFatal, 1<<14), aerRec(t, "0000:3b:00.0", aerFatal, 1<<5),
		mfRec(t, 0x1000, 3, 1),
	)
	want := []string{ClassCPUMCECorrected, ClassCPUMCECorrected, ClassCPUMCE, ClassPCIeAERCorrected, ClassPCIeAERNonFatal, ClassPCIeAERFatal, ClassMemoryFailure}
	if got := classes(f.fault); !slices.Equal(got, want) {
		t.Fatalf("faults %q, want %q", got, want)
	}
	for _, x := range f.fault {
		if x.GetTime() == nil {
			t.Errorf("fault %s has no time", x.GetFaultClass())
		}
	}
	obs, _ := f.flush()
	got := sourcetest.SamplesByName(obs)
	if fmt.Sprint(got["3"]) != fmt.Sprint(map[string]float64{SampleCECount: 3, SampleUECount: 1, SampleDeferredCount: 0}) {
		t.Errorf("CPU 3: %v", got["3"])
	}
	if fmt.Sprint(got["0000:3b:00.0"]) != fmt.Sprint(map[string]float64{SampleAERCorrectedCount: 2, SampleAERNonFatalCount: 1, SampleAERFatalCount: 1}) {
		t.Errorf("0000:3b:00.0: %v", got["0000:3b:00.0"])
	}
	if len(obs) != 2 {
		t.Errorf("observed %q: a poisoned page is no counter", sourcetest.Names(obs))
	}
}

func TestTallyBounds(t *testing.T) {
	clk := newClock()
	tl := newTally(time.Minute)
	for i := range maxParts + 10 {
		e := &mcEvent{ErrorType: mcCorrected, ErrorCount: 1, Label: fmt.Sprintf("DIMM_%d", i)}
		tl.add(e.classify(""), clk.now())
	}
	if len(tl.parts) != maxParts || tl.overflow != 10 {
		t.Errorf("%d parts, overflow %d; want %d and 10", len(tl.parts), tl.overflow, maxParts)
	}
	if len(tl.gates) != maxParts+10 {
		t.Errorf("%d gates", len(tl.gates))
	}
	clk.advance(time.Minute)
	tl.flush(clk.now())
	if len(tl.gates) != 0 {
		t.Errorf("%d gates left after their interval", len(tl.gates))
	}
}

// TestReportsOwnTheirParts: the agent may fill in a part it was handed
// (a serial from inventory); no two reports share one.
func TestReportsOwnTheirParts(t *testing.T) {
	f := newFeeder(t, time.Minute)
	f.feed(mcRec(t, mcUncorrected, 1, "DIMM_A1", "", ""), mcRec(t, mcUncorrected, 1, "DIMM_A1", "", ""))
	obs, _ := f.flush()
	if f.fault[0].GetPart() == f.fault[1].GetPart() || f.fault[0].GetPart() == obs[0].GetPart() {
		t.Error("reports share a Part")
	}
}
