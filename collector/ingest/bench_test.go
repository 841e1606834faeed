package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	"github.com/hwheal/hwheal/pkg/grpcutil"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Shape of the benchmark's agents: batches of 100 reports (the agent's
// transport sends up to 500) with 8 in flight (its default window).
const (
	benchBatch    = 100
	benchWindow   = 8
	benchParts    = 8  // disks per node: the first reports insert, the rest update
	benchFaultSet = 64 // distinct prebuilt faults per node, reused round robin
)

// BenchmarkIngest measures faults per second through one collector: N agent
// streams over a real loopback TCP socket into the real SQLite store, each
// with several batches in flight, until b.N faults in all are
// acknowledged. Connecting the streams is not timed. ack-p50-ms and
// ack-p99-ms are the times from sending a batch to its ack.
//
// commit=group is the collector as shipped (batches queued while a
// transaction runs share the next one); commit=per-batch sets MaxTxReports
// to 1, so every agent batch is its own transaction: the baseline that
// shows what group commit buys. Run with a fixed count so every shape
// sends the same faults, and compare with benchstat:
//
//	go test -run '^$' -bench BenchmarkIngest -benchtime 200000x -count 3 ./collector/ingest/ > out.txt
//	benchstat -col /commit out.txt
func BenchmarkIngest(b *testing.B) {
	shapes := []struct{ streams, batch int }{
		{1, benchBatch}, {10, benchBatch}, {100, benchBatch}, {1000, benchBatch},
		// Many agents each sending a fault as it happens: the small
		// concurrent writes group commit is for.
		{1000, 1},
	}
	// Shape outside, commit mode inside: a mode and its baseline run back
	// to back, so drifting load on a shared machine hits both alike.
	for _, sh := range shapes {
		for _, mode := range []struct {
			name  string
			maxTx int
		}{
			{"group", 0},
			{"per-batch", 1},
		} {
			b.Run(fmt.Sprintf("streams=%d/batch=%d/commit=%s", sh.streams, sh.batch, mode.name), func(b *testing.B) {
				benchIngest(b, sh.streams, sh.batch, mode.maxTx)
			})
		}
	}
}

// benchCollector is the ingest server behind a gRPC server set up as
// collector.Run sets it up, listening on loopback TCP.
type benchCollector struct {
	addr     string
	reg      *prometheus.Registry // ingest's metrics
	shutdown func()
}

func startBenchCollector(b *testing.B, maxTx int) *benchCollector {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "hwheal.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Config{Store: st, Broker: events.NewBroker(0), Metrics: NewMetrics(reg), Version: "bench", MaxTxReports: maxTx})
	if err != nil {
		b.Fatal(err)
	}
	writerDone := make(chan struct{})
	go func() { srv.Run(ctx); close(writerDone) }()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	creds, err := grpcutil.TransportCredentials(true)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	// The options of collector.Collector.Run.
	gs := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ChainUnaryInterceptor(grpcutil.RecoverUnary(log)),
		grpc.ChainStreamInterceptor(grpcutil.RecoverStream(log)),
	)
	hwhealv1.RegisterAgentServiceServer(gs, srv)
	serveDone := make(chan struct{})
	go func() { gs.Serve(lis); close(serveDone) }()
	return &benchCollector{
		addr: lis.Addr().String(),
		reg:  reg,
		shutdown: func() {
			srv.CloseSessions()
			gs.Stop()
			<-serveDone
			srv.WaitSessions()
			cancel()
			<-writerDone
			st.Close()
		},
	}
}

// benchAgent is one agent's stream: its own connection, as each agent
// has, and a pool of faults it reports over and over.
type benchAgent struct {
	conn   *grpc.ClientConn
	stream hwhealv1.AgentService_ConnectClient
	cancel context.CancelFunc
	faults []*hwhealv1.Fault
	seq    uint64
}

// kernelLines are real-format block-layer records of the disk rules'
// classes (about 100 bytes each; the device is filled in per part).
var kernelLines = []struct {
	class, rule, msg, summary string
	sev                       hwhealv1.Severity
}{
	{"disk.io_error", "blk-io-error", "blk_update_request: I/O error, dev %s, sector %d op 0x0:(READ) flags 0x83700 phys_seg 9 prio class 2", "I/O error on %s at sector %d", hwhealv1.Severity_SEVERITY_CRITICAL},
	{"disk.medium_error", "blk-medium-error", "critical medium error, dev %s, sector %d op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0", "Medium error on %s at sector %d", hwhealv1.Severity_SEVERITY_CRITICAL},
	{"disk.io_error", "blk-io-error", "critical target error, dev %s, sector %d op 0x1:(WRITE) flags 0x8800 phys_seg 1 prio class 2", "critical target error on %s at sector %d", hwhealv1.Severity_SEVERITY_CRITICAL},
}

func newBenchFaults(node int) []*hwhealv1.Fault {
	out := make([]*hwhealv1.Fault, benchFaultSet)
	now := time.Now()
	for i := range out {
		k := kernelLines[i%len(kernelLines)]
		dev := fmt.Sprintf("sd%c", 'a'+(i+node)%benchParts)
		sector := 4196408 + 8*i + 1000*node
		out[i] = &hwhealv1.Fault{
			FaultClass: k.class,
			Severity:   k.sev,
			Part:       &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_DISK, Name: dev, Serial: fmt.Sprintf("S4EVNX0N%06d%c", node, 'A'+i%benchParts), Model: "SAMSUNG MZ7LH960HAJR-00005"},
			Rule:       k.rule,
			Time:       timestamppb.New(now.Add(time.Duration(i) * time.Millisecond)),
			Summary:    fmt.Sprintf(k.summary, dev, sector),
			Evidence: &hwhealv1.Evidence{
				KernelLog: &hwhealv1.KernelLogRecord{
					Level: new(uint32(3)), Facility: new(uint32(0)),
					Sequence: uint64(100000 + i), MonotonicUsec: uint64(86400000000 + i*1000),
					Message:    fmt.Sprintf(k.msg, dev, sector),
					Dictionary: map[string]string{"SUBSYSTEM": "block", "DEVICE": fmt.Sprintf("b8:%d", 16*((i+node)%benchParts))},
				},
				Captures: map[string]string{"device": dev, "sector": fmt.Sprint(sector)},
			},
		}
	}
	return out
}

// nextBatch makes the agent's next n reports; only the report wrappers are
// new, so the agent side costs the benchmark little.
func (a *benchAgent) nextBatch(n int) *hwhealv1.ConnectRequest {
	reps := make([]*hwhealv1.Report, n)
	for i := range reps {
		a.seq++
		reps[i] = &hwhealv1.Report{Seq: a.seq, Item: &hwhealv1.Report_Fault{Fault: a.faults[a.seq%benchFaultSet]}}
	}
	return &hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Reports{Reports: &hwhealv1.ReportBatch{Reports: reps}}}
}

func connectBenchAgents(b *testing.B, addr string, n int) []*benchAgent {
	b.Helper()
	run := randomRun()
	agents := make([]*benchAgent, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range agents {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Error(err)
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			a := &benchAgent{conn: conn, cancel: cancel, faults: newBenchFaults(i)}
			agents[i] = a
			a.stream, err = hwhealv1.NewAgentServiceClient(conn).Connect(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			if err := a.stream.Send(&hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Hello{Hello: &hwhealv1.Hello{
				Node: fmt.Sprintf("bench-%s-%04d", run, i), StreamId: fmt.Sprintf("%s-%d", run, i), BootId: "boot-1", AgentVersion: "bench",
				Labels: map[string]string{"rack": fmt.Sprintf("r%02d", i%40), "zone": fmt.Sprintf("z%d", i%4)},
			}}}); err != nil {
				b.Error(err)
				return
			}
			m, err := a.stream.Recv()
			if err != nil || m.GetWelcome() == nil {
				b.Errorf("agent %d: welcome: %v %v", i, m, err)
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		closeBenchAgents(agents)
		b.FailNow()
	}
	return agents
}

func closeBenchAgents(agents []*benchAgent) {
	var wg sync.WaitGroup
	for _, a := range agents {
		if a == nil {
			continue
		}
		wg.Go(func() {
			if a.stream != nil {
				// A clean end: the collector acks what is pending and
				// records the disconnect.
				a.stream.CloseSend()
				for {
					if _, err := a.stream.Recv(); err != nil {
						break
					}
				}
			}
			a.cancel()
			a.conn.Close()
		})
	}
	wg.Wait()
}

func randomRun() string { return fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff) }

// send streams faults reports in batches with up to benchWindow batches
// unacknowledged and returns each batch's time from Send to its ack.
func (a *benchAgent) send(faults, batch int) ([]time.Duration, error) {
	type flight struct {
		last uint64
		sent time.Time
	}
	// The window: a flight is queued before its batch is sent, so the
	// receiver always finds the flight an ack covers.
	flights := make(chan flight, benchWindow)
	batches := (faults + batch - 1) / batch
	lats := make([]time.Duration, 0, batches)
	lastSeq := a.seq + uint64(faults)
	recvErr := make(chan error, 1)
	go func() {
		var acked uint64
		for acked < lastSeq {
			m, err := a.stream.Recv()
			if err != nil {
				recvErr <- fmt.Errorf("ack: %w", err)
				return
			}
			if m.GetAck() == nil {
				recvErr <- fmt.Errorf("got %v, want an ack", m)
				return
			}
			// The collector acks every batch, in order.
			acked = m.GetAck().GetAckedSeq()
			f := <-flights
			if acked < f.last {
				recvErr <- fmt.Errorf("ack %d does not cover its batch (last seq %d)", acked, f.last)
				return
			}
			lats = append(lats, time.Since(f.sent))
		}
		recvErr <- nil
	}()
	for left := faults; left > 0; {
		n := min(left, batch)
		left -= n
		req := a.nextBatch(n)
		select {
		case flights <- flight{last: a.seq, sent: time.Now()}:
		case err := <-recvErr:
			return nil, errors.Join(err, errors.New("receiver stopped early"))
		}
		if err := a.stream.Send(req); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
	}
	if err := <-recvErr; err != nil {
		return nil, err
	}
	return lats, nil
}

func benchIngest(b *testing.B, streams, batch, maxTx int) {
	col := startBenchCollector(b, maxTx)
	defer col.shutdown()
	agents := connectBenchAgents(b, col.addr, streams)
	defer closeBenchAgents(agents)

	// b.N faults shared out evenly; an agent with none sends nothing.
	share := func(i int) int { return b.N/streams + btoi(i < b.N%streams) }
	lats := make([][]time.Duration, streams)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, a := range agents {
		wg.Go(func() {
			l, err := a.send(share(i), batch)
			if err != nil {
				b.Errorf("agent %d: %v", i, err)
			}
			lats[i] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	// The writer's own view: how many batches shared a transaction and
	// how much of the time it spent in them (near 100 %: the writer is
	// the bottleneck).
	if mfs, err := col.reg.Gather(); err == nil {
		for _, mf := range mfs {
			h := mf.GetMetric()[0].GetHistogram()
			switch mf.GetName() {
			case "hwheal_ingest_batches_per_transaction":
				if h.GetSampleCount() > 0 {
					b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "batches/tx")
				}
			case "hwheal_ingest_apply_seconds":
				b.ReportMetric(100*h.GetSampleSum()/elapsed.Seconds(), "writer-busy-%")
			}
		}
	}

	all := slices.Concat(lats...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "faults/s")
	if len(all) > 0 {
		b.ReportMetric(ms(all[len(all)/2]), "ack-p50-ms")
		b.ReportMetric(ms(all[len(all)*99/100]), "ack-p99-ms")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}
