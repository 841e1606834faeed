package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Bounds of one benchmark iteration and the polling interval of the fleet
// API, as a dashboard polling as fast as it sensibly could.
const (
	latencyTimeout = 20 * time.Second
	pollInterval   = time.Millisecond
)

// BenchmarkKmsgToQuery measures the time from a write into the real
// /dev/kmsg until the fault it raises can be read from the fleet API of a
// real collector process, fed by a real agent process: kmsg read, rule
// match, on-disk spool (with its fsync before send), gRPC stream, group
// commit into SQLite, and the query itself.
//
//   - path=kmsg-floor: a bare reader of /dev/kmsg reads the record back
//     right after writing it (write(2) and read(2): the kernel's own floor);
//   - path=kmsg-wakeup: a bare reader already blocked in read(2), as the
//     agent's is, sees the record: the floor an event-driven reader has;
//   - path=list-faults: FleetService.ListFaults, polled every millisecond,
//     lists the fault ("queryable");
//   - path=watch-events: WatchEvents delivers its FAULT_OPENED event (and
//     ListFaults, asked once right then, must list it).
//
// The two floors run before the agent starts. Each iteration writes one
// record with a new device name, so each raises a new fault, after a
// random pause (outside the timer) so that writes fall at random points of
// the kernel's tick instead of in step with it. write-p50-ms is how long
// write(2) itself took: a level-3 record is printed to the console inside
// it when console_loglevel lets it through. Run with -benchtime=200x.
func BenchmarkKmsgToQuery(b *testing.B) {
	requireRoot(b)
	enableDevkmsg(b)

	w := openKmsgWriter(b)
	b.Run("path=kmsg-floor", func(b *testing.B) { benchKmsgFloor(b, w) })
	b.Run("path=kmsg-wakeup", func(b *testing.B) { benchKmsgWakeup(b, w) })

	addr := freeAddr(b)
	nodeName := "bench-" + randomID(b, 4)
	start(b, "hwheal-collector", "--insecure", "--listen", addr, "--state-dir", b.TempDir())
	start(b, "hwheal-agent", "--insecure", "--collector", addr, "--node", nodeName, "--state-dir", b.TempDir(), "--root", "/")

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), fleetToken(b, addr))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	fleet := hwhealv1.NewFleetServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	eventually(b, 30*time.Second, "node connects", func() error {
		r, err := fleet.GetNode(ctx, &hwhealv1.GetNodeRequest{Name: nodeName})
		if err != nil {
			return err
		}
		if !r.GetNode().GetConnected() {
			return errors.New("not connected")
		}
		return nil
	})
	watch := watchFaults(ctx, b, fleet, nodeName)

	// A fresh agent delivers the whole kernel ring first, earlier runs'
	// records included. A sentinel written now is queryable once all of
	// that is stored (the agent keeps the kernel's order), and its event
	// shows the watch is live.
	tail := &faultTail{fleet: fleet, node: nodeName}
	sentinel := "sd" + randomLetters(b, 10)
	t0 := w.write(b, ioErrorLine(sentinel, 1))
	if _, err := tail.wait(ctx, sentinel, t0.Add(2*time.Minute)); err != nil {
		b.Fatalf("sentinel fault: %v", err)
	}
	if _, err := watch.wait(sentinel, t0.Add(latencyTimeout)); err != nil {
		b.Fatalf("sentinel event: %v", err)
	}

	b.Run("path=list-faults", func(b *testing.B) {
		tail.polls, tail.rpc = 0, 0
		defer func() {
			if tail.polls > 0 {
				b.ReportMetric(float64(tail.polls)/float64(b.N), "polls/op")
				b.ReportMetric(float64(tail.rpc)/float64(tail.polls)/float64(time.Millisecond), "poll-ms")
			}
		}()
		benchLatency(b, w, func(dev string) time.Duration {
			t0 := w.write(b, ioErrorLine(dev, 4242))
			at, err := tail.wait(ctx, dev, t0.Add(latencyTimeout))
			if err != nil {
				b.Fatal(err)
			}
			return at.Sub(t0)
		})
	})
	b.Run("path=watch-events", func(b *testing.B) {
		benchLatency(b, w, func(dev string) time.Duration {
			t0 := w.write(b, ioErrorLine(dev, 4242))
			at, err := watch.wait(dev, t0.Add(latencyTimeout))
			if err != nil {
				b.Fatal(err)
			}
			// The event is published after the commit, so the fault is
			// queryable by now.
			if _, err := tail.wait(ctx, dev, time.Time{}); err != nil {
				b.Fatalf("after its FAULT_OPENED event: %v", err)
			}
			return at.Sub(t0)
		})
	})
}

// benchLatency runs one record through f per iteration and reports the
// latencies' median and 99th percentile, and the median write(2).
func benchLatency(b *testing.B, w *kmsgWriter, f func(dev string) time.Duration) {
	lats := make([]time.Duration, 0, b.N)
	devs := make([]string, b.N)
	for i := range devs {
		devs[i] = "sd" + randomLetters(b, 10)
	}
	w.writes = w.writes[:0]
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// 1 ms for the readers to block again, then a random part of a
		// tick (4 ms at HZ=250, 1 ms at HZ=1000).
		time.Sleep(time.Millisecond + rand.N(4*time.Millisecond))
		b.StartTimer()
		lats = append(lats, f(devs[i]))
	}
	b.StopTimer()
	b.ReportMetric(p(lats, 50), "p50-ms")
	b.ReportMetric(p(lats, 99), "p99-ms")
	b.ReportMetric(p(w.writes, 50), "write-p50-ms")
}

// p is the q-th percentile of ds in milliseconds; it sorts ds.
func p(ds []time.Duration, q int) float64 {
	slices.Sort(ds)
	return float64(ds[(len(ds)-1)*q/100]) / float64(time.Millisecond)
}

// benchKmsgFloor: how long the kernel takes to hand a written record to a
// reader that waits for it.
func benchKmsgFloor(b *testing.B, w *kmsgWriter) {
	r, err := os.Open("/dev/kmsg")
	if err != nil {
		b.Fatalf("open /dev/kmsg: %v", err)
	}
	defer r.Close()
	if _, err := r.Seek(0, io.SeekEnd); err != nil {
		b.Fatalf("seek /dev/kmsg: %v", err)
	}
	buf := make([]byte, 8192)
	benchLatency(b, w, func(dev string) time.Duration {
		want := []byte(", dev " + dev + ",")
		t0 := w.write(b, ioErrorLine(dev, 4242))
		for {
			n, err := r.Read(buf)
			if errors.Is(err, syscall.EPIPE) {
				continue // records overwritten before we read them
			}
			if err != nil {
				b.Fatalf("read /dev/kmsg: %v", err)
			}
			if bytes.Contains(buf[:n], want) {
				return time.Since(t0)
			}
		}
	})
}

// benchKmsgWakeup: how long until a reader that sleeps in read(2), as the
// agent's does, sees a written record.
func benchKmsgWakeup(b *testing.B, w *kmsgWriter) {
	r, err := os.Open("/dev/kmsg")
	if err != nil {
		b.Fatalf("open /dev/kmsg: %v", err)
	}
	if _, err := r.Seek(0, io.SeekEnd); err != nil {
		r.Close()
		b.Fatalf("seek /dev/kmsg: %v", err)
	}
	type record struct {
		text []byte
		at   time.Time
	}
	records := make(chan record, 1024)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 8192)
		for {
			n, err := r.Read(buf)
			at := time.Now()
			if errors.Is(err, syscall.EPIPE) {
				continue
			}
			if err != nil {
				return // closed
			}
			records <- record{bytes.Clone(buf[:n]), at}
		}
	}()
	defer func() { r.Close(); <-readDone }()
	benchLatency(b, w, func(dev string) time.Duration {
		want := []byte(", dev " + dev + ",")
		t0 := w.write(b, ioErrorLine(dev, 4242))
		timeout := time.After(latencyTimeout)
		for {
			select {
			case rec := <-records:
				if bytes.Contains(rec.text, want) {
					return rec.at.Sub(t0)
				}
			case <-timeout:
				b.Fatalf("record of %s not read back", dev)
			}
		}
	})
}

// kmsgWriter keeps /dev/kmsg open so that every path times the write
// alone, not an open.
type kmsgWriter struct {
	f      *os.File
	writes []time.Duration // how long each write took
}

func openKmsgWriter(b *testing.B) *kmsgWriter {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		b.Fatalf("open /dev/kmsg: %v", err)
	}
	b.Cleanup(func() { f.Close() })
	return &kmsgWriter{f: f}
}

// write writes one record and returns the time just before the write.
func (w *kmsgWriter) write(b *testing.B, line string) time.Time {
	t0 := time.Now()
	if _, err := w.f.Write([]byte(line)); err != nil {
		b.Fatalf("write /dev/kmsg: %v", err)
	}
	w.writes = append(w.writes, time.Since(t0))
	return t0
}

// faultTail polls ListFaults for one node's disk.io_error faults, keeping
// a page token whose page starts at the newest fault it has seen, so a
// poll reads a page or two however many faults the node has.
type faultTail struct {
	fleet hwhealv1.FleetServiceClient
	node  string
	token string
	polls int           // ListFaults calls made by wait
	rpc   time.Duration // time spent in them
}

const tailPage = 8

// wait polls until a fault on part dev is listed and returns when it saw
// it.
func (t *faultTail) wait(ctx context.Context, dev string, deadline time.Time) (time.Time, error) {
	for {
		t0 := time.Now()
		r, err := t.list(ctx, tailPage, t.token)
		if err != nil {
			return time.Time{}, err
		}
		at := time.Now()
		t.polls++
		t.rpc += at.Sub(t0)
		if i := slices.IndexFunc(r.GetFaults(), func(f *hwhealv1.FaultRecord) bool { return f.GetPart().GetName() == dev }); i >= 0 {
			// Move the token to just before the found fault (outside the
			// measured time: the caller holds at).
			if i > 0 {
				r2, err := t.list(ctx, uint32(i), t.token)
				if err != nil {
					return time.Time{}, err
				}
				t.token = r2.GetNextPageToken()
			}
			return at, nil
		}
		if next := r.GetNextPageToken(); next != "" {
			// A full page without it: it can only come later.
			t.token = next
			continue
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no fault on %s listed for node %s in time", dev, t.node)
		}
		time.Sleep(pollInterval)
	}
}

func (t *faultTail) list(ctx context.Context, size uint32, token string) (*hwhealv1.ListFaultsResponse, error) {
	r, err := t.fleet.ListFaults(ctx, &hwhealv1.ListFaultsRequest{
		Node: t.node, FaultClass: "disk.io_error", PageSize: size, PageToken: token,
	})
	if err != nil {
		return nil, fmt.Errorf("list faults: %w", err)
	}
	return r, nil
}

// faultWatch is a WatchEvents stream of one node's FAULT_OPENED events
// with the time each arrived.
type faultWatch struct {
	events chan watchedEvent
	done   chan error
}

type watchedEvent struct {
	part string
	at   time.Time
}

func watchFaults(ctx context.Context, b *testing.B, fleet hwhealv1.FleetServiceClient, node string) *faultWatch {
	s, err := fleet.WatchEvents(ctx, &hwhealv1.WatchEventsRequest{
		Types: []hwhealv1.EventType{hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED},
		Node:  node, FaultClass: "disk.io_error",
	})
	if err != nil {
		b.Fatalf("watch events: %v", err)
	}
	// Large enough for every event of a run, so the receiver never waits
	// on the benchmark and arrival times stay true.
	w := &faultWatch{events: make(chan watchedEvent, 1<<16), done: make(chan error, 1)}
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				w.done <- err
				return
			}
			w.events <- watchedEvent{part: m.GetEvent().GetFault().GetPart().GetName(), at: time.Now()}
		}
	}()
	return w
}

// wait returns when the FAULT_OPENED event of part dev arrived, skipping
// the events before it.
func (w *faultWatch) wait(dev string, deadline time.Time) (time.Time, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case ev := <-w.events:
			if ev.part == dev {
				return ev.at, nil
			}
		case err := <-w.done:
			return time.Time{}, fmt.Errorf("watch ended: %w", err)
		case <-timer.C:
			return time.Time{}, fmt.Errorf("no FAULT_OPENED event for %s in time", dev)
		}
	}
}
