// Package planner is the collector's remediation planner: it turns open
// faults into actions under the policy, moves actions through approval,
// holds them to the limits, windows, freezes and cooldowns, dispatches them
// to the agents, and watches them until they end. It also serves the
// operators' requests (request, approve, deny, cancel, pause, resume).
//
// The planner keeps no state that matters in memory: every pass reads the
// store, so a collector restarted mid-remediation resumes where the store
// says it stopped. Every write goes through the collector's one writer and
// changes an action by compare-and-set on its state, so a pass racing an
// operator or an agent's update never moves an action twice.
package planner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/policy"
)

// WriteFunc runs a store write in the collector's one write order and
// publishes the events it returns (ingest.Server.Write).
type WriteFunc func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error

// Config configures a Planner. Store, Write and Send are required.
type Config struct {
	Store store.Store
	Write WriteFunc
	// Policy in force (default policy.Default(): dry-run, no rules).
	Policy *policy.Policy
	// Send hands an order to the node's agent stream and reports whether a
	// stream that takes orders had it queued. A false costs time only: an
	// order stays dispatched in the store, is sent again with every hello
	// of the node (Pending) and every ResendAfter until the agent answers.
	Send func(node string, o *hwhealv1.ActionOrder) bool
	// Interval paces the passes (default 5 s); Wake runs one sooner.
	Interval time.Duration
	// ResendAfter is how long a dispatched order may go unanswered before
	// it is sent again (default 30 s). Agents run an id at most once.
	ResendAfter time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// NewID makes action ids (default: 16 random hex digits). Random, not
	// a counter: an agent remembers the ids it ran, and a collector whose
	// store was rebuilt must not reuse one.
	NewID func() string
}

// Planner plans, dispatches and watches actions.
type Planner struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	wake    chan struct{}

	// mu serialises passes (Run's and tests' Pass) and the remediation
	// switch, so that a pause acknowledged to an operator is seen by every
	// later dispatch; it guards lastSent and escalated.
	mu       sync.Mutex
	lastSent map[string]time.Time // action id -> when its order was last handed to Send
	// escalated holds the faults this process already escalated.
	escalated map[uint64]bool
	// approveMu serialises approvals: whether one completes a two-person
	// rule depends on the approvals before it.
	approveMu sync.Mutex
}

// New checks cfg and returns a Planner.
func New(cfg Config) (*Planner, error) {
	if cfg.Store == nil || cfg.Write == nil || cfg.Send == nil {
		return nil, errors.New("planner: Store, Write and Send are required")
	}
	if cfg.Policy == nil {
		cfg.Policy = policy.Default()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NewID == nil {
		cfg.NewID = newID
	}
	return &Planner{
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   newMetrics(cfg.Registerer),
		wake:      make(chan struct{}, 1),
		lastSent:  make(map[string]time.Time),
		escalated: make(map[uint64]bool),
	}, nil
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("planner: crypto/rand failed: %v", err)) // the runtime says it never does
	}
	return hex.EncodeToString(b[:])
}

// Policy is the policy in force.
func (p *Planner) Policy() *policy.Policy { return p.cfg.Policy }

// Wake asks for a pass soon (a fault opened, an action changed, an agent
// connected). Calls coalesce.
func (p *Planner) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run runs passes until ctx is done. A failed pass is logged and the next
// one tries again: the store is the state.
func (p *Planner) Run(ctx context.Context) error {
	pol := p.cfg.Policy
	p.log.Info("remediation planner started", "policy", pol.File, "policy_sha256", pol.SHA256,
		"dry_run", pol.DryRun, "rules", len(pol.Rules))
	p.auditPolicy(ctx)
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	// A woken pass waits for a fifth of the interval since the last one:
	// a busy fleet wakes the planner all the time, and a pass over ten
	// thousand nodes costs tens of milliseconds.
	gap := p.cfg.Interval / 5
	for {
		last := time.Now()
		if err := p.Pass(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("planner pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.wake:
			if wait := gap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
	}
}

// Pass runs one planning pass: confirm reboots, time out and expire what
// is due, trip the storm breaker, propose actions for open faults and
// dispatch what may go.
func (p *Planner) Pass(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	defer func() { p.metrics.passSeconds.Observe(time.Since(start).Seconds()) }()

	snap, err := p.load(ctx)
	if err != nil {
		return err
	}
	steps := []func(context.Context, *snapshot) error{
		p.watchInFlight,
		p.expireApprovals,
		p.breaker,
		p.propose,
		p.dispatch,
	}
	for _, step := range steps {
		if err := step(ctx, snap); err != nil {
			return err
		}
	}
	p.metrics.observe(snap, p.cfg.Policy)
	return nil
}

// write runs fn through the collector's writer.
func (p *Planner) write(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error {
	return p.cfg.Write(ctx, fn)
}

// change applies one action change through the writer.
func (p *Planner) change(ctx context.Context, ch store.ActionChange) (*hwhealv1.Action, error) {
	var out *hwhealv1.Action
	err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		a, evs, err := p.cfg.Store.ChangeAction(ctx, ch)
		out = a
		return evs, err
	})
	return out, err
}

// auditPolicy records the policy in force when the planner starts, so the
// audit log says under which rules every later decision was taken. A
// failure is logged: the planner runs on, its decisions are audited.
func (p *Planner) auditPolicy(ctx context.Context) {
	pol := p.cfg.Policy
	file := pol.File
	if file == "" {
		file = "(built-in default)"
	}
	detail, _ := json.Marshal(map[string]any{"file": file, "sha256": pol.SHA256, "dry_run": pol.DryRun, "rules": len(pol.Rules)})
	err := p.write(ctx, func(ctx context.Context) ([]*hwhealv1.Event, error) {
		_, err := p.cfg.Store.AppendAudit(ctx, store.AuditEntry{Actor: actorCollector, Kind: "policy.loaded", Detail: string(detail), Time: p.cfg.Now()})
		return nil, err
	})
	if err != nil && ctx.Err() == nil {
		p.log.Warn("audit of the policy in force failed", "err", err)
	}
}
