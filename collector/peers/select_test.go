package peers

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// shapes are value layouts that break naive quickselects: sorted and
// reversed runs, organ pipes, long runs of one value (counters at 0), two
// values only, and random data.
func shapes(rng *rand.Rand, n int) map[string][]float64 {
	m := map[string][]float64{
		"random":   make([]float64, n),
		"sorted":   make([]float64, n),
		"reversed": make([]float64, n),
		"organ":    make([]float64, n),
		"zeros":    make([]float64, n),
		"mostly0":  make([]float64, n),
		"two":      make([]float64, n),
		"few":      make([]float64, n),
		"sawtooth": make([]float64, n),
	}
	for i := range n {
		m["random"][i] = rng.NormFloat64() * 1e3
		m["sorted"][i] = float64(i)
		m["reversed"][i] = float64(n - i)
		m["organ"][i] = float64(min(i, n-i))
		if rng.IntN(10) == 0 {
			m["mostly0"][i] = float64(rng.IntN(100))
		}
		m["two"][i] = float64(i % 2)
		m["few"][i] = float64(rng.IntN(4)) - 1.5
		m["sawtooth"][i] = float64(i % 17)
	}
	return m
}

func TestMedianMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 4, 5, 16, 17, 18, 31, 127, 128, 129, 1000, 1601, 5000} {
		for name, vals := range shapes(rng, n) {
			want := medianSorted(slices.Clone(vals))
			a := slices.Clone(vals)
			if got := median(a); got != want {
				t.Errorf("%s n=%d: median %v, want %v", name, n, got, want)
			}
			// Selection only reorders.
			slices.Sort(a)
			b := slices.Clone(vals)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Errorf("%s n=%d: median changed the values", name, n)
			}
		}
	}
}

func TestSelectKPartitions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 17, 200, 3000} {
		for name, vals := range shapes(rng, n) {
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			for _, k := range []int{0, n / 3, n / 2, n - 1} {
				a := slices.Clone(vals)
				selectK(a, k)
				if a[k] != sorted[k] {
					t.Fatalf("%s n=%d k=%d: a[k]=%v, want %v", name, n, k, a[k], sorted[k])
				}
				for i, v := range a {
					if (i < k && v > a[k]) || (i > k && v < a[k]) {
						t.Fatalf("%s n=%d k=%d: a[%d]=%v on the wrong side of %v", name, n, k, i, v, a[k])
					}
				}
			}
		}
	}
}

func TestMidNoOverflow(t *testing.T) {
	for _, tc := range []struct{ lo, hi, want float64 }{
		{1, 3, 2},
		{-math.MaxFloat64, math.MaxFloat64, 0},
		{math.MaxFloat64, math.MaxFloat64, math.MaxFloat64},
		{math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64},
		{-5, -5, -5},
	} {
		if got := mid(tc.lo, tc.hi); got != tc.want {
			t.Errorf("mid(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// FuzzMedian checks selection against a sort on any finite values.
func FuzzMedian(f *testing.F) {
	f.Add([]byte{})
	f.Add(binary.LittleEndian.AppendUint64(nil, math.Float64bits(1.5)))
	f.Add(make([]byte, 8*40))
	f.Fuzz(func(t *testing.T, data []byte) {
		var vals []float64
		for ; len(data) >= 8; data = data[8:] {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data))
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			return
		}
		want := medianSorted(slices.Clone(vals))
		if got := median(vals); got != want {
			t.Fatalf("median %v, want %v", got, want)
		}
	})
}
