package sqlite

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hwheal/hwheal/collector/store"
	hwhealv1 "github.com/hwheal/hwheal/proto/hwheal/v1"
)

// TestNodeQueryPlans checks that every shape of node listing walks an index
// in page order (no full scan of a table, no sort of every match), on a
// database without ANALYZE statistics, which is how a new collector runs.
func TestNodeQueryPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	const (
		healthy = hwhealv1.NodeHealth_NODE_HEALTH_HEALTHY
		faulty  = hwhealv1.NodeHealth_NODE_HEALTH_FAULTY
	)
	tests := []struct {
		name   string
		filter store.NodeFilter
		// sortsArms: the several-states shape sorts each arm's page (at
		// most limit rows) to merge them.
		sortsArms bool
	}{
		// Without a filter the walk is of every node, in name order; the
		// LIMIT ends it.
		{"all", store.NodeFilter{}, false},
		{"one state", store.NodeFilter{Health: []hwhealv1.NodeHealth{faulty}}, false},
		{"two states", store.NodeFilter{Health: []hwhealv1.NodeHealth{healthy, faulty}}, true},
		{"label", store.NodeFilter{Labels: map[string]string{"rack": "r1"}}, false},
		{"labels and states", store.NodeFilter{Labels: map[string]string{"rack": "r1", "zone": "a"}, Health: []hwhealv1.NodeHealth{healthy, faulty}}, false},
		{"fault class", store.NodeFilter{FaultClass: "memory.ue"}, false},
		{"fault class and states", store.NodeFilter{FaultClass: "memory.ue", Health: []hwhealv1.NodeHealth{healthy, faulty}}, false},
		{"label and fault class", store.NodeFilter{FaultClass: "memory.ue", Labels: map[string]string{"rack": "r1"}}, false},
	}
	for _, tt := range tests {
		for _, after := range []string{"", "node-5"} {
			t.Run(fmt.Sprintf("%s after %q", tt.name, after), func(t *testing.T) {
				q, args := nodesQuery(tt.filter, after, 101)
				rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+q, args...)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var plan []string
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				for _, step := range plan {
					scan := strings.HasPrefix(step, "SCAN ") && !strings.HasPrefix(step, "SCAN (subquery") &&
						!(tt.name == "all" && strings.HasPrefix(step, "SCAN n USING "))
					sort := strings.Contains(step, "TEMP B-TREE") && !tt.sortsArms
					if scan || sort {
						t.Errorf("plan step %q\nquery %s\nplan %q", step, q, plan)
					}
				}
			})
		}
	}
}
