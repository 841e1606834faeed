package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// failingStore is the real store with Apply failing for the batches that
// carry a chosen sequence number, a given number of times: a passing
// SQLITE_BUSY, a full disk.
type failingStore struct {
	store.Store
	failSeq uint64
	left    atomic.Int32
}

func (f *failingStore) Apply(ctx context.Context, batches []store.Batch) ([]store.BatchResult, error) {
	for _, b := range batches {
		for _, r := range b.Reports {
			if r.GetSeq() == f.failSeq && f.left.Add(-1) >= 0 {
				return nil, errors.New("injected: database is locked")
			}
		}
	}
	return f.Store.Apply(ctx, batches)
}

// TestFailedBatchIsNotSkipped: when a batch fails and the next batch of the
// same stream is already queued, the next one must not be stored — its
// acked sequence would cover the failed reports, and the agent would
// delete them.
func TestFailedBatchIsNotSkipped(t *testing.T) {
	var fs *failingStore
	f := newFixture(t, func(c *Config) {
		fs = &failingStore{Store: c.Store, failSeq: 1}
		fs.left.Store(1 << 20) // until the agent reconnects
		c.Store = fs
	})
	s, _ := connect(t, f.client, "node-f", "s")
	// Two batches back to back, as an agent with batches in flight sends.
	if err := s.Send(batch(faultReport(1, "sda"), faultReport(2, "sda"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(batch(faultReport(3, "sdb"))); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream ended with %v, want Unavailable", err)
			}
			break
		}
		if m.GetAck() != nil {
			t.Fatalf("acked %d although batch 1..2 failed", m.GetAck().GetAckedSeq())
		}
	}
	// The store recovers and the agent reconnects: nothing may be held, so
	// it resends everything.
	fs.left.Store(0)
	s2, acked := connect(t, f.client, "node-f", "s")
	if acked != 0 {
		t.Fatalf("welcome acked %d after the first batch failed, want 0 (reports 1..2 would be lost)", acked)
	}
	s2.Send(batch(faultReport(1, "sda"), faultReport(2, "sda"), faultReport(3, "sdb")))
	if got := recvAck(t, s2); got != 3 {
		t.Fatalf("ack %d, want 3", got)
	}
	want := map[string]uint64{"sda": 2, "sdb": 1}
	if got := openFaults(t, f.store, "node-f"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("faults %v, want %v", got, want)
	}
}

// TestNewerAgentIsNotRefused: a severity or part kind this collector does
// not know, and a kind of report it does not know, come from a newer agent;
// refusing the batch would stall that agent.
func TestNewerAgentIsNotRefused(t *testing.T) {
	f := newFixture(t, nil)
	s, _ := connect(t, f.client, "node-n", "s")
	r1 := faultReport(1, "sda")
	r1.GetFault().Severity = 7
	r1.GetFault().Part.Kind = 99
	r2 := &hwhealv1.Report{Seq: 2} // a report kind this collector does not know
	if err := s.Send(batch(r1, r2)); err != nil {
		t.Fatal(err)
	}
	if got := recvAck(t, s); got != 2 {
		t.Fatalf("ack %d, want 2", got)
	}
	faults, _, err := f.store.ListFaults(t.Context(), store.FaultFilter{Node: "node-n"}, store.Page{Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(faults) != 1 || faults[0].GetSeverity() != hwhealv1.Severity_SEVERITY_CRITICAL {
		t.Fatalf("faults %v, want one critical", faults)
	}
}

// TestRapidReconnectsLeaveNodeConnected: an old stream's disconnect that is
// recorded after the new stream's hello must not mark the node gone.
func TestRapidReconnectsLeaveNodeConnected(t *testing.T) {
	f := newFixture(t, nil)
	var last hwhealv1.AgentService_ConnectClient
	for i := range 30 {
		s, _ := connect(t, f.client, "node-rr", fmt.Sprintf("s%d", i%2))
		if last != nil {
			last.CloseSend()
		}
		last = s
	}
	// Let the replaced streams finish their disconnects.
	f.server.writer.call(t.Context(), &job{kind: jobHello, hello: store.Hello{Node: "other", StreamID: "x"}})
	node, err := f.store.GetNode(t.Context(), "node-rr")
	if err != nil {
		t.Fatal(err)
	}
	if !node.GetConnected() {
		t.Fatal("node marked disconnected while its newest stream is live")
	}
}

// TestLiveEventsInIDOrder: events reach watchers in the order of their ids
// even when many agents connect and report at once; WatchEvents drops any
// event whose id is not above the last one it sent.
func TestLiveEventsInIDOrder(t *testing.T) {
	f := newFixture(t, nil)
	sub := f.broker.Subscribe()
	defer sub.Close()
	var wg sync.WaitGroup
	for a := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := connect(t, f.client, fmt.Sprintf("node-o%02d", a), "s")
			s.Send(batch(faultReport(1, "sda")))
			recvAck(t, s)
			s.CloseSend()
			s.Recv()
		}()
	}
	wg.Wait()
	f.server.writer.call(t.Context(), &job{kind: jobHello, hello: store.Hello{Node: "fence", StreamID: "x"}})
	var last uint64
	n := 0
	for {
		select {
		case ev := <-sub.C():
			if ev.GetId() <= last {
				t.Fatalf("event %d after %d", ev.GetId(), last)
			}
			last = ev.GetId()
			n++
			if ev.GetNode() == "fence" {
				if n < 50*3 {
					t.Fatalf("only %d events", n)
				}
				return
			}
		case <-sub.Done():
			t.Fatal("subscription overflowed")
		}
	}
}
