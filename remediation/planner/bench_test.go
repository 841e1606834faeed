package planner

import (
	"fmt"
	"testing"
	"time"

	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// BenchmarkPass is one planner pass over a fleet in which 2 % of the nodes
// have an open fault a rule covers and half of those an action waiting on
// the limit: the steady state of a large fleet under a limit. The pass
// reads the fleet, the open faults and the live actions, and changes
// nothing (every waiting text is already written), so the figure is the
// planner's fixed cost per pass.
func BenchmarkPass(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			w := newWorld(b, `
limits:
  max_out_of_service: 1
breaker:
  enabled: false
rules:
  - name: ce
    classes: [memory.ce_storm]
    ladder:
      - action: offline
        approval: auto
`)
			for i := range nodes {
				w.hello(fmt.Sprintf("n%05d", i), "b", map[string]string{"rack": fmt.Sprintf("r%d", i%100)})
			}
			for i := 0; i < nodes; i += 50 {
				w.raise(fmt.Sprintf("n%05d", i), "memory.ce_storm", hwhealv1.Severity_SEVERITY_WARNING)
			}
			w.pass() // proposes, dispatches one, records what the rest wait for
			w.pass()
			w.advance(time.Second)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := w.p.Pass(w.ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
