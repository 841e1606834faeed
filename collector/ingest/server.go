// Package ingest owns the collector's side of AgentService: it admits agent
// streams, validates what they send, stores it through a group-committing
// writer, acknowledges what is durably stored and publishes the resulting
// events. Exactly-once storage rests on the store dropping reports whose
// sequence number it already holds; ingest keeps the order that needs.
package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// Config configures the ingest server.
type Config struct {
	Store   store.Store
	Broker  *events.Broker
	Metrics *Metrics // nil: unregistered metrics
	Logger  *slog.Logger
	// Version is sent to agents in the Welcome.
	Version string
	// MaxBatchReports is the most reports one agent batch may carry
	// (default 1000).
	MaxBatchReports int
	// MaxTxReports bounds the reports group-committed in one transaction
	// (default 20000).
	MaxTxReports int
	// QueueReports bounds the reports queued for the writer or being stored
	// (default 4 x MaxTxReports): the collector's memory under a replay
	// storm.
	QueueReports int
	// HelloTimeout is how long a new stream has to send its Hello
	// (default 30 s).
	HelloTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Classifier applies the collector's rules to each batch before it is
	// queued for the store; nil stores batches as they came.
	Classifier Classifier
	// Orders gives the action orders to send an agent after its Welcome;
	// nil sends none (remediation off).
	Orders Orders
}

// Orders is the seam between ingest and the remediation planner
// (remediation/planner implements it).
type Orders interface {
	// Pending returns the orders dispatched to node and not yet answered
	// with a final update, oldest first. Ingest sends them after every
	// Welcome, since an order sent on a stream that broke may never have
	// arrived; agents run an id at most once.
	Pending(ctx context.Context, node string) ([]*hwhealv1.ActionOrder, error)
}

// orderQueue bounds the orders waiting to be sent on one stream. The
// planner sends again what found the queue full.
const orderQueue = 64

// Classifier is the seam between ingest and the collector's rules
// (collector/classify implements it).
type Classifier interface {
	// Classify annotates the batch's fault reports (rule mode, clear
	// time, severity override), takes out those of disabled rules (a
	// report keeps its sequence number, so it is still acknowledged), and
	// appends to b.Derived the faults its rules raise from the batch's
	// observations. Reports with a sequence number at or below after are
	// replays of reports classified before: left alone. It runs on the
	// stream's goroutine, concurrently for different nodes.
	Classify(b *store.Batch, after uint64)
}

func (c *Config) setDefaults() {
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBatchReports <= 0 {
		c.MaxBatchReports = 1000
	}
	if c.MaxTxReports <= 0 {
		c.MaxTxReports = 20000
	}
	if c.QueueReports <= 0 {
		c.QueueReports = 4 * c.MaxTxReports
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server implements hwhealv1.AgentServiceServer.
type Server struct {
	hwhealv1.UnimplementedAgentServiceServer

	cfg    Config
	writer *writer

	mu       sync.Mutex
	sessions map[string]*session // by node: the one live stream of each node
	closing  bool                // set by CloseSessions: no new streams

	handlers sync.WaitGroup // Connect calls in progress
}

type session struct {
	cancel context.CancelCauseFunc
	// failed is set when a batch of this stream could not be stored; only
	// the writer goroutine touches it.
	failed bool
	// orders is nil for an agent that announced no guard: it runs no
	// actions and is sent none.
	orders chan *hwhealv1.ActionOrder
	// sendMu serialises Send on the stream: acknowledgements and orders
	// leave from different goroutines.
	sendMu sync.Mutex
}

func (se *session) send(stream hwhealv1.AgentService_ConnectServer, m *hwhealv1.ConnectResponse) error {
	se.sendMu.Lock()
	defer se.sendMu.Unlock()
	return stream.Send(m)
}

var (
	errReplaced = errors.New("replaced by a newer stream of the same node")
	errShutdown = errors.New("collector is shutting down")
)

// New returns a server; call Run to start its writer before serving.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Broker == nil {
		return nil, errors.New("ingest: Store and Broker are required")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, sessions: make(map[string]*session)}
	s.writer = newWriter(cfg.Store, cfg.Broker, cfg.Metrics, cfg.Logger, cfg.QueueReports, cfg.MaxTxReports, s.hasSession)
	return s, nil
}

// Run runs the writer until ctx is done. Streams submitted after that fail
// with UNAVAILABLE, and the agents replay later.
func (s *Server) Run(ctx context.Context) error {
	s.writer.run(ctx)
	return nil
}

// Write runs fn, a store write outside any agent stream (an operator's
// acknowledgement, a fault resolved by its clear time, a peer rule's
// faults), in the writer's order, and publishes the events it returns
// (with an error too: fn returns only events that were stored), so that
// events reach watchers in the order of their ids whoever wrote them.
func (s *Server) Write(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error {
	_, err := s.writer.call(ctx, &job{kind: jobFunc, fn: fn})
	return err
}

// Sessions is the number of live agent streams.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Connect serves one agent stream.
func (s *Server) Connect(stream hwhealv1.AgentService_ConnectServer) error {
	s.handlers.Add(1)
	defer s.handlers.Done()
	err := s.connect(stream)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			s.cfg.Metrics.Rejected.WithLabelValues(st.Code().String()).Inc()
		}
	}
	return err
}

func (s *Server) connect(stream hwhealv1.AgentService_ConnectServer) error {
	hello, err := s.recvHello(stream)
	if err != nil {
		return err
	}
	node := hello.GetNode()
	log := s.cfg.Logger.With("node", node)

	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	me := &session{cancel: cancel}
	if hello.GetGuard() != nil && s.cfg.Orders != nil {
		me.orders = make(chan *hwhealv1.ActionOrder, orderQueue)
	}
	if !s.register(node, me) {
		return status.Error(codes.Unavailable, errShutdown.Error())
	}
	defer s.unregister(node, me, log)

	hr, err := s.writer.call(ctx, &job{kind: jobHello, hello: store.Hello{
		Node:         node,
		Labels:       hello.GetLabels(),
		AgentVersion: hello.GetAgentVersion(),
		BootID:       hello.GetBootId(),
		StreamID:     hello.GetStreamId(),
		Inventory:    hello.GetInventory(),
		Guard:        hello.GetGuard(),
		Time:         s.cfg.Now(),
	}})
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(context.Cause(ctx)).Err()
		}
		log.Error("store hello failed", "err", err)
		return status.Error(codes.Unavailable, "collector store unavailable; retry later")
	}
	res := hr.hello
	if err := me.send(stream, &hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Welcome{Welcome: &hwhealv1.Welcome{
		AckedSeq:         res.AckedSeq,
		CollectorVersion: s.cfg.Version,
		MaxBatchReports:  uint32(s.cfg.MaxBatchReports),
	}}}); err != nil {
		return err
	}
	log.Info("agent connected", "stream_id", hello.GetStreamId(), "acked_seq", res.AckedSeq, "boot_id", hello.GetBootId(),
		"takes_orders", me.orders != nil)
	if me.orders != nil {
		s.queuePending(ctx, node, me, log)
		// Joined before the handler returns: gRPC forbids a Send on a
		// stream whose handler has returned. The deferred cancel (below
		// in defer order: it runs first) ends it.
		var sender sync.WaitGroup
		sender.Go(func() { s.sendOrders(ctx, stream, me, log) })
		defer sender.Wait()
		defer cancel(nil)
	}

	// The receive loop submits batches without waiting for them to be
	// stored; the acker waits for each in order and acknowledges it. An
	// agent with several batches in flight thus keeps the writer busy.
	pending := make(chan (<-chan jobResult), 64)
	recvDone := make(chan error, 1)
	ackDone := make(chan error, 1)
	go func() { recvDone <- s.receive(ctx, stream, hello, res.AckedSeq, me, pending) }()
	go func() { ackDone <- s.ack(ctx, stream, me, pending) }()

	// The receiver may sit in Recv until this handler returns (that is what
	// ends the stream), so only the acker, which watches ctx, is waited for.
	var first error
	select {
	case err := <-recvDone:
		if errors.Is(err, io.EOF) {
			// The agent closed its side: acknowledge what is pending.
			first = <-ackDone
		} else {
			cancel(err)
			<-ackDone
			first = err
		}
	case err := <-ackDone:
		if errors.Is(err, io.EOF) {
			// The acker saw pending closed: the receiver has ended, and its
			// error (a refusal, or the agent's EOF) is the stream's.
			first = <-recvDone
		} else {
			cancel(err)
			first = err
		}
	case <-ctx.Done():
		first = context.Cause(ctx)
		<-ackDone
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errReplaced):
		return status.Error(codes.Aborted, errReplaced.Error())
	case errors.Is(cause, errShutdown):
		return status.Error(codes.Unavailable, errShutdown.Error())
	}
	if first != nil && !errors.Is(first, io.EOF) {
		if _, ok := status.FromError(first); ok {
			return first
		}
		if errors.Is(first, context.Canceled) {
			return status.FromContextError(first).Err()
		}
		return status.Error(codes.Unavailable, first.Error())
	}
	return nil
}

func (s *Server) recvHello(stream hwhealv1.AgentService_ConnectServer) (*hwhealv1.Hello, error) {
	type recv struct {
		m   *hwhealv1.ConnectRequest
		err error
	}
	ch := make(chan recv, 1)
	go func() {
		m, err := stream.Recv()
		ch <- recv{m, err}
	}()
	timer := time.NewTimer(s.cfg.HelloTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		hello := r.m.GetHello()
		if hello == nil {
			return nil, status.Error(codes.FailedPrecondition, "the first message of a stream must be a hello")
		}
		if err := validateHello(hello); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return hello, nil
	case <-timer.C:
		// Returning ends the stream, which unblocks the receive above.
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %s", s.cfg.HelloTimeout)
	}
}

// receive reads batches until the stream ends; it closes pending so the
// acker can finish the ones already submitted.
//
// acked is the stream's acknowledged sequence number at hello: reports at
// or below it (and below any report this stream already sent) were
// classified when they were first stored, with the faults derived from
// them, so they are not classified again.
func (s *Server) receive(ctx context.Context, stream hwhealv1.AgentService_ConnectServer, hello *hwhealv1.Hello, acked uint64, me *session, pending chan<- (<-chan jobResult)) error {
	defer close(pending)
	classified := acked
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		batch := m.GetReports()
		if batch == nil {
			return status.Error(codes.InvalidArgument, "only report batches may follow the hello")
		}
		if err := validateBatch(batch, s.cfg.MaxBatchReports); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		faults, observations, updates, unknown := reportKinds(batch)
		s.cfg.Metrics.Reports.WithLabelValues("fault").Add(float64(faults))
		s.cfg.Metrics.Reports.WithLabelValues("observation").Add(float64(observations))
		s.cfg.Metrics.Reports.WithLabelValues("action_update").Add(float64(updates))
		// A newer agent's kind of report: stored as nothing, but its
		// sequence number is acknowledged so the agent moves on.
		s.cfg.Metrics.Reports.WithLabelValues("unknown").Add(float64(unknown))
		b := store.Batch{
			Node:     hello.GetNode(),
			StreamID: hello.GetStreamId(),
			Reports:  batch.GetReports(),
			Received: s.cfg.Now(),
		}
		if s.cfg.Classifier != nil {
			s.cfg.Classifier.Classify(&b, classified)
			for _, r := range b.Reports {
				classified = max(classified, r.GetSeq())
			}
		}
		done, err := s.writer.submit(ctx, &job{kind: jobBatch, sess: me, batch: b})
		if err != nil {
			return err
		}
		select {
		case pending <- done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func (s *Server) ack(ctx context.Context, stream hwhealv1.AgentService_ConnectServer, me *session, pending <-chan (<-chan jobResult)) error {
	for {
		var done <-chan jobResult
		select {
		case d, ok := <-pending:
			if !ok {
				return io.EOF
			}
			done = d
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		var r jobResult
		select {
		case r = <-done:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.writer.stopped:
			return status.Error(codes.Unavailable, "collector is shutting down")
		}
		if r.err != nil {
			if !errors.Is(r.err, errEarlierFailed) {
				s.cfg.Logger.Error("store batch failed", "err", r.err)
			}
			return status.Error(codes.Unavailable, "collector store unavailable; retry later")
		}
		if err := me.send(stream, &hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Ack{Ack: &hwhealv1.Ack{AckedSeq: r.res.AckedSeq}}}); err != nil {
			return err
		}
	}
}

// queuePending queues the orders the node's agent should already have.
func (s *Server) queuePending(ctx context.Context, node string, me *session, log *slog.Logger) {
	orders, err := s.cfg.Orders.Pending(ctx, node)
	if err != nil {
		// The planner sends them again while they stay unanswered.
		log.Warn("read pending orders failed", "err", err)
		return
	}
	for _, o := range orders {
		select {
		case me.orders <- o:
		default:
			log.Warn("order queue full; the planner sends the rest again", "action", o.GetId())
			return
		}
	}
}

// sendOrders sends queued orders until the stream ends.
func (s *Server) sendOrders(ctx context.Context, stream hwhealv1.AgentService_ConnectServer, me *session, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-me.orders:
			if err := me.send(stream, &hwhealv1.ConnectResponse{Msg: &hwhealv1.ConnectResponse_Order{Order: o}}); err != nil {
				// The stream is over; its handler sees the same error.
				log.Debug("send order failed", "action", o.GetId(), "err", err)
				return
			}
			s.cfg.Metrics.OrdersSent.Inc()
			log.Info("order sent", "action", o.GetId(), "type", o.GetType().String())
		}
	}
}

// SendOrder queues an order on node's live stream. It returns false when
// the node has no stream, its agent takes no orders, or the queue is full;
// the order then goes with the next Welcome or the planner's next resend.
func (s *Server) SendOrder(node string, o *hwhealv1.ActionOrder) bool {
	s.mu.Lock()
	me := s.sessions[node]
	s.mu.Unlock()
	if me == nil || me.orders == nil {
		return false
	}
	select {
	case me.orders <- o:
		return true
	default:
		return false
	}
}

// CloseSessions ends every agent stream with UNAVAILABLE so that a graceful
// stop does not wait for streams that never end by themselves. Agents
// reconnect elsewhere or later and replay what was not acknowledged.
func (s *Server) CloseSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for _, sess := range s.sessions {
		sess.cancel(errShutdown)
	}
}

func (s *Server) hasSession(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[node] != nil
}

// WaitSessions waits until every stream handler has returned, including its
// last store write (the disconnect), so the store may then be closed. Call
// it after CloseSessions and after the gRPC server stopped taking streams.
func (s *Server) WaitSessions() { s.handlers.Wait() }

func (s *Server) register(node string, me *session) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	old := s.sessions[node]
	s.sessions[node] = me
	if old == nil {
		s.cfg.Metrics.Streams.Inc()
	}
	s.mu.Unlock()
	if old != nil {
		// An agent that reconnects before its old stream timed out: the
		// newer stream wins, so one node never has two writers.
		old.cancel(errReplaced)
	}
	return true
}

func (s *Server) unregister(node string, me *session, log *slog.Logger) {
	s.mu.Lock()
	current := s.sessions[node] == me
	if current {
		delete(s.sessions, node)
		s.cfg.Metrics.Streams.Dec()
	}
	s.mu.Unlock()
	if !current {
		return
	}
	// The stream's context is gone; recording the disconnect must not be.
	// It goes through the writer, which skips it if the node reconnected
	// meanwhile, so a late disconnect never hides a live stream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.writer.call(ctx, &job{kind: jobDisconnect, node: node, at: s.cfg.Now()}); err != nil {
		log.Warn("store disconnect failed", "err", err)
		return
	}
	log.Info("agent disconnected")
}
