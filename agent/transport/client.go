// Package transport owns the agent's side of the AgentService stream: it
// connects to the collector, introduces the agent with a Hello, sends what
// the spool holds after the collector's acked sequence number (replay
// first, then live), moves the spool's acked mark as acknowledgements come
// back, and reconnects with jittered backoff when the stream breaks. At
// each Welcome it checks the collector's acked seq against the spool: a
// collector behind the spool's acked mark lost reports (logged, counted),
// one past the spool's last seq makes the spool number on after it. It
// hands each ActionOrder the collector sends to Config.Orders. It
// keeps no report itself: the spool holds them until they are acknowledged,
// and the collector drops the duplicates a resend produces.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hwheal/hwheal/agent/spool"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Defaults for the zero fields of Config.
const (
	DefaultMinBackoff       = 500 * time.Millisecond
	DefaultMaxBackoff       = 30 * time.Second
	DefaultMaxBatch         = 500
	DefaultMaxBatchBytes    = 1 << 20
	DefaultMaxInFlight      = 8
	DefaultWelcomeTimeout   = 10 * time.Second
	DefaultStableAfter      = 30 * time.Second
	DefaultKeepaliveTime    = 30 * time.Second
	DefaultKeepaliveTimeout = 10 * time.Second
)

// Config configures a Client. Target, Hello and Spool are required.
type Config struct {
	// Target is the collector's gRPC target ("host:port", "dns:///...").
	Target string
	// DialOptions carry the credentials (insecure or TLS) and anything else
	// the caller wants. They are applied after the client's own keepalive
	// and connect-backoff options, so they can override them.
	DialOptions []grpc.DialOption
	// Hello is called at every connect; the client sets StreamID (from the
	// spool) on a copy of what it returns.
	Hello func() *hwhealv1.Hello
	// Spool holds the reports; the client reads from it and acks into it.
	Spool *spool.Spool
	// Orders, if set, is called with each ActionOrder the collector sends,
	// in order, from the stream's receive goroutine: it must not block
	// (queue the order and return), or acknowledgements stop with it. An
	// order is sent again after every reconnect until its final update is
	// stored, so Orders sees repeats; it is the caller's to run an id at
	// most once.
	Orders func(*hwhealv1.ActionOrder)
	// Logger (default: discard).
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay (500 ms, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxBatch is the most reports in one batch (500); the collector's
	// Welcome.max_batch_reports lowers it.
	MaxBatch int
	// MaxBatchBytes bounds a batch's marshalled reports (1 MiB); a single
	// larger report is still sent alone.
	MaxBatchBytes int
	// MaxInFlight is the most batches sent and not yet acknowledged (8).
	MaxInFlight int
	// WelcomeTimeout is how long to wait for the Welcome (10 s).
	WelcomeTimeout time.Duration
	// StableAfter: a session that lasted this long resets the backoff even
	// without acks (30 s).
	StableAfter time.Duration
	// KeepaliveTime and KeepaliveTimeout are the gRPC keepalive ping
	// interval and ack timeout (30 s, 10 s): how a collector that vanished
	// without closing the connection is noticed. The collector's keepalive
	// enforcement policy must allow pings this often.
	KeepaliveTime, KeepaliveTimeout time.Duration

	// rand overrides the jitter source in tests.
	rand func(n int64) int64
}

// Stats is a snapshot of a Client's counters.
type Stats struct {
	// Connected is true while a session is welcomed.
	Connected bool
	// Connects counts welcomed sessions; Disconnects those that ended.
	Connects, Disconnects uint64
	// ReportsSent counts reports sent, resends included.
	ReportsSent uint64
	// AckedSeq is the spool's acknowledged sequence number.
	AckedSeq uint64
	// Rejected counts reports skipped because the collector refused them
	// with InvalidArgument (see Client).
	Rejected uint64
	// CollectorBehind counts Welcomes whose acked seq was below the spool's:
	// the collector lost reports it had acknowledged (restored from a
	// backup, its storage lost its last commits). The agent deleted them
	// and cannot send them again.
	CollectorBehind uint64
	// CollectorAhead counts Welcomes whose acked seq was past the spool's
	// last seq: the collector holds numbers this spool had not handed out
	// (its state directory restored from a snapshot, segments deleted by
	// hand). The spool's numbering was moved past the collector's mark.
	CollectorAhead uint64
	// Orders counts ActionOrders received, resends included.
	Orders uint64
	// LastError is the error that ended the last session, "" if none yet.
	LastError string
}

// Client streams the spool's reports to the collector.
//
// A collector that answers a batch with InvalidArgument says it will never
// take it. The client does not resend the batch in a loop: it waits
// MaxBackoff (jittered), then sends the refused range one report at a time
// with one in flight, so that the next refusal names a single report. That
// report is logged at error level, counted in Stats.Rejected and skipped
// (acked in the spool), and normal batching resumes after the range. Each
// refusal costs a wait at MaxBackoff, so a collector that wrongly refuses
// everything makes the agent skip at most about one report per MaxBackoff
// while its errors are in the log, and a genuinely bad report blocks the
// stream for about two MaxBackoffs instead of forever. The collector has to
// accept the gap this leaves (it must anyway: the spool's bound leaves gaps
// too).
type Client struct {
	cfg     Config
	log     *slog.Logger
	bo      backoff
	running atomic.Bool

	mu        sync.Mutex
	stats     Stats
	connected chan struct{} // closed while a session is welcomed
}

// New checks cfg, fills defaults and returns a Client; it does not dial.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Target == "":
		return nil, errors.New("transport config: Target is empty")
	case cfg.Hello == nil:
		return nil, errors.New("transport config: Hello is nil")
	case cfg.Spool == nil:
		return nil, errors.New("transport config: Spool is nil")
	case cfg.MinBackoff < 0, cfg.MaxBackoff < 0, cfg.MaxBatch < 0, cfg.MaxBatchBytes < 0, cfg.MaxInFlight < 0,
		cfg.WelcomeTimeout < 0, cfg.StableAfter < 0, cfg.KeepaliveTime < 0, cfg.KeepaliveTimeout < 0:
		return nil, errors.New("transport config: durations and limits must not be negative")
	}
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, max(DefaultMaxBackoff, cfg.MinBackoff))
	setDefault(&cfg.MaxBatch, DefaultMaxBatch)
	setDefault(&cfg.MaxBatchBytes, DefaultMaxBatchBytes)
	setDefault(&cfg.MaxInFlight, DefaultMaxInFlight)
	setDefault(&cfg.WelcomeTimeout, DefaultWelcomeTimeout)
	setDefault(&cfg.StableAfter, DefaultStableAfter)
	setDefault(&cfg.KeepaliveTime, DefaultKeepaliveTime)
	setDefault(&cfg.KeepaliveTimeout, DefaultKeepaliveTimeout)
	if cfg.MinBackoff > cfg.MaxBackoff {
		return nil, fmt.Errorf("transport config: MinBackoff %s exceeds MaxBackoff %s", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.rand == nil {
		cfg.rand = rand.Int64N
	}
	return &Client{
		cfg:       cfg,
		log:       cfg.Logger.With("collector", cfg.Target),
		bo:        backoff{min: cfg.MinBackoff, max: cfg.MaxBackoff, rand: cfg.rand},
		connected: make(chan struct{}),
	}, nil
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	st := c.stats
	c.mu.Unlock()
	st.AckedSeq = c.cfg.Spool.Acked()
	return st
}

// Connected returns a channel that is closed while the client holds a
// welcomed session: receiving from it waits for the next connect.
func (c *Client) Connected() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Run connects and streams until ctx is done; it returns nil then. Stream
// errors are logged and retried, never returned. Run must not be called
// twice at once.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("transport: Run is already running")
	}
	defer c.running.Store(false)
	conn, err := grpc.NewClient(c.cfg.Target, c.dialOptions()...)
	if err != nil {
		return fmt.Errorf("dial collector %s: %w", c.cfg.Target, err)
	}
	defer conn.Close()
	api := hwhealv1.NewAgentServiceClient(conn)

	var rs runState
	attempt := 0
	for {
		start := time.Now()
		res := c.session(ctx, api, &rs)
		if ctx.Err() != nil {
			return nil
		}
		if res.progress || time.Since(start) >= c.cfg.StableAfter {
			attempt = 0
		}
		delay := c.bo.retryDelay(res.err, &attempt)
		c.mu.Lock()
		c.stats.LastError = res.err.Error()
		c.mu.Unlock()
		level := slog.LevelWarn
		switch status.Code(res.err) {
		case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
			level = slog.LevelError
		}
		c.log.Log(ctx, level, "collector stream ended, reconnecting",
			"err", res.err, "code", status.Code(res.err).String(), "welcomed", res.welcomed,
			"attempt", attempt, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		// No pings without a stream: between sessions there is nothing to
		// watch, and a collector's default policy answers such pings with
		// GOAWAY.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    c.cfg.KeepaliveTime,
			Timeout: c.cfg.KeepaliveTimeout,
		}),
		// gRPC's own reconnect backoff (1 s growing to 120 s by default)
		// would otherwise hold a restarted collector off long after ours
		// says to retry.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  c.cfg.MinBackoff,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   c.cfg.MaxBackoff,
			},
			MinConnectTimeout: 20 * time.Second,
		}),
	}
	return append(opts, c.cfg.DialOptions...)
}

// runState is what Run carries from one session to the next.
type runState struct {
	// probeUntil, when non-zero, is the last seq of a range the collector
	// refused: until it is acked, send one report at a time.
	probeUntil uint64
}

type sessionResult struct {
	welcomed bool
	progress bool // the collector acknowledged something new
	err      error
}

// flight is a batch sent and not yet acknowledged.
type flight struct {
	first, last uint64
	n           int
}

func (c *Client) session(ctx context.Context, api hwhealv1.AgentServiceClient, rs *runState) (res sessionResult) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sp := c.cfg.Spool

	stream, err := api.Connect(sctx)
	if err != nil {
		res.err = fmt.Errorf("open stream: %w", err)
		return res
	}
	hello := &hwhealv1.Hello{}
	if h := c.cfg.Hello(); h != nil {
		hello = proto.CloneOf(h)
	}
	hello.StreamId = sp.StreamID()
	if err := stream.Send(&hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Hello{Hello: hello}}); err != nil {
		res.err = streamErr(stream, "send hello", err)
		return res
	}
	welcome, err := c.awaitWelcome(cancel, stream)
	if err != nil {
		res.err = err
		return res
	}
	res.welcomed = true
	if err := c.reconcile(hello.StreamId, welcome.GetAckedSeq()); err != nil {
		res.err = err
		return res
	}
	c.ack(welcome.GetAckedSeq())
	c.setConnected(true)
	defer c.setConnected(false)
	c.log.Info("connected to collector", "acked_seq", welcome.GetAckedSeq(),
		"collector_version", welcome.GetCollectorVersion(), "pending", sp.Stats().Pending)

	maxBatch := c.cfg.MaxBatch
	if m := int(welcome.GetMaxBatchReports()); m > 0 && m < maxBatch {
		maxBatch = m
	}

	// The receiver applies acks; the sender below reads, sends and keeps
	// the window.
	var (
		collAcked atomic.Uint64 // the collector's acked seq in this session
		progress  atomic.Bool
		recvErr   error
		ackCh     = make(chan struct{}, 1)
		recvDone  = make(chan struct{})
	)
	collAcked.Store(welcome.GetAckedSeq())
	go func() {
		defer close(recvDone)
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr = err
				return
			}
			if o := m.GetOrder(); o != nil {
				c.order(o)
				continue
			}
			a := m.GetAck()
			if a == nil {
				c.log.Warn("collector sent an unexpected message", "type", fmt.Sprintf("%T", m.GetMsg()))
				continue
			}
			if a.GetAckedSeq() > collAcked.Load() {
				collAcked.Store(a.GetAckedSeq())
				progress.Store(true)
			}
			c.ack(a.GetAckedSeq())
			select {
			case ackCh <- struct{}{}:
			default:
			}
		}
	}()

	var (
		inflight []flight
		sendErr  error // from stream.Send
		localErr error // from the spool
		next     = sp.Acked() + 1
	)
	prune := func() {
		a := collAcked.Load()
		for len(inflight) > 0 && inflight[0].last <= a {
			inflight = inflight[1:]
		}
	}
loop:
	for {
		prune()
		batch, window := maxBatch, c.cfg.MaxInFlight
		if rs.probeUntil != 0 {
			if sp.Acked() >= rs.probeUntil {
				c.log.Info("refused range passed, batching again", "last_seq", rs.probeUntil)
				rs.probeUntil = 0
			} else {
				batch, window = 1, 1
			}
		}
		if len(inflight) >= window {
			select {
			case <-ctx.Done():
				break loop
			case <-recvDone:
				break loop
			case <-ackCh:
			}
			continue
		}
		reports, err := sp.Read(next, batch, c.cfg.MaxBatchBytes)
		if err != nil {
			localErr = fmt.Errorf("read spool: %w", err)
			break
		}
		if len(reports) == 0 {
			select {
			case <-ctx.Done():
				break loop
			case <-recvDone:
				break loop
			case <-ackCh:
			case <-sp.Notify():
			}
			continue
		}
		if first := reports[0].GetSeq(); first != next {
			c.log.Warn("spool lost reports before they were sent", "from_seq", next, "resume_seq", first,
				"lost", first-next)
		}
		req := &hwhealv1.ConnectRequest{Msg: &hwhealv1.ConnectRequest_Reports{Reports: &hwhealv1.ReportBatch{Reports: reports}}}
		if err := stream.Send(req); err != nil {
			sendErr = err
			break
		}
		last := reports[len(reports)-1].GetSeq()
		inflight = append(inflight, flight{first: reports[0].GetSeq(), last: last, n: len(reports)})
		next = last + 1
		c.mu.Lock()
		c.stats.ReportsSent += uint64(len(reports))
		c.mu.Unlock()
	}

	if sendErr != nil && ctx.Err() == nil {
		// A failed Send means the stream is over; its status comes from
		// Recv. Give the receiver a moment to see it.
		t := time.NewTimer(5 * time.Second)
		select {
		case <-recvDone:
		case <-t.C:
		}
		t.Stop()
	}
	cancel()
	<-recvDone
	res.progress = progress.Load()
	// recvErr is the stream's status unless it is the cancellation this
	// function caused; then the local error says more.
	res.err = recvErr
	if localErr != nil && (recvErr == nil || status.Code(recvErr) == codes.Canceled) {
		res.err = localErr
	}
	if sendErr != nil && (recvErr == nil || status.Code(recvErr) == codes.Canceled) {
		res.err = fmt.Errorf("send batch: %w", sendErr)
	}
	if res.err == nil || errors.Is(res.err, io.EOF) {
		res.err = errors.New("collector closed the stream")
	}
	if status.Code(res.err) == codes.InvalidArgument {
		prune()
		c.refused(rs, inflight, res.err)
	}
	return res
}

// reconcile compares the collector's acked seq with the spool's marks.
func (c *Client) reconcile(streamID string, collAcked uint64) error {
	sp := c.cfg.Spool
	if acked := sp.Acked(); collAcked < acked {
		// Nothing to do but say so: the reports are deleted. Sending goes
		// on after the spool's mark, and the collector accepts the gap.
		c.mu.Lock()
		c.stats.CollectorBehind++
		c.mu.Unlock()
		c.log.Error("collector lost reports it had acknowledged, they cannot be sent again",
			"stream_id", streamID, "collector_acked_seq", collAcked, "spool_acked_seq", acked,
			"lost", acked-collAcked)
	}
	if last := sp.LastSeq(); collAcked > last {
		// New reports numbered up to the collector's mark would be taken
		// for duplicates and dropped. The spool's numbering continues
		// after it instead. The reports the spool holds keep their numbers
		// and are acked below: after a restored snapshot they are the
		// ones the collector holds.
		if err := sp.SkipTo(collAcked); err != nil {
			// Sending now would lose reports silently; retry the session.
			return fmt.Errorf("move spool numbering past the collector's acked seq %d: %w", collAcked, err)
		}
		c.mu.Lock()
		c.stats.CollectorAhead++
		c.mu.Unlock()
		c.log.Warn("collector holds sequence numbers this spool had not handed out, numbering continues after them",
			"stream_id", streamID, "collector_acked_seq", collAcked, "spool_last_seq", last,
			"spool_acked_seq", sp.Acked())
	}
	return nil
}

// refused handles an InvalidArgument that ended a welcomed session; see
// the Client doc.
func (c *Client) refused(rs *runState, outstanding []flight, err error) {
	switch {
	case len(outstanding) == 1 && outstanding[0].n == 1:
		seq := outstanding[0].first
		c.ack(seq)
		c.mu.Lock()
		c.stats.Rejected++
		c.mu.Unlock()
		c.log.Error("collector refused a report, skipping it", "seq", seq, "err", err)
	case len(outstanding) > 0:
		rs.probeUntil = outstanding[len(outstanding)-1].last
		c.log.Error("collector refused a batch, sending one report at a time to find the refused one",
			"first_seq", outstanding[0].first, "last_seq", rs.probeUntil, "err", err)
	default:
		c.log.Error("collector refused the stream with nothing outstanding", "err", err)
	}
}

func (c *Client) awaitWelcome(cancel context.CancelFunc, stream hwhealv1.AgentService_ConnectClient) (*hwhealv1.Welcome, error) {
	t := time.AfterFunc(c.cfg.WelcomeTimeout, cancel)
	m, err := stream.Recv()
	if !t.Stop() {
		return nil, fmt.Errorf("no welcome within %s", c.cfg.WelcomeTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("await welcome: %w", err)
	}
	w := m.GetWelcome()
	if w == nil {
		return nil, fmt.Errorf("collector answered hello with %T, not a welcome", m.GetMsg())
	}
	return w, nil
}

// streamErr turns a Send error into the stream's status where it has one:
// gRPC reports a stream ended by the server as io.EOF on Send.
func streamErr(stream hwhealv1.AgentService_ConnectClient, what string, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
			err = rerr
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// order hands an order to Config.Orders.
func (c *Client) order(o *hwhealv1.ActionOrder) {
	c.mu.Lock()
	c.stats.Orders++
	c.mu.Unlock()
	if c.cfg.Orders == nil {
		c.log.Warn("collector sent an order to an agent that runs no actions", "action_id", o.GetId())
		return
	}
	c.log.Debug("order received", "action_id", o.GetId(), "type", o.GetType().String())
	c.cfg.Orders(o)
}

func (c *Client) ack(seq uint64) {
	if err := c.cfg.Spool.Ack(seq); err != nil {
		c.log.Warn("spool ack failed", "seq", seq, "err", err)
	}
}

func (c *Client) setConnected(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on == c.stats.Connected {
		return
	}
	c.stats.Connected = on
	if on {
		c.stats.Connects++
		close(c.connected)
	} else {
		c.stats.Disconnects++
		c.connected = make(chan struct{})
	}
}
