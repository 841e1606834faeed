package ingest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// maxTestMsg is the gRPC message limit of the test server.
const maxTestMsg = 256 << 10

type fixture struct {
	server *Server
	store  store.Store
	broker *events.Broker
	conn   *grpc.ClientConn
	client hwhealv1.AgentServiceClient
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hwheal.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := events.NewBroker(0)
	cfg := Config{Store: st, Broker: b, Version: "test"}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan struct{})
	go func() { srv.Run(ctx); close(writerDone) }()

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(maxTestMsg))
	hwhealv1.RegisterAgentServiceServer(gs, srv)
	go gs.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.CloseSessions()
		gs.Stop()
		srv.WaitSessions()
		cancel()
		<-writerDone
		st.Close()
	})
	return &fixture{server: srv, store: st, broker: b, conn: conn, client: hwhealv1.NewAgentServiceClient(conn)}
}

func hello(node, stream string) *hwhealv1.ConnectRequest {
	return &hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Hello{Hello: &hwhealv1.Hello{
		Node: node, StreamId: stream, BootId: "boot-1", AgentVersion: "test", Labels: map[string]string{"rack": "r1"},
	}}}
}

func faultReport(seq uint64, dev string) *hwhealv1.Report {
	return &hwhealv1.Report{Seq: seq, Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: "disk.io_error",
		Severity:   hwhealv1.Severity_SEVERITY_CRITICAL,
		Part:       &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: dev},
		Rule:       "disk-io-error",
		Time:       timestamppb.Now(),
		Summary:    "I/O error on " + dev,
	}}}
}

func batch(reports ...*hwhealv1.Report) *hwhealv1.ConnectRequest {
	return &hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Reports{Reports: &hwhealv1.ReportBatch{Reports: reports}}}
}

// connect opens a stream, says hello and returns the stream and the
// collector's acknowledged sequence number.
func connect(t testing.TB, c hwhealv1.AgentServiceClient, node, streamID string) (hwhealv1.AgentService_ConnectClient, uint64) {
	t.Helper()
	s, err := c.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(hello(node, streamID)); err != nil {
		t.Fatal(err)
	}
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("welcome: %v", err)
	}
	if m.GetWelcome() == nil {
		t.Fatalf("first response is %v, want a welcome", m)
	}
	return s, m.GetWelcome().GetAckedSeq()
}

func recvAck(t testing.TB, s hwhealv1.AgentService_ConnectClient) uint64 {
	t.Helper()
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("ack: %v", err)
	}
	if m.GetAck() == nil {
		t.Fatalf("got %v, want an ack", m)
	}
	return m.GetAck().GetAckedSeq()
}

func openFaults(t testing.TB, st store.Store, node string) map[string]uint64 {
	t.Helper()
	faults, _, err := st.ListFaults(context.Background(), store.FaultFilter{Node: node}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range faults {
		counts[f.GetPart().GetName()] = f.GetCount()
	}
	return counts
}

func TestConnectStoresAcksAndDropsReplayedDuplicates(t *testing.T) {
	f := newFixture(t, nil)
	s, acked := connect(t, f.client, "node-1", "stream-a")
	if acked != 0 {
		t.Fatalf("new stream acked %d, want 0", acked)
	}
	if err := s.Send(batch(faultReport(1, "sda"), faultReport(2, "sdb"), faultReport(3, "sda"))); err != nil {
		t.Fatal(err)
	}
	if got := recvAck(t, s); got != 3 {
		t.Fatalf("ack %d, want 3", got)
	}
	want := map[string]uint64{"sda": 2, "sdb": 1}
	if got := openFaults(t, f.store, "node-1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("faults %v, want %v", got, want)
	}
	s.CloseSend()

	// The agent reconnects and, not having seen the ack of 2..3, replays
	// them with a new one: the store must count only seq 4.
	s2, acked := connect(t, f.client, "node-1", "stream-a")
	if acked != 3 {
		t.Fatalf("reconnect: welcome acked %d, want 3", acked)
	}
	if err := s2.Send(batch(faultReport(2, "sdb"), faultReport(3, "sda"), faultReport(4, "sdc"))); err != nil {
		t.Fatal(err)
	}
	if got := recvAck(t, s2); got != 4 {
		t.Fatalf("ack %d, want 4", got)
	}
	want = map[string]uint64{"sda": 2, "sdb": 1, "sdc": 1}
	if got := openFaults(t, f.store, "node-1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after replay faults %v, want %v", got, want)
	}

	// A wiped agent state directory means a new stream id: its sequence
	// numbers start again and are not taken for duplicates.
	s3, acked := connect(t, f.client, "node-1", "stream-b")
	if acked != 0 {
		t.Fatalf("new stream id acked %d, want 0", acked)
	}
	if err := s3.Send(batch(faultReport(1, "sdd"))); err != nil {
		t.Fatal(err)
	}
	if got := recvAck(t, s3); got != 1 {
		t.Fatalf("ack %d, want 1", got)
	}
	if got := openFaults(t, f.store, "node-1")["sdd"]; got != 1 {
		t.Fatalf("sdd count %d, want 1", got)
	}
}

func TestConnectPublishesEvents(t *testing.T) {
	f := newFixture(t, nil)
	sub := f.broker.Subscribe()
	defer sub.Close()
	s, _ := connect(t, f.client, "node-ev", "s1")
	if err := s.Send(batch(faultReport(1, "sda"))); err != nil {
		t.Fatal(err)
	}
	recvAck(t, s)
	seen := map[hwhealv1.EventType]bool{}
	timeout := time.After(5 * time.Second)
	for !(seen[hwhealv1.EventType_EVENT_TYPE_NODE_REGISTERED] && seen[hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED] && seen[hwhealv1.EventType_EVENT_TYPE_NODE_HEALTH_CHANGED]) {
		select {
		case ev := <-sub.C():
			if ev.GetId() == 0 {
				t.Fatalf("event without id: %v", ev)
			}
			seen[ev.GetType()] = true
		case <-timeout:
			t.Fatalf("events seen %v", seen)
		}
	}
}

func TestConnectRejectsBadInput(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBatchReports = 10; c.HelloTimeout = 300 * time.Millisecond })
	huge := strings.Repeat("x", maxTestMsg)
	tests := []struct {
		name string
		msgs []*hwhealv1.ConnectRequest
		want codes.Code
		text string
	}{
		{name: "batch before hello", msgs: []*hwhealv1.ConnectRequest{batch(faultReport(1, "sda"))}, want: codes.FailedPrecondition, text: "hello"},
		{name: "empty node", msgs: []*hwhealv1.ConnectRequest{hello("", "s")}, want: codes.InvalidArgument, text: "node is empty"},
		{name: "bad node name", msgs: []*hwhealv1.ConnectRequest{hello("no spaces please", "s")}, want: codes.InvalidArgument, text: "not a valid name"},
		{name: "no stream id", msgs: []*hwhealv1.ConnectRequest{hello("n", "")}, want: codes.InvalidArgument, text: "stream_id"},
		{name: "second hello", msgs: []*hwhealv1.ConnectRequest{hello("n1", "s"), hello("n1", "s")}, want: codes.InvalidArgument, text: "only report batches"},
		{name: "seq goes back", msgs: []*hwhealv1.ConnectRequest{hello("n2", "s"), batch(faultReport(5, "sda"), faultReport(4, "sdb"))}, want: codes.InvalidArgument, text: "does not follow"},
		{name: "seq zero", msgs: []*hwhealv1.ConnectRequest{hello("n3", "s"), batch(faultReport(0, "sda"))}, want: codes.InvalidArgument, text: "seq is 0"},
		{name: "too many reports", msgs: []*hwhealv1.ConnectRequest{hello("n4", "s"), batch(func() []*hwhealv1.Report {
			var rs []*hwhealv1.Report
			for i := range 11 {
				rs = append(rs, faultReport(uint64(i+1), "sda"))
			}
			return rs
		}()...)}, want: codes.InvalidArgument, text: "at most 10"},
		{name: "empty batch", msgs: []*hwhealv1.ConnectRequest{hello("n5", "s"), batch()}, want: codes.InvalidArgument, text: "no reports"},
		{name: "bad fault class", msgs: []*hwhealv1.ConnectRequest{hello("n6", "s"), batch(func() *hwhealv1.Report {
			r := faultReport(1, "sda")
			r.GetFault().FaultClass = "Disk IO!"
			return r
		}())}, want: codes.InvalidArgument, text: "fault class"},
		{name: "no severity", msgs: []*hwhealv1.ConnectRequest{hello("n7", "s"), batch(func() *hwhealv1.Report {
			r := faultReport(1, "sda")
			r.GetFault().Severity = hwhealv1.Severity_SEVERITY_UNSPECIFIED
			return r
		}())}, want: codes.InvalidArgument, text: "severity"},
		{name: "part serial too long", msgs: []*hwhealv1.ConnectRequest{hello("n10", "s"), batch(func() *hwhealv1.Report {
			r := faultReport(1, "sda")
			r.GetFault().Part.Serial = strings.Repeat("S", maxPartName+1)
			return r
		}())}, want: codes.InvalidArgument, text: "part serial longer than"},
		{name: "oversized message", msgs: []*hwhealv1.ConnectRequest{hello("n9", "s"), batch(func() *hwhealv1.Report {
			r := faultReport(1, "sda")
			r.GetFault().Summary = huge
			return r
		}())}, want: codes.ResourceExhausted},
		{name: "no hello in time", msgs: nil, want: codes.DeadlineExceeded, text: "no hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := f.client.Connect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				if err := s.Send(m); err != nil {
					break // the server may already have ended the stream
				}
			}
			var last error
			for {
				m, err := s.Recv()
				if err != nil {
					last = err
					break
				}
				if m.GetWelcome() == nil {
					t.Fatalf("unexpected response %v", m)
				}
			}
			st := status.Convert(last)
			if st.Code() != tt.want {
				t.Fatalf("status %v (%q), want %v", st.Code(), st.Message(), tt.want)
			}
			if !strings.Contains(st.Message(), tt.text) {
				t.Fatalf("message %q does not say %q", st.Message(), tt.text)
			}
		})
	}
	// Nothing that was refused reached the store.
	nodes, _, err := f.store.ListNodes(context.Background(), store.NodeFilter{}, store.Page{Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if got := openFaults(t, f.store, n.GetName()); len(got) != 0 {
			t.Fatalf("node %s has faults %v from a refused stream", n.GetName(), got)
		}
	}
}

func TestNewerStreamReplacesOlder(t *testing.T) {
	f := newFixture(t, nil)
	old, _ := connect(t, f.client, "node-r", "s1")
	_, _ = connect(t, f.client, "node-r", "s1")
	_, err := old.Recv()
	if status.Code(err) != codes.Aborted {
		t.Fatalf("old stream ended with %v, want Aborted", err)
	}
	if n := f.server.Sessions(); n != 1 {
		t.Fatalf("sessions = %d, want 1", n)
	}
	node, err := f.store.GetNode(context.Background(), "node-r")
	if err != nil {
		t.Fatal(err)
	}
	if !node.GetConnected() {
		t.Fatal("the replaced stream's end marked the node disconnected although a newer stream is live")
	}
}

func TestCloseSessionsEndsStreamsAndRefusesNewOnes(t *testing.T) {
	f := newFixture(t, nil)
	s, _ := connect(t, f.client, "node-c", "s1")
	f.server.CloseSessions()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want Unavailable", err)
	}
	s2, err := f.client.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s2.Send(hello("node-d", "s1"))
	if _, err := s2.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("new stream while closing: %v, want Unavailable", err)
	}
	node, err := f.store.GetNode(context.Background(), "node-c")
	if err != nil {
		t.Fatal(err)
	}
	if node.GetConnected() {
		t.Fatal("node still connected after its stream closed")
	}
}

// TestManyStreamsExactlyOnce sends from many agents at once, each with
// several batches in flight, so the writer group-commits across them.
func TestManyStreamsExactlyOnce(t *testing.T) {
	f := newFixture(t, nil)
	const agents, batches, per = 40, 10, 5
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("node-%03d", a)
			s, _ := connect(t, f.client, node, "s")
			seq := uint64(0)
			for range batches {
				var rs []*hwhealv1.Report
				for range per {
					seq++
					rs = append(rs, faultReport(seq, fmt.Sprintf("sd%d", seq%3)))
				}
				if err := s.Send(batch(rs...)); err != nil {
					errs <- err
					return
				}
			}
			var last uint64
			for last < seq {
				m, err := s.Recv()
				if err != nil {
					errs <- fmt.Errorf("%s: %w", node, err)
					return
				}
				last = m.GetAck().GetAckedSeq()
			}
			s.CloseSend()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for a := range agents {
		var total uint64
		for _, c := range openFaults(t, f.store, fmt.Sprintf("node-%03d", a)) {
			total += c
		}
		if total != batches*per {
			t.Fatalf("node-%03d: %d reports stored, want %d", a, total, batches*per)
		}
	}
}
