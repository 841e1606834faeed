package transport

import (
	"slices"
	"sync"
	"testing"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestOrders: the collector's orders, sent after the Welcome, reach
// Config.Orders in order, and again after a reconnect (the collector
// resends what is not finished); reports keep flowing and being acked.
func TestOrders(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	orders := []*hwhealv1.ActionOrder{
		{Id: "a1", Type: hwhealv1.ActionType_ACTION_TYPE_OFFLINE, Reason: "planned", BootId: "boot-a"},
		{Id: "a2", Type: hwhealv1.ActionType_ACTION_TYPE_REBOOT},
	}
	h.start(&testServer{store: st, orders: orders})
	sp := openSpool(t)
	appendReports(t, sp, 10)

	var mu sync.Mutex
	var got []string
	c, _ := runClient(t, h, sp, func(cfg *Config) {
		cfg.Orders = func(o *hwhealv1.ActionOrder) {
			mu.Lock()
			got = append(got, o.GetId()+"/"+o.GetType().String())
			mu.Unlock()
		}
	})
	ids := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	want := []string{"a1/ACTION_TYPE_OFFLINE", "a2/ACTION_TYPE_REBOOT"}
	eventually(t, 5*time.Second, "two orders", func() bool { return len(ids()) == 2 })
	if !slices.Equal(ids(), want) {
		t.Fatalf("orders %v, want %v", ids(), want)
	}
	eventually(t, 5*time.Second, "10 reports acked", func() bool { return sp.Acked() == 10 })

	h.stop()
	h.start(&testServer{store: st, orders: orders})
	eventually(t, 10*time.Second, "the orders again after the reconnect", func() bool { return len(ids()) == 4 })
	if !slices.Equal(ids()[2:], want) {
		t.Fatalf("orders after the reconnect %v", ids()[2:])
	}
	appendReports(t, sp, 5)
	eventually(t, 5*time.Second, "15 reports acked", func() bool { return sp.Acked() == 15 })
	if s := c.Stats(); s.Orders != 4 {
		t.Fatalf("stats count %d orders, want 4", s.Orders)
	}
}

// TestOrdersWithoutHandler: an agent that runs no actions ignores orders
// and goes on streaming.
func TestOrdersWithoutHandler(t *testing.T) {
	st := newTestStore()
	h := newHarness(t, "bufconn")
	h.start(&testServer{store: st, orders: []*hwhealv1.ActionOrder{{Id: "a1"}}})
	sp := openSpool(t)
	appendReports(t, sp, 3)
	c, _ := runClient(t, h, sp, nil)
	eventually(t, 5*time.Second, "3 reports acked", func() bool { return sp.Acked() == 3 })
	if s := c.Stats(); s.Orders != 1 || s.Disconnects != 0 {
		t.Fatalf("stats %+v, want the order counted and the stream kept", s)
	}
}
