package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/hwheal/hwheal/agent/spool"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// testStore is what a collector's store remembers, shared by the test
// servers that come and go on one address: per stream, the acked seq and
// every seq stored.
type testStore struct {
	mu       sync.Mutex
	acked    map[string]uint64
	stored   map[string][]uint64
	received []uint64 // every seq that arrived, duplicates included
	batches  []int    // size of every batch that arrived
	dups     int
	hellos   []*hwhealv1.Hello
	disorder int // batches not in increasing seq order
}

func newTestStore() *testStore {
	return &testStore{acked: map[string]uint64{}, stored: map[string][]uint64{}}
}

// put stores a batch like the collector does: seqs at or below the stream's
// acked seq are duplicates and dropped; gaps are accepted.
func (st *testStore) put(stream string, rs []*hwhealv1.Report) uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.batches = append(st.batches, len(rs))
	for i, r := range rs {
		if i > 0 && r.GetSeq() <= rs[i-1].GetSeq() {
			st.disorder++
		}
		st.received = append(st.received, r.GetSeq())
		if r.GetSeq() <= st.acked[stream] {
			st.dups++
			continue
		}
		st.stored[stream] = append(st.stored[stream], r.GetSeq())
		st.acked[stream] = r.GetSeq()
	}
	return st.acked[stream]
}

func (st *testStore) ackedOf(stream string) uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.acked[stream]
}

func (st *testStore) setAcked(stream string, seq uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.acked[stream] = seq
}

func (st *testStore) snapshot() (stored, received []uint64, batches []int, dups, disorder int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, v := range st.stored {
		stored = append(stored, v...)
	}
	return stored, slices.Clone(st.received), slices.Clone(st.batches), st.dups, st.disorder
}

// testServer is a small AgentService that behaves like the collector on the
// wire: Hello first, Welcome with the stored acked seq, store then ack.
// Hooks let tests break it in the ways a real one breaks.
type testServer struct {
	hwhealv1.UnimplementedAgentServiceServer
	store    *testStore
	maxBatch uint32
	// beforeStore may refuse a batch: its error ends the stream.
	beforeStore func([]*hwhealv1.Report) error
	// afterStore runs once a batch is stored, before the ack; its error
	// ends the stream with the batch stored but not acknowledged.
	afterStore func(acked uint64) error
	// welcomeBehind makes the Welcome report this much less than stored,
	// as a collector that lost its newest acked mark would: the agent
	// resends and the store must drop the duplicates.
	welcomeBehind uint64
	// orders are sent after every Welcome, as a collector resends the
	// orders whose final update it does not hold yet.
	orders    []*hwhealv1.ActionOrder
	noAck     bool  // store but never acknowledge
	noWelcome bool  // take the hello and say nothing
	helloErr  error // refuse every hello with this
	connects  atomic.Int64
}

func (s *testServer) Connect(stream grpc.BidiStreamingServer[hwhealv1.ConnectRequest, hwhealv1.ConnectResponse]) error {
	s.connects.Add(1)
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	h := m.GetHello()
	if h == nil {
		return status.Error(codes.FailedPrecondition, "first message must be a hello")
	}
	if h.GetStreamId() == "" {
		return status.Error(codes.InvalidArgument, "hello without stream id")
	}
	s.store.mu.Lock()
	s.store.hellos = append(s.store.hellos, h)
	s.store.mu.Unlock()
	if s.helloErr != nil {
		return s.helloErr
	}
	if s.noWelcome {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	id := h.GetStreamId()
	welcomeAcked := s.store.ackedOf(id)
	welcomeAcked -= min(welcomeAcked, s.welcomeBehind)
	err = stream.Send(&hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Welcome{Welcome: &hwhealv1.Welcome{
		AckedSeq: welcomeAcked, CollectorVersion: "test", MaxBatchReports: s.maxBatch,
	}}})
	if err != nil {
		return err
	}
	for _, o := range s.orders {
		if err := stream.Send(&hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Order{Order: o}}); err != nil {
			return err
		}
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b := m.GetReports()
		if b == nil {
			return status.Error(codes.FailedPrecondition, "second hello")
		}
		if s.beforeStore != nil {
			if err := s.beforeStore(b.GetReports()); err != nil {
				return err
			}
		}
		acked := s.store.put(id, b.GetReports())
		if s.afterStore != nil {
			if err := s.afterStore(acked); err != nil {
				return err
			}
		}
		if s.noAck {
			continue
		}
		if err := stream.Send(&hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Ack{Ack: &hwhealv1.Ack{AckedSeq: acked}}}); err != nil {
			return err
		}
	}
}

// harness runs test servers one after another on one address, over
// bufconn or a real loopback TCP socket.
type harness struct {
	t       *testing.T
	network string
	addr    string // TCP address, kept across restarts
	buf     atomic.Pointer[bufconn.Listener]
	srv     *grpc.Server
	done    chan struct{}
}

var networks = []string{"bufconn", "tcp"}

func newHarness(t *testing.T, network string) *harness {
	h := &harness{t: t, network: network}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start(ts *testServer) {
	h.t.Helper()
	var lis net.Listener
	switch h.network {
	case "tcp":
		addr := h.addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			h.t.Fatalf("listen on %s: %v", addr, err)
		}
		h.addr = l.Addr().String()
		lis = l
	case "bufconn":
		l := bufconn.Listen(1 << 20)
		h.buf.Store(l)
		lis = l
	}
	// Like the collector must: allow the agent's keepalive pings.
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second}))
	hwhealv1.RegisterAgentServiceServer(srv, ts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	h.srv, h.done = srv, done
}

// stop kills the server the hard way: connections cut, no goodbye.
func (h *harness) stop() {
	if h.srv != nil {
		h.srv.Stop()
		<-h.done
		h.srv = nil
	}
}

func (h *harness) target() string {
	if h.network == "tcp" {
		if h.addr == "" {
			h.t.Fatal("start the TCP server before asking for its target")
		}
		return "passthrough:///" + h.addr
	}
	return "passthrough:///bufnet"
}

func (h *harness) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if h.network == "bufconn" {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return h.buf.Load().DialContext(ctx)
		}))
	}
	return opts
}

func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func appendReports(t *testing.T, sp *spool.Spool, n int) {
	t.Helper()
	for range n {
		r := &hwhealv1.Report{Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
			FaultClass: "disk.io_error", Severity: hwhealv1.Severity_SEVERITY_CRITICAL,
			Part: &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: "sda"},
		}}}
		if err := sp.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runClient starts a client against h and returns it with a stop function
// (also run at cleanup) that checks Run returns nil promptly.
func runClient(t *testing.T, h *harness, sp *spool.Spool, mod func(*Config)) (*Client, func()) {
	t.Helper()
	cfg := Config{
		Target:         h.target(),
		DialOptions:    h.dialOptions(),
		Hello:          func() *hwhealv1.Hello { return &hwhealv1.Hello{Node: "node-1", AgentVersion: "test"} },
		Spool:          sp,
		Logger:         testLogger(t),
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
		WelcomeTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}
