package periodic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hwheal/hwheal/agent/source/sourcetest"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func obs(name string) *hwhealv1.Observation {
	return &hwhealv1.Observation{Source: "test", Part: &hwhealv1.Part{Name: name}}
}

// start runs r in the background; stop cancels it and returns Run's error.
func start(t *testing.T, r *Runner, sink *sourcetest.Sink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, sink) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadsImmediatelyThenEveryInterval(t *testing.T) {
	var reads atomic.Int64
	r := New(Loop{Name: "t", Default: time.Hour, Read: func(context.Context) ([]*hwhealv1.Observation, error) {
		reads.Add(1)
		return []*hwhealv1.Observation{obs("a"), obs("b")}, nil
	}})
	if r.Interval() != time.Hour {
		t.Fatalf("Interval() = %v, want the default", r.Interval())
	}
	sink := &sourcetest.Sink{}
	stop := start(t, r, sink)
	waitFor(t, func() bool { return len(sink.Observations()) >= 2 })
	time.Sleep(20 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v on cancel", err)
	}
	if got := sourcetest.Names(sink.Observations()); strings.Join(got, ",") != "a,b" || reads.Load() != 1 {
		t.Errorf("observed %q in %d reads, want one immediate reading", got, reads.Load())
	}

	r = New(Loop{Name: "t", Interval: 2 * time.Millisecond, Default: time.Hour,
		Read: func(context.Context) ([]*hwhealv1.Observation, error) { return []*hwhealv1.Observation{obs("a")}, nil }})
	sink = &sourcetest.Sink{}
	stop = start(t, r, sink)
	waitFor(t, func() bool { return len(sink.Observations()) >= 3 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v on cancel", err)
	}
	n := len(sink.Observations())
	time.Sleep(20 * time.Millisecond)
	if len(sink.Observations()) != n {
		t.Error("observations kept coming after Run returned")
	}
	if r.Errors() != 0 {
		t.Errorf("Errors() = %d", r.Errors())
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	r := New(Loop{Name: "t", Read: func(context.Context) ([]*hwhealv1.Observation, error) {
		called = true
		return nil, nil
	}, Default: time.Hour})
	if err := r.Run(ctx, &sourcetest.Sink{}); err != nil || called {
		t.Errorf("Run on a cancelled context = %v, read called %v", err, called)
	}
}

func TestAbsent(t *testing.T) {
	absent := fmt.Errorf("list /x: %w", fs.ErrNotExist)
	tests := []struct {
		name       string
		results    []error // what each reading returns, the last repeated
		withObs    bool
		wantStop   bool
		wantErrors uint64 // at least
	}{
		{name: "absent at start stops", results: []error{absent}, wantStop: true},
		{name: "absent with observations is a failure", results: []error{absent}, withObs: true, wantErrors: 2},
		{name: "absent later is a failure", results: []error{nil, absent}, wantErrors: 2},
		{name: "other error is a failure", results: []error{errors.New("boom")}, wantErrors: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			var logs sourcetest.LogBuffer
			r := New(Loop{
				Name: "t", Interval: time.Millisecond, Logger: sourcetest.NewLogger(&logs),
				Read: func(context.Context) ([]*hwhealv1.Observation, error) {
					i := min(int(n.Add(1))-1, len(tt.results)-1)
					var o []*hwhealv1.Observation
					if tt.withObs {
						o = []*hwhealv1.Observation{obs("a")}
					}
					return o, tt.results[i]
				},
				Absent: Message{"thing not available, source stopped", []any{"path", "/x"}},
				Failed: Message{"read thing", []any{"path", "/x"}},
			})
			if tt.wantStop {
				done := make(chan error, 1)
				go func() { done <- r.Run(context.Background(), &sourcetest.Sink{}) }()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("Run = %v, want nil", err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("Run kept running")
				}
				out := logs.String()
				if strings.Count(out, "thing not available") != 1 || !strings.Contains(out, "level=INFO") ||
					!strings.Contains(out, "source=t") || !strings.Contains(out, "path=/x") {
					t.Errorf("absence log:\n%s", out)
				}
				if r.Errors() != 0 || n.Load() != 1 {
					t.Errorf("Errors() = %d after %d reads", r.Errors(), n.Load())
				}
				return
			}
			stop := start(t, r, &sourcetest.Sink{})
			waitFor(t, func() bool { return r.Errors() >= tt.wantErrors })
			if err := stop(); err != nil {
				t.Fatalf("Run = %v, want nil: a bad tick is not fatal", err)
			}
			out := logs.String()
			if strings.Contains(out, "not available") {
				t.Errorf("logged absence for a failure:\n%s", out)
			}
			if !strings.Contains(out, `level=ERROR msg="read thing" source=t path=/x err=`) {
				t.Errorf("failure log:\n%s", out)
			}
		})
	}
}

func TestPartialReadingObserved(t *testing.T) {
	var logs sourcetest.LogBuffer
	r := New(Loop{Name: "t", Interval: time.Millisecond, Logger: sourcetest.NewLogger(&logs),
		Read: func(context.Context) ([]*hwhealv1.Observation, error) {
			return []*hwhealv1.Observation{obs("good")}, errors.New("parse /x: line 2: bad")
		},
		Failed: Message{Msg: "read thing"}})
	sink := &sourcetest.Sink{}
	stop := start(t, r, sink)
	waitFor(t, func() bool { return r.Errors() >= 2 && len(sink.Observations()) >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "line 2: bad") {
		t.Errorf("error not logged:\n%s", logs.String())
	}
}

func TestInvalidInterval(t *testing.T) {
	called := false
	r := New(Loop{Name: "thing", Interval: -time.Second, Read: func(context.Context) ([]*hwhealv1.Observation, error) {
		called = true
		return nil, nil
	}})
	err := r.Run(context.Background(), &sourcetest.Sink{})
	if err == nil || err.Error() != "thing: Interval -1s is negative" || called {
		t.Errorf("Run = %v (read called %v)", err, called)
	}
	if err := ValidateInterval("thing", 0); err != nil {
		t.Errorf("ValidateInterval(0) = %v", err)
	}
}

func TestNilLoggerDiscards(t *testing.T) {
	r := New(Loop{Name: "t", Interval: time.Millisecond, Read: func(context.Context) ([]*hwhealv1.Observation, error) {
		return nil, errors.New("boom")
	}})
	stop := start(t, r, &sourcetest.Sink{})
	waitFor(t, func() bool { return r.Errors() >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestNameIsTheLoops(t *testing.T) {
	if got := New(Loop{Name: "edac", Interval: time.Second}).Name(); got != "edac" {
		t.Fatalf("Name() = %q, want edac", got)
	}
}

func TestProbe(t *testing.T) {
	absent := fmt.Errorf("list /sys/x: %w", fs.ErrNotExist)
	tests := []struct {
		name            string
		interval        time.Duration
		obs             []*hwhealv1.Observation
		err             error
		wantUnavailable string
		wantErrors      int
		wantObs         int
	}{
		{name: "reading", obs: []*hwhealv1.Observation{obs("a")}, wantObs: 1},
		{name: "absent", err: absent, wantUnavailable: "thing not available: list /sys/x: file does not exist"},
		{name: "partly malformed", obs: []*hwhealv1.Observation{obs("a")}, err: errors.New("bad line 3"), wantErrors: 1, wantObs: 1},
		// Some observations and a missing file: the interface is there.
		{name: "absent part", obs: []*hwhealv1.Observation{obs("a")}, err: absent, wantErrors: 1, wantObs: 1},
		{name: "bad interval", interval: -time.Second, wantUnavailable: "t: Interval -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Loop{Name: "t", Interval: tt.interval, Default: time.Hour,
				Absent: Message{Msg: "thing not available, source stopped"},
				Read:   func(context.Context) ([]*hwhealv1.Observation, error) { return tt.obs, tt.err }})
			p := r.Probe(t.Context())
			if p.Source != "t" || p.Unavailable != tt.wantUnavailable || len(p.Errors) != tt.wantErrors || len(p.Observations) != tt.wantObs {
				t.Fatalf("probe %+v", p)
			}
		})
	}
}
