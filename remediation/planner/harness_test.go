package planner

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/collector/store"
	"github.com/hwheal/hwheal/collector/store/sqlite"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/policy"
)

// t0 is the tests' start of time: a Tuesday, 10:00 UTC.
var t0 = time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)

// world is a planner over a real SQLite store, with a clock the test moves
// and agents the test plays: hellos, fault reports and action updates go
// into the store the way ingest puts them there.
type world struct {
	t       testing.TB
	ctx     context.Context
	st      *sqlite.Store
	p       *Planner
	pol     *policy.Policy
	mu      sync.Mutex
	now     time.Time
	seq     map[string]uint64
	sent    map[string][]*hwhealv1.ActionOrder // by node, every order handed to Send
	offline map[string]bool                    // nodes whose stream takes no orders
	events  []*hwhealv1.Event
}

func newWorld(t testing.TB, policyYAML string) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{t: t, ctx: ctx, now: t0, seq: map[string]uint64{}, sent: map[string][]*hwhealv1.ActionOrder{}, offline: map[string]bool{}}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hwheal.db"), sqlite.Options{Now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st = st
	pol, err := policy.Parse([]byte(policyYAML), "test-policy.yaml")
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	w.pol = pol
	p, err := New(Config{
		Store: st,
		Write: func(ctx context.Context, fn func(ctx context.Context) ([]*hwhealv1.Event, error)) error {
			evs, err := fn(ctx)
			w.mu.Lock()
			w.events = append(w.events, evs...)
			w.mu.Unlock()
			return err
		},
		Policy: pol,
		Send: func(node string, o *hwhealv1.ActionOrder) bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.offline[node] {
				return false
			}
			w.sent[node] = append(w.sent[node], o)
			return true
		},
		Now: w.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.p = p
	return w
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

// allGuard is the guard of an agent that runs every action.
var allGuard = &hwhealv1.ActionGuard{Allowed: []hwhealv1.ActionType{action.Reboot, action.Offline, action.Migrate, action.Online}}

// hello connects node's agent in the given boot.
func (w *world) hello(node, boot string, labels map[string]string) {
	w.t.Helper()
	if _, err := w.st.Hello(w.ctx, store.Hello{Node: node, BootID: boot, StreamID: "s-" + node, Labels: labels, Guard: allGuard, Time: w.clock()}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) apply(node string, items ...*hwhealv1.Report) {
	w.t.Helper()
	for _, r := range items {
		w.seq[node]++
		r.Seq = w.seq[node]
	}
	res, err := w.st.Apply(w.ctx, []store.Batch{{Node: node, StreamID: "s-" + node, Reports: items, Received: w.clock()}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.events = append(w.events, res[0].Events...)
}

// raise reports an enforced fault of class on node now.
func (w *world) raise(node, class string, sev hwhealv1.Severity) {
	w.t.Helper()
	w.apply(node, &hwhealv1.Report{Item: &hwhealv1.Report_Fault{Fault: &hwhealv1.Fault{
		FaultClass: class, Severity: sev, Rule: "test-" + class,
		Part:    &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_NODE, Name: node},
		Time:    timestamppb.New(w.clock()),
		Summary: class + " on " + node,
		Mode:    hwhealv1.RuleMode_RULE_MODE_ENFORCE,
	}}})
}

// update reports an agent's update of an action.
func (w *world) update(node, id string, o hwhealv1.ActionOutcome, msg string, steps ...*hwhealv1.ActionStep) {
	w.t.Helper()
	w.apply(node, &hwhealv1.Report{Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: &hwhealv1.ActionUpdate{
		ActionId: id, Outcome: o, Time: timestamppb.New(w.clock()), Message: msg, Steps: steps,
	}}})
}

func (w *world) pass() {
	w.t.Helper()
	if err := w.p.Pass(w.ctx); err != nil {
		w.t.Fatalf("pass: %v", err)
	}
}

func (w *world) actions(node string) []*hwhealv1.Action {
	w.t.Helper()
	as, _, err := w.st.ListActions(w.ctx, store.ActionFilter{Node: node}, store.Page{Size: 1000})
	if err != nil {
		w.t.Fatal(err)
	}
	return as
}

// only returns node's one action, failing unless there is exactly one.
func (w *world) only(node string) *hwhealv1.Action {
	w.t.Helper()
	as := w.actions(node)
	if len(as) != 1 {
		w.t.Fatalf("%s has %d actions, want 1: %v", node, len(as), as)
	}
	return as[0]
}

func (w *world) action(id string) *hwhealv1.Action {
	w.t.Helper()
	a, err := w.st.GetAction(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

func (w *world) node(name string) *hwhealv1.Node {
	w.t.Helper()
	n, err := w.st.GetNode(w.ctx, name)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) wantState(id string, want hwhealv1.ActionState) *hwhealv1.Action {
	w.t.Helper()
	a := w.action(id)
	if a.GetState() != want {
		w.t.Fatalf("action %s (%s on %s) is %s, want %s (waiting %q, result %q)", id, action.TypeName(a.GetType()), a.GetNode(),
			a.GetState(), want, a.GetWaiting(), a.GetResult())
	}
	return a
}

func (w *world) ordersTo(node string) []*hwhealv1.ActionOrder {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*hwhealv1.ActionOrder(nil), w.sent[node]...)
}

// restart replaces the planner by one with another policy on the same
// store, as a collector restarted with a new policy file.
func (w *world) restart(policyYAML string) {
	w.t.Helper()
	pol, err := policy.Parse([]byte(policyYAML), "test-policy.yaml")
	if err != nil {
		w.t.Fatalf("policy: %v", err)
	}
	cfg := w.p.cfg
	cfg.Policy = pol
	p, err := New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.p, w.pol = p, pol
}

// disconnect records that node's agent went away.
func (w *world) disconnect(node string) {
	w.t.Helper()
	if _, err := w.st.Disconnected(w.ctx, node, w.clock()); err != nil {
		w.t.Fatal(err)
	}
}
