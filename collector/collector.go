// Package collector assembles the collector: the store, ingest
// (AgentService), the fleet API (FleetService), the gRPC health service and
// Prometheus metrics, with their lifecycle. cmd/hwheal-collector only turns
// flags into a Config.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/hwheal/hwheal/collector/api"
	"github.com/hwheal/hwheal/collector/auth"
	"github.com/hwheal/hwheal/collector/classify"
	"github.com/hwheal/hwheal/collector/events"
	"github.com/hwheal/hwheal/collector/ingest"
	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	"github.com/hwheal/hwheal/collector/webhook"
	"github.com/hwheal/hwheal/pkg/grpcutil"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/planner"
	"github.com/hwheal/hwheal/remediation/policy"
)

// Config is the collector's whole configuration.
type Config struct {
	// Listen is the gRPC address for agents and the fleet API.
	Listen string
	// MetricsListen is the HTTP address of /metrics; empty disables it.
	MetricsListen string
	// StateDir holds the embedded store.
	StateDir string
	// Store selects the backend: empty for SQLite in StateDir, or
	// "sqlite:PATH".
	Store string
	// Insecure allows plaintext gRPC; without it the collector refuses to
	// start until TLS is configured.
	Insecure bool
	// MaxRecvMsgBytes bounds one incoming gRPC message (default 4 MiB).
	MaxRecvMsgBytes int
	// ShutdownTimeout bounds the graceful stop (default 10 s).
	ShutdownTimeout time.Duration
	// RulesDir holds rule files that add to or override the shipped rules
	// (default /etc/hwheal/rules.d; a missing directory overrides nothing).
	RulesDir string
	// ConfigFile is the collector's YAML configuration (webhooks:);
	// empty for none.
	ConfigFile string
	// TokensFile holds the fleet API's identities, a token,user,role a
	// line. Empty: the collector makes admin.token in the state directory
	// (the store's directory with Store set) and accepts only that.
	TokensFile string
	// PolicyFile is the remediation policy; empty runs the shipped
	// default, which is dry-run and has no rules: nothing acts on a node
	// until an operator writes a policy.
	PolicyFile string
	// PlannerInterval paces the remediation planner's passes (default
	// 5 s); faults, action updates and agent connections wake it sooner.
	PlannerInterval time.Duration
	// SweepInterval and PeerInterval pace the clear-time sweep and the
	// outlier rules (defaults 30 s and 1 min).
	SweepInterval time.Duration
	PeerInterval  time.Duration
	Version       string
	Logger        *slog.Logger
}

// DefaultListen is where the collector listens unless told otherwise.
const DefaultListen = "127.0.0.1:7400"

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.StateDir == "" && c.Store == "" {
		return errors.New("state-dir: required for the embedded store")
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "sqlite:") {
		return fmt.Errorf("store: %q is not supported (use sqlite:PATH, or leave it empty for SQLite in the state directory)", c.Store)
	}
	if !c.Insecure {
		return fmt.Errorf("insecure: %w", grpcutil.ErrNoTLS)
	}
	if c.MaxRecvMsgBytes <= 0 {
		c.MaxRecvMsgBytes = 4 << 20
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RulesDir == "" {
		c.RulesDir = classify.DefaultRulesDir
	}
	return nil
}

func (c *Config) storePath() string {
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok {
		return p
	}
	return filepath.Join(c.StateDir, "hwheal.db")
}

// Collector is a running collector.
type Collector struct {
	cfg      Config
	store    store.Store
	broker   *events.Broker
	ingest   *ingest.Server
	classify *classify.Classifier
	webhooks *webhook.Dispatcher // nil without webhook targets
	fleet    *api.Fleet
	planner  *planner.Planner
	guard    *auth.Guard
	registry *prometheus.Registry

	ready    chan struct{}
	mu       sync.Mutex
	addr     net.Addr
	httpAddr net.Addr
}

// New opens the store and builds the services. Close happens in Run.
func New(ctx context.Context, cfg Config) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Logger.Warn(grpcutil.InsecureWarning)
	rules, ruleFiles, err := classify.LoadRules(cfg.RulesDir)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	pol := policy.Default()
	if cfg.PolicyFile != "" {
		if pol, err = policy.Load(cfg.PolicyFile); err != nil {
			return nil, fmt.Errorf("load policy: %w", err)
		}
	}
	var fileCfg fileConfig
	if cfg.ConfigFile != "" {
		if fileCfg, err = loadFileConfig(cfg.ConfigFile); err != nil {
			return nil, err
		}
	}
	path := cfg.storePath()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	st, err := sqlite.Open(ctx, path, sqlite.Options{Logger: cfg.Logger.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	broker := events.NewBroker(0)
	// The classifier writes through ingest's writer, which needs the
	// classifier: the closure breaks the cycle.
	var in *ingest.Server
	write := func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error {
		err := in.Write(ctx, fn)
		if errors.Is(err, ingest.ErrStopped) {
			// What callers know to answer with UNAVAILABLE.
			return fmt.Errorf("%w: %w", store.ErrClosed, err)
		}
		return err
	}
	cls, err := classify.New(classify.Config{
		Rules:         rules,
		Store:         st,
		Write:         write,
		Logger:        cfg.Logger.With("component", "classify"),
		Registerer:    reg,
		SweepInterval: cfg.SweepInterval,
		PeerInterval:  cfg.PeerInterval,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	plan, err := planner.New(planner.Config{
		Store:      st,
		Write:      write,
		Policy:     pol,
		Send:       func(node string, o *hwhealv1.ActionOrder) bool { return in.SendOrder(node, o) },
		Interval:   cfg.PlannerInterval,
		Logger:     cfg.Logger.With("component", "planner"),
		Registerer: reg,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	in, err = ingest.New(ingest.Config{
		Store:      st,
		Broker:     broker,
		Metrics:    ingest.NewMetrics(reg),
		Logger:     cfg.Logger.With("component", "ingest"),
		Version:    cfg.Version,
		Classifier: cls,
		Orders:     plan,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	fleet, err := api.New(api.Config{Store: st, Broker: broker, Logger: cfg.Logger.With("component", "api"), Write: write, Remediation: plan})
	if err != nil {
		st.Close()
		return nil, err
	}
	tokenDir := cfg.StateDir
	if tokenDir == "" {
		tokenDir = filepath.Dir(path)
	}
	tokens, err := auth.Open(cfg.TokensFile, tokenDir, cfg.Logger.With("component", "auth"))
	if err != nil {
		st.Close()
		return nil, err
	}
	guard, err := auth.NewGuard(auth.Config{Tokens: tokens, Logger: cfg.Logger.With("component", "auth"), Registerer: reg})
	if err != nil {
		st.Close()
		return nil, err
	}
	var hooks *webhook.Dispatcher
	if len(fileCfg.Webhooks.Targets) > 0 {
		hooks, err = webhook.New(fileCfg.Webhooks, st, webhook.Options{
			Logger:     cfg.Logger.With("component", "webhook"),
			Registerer: reg,
		})
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	cfg.Logger.Info("rules loaded", "rules", len(rules.Rules()), "files", ruleFiles, "webhooks", len(fileCfg.Webhooks.Targets))
	if pol.File == "" {
		cfg.Logger.Warn("no remediation policy given (--policy): running the shipped default, dry-run with no rules; actions are planned and reported, never run")
	}
	return &Collector{cfg: cfg, store: st, broker: broker, ingest: in, classify: cls, webhooks: hooks, fleet: fleet, planner: plan, guard: guard, registry: reg, ready: make(chan struct{})}, nil
}

// Ready is closed once the collector listens.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// Addr is the gRPC listen address (valid after Ready).
func (c *Collector) Addr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// MetricsAddr is the metrics listen address, nil when disabled.
func (c *Collector) MetricsAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.httpAddr
}

// Run serves until ctx is done, then stops gracefully and closes the store.
func (c *Collector) Run(ctx context.Context) error {
	defer c.store.Close()
	log := c.cfg.Logger
	lis, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.cfg.Listen, err)
	}
	creds, err := grpcutil.TransportCredentials(c.cfg.Insecure)
	if err != nil {
		lis.Close()
		return err
	}
	srv := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(c.cfg.MaxRecvMsgBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Only FleetService calls are checked: AgentService waits for
		// mutual TLS, and health stays open.
		grpc.ChainUnaryInterceptor(grpcutil.RecoverUnary(log), c.guard.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(grpcutil.RecoverStream(log), c.guard.StreamInterceptor()),
	)
	hwhealv1.RegisterAgentServiceServer(srv, c.ingest)
	hwhealv1.RegisterFleetServiceServer(srv, c.fleet)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)

	var httpSrv *http.Server
	var httpLis net.Listener
	if c.cfg.MetricsListen != "" {
		httpLis, err = net.Listen("tcp", c.cfg.MetricsListen)
		if err != nil {
			lis.Close()
			return fmt.Errorf("listen metrics %s: %w", c.cfg.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(c.registry, promhttp.HandlerOpts{}))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}

	// Streams die with the process that served them: a collector that
	// crashed never recorded their end. Agents still up reconnect at once.
	if evs, err := c.store.ResetConnections(ctx, time.Now()); err != nil {
		lis.Close()
		if httpLis != nil {
			httpLis.Close()
		}
		return err
	} else if len(evs) > 0 {
		log.Info("nodes marked disconnected until their agents reconnect", "nodes", len(evs))
	}

	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.ingest.Run(writerCtx)
	}()

	// The classifier's sweep and peer rules and the remediation planner
	// write through the writer, so they stop before it; webhooks deliver
	// from the store until then, so that the disconnects recorded on the
	// way down leave too. All stop after the streams, not when the
	// shutdown starts.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { c.classify.Run(bgCtx) })
	bg.Go(func() { c.planner.Run(bgCtx) })
	// Wake the planner on what it acts on: faults, agents coming and going
	// (a new boot id confirms a reboot), action changes (an agent's update
	// frees its node for the next action).
	bg.Go(func() {
		c.onEvents(bgCtx, func(ev *hwhealv1.Event) {
			if wakesPlanner(ev.GetType()) {
				c.planner.Wake()
			}
		})
	})
	if c.webhooks != nil {
		bg.Go(func() { c.webhooks.Run(bgCtx) })
		// Wake the dispatcher on every stored event.
		bg.Go(func() { c.onEvents(bgCtx, func(*hwhealv1.Event) { c.webhooks.Notify() }) })
	}

	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(lis) }()
	if httpSrv != nil {
		go func() {
			if err := httpSrv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("metrics server: %w", err)
			}
		}()
	}
	c.mu.Lock()
	c.addr = lis.Addr()
	if httpLis != nil {
		c.httpAddr = httpLis.Addr()
	}
	c.mu.Unlock()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("collector listening", "addr", lis.Addr().String(), "store", c.cfg.storePath(), "metrics", c.cfg.MetricsListen)
	close(c.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}

	// Stop: say NOT_SERVING, let streams finish within the deadline, then
	// cut them; only then stop the writer so submitted batches are stored.
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	c.ingest.CloseSessions()
	c.fleet.StopWatches()
	select {
	case <-stopped:
	case <-time.After(c.cfg.ShutdownTimeout):
		log.Warn("graceful stop timed out; closing remaining streams")
		srv.Stop()
		<-stopped
	}
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		httpSrv.Shutdown(sctx)
		cancel()
	}
	// Handlers may still be recording disconnects: the store stays open
	// until they are done.
	c.ingest.WaitSessions()
	stopBackground()
	bg.Wait()
	stopWriter()
	<-writerDone
	log.Info("collector stopped")
	return runErr
}

// wakesPlanner reports whether an event of type t may give the remediation
// planner something to do.
func wakesPlanner(t hwhealv1.EventType) bool {
	switch t {
	// Not FAULT_UPDATED: the most frequent event of all, and new evidence
	// of an open fault can wait for the planner's interval.
	case hwhealv1.EventType_EVENT_TYPE_FAULT_OPENED, hwhealv1.EventType_EVENT_TYPE_FAULT_REOPENED,
		hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED,
		hwhealv1.EventType_EVENT_TYPE_NODE_CONNECTED, hwhealv1.EventType_EVENT_TYPE_NODE_REBOOTED,
		hwhealv1.EventType_EVENT_TYPE_REMEDIATION_RESUMED:
		return true
	case hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED:
		return true
	}
	return false
}

// onEvents calls fn with every event published until ctx is done. A
// subscription that fell behind is replaced: its users only take events as
// a wake-up and catch up from the store (the webhook dispatcher's poll and
// cursor, the planner's interval), so a gap costs time, not events.
func (c *Collector) onEvents(ctx context.Context, fn func(*hwhealv1.Event)) {
	for ctx.Err() == nil {
		sub := c.broker.Subscribe()
	follow:
		for {
			select {
			case <-ctx.Done():
				break follow
			case ev := <-sub.C():
				fn(ev)
			case <-sub.Done():
				break follow
			}
		}
		sub.Close()
	}
}
