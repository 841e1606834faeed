package peers

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestEvaluate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hdd := lognormal(rng, 39, 41000, 0.1) // 39 healthy HDDs around 41 ms
	ssd := lognormal(rng, 20, 5000, 0.1)  // 20 SSDs around 5 ms
	slow := lognormal(rng, 8, 90000, 0.1) // 8 disks around 90 ms
	fast := lognormal(rng, 39, 50, 0.04)  // 39 disks around 0.05 ms
	nics := lognormal(rng, 30, 5000, 0.1) // 30 NICs around 5000 (same sample name)
	withOutlier := append(slices.Clone(hdd), 812000)
	withLow := append(slices.Clone(hdd), 2000)
	r1 := map[string]string{"rack": "r1"}
	r2 := map[string]string{"rack": "r2"}

	staleOutlier := fleet("n", "HGST", nil, withOutlier...)
	staleOutlier[39] = disk("n39", "sda", "HGST", 812000, 16*time.Minute, nil)

	staleEight := fleet("n", "HGST", nil, withOutlier[32:]...)
	staleEight[0] = disk("n00", "sda", "HGST", withOutlier[32], time.Hour, nil)

	noTime := fleet("n", "HGST", nil, withOutlier...)
	noTime[39].Observation.Time = nil

	missing := fleet("n", "HGST", nil, withOutlier...)
	other := disk("x1", "sda", "HGST", 900000, time.Minute, nil)
	other.Observation.Samples = other.Observation.Samples[:1] // latency_p50_us only
	missing = append(missing, other,
		disk("x2", "sda", "HGST", math.NaN(), time.Minute, nil),
		disk("x3", "sda", "HGST", math.Inf(1), time.Minute, nil),
		Input{Node: "x4"})

	zeros := func(n int, extra ...float64) []float64 {
		return append(make([]float64, n), extra...)
	}
	var nicInputs []Input
	for i, v := range nics {
		in := disk("m"+string(rune('a'+i)), "eth0", "", v, time.Minute, nil)
		in.Observation.Part.Kind = hwhealv1.PartKind_PART_KIND_NIC
		nicInputs = append(nicInputs, in)
	}
	diskstats := disk("d1", "sda", "HGST", 812000, time.Minute, nil)
	diskstats.Observation.Source = "diskstats"

	tests := []struct {
		name  string
		rule  Rule
		in    []Input
		want  []string
		stats Stats
	}{
		{
			name:  "clear outlier flagged",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, withOutlier...),
			want:  []string{"n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "healthy fleet flags nothing",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, hdd...),
			stats: Stats{Groups: 1, Evaluated: 39},
		},
		{
			name:  "low direction flags a value far below",
			rule:  rule(func(r *Rule) { r.Direction = Low }),
			in:    fleet("n", "HGST", nil, withLow...),
			want:  []string{"n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "high direction ignores a value far below",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, withLow...),
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "low direction ignores a value far above",
			rule:  rule(func(r *Rule) { r.Direction = Low }),
			in:    fleet("n", "HGST", nil, withOutlier...),
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "tiny absolute difference flagged without MinValue",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, append(slices.Clone(fast), 100)...), // 0.1 ms among 0.05 ms
			want:  []string{"n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "MinValue floor keeps a tiny absolute difference",
			rule:  rule(func(r *Rule) { r.MinValue = 1000 }), // 1 ms
			in:    fleet("n", "HGST", nil, append(slices.Clone(fast), 100)...),
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "MinValue floor lets a large difference through",
			rule:  rule(func(r *Rule) { r.MinValue = 1000 }),
			in:    fleet("n", "HGST", nil, withOutlier...),
			want:  []string{"n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "small group skipped",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, withOutlier[33:]...), // 7 disks, outlier included
			stats: Stats{Groups: 1, SkippedSmallGroups: 1},
		},
		{
			name:  "MinPeers 3 scores a group of three",
			rule:  rule(func(r *Rule) { r.MinPeers = 3 }),
			in:    fleet("n", "HGST", nil, 40000, 41000, 900000),
			want:  []string{"n02/sda"},
			stats: Stats{Groups: 1, Evaluated: 3},
		},
		{
			name:  "stale outlier skipped",
			rule:  rule(),
			in:    staleOutlier,
			stats: Stats{Groups: 1, Evaluated: 39, SkippedStale: 1},
		},
		{
			name:  "stale outlier counts with a longer MaxAge",
			rule:  rule(func(r *Rule) { r.MaxAge = time.Hour }),
			in:    staleOutlier,
			want:  []string{"n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "stale peer does not count towards the group",
			rule:  rule(),
			in:    staleEight,
			stats: Stats{Groups: 1, SkippedSmallGroups: 1, SkippedStale: 1},
		},
		{
			name:  "observation without time is stale",
			rule:  rule(),
			in:    noTime,
			stats: Stats{Groups: 1, Evaluated: 39, SkippedStale: 1},
		},
		{
			name:  "missing sample, NaN, Inf and nil observation skipped",
			rule:  rule(),
			in:    missing,
			want:  []string{"n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40, SkippedMissingSample: 4},
		},
		{
			name:  "MAD zero: lone non-zero counter among zeros flagged",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, zeros(49, 3)...),
			want:  []string{"n49/sda"},
			stats: Stats{Groups: 1, Evaluated: 50},
		},
		{
			name:  "MAD zero: lone bad disk among identical latencies flagged",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, append(slices.Repeat([]float64{41000}, 20), 41500)...),
			want:  []string{"n20/sda"},
			stats: Stats{Groups: 1, Evaluated: 21},
		},
		{
			name:  "MAD zero: identical values flag nothing",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, slices.Repeat([]float64{41000}, 20)...),
			stats: Stats{Groups: 1, Evaluated: 20},
		},
		{
			name:  "MAD zero: MinValue keeps a single error",
			rule:  rule(func(r *Rule) { r.MinValue = 5 }),
			in:    fleet("n", "HGST", nil, zeros(49, 1)...),
			stats: Stats{Groups: 1, Evaluated: 50},
		},
		{
			// 30 zeros and 1..10: mean deviation 55/40, scale 1.72, so
			// 7 (z 4.06) is out and 6 (z 3.48) is not.
			name:  "MAD zero: only the far end of a spread minority flagged",
			rule:  rule(),
			in:    fleet("n", "HGST", nil, zeros(30, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)...),
			want:  []string{"n36/sda", "n37/sda", "n38/sda", "n39/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name:  "two models never compared with each other",
			rule:  rule(),
			in:    concat(fleet("a", "SSD-A", nil, ssd...), fleet("b", "HDD-B", nil, slow...)),
			stats: Stats{Groups: 2, Evaluated: 28},
		},
		{
			// Control for the case above: the same values under one model.
			name:  "same values under one model flagged",
			rule:  rule(),
			in:    concat(fleet("a", "M", nil, ssd...), fleet("b", "M", nil, slow...)),
			want:  []string{"b00/sda", "b01/sda", "b02/sda", "b03/sda", "b04/sda", "b05/sda", "b06/sda", "b07/sda"},
			stats: Stats{Groups: 1, Evaluated: 28},
		},
		{
			name:  "empty model groups by part kind only",
			rule:  rule(),
			in:    concat(fleet("n", "", nil, withOutlier[29:]...), nicInputs),
			want:  []string{"n10/sda"},
			stats: Stats{Groups: 2, Evaluated: 41},
		},
		{
			name:  "labels split groups",
			rule:  rule(func(r *Rule) { r.Peers = []string{"rack"} }),
			in:    concat(fleet("a", "M", r1, hdd[:20]...), fleet("b", "M", r2, slow...)),
			stats: Stats{Groups: 2, Evaluated: 28},
		},
		{
			name:  "without labels the same racks are one group",
			rule:  rule(),
			in:    concat(fleet("a", "M", r1, hdd[:20]...), fleet("b", "M", r2, slow...)),
			want:  []string{"b00/sda", "b01/sda", "b02/sda", "b03/sda", "b04/sda", "b05/sda", "b06/sda", "b07/sda"},
			stats: Stats{Groups: 1, Evaluated: 28},
		},
		{
			name:  "missing label is a group of its own",
			rule:  rule(func(r *Rule) { r.Peers = []string{"rack"} }),
			in:    concat(fleet("a", "M", r1, hdd[:20]...), fleet("b", "M", nil, slow...)),
			stats: Stats{Groups: 2, Evaluated: 28},
		},
		{
			name:  "other sources ignored",
			rule:  rule(),
			in:    append(fleet("n", "HGST", nil, hdd...), diskstats),
			stats: Stats{Groups: 1, Evaluated: 39},
		},
		{
			name:  "empty Source takes every source",
			rule:  rule(func(r *Rule) { r.Source = "" }),
			in:    append(fleet("n", "HGST", nil, hdd...), diskstats),
			want:  []string{"d1/sda"},
			stats: Stats{Groups: 1, Evaluated: 40},
		},
		{
			name: "invalid rule finds nothing",
			rule: rule(func(r *Rule) { r.Direction = "sideways" }),
			in:   fleet("n", "HGST", nil, withOutlier...),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, st := Evaluate(tc.rule, tc.in, now)
			if g := flagged(got); !slices.Equal(g, tc.want) && len(g)+len(tc.want) > 0 {
				t.Errorf("flagged %q, want %q", g, tc.want)
				for _, f := range got {
					t.Logf("%s", f.Fault.GetSummary())
				}
			}
			if st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
		})
	}
}

func TestFaultContent(t *testing.T) {
	vals := []float64{40000, 41000, 42000, 39000, 41000, 43000, 40500, 41500, 812000}
	in := fleet("n", "ST4000DM000", map[string]string{"rack": "r1"}, vals...)
	in[8].Observation.Part.Name = "sdb"
	r := rule(func(r *Rule) { r.Peers = []string{"rack", "zone"} })
	got, _ := Evaluate(r, in, now)
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1", len(got))
	}
	f := got[0].Fault
	if got[0].Node != "n08" {
		t.Errorf("node %q, want n08", got[0].Node)
	}
	// median 41000; |deviations| 1000 0 1000 2000 0 2000 500 500 771000 ->
	// MAD 1000, scale 1482.6, z = 771000/1482.6 = 520.03.
	want := &hwhealv1.Fault{
		FaultClass: "disk.latency_outlier",
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Part:       in[8].Observation.GetPart(),
		Rule:       "disk-latency-outlier",
		Summary:    "latency_p99_us 812000 on sdb is 520 robust SDs above the median 41000 of 9 peers (disk, model ST4000DM000, rack=r1, zone=(none))",
		Mode:       hwhealv1.RuleMode_RULE_MODE_SHADOW,
	}
	if f.GetFaultClass() != want.FaultClass || f.GetSeverity() != want.Severity || f.GetRule() != want.Rule ||
		f.GetMode() != want.Mode || f.GetSummary() != want.Summary {
		t.Errorf("fault\n got %v\nwant %v", f, want)
	}
	if !proto.Equal(f.GetPart(), want.Part) {
		t.Errorf("part %v, want %v", f.GetPart(), want.Part)
	}
	if f.GetPart() == in[8].Observation.GetPart() {
		t.Error("fault part aliases the input's part")
	}
	// The reading's time: the store clears the fault by a newer reading
	// on the same (agent's) clock.
	if want := in[8].Observation.GetTime().AsTime(); !f.GetTime().AsTime().Equal(want) {
		t.Errorf("time %v, want the reading's %v", f.GetTime().AsTime(), want)
	}
	if d := f.GetClearAfter().AsDuration(); d != time.Hour {
		t.Errorf("clear_after %v, want 1h", d)
	}
	for name, want := range map[string]float64{
		EvidenceValue: 812000, EvidenceMedian: 41000, EvidenceMAD: 1000, EvidenceScale: 1482.6,
		EvidenceRobustZ: 771000 / 1482.6, EvidencePeers: 9,
	} {
		got, ok := evidence(f, name)
		if !ok || math.Abs(got-want) > 1e-9*math.Abs(want) {
			t.Errorf("evidence %s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	low := fleet("n", "", nil, 40000, 41000, 42000, 39000, 41000, 43000, 40500, 41500, 0.25)
	got, _ = Evaluate(rule(func(r *Rule) { r.Direction = Low; r.ClearAfter = 0 }), low, now)
	if len(got) != 1 {
		t.Fatalf("low: got %d findings, want 1", len(got))
	}
	f = got[0].Fault
	if want := "latency_p99_us 0.25 on sda is 27.65 robust SDs below the median 41000 of 9 peers (disk, model unknown)"; f.GetSummary() != want {
		t.Errorf("low summary\n got %q\nwant %q", f.GetSummary(), want)
	}
	if z, _ := evidence(f, EvidenceRobustZ); z >= 0 {
		t.Errorf("low robust_z %v, want negative", z)
	}
	if f.GetClearAfter() != nil {
		t.Errorf("clear_after %v, want unset for a rule without one", f.GetClearAfter())
	}
}

// The order of findings is by node, then part, whatever the order of the
// input: the caller diffs successive evaluations.
func TestDeterministicOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var in []Input
	for i, v := range lognormal(rng, 60, 41000, 0.1) {
		node := "n" + string(rune('z'-i%26)) + string(rune('a'+i/26))
		in = append(in, disk(node, "sd"+string(rune('c'-i%3)), "HGST", v, time.Minute, nil))
	}
	// Two outliers on one node, on parts listed in reverse, and others.
	in = append(in,
		disk("nq", "sdc", "HGST", 900000, time.Minute, nil),
		disk("nq", "sda", "HGST", 800000, time.Minute, nil),
		disk("na", "sdb", "HGST", 700000, time.Minute, nil),
		disk("nz", "nvme0n1", "HGST", 600000, time.Minute, nil),
	)
	want := []string{"na/sdb", "nq/sda", "nq/sdc", "nz/nvme0n1"}
	for i := range 20 {
		rng.Shuffle(len(in), func(a, b int) { in[a], in[b] = in[b], in[a] })
		got, _ := Evaluate(rule(), in, now)
		if g := flagged(got); !slices.Equal(g, want) {
			t.Fatalf("shuffle %d: flagged %q, want %q", i, g, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Rule)
		field string // "" means valid
	}{
		{"valid", func(*Rule) {}, ""},
		{"valid with every field", func(r *Rule) {
			r.Peers = []string{"rack", "role"}
			r.MinPeers, r.Threshold, r.MinValue, r.Direction, r.MaxAge = 3, 1, 2, Low, time.Minute
		}, ""},
		{"no name", func(r *Rule) { r.Name = "" }, "name"},
		{"no class", func(r *Rule) { r.Class = "" }, "class"},
		{"no sample", func(r *Rule) { r.Sample = "" }, "sample"},
		{"negative clear_after", func(r *Rule) { r.ClearAfter = -time.Second }, "clear_after"},
		{"empty label key", func(r *Rule) { r.Peers = []string{""} }, "peers"},
		{"duplicate label key", func(r *Rule) { r.Peers = []string{"rack", "rack"} }, "peers"},
		{"min_peers 2", func(r *Rule) { r.MinPeers = 2 }, "min_peers"},
		{"min_peers negative", func(r *Rule) { r.MinPeers = -1 }, "min_peers"},
		{"threshold under 1", func(r *Rule) { r.Threshold = 0.5 }, "threshold"},
		{"threshold negative", func(r *Rule) { r.Threshold = -3.5 }, "threshold"},
		{"threshold NaN", func(r *Rule) { r.Threshold = math.NaN() }, "threshold"},
		{"threshold Inf", func(r *Rule) { r.Threshold = math.Inf(1) }, "threshold"},
		{"min_value negative", func(r *Rule) { r.MinValue = -1 }, "min_value"},
		{"min_value NaN", func(r *Rule) { r.MinValue = math.NaN() }, "min_value"},
		{"direction", func(r *Rule) { r.Direction = "HIGH" }, "direction"},
		{"negative max_age", func(r *Rule) { r.MaxAge = -time.Minute }, "max_age"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := rule(tc.mod).Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":")):
				t.Errorf("Validate: %v, want an error naming %s", err, tc.field)
			case tc.field != "" && tc.field != "name" && !strings.Contains(err.Error(), `"disk-latency-outlier"`):
				t.Errorf("Validate: %v, want the rule named", err)
			}
		})
	}
}
