package blockio

import (
	"fmt"
	"math"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// nslots is NSLOTS in bpf/blockio.c: slot 0 holds latencies in [0, 2) µs,
// slot i in [2^i, 2^(i+1)) µs, and the last everything from 2^26 µs (67 s).
const nslots = 27

// Sample names of a device's observation. Counts are of the interval
// ("interval_seconds") since the previous observation, not totals.
const (
	// SampleRequests is the number of requests completed in the interval
	// whose issue was seen: the histogram's total.
	SampleRequests = "requests"
	// SampleErrors is the number of completions that failed, all statuses
	// included (also those not raised as faults).
	SampleErrors = "errors"
	// SampleInterval is the length of the interval in seconds.
	SampleInterval = "interval_seconds"
	// Latency from issue to the device to completion, in microseconds;
	// present when the interval had requests. The percentiles are
	// estimated from the log2 histogram by interpolating inside a bucket,
	// so they are good to a factor of two at worst.
	SampleLatencyMean = "latency_mean_us"
	SampleLatencyP50  = "latency_p50_us"
	SampleLatencyP99  = "latency_p99_us"
	// SampleBucketPrefix starts the name of each histogram bucket that
	// counted a request in the interval: "latency_us_<lo>_<hi>" counts
	// latencies in [lo, hi) µs ("latency_us_0_2", "latency_us_64_128"),
	// and the last one is "latency_us_67108864_inf".
	SampleBucketPrefix = "latency_us_"
)

// histogram is one device's counters: struct hist in bpf/blockio.c.
type histogram struct {
	Slots  [nslots]uint64
	Count  uint64
	Errors uint64
	SumNs  uint64
}

// sub returns h minus an earlier reading prev. Counters that went down
// (the device's entry was dropped and made again) count from zero.
func (h histogram) sub(prev histogram) histogram {
	if h.Count < prev.Count || h.Errors < prev.Errors {
		return h
	}
	d := func(a, b uint64) uint64 {
		if a < b {
			return a
		}
		return a - b
	}
	out := histogram{Count: d(h.Count, prev.Count), Errors: d(h.Errors, prev.Errors), SumNs: d(h.SumNs, prev.SumNs)}
	for i := range h.Slots {
		out.Slots[i] = d(h.Slots[i], prev.Slots[i])
	}
	return out
}

// bucketBounds is [lo, hi) of slot i in µs; hi is +Inf for the last.
func bucketBounds(i int) (lo, hi float64) {
	if i == 0 {
		return 0, 2
	}
	lo = math.Ldexp(1, i)
	if i == nslots-1 {
		return lo, math.Inf(1)
	}
	return lo, 2 * lo
}

// total is the number of requests in the buckets.
func (h histogram) total() uint64 {
	var n uint64
	for _, c := range h.Slots {
		n += c
	}
	return n
}

// quantile estimates the q-quantile (0 < q <= 1) of the latencies in µs:
// the bucket holding the rank, linearly inside it; the lower bound of the
// open last bucket. NaN for an empty histogram.
func (h histogram) quantile(q float64) float64 {
	n := h.total()
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	var cum float64
	for i, c := range h.Slots {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := bucketBounds(i)
			if math.IsInf(hi, 1) {
				return lo
			}
			return lo + (hi-lo)*(rank-cum)/float64(c)
		}
		cum += float64(c)
	}
	lo, _ := bucketBounds(nslots - 1)
	return lo
}

// bucketName is the sample name of slot i.
func bucketName(i int) string {
	lo, hi := bucketBounds(i)
	if math.IsInf(hi, 1) {
		return fmt.Sprintf("%s%d_inf", SampleBucketPrefix, int64(lo))
	}
	return fmt.Sprintf("%s%d_%d", SampleBucketPrefix, int64(lo), int64(hi))
}

// samples turns one interval's counters into a device's samples.
func (h histogram) samples(interval time.Duration) []*hwhealv1.Sample {
	add := func(out []*hwhealv1.Sample, name string, v float64) []*hwhealv1.Sample {
		return append(out, &hwhealv1.Sample{Name: name, Value: v})
	}
	n := h.total()
	out := make([]*hwhealv1.Sample, 0, 6+nslots)
	out = add(out, SampleRequests, float64(n))
	out = add(out, SampleErrors, float64(h.Errors))
	out = add(out, SampleInterval, interval.Seconds())
	if n == 0 {
		return out
	}
	out = add(out, SampleLatencyMean, float64(h.SumNs)/float64(n)/1e3)
	out = add(out, SampleLatencyP50, h.quantile(0.50))
	out = add(out, SampleLatencyP99, h.quantile(0.99))
	for i, c := range h.Slots {
		if c > 0 {
			out = add(out, bucketName(i), float64(c))
		}
	}
	return out
}
