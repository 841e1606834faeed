// Package agent assembles the node agent: its sources, the kernel-log rules
// that turn records into faults, the on-disk spool that keeps every report
// until the collector acknowledges it, the stream to the collector, and,
// when remediation is configured, the actuator that runs the collector's
// orders under the agent's own guard. cmd/hwheal-agent only turns flags
// and the configuration file into a Config.
package agent

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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/actuate"
	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/agent/source"
	"github.com/hwheal/hwheal/agent/source/inventory"
	"github.com/hwheal/hwheal/agent/source/kmsg"
	"github.com/hwheal/hwheal/agent/spool"
	"github.com/hwheal/hwheal/agent/transport"
	"github.com/hwheal/hwheal/pkg/grpcutil"
	"github.com/hwheal/hwheal/pkg/kernlog"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
)

// Config is the agent's whole configuration.
type Config struct {
	// Collector is the collector's gRPC address.
	Collector string
	// Node is this node's name in the fleet (default: the host name).
	Node string
	// Labels place the node: rack, zone, model, role, ...
	Labels map[string]string
	// StateDir keeps the spool and the kmsg cursor.
	StateDir string
	// Root prefixes every /proc, /sys and /dev path (fixture trees in
	// tests); "/" on a real host.
	Root string
	// Insecure allows a plaintext connection to the collector.
	Insecure bool
	// MetricsListen is the HTTP address of /metrics; empty disables it.
	MetricsListen string
	// Intervals overrides the interval of periodic sources by source name
	// ("smart": time.Hour); each source has its own default.
	Intervals map[string]time.Duration
	// Disable names sources not to run (SourceNames lists them).
	Disable []string
	// DiskExclude overrides the default regular expression of block
	// devices left out of diskstats.
	DiskExclude string
	// SpoolMaxBytes bounds the on-disk spool (default 64 MiB).
	SpoolMaxBytes int64
	// Remediation says which actions the agent runs and how (the
	// configuration file's remediation section, with --allow and
	// --dry-run applied). Nil or an empty allow-list: none; the hello
	// carries no guard and the collector sends no order.
	Remediation *actuate.Remediation
	Version     string
	Logger      *slog.Logger
}

// DefaultCollector is where the agent looks for the collector by default.
const DefaultCollector = "127.0.0.1:7400"

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	if c.Collector == "" {
		c.Collector = DefaultCollector
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node: not given and the host name is unknown: %w", err)
		}
		c.Node = h
	}
	if c.StateDir == "" {
		return errors.New("state-dir: required")
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if err := c.validateSources(); err != nil {
		return err
	}
	if c.Remediation != nil {
		if err := c.Remediation.Validate(); err != nil {
			return err
		}
	}
	if !c.Insecure {
		return fmt.Errorf("insecure: %w", grpcutil.ErrNoTLS)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Agent is a running node agent.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	rules *detect.RuleSet
	// merger joins one failed block request seen by eBPF and by the
	// kernel log into one fault; limiter then bounds what a flood of one
	// (rule, part) can spool (see emitFault).
	merger  *detect.Merger
	limiter *detect.Limiter
	// obsPending are readings waiting for the end of observeWindow.
	obsMu      sync.Mutex
	flushMu    sync.Mutex
	obsPending []*hwhealv1.Report
	obsTimer   *time.Timer
	obsStopped bool
	// lastLine is the last kernel record that raised faults and those
	// faults, for the flood path of Log (kmsg's one goroutine calls Log).
	lastLine struct {
		msg             string
		level, facility int
		faults          []*hwhealv1.Fault
	}
	spool     *spool.Spool
	client    *transport.Client
	act       *actuate.Actuator // nil when the agent runs no actions
	kmsg      *kmsg.Source      // nil when disabled
	sources   []source.Source
	inventory *hwhealv1.Inventory
	bootID    string
	// bootWall is the wall-clock time of boot, to date kernel records
	// that carry only their time since boot.
	bootWall time.Time

	faults        atomic.Uint64
	observations  atomic.Uint64
	appendErrors  atomic.Uint64
	lastAppendErr atomic.Int64 // unix nanos of the last logged append error
}

// New builds the agent: opens its spool, loads the rules and takes the
// hardware inventory.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	log.Warn(grpcutil.InsecureWarning)
	rules, err := detect.Builtin()
	if err != nil {
		return nil, fmt.Errorf("load shipped rules: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	sp, err := spool.Open(filepath.Join(cfg.StateDir, "spool"), spool.Options{
		MaxBytes: cfg.SpoolMaxBytes,
		Logger:   log.With("component", "spool"),
	})
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	a := &Agent{cfg: cfg, log: log, rules: rules, spool: sp, limiter: detect.NewLimiter(detect.LimiterConfig{})}
	a.merger = detect.NewMerger(detect.MergerConfig{}, a.emitFault)
	a.bootID = readBootID(cfg.Root)
	a.bootWall = bootWallTime()
	if r := cfg.Remediation; r != nil && len(r.Allow) > 0 {
		// Built before anything connects: it reports, into the spool, the
		// actions an earlier run left unfinished.
		a.act, err = actuate.New(actuate.Config{
			StateDir: cfg.StateDir, Node: cfg.Node, BootID: a.bootID,
			Allow: r.Allow, DryRun: r.DryRun, MaxReboots: r.Reboot.Max, RebootWindow: r.Reboot.Window,
			Executors: r.Executors(),
			Report: func(u *hwhealv1.ActionUpdate) error {
				return sp.Append(&hwhealv1.Report{Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: u}})
			},
			Sync:   sp.Sync,
			Logger: log.With("component", "actuate"),
		})
		if err != nil {
			sp.Close()
			return nil, fmt.Errorf("remediation: %w", err)
		}
	}
	closeAll := func() {
		if a.act != nil {
			a.act.Close()
		}
		sp.Close()
	}

	invCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	inv, err := inventory.Collect(invCtx, cfg.Root, log.With("component", "inventory"))
	cancel()
	if err != nil {
		log.Warn("inventory unavailable", "err", err)
	}
	a.inventory = inv

	creds, err := grpcutil.TransportCredentials(cfg.Insecure)
	if err != nil {
		closeAll()
		return nil, err
	}
	tcfg := transport.Config{
		Target:      cfg.Collector,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(creds)},
		Hello:       a.hello,
		Spool:       sp,
		Logger:      log.With("component", "transport"),
	}
	if a.act != nil {
		tcfg.Orders = a.act.Deliver
	}
	a.client, err = transport.New(tcfg)
	if err != nil {
		closeAll()
		return nil, err
	}

	set := builtinSources(&a.cfg, log)
	a.kmsg, a.sources = set.kmsg, set.all
	for _, p := range set.liveOnly {
		log.Info("source left out", "source", p.Source, "reason", p.Unavailable)
	}
	return a, nil
}

func (a *Agent) hello() *hwhealv1.Hello {
	h := &hwhealv1.Hello{
		Node:         a.cfg.Node,
		Labels:       a.cfg.Labels,
		AgentVersion: a.cfg.Version,
		BootId:       a.bootID,
		Inventory:    a.inventory,
	}
	if a.act != nil {
		h.Guard = a.act.Guard()
	}
	return h
}

// Run runs every source and the stream to the collector until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	defer a.spool.Close()
	var httpSrv *http.Server
	if a.cfg.MetricsListen != "" {
		lis, err := net.Listen("tcp", a.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("listen metrics %s: %w", a.cfg.MetricsListen, err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), a.metrics())
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go httpSrv.Serve(lis)
		defer httpSrv.Close()
	}
	a.log.Info("agent started", "node", a.cfg.Node, "collector", a.cfg.Collector, "root", a.cfg.Root,
		"boot_id", a.bootID, "stream_id", a.spool.StreamID(), "rules", len(a.rules.Rules()))
	if a.act != nil {
		g := a.act.Guard()
		var allowed []string
		for _, t := range g.GetAllowed() {
			allowed = append(allowed, action.TypeName(t))
		}
		a.log.Info("remediation on", "allow", allowed, "dry_run", g.GetDryRun(),
			"max_reboots", g.GetMaxReboots(), "reboot_window", g.GetRebootWindow().AsDuration())
		// Closed after every goroutine below stopped, before the spool.
		defer a.act.Close()
	} else {
		a.log.Info("remediation off: no action is allowed")
	}

	var wg sync.WaitGroup
	errc := make(chan error, len(a.sources)+2)
	for _, src := range a.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := src.Run(ctx, a); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("source stopped", "source", src.Name(), "err", err)
				errc <- fmt.Errorf("source %s: %w", src.Name(), err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.client.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("transport: %w", err)
		}
	}()
	if a.act != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The action running when ctx ends is killed and its failure
			// spooled before Run returns, and so before the spool closes.
			a.act.Run(ctx)
		}()
	}
	wg.Wait()
	a.merger.Close() // spool what is held before the spool closes
	a.stopObservations()
	close(errc)
	// A source that failed does not stop the others (the agent keeps
	// watching what it can); its error is reported at exit.
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	a.log.Info("agent stopped")
	return errors.Join(errs...)
}

// Observe implements source.Sink.
// Readings are gathered for observeWindow and spooled together: the
// periodic sources tick together and hand over one part at a time, and
// each spool append wakes the stream, a send, an acknowledgement and a
// write of the acknowledged position, dozens of context switches. One
// batch per tick is most of the agent's idle CPU saved. Faults do not
// wait.
const observeWindow = 200 * time.Millisecond

// Observe implements source.Sink: the reading joins the window's batch.
func (a *Agent) Observe(o *hwhealv1.Observation) {
	if o.GetTime() == nil {
		o.Time = timestamppb.Now()
	}
	a.observations.Add(1)
	r := &hwhealv1.Report{Item: &hwhealv1.Report_Observation{Observation: o}}
	a.obsMu.Lock()
	if a.obsStopped {
		a.obsMu.Unlock()
		a.append(r) // after Run: nothing would flush a window
		return
	}
	defer a.obsMu.Unlock()
	a.obsPending = append(a.obsPending, r)
	if a.obsTimer == nil {
		a.obsTimer = time.AfterFunc(observeWindow, a.flushObservations)
	}
}

// flushObservations spools the readings gathered in the window.
func (a *Agent) flushObservations() {
	// Held while appending, so that stopObservations waits for a flush the
	// timer started before the spool closes.
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.obsMu.Lock()
	pending := a.obsPending
	a.obsPending, a.obsTimer = nil, nil
	a.obsMu.Unlock()
	if len(pending) > 0 {
		a.append(pending...)
	}
}

// stopObservations spools what is gathered and stops the window's timer;
// Run calls it after the sources stopped, before the spool closes.
func (a *Agent) stopObservations() {
	a.obsMu.Lock()
	a.obsStopped = true
	if a.obsTimer != nil {
		a.obsTimer.Stop()
	}
	a.obsMu.Unlock()
	a.flushObservations()
}

// Log implements source.Sink: it runs the rules on a kernel record and
// spools each fault they raise. A flood repeats one line: a record whose
// text (and priority) is the last fault-raising one's reuses its match,
// with no regular expression run.
func (a *Agent) Log(rec kernlog.Record) {
	var faults []*hwhealv1.Fault
	if a.lastLine.msg != "" && rec.Message == a.lastLine.msg && rec.Level == a.lastLine.level && rec.Facility == a.lastLine.facility {
		for _, t := range a.lastLine.faults {
			f := proto.Clone(t).(*hwhealv1.Fault)
			f.Time = nil // this record's time, below
			if kl := f.GetEvidence().GetKernelLog(); kl != nil {
				kl.Sequence, kl.MonotonicUsec = rec.Seq, uint64(rec.Monotonic/time.Microsecond)
			}
			faults = append(faults, f)
		}
	} else {
		faults = a.rules.Match(rec)
		a.lastLine.msg, a.lastLine.faults = "", nil
		if len(faults) > 0 {
			a.lastLine.msg, a.lastLine.level, a.lastLine.facility = rec.Message, rec.Level, rec.Facility
			for _, f := range faults {
				a.lastLine.faults = append(a.lastLine.faults, proto.Clone(f).(*hwhealv1.Fault))
			}
		}
	}
	for _, f := range faults {
		if f.GetTime() == nil {
			t := recordTime(rec, a.bootWall)
			if t.IsZero() {
				t = time.Now()
			}
			f.Time = timestamppb.New(t)
		}
		if kl := f.GetEvidence().GetKernelLog(); kl != nil && rec.Seq > 0 {
			kl.BootId = a.bootID
		}
		a.merger.Add(f)
	}
}

// Raise implements source.Sink: a fault a source detected itself goes the
// way of the rules' faults.
func (a *Agent) Raise(f *hwhealv1.Fault) {
	if f.GetTime() == nil {
		f.Time = timestamppb.Now()
	}
	a.merger.Add(f)
}

// emitFault is where every fault leaves the merger: the limiter sheds
// (and counts) what a flood repeats, the rest is spooled. The limiter
// comes after the merger so that every report of a failed request finds
// its twin, shed or not: a twin shed before the merger would leave the
// other source's report waiting, to be paired with a later request.
func (a *Agent) emitFault(f *hwhealv1.Fault) {
	if !a.limiter.Allow(f) {
		return
	}
	a.faults.Add(1)
	a.append(&hwhealv1.Report{Item: &hwhealv1.Report_Fault{Fault: f}})
}

func (a *Agent) append(reports ...*hwhealv1.Report) {
	if err := a.spool.Append(reports...); err != nil {
		a.appendErrors.Add(1)
		// A full or broken disk would otherwise log once per record.
		now := time.Now().UnixNano()
		if last := a.lastAppendErr.Load(); now-last > int64(10*time.Second) && a.lastAppendErr.CompareAndSwap(last, now) {
			a.log.Error("spool append failed", "err", err, "failed_total", a.appendErrors.Load())
		}
	}
}

// recordTime is when a kernel record was logged: its own wall time, or
// the boot's wall time plus its time since boot; zero when neither is
// known.
func recordTime(rec kernlog.Record, bootWall time.Time) time.Time {
	switch {
	case !rec.Time.IsZero():
		return rec.Time
	case rec.HasMonotonic && !bootWall.IsZero():
		return bootWall.Add(rec.Monotonic)
	default:
		return time.Time{}
	}
}

func readBootID(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/random/boot_id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// bootWallTime is now minus CLOCK_MONOTONIC, the clock /dev/kmsg stamps
// records with.
func bootWallTime() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}
