package detect

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSeriesAgainstAllReadings holds a counter's series to a reference
// that keeps every reading: the growth since the oldest reading inside the
// window, decreases and gaps longer than the window adding nothing. With
// readings further apart than window/64 the two agree exactly; closer
// ones the series merges, and may only count less (never raise where the
// reference would not), and it stays within its bound of spans.
func TestSeriesAgainstAllReadings(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	const window = time.Hour
	for round := 0; round < 300; round++ {
		sparse := round%2 == 0
		var s series
		type reading struct {
			t     time.Time
			total float64
		}
		var all []reading
		var total, last float64
		at := time.Unix(1_700_000_000, 0)
		for i := 0; i < 400; i++ {
			step := time.Duration(rng.IntN(90)) * time.Second
			if sparse {
				step = window/64 + time.Duration(rng.IntN(int(window/4)))
			}
			if rng.IntN(50) == 0 {
				step = window + time.Minute // a gap longer than the window
			}
			at = at.Add(step)
			v := last + float64(rng.IntN(4))
			if rng.IntN(40) == 0 {
				v = float64(rng.IntN(3)) // a reset
			}
			if len(all) > 0 && v >= last && at.Sub(all[len(all)-1].t) <= window {
				total += v - last
			}
			last = v
			all = append(all, reading{at, total})
			want := 0.0
			for _, r := range all {
				if !r.t.Before(at.Add(-window)) {
					want = total - r.total
					break
				}
			}
			got, from := s.add(at, v, window)
			if sparse && got != want || got > want {
				t.Fatalf("round %d reading %d (sparse %v): increase %v, reference %v", round, i, sparse, got, want)
			}
			if from.After(at) || from.Before(at.Add(-window)) {
				t.Fatalf("round %d reading %d: counted from %v, outside the window ending %v", round, i, from, at)
			}
			if len(s.spans) > 66 {
				t.Fatalf("round %d reading %d: %d spans", round, i, len(s.spans))
			}
		}
	}
}
