// Package limits holds the blast radius of remediation: how many nodes
// may be out of service at once, fleet-wide and per failure domain, how
// many must stay available, and when faults arrive like a storm. It is
// pure (no I/O, no clock): the planner builds a Fleet once per pass from
// the store's nodes and actions, asks Admit before it dispatches an action
// that takes a node out of service, and records each dispatch with Take
// so that the rest of the pass counts it.
package limits

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/policy"
)

// MaxDomains bounds Usage.Domains.
const MaxDomains = 20

// Node is what limits know of one node.
type Node struct {
	Name      string
	Labels    map[string]string
	Service   hwhealv1.ServiceState
	Connected bool
	Health    hwhealv1.NodeHealth
	// InFlight: a non-dry-run action that takes the node out of service
	// is dispatched or running on it.
	InFlight bool
}

func (n *Node) outOfService() bool { return action.OutOfService(n.Service) || n.InFlight }

// available: the node takes work now and is fit to.
func (n *Node) available() bool {
	return n.Connected && !n.outOfService() && n.Health != hwhealv1.NodeHealth_NODE_HEALTH_FAULTY
}

// Fleet is the nodes as one planner pass sees them, with the counts the
// limits need. It is not safe for concurrent use: a pass owns its Fleet.
type Fleet struct {
	nodes     []Node
	index     map[string]int
	out       int
	available int
	// domains: label -> value -> counts, built the first time a limit
	// asks for the label and kept current by Take.
	domains map[string]map[string]*count
}

type count struct{ nodes, out int }

// NewFleet builds the fleet of nodes. Names are unique; a repeated name
// keeps its first node. The Fleet keeps its own copy of the slice (the
// label maps are shared and only read).
func NewFleet(nodes []Node) *Fleet {
	f := &Fleet{
		nodes:   make([]Node, 0, len(nodes)),
		index:   make(map[string]int, len(nodes)),
		domains: map[string]map[string]*count{},
	}
	for _, n := range nodes {
		if _, dup := f.index[n.Name]; dup {
			continue
		}
		f.index[n.Name] = len(f.nodes)
		f.nodes = append(f.nodes, n)
		if n.outOfService() {
			f.out++
		}
		if n.available() {
			f.available++
		}
	}
	return f
}

// OutOfService reports whether the node takes no work: its service state
// says so or an action that takes it out is in flight. An unknown node is
// not out of service.
func (f *Fleet) OutOfService(name string) bool {
	i, ok := f.index[name]
	return ok && f.nodes[i].outOfService()
}

// Admit reports whether taking node out of service now keeps every limit
// of l: the fleet's max_out_of_service; each domain's (the nodes sharing
// the node's value of the domain's label; a node without the label, or
// with an empty value, is in no domain of it); and min_available, the
// floor on nodes connected, in service, not faulty and not busy with an
// action. A node already out of service is always admitted: taking it out
// again changes no count. An unknown node is refused. why names the limit
// that refuses, with its figures: "max_out_of_service: 5 of 100 nodes out
// of service (limit 5%)", "rack=r12: 1 of 20 nodes out of service (limit
// 1)", "min_available: 90 of 100 nodes available (floor 90%)".
func (f *Fleet) Admit(l policy.Limits, node string) (ok bool, why string) {
	i, known := f.index[node]
	if !known {
		return false, fmt.Sprintf("node %s is not in the fleet", node)
	}
	n := &f.nodes[i]
	if n.outOfService() {
		return true, ""
	}
	total := len(f.nodes)
	if f.out+1 > l.MaxOutOfService.Max(total) {
		return false, fmt.Sprintf("max_out_of_service: %d of %d nodes out of service (limit %s)", f.out, total, l.MaxOutOfService)
	}
	for _, d := range l.Domains {
		v := n.Labels[d.Label]
		if v == "" {
			continue
		}
		c := f.domain(d.Label)[v]
		if c.out+1 > d.MaxOutOfService.Max(c.nodes) {
			return false, fmt.Sprintf("%s=%s: %d of %d nodes out of service (limit %s)", d.Label, v, c.out, c.nodes, d.MaxOutOfService)
		}
	}
	if n.available() && f.available-1 < l.MinAvailable.Min(total) {
		return false, fmt.Sprintf("min_available: %d of %d nodes available (floor %s)", f.available, total, l.MinAvailable)
	}
	return true, ""
}

// Take records that node is now out of service (an action that takes it
// out is in flight), so that later Admit calls of the same pass count
// it. Taking a node already out of service, or an unknown one, changes
// nothing.
func (f *Fleet) Take(node string) {
	i, ok := f.index[node]
	if !ok {
		return
	}
	n := &f.nodes[i]
	if n.outOfService() {
		return
	}
	if n.available() {
		f.available--
	}
	n.InFlight = true
	f.out++
	for label, values := range f.domains {
		if v := n.Labels[label]; v != "" {
			values[v].out++
		}
	}
}

// domain is the counts per value of label.
func (f *Fleet) domain(label string) map[string]*count {
	if m, ok := f.domains[label]; ok {
		return m
	}
	m := map[string]*count{}
	for i := range f.nodes {
		n := &f.nodes[i]
		v := n.Labels[label]
		if v == "" {
			continue
		}
		c := m[v]
		if c == nil {
			c = &count{}
			m[v] = c
		}
		c.nodes++
		if n.outOfService() {
			c.out++
		}
	}
	f.domains[label] = m
	return m
}

// Usage is the fleet against its limits, for GetRemediationStatus.
type Usage struct {
	// Nodes in the fleet, those out of service, and the fleet limit on
	// them.
	Nodes, OutOfService, MaxOutOfService int
	// Available nodes (connected, in service, not faulty, not busy) and
	// their floor.
	Available, MinAvailable int
	// Domains: every value of every limited label, busiest (highest
	// out_of_service/limit) first, at most MaxDomains.
	Domains []*hwhealv1.DomainUsage
}

// Usage gives the figures of the fleet against l.
func (f *Fleet) Usage(l policy.Limits) Usage {
	total := len(f.nodes)
	u := Usage{
		Nodes:           total,
		OutOfService:    f.out,
		MaxOutOfService: l.MaxOutOfService.Max(total),
		Available:       f.available,
		MinAvailable:    l.MinAvailable.Min(total),
	}
	for _, d := range l.Domains {
		for v, c := range f.domain(d.Label) {
			u.Domains = append(u.Domains, &hwhealv1.DomainUsage{
				Label:        d.Label,
				Value:        v,
				Nodes:        uint32(c.nodes),
				OutOfService: uint32(c.out),
				Limit:        uint32(max(d.MaxOutOfService.Max(c.nodes), 0)),
			})
		}
	}
	slices.SortFunc(u.Domains, func(a, b *hwhealv1.DomainUsage) int {
		return cmp.Or(
			cmp.Compare(fullness(b), fullness(a)),
			cmp.Compare(b.OutOfService, a.OutOfService),
			cmp.Compare(a.Label, b.Label),
			cmp.Compare(a.Value, b.Value),
		)
	})
	if len(u.Domains) > MaxDomains {
		u.Domains = u.Domains[:MaxDomains]
	}
	return u
}

// fullness is out_of_service/limit; a zero limit is full when nothing is
// out (no room) and past full when something is.
func fullness(d *hwhealv1.DomainUsage) float64 {
	if d.Limit == 0 {
		if d.OutOfService == 0 {
			return 1
		}
		return math.Inf(1)
	}
	return float64(d.OutOfService) / float64(d.Limit)
}
