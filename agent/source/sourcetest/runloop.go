package sourcetest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/agent/source"
)

// Periodic is a source that polls and counts its failed readings.
type Periodic interface {
	source.Source
	Errors() uint64
}

// Fixture is what RunLoop needs of one periodic source.
type Fixture struct {
	// New makes the source reading below root; interval 0 means the
	// source's default, logger may be nil.
	New func(root string, interval time.Duration, logger *slog.Logger) Periodic
	// Good returns a root where every reading succeeds with PerReading
	// observations.
	Good       func(t *testing.T) string
	PerReading int
	// Parts are the part names of one good reading, in order; nil skips
	// the check.
	Parts []string
	// AbsentLog is the message logged once when the interface is absent
	// (an empty root).
	AbsentLog string
	// Malformed returns a root where every reading is partly malformed,
	// and the strings the error log must carry (the bad file, the line).
	Malformed func(t *testing.T) (root string, logWants []string)
	// MalformedMin is how many observations the good parts of two
	// malformed readings yield at least.
	MalformedMin int
	// MalformedParts, when set, are the only parts a malformed reading may
	// yield.
	MalformedParts []string
}

// RunLoop checks the run loop of a periodic source against its fixture:
// the first reading is immediate, readings repeat every interval and stop
// with ctx, an absent interface is logged once and is not an error, a
// partly malformed reading is logged, counted and does not stop the loop,
// and a negative interval is refused.
func RunLoop(t *testing.T, f Fixture) {
	t.Run("ReadsImmediately", func(t *testing.T) {
		// With the default interval (tens of seconds) the first reading
		// must not wait.
		sink := &Sink{}
		src := f.New(f.Good(t), 0, nil)
		run(t, src, sink, func() bool { return len(sink.Observations()) >= f.PerReading })
		if n := len(sink.Observations()); n != f.PerReading {
			t.Errorf("%d observations, want the one immediate reading of %d", n, f.PerReading)
		}
	})
	t.Run("EmitsUntilCancelled", func(t *testing.T) {
		src := f.New(f.Good(t), 5*time.Millisecond, nil)
		sink := &Sink{}
		run(t, src, sink, func() bool { return len(sink.Observations()) >= 3*f.PerReading })
		n := len(sink.Observations())
		time.Sleep(20 * time.Millisecond)
		if len(sink.Observations()) != n {
			t.Error("observations kept coming after Run returned")
		}
		obs := sink.Observations()
		first, second := Names(obs[:f.PerReading]), Names(obs[f.PerReading:2*f.PerReading])
		if f.Parts != nil && !slices.Equal(first, f.Parts) {
			t.Errorf("first reading = %q, want %q", first, f.Parts)
		}
		if !slices.Equal(first, second) {
			t.Errorf("readings differ: %q, then %q", first, second)
		}
		if obs[f.PerReading].GetTime().AsTime().Before(obs[0].GetTime().AsTime()) {
			t.Error("readings go back in time")
		}
		if src.Errors() != 0 {
			t.Errorf("Errors() = %d", src.Errors())
		}
	})
	t.Run("AbsentLoggedOnce", func(t *testing.T) {
		var logs LogBuffer
		src := f.New(t.TempDir(), time.Millisecond, NewLogger(&logs))
		done := make(chan error, 1)
		go func() { done <- src.Run(context.Background(), &Sink{}) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v, want nil for an absent interface", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run kept running with nothing to read")
		}
		if n := strings.Count(logs.String(), f.AbsentLog); n != 1 {
			t.Errorf("logged absence %d times, want once:\n%s", n, logs.String())
		}
		if src.Errors() != 0 {
			t.Errorf("absence counted as %d errors", src.Errors())
		}
	})
	t.Run("MalformedTicksCounted", func(t *testing.T) {
		root, wants := f.Malformed(t)
		var logs LogBuffer
		src := f.New(root, 2*time.Millisecond, NewLogger(&logs))
		sink := &Sink{}
		run(t, src, sink, func() bool { return src.Errors() >= 2 })
		out := logs.String()
		for _, w := range append([]string{"level=ERROR"}, wants...) {
			if !strings.Contains(out, w) {
				t.Errorf("log does not carry %q:\n%s", w, out)
			}
		}
		obs := sink.Observations()
		if len(obs) < f.MalformedMin {
			t.Errorf("%d observations, want at least %d from the good parts", len(obs), f.MalformedMin)
		}
		if f.MalformedParts != nil {
			for _, n := range Names(obs) {
				if !slices.Contains(f.MalformedParts, n) {
					t.Errorf("observed %s from a malformed reading", n)
				}
			}
		}
	})
	t.Run("NegativeIntervalRefused", func(t *testing.T) {
		err := f.New(t.TempDir(), -time.Second, nil).Run(context.Background(), &Sink{})
		if err == nil || !strings.Contains(err.Error(), "Interval") {
			t.Errorf("Run with a negative interval = %v", err)
		}
	})
}

// run runs src until cond holds (at most 5 s), cancels it and checks that
// Run returns nil promptly.
func run(t *testing.T, src source.Source, sink source.Sink, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
