package limits_test

import (
	"fmt"
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/limits"
	"github.com/hwheal/hwheal/remediation/policy"
)

const (
	healthy = hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
	suspect = hwhealv1.NodeHealth_NODE_HEALTH_SUSPECT
	faulty  = hwhealv1.NodeHealth_NODE_HEALTH_FAULTY
)

func pct(n float64) policy.Quantity { return policy.Quantity{N: n, Percent: true, Set: true} }
func cnt(n float64) policy.Quantity { return policy.Quantity{N: n, Set: true} }

// fleet is n healthy, connected, in-service nodes n0..n{n-1}; edit
// changes some.
func fleet(n int, edit func(i int, node *limits.Node)) []limits.Node {
	nodes := make([]limits.Node, n)
	for i := range nodes {
		nodes[i] = limits.Node{
			Name:      fmt.Sprintf("n%d", i),
			Labels:    map[string]string{},
			Service:   action.InService,
			Connected: true,
			Health:    healthy,
		}
		if edit != nil {
			edit(i, &nodes[i])
		}
	}
	return nodes
}

// TestAdmit: each limit refusing and admitting, with the figures it
// gives.
func TestAdmit(t *testing.T) {
	racks := func(i int, n *limits.Node) {
		// r0: n0..n19, r1: n20..n39, ...; z0: n0..n49, ...
		n.Labels["rack"] = fmt.Sprintf("r%d", i/20)
		n.Labels["zone"] = fmt.Sprintf("z%d", i/50)
	}
	tests := []struct {
		name  string
		nodes []limits.Node
		l     policy.Limits
		node  string
		ok    bool
		why   string
	}{
		{
			name:  "fleet limit reached",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Service = pick(i < 5, action.Off, action.InService) }),
			l:     policy.Limits{MaxOutOfService: pct(5)},
			node:  "n50",
			why:   "max_out_of_service: 5 of 100 nodes out of service (limit 5%)",
		},
		{
			name:  "fleet limit with room",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Service = pick(i < 4, action.Off, action.InService) }),
			l:     policy.Limits{MaxOutOfService: pct(5)},
			node:  "n50",
			ok:    true,
		},
		{
			name: "an action in flight and every out-of-service state count",
			nodes: fleet(10, func(i int, n *limits.Node) {
				n.InFlight = i == 0
				n.Service = []hwhealv1.ServiceState{1: action.Draining, 2: action.Rebooting, 3: action.Migrating, 4: action.Off, 9: 0}[i]
			}),
			l:    policy.Limits{MaxOutOfService: cnt(5)},
			node: "n5",
			why:  "max_out_of_service: 5 of 10 nodes out of service (limit 5)",
		},
		{
			name: "the same with room",
			nodes: fleet(10, func(i int, n *limits.Node) {
				n.InFlight = i < 2
				n.Service = pick(i == 2, action.Migrating, action.InService)
			}),
			l:    policy.Limits{MaxOutOfService: cnt(4)},
			node: "n5",
			ok:   true,
		},
		{
			name:  "UNSPECIFIED service is in service",
			nodes: fleet(10, func(i int, n *limits.Node) { n.Service = hwhealv1.ServiceState_SERVICE_STATE_UNSPECIFIED }),
			l:     policy.Limits{MaxOutOfService: cnt(1)},
			node:  "n5",
			ok:    true,
		},
		{
			name:  "a node already out is admitted at the limit",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Service = pick(i < 5, action.Off, action.InService) }),
			l:     policy.Limits{MaxOutOfService: pct(5), MinAvailable: pct(100), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(0)}}},
			node:  "n3",
			ok:    true,
		},
		{
			name:  "unknown node",
			nodes: fleet(3, nil),
			l:     policy.Limits{},
			node:  "nx",
			why:   "node nx is not in the fleet",
		},
		{
			name:  "no limits set",
			nodes: fleet(3, func(i int, n *limits.Node) { n.Service = pick(i < 2, action.Off, action.InService) }),
			l:     policy.Limits{},
			node:  "n2",
			ok:    true,
		},
		{
			name:  "a zero limit holds everything",
			nodes: fleet(3, nil),
			l:     policy.Limits{MaxOutOfService: cnt(0)},
			node:  "n2",
			why:   "max_out_of_service: 0 of 3 nodes out of service (limit 0)",
		},
		{
			name:  "10% of a three-node lab is one node",
			nodes: fleet(3, nil),
			l:     policy.Limits{MaxOutOfService: pct(10)},
			node:  "n2",
			ok:    true,
		},
		{
			name: "rack full",
			nodes: fleet(400, func(i int, n *limits.Node) {
				racks(i, n)
				n.Service = pick(i == 241, action.Off, action.InService)
			}),
			l:    policy.Limits{MaxOutOfService: pct(10), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			node: "n245",
			why:  "rack=r12: 1 of 20 nodes out of service (limit 1)",
		},
		{
			name: "another rack has room",
			nodes: fleet(400, func(i int, n *limits.Node) {
				racks(i, n)
				n.Service = pick(i == 241, action.Off, action.InService)
			}),
			l:    policy.Limits{MaxOutOfService: pct(10), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			node: "n265",
			ok:   true,
		},
		{
			name: "a node without the label is in no rack",
			nodes: fleet(400, func(i int, n *limits.Node) {
				racks(i, n)
				n.Service = pick(i == 241, action.Off, action.InService)
				if i == 245 {
					delete(n.Labels, "rack")
				}
			}),
			l:    policy.Limits{MaxOutOfService: pct(10), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			node: "n245",
			ok:   true,
		},
		{
			name: "an empty label value is no rack",
			nodes: fleet(400, func(i int, n *limits.Node) {
				racks(i, n)
				if i == 241 || i == 245 {
					n.Labels["rack"] = ""
				}
				n.Service = pick(i == 241, action.Off, action.InService)
			}),
			l:    policy.Limits{MaxOutOfService: pct(10), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			node: "n245",
			ok:   true,
		},
		{
			name: "unlabelled nodes out of service fill no rack",
			nodes: fleet(400, func(i int, n *limits.Node) {
				racks(i, n)
				if i >= 240 && i < 250 {
					delete(n.Labels, "rack")
					n.Service = action.Off
				}
			}),
			l:    policy.Limits{MaxOutOfService: pct(10), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			node: "n255",
			ok:   true,
		},
		{
			name: "zone percentage rounds down",
			nodes: fleet(400, func(i int, n *limits.Node) {
				racks(i, n)
				n.Service = pick(i >= 50 && i < 54, action.Off, action.InService) // z1 holds n50..n99
			}),
			l:    policy.Limits{MaxOutOfService: pct(10), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(5)}, {Label: "zone", MaxOutOfService: pct(9)}}},
			node: "n60",
			why:  "zone=z1: 4 of 50 nodes out of service (limit 9%)",
		},
		{
			name: "the fleet limit speaks first",
			nodes: fleet(20, func(i int, n *limits.Node) {
				n.Labels["rack"] = "r0"
				n.Service = pick(i == 0, action.Off, action.InService)
			}),
			l:    policy.Limits{MaxOutOfService: cnt(1), MinAvailable: pct(100), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			node: "n5",
			why:  "max_out_of_service: 1 of 20 nodes out of service (limit 1)",
		},
		{
			name:  "floor reached",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Connected = i >= 10 }),
			l:     policy.Limits{MaxOutOfService: pct(50), MinAvailable: pct(90)},
			node:  "n50",
			why:   "min_available: 90 of 100 nodes available (floor 90%)",
		},
		{
			name:  "floor with room",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Connected = i >= 9 }),
			l:     policy.Limits{MaxOutOfService: pct(50), MinAvailable: pct(90)},
			node:  "n50",
			ok:    true,
		},
		{
			name: "faulty, disconnected and busy nodes are not available",
			nodes: fleet(100, func(i int, n *limits.Node) {
				n.Connected = i >= 4
				n.Health = pick(i >= 4 && i < 8, faulty, healthy)
				n.InFlight = i == 8
			}),
			l:    policy.Limits{MaxOutOfService: pct(50), MinAvailable: cnt(91)},
			node: "n50",
			why:  "min_available: 91 of 100 nodes available (floor 91)",
		},
		{
			name:  "suspect nodes are available",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Health = pick(i < 50, suspect, healthy) }),
			l:     policy.Limits{MaxOutOfService: pct(50), MinAvailable: cnt(99)},
			node:  "n50",
			ok:    true,
		},
		{
			name:  "offlining a faulty node does not lower the floor",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Connected = i >= 10; n.Health = pick(i == 50, faulty, healthy) }),
			l:     policy.Limits{MaxOutOfService: pct(50), MinAvailable: pct(90)},
			node:  "n50",
			ok:    true,
		},
		{
			name:  "nor does a disconnected one",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Connected = i >= 11 }),
			l:     policy.Limits{MaxOutOfService: pct(50), MinAvailable: pct(90)},
			node:  "n5",
			ok:    true,
		},
		{
			name:  "floor rounds up",
			nodes: fleet(11, nil),
			l:     policy.Limits{MinAvailable: pct(95)},
			node:  "n5",
			why:   "min_available: 11 of 11 nodes available (floor 95%)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := limits.NewFleet(tc.nodes)
			ok, why := f.Admit(tc.l, tc.node)
			if ok != tc.ok || why != tc.why {
				t.Errorf("Admit(%s) = %v, %q; want %v, %q", tc.node, ok, why, tc.ok, tc.why)
			}
		})
	}
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// TestTakeAccumulates: within one pass each Take counts for the next
// Admit, whatever limit holds.
func TestTakeAccumulates(t *testing.T) {
	tests := []struct {
		name  string
		nodes []limits.Node
		l     policy.Limits
		want  int
		why   string
	}{
		{
			name:  "fleet 5% of 100",
			nodes: fleet(100, nil),
			l:     policy.Limits{MaxOutOfService: pct(5)},
			want:  5,
			why:   "max_out_of_service: 5 of 100 nodes out of service (limit 5%)",
		},
		{
			name:  "fleet 5% of 100 with 2 already out",
			nodes: fleet(100, func(i int, n *limits.Node) { n.InFlight = i >= 98 }),
			l:     policy.Limits{MaxOutOfService: pct(5)},
			want:  3,
			why:   "max_out_of_service: 5 of 100 nodes out of service (limit 5%)",
		},
		{
			name:  "one per rack",
			nodes: fleet(100, func(i int, n *limits.Node) { n.Labels["rack"] = fmt.Sprintf("r%d", i%4) }),
			l:     policy.Limits{MaxOutOfService: pct(50), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}},
			want:  4,
			why:   "rack=r3: 1 of 25 nodes out of service (limit 1)", // n39, the last candidate
		},
		{
			name:  "floor",
			nodes: fleet(100, nil),
			l:     policy.Limits{MaxOutOfService: pct(50), MinAvailable: pct(93)},
			want:  7,
			why:   "min_available: 93 of 100 nodes available (floor 93%)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := limits.NewFleet(tc.nodes)
			admitted := 0
			var lastWhy string
			for i := range 40 {
				name := fmt.Sprintf("n%d", i)
				ok, why := f.Admit(tc.l, name)
				if ok {
					f.Take(name)
					admitted++
					if !f.OutOfService(name) {
						t.Fatalf("%s not out of service after Take", name)
					}
				} else {
					lastWhy = why
				}
			}
			if admitted != tc.want || lastWhy != tc.why {
				t.Errorf("admitted %d, last refusal %q; want %d, %q", admitted, lastWhy, tc.want, tc.why)
			}
		})
	}
}

// TestTake: a second Take, a Take of a node already out or of an unknown
// one changes nothing; domains first asked for after a Take count it.
func TestTake(t *testing.T) {
	nodes := fleet(10, func(i int, n *limits.Node) {
		n.Labels["rack"] = pick(i < 5, "a", "b")
		n.Service = pick(i == 9, action.Off, action.InService)
	})
	f := limits.NewFleet(nodes)
	f.Take("n0")
	f.Take("n0")
	f.Take("n9")
	f.Take("nx")
	l := policy.Limits{MaxOutOfService: cnt(3), Domains: []policy.DomainLimit{{Label: "rack", MaxOutOfService: cnt(1)}}}
	u := f.Usage(l)
	if u.OutOfService != 2 || u.Available != 8 {
		t.Errorf("usage %+v, want 2 out of service and 8 available", u)
	}
	if ok, why := f.Admit(l, "n1"); ok || why != "rack=a: 1 of 5 nodes out of service (limit 1)" {
		t.Errorf("Admit(n1) = %v, %q", ok, why)
	}
	if ok, _ := f.Admit(l, "n5"); ok {
		t.Error("rack b holds n9, which is offline")
	}
	if nodes[0].InFlight {
		t.Error("Take changed the caller's slice")
	}
	if f.OutOfService("n1") || f.OutOfService("nx") || !f.OutOfService("n9") {
		t.Error("OutOfService")
	}
}

func TestDuplicateNames(t *testing.T) {
	nodes := fleet(3, nil)
	nodes = append(nodes, limits.Node{Name: "n0", Service: action.Off})
	f := limits.NewFleet(nodes)
	if u := f.Usage(policy.Limits{}); u.Nodes != 3 || u.OutOfService != 0 || f.OutOfService("n0") {
		t.Errorf("a repeated name keeps its first node: %+v", u)
	}
}

func TestUsage(t *testing.T) {
	nodes := fleet(100, func(i int, n *limits.Node) {
		n.Labels["rack"] = fmt.Sprintf("r%02d", i/4) // 25 racks of 4
		if i < 50 {
			n.Labels["zone"] = pick(i < 25, "a", "b")
		}
		switch i {
		case 0, 1, 4, 60, 26:
			n.Service = action.Off
		case 8:
			n.InFlight = true
		case 9:
			n.Connected = false
		case 10:
			n.Health = faulty
		}
	})
	f := limits.NewFleet(nodes)
	f.Take("n12")
	l := policy.Limits{
		MaxOutOfService: pct(10),
		MinAvailable:    pct(85),
		Domains: []policy.DomainLimit{
			{Label: "rack", MaxOutOfService: cnt(2)},
			{Label: "zone", MaxOutOfService: pct(10)},
		},
	}
	u := f.Usage(l)
	if u.Nodes != 100 || u.OutOfService != 7 || u.MaxOutOfService != 10 || u.Available != 91 || u.MinAvailable != 85 {
		t.Errorf("usage %+v", u)
	}
	if len(u.Domains) != limits.MaxDomains {
		t.Fatalf("%d domains, want %d", len(u.Domains), limits.MaxDomains)
	}
	type du struct {
		label, value      string
		nodes, out, limit uint32
	}
	var got []du
	for _, d := range u.Domains[:7] {
		got = append(got, du{d.Label, d.Value, d.Nodes, d.OutOfService, d.Limit})
	}
	want := []du{
		{"rack", "r00", 4, 2, 2}, // full
		{"zone", "a", 25, 5, 2},  // past full... 5/2
		{"rack", "r01", 4, 1, 2}, // half
		{"rack", "r02", 4, 1, 2}, // n8 in flight
		{"rack", "r03", 4, 1, 2}, // n12 taken
		{"rack", "r06", 4, 1, 2}, // n26
		{"rack", "r15", 4, 1, 2}, // n60
	}
	// Busiest first: 5/2 before 2/2 before 1/2; equals by label, value.
	want[0], want[1] = want[1], want[0]
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("domain %d = %+v, want %+v", i, got[min(i, len(got)-1)], want[i])
		}
	}
	if len(f.Usage(policy.Limits{}).Domains) != 0 {
		t.Error("no domain limits, no domains")
	}
}
