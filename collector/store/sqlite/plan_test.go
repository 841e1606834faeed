package sqlite

import (
	"fmt"
	"slices"
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

		offline  = hwhealv1.ServiceState_SERVICE_STATE_OFFLINE
		draining = hwhealv1.ServiceState_SERVICE_STATE_DRAINING
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
		{"one service state", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{offline}}, false},
		{"two service states", store.NodeFilter{ServiceStates: []hwhealv1.ServiceState{offline, draining}}, true},
		{"one state, two service states", store.NodeFilter{Health: []hwhealv1.NodeHealth{faulty}, ServiceStates: []hwhealv1.ServiceState{offline, draining}}, false},
		{"two states, one service state", store.NodeFilter{Health: []hwhealv1.NodeHealth{healthy, faulty}, ServiceStates: []hwhealv1.ServiceState{offline}}, true},
		{"one state, one service state", store.NodeFilter{Health: []hwhealv1.NodeHealth{faulty}, ServiceStates: []hwhealv1.ServiceState{offline}}, false},
		{"label and service states", store.NodeFilter{Labels: map[string]string{"rack": "r1"}, ServiceStates: []hwhealv1.ServiceState{offline, draining}}, false},
		{"fault class and service state", store.NodeFilter{FaultClass: "memory.ue", ServiceStates: []hwhealv1.ServiceState{offline}}, false},
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

// TestLifecyclePlans checks that the fault lifecycle's queries find their
// rows through the index made for them, on a database without statistics:
// the quiet pass must cost the faults due, not the fault history, and a
// peer rule's read the observations of its source, not the table.
func TestLifecyclePlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	tests := []struct {
		name string
		sql  string
		args []any
		// want is a step every plan must have, the index named.
		want []string
	}{
		// A derived fault's reading is one probe of the table's key, never a
		// walk of the node's or the source's readings.
		{"faults due", faultsDueSQL, []any{1, 500}, []string{
			"SEARCH f USING INDEX faults_due (due_at<?)",
			"SEARCH o USING PRIMARY KEY (source=? AND node=? AND part_key=?)",
		}},
		{"stop every quiet time", faultsDueClearAllSQL, nil, []string{"SEARCH faults USING INDEX faults_due (due_at>?)"}},
		{"stop a node's quiet time", faultsDueClearSQL, []any{"n"}, []string{"USING INDEX faults_open_"}},
		{"restart a node's quiet time", faultsDueHelloSQL, []any{"n", 1}, []string{"USING INDEX faults_open_"}},
		{"newest row of a key", faultLastSQL, []any{"n", "c", "p"}, []string{"SEARCH faults USING INDEX faults_key (node=? AND class=? AND part_key=?)"}},
		{"health of a node", openFaultsSQL, []any{"n"}, []string{"SEARCH faults USING COVERING INDEX faults_open_health (node=?)"}},
		{"fleet observations", fleetObsSQL, []any{"diskstats"}, []string{
			"SEARCH o USING PRIMARY KEY (source=?)",
			"SEARCH n USING INDEX sqlite_autoindex_nodes_1 (name=?)",
		}},
		{"latest observations of a node", latestObsSQL, []any{"n"}, []string{"SEARCH observations_latest USING INDEX observations_node (node=?)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := explain(t, s, tt.sql, tt.args...)
			for _, step := range plan {
				if strings.HasPrefix(step, "SCAN ") || strings.Contains(step, "TEMP B-TREE") {
					t.Errorf("plan step %q\nquery %s\nplan %q", step, tt.sql, plan)
				}
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(plan, func(step string) bool { return strings.Contains(step, w) }) {
					t.Errorf("no plan step %q\nquery %s\nplan %q", w, tt.sql, plan)
				}
			}
		})
	}
}

func explain(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
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
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
