package peers

import (
	"math"
	"math/bits"
	"slices"
)

// The group statistics need two medians per group (of the values, then of
// the absolute deviations). A full sort costs n log n comparisons per group;
// selection finds the k-th value in linear expected time. Inputs are finite
// (NaN and ±Inf are filtered before grouping), so < and > are a total order.

// selectK reorders a so that a[k] holds the value a full sort would put
// there, with a[:k] <= a[k] <= a[k+1:].
//
// Quickselect with a three-way partition, so that groups full of identical
// values (error counters at 0 across a fleet) finish in one pass instead of
// degrading, and a recursion budget after which it sorts the remaining range:
// adversarial inputs cost n log n, never n².
func selectK(a []float64, k int) {
	lo, hi := 0, len(a)
	budget := 2 * bits.Len(uint(len(a)))
	for hi-lo > 16 {
		if budget == 0 {
			slices.Sort(a[lo:hi])
			return
		}
		budget--
		lt, gt := partition3(a, lo, hi, pivot(a, lo, hi))
		switch {
		case k < lt:
			hi = lt
		case k >= gt:
			lo = gt
		default:
			return // a[k] is in the run equal to the pivot
		}
	}
	insertionSort(a[lo:hi])
}

// pivot picks the median of three samples, or Tukey's ninther on large
// ranges, so sorted and reverse-sorted inputs (a fleet listed by latency)
// split near the middle.
func pivot(a []float64, lo, hi int) float64 {
	n := hi - lo
	mid := lo + n/2
	if n < 128 {
		return med3(a[lo], a[mid], a[hi-1])
	}
	s := n / 8
	return med3(
		med3(a[lo], a[lo+s], a[lo+2*s]),
		med3(a[mid-s], a[mid], a[mid+s]),
		med3(a[hi-1-2*s], a[hi-1-s], a[hi-1]),
	)
}

func med3(x, y, z float64) float64 {
	if x > y {
		x, y = y, x
	}
	if y > z {
		y = z
	}
	if x > y {
		return x
	}
	return y
}

// partition3 rearranges a[lo:hi] into three runs: a[lo:lt] < p,
// a[lt:gt] == p, a[gt:hi] > p.
func partition3(a []float64, lo, hi int, p float64) (lt, gt int) {
	lt, i, gt := lo, lo, hi
	for i < gt {
		v := a[i]
		switch {
		case v < p:
			a[lt], a[i] = v, a[lt]
			lt++
			i++
		case v > p:
			gt--
			a[i], a[gt] = a[gt], v
		default:
			i++
		}
	}
	return lt, gt
}

func insertionSort(a []float64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		j := i
		for ; j > 0 && a[j-1] > v; j-- {
			a[j] = a[j-1]
		}
		a[j] = v
	}
}

// median returns the median of a (the mean of the two middle values when
// len(a) is even), reordering a. len(a) must be > 0.
func median(a []float64) float64 {
	n := len(a)
	k := n / 2
	selectK(a, k)
	hi := a[k]
	if n%2 == 1 {
		return hi
	}
	// After selection every value before k is <= a[k]; the lower middle
	// value is the largest of them.
	lo := a[0]
	for _, v := range a[1:k] {
		lo = max(lo, v)
	}
	return mid(lo, hi)
}

// medianSorted is median by a full sort: the reference the tests compare
// selection with and the baseline the benchmark measures it against.
func medianSorted(a []float64) float64 {
	slices.Sort(a)
	n := len(a)
	if n%2 == 1 {
		return a[n/2]
	}
	return mid(a[n/2-1], a[n/2])
}

// mid is the midpoint of lo <= hi without overflow: (lo+hi)/2 is +Inf for
// two values near MaxFloat64.
func mid(lo, hi float64) float64 {
	if lo == hi {
		return lo
	}
	if d := hi - lo; !math.IsInf(d, 0) {
		return lo + d/2
	}
	return lo/2 + hi/2
}
