package limits_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/limits"
	"github.com/hwheal/hwheal/remediation/policy"
)

// model is the fleet counted from scratch, the way a person would check
// it, to hold Fleet's incremental counts against.
type model struct {
	nodes []limits.Node
}

func (m *model) out(i int) bool {
	return action.OutOfService(m.nodes[i].Service) || m.nodes[i].InFlight
}

func (m *model) avail(i int) bool {
	n := m.nodes[i]
	return n.Connected && !m.out(i) && n.Health != hwhealv1.NodeHealth_NODE_HEALTH_FAULTY
}

// counts: nodes out of service, available, and out of service per
// label=value.
func (m *model) counts() (out, avail int, dom map[string]int, size map[string]int) {
	dom, size = map[string]int{}, map[string]int{}
	for i, n := range m.nodes {
		if m.out(i) {
			out++
		}
		if m.avail(i) {
			avail++
		}
		for k, v := range n.Labels {
			if v == "" {
				continue
			}
			size[k+"="+v]++
			if m.out(i) {
				dom[k+"="+v]++
			}
		}
	}
	return out, avail, dom, size
}

// keeps reports whether taking node i out keeps every limit of l.
func (m *model) keeps(l policy.Limits, i int) bool {
	if m.out(i) {
		return true
	}
	out, avail, dom, size := m.counts()
	total := len(m.nodes)
	if out+1 > l.MaxOutOfService.Max(total) {
		return false
	}
	for _, d := range l.Domains {
		v := m.nodes[i].Labels[d.Label]
		if v == "" {
			continue
		}
		if key := d.Label + "=" + v; dom[key]+1 > d.MaxOutOfService.Max(size[key]) {
			return false
		}
	}
	return !m.avail(i) || avail-1 >= l.MinAvailable.Min(total)
}

func randQuantity(r *rand.Rand, maxCount int, minPct, maxPct float64) policy.Quantity {
	switch r.IntN(3) {
	case 0:
		return policy.Quantity{}
	case 1:
		return policy.Quantity{N: float64(r.IntN(maxCount + 1)), Set: true}
	}
	return policy.Quantity{N: minPct + r.Float64()*(maxPct-minPct), Percent: true, Set: true}
}

// TestAdmitProperty: for random fleets, limits and candidate orders,
// Admit says yes exactly when taking the node keeps every limit counted
// from scratch; so the admitted set never takes any count past its limit
// (one that was past it already only stays where it was).
func TestAdmitProperty(t *testing.T) {
	services := []hwhealv1.ServiceState{0, action.InService, action.InService, action.InService, action.InService, action.Draining, action.Off, action.Rebooting, action.Migrating}
	tally := map[string]int{}
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 1 + r.IntN(80)
		nodes := make([]limits.Node, n)
		for i := range nodes {
			labels := map[string]string{}
			if r.IntN(10) < 8 {
				labels["rack"] = fmt.Sprintf("r%d", r.IntN(6))
			}
			if r.IntN(10) < 6 {
				labels["zone"] = fmt.Sprintf("z%d", r.IntN(3))
			}
			if r.IntN(20) == 0 {
				labels["rack"] = ""
			}
			nodes[i] = limits.Node{
				Name:      fmt.Sprintf("n%d", i),
				Labels:    labels,
				Service:   services[r.IntN(len(services))],
				Connected: r.IntN(10) < 9,
				Health:    hwhealv1.NodeHealth(r.IntN(4)),
				InFlight:  r.IntN(20) == 0,
			}
		}
		l := policy.Limits{
			MaxOutOfService: randQuantity(r, 8, 0, 40),
			MinAvailable:    randQuantity(r, n, 30, 100),
		}
		for _, label := range []string{"rack", "zone"} {
			if r.IntN(3) > 0 {
				l.Domains = append(l.Domains, policy.DomainLimit{Label: label, MaxOutOfService: randQuantity(r, 3, 0, 50)})
			}
		}
		f := limits.NewFleet(nodes)
		m := &model{nodes: append([]limits.Node(nil), nodes...)}
		out0, avail0, dom0, _ := m.counts()
		candidates := r.Perm(n + 2) // n and n+1 are not in the fleet
		candidates = append(candidates, r.Perm(n)[:n/2]...)
		for _, c := range candidates {
			name := fmt.Sprintf("n%d", c)
			ok, why := f.Admit(l, name)
			if c >= n {
				if ok {
					t.Fatalf("seed %d: admitted unknown %s", seed, name)
				}
				continue
			}
			if want := m.keeps(l, c); ok != want {
				t.Fatalf("seed %d: Admit(%s) = %v (%s), counted from scratch %v; limits %+v", seed, name, ok, why, want, l)
			}
			if ok == (why != "") {
				t.Fatalf("seed %d: Admit(%s) = %v with why %q", seed, name, ok, why)
			}
			tally[reason(ok, why)]++
			if ok {
				f.Take(name)
				m.nodes[c].InFlight = true
			}
		}

		// What the pass did, counted from scratch.
		out, avail, dom, size := m.counts()
		total := len(nodes)
		if out > out0 && out > l.MaxOutOfService.Max(total) {
			t.Fatalf("seed %d: took nodes past the fleet limit: %d > %d", seed, out, l.MaxOutOfService.Max(total))
		}
		if avail < avail0 && avail < l.MinAvailable.Min(total) {
			t.Fatalf("seed %d: %d available, floor %d", seed, avail, l.MinAvailable.Min(total))
		}
		for _, d := range l.Domains {
			for key, o := range dom {
				if !strings.HasPrefix(key, d.Label+"=") || o == dom0[key] {
					continue
				}
				if lim := d.MaxOutOfService.Max(size[key]); o > lim {
					t.Fatalf("seed %d: %s: %d out, limit %d", seed, key, o, lim)
				}
			}
		}
		u := f.Usage(l)
		if u.OutOfService != out || u.Available != avail || u.Nodes != total {
			t.Fatalf("seed %d: usage %+v, counted %d out, %d available", seed, u, out, avail)
		}
		for _, d := range u.Domains {
			key := d.Label + "=" + d.Value
			if int(d.OutOfService) != dom[key] || int(d.Nodes) != size[key] {
				t.Fatalf("seed %d: usage of %s %+v, counted %d of %d", seed, key, d, dom[key], size[key])
			}
		}
	}
	// Every answer came up, so the property was tried on each.
	for _, k := range []string{"admitted", "max_out_of_service", "domain", "min_available"} {
		if tally[k] < 20 {
			t.Errorf("%s %d times in all seeds: %v", k, tally[k], tally)
		}
	}
}

func reason(ok bool, why string) string {
	switch {
	case ok:
		return "admitted"
	case strings.HasPrefix(why, "max_out_of_service:"), strings.HasPrefix(why, "min_available:"):
		return why[:strings.IndexByte(why, ':')]
	}
	return "domain"
}
