package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hwheal/hwheal/agent/actuate"
	"github.com/hwheal/hwheal/agent/spool"
	"github.com/hwheal/hwheal/agent/transport"
	"github.com/hwheal/hwheal/collector"
	"github.com/hwheal/hwheal/collector/auth"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/executor"
)

// The storm's figures: a fleet of stormFleet nodes in stormRacks racks,
// stormFaulty of them raise the same fault within stormSpread.
const (
	stormFleet   = 100
	stormRacks   = 10
	stormFaulty  = 40
	stormSpread  = 2 * time.Second
	stormLimit   = 5 // limits.max_out_of_service
	stormPerRack = 1 // limits.domains[rack].max_out_of_service
	stormTrip    = 10
	// stormHold is how long the test gives the planner (a pass every
	// 100 ms) to do what it must not.
	stormHold = 2 * time.Second
)

// stormPolicy offlines a node with a memory.ce_storm fault without a
// person, at most five nodes out at once and one a rack, and pauses every
// automatic action when the class opens on ten nodes within a minute.
var stormPolicy = fmt.Sprintf(`
limits:
  max_out_of_service: %d
  domains:
    - label: rack
      max_out_of_service: %d
breaker:
  nodes: %d
  percent: %d
  window: 1m
manual:
  online: auto
rules:
  - name: memory-ce-storm
    classes: [memory.ce_storm]
    ladder:
      - action: offline
        approval: auto
        timeout: 1m
`, stormLimit, stormPerRack, stormTrip, stormTrip*100/stormFleet)

// TestStorm: 100 agents - each the agent's real spool, transport client and
// actuator, in this process, over real TCP to a real collector - and 40 of
// them raise the same fault (memory.ce_storm, an enforced shipped rule)
// within two seconds. Watching the collector's events from its first one:
// the out-of-service count never passes the policy's limit (fleet-wide or
// per rack); the storm breaker trips (REMEDIATION_PAUSED by "breaker");
// while paused no automatic action is dispatched, even once operators
// brought the nodes offlined before the trip back and the limit has room;
// after an operator resumes, the same faults do not trip the breaker
// again, the faulty nodes still in service wait on the limit ("limit:
// ..."), and as operators bring offlined nodes back online the next ones
// go, still within the limit.
func TestStorm(t *testing.T) {
	trueCmd, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) for the runbooks: ", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The collector, in this process.
	var colLog stormLogBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector log (tail):\n%s", tail(colLog.String(), 150))
		}
	})
	colState := t.TempDir()
	col, err := collector.New(ctx, collector.Config{
		Listen:          "127.0.0.1:0",
		StateDir:        colState,
		Insecure:        true,
		RulesDir:        filepath.Join(t.TempDir(), "rules.d"), // none: the shipped rules only
		PolicyFile:      writeFile(t, t.TempDir(), "policy.yaml", stormPolicy),
		PlannerInterval: 100 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(&colLog, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	colCtx, stopCol := context.WithCancel(ctx)
	colDone := make(chan error, 1)
	go func() { colDone <- col.Run(colCtx) }()
	stopCollector := func() {
		stopCol()
		select {
		case err := <-colDone:
			if err != nil {
				t.Errorf("collector Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("collector did not stop within 30 s")
		}
	}
	defer func() {
		if colCtx.Err() == nil {
			stopCollector()
		}
	}()
	select {
	case <-col.Ready():
	case err := <-colDone:
		t.Fatalf("collector stopped before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("collector not listening within 10 s")
	}
	addr := col.Addr().String()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(&fileToken{path: filepath.Join(colState, auth.AdminTokenFile)}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fleet := hwhealv1.NewFleetServiceClient(conn)

	names := make([]string, stormFleet)
	rackOf := make(map[string]string, stormFleet)
	for i := range names {
		names[i] = fmt.Sprintf("storm-%03d", i)
		rackOf[names[i]] = fmt.Sprintf("r%d", i*stormRacks/stormFleet)
	}

	// Watch every event from the first, and poll the planner's own count.
	w := newStormWatch(rackOf)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	watchers.Go(func() { w.follow(watchCtx, fleet) })
	watchers.Go(func() { w.poll(watchCtx, fleet, 50*time.Millisecond) })
	// Every limit passed is reported, also when the test stops early.
	defer func() {
		stopWatch()
		watchers.Wait()
		for _, v := range w.summary().violations {
			t.Error(v)
		}
	}()

	// The fleet.
	agents := make([]*stormAgent, 0, stormFleet)
	defer func() { stopStormAgents(t, agents) }()
	fleetStart := time.Now()
	for _, name := range names {
		agents = append(agents, startStormAgent(t, ctx, addr, name, rackOf[name], trueCmd))
	}
	eventually(t, 30*time.Second, "every agent connected with its guard", func() error {
		n := 0
		for _, nd := range stormNodes(t, ctx, fleet) {
			if nd.GetConnected() && slices.Contains(nd.GetGuard().GetAllowed(), action.Offline) {
				n++
			}
		}
		if n != stormFleet {
			return fmt.Errorf("%d of %d", n, stormFleet)
		}
		return nil
	})
	t.Logf("%d agents connected in %s", stormFleet, time.Since(fleetStart).Round(time.Millisecond))

	// The storm: four nodes a rack (the rack's 0th, 1st, 5th and 6th)
	// raise the fault, one every stormSpread/stormFaulty, going round the
	// racks so that the fleet's limit, not a rack's, is the first to hold.
	var faulty []*stormAgent
	for _, k := range []int{0, 5, 1, 6} {
		for r := range stormRacks {
			faulty = append(faulty, agents[r*stormFleet/stormRacks+k])
		}
	}
	if len(faulty) != stormFaulty {
		t.Fatalf("picked %d faulty nodes, want %d", len(faulty), stormFaulty)
	}
	firstFault := time.Now()
	for i, a := range faulty {
		if d := time.Until(firstFault.Add(time.Duration(i) * stormSpread / stormFaulty)); d > 0 {
			time.Sleep(d)
		}
		a.raise(t)
	}
	t.Logf("%d faults raised in %s", stormFaulty, time.Since(firstFault).Round(time.Millisecond))

	// The breaker trips.
	var pause *hwhealv1.Event
	w.wait(t, 20*time.Second, "the storm breaker trips", func() error {
		if pause = w.first(0, hwhealv1.EventType_EVENT_TYPE_REMEDIATION_PAUSED); pause == nil {
			return errors.New("no REMEDIATION_PAUSED event")
		}
		return nil
	})
	if pause.GetActor() != "breaker" {
		t.Fatalf("remediation paused by %q (%s), want the breaker", pause.GetActor(), pause.GetReason())
	}
	// The event is dated when the tripping pass read the store, which is
	// when the breaker saw the storm.
	toTrip := pause.GetTime().AsTime().Sub(firstFault)
	dispatchedBefore := len(w.dispatched(0, pause.GetId()))
	t.Logf("breaker tripped %s after the first fault, %d automatic actions dispatched before: %s",
		toTrip.Round(time.Millisecond), dispatchedBefore, pause.GetReason())

	// Every fault arrived, open and enforced: the storm is real faults,
	// not shadow ones the planner would ignore.
	eventually(t, 20*time.Second, "every fault stored open and enforced", func() error {
		fs := stormFaults(t, ctx, fleet)
		if len(fs) != stormFaulty {
			return fmt.Errorf("%d open memory.ce_storm faults, want %d", len(fs), stormFaulty)
		}
		for _, f := range fs {
			if f.GetMode() == hwhealv1.RuleMode_RULE_MODE_SHADOW {
				return fmt.Errorf("fault %d on %s is in shadow mode", f.GetId(), f.GetNode())
			}
		}
		return nil
	})

	// bringBack asks for an online of each node (manual actions are not
	// paused, and online needs no approval in this policy) and waits until
	// every one is in service again.
	bringBack := func(nodes []string) {
		t.Helper()
		for _, name := range nodes {
			if _, err := fleet.RequestAction(ctx, &hwhealv1.RequestActionRequest{
				Node: name, Type: action.Online, Reason: "DIMM replaced",
			}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 20*time.Second, "the nodes brought back in service", func() error {
			for _, nd := range stormNodes(t, ctx, fleet) {
				if slices.Contains(nodes, nd.GetName()) && nd.GetServiceState() != hwhealv1.ServiceState_SERVICE_STATE_IN_SERVICE {
					return fmt.Errorf("%s is %s", nd.GetName(), nd.GetServiceState())
				}
			}
			return nil
		})
	}
	offlineNodes := func(want int) []string {
		t.Helper()
		var out []string
		eventually(t, 20*time.Second, fmt.Sprintf("%d nodes offline", want), func() error {
			out = out[:0]
			for _, nd := range stormNodes(t, ctx, fleet) {
				if nd.GetServiceState() == hwhealv1.ServiceState_SERVICE_STATE_OFFLINE {
					out = append(out, nd.GetName())
				}
			}
			if len(out) != want {
				return fmt.Errorf("%d nodes offline (%v)", len(out), out)
			}
			return nil
		})
		return out
	}

	// Paused, with room under the limit: operators bring back the nodes
	// offlined before the trip, so that only the pause holds the rest, and
	// the planner gets many passes to dispatch something.
	bringBack(offlineNodes(dispatchedBefore))
	time.Sleep(stormHold)
	st, err := fleet.GetRemediationStatus(ctx, &hwhealv1.GetRemediationStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.GetStatus(); !s.GetPaused() || s.GetPausedBy().GetActor() != "breaker" {
		t.Fatalf("status while paused: paused %v by %q", s.GetPaused(), s.GetPausedBy().GetActor())
	}
	if evs := w.dispatched(pause.GetId(), 0); len(evs) > 0 {
		t.Errorf("%d automatic actions dispatched while paused, first %s on %s (event %d)",
			len(evs), evs[0].GetAction().GetId(), evs[0].GetNode(), evs[0].GetId())
	}
	if n := st.GetStatus().GetOutOfService(); n != 0 {
		t.Errorf("%d nodes out of service while paused, after the operators brought every offlined node back", n)
	}
	held := 0
	for _, a := range stormActions(t, ctx, fleet, action.Approved) {
		if a.GetRule() == "" {
			continue
		}
		held++
		if !strings.HasPrefix(a.GetWaiting(), "remediation is paused") {
			t.Errorf("action %s on %s, approved while paused, waits for %q", a.GetId(), a.GetNode(), a.GetWaiting())
		}
	}
	t.Logf("while paused with room under the limit: %d approved automatic actions held, %d created after the pause",
		held, len(w.created(pause.GetId(), 0)))

	// An operator resumes.
	if _, err := fleet.ResumeRemediation(ctx, &hwhealv1.ResumeRemediationRequest{Reason: "storm understood: a bad firmware push"}); err != nil {
		t.Fatal(err)
	}
	var resume *hwhealv1.Event
	w.wait(t, 10*time.Second, "the resume event", func() error {
		if resume = w.first(pause.GetId(), hwhealv1.EventType_EVENT_TYPE_REMEDIATION_RESUMED); resume == nil {
			return errors.New("no REMEDIATION_RESUMED event")
		}
		return nil
	})
	if evs := w.dispatched(pause.GetId(), resume.GetId()); len(evs) > 0 {
		t.Errorf("%d automatic actions dispatched between the pause and the resume", len(evs))
	}
	if evs := w.started(pause.GetId(), resume.GetId(), w.dispatchedIDs(0, pause.GetId())); len(evs) > 0 {
		t.Errorf("%d automatic actions not dispatched before the pause ran while paused, first %s on %s",
			len(stormActionIDs(evs)), evs[0].GetAction().GetId(), evs[0].GetNode())
	}

	// Resumed: the limit fills up and the rest wait on it. The nodes an
	// operator brought back are theirs until their faults show new
	// evidence: nothing is planned for them.
	settle := func(what string, offlined, waiting int) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() error {
			var done, held int
			for _, a := range stormActions(t, ctx, fleet) {
				if a.GetRule() == "" {
					continue
				}
				switch a.GetState() {
				case action.Succeeded:
					done++
				case action.Approved:
					if !strings.HasPrefix(a.GetWaiting(), "limit: ") {
						return fmt.Errorf("action %s on %s waits for %q", a.GetId(), a.GetNode(), a.GetWaiting())
					}
					held++
				default:
					return fmt.Errorf("action %s on %s is %s", a.GetId(), a.GetNode(), a.GetState())
				}
			}
			if done != offlined || held != waiting {
				return fmt.Errorf("%d automatic offlines succeeded, %d wait on the limit; want %d and %d", done, held, offlined, waiting)
			}
			return nil
		})
	}
	resumed := time.Now()
	offlined := dispatchedBefore + stormLimit
	settle("the limit filled after the resume", offlined, stormFaulty-offlined)
	t.Logf("settled %s after the resume", time.Since(resumed).Round(time.Millisecond))
	time.Sleep(stormHold)
	if ev := w.first(resume.GetId(), hwhealv1.EventType_EVENT_TYPE_REMEDIATION_PAUSED); ev != nil {
		t.Errorf("remediation paused again after the resume by %q: %s", ev.GetActor(), ev.GetReason())
	}
	if n := len(w.dispatched(0, 0)); n != offlined {
		t.Errorf("%d automatic actions dispatched once the resume settled, want %d", n, offlined)
	}

	// Operators bring the offlined nodes back; the next ones go.
	backOnline := time.Now()
	bringBack(offlineNodes(stormLimit))
	offlined += stormLimit
	settle("the next nodes offlined after the first came back", offlined, stormFaulty-offlined)
	t.Logf("next %d offlined %s after the onlines were asked for", stormLimit, time.Since(backOnline).Round(time.Millisecond))

	// Whatever the order of events, the limits held at every one of them.
	stopWatch()
	watchers.Wait()
	sum := w.summary()
	t.Logf("figures: %d events watched; out of service at most %d (limit %d) by the events, %d by the planner's status (%d polls); at most %d a rack (limit %d); %d dispatched before the trip, %s from the first fault to the pause",
		sum.events, sum.maxOut, stormLimit, sum.maxStatusOut, sum.polls, sum.maxRackOut, stormPerRack, dispatchedBefore, toTrip.Round(time.Millisecond))
	if sum.maxOut > stormLimit || sum.maxStatusOut > stormLimit || sum.maxRackOut > stormPerRack {
		t.Errorf("limits passed: out of service %d (status %d), a rack %d", sum.maxOut, sum.maxStatusOut, sum.maxRackOut)
	}
	if sum.maxOut != stormLimit {
		t.Errorf("out of service at most %d, want the limit %d reached", sum.maxOut, stormLimit)
	}
	if sum.pauses != 1 {
		t.Errorf("%d REMEDIATION_PAUSED events, want 1", sum.pauses)
	}
	if sum.polls == 0 {
		t.Error("the status was never polled")
	}

	// Down in order: the agents, then the collector.
	stopStormAgents(t, agents)
	stopCollector()
}

// stormAgent is one node's agent without its sources: its spool, its
// stream to the collector and its actuator, wired as agent.New does.
type stormAgent struct {
	name   string
	spool  *spool.Spool
	act    *actuate.Actuator
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func startStormAgent(t *testing.T, ctx context.Context, addr, name, rack, trueCmd string) *stormAgent {
	t.Helper()
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runbook := func(step string) executor.Executor {
		return &executor.Runbook{Steps: []executor.Step{{Name: step, Run: []string{trueCmd}, Timeout: 20 * time.Second}}}
	}
	boot := randomID(t, 16)
	act, err := actuate.New(actuate.Config{
		StateDir: dir, Node: name, BootID: boot,
		Allow: []hwhealv1.ActionType{action.Offline, action.Online},
		Executors: map[hwhealv1.ActionType]executor.Executor{
			action.Offline: runbook("mark-out"),
			action.Online:  runbook("mark-in"),
		},
		Report: func(u *hwhealv1.ActionUpdate) error {
			return sp.Append(&hwhealv1.Report{Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: u}})
		},
		Sync: sp.Sync,
	})
	if err != nil {
		sp.Close()
		t.Fatal(err)
	}
	client, err := transport.New(transport.Config{
		Target:      addr,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Hello: func() *hwhealv1.Hello {
			return &hwhealv1.Hello{
				Node: name, BootId: boot, AgentVersion: "e2e-storm",
				Labels: map[string]string{"rack": rack},
				Guard:  act.Guard(),
			}
		},
		Spool:  sp,
		Orders: act.Deliver,
	})
	if err != nil {
		act.Close()
		sp.Close()
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	a := &stormAgent{name: name, spool: sp, act: act, cancel: cancel}
	a.wg.Go(func() {
		if err := client.Run(actx); err != nil {
			t.Errorf("agent %s transport: %v", name, err)
		}
	})
	a.wg.Go(func() { act.Run(actx) })
	return a
}

// raise spools a memory.ce_storm fault of the shipped rule memory-ce-storm
// (hardware.yaml), as if the node had judged its DIMM's error counts
// itself: the collector's rules annotate it, enforced, like any other.
func (a *stormAgent) raise(t *testing.T) {
	t.Helper()
	f := &hwhealv1.Fault{
		FaultClass: "memory.ce_storm",
		Severity:   hwhealv1.Severity_SEVERITY_WARNING,
		Part:       &hwhealv1.Part{Kind: hwhealv1.PartKind_PART_KIND_MEMORY, Name: "CPU_SrcID#0_MC#0_Chan#0_DIMM#0"},
		Rule:       "memory-ce-storm",
		Time:       timestamppb.Now(),
		Summary:    "CPU_SrcID#0_MC#0_Chan#0_DIMM#0 corrected 10 memory errors within 24h0m0s",
	}
	if err := a.spool.Append(&hwhealv1.Report{Item: &hwhealv1.Report_Fault{Fault: f}}); err != nil {
		t.Fatalf("spool the fault of %s: %v", a.name, err)
	}
}

// stop ends the agent's stream and actuator, then closes the actuator's
// ledger and the spool, in agent.Run's order.
func (a *stormAgent) stop(t *testing.T) {
	a.once.Do(func() {
		a.cancel()
		a.wg.Wait()
		if err := a.act.Close(); err != nil {
			t.Errorf("agent %s: close actuator: %v", a.name, err)
		}
		if err := a.spool.Close(); err != nil {
			t.Errorf("agent %s: close spool: %v", a.name, err)
		}
	})
}

// stopStormAgents stops the agents, all at once.
func stopStormAgents(t *testing.T, agents []*stormAgent) {
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() { a.stop(t) })
	}
	wg.Wait()
}

// stormWatch follows the collector's events and keeps, at every event,
// each node's service state: the out-of-service count, fleet-wide and per
// rack, event by event. It also polls the planner's own count.
type stormWatch struct {
	rackOf map[string]string

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced at every event
	last       uint64
	events     []*hwhealv1.Event
	service    map[string]hwhealv1.ServiceState
	out        int
	rackOut    map[string]int
	maxOut     int
	maxRackOut int
	// maxStatusOut is the largest out_of_service (or a domain's) that
	// GetRemediationStatus reported, in polls.
	maxStatusOut, maxStatusRack, polls int
	violations                         []string
	nViolations                        int // all of them, recorded or not
}

func newStormWatch(rackOf map[string]string) *stormWatch {
	return &stormWatch{
		rackOf:  rackOf,
		changed: make(chan struct{}),
		service: map[string]hwhealv1.ServiceState{},
		rackOut: map[string]int{},
	}
}

var stormEventTypes = []hwhealv1.EventType{
	hwhealv1.EventType_EVENT_TYPE_NODE_SERVICE_CHANGED,
	hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED,
	hwhealv1.EventType_EVENT_TYPE_REMEDIATION_PAUSED,
	hwhealv1.EventType_EVENT_TYPE_REMEDIATION_RESUMED,
}

// follow watches from the first event until ctx ends, resuming after the
// last event seen when the stream breaks (a watcher that fell behind).
func (w *stormWatch) follow(ctx context.Context, fleet hwhealv1.FleetServiceClient) {
	for ctx.Err() == nil {
		w.mu.Lock()
		after := w.last
		w.mu.Unlock()
		stream, err := fleet.WatchEvents(ctx, &hwhealv1.WatchEventsRequest{AfterId: &after, Types: stormEventTypes})
		for err == nil {
			var resp *hwhealv1.WatchEventsResponse
			if resp, err = stream.Recv(); err == nil {
				w.add(resp.GetEvent())
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (w *stormWatch) add(ev *hwhealv1.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.GetId() <= w.last {
		return
	}
	w.last = ev.GetId()
	w.events = append(w.events, ev)
	if ev.GetType() == hwhealv1.EventType_EVENT_TYPE_NODE_SERVICE_CHANGED {
		node := ev.GetNode()
		was := action.Normal(w.service[node])
		if old := action.Normal(ev.GetOldService()); old != was {
			w.violation(fmt.Sprintf("event %d: %s left %s, but the events had it %s", ev.GetId(), node, old, was))
		}
		is := action.Normal(ev.GetNewService())
		w.service[node] = is
		delta := 0
		switch {
		case !action.OutOfService(was) && action.OutOfService(is):
			delta = 1
		case action.OutOfService(was) && !action.OutOfService(is):
			delta = -1
		}
		w.out += delta
		w.rackOut[w.rackOf[node]] += delta
		w.maxOut = max(w.maxOut, w.out)
		w.maxRackOut = max(w.maxRackOut, w.rackOut[w.rackOf[node]])
		if w.out > stormLimit {
			w.violation(fmt.Sprintf("event %d: %s %s -> %s (%s): %d nodes out of service, limit %d",
				ev.GetId(), node, was, is, ev.GetReason(), w.out, stormLimit))
		}
		if n := w.rackOut[w.rackOf[node]]; n > stormPerRack {
			w.violation(fmt.Sprintf("event %d: %s %s -> %s: %d nodes of rack %s out of service, limit %d",
				ev.GetId(), node, was, is, n, w.rackOf[node], stormPerRack))
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// violation records a limit passed (the first few; the rest counted).
// Called with mu held.
func (w *stormWatch) violation(msg string) {
	if len(w.violations) < 10 {
		w.violations = append(w.violations, msg)
	}
	w.nViolations++
}

// poll reads GetRemediationStatus every interval until ctx ends.
func (w *stormWatch) poll(ctx context.Context, fleet hwhealv1.FleetServiceClient, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if resp, err := fleet.GetRemediationStatus(ctx, &hwhealv1.GetRemediationStatusRequest{}); err == nil {
			st := resp.GetStatus()
			w.mu.Lock()
			w.polls++
			w.maxStatusOut = max(w.maxStatusOut, int(st.GetOutOfService()))
			if int(st.GetOutOfService()) > stormLimit {
				w.violation(fmt.Sprintf("status: %d nodes out of service, limit %d", st.GetOutOfService(), stormLimit))
			}
			for _, d := range st.GetDomains() {
				w.maxStatusRack = max(w.maxStatusRack, int(d.GetOutOfService()))
				if int(d.GetOutOfService()) > stormPerRack {
					w.violation(fmt.Sprintf("status: %d nodes of %s=%s out of service, limit %d",
						d.GetOutOfService(), d.GetLabel(), d.GetValue(), stormPerRack))
				}
			}
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wait waits until cond holds over the events seen, rechecking at each
// new event.
func (w *stormWatch) wait(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		changed := w.changed
		w.mu.Unlock()
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
	}
}

// between returns the events with after < id < before (before 0: no
// upper bound) that match keep.
func (w *stormWatch) between(after, before uint64, keep func(*hwhealv1.Event) bool) []*hwhealv1.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*hwhealv1.Event
	for _, ev := range w.events {
		if ev.GetId() > after && (before == 0 || ev.GetId() < before) && keep(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// first is the first event of type typ after id after, nil if none.
func (w *stormWatch) first(after uint64, typ hwhealv1.EventType) *hwhealv1.Event {
	evs := w.between(after, 0, func(ev *hwhealv1.Event) bool { return ev.GetType() == typ })
	if len(evs) == 0 {
		return nil
	}
	return evs[0]
}

// actionMoved keeps the ACTION_CHANGED events of automatic actions (a
// rule's) that moved them to state.
func actionMoved(state hwhealv1.ActionState) func(*hwhealv1.Event) bool {
	return func(ev *hwhealv1.Event) bool {
		a := ev.GetAction()
		return ev.GetType() == hwhealv1.EventType_EVENT_TYPE_ACTION_CHANGED && a.GetRule() != "" && a.GetState() == state
	}
}

// dispatched lists the events that dispatched an automatic action.
func (w *stormWatch) dispatched(after, before uint64) []*hwhealv1.Event {
	return w.between(after, before, actionMoved(action.Dispatched))
}

func (w *stormWatch) dispatchedIDs(after, before uint64) map[string]bool {
	return stormActionIDs(w.dispatched(after, before))
}

// stormActionIDs is the set of the actions of events.
func stormActionIDs(evs []*hwhealv1.Event) map[string]bool {
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.GetAction().GetId()] = true
	}
	return ids
}

// started lists the events that moved an automatic action not in
// dispatchedBefore to RUNNING.
func (w *stormWatch) started(after, before uint64, dispatchedBefore map[string]bool) []*hwhealv1.Event {
	running := actionMoved(action.Running)
	return w.between(after, before, func(ev *hwhealv1.Event) bool {
		return running(ev) && !dispatchedBefore[ev.GetAction().GetId()]
	})
}

// created lists the events of automatic actions first seen after after.
func (w *stormWatch) created(after, before uint64) []*hwhealv1.Event {
	seen := map[string]bool{}
	for _, ev := range w.between(0, after+1, func(ev *hwhealv1.Event) bool { return ev.GetAction() != nil }) {
		seen[ev.GetAction().GetId()] = true
	}
	return w.between(after, before, func(ev *hwhealv1.Event) bool {
		a := ev.GetAction()
		if a == nil || a.GetRule() == "" || seen[a.GetId()] {
			return false
		}
		seen[a.GetId()] = true
		return true
	})
}

type stormSummary struct {
	events, maxOut, maxRackOut, maxStatusOut, polls, pauses int
	violations                                              []string
}

func (w *stormWatch) summary() stormSummary {
	pauses := len(w.between(0, 0, func(ev *hwhealv1.Event) bool {
		return ev.GetType() == hwhealv1.EventType_EVENT_TYPE_REMEDIATION_PAUSED
	}))
	w.mu.Lock()
	defer w.mu.Unlock()
	sum := stormSummary{
		events: len(w.events), maxOut: w.maxOut, maxRackOut: max(w.maxRackOut, w.maxStatusRack),
		maxStatusOut: w.maxStatusOut, polls: w.polls, pauses: pauses,
		violations: slices.Clone(w.violations),
	}
	if n := w.nViolations - len(w.violations); n > 0 {
		sum.violations = append(sum.violations, fmt.Sprintf("... and %d more times a limit was passed", n))
	}
	return sum
}

func stormNodes(t *testing.T, ctx context.Context, fleet hwhealv1.FleetServiceClient) []*hwhealv1.Node {
	t.Helper()
	var out []*hwhealv1.Node
	for tok := ""; ; {
		resp, err := fleet.ListNodes(ctx, &hwhealv1.ListNodesRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetNodes()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out
		}
	}
}

func stormFaults(t *testing.T, ctx context.Context, fleet hwhealv1.FleetServiceClient) []*hwhealv1.FaultRecord {
	t.Helper()
	var out []*hwhealv1.FaultRecord
	for tok := ""; ; {
		resp, err := fleet.ListFaults(ctx, &hwhealv1.ListFaultsRequest{PageSize: 1000, PageToken: tok, FaultClass: "memory.ce_storm"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetFaults()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out
		}
	}
}

func stormActions(t *testing.T, ctx context.Context, fleet hwhealv1.FleetServiceClient, states ...hwhealv1.ActionState) []*hwhealv1.Action {
	t.Helper()
	var out []*hwhealv1.Action
	for tok := ""; ; {
		resp, err := fleet.ListActions(ctx, &hwhealv1.ListActionsRequest{PageSize: 1000, PageToken: tok, States: states})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetActions()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			return out
		}
	}
}

// stormLogBuffer is the collector's log, kept to show on failure.
type stormLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *stormLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *stormLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
