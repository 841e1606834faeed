package limits

import (
	"time"

	"github.com/hwheal/hwheal/remediation/policy"
)

// FaultOpen is one enforced fault as the storm breaker sees it.
type FaultOpen struct {
	Node, Class string
	FirstSeen   time.Time
}

// Storm reports whether faults of one class opened on at least threshold
// distinct nodes with FirstSeen in (max(now-b.Window, since), now], where
// threshold is max(b.Nodes, b.Percent% of fleetSize rounded up, 1). since
// is the last resume (zero: none), so that a resume is not undone by the
// very faults that tripped the breaker. class and nodes name the class
// with the most nodes (the first by name of equals): the one that tripped
// it, or, when nothing did, the one closest to. A disabled breaker never
// trips and reports nothing.
func Storm(b policy.Breaker, faults []FaultOpen, fleetSize int, since, now time.Time) (tripped bool, class string, nodes, threshold int) {
	if b.Disabled {
		return false, "", 0, 0
	}
	pct := policy.Quantity{N: b.Percent, Percent: true, Set: true}
	threshold = max(b.Nodes, pct.Min(fleetSize), 1)
	start := now.Add(-b.Window)
	if since.After(start) {
		start = since
	}
	perClass := map[string]map[string]struct{}{}
	for _, f := range faults {
		if !f.FirstSeen.After(start) || f.FirstSeen.After(now) {
			continue
		}
		set := perClass[f.Class]
		if set == nil {
			set = map[string]struct{}{}
			perClass[f.Class] = set
		}
		set[f.Node] = struct{}{}
	}
	for c, set := range perClass {
		if len(set) > nodes || (len(set) == nodes && c < class) {
			class, nodes = c, len(set)
		}
	}
	return nodes >= threshold, class, nodes, threshold
}
