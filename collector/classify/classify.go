// Package classify owns the collector's use of the rules: it loads the
// shipped rule files and the operator's overrides (rules.d), applies them
// to every batch an agent sends (the mode, clear time and severity of each
// reported fault; threshold, rate and SMART rules over each observation),
// runs the fleet-wide peer (outlier) rules that no single node can, and
// resolves faults whose evidence has been gone for their clear time.
//
// The rules themselves - their file format, validation and evaluation -
// live in agent/detect, so that the agent, the collector and hwhealctl
// read one format; outlier statistics live in collector/peers.
package classify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hwheal/hwheal/agent/detect"
	"github.com/hwheal/hwheal/collector/peers"
	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// DefaultRulesDir is where operators put rule files that add to or
// override the shipped ones.
const DefaultRulesDir = detect.DefaultRulesDir

// LoadRules returns the shipped rules with the rule files of dir applied
// over them (see detect.LoadDir), and the names of the files read.
func LoadRules(dir string) (*detect.RuleSet, []string, error) {
	return detect.LoadDir(dir)
}

// Config configures a Classifier.
type Config struct {
	Rules *detect.RuleSet
	Store store.Store
	// Write runs a store write in the ingest writer's order and publishes
	// its events (ingest.Server.Write).
	Write  func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error
	Logger *slog.Logger
	// Registerer receives the classifier's metrics; nil leaves them
	// unregistered.
	Registerer prometheus.Registerer
	Now        func() time.Time
	// SweepInterval is how often faults are checked against their clear
	// time (default 30 s).
	SweepInterval time.Duration
	// PeerInterval is how often the outlier rules run over the fleet
	// (default 1 min).
	PeerInterval time.Duration
	// MaxParts bounds the (node, rule, part) state the observation rules
	// keep (default DefaultMaxParts).
	MaxParts int
}

// DefaultMaxParts is sized for ~10,000 nodes with ~20 parts under a few
// rules each; an entry is a few hundred bytes. Past it the least recently
// seen entry is forgotten (hwheal_collector_rule_state_evicted_total):
// its rate and growth rules start again from the next reading.
const DefaultMaxParts = 1 << 20

// Classifier implements ingest.Classifier and runs the collector's
// periodic rule work.
type Classifier struct {
	cfg Config
	// seeded holds the nodes whose stored readings the evaluator has seen
	// since start (node -> struct{}).
	seeded   sync.Map
	eval     *detect.Evaluator
	outliers []outlier
	m        metrics
}

type metrics struct {
	raised   *prometheus.CounterVec // {rule, mode}: faults the collector's rules raised
	disabled *prometheus.CounterVec // {rule}: agent faults of a disabled rule, dropped
	resolved prometheus.Counter
	sweepErr prometheus.Counter
	peerRuns *prometheus.CounterVec // {rule, result}
	peerSecs prometheus.Histogram
}

// New returns a classifier over a loaded rule set.
func New(cfg Config) (*Classifier, error) {
	if cfg.Rules == nil || cfg.Store == nil || cfg.Write == nil {
		return nil, errors.New("classify: Rules, Store and Write are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.PeerInterval <= 0 {
		cfg.PeerInterval = time.Minute
	}
	if cfg.MaxParts <= 0 {
		cfg.MaxParts = DefaultMaxParts
	}
	c := &Classifier{cfg: cfg, eval: detect.NewEvaluator(cfg.Rules, detect.EvaluatorOptions{MaxParts: cfg.MaxParts})}
	for _, o := range cfg.Rules.Outliers() {
		c.outliers = append(c.outliers, outlier{rule: o, peer: peerRule(o)})
	}
	c.m = metrics{
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hwheal_collector", Name: "rule_faults_total",
			Help: "Faults raised by the collector's own rules (threshold, rate, SMART, outlier), by rule and mode.",
		}, []string{"rule", "mode"}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hwheal_collector", Name: "faults_disabled_total",
			Help: "Fault reports of rules disabled in the collector's rule files, dropped.",
		}, []string{"rule"}),
		resolved: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hwheal_collector", Name: "faults_cleared_total",
			Help: "Faults resolved because their evidence was gone for their clear time.",
		}),
		sweepErr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hwheal_collector", Name: "clear_sweep_errors_total",
			Help: "Failed runs of the clear-time sweep.",
		}),
		peerRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hwheal_collector", Name: "outlier_runs_total",
			Help: "Runs of each outlier rule over the fleet, by result (ok, error).",
		}, []string{"rule", "result"}),
		peerSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hwheal_collector", Name: "outlier_run_seconds",
			Help:    "Time one outlier rule takes over the fleet, store read included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	parts := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "hwheal_collector", Name: "rule_state_parts",
		Help: "Parts whose readings the observation rules remember (for rates and growth).",
	}, func() float64 { return float64(c.eval.Parts()) })
	evicted := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "hwheal_collector", Name: "rule_state_evicted_total",
		Help: "Remembered parts forgotten to stay within the bound; rising means the bound is too small for the fleet.",
	}, func() float64 { return float64(c.eval.Evicted()) })
	for _, w := range Weakened(cfg.Rules) {
		cfg.Logger.Warn("rule override weakens a shipped rule", "rule", w.Rule, "file", w.File, "line", w.Line, "change", w.Change)
	}
	if cfg.Registerer != nil {
		for _, col := range []prometheus.Collector{c.m.raised, c.m.disabled, c.m.resolved, c.m.sweepErr, c.m.peerRuns, c.m.peerSecs, parts, evicted} {
			if err := cfg.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("register classifier metrics: %w", err)
			}
		}
	}
	return c, nil
}

func modeName(m hwhealv1.RuleMode) string {
	if m == hwhealv1.RuleMode_RULE_MODE_SHADOW {
		return "shadow"
	}
	return "enforce"
}

// Classify applies the rules to one agent batch; see ingest.Classifier.
func (c *Classifier) Classify(b *store.Batch, after uint64) {
	c.seed(b.Node)
	for _, r := range b.Reports {
		if r.GetSeq() <= after {
			continue // stored (or dropped) with its derived faults before
		}
		switch {
		case r.GetFault() != nil:
			f := r.GetFault()
			if !c.cfg.Rules.Annotate(f) {
				// The report keeps its sequence number and is
				// acknowledged; it stores nothing. The label is the
				// rule as the files name it (a prefix rule once), not
				// the agent's string, so the series stay bounded.
				rule, _ := c.cfg.Rules.Lookup(f.GetRule())
				c.m.disabled.WithLabelValues(rule.Name).Inc()
				r.Item = nil
			}
		case r.GetObservation() != nil:
			for _, f := range c.eval.Observe(b.Node, r.GetObservation()) {
				c.m.raised.WithLabelValues(f.GetRule(), modeName(f.GetMode())).Inc()
				b.Derived = append(b.Derived, store.DerivedFault{Fault: f, Source: c.evidenceSource(f, r.GetObservation())})
			}
		}
	}
}

// evidenceSource is the source whose newer reading must show a derived
// fault gone before it resolves (store.DerivedFault). A rate rule's fault
// is a burst of events in a window: sources that count events report a
// part only while it has them (the RAS tracepoints after a reboot), so its
// end shows as silence, and it clears by quiet time like a kernel-log
// fault ("" source). Every other rule judges a state the readings show.
func (c *Classifier) evidenceSource(f *hwhealv1.Fault, o *hwhealv1.Observation) string {
	if r, ok := c.cfg.Rules.Lookup(f.GetRule()); ok && r.Kind == detect.KindRate {
		return ""
	}
	return o.GetSource()
}

// seed gives the evaluator a node's stored readings the first time the node
// reports after the collector started, so that rate and growth rules
// compare the next reading with the last one stored rather than starting
// from nothing (an EDAC ue_count of 0 before a restart and 1 after is an
// uncorrectable error). The faults those readings raise are stored
// already; they are dropped.
func (c *Classifier) seed(node string) {
	if _, done := c.seeded.LoadOrStore(node, struct{}{}); done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := c.cfg.Store.LatestObservations(ctx, node)
	if err != nil {
		// Not fatal: the rules go on from this batch, and the next batch
		// of the node tries again.
		c.seeded.Delete(node)
		c.cfg.Logger.Warn("could not read a node's last readings for the rules", "node", node, "err", err)
		return
	}
	sort.Slice(obs, func(i, j int) bool { return obs[i].GetTime().AsTime().Before(obs[j].GetTime().AsTime()) })
	for _, o := range obs {
		c.eval.Observe(node, o)
	}
}

// Run sweeps faults against their clear time and runs the outlier rules
// until ctx is done.
func (c *Classifier) Run(ctx context.Context) error {
	sweep := time.NewTicker(c.cfg.SweepInterval)
	defer sweep.Stop()
	var peerC <-chan time.Time
	if len(c.outliers) > 0 {
		t := time.NewTicker(c.cfg.PeerInterval)
		defer t.Stop()
		peerC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			c.Sweep(ctx)
		case <-peerC:
			c.RunPeers(ctx)
		}
	}
}

// Sweep resolves the faults whose evidence has been gone for their clear
// time, a chunk per write so that agents' batches get in between.
func (c *Classifier) Sweep(ctx context.Context) {
	for ctx.Err() == nil {
		resolved := 0
		err := c.cfg.Write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
			evs, err := c.cfg.Store.ResolveQuiet(ctx, c.cfg.Now())
			for _, ev := range evs {
				if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_FAULT_RESOLVED {
					resolved++
				}
			}
			return evs, err
		})
		c.m.resolved.Add(float64(resolved))
		if err != nil {
			if ctx.Err() == nil {
				c.m.sweepErr.Inc()
				c.cfg.Logger.Error("clear-time sweep failed", "err", err)
			}
			return
		}
		if resolved < store.QuietChunk {
			return
		}
	}
}

// RunPeers runs every outlier rule once over the fleet's latest
// observations and stores the faults it finds.
func (c *Classifier) RunPeers(ctx context.Context) {
	for _, o := range c.outliers {
		r := o.peer
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		err := c.runPeer(ctx, o)
		c.m.peerSecs.Observe(time.Since(start).Seconds())
		if err != nil {
			c.m.peerRuns.WithLabelValues(r.Name, "error").Inc()
			if ctx.Err() == nil {
				c.cfg.Logger.Error("outlier rule failed", "rule", r.Name, "err", err)
			}
			continue
		}
		c.m.peerRuns.WithLabelValues(r.Name, "ok").Inc()
	}
}

// outlier is an outlier rule as the rule files give it (for its summary
// template) and as collector/peers evaluates it.
type outlier struct {
	rule detect.OutlierRule
	peer peers.Rule
}

func (c *Classifier) runPeer(ctx context.Context, o outlier) error {
	r := o.peer
	obs, err := c.cfg.Store.FleetObservations(ctx, r.Source)
	if err != nil {
		return err
	}
	in := make([]peers.Input, len(obs))
	for i, o := range obs {
		in[i] = peers.Input{Node: o.Node, Labels: o.Labels, Observation: o.Observation}
	}
	findings, _ := peers.Evaluate(r, in, c.cfg.Now())
	if len(findings) == 0 {
		return nil
	}
	byNode := map[string][]store.DerivedFault{}
	var nodes []string
	for _, f := range findings {
		if sum := o.rule.RenderSummary(outlierValues(f.Fault)); sum != "" {
			f.Fault.Summary = sum // the rule file's wording wins over peers' default
		}
		if _, ok := byNode[f.Node]; !ok {
			nodes = append(nodes, f.Node)
		}
		byNode[f.Node] = append(byNode[f.Node], store.DerivedFault{Fault: f.Fault, Source: r.Source})
		c.m.raised.WithLabelValues(r.Name, modeName(f.Fault.GetMode())).Inc()
	}
	slices.Sort(nodes)
	batches := make([]store.Batch, len(nodes))
	for i, n := range nodes {
		batches[i] = store.Batch{Node: n, Derived: byNode[n], Received: c.cfg.Now()}
	}
	return c.cfg.Write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		res, err := c.cfg.Store.Apply(ctx, batches)
		if err != nil {
			return nil, err
		}
		var evs []*hwhealv1.Event
		for _, r := range res {
			evs = append(evs, r.Events...)
		}
		return evs, nil
	})
}

// peerRule converts an outlier rule of the rule files into what
// collector/peers evaluates.
func peerRule(o detect.OutlierRule) peers.Rule {
	return peers.Rule{
		Name:       o.Name,
		Class:      o.Class,
		Severity:   o.Severity,
		Mode:       o.Mode,
		ClearAfter: o.ClearAfter,
		Source:     o.Source,
		Sample:     o.Sample,
		Peers:      o.Peers,
		MinPeers:   o.MinPeers,
		Threshold:  o.Threshold,
		MinValue:   o.MinValue,
		Direction:  string(o.Direction),
	}
}

// outlierValues reads back what peers put in a finding's evidence, for the
// rule's summary template.
func outlierValues(f *hwhealv1.Fault) detect.OutlierValues {
	v := detect.OutlierValues{Part: f.GetPart().GetName(), Serial: f.GetPart().GetSerial(), Model: f.GetPart().GetModel()}
	for _, s := range f.GetEvidence().GetSamples() {
		switch s.GetName() {
		case peers.EvidenceValue:
			v.Value = s.GetValue()
		case peers.EvidenceMedian:
			v.Median = s.GetValue()
		case peers.EvidenceMAD:
			v.MAD = s.GetValue()
		case peers.EvidenceRobustZ:
			v.Score = s.GetValue()
		case peers.EvidencePeers:
			v.Peers = int(s.GetValue())
		}
	}
	return v
}

// Weakening is an override that makes a shipped rule less likely to lead
// to attention or action.
type Weakening struct {
	Rule, File string
	Line       int
	Change     string // e.g. "mode enforce -> shadow"
}

// Weakened lists the rules of rs that an override file made weaker than
// shipped: put in shadow mode, disabled, made less severe, or made to clear
// sooner. The collector logs each at start, so that a rule turned off on a
// fleet is never a silent change.
func Weakened(rs *detect.RuleSet) []Weakening {
	shipped, err := detect.Builtin()
	if err != nil {
		return nil
	}
	var out []Weakening
	for _, r := range rs.Rules() {
		b, ok := shipped.Lookup(r.Name)
		if !ok || b.Name != r.Name {
			continue
		}
		at := detect.Location{File: r.File, Line: r.Line}
		if n := len(r.Patches); n > 0 {
			at = r.Patches[n-1] // the override that made it so
		}
		add := func(format string, args ...any) {
			out = append(out, Weakening{Rule: r.Name, File: at.File, Line: at.Line, Change: fmt.Sprintf(format, args...)})
		}
		if b.Enabled && !r.Enabled {
			add("disabled")
		}
		if b.Mode != hwhealv1.RuleMode_RULE_MODE_SHADOW && r.Mode == hwhealv1.RuleMode_RULE_MODE_SHADOW {
			add("mode enforce -> shadow")
		}
		if r.Severity < b.Severity {
			add("severity %s -> %s", b.Severity, r.Severity)
		}
		if r.ClearAfter > 0 && (b.ClearAfter == 0 || r.ClearAfter < b.ClearAfter) {
			add("clear_after %s -> %s", clearName(b.ClearAfter), r.ClearAfter)
		}
	}
	return out
}

func clearName(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.String()
}
