package transport

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// backoff computes reconnect delays: exponential with full jitter, so that a
// fleet whose collector restarts does not reconnect in lock step.
type backoff struct {
	min, max time.Duration
	// rand returns a uniform value in [0, n); n > 0. Injected so tests are
	// deterministic (math/rand/v2's Int64N in production).
	rand func(n int64) int64
}

// delay is the wait before reconnect attempt number attempt (0 for the
// first retry): uniform in [0, min(max, min*2^attempt)).
func (b backoff) delay(attempt int) time.Duration {
	ceil := b.max
	if attempt < 62 {
		if c := b.min << attempt; c > 0 && c < b.max {
			ceil = c
		}
	}
	return time.Duration(b.rand(int64(ceil)))
}

// atMax is the wait after an error retrying soon cannot fix: uniform in
// [max/2, max]. Still jittered, because such errors hit a whole fleet at
// once (a rotated CA, a collector that rejects a new report kind).
func (b backoff) atMax() time.Duration {
	half := b.max / 2
	return half + time.Duration(b.rand(int64(b.max-half)+1))
}

// retryDelay picks the wait after a session ended with err. attempt counts
// consecutive sessions without progress and is advanced here.
func (b backoff) retryDelay(err error, attempt *int) time.Duration {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		// Credentials or authorization: an operator has to act; retrying
		// faster only fills the collector's log.
		*attempt++
		return b.atMax()
	case codes.InvalidArgument:
		// The collector refused something it will never take; see
		// Client.session for how the report is isolated and skipped.
		// Waiting at the maximum bounds how fast a collector that wrongly
		// refuses everything can make the agent skip reports.
		*attempt++
		return b.atMax()
	}
	d := b.delay(*attempt)
	*attempt++
	return d
}
