package detect_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/agent/detect/detecttest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

var t0 = time.Date(2025, 1, 17, 15, 37, 28, 0, time.UTC)

// TestLimiter drives a Limiter through scripted floods on a manual clock:
// each step moves the clock, offers one fault and says whether it must
// pass and, if so, how many of its key it must report as shed before it.
func TestLimiter(t *testing.T) {
	type step struct {
		advance    time.Duration
		rule, part string
		ok         bool
		shedBefore uint64
	}
	const r1, r2 = "blk-io-error", "nvidia-xid"
	repeat := func(n int, s step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		cfg       detect.LimiterConfig
		steps     []step
		wantShed  map[string]uint64
		wantKeys  int
		wantTotal uint64
	}{
		{
			name: "burst, then one per interval, with the shed count on the next one let through",
			cfg:  detect.LimiterConfig{Burst: 3, Every: time.Second},
			steps: cat(
				repeat(3, step{rule: r1, part: "sda", ok: true}),
				repeat(4, step{rule: r1, part: "sda", ok: false}),
				[]step{
					{advance: 999 * time.Millisecond, rule: r1, part: "sda", ok: false},
					{advance: time.Millisecond, rule: r1, part: "sda", ok: true, shedBefore: 5},
					{rule: r1, part: "sda", ok: false},
					{advance: 10 * time.Second, rule: r1, part: "sda", ok: true, shedBefore: 1},
					// Ten seconds earned only the burst back, not ten.
					{rule: r1, part: "sda", ok: true},
					{rule: r1, part: "sda", ok: true},
					{rule: r1, part: "sda", ok: false},
				},
			),
			wantShed: map[string]uint64{r1: 7}, wantKeys: 1, wantTotal: 7,
		},
		{
			name: "parts and rules have their own buckets",
			cfg:  detect.LimiterConfig{Burst: 1, Every: time.Hour},
			steps: []step{
				{rule: r1, part: "sda", ok: true},
				{rule: r1, part: "sda", ok: false},
				{rule: r1, part: "sdb", ok: true},
				{rule: r2, part: "sda", ok: true},
				{rule: r2, part: "sda", ok: false},
				{rule: r2, part: "sda", ok: false},
			},
			wantShed: map[string]uint64{r1: 1, r2: 2}, wantKeys: 3, wantTotal: 3,
		},
		{
			name: "a full table forgets the part seen least recently",
			cfg:  detect.LimiterConfig{Burst: 1, Every: time.Hour, MaxKeys: 2},
			steps: []step{
				{rule: r1, part: "sda", ok: true},
				{rule: r1, part: "sdb", ok: true},
				{rule: r1, part: "sda", ok: false}, // sda is now the most recent
				{rule: r1, part: "sdc", ok: true},  // sdb is forgotten
				{rule: r1, part: "sda", ok: false}, // sda kept its empty bucket
				{rule: r1, part: "sdb", ok: true},  // back with a fresh one; sdc forgotten
				{rule: r1, part: "sda", ok: false},
			},
			wantShed: map[string]uint64{r1: 3}, wantKeys: 2, wantTotal: 3,
		},
		{
			name: "new part names of one rule are admitted at a bounded rate",
			cfg:  detect.LimiterConfig{Burst: 5, Every: time.Hour, NewKeyBurst: 2, NewKeyEvery: time.Second},
			steps: []step{
				{rule: r1, part: "dev1", ok: true},
				{rule: r1, part: "dev2", ok: true},
				{rule: r1, part: "dev3", ok: false},
				{rule: r1, part: "dev4", ok: false},
				{rule: r1, part: "dev1", ok: true}, // known parts are not held back
				{rule: r2, part: "dev3", ok: true}, // another rule has its own allowance
				{advance: time.Second, rule: r1, part: "dev3", ok: true},
				{rule: r1, part: "dev5", ok: false},
			},
			wantShed: map[string]uint64{r1: 3}, wantKeys: 4, wantTotal: 3,
		},
		{
			name: "a negative NewKeyBurst admits every new part",
			cfg:  detect.LimiterConfig{Burst: 1, Every: time.Hour, NewKeyBurst: -1},
			steps: func() []step {
				var s []step
				for i := 0; i < 300; i++ {
					s = append(s, step{rule: r1, part: "dev" + strconv.Itoa(i), ok: true})
				}
				return s
			}(),
			wantShed: map[string]uint64{}, wantKeys: 300,
		},
		{
			name: "a clock that steps back earns nothing and breaks nothing",
			cfg:  detect.LimiterConfig{Burst: 1, Every: time.Second},
			steps: []step{
				{advance: time.Hour, rule: r1, part: "sda", ok: true},
				{advance: -30 * time.Minute, rule: r1, part: "sda", ok: false},
				{advance: 30 * time.Minute, rule: r1, part: "sda", ok: false},
				{advance: time.Second, rule: r1, part: "sda", ok: true, shedBefore: 2},
			},
			wantShed: map[string]uint64{r1: 2}, wantKeys: 1, wantTotal: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := detecttest.NewClock(t0)
			tc.cfg.Clock = clk
			l := detect.NewLimiter(tc.cfg)
			for i, s := range tc.steps {
				if s.advance != 0 {
					clk.Advance(s.advance)
				}
				ok, shed := l.Take(s.rule, s.part)
				if ok != s.ok || shed != s.shedBefore {
					t.Fatalf("step %d: Take(%s, %s) = %v, %d; want %v, %d", i, s.rule, s.part, ok, shed, s.ok, s.shedBefore)
				}
			}
			got := l.Shed()
			if fmt.Sprint(got) != fmt.Sprint(tc.wantShed) {
				t.Errorf("Shed() = %v, want %v", got, tc.wantShed)
			}
			if l.Keys() != tc.wantKeys || l.ShedTotal() != tc.wantTotal {
				t.Errorf("Keys() = %d, ShedTotal() = %d; want %d, %d", l.Keys(), l.ShedTotal(), tc.wantKeys, tc.wantTotal)
			}
		})
	}
}

// TestLimiterAllow checks the fault-level API on real faults: the key is
// the rule and the part name, and the first fault let through after a
// shed episode says how many were shed.
func TestLimiterAllow(t *testing.T) {
	rs := builtin(t)
	line := "Dec 10 18:58:49 kernel: I/O error, dev sda, sector 4196408 op 0x0:(READ) flags 0x83700 phys_seg 9 prio class 2"
	clk := detecttest.NewClock(t0)
	l := detect.NewLimiter(detect.LimiterConfig{Burst: 2, Every: time.Second, Clock: clk})
	fault := func() *hwhealv1.Fault {
		fs := rs.Match(record(line))
		if len(fs) != 1 {
			t.Fatalf("Match = %s", describe(fs))
		}
		return fs[0]
	}
	var passed []*hwhealv1.Fault
	for i := 0; i < 10; i++ {
		if f := fault(); l.Allow(f) {
			passed = append(passed, f)
		}
	}
	clk.Advance(time.Second)
	if f := fault(); l.Allow(f) {
		passed = append(passed, f)
	}
	if len(passed) != 3 {
		t.Fatalf("%d faults passed, want 3", len(passed))
	}
	for i, f := range passed[:2] {
		if _, ok := f.GetEvidence().GetCaptures()[detect.ShedBeforeCapture]; ok {
			t.Errorf("fault %d of the burst says shed_before", i)
		}
	}
	if got := passed[2].GetEvidence().GetCaptures()[detect.ShedBeforeCapture]; got != "8" {
		t.Errorf("first fault after the flood: shed_before = %q, want 8", got)
	}
	if got := passed[2].GetEvidence().GetCaptures()["device"]; got != "sda" {
		t.Errorf("the rule's captures were lost: device = %q", got)
	}
	if got := l.Shed()["blk-io-error"]; got != 8 {
		t.Errorf("Shed()[blk-io-error] = %d, want 8", got)
	}

	// A fault with no evidence at all gets some.
	l2 := detect.NewLimiter(detect.LimiterConfig{Burst: 1, Every: time.Second, Clock: clk})
	bare := func() *hwhealv1.Fault {
		return &hwhealv1.Fault{FaultClass: "nic.link_flap", Rule: "netlink-link-flap", Part: &hwhealv1.Part{Name: "eth0"}}
	}
	l2.Allow(bare())
	l2.Allow(bare())
	clk.Advance(time.Second)
	f := bare()
	if !l2.Allow(f) || f.GetEvidence().GetCaptures()[detect.ShedBeforeCapture] != "1" {
		t.Errorf("Allow on a fault without evidence: %v", f)
	}
}

// TestLimiterConcurrent offers the same keys from several goroutines on a
// clock that does not move: exactly Burst of each key pass, the rest are
// counted as shed. Run with -race.
func TestLimiterConcurrent(t *testing.T) {
	clk := detecttest.NewClock(t0)
	l := detect.NewLimiter(detect.LimiterConfig{Burst: 20, Every: time.Second, Clock: clk})
	parts := []string{"sda", "sdb", "sdc", "nvme0n1"}
	const goroutines, each = 8, 500
	var mu sync.Mutex
	passed := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := parts[i%len(parts)]
				if ok, _ := l.Take("blk-io-error", p); ok {
					mu.Lock()
					passed[p]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range parts {
		if passed[p] != 20 {
			t.Errorf("%s: %d passed, want 20", p, passed[p])
		}
	}
	if want := uint64(goroutines*each - 20*len(parts)); l.ShedTotal() != want {
		t.Errorf("ShedTotal() = %d, want %d", l.ShedTotal(), want)
	}
}

// TestLimiterTakeDoesNotAllocate: on a tracked key (allowed or shed) the
// hot path allocates nothing.
func TestLimiterTakeDoesNotAllocate(t *testing.T) {
	l := detect.NewLimiter(detect.LimiterConfig{})
	rule, part := "blk-io-error", "sda"
	l.Take(rule, part)
	if n := testing.AllocsPerRun(1000, func() { l.Take(rule, part) }); n != 0 {
		t.Errorf("Take allocates %.2f times per call on a known key", n)
	}
	f := &hwhealv1.Fault{Rule: "nvidia-xid", Part: &hwhealv1.Part{Name: "0000:19:00.0"}}
	l.Allow(f)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(f) }); n != 0 {
		t.Errorf("Allow allocates %.2f times per call on a known key", n)
	}
}

// TestLimiterDefaults checks the documented defaults: a burst of 20, then
// one a second, and a bounded table under a flood of distinct names.
func TestLimiterDefaults(t *testing.T) {
	clk := detecttest.NewClock(t0)
	l := detect.NewLimiter(detect.LimiterConfig{Clock: clk})
	n := 0
	for i := 0; i < 100; i++ {
		if ok, _ := l.Take("r", "p"); ok {
			n++
		}
	}
	clk.Advance(time.Second)
	ok, shed := l.Take("r", "p")
	if n != detect.DefaultBurst || !ok || shed != 80 {
		t.Errorf("burst %d, then ok=%v shed_before=%d; want %d, true, 80", n, ok, shed, detect.DefaultBurst)
	}
	for i := 0; i < 100_000; i++ {
		l.Take("flood-"+strconv.Itoa(i%7), "dev"+strconv.Itoa(i))
		if i%1000 == 0 {
			clk.Advance(time.Second)
		}
	}
	if l.Keys() > detect.DefaultMaxKeys {
		t.Errorf("%d keys tracked, want at most %d", l.Keys(), detect.DefaultMaxKeys)
	}
	// 7 rules × (a burst at once + 10 a second × 100 s) new names at most.
	if got, max := 100_000-int(l.ShedTotal()-80), 7*(detect.DefaultNewKeyBurst+10*100); got > max {
		t.Errorf("%d new names admitted, want at most %d", got, max)
	}
}

// BenchmarkLimiterTake is the hot path: one fault of a known key, on the
// system clock. Compare with BenchmarkMatchFault, the cost of making the
// fault in the first place.
func BenchmarkLimiterTake(b *testing.B) {
	l := detect.NewLimiter(detect.LimiterConfig{})
	keys := []string{"sda", "sdb", "sdc", "sdd", "nvme0n1", "nvme1n1", "0000:19:00.0", "eth0"}
	for _, k := range keys {
		l.Take("blk-io-error", k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Take("blk-io-error", keys[i&7])
	}
}

// BenchmarkLimiterTakeParallel is the same with every core offering faults
// at once (the kmsg reader and the other sources contend on one mutex).
func BenchmarkLimiterTakeParallel(b *testing.B) {
	l := detect.NewLimiter(detect.LimiterConfig{})
	keys := []string{"sda", "sdb", "sdc", "sdd", "nvme0n1", "nvme1n1", "0000:19:00.0", "eth0"}
	for _, k := range keys {
		l.Take("blk-io-error", k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Take("blk-io-error", keys[i&7])
			i++
		}
	})
}

// BenchmarkLimiterNewKeys is the worst case: every fault names a part not
// seen before (the table churns at MaxKeys).
func BenchmarkLimiterNewKeys(b *testing.B) {
	l := detect.NewLimiter(detect.LimiterConfig{NewKeyBurst: -1})
	names := make([]string, 4096)
	for i := range names {
		names[i] = "dev" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Take("blk-io-error", names[i%len(names)])
	}
}
