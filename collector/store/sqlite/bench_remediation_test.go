package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// bulkActions creates n actions, one per call of mk, inside transactions
// of 5,000 (setup only: the planner writes one change per transaction).
// mk returns the action and the changes to apply to it, in order. With
// inService the action's node is put back in service after them.
func bulkActions(b *testing.B, s *Store, n int, inService bool, mk func(i int) (*hwhealv1.Action, []store.ActionChange)) {
	b.Helper()
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		err := s.write(b.Context(), func(ctx context.Context, st *txStmts) error {
			for i := start; i < min(start+chunk, n); i++ {
				a, chs := mk(i)
				if _, err := createAction(ctx, st, a, a.GetCreated().AsTime()); err != nil {
					return err
				}
				for _, ch := range chs {
					if _, _, err := changeAction(ctx, st, ch, ch.Time); err != nil {
						return err
					}
				}
				if inService {
					if _, err := st.s(sNodeServiceSet).ExecContext(ctx, a.GetNode(), int64(action.InService), nanos(benchT0)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchAction(id, node string, typ hwhealv1.ActionType, state hwhealv1.ActionState, created time.Time) *hwhealv1.Action {
	return &hwhealv1.Action{
		Id: id, Node: node, Type: typ, State: state, Reason: "disk.media on sda", RequestedBy: "policy:disk-media",
		Rule: "disk-media", FaultClass: "disk.media", FaultIds: []uint64{1}, Approval: hwhealv1.ApprovalMode_APPROVAL_MODE_AUTO,
		Created: timestamppb.New(created), Updated: timestamppb.New(created), Timeout: durationpb.New(time.Hour),
	}
}

// BenchmarkApplyActions stores agent batches as BenchmarkApply's
// batched_100x10_per_tx does (1,000 nodes, 100 batches of 10 reports per
// transaction, 2 in 10 reports faults), with 1 in 10 reports an action
// update instead of an observation: each node works through dispatched
// reboot actions, 4 RUNNING updates with a step each, then SUCCEEDED with
// a last step: per action two service state changes (REBOOTING and back). Compare its
// cpu-µs/report with BenchmarkApply/batched_100x10_per_tx of the same run.
func BenchmarkApplyActions(b *testing.B) {
	const (
		nodes     = 1000
		perNode   = 30 // dispatched actions per node, enough for ~1,500 iterations
		perAction = 5  // updates per action
	)
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	registerBulk(b, s, nodes)
	// Every action dispatched from an in-service node, which is left in
	// service: its first RUNNING update makes it REBOOTING, its success
	// puts it back, as if each had been dispatched when the one before it
	// ended.
	bulkActions(b, s, nodes*perNode, true, func(i int) (*hwhealv1.Action, []store.ActionChange) {
		node, k := i%nodes, i/nodes
		id := fmt.Sprintf("act-%06d-%02d", node, k)
		at := benchT0.Add(time.Duration(i) * time.Millisecond)
		a := benchAction(id, benchNode(node), action.Reboot, action.Approved, at)
		return a, []store.ActionChange{{ID: id, To: action.Dispatched, Actor: "policy:disk-media", Time: at}}
	})
	b.Logf("setup of %d nodes, %d dispatched actions: %v", nodes, nodes*perNode, time.Since(start).Round(time.Millisecond))

	feed := &benchFeed{nodes: nodes, seq: make([]uint64, nodes)}
	updates := make([]int, nodes) // updates sent per node
	sent := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		batches := feed.batches(100, 10)
		for i := range batches {
			node := (feed.next - len(batches) + i) % nodes
			// One report in ten: the one at position 9 is an observation in
			// the feed's mix (faults are at reports%5 == 0).
			r := batches[i].Reports[9]
			if r.GetObservation() == nil {
				continue
			}
			n := updates[node]
			k, u := n/perAction, n%perAction
			if k >= perNode {
				b.Fatalf("node %d ran out of actions: raise perNode", node)
			}
			upd := &hwhealv1.ActionUpdate{
				ActionId: fmt.Sprintf("act-%06d-%02d", node, k),
				Outcome:  hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING,
				Time:     r.GetObservation().GetTime(),
				BootId:   "boot",
				Steps: []*hwhealv1.ActionStep{{
					Index: uint32(u), Name: fmt.Sprintf("step-%d", u), Attempt: 1, Command: []string{"/usr/lib/hwheal/step", fmt.Sprint(u)},
					Started: r.GetObservation().GetTime(), Duration: durationpb.New(2 * time.Second), Output: strings.Repeat("ok\n", 100),
				}},
			}
			if u == perAction-1 {
				upd.Outcome, upd.Message = hwhealv1.ActionOutcome_ACTION_OUTCOME_SUCCEEDED, "rebooted: boot id boot -> boot2"
			}
			batches[i].Reports[9] = &hwhealv1.Report{Seq: r.GetSeq(), Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: upd}}
			updates[node]++
			sent++
		}
		if _, err := s.Apply(b.Context(), batches); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(feed.reports), "cpu-µs/report")
	b.ReportMetric(float64(feed.reports)/sec, "reports/s")
	b.ReportMetric(float64(sent)/sec, "updates/s")
}

// BenchmarkListActions lists actions in a store holding 100,000 finished
// actions (10,000 nodes, 10 each, a week of history) and 200 that have not
// ended (awaiting approval, approved, dispatched, running), as the planner
// and the API do. Setup takes about 15 s.
//
//   - not_ended: the planner's read on every pass, one page of up to 1,000;
//   - baseline_not_ended_full_walk: the same read walking the whole history
//     by actions_created, as it would without the partial index;
//   - node_first_page, fleet_first_page: the API's first pages;
//   - node_rule_week: a node's actions of one rule in 7 days (cooldowns and
//     weekly caps).
func BenchmarkListActions(b *testing.B) {
	const (
		nodes    = 10_000
		finished = 100_000
		open     = 200
	)
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	registerBulk(b, s, nodes)
	week := 7 * 24 * time.Hour
	// The history is written as it ended, without the changes that led
	// there (createAction takes any state): the listing does not care, and
	// the setup costs half.
	bulkActions(b, s, finished, false, func(i int) (*hwhealv1.Action, []store.ActionChange) {
		id := fmt.Sprintf("old-%06d", i)
		at := benchT0.Add(time.Duration(i) * (week / finished))
		a := benchAction(id, benchNode(i%nodes), action.Reboot, []hwhealv1.ActionState{action.Expired, action.Denied, action.Cancelled}[i%3], at)
		a.Finished = timestamppb.New(at.Add(time.Minute))
		a.Decision = &hwhealv1.ActionNote{Actor: "alice", Time: a.Finished, Reason: "no"}
		return a, nil
	})
	now := benchT0.Add(week)
	waiting := "window weeknights"
	bulkActions(b, s, open, false, func(i int) (*hwhealv1.Action, []store.ActionChange) {
		id := fmt.Sprintf("new-%03d", i)
		at := now.Add(time.Duration(i) * time.Second)
		node := benchNode(i * 37 % nodes)
		switch i % 4 {
		case 0:
			return benchAction(id, node, action.Offline, action.AwaitingApproval, at), nil
		case 1:
			return benchAction(id, node, action.Offline, action.Approved, at), []store.ActionChange{{ID: id, To: action.Approved, Actor: "policy:x", Waiting: &waiting, Time: at}}
		case 2:
			return benchAction(id, node, action.Reboot, action.Approved, at), []store.ActionChange{{ID: id, To: action.Dispatched, Actor: "policy:x", Time: at}}
		}
		return benchAction(id, node, action.Migrate, action.Approved, at), []store.ActionChange{
			{ID: id, To: action.Dispatched, Actor: "policy:x", Time: at}, {ID: id, To: action.Running, Actor: "agent:x", Time: at}}
	})
	b.Logf("setup of %d finished and %d open actions: %v", finished, open, time.Since(start).Round(time.Millisecond))

	active := []hwhealv1.ActionState{action.Proposed, action.AwaitingApproval, action.Approved, action.Dispatched, action.Running}
	list := func(b *testing.B, f store.ActionFilter, size, want int) {
		var got int
		for b.Loop() {
			as, _, err := s.ListActions(b.Context(), f, store.Page{Size: size})
			if err != nil {
				b.Fatal(err)
			}
			got = len(as)
		}
		if got != want {
			b.Fatalf("listed %d actions, want %d", got, want)
		}
		b.ReportMetric(float64(got), "actions/op")
	}
	b.Run("not_ended", func(b *testing.B) { list(b, store.ActionFilter{States: active}, 1000, open) })
	b.Run("baseline_not_ended_full_walk", func(b *testing.B) {
		q, args := actionsQuery(store.ActionFilter{States: active}, nil, 1001)
		q = strings.Replace(q, "INDEXED BY actions_active", "INDEXED BY actions_created", 1)
		var got int
		for b.Loop() {
			rows, err := s.r.QueryContext(b.Context(), q, args...)
			if err != nil {
				b.Fatal(err)
			}
			got = 0
			for rows.Next() {
				var (
					k    actionKey
					blob []byte
				)
				if err := rows.Scan(&k.created, &k.id, &blob); err != nil {
					b.Fatal(err)
				}
				a := &hwhealv1.Action{}
				if err := unmarshalInto(blob, a, "action"); err != nil {
					b.Fatal(err)
				}
				got++
			}
			if err := rows.Close(); err != nil {
				b.Fatal(err)
			}
		}
		if got != open {
			b.Fatalf("listed %d, want %d", got, open)
		}
		b.ReportMetric(float64(got), "actions/op")
	})
	b.Run("node_first_page", func(b *testing.B) { list(b, store.ActionFilter{Node: benchNode(42)}, 100, finished/nodes) })
	b.Run("fleet_first_page", func(b *testing.B) { list(b, store.ActionFilter{}, 100, 100) })
	b.Run("node_rule_week", func(b *testing.B) {
		list(b, store.ActionFilter{Node: benchNode(42), Rule: "disk-media", CreatedSince: now.Add(-week)}, 1000, finished/nodes)
	})
}
