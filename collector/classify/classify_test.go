package classify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	dto "github.com/prometheus/client_model/go"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// clock is a settable time for the store and the classifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	st     *sqlite.Store
	c      *Classifier
	clk    *clock
	events []*hwhealv1.Event
}

// newFixture builds a classifier over a real SQLite store, with the
// shipped rules and the rules.d files given (name -> content).
func newFixture(t *testing.T, overrides map[string]string) *fixture {
	t.Helper()
	dir := t.TempDir()
	for name, body := range overrides {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rules, _, err := LoadRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, clk: clk}
	f.c, err = New(Config{
		Rules: rules, Store: st, Now: clk.now,
		Write: func(ctx context.Context, fn func(context.Context) ([]*hwhealv1.Event, error)) error {
			evs, err := fn(ctx)
			f.events = append(f.events, evs...)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) hello(t *testing.T, node string, labels map[string]string) {
	t.Helper()
	if _, err := f.st.Hello(context.Background(), store.Hello{Node: node, Labels: labels, StreamID: "s-" + node, BootID: "b", Time: f.clk.now()}); err != nil {
		t.Fatal(err)
	}
}

// apply classifies a batch and stores it, as ingest does.
func (f *fixture) apply(t *testing.T, b store.Batch) store.BatchResult {
	t.Helper()
	f.c.Classify(&b, 0)
	res, err := f.st.Apply(context.Background(), []store.Batch{b})
	if err != nil {
		t.Fatal(err)
	}
	f.events = append(f.events, res[0].Events...)
	return res[0]
}

func (f *fixture) openFaults(t *testing.T, node string) []*hwhealv1.FaultRecord {
	t.Helper()
	faults, _, err := f.st.ListFaults(context.Background(), store.FaultFilter{Node: node}, store.Page{Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	return faults
}

func ioError(dev string, at time.Time) *hwhealv1.Fault {
	return &hwhealv1.Fault{
		FaultClass: "disk.io_error", Severity: hwhealv1.Severity_SEVERITY_CRITICAL, Rule: "blk-io-error",
		Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: dev}, Time: timestamppb.New(at),
		Summary: "I/O error on " + dev,
	}
}

func hot(at time.Time) *hwhealv1.Observation {
	return &hwhealv1.Observation{
		Time: timestamppb.New(at), Source: "hwmon",
		Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_CPU, Name: "coretemp.0"},
		Samples: []*hwhealv1.Sample{{Name: "package_celsius", Value: 101}, {Name: "package_over_crit", Value: 1}},
	}
}

func TestClassifyAnnotatesAndDerives(t *testing.T) {
	f := newFixture(t, nil)
	f.hello(t, "n1", nil)
	now := f.clk.now()
	res := f.apply(t, store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{
		{Seq: 1, Item: &hwhealv1.Report_Fault{Fault: ioError("sda", now)}},
		{Seq: 2, Item: &hwhealv1.Report_Observation{Observation: hot(now)}},
	}})
	if res.AckedSeq != 2 {
		t.Fatalf("acked %d", res.AckedSeq)
	}
	byClass := map[string]*hwhealv1.FaultRecord{}
	for _, fr := range f.openFaults(t, "n1") {
		byClass[fr.GetFaultClass()] = fr
	}
	io, thermal := byClass["disk.io_error"], byClass["cpu.thermal"]
	if io == nil || thermal == nil {
		t.Fatalf("open faults %v, want disk.io_error (agent) and cpu.thermal (derived)", byClass)
	}
	rs, _ := detect.Builtin()
	want, _ := rs.Lookup("blk-io-error")
	if io.GetClearAfter().AsDuration() != want.ClearAfter || io.GetMode() == hwhealv1.RuleMode_RULE_MODE_SHADOW {
		t.Errorf("agent fault clear %v mode %v, want the rule's %v, enforce", io.GetClearAfter().AsDuration(), io.GetMode(), want.ClearAfter)
	}
	if thermal.GetRule() != "cpu-over-crit" || thermal.GetSeverity() != hwhealv1.Severity_SEVERITY_CRITICAL || thermal.GetClearAfter() == nil {
		t.Errorf("derived fault %v", thermal)
	}
	node, err := f.st.GetNode(context.Background(), "n1")
	if err != nil || node.GetHealth() != hwhealv1.NodeHealth_NODE_HEALTH_FAULTY {
		t.Fatalf("node %v, %v", node, err)
	}

	// A cool reading raises nothing new: the fault stays as it was.
	cool := hot(now.Add(time.Minute))
	cool.Samples = []*hwhealv1.Sample{{Name: "package_celsius", Value: 60}, {Name: "package_over_crit", Value: 0}}
	b := store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{{Seq: 3, Item: &hwhealv1.Report_Observation{Observation: cool}}}}
	f.c.Classify(&b, 0)
	if len(b.Derived) != 0 {
		t.Errorf("a cool reading raised %v", b.Derived)
	}
}

func TestDisabledRuleDropsAgentFaults(t *testing.T) {
	f := newFixture(t, map[string]string{"50-off.yaml": "rules:\n  - name: blk-io-error\n    enabled: false\n"})
	f.hello(t, "n1", nil)
	now := f.clk.now()
	res := f.apply(t, store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{
		{Seq: 1, Item: &hwhealv1.Report_Fault{Fault: ioError("sda", now)}},
	}})
	if res.AckedSeq != 1 {
		t.Errorf("acked %d: a dropped report must still be acknowledged", res.AckedSeq)
	}
	if got := f.openFaults(t, "n1"); len(got) != 0 {
		t.Errorf("faults of a disabled rule stored: %v", got)
	}
	var m dto.Metric
	if err := f.c.m.disabled.WithLabelValues("blk-io-error").Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("dropped faults counted %v, want 1", got)
	}
	w := Weakened(f.c.cfg.Rules)
	if len(w) != 1 || w[0].Rule != "blk-io-error" || w[0].Change != "disabled" || !strings.HasSuffix(w[0].File, "50-off.yaml") || w[0].Line != 2 {
		t.Errorf("weakenings %+v, want blk-io-error disabled at 50-off.yaml:2", w)
	}
}

func TestShadowOverrideAndSweep(t *testing.T) {
	f := newFixture(t, map[string]string{"50-trial.yaml": "rules:\n  - name: blk-io-error\n    mode: shadow\n    clear_after: 10m\n"})
	f.hello(t, "n1", nil)
	now := f.clk.now()
	f.apply(t, store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{
		{Seq: 1, Item: &hwhealv1.Report_Fault{Fault: ioError("sda", now)}},
	}})
	open := f.openFaults(t, "n1")
	if len(open) != 1 || open[0].GetMode() != hwhealv1.RuleMode_RULE_MODE_SHADOW || open[0].GetClearAfter().AsDuration() != 10*time.Minute {
		t.Fatalf("open faults %v", open)
	}
	if n, _ := f.st.GetNode(context.Background(), "n1"); n.GetHealth() != hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY {
		t.Errorf("health %v with only a shadow fault", n.GetHealth())
	}

	// Not yet: 9 minutes of silence.
	f.clk.add(9 * time.Minute)
	f.c.Sweep(context.Background())
	if len(f.openFaults(t, "n1")) != 1 {
		t.Fatal("resolved before its clear time")
	}
	f.clk.add(2 * time.Minute)
	f.events = nil
	f.c.Sweep(context.Background())
	if got := f.openFaults(t, "n1"); len(got) != 0 {
		t.Fatalf("still open after its clear time: %v", got)
	}
	if len(f.events) == 0 || f.events[0].GetType() != hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED || f.events[0].GetReason() == "" {
		t.Errorf("sweep events %v", f.events)
	}
}

func TestRunPeersRaisesOutlier(t *testing.T) {
	f := newFixture(t, nil)
	now := f.clk.now()
	for i := range 12 {
		node := fmt.Sprintf("n%02d", i)
		f.hello(t, node, map[string]string{"role": "db"})
		p99 := 4000.0 + float64(i*37) // healthy disks: ~4 ms
		if i == 7 {
			p99 = 180000 // 180 ms
		}
		f.apply(t, store.Batch{Node: node, StreamID: "s-" + node, Received: now, Reports: []*hwhealv1.Report{{Seq: 1, Item: &hwhealv1.Report_Observation{Observation: &hwhealv1.Observation{
			Time: timestamppb.New(now), Source: "blockio",
			Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sdb", Model: "ST4000NM0035"},
			Samples: []*hwhealv1.Sample{{Name: "latency_p99_us", Value: p99}},
		}}}}})
	}
	f.c.RunPeers(context.Background())
	for i := range 12 {
		node := fmt.Sprintf("n%02d", i)
		got := f.openFaults(t, node)
		if i != 7 {
			if len(got) != 0 {
				t.Errorf("%s: healthy disk flagged: %v", node, got)
			}
			continue
		}
		if len(got) != 1 || got[0].GetFaultClass() != "disk.latency_outlier" || got[0].GetRule() != "disk-latency-outlier" {
			t.Fatalf("%s: faults %v", node, got)
		}
		if !strings.Contains(got[0].GetSummary(), "180000") || !strings.Contains(got[0].GetSummary(), "12 peers") {
			t.Errorf("summary %q: want the rule file's template with the value and the group", got[0].GetSummary())
		}
		// The shipped outlier rule is on trial: shadow, so health stays.
		if got[0].GetMode() != hwhealv1.RuleMode_RULE_MODE_SHADOW {
			t.Errorf("mode %v", got[0].GetMode())
		}
	}
}

// After a collector restart the rules go on from the last stored reading:
// a counter that was 0 before and 1 after raises.
func TestRulesSurviveRestart(t *testing.T) {
	f := newFixture(t, nil)
	f.hello(t, "n1", nil)
	now := f.clk.now()
	mc := func(ue float64, at time.Time) *hwhealv1.Observation {
		return &hwhealv1.Observation{Time: timestamppb.New(at), Source: "edac",
			Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "mc0"},
			Samples: []*hwhealv1.Sample{{Name: "ce_count", Value: 0}, {Name: "ue_count", Value: ue}}}
	}
	f.apply(t, store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{{Seq: 1, Item: &hwhealv1.Report_Observation{Observation: mc(0, now)}}}})

	// A new classifier over the same store: a restarted collector.
	rules, _, err := LoadRules("")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := New(Config{Rules: rules, Store: f.st, Now: f.clk.now, Write: f.c.cfg.Write})
	if err != nil {
		t.Fatal(err)
	}
	b := store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{{Seq: 2, Item: &hwhealv1.Report_Observation{Observation: mc(1, now.Add(time.Minute))}}}}
	c2.Classify(&b, 1)
	if len(b.Derived) != 1 || b.Derived[0].Fault.GetFaultClass() != "memory.ue" {
		t.Fatalf("derived %v, want the uncorrectable error the restart must not hide", b.Derived)
	}
	// A rate rule's burst ends in silence: it clears by quiet time, not by
	// a reading (the RAS source reports a DIMM only while it has errors).
	if b.Derived[0].Source != "" {
		t.Errorf("rate fault's evidence source %q, want none", b.Derived[0].Source)
	}

	// A replay of a report classified before derives nothing again.
	replayed := store.Batch{Node: "n1", StreamID: "s-n1", Received: now, Reports: []*hwhealv1.Report{{Seq: 2, Item: &hwhealv1.Report_Observation{Observation: mc(2, now.Add(2*time.Minute))}}}}
	c2.Classify(&replayed, 2)
	if len(replayed.Derived) != 0 {
		t.Errorf("a replayed report derived %v", replayed.Derived)
	}
}
