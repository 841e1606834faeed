package netlink

import (
	"context"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// arrival is when a change of oper_up reached the sink.
type arrival struct {
	at time.Time
	up bool
}

// latencySink timestamps the observations of one interface.
type latencySink struct {
	name string
	ch   chan arrival
}

func (s *latencySink) Observe(o *hwhealv1.Observation) {
	if o.GetPart().GetName() != s.name {
		return
	}
	for _, x := range o.GetSamples() {
		if x.GetName() == SampleOperUp {
			s.ch <- arrival{time.Now(), x.GetValue() == 1}
		}
	}
}
func (s *latencySink) Log(kernlog.Record)    {}
func (s *latencySink) Raise(*hwhealv1.Fault) {}

// BenchmarkLinkDownToObservation measures the time from a link being set
// down (the call returning) to the observation reaching the sink, and the
// same for a bare subscriber of the netlink library reading the same
// socket group: the floor the kernel and the library set.
func BenchmarkLinkDownToObservation(b *testing.B) {
	requireNetns(b)
	ns, nsPath := newNetns(b)
	peer, _ := newNetns(b)
	vethPair(b, ns, peer, "x")
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		b.Fatal(err)
	}
	defer nsh.Close()
	h, err := vnl.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("x0")
	if err != nil {
		b.Fatal(err)
	}

	setters := []struct {
		name string
		set  func(up bool) error
	}{
		{"netlink-call", func(up bool) error {
			if up {
				return h.LinkSetUp(link)
			}
			return h.LinkSetDown(link)
		}},
		{"ip-command", func(up bool) error {
			state := "down"
			if up {
				state = "up"
			}
			return exec.Command("ip", "-n", ns, "link", "set", "x0", state).Run()
		}},
	}
	watchers := []struct {
		name  string
		start func(b *testing.B, ch chan arrival) (stop func())
	}{
		{"baseline-subscriber", func(b *testing.B, ch chan arrival) func() {
			updates := make(chan vnl.LinkUpdate, updateQueue)
			done := make(chan struct{})
			if err := vnl.LinkSubscribeWithOptions(updates, done, vnl.LinkSubscribeOptions{Namespace: &nsh}); err != nil {
				b.Fatal(err)
			}
			go func() {
				last := true
				for u := range updates {
					if u.Attrs().Name != "x0" {
						continue
					}
					if up := u.Attrs().RawFlags&unix.IFF_RUNNING != 0; up != last {
						last = up
						ch <- arrival{time.Now(), up}
					}
				}
			}()
			return func() {
				close(done)
				for range updates {
				}
			}
		}},
		{"source", func(b *testing.B, ch chan arrival) func() {
			src := New(Config{NetNS: nsPath})
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- src.Run(ctx, &latencySink{name: "x0", ch: ch}) }()
			if a := <-ch; !a.up { // listed when subscribing
				b.Fatal("x0 listed down")
			}
			return func() { cancel(); <-ran }
		}},
	}
	for _, w := range watchers {
		for _, s := range setters {
			b.Run(w.name+"/"+s.name, func(b *testing.B) {
				ch := make(chan arrival, 16)
				stop := w.start(b, ch)
				defer stop()
				wait := func(up bool) time.Time {
					for {
						select {
						case a := <-ch:
							if a.up == up {
								return a.at
							}
						case <-time.After(5 * time.Second):
							b.Fatalf("no oper_up=%v", up)
						}
					}
				}
				var fromReturn, fromCall []time.Duration
				b.ResetTimer()
				for range b.N {
					called := time.Now()
					if err := s.set(false); err != nil {
						b.Fatal(err)
					}
					returned := time.Now()
					at := wait(false)
					fromReturn = append(fromReturn, at.Sub(returned))
					fromCall = append(fromCall, at.Sub(called))
					if err := s.set(true); err != nil {
						b.Fatal(err)
					}
					wait(true)
				}
				b.StopTimer()
				report(b, "after-return", fromReturn)
				report(b, "after-call", fromCall)
			})
		}
	}
}

// report adds p50 and p99 of d in microseconds. An observation can reach
// the sink before the call that caused it returns (the kernel notifies
// during the call): those are negative after-return times.
func report(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	pct := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), what+"-p50-µs")
	b.ReportMetric(pct(0.99), what+"-p99-µs")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdle measures the process's CPU time while nothing changes
// (one op is a second; run with -benchtime 10x), with the source
// subscribed to a namespace of 16 links, against the same process without
// it: an event-driven source costs nothing at rest.
func BenchmarkIdle(b *testing.B) {
	requireNetns(b)
	ns, nsPath := newNetns(b)
	peer, _ := newNetns(b)
	for c := 'a'; c < 'a'+16; c++ {
		vethPair(b, ns, peer, string(c))
	}
	for _, withSource := range []bool{false, true} {
		name := "no-source"
		if withSource {
			name = "source"
		}
		b.Run(name, func(b *testing.B) {
			if withSource {
				r := start(b, Config{NetNS: nsPath}, nil)
				waitFor(b, "16 links", func() bool { return len(r.sink.Observations()) >= 16 })
			}
			b.ResetTimer()
			cpu0, wall0 := cpuTime(b), time.Now()
			for range b.N {
				time.Sleep(time.Second)
			}
			cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
			b.ReportMetric(float64(cpu.Microseconds())/wall.Seconds(), "cpu-µs/s")
		})
	}
}
