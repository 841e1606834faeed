package peers

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// fuzzInput decodes a rule and a fleet from bytes: a 4-byte header (min
// peers, threshold, min value, direction and max age bits), then 10-byte
// records (group, age, value bits). Any bit pattern is a value: NaN, ±Inf,
// subnormals and values near ±MaxFloat64 all reach Evaluate.
func fuzzInput(data []byte) (Rule, []Input) {
	var hdr [4]byte
	copy(hdr[:], data)
	data = data[min(len(data), 4):]
	r := rule(func(r *Rule) {
		r.Peers = []string{"rack"}
		r.MinPeers = 3 + int(hdr[0]%8)
		r.Threshold = 1 + float64(hdr[1])/16
		r.MinValue = float64(hdr[2]%4) * 10
		if hdr[3]&1 != 0 {
			r.Direction = Low
		}
		if hdr[3]&2 != 0 {
			r.MaxAge = time.Minute
		}
	})
	var in []Input
	for i := 0; len(data) >= 10; i, data = i+1, data[10:] {
		g, age := data[0], time.Duration(data[1])*10*time.Second
		v := math.Float64frombits(binary.LittleEndian.Uint64(data[2:]))
		labels := map[string]string{"rack": fmt.Sprint(g % 3)}
		in = append(in, disk(fmt.Sprintf("n%03d", i), "sd"+string(rune('a'+g%4)), fmt.Sprint(g/64), v, age, labels))
	}
	return r, in
}

func record(group, age byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64([]byte{group, age}, math.Float64bits(v))
}

func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	seed := []byte{0, 40, 0, 0}
	for i := range 12 {
		seed = append(seed, record(0, 1, 41000+float64(i*100))...)
	}
	f.Add(append(slices.Clone(seed), record(0, 1, 812000)...))
	f.Add(append(slices.Clone(seed), record(0, 1, math.NaN())...))
	f.Add(append(slices.Clone(seed), record(0, 1, math.MaxFloat64)...))
	f.Add(append(slices.Clone(seed), record(0, 1, -math.MaxFloat64)...))
	f.Add(append(slices.Clone(seed), record(0, 1, math.SmallestNonzeroFloat64)...))
	zeros := []byte{0, 0, 0, 1}
	for range 10 {
		zeros = append(zeros, record(3, 0, 0)...)
	}
	f.Add(append(zeros, record(3, 0, -5e-324)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, in := fuzzInput(data)
		got, st := Evaluate(r, in, now)
		if 2*len(got) > st.Evaluated {
			t.Fatalf("%d findings among %d scored parts: more than half", len(got), st.Evaluated)
		}
		if st.Evaluated+st.SkippedMissingSample+st.SkippedStale > len(in) {
			t.Fatalf("stats %+v exceed %d inputs", st, len(in))
		}
		if !slices.IsSortedFunc(got, compareFindings) {
			t.Fatalf("findings not sorted: %q", flagged(got))
		}
		for _, f := range got {
			for _, s := range f.Fault.GetEvidence().GetSamples() {
				if math.IsNaN(s.GetValue()) || math.IsInf(s.GetValue(), 0) {
					t.Fatalf("evidence %s = %v in %v", s.GetName(), s.GetValue(), f.Fault)
				}
			}
			if z, _ := evidence(f.Fault, EvidenceRobustZ); (r.Direction == Low) != (z < 0) || math.Abs(z) <= r.Threshold {
				t.Fatalf("robust_z %v does not pass threshold %v in direction %q", z, r.Threshold, r.Direction)
			}
		}
	})
}
