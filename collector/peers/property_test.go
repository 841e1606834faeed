package peers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// ref is the reference's view of one scored input.
type ref struct {
	z     float64 // robust z
	d     float64 // value - median
	group string
}

// scored is a naive, sort-based restatement of Evaluate's scoring, written
// independently of it: every usable input of a group that is large enough,
// keyed by input index.
func scored(r Rule, in []Input) map[int]ref {
	groups := map[string][]int{}
	for i, x := range in {
		obs := x.Observation
		if obs == nil || (r.Source != "" && obs.GetSource() != r.Source) || obs.GetTime() == nil ||
			now.Sub(obs.GetTime().AsTime()) > cmpOr(r.MaxAge, DefaultMaxAge) {
			continue
		}
		v, ok := sample(obs, r.Sample)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		var key []string
		for _, p := range r.Peers {
			key = append(key, fmt.Sprintf("%q", x.Labels[p]))
		}
		key = append(key, obs.GetPart().GetKind().String(), fmt.Sprintf("%q", obs.GetPart().GetModel()))
		k := strings.Join(key, "|")
		groups[k] = append(groups[k], i)
	}
	out := map[int]ref{}
	for k, idx := range groups {
		if len(idx) < cmpOr(r.MinPeers, DefaultMinPeers) {
			continue
		}
		vals := make([]float64, len(idx))
		for j, i := range idx {
			vals[j], _ = sample(in[i].Observation, r.Sample)
		}
		med := medianSorted(slices.Clone(vals))
		dev := make([]float64, len(vals))
		var sum float64
		for j, v := range vals {
			dev[j] = math.Abs(v - med)
			sum += dev[j]
		}
		scale := 1.4826 * medianSorted(dev)
		if scale == 0 {
			scale = 1.2533 * sum / float64(len(vals))
		}
		for j, i := range idx {
			x := ref{d: vals[j] - med, group: k}
			if scale > 0 {
				x.z = x.d / scale
			}
			out[i] = x
		}
	}
	return out
}

// randomFleet draws groups of the shapes a fleet shows: log-normal
// latencies with a few slow disks, error counters mostly at 0, identical
// values with one off. Values are whole numbers (µs, counts).
func randomFleet(rng *rand.Rand) []Input {
	var in []Input
	for g := range 1 + rng.IntN(4) {
		n := 3 + rng.IntN(60)
		model := fmt.Sprintf("M%d", g)
		var vals []float64
		switch rng.IntN(4) {
		case 0:
			vals = lognormal(rng, n, 1000+rng.Float64()*50000, 0.05+rng.Float64()*0.5)
			for i := range vals {
				if rng.IntN(20) == 0 {
					vals[i] *= 2 + 20*rng.Float64()
					vals[i] = math.Round(vals[i])
				}
			}
		case 1:
			vals = make([]float64, n)
			for i := range vals {
				if rng.IntN(8) == 0 {
					vals[i] = float64(rng.IntN(200))
				}
			}
		case 2:
			vals = slices.Repeat([]float64{float64(rng.IntN(1000))}, n)
			vals[rng.IntN(n)] += float64(rng.IntN(5) - 2)
		default:
			vals = make([]float64, n)
			for i := range vals {
				vals[i] = float64(rng.IntN(10))
			}
		}
		in = append(in, fleet(fmt.Sprintf("g%d-", g), model, nil, vals...)...)
	}
	return in
}

func randomRule(rng *rand.Rand) Rule {
	return rule(func(r *Rule) {
		r.MinPeers = 3 + rng.IntN(8)
		r.Threshold = 1 + 5*rng.Float64()
		if rng.IntN(2) == 0 {
			r.Direction = Low
		}
	})
}

func transform(in []Input, f func(float64) float64) []Input {
	out := make([]Input, len(in))
	for i, x := range in {
		obs := proto.CloneOf(x.Observation)
		for _, s := range obs.GetSamples() {
			if s.GetName() == latency {
				s.Value = f(s.GetValue())
			}
		}
		out[i] = Input{Node: x.Node, Labels: x.Labels, Observation: obs}
	}
	return out
}

// borderline says whether some input scores so close to the threshold that
// float rounding after a transform may legitimately move it across.
func borderline(r Rule, in []Input) bool {
	for _, x := range scored(r, in) {
		if math.Abs(math.Abs(x.z)-r.Threshold) < 1e-9*r.Threshold {
			return true
		}
	}
	return false
}

// The robust z-score is invariant under v -> a*v + b for a > 0: which parts
// are flagged must not depend on the unit (µs or ms) or on an offset. The
// MinValue floor is a distance in the sample's unit, so it is left at 0
// here; shifting does not touch it either way.
func TestInvariantUnderScaleAndShift(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	scales := []float64{1.0 / 1024, 1e-3, 0.37, 3, 1e4}
	shifts := []float64{-1e5, -0.5, 7.25, 1e6}
	var trials, withFindings, skipped int
	for trials < 300 {
		in, r := randomFleet(rng), randomRule(rng)
		if borderline(r, in) {
			skipped++
			continue
		}
		trials++
		base, _ := Evaluate(r, in, now)
		want := flagged(base)
		if len(want) > 0 {
			withFindings++
		}
		for _, a := range scales {
			got, _ := Evaluate(r, transform(in, func(v float64) float64 { return v * a }), now)
			if g := flagged(got); !slices.Equal(g, want) {
				t.Fatalf("scaled by %v: flagged %q, want %q", a, g, want)
			}
		}
		for _, b := range shifts {
			got, _ := Evaluate(r, transform(in, func(v float64) float64 { return v + b }), now)
			if g := flagged(got); !slices.Equal(g, want) {
				t.Fatalf("shifted by %v: flagged %q, want %q", b, g, want)
			}
		}
	}
	// A property that holds because nothing is ever flagged proves nothing.
	if withFindings < trials/4 {
		t.Fatalf("only %d of %d trials flagged anything", withFindings, trials)
	}
	t.Logf("%d trials (%d with findings), %d borderline draws skipped", trials, withFindings, skipped)
}

// Evaluate agrees with the naive reference: a part is flagged exactly when
// its robust z passes the threshold in the rule's direction; never more
// than half of a group is flagged; the selection and sort paths return the
// same faults.
func TestMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 300 {
		in, r := randomFleet(rng), randomRule(rng)
		if rng.IntN(3) == 0 {
			r.MinValue = float64(rng.IntN(50))
		}
		checkAgainstReference(t, fmt.Sprintf("trial %d", trial), r, in)
	}
}

func checkAgainstReference(t *testing.T, what string, r Rule, in []Input) {
	t.Helper()
	got, st := Evaluate(r, in, now)
	refs := scored(r, in)
	if st.Evaluated != len(refs) {
		t.Fatalf("%s: evaluated %d, reference scored %d", what, st.Evaluated, len(refs))
	}
	threshold := cmpOr(r.Threshold, DefaultThreshold)
	var want []string
	size, flags := map[string]int{}, map[string]int{}
	for i, x := range refs {
		size[x.group]++
		z, d := x.z, x.d
		if r.Direction == Low {
			z, d = -z, -d
		}
		if z > threshold && d >= r.MinValue {
			want = append(want, in[i].Node+"/"+in[i].Observation.GetPart().GetName())
			flags[x.group]++
		}
	}
	slices.Sort(want)
	if g := flagged(got); !slices.Equal(g, want) {
		t.Fatalf("%s: flagged %d, reference %d; first difference %s", what, len(g), len(want), firstDiff(g, want))
	}
	for g, n := range flags {
		if 2*n > size[g] {
			t.Fatalf("%s: %d of %d parts of group %s flagged: more than half", what, n, size[g], g)
		}
	}
	sorted, _ := evaluate(r, in, now, medianSorted)
	if len(sorted) != len(got) {
		t.Fatalf("%s: sort path found %d, selection %d", what, len(sorted), len(got))
	}
	for i := range got {
		if sorted[i].Node != got[i].Node || !proto.Equal(sorted[i].Fault, got[i].Fault) {
			t.Fatalf("%s: finding %d differs:\nselect %v\n  sort %v", what, i, got[i].Fault, sorted[i].Fault)
		}
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("at %d (one list ends)", min(len(a), len(b)))
}
