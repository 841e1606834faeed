package ingest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// pendingOrders is the planner's side of the seam: the orders each node
// should have.
type pendingOrders struct {
	mu     sync.Mutex
	orders map[string][]*hwhealv1.ActionOrder
}

func (p *pendingOrders) Pending(_ context.Context, node string) ([]*hwhealv1.ActionOrder, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[node], nil
}

func guardedHello(node, stream string) *hwhealv1.ConnectRequest {
	h := hello(node, stream)
	h.GetHello().Guard = &hwhealv1.ActionGuard{Allowed: []hwhealv1.ActionType{hwhealv1.ActionType_ACTION_TYPE_REBOOT}}
	return h
}

func recvOrder(t *testing.T, s hwhealv1.AgentService_ConnectClient) *hwhealv1.ActionOrder {
	t.Helper()
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("order: %v", err)
	}
	if m.GetOrder() == nil {
		t.Fatalf("got %v, want an order", m)
	}
	return m.GetOrder()
}

// An agent with a guard gets the orders dispatched to it after every
// Welcome and as they are dispatched; acknowledgements keep flowing on the
// same stream. An agent without one gets none.
func TestOrders(t *testing.T) {
	po := &pendingOrders{orders: map[string][]*hwhealv1.ActionOrder{"n1": {{Id: "a1", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT}}}}
	f := newFixture(t, func(c *Config) { c.Orders = po })

	s, err := f.client.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(guardedHello("n1", "s1")); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Recv(); err != nil || m.GetWelcome() == nil {
		t.Fatalf("welcome: %v, %v", m, err)
	}
	if o := recvOrder(t, s); o.GetId() != "a1" {
		t.Fatalf("pending order = %v", o)
	}
	n, err := f.store.GetNode(t.Context(), "n1")
	if err != nil || len(n.GetGuard().GetAllowed()) != 1 {
		t.Fatalf("stored guard: %v, %v", n.GetGuard(), err)
	}
	if !f.server.SendOrder("n1", &hwhealv1.ActionOrder{Id: "a2", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT}) {
		t.Fatal("SendOrder to a live guarded stream returned false")
	}
	if o := recvOrder(t, s); o.GetId() != "a2" {
		t.Fatalf("sent order = %v", o)
	}
	if err := s.Send(batch(faultReport(1, "sda"))); err != nil {
		t.Fatal(err)
	}
	if got := recvAck(t, s); got != 1 {
		t.Fatalf("ack %d", got)
	}
	if f.server.SendOrder("n404", &hwhealv1.ActionOrder{Id: "x"}) {
		t.Fatal("SendOrder to a node without a stream returned true")
	}

	// Without a guard: no pending orders, and SendOrder says no.
	po.mu.Lock()
	po.orders["n2"] = []*hwhealv1.ActionOrder{{Id: "b1"}}
	po.mu.Unlock()
	s2, _ := connect(t, f.client, "n2", "s2")
	if f.server.SendOrder("n2", &hwhealv1.ActionOrder{Id: "b2"}) {
		t.Fatal("SendOrder to an agent without a guard returned true")
	}
	if err := s2.Send(batch(faultReport(1, "sda"))); err != nil {
		t.Fatal(err)
	}
	if got := recvAck(t, s2); got != 1 { // an order would arrive before the ack
		t.Fatalf("ack %d", got)
	}
}

// Action updates are checked like every other report: an agent cannot
// make the store keep unbounded text.
func TestActionUpdateValidation(t *testing.T) {
	f := newFixture(t, nil)
	update := func(mod func(*hwhealv1.ActionUpdate)) *hwhealv1.Report {
		u := &hwhealv1.ActionUpdate{ActionId: "a1", Outcome: hwhealv1.ActionOutcome_ACTION_OUTCOME_RUNNING}
		mod(u)
		return &hwhealv1.Report{Seq: 1, Item: &hwhealv1.Report_ActionUpdate{ActionUpdate: u}}
	}
	tests := []struct {
		name string
		r    *hwhealv1.Report
		text string
	}{
		{"no id", update(func(u *hwhealv1.ActionUpdate) { u.ActionId = "" }), "action_id"},
		{"long id", update(func(u *hwhealv1.ActionUpdate) { u.ActionId = strings.Repeat("a", 65) }), "action_id"},
		{"no outcome", update(func(u *hwhealv1.ActionUpdate) { u.Outcome = 0 }), "outcome is unset"},
		{"long message", update(func(u *hwhealv1.ActionUpdate) { u.Message = strings.Repeat("m", 5000) }), "message longer"},
		{"too many steps", update(func(u *hwhealv1.ActionUpdate) {
			for range 65 {
				u.Steps = append(u.Steps, &hwhealv1.ActionStep{Name: "s"})
			}
		}), "65 steps"},
		{"long output", update(func(u *hwhealv1.ActionUpdate) {
			u.Steps = []*hwhealv1.ActionStep{{Name: "s", Output: strings.Repeat("o", 17<<10)}}
		}), "output longer"},
		{"long argument", update(func(u *hwhealv1.ActionUpdate) {
			u.Steps = []*hwhealv1.ActionStep{{Name: "s", Command: []string{strings.Repeat("x", 4097)}}}
		}), "argument longer"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := connect(t, f.client, "v"+string(rune('a'+i)), "s")
			if err := s.Send(batch(tt.r)); err != nil {
				t.Fatal(err)
			}
			_, err := s.Recv()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want InvalidArgument with %q", err, tt.text)
			}
		})
	}
}
