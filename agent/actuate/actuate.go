// Package actuate owns the agent's side of remediation: it takes the
// orders the collector sends, decides with its own local guard whether it
// may run them, runs them one at a time through the executors of
// remediation/executor, and reports every step and the outcome as
// ActionUpdates, which the agent spools like faults, clipped to what the
// collector takes (bounds.go).
//
// The guard does not trust the collector. In this order it refuses: an
// action type not in the agent's allow-list; an order planned against
// another boot (the node rebooted since); a reboot when max reboots
// already started within the window (a collector gone wrong cannot put
// the node into a reboot loop). An id is run at most once: before an
// action runs, its id is appended to a ledger in the state directory and
// fsynced, and an id the ledger holds is never run again, whether it
// comes back on a reconnect or after an agent restart. An action an agent
// restart interrupted is reported once at the next start, as failed
// (never run again), or for a reboot, as succeeded when the boot id
// changed.
package actuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

// Defaults of the reboot-loop guard.
const (
	DefaultMaxReboots   = 2
	DefaultRebootWindow = 24 * time.Hour
	// MaxRebootWindow bounds the window: the ledger keeps finished actions
	// for 90 days.
	MaxRebootWindow = keepFinished
)

// maxRebootWait bounds the wait for the node to go down once a reboot
// was asked for, whatever the order's timeout: a node still up by then
// did not reboot, and the orders after it are waiting.
const maxRebootWait = 30 * time.Minute

// maxQueued bounds the orders waiting to run. Past it an order is dropped
// (and logged): the collector sends it again after the next reconnect.
const maxQueued = 256

// Outcomes as counted and written in the ledger.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeRefused   = "refused"
)

// Config configures an Actuator.
type Config struct {
	// StateDir holds the ledger (actions.ledger, actions.lock).
	StateDir string
	// Node is this node's name, for the commands' environment.
	Node string
	// BootID is this boot's id (/proc/sys/kernel/random/boot_id).
	BootID string
	// Allow lists the action types the agent runs; every other is refused.
	Allow []hwhealv1.ActionType
	// DryRun: report what would run, run nothing, for every order.
	DryRun bool
	// MaxReboots within RebootWindow (2 in 24 h): the next one is refused.
	MaxReboots   int
	RebootWindow time.Duration
	// Executors run each allowed type. An allowed type without one is an
	// error unless DryRun.
	Executors map[hwhealv1.ActionType]executor.Executor
	// Report spools an update. Required.
	Report func(*hwhealv1.ActionUpdate) error
	// Sync makes every update reported so far durable (the spool's fsync).
	// It is called before a reboot is asked for and before the ledger
	// records an end. Nil: nothing to sync.
	Sync   func() error
	Logger *slog.Logger
	// Now is the clock (time.Now); tests move it.
	Now func() time.Time
}

// Actuator runs the orders it is given, one at a time.
type Actuator struct {
	cfg    Config
	log    *slog.Logger
	ledger *ledger // used by New, then only by Run's goroutine, then Close

	mu     sync.Mutex
	queue  []*hwhealv1.ActionOrder
	queued map[string]bool // in the queue or running
	wake   chan struct{}
	counts map[countKey]uint64
}

type countKey struct{ typ, outcome string }

// New checks cfg, opens the ledger in cfg.StateDir and reports, once, the
// actions an earlier process started and did not finish.
func New(cfg Config) (*Actuator, error) {
	switch {
	case cfg.StateDir == "":
		return nil, errors.New("actuate: StateDir is empty")
	case cfg.Report == nil:
		return nil, errors.New("actuate: Report is nil")
	case cfg.MaxReboots < 0:
		return nil, fmt.Errorf("actuate: MaxReboots %d is negative", cfg.MaxReboots)
	case cfg.RebootWindow < 0 || cfg.RebootWindow > MaxRebootWindow:
		return nil, fmt.Errorf("actuate: RebootWindow %s is not within 0 and %s", cfg.RebootWindow, MaxRebootWindow)
	}
	if cfg.MaxReboots == 0 {
		cfg.MaxReboots = DefaultMaxReboots
	}
	if cfg.RebootWindow == 0 {
		cfg.RebootWindow = DefaultRebootWindow
	}
	for _, t := range cfg.Allow {
		if action.TypeName(t) == "" {
			return nil, fmt.Errorf("actuate: cannot allow %s", t)
		}
		if cfg.Executors[t] == nil && !cfg.DryRun {
			return nil, fmt.Errorf("actuate: %s is allowed but has no executor", action.TypeName(t))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sync == nil {
		cfg.Sync = func() error { return nil }
	}
	a := &Actuator{
		cfg: cfg, log: cfg.Logger,
		queued: map[string]bool{}, wake: make(chan struct{}, 1), counts: map[countKey]uint64{},
	}
	l, err := openLedger(cfg.StateDir, cfg.RebootWindow, cfg.Now, cfg.Logger)
	if err != nil {
		return nil, err
	}
	a.ledger = l
	if err := a.recover(); err != nil {
		l.close()
		return nil, err
	}
	return a, nil
}

// Close releases the ledger; call it after Run returned.
func (a *Actuator) Close() error { return a.ledger.close() }

// Guard is what the agent announces in its hello.
func (a *Actuator) Guard() *hwhealv1.ActionGuard {
	return &hwhealv1.ActionGuard{
		Allowed:      slices.Clone(a.cfg.Allow),
		DryRun:       a.cfg.DryRun,
		MaxReboots:   uint32(a.cfg.MaxReboots),
		RebootWindow: durationpb.New(a.cfg.RebootWindow),
	}
}

// Count is how many actions of a type ended with an outcome.
type Count struct {
	Type, Outcome string
	N             uint64
}

// Counts lists the final outcomes reported since New, by type.
func (a *Actuator) Counts() []Count {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Count, 0, len(a.counts))
	for k, n := range a.counts {
		out = append(out, Count{Type: k.typ, Outcome: k.outcome, N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Outcome < out[j].Outcome
	})
	return out
}

// Deliver queues an order and returns at once: it is called from the
// transport's receive goroutine, which it must never block. An order
// whose id is already queued or running is dropped; one the ledger holds
// is dropped by Run.
func (a *Actuator) Deliver(o *hwhealv1.ActionOrder) {
	id := o.GetId()
	if id == "" {
		a.log.Warn("order without id dropped", "type", action.TypeLabel(o.GetType()))
		return
	}
	if len(id) > action.MaxActionID || !utf8.ValidString(id) {
		// Not one of the collector's ids (16 hex digits): the collector
		// would refuse every update about it.
		a.log.Warn("order with an id the collector would refuse dropped", "type", action.TypeLabel(o.GetType()),
			"action_id", clipEnd(id, action.MaxActionID), "bytes", len(id))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.queued[id]:
		a.log.Debug("order already queued", "action_id", id)
		return
	case len(a.queue) >= maxQueued:
		a.log.Warn("order queue full, dropping an order (the collector sends it again after a reconnect)",
			"action_id", id, "queued", len(a.queue))
		return
	}
	a.queued[id] = true
	a.queue = append(a.queue, o)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Actuator) next() *hwhealv1.ActionOrder {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return nil
	}
	o := a.queue[0]
	a.queue[0] = nil
	a.queue = a.queue[1:]
	return o
}

func (a *Actuator) done(id string) {
	a.mu.Lock()
	delete(a.queued, id)
	a.mu.Unlock()
}

// Run runs the orders delivered, one at a time, until ctx is done; then
// the running action's commands are killed, its failure reported, and Run
// returns nil. An asked-for reboot is left for the next start to confirm.
func (a *Actuator) Run(ctx context.Context) error {
	for {
		for o := a.next(); o != nil; o = a.next() {
			if ctx.Err() != nil {
				return nil
			}
			a.handle(ctx, o)
			a.done(o.GetId())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		}
	}
}

// handle runs one order through the ledger, the guard and its executor.
func (a *Actuator) handle(ctx context.Context, o *hwhealv1.ActionOrder) {
	id, t := o.GetId(), o.GetType()
	log := a.log.With("action_id", id, "action", action.TypeLabel(t))
	if e := a.ledger.get(id); e != nil {
		// Its result already went through the spool.
		log.Debug("order already handled, not run again", "outcome", e.outcome)
		return
	}
	dry := a.cfg.DryRun || o.GetDryRun()
	if why := a.refusal(o); why != "" {
		log.Warn("order refused", "reason", why, "requested_by", o.GetRequestedBy())
		a.report(log, a.update(id, hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED, dry, why))
		// As in finish: once the ledger says finished, a resend reports
		// nothing, so the refusal must be on disk first.
		if err := a.cfg.Sync(); err != nil {
			log.Error("could not make the refusal durable", "err", err)
		}
		if err := a.ledger.finish(id, t, OutcomeRefused); err != nil {
			log.Error("could not record the refusal in the ledger", "err", err)
		}
		a.count(t, OutcomeRefused)
		return
	}
	if err := a.ledger.start(id, t, a.cfg.BootID, dry); err != nil {
		// Without the record nothing keeps the id from running twice:
		// nothing runs. A resend may try again.
		why := fmt.Sprintf("local guard: cannot record the action in the ledger: %v", err)
		log.Error("order refused", "reason", why)
		a.report(log, a.update(id, hwhealv1.ActionOutcome_ACTION_OUTCOME_REFUSED, dry, why))
		a.count(t, OutcomeRefused)
		return
	}
	log.Info("action started", "reason", o.GetReason(), "requested_by", o.GetRequestedBy(), "dry_run", dry,
		"fault_classes", o.GetFaultClasses())
	a.report(log, a.update(id, hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING, dry, ""))

	reboot := t == hwhealv1.ActionType_ACTION_TYPE_REBOOT && !dry
	if reboot {
		// The node may go down as soon as it is asked: what the collector
		// is told before must be on disk.
		if err := a.cfg.Sync(); err != nil {
			a.finish(log, o, dry, OutcomeFailed, fmt.Sprintf("reboot not asked for: the RUNNING update could not be made durable: %v", err))
			return
		}
	}
	timeout := o.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = action.DefaultTimeout(t)
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ex := a.cfg.Executors[t]
	if ex == nil { // dry run only (New checks)
		a.finish(log, o, dry, OutcomeSucceeded, fmt.Sprintf("dry run: no %s executor is configured; nothing would run", action.TypeLabel(t)))
		return
	}
	rctx := octx
	if reboot {
		// The agent being stopped while it asks is most likely the reboot
		// itself: the request is not cut short by it.
		deadline, _ := octx.Deadline()
		var rcancel context.CancelFunc
		rctx, rcancel = context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer rcancel()
	}
	err := ex.Run(rctx, o, executor.Env{Node: a.cfg.Node, DryRun: dry}, func(st *hwhealv1.ActionStep) {
		log.Info("action step finished", "step", st.GetIndex(), "name", st.GetName(), "attempt", st.GetAttempt(),
			"exit_code", st.GetExitCode(), "timed_out", st.GetTimedOut(), "duration", st.GetDuration().AsDuration(),
			"dry_run", st.GetDryRun(), "error", st.GetError(), "output", st.GetOutput())
		u := a.update(id, hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING, dry, "")
		u.Steps = []*hwhealv1.ActionStep{st}
		a.report(log, u)
	})
	switch {
	case err != nil && ctx.Err() != nil && !reboot:
		a.finish(log, o, dry, OutcomeFailed, fmt.Sprintf("interrupted: the agent stopped; not run again: %v", err))
	case err != nil && errors.Is(octx.Err(), context.DeadlineExceeded):
		a.finish(log, o, dry, OutcomeFailed, fmt.Sprintf("timed out after %s: %v", timeout, err))
	case err != nil && reboot:
		a.finish(log, o, dry, OutcomeFailed, fmt.Sprintf("reboot request failed: %v", err))
	case err != nil:
		a.finish(log, o, dry, OutcomeFailed, err.Error())
	case reboot:
		a.awaitReboot(ctx, octx, log, o)
	case dry:
		a.finish(log, o, dry, OutcomeSucceeded, "dry run: nothing was run")
	default:
		a.finish(log, o, dry, OutcomeSucceeded, "")
	}
}

// awaitReboot waits, after a reboot was asked for, for the agent to be
// stopped by it. A reboot is confirmed at the next start, by the boot id;
// a node still up when the order's time is out did not reboot.
func (a *Actuator) awaitReboot(ctx, octx context.Context, log *slog.Logger, o *hwhealv1.ActionOrder) {
	log.Info("reboot asked for, waiting to go down")
	asked := time.Now()
	t := time.NewTimer(maxRebootWait)
	defer t.Stop()
	select {
	case <-octx.Done():
	case <-t.C:
	}
	if ctx.Err() != nil {
		log.Info("agent stopping with a reboot under way; the next start confirms it")
		return
	}
	a.finish(log, o, false, OutcomeFailed, fmt.Sprintf("reboot asked for, but the node was still up %s later (boot id %s)",
		time.Since(asked).Round(time.Second), a.cfg.BootID))
}

// refusal is why the guard refuses o, or "".
func (a *Actuator) refusal(o *hwhealv1.ActionOrder) string {
	t := o.GetType()
	if !slices.Contains(a.cfg.Allow, t) {
		return fmt.Sprintf("local guard: %s is not in this agent's allow-list", action.TypeLabel(t))
	}
	if b := o.GetBootId(); b != "" && b != a.cfg.BootID {
		if a.cfg.BootID == "" {
			return fmt.Sprintf("the action was planned against boot %s and this agent cannot read its boot id", b)
		}
		return fmt.Sprintf("the node rebooted since the action was planned (boot %s -> %s)", b, a.cfg.BootID)
	}
	if t == hwhealv1.ActionType_ACTION_TYPE_REBOOT {
		if n := a.ledger.reboots(a.cfg.Now().Add(-a.cfg.RebootWindow)); n >= a.cfg.MaxReboots {
			return fmt.Sprintf("local guard: %d reboots started in the last %s (max %d): refusing a reboot loop",
				n, a.cfg.RebootWindow, a.cfg.MaxReboots)
		}
	}
	return ""
}

// finish reports o's final update, makes it durable, then records the end
// in the ledger. In that order: a crash in between reports the end twice
// (the collector keeps the first), never not at all.
func (a *Actuator) finish(log *slog.Logger, o *hwhealv1.ActionOrder, dry bool, outcome, msg string) {
	var oc hwhealv1.ActionOutcome
	switch outcome {
	case OutcomeSucceeded:
		oc = hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED
		log.Info("action succeeded", "message", msg, "dry_run", dry)
	default:
		oc = hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED
		log.Warn("action failed", "message", msg, "dry_run", dry)
	}
	a.report(log, a.update(o.GetId(), oc, dry, msg))
	if err := a.cfg.Sync(); err != nil {
		log.Error("could not make the final update durable", "err", err)
	}
	if err := a.ledger.finish(o.GetId(), o.GetType(), outcome); err != nil {
		log.Error("could not record the end in the ledger; the next start reports it again", "err", err)
	}
	a.count(o.GetType(), outcome)
}

func (a *Actuator) update(id string, oc hwhealv1.ActionOutcome, dry bool, msg string) *hwhealv1.ActionUpdate {
	return &hwhealv1.ActionUpdate{
		ActionId: id, Outcome: oc, Time: timestamppb.New(a.cfg.Now()), Message: msg, BootId: a.cfg.BootID, DryRun: dry,
	}
}

// report spools u, clipped (and split) to what the collector takes: an
// update it refuses is lost, after holding up every report behind it.
func (a *Actuator) report(log *slog.Logger, u *hwhealv1.ActionUpdate) {
	if id := u.GetActionId(); len(id) > action.MaxActionID || !utf8.ValidString(id) {
		// Deliver drops such orders; a ledger an older agent wrote may
		// still hold one.
		log.Error("action update not spooled: the collector refuses its id", "outcome", u.GetOutcome().String(), "bytes", len(id))
		return
	}
	for _, b := range bound(u) {
		if err := a.cfg.Report(b); err != nil {
			log.Error("could not spool an action update", "outcome", b.GetOutcome().String(), "err", err)
		}
	}
}

func (a *Actuator) count(t hwhealv1.ActionType, outcome string) {
	a.mu.Lock()
	a.counts[countKey{action.TypeLabel(t), outcome}]++
	a.mu.Unlock()
}

// recover reports, once, each action started by an earlier process and
// not finished, then records it finished: it is never run again.
func (a *Actuator) recover() error {
	ids := a.ledger.unfinished()
	if len(ids) == 0 {
		return nil
	}
	type result struct {
		id      string
		typ     hwhealv1.ActionType
		outcome string
	}
	var results []result
	for _, id := range ids {
		e := a.ledger.get(id)
		oc, outcome, msg := hwhealv1.ActionOutcome_ACTION_OUTCOME_FAILED, OutcomeFailed, "interrupted by an agent restart; not run again"
		if e.typ == hwhealv1.ActionType_ACTION_TYPE_REBOOT && !e.dryRun {
			switch {
			case e.bootID == "" || a.cfg.BootID == "":
				msg = "the reboot cannot be confirmed: the boot id is unknown"
			case e.bootID != a.cfg.BootID:
				oc, outcome, msg = hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED, OutcomeSucceeded,
					fmt.Sprintf("rebooted: boot id %s -> %s", e.bootID, a.cfg.BootID)
			default:
				msg = "the agent restarted before the node rebooted"
			}
		}
		a.log.Info("action left unfinished by an earlier start", "action_id", id, "action", action.TypeLabel(e.typ),
			"started", e.started, "outcome", outcome, "message", msg)
		a.report(a.log, a.update(id, oc, e.dryRun, msg))
		results = append(results, result{id, e.typ, outcome})
	}
	if err := a.cfg.Sync(); err != nil {
		// Not recorded as finished: the next start reports them again
		// rather than never.
		return fmt.Errorf("sync the recovered actions' updates: %w", err)
	}
	for _, r := range results {
		if err := a.ledger.finish(r.id, r.typ, r.outcome); err != nil {
			return err
		}
		a.count(r.typ, r.outcome)
	}
	return nil
}
