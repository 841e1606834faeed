package limits_test

import (
	"fmt"
	"testing"

	"github.com/hwheal/hwheal/remediation/action"
	"github.com/hwheal/hwheal/remediation/limits"
	"github.com/hwheal/hwheal/remediation/policy"
)

// BenchmarkAdmit is one planner pass over 10,000 nodes in 250 racks and
// 10 zones: build the fleet, then Admit (and Take what is admitted) for
// 1,000 candidates under a fleet limit, two domain limits and a floor.
func BenchmarkAdmit(b *testing.B) {
	nodes := fleet(10000, func(i int, n *limits.Node) {
		n.Labels["rack"] = fmt.Sprintf("r%03d", i/40)
		n.Labels["zone"] = fmt.Sprintf("z%d", i/1000)
		if i%97 == 0 {
			n.Service = action.Off
		}
		if i%89 == 0 {
			n.Connected = false
		}
	})
	candidates := make([]string, 1000)
	for i := range candidates {
		candidates[i] = fmt.Sprintf("n%d", (i*7919)%10000)
	}
	l := policy.Limits{
		MaxOutOfService: policy.Quantity{N: 5, Percent: true, Set: true},
		MinAvailable:    policy.Quantity{N: 90, Percent: true, Set: true},
		Domains: []policy.DomainLimit{
			{Label: "rack", MaxOutOfService: policy.Quantity{N: 2, Set: true}},
			{Label: "zone", MaxOutOfService: policy.Quantity{N: 10, Percent: true, Set: true}},
		},
	}
	b.ReportAllocs()
	admitted := 0
	for b.Loop() {
		f := limits.NewFleet(nodes)
		admitted = 0
		for _, c := range candidates {
			if ok, _ := f.Admit(l, c); ok {
				f.Take(c)
				admitted++
			}
		}
	}
	b.ReportMetric(float64(admitted), "admitted/pass")
}
